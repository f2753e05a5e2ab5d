package binlog

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"

	"github.com/feedcdc/feedcdc/change"
)

// ErrPositionPurged means the server no longer has the binlog position the
// stream should resume from (error 1236: the file or the GTIDs were purged).
// Run returns it as a *PositionPurgedError.
var ErrPositionPurged = errors.New("binlog position is no longer available on the server")

// ErrServerIDClash means another replica registered with the same server_id.
var ErrServerIDClash = errors.New("another replica is connected with the same server_id")

// TLSConfig configures TLS to the source server.
type TLSConfig struct {
	Enabled    bool
	CAFile     string // PEM bundle of trusted CAs (default: system roots)
	CertFile   string // client certificate (PEM), with KeyFile
	KeyFile    string
	ServerName string // name to verify (default: Host)
	SkipVerify bool   // do not verify the server certificate (insecure)
	// Config, when set, is used as is and the fields above are ignored
	// (e.g. MySQL's verify-ca: chain verified, host name not).
	Config *tls.Config
}

// Config configures the live binlog source.
type Config struct {
	Host     string
	Port     int // default 3306
	User     string
	Password string
	// ServerID is this replica's server_id: unique among all servers and
	// replicas of the topology, never 0.
	ServerID uint32
	// Flavor is "mysql" or "mariadb"; "" detects it from SELECT VERSION().
	Flavor string
	TLS    TLSConfig
	// HeartbeatPeriod asks the server for a heartbeat when idle (default 10s).
	HeartbeatPeriod time.Duration
	// ReadTimeout drops a connection that delivered nothing for this long
	// (default 90s; must exceed HeartbeatPeriod and the longest stall of the
	// Handler, since the socket is not read while the Handler blocks).
	ReadTimeout time.Duration
	// Filter chooses the captured tables.
	Filter Filter
	// ZeroDates: what zero dates become (default ZeroDatesNull).
	ZeroDates ZeroDates
	// StartPosition is used when Run gets no position: "current" (default),
	// "earliest", "gtid:<set>" or "<file>:<pos>" (e.g. "binlog.000003:4").
	StartPosition string
	// ReconnectMin/ReconnectMax bound the backoff between reconnects
	// (defaults 500ms and 30s).
	ReconnectMin, ReconnectMax time.Duration
}

func (c Config) withDefaults() Config {
	if c.Port == 0 {
		c.Port = 3306
	}
	if c.HeartbeatPeriod == 0 {
		c.HeartbeatPeriod = 10 * time.Second
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = 90 * time.Second
	}
	if c.ReconnectMin == 0 {
		c.ReconnectMin = 500 * time.Millisecond
	}
	if c.ReconnectMax == 0 {
		c.ReconnectMax = 30 * time.Second
	}
	if c.ZeroDates == "" {
		c.ZeroDates = ZeroDatesNull
	}
	return c
}

func (c Config) validate() error {
	var errs []error
	if c.Host == "" {
		errs = append(errs, errors.New("source host is empty"))
	}
	if c.ServerID == 0 {
		errs = append(errs, errors.New("source server_id is 0: a replica needs a server_id unique in the topology"))
	}
	if c.Flavor != "" && c.Flavor != mysql.MySQLFlavor && c.Flavor != mysql.MariaDBFlavor {
		errs = append(errs, fmt.Errorf("source flavor %q: use mysql, mariadb or leave it empty to detect it", c.Flavor))
	}
	if c.ReadTimeout <= c.HeartbeatPeriod {
		errs = append(errs, fmt.Errorf("source read_timeout (%s) must be longer than heartbeat_period (%s)", c.ReadTimeout, c.HeartbeatPeriod))
	}
	if c.ZeroDates != ZeroDatesNull && c.ZeroDates != ZeroDatesString {
		errs = append(errs, fmt.Errorf("zero_dates %q: use null or string", c.ZeroDates))
	}
	if _, err := change.ParseStartPosition(c.StartPosition); err != nil {
		errs = append(errs, fmt.Errorf("start position: %w", err))
	}
	if err := c.Filter.Validate(); err != nil {
		errs = append(errs, err)
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		errs = append(errs, errors.New("source TLS needs both cert_file and key_file, or neither"))
	}
	return errors.Join(errs...)
}

func (c Config) addr() string { return net.JoinHostPort(c.Host, strconv.Itoa(c.Port)) }

func (c Config) tlsConfig() (*tls.Config, error) {
	t := c.TLS
	if t.Config != nil {
		return t.Config.Clone(), nil
	}
	if !t.Enabled && t.CAFile == "" && t.CertFile == "" && !t.SkipVerify {
		return nil, nil
	}
	tc := &tls.Config{ServerName: t.ServerName, InsecureSkipVerify: t.SkipVerify, MinVersion: tls.VersionTLS12} //nolint:gosec // SkipVerify is an explicit, documented opt-in
	if tc.ServerName == "" {
		tc.ServerName = c.Host
	}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("source TLS ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("source TLS ca_file %s holds no PEM certificate", t.CAFile)
		}
		tc.RootCAs = pool
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("source TLS cert_file/key_file: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// Source is the live binlog source: a replica connection that streams
// change records to a Handler, reconnecting after network errors.
type Source struct {
	cfg     Config
	log     *slog.Logger
	history SchemaHistory
	tls     *tls.Config
}

// New validates cfg. history keeps the schema history (may be nil when every
// captured table is logged with binlog_row_metadata=FULL; then DDL is not
// tracked and tables without full metadata are an error).
func New(cfg Config, logger *slog.Logger, history SchemaHistory) (*Source, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("binlog source config: %w", err)
	}
	tc, err := cfg.tlsConfig()
	if err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Source{cfg: cfg, log: logger, history: history, tls: tc}, nil
}

// conn opens a SQL connection to the source.
func connect(ctx context.Context, cfg Config, tc *tls.Config) (*client.Conn, error) {
	c, err := client.ConnectWithContext(ctx, cfg.addr(), cfg.User, cfg.Password, "", 10*time.Second, func(c *client.Conn) error {
		if tc != nil {
			c.SetTLSConfig(tc)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("connect to source %s as %s: %w", cfg.addr(), cfg.User, err)
	}
	return c, nil
}

func detectFlavor(c *client.Conn, configured string) (string, error) {
	if configured != "" {
		return configured, nil
	}
	r, err := c.Execute("SELECT VERSION()")
	if err != nil {
		return "", fmt.Errorf("SELECT VERSION(): %w", err)
	}
	v, _ := r.GetString(0, 0)
	return flavorOfVersion(v), nil
}

func queryString(c *client.Conn, q string) (string, error) {
	r, err := c.Execute(q)
	if err != nil {
		return "", fmt.Errorf("%s: %w", q, err)
	}
	if r.RowNumber() == 0 {
		return "", nil
	}
	s, err := r.GetString(0, 0)
	if err != nil {
		return "", fmt.Errorf("%s: %w", q, err)
	}
	return s, nil
}

// CurrentPosition returns the server's current end of binlog (GTID set when
// the server has GTIDs, and file/pos).
func CurrentPosition(ctx context.Context, cfg Config) (change.Position, error) {
	return withConn(ctx, cfg, currentPosition)
}

// withConn runs read on a fresh admin connection to the source.
func withConn(ctx context.Context, cfg Config, read func(c *client.Conn, flavor string) (change.Position, error)) (change.Position, error) {
	cfg = cfg.withDefaults()
	tc, err := cfg.tlsConfig()
	if err != nil {
		return change.Position{}, err
	}
	c, err := connect(ctx, cfg, tc)
	if err != nil {
		return change.Position{}, err
	}
	defer c.Close()
	flavor, err := detectFlavor(c, cfg.Flavor)
	if err != nil {
		return change.Position{}, err
	}
	return read(c, flavor)
}

func currentPosition(c *client.Conn, flavor string) (change.Position, error) {
	var r *mysql.Result
	var err error
	for _, q := range []string{"SHOW BINARY LOG STATUS", "SHOW MASTER STATUS"} {
		if r, err = c.Execute(q); err == nil {
			break
		}
	}
	if err != nil {
		return change.Position{}, fmt.Errorf("read the current binlog position (SHOW MASTER STATUS needs the REPLICATION CLIENT privilege): %w", err)
	}
	if r.RowNumber() == 0 {
		return change.Position{}, errors.New("the source has no binary log: start it with log_bin (see docs/binlog.md)")
	}
	file, _ := r.GetString(0, 0)
	pos, _ := r.GetUint(0, 1)
	p := change.Position{Flavor: flavor, File: file, Pos: uint32(pos)}
	if flavor == mysql.MariaDBFlavor {
		g, err := queryString(c, fmt.Sprintf("SELECT BINLOG_GTID_POS('%s', %d)", escapeSQL(file), pos))
		if err != nil {
			return change.Position{}, err
		}
		p.GTIDSet = g
		return p, nil
	}
	if r.ColumnNumber() >= 5 {
		g, _ := r.GetString(0, 4)
		p.GTIDSet = strings.ReplaceAll(strings.TrimSpace(g), "\n", "")
	}
	return p, nil
}

// EarliestPosition returns the start of the oldest binlog file the server
// still has.
func EarliestPosition(ctx context.Context, cfg Config) (change.Position, error) {
	return withConn(ctx, cfg, earliestPosition)
}

func earliestPosition(c *client.Conn, flavor string) (change.Position, error) {
	file, err := queryString(c, "SHOW BINARY LOGS")
	if err != nil {
		return change.Position{}, fmt.Errorf("list binlog files (needs REPLICATION CLIENT): %w", err)
	}
	if file == "" {
		return change.Position{}, errors.New("the source has no binary log: start it with log_bin (see docs/binlog.md)")
	}
	p := change.Position{Flavor: flavor, File: file, Pos: 4}
	if flavor == mysql.MariaDBFlavor {
		g, err := queryString(c, fmt.Sprintf("SELECT BINLOG_GTID_POS('%s', 4)", escapeSQL(file)))
		if err != nil {
			return change.Position{}, err
		}
		p.GTIDSet = g
		return p, nil
	}
	mode, _ := queryString(c, "SELECT @@GLOBAL.gtid_mode")
	if strings.EqualFold(mode, "ON") {
		g, err := queryString(c, "SELECT @@GLOBAL.gtid_purged")
		if err != nil {
			return change.Position{}, err
		}
		p.GTIDSet = strings.ReplaceAll(g, "\n", "")
		if p.GTIDSet == "" {
			// nothing purged: an empty set starts at the oldest file; keep file/pos
			return p, nil
		}
	}
	return p, nil
}

func escapeSQL(s string) string {
	return strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s)
}

// TxAborter is an optional Handler extension: TxAbort is called when the
// connection is lost inside a transaction whose changes were already
// delivered; the stream then resumes from the last TxEnd, so those changes
// are delivered again.
type TxAborter interface {
	TxAbort(ctx context.Context) error
}

// syncHandler adapts the decoder to go-mysql's SynchronousEventHandler.
type syncHandler struct {
	ctx context.Context
	d   *decoder
	err error // the decoder's or handler's error (not a network error)
}

func (s *syncHandler) HandleEvent(e *replication.BinlogEvent) error {
	if err := s.d.handle(s.ctx, e); err != nil {
		s.err = err
		return err
	}
	return nil
}

// trackingHandler remembers the last delivered TxEnd and whether a
// transaction is open.
type trackingHandler struct {
	h    Handler
	last change.Position
	open bool
}

func (t *trackingHandler) Change(ctx context.Context, c *change.Change) error {
	t.open = true
	return t.h.Change(ctx, c)
}

// Truncate passes a TRUNCATE on (the decoder asks handlesTruncate first).
func (t *trackingHandler) Truncate(ctx context.Context, tbl *change.Table, src change.Source) error {
	t.open = true
	return t.h.(Truncater).Truncate(ctx, tbl, src)
}

// Replace passes a table replacement on (the decoder asks handlesReplace
// first).
func (t *trackingHandler) Replace(ctx context.Context, tbl *change.Table, from string, src change.Source) error {
	t.open = true
	return t.h.(Replacer).Replace(ctx, tbl, from, src)
}

// SchemaChange passes a schema change on (the decoder asks
// handlesSchemaChange first).
func (t *trackingHandler) SchemaChange(ctx context.Context, sc change.SchemaChange) error {
	t.open = true
	return t.h.(SchemaChanger).SchemaChange(ctx, sc)
}

func (t *trackingHandler) inner() Handler { return t.h }

func (t *trackingHandler) TxEnd(ctx context.Context, e change.TxEnd) error {
	t.open = false
	t.last = e.Position
	return t.h.TxEnd(ctx, e)
}

// Run streams from position from (or, when it is zero, from
// Config.StartPosition) until ctx ends or an error that reconnecting cannot
// fix: a decoding error, a Handler error, a purged position
// (ErrPositionPurged) or a server_id clash (ErrServerIDClash). After a
// network error it reconnects with backoff from the last delivered TxEnd.
func (s *Source) Run(ctx context.Context, from change.Position, h Handler) error {
	flavor, from, tracker, err := s.prepare(ctx, from)
	if err != nil {
		return err
	}
	return s.streamReconnecting(ctx, flavor, from, h, tracker)
}

// prepare resolves, on one connection, what streaming needs: the server's
// flavor, the start position (complete with its GTID set) and the schema
// tracker bootstrapped at it.
func (s *Source) prepare(ctx context.Context, from change.Position) (string, change.Position, *schemaTracker, error) {
	c, err := connect(ctx, s.cfg, s.tls)
	if err != nil {
		return "", from, nil, err
	}
	defer c.Close()
	flavor, err := detectFlavor(c, s.cfg.Flavor)
	if err != nil {
		return "", from, nil, err
	}
	startIsCurrent := false
	if from.IsZero() {
		spec, _ := change.ParseStartPosition(s.cfg.StartPosition)
		startIsCurrent = spec.Kind == change.StartCurrent
		if from, err = s.resolveStart(c, flavor); err != nil {
			return "", from, nil, err
		}
	}
	from.Flavor = flavor
	if from, err = s.completeGTIDs(ctx, c, flavor, from); err != nil {
		return "", from, nil, err
	}
	if s.history == nil {
		return flavor, from, nil, nil
	}
	tracker, err := newSchemaTracker(ctx, s.history, s.cfg.Filter, flavor, s.log)
	if err != nil {
		return "", from, nil, err
	}
	tracker.load = s.schemaLoader(flavor)
	snap, err := tracker.bootstrap(ctx, c, from)
	if err != nil {
		return "", from, nil, err
	}
	if !snap.IsZero() && startIsCurrent {
		// start exactly where the schema snapshot was taken
		from = snap
	}
	return flavor, from, tracker, nil
}

// completeGTIDs adds the GTID set at a file/pos start position, so that
// checkpoints are complete GTID positions from the first TxEnd on.
func (s *Source) completeGTIDs(ctx context.Context, c *client.Conn, flavor string, from change.Position) (change.Position, error) {
	if from.GTIDSet != "" || from.File == "" {
		return from, nil
	}
	if flavor == mysql.MariaDBFlavor {
		// The GTID state at a file/pos (all domains).
		g, err := queryString(c, fmt.Sprintf("SELECT BINLOG_GTID_POS('%s', %d)", escapeSQL(from.File), from.Pos))
		if err != nil {
			return from, fmt.Errorf("start position %s: %w", from, err)
		}
		from.GTIDSet = g
	}
	if flavor == mysql.MySQLFlavor && from.Pos > 4 {
		// A start in the middle of a file: the GTID set there is the file's
		// PREVIOUS_GTIDS plus the GTIDs before the position ("" without
		// GTIDs: file/pos).
		g, err := s.mysqlGTIDsAt(ctx, from)
		if err != nil {
			return from, err
		}
		from.GTIDSet = g
		s.log.Info("resolved the GTID set at the start position", "position", from.String())
	}
	return from, nil
}

// streamReconnecting streams from from until ctx ends or an error that
// reconnecting cannot fix; after any other error it tells h that the open
// transaction is abandoned (TxAborter) and reconnects with backoff from
// the last delivered TxEnd.
func (s *Source) streamReconnecting(ctx context.Context, flavor string, from change.Position, h Handler, tracker *schemaTracker) error {
	th := &trackingHandler{h: h, last: from}
	cache := make(map[string]*tableInfo)
	backoff := s.cfg.ReconnectMin
	for {
		startedAt := th.last
		err := s.stream(ctx, flavor, th.last, th, tracker, cache)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err := stopError(err); err != nil {
			return err
		}
		if th.open {
			th.open = false
			if ta, ok := h.(TxAborter); ok {
				if aerr := ta.TxAbort(ctx); aerr != nil {
					return aerr
				}
			}
		}
		if th.last != startedAt {
			backoff = s.cfg.ReconnectMin
		}
		s.log.Warn("binlog connection lost; reconnecting", "error", errorText(err), "resume", th.last.String(), "backoff", backoff)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, s.cfg.ReconnectMax)
		if tracker != nil {
			tracker.rewind(th.last)
		}
	}
}

// stopError returns the error Run stops with when a stream ended with err
// (a Handler error, a decoding error, a purged position, a server_id
// clash), or nil when reconnecting may help.
func stopError(err error) error {
	var he *handlerError
	if errors.As(err, &he) {
		return he.err
	}
	var de *decodeError
	if errors.As(err, &de) {
		return err
	}
	if errors.Is(err, ErrPositionPurged) || errors.Is(err, ErrServerIDClash) {
		return err
	}
	return nil
}

// schemaLoader reads one table's current schema from the server on a
// connection of its own (the tracker asks only when a table it does not
// know becomes captured, which is rare).
func (s *Source) schemaLoader(flavor string) func(ctx context.Context, db, table string) (*storedTable, change.Position, error) {
	return func(ctx context.Context, db, table string) (*storedTable, change.Position, error) {
		c, err := connect(ctx, s.cfg, s.tls)
		if err != nil {
			return nil, change.Position{}, err
		}
		defer c.Close()
		return readTableSchema(ctx, c, db, table, flavor, s.log)
	}
}

// ReloadSchema reads the current schema of db.table from the server and
// appends it to hist as a snapshot record at the server's current binlog
// position (`feedcdc schema reload`). When the stream meets the table next
// with a schema the history does not know (or at DDL on it before that
// position), it takes this one; item states and the checkpoint are not
// touched. The connector must not be running on the same history.
func (s *Source) ReloadSchema(ctx context.Context, hist SchemaHistory, db, table string) (SchemaRecord, error) {
	c, err := connect(ctx, s.cfg, s.tls)
	if err != nil {
		return SchemaRecord{}, err
	}
	defer c.Close()
	flavor, err := detectFlavor(c, s.cfg.Flavor)
	if err != nil {
		return SchemaRecord{}, err
	}
	st, at, err := readTableSchema(ctx, c, db, table, flavor, s.log)
	if err != nil {
		return SchemaRecord{}, err
	}
	if st == nil {
		return SchemaRecord{}, fmt.Errorf("table %s.%s does not exist on the server (names are case-sensitive on most servers); nothing to reload", db, table)
	}
	t, err := newSchemaTracker(ctx, hist, s.cfg.Filter, flavor, s.log)
	if err != nil {
		return SchemaRecord{}, err
	}
	if err := t.record(ctx, at, db, table, st, ""); err != nil {
		return SchemaRecord{}, err
	}
	return t.records[len(t.records)-1], nil
}

func (s *Source) resolveStart(c *client.Conn, flavor string) (change.Position, error) {
	spec, err := change.ParseStartPosition(s.cfg.StartPosition)
	if err != nil {
		return change.Position{}, fmt.Errorf("start position: %w", err)
	}
	switch spec.Kind {
	case change.StartEarliest:
		return earliestPosition(c, flavor)
	case change.StartGTID, change.StartFile:
		return spec.Position, nil
	}
	return currentPosition(c, flavor)
}

// stream runs one replication connection until it fails.
func (s *Source) stream(ctx context.Context, flavor string, from change.Position, th *trackingHandler, tracker *schemaTracker, cache map[string]*tableInfo) error {
	var schemas schemaSource
	if tracker != nil {
		schemas = tracker
	}
	d := newDecoder(flavor, s.cfg.ZeroDates, s.cfg.Filter, schemas, th, s.log)
	d.cache = cache
	d.requireNames = true
	d.file = from.File
	d.pos = from.Pos
	d.xa.last = from // what a TxEnd carries while an XA transaction prepared before any other end is pending

	gset, err := d.startGTIDs(flavor, from)
	if err != nil {
		return err
	}

	sh := &syncHandler{ctx: ctx, d: d}
	syncer := replication.NewBinlogSyncer(s.syncerConfig(flavor, d, sh))
	defer syncer.Close()

	var streamer *replication.BinlogStreamer
	if gset != nil {
		streamer, err = syncer.StartSyncGTID(gset)
	} else {
		streamer, err = syncer.StartSync(mysql.Position{Name: from.File, Pos: from.Pos})
	}
	if err != nil {
		err = s.classify(err, from)
		if d.obs != nil {
			d.obs.Disconnected(err)
		}
		return err
	}
	if d.obs != nil {
		d.obs.Connected()
	}
	_, err = streamer.GetEvent(ctx)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if sh.err != nil {
		err = sh.err
	} else {
		if err == nil {
			err = errors.New("binlog stream ended")
		}
		err = s.classify(err, from)
		err = parserError(err, d)
	}
	if d.obs != nil {
		d.obs.Disconnected(err)
	}
	return err
}

// startGTIDs sets up the decoder's GTID set at the start position and
// returns the set to stream from by GTID (nil: stream from file/pos).
func (d *decoder) startGTIDs(flavor string, from change.Position) (mysql.GTIDSet, error) {
	var gset mysql.GTIDSet
	if from.GTIDSet != "" || (flavor == mysql.MariaDBFlavor && from.File == "") {
		var err error
		gset, err = mysql.ParseGTIDSet(flavor, from.GTIDSet)
		if err != nil {
			return nil, &decodeError{fmt.Errorf("start position %s: bad %s GTID set: %w", from, flavor, err)}
		}
		d.gset = gset.Clone()
	} else if flavor == mysql.MariaDBFlavor {
		// MariaDB always has GTIDs: checkpoints carry them from the first TxEnd on.
		d.gset, _ = mysql.ParseMariadbGTIDSet("")
	} else if from.Pos <= 4 {
		d.gsetFromFile = true
	} else {
		// A MySQL file/pos in the middle of a file without a GTID set
		// (the file had none there): a set of only the GTIDs seen from
		// here on would be incomplete, so positions stay file/pos only.
		d.gsetUnknown = true
	}
	return gset, nil
}

// syncerConfig is go-mysql's configuration of a binlog connection that
// hands every event to sh, decoding rows with d.
func (s *Source) syncerConfig(flavor string, d *decoder, sh *syncHandler) replication.BinlogSyncerConfig {
	// go-mysql logs connection errors we handle (and report) ourselves: keep them at debug level.
	logger := slog.New(capLevel{s.log.Handler()}).With("component", "go-mysql")
	return replication.BinlogSyncerConfig{
		ServerID:                s.cfg.ServerID,
		Flavor:                  flavor,
		Host:                    s.cfg.Host,
		Port:                    uint16(s.cfg.Port),
		User:                    s.cfg.User,
		Password:                s.cfg.Password,
		TLSConfig:               s.tls,
		HeartbeatPeriod:         s.cfg.HeartbeatPeriod,
		ReadTimeout:             s.cfg.ReadTimeout,
		DisableRetrySync:        true,
		VerifyChecksum:          true,
		TimestampStringLocation: time.UTC,
		ParseTime:               true,
		Logger:                  logger,
		RowsEventDecodeFunc:     d.rowsDecodeFunc,
		FillZeroLogPos:          flavor == mysql.MariaDBFlavor,
		SynchronousEventHandler: sh,
		EventCacheCount:         1,
		DiscardGTIDSet:          true,
	}
}

// classify turns server errors into ErrPositionPurged / ErrServerIDClash.
func (s *Source) classify(err error, from change.Position) error {
	var me *mysql.MyError
	if errors.As(err, &me) {
		msg := strings.ToLower(me.Message)
		switch {
		case strings.Contains(msg, "same server_id") || strings.Contains(msg, "same server_uuid"): // MySQL 1236, MariaDB 4052
			return fmt.Errorf("%w (server_id %d): %s; give this connector a server_id no other replica uses (source.server_id)", ErrServerIDClash, s.cfg.ServerID, me.Message)
		case me.Code == mysql.ER_MASTER_FATAL_ERROR_READING_BINLOG:
			return &PositionPurgedError{Position: from, Server: me.Message}
		case me.Code == 1927 || me.Code == mysql.ER_QUERY_INTERRUPTED: // connection killed
			return fmt.Errorf("the source killed the replication connection (another replica with server_id %d may have connected): %w", s.cfg.ServerID, err)
		}
	}
	return err
}

// capLevel lowers every record to debug level (for go-mysql's own logging).
type capLevel struct{ h slog.Handler }

func (c capLevel) Enabled(ctx context.Context, _ slog.Level) bool {
	return c.h.Enabled(ctx, slog.LevelDebug)
}

func (c capLevel) Handle(ctx context.Context, r slog.Record) error {
	r.Level = slog.LevelDebug
	return c.h.Handle(ctx, r)
}

func (c capLevel) WithAttrs(attrs []slog.Attr) slog.Handler { return capLevel{c.h.WithAttrs(attrs)} }
func (c capLevel) WithGroup(name string) slog.Handler       { return capLevel{c.h.WithGroup(name)} }

// errorText is err's message without the stack traces go-mysql's error
// package embeds (a function line followed by a tab-indented file line).
func errorText(err error) string {
	lines := strings.Split(err.Error(), "\n")
	out := make([]string, 0, len(lines))
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if strings.HasPrefix(l, "\t") {
			continue
		}
		if i+1 < len(lines) && strings.HasPrefix(lines[i+1], "\t") {
			continue // a stack frame's function line
		}
		out = append(out, l)
	}
	return strings.Join(out, ": ")
}

// parserError turns failures of go-mysql's event parser (which runs before
// our handler: a corrupt event, a checksum mismatch, a panic it recovered)
// into decode errors naming the position, so that they stop the stream
// instead of being retried as network errors forever.
func parserError(err error, d *decoder) error {
	var ee *replication.EventError
	if errors.As(err, &ee) {
		return &decodeError{fmt.Errorf("binlog %s at position %d (%s): the event cannot be decoded: %s", d.file, d.pos, ee.Header.EventType, errorText(err))}
	}
	msg := err.Error()
	if strings.HasPrefix(msg, "panic ") || strings.Contains(msg, "failed checksum") {
		return &decodeError{fmt.Errorf("binlog %s at position %d: the event after it cannot be decoded: %s", d.file, d.pos, truncateString(errorText(err), 2000))}
	}
	return err
}

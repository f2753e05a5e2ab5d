package connector

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/robfig/cron/v3"

	"github.com/feedcdc/feedcdc/change"
	"github.com/feedcdc/feedcdc/config"
	"github.com/feedcdc/feedcdc/connector/binlog"
	"github.com/feedcdc/feedcdc/connector/raw"
	"github.com/feedcdc/feedcdc/connector/snapshot"
	"github.com/feedcdc/feedcdc/feeds"
	"github.com/feedcdc/feedcdc/ha"
	"github.com/feedcdc/feedcdc/sink"
	"github.com/feedcdc/feedcdc/sink/filesink"
	"github.com/feedcdc/feedcdc/sink/httpsink"
	"github.com/feedcdc/feedcdc/sink/kafkasink"
	"github.com/feedcdc/feedcdc/state"
	"github.com/feedcdc/feedcdc/telemetry"
)

// Connector is one configured feedcdc instance: its state store, source
// pool, feeds, sinks and pipeline.
type Connector struct {
	Config   *config.Config
	Logger   *slog.Logger
	Store    *state.Store
	SourceDB *sql.DB
	Registry *feeds.Registry
	Sinks    map[string]sink.Sink
	Router   *sink.Router
	Pipeline *Pipeline

	// sourceMu guards sourceCfg: start resolves source.tls.mode preferred
	// into it while API handlers (dashboard, status) read SourceConfig.
	sourceMu  sync.Mutex
	sourceCfg binlog.Config
	observer  Observer
	retry     *SourceRetry
	connected atomic.Bool
	lagDenied atomic.Bool
	closeOnce sync.Once
	// rawWake tells the raw snapshot runner that a request arrived.
	rawWake     chan struct{}
	rawWakeOnce sync.Once
	guard       func(sink.Sink) sink.Sink // OpenOptions.GuardSink
	ha          func() ha.Status          // OpenOptions.HA
}

// OpenOptions tune Open.
type OpenOptions struct {
	Logger *slog.Logger
	// Command names the operation holding the state file ("feedcdc run").
	Command string
	// Observer receives pipeline measurements (telemetry).
	Observer Observer
	// Tracing records spans per build/export batch and resync chunk.
	Tracing *telemetry.Tracing
	// NoSinks opens without sinks (dry runs, status).
	NoSinks bool
	// NewState replaces a damaged, empty or foreign state file with a new
	// one, moving the old file aside (feedcdc run --new-state).
	NewState bool
	// Version is feedcdc's version, source.version of raw envelopes.
	Version string
	// ReadOnly opens an existing state file read-only (status): nothing
	// is written to it, and it fails while another process holds it.
	ReadOnly bool
	// OnCommit receives every committed state transaction's writes (high
	// availability: the active instance replicates them; state.Options).
	OnCommit state.CommitHook
	// GuardSink, when set, wraps every sink a feed or raw stream routes to
	// (high availability: a fenced instance's sends fail before they start).
	GuardSink func(sink.Sink) sink.Sink
	// HA, when set, is this instance's high-availability status (role,
	// epoch, changelog lag, last takeover), shown by Status.
	HA func() ha.Status
}

// Open builds a connector from a validated configuration: it opens the
// state file (failing clearly if another process holds it), a connection
// pool on the source, the enabled feeds and the sinks. Nothing is read from
// the binlog until Run.
func Open(ctx context.Context, cfg *config.Config, oo OpenOptions) (*Connector, error) {
	log := oo.Logger
	if log == nil {
		log = slog.Default()
	}
	c := &Connector{Config: cfg, Logger: log, Sinks: map[string]sink.Sink{}, observer: oo.Observer, guard: oo.GuardSink, ha: oo.HA}
	if err := c.open(oo); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// open runs Open's steps in order: state, source pool, feed registry,
// sinks, binlog source, pipeline. On error the caller closes what was
// opened.
func (c *Connector) open(oo OpenOptions) error {
	var err error
	if c.Store, err = openState(c.Config, oo, c.Logger); err != nil {
		return err
	}
	if err := c.openSource(); err != nil {
		return err
	}
	if p := c.Config.Feeds.TablePrefix; p != "" && len(c.Config.EnabledFeeds()) > 0 {
		return fmt.Errorf("feeds.table_prefix %q: prefixed Magento tables are not supported yet; disable the feeds or use raw streams (raw.enabled) for now", p)
	}
	if names := c.Config.EnabledFeeds(); len(names) > 0 {
		c.Registry, err = feeds.NewRegistry(feeds.Config{DB: c.SourceDB, Database: c.Config.Feeds.Database, Feeds: names,
			ChunkSize: 1000, Logger: c.Logger})
		if err != nil {
			return err
		}
	}
	if !oo.NoSinks {
		if err := c.openSinks(); err != nil {
			return err
		}
	} else {
		c.Router, _ = sink.NewRouter(nil, nil)
	}
	if c.sourceCfg, err = c.binlogConfig(); err != nil {
		return err
	}
	c.Pipeline, err = NewPipeline(c.pipelineOptions(oo))
	return err
}

// openState opens the state store (read-only for oo.ReadOnly), creating
// its directory 0750 first.
func openState(cfg *config.Config, oo OpenOptions, log *slog.Logger) (*state.Store, error) {
	if dir := filepath.Dir(cfg.State.Path); dir != "" {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("state.path: create %s: %w", dir, err)
		}
	}
	cmd := oo.Command
	if cmd == "" {
		cmd = "feedcdc"
	}
	if oo.ReadOnly {
		return state.OpenReadOnly(cfg.State.Path, state.Options{Command: cmd, Logger: log})
	}
	return state.Open(cfg.State.Path, state.Options{Command: cmd, Logger: log, NewState: oo.NewState, OnCommit: oo.OnCommit})
}

// openSource opens the source pool (every statement with a deadline: the
// driver stops reading after query_timeout, and the server stops the
// statement itself) and the retry of its transient failures.
func (c *Connector) openSource() error {
	cfg := c.Config
	mc, err := MySQLConfig(cfg, cfg.Feeds.Database)
	if err != nil {
		return err
	}
	mc.ReadTimeout = cfg.Source.QueryTimeout.D()
	mc.WriteTimeout = cfg.Source.QueryTimeout.D()
	connector, err := mysql.NewConnector(mc)
	if err != nil {
		return fmt.Errorf("source: %w", err)
	}
	c.SourceDB = sql.OpenDB(&statementTimeout{Connector: connector, Timeout: cfg.Source.QueryTimeout.D(), Flavor: cfg.Source.Flavor})
	c.SourceDB.SetMaxOpenConns(cfg.Source.PoolSize)
	c.SourceDB.SetMaxIdleConns(cfg.Source.PoolSize)
	c.SourceDB.SetConnMaxIdleTime(5 * time.Minute)
	c.retry = &SourceRetry{Backoff: sink.Backoff{Initial: cfg.Source.Retry.Initial.D(), Max: cfg.Source.Retry.Max.D()},
		MaxElapsed: cfg.Source.Retry.MaxElapsed.D(), Logger: c.Logger}
	if ro, ok := c.observer.(interface{ SourceRetried(reason string) }); ok {
		c.retry.OnRetry = ro.SourceRetried
	}
	return nil
}

// pipelineOptions derives the pipeline's settings from the configuration:
// bounds, the visibility fence, per-feed policies (the shortest batch
// window of a feed wins over state.flush_interval) and the raw encoder.
func (c *Connector) pipelineOptions(oo OpenOptions) PipelineOptions {
	cfg := c.Config
	po := PipelineOptions{Logger: c.Logger, Store: c.Store, Registry: c.Registry, Sink: c.Router, Observer: oo.Observer, Tracing: oo.Tracing,
		MaxInflightBytes: int64(cfg.Backpressure.MaxInflightBytes), QueueLen: cfg.Backpressure.SinkQueueSize,
		BatchRecords: cfg.Backpressure.QueueSize, BatchKeys: cfg.State.FlushBatch, Window: cfg.State.FlushInterval.D(),
		BuildThreads: cfg.Feeds.BuildThreads, Policies: map[string]FeedPolicy{}, IdleCheckpoint: cfg.State.IdleCheckpointInterval.D(),
		SourceRetry: c.retry}
	if c.Registry != nil && cfg.Feeds.VisibilityFence {
		po.Fence = &VisibilityFence{DB: c.SourceDB, Logger: c.Logger, User: cfg.Source.User, Timeout: cfg.Feeds.VisibilityFenceTimeout.D()}
		if fo, ok := oo.Observer.(interface{ Fenced(time.Duration, bool) }); ok {
			po.Fence.OnWait = fo.Fenced
		}
	}
	for _, name := range cfg.EnabledFeeds() {
		f := cfg.Feeds.Feed(name)
		po.Policies[name] = FeedPolicy{Mode: f.Mode, MaxAttempts: f.MaxAttempts, BackoffBase: f.BackoffBase.D(), BackoffMax: f.BackoffMax.D(),
			Stores: f.Stores, Websites: f.Websites}
		po.BuildChunk = max(po.BuildChunk, f.BatchSize)
		if w := f.BatchWindow.D(); w > 0 && (po.Window == 0 || w < po.Window) {
			po.Window = w
		}
	}
	if cfg.Raw.Enabled {
		po.Raw = &raw.Encoder{ServerName: cfg.Name, Prefix: "{prefix}", TopicTemplate: strings.ReplaceAll(cfg.Raw.TopicTemplate, "{name}", cfg.Name), Tombstones: cfg.Raw.Tombstones,
			SchemaChanges: cfg.Raw.SchemaChanges, SchemaChangesTopic: strings.ReplaceAll(cfg.Raw.SchemaChangesTopic, "{name}", cfg.Name),
			HeartbeatTopic: strings.ReplaceAll(cfg.Raw.HeartbeatTopic, "{name}", cfg.Name),
			Version:        oo.Version, IncludeQuery: cfg.Raw.IncludeQuery, Transactions: cfg.Raw.TransactionMetadata, TransactionTopic: strings.ReplaceAll(cfg.Raw.TransactionTopic, "{name}", cfg.Name)}
		rf := rawFilter(cfg)
		po.RawTables = func(t *change.Table) bool { return rf.Match(t.DB, t.Name) }
		po.RawTopicName = c.rawTopicName
		if r := cfg.Raw; len(r.IncludeColumns)+len(r.ExcludeColumns)+len(r.MaskColumns)+len(r.KeyColumns) > 0 {
			po.Raw.Columns = &raw.Columns{Include: r.IncludeColumns, Exclude: r.ExcludeColumns, Masks: r.MaskColumns,
				Salt: []byte(r.HashSalt.Value()), Keys: r.KeyColumns}
		}
		po.Heartbeat = cfg.Raw.HeartbeatInterval.D()
		po.ServerTime = c.serverTime
	}
	return po
}

// serverTime reads the source server's clock (heartbeat records).
func (c *Connector) serverTime(ctx context.Context) (time.Time, error) {
	var ms int64
	if err := c.SourceDB.QueryRowContext(ctx, "SELECT CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED)").Scan(&ms); err != nil {
		return time.Time{}, fmt.Errorf("read the source server's time: %w", err)
	}
	return time.UnixMilli(ms), nil
}

// openSinks opens every configured sink, in name order, and routes the
// feeds to them. All or none: when a sink fails to open, or the routes are
// wrong, the sinks already opened are closed before it returns the error.
func (c *Connector) openSinks() error {
	return c.openSinksWith(c.openSink)
}

// openSinksWith is openSinks with the function that opens one sink.
func (c *Connector) openSinksWith(open func(name string, s *config.Sink) (sink.Sink, error)) (err error) {
	cfg := c.Config
	defer func() {
		if err == nil {
			return
		}
		for n, s := range c.Sinks {
			if cerr := s.Close(); cerr != nil {
				err = errors.Join(err, fmt.Errorf("close sink %s: %w", n, cerr))
			}
			delete(c.Sinks, n)
		}
	}()
	names := make([]string, 0, len(cfg.Sinks))
	for n := range cfg.Sinks {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		s, err := open(n, cfg.Sinks[n])
		if err != nil {
			return fmt.Errorf("sinks.%s: %w", n, err)
		}
		c.Sinks[n] = s
	}
	guarded := map[string]sink.Sink{}
	route := func(n string) sink.Sink {
		if c.guard == nil {
			return c.Sinks[n]
		}
		if guarded[n] == nil {
			guarded[n] = c.guard(c.Sinks[n])
		}
		return guarded[n]
	}
	routes := map[string][]sink.Sink{}
	for _, feed := range cfg.EnabledFeeds() {
		for _, n := range cfg.SinksFor(feed) {
			routes[feed] = append(routes[feed], route(n))
		}
	}
	if cfg.Raw.Enabled {
		for _, n := range cfg.RawSinks() {
			routes["raw"] = append(routes["raw"], route(n))
		}
	}
	r, err := sink.NewRouter(routes, nil)
	if err != nil {
		return err
	}
	c.Router = r
	return nil
}

func (c *Connector) openSink(name string, s *config.Sink) (sink.Sink, error) {
	cfg := c.Config
	switch s.Type {
	case "kafka":
		k := s.Kafka
		kc := kafkasink.Config{Name: name, Brokers: k.Brokers, ClientID: k.ClientID, TopicPrefix: k.TopicPrefix,
			TopicTemplate: k.TopicTemplate, ConnectorName: cfg.Name, Compression: k.Compression, Acks: k.Acks,
			BatchSize: k.BatchSize, BatchBytes: int64(k.BatchBytes), Linger: k.Linger.D(), WriteTimeout: k.WriteTimeout.D(),
			CreateTopics: k.CreateTopics, Partitions: k.Partitions, ReplicationFactor: k.ReplicationFactor, Compact: k.Compact,
			MaxMessageBytes: int64(k.MaxMessageBytes), TopicConfigs: k.TopicConfigs, Producer: k.Producer, TLS: kafkaTLS(k.TLS), Logger: c.Logger}
		if k.SASL.Mechanism != "" {
			kc.SASL = kafkasink.SASLConfig{Mechanism: k.SASL.Mechanism, User: k.SASL.User, Password: k.SASL.Password.Value()}
		}
		return kafkasink.New(kc)
	case "http":
		h := s.HTTP
		return httpsink.New(httpsink.Config{Name: name, BaseURL: h.BaseURL, Routes: h.Routes, DataSpace: h.DataSpace,
			Headers: h.Headers, APIKey: h.APIKey.Value(), APIKeyHeaders: h.APIKeyHeaders, Timeout: h.Timeout.D(), Gzip: h.Gzip,
			MaxItemsPerRequest: h.MaxItemsPerRequest, ErrorItemsField: h.ErrorItemsField, RequestIDHeader: h.RequestIDHeader,
			TLS: httpTLS(h.TLS), Logger: c.Logger})
	case "file":
		f := s.File
		return filesink.New(filesink.Config{Name: name, Dir: f.Dir, MaxSize: int64(f.MaxSize), MaxFiles: f.MaxFiles, Fsync: f.Fsync, Envelope: f.Envelope,
			TopicPrefix: cfg.Name, ConnectorName: cfg.Name, Logger: c.Logger})
	}
	return nil, fmt.Errorf("unknown sink type %q (kafka, http or file)", s.Type)
}

// rawFilter chooses the tables of raw streams (source.databases,
// include_tables and exclude_tables).
func rawFilter(cfg *config.Config) binlog.Filter {
	return binlog.SourceFilter(cfg.Source.Databases, cfg.Source.IncludeTables, cfg.Source.ExcludeTables)
}

// CapturedTables are the table patterns the binlog source decodes: the
// feeds' catalog tables, plus the configured tables when raw streams run.
func (c *Connector) CapturedTables() (include, exclude []string) {
	cfg := c.Config
	if c.Registry != nil {
		for _, t := range c.Registry.Tables() {
			include = append(include, cfg.Feeds.Database+"."+t)
		}
	}
	if cfg.Raw.Enabled {
		rf := rawFilter(cfg)
		inc, exc := rf.Include, rf.Exclude
		if len(inc) == 0 {
			inc = []string{"*.*"}
		}
		include = append(include, inc...)
		exclude = append(exclude, exc...)
	}
	return include, exclude
}

func (c *Connector) binlogConfig() (binlog.Config, error) {
	cfg := c.Config
	s := cfg.Source
	bc := binlog.Config{Host: s.Host, Port: s.Port, User: s.User, Password: s.Password.Value(), ServerID: cfg.EffectiveServerID(),
		HeartbeatPeriod: s.Heartbeat.D(), ReadTimeout: s.ReadTimeout.D(), ZeroDates: binlog.ZeroDates(s.ZeroDates),
		StartPosition: s.StartPosition, ReconnectMin: s.ReconnectMin.D(), ReconnectMax: s.ReconnectMax.D()}
	if s.Flavor != "auto" {
		bc.Flavor = s.Flavor
	}
	switch s.TLS.Mode {
	case "", "disabled", "preferred":
		// preferred is resolved in Run, once the server is asked whether it
		// offers TLS.
	default:
		// required, verify-ca and verify-identity with MySQL's semantics,
		// the same configuration the builders' pool uses.
		tc, err := sourceTLSConfig(&s)
		if err != nil {
			return bc, err
		}
		bc.TLS = binlog.TLSConfig{Enabled: true, Config: tc}
	}
	bc.Filter.Include, bc.Filter.Exclude = c.CapturedTables()
	return bc, nil
}

// rawTopicName fills in the {prefix} of a raw stream's topic as its sinks
// do (a Kafka sink's topic_prefix, the connector name for file sinks), for
// messages: "shop.magento.catalog_product_entity", or one name per sink
// when their prefixes differ.
func (c *Connector) rawTopicName(topic string) string {
	if !strings.Contains(topic, "{prefix}") {
		return topic
	}
	var names []string
	seen := map[string]bool{}
	for _, n := range c.Config.RawSinks() {
		prefix := c.Config.Name
		if s := c.Config.Sinks[n]; s != nil && s.Kafka != nil {
			prefix = s.Kafka.TopicPrefix
		}
		t := strings.ReplaceAll(topic, "{prefix}", prefix)
		if !seen[t] {
			seen[t] = true
			names = append(names, t+" (sink "+n+")")
		}
	}
	switch len(names) {
	case 0:
		return topic
	case 1:
		t, _, _ := strings.Cut(names[0], " (sink ")
		return t
	}
	return strings.Join(names, ", ")
}

// SourceConfig is the binlog source configuration derived from the config.
// It is safe to call while Run starts (which resolves source.tls.mode
// preferred into it).
func (c *Connector) SourceConfig() binlog.Config {
	c.sourceMu.Lock()
	defer c.sourceMu.Unlock()
	return c.sourceCfg
}

// SinkReadiness reports, per sink that tracks it, whether its last send
// reached the destination (for /readyz).
func (c *Connector) SinkReadiness() []telemetry.Readiness {
	var out []telemetry.Readiness
	names := make([]string, 0, len(c.Sinks))
	for n := range c.Sinks {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if hr, ok := c.Sinks[n].(sink.HealthReporter); ok {
			out = append(out, telemetry.Connected("sink "+n, hr.Health))
		}
	}
	return out
}

// FenceReadiness is not ready while the visibility fence holds a batch back
// because its newest transaction was not proven committed within
// feeds.visibility_fence_timeout (nil without a fence).
func (c *Connector) FenceReadiness() telemetry.Readiness {
	if c.Pipeline == nil || c.Pipeline.o.Fence == nil {
		return nil
	}
	f := c.Pipeline.o.Fence
	return func(context.Context) []string {
		if err := f.Unproven(); err != nil {
			return []string{"a batch is held back and retried: " + err.Error()}
		}
		return nil
	}
}

// Connected reports whether the binlog source is connected.
func (c *Connector) Connected() bool { return c.connected.Load() }

// SourceUnavailable reports whether SQL reads on the source are failing
// and being retried, and since when, how often and with what error.
func (c *Connector) SourceUnavailable() (SourceWait, bool) { return c.retry.Status() }

// SourceReadiness is not ready while SQL reads on the source are being
// retried (for /readyz).
func (c *Connector) SourceReadiness() telemetry.Readiness {
	return func(context.Context) []string {
		if w, waiting := c.retry.Status(); waiting {
			return []string{w.String()}
		}
		return nil
	}
}

// RunOptions tune Run.
type RunOptions struct {
	// OnStart is called once streaming starts, with the start position.
	OnStart func(pos change.Position, firstStart bool)
	// NoSchedule disables the scheduled jobs (tests).
	NoSchedule bool
}

// Run streams from the checkpoint (or, on a first start, from the current
// position after scheduling a full sync of every feed when
// resync.on_first_start is full, else from source.start_position), runs the
// scheduled jobs, and stops when ctx ends or something fails for good. A
// first start, and a purge recovered by source.on_purged_position: resync,
// store their position (and record their full syncs as started) before
// anything is read. On a clean stop the pipeline is flushed and the final
// checkpoint stored again with the current time.
func (c *Connector) Run(ctx context.Context, ro RunOptions) error {
	plan, err := c.start(ctx)
	if err != nil {
		return err
	}
	return c.serve(ctx, plan, ro)
}

// runPlan is what start decided: where the stream starts, whether this is
// the connector's first start, and the full syncs to run next to the
// stream.
type runPlan struct {
	pos        change.Position
	firstStart bool
	syncs      []ResyncOptions
}

// start prepares a run before anything is read: the Kafka topics, the
// feeds' tables, the source's TLS (mode preferred), the start position and
// the full syncs to run; a new start position is stored first.
func (c *Connector) start(ctx context.Context) (runPlan, error) {
	if kafka, ok := c.kafkaSinks(); ok {
		for _, k := range kafka {
			if err := k.EnsureTopics(ctx, c.Pipeline.FeedNames(), nil); err != nil {
				return runPlan{}, fmt.Errorf("sink %s: %w", k.Name(), err)
			}
		}
	}
	if c.Registry != nil {
		if err := c.retry.Do(ctx, "check the feeds' tables", c.Registry.Check); err != nil {
			return runPlan{}, err
		}
	}
	if c.Config.Source.TLS.Mode == "preferred" {
		tc, err := c.preferredTLS(ctx)
		if err != nil {
			return runPlan{}, err
		}
		c.sourceMu.Lock()
		c.sourceCfg.TLS = tc
		c.sourceMu.Unlock()
	}
	var start startPlan
	err := c.retry.Do(ctx, "decide the start position", func(ctx context.Context) (err error) {
		start, err = c.startPosition(ctx)
		return err
	})
	if err != nil {
		return runPlan{}, err
	}
	syncs, err := c.plannedSyncs(ctx, start)
	if err != nil {
		return runPlan{}, err
	}
	// One line says where streaming starts and why, so restarts can be
	// traced in the logs.
	how := "resuming from checkpoint "
	switch {
	case start.firstStart:
		how = "first start: streaming from "
	case start.store:
		how = "checkpoint purged: streaming from the current position "
	}
	mode := "file/pos"
	if start.pos.GTIDSet != "" {
		mode = "gtid"
	}
	c.Logger.Info(how+start.pos.String(), "operation", "start", "position", start.pos.String(), "mode", mode, "full_syncs", len(syncs))
	if start.firstStart && c.Config.Raw.Enabled && c.Config.Raw.Snapshot == "initial" {
		// Requested before the start position is stored: a stop before
		// that is another first start, which requests them again.
		if err := c.retry.Do(ctx, "request the initial raw snapshots", c.initialRawSnapshots); err != nil {
			return runPlan{}, err
		}
	}
	if start.store {
		if err := c.storeStart(ctx, start, syncs); err != nil {
			return runPlan{}, err
		}
	}
	return runPlan{pos: start.pos, firstStart: start.firstStart, syncs: syncs}, nil
}

// plannedSyncs lists the full syncs to run next to the stream: every feed
// on a first start (resync.on_first_start: full) and after a purge
// recovered by resync, and any full sync an earlier run left unfinished
// (resumed after its last completed chunk).
func (c *Connector) plannedSyncs(ctx context.Context, start startPlan) ([]ResyncOptions, error) {
	if c.Registry == nil {
		return nil, nil
	}
	var syncs []ResyncOptions
	for _, f := range c.Pipeline.FeedNames() {
		// A new start position always syncs from scratch: the stream
		// starts from a new position, so an older sync's completed
		// chunks may have missed changes since.
		switch p, ok, err := c.Store.Progress(ctx, f); {
		case err != nil:
			return nil, err
		case start.syncAll:
			syncs = append(syncs, ResyncOptions{Feed: f, Position: start.pos})
		case ok && !p.Finished() && !p.DryRun:
			c.Logger.Info("resuming an unfinished full sync", "feed", f, "operation", OpFullSync, "after_key", p.LastKey)
			syncs = append(syncs, ResyncOptions{Feed: f, Continue: true})
		}
	}
	return syncs, nil
}

// storeStart stores a new start position, with every full sync it needs
// recorded as started, before anything is read or sent: a stop at any
// later moment resumes from here (and resumes those syncs), and is never a
// second first start.
func (c *Connector) storeStart(ctx context.Context, start startPlan, syncs []ResyncOptions) error {
	if err := c.Store.Update(ctx, func(tx *state.Tx) error {
		if start.syncAll {
			for _, ro := range syncs {
				if err := tx.PutProgress(state.Progress{Feed: ro.Feed, Position: start.pos, StartedAt: time.Now()}); err != nil {
					return err
				}
			}
		}
		if err := tx.SetCheckpoint(start.pos, time.Now()); err != nil {
			return err
		}
		return tx.RecordPositionChange(start.record)
	}); err != nil {
		return fmt.Errorf("store the start position: %w", err)
	}
	if start.record.Gap {
		if g, ok := c.observer.(GapObserver); ok {
			g.PositionGap()
		}
	}
	return nil
}

// serve runs the exporter, the binlog stream, the planned full syncs and
// the scheduled jobs until ctx ends or one of them fails for good, then
// stops them in order. The source, the full syncs and the scheduled jobs
// stop with ctx; the exporter outlives them so that a clean stop can export
// what was read and write the final checkpoint.
func (c *Connector) serve(ctx context.Context, plan runPlan, ro RunOptions) error {
	src, err := binlog.New(c.SourceConfig(), c.Logger, schemaHistory{c.Store})
	if err != nil {
		return err
	}
	if c.Registry != nil {
		// Before the stream: a composite product deleted before the link
		// index is loaded costs a rebuild of every product.
		c.restoreLinks(ctx)
		if err := c.retry.Do(ctx, "load the link index", c.Registry.LoadLinks); err != nil {
			return err
		}
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	pipeCtx, pipeCancel := context.WithCancel(context.WithoutCancel(ctx))
	defer pipeCancel()
	errc := make(chan error, 4)
	pipeDone := make(chan struct{})
	go func() {
		defer close(pipeDone)
		if err := c.Pipeline.Run(pipeCtx); err != nil && pipeCtx.Err() == nil {
			errc <- fmt.Errorf("export: %w", err)
		}
	}()
	var wg sync.WaitGroup
	c.Pipeline.snap.setStart(plan.pos)
	wg.Go(func() {
		if err := c.stream(runCtx, src, plan.pos); err != nil {
			errc <- err
		}
	})
	if c.Config.Raw.Enabled {
		wg.Go(func() { c.runRawSnapshots(runCtx) })
	}
	if ro.OnStart != nil {
		ro.OnStart(plan.pos, plan.firstStart)
	}
	if len(plan.syncs) > 0 {
		wg.Go(func() {
			if err := c.runSyncs(runCtx, plan.syncs); err != nil {
				errc <- err
			}
		})
	}
	var sched *cron.Cron
	if !ro.NoSchedule {
		if sched, err = c.schedule(runCtx); err != nil {
			return err
		}
		sched.Start()
	}
	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	cancel()
	if sched != nil {
		<-sched.Stop().Done()
	}
	wg.Wait()
	c.stop(pipeCtx, runErr == nil)
	pipeCancel()
	<-pipeDone
	if c.Registry != nil {
		c.saveLinks(context.WithoutCancel(ctx))
	}
	if cp, _, ok, _ := c.Store.Checkpoint(context.Background()); ok {
		c.Logger.Info("stopped", "checkpoint", cp.String())
	}
	return runErr
}

// stream runs the binlog source from pos until ctx ends; its error, when
// it stops on its own, says how to recover from a purged position.
func (c *Connector) stream(ctx context.Context, src *binlog.Source, pos change.Position) error {
	c.connected.Store(true)
	defer c.connected.Store(false)
	// Once streaming, the source reconnects by itself; what it cannot
	// retry is its start (connect, start position, schema snapshot),
	// which fails before any change was delivered, so starting again
	// from pos repeats nothing.
	err := c.retry.DoLong(ctx, "start the binlog stream", func(ctx context.Context, started func()) error {
		return src.Run(ctx, pos, startedHandler{c.Pipeline, started})
	})
	if err == nil || ctx.Err() != nil {
		return nil
	}
	if errors.Is(err, binlog.ErrPositionPurged) {
		if c.Config.Source.OnPurgedPosition == OnPurgedResync {
			err = fmt.Errorf("%w\nsource.on_purged_position is resync: start feedcdc run again and it recovers at start", err)
		} else {
			reason := err.Error()
			var pe *binlog.PositionPurgedError
			if errors.As(err, &pe) {
				reason = "the server says: " + pe.Server
			}
			err = c.purgedError(pos, reason)
		}
	}
	return fmt.Errorf("binlog: %w", err)
}

// runSyncs runs the planned full syncs one after the other until ctx ends.
func (c *Connector) runSyncs(ctx context.Context, syncs []ResyncOptions) error {
	// The feeds' full syncs run concurrently: their builds overlap, and
	// their exports share the one ordered exporter. The first failure
	// stops the others.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	for _, ro := range syncs {
		wg.Go(func() {
			if _, err := c.Resync(ctx, ro); err != nil && ctx.Err() == nil {
				cancel(fmt.Errorf("full sync of %s: %w", ro.Feed, err))
			}
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// stop ends a run: after a clean stop (the source no longer delivers) it
// exports what was read and writes the final checkpoint with this moment's
// time, also when the source was idle. Deferred keys of a big transaction
// stay in the state for the next start.
func (c *Connector) stop(ctx context.Context, clean bool) {
	if !clean {
		return
	}
	fctx, fcancel := context.WithTimeout(ctx, 30*time.Second)
	defer fcancel()
	if err := c.Pipeline.FlushQueued(fctx); err != nil {
		c.Logger.Warn("final flush incomplete; the next start resumes from the last checkpoint", "error", err)
	} else if err := c.Pipeline.TouchCheckpoint(fctx); err != nil {
		c.Logger.Warn("final checkpoint not stored again; the next start resumes from the last one", "error", err)
	}
}

func (c *Connector) kafkaSinks() ([]*kafkasink.Sink, bool) {
	var out []*kafkasink.Sink
	for _, s := range c.Sinks {
		if k, ok := s.(*kafkasink.Sink); ok {
			out = append(out, k)
		}
	}
	return out, len(out) > 0
}

// schedule registers the scheduled jobs: per feed the retry of failed
// items and, in legacy mode, the outbox flush; and the daily cleanup. A
// job whose previous run has not finished skips its tick
// (cron.SkipIfStillRunning), so a long sink outage never piles up runs; a
// retry tick also skips while a retry of the feed started elsewhere (the
// dashboard, feedcdc retry in this process) runs.
func (c *Connector) schedule(ctx context.Context) (*cron.Cron, error) {
	sched := cron.New(cron.WithChain(cron.SkipIfStillRunning(cronLogger{c.Logger})))
	cfg := c.Config
	for _, name := range c.Pipeline.FeedNames() {
		f := cfg.Feeds.Feed(name)
		feed := name
		rs, err := f.RetrySchedule.Parse()
		if err != nil {
			return nil, fmt.Errorf("feeds.%s.retry_schedule: %w", feed, err)
		}
		sched.Schedule(rs, cron.FuncJob(func() {
			_, err := c.Pipeline.RetryFailed(ctx, feed, time.Now())
			if errors.Is(err, ErrRetryRunning) {
				c.Logger.Debug("retry of failed items skipped: one is running", "feed", feed, "operation", OpRetryFailed)
				return
			}
			if err != nil && ctx.Err() == nil {
				c.Logger.Error("retry failed items", "feed", feed, "operation", OpRetryFailed, "error", err)
			}
		}))
		if err := c.scheduleVerify(ctx, sched, feed); err != nil {
			return nil, err
		}
		if f.Mode == ModeLegacy {
			ls, err := f.LegacySchedule.Parse()
			if err != nil {
				return nil, fmt.Errorf("feeds.%s.legacy_schedule: %w", feed, err)
			}
			sched.Schedule(ls, cron.FuncJob(func() {
				if _, err := c.Pipeline.FlushOutbox(ctx, feed, f.BatchSize); err != nil && ctx.Err() == nil {
					c.Logger.Error("legacy flush", "feed", feed, "operation", OpLegacyFlush, "error", err)
				}
			}))
		}
	}
	if _, err := sched.AddFunc("0 2 * * *", func() {
		n, err := c.Store.Cleanup(ctx, time.Now(), cfg.State.Retention.D())
		if err != nil {
			c.Logger.Error("cleanup", "operation", OpCleanup, "error", err)
			return
		}
		c.Logger.Info("complete", "operation", OpCleanup, "removed", n)
	}); err != nil {
		return nil, err
	}
	return sched, nil
}

// Resync runs a full sync of one feed, with the configured resync defaults
// for the options left zero. The exporter must be running (Run, or
// RunExporter for a standalone resync).
func (c *Connector) Resync(ctx context.Context, ro ResyncOptions) (ResyncResult, error) {
	rc := c.Config.Resync
	if ro.BatchSize <= 0 {
		ro.BatchSize = rc.BatchSize
	}
	if ro.ThreadCount <= 0 {
		ro.ThreadCount = rc.ThreadCount
	}
	if ro.Throttle == nil && (rc.RowsPerSecond > 0 || rc.MaxReplicaLag > 0) {
		ro.Throttle = &snapshot.Throttle{RowsPerSecond: float64(rc.RowsPerSecond), MaxLag: rc.MaxReplicaLag.D(),
			Lag:    c.replicaLag,
			Logger: c.Logger, Name: ro.Feed}
	}
	if ro.Position.IsZero() {
		if pos, _, ok, err := c.Store.Checkpoint(ctx); err == nil && ok {
			ro.Position = pos
		}
	}
	// Progress (callback, metrics, status) has a total from the start: an
	// estimate until the sync's own scan has counted the keys.
	ro.Total = c.estimateTotal(ctx, ro)
	obs, _ := c.observer.(ResyncObserver)
	if obs != nil && !ro.Continue {
		obs.ResyncProgress(ro.Feed, 0, ro.Total)
	}
	userProgress := ro.Progress
	ro.Progress = func(p state.Progress) {
		if obs != nil {
			obs.ResyncProgress(ro.Feed, p.Processed, p.Total)
		}
		if userProgress != nil {
			userProgress(p)
		}
	}
	var res ResyncResult
	err := c.retry.Do(ctx, "full sync of "+ro.Feed, func(ctx context.Context) (err error) {
		res, err = c.Pipeline.Resync(ctx, ro)
		// Another attempt continues after the last completed chunk (its
		// progress is stored with its items) and forgets nothing again.
		ro.CleanupFeed = false
		if !ro.DryRun && len(ro.ByIDs) == 0 {
			ro.Continue = true
		}
		return err
	})
	return res, err
}

// replicaLag reads the source's replication lag for the resync throttle.
// Without the privilege to read it (MariaDB: SLAVE MONITOR; MySQL:
// REPLICATION CLIENT) the throttle by lag is disabled with one warning
// rather than failing the sync.
func (c *Connector) replicaLag(ctx context.Context) (time.Duration, error) {
	if c.lagDenied.Load() {
		return 0, nil
	}
	lag, err := snapshot.ReplicaLag(ctx, c.SourceDB)
	var me *mysql.MySQLError
	if errors.As(err, &me) && (me.Number == 1227 || me.Number == 1142) {
		c.lagDenied.Store(true)
		c.Logger.Warn("cannot read the source's replication lag, so resync.max_replica_lag and verify.max_replica_lag are not enforced: GRANT SLAVE MONITOR (MariaDB) or REPLICATION CLIENT (MySQL) ON *.* TO the connector user", "error", err)
		return 0, nil
	}
	return lag, err
}

// RunExporter runs only the exporter (no binlog streaming), for standalone
// resync and retry commands. It returns a stop function that waits for it.
func (c *Connector) RunExporter(ctx context.Context) (stop func() error) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.Pipeline.Run(ctx) }()
	return func() error {
		cancel()
		err := <-done
		if errors.Is(err, context.Canceled) {
			return nil
		}
		return err
	}
}

// Close releases everything Open acquired.
func (c *Connector) Close() error {
	var errs []error
	c.closeOnce.Do(func() {
		if c.Router != nil {
			errs = append(errs, c.Router.Close())
		}
		if c.SourceDB != nil {
			errs = append(errs, c.SourceDB.Close())
		}
		if c.Store != nil {
			errs = append(errs, c.Store.Close())
		}
	})
	return errors.Join(errs...)
}

// startedHandler is the pipeline as the binlog source's Handler, telling
// the stream's retry when the source connected (binlog.Observer).
type startedHandler struct {
	*Pipeline
	started func()
}

// Connected implements binlog.Observer.
func (h startedHandler) Connected() {
	h.started()
	h.Pipeline.Connected()
}

// schemaHistory adapts the state store to the binlog source's schema
// history.
type schemaHistory struct{ s *state.Store }

func (h schemaHistory) AppendSchema(ctx context.Context, r binlog.SchemaRecord) error {
	return h.s.AppendSchema(ctx, state.SchemaRecord(r))
}

func (h schemaHistory) SchemaRecords(ctx context.Context) ([]binlog.SchemaRecord, error) {
	recs, err := h.s.SchemaRecords(ctx)
	out := make([]binlog.SchemaRecord, len(recs))
	for i := range recs {
		out[i] = binlog.SchemaRecord(recs[i])
	}
	return out, err
}

// cronLogger routes robfig/cron's log lines (skipped ticks, panics) to slog.
type cronLogger struct{ l *slog.Logger }

func (c cronLogger) Info(msg string, kv ...any) {
	// "skip" is the tick of a job still running: worth a debug line.
	c.l.Debug("scheduler: "+msg, kv...)
}

func (c cronLogger) Error(err error, msg string, kv ...any) {
	c.l.Error("scheduler: "+msg, append(kv, "error", err)...)
}

// Package check is feedcdc's preflight for a binlog source: it verifies, on
// the server and on the local machine, everything the connector needs, and
// for each problem says exactly what to change.
//
// `feedcdc check` runs Run (the source checks of Preflight, then the sinks
// and the state file); `feedcdc run` runs Preflight before it reads or
// writes anything and refuses to start on any FAIL (Hard), with the same
// messages and fixes, and logs the WARNs. What one accepts, the other
// accepts.
//
// Invariants:
//   - Checks only read: they run as the connector's own user and never
//     change a server variable, a grant or a file (the state-file check
//     creates and removes a probe file beside the state file).
//   - Every Result has a status (PASS, WARN, FAIL, SKIP); every WARN and
//     FAIL has a Fix with the exact SQL or config change that resolves it.
//     SKIP means "not checked because an earlier check failed" (the
//     binlog-only checks when the binlog is off), never "fine".
//   - A check that cannot be run (no connection) is a FAIL, never a PASS.
//     Preflight tells a source that could not be asked (network, timeout:
//     ErrUnreachable, transient) from a definite answer of the server
//     (variables, grants, access denied), so that `run` waits for the
//     former and stops on the latter.
//   - A table of a raw change stream passes when the server gives it a
//     key: its primary key or, without one, the NOT NULL unique key the
//     server promotes to primary key (information_schema COLUMN_KEY='PRI';
//     the binlog's table map carries the same key with
//     binlog_row_metadata=FULL, which is what the binlog source keys
//     changes by), or when raw.key_columns names its key columns.
package check

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	mysqldriver "github.com/go-sql-driver/mysql"

	"github.com/feedcdc/feedcdc/change"
)

// Status of one check.
type Status string

const (
	Pass Status = "PASS"
	Warn Status = "WARN"
	Fail Status = "FAIL"
	// Skip is a check that was not run because an earlier one failed
	// (the binlog-only checks when the binlog is off).
	Skip Status = "SKIP"
)

// Result of one check. Its JSON form is the stable schema of
// `feedcdc check --json` (docs/operations.md): every field is always
// present; fix is "" for PASS and SKIP.
type Result struct {
	Name    string `json:"name"`
	Status  Status `json:"status"`
	Message string `json:"message"`
	Fix     string `json:"fix"`
}

// Pinger is a sink (or anything else) that can prove it is reachable and
// authenticated.
type Pinger interface {
	Name() string
	Ping(ctx context.Context) error
}

// Target describes what to check.
type Target struct {
	// DB is a pool connected as the connector's user; nil when the
	// connection could not be opened (ConnectError says why).
	DB           *sql.DB
	ConnectError error
	Addr         string // host:port, for messages
	User         string
	// ServerID is the connector's replica server_id.
	ServerID uint32
	// Tables are the captured tables as "db.table" patterns (`*` globs);
	// Exclude removes matches. Tables matched by a KeyedTables pattern must
	// also have a primary key (raw change streams are keyed by it; feeds
	// read their tables by column values and need none).
	Tables      []string
	Exclude     []string
	KeyedTables []string
	// KeyColumnTables are the table patterns of raw.key_columns: their
	// records are keyed by the configured columns, so they need no key of
	// their own.
	KeyColumnTables []string
	// FenceTable ("db.table") is a table the feeds' visibility fence takes
	// shared row locks in; empty: the fence is off or there are no feeds.
	FenceTable string
	// StatePath is the state file; it must be writable.
	StatePath string
	// Checkpoint is the stored checkpoint, if any, and when it was written.
	Checkpoint   *change.Position
	CheckpointAt time.Time
	// MinRetention is the binlog retention below which a WARN is given
	// (default 7 days).
	MinRetention time.Duration
	// MaxReplicaLag is resync.max_replica_lag: when set, the resync
	// throttle reads SHOW SLAVE STATUS, which needs SLAVE MONITOR on
	// MariaDB (REPLICATION CLIENT on MySQL); without it the throttle is off
	// (a WARN).
	MaxReplicaLag time.Duration
	Sinks         []Pinger
	Now           func() time.Time
}

// Failed reports whether any result is a FAIL.
func Failed(rs []Result) bool {
	for _, r := range rs {
		if r.Status == Fail {
			return true
		}
	}
	return false
}

type server struct {
	db      *sql.DB
	flavor  string // mysql or mariadb
	version string
	major   int
	minor   int
	vars    map[string]string
}

// ErrUnreachable marks a preflight that could not ask the server at all
// (connection refused, timeout, a dropped connection): a transient state,
// unlike a definite answer such as a variable, a missing grant or "access
// denied".
var ErrUnreachable = errors.New("the source could not be reached")

// Error is the FAILs of a preflight: `feedcdc run` refuses to start with
// them. Its text lists every failure with its fix, in the words of
// `feedcdc check`.
type Error struct {
	Failures []Result
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "preflight: the source is not ready for feedcdc (%d failed; `feedcdc check` reports the same):", len(e.Failures))
	for _, r := range e.Failures {
		fmt.Fprintf(&b, "\n  FAIL %s: %s\n       fix: %s", r.Name, r.Message, r.Fix)
	}
	return b.String()
}

// Hard returns an *Error holding the FAILs of rs, or nil when none failed.
func Hard(rs []Result) error {
	var fails []Result
	for _, r := range rs {
		if r.Status == Fail {
			fails = append(fails, r)
		}
	}
	if len(fails) == 0 {
		return nil
	}
	return &Error{Failures: fails}
}

// Run runs every check (Preflight, then the sinks and the state file) and
// returns their results in a fixed order.
func Run(ctx context.Context, t Target) []Result {
	rs, _ := Preflight(ctx, t)
	add := func(r Result) { rs = append(rs, r) }
	for _, p := range t.Sinks {
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := p.Ping(pctx)
		cancel()
		if err != nil {
			add(Result{Name: "sink " + p.Name(), Status: Fail, Message: err.Error(),
				Fix: fmt.Sprintf("check sinks.%s in config.yaml: address, TLS and credentials", p.Name())})
		} else {
			add(Result{Name: "sink " + p.Name(), Status: Pass, Message: "reachable and authenticated"})
		}
	}
	if t.StatePath != "" {
		add(checkStateWritable(t.StatePath))
	}
	return rs
}

// Preflight runs the checks of the source, the same for `feedcdc check`
// and `feedcdc run`, in a fixed order. When the server could not be asked
// at all, the results hold a FAIL "connection" and the error wraps
// ErrUnreachable (run retries; check reports it); otherwise the error is
// nil and Hard(results) says whether run may start.
func Preflight(ctx context.Context, t Target) ([]Result, error) {
	if t.Now == nil {
		t.Now = time.Now
	}
	if t.MinRetention == 0 {
		t.MinRetention = 7 * 24 * time.Hour
	}
	var rs []Result
	add := func(r Result) { rs = append(rs, r) }

	srv, err := connect(ctx, t)
	if err != nil {
		add(Result{Name: "connection", Status: Fail, Message: err.Error(),
			Fix: fmt.Sprintf("check source.host/port/user/password in config.yaml; the server must accept TCP from this machine for user %q with the grants of the README (CREATE USER ...; GRANT REPLICATION SLAVE, REPLICATION CLIENT, SELECT ON *.* TO ...)", t.User)})
		if errors.Is(err, ErrUnreachable) {
			return rs, err
		}
		return rs, nil
	}
	add(Result{Name: "connection", Status: Pass, Message: fmt.Sprintf("connected to %s as %s", t.Addr, t.User)})
	add(srv.checkVersion())
	binlogOn := srv.checkBinlogOn()
	add(binlogOn)
	// Without a binlog the binlog's settings say nothing: report them as
	// not checked rather than as passed.
	binlogOnly := func(name string, r func() Result) {
		if binlogOn.Status == Fail {
			add(Result{Name: name, Status: Skip, Message: "not checked: the binary log is off"})
			return
		}
		add(r())
	}
	binlogOnly("binlog format", func() Result {
		return srv.checkVar("binlog_format", "ROW", Fail, "binlog format",
			"SET GLOBAL binlog_format = 'ROW'; and binlog_format = ROW in the server's my.cnf (existing sessions keep their format until they reconnect)")
	})
	binlogOnly("binlog row image", func() Result {
		return srv.checkVar("binlog_row_image", "FULL", Fail, "binlog row image",
			"SET GLOBAL binlog_row_image = 'FULL'; and binlog_row_image = FULL in my.cnf")
	})
	binlogOnly("binlog row metadata", srv.checkRowMetadata)
	binlogOnly("binlog row value options", srv.checkRowValueOptions)
	binlogOnly("GTID", srv.checkGTID)
	add(srv.checkServerID(ctx, t.ServerID))
	add(srv.checkGrants(ctx, t))
	if t.FenceTable != "" {
		add(srv.checkFence(ctx, t.FenceTable, t.User))
	}
	binlogOnly("binlog retention", func() Result { return srv.checkRetention(ctx, t) })
	add(srv.checkTables(ctx, t))
	if err := ctx.Err(); err != nil {
		return rs, fmt.Errorf("%w: %w", ErrUnreachable, err)
	}
	// A connection lost during the checks makes their failures network
	// errors, not the server's answers.
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := t.DB.PingContext(pctx); err != nil {
		if err := transient(err); errors.Is(err, ErrUnreachable) {
			return rs, fmt.Errorf("connection lost during the preflight: %w", err)
		}
	}
	return rs, nil
}

// transient wraps err with ErrUnreachable unless the server answered it
// (a MySQL error number): a definite answer is not retried.
func transient(err error) error {
	var me *mysqldriver.MySQLError
	if errors.As(err, &me) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrUnreachable, err)
}

func connect(ctx context.Context, t Target) (*server, error) {
	if t.ConnectError != nil {
		return nil, t.ConnectError
	}
	if t.DB == nil {
		return nil, errors.New("no connection to the source")
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := t.DB.PingContext(cctx); err != nil {
		return nil, transient(fmt.Errorf("cannot connect to %s as %s: %w", t.Addr, t.User, err))
	}
	s := &server{db: t.DB, vars: map[string]string{}}
	if err := t.DB.QueryRowContext(cctx, "SELECT VERSION()").Scan(&s.version); err != nil {
		return nil, transient(fmt.Errorf("SELECT VERSION(): %w", err))
	}
	s.flavor = "mysql"
	if strings.Contains(strings.ToLower(s.version), "mariadb") {
		s.flavor = "mariadb"
	}
	if m := regexp.MustCompile(`^(\d+)\.(\d+)`).FindStringSubmatch(s.version); m != nil {
		s.major, _ = strconv.Atoi(m[1])
		s.minor, _ = strconv.Atoi(m[2])
	}
	rows, err := t.DB.QueryContext(cctx, `SHOW GLOBAL VARIABLES WHERE Variable_name IN
		('log_bin','binlog_format','binlog_row_image','binlog_row_metadata','binlog_row_value_options',
		 'gtid_mode','enforce_gtid_consistency','gtid_strict_mode','server_id','expire_logs_days',
		 'binlog_expire_logs_seconds','binlog_legacy_event_pos')`)
	if err != nil {
		return nil, transient(fmt.Errorf("SHOW GLOBAL VARIABLES: %w", err))
	}
	defer rows.Close()
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return nil, transient(fmt.Errorf("SHOW GLOBAL VARIABLES: %w", err))
		}
		s.vars[strings.ToLower(k)] = v
	}
	if err := rows.Err(); err != nil {
		return nil, transient(fmt.Errorf("SHOW GLOBAL VARIABLES: %w", err))
	}
	return s, nil
}

func (s *server) name() string {
	if s.flavor == "mariadb" {
		return "MariaDB"
	}
	return "MySQL"
}

func (s *server) checkVersion() Result {
	r := Result{Name: "server version", Status: Pass, Message: fmt.Sprintf("%s %s", s.name(), s.version)}
	switch {
	case s.flavor == "mysql" && s.major < 8:
		r.Status, r.Fix = Fail, "upgrade to MySQL 8.0 or later: feedcdc needs row metadata and GTIDs of MySQL 8"
	case s.flavor == "mariadb" && (s.major < 10 || (s.major == 10 && s.minor < 6)):
		r.Status, r.Fix = Warn, "MariaDB 10.6 or later is supported; older versions may work but are not tested"
	}
	return r
}

func (s *server) checkBinlogOn() Result {
	v := strings.ToUpper(s.vars["log_bin"])
	if v == "ON" || v == "1" {
		return Result{Name: "binary log", Status: Pass, Message: "log_bin=ON"}
	}
	return Result{Name: "binary log", Status: Fail, Message: fmt.Sprintf("log_bin=%s: the server writes no binlog, so there is nothing to read", orNone(v)),
		Fix: "add log-bin=binlog (and server-id, binlog_format=ROW, binlog_row_image=FULL) under [mysqld] in my.cnf and restart the server; on a replica also log_slave_updates=ON (MySQL: log_replica_updates=ON)"}
}

func orNone(v string) string {
	if v == "" {
		return "(unset)"
	}
	return v
}

func (s *server) checkVar(name, want string, sev Status, label, fix string) Result {
	v := s.vars[name]
	if strings.EqualFold(v, want) {
		return Result{Name: label, Status: Pass, Message: fmt.Sprintf("%s=%s", name, v)}
	}
	return Result{Name: label, Status: sev, Message: fmt.Sprintf("%s=%s; feedcdc needs %s", name, orNone(v), want), Fix: fix}
}

func (s *server) checkRowMetadata() Result {
	v, ok := s.vars["binlog_row_metadata"]
	if !ok {
		return Result{Name: "binlog row metadata", Status: Warn, Message: "binlog_row_metadata is not supported by this server: column names come from information_schema and DDL history",
			Fix: "upgrade to MySQL 8.0.1+ or MariaDB 10.5+ and SET GLOBAL binlog_row_metadata = 'FULL'"}
	}
	if strings.EqualFold(v, "FULL") {
		return Result{Name: "binlog row metadata", Status: Pass, Message: "binlog_row_metadata=FULL (column names, signedness and ENUM/SET strings in the binlog)"}
	}
	return Result{Name: "binlog row metadata", Status: Warn,
		Message: fmt.Sprintf("binlog_row_metadata=%s: feedcdc falls back to a schema history built from information_schema and DDL", v),
		Fix:     "SET GLOBAL binlog_row_metadata = 'FULL'; and binlog_row_metadata = FULL in my.cnf"}
}

func (s *server) checkRowValueOptions() Result {
	v, ok := s.vars["binlog_row_value_options"]
	if !ok || v == "" {
		return Result{Name: "binlog row value options", Status: Pass, Message: "no partial JSON updates"}
	}
	if strings.Contains(strings.ToUpper(v), "PARTIAL_JSON") {
		return Result{Name: "binlog row value options", Status: Fail,
			Message: "binlog_row_value_options=PARTIAL_JSON: JSON updates are logged as diffs that cannot always be applied",
			Fix:     "SET GLOBAL binlog_row_value_options = ''; and remove binlog_row_value_options from my.cnf"}
	}
	return Result{Name: "binlog row value options", Status: Pass, Message: "binlog_row_value_options=" + v}
}

func (s *server) checkGTID() Result {
	if s.flavor == "mariadb" {
		r := Result{Name: "GTID", Status: Pass, Message: "MariaDB GTIDs (resume by GTID works across replicas)"}
		if s.vars["gtid_strict_mode"] != "ON" && s.vars["gtid_strict_mode"] != "1" {
			r.Message += "; gtid_strict_mode=OFF"
		}
		return r
	}
	if strings.EqualFold(s.vars["gtid_mode"], "ON") {
		return Result{Name: "GTID", Status: Pass, Message: "gtid_mode=ON"}
	}
	return Result{Name: "GTID", Status: Warn, Message: fmt.Sprintf("gtid_mode=%s: feedcdc resumes by file and position, which does not survive a switch to another replica", orNone(s.vars["gtid_mode"])),
		Fix: "enable GTIDs online: SET GLOBAL enforce_gtid_consistency=ON; SET GLOBAL gtid_mode=OFF_PERMISSIVE; SET GLOBAL gtid_mode=ON_PERMISSIVE; SET GLOBAL gtid_mode=ON; (and in my.cnf)"}
}

func (s *server) checkServerID(ctx context.Context, id uint32) Result {
	own, _ := strconv.ParseUint(s.vars["server_id"], 10, 32)
	if id == 0 {
		return Result{Name: "server_id", Status: Fail, Message: "source.server_id is 0: a replica needs a non-zero id",
			Fix: "set source.server_id in config.yaml to a number unique among all servers and replicas of this topology"}
	}
	if uint64(id) == own {
		return Result{Name: "server_id", Status: Fail, Message: fmt.Sprintf("source.server_id=%d is the source server's own server_id", id),
			Fix: "set source.server_id in config.yaml to a number no server or replica of this topology uses"}
	}
	rows, err := s.db.QueryContext(ctx, "SHOW SLAVE HOSTS")
	if err != nil && s.flavor == "mysql" {
		rows, err = s.db.QueryContext(ctx, "SHOW REPLICAS")
	}
	if err != nil {
		// Listing replicas needs REPLICATION MASTER ADMIN on MariaDB, a
		// privilege the connector needs for nothing else; a least-privilege
		// user is not asked to get it. The binlog source reports a clash
		// when it happens (ErrServerIDClash).
		return Result{Name: "server_id", Status: Pass, Message: fmt.Sprintf("server_id=%d differs from the source's (%d); not compared with other replicas' ids (listing them needs REPLICATION MASTER ADMIN on MariaDB, which feedcdc does not otherwise need; an administrator can run SHOW SLAVE HOSTS)", id, own)}
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			break
		}
		for i, c := range cols {
			if strings.EqualFold(c, "Server_id") && vals[i].String == strconv.FormatUint(uint64(id), 10) {
				return Result{Name: "server_id", Status: Fail, Message: fmt.Sprintf("server_id=%d is already used by a replica connected to the source", id),
					Fix: "set source.server_id in config.yaml to an id no other replica uses; two replicas with one id disconnect each other in a loop"}
			}
		}
	}
	return Result{Name: "server_id", Status: Pass, Message: fmt.Sprintf("server_id=%d is unique (source is %d)", id, own)}
}

// account is the connector's account as the server knows it
// ('user'@'host', from CURRENT_USER()), for the GRANT statements of fixes.
func (s *server) account(ctx context.Context) string {
	var cu string
	if err := s.db.QueryRowContext(ctx, "SELECT CURRENT_USER()").Scan(&cu); err != nil || !strings.Contains(cu, "@") {
		return "<connector user>"
	}
	i := strings.LastIndex(cu, "@")
	return fmt.Sprintf("'%s'@'%s'", cu[:i], cu[i+1:])
}

// checkGrants checks every privilege `feedcdc run` uses: REPLICATION SLAVE
// (the binlog dump), REPLICATION CLIENT (MariaDB 10.5+: BINLOG MONITOR;
// SHOW MASTER STATUS, SHOW BINARY LOGS) and SELECT (builds, full syncs) are
// FAILs when missing; with resync.max_replica_lag set, the lag throttle's
// SHOW SLAVE STATUS (MariaDB: SLAVE MONITOR; MySQL: REPLICATION CLIENT) is
// tried as run tries it, and a denial is a WARN (run turns the throttle
// off and warns).
func (s *server) checkGrants(ctx context.Context, t Target) Result {
	rows, err := s.db.QueryContext(ctx, "SHOW GRANTS")
	if err != nil {
		return Result{Name: "grants", Status: Fail, Message: "SHOW GRANTS: " + err.Error(), Fix: "connect as the connector's own user"}
	}
	defer rows.Close()
	var all []string
	for rows.Next() {
		var g string
		if err := rows.Scan(&g); err == nil {
			all = append(all, strings.ToUpper(g))
		}
	}
	// The global privileges, each a whole name: "REPLICATION SLAVE ADMIN"
	// is not "REPLICATION SLAVE".
	global := map[string]bool{}
	for _, g := range all {
		privs, rest, ok := strings.Cut(strings.TrimPrefix(g, "GRANT "), " ON ")
		if !ok || !strings.HasPrefix(rest, "*.* ") {
			continue
		}
		for _, p := range strings.Split(privs, ",") {
			global[strings.TrimSpace(p)] = true
		}
	}
	has := func(names ...string) bool {
		if global["ALL PRIVILEGES"] || global["ALL"] {
			return true
		}
		for _, p := range names {
			if global[p] {
				return true
			}
		}
		return false
	}
	var missing, granted []string
	if has("REPLICATION SLAVE", "REPLICATION REPLICA") {
		granted = append(granted, "REPLICATION SLAVE")
	} else {
		missing = append(missing, "REPLICATION SLAVE")
	}
	// MariaDB 10.5+ shows REPLICATION CLIENT as BINLOG MONITOR.
	if has("REPLICATION CLIENT", "BINLOG MONITOR") {
		granted = append(granted, "REPLICATION CLIENT")
	} else {
		missing = append(missing, "REPLICATION CLIENT")
	}
	selectOK := has("SELECT")
	if !selectOK {
		for _, g := range all {
			if strings.HasPrefix(g, "GRANT SELECT") || strings.Contains(g, ", SELECT") || strings.Contains(g, "GRANT ALL") {
				selectOK = true // per-database SELECT; tables are checked below
			}
		}
	}
	if selectOK {
		granted = append(granted, "SELECT")
	} else {
		missing = append(missing, "SELECT")
	}
	monitor := "REPLICATION CLIENT"
	if s.flavor == "mariadb" {
		monitor = "SLAVE MONITOR"
	}
	var lagErr error
	if t.MaxReplicaLag > 0 {
		lagErr = s.probeReplicaStatus(ctx)
		if lagErr == nil && !slices.Contains(granted, monitor) {
			granted = append(granted, monitor)
		}
	}
	who := s.account(ctx)
	if len(missing) > 0 {
		grant := missing
		if lagErr != nil && !slices.Contains(grant, monitor) {
			grant = append(slices.Clone(grant), monitor)
		}
		return Result{Name: "grants", Status: Fail, Message: "missing privileges: " + strings.Join(missing, ", "),
			Fix: fmt.Sprintf("GRANT %s ON *.* TO %s; (SELECT may instead be granted on the captured databases only)", strings.Join(grant, ", "), who)}
	}
	if lagErr != nil {
		return Result{Name: "grants", Status: Warn,
			Message: fmt.Sprintf("%s granted, but not %s: resync.max_replica_lag (%s) is not enforced, full syncs do not pause while the replica lags (SHOW SLAVE STATUS: %v)", strings.Join(granted, ", "), monitor, t.MaxReplicaLag, lagErr),
			Fix:     fmt.Sprintf("GRANT %s ON *.* TO %s; (or set resync.max_replica_lag: 0s to turn the lag throttle off)", monitor, who)}
	}
	return Result{Name: "grants", Status: Pass, Message: strings.Join(granted, ", ") + " granted"}
}

// probeReplicaStatus runs the resync throttle's lag query and returns the
// server's denial (1227, 1142), or nil when the query is allowed.
func (s *server) probeReplicaStatus(ctx context.Context) error {
	rows, err := s.db.QueryContext(ctx, "SHOW SLAVE STATUS")
	if err != nil {
		rows, err = s.db.QueryContext(ctx, "SHOW REPLICA STATUS")
	}
	if err == nil {
		return rows.Close()
	}
	var me *mysqldriver.MySQLError
	if errors.As(err, &me) && (me.Number == 1227 || me.Number == 1142) {
		return err
	}
	return nil // not a denial: the throttle reports it when it reads the lag
}

// checkFence tries the visibility fence's shared-lock read on table without
// reading a row (LIMIT 0): MySQL 8.0.22+ allows it only with LOCK TABLES,
// UPDATE or DELETE besides SELECT.
func (s *server) checkFence(ctx context.Context, table, user string) Result {
	db, name, _ := strings.Cut(table, ".")
	q := "SELECT 1 FROM `" + strings.ReplaceAll(db, "`", "``") + "`.`" + strings.ReplaceAll(name, "`", "``") + "` LIMIT 0 LOCK IN SHARE MODE"
	rows, err := s.db.QueryContext(ctx, q)
	if err == nil {
		err = rows.Close()
	}
	var me *mysqldriver.MySQLError
	switch {
	case err == nil:
		return Result{Name: "visibility fence", Status: Pass, Message: "shared row locks allowed on " + db + " (feeds.visibility_fence)"}
	case errors.As(err, &me) && me.Number == 1146:
		return Result{Name: "visibility fence", Status: Warn, Message: "not tested: " + table + " does not exist (see the feed tables check)"}
	case errors.As(err, &me) && (me.Number == 1142 || me.Number == 1044 || me.Number == 1227):
		return Result{Name: "visibility fence", Status: Warn,
			Message: "the connector's user may not take shared row locks, so each batch waits a fixed 100 ms for its transactions to become visible: " + err.Error(),
			Fix:     fmt.Sprintf("GRANT LOCK TABLES ON `%s`.* TO '%s'; (or set feeds.visibility_fence: false)", db, user)}
	default:
		return Result{Name: "visibility fence", Status: Warn, Message: "could not test shared row locks: " + err.Error()}
	}
}

func (s *server) retention() (time.Duration, bool) {
	if v, ok := s.vars["binlog_expire_logs_seconds"]; ok {
		if n, err := strconv.ParseFloat(v, 64); err == nil && n > 0 {
			return time.Duration(n * float64(time.Second)), true
		}
	}
	if v, ok := s.vars["expire_logs_days"]; ok {
		if n, err := strconv.ParseFloat(v, 64); err == nil && n > 0 {
			return time.Duration(n * 24 * float64(time.Hour)), true
		}
	}
	return 0, false
}

// binlogFiles lists the files of SHOW BINARY LOGS.
func (s *server) binlogFiles(ctx context.Context) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, "SHOW BINARY LOGS")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var files []string
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		files = append(files, vals[0].String)
	}
	return files, rows.Err()
}

func (s *server) checkRetention(ctx context.Context, t Target) Result {
	r := Result{Name: "binlog retention"}
	ret, expires := s.retention()
	if !expires {
		r.Status, r.Message = Pass, "binlogs never expire automatically (purge them only after feedcdc has read them)"
	} else if ret < t.MinRetention {
		r.Status = Warn
		r.Message = fmt.Sprintf("binlogs are kept %s, less than %s: a connector stopped longer than that must run a full sync", ret, t.MinRetention)
		r.Fix = fmt.Sprintf("SET GLOBAL binlog_expire_logs_seconds = %d; (and in my.cnf)", int64(t.MinRetention.Seconds()))
	} else {
		r.Status, r.Message = Pass, fmt.Sprintf("binlogs are kept %s", ret)
	}
	if t.Checkpoint == nil || t.Checkpoint.File == "" {
		return r
	}
	files, err := s.binlogFiles(ctx)
	if err != nil {
		return Result{Name: "binlog retention", Status: Fail, Message: "SHOW BINARY LOGS: " + err.Error(),
			Fix: "GRANT REPLICATION CLIENT ON *.* TO <connector user>;"}
	}
	sort.Strings(files)
	if len(files) > 0 && t.Checkpoint.File < files[0] {
		return Result{Name: "binlog retention", Status: Fail,
			Message: fmt.Sprintf("the stored checkpoint %s is in a binlog the server has purged (oldest is %s)", t.Checkpoint, files[0]),
			Fix:     "run `feedcdc resync` for every feed (a full sync from the current position), or set source.start_position: current and remove the checkpoint with `feedcdc resync --cleanup-feed`"}
	}
	if expires && !t.CheckpointAt.IsZero() {
		age := t.Now().Sub(t.CheckpointAt)
		if age > ret/2 {
			r.Status = Warn
			r.Message += fmt.Sprintf("; the checkpoint is %s old, more than half the retention", age.Round(time.Second))
			r.Fix = "start feedcdc soon, or raise binlog_expire_logs_seconds"
		} else {
			r.Message += fmt.Sprintf("; checkpoint %s old", age.Round(time.Second))
		}
	}
	return r
}

var systemDB = map[string]bool{"mysql": true, "sys": true, "information_schema": true, "performance_schema": true}

// globToLike turns a `*` glob into a SQL LIKE pattern.
func globToLike(g string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`, `*`, `%`)
	return r.Replace(g)
}

func matchGlob(pattern, s string) bool {
	ok, _ := filepath.Match(strings.ToLower(pattern), strings.ToLower(s))
	return ok
}

// tableKey is the key the server gives a table: its primary key, or the
// NOT NULL unique key it promotes to primary key when there is none.
type tableKey struct {
	index string
	cols  []string
}

func (k tableKey) String() string { return fmt.Sprintf("%s (%s)", k.index, strings.Join(k.cols, ", ")) }

// tableKeys reads the key of every table matched by the LIKE patterns: the
// unique index whose every column the server marks COLUMN_KEY='PRI' (the
// primary key, or the promoted NOT NULL unique key).
func (s *server) tableKeys(ctx context.Context, dbLike, nameLike string) (map[string]tableKey, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT s.TABLE_SCHEMA, s.TABLE_NAME, s.INDEX_NAME, s.COLUMN_NAME, c.COLUMN_KEY, c.IS_NULLABLE
		FROM information_schema.STATISTICS s JOIN information_schema.COLUMNS c
		  ON c.TABLE_SCHEMA = s.TABLE_SCHEMA AND c.TABLE_NAME = s.TABLE_NAME AND c.COLUMN_NAME = s.COLUMN_NAME
		WHERE s.NON_UNIQUE = 0 AND s.TABLE_SCHEMA LIKE ? AND s.TABLE_NAME LIKE ?
		ORDER BY s.TABLE_SCHEMA, s.TABLE_NAME, s.INDEX_NAME, s.SEQ_IN_INDEX`, dbLike, nameLike)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	type idx struct {
		tableKey
		ok bool
	}
	per := map[string][]*idx{}
	for rows.Next() {
		var db, name, index, col, colKey, nullable string
		if err := rows.Scan(&db, &name, &index, &col, &colKey, &nullable); err != nil {
			return nil, err
		}
		k := db + "." + name
		l := per[k]
		if len(l) == 0 || l[len(l)-1].index != index {
			l = append(l, &idx{tableKey: tableKey{index: index}, ok: true})
			per[k] = l
		}
		x := l[len(l)-1]
		x.cols = append(x.cols, col)
		x.ok = x.ok && colKey == "PRI" && nullable != "YES"
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	out := map[string]tableKey{}
	for k, l := range per {
		for _, x := range l {
			if x.index == "PRIMARY" {
				out[k] = x.tableKey
				break
			}
			if _, done := out[k]; x.ok && !done {
				out[k] = x.tableKey
			}
		}
	}
	return out, nil
}

func (s *server) checkTables(ctx context.Context, t Target) Result {
	if len(t.Tables) == 0 {
		return Result{Name: "captured tables", Status: Warn, Message: "no tables are captured", Fix: "enable a feed (feeds.<feed>.enabled) or raw streams with source.include_tables (e.g. [\"shop.*\"])"}
	}
	type tbl struct {
		db, name string
		key      *tableKey
	}
	found := map[string]*tbl{}
	for _, pat := range t.Tables {
		db, name, ok := strings.Cut(pat, ".")
		if !ok {
			return Result{Name: "captured tables", Status: Fail, Message: fmt.Sprintf("pattern %q is not db.table", pat), Fix: "write table patterns as db.table, e.g. shop.catalog_product_*"}
		}
		rows, err := s.db.QueryContext(ctx, `SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES
			WHERE TABLE_TYPE='BASE TABLE' AND TABLE_SCHEMA LIKE ? AND TABLE_NAME LIKE ?`, globToLike(db), globToLike(name))
		if err != nil {
			return Result{Name: "captured tables", Status: Fail, Message: "information_schema: " + err.Error(), Fix: "GRANT SELECT ON the captured databases TO <connector user>;"}
		}
		keys, kerr := s.tableKeys(ctx, globToLike(db), globToLike(name))
		if kerr != nil {
			rows.Close()
			return Result{Name: "captured tables", Status: Fail, Message: "information_schema keys: " + kerr.Error(), Fix: "GRANT SELECT ON the captured databases TO <connector user>;"}
		}
		n := 0
		for rows.Next() {
			var x tbl
			if err := rows.Scan(&x.db, &x.name); err == nil && !systemDB[strings.ToLower(x.db)] {
				if k, ok := keys[x.db+"."+x.name]; ok {
					x.key = &k
				}
				excluded := false
				for _, ex := range t.Exclude {
					if matchGlob(ex, x.db+"."+x.name) {
						excluded = true
					}
				}
				if !excluded {
					found[x.db+"."+x.name] = &x
					n++
				}
			}
		}
		rows.Close()
		if n == 0 {
			return Result{Name: "captured tables", Status: Fail, Message: fmt.Sprintf("no table matches %q (or the connector user cannot see it)", pat),
				Fix: fmt.Sprintf("create the table, fix the pattern in config.yaml, or GRANT SELECT ON %s.* TO <connector user>;", db)}
		}
	}
	var nokey, byUnique, byColumns []string
	for k, x := range found {
		keyed, configured := false, false
		for _, p := range t.KeyedTables {
			if matchGlob(p, k) {
				keyed = true
			}
		}
		for _, p := range t.KeyColumnTables {
			if matchGlob(p, k) {
				configured = true
			}
		}
		switch {
		case !keyed:
		case configured:
			byColumns = append(byColumns, k)
		case x.key == nil:
			nokey = append(nokey, k)
		case x.key.index != "PRIMARY":
			byUnique = append(byUnique, k+" by "+x.key.String())
		}
	}
	sort.Strings(nokey)
	sort.Strings(byUnique)
	sort.Strings(byColumns)
	if len(nokey) > 0 {
		return Result{Name: "captured tables", Status: Fail,
			Message: fmt.Sprintf("%d tables captured for raw change streams have neither a primary key nor a NOT NULL unique key, so their changes cannot be keyed: %s", len(nokey), strings.Join(nokey, ", ")),
			Fix:     fmt.Sprintf("exclude them from the raw streams (source.exclude_tables: [%q]), give them a key (ALTER TABLE %s ADD PRIMARY KEY (...)), or name key columns (raw.key_columns: {%q: \"col1,col2\"})", nokey[0], nokey[0], nokey[0])}
	}
	msg := fmt.Sprintf("%d tables exist", len(found))
	if len(t.KeyedTables) > 0 {
		msg += "; every table of a raw change stream has a key"
	}
	if len(byColumns) > 0 {
		msg += fmt.Sprintf("; keyed by raw.key_columns: %s", strings.Join(byColumns, ", "))
	}
	if len(byUnique) > 0 {
		msg += fmt.Sprintf("; keyed by a NOT NULL unique key (no primary key): %s", strings.Join(byUnique, ", "))
		if md := s.vars["binlog_row_metadata"]; !strings.EqualFold(md, "FULL") {
			// Without FULL row metadata the binlog's table map does not say
			// the key, and the schema history knows primary keys only.
			return Result{Name: "captured tables", Status: Warn,
				Message: msg + fmt.Sprintf("; with binlog_row_metadata=%s the binlog does not carry that key, so these tables' raw changes are sent without a key", orNone(md)),
				Fix:     "SET GLOBAL binlog_row_metadata = 'FULL'; and binlog_row_metadata = FULL in my.cnf (or give the tables a primary key)"}
		}
	}
	return Result{Name: "captured tables", Status: Pass, Message: msg}
}

func checkStateWritable(path string) Result {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Result{Name: "state file", Status: Fail, Message: fmt.Sprintf("cannot create %s: %v", dir, err), Fix: "set state.path to a writable location"}
	}
	f, err := os.CreateTemp(dir, ".feedcdc-probe-*")
	if err != nil {
		return Result{Name: "state file", Status: Fail, Message: fmt.Sprintf("%s is not writable: %v", dir, err), Fix: "set state.path to a writable location, or fix the folder's permissions"}
	}
	name := f.Name()
	f.Close()
	os.Remove(name)
	if st, err := os.Stat(path); err == nil && st.Mode().Perm()&0o200 == 0 {
		return Result{Name: "state file", Status: Fail, Message: path + " is read-only", Fix: "chmod u+w " + path}
	}
	return Result{Name: "state file", Status: Pass, Message: path + " is writable"}
}

package check

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/feedcdc/feedcdc/change"
	"github.com/feedcdc/feedcdc/test/mysqltest"
	_ "github.com/go-sql-driver/mysql"
)

var srv *mysqltest.Server

func TestMain(m *testing.M) { os.Exit(mysqltest.Main(m, mysqltest.Options{}, &srv)) }

func open(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// shopTables creates a database with one table with and one without a PK.
func shopTables(t *testing.T, s *mysqltest.Server) string {
	t.Helper()
	db := s.NewDatabase(t, "check")
	s.Exec(t, db, "CREATE TABLE catalog_product_entity (entity_id INT UNSIGNED PRIMARY KEY, sku VARCHAR(64))",
		"CREATE TABLE nopk_log (msg TEXT)")
	return db
}

func target(t *testing.T, s *mysqltest.Server, db string) Target {
	return Target{DB: open(t, s.CDCDSN("")), Addr: s.Addr(), User: s.CDCUser, ServerID: 4242,
		Tables: []string{db + ".catalog_product_entity"}, KeyedTables: []string{db + ".*"}, FenceTable: db + ".catalog_product_entity",
		StatePath: filepath.Join(t.TempDir(), "state.db")}
}

func byName(rs []Result) map[string]Result {
	m := map[string]Result{}
	for _, r := range rs {
		m[r.Name] = r
	}
	return m
}

func report(rs []Result) string {
	var b strings.Builder
	for _, r := range rs {
		fmt.Fprintf(&b, "%s %-26s %s | fix: %s\n", r.Status, r.Name, r.Message, r.Fix)
	}
	return b.String()
}

func expect(t *testing.T, rs []Result, name string, st Status, fixHas string) {
	t.Helper()
	r, ok := byName(rs)[name]
	if !ok {
		t.Fatalf("no %q check in:\n%s", name, report(rs))
	}
	if r.Status != st {
		t.Fatalf("%s: status %s, want %s:\n%s", name, r.Status, st, report(rs))
	}
	if (st == Warn || st == Fail) && !strings.Contains(r.Fix, fixHas) {
		t.Fatalf("%s: fix %q does not contain %q", name, r.Fix, fixHas)
	}
}

func TestCorrectServerPassesEverything(t *testing.T) {
	db := shopTables(t, srv)
	// With the privilege to list replicas, the server_id check is complete.
	if srv.Flavor == "mariadb" {
		for _, h := range []string{"127.0.0.1", "localhost", "%"} {
			srv.Exec(t, "", fmt.Sprintf("GRANT REPLICATION MASTER ADMIN ON *.* TO '%s'@'%s'", srv.CDCUser, h))
		}
	}
	tg := target(t, srv, db)
	pos := change.Position{File: "binlog.000001", Pos: 4}
	tg.Checkpoint, tg.CheckpointAt = &pos, time.Now().Add(-time.Minute)
	tg.Sinks = []Pinger{okSink{}}
	rs := Run(context.Background(), tg)
	for _, r := range rs {
		if r.Status != Pass {
			t.Errorf("%s: %s %s (fix: %s)", r.Name, r.Status, r.Message, r.Fix)
		}
	}
	if r := byName(rs)["visibility fence"]; r.Status != Pass {
		t.Errorf("visibility fence: %+v, want PASS for the least-privilege user on %s", r, srv.Flavor)
	}
	if Failed(rs) || len(rs) < 14 {
		t.Fatalf("%d results:\n%s", len(rs), report(rs))
	}
}

type okSink struct{}

func (okSink) Name() string                   { return "kafka" }
func (okSink) Ping(ctx context.Context) error { return nil }

type downSink struct{}

func (downSink) Name() string { return "http" }
func (downSink) Ping(ctx context.Context) error {
	return errors.New("dial tcp 127.0.0.1:1: connection refused")
}

func TestWronglyConfiguredServers(t *testing.T) {
	cases := []struct {
		name  string
		args  []string
		check string
		want  Status
		fix   string
	}{
		{"binlog off", []string{"--skip-log-bin"}, "binary log", Fail, "log-bin"},
		{"statement format", []string{"--binlog-format=STATEMENT"}, "binlog format", Fail, "SET GLOBAL binlog_format = 'ROW'"},
		{"minimal row image", []string{"--binlog-row-image=MINIMAL"}, "binlog row image", Fail, "SET GLOBAL binlog_row_image = 'FULL'"},
		{"minimal row metadata", []string{"--binlog-row-metadata=MINIMAL"}, "binlog row metadata", Warn, "binlog_row_metadata = 'FULL'"},
		{"short retention", []string{"--binlog-expire-logs-seconds=3600"}, "binlog retention", Warn, "binlog_expire_logs_seconds"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			s, err := mysqltest.Start(ctx, mysqltest.Options{Args: c.args})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Stop()
			db := shopTables(t, s)
			rs := Run(ctx, target(t, s, db))
			expect(t, rs, c.check, c.want, c.fix)
			if c.want == Fail && !Failed(rs) {
				t.Fatal("Failed() is false")
			}
			if c.want == Fail {
				var he *Error
				if err := Hard(rs); !errors.As(err, &he) || !strings.Contains(err.Error(), byName(rs)[c.check].Fix) {
					t.Fatalf("Hard: %v", err)
				}
			}
			if c.name == "minimal row metadata" {
				// Without the key in the table map, a table keyed by a
				// NOT NULL unique key gets raw records without a key.
				s.Exec(t, db, "CREATE TABLE uk (sku VARCHAR(32) NOT NULL, UNIQUE KEY sku_u (sku))")
				tg := target(t, s, db)
				tg.Tables = []string{db + ".catalog_product_entity", db + ".uk"}
				rs := Run(ctx, tg)
				expect(t, rs, "captured tables", Warn, "binlog_row_metadata = 'FULL'")
				if m := byName(rs)["captured tables"].Message; !strings.Contains(m, db+".uk by sku_u (sku)") {
					t.Fatalf("captured tables: %s", m)
				}
			}
			if c.name == "binlog off" {
				// The binlog's settings are not checked without a binlog:
				// SKIP, never PASS.
				for _, n := range []string{"binlog format", "binlog row image", "binlog row metadata", "binlog row value options", "GTID", "binlog retention"} {
					expect(t, rs, n, Skip, "")
				}
			}
		})
	}
}

func TestMissingGrants(t *testing.T) {
	db := shopTables(t, srv)
	admin := srv.Admin(t, "")
	for _, q := range []string{
		"CREATE USER 'weak'@'%' IDENTIFIED BY 'weakpw'",
		"GRANT SELECT ON *.* TO 'weak'@'%'",
		"CREATE USER 'weak'@'localhost' IDENTIFIED BY 'weakpw'",
		"GRANT SELECT ON *.* TO 'weak'@'localhost'",
	} {
		if _, err := admin.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { admin.Exec("DROP USER 'weak'@'%'"); admin.Exec("DROP USER 'weak'@'localhost'") })
	tg := target(t, srv, db)
	tg.DB = open(t, fmt.Sprintf("weak:weakpw@tcp(%s)/", srv.Addr()))
	tg.User = "weak"
	rs := Run(context.Background(), tg)
	expect(t, rs, "grants", Fail, "GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.*")

	if srv.Flavor == "mariadb" {
		// REPLICATION SLAVE ADMIN is another privilege than REPLICATION
		// SLAVE (it does not allow a binlog dump).
		for _, h := range []string{"%", "localhost"} {
			if _, err := admin.Exec(fmt.Sprintf("GRANT REPLICATION SLAVE ADMIN, BINLOG MONITOR ON *.* TO 'weak'@'%s'", h)); err != nil {
				t.Fatal(err)
			}
		}
		rs = Run(context.Background(), tg)
		expect(t, rs, "grants", Fail, "GRANT REPLICATION SLAVE ON *.*")
		if m := byName(rs)["grants"].Message; m != "missing privileges: REPLICATION SLAVE" {
			t.Fatalf("grants: %s", m)
		}
	}
}

func TestDuplicateServerID(t *testing.T) {
	db := shopTables(t, srv)
	tg := target(t, srv, db)
	tg.ServerID = srv.ServerID
	expect(t, Run(context.Background(), tg), "server_id", Fail, "source.server_id")

	// A replica connected with the id we want to use.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	primary, err := mysqltest.Start(ctx, mysqltest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer primary.Stop()
	replica, err := mysqltest.StartReplica(ctx, primary, mysqltest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer replica.Stop()
	pdb := shopTables(t, primary)
	tg = target(t, primary, pdb)
	tg.DB = open(t, primary.AdminDSN("")) // an administrator can list replicas
	tg.User = primary.AdminUser
	tg.ServerID = replica.ServerID
	deadline := time.Now().Add(30 * time.Second)
	for {
		rs := Run(ctx, tg)
		if byName(rs)["server_id"].Status == Fail {
			expect(t, rs, "server_id", Fail, "no other replica uses")
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica %d never reported as a clash:\n%s", replica.ServerID, report(rs))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestTablesWithoutPrimaryKeyOrMissing(t *testing.T) {
	db := shopTables(t, srv)
	tg := target(t, srv, db)
	tg.Tables = []string{db + ".*"}
	expect(t, Run(context.Background(), tg), "captured tables", Fail, "ADD PRIMARY KEY")
	// raw.key_columns supplies the key of a table without one.
	tg.KeyColumnTables = []string{db + ".nopk_*"}
	rs := Run(context.Background(), tg)
	expect(t, rs, "captured tables", Pass, "")
	if m := byName(rs)["captured tables"].Message; !strings.Contains(m, "keyed by raw.key_columns: "+db+".nopk_log") {
		t.Fatalf("the message does not name the table keyed by key_columns: %s", m)
	}
	tg.KeyColumnTables = nil
	tg.Exclude = []string{db + ".nopk_*"}
	expect(t, Run(context.Background(), tg), "captured tables", Pass, "")
	tg.Tables = []string{db + ".no_such_table"}
	expect(t, Run(context.Background(), tg), "captured tables", Fail, "fix the pattern")
}

// TestTableKeyedByANotNullUniqueKey: without a primary key the server keys a
// table by its NOT NULL unique key (the binlog's table map says so with
// binlog_row_metadata=FULL, and the binlog source keys raw changes by it),
// so check accepts it and names the key; a unique key over a nullable
// column keys nothing.
func TestTableKeyedByANotNullUniqueKey(t *testing.T) {
	db := srv.NewDatabase(t, "check")
	srv.Exec(t, db, "CREATE TABLE catalog_product_entity (entity_id INT UNSIGNED PRIMARY KEY, sku VARCHAR(64))",
		"CREATE TABLE pair (a INT NOT NULL, b INT NOT NULL, c INT, UNIQUE KEY c_u (c), UNIQUE KEY ab (b, a))",
		"CREATE TABLE nullable_uk (a INT, UNIQUE KEY a_u (a))")
	tg := target(t, srv, db)
	tg.Tables = []string{db + ".*"}
	tg.Exclude = []string{db + ".nullable_uk"}
	rs := Run(context.Background(), tg)
	expect(t, rs, "captured tables", Pass, "")
	if m := byName(rs)["captured tables"].Message; !strings.Contains(m, db+".pair by ab (b, a)") {
		t.Fatalf("the message does not name the key used: %s", m)
	}
	tg.Exclude = nil
	rs = Run(context.Background(), tg)
	expect(t, rs, "captured tables", Fail, "source.exclude_tables")
	if m := byName(rs)["captured tables"].Message; !strings.Contains(m, db+".nullable_uk") || strings.Contains(m, db+".pair") {
		t.Fatalf("wrong tables named: %s", m)
	}
}

// readmeGrants returns the statements of the README's MariaDB grant block
// for user@host.
func readmeGrants(t *testing.T, user, host, password string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "<!-- grants:mariadb")
	if !ok {
		t.Fatal("README.md has no <!-- grants:mariadb --> block")
	}
	_, rest, _ = strings.Cut(rest, "```sql\n")
	block, _, _ := strings.Cut(rest, "```")
	var out []string
	for _, line := range strings.Split(block, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "--") {
			continue
		}
		line = strings.ReplaceAll(line, "'feedcdc'@'%'", fmt.Sprintf("'%s'@'%s'", user, host))
		line = strings.ReplaceAll(line, "IDENTIFIED BY '...'", "IDENTIFIED BY '"+password+"'")
		out = append(out, strings.TrimSuffix(line, ";"))
	}
	if len(out) < 2 || !strings.HasPrefix(out[0], "CREATE USER") {
		t.Fatalf("README grant block: %q", out)
	}
	return out
}

// TestREADMEGrantsGiveACleanCheck creates a user with exactly the README's
// grants and expects every check to PASS, with the resync lag throttle on
// (the default resync.max_replica_lag).
func TestREADMEGrantsGiveACleanCheck(t *testing.T) {
	if srv.Flavor != "mariadb" {
		t.Fatalf("the README's MariaDB grants need a MariaDB server, not %s %s", srv.Flavor, srv.Version)
	}
	db := shopTables(t, srv)
	admin := srv.Admin(t, "")
	for _, h := range []string{"127.0.0.1", "localhost", "%"} {
		admin.Exec(fmt.Sprintf("DROP USER IF EXISTS 'readme'@'%s'", h))
		for _, q := range readmeGrants(t, "readme", h, "readmepw") {
			if _, err := admin.Exec(q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		t.Cleanup(func() { admin.Exec(fmt.Sprintf("DROP USER IF EXISTS 'readme'@'%s'", h)) })
	}
	tg := target(t, srv, db)
	tg.DB = open(t, fmt.Sprintf("readme:readmepw@tcp(%s)/", srv.Addr()))
	tg.User = "readme"
	tg.MaxReplicaLag = 10 * time.Second
	tg.Sinks = []Pinger{okSink{}}
	rs := Run(context.Background(), tg)
	for _, r := range rs {
		if r.Status != Pass {
			t.Errorf("%s: %s %s (fix: %s)", r.Name, r.Status, r.Message, r.Fix)
		}
	}
	if t.Failed() {
		t.Fatalf("the README's grants do not give a clean check:\n%s", report(rs))
	}
	if !strings.Contains(byName(rs)["grants"].Message, "SLAVE MONITOR") {
		t.Fatalf("grants: %+v", byName(rs)["grants"])
	}
}

// TestLagThrottleNeedsSlaveMonitor: the test bed's user lacks SLAVE MONITOR,
// which the resync lag throttle's SHOW SLAVE STATUS needs on MariaDB: a
// WARN with the GRANT (run logs the same and turns the throttle off), and
// no WARN when the throttle is off.
func TestLagThrottleNeedsSlaveMonitor(t *testing.T) {
	db := shopTables(t, srv)
	tg := target(t, srv, db)
	expect(t, Run(context.Background(), tg), "grants", Pass, "")
	tg.MaxReplicaLag = 10 * time.Second
	want := "GRANT SLAVE MONITOR ON *.* TO '" + srv.CDCUser + "'@"
	if srv.Flavor == "mysql" {
		expect(t, Run(context.Background(), tg), "grants", Pass, "") // REPLICATION CLIENT covers it
		return
	}
	expect(t, Run(context.Background(), tg), "grants", Warn, want)
}

// TestPreflightTellsUnreachableFromDenied: a refused connection is
// transient (ErrUnreachable, run retries); "access denied" is the server's
// definite answer (a FAIL, no error).
func TestPreflightTellsUnreachableFromDenied(t *testing.T) {
	tg := Target{DB: open(t, "feedcdc:x@tcp(127.0.0.1:1)/?timeout=1s"), Addr: "127.0.0.1:1", User: "feedcdc", ServerID: 1}
	rs, err := Preflight(context.Background(), tg)
	if !errors.Is(err, ErrUnreachable) || !Failed(rs) {
		t.Fatalf("refused: %v %+v", err, rs)
	}
	tg = Target{DB: open(t, fmt.Sprintf("%s:wrong@tcp(%s)/", srv.CDCUser, srv.Addr())), Addr: srv.Addr(), User: srv.CDCUser, ServerID: 1}
	rs, err = Preflight(context.Background(), tg)
	if err != nil || !Failed(rs) || !strings.Contains(Hard(rs).Error(), "Access denied") {
		t.Fatalf("access denied: %v %+v", err, rs)
	}
}

func TestPurgedCheckpointAndUnreachableSink(t *testing.T) {
	db := shopTables(t, srv)
	tg := target(t, srv, db)
	pos := change.Position{File: "binlog.000000", Pos: 4} // older than any file the server has
	tg.Checkpoint, tg.CheckpointAt = &pos, time.Now().Add(-time.Hour)
	tg.Sinks = []Pinger{downSink{}}
	rs := Run(context.Background(), tg)
	expect(t, rs, "binlog retention", Fail, "feedcdc resync")
	expect(t, rs, "sink http", Fail, "sinks.http")
}

func TestUnreachableSourceAndReadOnlyState(t *testing.T) {
	dir := t.TempDir()
	ro := filepath.Join(dir, "ro")
	if err := os.Mkdir(ro, 0o500); err != nil {
		t.Fatal(err)
	}
	tg := Target{DB: open(t, "feedcdc:x@tcp(127.0.0.1:1)/?timeout=1s"), Addr: "127.0.0.1:1", User: "feedcdc",
		ServerID: 1, StatePath: filepath.Join(ro, "sub", "state.db")}
	rs := Run(context.Background(), tg)
	expect(t, rs, "connection", Fail, "source.host")
	if os.Geteuid() != 0 { // root can write anywhere
		expect(t, rs, "state file", Fail, "state.path")
	}
	if len(rs) != 2 {
		t.Fatalf("after a failed connection only local checks run:\n%s", report(rs))
	}
}

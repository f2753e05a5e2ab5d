package connector

import (
	"context"
	"database/sql"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/feedcdc/feedcdc/feeds"
	"github.com/feedcdc/feedcdc/test/catalog"
)

// BenchmarkFirstStartFullSync measures a first start the way a user runs
// it — Connector.Run with no checkpoint, all four feeds, one file sink,
// the configuration's defaults otherwise — until every feed's full sync
// has finished, against a `mariadb-dump --single-transaction` of the
// tables the feeds read, on the same server in the same run; it prints the
// ratio of the two times and of their CPU (client and server).
//
//	FEEDCDC_BENCH_PROFILE=medium go test -run '^$' -bench FirstStartFullSync -benchtime 1x -v -timeout 60m ./connector
//
// Knobs (environment):
//
//	FEEDCDC_BENCH_PROFILE  catalog profile loaded into a fresh database
//	                       (default small).
//	FEEDCDC_BENCH_DB       a database already holding a loaded catalog
//	                       (the load is skipped): with FEEDCDC_TEST_MYSQL_DSN
//	                       pointing at a server kept between runs, e.g. one
//	                       loaded once by `go run ./test/cmd/catalog`.
//	FEEDCDC_BENCH_SERVER_PID  that server's pid, to measure its CPU.
func BenchmarkFirstStartFullSync(b *testing.B) {
	ctx := context.Background()
	db := os.Getenv("FEEDCDC_BENCH_DB")
	if db == "" {
		p, err := catalog.ProfileByName(envOr("FEEDCDC_BENCH_PROFILE", "small"))
		if err != nil {
			b.Fatal(err)
		}
		db = srv.NewDatabase(b, "fullsync_"+p.Name)
		st, err := catalog.Load(ctx, srv.Admin(b, db), p, 1)
		if err != nil {
			b.Fatal(err)
		}
		b.Logf("loaded %s: %d rows in %s", p.Name, st.Rows, st.Duration.Round(time.Millisecond))
	}
	serverPID := srv.PID()
	if v := os.Getenv("FEEDCDC_BENCH_SERVER_PID"); v != "" {
		serverPID, _ = strconv.Atoi(v)
	}
	tables, rows := feedTables(b, db)
	var syncDur, dumpDur, syncCPU, syncSrv, dumpCPU, dumpSrv time.Duration
	var items int64
	b.ResetTimer()
	for range b.N {
		// The dump first, then the sync: both meet a warm buffer pool.
		d, c, s := dumpTables(b, db, tables, serverPID)
		dumpDur, dumpCPU, dumpSrv = dumpDur+d, dumpCPU+c, dumpSrv+s
		n, d, c, s := firstStart(b, db, serverPID)
		items, syncDur, syncCPU, syncSrv = n, syncDur+d, syncCPU+c, syncSrv+s
	}
	b.StopTimer()
	n := time.Duration(b.N)
	syncDur, dumpDur, syncCPU, syncSrv, dumpCPU, dumpSrv = syncDur/n, dumpDur/n, syncCPU/n, syncSrv/n, dumpCPU/n, dumpSrv/n
	b.ReportMetric(float64(items)/syncDur.Seconds(), "items/s")
	b.ReportMetric(syncDur.Seconds()/dumpDur.Seconds(), "sync/dump-time")
	b.Logf("load average %s", loadAvg())
	b.Logf("mariadb-dump --single-transaction of %d tables, %d rows: %s (client CPU %s, server CPU %s)",
		len(tables), rows, dumpDur.Round(time.Millisecond), dumpCPU.Round(time.Millisecond), dumpSrv.Round(time.Millisecond))
	b.Logf("first start, 4 feeds, file sink: %d items in %s = %.0f items/s (feedcdc CPU %s = %.1f µs/item, server CPU %s)",
		items, syncDur.Round(time.Millisecond), float64(items)/syncDur.Seconds(), syncCPU.Round(time.Millisecond),
		float64(syncCPU.Microseconds())/float64(items), syncSrv.Round(time.Millisecond))
	b.Logf("ratios: time sync/dump = %.1f, server CPU sync/dump = %.1f", syncDur.Seconds()/dumpDur.Seconds(), syncSrv.Seconds()/max(dumpSrv.Seconds(), 0.001))
}

// feedTables lists the tables the feeds read that db has, and their rows.
func feedTables(b *testing.B, db string) ([]string, int) {
	pool, err := sql.Open("mysql", srv.CDCDSN(db))
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	reg, err := feeds.NewRegistry(feeds.Config{DB: pool, Database: db})
	if err != nil {
		b.Fatal(err)
	}
	var tables []string
	rows := 0
	for _, t := range reg.Tables() {
		var n int
		if err := pool.QueryRow("SELECT COUNT(*) FROM " + t).Scan(&n); err != nil {
			continue // a table this schema does not have
		}
		tables = append(tables, t)
		rows += n
	}
	return tables, rows
}

// dumpTables runs the baseline; it returns its wall time, its CPU and the
// server's.
func dumpTables(b *testing.B, db string, tables []string, serverPID int) (wall, cpu, server time.Duration) {
	args := []string{"--no-defaults", "--protocol=tcp", "-h", srv.Host, "-P", strconv.Itoa(srv.Port), "-u", srv.AdminUser}
	if srv.AdminPassword != "" {
		args = append(args, "-p"+srv.AdminPassword)
	}
	args = append(args, "--single-transaction", "--skip-lock-tables", db)
	cmd := exec.Command("mariadb-dump", append(args, tables...)...)
	cmd.Stdout = io.Discard
	cmd.Stderr = os.Stderr
	srv0 := procCPU(serverPID)
	start := time.Now()
	if err := cmd.Run(); err != nil {
		b.Fatalf("mariadb-dump: %v", err)
	}
	wall = time.Since(start)
	return wall, cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(), procCPU(serverPID) - srv0
}

// firstStart runs a connector with no checkpoint until the full syncs of
// all feeds finished; it returns the items in the state, the wall time,
// this process's CPU and the server's.
func firstStart(b *testing.B, db string, serverPID int) (items int64, wall, cpu, server time.Duration) {
	dir, err := os.MkdirTemp("", "scale-fullsync-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(dir)
	y := &connectorYAML{Name: "bench", Database: db, StatePath: filepath.Join(dir, "state.db"),
		Sections: "log: {level: warn}\nsinks:\n  files:\n    type: file\n    file: {dir: " + filepath.Join(dir, "out") + "}\n"}
	cfg := y.load(b)
	c, err := Open(context.Background(), cfg, OpenOptions{Logger: quietSlog()})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	srv0, cpu0 := procCPU(serverPID), selfCPU()
	start := time.Now()
	go func() { done <- c.Run(ctx, RunOptions{NoSchedule: true}) }()
	for _, f := range cfg.EnabledFeeds() {
		for {
			if pr, ok, _ := c.Store.Progress(context.Background(), f); ok && pr.Finished() {
				break
			}
			select {
			case err := <-done:
				b.Fatalf("run ended before the full syncs finished: %v", err)
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	wall = time.Since(start)
	cpu, server = selfCPU()-cpu0, procCPU(serverPID)-srv0
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	for _, f := range cfg.EnabledFeeds() {
		n, err := c.Store.Counts(context.Background(), f)
		if err != nil {
			b.Fatal(err)
		}
		if n.Sent != n.Total {
			b.Fatalf("%s: %d of %d items sent", f, n.Sent, n.Total)
		}
		b.Logf("  %-18s %8d items", f, n.Total)
		items += n.Total
	}
	return items, wall, cpu, server
}

// selfCPU is this process's user+system CPU time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

package catalog

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// BenchmarkLoad loads the profile named by FEEDCDC_BENCH_CATALOG (default
// "small"; "medium" is the documented benchmark) into the package's private
// server, then measures two baselines on the same server with the same rows:
// the mariadb client replaying a mariadb-dump of them (extended multi-row
// INSERTs, one connection) and mariadb-import --local (LOAD DATA LOCAL
// INFILE of mariadb-dump --tab files, 4 threads). FEEDCDC_BENCH_WORKERS
// overrides Profile.Workers; FEEDCDC_BENCH_BASELINE=0 skips the baselines.
// Run it with
//
//	FEEDCDC_BENCH_CATALOG=medium go test -run '^$' -bench BenchmarkLoad -benchtime 1x ./test/catalog
func BenchmarkLoad(b *testing.B) {
	name := os.Getenv("FEEDCDC_BENCH_CATALOG")
	if name == "" {
		name = "small"
	}
	p, err := ProfileByName(name)
	if err != nil {
		b.Fatal(err)
	}
	if v := os.Getenv("FEEDCDC_BENCH_WORKERS"); v != "" {
		if p.Workers, err = strconv.Atoi(v); err != nil {
			b.Fatal(err)
		}
	}
	ctx := context.Background()
	var last Stats
	var lastDB string
	var total time.Duration
	var rows int64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		dbName := srv.NewDatabase(b, "bench_"+name)
		db := srv.Admin(b, dbName)
		b.StartTimer()
		st, err := Load(ctx, db, p, int64(i+1))
		if err != nil {
			b.Fatal(err)
		}
		last, lastDB = st, dbName
		total += st.Duration - st.SchemaDuration
		rows += st.Rows
	}
	b.StopTimer()
	rate := float64(rows) / total.Seconds()
	b.ReportMetric(rate, "rows/s")
	b.Logf("Load (%d workers): %s", p.Workers, last.String())
	if os.Getenv("FEEDCDC_BENCH_BASELINE") == "0" {
		return
	}
	base := srv.Admin(b, lastDB)
	dumpRows := countAll(b, base)

	dir := b.TempDir()
	// Baseline 1: mariadb client, extended INSERTs from mariadb-dump.
	dump := filepath.Join(dir, "data.sql")
	if err := runTool(dump, "mariadb-dump", "--no-create-info", "--skip-triggers", "--extended-insert", "--net-buffer-length=1048576", lastDB); err != nil {
		b.Fatal(err)
	}
	target := emptyCatalog(b, "bench_insert")
	start := time.Now()
	if err := runToolIn(dump, "mariadb", target); err != nil {
		b.Fatal(err)
	}
	insertDur := time.Since(start)
	if got := countAll(b, srv.Admin(b, target)); got != dumpRows {
		b.Fatalf("mariadb client baseline loaded %d rows, want %d", got, dumpRows)
	}
	// Baseline 2: LOAD DATA LOCAL INFILE via mariadb-import.
	tab := filepath.Join(dir, "tab")
	if err := os.MkdirAll(tab, 0o777); err != nil {
		b.Fatal(err)
	}
	if err := runTool("", "mariadb-dump", "--tab="+tab, "--skip-triggers", lastDB); err != nil {
		b.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(tab, "*.txt"))
	target2 := emptyCatalog(b, "bench_loaddata")
	// mariadb-import has no init command: the id-0 rows (admin store,
	// website, group, NOT LOGGED IN) need NO_AUTO_VALUE_ON_ZERO globally on
	// this private server while it runs.
	var mode string
	if err := base.QueryRow("SELECT @@GLOBAL.sql_mode").Scan(&mode); err != nil {
		b.Fatal(err)
	}
	if _, err := base.Exec("SET GLOBAL sql_mode = CONCAT(@@GLOBAL.sql_mode, ',NO_AUTO_VALUE_ON_ZERO')"); err != nil {
		b.Fatal(err)
	}
	start = time.Now()
	args := append([]string{"--local", "--use-threads=4", "--silent", "--ignore-foreign-keys", target2}, files...)
	err = runTool("", "mariadb-import", args...)
	loadDataDur := time.Since(start)
	if _, rerr := base.Exec("SET GLOBAL sql_mode = ?", mode); rerr != nil {
		b.Fatal(rerr)
	}
	if err != nil {
		b.Fatal(err)
	}
	if got := countAll(b, srv.Admin(b, target2)); got != dumpRows {
		b.Fatalf("LOAD DATA baseline loaded %d rows, want %d", got, dumpRows)
	}
	insertRate := float64(dumpRows) / insertDur.Seconds()
	loadDataRate := float64(dumpRows) / loadDataDur.Seconds()
	b.ReportMetric(insertRate, "client-insert-rows/s")
	b.ReportMetric(loadDataRate, "load-data-rows/s")
	b.Logf("baselines on the same %d rows: mariadb client multi-row INSERT %s (%.0f rows/s), mariadb-import LOAD DATA LOCAL x4 %s (%.0f rows/s); Load/client = %.2f, Load/LOAD DATA = %.2f",
		dumpRows, insertDur.Round(time.Millisecond), insertRate, loadDataDur.Round(time.Millisecond), loadDataRate, rate/insertRate, rate/loadDataRate)
}

// emptyCatalog creates the schema in a fresh database and removes the seed
// rows, so a dump of a loaded catalog (seed included) can be replayed.
func emptyCatalog(b *testing.B, prefix string) string {
	b.Helper()
	name := srv.NewDatabase(b, prefix)
	db := srv.Admin(b, name)
	ctx := context.Background()
	if err := CreateSchema(ctx, db); err != nil {
		b.Fatal(err)
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer endSession(conn)
	if _, err := conn.ExecContext(ctx, "SET foreign_key_checks = 0"); err != nil {
		b.Fatal(err)
	}
	for _, t := range Tables() {
		if _, err := conn.ExecContext(ctx, "DELETE FROM "+t); err != nil {
			b.Fatal(err)
		}
	}
	return name
}

func countAll(b *testing.B, db *sql.DB) int64 {
	b.Helper()
	var total int64
	for _, t := range Tables() {
		var n int64
		if err := db.QueryRow("SELECT COUNT(*) FROM " + t).Scan(&n); err != nil {
			b.Fatal(err)
		}
		total += n
	}
	return total
}

func clientArgs() []string {
	return []string{"--no-defaults", "--protocol=tcp", "-h", srv.Host, "-P", strconv.Itoa(srv.Port), "-u", srv.AdminUser, "--password=" + srv.AdminPassword}
}

// runTool runs a MariaDB client tool against the server, writing stdout to
// outFile when it is set.
func runTool(outFile, tool string, args ...string) error {
	cmd := exec.Command(tool, append(clientArgs(), args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if outFile != "" {
		f, err := os.Create(outFile)
		if err != nil {
			return err
		}
		defer f.Close()
		cmd.Stdout = f
	}
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w: %s", tool, err, stderr.String())
	}
	return nil
}

// runToolIn runs a tool on db with inFile as stdin.
func runToolIn(inFile, tool, db string) error {
	f, err := os.Open(inFile)
	if err != nil {
		return err
	}
	defer f.Close()
	cmd := exec.Command(tool, append(clientArgs(), db)...)
	cmd.Stdin = f
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w: %s", tool, err, stderr.String())
	}
	return nil
}

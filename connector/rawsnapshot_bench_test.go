package connector

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/feedcdc/feedcdc/change"
	"github.com/feedcdc/feedcdc/state"
)

// BenchmarkRawSnapshotVsDump measures a raw snapshot of one table (into a
// file sink, while the connector streams an idle source) against
// `mariadb-dump --single-transaction` of the same table into a file, in
// the same run: three rounds, alternating which goes first, and prints the
// medians as rows per second and their ratio. The table has
// FEEDCDC_BENCH_ROWS rows (default 200,000). Run it with
//
//	go test -run '^$' -bench RawSnapshotVsDump -benchtime 1x ./connector/
func BenchmarkRawSnapshotVsDump(b *testing.B) {
	n := 200000
	if v := os.Getenv("FEEDCDC_BENCH_ROWS"); v != "" {
		n, _ = strconv.Atoi(v)
	}
	dumpBin, err := exec.LookPath("mariadb-dump")
	if err != nil {
		b.Fatal("mariadb-dump is needed for the comparison (Debian: mariadb-client)")
	}
	ctx := context.Background()
	db := srv.NewDatabase(b, "snapbench")
	admin := srv.Admin(b, db)
	if _, err := admin.Exec("CREATE TABLE items (id INT PRIMARY KEY, v INT NOT NULL, note VARCHAR(40) NOT NULL, price DECIMAL(12,4) NOT NULL, updated_at DATETIME NOT NULL)"); err != nil {
		b.Fatal(err)
	}
	for lo := 1; lo <= n; lo += 10000 {
		if _, err := admin.Exec(fmt.Sprintf("INSERT INTO items SELECT seq, seq %% 97, CONCAT('row ', seq), seq / 7, '2026-01-02 03:04:05' FROM seq_%d_to_%d", lo, min(lo+9999, n))); err != nil {
			b.Fatal(err)
		}
	}
	out := filepath.Join(b.TempDir(), "out")
	cy := connectorYAML{Name: "snapbench", Database: db, Feeds: noFeeds,
		Source: []string{fmt.Sprintf("include_tables: [\"%s.items\"]", db)},
		Sections: "raw:\n  enabled: true\n" + unthrottledResync +
			"sinks:\n  files:\n    type: file\n    file:\n      dir: " + out + "\n      fsync: false\n      max_size: 10GB\n"}
	c := openConnector(b, cy.load(b), OpenOptions{Logger: quietSlog()})
	started := make(chan struct{})
	_, stop := startRun(b, c, RunOptions{NoSchedule: true, OnStart: func(change.Position, bool) { close(started) }})
	defer stop()
	<-started
	snap := func() time.Duration {
		t0 := time.Now()
		p, err := c.RequestRawSnapshot(ctx, RawSnapshotRequest{Table: db + ".items"})
		if err != nil {
			b.Fatal(err)
		}
		for {
			all, err := c.Store.RawSnapshots(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if len(all) == 1 && all[0].Seq == p.Seq && all[0].State == state.RawSnapDone {
				if all[0].Sent != int64(n) {
					b.Fatalf("snapshot sent %d rows of %d", all[0].Sent, n)
				}
				return time.Since(t0)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	dumpFile := filepath.Join(b.TempDir(), "dump.sql")
	dump := func() time.Duration {
		f, err := os.Create(dumpFile)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		cmd := exec.Command(dumpBin, "--single-transaction", "--quick", "--skip-lock-tables", "--no-create-info",
			"-h", srv.Host, "-P", strconv.Itoa(srv.Port), "-u", srv.AdminUser, db, "items")
		cmd.Stdout = f
		cmd.Stderr = os.Stderr
		t0 := time.Now()
		if err := cmd.Run(); err != nil {
			b.Fatalf("mariadb-dump: %v", err)
		}
		return time.Since(t0)
	}
	for i := 0; i < b.N; i++ {
		var snaps, dumps []time.Duration
		for round := range 3 {
			if round%2 == 0 {
				snaps = append(snaps, snap())
				dumps = append(dumps, dump())
			} else {
				dumps = append(dumps, dump())
				snaps = append(snaps, snap())
			}
		}
		med := func(d []time.Duration) time.Duration { s := slices.Clone(d); slices.Sort(s); return s[len(s)/2] }
		rate := func(d time.Duration) float64 { return float64(n) / d.Seconds() }
		fmt.Printf("\nraw snapshot vs mariadb-dump, one table of %d rows (5 columns), load average %s\n", n, loadAvg())
		fmt.Printf("| run | median of 3 | rows/s | ratio |\n|---|---|---|---|\n")
		fmt.Printf("| mariadb-dump --single-transaction --quick > file | %s | %.0f | 1.00 |\n", med(dumps).Round(time.Millisecond), rate(med(dumps)))
		fmt.Printf("| raw snapshot (chunks of %d) → file sink | %s | %.0f | %.2f |\n", c.Config.Raw.SnapshotChunk, med(snaps).Round(time.Millisecond), rate(med(snaps)), rate(med(snaps))/rate(med(dumps)))
		fmt.Printf("all runs (snapshot, dump): %v %v\n", snaps, dumps)
	}
}

package connector

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/feedcdc/feedcdc/test/catalog"
)

// innodbRowsRead is the sum of the source's Handler_read_* counters: the
// row reads of the storage engine (the private server only serves this
// test process).
func innodbRowsRead(tb testing.TB, db *sql.DB) int64 {
	rows, err := db.Query("SHOW GLOBAL STATUS LIKE 'Handler_read%'")
	if err != nil {
		tb.Fatal(err)
	}
	defer rows.Close()
	var total int64
	for rows.Next() {
		var name string
		var n int64
		if err := rows.Scan(&name, &n); err != nil {
			tb.Fatal(err)
		}
		total += n
	}
	return total
}

// BenchmarkVerifyVsResyncDryRun measures `feedcdc verify` of an undrifted
// products feed against `feedcdc resync --dry-run` of it, interleaved in
// the same run (three rounds, alternating which goes first), and prints
// the medians, their ratio and the rows each read on the source
// (the Handler_read_* counters). Every verify must report 0 drift and send nothing.
// The catalog is catalog.Small(); FEEDCDC_BENCH_CATALOG=medium loads
// catalog.Medium(). Run it with
//
//	go test -run '^$' -bench VerifyVsResyncDryRun -benchtime 1x ./connector/
func BenchmarkVerifyVsResyncDryRun(b *testing.B) {
	ctx := context.Background()
	profile, pname := catalog.Small(), "small"
	if os.Getenv("FEEDCDC_BENCH_CATALOG") == "medium" {
		profile, pname = catalog.Medium(), "medium"
	}
	db := srv.NewDatabase(b, "vbench")
	admin := srv.Admin(b, db)
	t0 := time.Now()
	if _, err := catalog.Load(ctx, admin, profile, 1); err != nil {
		b.Fatal(err)
	}
	b.Logf("%s catalog loaded in %s", pname, time.Since(t0).Round(time.Second))
	out := filepath.Join(b.TempDir(), "out")
	cy := connectorYAML{Name: "vbench", Database: db,
		Feeds:    []string{"productAttributes: {enabled: false}", "variants: {enabled: false}", "productOverrides: {enabled: false}"},
		Sections: unthrottledResync + "sinks:\n  files:\n    type: file\n    file:\n      dir: " + out + "\n      fsync: false\n      max_size: 10GB\n"}
	cfg := cy.load(b)
	c := openConnector(b, cfg, OpenOptions{Logger: quietSlog()})
	stop := c.RunExporter(ctx)
	defer stop()
	t0 = time.Now()
	full, err := c.Resync(ctx, ResyncOptions{Feed: "products"})
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("full sync: %d keys, %d items sent in %s (load %s)", full.Stats.Keys, full.Stats.Sent, time.Since(t0).Round(time.Millisecond), loadAvg())
	outFile := filepath.Join(out, "products.jsonl")
	size := func() int64 {
		st, err := os.Stat(outFile)
		if err != nil {
			b.Fatal(err)
		}
		return st.Size()
	}
	sizeBefore := size()
	dests, _ := c.Destinations("products")
	for i := 0; i < b.N; i++ {
		var dry, ver, verRB []time.Duration
		var dryRows, verRows, verRBRows []int64
		var checked int64
		runDry := func() {
			r0, t0 := innodbRowsRead(b, admin), time.Now()
			res, err := c.Resync(ctx, ResyncOptions{Feed: "products", DryRun: true})
			if err != nil {
				b.Fatal(err)
			}
			dry, dryRows = append(dry, time.Since(t0)), append(dryRows, innodbRowsRead(b, admin)-r0)
			if res.Stats.Sent != 0 {
				b.Fatalf("dry run of an undrifted feed would send %d items", res.Stats.Sent)
			}
		}
		runVerify := func(readBack bool) {
			vo := VerifyOptions{Feed: "products"}
			if readBack {
				vo.Destinations = dests
			}
			r0, t0 := innodbRowsRead(b, admin), time.Now()
			res, err := c.Verify(ctx, vo)
			if err != nil {
				b.Fatal(err)
			}
			d, rows := time.Since(t0), innodbRowsRead(b, admin)-r0
			if readBack {
				verRB, verRBRows = append(verRB, d), append(verRBRows, rows)
			} else {
				ver, verRows = append(ver, d), append(verRows, rows)
			}
			if res.Drift != 0 || res.Counts[VerifyUnsettled] != 0 {
				b.Fatalf("verify of an undrifted feed: %v", res.Counts)
			}
			checked = res.Checked
		}
		for round := range 3 {
			if round%2 == 0 {
				runDry()
				runVerify(false)
			} else {
				runVerify(false)
				runDry()
			}
			runVerify(true)
		}
		if size() != sizeBefore {
			b.Fatal("verify or the dry run wrote to the sink")
		}
		med := func(d []time.Duration) time.Duration { s := slices.Clone(d); slices.Sort(s); return s[len(s)/2] }
		medI := func(d []int64) int64 { s := slices.Clone(d); slices.Sort(s); return s[len(s)/2] }
		fmt.Printf("\nverify vs resync --dry-run, products feed, %s catalog: %d keys, %d items checked, load average %s\n", pname, full.Stats.Keys, checked, loadAvg())
		fmt.Printf("| run | median of 3 | ratio | source rows read | ratio |\n|---|---|---|---|---|\n")
		fmt.Printf("| resync --dry-run | %s | 1.00 | %d | 1.00 |\n", med(dry).Round(time.Millisecond), medI(dryRows))
		fmt.Printf("| verify | %s | %.2f | %d | %.2f |\n", med(ver).Round(time.Millisecond), float64(med(ver))/float64(med(dry)), medI(verRows), float64(medI(verRows))/float64(medI(dryRows)))
		fmt.Printf("| verify --read-back (file sink) | %s | %.2f | %d | %.2f |\n", med(verRB).Round(time.Millisecond), float64(med(verRB))/float64(med(dry)), medI(verRBRows), float64(medI(verRBRows))/float64(medI(dryRows)))
		fmt.Printf("all runs (dry, verify, read-back): %v %v %v\n", dry, ver, verRB)
	}
}

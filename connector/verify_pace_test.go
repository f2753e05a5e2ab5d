package connector

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/feedcdc/feedcdc/test/catalog"
)

// TestVerifyIsPacedPerChunkByItsOwnLimit: a verify of a catalog far
// smaller than a scan page (1,000 keys) is paced from its first chunk, per
// chunk of batch_size keys, by verify.rows_per_second — not by resync's
// (off here). The throttle's own counts prove it, not the clock: one Wait
// per chunk of at most batch_size keys, and at least one of them had to
// wait (10 rows/s, chunks of 25: each chunk after the first is due 2.5 s
// after the one before, far more than a chunk of 25 takes to verify). Before verify shared the full sync's
// pacedChunks, the whole scan page was one Wait that never blocked.
func TestVerifyIsPacedPerChunkByItsOwnLimit(t *testing.T) {
	ctx := context.Background()
	db := srv.NewDatabase(t, "vpace")
	admin := srv.Admin(t, db)
	if _, err := catalog.Load(ctx, admin, catalog.Tiny(), 11); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out")
	cy := connectorYAML{Name: "vpace", Database: db,
		Feeds: []string{"productAttributes: {enabled: false}", "variants: {enabled: false}", "productOverrides: {enabled: false}"},
		Sections: "resync: {max_replica_lag: 0s, rows_per_second: 0}\nverify: {max_replica_lag: 0s, rows_per_second: 10}\n" +
			"sinks:\n  files:\n    type: file\n    file:\n      dir: " + out + "\n      fsync: false\n"}
	cfg := cy.load(t)
	c := openConnector(t, cfg, OpenOptions{})
	stop := c.RunExporter(ctx)
	defer stop()
	if _, err := c.Resync(ctx, ResyncOptions{Feed: "products"}); err != nil {
		t.Fatal(err)
	}
	f, _ := c.Registry.Feed("products")
	n := int64(len(scanKeys(t, f)))
	const batch = 25
	if n <= 2*batch || n >= 1000 {
		t.Fatalf("fixture: %d products; the test needs more than two chunks and less than one scan page", n)
	}
	res, err := c.Verify(ctx, VerifyOptions{Feed: "products", BatchSize: batch, ThreadCount: 1})
	if err != nil {
		t.Fatal(err)
	}
	if res.Drift != 0 || res.Repair != nil {
		t.Fatalf("verify of an undrifted feed: drift %d, counts %v", res.Drift, res.Counts)
	}
	ts := res.Throttle
	if ts == nil {
		t.Fatal("verify ran without a throttle although verify.rows_per_second is 10")
	}
	t.Logf("%d keys: throttle %+v", n, *ts)
	if want := (n + batch - 1) / batch; ts.Chunks != want || ts.Rows != n {
		t.Errorf("throttle accounted %d rows in %d chunks, want %d rows in %d chunks of at most %d", ts.Rows, ts.Chunks, n, want, batch)
	}
	if ts.Paused == 0 {
		t.Errorf("no chunk waited for the rate limit of 10 rows/s: %+v", *ts)
	}
}

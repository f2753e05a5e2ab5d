package connector

import (
	"context"
	"testing"

	"github.com/feedcdc/feedcdc/config"
	"github.com/feedcdc/feedcdc/state"
	"github.com/feedcdc/feedcdc/test/catalog"
	"github.com/feedcdc/feedcdc/test/kafkatest"
)

// TestResyncStatusHasTotal: while a throttled full sync runs, the progress
// record in the state (what `feedcdc status` and the dashboard show) holds
// a total (Connector.Resync's estimate, or the keys the scan counted) of at
// least the keys processed so far; once the sync ended it holds exactly the
// keys its scan enumerated.
func TestResyncStatusHasTotal(t *testing.T) {
	ctx := context.Background()
	db := srv.NewDatabase(t, "rstotal")
	if _, err := catalog.Load(ctx, srv.Admin(t, db), catalog.Small(), 5); err != nil {
		t.Fatal(err)
	}
	kafka := kafkatest.Start(t)
	dir := t.TempDir()
	// 150 keys/s with chunks of 100: the sync runs for seconds after its
	// first chunk is stored.
	cfgPath := syncConfig(t, srv, db, dir, onlyFeeds(map[string]string{"products": ""}), kafkaSinkYAML(kafka.Addr()),
		"resync: {batch_size: 100, thread_count: 1, rows_per_second: 150, max_replica_lag: 0s}")
	want := int64(len(scanKeys(t, openFeed(t, srv, db, "products"))))
	cfg, err := config.Load(cfgPath, []string{"SYNC_SOURCE_PASSWORD=" + srv.CDCPassword})
	if err != nil {
		t.Fatal(err)
	}
	c, err := Open(ctx, cfg, OpenOptions{Command: "resync total test"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	stop := c.RunExporter(ctx)
	defer stop()

	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	firstChunk := make(chan struct{}, 1)
	done := make(chan error, 1)
	go func() {
		_, err := c.Resync(rctx, ResyncOptions{Feed: "products", Progress: func(state.Progress) {
			select {
			case firstChunk <- struct{}{}:
			default:
			}
		}})
		done <- err
	}()
	select {
	case <-firstChunk:
	case err := <-done:
		t.Fatalf("resync ended before its first chunk was reported: %v", err)
	}
	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got *state.Progress
	for _, f := range st.Feeds {
		if f.Name == "products" {
			got = f.Resync
		}
	}
	if got == nil {
		t.Fatalf("status of products has no resync progress: %+v", st.Feeds)
	}
	if got.Finished() || got.Processed == 0 || got.Processed >= want {
		t.Fatalf("fixture: status caught the sync at %d/%d (finished %v); want it running", got.Processed, want, got.Finished())
	}
	if got.Total <= 0 || got.Total < got.Processed {
		t.Errorf("status of a running resync: total %d with %d processed, want a total of at least the keys processed", got.Total, got.Processed)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	final, ok, err := c.Store.Progress(ctx, "products")
	if err != nil || !ok || !final.Finished() {
		t.Fatalf("progress after the sync: %+v ok %v err %v", final, ok, err)
	}
	if final.Total != want || final.Processed != want {
		t.Errorf("finished sync: total %d, processed %d; want both %d (the keys its scan enumerated)", final.Total, final.Processed, want)
	}
}

// TestResyncScansTheSourceOnce: Connector.Resync gives its progress a total
// without a second pass over the feed's keys: a dry run through it reads
// (about) the rows a dry run of the bare pipeline reads — the source's
// Handler_read_* counters, not the clock — where counting the keys first
// read every product row once more.
func TestResyncScansTheSourceOnce(t *testing.T) {
	ctx := context.Background()
	db := srv.NewDatabase(t, "rsonce")
	admin := srv.Admin(t, db)
	if _, err := catalog.Load(ctx, admin, catalog.Tiny(), 5); err != nil {
		t.Fatal(err)
	}
	cy := connectorYAML{Name: "rsonce", Database: db,
		Feeds:    []string{"productAttributes: {enabled: false}", "variants: {enabled: false}", "productOverrides: {enabled: false}"},
		Sections: unthrottledResync + "sinks:\n  files:\n    type: file\n    file:\n      dir: " + t.TempDir() + "\n      fsync: false\n"}
	c := openConnector(t, cy.load(t), OpenOptions{})
	stop := c.RunExporter(ctx)
	defer stop()
	f, _ := c.Registry.Feed("products")
	n := int64(len(scanKeys(t, f)))
	rows := func(run func() (ResyncResult, error)) (int64, ResyncResult) {
		t.Helper()
		r0 := innodbRowsRead(t, admin)
		res, err := run()
		if err != nil {
			t.Fatal(err)
		}
		return innodbRowsRead(t, admin) - r0, res
	}
	bare, _ := rows(func() (ResyncResult, error) {
		return c.Pipeline.Resync(ctx, ResyncOptions{Feed: "products", DryRun: true, BatchSize: 1000, ThreadCount: 1})
	})
	via, res := rows(func() (ResyncResult, error) {
		return c.Resync(ctx, ResyncOptions{Feed: "products", DryRun: true, BatchSize: 1000, ThreadCount: 1})
	})
	t.Logf("%d products: dry run read %d source rows through the pipeline, %d through Connector.Resync", n, bare, via)
	if via-bare >= n/2 {
		t.Errorf("Connector.Resync read %d rows more than the pipeline's own dry run (%d products): the keys were scanned twice", via-bare, n)
	}
	if res.Progress.Total != n {
		t.Errorf("progress total %d, want the %d keys the scan counted", res.Progress.Total, n)
	}
}

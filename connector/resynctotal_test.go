package connector

import (
	"context"
	"errors"
	"testing"

	"github.com/feedcdc/feedcdc/config"
	"github.com/feedcdc/feedcdc/state"
	"github.com/feedcdc/feedcdc/test/catalog"
	"github.com/feedcdc/feedcdc/test/kafkatest"
)

// TestResyncStatusHasTotal: while a throttled full sync runs, the progress
// record in the state (what `feedcdc status` and the dashboard show) holds
// the total Connector.Resync counted before it started, not only the keys
// processed so far.
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
	if got.Total != want {
		t.Errorf("status of a running resync: total %d, want %d (the entities counted before it started)", got.Total, want)
	}
	cancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("resync after cancel: %v", err)
	}
}

package connector

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/feedcdc/feedcdc/connector/binlog"
	"github.com/feedcdc/feedcdc/state"
	"github.com/feedcdc/feedcdc/test/catalog"
	"github.com/feedcdc/feedcdc/test/kafkatest"
)

// TestRunResumesAnUnfinishedFullSync: a full sync that an earlier run left
// unfinished (a checkpoint exists, the progress is not finished) is resumed
// by the next Run after its last completed chunk.
func TestRunResumesAnUnfinishedFullSync(t *testing.T) {
	ctx := context.Background()
	db := srv.NewDatabase(t, "resume")
	admin := srv.Admin(t, db)
	if _, err := catalog.Load(ctx, admin, catalog.Tiny(), 4); err != nil {
		t.Fatal(err)
	}
	kafka := kafkatest.Start(t)
	cfg := e2eConfig(t, db, kafka.Addr(), "")
	c := openConnector(t, cfg, OpenOptions{})
	pos, err := binlog.CurrentPosition(ctx, c.SourceConfig())
	if err != nil {
		t.Fatal(err)
	}
	var lastKey int
	if err := admin.QueryRow("SELECT entity_id FROM catalog_product_entity ORDER BY entity_id LIMIT 1 OFFSET 19").Scan(&lastKey); err != nil {
		t.Fatal(err)
	}
	if err := c.Store.Update(ctx, func(tx *state.Tx) error {
		if err := tx.SetCheckpoint(pos, time.Now()); err != nil {
			return err
		}
		return tx.PutProgress(state.Progress{Feed: "products", LastKey: strconv.Itoa(lastKey), Chunks: 1, Processed: 20, Position: pos, StartedAt: time.Now()})
	}); err != nil {
		t.Fatal(err)
	}
	startRun(t, c, RunOptions{NoSchedule: true})
	deadline := time.Now().Add(time.Minute)
	for {
		p, ok, _ := c.Store.Progress(ctx, "products")
		if ok && p.Finished() {
			if p.Processed <= 20 || p.Chunks < 2 {
				t.Fatalf("resumed sync did nothing: %+v", p)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("unfinished full sync not resumed: %+v", p)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Only entities after the last completed chunk were built.
	items, _, err := c.Store.ListItems(ctx, state.ListQuery{Feed: "products", Limit: 1000})
	if err != nil || len(items) == 0 {
		t.Fatalf("%d items (%v)", len(items), err)
	}
	for _, it := range items {
		if k, _ := strconv.Atoi(it.EntityKey); k <= lastKey {
			t.Fatalf("entity %d was rebuilt although its chunk had completed", k)
		}
	}
	// Feeds that had no unfinished sync were not full-synced (not a first start).
	if p, ok, _ := c.Store.Progress(ctx, "variants"); ok {
		t.Fatalf("variants full-synced on a restart: %+v", p)
	}
}

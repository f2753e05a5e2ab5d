package connector

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/feedcdc/feedcdc/test/catalog"
	"github.com/feedcdc/feedcdc/test/kafkatest"
)

// TestTruncateRebuildsFeedsAndStreamsATruncateRecord: TRUNCATE writes no row
// events. Emptying the varchar values (names, URL keys) must change every
// product item; emptying the permissions index must turn every
// productOverrides item into a deleted one; and a raw stream of a truncated
// table gets a truncate record (op "t", no key) after its earlier rows.
func TestTruncateRebuildsFeedsAndStreamsATruncateRecord(t *testing.T) {
	ctx := context.Background()
	db := srv.NewDatabase(t, "trunc")
	admin := srv.Admin(t, db)
	if _, err := catalog.Load(ctx, admin, catalog.Tiny(), 41); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec("CREATE TABLE events (id INT PRIMARY KEY, v INT)"); err != nil {
		t.Fatal(err)
	}
	kafka := kafkatest.Start(t)
	cfg := e2eConfig(t, db, kafka.Addr(), "raw:\n  enabled: true\n  tombstones: false\n")
	c := openConnector(t, cfg, OpenOptions{})
	runErr, _ := startRun(t, c, RunOptions{NoSchedule: true})
	waitFullSyncs(t, c)
	overrides, _ := c.Store.Counts(ctx, "productOverrides")
	if overrides.Sent == 0 {
		t.Fatal("the catalog has no productOverrides items to delete")
	}
	for _, q := range []string{"INSERT INTO events VALUES (1, 1), (2, 2)", "TRUNCATE TABLE catalog_product_entity_varchar",
		"TRUNCATE magento_catalogpermissions_index_product", "TRUNCATE TABLE events", "INSERT INTO events VALUES (3, 3)"} {
		if _, err := admin.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	waitCaughtUp(t, c, admin, runErr)
	if err := c.Pipeline.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if bad, detail := feedsInKafka(t, kafka, db, c.Registry.Feeds()); bad > 0 {
		t.Fatalf("after the TRUNCATEs the feeds differ from a fresh build: %s", detail)
	}
	after, _ := c.Store.Counts(ctx, "productOverrides")
	if after.Deleted != overrides.Sent {
		t.Fatalf("productOverrides: %d items deleted after the permissions index was truncated, want all %d", after.Deleted, overrides.Sent)
	}
	recs, err := kafka.ReadAll(ctx, db+"."+db+".events")
	if err != nil {
		t.Fatal(err)
	}
	var ops []string
	for _, r := range recs {
		var env struct {
			Op string `json:"op"`
		}
		if err := json.Unmarshal(r.Value, &env); err != nil {
			t.Fatal(err)
		}
		if env.Op == "t" && len(r.Key) != 0 {
			t.Errorf("truncate record with key %s", r.Key)
		}
		ops = append(ops, env.Op)
	}
	if got := ops; len(got) != 4 || got[0] != "c" || got[1] != "c" || got[2] != "t" || got[3] != "c" {
		t.Fatalf("raw events stream ops %v, want [c c t c]", got)
	}
}

package connector

import (
	"context"
	"encoding/json"
	"testing"
)

// TestStoreFilterExportsOnlyListedStoreViews: feeds.<feed>.stores limits the
// exported items; narrowing it later deletes the items of dropped stores.
func TestStoreFilterExportsOnlyListedStoreViews(t *testing.T) {
	e := newEnv(t, nil, nil)
	ctx := context.Background()
	var code string
	if err := e.admin.QueryRow("SELECT code FROM store WHERE store_id > 0 ORDER BY store_id LIMIT 1").Scan(&code); err != nil {
		t.Fatal(err)
	}
	res, err := e.p.Resync(ctx, ResyncOptions{Feed: "products"})
	if err != nil {
		t.Fatal(err)
	}
	all := res.Stats.Sent
	e.p.o.Policies["products"] = FeedPolicy{Stores: []string{code}}
	res, err = e.p.Resync(ctx, ResyncOptions{Feed: "products"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Stats.Deleted == 0 || res.Stats.Deleted >= all {
		t.Fatalf("narrowing to store %s deleted %d of %d items", code, res.Stats.Deleted, all)
	}
	live := 0
	for _, r := range e.records(t, "products") {
		var v struct {
			StoreViewCode string `json:"storeViewCode"`
			Deleted       bool   `json:"deleted"`
		}
		if err := json.Unmarshal(r.Value, &v); err != nil {
			t.Fatal(err)
		}
		if !v.Deleted {
			live++
			if v.StoreViewCode != code {
				t.Fatalf("item of store %s exported with stores: [%s]", v.StoreViewCode, code)
			}
		}
	}
	if live == 0 || live+res.Stats.Deleted != all {
		t.Fatalf("live %d + deleted %d != %d", live, res.Stats.Deleted, all)
	}
}

package connector

import (
	"context"
	"slices"
	"sort"
	"testing"

	"github.com/feedcdc/feedcdc/state"
	"github.com/feedcdc/feedcdc/test/catalog"
)

// TestVerifyCountsDeferredKeysAsUnsettled: the entities of a big
// transaction wait in the state's deferred set until the exporter builds
// them; until then their rows differ from what was delivered, but they are
// in flight, not drift. Rows of three products change with the binlog off
// (one updated, one deleted, as a big transaction would), two of them are
// put into the deferred set; verify --repair reports the deferred ones'
// items unsettled (not stale or orphaned), repairs only the third, and the
// deferred keys stay for the exporter.
func TestVerifyCountsDeferredKeysAsUnsettled(t *testing.T) {
	ctx := context.Background()
	db := srv.NewDatabase(t, "verifydeferred")
	admin := srv.Admin(t, db)
	if _, err := catalog.Load(ctx, admin, catalog.Tiny(), 7); err != nil {
		t.Fatal(err)
	}
	cy := connectorYAML{Name: "verifydeferred", Database: db,
		Feeds:    []string{"productAttributes: {enabled: false}", "variants: {enabled: false}", "productOverrides: {enabled: false}"},
		Sections: unthrottledResync + "sinks:\n  files:\n    type: file\n    file:\n      dir: " + t.TempDir() + "\n      fsync: false\n"}
	cfg := cy.load(t)
	c := openConnector(t, cfg, OpenOptions{})
	runErr, stop := startRun(t, c, RunOptions{NoSchedule: true})
	defer stop()
	waitFullSyncs(t, c)
	waitCaughtUp(t, c, admin, runErr)
	if err := c.Pipeline.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	f, _ := c.Registry.Feed("products")

	var products []string
	rows, err := admin.QueryContext(ctx, `SELECT entity_id FROM catalog_product_entity ORDER BY entity_id`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		if len(buildEntities(t, f, id)) > 0 {
			products = append(products, id)
		}
	}
	rows.Close()
	if len(products) < 3 {
		t.Fatalf("need 3 products with items, have %v", products)
	}
	Y, Z, S := products[0], products[1], products[2]
	before := buildEntities(t, f, Y, Z, S)

	conn, err := admin.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	nameAttr := `(SELECT a.attribute_id FROM eav_attribute a JOIN eav_entity_type t ON t.entity_type_id = a.entity_type_id
		WHERE t.entity_type_code = 'catalog_product' AND a.attribute_code = 'name')`
	for _, q := range []struct {
		sql string
		arg string
	}{
		{"SET SESSION sql_log_bin = 0", ""},
		{`UPDATE catalog_product_entity_varchar SET value = CONCAT(value, ' deferred') WHERE entity_id = ? AND attribute_id = ` + nameAttr, Y},
		{"DELETE FROM catalog_product_entity WHERE entity_id = ?", Z},
		{`UPDATE catalog_product_entity_varchar SET value = CONCAT(value, ' drift') WHERE entity_id = ? AND attribute_id = ` + nameAttr, S},
	} {
		args := []any{}
		if q.arg != "" {
			args = append(args, q.arg)
		}
		if _, err := conn.ExecContext(ctx, q.sql, args...); err != nil {
			t.Fatalf("%s: %v", q.sql, err)
		}
	}
	conn.Close()
	// Y and Z wait in the deferred set, as the keys of a big transaction
	// whose end is not exported yet. (The running exporter counted the set
	// at start, so it does not build them behind the test's back.)
	if err := c.Store.Update(ctx, func(tx *state.Tx) error {
		_, err := tx.PutDeferred("products", []string{Y, Z})
		return err
	}); err != nil {
		t.Fatal(err)
	}

	after := buildEntities(t, f, Y, Z, S)
	var wantUnsettled, wantStale []string
	for id, it := range before {
		a, ok := after[id]
		switch {
		case it.EntityKey == Y || it.EntityKey == Z:
			wantUnsettled = append(wantUnsettled, id)
		case ok && a.Hash != it.Hash:
			wantStale = append(wantStale, id)
		}
	}
	sort.Strings(wantUnsettled)
	sort.Strings(wantStale)
	if len(wantStale) == 0 || len(wantUnsettled) < 2 {
		t.Fatalf("the test's drift is not what it meant: unsettled %v stale %v", wantUnsettled, wantStale)
	}

	res, err := c.Verify(ctx, VerifyOptions{Feed: "products", Repair: true, Examples: 1000})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("verify: checked %d, counts %v, drift %d", res.Checked, res.Counts, res.Drift)
	for result, want := range map[string][]string{VerifyUnsettled: wantUnsettled, VerifyStale: wantStale,
		VerifyOrphaned: nil, VerifyMissing: nil} {
		if got := idsOf(res, result); !slices.Equal(got, want) {
			t.Errorf("%s: got %v, want %v", result, got, want)
		}
		if res.Counts[result] != int64(len(want)) {
			t.Errorf("%s: count %d, want %d", result, res.Counts[result], len(want))
		}
	}
	if res.Drift != int64(len(wantStale)) {
		t.Errorf("drift %d, want %d", res.Drift, len(wantStale))
	}
	if res.Repair == nil || res.Repair.Sent != len(wantStale) {
		t.Errorf("repair: %+v, want %d sent (the stale items only)", res.Repair, len(wantStale))
	}
	waiting, err := c.Store.DeferredAmong(ctx, "products", []string{Y, Z, S})
	if err != nil {
		t.Fatal(err)
	}
	if !waiting[Y] || !waiting[Z] || waiting[S] || len(waiting) != 2 {
		t.Errorf("deferred after verify: %v, want %s and %s still waiting", waiting, Y, Z)
	}
}

package feeds

import (
	"reflect"
	"testing"
)

// TestDuplicateSkusOwnedByTheLowestEntityInEveryBuild: a duplicate sku is
// owned by the product with the lowest entity_id whether or not the owner
// is built in the same call, so that a build of the other product alone
// (another chunk, a streamed batch) makes no item with the owner's ids.
// Skus that differ in case only make different item ids and both build.
func TestDuplicateSkusOwnedByTheLowestEntityInEveryBuild(t *testing.T) {
	f := newFixture(t, append(baseCatalog,
		`INSERT INTO catalog_product_entity (entity_id, attribute_set_id, type_id, sku, created_at, updated_at) VALUES
			(50, 4, 'simple', 'S1', NOW(), NOW()), (51, 4, 'simple', 's1', NOW(), NOW()),
			(13, 4, 'simple', 'C1-red-s', NOW(), NOW())`,
		`INSERT INTO catalog_product_website (product_id, website_id) VALUES (50, 1), (51, 1), (13, 1)`,
		`INSERT INTO catalog_product_super_link (product_id, parent_id) VALUES (13, 10)`,
		`INSERT INTO magento_catalogpermissions_index_product (product_id, store_id, customer_group_id, grant_catalog_category_view, grant_catalog_product_price, grant_checkout_items) VALUES
			(50, 1, 0, -1, -1, -1)`)...)
	entities := func(items []Item) []string {
		var out []string
		for _, it := range items {
			if len(out) == 0 || out[len(out)-1] != it.EntityKey {
				out = append(out, it.EntityKey)
			}
		}
		return out
	}
	for _, c := range []struct {
		feed string
		keys []string
		want []string
	}{
		{"products", []string{"50"}, nil},
		{"products", []string{"1"}, []string{"1"}},
		{"products", []string{"51"}, []string{"51"}},
		{"products", []string{"50", "51", "1"}, []string{"1", "51"}},
		{"productOverrides", []string{"50"}, nil},
		{"productOverrides", []string{"1", "50"}, []string{"1"}},
		{"variants", []string{"13"}, nil},
		{"variants", []string{"11", "13"}, []string{"11"}},
	} {
		if got := entities(f.build(c.feed, c.keys...)); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s built of %v: items of entities %v, want %v", c.feed, c.keys, got, c.want)
		}
	}
}

// TestDuplicateSkuOwnershipMovesKeyTheOthers: a change that can move a
// sku's ownership keys the products of that sku with a higher entity_id,
// in every feed whose ids come from skus; one that cannot keys no more.
func TestDuplicateSkuOwnershipMovesKeyTheOthers(t *testing.T) {
	f := newFixture(t, append(baseCatalog,
		`INSERT INTO catalog_product_entity (entity_id, attribute_set_id, type_id, sku, created_at, updated_at) VALUES
			(50, 4, 'simple', 'S1', NOW(), NOW()), (51, 4, 'simple', 's1', NOW(), NOW()),
			(13, 4, 'simple', 'C1-red-s', NOW(), NOW()), (60, 4, 'configurable', 'C1', NOW(), NOW()),
			(61, 4, 'simple', 'C1-x', NOW(), NOW())`,
		`INSERT INTO catalog_product_super_link (product_id, parent_id) VALUES (13, 10), (61, 60)`)...)
	cols := []string{"entity_id", "type_id", "sku"}
	for _, c := range []struct {
		name          string
		before, after []any
		want          map[string][]string // by feed; a feed not listed must get nothing
	}{
		{"owner deleted", []any{uint64(1), "simple", "S1"}, nil,
			map[string][]string{"products": {"1", "50"}, "productOverrides": {"1", "50"}, "variants": {"1"}}},
		{"owner's sku changed", []any{uint64(1), "simple", "S1"}, []any{uint64(1), "simple", "S2"},
			map[string][]string{"products": {"1", "50"}, "productOverrides": {"1", "50"}}},
		{"non-owner's sku changed", []any{uint64(50), "simple", "S1"}, []any{uint64(50), "simple", "S9"},
			map[string][]string{"products": {"50"}, "productOverrides": {"50"}}},
		{"inserted below an existing id", nil, []any{uint64(5), "simple", "S1"},
			map[string][]string{"products": {"5", "50"}, "productOverrides": {"5", "50"}}},
		{"inserted above every id: no lookup", nil, []any{uint64(1000), "simple", "S1"},
			map[string][]string{"products": {"1000"}, "productOverrides": {"1000"}}},
		// 13 is a child that gains its sku.
		{"variant child deleted", []any{uint64(11), "simple", "C1-red-s"}, nil,
			map[string][]string{"products": {"11", "13"}, "productOverrides": {"11", "13"}, "variants": {"11", "13"}}},
		// 60's child 61 gains a parent (the link index dropped 11 above).
		{"parent deleted", []any{uint64(10), "configurable", "C1"}, nil,
			map[string][]string{"products": {"10", "12", "60"}, "productOverrides": {"10", "60"}, "variants": {"10", "12", "13", "61"}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := f.keysOf(f.chg("catalog_product_entity", cols, c.before, c.after))
			for _, feed := range []string{"products", "productOverrides", "variants"} {
				if !reflect.DeepEqual(got[feed], c.want[feed]) {
					t.Errorf("%s keys %v, want %v", feed, got[feed], c.want[feed])
				}
			}
		})
	}
}

package feeds

import (
	"context"
	"database/sql"
	"slices"
	"strconv"
	"testing"

	"github.com/feedcdc/feedcdc/test/catalog"
)

func TestMatchIDs(t *testing.T) {
	seq := func(from, n, step uint64) []uint64 {
		var out []uint64
		for i := range n {
			out = append(out, from+i*step)
		}
		return out
	}
	for _, tc := range []struct {
		name    string
		ids     []uint64
		want    string
		isRange bool
	}{
		{"consecutive", seq(101, 100, 1), "x BETWEEN 101 AND 200", true},
		{"every other id", seq(1, 100, 2), "x BETWEEN 1 AND 199", true},
		{"too sparse", seq(1, 100, 3), "", false},
		{"too few", seq(1, minRangeIDs-1, 1), "", false},
	} {
		m := matchIDs(tc.ids)
		if got := m.set != nil; got != tc.isRange {
			t.Errorf("%s: range %v, want %v (%s)", tc.name, got, tc.isRange, m.On("x"))
			continue
		}
		if tc.isRange && m.On("x") != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, m.On("x"), tc.want)
		}
		if !tc.isRange {
			in, _ := inList(tc.ids)
			if m.On("x") != "x IN ("+in+")" {
				t.Errorf("%s: %s, want the IN list", tc.name, m.On("x"))
			}
		}
		for _, id := range tc.ids {
			if !m.Has(id) {
				t.Errorf("%s: Has(%d) false", tc.name, id)
			}
		}
		if tc.isRange && tc.name == "every other id" && m.Has(2) {
			t.Errorf("%s: Has(2) true for an id not asked for", tc.name)
		}
	}
}

// TestBuildRangeChunkMatchesPerKeyBuilds builds a dense chunk with gaps
// (every third product id left out) in one call — read as an id range —
// and checks that every feed keyed by product id returns exactly the items
// the same keys give when built one by one (IN lists): the same ids and
// bytes, and nothing of the ids between them that were not asked for —
// first with every value table read by value_id spans, then with one
// product's int values moved far away, so that table is read through its
// (entity_id, ...) index.
func TestBuildRangeChunkMatchesPerKeyBuilds(t *testing.T) {
	ctx := context.Background()
	admin, reg, all := tinyProducts(t, 200)
	var keys []string
	var ids []uint64
	for i, k := range all {
		if i%3 != 2 {
			keys = append(keys, k)
			n, _ := strconv.ParseUint(k, 10, 64)
			ids = append(ids, n)
		}
	}
	if m := matchIDs(ids); m.set == nil {
		t.Fatalf("%d of %d product ids do not make a range chunk; the test needs one", len(ids), len(all))
	}
	compareBuilds(t, reg, keys)
	// Values added to a product later sit far from its other rows in the
	// clustered index: the chunk's value_ids of that table are no longer
	// dense and it is read through the (entity_id, ...) index instead,
	// while the other tables keep being read by value_id.
	if _, err := admin.ExecContext(ctx, `UPDATE catalog_product_entity_int SET value_id = value_id + 10000000 WHERE entity_id = ?`, ids[len(ids)/2]); err != nil {
		t.Fatal(err)
	}
	compareBuilds(t, reg, keys)
}

// compareBuilds checks that building keys in one call gives exactly the
// items of building them one by one.
func compareBuilds(t *testing.T, reg *Registry, keys []string) {
	t.Helper()
	ctx := context.Background()
	asked := map[string]bool{}
	for _, k := range keys {
		asked[k] = true
	}
	for _, name := range []string{"products", "variants", "productOverrides"} {
		f, _ := reg.Feed(name)
		got, err := f.Build(ctx, keys)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		want := map[string]string{}
		for _, k := range keys {
			items, err := f.Build(ctx, []string{k})
			if err != nil {
				t.Fatalf("%s: key %s: %v", name, k, err)
			}
			for _, it := range items {
				want[it.ID] = string(it.Data)
			}
		}
		if len(want) == 0 {
			t.Fatalf("%s: no items for %d keys", name, len(keys))
		}
		for _, it := range got {
			if !asked[it.EntityKey] {
				t.Errorf("%s: item %s of entity %s, which was not asked for", name, it.ID, it.EntityKey)
			} else if want[it.ID] != string(it.Data) {
				t.Errorf("%s: item %s differs from its per-key build:\n got %s\nwant %s", name, it.ID, it.Data, want[it.ID])
			}
		}
		if len(got) != len(want) {
			t.Errorf("%s: %d items, want %d", name, len(got), len(want))
		}
	}
}

// TestScatteredValueTablesStopAskingForSpans: a value table whose range
// chunks keep finding their value_ids scattered (values written after the
// products, as store-view values usually are) is read through its index
// without a span query after spanMisses such chunks, and asked again
// every spanSkip+1 chunks; a dense table is asked every time. The builds
// stay those of per-key reads.
func TestScatteredValueTablesStopAskingForSpans(t *testing.T) {
	ctx := context.Background()
	admin, reg, keys := tinyProducts(t, 400)
	products, _ := reg.Feed("products")
	var ids []uint64
	for _, k := range keys {
		n, _ := strconv.ParseUint(k, 10, 64)
		ids = append(ids, n)
	}
	slices.Sort(ids)
	// Every other product's int values move far away: no chunk of the int
	// table is dense any more; the varchar table stays dense.
	if _, err := admin.ExecContext(ctx, `UPDATE catalog_product_entity_int SET value_id = value_id + 10000000 WHERE entity_id % 2 = 0`); err != nil {
		t.Fatal(err)
	}
	// The range chunks of the catalog, built round after round.
	var parts [][]string
	for i := 0; i+minRangeIDs <= len(ids); i += minRangeIDs {
		part := ids[i : i+minRangeIDs]
		if !matchIDs(part).isRange() {
			continue
		}
		keys := make([]string, len(part))
		for j, id := range part {
			keys[j] = strconv.FormatUint(id, 10)
		}
		parts = append(parts, keys)
	}
	if len(parts) == 0 {
		t.Fatal("no range chunk; the test needs some")
	}
	chunks := 0
	for chunks < 3*(spanSkip+1) {
		for _, keys := range parts {
			got, err := products.Build(ctx, keys)
			if err != nil {
				t.Fatal(err)
			}
			chunks++
			if chunks%25 != 1 {
				continue
			}
			// Read by span or through the index, the same items as
			// per-key builds (IN lists, which ask for no span).
			want := map[string]string{}
			for _, k := range keys {
				items, err := products.Build(ctx, []string{k})
				if err != nil {
					t.Fatal(err)
				}
				for _, it := range items {
					want[it.ID] = string(it.Data)
				}
			}
			if len(got) != len(want) || len(got) == 0 {
				t.Fatalf("chunk %d: %d items, per-key builds %d", chunks, len(got), len(want))
			}
			for _, it := range got {
				if want[it.ID] != string(it.Data) {
					t.Fatalf("chunk %d: item %s differs from its per-key build:\n got %s\nwant %s", chunks, it.ID, it.Data, want[it.ID])
				}
			}
		}
	}
	spans := &reg.env.spans
	ints, varchars := spans.m["catalog_product_entity_int"], spans.m["catalog_product_entity_varchar"]
	if max := spanMisses + chunks/(spanSkip+1) + 1; ints == nil || ints.asked > max {
		t.Errorf("the scattered int table was asked for its span %v times in %d chunks, want at most %d", ints, chunks, max)
	}
	if varchars == nil || varchars.asked != chunks {
		t.Errorf("the dense varchar table was asked for its span %v times in %d chunks, want every time", varchars, chunks)
	}
}

// tinyProducts loads the tiny catalog with n simple products and returns
// the products feed's keys.
func tinyProducts(t *testing.T, n int) (*sql.DB, *Registry, []string) {
	t.Helper()
	p := catalog.Tiny()
	p.SimpleProducts = n
	_, admin, reg := loadCatalog(t, p, 1000)
	products, _ := reg.Feed("products")
	var keys []string
	if err := products.Scan(context.Background(), func(k []string) error { keys = append(keys, k...); return nil }); err != nil {
		t.Fatal(err)
	}
	return admin, reg, keys
}

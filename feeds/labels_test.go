package feeds

import (
	"fmt"
	"strings"
	"testing"

	"github.com/feedcdc/feedcdc/change"
)

// TestOptionLabelsCachedUntilALabelTableChanges: builds read an option's
// labels once; a change of a label table the registry is told of (the
// stream's Registry.Keys, or TableReplaced for a TRUNCATE or a swap)
// makes the next build read them again, and a delete that removes labels
// by cascade (the option's) is such a change too.
func TestOptionLabelsCachedUntilALabelTableChanges(t *testing.T) {
	f := newFixture(t, baseCatalog...)
	color := func() string {
		t.Helper()
		for _, it := range f.build("products", "1") {
			if it.Identity["storeViewCode"] == "fr" {
				s := string(it.Data)
				i := strings.Index(s, `{"attributeCode":"color"`)
				if i < 0 {
					t.Fatalf("no color attribute in %s", s)
				}
				return s[i : i+strings.Index(s[i:], "}")+1]
			}
		}
		t.Fatal("no fr item of product 1")
		return ""
	}
	const rouge = `{"attributeCode":"color","value":["Rouge"],"valueId":["10"]}`
	if got := color(); got != rouge {
		t.Fatalf("before: %s, want %s", got, rouge)
	}
	// The source changes; the stream has not seen it yet: the cached
	// label is used (as a build before the change would have read it).
	f.exec(`UPDATE eav_attribute_option_value SET value = 'Cramoisi' WHERE option_id = 10 AND store_id = 2`)
	if got := color(); got != rouge {
		t.Fatalf("a label change the registry was not told of: %s, want the cached %s", got, rouge)
	}
	// The stream collects the change: the next build reads the labels.
	f.keysOf(f.chg("eav_attribute_option_value", []string{"value_id", "option_id", "store_id", "value"},
		[]any{uint64(2), uint64(10), uint64(2), "Rouge"}, []any{uint64(2), uint64(10), uint64(2), "Cramoisi"}))
	if got, want := color(), `{"attributeCode":"color","value":["Cramoisi"],"valueId":["10"]}`; got != want {
		t.Fatalf("after the change reached Keys: %s, want %s", got, want)
	}
	// A TRUNCATE (no row events): TableReplaced drops the cache.
	f.exec(`UPDATE eav_attribute_option_value SET value = 'Vermillon' WHERE option_id = 10 AND store_id = 2`)
	f.reg.TableReplaced(&change.Table{DB: f.db, Name: "eav_attribute_option_value"})
	if got, want := color(), `{"attributeCode":"color","value":["Vermillon"],"valueId":["10"]}`; got != want {
		t.Fatalf("after TableReplaced: %s, want %s", got, want)
	}
}

// TestLabelCacheDropsAReadThatRacedAChange: labels read while a label
// table changed are not cached (they may predate the change).
func TestLabelCacheDropsAReadThatRacedAChange(t *testing.T) {
	var c labelCache
	out := map[uint64]storeLabels{}
	missing, gen := c.lookup([]uint64{7}, out)
	if len(missing) != 1 {
		t.Fatalf("missing %v, want [7]", missing)
	}
	c.changed("eav_attribute_option_value") // the stream saw a label change while the read ran
	c.store(gen, missing, map[uint64]storeLabels{7: {{0, "old"}}})
	if missing, _ := c.lookup([]uint64{7}, out); len(missing) != 1 || len(out) != 0 {
		t.Fatalf("a read that raced a change was cached: missing %v, out %v", missing, out)
	}
	missing, gen = c.lookup([]uint64{7, 8}, out)
	c.store(gen, missing, map[uint64]storeLabels{7: {{0, "new"}}})
	if missing, _ := c.lookup([]uint64{7, 8}, out); len(missing) != 0 || func() bool { l, _ := out[7].label(0); return l != "new" }() || out[8] != nil {
		t.Fatalf("after a clean read: missing %v, out %v (8 has no labels and is cached as such)", missing, out)
	}
}

// TestStoresAndAttributesCachedUntilAMetaTableChanges: builds read the
// store views and the attributes' metadata once; a change of one of their
// tables the registry is told of makes the next build read them again.
// Committed drops them once more: the stream reads a change before it is
// visible to other sessions, so a build in between may have cached the
// rows as they were.
func TestStoresAndAttributesCachedUntilAMetaTableChanges(t *testing.T) {
	f := newFixture(t, baseCatalog...)
	views := func() string {
		t.Helper()
		var out []string
		for _, it := range f.build("products", "1") {
			out = append(out, it.Identity["storeViewCode"])
		}
		return strings.Join(out, ",")
	}
	storeChange := f.chg("store", []string{"store_id", "code"}, []any{uint64(2), "fr"}, []any{uint64(2), "fr2"})
	before := views()
	if !strings.Contains(before, "fr") || strings.Contains(before, "fr2") {
		t.Fatalf("store views before: %s", before)
	}
	f.exec(`UPDATE store SET code = 'fr2' WHERE store_id = 2`)
	if got := views(); got != before {
		t.Fatalf("a store change the registry was not told of: %s, want the cached %s", got, before)
	}
	f.keysOf(storeChange)
	if got := views(); !strings.Contains(got, "fr2") {
		t.Fatalf("after the store change reached Keys: %s, want fr2", got)
	}

	// The visibility window: Keys drops the cache, a build re-reads the
	// rows before the change is visible (here: before it is made), and
	// only Committed, after the batch's fence, drops that read.
	hasColour := func() bool {
		t.Helper()
		for _, it := range f.build("products", "1") {
			if strings.Contains(string(it.Data), `"attributeCode":"colour"`) {
				return true
			}
		}
		return false
	}
	attrChange := f.chg("eav_attribute", []string{"attribute_id", "attribute_code"}, []any{uint64(0), "color"}, []any{uint64(0), "colour"})
	f.keysOf(attrChange)
	if hasColour() {
		t.Fatal("colour before the change was made")
	}
	f.exec(`UPDATE eav_attribute SET attribute_code = 'colour' WHERE attribute_code = 'color' AND entity_type_id = 4`)
	if hasColour() {
		t.Fatal("the read made before the change was visible is not cached")
	}
	f.reg.Committed(attrChange)
	if !hasColour() {
		t.Fatal("after Committed: the attribute code is still the cached color")
	}
	if f.reg.Caches(f.chg("catalog_product_entity", nil, nil, nil)) || !f.reg.Caches(attrChange) || !f.reg.Caches(storeChange) {
		t.Fatal("Caches names the wrong tables")
	}
}

// TestLabelCacheForgetsOnlyTheChangedOptions: a label edit forgets the
// labels of its option only (a catalog whose labels are edited now and
// then kept nothing cached before: every edit dropped every label), a
// deleted store view or attribute forgets all (their labels go by
// cascade), and their updates none.
func TestLabelCacheForgetsOnlyTheChangedOptions(t *testing.T) {
	tbl := func(name string, cols ...string) *change.Table {
		t := &change.Table{DB: "shop", Name: name}
		for _, c := range cols {
			t.Columns = append(t.Columns, change.Column{Name: c})
		}
		return t
	}
	optionValue := tbl("eav_attribute_option_value", "value_id", "option_id", "store_id", "value")
	store := tbl("store", "store_id", "code")
	fill := func(c *labelCache) {
		missing, gen := c.lookup([]uint64{7, 8, 9}, map[uint64]storeLabels{})
		c.store(gen, missing, map[uint64]storeLabels{7: {{0, "a"}}, 8: {{0, "b"}}, 9: {{0, "c"}}})
	}
	missing := func(c *labelCache) []uint64 {
		m, _ := c.lookup([]uint64{7, 8, 9}, map[uint64]storeLabels{})
		return m
	}
	for _, tc := range []struct {
		name string
		c    *change.Change
		want string
	}{
		{"a label edit", &change.Change{Table: optionValue, Op: change.OpUpdate, Before: []any{uint64(1), uint64(8), uint64(0), "b"}, After: []any{uint64(1), uint64(8), uint64(0), "B"}}, "[8]"},
		{"a label moved to another option", &change.Change{Table: optionValue, Op: change.OpUpdate, Before: []any{uint64(1), uint64(8), uint64(0), "b"}, After: []any{uint64(1), uint64(9), uint64(0), "b"}}, "[8 9]"},
		{"an option deleted", &change.Change{Table: tbl("eav_attribute_option", "option_id", "attribute_id"), Op: change.OpDelete, Before: []any{uint64(7), uint64(93)}}, "[7]"},
		{"a label row without its option id (minimal row image)", &change.Change{Table: tbl("eav_attribute_option_value", "value_id"), Op: change.OpDelete, Before: []any{uint64(1)}}, "[7 8 9]"},
		{"a store view renamed", &change.Change{Table: store, Op: change.OpUpdate, Before: []any{uint64(2), "fr"}, After: []any{uint64(2), "fr2"}}, "[]"},
		{"a store view deleted", &change.Change{Table: store, Op: change.OpDelete, Before: []any{uint64(2), "fr"}}, "[7 8 9]"},
		{"an attribute deleted", &change.Change{Table: tbl("eav_attribute", "attribute_id"), Op: change.OpDelete, Before: []any{uint64(93)}}, "[7 8 9]"},
	} {
		var c labelCache
		fill(&c)
		c.changedRow(tc.c)
		if got := fmt.Sprint(missing(&c)); got != tc.want {
			t.Errorf("%s: not cached any more %s, want %s", tc.name, got, tc.want)
		}
	}
}

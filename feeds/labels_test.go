package feeds

import (
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
	out := map[uint64]map[uint64]string{}
	missing, gen := c.lookup([]uint64{7}, out)
	if len(missing) != 1 {
		t.Fatalf("missing %v, want [7]", missing)
	}
	c.changed("eav_attribute_option_value") // the stream saw a label change while the read ran
	c.store(gen, missing, map[uint64][]storeLabel{7: {{0, "old"}}})
	if missing, _ := c.lookup([]uint64{7}, out); len(missing) != 1 || len(out) != 0 {
		t.Fatalf("a read that raced a change was cached: missing %v, out %v", missing, out)
	}
	missing, gen = c.lookup([]uint64{7, 8}, out)
	c.store(gen, missing, map[uint64][]storeLabel{7: {{0, "new"}}})
	if missing, _ := c.lookup([]uint64{7, 8}, out); len(missing) != 0 || out[7][0] != "new" || out[8] != nil {
		t.Fatalf("after a clean read: missing %v, out %v (8 has no labels and is cached as such)", missing, out)
	}
}

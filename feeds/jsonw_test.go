package feeds

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
)

func TestHandEncoderMatchesEncodingJSON(t *testing.T) {
	tricky := []string{"", "plain", `quote " and \ backslash`, "<b>html</b> & more", "ctrl \x00\x01\x1f \b\f\n\r\t end",
		"line\u2028sep\u2029para", "bad utf8 \xff\xfe x", "emoji 🙂 ü ß", "\x7f del", "trailing \\"}
	n := json.Number("12.5")
	for i, s := range tricky {
		s2 := tricky[(i+1)%len(tricky)]
		pl := productPayload{
			SKU: s, StoreViewCode: s2, StoreCode: s, WebsiteCode: s2, ProductID: uint64(i) * 1e9, Type: "simple",
			Name: &s, Description: &s2, Displayable: i%2 == 0, InStock: true, Weight: &n,
			Prices:       productPrices{SpecialPrice: &n, SpecialToDate: &s},
			Image:        &imageRef{URL: s, Label: &s2},
			SwatchImage:  &imageRef{URL: s2},
			CategoryData: []categoryRef{{CategoryID: "5", CategoryPath: s, ProductPosition: -3}},
			Parents:      []parentRef{{SKU: s2, ProductType: "configurable"}},
			Attributes:   []attributeValue{{AttributeCode: s, Value: []string{s, s2}, ValueID: []string{"1", "2"}}, {AttributeCode: "x", Value: []string{s2}}},
			CreatedAt:    "2025-01-01 00:00:00", Deleted: i%3 == 0,
		}
		if i%2 == 1 {
			pl.Inventory = &inventory{Qty: &n, IsInStock: true}
			pl.CategoryData, pl.Parents, pl.Attributes = []categoryRef{}, nil, []attributeValue{}
		}
		want, err := canonical(&struct{ productPayload }{pl})
		if err != nil {
			t.Fatal(err)
		}
		got := pl.appendJSON(nil)
		if string(got) != string(want) {
			t.Errorf("case %d:\n got %s\nwant %s", i, got, want)
		}
	}
}

// TestArenaItemsMatchNewItem builds product items through the arena (the
// full-sync path: Data in shared slabs, the payload encoded once into a
// scratch buffer) and checks each against newItem's encoding/json path:
// the same id, hash and bytes, after the whole batch (a slab shared wrongly
// would have overwritten earlier items), and that appending to one item's
// Data leaves every other item as it was.
func TestArenaItemsMatchNewItem(t *testing.T) {
	var arena itemArena
	var got, want []Item
	n := json.Number("7.25")
	for i := range 1500 {
		desc := strings.Repeat("désc <&> \"q\" ", i%40)
		if i%250 == 7 {
			desc = strings.Repeat("x", ownBuffer+i) // a buffer of its own
		}
		sku, view := "sku-"+strconv.Itoa(i), []string{"default", "fr", "de"}[i%3]
		pl := productPayload{SKU: sku, StoreViewCode: view, StoreCode: "main", WebsiteCode: "base", ProductID: uint64(i), Type: "simple",
			Description: &desc, Weight: &n, CategoryData: []categoryRef{}, Parents: []parentRef{},
			Attributes: []attributeValue{{AttributeCode: "color", Value: []string{"Red", desc}, ValueID: []string{"1", "2"}}},
			CreatedAt:  "2025-01-01 00:00:00"}
		ident := map[string]string{"sku": sku, "storeViewCode": view}
		updated := ""
		if i%2 == 0 {
			updated = "2025-02-03 04:05:06"
		}
		got = append(got, arena.newItem("products", FeedID(sku, view), strconv.Itoa(i), ident, &pl, updated, "2026-01-02 03:04:05"))
		w, err := newItem("products", strconv.Itoa(i), []string{"sku", "storeViewCode"}, ident, &struct{ productPayload }{pl}, updated, "2026-01-02 03:04:05")
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, w)
	}
	check := func(when string) {
		t.Helper()
		for i := range got {
			g, w := got[i], want[i]
			if g.ID != w.ID || g.Hash != w.Hash || g.EntityKey != w.EntityKey || string(g.Data) != string(w.Data) {
				t.Fatalf("%s: item %d:\n got %s %s %s\nwant %s %s %s", when, i, g.ID, g.Hash, g.Data, w.ID, w.Hash, w.Data)
			}
		}
	}
	check("after the batch")
	for i := range got {
		_ = append(got[i].Data, '!')
	}
	check("after appending to each item's Data")
}

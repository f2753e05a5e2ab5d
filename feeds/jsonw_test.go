package feeds

import (
	"encoding/json"
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

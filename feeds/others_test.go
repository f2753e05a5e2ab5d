package feeds

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/feedcdc/feedcdc/change"
	"github.com/feedcdc/feedcdc/state"
)

func TestProductAttributes(t *testing.T) {
	f := newFixture(t, baseCatalog...)
	fd := f.feed("productAttributes")
	items := f.build("productAttributes", "93", "300", "45", "9999")
	// 45 is a category attribute and 9999 does not exist: no items.
	if got, want := identities(fd, items), []string{"color/de", "color/default", "color/fr", "material/de", "material/default", "material/fr"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("identities %v want %v", got, want)
	}
	m := byIdentity(fd, items)
	assertJSON(t, m["color/fr"], `{"id":"93","storeCode":"main_website_store","websiteCode":"base","storeViewCode":"fr","attributeCode":"color",
		"attributeType":"catalog_product","dataType":"int","multi":false,"label":"Couleur","frontendInput":"select","required":false,"unique":false,
		"global":true,"scope":"global","visible":true,"searchable":true,"filterable":true,"visibleInCompareList":true,"visibleInListing":false,
		"sortable":false,"visibleInSearch":true,"filterableInSearch":true,"searchWeight":1,"usedForRules":false,"boolean":false,
		"systemAttribute":false,"numeric":false,
		"options":[{"id":"10","label":"Rouge","sortOrder":1},{"id":"11","label":"Blue","sortOrder":2}],
		"deleted":false,"modifiedAt":"2026-01-02 03:04:05"}`)
	if !containsJSON(m["color/de"].Data, `"label":"Color"`) || !containsJSON(m["color/de"].Data, `{"id":"10","label":"Red","sortOrder":1}`) {
		t.Errorf("de falls back to admin labels: %s", m["color/de"].Data)
	}
	if !containsJSON(m["material/default"].Data, `"multi":true`) || !containsJSON(m["material/default"].Data, `"scope":"store"`) {
		t.Errorf("material: %s", m["material/default"].Data)
	}
	// Store removed: its items vanish (deleted payload once).
	prev := prevFrom(items)
	keys := f.keysOf(f.chg("store", []string{"store_id", "code", "website_id", "group_id"}, []any{uint64(3), "de", uint64(2), uint64(2)}, nil))
	if !contains(keys["productAttributes"], "93") || !contains(keys["productAttributes"], "300") {
		t.Fatalf("store delete keys: %v", keys["productAttributes"])
	}
	f.exec(`DELETE FROM store WHERE store_id = 3`)
	ch, del, unchanged := Diff(fd, f.build("productAttributes", "93", "300"), prev)
	if len(ch) != 0 || unchanged != 4 || !reflect.DeepEqual(identities(fd, del), []string{"color/de", "material/de"}) {
		t.Fatalf("changed %d unchanged %d deleted %v", len(ch), unchanged, identities(fd, del))
	}
	assertJSON(t, byIdentity(fd, del)["color/de"], `{"id":"93","websiteCode":"second","storeCode":"second_store","storeViewCode":"de",
		"attributeCode":"color","attributeType":"catalog_product","deleted":true,"modifiedAt":"2026-01-02 03:04:05"}`)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestProductAttributesKeys(t *testing.T) {
	f := newFixture(t, baseCatalog...)
	all := []string{"73", "74", "75", "76", "77", "78", "79", "80", "81", "82", "83", "84", "85", "86", "87", "88", "89", "90", "92", "93", "94", "95", "97", "99"}
	cases := []struct {
		name string
		c    *change.Change
		want []string
		all  bool
	}{
		{"eav_attribute", f.chg("eav_attribute", []string{"attribute_id", "attribute_code"}, []any{uint64(93), "color"}, []any{uint64(93), "colour"}), []string{"93"}, false},
		{"catalog_eav_attribute", f.chg("catalog_eav_attribute", []string{"attribute_id", "is_filterable"}, []any{uint64(300), uint64(1)}, []any{uint64(300), uint64(0)}), []string{"300"}, false},
		{"label", f.chg("eav_attribute_label", []string{"attribute_label_id", "attribute_id", "store_id", "value"}, nil, []any{uint64(5), uint64(200), uint64(3), "Größe"}), []string{"200"}, false},
		{"option", f.chg("eav_attribute_option", []string{"option_id", "attribute_id", "sort_order"}, []any{uint64(11), uint64(93), uint64(2)}, nil), []string{"93"}, false},
		{"option label", f.chg("eav_attribute_option_value", []string{"value_id", "option_id", "store_id", "value"}, nil, []any{uint64(50), uint64(31), uint64(2), "Laine"}), []string{"300"}, false},
		{"store added", f.chg("store", []string{"store_id", "code", "website_id", "group_id"}, nil, []any{uint64(4), "at", uint64(2), uint64(2)}), nil, true},
		{"website code", f.chg("store_website", []string{"website_id", "code"}, []any{uint64(2), "second"}, []any{uint64(2), "x"}), nil, true},
		{"group code", f.chg("store_group", []string{"group_id", "website_id", "code"}, []any{uint64(2), uint64(2), "a"}, []any{uint64(2), uint64(2), "b"}), nil, true},
		{"store sort order only", f.chg("store", []string{"store_id", "code", "website_id", "group_id", "sort_order"}, []any{uint64(3), "de", uint64(2), uint64(2), uint64(0)}, []any{uint64(3), "de", uint64(2), uint64(2), uint64(1)}), nil, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := f.keysOf(tc.c)["productAttributes"]
			if tc.all {
				for _, k := range append(all, "200", "300") {
					if !contains(got, k) {
						t.Errorf("missing %s in %v", k, got)
					}
				}
				if contains(got, "45") {
					t.Errorf("category attribute keyed: %v", got)
				}
				return
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %v want %v", got, tc.want)
			}
		})
	}
}

func TestVariants(t *testing.T) {
	f := newFixture(t, baseCatalog...)
	fd := f.feed("variants")
	items := f.build("variants", "11", "12", "1", "10")
	if got, want := identities(fd, items), []string{"C1/C1-blue-s", "C1/C1-red-s"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("identities %v", got)
	}
	m := byIdentity(fd, items)
	// Option values follow the super attributes' positions (color 0, size 1).
	assertJSON(t, m["C1/C1-red-s"], `{"id":"103aac1a61c2501438dfe3831c737f6b","parentId":10,"productId":11,"parentSku":"C1","productSku":"C1-red-s",
		"optionValues":[{"attributeCode":"color","uid":"Y29uZmlndXJhYmxlLzkzLzEw","label":"Red","valueIndex":10},
		{"attributeCode":"size","uid":"Y29uZmlndXJhYmxlLzIwMC8yMA==","label":"S","valueIndex":20}],
		"deleted":false,"modifiedAt":"2026-01-02 03:04:05"}`)
	if m["C1/C1-red-s"].EntityKey != "11" || m["C1/C1-red-s"].ID != FeedID("C1", "C1-red-s") {
		t.Errorf("keys: %+v", m["C1/C1-red-s"])
	}
	prev := prevFrom(items)

	// Relink: child 11 moves from C1 to a new configurable C2.
	f.exec(`INSERT INTO catalog_product_entity (entity_id, type_id, sku) VALUES (20, 'configurable', 'C2')`,
		`INSERT INTO catalog_product_super_attribute (product_id, attribute_id, position) VALUES (20, 93, 0)`)
	sl := []string{"link_id", "product_id", "parent_id"}
	keys := f.keysOf(f.chg("catalog_product_super_link", sl, []any{uint64(1), uint64(11), uint64(10)}, []any{uint64(1), uint64(11), uint64(20)}))
	if !reflect.DeepEqual(keys["variants"], []string{"11"}) {
		t.Fatalf("relink keys %v", keys)
	}
	f.exec(`UPDATE catalog_product_super_link SET parent_id = 20 WHERE product_id = 11`)
	ch, del, _ := Diff(fd, f.build("variants", "11"), map[string][]PrevItem{"11": prev["11"]})
	if got := identities(fd, ch); !reflect.DeepEqual(got, []string{"C2/C1-red-s"}) {
		t.Errorf("changed %v", got)
	}
	if got := identities(fd, del); !reflect.DeepEqual(got, []string{"C1/C1-red-s"}) {
		t.Errorf("deleted %v", got)
	}
	assertJSON(t, del[0], `{"id":"103aac1a61c2501438dfe3831c737f6b","parentId":10,"productId":11,"parentSku":"C1","productSku":"C1-red-s","deleted":true,"modifiedAt":"2026-01-02 03:04:05"}`)
	if !containsJSON(ch[0].Data, `"optionValues":[{"attributeCode":"color","uid":"Y29uZmlndXJhYmxlLzkzLzEw","label":"Red","valueIndex":10}]`) {
		t.Errorf("C2 varies on color only: %s", ch[0].Data)
	}

	// Admin option label change reaches the children using it; a store-view
	// label does not (variant labels are not store-scoped).
	ov := []string{"value_id", "option_id", "store_id", "value"}
	if k := f.keysOf(f.chg("eav_attribute_option_value", ov, []any{uint64(3), uint64(11), uint64(0), "Blue"}, []any{uint64(3), uint64(11), uint64(0), "Navy"})); !reflect.DeepEqual(k["variants"], []string{"12"}) {
		t.Errorf("admin label keys %v", k["variants"])
	}
	if k := f.keysOf(f.chg("eav_attribute_option_value", ov, nil, []any{uint64(3), uint64(11), uint64(2), "Bleu"})); len(k["variants"]) != 0 {
		t.Errorf("store label keys %v", k["variants"])
	}
	// Axis value of a child; values of non-children are ignored.
	val := []string{"value_id", "attribute_id", "store_id", "entity_id", "value"}
	if k := f.keysOf(f.chg("catalog_product_entity_int", val, nil, []any{int64(1), uint64(93), uint64(0), uint64(12), int64(10)})); !reflect.DeepEqual(k["variants"], []string{"12"}) {
		t.Errorf("child int keys %v", k["variants"])
	}
	if k := f.keysOf(f.chg("catalog_product_entity_int", val, nil, []any{int64(1), uint64(93), uint64(0), uint64(1), int64(10)})); len(k["variants"]) != 0 {
		t.Errorf("non-child int keys %v", k["variants"])
	}
	// Super attribute of a parent -> its children (per the link index).
	if k := f.keysOf(f.chg("catalog_product_super_attribute", []string{"product_super_attribute_id", "product_id", "attribute_id"}, nil, []any{uint64(9), uint64(20), uint64(200)})); !reflect.DeepEqual(k["variants"], []string{"11"}) {
		t.Errorf("super attribute keys %v", k["variants"])
	}
	// Axis attribute renamed -> children of parents varying on it.
	if k := f.keysOf(f.chg("eav_attribute", []string{"attribute_id", "attribute_code"}, []any{uint64(200), "size"}, []any{uint64(200), "sz"})); !reflect.DeepEqual(k["variants"], []string{"12"}) {
		t.Errorf("axis rename keys %v", k["variants"])
	}
	// Child sku rename -> the child; parent rename -> its children.
	pe := []string{"entity_id", "type_id", "sku"}
	if k := f.keysOf(f.chg("catalog_product_entity", pe, []any{uint64(12), "simple", "C1-blue-s"}, []any{uint64(12), "simple", "B"})); !reflect.DeepEqual(k["variants"], []string{"12"}) {
		t.Errorf("child rename keys %v", k["variants"])
	}
	if k := f.keysOf(f.chg("catalog_product_entity", pe, []any{uint64(20), "configurable", "C2"}, []any{uint64(20), "configurable", "C2x"})); !reflect.DeepEqual(k["variants"], []string{"11"}) {
		t.Errorf("parent rename keys %v", k["variants"])
	}
	// Child deleted: its own key; its items vanish.
	if k := f.keysOf(f.chg("catalog_product_entity", pe, []any{uint64(12), "simple", "C1-blue-s"}, nil)); !reflect.DeepEqual(k["variants"], []string{"12"}) {
		t.Errorf("child delete keys %v", k["variants"])
	}
	f.exec(`DELETE FROM catalog_product_entity WHERE entity_id = 12`)
	if _, del, _ := Diff(fd, f.build("variants", "12"), map[string][]PrevItem{"12": prev["12"]}); !reflect.DeepEqual(identities(fd, del), []string{"C1/C1-blue-s"}) {
		t.Errorf("child delete: %v", identities(fd, del))
	}
}

func TestProductOverrides(t *testing.T) {
	f := newFixture(t, baseCatalog...)
	fd := f.feed("productOverrides")
	items := f.build("productOverrides", "1", "11", "12")
	g0, g1, g2 := customerGroupCode(0), customerGroupCode(1), customerGroupCode(2)
	if g0 != "b6589fc6ab0dc82cf12099d1c2d40ab994e8410c" {
		t.Fatalf("customerGroupCode(0) = %s", g0)
	}
	want := []string{"C1-red-s/base/" + g2, "S1/base/" + g0, "S1/second/" + g1}
	if got := identities(fd, items); !reflect.DeepEqual(got, want) {
		t.Fatalf("identities %v want %v", got, want)
	}
	m := byIdentity(fd, items)
	// Website base has rows for stores 1 and 2: the lowest store view wins.
	assertJSON(t, m["S1/base/"+g0], `{"sku":"S1","productId":1,"websiteCode":"base","customerGroupCode":"`+g0+`",
		"displayable":false,"priceDisplayable":false,"addToCartAllowed":false,"deleted":false,"modifiedAt":"2026-01-02 03:04:05"}`)
	assertJSON(t, m["C1-red-s/base/"+g2], `{"sku":"C1-red-s","productId":11,"websiteCode":"base","customerGroupCode":"`+g2+`",
		"displayable":true,"priceDisplayable":true,"addToCartAllowed":false,"deleted":false,"modifiedAt":"2026-01-02 03:04:05"}`)
	prev := prevFrom(items)
	// Permission row removed for store 1: store 2's row decides now.
	pk := []string{"product_id", "store_id", "customer_group_id", "grant_catalog_category_view"}
	if k := f.keysOf(f.chg("magento_catalogpermissions_index_product", pk, []any{uint64(1), uint64(1), uint64(0), int64(-2)}, nil)); !reflect.DeepEqual(k["productOverrides"], []string{"1"}) {
		t.Fatalf("keys %v", k)
	}
	f.exec(`DELETE FROM magento_catalogpermissions_index_product WHERE product_id = 1 AND store_id = 1`)
	ch, del, unchanged := Diff(fd, f.build("productOverrides", "1"), map[string][]PrevItem{"1": prev["1"]})
	if len(ch) != 1 || len(del) != 0 || unchanged != 1 || !containsJSON(ch[0].Data, `"displayable":true,"priceDisplayable":false,"addToCartAllowed":true`) {
		t.Fatalf("changed %v deleted %d unchanged %d", ch, len(del), unchanged)
	}
	// Customer group deleted: its items vanish.
	if k := f.keysOf(f.chg("customer_group", []string{"customer_group_id", "customer_group_code"}, []any{uint64(1), "General"}, nil)); !reflect.DeepEqual(k["productOverrides"], []string{"1"}) {
		t.Fatalf("group keys %v", k)
	}
	f.exec(`DELETE FROM customer_group WHERE customer_group_id = 1`)
	_, del, _ = Diff(fd, f.build("productOverrides", "1"), map[string][]PrevItem{"1": prev["1"]})
	if !reflect.DeepEqual(identities(fd, del), []string{"S1/second/" + g1}) {
		t.Fatalf("deleted %v", identities(fd, del))
	}
	assertJSON(t, del[0], `{"productId":1,"sku":"S1","websiteCode":"second","customerGroupCode":"`+g1+`","deleted":true,"modifiedAt":"2026-01-02 03:04:05"}`)
	st := []string{"store_id", "code", "website_id", "group_id"}
	for name, tc := range map[string]struct {
		c    *change.Change
		want []string
	}{
		"store moved":         {f.chg("store", st, []any{uint64(1), "default", uint64(1), uint64(1)}, []any{uint64(1), "default", uint64(2), uint64(2)}), []string{"11"}},
		"store code only":     {f.chg("store", st, []any{uint64(1), "default", uint64(1), uint64(1)}, []any{uint64(1), "dflt", uint64(1), uint64(1)}), nil},
		"website code":        {f.chg("store_website", []string{"website_id", "code"}, []any{uint64(1), "base"}, []any{uint64(1), "basis"}), []string{"1", "11"}},
		"website deleted":     {f.chg("store_website", []string{"website_id", "code"}, []any{uint64(2), "second"}, nil), []string{"1", "11"}},
		"store group deleted": {f.chg("store_group", []string{"group_id", "website_id", "code"}, []any{uint64(2), uint64(2), "second_store"}, nil), []string{"1", "11"}},
		"group code":          {f.chg("customer_group", []string{"customer_group_id", "customer_group_code"}, []any{uint64(2), "W"}, []any{uint64(2), "X"}), nil},
		"product sku rename":  {f.chg("catalog_product_entity", []string{"entity_id", "sku"}, []any{uint64(11), "a"}, []any{uint64(11), "b"}), []string{"11"}},
	} {
		if got := f.keysOf(tc.c)["productOverrides"]; !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got %v want %v", name, got, tc.want)
		}
	}
}

type fakeFeed struct{ Feed }

func (fakeFeed) DeletedPayload(p PrevItem) Item { return Item{ID: p.ID, Deleted: true} }

func TestDiff(t *testing.T) {
	built := []Item{{ID: "a", Hash: "1"}, {ID: "b", Hash: "2"}, {ID: "c", Hash: "3"}, {ID: "d", Hash: "4"}, {ID: "e", Hash: "5"}}
	prev := map[string][]PrevItem{
		"k1": {{ID: "a", Hash: "1", Status: 200}, {ID: "b", Hash: "x", Status: 200}, {ID: "c", Hash: "3", Status: 2}},
		"k2": {{ID: "d", Hash: "4", Status: 200, Deleted: true}, {ID: "gone", Hash: "9", Status: 200}, {ID: "gone2", Hash: "9", Status: 200, Deleted: true}},
		"k3": {{ID: "e", Hash: "5", Status: 400}},
	}
	ch, del, unchanged := Diff(fakeFeed{}, built, prev)
	var ids []string
	for _, it := range ch {
		ids = append(ids, it.ID)
	}
	if !reflect.DeepEqual(ids, []string{"b", "c", "d"}) || unchanged != 2 {
		t.Errorf("changed %v unchanged %d", ids, unchanged)
	}
	if len(del) != 1 || del[0].ID != "gone" || !del[0].Deleted {
		t.Errorf("deleted %v", del)
	}
	// Every stored status: an unchanged item is skipped exactly when the
	// state store calls its status final (one definition of the contract).
	for status := -2; status <= 600; status++ {
		_, _, unchanged := Diff(fakeFeed{}, []Item{{ID: "a", Hash: "1"}}, map[string][]PrevItem{"k": {{ID: "a", Hash: "1", Status: status}}})
		if (unchanged == 1) != state.IsFinal(status) {
			t.Errorf("status %d: skipped %v, state.IsFinal %v", status, unchanged == 1, state.IsFinal(status))
		}
	}
}

func TestFeedIDAndRegistry(t *testing.T) {
	if FeedID("S1", "fr") != HashJSON([]byte("S1\x00fr")) {
		t.Error("feed id is not sha1 of the \\0-joined identity")
	}
	if _, err := NewRegistry(Config{}); err == nil {
		t.Error("nil DB accepted")
	}
	f := newFixture(t)
	if _, err := NewRegistry(Config{DB: f.reg.env.db, Database: f.db, Feeds: []string{"nope"}}); err == nil || !containsJSON([]byte(err.Error()), "known feeds: productAttributes, productOverrides, products, variants") {
		t.Errorf("unknown feed error: %v", err)
	}
	if got := Names(); !reflect.DeepEqual(got, []string{"productAttributes", "productOverrides", "products", "variants"}) {
		t.Errorf("names %v", got)
	}
	tables := f.reg.Tables()
	for _, want := range []string{"catalog_product_entity", "catalog_product_super_link", "magento_catalogpermissions_index_product", "eav_attribute_label", "catalog_product_relation"} {
		if !contains(tables, want) {
			t.Errorf("tables lack %s: %v", want, tables)
		}
	}
	if err := f.reg.Check(context.Background()); err != nil {
		t.Errorf("Check on a complete catalog: %v", err)
	}
	f.exec(`DROP TABLE magento_catalogpermissions_index_product`)
	if err := f.reg.Check(context.Background()); err == nil || !strings.Contains(err.Error(), "feed productOverrides needs magento_catalogpermissions_index_product") {
		t.Errorf("Check without the permissions index: %v", err)
	}
	if !f.reg.Watches(&change.Table{DB: f.db, Name: "store"}) || f.reg.Watches(&change.Table{DB: "x", Name: "store"}) || f.reg.Watches(&change.Table{DB: f.db, Name: "url_rewrite"}) {
		t.Error("Watches")
	}
}

func TestResolveIDs(t *testing.T) {
	f := newFixture(t, baseCatalog...)
	ctx := context.Background()
	type resolver interface {
		ResolveIDs(ctx context.Context, ids []string, idType string) ([]string, error)
	}
	cases := []struct {
		feed, idType string
		ids, want    []string
	}{
		{"products", "", []string{"S1", "C1-red-s", "nope"}, []string{"1", "11"}},
		{"products", "productId", []string{"1", " 12"}, []string{"1", "12"}},
		{"productOverrides", "sku", []string{"S1"}, []string{"1"}},
		{"variants", "", []string{"C1"}, []string{"10", "11", "12"}},
		{"productAttributes", "", []string{"color", "material", "is_active"}, []string{"93", "300"}},
		{"productAttributes", "attributeId", []string{"93"}, []string{"93"}},
	}
	for _, tc := range cases {
		got, err := f.feed(tc.feed).(resolver).ResolveIDs(ctx, tc.ids, tc.idType)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s %q %v: got %v, %v; want %v", tc.feed, tc.idType, tc.ids, got, err, tc.want)
		}
	}
	if _, err := f.feed("products").(resolver).ResolveIDs(ctx, []string{"x"}, "productId"); err == nil {
		t.Error("non-integer product id accepted")
	}
	if _, err := f.feed("products").(resolver).ResolveIDs(ctx, []string{"x"}, "uuid"); err == nil {
		t.Error("unknown id type accepted")
	}
}

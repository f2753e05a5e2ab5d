package feeds

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/feedcdc/feedcdc/change"
)

func TestProductsScopeResolutionAndFanOut(t *testing.T) {
	f := newFixture(t, baseCatalog...)
	fd := f.feed("products")
	items := f.build("products", "1", "10", "11", "12", "999")
	got := identities(fd, items)
	want := []string{"C1-blue-s/default", "C1-blue-s/fr", "C1-red-s/default", "C1-red-s/fr", "C1/default", "C1/fr", "S1/de", "S1/default", "S1/fr"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("identities: got %v want %v", got, want)
	}
	m := byIdentity(fd, items)
	// fr: the store-view name wins over the default; the option label of
	// the fr store view wins over the admin label; multiselect keeps the
	// stored order.
	assertJSON(t, m["S1/fr"], `{"sku":"S1","storeViewCode":"fr","storeCode":"main_website_store","websiteCode":"base","productId":1,
		"type":"simple","name":"Chemise","status":"Enabled","visibility":"Catalog, Search","displayable":true,"buyable":true,"inStock":true,
		"urlKey":"shirt","description":"A <b>shirt</b> & more","shortDescription":null,"metaTitle":null,"metaKeyword":null,"metaDescription":null,
		"taxClassId":null,"weight":1.25,"prices":{"regularPrice":10.5,"specialPrice":null,"specialFromDate":null,"specialToDate":null},
		"image":null,"smallImage":null,"thumbnail":null,"swatchImage":null,
		"inventory":{"qty":5,"isInStock":true,"manageStock":true},
		"categoryData":[{"categoryId":"2","categoryPath":"1/2","productPosition":0},{"categoryId":"5","categoryPath":"1/2/5","productPosition":3}],
		"parents":[],
		"attributes":[{"attributeCode":"color","value":["Rouge"],"valueId":["10"]},{"attributeCode":"material","value":["Wool","Cotton"],"valueId":["31","30"]}],
		"createdAt":"2025-03-01 10:00:00","deleted":false,"updatedAt":"2025-03-02 11:00:00","modifiedAt":"2026-01-02 03:04:05"}`)
	// de (website second): the website-scope status row of store 3 wins;
	// the name falls back to the default; the admin option label is used.
	assertJSON(t, m["S1/de"], `{"sku":"S1","storeViewCode":"de","storeCode":"second_store","websiteCode":"second","productId":1,
		"type":"simple","name":"Shirt","status":"Disabled","visibility":"Catalog, Search","displayable":false,"buyable":false,"inStock":true,
		"urlKey":"shirt","description":"A <b>shirt</b> & more","shortDescription":null,"metaTitle":null,"metaKeyword":null,"metaDescription":null,
		"taxClassId":null,"weight":1.25,"prices":{"regularPrice":10.5,"specialPrice":null,"specialFromDate":null,"specialToDate":null},
		"image":null,"smallImage":null,"thumbnail":null,"swatchImage":null,
		"inventory":{"qty":5,"isInStock":true,"manageStock":true},
		"categoryData":[{"categoryId":"2","categoryPath":"1/2","productPosition":0},{"categoryId":"5","categoryPath":"1/2/5","productPosition":3}],
		"parents":[],
		"attributes":[{"attributeCode":"color","value":["Red"],"valueId":["10"]},{"attributeCode":"material","value":["Wool","Cotton"],"valueId":["31","30"]}],
		"createdAt":"2025-03-01 10:00:00","deleted":false,"updatedAt":"2025-03-02 11:00:00","modifiedAt":"2026-01-02 03:04:05"}`)
	// A variant child: parents from catalog_product_relation, out of stock.
	assertJSON(t, m["C1-red-s/default"], `{"sku":"C1-red-s","storeViewCode":"default","storeCode":"main_website_store","websiteCode":"base","productId":11,
		"type":"simple","name":"Conf Red S","status":"Enabled","visibility":"Not Visible Individually","displayable":false,"buyable":false,"inStock":false,
		"urlKey":null,"description":null,"shortDescription":null,"metaTitle":null,"metaKeyword":null,"metaDescription":null,
		"taxClassId":null,"weight":null,"prices":{"regularPrice":null,"specialPrice":null,"specialFromDate":null,"specialToDate":null},
		"image":null,"smallImage":null,"thumbnail":null,"swatchImage":null,
		"inventory":{"qty":0,"isInStock":false,"manageStock":true},
		"categoryData":[],"parents":[{"sku":"C1","productType":"configurable"}],
		"attributes":[{"attributeCode":"color","value":["Red"],"valueId":["10"]},{"attributeCode":"size","value":["S"],"valueId":["20"]}],
		"createdAt":"2025-03-01 10:00:00","deleted":false,"updatedAt":"2025-03-01 10:00:00","modifiedAt":"2026-01-02 03:04:05"}`)
	// Identity, entity key and hash contract.
	it := m["S1/fr"]
	if it.ID != FeedID("S1", "fr") || it.EntityKey != "1" || it.Feed != "products" {
		t.Errorf("identity: %+v", it)
	}
	if want := map[string]string{"sku": "S1", "storeViewCode": "fr", "productId": "1", "storeCode": "main_website_store", "websiteCode": "base"}; !reflect.DeepEqual(it.Identity, want) {
		t.Errorf("identity map %v", it.Identity)
	}
	body := it.Data[:len(it.Data)-len(`,"updatedAt":"2025-03-02 11:00:00","modifiedAt":"2026-01-02 03:04:05"}`)]
	if it.Hash != HashJSON(append(append([]byte(nil), body...), '}')) {
		t.Errorf("hash is not the sha1 of the JSON without updatedAt/modifiedAt")
	}
}

func TestProductsDefaultChangeFansOutToStoreViews(t *testing.T) {
	f := newFixture(t, baseCatalog...)
	fd := f.feed("products")
	before := f.build("products", "1")
	// A store-0 value change is keyed to the product ...
	keys := f.keysOf(f.chg("catalog_product_entity_varchar", []string{"value_id", "attribute_id", "store_id", "entity_id", "value"},
		[]any{int64(1), uint64(73), uint64(0), uint64(1), "Shirt"}, []any{int64(1), uint64(73), uint64(0), uint64(1), "Tee"}))
	if !reflect.DeepEqual(keys["products"], []string{"1"}) {
		t.Fatalf("keys: %v", keys)
	}
	f.exec(`UPDATE catalog_product_entity_varchar SET value = 'Tee' WHERE entity_id = 1 AND attribute_id = 73 AND store_id = 0`)
	// ... and the rebuild changes every store view that has no override.
	after := f.build("products", "1")
	changedItems, deleted, unchanged := Diff(fd, after, prevFrom(before))
	if got := identities(fd, changedItems); !reflect.DeepEqual(got, []string{"S1/de", "S1/default"}) {
		t.Errorf("changed: %v", got)
	}
	if len(deleted) != 0 || unchanged != 1 {
		t.Errorf("deleted %d unchanged %d, want 0 and 1 (fr keeps its own name)", len(deleted), unchanged)
	}
}

func TestProductsWebsiteUnassignmentAndDelete(t *testing.T) {
	f := newFixture(t, baseCatalog...)
	fd := f.feed("products")
	before := f.build("products", "1", "10")
	prev := prevFrom(before)
	keys := f.keysOf(f.chg("catalog_product_website", []string{"product_id", "website_id"}, []any{uint64(1), uint64(2)}, nil))
	if !reflect.DeepEqual(keys["products"], []string{"1"}) {
		t.Fatalf("keys: %v", keys)
	}
	f.exec(`DELETE FROM catalog_product_website WHERE product_id = 1 AND website_id = 2`)
	changedItems, deleted, unchanged := Diff(fd, f.build("products", "1"), map[string][]PrevItem{"1": prev["1"]})
	if len(changedItems) != 0 || unchanged != 2 || len(deleted) != 1 {
		t.Fatalf("changed %d deleted %d unchanged %d", len(changedItems), len(deleted), unchanged)
	}
	d := deleted[0]
	if d.ID != FeedID("S1", "de") || !d.Deleted || d.EntityKey != "1" {
		t.Errorf("deleted item %+v", d)
	}
	assertJSON(t, d, `{"productId":1,"sku":"S1","storeViewCode":"de","storeCode":"second_store","websiteCode":"second","deleted":true,"modifiedAt":"2026-01-02 03:04:05"}`)
	// Sent once: a prev item already marked deleted is not deleted again.
	p2 := prevFrom(append(f.build("products", "1"), d))
	if _, del, _ := Diff(fd, f.build("products", "1"), p2); len(del) != 0 {
		t.Errorf("deleted again: %v", del)
	}
	// Reassigning brings it back even though the hash equals the old one.
	f.exec(`INSERT INTO catalog_product_website VALUES (1, 2)`)
	ch, _, _ := Diff(fd, f.build("products", "1"), p2)
	if got := identities(fd, ch); !reflect.DeepEqual(got, []string{"S1/de"}) {
		t.Errorf("re-added: %v", got)
	}

	// Deleting the configurable parent: its items vanish and its children
	// (whose parents[] named it) are keyed although the cascade removed the
	// relation rows without a binlog event.
	del := f.chg("catalog_product_entity", []string{"entity_id", "attribute_set_id", "type_id", "sku"}, []any{uint64(10), uint64(4), "configurable", "C1"}, nil)
	keys = f.keysOf(del)
	if want := []string{"10", "11", "12"}; !reflect.DeepEqual(keys["products"], want) {
		t.Errorf("products keys of parent delete: %v want %v", keys["products"], want)
	}
	if want := []string{"10", "11", "12"}; !reflect.DeepEqual(keys["variants"], want) {
		t.Errorf("variants keys of parent delete: %v want %v", keys["variants"], want)
	}
	if want := []string{"10"}; !reflect.DeepEqual(keys["productOverrides"], want) {
		t.Errorf("overrides keys of parent delete: %v", keys["productOverrides"])
	}
	f.exec(`DELETE FROM catalog_product_entity WHERE entity_id = 10`)
	_, deleted, _ = Diff(fd, f.build("products", "10"), map[string][]PrevItem{"10": prev["10"]})
	if got := identities(fd, deleted); !reflect.DeepEqual(got, []string{"C1/default", "C1/fr"}) {
		t.Errorf("deleted: %v", got)
	}
	child := byIdentity(fd, f.build("products", "11"))["C1-red-s/default"]
	if !containsJSON(child.Data, `"parents":[]`) {
		t.Errorf("child still lists its deleted parent: %s", child.Data)
	}
	// The index forgot the parent: a second delete event resolves no children.
	if keys := f.keysOf(del); !reflect.DeepEqual(keys["products"], []string{"10"}) {
		t.Errorf("after delete: %v", keys["products"])
	}
}

func containsJSON(b []byte, s string) bool { return strings.Contains(string(b), s) }

func TestProductsKeys(t *testing.T) {
	f := newFixture(t, baseCatalog...)
	val := []string{"value_id", "attribute_id", "store_id", "entity_id", "value"}
	cases := []struct {
		name string
		c    *change.Change
		want []string
	}{
		{"int value store view", f.chg("catalog_product_entity_int", val, nil, []any{int64(9), uint64(97), uint64(2), uint64(12), int64(2)}), []string{"12"}},
		{"decimal delete", f.chg("catalog_product_entity_decimal", val, []any{int64(9), uint64(77), uint64(0), uint64(1), "10.5"}, nil), []string{"1"}},
		{"text", f.chg("catalog_product_entity_text", val, nil, []any{int64(9), uint64(75), uint64(0), uint64(11), "x"}), []string{"11"}},
		{"datetime", f.chg("catalog_product_entity_datetime", val, nil, []any{int64(9), uint64(94), uint64(0), uint64(12), "2025-01-01 00:00:00"}), []string{"12"}},
		{"entity moved between products", f.chg("catalog_product_entity_varchar", val, []any{int64(9), uint64(73), uint64(0), uint64(1), "a"}, []any{int64(9), uint64(73), uint64(0), uint64(11), "a"}), []string{"1", "11"}},
		{"website assignment", f.chg("catalog_product_website", []string{"product_id", "website_id"}, nil, []any{uint64(12), uint64(2)}), []string{"12"}},
		{"category assignment", f.chg("catalog_category_product", []string{"entity_id", "category_id", "product_id", "position"}, nil, []any{int64(7), uint64(5), uint64(11), int64(0)}), []string{"11"}},
		{"stock item", f.chg("cataloginventory_stock_item", []string{"item_id", "product_id", "stock_id", "qty"}, []any{uint64(1), uint64(1), uint64(1), "5"}, []any{uint64(1), uint64(1), uint64(1), "4"}), []string{"1"}},
		{"parent sku rename -> children", f.chg("catalog_product_entity", []string{"entity_id", "type_id", "sku"}, []any{uint64(10), "configurable", "C1"}, []any{uint64(10), "configurable", "C1x"}), []string{"10", "11", "12"}},
		{"relation relink", f.chg("catalog_product_relation", []string{"parent_id", "child_id"}, []any{uint64(10), uint64(11)}, []any{uint64(10), uint64(12)}), []string{"11", "12"}},
		{"product update without sku change", f.chg("catalog_product_entity", []string{"entity_id", "type_id", "sku", "has_options"}, []any{uint64(10), "configurable", "C1", int64(0)}, []any{uint64(10), "configurable", "C1", int64(1)}), []string{"10"}},
		{"option label -> products using it (int)", f.chg("eav_attribute_option_value", []string{"value_id", "option_id", "store_id", "value"}, []any{uint64(2), uint64(10), uint64(2), "Rouge"}, []any{uint64(2), uint64(10), uint64(2), "Rouge!"}), []string{"1", "11"}},
		{"option label -> products using it (multiselect)", f.chg("eav_attribute_option_value", []string{"value_id", "option_id", "store_id", "value"}, nil, []any{uint64(99), uint64(30), uint64(3), "Baumwolle"}), []string{"1"}},
		{"option deleted", f.chg("eav_attribute_option", []string{"option_id", "attribute_id", "sort_order"}, []any{uint64(11), uint64(93), uint64(2)}, nil), []string{"12"}},
		{"option inserted", f.chg("eav_attribute_option", []string{"option_id", "attribute_id", "sort_order"}, nil, []any{uint64(12), uint64(93), uint64(3)}), nil},
		{"attribute renamed -> products with values", f.chg("eav_attribute", []string{"attribute_id", "attribute_code", "backend_type"}, []any{uint64(200), "size", "int"}, []any{uint64(200), "sz", "int"}), []string{"11", "12"}},
		{"status default changed -> all products", f.chg("eav_attribute", []string{"attribute_id", "attribute_code", "backend_type", "default_value"}, []any{uint64(97), "status", "int", "1"}, []any{uint64(97), "status", "int", "2"}), []string{"1", "10", "11", "12"}},
		{"attribute deleted -> all products", f.chg("eav_attribute", []string{"attribute_id", "attribute_code", "backend_type"}, []any{uint64(300), "material", "varchar"}, nil), []string{"1", "10", "11", "12"}},
		{"store added to website 2", f.chg("store", []string{"store_id", "code", "website_id", "group_id"}, nil, []any{uint64(4), "at", uint64(2), uint64(2)}), []string{"1"}},
		{"store moved website 2 -> 1", f.chg("store", []string{"store_id", "code", "website_id", "group_id"}, []any{uint64(3), "de", uint64(2), uint64(2)}, []any{uint64(3), "de", uint64(1), uint64(1)}), []string{"1", "10", "11", "12"}},
		{"store renamed only", f.chg("store", []string{"store_id", "code", "website_id", "group_id", "name"}, []any{uint64(3), "de", uint64(2), uint64(2), "a"}, []any{uint64(3), "de", uint64(2), uint64(2), "b"}), nil},
		{"store group code", f.chg("store_group", []string{"group_id", "website_id", "code"}, []any{uint64(2), uint64(2), "second_store"}, []any{uint64(2), uint64(2), "x"}), []string{"1"}},
		{"website code", f.chg("store_website", []string{"website_id", "code"}, []any{uint64(2), "second"}, []any{uint64(2), "zweite"}), []string{"1"}},
		{"website deleted -> all products", f.chg("store_website", []string{"website_id", "code"}, []any{uint64(2), "second"}, nil), []string{"1", "10", "11", "12"}},
		{"category moved", f.chg("catalog_category_entity", []string{"entity_id", "parent_id", "path"}, []any{uint64(5), uint64(2), "1/2/5"}, []any{uint64(5), uint64(1), "1/5"}), []string{"1"}},
		{"category deleted -> all products", f.chg("catalog_category_entity", []string{"entity_id", "parent_id", "path"}, []any{uint64(5), uint64(2), "1/2/5"}, nil), []string{"1", "10", "11", "12"}},
		{"composite deleted before the index was loaded -> all products", func() *change.Change {
			c := f.chg("catalog_product_entity", []string{"entity_id", "type_id", "sku"}, []any{uint64(77), "configurable", "gone"}, nil)
			c.Source.Timestamp = time.Now().Add(-time.Hour)
			return c
		}(), []string{"1", "10", "11", "12", "77"}},
		{"another composite deleted before the load: covered by that fan-out", func() *change.Change {
			c := f.chg("catalog_product_entity", []string{"entity_id", "type_id", "sku"}, []any{uint64(79), "bundle", "gone2"}, nil)
			c.Source.Timestamp = time.Now().Add(-time.Hour)
			return c
		}(), []string{"79"}},
		{"simple deleted before the index was loaded", func() *change.Change {
			c := f.chg("catalog_product_entity", []string{"entity_id", "type_id", "sku"}, []any{uint64(78), "simple", "gone"}, nil)
			c.Source.Timestamp = time.Now().Add(-time.Hour)
			return c
		}(), []string{"78"}},
		{"other database ignored", &change.Change{Table: &change.Table{DB: "other", Name: "catalog_product_entity_int", Columns: []change.Column{{Name: "entity_id"}}}, After: []any{uint64(1)}}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := f.keysOf(tc.c)["products"]
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %v want %v", got, tc.want)
			}
		})
	}
}

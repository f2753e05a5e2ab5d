package catalog

import (
	"context"
	"database/sql"
	"fmt"
	"testing"
	"time"
)

func count(t *testing.T, db *sql.DB, query string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := db.QueryRowContext(context.Background(), query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// loadProfile loads p into a fresh database and returns its pool.
func loadProfile(t *testing.T, p Profile, seed int64) (*sql.DB, Stats) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	db := srv.Admin(t, srv.NewDatabase(t, "catalog_"+p.Name))
	st, err := Load(ctx, db, p, seed)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s", st)
	return db, st
}

func TestLoadSmallProfileCounts(t *testing.T) {
	p := Small()
	db, st := loadProfile(t, p, 1)
	checks := []struct {
		from string
		want int64
	}{
		{"catalog_product_entity", 1200},
		{"catalog_product_entity WHERE type_id = 'configurable'", 16},
		{"catalog_product_super_link", 384},
		{"catalog_product_relation", 384},
		{"catalog_product_super_attribute", 32},
		{"cataloginventory_stock_item", 1200},
		{"catalog_product_website", 1200},
		{"store WHERE store_id > 0", 1},
		{"store_website WHERE website_id > 0", 1},
		{"catalog_category_entity", 32},
		{"eav_attribute_set WHERE entity_type_id = 4", 11},
		{"eav_attribute WHERE entity_type_id = 4 AND attribute_id >= 300", 50},
		{"eav_attribute_option", 3 + 8 + 50*5},
		// Every product has a store-0 name, status and visibility.
		{fmt.Sprintf("catalog_product_entity_varchar WHERE store_id = 0 AND attribute_id = %d", AttrName), 1200},
		{fmt.Sprintf("catalog_product_entity_int WHERE store_id = 0 AND attribute_id = %d", AttrStatus), 1200},
		{fmt.Sprintf("catalog_product_entity_int WHERE store_id = 0 AND attribute_id = %d AND value = 1", AttrVisibility), 384},
	}
	for _, c := range checks {
		if got := count(t, db, "SELECT COUNT(*) FROM "+c.from); got != c.want {
			t.Errorf("%s: %d rows, want %d", c.from, got, c.want)
		}
	}
	if st.Tables["catalog_product_entity"] != 1200 || st.Products != 1200 {
		t.Errorf("stats: %+v", st)
	}
	var sum int64
	for _, n := range st.Tables {
		sum += n
	}
	if sum != st.Rows || st.Rows < 10000 {
		t.Errorf("stats rows %d, sum of tables %d", st.Rows, sum)
	}
	// Store overrides and per-store labels exist.
	for _, q := range []string{
		"catalog_product_entity_varchar WHERE store_id = 1",
		"catalog_product_entity_text WHERE store_id = 1",
		"catalog_product_entity_decimal WHERE store_id = 1",
		"catalog_product_entity_int WHERE store_id = 1",
		"eav_attribute_option_value WHERE store_id = 1",
		"eav_attribute_label WHERE store_id = 1",
		"catalog_product_super_attribute_label WHERE store_id = 1",
		"magento_catalogpermissions_index_product",
		"url_rewrite WHERE entity_type = 'product'",
		"url_rewrite WHERE entity_type = 'category'",
		"catalog_category_product",
	} {
		if count(t, db, "SELECT COUNT(*) FROM "+q) == 0 {
			t.Errorf("%s: no rows", q)
		}
	}
	checkConsistency(t, db)
}

// checkConsistency asserts the invariants the generator and the workload
// both keep, the way Magento keeps them.
func checkConsistency(t *testing.T, db *sql.DB) {
	t.Helper()
	orphans := []string{
		// every product has a name, status, visibility, stock item and a website
		fmt.Sprintf(`catalog_product_entity e WHERE NOT EXISTS (SELECT 1 FROM catalog_product_entity_varchar v WHERE v.entity_id = e.entity_id AND v.attribute_id = %d AND v.store_id = 0)`, AttrName),
		fmt.Sprintf(`catalog_product_entity e WHERE NOT EXISTS (SELECT 1 FROM catalog_product_entity_int v WHERE v.entity_id = e.entity_id AND v.attribute_id = %d AND v.store_id = 0)`, AttrStatus),
		fmt.Sprintf(`catalog_product_entity e WHERE NOT EXISTS (SELECT 1 FROM catalog_product_entity_int v WHERE v.entity_id = e.entity_id AND v.attribute_id = %d AND v.store_id = 0)`, AttrVisibility),
		`catalog_product_entity e WHERE NOT EXISTS (SELECT 1 FROM cataloginventory_stock_item s WHERE s.product_id = e.entity_id)`,
		// rows that point at missing products (foreign keys are off while loading)
		`catalog_product_entity_varchar v WHERE NOT EXISTS (SELECT 1 FROM catalog_product_entity e WHERE e.entity_id = v.entity_id)`,
		`catalog_product_entity_int v WHERE NOT EXISTS (SELECT 1 FROM catalog_product_entity e WHERE e.entity_id = v.entity_id)`,
		`catalog_product_website w WHERE NOT EXISTS (SELECT 1 FROM catalog_product_entity e WHERE e.entity_id = w.product_id)`,
		`catalog_product_website w WHERE NOT EXISTS (SELECT 1 FROM store_website s WHERE s.website_id = w.website_id)`,
		`catalog_product_entity_int v WHERE NOT EXISTS (SELECT 1 FROM store s WHERE s.store_id = v.store_id)`,
		`catalog_category_product c WHERE NOT EXISTS (SELECT 1 FROM catalog_category_entity e WHERE e.entity_id = c.category_id)`,
		`eav_attribute_option_value v WHERE NOT EXISTS (SELECT 1 FROM eav_attribute_option o WHERE o.option_id = v.option_id)`,
		// super links and relations agree, and point at a configurable parent
		`catalog_product_super_link l WHERE NOT EXISTS (SELECT 1 FROM catalog_product_relation r WHERE r.parent_id = l.parent_id AND r.child_id = l.product_id)`,
		`catalog_product_relation r WHERE NOT EXISTS (SELECT 1 FROM catalog_product_super_link l WHERE r.parent_id = l.parent_id AND r.child_id = l.product_id)`,
		`catalog_product_super_link l JOIN catalog_product_entity p ON p.entity_id = l.parent_id WHERE p.type_id <> 'configurable'`,
		// a variant's axis values are options of the axis attribute
		fmt.Sprintf(`catalog_product_entity_int v JOIN eav_attribute_option o ON o.option_id = v.value WHERE v.attribute_id IN (%d, %d) AND o.attribute_id <> v.attribute_id`, AttrColor, AttrSize),
		// permission rows name real stores and customer groups
		`magento_catalogpermissions_index_product m WHERE NOT EXISTS (SELECT 1 FROM customer_group g WHERE g.customer_group_id = m.customer_group_id)`,
		`magento_catalogpermissions_index_product m WHERE NOT EXISTS (SELECT 1 FROM store s WHERE s.store_id = m.store_id AND s.store_id > 0)`,
	}
	for _, q := range orphans {
		if n := count(t, db, "SELECT COUNT(*) FROM "+q); n != 0 {
			t.Errorf("%d rows: %s", n, q)
		}
	}
}

func TestLoadIsDeterministic(t *testing.T) {
	p := Tiny()
	p.ExtraStoreViews = 2
	a, _ := loadProfile(t, p, 42)
	// The same seed with other loader knobs: one writer, tiny statements,
	// versus many writers each loading 10-product chunks.
	p1 := p
	p1.Workers, p1.BatchRows = 1, 7
	b, _ := loadProfile(t, p1, 42)
	p.Workers, p.ChunkProducts = 6, 10
	c, _ := loadProfile(t, p, 43)
	d, _ := loadProfile(t, p, 42)
	checkConsistency(t, a)
	if got := count(t, a, "SELECT COUNT(*) FROM store WHERE store_id > 0"); got != 5 {
		t.Fatalf("store views: %d, want 5", got)
	}
	differs := false
	for _, table := range Tables() {
		ca, cb, cc, cd := checksum(t, a, table), checksum(t, b, table), checksum(t, c, table), checksum(t, d, table)
		if ca != cb || ca != cd {
			t.Errorf("%s differs between loads with the same seed and other loader knobs", table)
		}
		if ca != cc {
			differs = true
		}
	}
	if !differs {
		t.Error("seeds 42 and 43 produced identical catalogs")
	}
}

func checksum(t *testing.T, db *sql.DB, table string) int64 {
	t.Helper()
	var name string
	var sum sql.NullInt64
	if err := db.QueryRowContext(context.Background(), "CHECKSUM TABLE "+table).Scan(&name, &sum); err != nil {
		t.Fatalf("checksum %s: %v", table, err)
	}
	return sum.Int64
}

func TestLoadRefusesLoadedDatabaseAndBadProfile(t *testing.T) {
	ctx := context.Background()
	db, _ := loadProfile(t, Tiny(), 1)
	if _, err := Load(ctx, db, Tiny(), 1); err == nil {
		t.Fatal("second load into the same database succeeded")
	}
	bad := Small()
	bad.StoreViews = 0
	if _, err := Load(ctx, db, bad, 1); err == nil {
		t.Fatal("invalid profile accepted")
	}
	if _, err := ProfileByName("huge"); err == nil {
		t.Fatal("unknown profile accepted")
	}
}

func TestScopesAndGeneratedAttributesMatchTheDatabase(t *testing.T) {
	p := Tiny()
	p.ExtraStoreViews = 1
	db, _ := loadProfile(t, p, 8)
	ctx := context.Background()
	for _, s := range StoreViews(p) {
		var code, wcode string
		var web, group uint16
		if err := db.QueryRowContext(ctx, `SELECT s.code, s.website_id, s.group_id, w.code FROM store s JOIN store_website w USING (website_id) WHERE s.store_id = ?`, s.ID).
			Scan(&code, &web, &group, &wcode); err != nil {
			t.Fatalf("store %d: %v", s.ID, err)
		}
		if code != s.Code || web != s.WebsiteID || group != s.GroupID || wcode != s.WebsiteCode {
			t.Errorf("store %d: db %s/%d/%d/%s, described %+v", s.ID, code, web, group, wcode, s)
		}
	}
	if got := count(t, db, "SELECT COUNT(*) FROM store WHERE store_id > 0"); got != int64(len(StoreViews(p))) {
		t.Errorf("%d store views in the database, %d described", got, len(StoreViews(p)))
	}
	if ws := Websites(p); len(ws) != 2 || len(ws[0].StoreViews)+len(ws[1].StoreViews) != 4 {
		t.Errorf("websites: %+v", ws)
	}
	attrs, err := ReadAttributes(ctx, db, EntityTypeProduct)
	if err != nil {
		t.Fatal(err)
	}
	gen := GeneratedAttributes(p)
	if len(gen) != p.AttributeSets*p.AttributesPerSet {
		t.Fatalf("%d generated attributes", len(gen))
	}
	for _, a := range gen {
		if got := attrs[a.Code]; got != a {
			t.Errorf("attribute %s:\n got %+v\nwant %+v", a.Code, got, a)
		}
	}
	if attrs["price"].Scope != ScopeWebsite {
		t.Errorf("price scope %s after loading a website-price profile", attrs["price"].Scope)
	}
}

// TestEdgeProfiles loads profiles with parts missing (no configurables, no
// categories, no generated attributes, one website per product, global
// price, no overrides; or only configurables) and runs the workload on them.
func TestEdgeProfiles(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	bare := Tiny()
	bare.Name = "bare"
	bare.Websites, bare.StoreViews = 3, 3
	bare.ConfigurableProducts, bare.Categories, bare.AttributeSets = 0, 0, 0
	bare.AssignAllWebsites, bare.PriceScope = false, ScopeGlobal
	bare.NameOverrideFraction, bare.DescriptionOverrideFraction, bare.StatusOverrideFraction = 0, 0, 0
	bare.PriceOverrideFraction, bare.OptionLabelFraction, bare.PermissionFraction = 0, 0, 0
	db, st := loadProfile(t, bare, 2)
	checkConsistency(t, db)
	if st.Tables["catalog_product_website"] != 60 || count(t, db, "SELECT COUNT(DISTINCT website_id) FROM catalog_product_website") != 3 {
		t.Errorf("one website per product, round-robin: %d rows", st.Tables["catalog_product_website"])
	}
	for _, q := range []string{"catalog_product_entity_varchar WHERE store_id > 0", "catalog_product_super_link",
		"eav_attribute_option", "catalog_category_product", "magento_catalogpermissions_index_product"} {
		if n := count(t, db, "SELECT COUNT(*) FROM "+q); n != 0 {
			t.Errorf("%s: %d rows, want none", q, n)
		}
	}
	if n := count(t, db, "SELECT is_global FROM catalog_eav_attribute WHERE attribute_id = ?", AttrPrice); n != int64(ScopeGlobal) {
		t.Errorf("price is_global %d", n)
	}
	w := NewWorkload(db, 4, WorkloadOptions{})
	if _, err := w.Run(ctx, 150, 0); err != nil {
		t.Fatal(err)
	}
	// Global price: a change from a store view lands on store 0 only.
	if n := count(t, db, "SELECT COUNT(*) FROM catalog_product_entity_decimal WHERE store_id > 0"); n != 0 {
		t.Errorf("%d store-level price rows under global price scope", n)
	}
	checkConsistency(t, db)

	only := Tiny()
	only.Name = "configurables"
	only.SimpleProducts = 0
	db2, _ := loadProfile(t, only, 3)
	checkConsistency(t, db2)
	if _, err := NewWorkload(db2, 5, WorkloadOptions{}).Run(ctx, 100, 0); err != nil {
		t.Fatal(err)
	}
	checkConsistency(t, db2)
}

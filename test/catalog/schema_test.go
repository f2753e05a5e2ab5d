package catalog

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestCreateSchemaSeedsFreshInstall(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	db := srv.Admin(t, srv.NewDatabase(t, "schema"))
	if err := CreateSchema(ctx, db); err != nil {
		t.Fatal(err)
	}
	// Every table exists, with utf8mb4 and InnoDB.
	for _, table := range Tables() {
		var engine, coll string
		if err := db.QueryRowContext(ctx, `SELECT ENGINE, TABLE_COLLATION FROM information_schema.TABLES
			WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?`, table).Scan(&engine, &coll); err != nil {
			t.Fatalf("table %s: %v", table, err)
		}
		if engine != "InnoDB" || coll != "utf8mb4_general_ci" {
			t.Errorf("table %s: engine %s collation %s", table, engine, coll)
		}
	}
	if n := len(Tables()); n < 30 {
		t.Errorf("only %d tables", n)
	}
	// Every foreign key exists and cascades.
	var fks int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM information_schema.REFERENTIAL_CONSTRAINTS
		WHERE CONSTRAINT_SCHEMA = DATABASE() AND DELETE_RULE = 'CASCADE'`).Scan(&fks); err != nil {
		t.Fatal(err)
	}
	if want := strings.Count(SchemaSQL(), "FOREIGN KEY"); fks != want || want < 30 {
		t.Errorf("%d cascading foreign keys in the database, %d in schema.sql", fks, want)
	}
	// Admin store 0 and default store 1 exist.
	var code string
	if err := db.QueryRowContext(ctx, `SELECT code FROM store WHERE store_id = 0`).Scan(&code); err != nil || code != "admin" {
		t.Fatalf("store 0: %q %v", code, err)
	}
	if err := db.QueryRowContext(ctx, `SELECT code FROM store_website WHERE website_id = 0`).Scan(&code); err != nil || code != "admin" {
		t.Fatalf("website 0: %q %v", code, err)
	}
	var groups int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM customer_group WHERE customer_group_id IN (0,1,2,3)`).Scan(&groups); err != nil || groups != 4 {
		t.Fatalf("customer groups: %d %v", groups, err)
	}
	// The seeded attributes read back as described.
	attrs, err := ReadAttributes(ctx, db, EntityTypeProduct)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range StandardAttributes() {
		if want.EntityTypeID != EntityTypeProduct {
			continue
		}
		got, ok := attrs[want.Code]
		if !ok {
			t.Errorf("attribute %s missing", want.Code)
			continue
		}
		if got != want {
			t.Errorf("attribute %s:\n got %+v\nwant %+v", want.Code, got, want)
		}
	}
	checks := []struct {
		code, bt, input string
		scope           Scope
	}{
		{"name", "varchar", "text", ScopeStore},
		{"sku", "static", "text", ScopeGlobal},
		{"price", "decimal", "price", ScopeGlobal},
		{"status", "int", "select", ScopeWebsite},
		{"visibility", "int", "select", ScopeStore},
		{"description", "text", "textarea", ScopeStore},
		{"news_from_date", "datetime", "date", ScopeWebsite},
		{"color", "int", "select", ScopeGlobal},
	}
	for _, c := range checks {
		a := attrs[c.code]
		if a.BackendType != c.bt || a.FrontendInput != c.input || a.Scope != c.scope {
			t.Errorf("%s: got %s/%s/%s, want %s/%s/%s", c.code, a.BackendType, a.FrontendInput, a.Scope, c.bt, c.input, c.scope)
		}
	}
	if a := attrs["name"]; a.ValueTable() != "catalog_product_entity_varchar" {
		t.Errorf("name value table %s", a.ValueTable())
	}
	// Creating the schema twice is refused.
	if err := CreateSchema(ctx, db); err == nil {
		t.Fatal("second CreateSchema succeeded")
	}
}

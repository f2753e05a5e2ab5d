package feeds

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"log/slog"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/feedcdc/feedcdc/change"
	"github.com/feedcdc/feedcdc/test/catalog"
	"github.com/feedcdc/feedcdc/test/mysqltest"
)

var srv *mysqltest.Server

func TestMain(m *testing.M) { os.Exit(mysqltest.Main(m, mysqltest.Options{}, &srv)) }

// fixedNow stamps modifiedAt in tests.
var fixedNow = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

type fixture struct {
	t     *testing.T
	db    string
	admin *sql.DB
	reg   *Registry
}

// newFixture creates a fresh catalog database (catalog.CreateSchema), runs
// the statements as admin, and builds a registry on the connector user.
func newFixture(t *testing.T, stmts ...string) *fixture {
	t.Helper()
	ctx := context.Background()
	db := srv.NewDatabase(t, "feeds")
	admin := srv.Admin(t, db)
	if err := catalog.CreateSchema(ctx, admin); err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, db: db, admin: admin}
	f.exec(stmts...)
	pool, err := sql.Open("mysql", srv.CDCDSN(db))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pool.Close() })
	reg, err := NewRegistry(Config{DB: pool, Database: db, ChunkSize: 3, Now: func() time.Time { return fixedNow },
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatal(err)
	}
	f.reg = reg
	return f
}

func (f *fixture) exec(stmts ...string) {
	f.t.Helper()
	for _, s := range stmts {
		if _, err := f.admin.Exec(s); err != nil {
			f.t.Fatalf("%s: %v", s, err)
		}
	}
}

func (f *fixture) feed(name string) Feed {
	f.t.Helper()
	fd, ok := f.reg.Feed(name)
	if !ok {
		f.t.Fatalf("no feed %s", name)
	}
	return fd
}

func (f *fixture) build(name string, keys ...string) []Item {
	f.t.Helper()
	items, err := f.feed(name).Build(context.Background(), keys)
	if err != nil {
		f.t.Fatal(err)
	}
	return items
}

// byIdentity indexes items by their identity values joined with "/".
func byIdentity(fd Feed, items []Item) map[string]Item {
	out := map[string]Item{}
	for _, it := range items {
		var parts []string
		for _, k := range fd.IdentityFields() {
			parts = append(parts, it.Identity[k])
		}
		out[strings.Join(parts, "/")] = it
	}
	return out
}

func identities(fd Feed, items []Item) []string {
	var out []string
	for k := range byIdentity(fd, items) {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// assertJSON compares an item's data with hand-written JSON, field order
// included.
func assertJSON(t *testing.T, it Item, want string) {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Compact(&buf, []byte(want)); err != nil {
		t.Fatalf("bad expected JSON: %v", err)
	}
	if !bytes.Equal(buf.Bytes(), it.Data) {
		t.Errorf("item %s data:\n got %s\nwant %s", it.ID, it.Data, buf.Bytes())
	}
}

// keysOf runs Registry.Keys for one change and returns the sorted distinct
// keys per feed.
func (f *fixture) keysOf(c *change.Change) map[string][]string {
	f.t.Helper()
	got := map[string]map[string]bool{}
	err := f.reg.Keys(context.Background(), c, func(feed string, keys []string) error {
		if len(keys) > f.reg.env.chunk {
			f.t.Errorf("chunk of %d keys > chunk size %d", len(keys), f.reg.env.chunk)
		}
		if got[feed] == nil {
			got[feed] = map[string]bool{}
		}
		for _, k := range keys {
			got[feed][k] = true
		}
		return nil
	})
	if err != nil {
		f.t.Fatal(err)
	}
	out := map[string][]string{}
	for feed, set := range got {
		for k := range set {
			out[feed] = append(out[feed], k)
		}
		sort.Strings(out[feed])
	}
	return out
}

// chg makes a change of table with named columns; before/after are value
// lists in column order (nil for no image).
func (f *fixture) chg(table string, cols []string, before, after []any) *change.Change {
	t := &change.Table{DB: f.db, Name: table}
	for _, c := range cols {
		t.Columns = append(t.Columns, change.Column{Name: c})
	}
	op := change.OpUpdate
	switch {
	case before == nil:
		op = change.OpCreate
	case after == nil:
		op = change.OpDelete
	}
	return &change.Change{Table: t, Op: op, Before: before, After: after, Source: change.Source{Timestamp: time.Now().Add(time.Hour)}}
}

// prevFrom turns built items into the state the store would hold after a
// successful export (status 200).
func prevFrom(items []Item) map[string][]PrevItem {
	out := map[string][]PrevItem{}
	for _, it := range items {
		out[it.EntityKey] = append(out[it.EntityKey], PrevItem{ID: it.ID, EntityKey: it.EntityKey, Identity: it.Identity, Hash: it.Hash, Status: 200, Deleted: it.Deleted})
	}
	return out
}

// baseCatalog is a small hand-made catalog on top of CreateSchema's seed:
//
//	websites base(1: stores default(1), fr(2)) and second(2: store de(3))
//	color options Red(10, "Rouge" in fr) and Blue(11); size option S(20)
//	material (multiselect varchar, 300): Cotton(30), Wool(31)
//	product 1 "S1" simple in both websites, name "Shirt" / fr "Chemise"
//	product 10 "C1" configurable on color+size, children 11 "C1-red-s" and
//	12 "C1-blue-s" (website 1)
var baseCatalog = []string{
	`INSERT INTO store_website (website_id, code, name, default_group_id) VALUES (2, 'second', 'Second', 2)`,
	`INSERT INTO store_group (group_id, website_id, name, root_category_id, default_store_id, code) VALUES (2, 2, 'Second Store', 2, 3, 'second_store')`,
	`INSERT INTO store (store_id, code, website_id, group_id, name, is_active) VALUES (2, 'fr', 1, 1, 'French', 1), (3, 'de', 2, 2, 'German', 1)`,
	`INSERT INTO eav_attribute (attribute_id, entity_type_id, attribute_code, backend_type, frontend_input, frontend_label, is_user_defined)
		VALUES (300, 4, 'material', 'varchar', 'multiselect', 'Material', 1)`,
	`INSERT INTO catalog_eav_attribute (attribute_id, is_global, is_filterable, is_searchable) VALUES (300, 0, 1, 1)`,
	`INSERT INTO eav_attribute_label (attribute_id, store_id, value) VALUES (93, 2, 'Couleur')`,
	`INSERT INTO eav_attribute_option (option_id, attribute_id, sort_order) VALUES (10, 93, 1), (11, 93, 2), (20, 200, 1), (30, 300, 1), (31, 300, 2)`,
	`INSERT INTO eav_attribute_option_value (option_id, store_id, value) VALUES (10, 0, 'Red'), (10, 2, 'Rouge'), (11, 0, 'Blue'), (20, 0, 'S'), (30, 0, 'Cotton'), (31, 0, 'Wool')`,
	`INSERT INTO catalog_product_entity (entity_id, attribute_set_id, type_id, sku, created_at, updated_at) VALUES
		(1, 4, 'simple', 'S1', '2025-03-01 10:00:00', '2025-03-02 11:00:00'),
		(10, 4, 'configurable', 'C1', '2025-03-01 10:00:00', '2025-03-01 10:00:00'),
		(11, 4, 'simple', 'C1-red-s', '2025-03-01 10:00:00', '2025-03-01 10:00:00'),
		(12, 4, 'simple', 'C1-blue-s', '2025-03-01 10:00:00', '2025-03-01 10:00:00')`,
	`INSERT INTO catalog_product_website (product_id, website_id) VALUES (1, 1), (1, 2), (10, 1), (11, 1), (12, 1)`,
	`INSERT INTO catalog_product_entity_varchar (attribute_id, store_id, entity_id, value) VALUES
		(73, 0, 1, 'Shirt'), (73, 2, 1, 'Chemise'), (121, 0, 1, 'shirt'), (300, 0, 1, '31,30'),
		(73, 0, 10, 'Conf'), (73, 0, 11, 'Conf Red S'), (73, 0, 12, 'Conf Blue S')`,
	`INSERT INTO catalog_product_entity_int (attribute_id, store_id, entity_id, value) VALUES
		(97, 0, 1, 1), (97, 3, 1, 2), (99, 0, 1, 4), (93, 0, 1, 10),
		(97, 0, 10, 1), (99, 0, 10, 4),
		(97, 0, 11, 1), (99, 0, 11, 1), (93, 0, 11, 10), (200, 0, 11, 20),
		(97, 0, 12, 1), (99, 0, 12, 1), (93, 0, 12, 11), (200, 0, 12, 20)`,
	`INSERT INTO catalog_product_entity_decimal (attribute_id, store_id, entity_id, value) VALUES (77, 0, 1, 10.5), (82, 0, 1, 1.250000)`,
	`INSERT INTO catalog_product_entity_text (attribute_id, store_id, entity_id, value) VALUES (75, 0, 1, 'A <b>shirt</b> & more')`,
	`INSERT INTO cataloginventory_stock_item (product_id, stock_id, qty, is_in_stock) VALUES (1, 1, 5, 1), (11, 1, 0, 0)`,
	`INSERT INTO catalog_category_entity (entity_id, attribute_set_id, parent_id, path, position, level, children_count) VALUES (5, 3, 2, '1/2/5', 1, 2, 0)`,
	`INSERT INTO catalog_category_product (category_id, product_id, position) VALUES (5, 1, 3), (2, 1, 0)`,
	`INSERT INTO catalog_product_super_attribute (product_id, attribute_id, position) VALUES (10, 200, 1), (10, 93, 0)`,
	`INSERT INTO catalog_product_super_link (product_id, parent_id) VALUES (11, 10), (12, 10)`,
	`INSERT INTO catalog_product_relation (parent_id, child_id) VALUES (10, 11), (10, 12)`,
	`INSERT INTO magento_catalogpermissions_index_product (product_id, store_id, customer_group_id, grant_catalog_category_view, grant_catalog_product_price, grant_checkout_items) VALUES
		(1, 2, 0, -1, -2, NULL), (1, 1, 0, -2, -2, -2), (1, 3, 1, -1, -1, -1), (11, 1, 2, -1, 0, -2)`,
}

package feeds

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"log/slog"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	mysqldriver "github.com/go-sql-driver/mysql"

	"github.com/feedcdc/feedcdc/change"
	"github.com/feedcdc/feedcdc/test/catalog"
)

// TestDuplicateSkusOwnedByTheLowestEntityInEveryBuild: a duplicate sku is
// owned by the product with the lowest entity_id whether or not the owner
// is built in the same call, so that a build of the other product alone
// (another chunk, a streamed batch) makes no item with the owner's ids.
// Skus that differ in case only make different item ids and both build.
func TestDuplicateSkusOwnedByTheLowestEntityInEveryBuild(t *testing.T) {
	f := newFixture(t, append(baseCatalog,
		`INSERT INTO catalog_product_entity (entity_id, attribute_set_id, type_id, sku, created_at, updated_at) VALUES
			(50, 4, 'simple', 'S1', NOW(), NOW()), (51, 4, 'simple', 's1', NOW(), NOW()),
			(13, 4, 'simple', 'C1-red-s', NOW(), NOW())`,
		`INSERT INTO catalog_product_website (product_id, website_id) VALUES (50, 1), (51, 1), (13, 1)`,
		`INSERT INTO catalog_product_super_link (product_id, parent_id) VALUES (13, 10)`,
		`INSERT INTO magento_catalogpermissions_index_product (product_id, store_id, customer_group_id, grant_catalog_category_view, grant_catalog_product_price, grant_checkout_items) VALUES
			(50, 1, 0, -1, -1, -1)`)...)
	entities := func(items []Item) []string {
		var out []string
		for _, it := range items {
			if len(out) == 0 || out[len(out)-1] != it.EntityKey {
				out = append(out, it.EntityKey)
			}
		}
		return out
	}
	for _, c := range []struct {
		feed string
		keys []string
		want []string
	}{
		{"products", []string{"50"}, nil},
		{"products", []string{"1"}, []string{"1"}},
		{"products", []string{"51"}, []string{"51"}},
		{"products", []string{"50", "51", "1"}, []string{"1", "51"}},
		{"productOverrides", []string{"50"}, nil},
		{"productOverrides", []string{"1", "50"}, []string{"1"}},
		{"variants", []string{"13"}, nil},
		{"variants", []string{"11", "13"}, []string{"11"}},
	} {
		if got := entities(f.build(c.feed, c.keys...)); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s built of %v: items of entities %v, want %v", c.feed, c.keys, got, c.want)
		}
	}
}

// TestDuplicateSkuOwnershipMovesKeyTheOthers: a change that can move a
// sku's ownership keys the products of that sku with a higher entity_id,
// in every feed whose ids come from skus; one that cannot keys no more.
func TestDuplicateSkuOwnershipMovesKeyTheOthers(t *testing.T) {
	f := newFixture(t, append(baseCatalog,
		`INSERT INTO catalog_product_entity (entity_id, attribute_set_id, type_id, sku, created_at, updated_at) VALUES
			(50, 4, 'simple', 'S1', NOW(), NOW()), (51, 4, 'simple', 's1', NOW(), NOW()),
			(13, 4, 'simple', 'C1-red-s', NOW(), NOW()), (60, 4, 'configurable', 'C1', NOW(), NOW()),
			(61, 4, 'simple', 'C1-x', NOW(), NOW())`,
		`INSERT INTO catalog_product_super_link (product_id, parent_id) VALUES (13, 10), (61, 60)`)...)
	cols := []string{"entity_id", "type_id", "sku"}
	for _, c := range []struct {
		name          string
		before, after []any
		want          map[string][]string // by feed; a feed not listed must get nothing
	}{
		{"owner deleted", []any{uint64(1), "simple", "S1"}, nil,
			map[string][]string{"products": {"1", "50"}, "productOverrides": {"1", "50"}, "variants": {"1"}}},
		{"owner's sku changed", []any{uint64(1), "simple", "S1"}, []any{uint64(1), "simple", "S2"},
			map[string][]string{"products": {"1", "50"}, "productOverrides": {"1", "50"}}},
		{"non-owner's sku changed", []any{uint64(50), "simple", "S1"}, []any{uint64(50), "simple", "S9"},
			map[string][]string{"products": {"50"}, "productOverrides": {"50"}}},
		{"inserted below an existing id", nil, []any{uint64(5), "simple", "S1"},
			map[string][]string{"products": {"5", "50"}, "productOverrides": {"5", "50"}}},
		{"inserted above every id: no lookup", nil, []any{uint64(1000), "simple", "S1"},
			map[string][]string{"products": {"1000"}, "productOverrides": {"1000"}}},
		// 13 is a child that gains its sku.
		{"variant child deleted", []any{uint64(11), "simple", "C1-red-s"}, nil,
			map[string][]string{"products": {"11", "13"}, "productOverrides": {"11", "13"}, "variants": {"11", "13"}}},
		// 60's child 61 gains a parent (the link index dropped 11 above).
		{"parent deleted", []any{uint64(10), "configurable", "C1"}, nil,
			map[string][]string{"products": {"10", "12", "60"}, "productOverrides": {"10", "60"}, "variants": {"10", "12", "13", "61"}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := f.keysOf(f.chg("catalog_product_entity", cols, c.before, c.after))
			for _, feed := range []string{"products", "productOverrides", "variants"} {
				if !reflect.DeepEqual(got[feed], c.want[feed]) {
					t.Errorf("%s keys %v, want %v", feed, got[feed], c.want[feed])
				}
			}
		})
	}
}

// TestSkuSiblingsLookedUpOncePerChange: the feeds resolving one product
// delete share one lookup of its sku's other products (three feeds would
// otherwise make three), and each still gets the keys.
func TestSkuSiblingsLookedUpOncePerChange(t *testing.T) {
	f := newFixture(t, append(baseCatalog,
		`INSERT INTO catalog_product_entity (entity_id, attribute_set_id, type_id, sku, created_at, updated_at) VALUES
			(50, 4, 'simple', 'S1', NOW(), NOW()), (51, 4, 'simple', 'S1', NOW(), NOW())`)...)
	var queries []string
	pool := countingPool(t, srv.CDCDSN(f.db), func(q string) { queries = append(queries, q) })
	reg, err := NewRegistry(Config{DB: pool, Database: f.db, ChunkSize: 3, Now: func() time.Time { return fixedNow }, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	f.reg = reg
	got := f.keysOf(f.chg("catalog_product_entity", []string{"entity_id", "type_id", "sku"}, []any{uint64(1), "simple", "S1"}, nil))
	want := map[string][]string{"products": {"1", "50", "51"}, "productOverrides": {"1", "50", "51"}, "variants": {"1"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("keys %v, want %v", got, want)
	}
	lookups := 0
	for _, q := range queries {
		if strings.Contains(q, "WHERE sku = ?") {
			lookups++
		}
	}
	if lookups != 1 {
		t.Errorf("%d lookups of the sku's other products for one delete, want 1; statements: %q", lookups, queries)
	}
}

// countingPool opens a pool on dsn that reports the text of every query
// and statement it sends (database/sql's QueryerContext and ExecerContext
// paths of the real driver).
func countingPool(t *testing.T, dsn string, seen func(q string)) *sql.DB {
	t.Helper()
	mc, err := mysqldriver.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	c, err := mysqldriver.NewConnector(mc)
	if err != nil {
		t.Fatal(err)
	}
	pool := sql.OpenDB(countingConnector{c, seen})
	pool.SetMaxOpenConns(1) // seen is called from one connection at a time
	t.Cleanup(func() { pool.Close() })
	return pool
}

type countingConnector struct {
	driver.Connector
	seen func(string)
}

func (c countingConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return countingConn{conn.(realConn), c.seen}, nil
}

type realConn interface {
	driver.Conn
	driver.QueryerContext
	driver.ExecerContext
}

type countingConn struct {
	realConn
	seen func(string)
}

func (c countingConn) QueryContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Rows, error) {
	c.seen(q)
	return c.realConn.QueryContext(ctx, q, args)
}

func (c countingConn) ExecContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Result, error) {
	c.seen(q)
	return c.realConn.ExecContext(ctx, q, args)
}

// BenchmarkKeysOfProductDeletes measures what the keys of a mass product
// delete cost on the binlog reader: every catalog_product_entity row of the
// small profile resolved as a delete (the rows stay, so each sku lookup
// runs and finds nothing, as for a catalog of unique skus) by the three
// feeds that read it. Variants, alternated FEEDCDC_BENCH_REPEAT times
// (default 3): each feed looking the sku up itself over server-side
// prepared statements (before), the lookup shared by the feeds of one
// change, and shared with the arguments in the statement text (the source
// pool as the connector opens it). Prints µs and statements per delete and
// the ratio to the first variant of the same round.
//
//	go test -run '^$' -bench KeysOfProductDeletes -benchtime 1x -v ./feeds
func BenchmarkKeysOfProductDeletes(b *testing.B) {
	ctx := context.Background()
	db, admin, reg := loadCatalog(b, catalog.Small(), 1000)
	var changes []*change.Change
	rows, err := admin.Query(`SELECT entity_id, type_id, sku FROM catalog_product_entity ORDER BY entity_id`)
	if err != nil {
		b.Fatal(err)
	}
	tbl := &change.Table{DB: db, Name: "catalog_product_entity", Columns: []change.Column{{Name: "entity_id"}, {Name: "type_id"}, {Name: "sku"}}}
	for rows.Next() {
		var id uint64
		var typ, sku string
		if err := rows.Scan(&id, &typ, &sku); err != nil {
			b.Fatal(err)
		}
		changes = append(changes, &change.Change{Table: tbl, Op: change.OpDelete, Before: []any{id, typ, sku}})
	}
	rows.Close()
	repeat := 3
	if v, err := strconv.Atoi(os.Getenv("FEEDCDC_BENCH_REPEAT")); err == nil && v > 0 {
		repeat = v
	}
	interpolated, prepared := poolB(b, srv.CDCDSN(db), true), poolB(b, srv.CDCDSN(db), false)
	feedsOf := reg.byTable["catalog_product_entity"]
	type variant struct {
		name   string
		pool   *sql.DB
		shared bool
	}
	variants := []variant{{"each feed looks up, prepared statements (before)", prepared, false},
		{"one lookup per change, prepared statements", prepared, true},
		{"one lookup per change, arguments in the text (as shipped)", interpolated, true}}
	var table []string
	for range b.N {
		for r := range repeat {
			var base float64
			for _, v := range variants {
				reg.env.db = v.pool
				before := serverCommands(b, admin)
				start := time.Now()
				for _, c := range changes {
					cctx := ctx
					if v.shared {
						cctx = withSiblingsOnce(ctx, c)
					}
					for _, f := range feedsOf {
						if err := f.Keys(cctx, c, func([]string) error { return nil }); err != nil {
							b.Fatal(err)
						}
					}
				}
				us := float64(time.Since(start).Microseconds()) / float64(len(changes))
				commands := serverCommands(b, admin) - before - 1 // the status read's own SELECT
				if base == 0 {
					base = us
				}
				table = append(table, fmt.Sprintf("| %d | %s | %.0f | %.1f | %.2f |", r+1, v.name, us, float64(commands)/float64(len(changes)), us/base))
			}
		}
	}
	b.Logf("\n%d product deletes, %d feeds reading catalog_product_entity; load average %s\n| round | variant | µs per delete | server commands per delete | ratio |\n|---|---|---|---|---|\n%s",
		len(changes), len(feedsOf), readLoadAvg(), strings.Join(table, "\n"))
}

// poolB is a pool on dsn with or without the driver's argument
// interpolation.
func poolB(b *testing.B, dsn string, interpolate bool) *sql.DB {
	mc, err := mysqldriver.ParseDSN(dsn)
	if err != nil {
		b.Fatal(err)
	}
	mc.InterpolateParams = interpolate
	c, err := mysqldriver.NewConnector(mc)
	if err != nil {
		b.Fatal(err)
	}
	pool := sql.OpenDB(c)
	b.Cleanup(func() { pool.Close() })
	return pool
}

// serverCommands is the server's count of the statements and prepared
// statement commands it ran (SELECT, prepare, execute, close).
func serverCommands(b *testing.B, admin *sql.DB) int64 {
	var total int64
	rows, err := admin.Query(`SHOW GLOBAL STATUS WHERE Variable_name IN ('Com_select', 'Com_stmt_prepare', 'Com_stmt_execute', 'Com_stmt_close')`)
	if err != nil {
		b.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var n int64
		if err := rows.Scan(&name, &n); err != nil {
			b.Fatal(err)
		}
		total += n
	}
	return total
}

func readLoadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	return strings.Join(strings.Fields(string(b))[:min(3, len(strings.Fields(string(b))))], " ")
}

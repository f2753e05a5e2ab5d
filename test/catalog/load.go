package catalog

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"
)

// Stats reports what Load wrote.
type Stats struct {
	Profile  string
	Seed     int64
	Products int
	// Tables maps table name to rows inserted by Load (seed rows excluded).
	Tables map[string]int64
	// TableTimes maps each per-product table to the time its writer took.
	TableTimes map[string]time.Duration
	Rows       int64
	// Duration is the whole Load; SchemaDuration the part spent creating
	// the schema (0 if it existed).
	Duration       time.Duration
	SchemaDuration time.Duration
}

// RowsPerSecond is Rows / (Duration - SchemaDuration): the data load rate.
func (s Stats) RowsPerSecond() float64 {
	d := s.Duration - s.SchemaDuration
	if d <= 0 {
		return 0
	}
	return float64(s.Rows) / d.Seconds()
}

// String is a multi-line, table-sorted report.
func (s Stats) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "profile %s seed %d: %d products, %d rows in %s (schema %s; %.0f rows/s)\n",
		s.Profile, s.Seed, s.Products, s.Rows, s.Duration.Round(time.Millisecond), s.SchemaDuration.Round(time.Millisecond), s.RowsPerSecond())
	names := make([]string, 0, len(s.Tables))
	for n := range s.Tables {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(&b, "  %-42s %10d", n, s.Tables[n])
		if d, ok := s.TableTimes[n]; ok {
			fmt.Fprintf(&b, " %8s", d.Round(10*time.Millisecond))
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// Load generates profile p with the given seed into db's current database.
// It creates the schema (CreateSchema) when the tables are missing, and
// refuses a database that already holds products or extra store views.
// Rows are streamed in multi-row INSERTs (Profile.BatchRows rows, at most
// about 1 MiB each), committed every 20,000 rows, by Profile.Workers
// connections in parallel (one table per connection, foreign-key checks
// off for the session as mysqldump does). The same (p, seed) always yields
// the same rows.
func Load(ctx context.Context, db *sql.DB, p Profile, seed int64) (Stats, error) {
	if err := p.Validate(); err != nil {
		return Stats{}, err
	}
	start := time.Now()
	created, err := prepareDatabase(ctx, db)
	if err != nil {
		return Stats{}, err
	}
	l := newLayout(p, seed)
	st := Stats{Profile: p.Name, Seed: seed, Products: p.TotalProducts(), Tables: map[string]int64{}, TableTimes: map[string]time.Duration{}}
	if created {
		st.SchemaDuration = time.Since(start)
	}
	var mu sync.Mutex
	add := func(table string, n int64, d time.Duration) {
		mu.Lock()
		st.Tables[table] += n
		st.Rows += n
		if d > st.TableTimes[table] {
			st.TableTimes[table] = d // the slowest chunk
		}
		mu.Unlock()
	}
	if err := l.loadMeta(ctx, db, add); err != nil {
		return st, fmt.Errorf("catalog: load %s: %w", p.Name, err)
	}
	if err := l.loadParallel(ctx, db, add); err != nil {
		return st, fmt.Errorf("catalog: load %s: %w", p.Name, err)
	}
	st.Duration = time.Since(start)
	slog.Debug("catalog loaded", "profile", p.Name, "rows", st.Rows, "duration", st.Duration)
	return st, nil
}

// prepareDatabase creates the schema if it is missing (created = true) and
// refuses a database that already holds a catalog.
func prepareDatabase(ctx context.Context, db *sql.DB) (created bool, err error) {
	var dbName sql.NullString
	if err := db.QueryRowContext(ctx, "SELECT DATABASE()").Scan(&dbName); err != nil {
		return false, fmt.Errorf("catalog: %w", err)
	}
	if !dbName.Valid {
		return false, fmt.Errorf("catalog: the DSN names no database; add one, e.g. tcp(127.0.0.1:3306)/catalog")
	}
	var n int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM information_schema.TABLES
		WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'catalog_product_entity'`).Scan(&n); err != nil {
		return false, fmt.Errorf("catalog: %w", err)
	}
	if n == 0 {
		return true, CreateSchema(ctx, db)
	}
	var products, stores int
	if err := db.QueryRowContext(ctx, "SELECT (SELECT COUNT(*) FROM catalog_product_entity), (SELECT COUNT(*) FROM store)").Scan(&products, &stores); err != nil {
		return false, fmt.Errorf("catalog: inspect existing schema: %w", err)
	}
	if products > 0 || stores != 2 {
		return false, fmt.Errorf("catalog: database %s already holds a catalog (%d products, %d stores); load into a fresh database", dbName.String, products, stores)
	}
	return false, nil
}

type addFunc func(table string, n int64, d time.Duration)

// endSession discards a bulk-loading connection instead of returning it to
// the pool, so its session settings (foreign_key_checks = 0) never leak
// into the caller's later statements.
func endSession(conn *sql.Conn) {
	_ = conn.Raw(func(any) error { return driver.ErrBadConn })
	_ = conn.Close()
}

// session opens a connection for bulk loading; release it with endSession.
func session(ctx context.Context, db *sql.DB) (*sql.Conn, error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	for _, s := range []string{
		"SET SESSION foreign_key_checks = 0",
		"SET SESSION sql_mode = CONCAT(@@SESSION.sql_mode, ',NO_AUTO_VALUE_ON_ZERO')",
		"SET NAMES utf8mb4",
	} {
		if _, err := conn.ExecContext(ctx, s); err != nil {
			endSession(conn)
			return nil, fmt.Errorf("%s: %w", s, err)
		}
	}
	// Optional: a MariaDB binlog otherwise carries an ANNOTATE_ROWS copy of
	// every 1 MiB statement. Servers that refuse it (MySQL) load anyway.
	if _, err := conn.ExecContext(ctx, "SET SESSION binlog_annotate_row_events = OFF"); err != nil {
		slog.Debug("catalog: optional session setting refused", "err", err)
	}
	return conn, nil
}

// loadMeta writes the small tables (scopes, attributes, options, labels,
// customer groups, categories) on one connection.
func (l *layout) loadMeta(ctx context.Context, db *sql.DB, add addFunc) error {
	conn, err := session(ctx, db)
	if err != nil {
		return err
	}
	defer endSession(conn)
	m := &metaLoader{l: l, conn: conn, add: add}
	for _, step := range []func(context.Context) error{
		m.scopes, m.attributes, m.attributeSets, m.entityAttributes, m.options, m.attributeLabels, m.customerGroups,
	} {
		if err := step(ctx); err != nil {
			return err
		}
	}
	return l.loadCategories(ctx, conn, func(table, cols string, fill func(b *batcher) error) error {
		return m.run(ctx, table, cols, fill)
	})
}

// metaLoader writes the small tables of a layout on one connection.
type metaLoader struct {
	l    *layout
	conn *sql.Conn
	add  addFunc
}

// run writes table with the rows fill adds.
func (m *metaLoader) run(ctx context.Context, table, cols string, fill func(b *batcher) error) error {
	b := newBatcher(m.conn, table, cols, m.l.p.BatchRows)
	if err := fill(b); err != nil {
		b.abort()
		return err
	}
	if err := b.close(ctx); err != nil {
		b.abort()
		return err
	}
	m.add(table, b.total, 0)
	return nil
}

// scopes writes the websites, store groups and store views, and the price scope.
func (m *metaLoader) scopes(ctx context.Context) error {
	l := m.l
	// Scopes. Website 1, group 1 and store 1 are seeded.
	if err := m.run(ctx, "store_website", "website_id, code, name, sort_order, default_group_id, is_default", func(b *batcher) error {
		for _, w := range l.websites[1:] {
			b.begin()
			b.u(uint64(w.id)).s(w.code).s(w.name).u(uint64(w.id)).u(uint64(w.groupID)).u(0)
			if err := b.end(ctx); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return err
	}
	if err := m.run(ctx, "store_group", "group_id, website_id, name, root_category_id, default_store_id, code", func(b *batcher) error {
		for _, w := range l.websites[1:] {
			b.begin()
			b.u(uint64(w.groupID)).u(uint64(w.id)).s(w.name + " Store").u(2).u(uint64(w.stores[0])).s(fmt.Sprintf("store_group_%d", w.groupID))
			if err := b.end(ctx); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return err
	}
	if err := m.run(ctx, "store", "store_id, code, website_id, group_id, name, sort_order, is_active", func(b *batcher) error {
		for _, s := range l.stores[1:] {
			b.begin()
			b.u(uint64(s.id)).s(s.code).u(uint64(s.websiteID)).u(uint64(s.groupID)).s(s.name).u(uint64(s.id)).u(1)
			if err := b.end(ctx); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return err
	}
	if _, err := m.conn.ExecContext(ctx, "UPDATE catalog_eav_attribute SET is_global = ? WHERE attribute_id = ?", uint8(l.p.PriceScope), AttrPrice); err != nil {
		return fmt.Errorf("price scope: %w", err)
	}
	return nil
}

// attributes writes the generated attributes in one transaction.
func (m *metaLoader) attributes(ctx context.Context) error {
	l := m.l
	// Generated attributes and their sets.
	if _, err := m.conn.ExecContext(ctx, "BEGIN"); err != nil {
		return err
	}
	if err := insertAttributes(ctx, m.conn, l.genAttrs); err != nil {
		_, _ = m.conn.ExecContext(ctx, "ROLLBACK")
		return err
	}
	if _, err := m.conn.ExecContext(ctx, "COMMIT"); err != nil {
		return err
	}
	m.add("eav_attribute", int64(len(l.genAttrs)), 0)
	m.add("catalog_eav_attribute", int64(len(l.genAttrs)), 0)
	return nil
}

// attributeSets writes the generated attribute sets and their two groups each.
func (m *metaLoader) attributeSets(ctx context.Context) error {
	l := m.l
	if err := m.run(ctx, "eav_attribute_set", "attribute_set_id, entity_type_id, attribute_set_name, sort_order", func(b *batcher) error {
		for s := 0; s < l.p.AttributeSets; s++ {
			b.begin()
			b.u(uint64(firstGeneratedSetID() + uint16(s))).u(uint64(EntityTypeProduct)).s(fmt.Sprintf("Attribute Set %d", s+1)).i(0)
			if err := b.end(ctx); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return err
	}
	if err := m.run(ctx, "eav_attribute_group", "attribute_group_id, attribute_set_id, attribute_group_name, sort_order, default_id, attribute_group_code", func(b *batcher) error {
		for s := 0; s < l.p.AttributeSets; s++ {
			set := uint64(firstGeneratedSetID() + uint16(s))
			b.begin()
			b.u(attributeGroupID(s, 0)).u(set).s("Product Details").i(1).u(1).s("product-details")
			if err := b.end(ctx); err != nil {
				return err
			}
			b.begin()
			b.u(attributeGroupID(s, 1)).u(set).s("Attributes").i(2).u(0).s("attributes")
			if err := b.end(ctx); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return err
	}
	return nil
}

// entityAttributes assigns the standard attributes and each set's generated attributes to the sets.
func (m *metaLoader) entityAttributes(ctx context.Context) error {
	l := m.l
	std := StandardAttributes()
	if err := m.run(ctx, "eav_entity_attribute", "entity_type_id, attribute_set_id, attribute_group_id, attribute_id, sort_order", func(b *batcher) error {
		for s := 0; s < l.p.AttributeSets; s++ {
			set := uint64(firstGeneratedSetID() + uint16(s))
			for i, a := range std {
				if a.EntityTypeID != EntityTypeProduct {
					continue
				}
				b.begin()
				b.u(uint64(EntityTypeProduct)).u(set).u(attributeGroupID(s, 0)).u(uint64(a.ID)).i(int64(i))
				if err := b.end(ctx); err != nil {
					return err
				}
			}
			from, to := l.setAttrs(s)
			for j := from; j < to; j++ {
				b.begin()
				b.u(uint64(EntityTypeProduct)).u(set).u(attributeGroupID(s, 1)).u(uint64(l.genAttrs[j].ID)).i(int64(j - from))
				if err := b.end(ctx); err != nil {
					return err
				}
			}
		}
		return nil
	}); err != nil {
		return err
	}
	return nil
}

// options writes the options of color, size and every generated attribute, with their per-store labels.
func (m *metaLoader) options(ctx context.Context) error {
	l := m.l
	if err := m.run(ctx, "eav_attribute_option", "option_id, attribute_id, sort_order", func(b *batcher) error {
		return l.eachOption(func(o metaOption) error {
			b.begin()
			b.u(uint64(o.id)).u(uint64(o.attr)).u(uint64(o.sort))
			return b.end(ctx)
		})
	}); err != nil {
		return err
	}
	if err := m.run(ctx, "eav_attribute_option_value", "option_id, store_id, value", func(b *batcher) error {
		return l.eachOption(func(o metaOption) error {
			b.begin()
			b.u(uint64(o.id)).u(0).s(o.label)
			if err := b.end(ctx); err != nil {
				return err
			}
			for _, s := range l.stores {
				if !l.overrides(o.id, s.id, saltOptionLabel, l.p.OptionLabelFraction) {
					continue
				}
				b.begin()
				b.u(uint64(o.id)).u(uint64(s.id)).s(o.label + " " + translations[int(s.id)%len(translations)])
				if err := b.end(ctx); err != nil {
					return err
				}
			}
			return nil
		})
	}); err != nil {
		return err
	}
	return nil
}

// attributeLabels writes the per-store labels of color, size and the generated attributes.
func (m *metaLoader) attributeLabels(ctx context.Context) error {
	l := m.l
	if err := m.run(ctx, "eav_attribute_label", "attribute_id, store_id, value", func(b *batcher) error {
		for _, s := range l.stores {
			suffix := " (" + translations[int(s.id)%len(translations)] + ")"
			if l.p.ConfigurableProducts > 0 {
				for _, a := range []struct {
					id    uint16
					label string
				}{{AttrColor, "Color"}, {AttrSize, "Size"}} {
					b.begin()
					b.u(uint64(a.id)).u(uint64(s.id)).s(a.label + suffix)
					if err := b.end(ctx); err != nil {
						return err
					}
				}
			}
			for _, a := range l.genAttrs {
				if !l.overrides(uint32(a.ID), s.id, saltAttrLabel, l.p.OptionLabelFraction) {
					continue
				}
				b.begin()
				b.u(uint64(a.ID)).u(uint64(s.id)).s(a.Label + suffix)
				if err := b.end(ctx); err != nil {
					return err
				}
			}
		}
		return nil
	}); err != nil {
		return err
	}
	return nil
}

// customerGroups writes the extra customer groups.
func (m *metaLoader) customerGroups(ctx context.Context) error {
	l := m.l
	if err := m.run(ctx, "customer_group", "customer_group_id, customer_group_code, tax_class_id", func(b *batcher) error {
		for g := 0; g < l.p.ExtraCustomerGroups; g++ {
			b.begin()
			b.u(uint64(4 + g)).s(fmt.Sprintf("Customer Group %d", g+4)).u(3)
			if err := b.end(ctx); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return err
	}
	return nil
}

// attributeGroupID is the id of group g (0 product details, 1 generated
// attributes) of generated attribute set s.
func attributeGroupID(s, g int) uint64 { return uint64(20 + 2*s + g) }

// metaOption is one attribute option.
type metaOption struct {
	id    uint32
	attr  uint16
	sort  int
	label string
}

// eachOption calls f for every option: color, size, then every generated
// attribute's.
func (l *layout) eachOption(f func(o metaOption) error) error {
	if l.p.ConfigurableProducts > 0 {
		for i := 0; i < l.p.Colors; i++ {
			if err := f(metaOption{l.colorOption(i), AttrColor, i, l.colorName(i)}); err != nil {
				return err
			}
		}
		for i := 0; i < l.p.Sizes; i++ {
			if err := f(metaOption{l.sizeOption(i), AttrSize, i, l.sizeName(i)}); err != nil {
				return err
			}
		}
	}
	for j := range l.genAttrs {
		for o := 0; o < l.p.OptionsPerAttribute; o++ {
			if err := f(metaOption{l.genOption(j, o), l.genAttrs[j].ID, o, fmt.Sprintf("Option %d", o+1)}); err != nil {
				return err
			}
		}
	}
	return nil
}

func (l *layout) loadCategories(ctx context.Context, conn *sql.Conn, run func(string, string, func(*batcher) error) error) error {
	if len(l.categories) == 0 {
		return nil
	}
	if err := run("catalog_category_entity", "entity_id, attribute_set_id, parent_id, created_at, updated_at, path, position, level, children_count", func(b *batcher) error {
		for i := range l.categories {
			c := &l.categories[i]
			ts := l.timestamp(c.id)
			b.begin()
			b.u(uint64(c.id)).u(uint64(AttributeSetCategoryDefault)).u(uint64(c.parent)).s(ts).s(ts).s(c.path).i(int64(c.position)).i(int64(c.level)).i(int64(c.children))
			if err := b.end(ctx); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return err
	}
	if _, err := conn.ExecContext(ctx, "UPDATE catalog_category_entity SET updated_at = updated_at, children_count = CASE entity_id WHEN 1 THEN ? ELSE ? END WHERE entity_id IN (1, 2)",
		len(l.categories)+1, len(l.categories)); err != nil {
		return fmt.Errorf("root children_count: %w", err)
	}
	if err := run("catalog_category_entity_varchar", "attribute_id, store_id, entity_id, value", func(b *batcher) error {
		for i := range l.categories {
			c := &l.categories[i]
			b.begin()
			b.u(uint64(AttrCategoryName)).u(0).u(uint64(c.id)).s(c.name)
			if err := b.end(ctx); err != nil {
				return err
			}
			b.begin()
			b.u(uint64(AttrCategoryURLKey)).u(0).u(uint64(c.id)).s(c.urlKey)
			if err := b.end(ctx); err != nil {
				return err
			}
			for _, s := range l.stores {
				if !l.overrides(c.id, s.id, saltCategoryName, l.p.NameOverrideFraction) {
					continue
				}
				b.begin()
				b.u(uint64(AttrCategoryName)).u(uint64(s.id)).u(uint64(c.id)).s(c.name + " " + translations[int(s.id)%len(translations)])
				if err := b.end(ctx); err != nil {
					return err
				}
			}
		}
		return nil
	}); err != nil {
		return err
	}
	return run("catalog_category_entity_int", "attribute_id, store_id, entity_id, value", func(b *batcher) error {
		for i := range l.categories {
			b.begin()
			b.u(uint64(AttrCategoryIsActive)).u(0).u(uint64(l.categories[i].id)).i(1)
			if err := b.end(ctx); err != nil {
				return err
			}
		}
		return nil
	})
}

type attrString struct {
	attr uint16
	v    string
}

// tableJob writes one table, or one product-id range of it: rows from
// before (if any, first chunk only), then rows for every product of
// [from, to] in id order.
type tableJob struct {
	table   string
	columns string
	row     func(ctx context.Context, b *batcher, p product) error
	before  func(ctx context.Context, b *batcher) error
	// idsPerProduct > 0 gives the table explicit primary keys:
	// idOffset + (product-1)*idsPerProduct + n for a product's n-th row
	// (1-based), so chunks can load in parallel and ids stay deterministic.
	idsPerProduct uint64
	idOffset      uint64
	// chunkable tables are split into product-id ranges loaded in parallel.
	chunkable bool
	from, to  uint32
	first     bool
}

// chunks splits the chunkable jobs into product ranges and orders all jobs
// round-robin (first chunk of every table, then the second, ...), so the
// largest tables start early and run in parallel.
func (l *layout) chunks(jobs []tableJob) []tableJob {
	n := l.totalProducts()
	parts := uint32(l.p.Workers)
	if per := n / uint32(l.p.ChunkProducts); per < parts {
		parts = max(per, 1)
	}
	var out []tableJob
	for c := uint32(0); c < parts; c++ {
		for _, j := range jobs {
			if !j.chunkable {
				if c == 0 {
					j.from, j.to, j.first = 1, n, true
					out = append(out, j)
				}
				continue
			}
			j.from, j.to, j.first = c*n/parts+1, (c+1)*n/parts, c == 0
			out = append(out, j)
		}
	}
	return out
}

func (l *layout) loadParallel(ctx context.Context, db *sql.DB, add addFunc) error {
	jobs := l.chunks(l.productJobs())
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	ch := make(chan tableJob)
	var wg sync.WaitGroup
	workers := l.p.Workers
	if workers > len(jobs) {
		workers = len(jobs)
	}
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range ch {
				if err := l.runJob(ctx, db, j, add); err != nil {
					cancel(err)
				}
			}
		}()
	}
feed:
	for _, j := range jobs {
		select {
		case ch <- j:
		case <-ctx.Done():
			break feed
		}
	}
	close(ch)
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return err
	}
	return nil
}

func (l *layout) runJob(ctx context.Context, db *sql.DB, j tableJob, add addFunc) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	start := time.Now()
	conn, err := session(ctx, db)
	if err != nil {
		return fmt.Errorf("%s: %w", j.table, err)
	}
	defer endSession(conn)
	cols := j.columns
	if j.idsPerProduct > 0 {
		cols = primaryKey[j.table] + ", " + cols
	}
	b := newBatcher(conn, j.table, cols, l.p.BatchRows)
	b.explicitIDs = j.idsPerProduct > 0
	if j.before != nil && j.first {
		if err := j.before(ctx, b); err != nil {
			b.abort()
			return err
		}
		if b.slot > j.idOffset {
			b.abort()
			return fmt.Errorf("%s: %d leading rows overflow the %d ids reserved for them", j.table, b.slot, j.idOffset)
		}
	}
	for id := j.from; id <= j.to && id >= j.from; id++ {
		b.base, b.slot = j.idOffset+uint64(id-1)*j.idsPerProduct, 0
		if err := j.row(ctx, b, l.product(id)); err != nil {
			b.abort()
			return err
		}
		if b.explicitIDs && b.slot > j.idsPerProduct {
			b.abort()
			return fmt.Errorf("%s: product %d has %d rows, more than the %d ids reserved per product", j.table, id, b.slot, j.idsPerProduct)
		}
	}
	if err := b.close(ctx); err != nil {
		b.abort()
		return err
	}
	add(j.table, b.total, time.Since(start))
	return nil
}

// eav writes one EAV value row.
func eav(ctx context.Context, b *batcher, attr uint16, store uint16, id uint32, value func(b *batcher)) error {
	b.begin()
	b.u(uint64(attr)).u(uint64(store)).u(uint64(id))
	value(b)
	return b.end(ctx)
}

// productJobs lists the per-product tables, largest first.
func (l *layout) productJobs() []tableJob {
	const eavCols = "attribute_id, store_id, entity_id, value"
	jobs := []tableJob{
		job("catalog_product_entity_varchar", eavCols, l.varcharRows),
		job("catalog_product_entity_int", eavCols, l.intRows),
		job("catalog_product_entity_text", eavCols, l.textRows),
		job("catalog_product_entity_decimal", eavCols, l.decimalRows),
		job("url_rewrite", "entity_type, entity_id, request_path, target_path, redirect_type, store_id, is_autogenerated, metadata", l.urlRewriteRows),
		job("catalog_product_entity", "entity_id, attribute_set_id, type_id, sku, has_options, required_options, created_at, updated_at", l.entityRow),
		job("cataloginventory_stock_item", "item_id, product_id, stock_id, qty, is_in_stock, website_id", l.stockItemRow),
		job("catalog_category_product", "category_id, product_id, position", l.categoryProductRows),
		job("catalog_product_website", "product_id, website_id", l.websiteRows),
		job("magento_catalogpermissions_index_product", "product_id, store_id, customer_group_id, grant_catalog_category_view, grant_catalog_product_price, grant_checkout_items", l.permissionRows),
		job("catalog_product_entity_datetime", eavCols, l.datetimeRows),
		job("catalog_product_super_link", "product_id, parent_id", l.superLinkRow),
		job("catalog_product_relation", "parent_id, child_id", l.relationRow),
		job("catalog_product_super_attribute", "product_super_attribute_id, product_id, attribute_id, position", l.superAttributeRows),
		job("catalog_product_super_attribute_label", "product_super_attribute_id, store_id, use_default, value", l.superAttributeLabelRows),
	}
	l.assignIDs(jobs)
	return jobs
}

// assignIDs marks the jobs that load in parallel chunks: tables with
// explicit keys or no auto-increment column, and the tables whose rows per
// product are bounded (fixed rows, generated attributes of the product's
// set, and per-store overrides), which get explicit ids.
func (l *layout) assignIDs(jobs []tableJob) {
	stores := uint64(len(l.stores))
	aps := uint64(l.p.AttributesPerSet)
	perProduct := map[string]uint64{
		"catalog_product_entity_varchar":  7 + aps + stores,
		"catalog_product_entity_int":      6 + aps + stores,
		"catalog_product_entity_text":     2 + stores,
		"catalog_product_entity_decimal":  3 + stores,
		"catalog_product_entity_datetime": 2,
		"url_rewrite":                     2 * stores,
	}
	for i := range jobs {
		j := &jobs[i]
		switch j.table {
		case "catalog_product_entity", "cataloginventory_stock_item", "catalog_product_website", "magento_catalogpermissions_index_product":
			j.chunkable = true // explicit keys or no auto-increment column
		}
		k, ok := perProduct[j.table]
		if !ok {
			continue
		}
		if j.table == "url_rewrite" {
			j.before = l.categoryRewrites
			j.idOffset = uint64(len(l.categories)) * stores
		}
		// value_id is a signed int in most EAV tables: keep ids below 2^31.
		if j.idOffset+uint64(l.totalProducts())*k < 1<<31-1 {
			j.idsPerProduct, j.chunkable = k, true
		}
	}
}

// primaryKey names the auto-increment key of tables given explicit ids.
var primaryKey = map[string]string{
	"catalog_product_entity_varchar":  "value_id",
	"catalog_product_entity_int":      "value_id",
	"catalog_product_entity_text":     "value_id",
	"catalog_product_entity_decimal":  "value_id",
	"catalog_product_entity_datetime": "value_id",
	"url_rewrite":                     "url_rewrite_id",
}

// categoryRewrites writes every category's URL rewrite in every store view.
func (l *layout) categoryRewrites(ctx context.Context, b *batcher) error {
	for _, s := range l.stores {
		for i := range l.categories {
			c := &l.categories[i]
			b.begin()
			b.s("category").u(uint64(c.id)).s(c.urlPath + ".html").s(fmt.Sprintf("catalog/category/view/id/%d", c.id)).u(0).u(uint64(s.id)).u(1).null()
			if err := b.end(ctx); err != nil {
				return err
			}
		}
	}
	return nil
}

func job(table, columns string, row func(ctx context.Context, b *batcher, p product) error) tableJob {
	return tableJob{table: table, columns: columns, row: row}
}

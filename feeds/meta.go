package feeds

import (
	"context"
	"database/sql"
	"fmt"
	"sync"

	"github.com/feedcdc/feedcdc/change"
)

// Source table names.
const (
	tProductEntity     = "catalog_product_entity"
	tProductWebsite    = "catalog_product_website"
	tCategoryProduct   = "catalog_category_product"
	tCategoryEntity    = "catalog_category_entity"
	tStockItem         = "cataloginventory_stock_item"
	tSuperAttribute    = "catalog_product_super_attribute"
	tEavAttribute      = "eav_attribute"
	tCatalogEav        = "catalog_eav_attribute"
	tAttributeLabel    = "eav_attribute_label"
	tAttributeOption   = "eav_attribute_option"
	tOptionValue       = "eav_attribute_option_value"
	tStore             = "store"
	tStoreGroup        = "store_group"
	tStoreWebsite      = "store_website"
	tCustomerGroup     = "customer_group"
	tPermissionsIndex  = "magento_catalogpermissions_index_product"
	productEntityTypeC = "catalog_product"
)

// valueTables are the product EAV value tables by backend type.
var valueTables = map[string]string{
	"int":      "catalog_product_entity_int",
	"varchar":  "catalog_product_entity_varchar",
	"text":     "catalog_product_entity_text",
	"decimal":  "catalog_product_entity_decimal",
	"datetime": "catalog_product_entity_datetime",
}

var backendTypes = []string{"datetime", "decimal", "int", "text", "varchar"}

// storeView is one store view (store_id != 0) with its group and website.
type storeView struct {
	ID          uint64
	Code        string
	WebsiteID   uint64
	WebsiteCode string
	GroupCode   string
}

// loadStores reads every store view except the admin store 0, ordered by
// store_id.
func loadStores(ctx context.Context, db *sql.DB) ([]storeView, error) {
	rows, err := db.QueryContext(ctx, `SELECT s.store_id, COALESCE(s.code,''), s.website_id, COALESCE(w.code,''), COALESCE(g.code,'')
		FROM store s JOIN store_website w ON w.website_id = s.website_id
		LEFT JOIN store_group g ON g.group_id = s.group_id
		WHERE s.store_id <> 0 AND s.website_id <> 0 ORDER BY s.store_id`)
	if err != nil {
		return nil, fmt.Errorf("read store views: %w", err)
	}
	defer rows.Close()
	var out []storeView
	for rows.Next() {
		var s storeView
		if err := rows.Scan(&s.ID, &s.Code, &s.WebsiteID, &s.WebsiteCode, &s.GroupCode); err != nil {
			return nil, fmt.Errorf("read store views: %w", err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read store views: %w", err)
	}
	return out, nil
}

// attrMeta is one product attribute's metadata.
type attrMeta struct {
	ID            uint64
	Code          string
	BackendType   string
	FrontendInput string
	FrontendLabel string
	UserDefined   bool
	Required      bool
	Unique        bool
	DefaultValue  sql.NullString
	SourceModel   string
	// catalog_eav_attribute (zero values when the row is missing)
	IsGlobal          int
	Visible           bool
	Searchable        bool
	Filterable        bool
	Comparable        bool
	VisibleOnFront    bool
	UsedForPromoRules bool
	FilterableSearch  bool
	UsedInListing     bool
	UsedForSortBy     bool
	SearchWeight      float64
}

const attrSelect = `SELECT a.attribute_id, a.attribute_code, a.backend_type, COALESCE(a.frontend_input,''),
	COALESCE(a.frontend_label,''), a.is_user_defined, a.is_required, a.is_unique, a.default_value, COALESCE(a.source_model,''),
	COALESCE(c.is_global,1), COALESCE(c.is_visible,1), COALESCE(c.is_searchable,0), COALESCE(c.is_filterable,0),
	COALESCE(c.is_comparable,0), COALESCE(c.is_visible_on_front,0), COALESCE(c.is_used_for_promo_rules,0),
	COALESCE(c.is_filterable_in_search,0), COALESCE(c.used_in_product_listing,0), COALESCE(c.used_for_sort_by,0),
	COALESCE(c.search_weight,1)
	FROM eav_attribute a JOIN eav_entity_type t ON t.entity_type_id = a.entity_type_id AND t.entity_type_code = 'catalog_product'
	LEFT JOIN catalog_eav_attribute c ON c.attribute_id = a.attribute_id`

func scanAttr(rows *sql.Rows) (*attrMeta, error) {
	a := &attrMeta{}
	err := rows.Scan(&a.ID, &a.Code, &a.BackendType, &a.FrontendInput, &a.FrontendLabel, &a.UserDefined, &a.Required, &a.Unique,
		&a.DefaultValue, &a.SourceModel, &a.IsGlobal, &a.Visible, &a.Searchable, &a.Filterable, &a.Comparable, &a.VisibleOnFront,
		&a.UsedForPromoRules, &a.FilterableSearch, &a.UsedInListing, &a.UsedForSortBy, &a.SearchWeight)
	return a, err
}

// loadAttributes reads product attributes; with ids, only those.
func loadAttributes(ctx context.Context, db *sql.DB, ids []uint64) (map[uint64]*attrMeta, error) {
	q, args := attrSelect, []any(nil)
	if ids != nil {
		if len(ids) == 0 {
			return map[uint64]*attrMeta{}, nil
		}
		in, a := inList(ids)
		q += " WHERE a.attribute_id IN (" + in + ")"
		args = a
	}
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("read product attributes: %w", err)
	}
	defer rows.Close()
	out := map[uint64]*attrMeta{}
	for rows.Next() {
		a, err := scanAttr(rows)
		if err != nil {
			return nil, fmt.Errorf("read product attributes: %w", err)
		}
		out[a.ID] = a
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read product attributes: %w", err)
	}
	return out, nil
}

// usesOptions reports whether the attribute's values are option ids of
// eav_attribute_option (select / multiselect inputs).
func (a *attrMeta) usesOptions() bool {
	return a.FrontendInput == "select" || a.FrontendInput == "multiselect"
}

// optionLabels reads option labels for the given option ids: admin (store 0)
// labels and every store-view override, per option. Labels already read
// are taken from the registry's label cache, shared: callers must not
// modify them.
func (e *env) optionLabels(ctx context.Context, optionIDs []uint64) (map[uint64]storeLabels, error) {
	out := make(map[uint64]storeLabels, len(optionIDs))
	missing, gen := e.labels.lookup(optionIDs, out)
	for _, part := range chunks(missing, e.chunk) {
		in, args := inList(part)
		rows, err := e.db.QueryContext(ctx, `SELECT option_id, store_id, value FROM eav_attribute_option_value WHERE value IS NOT NULL AND option_id IN (`+in+`)`, args...)
		if err != nil {
			return nil, fmt.Errorf("read option labels: %w", err)
		}
		for rows.Next() {
			var oid, sid uint64
			var v string
			if err := rows.Scan(&oid, &sid, &v); err != nil {
				rows.Close()
				return nil, fmt.Errorf("read option labels: %w", err)
			}
			out[oid] = append(out[oid], storeLabel{sid, v})
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("read option labels: %w", err)
		}
	}
	e.labels.store(gen, missing, out)
	return out, nil
}

// labelTables are the tables whose changes can change an option's labels:
// the labels themselves, and the options, attributes and store views whose
// deletes remove labels by foreign-key cascade, without row events.
var labelTables = map[string]bool{"eav_attribute_option_value": true, "eav_attribute_option": true, "eav_attribute": true, "store": true}

// maxCachedOptions bounds the label cache (about 100 bytes an option).
const maxCachedOptions = 50_000

// storeLabel is one label row of an option.
type storeLabel struct {
	store uint64
	v     string
}

// storeLabels are one option's labels, at most one per store view (a
// handful: a linear scan beats a map, and nothing is built per lookup).
type storeLabels []storeLabel

// label resolves a store-scoped label: the store's row over the admin row.
func (ls storeLabels) label(store uint64) (string, bool) {
	admin, ok := "", false
	for _, l := range ls {
		if l.store == store {
			return l.v, true
		}
		if l.store == 0 {
			admin, ok = l.v, true
		}
	}
	return admin, ok
}

// labelCache holds the labels of the options builds have read, so that
// every chunk of a full sync does not read the same labels again (on the
// large catalog they were the server's largest cost: 3,014 statements,
// 7.6M rows, for 37,783 label rows).
//
// Invariant: a cached label is never older than the last change of a
// label table the registry was told of (Registry.Keys, TableReplaced):
// such a change empties the cache and advances gen, and a read that began
// before it (gen differs) is not stored. So a build after the stream
// collected a label change reads it from the source, and a build before
// reads what the stream's later rebuild of the products using the option
// replaces — as without a cache, where a build may also run before the
// stream reaches a committed change.
type labelCache struct {
	mu  sync.Mutex
	gen uint64
	m   map[uint64]storeLabels // option id -> its labels (none: no label rows)
}

// lookup adds the cached labels of ids to out (shared with the cache) and
// returns the ids not cached and the generation to store their labels
// under.
func (c *labelCache) lookup(ids []uint64, out map[uint64]storeLabels) ([]uint64, uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var missing []uint64
	for _, id := range ids {
		ls, ok := c.m[id]
		if !ok {
			missing = append(missing, id)
			continue
		}
		if len(ls) > 0 {
			out[id] = ls
		}
	}
	return missing, c.gen
}

// store caches the labels read for ids (ids without rows as having none)
// unless a label table changed since the read began.
func (c *labelCache) store(gen uint64, ids []uint64, read map[uint64]storeLabels) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	if c.m == nil {
		c.m = map[uint64]storeLabels{}
	}
	for _, id := range ids {
		if len(c.m) >= maxCachedOptions {
			return
		}
		c.m[id] = read[id]
	}
}

// changed tells the cache that table changed, with no rows known (a
// TRUNCATE, a table swapped in): a label table's change forgets every
// cached label.
func (c *labelCache) changed(table string) {
	if !labelTables[table] {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.m = nil
}

// metaTables are the tables the cached store views, attribute metadata and
// customer groups are read from.
var metaTables = map[string]bool{tStore: true, tStoreGroup: true, tStoreWebsite: true, tEavAttribute: true, tCatalogEav: true, "eav_entity_type": true, tCustomerGroup: true}

// metaCache holds the store views and the product attributes' metadata
// that every build of a products chunk needs (and the customer group ids
// of productOverrides' builds): read once per build, they
// were two statements and about 1,050 rows per chunk on the large catalog
// (the attributes alone were the server's second largest cost of a first
// start after the option labels), and a third of a streamed batch's
// statements. Its invariant is labelCache's: what it holds is never older
// than the last change of one of metaTables the registry was told of
// (Registry.Keys, TableReplaced, Committed); a change empties it and
// advances gen, and a read that began before is not kept. Callers must
// not modify what it returns.
type metaCache struct {
	mu     sync.Mutex
	gen    uint64
	stores []storeView          // nil: not cached
	attrs  map[uint64]*attrMeta // nil: not cached
	groups map[uint64]bool      // customer group ids; nil: not cached
}

// changed tells the cache that table changed.
func (c *metaCache) changed(table string) {
	if !metaTables[table] {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.stores, c.attrs, c.groups = nil, nil, nil
}

// storeViews is loadStores through the cache.
func (e *env) storeViews(ctx context.Context) ([]storeView, error) {
	return cachedRead(ctx, e.meta, &e.meta.stores, func(ctx context.Context) ([]storeView, error) { return loadStores(ctx, e.db) })
}

// customerGroups is the set of customer group ids, through the cache.
func (e *env) customerGroups(ctx context.Context) (map[uint64]bool, error) {
	return cachedRead(ctx, e.meta, &e.meta.groups, func(ctx context.Context) (map[uint64]bool, error) {
		out := map[uint64]bool{}
		err := query(ctx, e.db, `SELECT customer_group_id FROM `+tCustomerGroup, nil, func(r *sql.Rows) error {
			var id uint64
			if err := r.Scan(&id); err != nil {
				return err
			}
			out[id] = true
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("read customer groups: %w", err)
		}
		return out, nil
	})
}

// productAttributes is loadAttributes of every product attribute, through
// the cache.
func (e *env) productAttributes(ctx context.Context) (map[uint64]*attrMeta, error) {
	return cachedRead(ctx, e.meta, &e.meta.attrs, func(ctx context.Context) (map[uint64]*attrMeta, error) { return loadAttributes(ctx, e.db, nil) })
}

// cachedRead returns *slot when the cache holds it (not nil), or what load
// reads, kept in *slot unless a meta table changed while it read.
func cachedRead[T []storeView | map[uint64]*attrMeta | map[uint64]bool](ctx context.Context, c *metaCache, slot *T, load func(context.Context) (T, error)) (T, error) {
	c.mu.Lock()
	v, gen := *slot, c.gen
	c.mu.Unlock()
	if v != nil {
		return v, nil
	}
	v, err := load(ctx)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if gen == c.gen {
		*slot = v
	}
	c.mu.Unlock()
	return v, nil
}

// changedRow tells the cache of one row change: a change of an option's
// label rows or of the option forgets that option's labels only (the
// other options keep theirs: in a catalog whose labels are edited now and
// then, dropping all of them at every edit made every build read them
// again); a deleted attribute or store view, whose option labels go by
// cascade without row events (or whose id changes), forgets every label,
// as does an option change whose rows do not show the option id. Other changes of label
// tables (an attribute's or store's update, a new one) change no label.
func (c *labelCache) changedRow(ch *change.Change) {
	switch ch.Table.Name {
	case tOptionValue, tAttributeOption:
		opts := ids(ch, "option_id")
		if len(opts) == 0 {
			c.changed(ch.Table.Name)
			return
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		c.gen++
		for _, id := range opts {
			delete(c.m, id)
		}
	case tEavAttribute, tStore:
		id := map[string]string{tEavAttribute: "attribute_id", tStore: "store_id"}[ch.Table.Name]
		if ch.Op == change.OpDelete || ch.Op == change.OpUpdate && changed(ch, id) {
			c.changed(ch.Table.Name)
		}
	}
}

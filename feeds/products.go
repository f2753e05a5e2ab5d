package feeds

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/feedcdc/feedcdc/change"
)

func init() { register("products", func(e *env) Feed { return &products{e: e} }) }

// products: one item per (product, store view of each website the product
// is assigned to). See docs/feeds.md#products.
type products struct{ e *env }

func (p *products) usesLinks() {}

func (p *products) Name() string             { return "products" }
func (p *products) IdentityFields() []string { return []string{"sku", "storeViewCode"} }

func (p *products) Tables() []string {
	return []string{
		tProductEntity, "catalog_product_entity_int", "catalog_product_entity_varchar",
		"catalog_product_entity_text", "catalog_product_entity_decimal", "catalog_product_entity_datetime",
		tProductWebsite, tCategoryProduct, tCategoryEntity, tStockItem, tRelation,
		tEavAttribute, tAttributeOption, tOptionValue, tStore, tStoreGroup, tStoreWebsite,
	}
}

var productMinimal = []string{"productId", "sku", "storeViewCode", "storeCode", "websiteCode"}

func (p *products) DeletedPayload(prev PrevItem) Item {
	return deletedItem(p.Name(), prev, productMinimal, map[string]bool{"productId": true}, p.e.modifiedAt())
}

func (p *products) Scan(ctx context.Context, emit func([]string) error) error {
	return allProducts(ctx, p.e, emit)
}

func (p *products) Keys(ctx context.Context, c *change.Change, emit func([]string) error) error {
	e := p.e
	name := c.Table.Name
	switch {
	case name == tProductEntity:
		if err := emitIDs(ids(c, "entity_id"), e.chunk, emit); err != nil {
			return err
		}
		if err := skuSiblings(ctx, e, c, emit); err != nil {
			return fmt.Errorf("%s: %w", p.Name(), err)
		}
		// Children carry parents[].sku / productType.
		if !changed(c, "sku", "type_id") {
			return nil
		}
		return childrenKeys(ctx, e, c, false, emit)
	case isValueTable(name):
		return emitIDs(ids(c, "entity_id"), e.chunk, emit)
	case name == tProductWebsite, name == tCategoryProduct, name == tStockItem:
		return emitIDs(ids(c, "product_id"), e.chunk, emit)
	case name == tRelation:
		return emitIDs(ids(c, "child_id"), e.chunk, emit)
	case name == tCategoryEntity:
		if c.After == nil {
			// The category's product links went with it (a cascade the
			// binlog does not show): every product may have lost it.
			e.log.Info("feeds: category deleted, rebuilding all products", "feed", p.Name(), "category", ids(c, "entity_id"))
			return allProducts(ctx, e, emit)
		}
		if !changed(c, "path") {
			return nil
		}
		for _, cat := range ids(c, "entity_id") {
			if err := scanIDs(ctx, e.db, e.chunk, `SELECT product_id FROM catalog_category_product WHERE category_id = ? AND product_id > ? ORDER BY product_id LIMIT ?`, []any{cat}, emit); err != nil {
				return err
			}
		}
		return nil
	case name == tEavAttribute:
		return attributeChangeProducts(ctx, e, c, emit)
	case name == tAttributeOption:
		if c.Before == nil { // a new option is used by no product yet
			return nil
		}
		return optionChangeProducts(ctx, e, c, emit)
	case name == tOptionValue:
		for _, oid := range ids(c, "option_id") {
			if !firstLookup(ctx, p.Name(), "option", oid) {
				continue
			}
			attr, bt, ok, err := optionAttribute(ctx, e, oid)
			if err != nil {
				return err
			}
			if ok {
				if err := productsUsingOption(ctx, e, attr, oid, bt, emit); err != nil {
					return err
				}
			}
		}
		return nil
	case name == tStore:
		if c.Before != nil && c.After != nil && !changed(c, "code", "website_id", "group_id") {
			return nil
		}
		return productsInWebsites(ctx, e, websitesOf(c), emit)
	case name == tStoreGroup:
		if c.Before == nil || (c.After != nil && !changed(c, "code", "website_id")) {
			return nil
		}
		return productsInWebsites(ctx, e, websitesOf(c), emit)
	case name == tStoreWebsite:
		switch {
		case c.Before == nil:
			return nil
		case c.After == nil:
			// Its stores and product assignments cascaded away unseen.
			e.log.Info("feeds: website deleted, rebuilding all products", "feed", p.Name(), "website", ids(c, "website_id"))
			return allProducts(ctx, e, emit)
		case changed(c, "code"):
			return productsInWebsites(ctx, e, websitesOf(c), emit)
		}
	}
	return nil
}

// childrenKeys emits the children (relation or super-link) of the changed
// product; for a deleted composite product whose links may have vanished
// before the index was loaded, it emits every product.
func childrenKeys(ctx context.Context, e *env, c *change.Change, super bool, emit func([]string) error) error {
	if c.After == nil {
		typ, _ := imageString(c.Table, c.Before, "type_id")
		if typ != "simple" && typ != "virtual" && typ != "downloadable" {
			unsure, err := e.links.unsure(ctx, c, super)
			if err != nil {
				return err
			}
			if unsure {
				e.log.Info("feeds: composite product deleted before the link index was loaded, rebuilding all products",
					"product", ids(c, "entity_id"), "type", typ)
				start := time.Now()
				if err := allProducts(ctx, e, emit); err != nil {
					return err
				}
				e.links.covered(super, start)
				return nil
			}
		}
	}
	return emitChildren(ctx, e, super, ids(c, "entity_id"), emit)
}

// emitChildren emits the children of the parents (super-link children if
// super, else relation children) from the link index.
func emitChildren(ctx context.Context, e *env, super bool, parents []uint64, emit func([]string) error) error {
	for _, id := range parents {
		ch, err := e.links.children(ctx, super, id)
		if err != nil {
			return err
		}
		if err := emitIDs(ch, e.chunk, emit); err != nil {
			return err
		}
	}
	return nil
}

// attributeChangeProducts: an attribute's code, input, type or user-defined
// flag changed (products that have values for it), or it was deleted (its
// values cascaded away unseen: every product).
func attributeChangeProducts(ctx context.Context, e *env, c *change.Change, emit func([]string) error) error {
	if c.Before == nil {
		return nil
	}
	if c.After == nil {
		e.log.Info("feeds: attribute deleted, rebuilding all products", "attribute", ids(c, "attribute_id"))
		return allProducts(ctx, e, emit)
	}
	if !changed(c, "attribute_code", "backend_type", "frontend_input", "is_user_defined", "default_value", "entity_type_id") {
		return nil
	}
	if code, _ := imageString(c.Table, c.After, "attribute_code"); (code == "status" || code == "visibility") && changed(c, "default_value") {
		// Products without a value row show the default.
		return allProducts(ctx, e, emit)
	}
	seen := map[string]bool{}
	for _, row := range [][]any{c.Before, c.After} {
		bt, _ := imageString(c.Table, row, "backend_type")
		id, ok := imageUint(c.Table, row, "attribute_id")
		if !ok || seen[bt] {
			continue
		}
		seen[bt] = true
		if err := productsWithAttribute(ctx, e, id, bt, emit); err != nil {
			return err
		}
	}
	return nil
}

// optionChangeProducts: an option was deleted or changed: the products
// whose values use it.
func optionChangeProducts(ctx context.Context, e *env, c *change.Change, emit func([]string) error) error {
	for _, row := range [][]any{c.Before, c.After} {
		oid, ok1 := imageUint(c.Table, row, "option_id")
		aid, ok2 := imageUint(c.Table, row, "attribute_id")
		if !ok1 || !ok2 {
			continue
		}
		bt, err := attributeBackend(ctx, e, aid)
		if err != nil {
			return err
		}
		if err := productsUsingOption(ctx, e, aid, oid, bt, emit); err != nil {
			return err
		}
		if c.After == nil || !changed(c, "attribute_id") {
			break
		}
	}
	return nil
}

// ---- build ----

type productRow struct {
	id        uint64
	sku       string
	owner     uint64 // the lower entity_id that owns sku; 0 if this product does
	typ       string
	createdAt int64
	updatedAt int64
	websites  []uint64
	vals      []eavVal // sorted by attribute, then store, after load
	cats      []categoryRef
	parents   []parentRef
	stock     *stockRow
}

type stockRow struct {
	qty     sql.NullString
	inStock bool
	manage  bool
}

type categoryRef struct {
	CategoryID      string `json:"categoryId"`
	CategoryPath    string `json:"categoryPath"`
	ProductPosition int64  `json:"productPosition"`
}

type parentRef struct {
	SKU         string `json:"sku"`
	ProductType string `json:"productType"`
}

type imageRef struct {
	URL   string  `json:"url"`
	Label *string `json:"label"`
}

type productPrices struct {
	RegularPrice    *json.Number `json:"regularPrice"`
	SpecialPrice    *json.Number `json:"specialPrice"`
	SpecialFromDate *string      `json:"specialFromDate"`
	SpecialToDate   *string      `json:"specialToDate"`
}

type inventory struct {
	Qty         *json.Number `json:"qty"`
	IsInStock   bool         `json:"isInStock"`
	ManageStock bool         `json:"manageStock"`
}

type attributeValue struct {
	AttributeCode string   `json:"attributeCode"`
	Value         []string `json:"value"`
	ValueID       []string `json:"valueId,omitempty"`
}

type productPayload struct {
	SKU              string           `json:"sku"`
	StoreViewCode    string           `json:"storeViewCode"`
	StoreCode        string           `json:"storeCode"`
	WebsiteCode      string           `json:"websiteCode"`
	ProductID        uint64           `json:"productId"`
	Type             string           `json:"type"`
	Name             *string          `json:"name"`
	Status           *string          `json:"status"`
	Visibility       *string          `json:"visibility"`
	Displayable      bool             `json:"displayable"`
	Buyable          bool             `json:"buyable"`
	InStock          bool             `json:"inStock"`
	URLKey           *string          `json:"urlKey"`
	Description      *string          `json:"description"`
	ShortDescription *string          `json:"shortDescription"`
	MetaTitle        *string          `json:"metaTitle"`
	MetaKeyword      *string          `json:"metaKeyword"`
	MetaDescription  *string          `json:"metaDescription"`
	TaxClassID       *string          `json:"taxClassId"`
	Weight           *json.Number     `json:"weight"`
	Prices           productPrices    `json:"prices"`
	Image            *imageRef        `json:"image"`
	SmallImage       *imageRef        `json:"smallImage"`
	Thumbnail        *imageRef        `json:"thumbnail"`
	SwatchImage      *imageRef        `json:"swatchImage"`
	Inventory        *inventory       `json:"inventory"`
	CategoryData     []categoryRef    `json:"categoryData"`
	Parents          []parentRef      `json:"parents"`
	Attributes       []attributeValue `json:"attributes"`
	CreatedAt        string           `json:"createdAt"`
	Deleted          bool             `json:"deleted"`

	images [4]imageRef // what Image … SwatchImage point to: one allocation with the payload
	labels [2]string   // what Status and Visibility point to
}

// Core attributes read into named fields.
var productCoreCodes = []string{
	"name", "status", "visibility", "url_key", "description", "short_description", "meta_title", "meta_keyword",
	"meta_description", "tax_class_id", "weight", "price", "special_price", "special_from_date", "special_to_date",
	"image", "image_label", "small_image", "small_image_label", "thumbnail", "thumbnail_label", "swatch_image",
}

// systemAttributes are non-user-defined attributes listed in attributes[]
// (Adobe's default systemAttributes).
var systemAttributes = map[string]bool{"news_from_date": true, "news_to_date": true}

func (p *products) Build(ctx context.Context, entityKeys []string) ([]Item, error) {
	idsList, err := parseKeys(p.Name(), entityKeys)
	if err != nil {
		return nil, err
	}
	if len(idsList) == 0 {
		return nil, nil
	}
	e := p.e
	stores, err := e.storeViews(ctx)
	if err != nil {
		return nil, err
	}
	attrs, err := e.productAttributes(ctx)
	if err != nil {
		return nil, err
	}
	byCode := map[string]*attrMeta{}
	var wanted []uint64
	for _, a := range attrs {
		if a.BackendType == "static" {
			continue
		}
		byCode[a.Code] = a
		if a.UserDefined || systemAttributes[a.Code] {
			wanted = append(wanted, a.ID)
		}
	}
	for _, code := range productCoreCodes {
		if a, ok := byCode[code]; ok && !a.UserDefined {
			wanted = append(wanted, a.ID)
		}
	}
	modifiedAt := e.modifiedAt()
	var out []Item
	for _, part := range chunks(idsList, e.chunk) {
		rows, err := p.load(ctx, part, wanted)
		if err != nil {
			return nil, err
		}
		items, err := p.items(ctx, rows, stores, attrs, byCode, modifiedAt)
		if err != nil {
			return nil, err
		}
		out = append(out, items...)
	}
	return out, nil
}

// load reads the entities of one chunk with one query per source table.
func (p *products) load(ctx context.Context, part []uint64, wanted []uint64) ([]*productRow, error) {
	ch := &productChunk{db: p.e.db, spans: &p.e.spans, byID: map[uint64]*productRow{}, ids: matchIDs(part)}
	if err := ch.entities(ctx); err != nil {
		return nil, err
	}
	if len(ch.order) == 0 {
		return nil, nil
	}
	for _, step := range []func(context.Context) error{
		ch.websites,
		func(ctx context.Context) error { return ch.values(ctx, wanted) },
		ch.categories,
		ch.stock,
		ch.parents,
	} {
		if err := step(ctx); err != nil {
			return nil, err
		}
	}
	return ch.order, nil
}

// productChunk is one chunk of products being loaded: the condition
// selecting its ids and the rows read so far, by id and in id order. The
// other tables' rows are matched to byID, which holds only the chunk's
// products.
type productChunk struct {
	db    *sql.DB
	spans *spanProbes
	ids   idMatch
	byID  map[uint64]*productRow
	order []*productRow
}

// entities reads the catalog_product_entity rows.
func (ch *productChunk) entities(ctx context.Context) error {
	err := query(ctx, ch.db, `SELECT entity_id, sku, type_id, UNIX_TIMESTAMP(created_at), UNIX_TIMESTAMP(updated_at)
		FROM catalog_product_entity WHERE `+ch.ids.On("entity_id")+` ORDER BY entity_id`, nil, func(r *sql.Rows) error {
		pr := &productRow{}
		var sku sql.NullString
		var ca, ua sql.NullInt64
		if err := r.Scan(&pr.id, &sku, &pr.typ, &ca, &ua); err != nil {
			return err
		}
		if !ch.ids.Has(pr.id) {
			return nil
		}
		pr.sku, pr.createdAt, pr.updatedAt = sku.String, ca.Int64, ua.Int64
		ch.byID[pr.id] = pr
		ch.order = append(ch.order, pr)
		return nil
	})
	if err != nil {
		return fmt.Errorf("products: read entities: %w", err)
	}
	if len(ch.order) == 0 {
		return nil
	}
	owners, err := shadowed(ctx, ch.db, ch.ids)
	if err != nil {
		return fmt.Errorf("products: %w", err)
	}
	for id, owner := range owners {
		if pr := ch.byID[id]; pr != nil {
			pr.owner = owner
		}
	}
	return nil
}

// websites reads the products' website assignments.
func (ch *productChunk) websites(ctx context.Context) error {
	err := query(ctx, ch.db, `SELECT product_id, website_id FROM catalog_product_website WHERE `+ch.ids.On("product_id")+` ORDER BY product_id, website_id`, nil, func(r *sql.Rows) error {
		var pid, wid uint64
		if err := r.Scan(&pid, &wid); err != nil {
			return err
		}
		if pr := ch.byID[pid]; pr != nil {
			pr.websites = append(pr.websites, wid)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("products: read website assignments: %w", err)
	}
	return nil
}

// values reads the products' EAV values of the wanted attributes (none
// when wanted is empty), sorted by attribute and store.
func (ch *productChunk) values(ctx context.Context, wanted []uint64) error {
	if len(wanted) == 0 {
		return nil
	}
	// Filtering attributes in SQL too ("AND attribute_id IN (…)") makes
	// the optimizer probe entities × attributes ranges of the unique
	// key: 100x slower at 300 attributes. Filter here instead.
	want := make(map[uint64]bool, len(wanted))
	for _, a := range wanted {
		want[a] = true
	}
	// The scan targets are reused for every row (a target per row would
	// be four allocations). The ids arrive as the driver decoded them
	// (database/sql would convert them to uint64 through reflection and a
	// string per value), the value as raw bytes (the text protocol's
	// rendering of the column, as CAST(value AS CHAR) gives it), copied
	// only for the rows kept.
	var rp, ra, rs any
	var v sql.RawBytes
	dest := []any{&rp, &ra, &rs, &v}
	// One query per backend table, values as stored, rather than one
	// UNION ALL of CAST(value AS CHAR): on the large catalog the union
	// took 1.2x the server CPU of the five queries (61 chunks of 1,000
	// products, two rounds: 2.2-2.3 s against 1.8-1.9 s).
	for _, bt := range backendTypes {
		where, err := ch.valueRange(ctx, valueTables[bt])
		if err != nil {
			return fmt.Errorf("products: read attribute value ids (%s): %w", valueTables[bt], err)
		}
		if where == "" {
			continue // no value row of the chunk's products
		}
		err = query(ctx, ch.db, `SELECT entity_id, attribute_id, store_id, value FROM `+valueTables[bt]+where, nil, func(r *sql.Rows) error {
			if err := r.Scan(dest...); err != nil {
				return err
			}
			pid, ok1 := toUint(rp)
			aid, ok2 := toUint(ra)
			sid, ok3 := toUint(rs)
			if !ok1 || !ok2 || !ok3 {
				return fmt.Errorf("value row ids %v, %v, %v: not unsigned integers", rp, ra, rs)
			}
			pr := ch.byID[pid]
			if pr == nil || !want[aid] {
				return nil
			}
			pr.vals = append(pr.vals, eavVal{attr: aid, store: sid, v: sql.NullString{String: string(v), Valid: v != nil}})
			return nil
		})
		if err != nil {
			return fmt.Errorf("products: read attribute values (%s): %w", valueTables[bt], err)
		}
	}
	for _, pr := range ch.order {
		slices.SortFunc(pr.vals, func(a, b eavVal) int {
			if c := cmp.Compare(a.attr, b.attr); c != 0 {
				return c
			}
			return cmp.Compare(a.store, b.store)
		})
	}
	return nil
}

// valueRange returns the FROM-clause tail (index hint and WHERE) reading
// the chunk's rows of value table t, or "" when it holds none.
//
// A range chunk (a full sync's) reads the rows of its products by their
// primary key when their value_ids are dense: the value tables are
// clustered on value_id, and products are mostly written with all their
// values at once, so the value_ids of consecutive products are
// consecutive too. One covering read of the unique (entity_id, ...) index
// finds the span; the rows are then read in one pass over the clustered
// index, with the entity range as a filter. Through the unique index
// instead, every row costs a lookup of the clustered index: twice the
// server's CPU on the large catalog (61 chunks of 1,000 products × five
// tables: 167 against 88 ticks, the span query included). When the span
// holds more than twice the chunk's rows (values added to old products
// later, or values of many other products between them), the chunk reads
// through the unique index as before.
//
// The two statements need not see the same snapshot: a row committed
// before the span query has its value_id in the span; one committed after
// it is a later change in the binlog, which rebuilds the product again.
//
// The span query is not free (on the large catalog, whose store-view
// values were written after the products, no chunk was dense and the span
// queries were 13 % of the server's time of a first start), so a table
// whose spans keep being too wide is read through the index without
// asking, and asked again now and then (spanProbes).
func (ch *productChunk) valueRange(ctx context.Context, t string) (string, error) {
	byEntity := " WHERE " + ch.ids.On("entity_id")
	if !ch.ids.isRange() || !ch.spans.probe(t) {
		return byEntity, nil
	}
	var lo, hi sql.NullInt64
	var n int64
	err := ch.db.QueryRowContext(ctx, `SELECT MIN(value_id), MAX(value_id), COUNT(*) FROM `+t+byEntity).Scan(&lo, &hi, &n)
	switch {
	case err != nil:
		return "", err
	case n == 0:
		return "", nil
	case hi.Int64-lo.Int64 < 2*n:
		ch.spans.result(t, true)
		return " FORCE INDEX (PRIMARY) WHERE value_id BETWEEN " + strconv.FormatInt(lo.Int64, 10) + " AND " + strconv.FormatInt(hi.Int64, 10) +
			" AND " + ch.ids.On("entity_id"), nil
	default:
		ch.spans.result(t, false)
		return byEntity, nil
	}
}

// Span probing: after spanMisses chunks in a row whose value_ids were too
// scattered, a table's next spanSkip range chunks are read through the
// index without a span query; then one is asked again.
const (
	spanMisses = 4
	spanSkip   = 32
)

// spanProbes remembers, per value table, how the span queries of range
// chunks turned out (see valueRange). Safe for concurrent use; what it
// decides only chooses between two reads of the same rows.
type spanProbes struct {
	mu sync.Mutex
	m  map[string]*spanProbe
}

type spanProbe struct {
	misses, skip int
	asked        int // span queries made (tests)
}

func (s *spanProbes) get(t string) *spanProbe {
	if s.m == nil {
		s.m = map[string]*spanProbe{}
	}
	p := s.m[t]
	if p == nil {
		p = &spanProbe{}
		s.m[t] = p
	}
	return p
}

// probe reports whether the next range chunk of table t should ask for its
// span.
func (s *spanProbes) probe(t string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.get(t)
	if p.skip > 0 {
		p.skip--
		return false
	}
	p.asked++
	return true
}

// result records whether a span of table t was dense.
func (s *spanProbes) result(t string, dense bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.get(t)
	if dense {
		p.misses = 0
		return
	}
	if p.misses++; p.misses >= spanMisses {
		p.skip = spanSkip
	}
}

// categories reads the products' category assignments with the
// categories' paths.
func (ch *productChunk) categories(ctx context.Context) error {
	err := query(ctx, ch.db, `SELECT cp.product_id, cp.category_id, cp.position, COALESCE(ce.path, '')
		FROM catalog_category_product cp LEFT JOIN catalog_category_entity ce ON ce.entity_id = cp.category_id
		WHERE `+ch.ids.On("cp.product_id")+` ORDER BY cp.product_id, cp.category_id`, nil, func(r *sql.Rows) error {
		var pid, cid uint64
		var pos int64
		var path string
		if err := r.Scan(&pid, &cid, &pos, &path); err != nil {
			return err
		}
		if pr := ch.byID[pid]; pr != nil {
			pr.cats = append(pr.cats, categoryRef{CategoryID: strconv.FormatUint(cid, 10), CategoryPath: path, ProductPosition: pos})
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("products: read categories: %w", err)
	}
	return nil
}

// stock reads each product's first stock item.
func (ch *productChunk) stock(ctx context.Context) error {
	err := query(ctx, ch.db, `SELECT product_id, CAST(qty AS CHAR), is_in_stock, IF(use_config_manage_stock = 1, 1, manage_stock)
		FROM cataloginventory_stock_item WHERE `+ch.ids.On("product_id")+` ORDER BY product_id, stock_id`, nil, func(r *sql.Rows) error {
		var pid uint64
		var s stockRow
		if err := r.Scan(&pid, &s.qty, &s.inStock, &s.manage); err != nil {
			return err
		}
		if pr := ch.byID[pid]; pr != nil && pr.stock == nil {
			pr.stock = &s
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("products: read stock: %w", err)
	}
	return nil
}

// parents reads the parents (SKU and type) of the products.
func (ch *productChunk) parents(ctx context.Context) error {
	err := query(ctx, ch.db, `SELECT r.child_id, p.sku, p.type_id FROM catalog_product_relation r
		JOIN catalog_product_entity p ON p.entity_id = r.parent_id WHERE `+ch.ids.On("r.child_id"), nil, func(r *sql.Rows) error {
		var cid uint64
		var ref parentRef
		if err := r.Scan(&cid, &ref.SKU, &ref.ProductType); err != nil {
			return err
		}
		if pr := ch.byID[cid]; pr != nil {
			pr.parents = append(pr.parents, ref)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("products: read parents: %w", err)
	}
	return nil
}

// query runs a query and calls fn for every row.
func query(ctx context.Context, db *sql.DB, q string, args []any, fn func(*sql.Rows) error) error {
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// eavVal is one value row of a product.
type eavVal struct {
	attr, store uint64
	v           sql.NullString
	num         *json.Number // v as a trimmed decimal, once asked for (storeValues.num)
}

// resolve returns the attribute's value for a store view: the store row
// (even when its value is NULL) over the store-0 row.
func (pr *productRow) resolve(attr, store uint64) (sql.NullString, bool) {
	if i := pr.resolveAt(attr, store); i >= 0 {
		return pr.vals[i].v, true
	}
	return sql.NullString{}, false
}

// resolveAt is resolve returning the index of the value in pr.vals, or -1.
func (pr *productRow) resolveAt(attr, store uint64) int {
	i, hi := 0, len(pr.vals) // the first value of attr: sort.Search without the closure call
	for i < hi {
		m := int(uint(i+hi) >> 1)
		if pr.vals[m].attr < attr {
			i = m + 1
		} else {
			hi = m
		}
	}
	def := -1
	for ; i < len(pr.vals) && pr.vals[i].attr == attr; i++ {
		switch pr.vals[i].store {
		case store:
			return i
		case 0:
			def = i
		}
	}
	return def
}

func (p *products) items(ctx context.Context, rows []*productRow, stores []storeView, attrs map[uint64]*attrMeta, byCode map[string]*attrMeta, modifiedAt string) ([]Item, error) {
	// Option labels of every select/multiselect value in the chunk.
	optSet := map[uint64]bool{}
	var idBuf [8]uint64
	for _, pr := range rows {
		for _, ev := range pr.vals {
			a := attrs[ev.attr]
			if a == nil || !a.usesOptions() || !(a.UserDefined || systemAttributes[a.Code]) {
				continue
			}
			for _, id := range appendOptionIDs(idBuf[:0], ev.v) {
				optSet[id] = true
			}
		}
	}
	var optIDs []uint64
	for id := range optSet {
		optIDs = append(optIDs, id)
	}
	slices.Sort(optIDs)
	labels, err := p.e.optionLabels(ctx, optIDs)
	// The options' ids as text, once per chunk instead of once per item.
	idText := make(map[uint64]string, len(optIDs))
	for _, id := range optIDs {
		idText[id] = strconv.FormatUint(id, 10)
	}
	if err != nil {
		return nil, fmt.Errorf("products: %w", err)
	}
	isListed := func(a *attrMeta) bool {
		return a != nil && a.BackendType != "static" && (a.UserDefined || systemAttributes[a.Code])
	}

	storesByWebsite := map[uint64][]storeView{}
	for _, s := range stores {
		storesByWebsite[s.WebsiteID] = append(storesByWebsite[s.WebsiteID], s)
	}
	var out []Item
	var arena itemArena
	for _, pr := range rows {
		if pr.sku == "" {
			p.e.warnOnce("nosku/"+strconv.FormatUint(pr.id, 10), "feeds: product without sku skipped (logged once per product)", "feed", p.Name(), "product", pr.id)
			continue
		}
		if pr.owner != 0 {
			p.e.warnShadowed(p.Name(), pr.id, pr.sku, pr.owner)
			continue
		}
		slices.SortFunc(pr.parents, func(a, b parentRef) int {
			if c := strings.Compare(a.SKU, b.SKU); c != 0 {
				return c
			}
			return strings.Compare(a.ProductType, b.ProductType)
		})
		slices.SortFunc(pr.cats, func(a, b categoryRef) int {
			x, _ := strconv.ParseUint(a.CategoryID, 10, 64)
			y, _ := strconv.ParseUint(b.CategoryID, 10, 64)
			return cmp.Compare(x, y)
		})
		// The product's attributes listed in attributes[], sorted by code.
		var listed []*attrMeta
		for i, ev := range pr.vals {
			if i > 0 && pr.vals[i-1].attr == ev.attr {
				continue
			}
			if a := attrs[ev.attr]; isListed(a) {
				listed = append(listed, a)
			}
		}
		slices.SortFunc(listed, func(a, b *attrMeta) int { return strings.Compare(a.Code, b.Code) })
		// What every store view's item of the product shares.
		pc := productCommon{
			key:       strconv.FormatUint(pr.id, 10),
			createdAt: formatTime(time.Unix(pr.createdAt, 0)),
			updatedAt: formatTime(time.Unix(pr.updatedAt, 0)),
			inventory: stockInventory(pr.stock),
		}
		for _, w := range pr.websites {
			for _, s := range storesByWebsite[w] {
				out = append(out, p.item(&arena, pr, &pc, s, byCode, listed, labels, idText, modifiedAt))
			}
		}
	}
	return out, nil
}

// productCommon is what the items of one product share across store views.
type productCommon struct {
	key                  string     // entity key: the entity_id
	createdAt, updatedAt string     // formatTime
	inventory            *inventory // read only: shared by the items
}

func (p *products) item(arena *itemArena, pr *productRow, pc *productCommon, s storeView, byCode map[string]*attrMeta, listed []*attrMeta, labels map[uint64]storeLabels, idText map[uint64]string, modifiedAt string) Item {
	r := storeValues{pr: pr, store: s.ID, byCode: byCode}
	pl := productPayload{
		SKU: pr.sku, StoreViewCode: s.Code, StoreCode: s.GroupCode, WebsiteCode: s.WebsiteCode, ProductID: pr.id,
		Type: pr.typ, Name: r.str("name"), URLKey: r.str("url_key"), Description: r.str("description"),
		ShortDescription: r.str("short_description"), MetaTitle: r.str("meta_title"), MetaKeyword: r.str("meta_keyword"),
		MetaDescription: r.str("meta_description"), TaxClassID: r.str("tax_class_id"), Weight: r.num("weight"),
		Prices: productPrices{RegularPrice: r.num("price"), SpecialPrice: r.num("special_price"),
			SpecialFromDate: r.str("special_from_date"), SpecialToDate: r.str("special_to_date")},
		CategoryData: nonNil(pr.cats), Parents: nonNil(pr.parents),
		Attributes: attributeValues(pr, s, listed, labels, idText),
		CreatedAt:  pc.createdAt,
	}
	pl.Image = r.img(&pl.images[0], "image", "image_label")
	pl.SmallImage = r.img(&pl.images[1], "small_image", "small_image_label")
	pl.Thumbnail = r.img(&pl.images[2], "thumbnail", "thumbnail_label")
	pl.SwatchImage = r.img(&pl.images[3], "swatch_image", "")
	setAvailability(&pl, r, pr.stock, pc.inventory)
	ident := map[string]string{
		"sku": pr.sku, "storeViewCode": s.Code, "productId": pc.key,
		"storeCode": s.GroupCode, "websiteCode": s.WebsiteCode,
	}
	// The identity fields (IdentityFields): sku, storeViewCode.
	return arena.newItem(p.Name(), FeedID(pr.sku, s.Code), pc.key, ident, &pl, pc.updatedAt, modifiedAt)
}

// storeValues reads a product's attribute values by code, resolved for
// one store view.
type storeValues struct {
	pr     *productRow
	store  uint64
	byCode map[string]*attrMeta
}

// get is the product's value row of the attribute for the store view, or
// nil (no attribute, no row, or a NULL value). The payload points into the
// row: no copy per item.
func (r storeValues) get(code string) *eavVal {
	a := r.byCode[code]
	if a == nil {
		return nil
	}
	i := r.pr.resolveAt(a.ID, r.store)
	if i < 0 || !r.pr.vals[i].v.Valid {
		return nil
	}
	return &r.pr.vals[i]
}

// str is the value, nil when the product has none.
func (r storeValues) str(code string) *string {
	if ev := r.get(code); ev != nil {
		return &ev.v.String
	}
	return nil
}

// withDefault is the value, or the attribute's default value.
func (r storeValues) withDefault(code string) *string {
	if v := r.str(code); v != nil {
		return v
	}
	if a := r.byCode[code]; a != nil && a.DefaultValue.Valid {
		d := a.DefaultValue.String
		return &d
	}
	return nil
}

// num is a decimal value without trailing zeros (trimmed once per value
// row, shared by the product's store views).
func (r storeValues) num(code string) *json.Number {
	ev := r.get(code)
	if ev == nil {
		return nil
	}
	if ev.num == nil {
		n := json.Number(trimDecimal(ev.v.String))
		ev.num = &n
	}
	return ev.num
}

// img is an image with its label, stored in ref; nil without an image.
func (r storeValues) img(ref *imageRef, code, labelCode string) *imageRef {
	v := r.str(code)
	if v == nil || *v == "" || *v == "no_selection" {
		return nil
	}
	*ref = imageRef{URL: *v, Label: r.str(labelCode)}
	return ref
}

// setAvailability sets status, visibility, inventory and what follows from
// them: displayable (enabled and visible) and buyable (enabled and in
// stock).
func setAvailability(pl *productPayload, r storeValues, st *stockRow, inv *inventory) {
	enabled := false
	if v := r.withDefault("status"); v != nil {
		pl.labels[0] = statusLabel(*v)
		pl.Status, enabled = &pl.labels[0], *v == "1"
	}
	visible := false
	if v := r.withDefault("visibility"); v != nil {
		pl.labels[1] = visibilityLabel(*v)
		pl.Visibility, visible = &pl.labels[1], *v != "1"
	}
	if st != nil {
		pl.Inventory = inv
		pl.InStock = !st.manage || st.inStock
	}
	pl.Displayable = enabled && visible
	pl.Buyable = enabled && pl.InStock
}

// stockInventory is the inventory of a product's stock row (nil without).
func stockInventory(st *stockRow) *inventory {
	if st == nil {
		return nil
	}
	inv := &inventory{IsInStock: st.inStock, ManageStock: st.manage}
	if st.qty.Valid {
		n := json.Number(trimDecimal(st.qty.String))
		inv.Qty = &n
	}
	return inv
}

// attributeValues lists the product's values of the listed attributes in
// store view s: option labels (and ids, as text in idText) for select
// attributes, the value otherwise; never nil.
func attributeValues(pr *productRow, s storeView, listed []*attrMeta, labels map[uint64]storeLabels, idText map[uint64]string) []attributeValue {
	out := make([]attributeValue, 0, len(listed))
	var idBuf [8]uint64
	for _, a := range listed {
		v, ok := pr.resolve(a.ID, s.ID)
		if !ok || !v.Valid {
			continue
		}
		av := attributeValue{AttributeCode: a.Code}
		if a.usesOptions() {
			oids := appendOptionIDs(idBuf[:0], v)
			if len(oids) == 0 {
				continue
			}
			// Labels and ids in one allocation.
			vs := make([]string, 2*len(oids))
			for i, oid := range oids {
				id, ok := idText[oid]
				if !ok {
					id = strconv.FormatUint(oid, 10)
				}
				lbl, ok := labels[oid].label(s.ID)
				if !ok {
					lbl = id
				}
				vs[i], vs[len(oids)+i] = lbl, id
			}
			av.Value, av.ValueID = vs[:len(oids):len(oids)], vs[len(oids):]
		} else {
			val := v.String
			if a.BackendType == "decimal" {
				val = trimDecimal(val)
			}
			av.Value = []string{val}
		}
		out = append(out, av)
	}
	return out
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// appendOptionIDs appends the ids of a select value (one id) or a
// multiselect value (a comma-separated id list) to dst, keeping the stored
// order and dropping junk.
func appendOptionIDs(dst []uint64, v sql.NullString) []uint64 {
	if !v.Valid {
		return dst
	}
	for s, more := v.String, true; more; {
		var f string
		f, s, more = strings.Cut(s, ",")
		if n, err := strconv.ParseUint(strings.TrimSpace(f), 10, 64); err == nil {
			dst = append(dst, n)
		}
	}
	return dst
}

// trimDecimal normalises a DECIMAL text: "12.500000" -> "12.5",
// "10.000000" -> "10", "-0.000000" -> "0".
func trimDecimal(s string) string {
	s = strings.TrimSpace(s)
	if strings.Contains(s, ".") {
		s = strings.TrimRight(s, "0")
		s = strings.TrimSuffix(s, ".")
	}
	if s == "-0" || s == "" {
		return "0"
	}
	return s
}

func statusLabel(v string) string {
	switch v {
	case "1":
		return "Enabled"
	case "2":
		return "Disabled"
	}
	return v
}

func visibilityLabel(v string) string {
	switch v {
	case "1":
		return "Not Visible Individually"
	case "2":
		return "Catalog"
	case "3":
		return "Search"
	case "4":
		return "Catalog, Search"
	}
	return v
}

package catalog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	mysqldriver "github.com/go-sql-driver/mysql"
)

// Kind names one kind of catalog change the workload makes.
type Kind string

// Workload kinds. Each applied change is counted under its kind in
// WorkloadStats.Kinds; a multi-statement transaction also counts its parts.
const (
	KindPriceDefault       Kind = "price_default"       // price at store 0
	KindPriceStore         Kind = "price_store"         // price from a store view (website scope: all its website's store views)
	KindNameDefault        Kind = "name_default"        // name at store 0
	KindNameStore          Kind = "name_store"          // name override in a store view
	KindDescriptionStore   Kind = "description_store"   // description override in a store view
	KindOverrideRevert     Kind = "override_revert"     // "Use Default Value": delete a store-level value row
	KindStatusToggle       Kind = "status_toggle"       // enable/disable, default or per website
	KindVisibilityToggle   Kind = "visibility_toggle"   // visibility 4 <-> 2, default or per store view
	KindCreateSimple       Kind = "create_simple"       // new simple product with EAV, website, stock, category, URL rows
	KindCreateConfigurable Kind = "create_configurable" // new configurable with variants, super attributes, links, relations
	KindDeleteProduct      Kind = "delete_product"      // delete a product (FK cascades) and its URL and permission rows
	KindWebsiteAssign      Kind = "website_assign"      // add a product to a website (+ URL rewrites)
	KindWebsiteUnassign    Kind = "website_unassign"    // remove a product from a website (- URL rewrites)
	KindRelinkAdd          Kind = "relink_add"          // super_link + relation added to a configurable
	KindRelinkRemove       Kind = "relink_remove"       // super_link + relation removed from a configurable
	KindAttributeLabel     Kind = "attribute_label"     // per-store attribute labels rewritten (delete + insert, as Magento saves them)
	KindOptionLabel        Kind = "option_label"        // option labels rewritten (delete + insert, as Magento saves them)
	KindPermission         Kind = "permission_change"   // product permission index rows of a product reindexed
	KindStock              Kind = "stock_change"        // qty / is_in_stock update
	KindCategoryAssign     Kind = "category_assign"     // product added to a category
	KindCategoryUnassign   Kind = "category_unassign"   // product removed from a category
	KindMulti              Kind = "multi_statement"     // several of the above in one transaction
	KindLarge              Kind = "large_transaction"   // LargeTransaction: one very large transaction
)

// AllKinds lists every kind, in a stable order.
func AllKinds() []Kind {
	return []Kind{KindPriceDefault, KindPriceStore, KindNameDefault, KindNameStore, KindDescriptionStore,
		KindOverrideRevert, KindStatusToggle, KindVisibilityToggle, KindCreateSimple, KindCreateConfigurable,
		KindDeleteProduct, KindWebsiteAssign, KindWebsiteUnassign, KindRelinkAdd, KindRelinkRemove,
		KindAttributeLabel, KindOptionLabel, KindPermission, KindStock, KindCategoryAssign, KindCategoryUnassign,
		KindMulti, KindLarge}
}

// DefaultWeights is the relative frequency of each kind Run picks (prices,
// names and stock dominate, as on a real store). KindLarge is never picked
// by Run; call LargeTransaction.
func DefaultWeights() map[Kind]int {
	return map[Kind]int{
		KindPriceDefault: 12, KindPriceStore: 6, KindNameDefault: 6, KindNameStore: 6, KindDescriptionStore: 3,
		KindOverrideRevert: 3, KindStatusToggle: 5, KindVisibilityToggle: 3, KindCreateSimple: 4,
		KindCreateConfigurable: 2, KindDeleteProduct: 2, KindWebsiteAssign: 3, KindWebsiteUnassign: 3,
		KindRelinkAdd: 3, KindRelinkRemove: 3, KindAttributeLabel: 2, KindOptionLabel: 3, KindPermission: 4,
		KindStock: 10, KindCategoryAssign: 3, KindCategoryUnassign: 3, KindMulti: 5,
	}
}

// WorkloadOptions tune a Workload.
type WorkloadOptions struct {
	// Weights override DefaultWeights (a kind absent or 0 is never picked).
	Weights map[Kind]int
	// MultiMax is the most changes in one multi-statement transaction
	// (default 5, at least 2).
	MultiMax int
	// NewVariantColors × NewVariantSizes children per new configurable
	// (default 2 × 2).
	NewVariantColors, NewVariantSizes int
	// Reserved products are never picked for a single-product change
	// (price, name, status, delete, website, ...); changes that fan out
	// (labels, categories) may still touch them. A latency probe reserves
	// the products whose values it writes, so the workload cannot
	// overwrite or delete them.
	Reserved []uint32
}

// WorkloadStats counts what a workload did.
type WorkloadStats struct {
	Kinds        map[Kind]int
	Transactions int
	// EmptyTransactions committed but changed no row (e.g. a value set to
	// what it was), so they leave nothing in the binlog.
	EmptyTransactions int
	Statements        int
	RowsAffected      int64
	Duration          time.Duration
}

func (s *WorkloadStats) add(o WorkloadStats) {
	if s.Kinds == nil {
		s.Kinds = map[Kind]int{}
	}
	for k, n := range o.Kinds {
		s.Kinds[k] += n
	}
	s.Transactions += o.Transactions
	s.EmptyTransactions += o.EmptyTransactions
	s.Statements += o.Statements
	s.RowsAffected += o.RowsAffected
	s.Duration += o.Duration
}

// Report prints per-kind counts (every kind, zeros included) and totals.
func (s WorkloadStats) Report() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d transactions (%d empty), %d statements, %d rows affected in %s\n", s.Transactions, s.EmptyTransactions, s.Statements, s.RowsAffected, s.Duration.Round(time.Millisecond))
	kinds := AllKinds()
	sort.SliceStable(kinds, func(i, j int) bool { return s.Kinds[kinds[i]] > s.Kinds[kinds[j]] })
	for _, k := range kinds {
		fmt.Fprintf(&b, "  %-22s %6d\n", k, s.Kinds[k])
	}
	return b.String()
}

// Missing lists the kinds with a zero count (KindLarge excluded).
func (s WorkloadStats) Missing() []Kind {
	var out []Kind
	for _, k := range AllKinds() {
		if k != KindLarge && s.Kinds[k] == 0 {
			out = append(out, k)
		}
	}
	return out
}

// Workload applies a seeded stream of realistic changes to a loaded
// catalog, keeping it consistent the way Magento's own saves do. It is not
// safe for concurrent use.
type Workload struct {
	db      *sql.DB
	rng     *rand.Rand
	opts    WorkloadOptions
	kinds   []Kind
	weights []int
	total   int

	ready      bool
	stores     []storeRef
	websites   map[uint16][]uint16
	websiteIDs []uint16
	groups     []uint32
	categories []uint32
	priceScope Scope
	colorOpts  []uint32
	sizeOpts   []uint32
	labelAttrs []uint16 // user-defined attributes whose labels change
	minOption  uint32
	maxOption  uint32
	// minConfigurable is the lowest configurable product id at init: picks
	// of configurables start their scan at or above it, so they need not
	// walk through every simple product generated before them.
	minConfigurable uint32
	// maxID is the highest product id seen, read again every maxIDRefresh
	// picks (other workloads create products too) and raised by every
	// product this workload creates; a pick beyond the real maximum scans
	// downwards instead.
	maxID      uint32
	maxIDPicks int
	seq        int
	unassigned []pair // (product, website) pairs removed by the workload
	unlinked   []pair // (child, parent) links removed by the workload
	cumulative WorkloadStats
}

type storeRef struct{ id, website uint16 }
type pair struct{ a, b uint32 }

// NewWorkload prepares a workload; the catalog is inspected on the first
// Run or LargeTransaction.
func NewWorkload(db *sql.DB, seed int64, opts WorkloadOptions) *Workload {
	if opts.Weights == nil {
		opts.Weights = DefaultWeights()
	}
	if opts.MultiMax < 2 {
		opts.MultiMax = 5
	}
	if opts.NewVariantColors < 1 {
		opts.NewVariantColors = 2
	}
	if opts.NewVariantSizes < 1 {
		opts.NewVariantSizes = 2
	}
	w := &Workload{db: db, opts: opts, rng: rand.New(rand.NewPCG(uint64(seed), 0x5eed))}
	for _, k := range AllKinds() {
		if n := opts.Weights[k]; n > 0 && k != KindLarge {
			w.kinds = append(w.kinds, k)
			w.weights = append(w.weights, n)
			w.total += n
		}
	}
	return w
}

// Stats returns the counts of everything applied so far.
func (w *Workload) Stats() WorkloadStats {
	out := WorkloadStats{Kinds: map[Kind]int{}}
	out.add(w.cumulative)
	return out
}

func (w *Workload) init(ctx context.Context) error {
	if w.ready {
		return nil
	}
	rows, err := w.db.QueryContext(ctx, "SELECT store_id, website_id FROM store WHERE store_id > 0 ORDER BY store_id")
	if err != nil {
		return fmt.Errorf("workload: read stores: %w", err)
	}
	w.websites = map[uint16][]uint16{}
	for rows.Next() {
		var s storeRef
		if err := rows.Scan(&s.id, &s.website); err != nil {
			rows.Close()
			return err
		}
		w.stores = append(w.stores, s)
		if len(w.websites[s.website]) == 0 {
			w.websiteIDs = append(w.websiteIDs, s.website)
		}
		w.websites[s.website] = append(w.websites[s.website], s.id)
	}
	rows.Close()
	if len(w.stores) == 0 {
		return errors.New("workload: the catalog has no store views; Load a profile first")
	}
	if w.groups, err = queryIDs(ctx, w.db, "SELECT customer_group_id FROM customer_group ORDER BY customer_group_id"); err != nil {
		return err
	}
	if w.categories, err = queryIDs(ctx, w.db, "SELECT entity_id FROM catalog_category_entity WHERE level >= 2 ORDER BY entity_id"); err != nil {
		return err
	}
	ids, err := queryIDs(ctx, w.db, "SELECT option_id FROM eav_attribute_option WHERE attribute_id = ? ORDER BY option_id", AttrColor)
	if err != nil {
		return err
	}
	w.colorOpts = ids
	if w.sizeOpts, err = queryIDs(ctx, w.db, "SELECT option_id FROM eav_attribute_option WHERE attribute_id = ? ORDER BY option_id", AttrSize); err != nil {
		return err
	}
	attrs, err := queryIDs(ctx, w.db, "SELECT attribute_id FROM eav_attribute WHERE entity_type_id = ? AND is_user_defined = 1 ORDER BY attribute_id", EntityTypeProduct)
	if err != nil {
		return err
	}
	for _, a := range attrs {
		w.labelAttrs = append(w.labelAttrs, uint16(a))
	}
	var minO, maxO sql.NullInt64
	if err := w.db.QueryRowContext(ctx, "SELECT MIN(option_id), MAX(option_id) FROM eav_attribute_option").Scan(&minO, &maxO); err != nil {
		return fmt.Errorf("workload: %w", err)
	}
	w.minOption, w.maxOption = uint32(minO.Int64), uint32(maxO.Int64)
	var minConf sql.NullInt64
	// The first configurable, from the super links' parent index (a MIN by
	// type_id reads every product: 0.4 s per workload on the large
	// profile). A configurable without children is not a pick's target.
	if err := w.db.QueryRowContext(ctx, "SELECT MIN(parent_id) FROM catalog_product_super_link").Scan(&minConf); err != nil {
		return fmt.Errorf("workload: %w", err)
	}
	w.minConfigurable = uint32(minConf.Int64)
	var scope uint8
	if err := w.db.QueryRowContext(ctx, "SELECT is_global FROM catalog_eav_attribute WHERE attribute_id = ?", AttrPrice).Scan(&scope); err != nil {
		return fmt.Errorf("workload: price scope: %w", err)
	}
	w.priceScope = Scope(scope)
	w.ready = true
	return nil
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func queryIDs(ctx context.Context, db querier, q string, args ...any) ([]uint32, error) {
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("workload: %s: %w", q, err)
	}
	defer rows.Close()
	var out []uint32
	for rows.Next() {
		var id uint32
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

// Run applies n changes, paced at rate changes per second (rate <= 0: as
// fast as possible), and returns the counts of this run. Each change is its
// own transaction, except multi-statement ones.
func (w *Workload) Run(ctx context.Context, n int, rate float64) (st WorkloadStats, err error) {
	st = WorkloadStats{Kinds: map[Kind]int{}}
	if err := w.init(ctx); err != nil {
		return st, err
	}
	if w.total == 0 {
		return st, errors.New("workload: every kind has weight 0")
	}
	start := time.Now()
	defer func() {
		st.Duration = time.Since(start)
		w.cumulative.add(st)
	}()
	for i := 0; i < n; i++ {
		if rate > 0 {
			due := start.Add(time.Duration(float64(i) / rate * float64(time.Second)))
			if d := time.Until(due); d > 0 {
				t := time.NewTimer(d)
				select {
				case <-ctx.Done():
					t.Stop()
					return st, ctx.Err()
				case <-t.C:
				}
			}
		}
		k := w.pick()
		if err := w.apply(ctx, k, &st); err != nil {
			if ctx.Err() != nil {
				// Cancelled mid-change: database/sql rolls the
				// transaction back and the change fails with ErrTxDone
				// or a driver error instead of the cancellation.
				return st, ctx.Err()
			}
			return st, fmt.Errorf("workload: change %d (%s): %w", i+1, k, err)
		}
	}
	return st, nil
}

func (w *Workload) pick() Kind {
	r := w.rng.IntN(w.total)
	for i, n := range w.weights {
		if r < n {
			return w.kinds[i]
		}
		r -= n
	}
	return w.kinds[len(w.kinds)-1]
}

// tx wraps one transaction and counts its statements and rows.
type tx struct {
	*sql.Tx
	st *WorkloadStats
}

func (t *tx) exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	res, err := t.ExecContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", firstLine(strings.TrimSpace(q)), err)
	}
	t.st.Statements++
	if n, err := res.RowsAffected(); err == nil {
		t.st.RowsAffected += n
	}
	return res, nil
}

// apply makes one change (or one multi-statement transaction) in its own
// transaction. When several workloads run at once it retries (up to 3
// times, picking again) on a deadlock (1213), a lock wait timeout (1205),
// a foreign-key failure (1452: another workload deleted the product) or a
// table whose definition changed under the transaction (1412: an online
// schema change swapped it in, as the chaos test's osc scenario does).
func (w *Workload) apply(ctx context.Context, k Kind, st *WorkloadStats) error {
	for attempt := 1; ; attempt++ {
		saved := *st
		saved.Kinds = maps.Clone(st.Kinds)
		err := w.applyOnce(ctx, k, st)
		var me *mysqldriver.MySQLError
		if err == nil || attempt == 3 || !errors.As(err, &me) || !slices.Contains([]uint16{1213, 1205, 1452, 1412}, me.Number) {
			return err
		}
		*st = saved
	}
}

func (w *Workload) applyOnce(ctx context.Context, k Kind, st *WorkloadStats) error {
	sqlTx, err := w.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	t := &tx{Tx: sqlTx, st: st}
	rowsBefore := st.RowsAffected
	var done Kind
	if k == KindMulti {
		parts := 2 + w.rng.IntN(w.opts.MultiMax-1)
		for i := 0; i < parts; i++ {
			d, err := w.change(ctx, t, w.pickPart())
			if err != nil {
				_ = sqlTx.Rollback()
				return err
			}
			st.Kinds[d]++
		}
		done = KindMulti
	} else if done, err = w.change(ctx, t, k); err != nil {
		_ = sqlTx.Rollback()
		return err
	}
	if err := sqlTx.Commit(); err != nil {
		return err
	}
	st.Kinds[done]++
	st.Transactions++
	if st.RowsAffected == rowsBefore {
		st.EmptyTransactions++
	}
	return nil
}

// partOfMulti reports whether kind k may be part of a multi-statement
// transaction (product creation and deletion are transactions of their own).
func partOfMulti(k Kind) bool {
	switch k {
	case KindMulti, KindLarge, KindCreateConfigurable, KindCreateSimple, KindDeleteProduct:
		return false
	}
	return true
}

// pickPart picks a kind for a multi-statement transaction by the weights of
// the eligible kinds (stock changes if none is weighted).
func (w *Workload) pickPart() Kind {
	total := 0
	for i, k := range w.kinds {
		if partOfMulti(k) {
			total += w.weights[i]
		}
	}
	if total == 0 {
		return KindStock
	}
	r := w.rng.IntN(total)
	for i, k := range w.kinds {
		if !partOfMulti(k) {
			continue
		}
		if r < w.weights[i] {
			return k
		}
		r -= w.weights[i]
	}
	return KindStock
}

// change applies one change inside t and returns the kind it really made
// (a kind that is impossible on the current catalog falls back to another).
func (w *Workload) change(ctx context.Context, t *tx, k Kind) (Kind, error) {
	switch k {
	case KindPriceDefault, KindPriceStore:
		return w.price(ctx, t, k == KindPriceStore)
	case KindNameDefault, KindNameStore:
		return w.name(ctx, t, k == KindNameStore)
	case KindDescriptionStore:
		return w.descriptionStore(ctx, t)
	case KindOverrideRevert:
		return w.overrideRevert(ctx, t)
	case KindStatusToggle:
		return w.statusToggle(ctx, t)
	case KindVisibilityToggle:
		return w.visibilityToggle(ctx, t)
	case KindCreateSimple:
		_, err := w.createSimple(ctx, t)
		return k, err
	case KindCreateConfigurable:
		if len(w.colorOpts) == 0 || len(w.sizeOpts) == 0 {
			_, err := w.createSimple(ctx, t)
			return KindCreateSimple, err
		}
		return k, w.createConfigurable(ctx, t)
	case KindDeleteProduct:
		return w.deleteProduct(ctx, t)
	case KindWebsiteAssign:
		return w.websiteAssign(ctx, t)
	case KindWebsiteUnassign:
		return w.websiteUnassign(ctx, t)
	case KindRelinkAdd:
		return w.relinkAdd(ctx, t)
	case KindRelinkRemove:
		return w.relinkRemove(ctx, t)
	case KindAttributeLabel:
		return w.attributeLabel(ctx, t)
	case KindOptionLabel:
		return w.optionLabel(ctx, t)
	case KindPermission:
		return w.permission(ctx, t)
	case KindStock:
		return w.stock(ctx, t)
	case KindCategoryAssign:
		return w.categoryAssign(ctx, t)
	case KindCategoryUnassign:
		return w.categoryUnassign(ctx, t)
	}
	return k, fmt.Errorf("unknown kind %q", k)
}

// pickProduct returns a random existing product id matching cond (an SQL
// condition on catalog_product_entity e), or 0 if there is none. It scans
// the primary key from a random id and stops at the first match, so cond
// must be cheap per row: a correlated subquery is written with exists or
// notExists, never as [NOT] EXISTS, which MariaDB turns into a semi-join
// that materialises the whole subquery table on every pick (23 ms on the
// medium profile, most of a change's time on the large one).
func (w *Workload) pickProduct(ctx context.Context, t *tx, cond string) (uint32, error) {
	return w.pickProductNear(ctx, t, cond, 0)
}

// nearWindow is how many ids a pick of a rare condition looks at.
const nearWindow = 2000

// pickProductNear is pickProduct looking only at the window ids from a
// random one on (window 0: the whole catalog, wrapping around).
func (w *Workload) pickProductNear(ctx context.Context, t *tx, cond string, window uint32) (uint32, error) {
	if w.maxIDPicks == 0 || w.maxID == 0 {
		var maxID sql.NullInt64
		if err := t.QueryRowContext(ctx, "SELECT MAX(entity_id) FROM catalog_product_entity").Scan(&maxID); err != nil {
			return 0, err
		}
		if !maxID.Valid {
			return 0, nil
		}
		w.maxID, w.maxIDPicks = uint32(maxID.Int64), maxIDRefresh
	}
	w.maxIDPicks--
	low := uint32(1)
	if strings.HasPrefix(cond, condConfigurable) && w.minConfigurable > 0 && w.minConfigurable <= w.maxID {
		low = w.minConfigurable
	}
	from := low + w.rng.Uint32N(w.maxID-low+1)
	if cond == "" {
		cond = "1=1"
	}
	cond += w.notReserved("e.entity_id")
	queries := []string{
		"SELECT e.entity_id FROM catalog_product_entity e WHERE e.entity_id >= ? AND " + cond + " ORDER BY e.entity_id LIMIT 1",
		"SELECT e.entity_id FROM catalog_product_entity e WHERE e.entity_id < ? AND " + cond + " ORDER BY e.entity_id LIMIT 1",
	}
	if window > 0 {
		queries = []string{fmt.Sprintf("SELECT e.entity_id FROM catalog_product_entity e WHERE e.entity_id >= ? AND e.entity_id < ? + %d AND %s ORDER BY e.entity_id LIMIT 1", window, cond)}
	}
	for _, q := range queries {
		args := []any{from}
		if window > 0 {
			args = append(args, from)
		}
		var id uint32
		err := t.QueryRowContext(ctx, q, args...).Scan(&id)
		if err == nil {
			return id, nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return 0, err
		}
	}
	return 0, nil
}

// notReserved is an SQL condition " AND col NOT IN (reserved ids)", or ""
// when no product is reserved.
func (w *Workload) notReserved(col string) string {
	if len(w.opts.Reserved) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString(" AND " + col + " NOT IN (")
	for i, id := range w.opts.Reserved {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatUint(uint64(id), 10))
	}
	b.WriteByte(')')
	return b.String()
}

// revertWindow is how many value ids an override revert looks at.
const revertWindow = 20000

// maxIDRefresh is how many picks use a cached MAX(entity_id).
const maxIDRefresh = 64

// exists is the condition "sub returns a row", as a scalar subquery that
// the optimizer evaluates per outer row (see pickProduct).
func exists(sub string) string { return "(" + sub + " LIMIT 1) IS NOT NULL" }

// notExists is the condition "sub returns no row" (see exists).
func notExists(sub string) string { return "(" + sub + " LIMIT 1) IS NULL" }

const (
	condNotConfigurable = "e.type_id <> 'configurable'"
	condConfigurable    = "e.type_id = 'configurable'"
)

func (w *Workload) condVisible() string {
	return exists(fmt.Sprintf("SELECT 1 FROM catalog_product_entity_int v WHERE v.entity_id = e.entity_id AND v.attribute_id = %d AND v.store_id = 0 AND v.value <> %d", AttrVisibility, VisibilityNotVisible))
}

func (w *Workload) store() storeRef { return w.stores[w.rng.IntN(len(w.stores))] }

// upsert writes one EAV value the way Magento does (insertOnDuplicate on
// the (entity_id, attribute_id, store_id) key).
func upsert(ctx context.Context, t *tx, table string, attr uint16, store uint16, id uint32, value any) error {
	_, err := t.exec(ctx, "INSERT INTO "+table+" (attribute_id, store_id, entity_id, value) VALUES (?, ?, ?, ?) ON DUPLICATE KEY UPDATE value = VALUES(value)",
		attr, store, id, value)
	return err
}

// touch bumps updated_at, as a product save does.
func touch(ctx context.Context, t *tx, id uint32) error {
	_, err := t.exec(ctx, "UPDATE catalog_product_entity SET updated_at = CURRENT_TIMESTAMP WHERE entity_id = ?", id)
	return err
}

// scopeStores are the store ids a value of the given scope is written to
// when saved from store view s (AbstractResource::_saveAttributeValue).
func (w *Workload) scopeStores(scope Scope, s storeRef) []uint16 {
	switch scope {
	case ScopeGlobal:
		return []uint16{0}
	case ScopeWebsite:
		return w.websites[s.website]
	}
	return []uint16{s.id}
}

func (w *Workload) cents() string {
	v := 100 + w.rng.Int64N(99900)
	return string(appendCents(nil, v))
}

func (w *Workload) price(ctx context.Context, t *tx, perStore bool) (Kind, error) {
	id, err := w.pickProduct(ctx, t, condNotConfigurable)
	if err != nil || id == 0 {
		return KindPriceDefault, err
	}
	stores := []uint16{0}
	k := KindPriceDefault
	if perStore {
		stores, k = w.scopeStores(w.priceScope, w.store()), KindPriceStore
	}
	v := w.cents()
	for _, s := range stores {
		if err := upsert(ctx, t, "catalog_product_entity_decimal", AttrPrice, s, id, v); err != nil {
			return k, err
		}
	}
	return k, touch(ctx, t, id)
}

func (w *Workload) name(ctx context.Context, t *tx, perStore bool) (Kind, error) {
	id, err := w.pickProduct(ctx, t, "")
	if err != nil || id == 0 {
		return KindNameDefault, err
	}
	w.seq++
	if perStore {
		s := w.store()
		v := fmt.Sprintf("Produkt %d %s (store %d, rev %d)", id, translations[w.rng.IntN(len(translations))], s.id, w.seq)
		if err := upsert(ctx, t, "catalog_product_entity_varchar", AttrName, s.id, id, v); err != nil {
			return KindNameStore, err
		}
		return KindNameStore, touch(ctx, t, id)
	}
	if err := upsert(ctx, t, "catalog_product_entity_varchar", AttrName, 0, id, fmt.Sprintf("Product %d rev %d", id, w.seq)); err != nil {
		return KindNameDefault, err
	}
	return KindNameDefault, touch(ctx, t, id)
}

func (w *Workload) descriptionStore(ctx context.Context, t *tx) (Kind, error) {
	id, err := w.pickProduct(ctx, t, "")
	if err != nil || id == 0 {
		return KindDescriptionStore, err
	}
	s := w.store()
	w.seq++
	v := fmt.Sprintf("<p>Beschreibung — %s, store %d, rev %d</p>", translations[w.rng.IntN(len(translations))], s.id, w.seq)
	if err := upsert(ctx, t, "catalog_product_entity_text", AttrDescription, s.id, id, v); err != nil {
		return KindDescriptionStore, err
	}
	return KindDescriptionStore, touch(ctx, t, id)
}

// overrideRevert deletes one store-level name or description row by
// value_id, as "Use Default Value" does; without any, it makes a name
// override instead.
func (w *Workload) overrideRevert(ctx context.Context, t *tx) (Kind, error) {
	table := "catalog_product_entity_varchar"
	attr := AttrName
	if w.rng.IntN(2) == 0 {
		table, attr = "catalog_product_entity_text", AttrDescription
	}
	var maxID sql.NullInt64
	if err := t.QueryRowContext(ctx, "SELECT MAX(value_id) FROM "+table).Scan(&maxID); err != nil {
		return KindOverrideRevert, err
	}
	from := int64(1)
	if maxID.Valid && maxID.Int64 > 0 {
		from = 1 + w.rng.Int64N(maxID.Int64)
	}
	var valueID int64
	var entity uint32
	// Store-level rows of one attribute are a small part of the table:
	// look at a window of value ids only (a walk to the next one took
	// 45-85 ms on the large profile) and make an override instead when it
	// holds none.
	err := t.QueryRowContext(ctx, "SELECT value_id, entity_id FROM "+table+" WHERE value_id >= ? AND value_id < ? AND store_id > 0 AND attribute_id = ?"+w.notReserved("entity_id")+" ORDER BY value_id LIMIT 1",
		from, from+revertWindow, attr).Scan(&valueID, &entity)
	if errors.Is(err, sql.ErrNoRows) {
		return w.name(ctx, t, true)
	}
	if err != nil {
		return KindOverrideRevert, err
	}
	if _, err := t.exec(ctx, "DELETE FROM "+table+" WHERE value_id = ?", valueID); err != nil {
		return KindOverrideRevert, err
	}
	return KindOverrideRevert, touch(ctx, t, entity)
}

func (w *Workload) statusToggle(ctx context.Context, t *tx) (Kind, error) {
	id, err := w.pickProduct(ctx, t, "")
	if err != nil || id == 0 {
		return KindStatusToggle, err
	}
	stores := []uint16{0}
	if w.rng.IntN(2) == 0 {
		stores = w.websites[w.store().website]
	}
	var cur sql.NullInt64
	err = t.QueryRowContext(ctx, "SELECT value FROM catalog_product_entity_int WHERE entity_id = ? AND attribute_id = ? AND store_id = ?", id, AttrStatus, stores[0]).Scan(&cur)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return KindStatusToggle, err
	}
	next := StatusDisabled
	if cur.Valid && cur.Int64 == StatusDisabled {
		next = StatusEnabled
	}
	for _, s := range stores {
		if err := upsert(ctx, t, "catalog_product_entity_int", AttrStatus, s, id, next); err != nil {
			return KindStatusToggle, err
		}
	}
	return KindStatusToggle, touch(ctx, t, id)
}

func (w *Workload) visibilityToggle(ctx context.Context, t *tx) (Kind, error) {
	id, err := w.pickProduct(ctx, t, w.condVisible())
	if err != nil || id == 0 {
		return KindVisibilityToggle, err
	}
	store := uint16(0)
	if w.rng.IntN(2) == 0 {
		store = w.store().id
	}
	var cur sql.NullInt64
	err = t.QueryRowContext(ctx, "SELECT value FROM catalog_product_entity_int WHERE entity_id = ? AND attribute_id = ? AND store_id = ?", id, AttrVisibility, store).Scan(&cur)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return KindVisibilityToggle, err
	}
	next := VisibilityCatalog
	if cur.Valid && cur.Int64 == VisibilityCatalog {
		next = VisibilityCatalogSearch
	}
	if err := upsert(ctx, t, "catalog_product_entity_int", AttrVisibility, store, id, next); err != nil {
		return KindVisibilityToggle, err
	}
	return KindVisibilityToggle, touch(ctx, t, id)
}

// newProduct inserts a product with the EAV rows, website assignments and
// stock item a Magento product save writes, and returns its id.
func (w *Workload) newProduct(ctx context.Context, t *tx, typ, sku, name string, visibility int, color, size uint32) (uint32, error) {
	res, err := t.exec(ctx, "INSERT INTO catalog_product_entity (attribute_set_id, type_id, sku, has_options, required_options) VALUES (?, ?, ?, ?, ?)",
		AttributeSetProductDefault, typ, sku, b2i(typ == "configurable"), b2i(typ == "configurable"))
	if err != nil {
		return 0, err
	}
	id64, err := res.LastInsertId()
	if err != nil {
		return 0, err
	}
	id := uint32(id64)
	w.maxID = max(w.maxID, id)
	urlKey := strings.ToLower(strings.ReplaceAll(sku, "_", "-"))
	for _, v := range []attrString{{AttrName, name}, {AttrURLKey, urlKey}, {AttrMetaTitle, name}, {AttrOptionsContainer, "container2"}} {
		if err := upsert(ctx, t, "catalog_product_entity_varchar", v.attr, 0, id, v.v); err != nil {
			return 0, err
		}
	}
	ints := [][2]int64{{int64(AttrStatus), StatusEnabled}, {int64(AttrVisibility), int64(visibility)}, {int64(AttrTaxClassID), 2}, {int64(AttrQuantityAndStockStatus), 1}}
	if color != 0 {
		ints = append(ints, [2]int64{int64(AttrColor), int64(color)}, [2]int64{int64(AttrSize), int64(size)})
	}
	for _, v := range ints {
		if err := upsert(ctx, t, "catalog_product_entity_int", uint16(v[0]), 0, id, v[1]); err != nil {
			return 0, err
		}
	}
	if err := upsert(ctx, t, "catalog_product_entity_text", AttrDescription, 0, id, "<p>"+name+" — new in the catalog.</p>"); err != nil {
		return 0, err
	}
	qty := 0
	if typ != "configurable" {
		if err := upsert(ctx, t, "catalog_product_entity_decimal", AttrPrice, 0, id, w.cents()); err != nil {
			return 0, err
		}
		if err := upsert(ctx, t, "catalog_product_entity_decimal", AttrWeight, 0, id, "1.00"); err != nil {
			return 0, err
		}
		qty = 1 + w.rng.IntN(500)
	}
	for _, web := range w.websiteIDs {
		if _, err := t.exec(ctx, "INSERT INTO catalog_product_website (product_id, website_id) VALUES (?, ?)", id, web); err != nil {
			return 0, err
		}
	}
	if _, err := t.exec(ctx, "INSERT INTO cataloginventory_stock_item (product_id, stock_id, qty, is_in_stock, website_id) VALUES (?, 1, ?, 1, 0)", id, qty); err != nil {
		return 0, err
	}
	if visibility != VisibilityNotVisible {
		if len(w.categories) > 0 {
			if _, err := t.exec(ctx, "INSERT INTO catalog_category_product (category_id, product_id, position) VALUES (?, ?, 0)", w.categories[w.rng.IntN(len(w.categories))], id); err != nil {
				return 0, err
			}
		}
		if err := w.insertRewrites(ctx, t, id, urlKey, w.storeIDs()); err != nil {
			return 0, err
		}
	}
	return id, nil
}

func (w *Workload) storeIDs() []uint16 {
	out := make([]uint16, len(w.stores))
	for i, s := range w.stores {
		out[i] = s.id
	}
	return out
}

func (w *Workload) insertRewrites(ctx context.Context, t *tx, id uint32, urlKey string, stores []uint16) error {
	for _, s := range stores {
		if _, err := t.exec(ctx, `INSERT INTO url_rewrite (entity_type, entity_id, request_path, target_path, redirect_type, store_id, is_autogenerated)
			VALUES ('product', ?, ?, ?, 0, ?, 1) ON DUPLICATE KEY UPDATE entity_id = VALUES(entity_id), target_path = VALUES(target_path)`,
			id, urlKey+".html", fmt.Sprintf("catalog/product/view/id/%d", id), s); err != nil {
			return err
		}
	}
	return nil
}

func (w *Workload) createSimple(ctx context.Context, t *tx) (uint32, error) {
	w.seq++
	sku := fmt.Sprintf("workload_simple_%d_%d", w.rng.Uint32(), w.seq)
	return w.newProduct(ctx, t, "simple", sku, fmt.Sprintf("Workload Simple %d", w.seq), VisibilityCatalogSearch, 0, 0)
}

func (w *Workload) createConfigurable(ctx context.Context, t *tx) error {
	if len(w.colorOpts) == 0 || len(w.sizeOpts) == 0 {
		_, err := w.createSimple(ctx, t)
		return err
	}
	w.seq++
	sku := fmt.Sprintf("workload_configurable_%d_%d", w.rng.Uint32(), w.seq)
	name := fmt.Sprintf("Workload Configurable %d", w.seq)
	parent, err := w.newProduct(ctx, t, "configurable", sku, name, VisibilityCatalogSearch, 0, 0)
	if err != nil {
		return err
	}
	for pos, a := range []struct {
		id    uint16
		label string
	}{{AttrColor, "Color"}, {AttrSize, "Size"}} {
		res, err := t.exec(ctx, "INSERT INTO catalog_product_super_attribute (product_id, attribute_id, position) VALUES (?, ?, ?)", parent, a.id, pos)
		if err != nil {
			return err
		}
		psa, err := res.LastInsertId()
		if err != nil {
			return err
		}
		if _, err := t.exec(ctx, "INSERT INTO catalog_product_super_attribute_label (product_super_attribute_id, store_id, use_default, value) VALUES (?, 0, 0, ?)", psa, a.label); err != nil {
			return err
		}
	}
	nc, ns := min(w.opts.NewVariantColors, len(w.colorOpts)), min(w.opts.NewVariantSizes, len(w.sizeOpts))
	for c := 0; c < nc; c++ {
		for s := 0; s < ns; s++ {
			child, err := w.newProduct(ctx, t, "simple", fmt.Sprintf("%s-%d-%d", sku, c, s), fmt.Sprintf("%s-%d-%d", name, c, s), VisibilityNotVisible, w.colorOpts[c], w.sizeOpts[s])
			if err != nil {
				return err
			}
			if err := link(ctx, t, child, parent); err != nil {
				return err
			}
		}
	}
	return nil
}

func link(ctx context.Context, t *tx, child, parent uint32) error {
	if _, err := t.exec(ctx, "INSERT INTO catalog_product_super_link (product_id, parent_id) VALUES (?, ?)", child, parent); err != nil {
		return err
	}
	_, err := t.exec(ctx, "INSERT INTO catalog_product_relation (parent_id, child_id) VALUES (?, ?)", parent, child)
	return err
}

// deleteProduct deletes a product like Magento: the entity row (EAV,
// website, stock, links cascade through the foreign keys) and, explicitly,
// the URL rewrites and permission index rows, which have no foreign key.
func (w *Workload) deleteProduct(ctx context.Context, t *tx) (Kind, error) {
	id, err := w.pickProduct(ctx, t, "")
	if err != nil || id == 0 {
		return KindDeleteProduct, err
	}
	if _, err := t.exec(ctx, "DELETE FROM url_rewrite WHERE entity_type = 'product' AND entity_id = ?", id); err != nil {
		return KindDeleteProduct, err
	}
	if _, err := t.exec(ctx, "DELETE FROM magento_catalogpermissions_index_product WHERE product_id = ?", id); err != nil {
		return KindDeleteProduct, err
	}
	_, err = t.exec(ctx, "DELETE FROM catalog_product_entity WHERE entity_id = ?", id)
	return KindDeleteProduct, err
}

func (w *Workload) productURLKey(ctx context.Context, t *tx, id uint32) (string, error) {
	var key sql.NullString
	err := t.QueryRowContext(ctx, "SELECT value FROM catalog_product_entity_varchar WHERE entity_id = ? AND attribute_id = ? AND store_id = 0", id, AttrURLKey).Scan(&key)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return "", err
	}
	if !key.Valid || key.String == "" {
		return fmt.Sprintf("product-%d", id), nil
	}
	return key.String, nil
}

func (w *Workload) websiteAssign(ctx context.Context, t *tx) (Kind, error) {
	var id uint32
	var web uint16
	for len(w.unassigned) > 0 && id == 0 {
		i := w.rng.IntN(len(w.unassigned))
		p := w.unassigned[i]
		w.unassigned = append(w.unassigned[:i], w.unassigned[i+1:]...)
		var n int
		if err := t.QueryRowContext(ctx, "SELECT (SELECT COUNT(*) FROM catalog_product_entity WHERE entity_id = ?) - (SELECT COUNT(*) FROM catalog_product_website WHERE product_id = ? AND website_id = ?)", p.a, p.a, p.b).Scan(&n); err != nil {
			return KindWebsiteAssign, err
		}
		if n == 1 {
			id, web = p.a, uint16(p.b)
		}
	}
	if id == 0 && len(w.websiteIDs) > 1 {
		web = w.websiteIDs[w.rng.IntN(len(w.websiteIDs))]
		var err error
		// Most products are in every website (the large profile: 4.99 of
		// 5), so a product outside one is rare: look near a random id only
		// (a walk over the whole catalog took 0.3 s per pick there) and
		// unassign one instead when there is none.
		id, err = w.pickProductNear(ctx, t, notExists(fmt.Sprintf("SELECT 1 FROM catalog_product_website pw WHERE pw.product_id = e.entity_id AND pw.website_id = %d", web)), nearWindow)
		if err != nil {
			return KindWebsiteAssign, err
		}
	}
	if id == 0 {
		return w.websiteUnassign(ctx, t)
	}
	// IGNORE: a concurrent workload may have assigned the same pair.
	if _, err := t.exec(ctx, "INSERT IGNORE INTO catalog_product_website (product_id, website_id) VALUES (?, ?)", id, web); err != nil {
		return KindWebsiteAssign, err
	}
	key, err := w.productURLKey(ctx, t, id)
	if err != nil {
		return KindWebsiteAssign, err
	}
	if err := w.insertRewrites(ctx, t, id, key, w.websites[web]); err != nil {
		return KindWebsiteAssign, err
	}
	return KindWebsiteAssign, touch(ctx, t, id)
}

func (w *Workload) websiteUnassign(ctx context.Context, t *tx) (Kind, error) {
	id, err := w.pickProduct(ctx, t, exists("SELECT 1 FROM catalog_product_website pw WHERE pw.product_id = e.entity_id"))
	if err != nil || id == 0 {
		return KindWebsiteUnassign, err
	}
	webs, err := queryIDs(ctx, t, "SELECT website_id FROM catalog_product_website WHERE product_id = ? ORDER BY website_id", id)
	if err != nil || len(webs) == 0 {
		return KindWebsiteUnassign, err
	}
	web := uint16(webs[w.rng.IntN(len(webs))])
	if _, err := t.exec(ctx, "DELETE FROM catalog_product_website WHERE product_id = ? AND website_id = ?", id, web); err != nil {
		return KindWebsiteUnassign, err
	}
	for _, s := range w.websites[web] {
		if _, err := t.exec(ctx, "DELETE FROM url_rewrite WHERE entity_type = 'product' AND entity_id = ? AND store_id = ?", id, s); err != nil {
			return KindWebsiteUnassign, err
		}
	}
	if len(w.unassigned) < 10000 {
		w.unassigned = append(w.unassigned, pair{id, uint32(web)})
	}
	return KindWebsiteUnassign, touch(ctx, t, id)
}

// relinkRemove unlinks one variant from a configurable with more than one.
func (w *Workload) relinkRemove(ctx context.Context, t *tx) (Kind, error) {
	parent, err := w.pickProduct(ctx, t, condConfigurable+" AND (SELECT COUNT(*) FROM catalog_product_super_link l WHERE l.parent_id = e.entity_id) > 1")
	if err != nil {
		return KindRelinkRemove, err
	}
	if parent == 0 {
		return w.change(ctx, t, KindCreateConfigurable)
	}
	var linkID, child uint32
	if err := t.QueryRowContext(ctx, "SELECT link_id, product_id FROM catalog_product_super_link WHERE parent_id = ? ORDER BY link_id LIMIT 1", parent).Scan(&linkID, &child); err != nil {
		return KindRelinkRemove, err
	}
	if _, err := t.exec(ctx, "DELETE FROM catalog_product_super_link WHERE link_id = ?", linkID); err != nil {
		return KindRelinkRemove, err
	}
	if _, err := t.exec(ctx, "DELETE FROM catalog_product_relation WHERE parent_id = ? AND child_id = ?", parent, child); err != nil {
		return KindRelinkRemove, err
	}
	if len(w.unlinked) < 10000 {
		w.unlinked = append(w.unlinked, pair{child, parent})
	}
	return KindRelinkRemove, touch(ctx, t, parent)
}

// relinkAdd links a variant to a configurable: a previously unlinked pair
// if both still exist, else a new variant child.
func (w *Workload) relinkAdd(ctx context.Context, t *tx) (Kind, error) {
	for len(w.unlinked) > 0 {
		i := w.rng.IntN(len(w.unlinked))
		p := w.unlinked[i]
		w.unlinked = append(w.unlinked[:i], w.unlinked[i+1:]...)
		var n int
		if err := t.QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM catalog_product_entity WHERE entity_id IN (?, ?))
			- (SELECT COUNT(*) FROM catalog_product_super_link WHERE product_id = ? AND parent_id = ?)`, p.a, p.b, p.a, p.b).Scan(&n); err != nil {
			return KindRelinkAdd, err
		}
		if n == 2 {
			if err := link(ctx, t, p.a, p.b); err != nil {
				return KindRelinkAdd, err
			}
			return KindRelinkAdd, touch(ctx, t, p.b)
		}
	}
	parent, err := w.pickProduct(ctx, t, condConfigurable)
	if err != nil {
		return KindRelinkAdd, err
	}
	if parent == 0 || len(w.colorOpts) == 0 || len(w.sizeOpts) == 0 {
		return w.change(ctx, t, KindCreateConfigurable)
	}
	w.seq++
	color, size := w.colorOpts[w.rng.IntN(len(w.colorOpts))], w.sizeOpts[w.rng.IntN(len(w.sizeOpts))]
	child, err := w.newProduct(ctx, t, "simple", fmt.Sprintf("workload_variant_%d_%d", parent, w.seq), fmt.Sprintf("Workload Variant %d of %d", w.seq, parent), VisibilityNotVisible, color, size)
	if err != nil {
		return KindRelinkAdd, err
	}
	if err := link(ctx, t, child, parent); err != nil {
		return KindRelinkAdd, err
	}
	return KindRelinkAdd, touch(ctx, t, parent)
}

// attributeLabel rewrites an attribute's store labels the way Magento saves
// an attribute: delete them all, insert them again with one changed.
func (w *Workload) attributeLabel(ctx context.Context, t *tx) (Kind, error) {
	if len(w.labelAttrs) == 0 {
		return w.optionLabel(ctx, t)
	}
	attr := w.labelAttrs[w.rng.IntN(len(w.labelAttrs))]
	labels := map[uint16]string{}
	rows, err := t.QueryContext(ctx, "SELECT store_id, value FROM eav_attribute_label WHERE attribute_id = ?", attr)
	if err != nil {
		return KindAttributeLabel, err
	}
	for rows.Next() {
		var s uint16
		var v sql.NullString
		if err := rows.Scan(&s, &v); err != nil {
			rows.Close()
			return KindAttributeLabel, err
		}
		labels[s] = v.String
	}
	rows.Close()
	s := w.store()
	w.seq++
	labels[s.id] = fmt.Sprintf("Étiquette %d (store %d)", w.seq, s.id)
	if _, err := t.exec(ctx, "DELETE FROM eav_attribute_label WHERE attribute_id = ?", attr); err != nil {
		return KindAttributeLabel, err
	}
	for _, st := range w.stores {
		if v, ok := labels[st.id]; ok {
			if _, err := t.exec(ctx, "INSERT INTO eav_attribute_label (attribute_id, store_id, value) VALUES (?, ?, ?)", attr, st.id, v); err != nil {
				return KindAttributeLabel, err
			}
		}
	}
	return KindAttributeLabel, nil
}

// optionLabel rewrites one option's labels (delete + insert, as Magento's
// attribute save does), changing the admin label or one store's label.
func (w *Workload) optionLabel(ctx context.Context, t *tx) (Kind, error) {
	if w.maxOption == 0 {
		return w.stock(ctx, t)
	}
	var opt uint32
	from := w.minOption + w.rng.Uint32N(w.maxOption-w.minOption+1)
	if err := t.QueryRowContext(ctx, "SELECT option_id FROM eav_attribute_option WHERE option_id >= ? ORDER BY option_id LIMIT 1", from).Scan(&opt); err != nil {
		return KindOptionLabel, err
	}
	labels := map[uint16]string{}
	rows, err := t.QueryContext(ctx, "SELECT store_id, value FROM eav_attribute_option_value WHERE option_id = ?", opt)
	if err != nil {
		return KindOptionLabel, err
	}
	for rows.Next() {
		var s uint16
		var v sql.NullString
		if err := rows.Scan(&s, &v); err != nil {
			rows.Close()
			return KindOptionLabel, err
		}
		labels[s] = v.String
	}
	rows.Close()
	store := uint16(0)
	if w.rng.IntN(2) == 0 {
		store = w.store().id
	}
	w.seq++
	labels[store] = fmt.Sprintf("Option %d rev %d", opt, w.seq)
	if _, err := t.exec(ctx, "DELETE FROM eav_attribute_option_value WHERE option_id = ?", opt); err != nil {
		return KindOptionLabel, err
	}
	ids := []uint16{0}
	ids = append(ids, w.storeIDs()...)
	for _, s := range ids {
		if v, ok := labels[s]; ok {
			if _, err := t.exec(ctx, "INSERT INTO eav_attribute_option_value (option_id, store_id, value) VALUES (?, ?, ?)", opt, s, v); err != nil {
				return KindOptionLabel, err
			}
		}
	}
	return KindOptionLabel, nil
}

// permission reindexes one product's permission rows (delete, then insert
// for every store view of its websites × customer group; 20% of the time
// the product ends with no rows, i.e. no permission applies).
func (w *Workload) permission(ctx context.Context, t *tx) (Kind, error) {
	id, err := w.pickProduct(ctx, t, "")
	if err != nil || id == 0 {
		return KindPermission, err
	}
	res, err := t.exec(ctx, "DELETE FROM magento_catalogpermissions_index_product WHERE product_id = ?", id)
	if err != nil {
		return KindPermission, err
	}
	if n, _ := res.RowsAffected(); n > 0 && w.rng.IntN(5) == 0 {
		return KindPermission, nil
	}
	webs, err := queryIDs(ctx, t, "SELECT website_id FROM catalog_product_website WHERE product_id = ?", id)
	if err != nil {
		return KindPermission, err
	}
	grant := func() int {
		if w.rng.IntN(4) == 0 {
			return GrantDeny
		}
		return GrantAllow
	}
	for _, web := range webs {
		for _, s := range w.websites[uint16(web)] {
			for _, g := range w.groups {
				if _, err := t.exec(ctx, `INSERT INTO magento_catalogpermissions_index_product (product_id, store_id, customer_group_id,
					grant_catalog_category_view, grant_catalog_product_price, grant_checkout_items) VALUES (?, ?, ?, ?, ?, ?)`,
					id, s, g, grant(), grant(), grant()); err != nil {
					return KindPermission, err
				}
			}
		}
	}
	return KindPermission, nil
}

func (w *Workload) stock(ctx context.Context, t *tx) (Kind, error) {
	id, err := w.pickProduct(ctx, t, condNotConfigurable)
	if err != nil || id == 0 {
		return KindStock, err
	}
	qty := 0
	if w.rng.IntN(10) > 0 {
		qty = 1 + w.rng.IntN(1000)
	}
	_, err = t.exec(ctx, "UPDATE cataloginventory_stock_item SET qty = ?, is_in_stock = ? WHERE product_id = ? AND stock_id = 1", qty, b2i(qty > 0), id)
	return KindStock, err
}

func (w *Workload) categoryAssign(ctx context.Context, t *tx) (Kind, error) {
	if len(w.categories) == 0 {
		return w.stock(ctx, t)
	}
	id, err := w.pickProduct(ctx, t, w.condVisible())
	if err != nil || id == 0 {
		return KindCategoryAssign, err
	}
	cat := w.categories[w.rng.IntN(len(w.categories))]
	res, err := t.exec(ctx, "INSERT IGNORE INTO catalog_category_product (category_id, product_id, position) VALUES (?, ?, ?)", cat, id, w.rng.IntN(100))
	if err != nil {
		return KindCategoryAssign, err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		if _, err := t.exec(ctx, "UPDATE catalog_category_product SET position = position + 1 WHERE category_id = ? AND product_id = ?", cat, id); err != nil {
			return KindCategoryAssign, err
		}
	}
	return KindCategoryAssign, nil
}

func (w *Workload) categoryUnassign(ctx context.Context, t *tx) (Kind, error) {
	id, err := w.pickProduct(ctx, t, exists("SELECT 1 FROM catalog_category_product c WHERE c.product_id = e.entity_id"))
	if err != nil {
		return KindCategoryUnassign, err
	}
	if id == 0 {
		return w.categoryAssign(ctx, t)
	}
	_, err = t.exec(ctx, "DELETE FROM catalog_category_product WHERE product_id = ? ORDER BY category_id LIMIT 1", id)
	return KindCategoryUnassign, err
}

// LargeTransaction changes the store-0 price of `rows` products (cycling
// over the catalog's simple and variant products) in one transaction of
// 1,000-row INSERT ... ON DUPLICATE KEY UPDATE statements, the shape of a
// mass price import. It returns the number of rows changed.
func (w *Workload) LargeTransaction(ctx context.Context, rows int) (int, error) {
	if err := w.init(ctx); err != nil {
		return 0, err
	}
	if rows < 1 {
		return 0, fmt.Errorf("workload: LargeTransaction(%d): rows must be >= 1", rows)
	}
	st := WorkloadStats{Kinds: map[Kind]int{}}
	start := time.Now()
	defer func() {
		st.Duration = time.Since(start)
		w.cumulative.add(st)
	}()
	ids, err := queryIDs(ctx, w.db, "SELECT entity_id FROM catalog_product_entity WHERE type_id <> 'configurable' ORDER BY entity_id LIMIT ?", rows)
	if err != nil {
		return 0, err
	}
	if len(ids) == 0 {
		return 0, errors.New("workload: LargeTransaction: the catalog has no simple products")
	}
	sqlTx, err := w.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	t := &tx{Tx: sqlTx, st: &st}
	bump := 1 + w.rng.Int64N(99)
	buf := make([]byte, 0, 64<<10)
	changed := 0
	for changed < rows {
		buf = append(buf[:0], "INSERT INTO catalog_product_entity_decimal (attribute_id, store_id, entity_id, value) VALUES "...)
		n := min(1000, rows-changed)
		for i := 0; i < n; i++ {
			if i > 0 {
				buf = append(buf, ',')
			}
			id := ids[(changed+i)%len(ids)]
			price := 100 + (int64(id)*37+bump+int64((changed+i)/len(ids)))%99900
			buf = fmt.Appendf(buf, "(%d,0,%d,", AttrPrice, id)
			buf = appendCents(buf, price)
			buf = append(buf, ')')
		}
		buf = append(buf, " ON DUPLICATE KEY UPDATE value = VALUES(value)"...)
		if _, err := t.exec(ctx, string(buf)); err != nil {
			_ = sqlTx.Rollback()
			return changed, fmt.Errorf("workload: LargeTransaction: %w", err)
		}
		changed += n
	}
	if err := sqlTx.Commit(); err != nil {
		return 0, fmt.Errorf("workload: LargeTransaction: commit: %w", err)
	}
	st.Kinds[KindLarge]++
	st.Transactions++
	return changed, nil
}

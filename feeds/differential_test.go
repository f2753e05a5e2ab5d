package feeds

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/feedcdc/feedcdc/change"
	"github.com/feedcdc/feedcdc/connector/binlog"
	"github.com/feedcdc/feedcdc/test/catalog"
)

// memState is an in-memory stand-in for the state store: what was exported
// per feed item, indexed by entity.
type memState struct {
	items  map[string]map[string]PrevItem        // feed -> id -> item
	entity map[string]map[string]map[string]bool // feed -> entity key -> ids
}

func newMemState() *memState {
	return &memState{items: map[string]map[string]PrevItem{}, entity: map[string]map[string]map[string]bool{}}
}

func (m *memState) ItemsByEntity(_ context.Context, feed string, keys []string) (map[string][]PrevItem, error) {
	out := map[string][]PrevItem{}
	for _, k := range keys {
		out[k] = []PrevItem{}
		for id := range m.entity[feed][k] {
			out[k] = append(out[k], m.items[feed][id])
		}
	}
	return out, nil
}

func (m *memState) put(it Item) {
	if m.items[it.Feed] == nil {
		m.items[it.Feed] = map[string]PrevItem{}
		m.entity[it.Feed] = map[string]map[string]bool{}
	}
	if old, ok := m.items[it.Feed][it.ID]; ok && old.EntityKey != it.EntityKey {
		delete(m.entity[it.Feed][old.EntityKey], it.ID)
	}
	m.items[it.Feed][it.ID] = PrevItem{ID: it.ID, EntityKey: it.EntityKey, Identity: it.Identity, Hash: it.Hash, Status: 200, Deleted: it.Deleted}
	if m.entity[it.Feed][it.EntityKey] == nil {
		m.entity[it.Feed][it.EntityKey] = map[string]bool{}
	}
	m.entity[it.Feed][it.EntityKey][it.ID] = true
}

// export builds the keys of a feed, diffs them with the state and records
// the result, like the connector does.
func (m *memState) export(ctx context.Context, f Feed, keys []string) (sent int, err error) {
	for len(keys) > 0 {
		chunk := keys[:min(len(keys), 200)]
		keys = keys[len(chunk):]
		built, err := f.Build(ctx, chunk)
		if err != nil {
			return sent, err
		}
		prev, _ := m.ItemsByEntity(ctx, f.Name(), chunk)
		changed, deleted, _ := Diff(f, built, prev)
		for _, it := range append(changed, deleted...) {
			m.put(it)
			sent++
		}
	}
	return sent, nil
}

type streamHandler struct {
	db  string
	out chan *change.Change
}

func (h *streamHandler) Change(ctx context.Context, c *change.Change) error {
	if c.Table.DB != h.db {
		return nil
	}
	select {
	case h.out <- c:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (h *streamHandler) TxEnd(context.Context, change.TxEnd) error { return nil }

// TestDifferentialWorkload is the feeds-level differential test: a generated
// catalog is fully exported into an in-memory state, the workload generator
// makes changes of every kind, the binlog stream of those changes goes
// through Registry.Keys, the dirty keys are rebuilt and diffed after every
// step, and at the end the state must equal a fresh full build: the same
// items with the same hashes, and every other known item marked deleted.
// It runs for three seeds: with the link index loaded before the workload
// (the steady state), and with the index loaded late, so that deleted
// composite products take the restart-window fallback.
func TestDifferentialWorkload(t *testing.T) {
	for _, tc := range []struct {
		name      string
		seed      int64
		loadEarly bool
	}{{"index/seed1", 1, true}, {"fallback/seed2", 2, false}, {"index/seed3", 3, true}} {
		t.Run(tc.name, func(t *testing.T) { differential(t, tc.seed, tc.loadEarly) })
	}
}

func differential(t *testing.T, seed int64, loadEarly bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	p := catalog.Tiny()
	p.ExtraStoreViews = 1
	db, admin, reg := loadCatalog(t, p, 50)
	reg.env.links.margin = 0
	if _, err := admin.ExecContext(ctx, `CREATE TABLE zz_marker (id int PRIMARY KEY, n int NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.ExecContext(ctx, `INSERT INTO zz_marker VALUES (1, 0)`); err != nil {
		t.Fatal(err)
	}
	state := newMemState()
	initial, err := fullBuild(ctx, reg, 100, 2)
	if err != nil {
		t.Fatal(err)
	}
	for _, items := range initial {
		for _, it := range items {
			state.put(it)
		}
	}

	cfg := binlog.Config{Host: srv.Host, Port: srv.Port, User: srv.CDCUser, Password: srv.CDCPassword,
		ServerID: uint32(4000 + seed*10 + time.Now().UnixNano()%1000), Filter: binlog.Filter{Include: []string{db + ".*"}}}
	pos, err := binlog.CurrentPosition(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	src, err := binlog.New(cfg, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})), &binlog.MemoryHistory{})
	if err != nil {
		t.Fatal(err)
	}
	h := &streamHandler{db: db, out: make(chan *change.Change, 1024)}
	streamCtx, stopStream := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	var streamErr error
	go func() { defer wg.Done(); streamErr = src.Run(streamCtx, pos, h) }()
	defer func() {
		stopStream()
		wg.Wait()
		if streamErr != nil && streamErr != context.Canceled && ctx.Err() == nil && !strings.Contains(streamErr.Error(), "context canceled") {
			t.Errorf("stream: %v", streamErr)
		}
	}()

	marker := 0
	// drain feeds every change up to the next marker through Keys and
	// returns the dirty keys per feed.
	drain := func() map[string]map[string]bool {
		marker++
		if _, err := admin.ExecContext(ctx, `UPDATE zz_marker SET n = ? WHERE id = 1`, marker); err != nil {
			t.Fatal(err)
		}
		dirty := map[string]map[string]bool{}
		for {
			var c *change.Change
			select {
			case c = <-h.out:
			case <-ctx.Done():
				t.Fatalf("waiting for marker %d: %v", marker, ctx.Err())
			}
			if c.Table.Name == "zz_marker" {
				if v, _ := c.Get("n"); fmt.Sprint(v) == fmt.Sprint(marker) {
					return dirty
				}
				continue
			}
			err := reg.Keys(ctx, c, func(feed string, keys []string) error {
				if dirty[feed] == nil {
					dirty[feed] = map[string]bool{}
				}
				for _, k := range keys {
					dirty[feed][k] = true
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	if loadEarly {
		drain() // the marker change loads the link index before the workload
	}
	w := catalog.NewWorkload(admin, seed, catalog.WorkloadOptions{})
	sent := map[string]int{}
	const steps, perStep = 20, 50
	sync := func() {
		t.Helper()
		for feed, set := range drain() {
			keys := make([]string, 0, len(set))
			for k := range set {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			f, _ := reg.Feed(feed)
			n, err := state.export(ctx, f, keys)
			if err != nil {
				t.Fatal(err)
			}
			sent[feed] += n
		}
	}
	for i := 0; i < steps; i++ {
		if _, err := w.Run(ctx, perStep, 0); err != nil {
			t.Fatal(err)
		}
		sync()
	}
	// Changes the workload does not make: scope, metadata and cascading
	// deletes, each followed by a sync.
	st := w.Stats()
	verify(t, ctx, reg, state, "after the workload", false)
	for _, stmts := range scopeChanges(t, admin) {
		for _, q := range stmts {
			if _, err := admin.ExecContext(ctx, q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		sync()
		verify(t, ctx, reg, state, "after "+strings.Join(stmts, "; "), false)
	}
	t.Logf("workload: %d changes\n%s", steps*perStep, st.Report())
	if missing := st.Missing(); len(missing) > 0 {
		t.Errorf("workload kinds not exercised: %v", missing)
	}
	t.Logf("items sent per feed: %v", sent)

	verify(t, ctx, reg, state, "after the workload and scope changes", true)
}

// verify compares the exported state with a fresh full build: the same
// items with the same hashes, every other known item marked deleted.
func verify(t *testing.T, ctx context.Context, reg *Registry, state *memState, when string, logOK bool) {
	t.Helper()
	fresh, err := fullBuild(ctx, reg, 100, 2)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range reg.Feeds() {
		name := f.Name()
		want := map[string]Item{}
		for _, it := range fresh[name] {
			want[it.ID] = it
		}
		var bad []string
		for id, it := range want {
			got, ok := state.items[name][id]
			switch {
			case !ok:
				bad = append(bad, "missing "+describe(f, it.Identity)+" "+string(it.Data))
			case got.Deleted:
				bad = append(bad, "marked deleted but exists: "+describe(f, it.Identity))
			case got.Hash != it.Hash:
				bad = append(bad, "stale: "+describe(f, it.Identity)+" now "+string(it.Data))
			}
		}
		for id, got := range state.items[name] {
			if _, ok := want[id]; !ok && !got.Deleted {
				bad = append(bad, "vanished but not deleted: "+describe(f, got.Identity)+" entity "+got.EntityKey)
			}
		}
		sort.Strings(bad)
		if len(bad) > 0 {
			t.Errorf("%s %s: %d of %d items differ from a fresh build; first ones:\n  %s", name, when, len(bad), len(want), strings.Join(bad[:min(len(bad), 8)], "\n  "))
		} else if logOK {
			t.Logf("%s: %d items equal a fresh build (%d known, deleted ones marked)", name, len(want), len(state.items[name]))
		}
	}
}

// scopeChanges returns groups of statements (each group synced before the
// next) for the change kinds the workload generator does not make.
func scopeChanges(t *testing.T, db *sql.DB) [][]string {
	t.Helper()
	one := func(q string) uint64 {
		var v uint64
		if err := db.QueryRow(q).Scan(&v); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return v
	}
	selectAttr := one(`SELECT MIN(a.attribute_id) FROM eav_attribute a JOIN catalog_product_entity_int v ON v.attribute_id = a.attribute_id
		WHERE a.entity_type_id = 4 AND a.is_user_defined = 1 AND a.frontend_input = 'select' AND a.attribute_id >= 300`)
	otherAttr := one(fmt.Sprintf(`SELECT MAX(a.attribute_id) FROM eav_attribute a JOIN catalog_product_entity_int v ON v.attribute_id = a.attribute_id
		WHERE a.entity_type_id = 4 AND a.is_user_defined = 1 AND a.attribute_id >= 300 AND a.attribute_id <> %d`, selectAttr))
	usedOption := one(fmt.Sprintf(`SELECT MIN(value) FROM catalog_product_entity_int WHERE attribute_id = %d`, otherAttr))
	category := one(`SELECT MIN(category_id) FROM catalog_category_product WHERE category_id > 2`)
	group := one(`SELECT MIN(customer_group_id) FROM magento_catalogpermissions_index_product`)
	parent := one(`SELECT MIN(product_id) FROM catalog_product_super_attribute`)
	website1 := one(`SELECT MIN(website_id) FROM store_website WHERE website_id > 0`)
	return [][]string{
		// A new website with a group, a store view, products and permissions.
		{`INSERT INTO store_website (website_id, code, name, default_group_id) VALUES (90, 'w90', 'W90', 90)`,
			`INSERT INTO store_group (group_id, website_id, name, root_category_id, default_store_id, code) VALUES (90, 90, 'G90', 2, 90, 'g90')`,
			`INSERT INTO store (store_id, code, website_id, group_id, name, is_active) VALUES (90, 's90', 90, 90, 'S90', 1), (91, 's91', 90, 90, 'S91', 1)`,
			`INSERT INTO catalog_product_website (product_id, website_id) SELECT entity_id, 90 FROM catalog_product_entity ORDER BY entity_id LIMIT 7`,
			`INSERT INTO magento_catalogpermissions_index_product (product_id, store_id, customer_group_id, grant_catalog_category_view)
				SELECT entity_id, 90, 0, -2 FROM catalog_product_entity ORDER BY entity_id LIMIT 4`,
			`INSERT INTO store_website (website_id, code, name, default_group_id) VALUES (91, 'w91', 'W91', 91)`,
			`INSERT INTO store_group (group_id, website_id, name, root_category_id, default_store_id, code) VALUES (91, 91, 'G91', 2, 93, 'g91')`,
			`INSERT INTO store (store_id, code, website_id, group_id, name, is_active) VALUES (93, 's93', 91, 91, 'S93', 1)`,
			`INSERT INTO catalog_product_website (product_id, website_id) SELECT entity_id, 91 FROM catalog_product_entity ORDER BY entity_id DESC LIMIT 9`,
			`INSERT INTO magento_catalogpermissions_index_product (product_id, store_id, customer_group_id, grant_checkout_items)
				SELECT entity_id, 93, 1, -2 FROM catalog_product_entity ORDER BY entity_id DESC LIMIT 5`},
		// A new store view in an existing website, then codes renamed.
		{fmt.Sprintf(`INSERT INTO store (store_id, code, website_id, group_id, name, is_active)
				SELECT 92, 's92', website_id, group_id, 'S92', 1 FROM store WHERE website_id = %d ORDER BY store_id LIMIT 1`, website1)},
		{`UPDATE store_website SET code = 'w90x' WHERE website_id = 90`, `UPDATE store_group SET code = 'g90x' WHERE group_id = 90`,
			`UPDATE store SET code = 's92x' WHERE store_id = 92`},
		// Metadata: attribute renamed, label and option changes.
		{fmt.Sprintf(`UPDATE eav_attribute SET attribute_code = CONCAT(attribute_code, '_x') WHERE attribute_id = %d`, selectAttr),
			fmt.Sprintf(`UPDATE catalog_eav_attribute SET is_filterable = 1 - is_filterable WHERE attribute_id = %d`, selectAttr),
			fmt.Sprintf(`INSERT INTO eav_attribute_label (attribute_id, store_id, value) VALUES (%d, 92, 'Label 92')`, selectAttr)},
		{fmt.Sprintf(`DELETE FROM eav_attribute_option WHERE option_id = %d`, usedOption)},
		// Cascading deletes: a store view, a store group (its stores), a
		// website, an attribute, a category, a customer group, an axis.
		{`DELETE FROM store WHERE store_id = 92`},
		{`DELETE FROM store_group WHERE group_id = 90`},
		{`DELETE FROM store_website WHERE website_id = 90`},
		{`DELETE FROM store_website WHERE website_id = 91`}, // cascades its group, store and assignments
		{fmt.Sprintf(`DELETE FROM eav_attribute WHERE attribute_id = %d`, otherAttr)},
		{fmt.Sprintf(`DELETE FROM catalog_category_entity WHERE entity_id = %d`, category)},
		{fmt.Sprintf(`DELETE FROM customer_group WHERE customer_group_id = %d`, group)},
		{fmt.Sprintf(`DELETE FROM catalog_product_super_attribute WHERE product_id = %d ORDER BY attribute_id LIMIT 1`, parent)},
	}
}

func describe(f Feed, ident map[string]string) string {
	var parts []string
	for _, k := range f.IdentityFields() {
		parts = append(parts, ident[k])
	}
	return strings.Join(parts, "/")
}

package feeds

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/feedcdc/feedcdc/change"
)

// Feed is one entity feed.
type Feed interface {
	// Name is the feed's name as used on the CLI and in the state store
	// (e.g. "products").
	Name() string
	// IdentityFields are the item fields whose values, joined by "\0" and
	// hashed, make the feed_id.
	IdentityFields() []string
	// Tables are the source tables (bare names) whose changes affect items.
	Tables() []string
	// Keys resolves one change of a watched table into the entity keys whose
	// items may have changed, handing them to emit in chunks of at most
	// Config.ChunkSize keys (a key may repeat across chunks). It may query
	// the source for fan-outs (keyset-paginated, never all in memory). Use
	// Registry.Keys rather than calling this directly: the registry keeps
	// the link index the feeds rely on up to date.
	Keys(ctx context.Context, c *change.Change, emit func(keys []string) error) error
	// Build returns all current items of the given entities, with a few
	// batched queries per call. Entities that do not exist (any more) yield
	// no items. Items come grouped by entity, in a deterministic order.
	// Memory is proportional to len(entityKeys): pass bounded batches.
	Build(ctx context.Context, entityKeys []string) ([]Item, error)
	// Scan enumerates every entity key that currently has items in the
	// source, in chunks (for a full sync). Entities that vanished are not
	// listed: a full sync must also rebuild the entity keys the state store
	// knows, so that their items are deleted.
	Scan(ctx context.Context, emit func(keys []string) error) error
	// DeletedPayload is the minimal payload sent once, with deleted: true,
	// for an item that vanished.
	DeletedPayload(prev PrevItem) Item
}

// PrevState is what the feeds need of the state store: the items it knows
// for some entities of a feed. Every requested key should be present in the
// result (missing keys are treated as having no items).
type PrevState interface {
	ItemsByEntity(ctx context.Context, feed string, entityKeys []string) (map[string][]PrevItem, error)
}

// Config configures a Registry.
type Config struct {
	// DB is the feeds' own connection pool on the source server (the same
	// server the binlog comes from). Needs SELECT on the catalog tables.
	DB *sql.DB
	// Database is the catalog's schema name. Changes of tables in other
	// databases are ignored. Required.
	Database string
	// Feeds selects feeds by name; empty means all registered feeds.
	Feeds []string
	// ChunkSize bounds the keys handed to emit at once and the page size of
	// fan-out queries. Default 1000.
	ChunkSize int
	// Now stamps modifiedAt. Default time.Now.
	Now func() time.Time
	// Logger for notices (fallback fan-outs). Default slog.Default().
	Logger *slog.Logger
}

// linkUser is implemented by feeds that read the parent/child link index.
type linkUser interface{ usesLinks() }

// env is what every feed gets at construction.
type env struct {
	db     *sql.DB
	dbName string
	chunk  int
	now    func() time.Time
	log    *slog.Logger
	links  *linkIndexes
	warned *warnedSet
	labels *labelCache
	meta   *metaCache
	spans  spanProbes // how range chunks' value_id spans turned out, per value table
	newest *newestProduct
}

// warnedSet remembers which data problems were logged, so that a problem
// rebuilt with every change of its entity is logged once per process, not
// once per build. It forgets everything when it holds maxWarned keys, which
// bounds its memory.
type warnedSet struct {
	mu   sync.Mutex
	keys map[string]struct{}
}

const maxWarned = 10000

// warnOnce logs msg at WARN level the first time key is seen.
func (e *env) warnOnce(key, msg string, args ...any) {
	w := e.warned
	w.mu.Lock()
	_, seen := w.keys[key]
	if !seen {
		if len(w.keys) >= maxWarned {
			clear(w.keys)
		}
		w.keys[key] = struct{}{}
	}
	w.mu.Unlock()
	if !seen {
		e.log.Warn(msg, args...)
	}
}

func (e *env) modifiedAt() string { return formatTime(e.now()) }

// factories maps a feed name to its constructor. Each feed file adds itself
// in an init function; the map is never written after package init.
var factories = map[string]func(*env) Feed{}

func register(name string, fn func(*env) Feed) {
	if _, dup := factories[name]; dup {
		panic("feeds: feed registered twice: " + name)
	}
	factories[name] = fn
}

// Names lists the registered feed names, sorted.
func Names() []string {
	out := make([]string, 0, len(factories))
	for n := range factories {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Registry holds the configured feeds and routes changes to them.
type Registry struct {
	env     *env
	feeds   []Feed
	byName  map[string]Feed
	byTable map[string][]Feed
}

// NewRegistry builds the configured feeds.
func NewRegistry(cfg Config) (*Registry, error) {
	if cfg.DB == nil {
		return nil, errors.New("feeds: Config.DB is nil; pass a *sql.DB connected to the source catalog")
	}
	if cfg.Database == "" {
		return nil, errors.New("feeds: Config.Database is empty; set it to the catalog's schema name")
	}
	if cfg.ChunkSize <= 0 {
		cfg.ChunkSize = 1000
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	names := cfg.Feeds
	if len(names) == 0 {
		names = Names()
	}
	e := &env{db: cfg.DB, dbName: cfg.Database, chunk: cfg.ChunkSize, now: cfg.Now, log: cfg.Logger,
		warned: &warnedSet{keys: map[string]struct{}{}}, labels: &labelCache{}, meta: &metaCache{}, newest: &newestProduct{}}
	e.links = newLinkIndexes(e)
	r := &Registry{env: e, byName: map[string]Feed{}, byTable: map[string][]Feed{}}
	for _, n := range names {
		fn, ok := factories[n]
		if !ok {
			return nil, fmt.Errorf("feeds: unknown feed %q; known feeds: %s", n, strings.Join(Names(), ", "))
		}
		if _, dup := r.byName[n]; dup {
			return nil, fmt.Errorf("feeds: feed %q listed twice", n)
		}
		f := fn(e)
		if _, ok := f.(linkUser); ok {
			e.links.enabled = true
		}
		r.feeds = append(r.feeds, f)
		r.byName[n] = f
		for _, t := range f.Tables() {
			r.byTable[t] = append(r.byTable[t], f)
		}
	}
	return r, nil
}

// Feeds returns the configured feeds in configuration order.
func (r *Registry) Feeds() []Feed { return append([]Feed(nil), r.feeds...) }

// Feed returns a configured feed by name.
func (r *Registry) Feed(name string) (Feed, bool) { f, ok := r.byName[name]; return f, ok }

// Tables returns every table any configured feed watches, sorted (plus the
// link tables the registry itself follows).
func (r *Registry) Tables() []string {
	set := map[string]bool{}
	for t := range r.byTable {
		set[t] = true
	}
	for _, t := range linkTables {
		set[t] = true
	}
	out := make([]string, 0, len(set))
	for t := range set {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// Watches reports whether changes of the table matter to any feed.
func (r *Registry) Watches(t *change.Table) bool {
	if t == nil || t.DB != r.env.dbName {
		return false
	}
	if _, ok := r.byTable[t.Name]; ok {
		return true
	}
	for _, lt := range linkTables {
		if lt == t.Name {
			return true
		}
	}
	return false
}

// Keys resolves one change into affected entity keys per feed and hands
// them to emit (feed name, chunk of keys). Call it for every captured change
// in binlog order, including changes of tables no feed watches (they are
// ignored cheaply): it also maintains the parent/child link index.
func (r *Registry) Keys(ctx context.Context, c *change.Change, emit func(feed string, keys []string) error) error {
	if c == nil || c.Table == nil || c.Table.DB != r.env.dbName {
		return nil
	}
	r.forget(c)
	if c.Table.Name == "catalog_product_entity" {
		ctx = withSiblingsOnce(ctx, c)
	}
	for _, f := range r.byTable[c.Table.Name] {
		name := f.Name()
		if err := f.Keys(ctx, c, func(keys []string) error {
			if len(keys) == 0 {
				return nil
			}
			return emit(name, keys)
		}); err != nil {
			return fmt.Errorf("feeds: %s keys for %s %s: %w", name, c.Table.FullName(), c.Op, err)
		}
	}
	// Update the link index after the feeds looked at the change, so a
	// deleted parent's children are still known while resolving its keys.
	return r.env.links.apply(ctx, c)
}

// FeedsReading returns the names of the feeds that read table t (for a
// TRUNCATE: those must rebuild every item), in registry order.
func (r *Registry) FeedsReading(t *change.Table) []string {
	if t == nil || t.DB != r.env.dbName {
		return nil
	}
	var out []string
	for _, f := range r.byTable[t.Name] {
		out = append(out, f.Name())
	}
	return out
}

// TableReplaced tells the registry that t's rows changed without row
// events — a rename put another table in its place, or a TRUNCATE emptied
// it: what it keeps of t (the parent/child links, the option labels) is
// read from the database again before its next use. The feeds reading t
// are rebuilt by the caller (FeedsReading).
func (r *Registry) TableReplaced(t *change.Table) {
	if t == nil || t.DB != r.env.dbName {
		return
	}
	r.env.links.reset(t.Name)
	r.env.labels.changed(t.Name)
	r.env.meta.changed(t.Name)
}

// forget drops what the caches hold of the rows c changed (the option
// labels, the store views and attribute metadata).
func (r *Registry) forget(c *change.Change) {
	r.env.labels.changedRow(c)
	r.env.meta.changed(c.Table.Name)
}

// LoadLinks loads the parent/child link index now (when a configured feed
// uses it) instead of at the first change of the stream. Call it before
// the stream starts: a composite product deleted before the index was
// loaded has lost its links unseen, so its children are found by
// rebuilding every product; loaded first, only the deletes the stream
// replays from before the start can be such ones, not those of a busy
// source in the seconds after it (every restart rebuilt the whole catalog
// then).
func (r *Registry) LoadLinks(ctx context.Context) error {
	return r.env.links.load(ctx)
}

// Caches reports whether the registry caches rows of c's table (Committed
// must then be called with c once its transaction is visible).
func (r *Registry) Caches(c *change.Change) bool {
	t := c.Table
	return t != nil && t.DB == r.env.dbName && (labelTables[t.Name] || metaTables[t.Name])
}

// Committed tells the registry that a change it was given through Keys is
// committed and visible to its reads (its batch passed the visibility
// fence, or was cut long after it). Keys drops what the caches hold of the
// change's rows when the stream reads it, which can be before the change
// is visible to other sessions: a build in between may have cached the
// rows as they were. Committed drops them again, so builds from then on
// read what the change made.
func (r *Registry) Committed(c *change.Change) {
	if c.Table != nil && c.Table.DB == r.env.dbName {
		r.forget(c)
	}
}

// Check verifies that every table the configured feeds read exists in the
// catalog database and is visible to the connector's user. Call it at
// start-up: a Magento Open Source install, for example, has no
// magento_catalogpermissions_index_product, so productOverrides must be
// disabled there.
func (r *Registry) Check(ctx context.Context) error {
	have := map[string]bool{}
	rows, err := r.env.db.QueryContext(ctx, `SELECT table_name FROM information_schema.tables WHERE table_schema = ?`, r.env.dbName)
	if err != nil {
		return fmt.Errorf("feeds: list tables of %s: %w", r.env.dbName, err)
	}
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			rows.Close()
			return fmt.Errorf("feeds: list tables of %s: %w", r.env.dbName, err)
		}
		have[strings.ToLower(t)] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("feeds: list tables of %s: %w", r.env.dbName, err)
	}
	var problems []string
	for _, f := range r.feeds {
		var missing []string
		for _, t := range append(f.Tables(), "eav_entity_type") {
			if !have[t] && !slices.Contains(missing, t) {
				missing = append(missing, t)
			}
		}
		if len(missing) > 0 {
			problems = append(problems, fmt.Sprintf("feed %s needs %s", f.Name(), strings.Join(missing, ", ")))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("feeds: tables missing in database %q or not readable by the connector user: %s; grant SELECT on them, or disable those feeds",
			r.env.dbName, strings.Join(problems, "; "))
	}
	return nil
}

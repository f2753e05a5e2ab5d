package feeds

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/feedcdc/feedcdc/change"
	"github.com/feedcdc/feedcdc/internal/binpos"
)

// Link tables the registry follows to keep its parent/child index.
const (
	tRelation  = "catalog_product_relation"
	tSuperLink = "catalog_product_super_link"
)

var linkTables = []string{tRelation, tSuperLink}

// fallbackMargin widens the window in which a deleted composite product may
// have lost its links before the index was loaded. The load time is the
// source's own clock, read after the index's snapshot was taken, and a
// binlog event's timestamp is its statement's start on the source (whole
// seconds, rounded down), so a delete stamped after the load time began
// after the snapshot; the margin covers a replica whose clock differs from
// its primary's (whose timestamps its binlog keeps) by up to a second.
const fallbackMargin = time.Second

// linkIndex is one parent -> children relation.
type linkIndex struct {
	children map[uint32][]uint32
	parents  map[uint32]uint16 // number of parents per child
}

func newLinkIndex() *linkIndex {
	return &linkIndex{children: map[uint32][]uint32{}, parents: map[uint32]uint16{}}
}

func (x *linkIndex) add(parent, child uint32) {
	ch := x.children[parent]
	if slices.Contains(ch, child) {
		return
	}
	x.children[parent] = append(ch, child)
	x.parents[child]++
}

func (x *linkIndex) remove(parent, child uint32) {
	ch := x.children[parent]
	i := slices.Index(ch, child)
	if i < 0 {
		return
	}
	ch = slices.Delete(ch, i, i+1)
	if len(ch) == 0 {
		delete(x.children, parent)
	} else {
		x.children[parent] = ch
	}
	if n := x.parents[child]; n <= 1 {
		delete(x.parents, child)
	} else {
		x.parents[child] = n - 1
	}
}

// removeProduct drops every link of a deleted product (its foreign-key
// cascades are not in the binlog).
func (x *linkIndex) removeProduct(id uint32) {
	for _, c := range slices.Clone(x.children[id]) {
		x.remove(id, c)
	}
	if x.parents[id] == 0 {
		return
	}
	for p, ch := range x.children {
		if slices.Contains(ch, id) {
			x.remove(p, id)
		}
	}
}

// linkIndexes mirrors catalog_product_relation and catalog_product_super_link
// as of the binlog position being processed. InnoDB cascades (deleting a
// product deletes its links) are not written to the binlog, so when a parent
// is deleted the database no longer knows its children; this index does.
// It is loaded from the database on first use and then follows the stream.
// Memory: about 10 bytes per link plus map overhead (a million links take
// roughly 40 MB).
type linkIndexes struct {
	e       *env
	enabled bool          // some configured feed reads the index
	margin  time.Duration // fallback window after loadedAt (fallbackMargin)
	mu      sync.Mutex
	loaded  bool
	// loadedPos is the binlog position of the snapshot the index was loaded
	// from (zero when unknown); loadedAt is the source's time just after
	// it; offset is the source's clock minus the local one then.
	loadedPos change.Position
	loadedAt  time.Time
	offset    time.Duration
	// appliedPos is the position of the last change apply followed (zero
	// before the first): the index holds every link change up to it and
	// none after.
	appliedPos change.Position
	relation   *linkIndex
	super      *linkIndex
	// coveredFrom: start of the last completed fallback fan-out, per index.
	coveredFrom map[bool]time.Time
}

func newLinkIndexes(e *env) *linkIndexes {
	return &linkIndexes{e: e, margin: fallbackMargin, coveredFrom: map[bool]time.Time{}}
}

func (l *linkIndexes) ensure(ctx context.Context) error {
	if l.loaded {
		return nil
	}
	rel, sup := newLinkIndex(), newLinkIndex()
	conn, err := l.e.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("load link index: %w", err)
	}
	defer conn.Close()
	pos, at, err := l.read(ctx, conn, rel, sup)
	if err != nil {
		return fmt.Errorf("load link index: %w", err)
	}
	l.relation, l.super, l.loaded, l.loadedPos, l.loadedAt, l.offset = rel, sup, true, pos, at, time.Until(at)
	return nil
}

// read fills rel and sup from one consistent snapshot of both tables and
// returns the snapshot's binlog position (zero when the source does not
// tell it) and the source's time read after the snapshot was taken.
func (l *linkIndexes) read(ctx context.Context, conn *sql.Conn, rel, sup *linkIndex) (change.Position, time.Time, error) {
	flavor, err := binpos.Flavor(ctx, conn)
	if err != nil {
		return change.Position{}, time.Time{}, err
	}
	if err := binpos.StartSnapshot(ctx, conn); err != nil {
		return change.Position{}, time.Time{}, err
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK") //nolint:errcheck // read-only; a broken connection is dropped by Close
	// Without the snapshot's position (no privilege to read it),
	// deletions are ordered by time.
	pos, err := binpos.OpenedSnapshot(ctx, conn, flavor)
	if err != nil {
		l.e.log.Info("feeds: link index loaded without its binlog position, ordering deleted composite products by time", "err", err)
		pos = change.Position{}
	}
	for _, q := range []struct {
		x     *linkIndex
		query string
	}{
		{rel, "SELECT parent_id, child_id FROM " + tRelation},
		{sup, "SELECT parent_id, product_id FROM " + tSuperLink},
	} {
		if err := readLinks(ctx, conn, q.query, q.x); err != nil {
			return change.Position{}, time.Time{}, err
		}
	}
	now, err := sourceNow(ctx, conn)
	if err != nil {
		return change.Position{}, time.Time{}, err
	}
	return pos, now, nil
}

// sourceNow reads the source's clock (microseconds).
func sourceNow(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}) (time.Time, error) {
	var micros int64
	if err := q.QueryRowContext(ctx, "SELECT CAST(UNIX_TIMESTAMP(NOW(6)) * 1000000 AS SIGNED)").Scan(&micros); err != nil {
		return time.Time{}, fmt.Errorf("read the source's time: %w", err)
	}
	return time.UnixMicro(micros), nil
}

func readLinks(ctx context.Context, conn *sql.Conn, query string, x *linkIndex) error {
	rows, err := conn.QueryContext(ctx, query)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var p, c uint32
		if err := rows.Scan(&p, &c); err != nil {
			return err
		}
		x.add(p, c)
	}
	return rows.Err()
}

// load loads the index now, if some feed reads it and it is not loaded.
func (l *linkIndexes) load(ctx context.Context) error {
	if !l.enabled {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ensure(ctx)
}

// reset drops the index when table is one it mirrors (or the product
// table, whose rows it follows): it is loaded again on next use.
func (l *linkIndexes) reset(table string) {
	if table != tRelation && table != tSuperLink && table != tProductEntity {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.loaded = false
}

// children returns the children of parent in the relation or super-link
// index.
func (l *linkIndexes) children(ctx context.Context, super bool, parent uint64) ([]uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.ensure(ctx); err != nil {
		return nil, err
	}
	x := l.relation
	if super {
		x = l.super
	}
	ch := x.children[uint32(parent)]
	out := make([]uint64, len(ch))
	for i, c := range ch {
		out[i] = uint64(c)
	}
	slices.Sort(out)
	return out, nil
}

// filterChildren keeps the ids that are super-link children.
func (l *linkIndexes) filterChildren(ctx context.Context, ids []string) ([]string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.ensure(ctx); err != nil {
		return nil, err
	}
	out := ids[:0:0]
	for _, k := range ids {
		var n uint64
		for i := 0; i < len(k); i++ {
			n = n*10 + uint64(k[i]-'0')
		}
		if l.super.parents[uint32(n)] > 0 {
			out = append(out, k)
		}
	}
	return out, nil
}

// unsure reports whether a deleted composite product may have lost its
// links before the index was loaded, so that its children are unknown and
// the caller must fall back to a full fan-out. A deletion whose rows event
// ends after the snapshot's binlog position was not in the snapshot, which
// still held its links; without comparable positions, one stamped after
// the load time (plus the margin) was not either. A fan-out that started
// after the deletion was committed (plus the margin) already covers it:
// every product it emitted is built from a database in which the deletion
// is done. So a replay of many such deletions costs one fan-out per index,
// not one per deletion.
func (l *linkIndexes) unsure(ctx context.Context, c *change.Change, super bool) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.ensure(ctx); err != nil {
		return false, err
	}
	if p := l.loadedPos; p.File != "" && c.Source.File != "" {
		if order, ok := binpos.Compare(c.Source.File, c.Source.Pos, p.File, p.Pos); ok {
			if order > 0 {
				return false, nil
			}
			return l.uncovered(c, super), nil
		}
	}
	if ts := c.Source.Timestamp; !ts.IsZero() && ts.After(l.loadedAt.Add(l.margin)) {
		return false, nil
	}
	return l.uncovered(c, super), nil
}

// uncovered reports whether no completed fan-out for the relation (super =
// false) or super-link (super = true) index started after the deletion c
// was committed (plus the margin).
func (l *linkIndexes) uncovered(c *change.Change, super bool) bool {
	ts := c.Source.Timestamp
	if ts.IsZero() {
		return true
	}
	return !ts.Add(l.margin).Before(l.coveredFrom[super])
}

// covered records that a full fan-out for the relation (super = false) or
// super-link (super = true) index started at start (local time) and
// completed.
func (l *linkIndexes) covered(super bool, start time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if start = start.Add(l.offset); start.After(l.coveredFrom[super]) {
		l.coveredFrom[super] = start
	}
}

// apply follows one change of the stream.
func (l *linkIndexes) apply(ctx context.Context, c *change.Change) error {
	if !l.enabled {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	// Load on the first change of the catalog, so the index (and its load
	// time, which bounds the fallback window) starts with the stream.
	if err := l.ensure(ctx); err != nil {
		return err
	}
	if c.Source.File != "" {
		l.appliedPos = change.Position{Flavor: c.Source.Flavor, File: c.Source.File, Pos: c.Source.Pos}
	}
	switch name := c.Table.Name; name {
	case tProductEntity:
		if c.After == nil {
			if id, ok := imageUint(c.Table, c.Before, "entity_id"); ok {
				l.relation.removeProduct(uint32(id))
				l.super.removeProduct(uint32(id))
			}
		}
	case tRelation, tSuperLink:
		x, childCol := l.relation, "child_id"
		if name == tSuperLink {
			x, childCol = l.super, "product_id"
		}
		if p, ok := imageUint(c.Table, c.Before, "parent_id"); ok {
			if ch, ok := imageUint(c.Table, c.Before, childCol); ok {
				x.remove(uint32(p), uint32(ch))
			}
		}
		if p, ok := imageUint(c.Table, c.After, "parent_id"); ok {
			if ch, ok := imageUint(c.Table, c.After, childCol); ok {
				x.add(uint32(p), uint32(ch))
			}
		}
	}
	return nil
}

package feeds

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"sync"

	"github.com/feedcdc/feedcdc/change"
)

// Duplicate skus. Magento keeps a sku unique by validation, not by a key,
// and products, variants and productOverrides make their item ids from
// skus: two products with one sku would build items with the same id, and
// the state, which keys items by id, would keep whichever was written last
// and find the other product's build changed on every sync. So the product
// with the lowest entity_id of an exact (byte-equal) sku owns it, and the
// others build no items (logged once per product and feed). The source
// decides ownership when a chunk is built, so that chunks, streamed batches
// and restarts agree. A change that can move ownership (a product deleted,
// inserted below an existing id, or its sku or id changed) also keys the
// products of its sku with a higher entity_id: only they can gain or lose it.

// shadowed reads which products of a chunk (ids, on their entity_id) have
// a sku that a lower entity_id has too, with the lowest such id: their
// owner. It returns only those, usually none. The join probes the sku index
// (CATALOG_PRODUCT_ENTITY_SKU) once per product: the collation-equal
// condition uses the index, BINARY keeps skus apart that differ in case or
// trailing spaces, as item ids do.
func shadowed(ctx context.Context, db *sql.DB, ids idMatch) (map[uint64]uint64, error) {
	var out map[uint64]uint64
	err := query(ctx, db, `SELECT e.entity_id, MIN(d.entity_id) FROM catalog_product_entity e
		JOIN catalog_product_entity d ON d.sku = e.sku AND BINARY d.sku = BINARY e.sku AND d.entity_id < e.entity_id
		WHERE `+ids.On("e.entity_id")+` GROUP BY e.entity_id`, nil, func(r *sql.Rows) error {
		var id, owner uint64
		if err := r.Scan(&id, &owner); err != nil {
			return err
		}
		if out == nil {
			out = map[uint64]uint64{}
		}
		out[id] = owner
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read duplicate skus: %w", err)
	}
	return out, nil
}

// warnShadowed logs, once per product and feed, that a product builds no
// items because a lower entity_id has its sku.
func (e *env) warnShadowed(feed string, id uint64, sku string, owner uint64) {
	e.warnOnce(fmt.Sprintf("dupsku/%s/%d", feed, id), "feeds: duplicate sku, the lowest entity_id owns it and the others build no items (logged once per product)",
		"feed", feed, "sku", sku, "owner", owner, "skipped", id)
}

// skuSiblings emits the products whose ownership of a sku the change of a
// catalog_product_entity row c may have moved: those with its before or
// after sku and a higher entity_id. An insert above every entity_id the
// registry has known needs no lookup, which spares the common case (new
// products get ever higher ids) a query per inserted product. Under
// Registry.Keys the lookup is made once per change and its answer handed
// to every feed that asks (siblingsOnce), so a mass delete costs one query
// per product, not one per feed.
func skuSiblings(ctx context.Context, e *env, c *change.Change, emit func([]string) error) error {
	if once, ok := ctx.Value(siblingsKey{}).(*siblingsOnce); ok && once.c == c {
		return once.emit(ctx, e, emit)
	}
	return lookupSiblings(ctx, e, c, emit)
}

type siblingsKey struct{}

// siblingsOnce is the answer of one change's sibling lookup, shared by the
// feeds that resolve that change: the ids, in the chunks emitted, as long
// as they number at most maxShared (more are looked up again by each feed,
// which bounds the memory a sku shared by very many products takes). The
// feeds of one Registry.Keys call run one after another, so it needs no
// lock.
type siblingsOnce struct {
	c        *change.Change
	asked    bool
	complete bool
	chunks   [][]string
}

const maxShared = 10000

// withSiblingsOnce returns a context in which skuSiblings looks up the
// siblings of c once.
func withSiblingsOnce(ctx context.Context, c *change.Change) context.Context {
	return context.WithValue(ctx, siblingsKey{}, &siblingsOnce{c: c})
}

func (s *siblingsOnce) emit(ctx context.Context, e *env, emit func([]string) error) error {
	if s.asked && s.complete {
		for _, ch := range s.chunks {
			if err := emit(ch); err != nil {
				return err
			}
		}
		return nil
	}
	if s.asked {
		return lookupSiblings(ctx, e, s.c, emit)
	}
	s.asked, s.complete = true, true
	n := 0
	err := lookupSiblings(ctx, e, s.c, func(keys []string) error {
		if n += len(keys); n > maxShared {
			s.complete, s.chunks = false, nil
		} else if s.complete {
			s.chunks = append(s.chunks, slices.Clone(keys))
		}
		return emit(keys)
	})
	if err != nil {
		s.complete, s.chunks = false, nil
	}
	return err
}

// lookupSiblings is skuSiblings' query.
func lookupSiblings(ctx context.Context, e *env, c *change.Change, emit func([]string) error) error {
	var low uint64
	switch {
	case c.Before == nil:
		id, _ := imageUint(c.Table, c.After, "entity_id")
		newest, err := e.newest.raise(ctx, e.db, id)
		if err != nil || newest {
			return err
		}
		low = id
	case c.After != nil && !changed(c, "sku", "entity_id"):
		return nil
	default:
		ids := ids(c, "entity_id")
		if len(ids) == 0 {
			return nil
		}
		low = ids[0]
		for _, id := range ids {
			low = min(low, id)
			if c.After != nil {
				if _, err := e.newest.raise(ctx, e.db, id); err != nil {
					return err
				}
			}
		}
	}
	var skus []string
	for _, row := range [][]any{c.Before, c.After} {
		sku, ok := imageString(c.Table, row, "sku")
		if ok && sku != "" && (len(skus) == 0 || skus[0] != sku) {
			skus = append(skus, sku)
		}
	}
	for _, sku := range skus {
		err := scanIDs(ctx, e.db, e.chunk, `SELECT entity_id FROM catalog_product_entity
			WHERE sku = ? AND BINARY sku = ? AND entity_id > ? AND entity_id > ? ORDER BY entity_id LIMIT ?`, []any{sku, sku, low}, emit)
		if err != nil {
			return fmt.Errorf("products of sku %q: %w", sku, err)
		}
	}
	return nil
}

// newestProduct is the highest catalog_product_entity.entity_id the
// registry has known: the source's at the first insert it saw, raised by
// every insert since. No product that existed before a product inserted at
// or above it has a higher id, so none can lose its sku to it.
type newestProduct struct {
	mu     sync.Mutex
	loaded bool
	id     uint64
}

// raise records id and reports whether no product known had a higher id.
func (n *newestProduct) raise(ctx context.Context, db *sql.DB, id uint64) (bool, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.loaded {
		var top sql.NullInt64
		if err := db.QueryRowContext(ctx, `SELECT MAX(entity_id) FROM catalog_product_entity`).Scan(&top); err != nil {
			return false, fmt.Errorf("read the highest product id: %w", err)
		}
		n.id, n.loaded = uint64(max(top.Int64, 0)), true
	}
	if id < n.id {
		return false, nil
	}
	n.id = id
	return true, nil
}

package state

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// Export statuses of a feed item (the feed item contract). Any other int16
// code may be stored; it counts as pending.
const (
	StatusPending           = 0   // built, not sent yet (e.g. waiting in the legacy outbox)
	StatusSent              = 200 // accepted by the sink
	StatusRejected          = 400 // rejected as a data error; final until the hash changes
	StatusRejectedByService = 1   // rejected by the service for this item; final until the hash changes
	StatusRetryableFailure  = 2   // 429, 5xx, network or application error; retried with backoff
	StatusDryRun            = -1  // built by a dry run; nothing sent
)

const (
	minStatus, maxStatus  = math.MinInt16, math.MaxInt16
	defaultListLimit      = 50
	maxListLimit          = 1000
	defaultDueFailedLimit = 1000
)

// IsFinal reports whether status is final until the item's hash changes
// (200, 400 and 1): such an item is not sent again with the same hash.
func IsFinal(status int) bool {
	return status == StatusSent || status == StatusRejected || status == StatusRejectedByService
}

// Item is the stored state of one feed item.
type Item struct {
	Feed      string
	ID        string            // feed_id: sha1 of the identity fields
	EntityKey string            // source entity key, e.g. the product's entity_id as a string
	Identity  map[string]string // identity and minimal-payload fields, e.g. sku, storeViewCode
	Hash      string            // feed_hash of the last built payload
	Status    int               // one of the Status* constants (or any other int16 code)
	Attempts  int               // failed send attempts since the last success or hash change
	LastError string
	RequestID string
	// ModifiedAt is when the item was last built with a new hash or state.
	ModifiedAt time.Time
	// SentAt is when the sink last acknowledged it.
	SentAt time.Time
	// NextAttempt is when a retryable failure (status 2) is due again.
	NextAttempt time.Time
	Deleted     bool // the entity vanished; the item was (or is to be) sent with deleted:true
	// Attention marks a retryable failure that reached the maximum attempts;
	// it is no longer retried automatically. Only kept while Status is 2.
	Attention bool
	// Accepted names the sinks that already acknowledged this version
	// (Hash) while another sink of the feed failed it; the retry job sends
	// the item only to the others. Only meaningful while Status is 2.
	Accepted []string
}

// Counts are per-feed item counters, maintained on every write (O(1) to read).
type Counts struct {
	Total     int64 // items
	Sent      int64 // status 200
	Failed    int64 // status 2 (including those requiring attention)
	Rejected  int64 // status 400 or 1
	Pending   int64 // any other status (0 not sent yet, -1 dry run, ...)
	Deleted   int64 // items marked deleted, whatever their status
	Attention int64 // status 2 items that reached the maximum attempts
	Outbox    int64 // legacy outbox entries waiting for the flush
}

func (c *Counts) add(d Counts, sign int64) {
	c.Total += sign * d.Total
	c.Sent += sign * d.Sent
	c.Failed += sign * d.Failed
	c.Rejected += sign * d.Rejected
	c.Pending += sign * d.Pending
	c.Deleted += sign * d.Deleted
	c.Attention += sign * d.Attention
	c.Outbox += sign * d.Outbox
}

func contribution(status int, deleted, attention bool) Counts {
	c := Counts{Total: 1}
	switch {
	case status == StatusSent:
		c.Sent = 1
	case status == StatusRetryableFailure:
		c.Failed = 1
	case status == StatusRejected || status == StatusRejectedByService:
		c.Rejected = 1
	default:
		c.Pending = 1
	}
	if deleted {
		c.Deleted = 1
	}
	if attention {
		c.Attention = 1
	}
	return c
}

func encodeCounts(c Counts) []byte {
	b := make([]byte, 0, 1+8*binary.MaxVarintLen64)
	b = append(b, 1)
	for _, v := range []int64{c.Total, c.Sent, c.Failed, c.Rejected, c.Pending, c.Deleted, c.Attention, c.Outbox} {
		b = binary.AppendVarint(b, v)
	}
	return b
}

func decodeCounts(v []byte) (Counts, error) {
	var c Counts
	if len(v) == 0 {
		return c, nil
	}
	r := reader{b: v}
	if r.byte1() != 1 {
		return c, fmt.Errorf("counts record version: %w", errCorrupt)
	}
	for _, p := range []*int64{&c.Total, &c.Sent, &c.Failed, &c.Rejected, &c.Pending, &c.Deleted, &c.Attention, &c.Outbox} {
		*p = r.varint()
	}
	if r.err != nil {
		return Counts{}, fmt.Errorf("decode counts: %w", r.err)
	}
	return c, nil
}

func readCounts(meta interface{ Get([]byte) []byte }) (Counts, error) {
	return decodeCounts(meta.Get(kCounts))
}

// keep copies b into memory that stays valid until the transaction ends
// (bbolt keeps references to keys and values until commit).
func (t *Tx) keep(b []byte) []byte {
	if len(b) > 4096 {
		return append([]byte(nil), b...)
	}
	if cap(t.buf)-len(t.buf) < len(b) {
		t.buf = make([]byte, 0, 64<<10)
	}
	n := len(t.buf)
	t.buf = append(t.buf, b...)
	return t.buf[n:len(t.buf):len(t.buf)]
}

// keepString is keep for a string.
func (t *Tx) keepString(s string) []byte {
	if len(s) > 4096 {
		return []byte(s)
	}
	if cap(t.buf)-len(t.buf) < len(s) {
		t.buf = make([]byte, 0, 64<<10)
	}
	n := len(t.buf)
	t.buf = append(t.buf, s...)
	return t.buf[n:len(t.buf):len(t.buf)]
}

var empty = []byte{}

func inFailedIndex(status int, attention bool) bool {
	return status == StatusRetryableFailure && !attention
}

func inStatusIndex(status int) bool { return status != StatusSent }

// lookup finds the item with id key idk: where the id index holds it
// (ref.ek is nil when it does not), its item key (in t.kbuf2) and value.
func (t *Tx) lookup(fb *feedBuckets, idk []byte) (ref indexRef, ik, v []byte, err error) {
	ref, err = t.indexGet(fb, idk)
	if err != nil || ref.ek == nil {
		return ref, nil, nil, err
	}
	ik = itemKey(t.kbuf2[:0], string(ref.ek), idk)
	return ref, ik, fb.items.Get(ik), nil
}

func (t *Tx) missing(fb *feedBuckets, what string, idk []byte) error {
	id, _ := decodeID(idk)
	return fmt.Errorf("state: feed %q: %s names item %s that does not exist: %w", fb.name, what, id, errCorrupt)
}

// checkItem checks what PutItems refuses to store.
func checkItem(it *Item) error {
	if it.ID == "" {
		return fmt.Errorf("state: put item in feed %q: empty feed id", it.Feed)
	}
	if it.Status < minStatus || it.Status > maxStatus {
		return fmt.Errorf("state: put item %s: status %d out of range", it.ID, it.Status)
	}
	if len(it.EntityKey) > 512 {
		return fmt.Errorf("state: put item %s: entity key of %d bytes is too long (max 512)", it.ID, len(it.EntityKey))
	}
	return nil
}

// putOrder returns the items' item keys (in one new buffer), where in each
// the id key starts, and the order
// PutItems writes them in: by feed and item key, keeping only the last of
// the items with the same feed and id (what writing all of them in the
// given order stores). bbolt keeps a page's entries in one slice, so an
// entry inserted in the middle moves every entry after it, and a
// transaction's new entries at the end of a bucket pile up in its last
// page until the commit splits it: a full sync's new items written in
// feed-id order (the order Diff returns) cost a quadratic number of moves,
// in key order they are appended.
func putOrder(items []Item) (keys [][]byte, idAt []int, order []int) {
	size := 0
	for i := range items {
		size += binary.MaxVarintLen64 + len(items[i].EntityKey) + 1 + len(items[i].ID)
	}
	buf := make([]byte, 0, size)
	keys, idAt = make([][]byte, len(items)), make([]int, len(items))
	order = make([]int, 0, len(items))
	last := make(map[[2]string]int, len(items))
	for i := range items {
		it := &items[i]
		n := len(buf)
		buf = appendBytes(buf, it.EntityKey) // itemKey: entity, then id key
		idAt[i] = len(buf) - n
		buf = encodeID(buf, it.ID)
		keys[i] = buf[n:len(buf):len(buf)]
		id := [2]string{it.Feed, it.ID}
		if j, dup := last[id]; dup {
			order[j] = -1
		}
		last[id] = len(order)
		order = append(order, i)
	}
	order = slices.DeleteFunc(order, func(i int) bool { return i < 0 })
	slices.SortFunc(order, func(a, b int) int {
		if c := strings.Compare(items[a].Feed, items[b].Feed); c != 0 {
			return c
		}
		return bytes.Compare(keys[a], keys[b])
	})
	return keys, idAt, order
}

// PutItems inserts or replaces item states, keeping the id, failed and
// status indexes and the feed counters consistent. Attention is stored only
// for items whose status is 2. A later item in items replaces an earlier
// one with the same feed and id.
func (t *Tx) PutItems(items []Item) error {
	if err := t.writable(); err != nil {
		return err
	}
	for i := range items {
		if err := checkItem(&items[i]); err != nil {
			return err
		}
	}
	keys, idAt, order := putOrder(items)
	var scratch []byte
	// The id index entries of items new under their entity key, written
	// after the loop: new ids are staged (idindex.go), an id that moved
	// to another entity is changed where the index holds it (in id-key
	// order, so that each page of byid is reached once).
	var newIDs []int
	refs := map[int]indexRef{}
	for n, i := range order {
		cp := items[i] // the caller's slice is not modified
		it := &cp
		if it.Status != StatusRetryableFailure {
			it.Attention = false
		}
		fb, err := t.feed(it.Feed, true)
		if err != nil {
			return err
		}
		ik := keys[i] // stays valid until the commit
		idk := ik[idAt[i]:]
		newNext := timeToMicro(it.NextAttempt)
		failedOld, statusOld := false, false
		var oldNext int64
		var oldStatus int
		// Most writes update an item under the same entity: find it by its
		// item key first and consult the id index only when that misses
		// (a new item, or one whose entity key changed).
		old := fb.items.Get(ik)
		if old == nil {
			ref, oldIK, ov, err := t.lookup(fb, idk)
			if err != nil {
				return err
			}
			if ref.ek != nil {
				if ov == nil {
					return t.missing(fb, "id index", idk)
				}
				if err := fb.items.Delete(oldIK); err != nil {
					return err
				}
				old = ov
				refs[i] = ref
			}
			newIDs = append(newIDs, i)
		}
		if old != nil {
			h, _, err := decodeHead(old)
			if err != nil {
				return fmt.Errorf("state: feed %q item %s: %w", it.Feed, it.ID, err)
			}
			fb.delta.add(contribution(h.Status, h.Deleted, h.Attention), -1)
			failedOld, oldNext = inFailedIndex(h.Status, h.Attention), h.NextAttempt
			statusOld, oldStatus = inStatusIndex(h.Status), h.Status
		}
		// Failed index.
		failedNew := inFailedIndex(it.Status, it.Attention)
		if failedOld && (!failedNew || oldNext != newNext) {
			if err := fb.failed.Delete(failedKey(t.kbuf[:0], oldNext, idk)); err != nil {
				return err
			}
		}
		if failedNew && (!failedOld || oldNext != newNext) {
			if err := fb.failed.Put(t.keep(failedKey(t.kbuf[:0], newNext, idk)), empty); err != nil {
				return err
			}
		}
		// Status index.
		statusNew := inStatusIndex(it.Status)
		if statusOld && (!statusNew || oldStatus != it.Status) {
			if err := fb.status.Delete(statusKey(t.kbuf[:0], oldStatus, idk)); err != nil {
				return err
			}
		}
		if statusNew && (!statusOld || oldStatus != it.Status) {
			if err := fb.status.Put(t.keep(statusKey(t.kbuf[:0], it.Status, idk)), empty); err != nil {
				return err
			}
		}
		scratch = encodeItem(scratch[:0], it)
		if err := fb.items.Put(ik, t.keep(scratch)); err != nil {
			return fmt.Errorf("state: put feed %q item %s: %w", it.Feed, it.ID, err)
		}
		fb.delta.add(contribution(it.Status, it.Deleted, it.Attention), 1)
		fb.dirty = true
		if n%1024 == 1023 {
			if err := t.ctx.Err(); err != nil {
				return err
			}
		}
	}
	slices.SortFunc(newIDs, func(a, b int) int {
		if c := strings.Compare(items[a].Feed, items[b].Feed); c != 0 {
			return c
		}
		return bytes.Compare(keys[a][idAt[a]:], keys[b][idAt[b]:])
	})
	for _, i := range newIDs {
		fb, err := t.feed(items[i].Feed, true)
		if err != nil {
			return err
		}
		idk := keys[i][idAt[i]:]
		if ref, moved := refs[i]; moved && !ref.pending {
			if err := fb.byID.Put(idk, t.keepString(items[i].EntityKey)); err != nil {
				return err
			}
			continue
		}
		if err := t.stage(fb, idk, items[i].EntityKey, refs[i]); err != nil {
			return err
		}
	}
	return nil
}

// DeleteItems removes item states (and their index entries). Unknown ids
// are ignored.
func (t *Tx) DeleteItems(feed string, ids []string) error {
	if err := t.writable(); err != nil {
		return err
	}
	fb, err := t.feed(feed, false)
	if err != nil || fb == nil {
		return err
	}
	for _, id := range ids {
		if err := t.deleteItem(fb, encodeID(nil, id)); err != nil {
			return err
		}
	}
	return nil
}

// deleteItem removes the item with id key idk; idk must not alias t.kbuf
// or t.kbuf2.
func (t *Tx) deleteItem(fb *feedBuckets, idk []byte) error {
	ref, ik, old, err := t.lookup(fb, idk)
	if err != nil || ref.ek == nil {
		return err
	}
	if old == nil {
		return t.missing(fb, "id index", idk)
	}
	h, _, err := decodeHead(old)
	if err != nil {
		return fmt.Errorf("state: feed %q: %w", fb.name, err)
	}
	if err := fb.items.Delete(ik); err != nil {
		return err
	}
	if inFailedIndex(h.Status, h.Attention) {
		if err := fb.failed.Delete(failedKey(t.kbuf[:0], h.NextAttempt, idk)); err != nil {
			return err
		}
	}
	if inStatusIndex(h.Status) {
		if err := fb.status.Delete(statusKey(t.kbuf[:0], h.Status, idk)); err != nil {
			return err
		}
	}
	if err := t.unindex(fb, idk, ref); err != nil {
		return err
	}
	fb.delta.add(contribution(h.Status, h.Deleted, h.Attention), -1)
	fb.dirty = true
	return nil
}

// getByIDKey decodes the item with id key idk; ok is false if absent.
func (t *Tx) getByIDKey(fb *feedBuckets, idk []byte, id string) (Item, bool, error) {
	ref, _, v, err := t.lookup(fb, idk)
	if err != nil || ref.ek == nil {
		return Item{}, false, err
	}
	ek := ref.ek
	if v == nil {
		return Item{}, false, t.missing(fb, "id index", idk)
	}
	if id == "" {
		var err error
		if id, err = decodeID(idk); err != nil {
			return Item{}, false, err
		}
	}
	it, err := decodeItem(fb.name, id, string(ek), v)
	if err != nil {
		return Item{}, false, fmt.Errorf("state: feed %q: %w", fb.name, err)
	}
	return it, true, nil
}

// Item returns one item's state.
func (t *Tx) Item(feed, id string) (Item, bool, error) {
	fb, err := t.feed(feed, false)
	if err != nil || fb == nil {
		return Item{}, false, err
	}
	return t.getByIDKey(fb, encodeID(t.kbuf[:0], id), id)
}

// Items returns the stored states of the given feed ids; ids without state
// are absent from the map.
func (t *Tx) Items(feed string, ids []string) (map[string]Item, error) {
	out := make(map[string]Item, len(ids))
	fb, err := t.feed(feed, false)
	if err != nil || fb == nil {
		return out, err
	}
	for _, id := range ids {
		it, ok, err := t.getByIDKey(fb, encodeID(t.kbuf[:0], id), id)
		if err != nil {
			return nil, err
		}
		if ok {
			out[id] = it
		}
	}
	return out, nil
}

// ItemsByEntity returns, per source entity key, every item of feed built
// from that entity (e.g. one per store view). Keys without items are absent.
// One entity's items are stored contiguously, so this is one range read per
// entity.
func (t *Tx) ItemsByEntity(feed string, entityKeys []string) (map[string][]Item, error) {
	out := make(map[string][]Item, len(entityKeys))
	fb, err := t.feed(feed, false)
	if err != nil || fb == nil {
		return out, err
	}
	c := fb.items.Cursor()
	for _, ek := range entityKeys {
		if _, done := out[ek]; done {
			continue
		}
		prefix := entityPrefix(ek)
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			id, err := decodeID(k[len(prefix):])
			if err != nil {
				return nil, fmt.Errorf("state: feed %q: %w", feed, err)
			}
			it, err := decodeItem(feed, id, ek, v)
			if err != nil {
				return nil, fmt.Errorf("state: feed %q: %w", feed, err)
			}
			out[ek] = append(out[ek], it)
		}
	}
	return out, nil
}

// Counts returns the feed's counters as of this transaction.
func (t *Tx) Counts(feed string) (Counts, error) {
	fb, err := t.feed(feed, false)
	if err != nil || fb == nil {
		return Counts{}, err
	}
	c, err := readCounts(fb.meta.Bucket)
	if err != nil {
		return Counts{}, fmt.Errorf("state: feed %q: %w", feed, err)
	}
	if fb.dirty {
		c.add(fb.delta, 1)
	}
	return c, nil
}

// DueFailed returns up to limit items of feed with status 2 (not requiring
// attention) whose NextAttempt is at or before now, earliest first. It reads
// only the failed index and the items it names.
func (t *Tx) DueFailed(feed string, now time.Time, limit int) ([]Item, error) {
	if limit <= 0 {
		limit = defaultDueFailedLimit
	}
	fb, err := t.feed(feed, false)
	if err != nil || fb == nil {
		return nil, err
	}
	nowUS := uint64(max(timeToMicro(now), 0))
	var out []Item
	c := fb.failed.Cursor()
	for k, _ := c.First(); k != nil && len(out) < limit; k, _ = c.Next() {
		if len(k) < 9 {
			return nil, fmt.Errorf("state: feed %q failed index key: %w", feed, errCorrupt)
		}
		if binary.BigEndian.Uint64(k) > nowUS {
			break
		}
		it, ok, err := t.getByIDKey(fb, k[8:], "")
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, t.missing(fb, "failed index", k[8:])
		}
		out = append(out, it)
	}
	return out, nil
}

// ListQuery selects items for the status page and the dashboard.
type ListQuery struct {
	Feed string
	// Statuses keeps items with one of these statuses (all when empty).
	// Without 200 among them the status index is read instead of all items,
	// and items come in feed-id order; otherwise in entity-key order.
	Statuses []int
	// Attention keeps only items requiring attention.
	Attention bool
	// Search keeps items whose feed id, entity key or any identity value
	// contains it, case-insensitively (e.g. part of a SKU).
	Search string
	// After is the opaque cursor returned as next by the previous page of
	// the same query.
	After string
	// Limit is the page size (default 50, at most 1000).
	Limit int
}

// ListItems returns one page of items matching q and the cursor of the next
// page ("" when this page is the last; a non-empty cursor may still lead to
// an empty page).
func (t *Tx) ListItems(q ListQuery) ([]Item, string, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = defaultListLimit
	}
	limit = min(limit, maxListLimit)
	fb, err := t.feed(q.Feed, false)
	if err != nil || fb == nil {
		return nil, "", err
	}
	f, err := newListFilter(q)
	if err != nil {
		return nil, "", err
	}
	mode := "i" // cursors of entity-key order (all items) and of the status index differ
	if f.useIndex {
		mode = "s"
	}
	var after []byte
	if q.After != "" {
		if after, err = hex.DecodeString(strings.TrimPrefix(q.After, mode)); err != nil || !strings.HasPrefix(q.After, mode) {
			return nil, "", fmt.Errorf("state: list items: cursor %q does not belong to this query; start again without one", q.After)
		}
	}
	var out []Item
	var last []byte
	n := 0
	// visit gets the key in the scanned bucket and the item.
	visit := func(key []byte, it Item) (bool, error) {
		if n++; n%4096 == 0 {
			if err := t.ctx.Err(); err != nil {
				return false, err
			}
		}
		if f.match(&it) {
			out = append(out, it)
			last = append(last[:0], key...)
		}
		return len(out) < limit, nil
	}
	if f.useIndex {
		err = t.mergeStatus(fb, f.statuses, after, visit)
	} else {
		err = scanItems(fb, q.Feed, after, visit)
	}
	if err != nil {
		return nil, "", fmt.Errorf("state: list items of feed %q: %w", q.Feed, err)
	}
	next := ""
	if len(out) == limit {
		next = mode + hex.EncodeToString(last)
	}
	return out, next, nil
}

// listFilter is the item filter of a ListQuery.
type listFilter struct {
	statuses  []int
	want      map[int]bool
	useIndex  bool // every wanted status is in the status index
	attention bool
	search    string // lower case
}

func newListFilter(q ListQuery) (listFilter, error) {
	f := listFilter{statuses: q.Statuses, want: map[int]bool{}, attention: q.Attention, search: strings.ToLower(q.Search)}
	if q.Attention {
		f.statuses = []int{StatusRetryableFailure}
	}
	f.useIndex = len(f.statuses) > 0
	for _, s := range f.statuses {
		if !inStatusIndex(s) {
			f.useIndex = false
		}
		if s < minStatus || s > maxStatus {
			return f, fmt.Errorf("state: list items: status %d out of range", s)
		}
		f.want[s] = true
	}
	return f, nil
}

func (f *listFilter) match(it *Item) bool {
	if len(f.want) > 0 && !f.want[it.Status] || f.attention && !it.Attention {
		return false
	}
	if f.search == "" || containsFold(it.ID, f.search) || containsFold(it.EntityKey, f.search) {
		return true
	}
	for _, v := range it.Identity {
		if containsFold(v, f.search) {
			return true
		}
	}
	return false
}

// scanItems visits the items of a feed in entity-key order, starting after
// the items-bucket key 'after' (nil: from the first), until visit says stop.
func scanItems(fb *feedBuckets, feed string, after []byte, visit func(key []byte, it Item) (bool, error)) error {
	c := fb.items.Cursor()
	k, v := c.First()
	if after != nil {
		k, v = c.Seek(after)
		if k != nil && bytes.Equal(k, after) {
			k, v = c.Next()
		}
	}
	for ; k != nil; k, v = c.Next() {
		ek, idk, err := splitItemKey(k)
		if err != nil {
			return err
		}
		id, err := decodeID(idk)
		if err != nil {
			return err
		}
		it, err := decodeItem(feed, id, string(ek), v)
		if err != nil {
			return err
		}
		if more, err := visit(k, it); err != nil || !more {
			return err
		}
	}
	return nil
}

// mergeStatus visits items of the given statuses in id-key order, merging
// the per-status ranges of the status index, starting after id key 'after'.
func (t *Tx) mergeStatus(fb *feedBuckets, statuses []int, after []byte, visit func(idk []byte, it Item) (bool, error)) error {
	type rng struct {
		prefix []byte
		c      interface {
			Seek([]byte) ([]byte, []byte)
			Next() ([]byte, []byte)
		}
		cur []byte // current id key, nil when exhausted
	}
	seen := map[int]bool{}
	var rs []*rng
	for _, s := range statuses {
		if seen[s] {
			continue
		}
		seen[s] = true
		r := &rng{prefix: statusPrefix(nil, s), c: fb.status.Cursor()}
		k, _ := r.c.Seek(append(append([]byte(nil), r.prefix...), after...))
		if k != nil && after != nil && bytes.HasPrefix(k, r.prefix) && bytes.Equal(k[len(r.prefix):], after) {
			k, _ = r.c.Next()
		}
		if k != nil && bytes.HasPrefix(k, r.prefix) {
			r.cur = k[len(r.prefix):]
		}
		rs = append(rs, r)
	}
	for {
		var best *rng
		for _, r := range rs {
			if r.cur != nil && (best == nil || bytes.Compare(r.cur, best.cur) < 0) {
				best = r
			}
		}
		if best == nil {
			return nil
		}
		it, ok, err := t.getByIDKey(fb, best.cur, "")
		if err != nil {
			return err
		}
		if !ok {
			return t.missing(fb, "status index", best.cur)
		}
		more, err := visit(best.cur, it)
		if err != nil || !more {
			return err
		}
		k, _ := best.c.Next()
		if k != nil && bytes.HasPrefix(k, best.prefix) {
			best.cur = k[len(best.prefix):]
		} else {
			best.cur = nil
		}
	}
}

func containsFold(s, lowerSub string) bool {
	if len(lowerSub) > len(s) {
		return false
	}
	return strings.Contains(strings.ToLower(s), lowerSub)
}

// Store-level read conveniences (one read transaction each).

// Item returns one item's state.
func (s *Store) Item(ctx context.Context, feed, id string) (it Item, ok bool, err error) {
	err = s.View(ctx, func(tx *Tx) error {
		it, ok, err = tx.Item(feed, id)
		return err
	})
	return it, ok, err
}

// Items returns the stored states of the given feed ids (see Tx.Items).
func (s *Store) Items(ctx context.Context, feed string, ids []string) (m map[string]Item, err error) {
	err = s.View(ctx, func(tx *Tx) error {
		m, err = tx.Items(feed, ids)
		return err
	})
	return m, err
}

// ItemsByEntity returns the items built from each entity key (see Tx.ItemsByEntity).
func (s *Store) ItemsByEntity(ctx context.Context, feed string, entityKeys []string) (m map[string][]Item, err error) {
	err = s.View(ctx, func(tx *Tx) error {
		m, err = tx.ItemsByEntity(feed, entityKeys)
		return err
	})
	return m, err
}

// Counts returns the feed's counters (zero for an unknown feed).
func (s *Store) Counts(ctx context.Context, feed string) (c Counts, err error) {
	err = s.View(ctx, func(tx *Tx) error {
		c, err = tx.Counts(feed)
		return err
	})
	return c, err
}

// DueFailed returns retryable failures due at now (see Tx.DueFailed).
func (s *Store) DueFailed(ctx context.Context, feed string, now time.Time, limit int) (items []Item, err error) {
	err = s.View(ctx, func(tx *Tx) error {
		items, err = tx.DueFailed(feed, now, limit)
		return err
	})
	return items, err
}

// ListItems returns one page of items (see Tx.ListItems).
func (s *Store) ListItems(ctx context.Context, q ListQuery) (items []Item, next string, err error) {
	err = s.View(ctx, func(tx *Tx) error {
		items, next, err = tx.ListItems(q)
		return err
	})
	return items, next, err
}

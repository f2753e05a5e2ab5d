package state

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
)

// The id index of a feed (feed id -> entity key) is kept in two places, an
// entry always in exactly one of them:
//
//   - byid: the sorted index, idkey -> entity key;
//   - byidnew ("staging"): entries added since the last merge, in one
//     sub-bucket per id key partition (partOf: the id key's tag byte and
//     the top four bits of the next, so partitions are consecutive id key
//     ranges), appended under the staging bucket's sequence:
//     byidnew/part(1)/seq(8) -> uvarint(len(idkey)) idkey entity key.
//
// New ids are random (sha1), so inserting them into byid one transaction at
// a time dirties about one leaf page per new item (bbolt copies every page
// a transaction touches): on a first start the index cost more than half of
// the state's CPU and most of its block writes. Appending to staging
// dirties a few pages per partition per transaction. Whenever a commit
// leaves the staged entries of all feeds at Store.pendBound or more,
// Store.Update merges steps into byid (mergeStep): each the largest whole
// partitions of one feed, in idkey order, at most Store.mergeChunk entries
// unless one partition holds more, in a transaction of its own. After a
// commit of a few new ids (a streamed batch) it merges only until the
// staged entries are below the bound, usually one step, so that a batch
// never waits for a whole merge; after a commit that staged mergeChunk
// entries or more (a full sync's chunk) it merges them all. A run of N
// sorted keys over L leaves dirties about L·(1−e^(−N/L)) pages, far fewer
// than N when N is large, and partitions by key range keep that ratio
// while bounding what one transaction holds. A step drops its partitions'
// sub-buckets instead of deleting their entries one by one.
//
// Write transactions find staged entries in memory: Store.pend holds every
// committed staged entry (loaded from the staging buckets before the first
// write transaction and after Apply), and a transaction's own changes live
// in its overlay (Tx.pend) until the commit, when Store.Update applies them
// — a rolled-back transaction leaves Store.pend as it was. Updates are
// serialised by Store.pendMu, so Store.pend is exactly the staged entries
// of the last commit. Read transactions never use Store.pend (a reader's
// snapshot may be older than it): one that misses byid loads its own
// snapshot's staging bucket, once per feed.
var bStaged = []byte("byidnew")

// Merge bounds (fields of Store so that tests can shrink them).
const (
	defaultPendBound  = 256 << 10 // staged entries (all feeds) that start a merge step: ~25 MiB of map
	defaultMergeChunk = 8 << 10   // entries per merge step (one transaction), unless one partition holds more
)

// pendEntry is one staged id index entry.
type pendEntry struct {
	seq uint64 // its key in the staging bucket
	ek  string // entity key
}

// pendView is a transaction's view of one feed's staged entries: base
// (the committed ones, read-only) with the transaction's own changes on
// top.
type pendView struct {
	base  map[string]pendEntry
	set   map[string]pendEntry // added or changed by this transaction
	del   map[string]struct{}  // removed by this transaction
	reset bool                 // base no longer applies (feed dropped or staging merged)
}

func (p *pendView) get(k []byte) (pendEntry, bool) {
	if e, ok := p.set[string(k)]; ok {
		return e, true
	}
	if p.reset {
		return pendEntry{}, false
	}
	if _, ok := p.del[string(k)]; ok {
		return pendEntry{}, false
	}
	e, ok := p.base[string(k)]
	return e, ok
}

func (p *pendView) put(k []byte, e pendEntry) {
	if p.set == nil {
		p.set = map[string]pendEntry{}
	}
	p.set[string(k)] = e
	delete(p.del, string(k))
}

func (p *pendView) remove(k []byte) {
	delete(p.set, string(k))
	if p.del == nil {
		p.del = map[string]struct{}{}
	}
	p.del[string(k)] = struct{}{}
}

// clear forgets every staged entry of the feed (its staging bucket was
// dropped).
func (p *pendView) clear() {
	p.reset, p.set, p.del = true, nil, nil
}

// pendIndex is Store.pend: the committed staged entries per feed.
type pendIndex struct {
	feeds map[string]map[string]pendEntry
	n     int  // entries in all feeds
	stale bool // the file changed without it (Open, Apply): reload before use
}

// pendView returns the transaction's view of feed's staged entries. In a
// write transaction it is based on Store.pend; in a read transaction the
// snapshot's staging bucket is loaded when fb has one.
func (t *Tx) pendView(feed string, fb *feedBuckets) (*pendView, error) {
	if p, ok := t.pend[feed]; ok {
		return p, nil
	}
	p := &pendView{}
	if t.tx.Writable() {
		p.base = t.s.pend.feeds[feed]
	} else if fb != nil && fb.staged != nil {
		m, err := loadStaged(fb.staged)
		if err != nil {
			return nil, fmt.Errorf("state: feed %q: %w", feed, err)
		}
		p.base = m
	}
	if t.pend == nil {
		t.pend = map[string]*pendView{}
	}
	t.pend[feed] = p
	return p, nil
}

// indexRef is where the id index holds an id key.
type indexRef struct {
	ek      []byte // nil: not indexed
	pending bool   // in staging (seq), else in byid
	seq     uint64
}

// indexGet finds idk in the id index of fb.
func (t *Tx) indexGet(fb *feedBuckets, idk []byte) (indexRef, error) {
	if t.tx.Writable() {
		// Staged entries are in memory; consult them first.
		p, err := t.pendView(fb.name, fb)
		if err != nil {
			return indexRef{}, err
		}
		if e, ok := p.get(idk); ok {
			return indexRef{ek: t.keepString(e.ek), pending: true, seq: e.seq}, nil
		}
		return indexRef{ek: fb.byID.Get(idk)}, nil
	}
	if ek := fb.byID.Get(idk); ek != nil {
		return indexRef{ek: ek}, nil
	}
	if fb.staged == nil {
		return indexRef{}, nil
	}
	p, err := t.pendView(fb.name, fb)
	if err != nil {
		return indexRef{}, err
	}
	if e, ok := p.get(idk); ok {
		return indexRef{ek: []byte(e.ek), pending: true, seq: e.seq}, nil
	}
	return indexRef{}, nil
}

func stagedKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

// partOf is the staging partition of an id key: its tag byte (0 or 1, see
// encodeID) and the top four bits of its first id byte. Partitions are
// consecutive ranges of id keys, in the order of their names.
func partOf(idk []byte) byte {
	p := idk[0] << 4
	if len(idk) > 1 {
		p |= idk[1] >> 4
	}
	return p
}

// stagedPart returns the sub-bucket of fb's staging bucket for partition
// p, creating it (and the staging bucket) when create is true; nil when it
// does not exist and create is false.
func (t *Tx) stagedPart(fb *feedBuckets, p byte, create bool) (*bucket, error) {
	if b := fb.parts[p]; b != nil {
		return b, nil
	}
	if fb.staged == nil {
		if !create {
			return nil, nil
		}
		b, err := fb.root.createSub(bStaged)
		if err != nil {
			return nil, fmt.Errorf("state: feed %q: create the id index's staging bucket: %w", fb.name, err)
		}
		fb.staged = b
	}
	name := []byte{p}
	b := fb.staged.sub(name)
	if b == nil {
		if !create {
			return nil, nil
		}
		var err error
		if b, err = fb.staged.createSub(name); err != nil {
			return nil, fmt.Errorf("state: feed %q: create an id index staging partition: %w", fb.name, err)
		}
	}
	b.FillPercent = 1 // appended in sequence order
	if fb.parts == nil {
		fb.parts = map[byte]*bucket{}
	}
	fb.parts[p] = b
	return b, nil
}

func stagedValue(idk []byte, ek string) []byte {
	v := binary.AppendUvarint(make([]byte, 0, 1+len(idk)+len(ek)), uint64(len(idk)))
	return append(append(v, idk...), ek...)
}

func decodeStaged(k, v []byte) (seq uint64, idk, ek []byte, err error) {
	n, w := binary.Uvarint(v)
	if len(k) != 8 || w <= 0 || n == 0 || uint64(len(v)-w) < n {
		return 0, nil, nil, fmt.Errorf("staged id index entry %x: %w", k, errCorrupt)
	}
	return binary.BigEndian.Uint64(k), v[w : w+int(n)], v[w+int(n):], nil
}

// forEachStaged calls fn for every entry of a staging bucket, partition
// by partition; an entry that does not decode, or that is not in its id
// key's partition, is an error.
func forEachStaged(staged *bucket, fn func(seq uint64, idk, ek []byte) error) error {
	return staged.ForEachBucket(func(name []byte) error {
		part := staged.Bucket.Bucket(name)
		if len(name) != 1 || part == nil {
			return fmt.Errorf("staging partition %x: %w", name, errCorrupt)
		}
		return part.ForEach(func(k, v []byte) error {
			seq, idk, ek, err := decodeStaged(k, v)
			if err != nil {
				return err
			}
			if partOf(idk) != name[0] {
				return fmt.Errorf("staged id index entry %x in partition %x: %w", k, name, errCorrupt)
			}
			return fn(seq, idk, ek)
		})
	})
}

// loadStaged reads a staging bucket into a map.
func loadStaged(staged *bucket) (map[string]pendEntry, error) {
	m := map[string]pendEntry{}
	err := forEachStaged(staged, func(seq uint64, idk, ek []byte) error {
		m[string(idk)] = pendEntry{seq: seq, ek: string(ek)}
		return nil
	})
	return m, err
}

// stage adds or changes the staged entry of idk to ek: under its sequence
// when it is staged already (ref), else under the staging bucket's next
// sequence.
func (t *Tx) stage(fb *feedBuckets, idk []byte, ek string, ref indexRef) error {
	part, err := t.stagedPart(fb, partOf(idk), true)
	if err != nil {
		return err
	}
	seq := ref.seq
	if !ref.pending {
		if !fb.seqRead {
			fb.seq, fb.seqRead = fb.staged.Sequence(), true
		}
		fb.seq++
		seq = fb.seq
	}
	if err := part.Put(t.keep(stagedKey(seq)), t.keep(stagedValue(idk, ek))); err != nil {
		return err
	}
	p, err := t.pendView(fb.name, fb)
	if err != nil {
		return err
	}
	p.put(idk, pendEntry{seq: seq, ek: ek})
	return nil
}

// unindex removes idk (found at ref) from the id index.
func (t *Tx) unindex(fb *feedBuckets, idk []byte, ref indexRef) error {
	if !ref.pending {
		return fb.byID.Delete(idk)
	}
	part, err := t.stagedPart(fb, partOf(idk), false)
	if err != nil {
		return err
	}
	if part == nil {
		return t.missing(fb, "the id index's staging partition", idk)
	}
	if err := part.Delete(stagedKey(ref.seq)); err != nil {
		return err
	}
	p, err := t.pendView(fb.name, fb)
	if err != nil {
		return err
	}
	p.remove(idk)
	return nil
}

// finishStaged stores the staging buckets' sequences this transaction
// advanced (once per transaction, not once per entry).
func (t *Tx) finishStaged() error {
	for _, fb := range t.feeds {
		if fb.seqRead && fb.staged != nil && fb.seq != fb.staged.Sequence() {
			if err := fb.staged.SetSequence(fb.seq); err != nil {
				return fmt.Errorf("state: feed %q: id index staging sequence: %w", fb.name, err)
			}
		}
	}
	return nil
}

// commitPend applies a committed write transaction's staged changes to
// Store.pend. Called with Store.pendMu held.
func (s *Store) commitPend(t *Tx) {
	for feed, p := range t.pend {
		m := s.pend.feeds[feed]
		if p.reset {
			s.pend.n -= len(m)
			m = nil
		}
		if len(p.del) > 0 && m != nil {
			for k := range p.del {
				if _, ok := m[k]; ok {
					delete(m, k)
					s.pend.n--
				}
			}
		}
		if len(p.set) > 0 {
			if m == nil {
				m = make(map[string]pendEntry, len(p.set))
			}
			for k, e := range p.set {
				if _, ok := m[k]; !ok {
					s.pend.n++
				}
				m[k] = e
			}
		}
		if len(m) == 0 {
			delete(s.pend.feeds, feed)
		} else {
			s.pend.feeds[feed] = m
		}
	}
}

// reloadPend reads every feed's staging bucket into Store.pend. Called in
// a write transaction, with Store.pendMu held.
func (s *Store) reloadPend(t *Tx) error {
	s.pend = pendIndex{feeds: map[string]map[string]pendEntry{}}
	feeds, err := t.Feeds()
	if err != nil {
		return err
	}
	for _, feed := range feeds {
		fb, err := t.feed(feed, false)
		if err != nil {
			return err
		}
		if fb == nil || fb.staged == nil {
			continue
		}
		m, err := loadStaged(fb.staged)
		if err != nil {
			return fmt.Errorf("state: feed %q: %w", feed, err)
		}
		if len(m) > 0 {
			s.pend.feeds[feed] = m
			s.pend.n += len(m)
		}
	}
	return nil
}

// mergeStep moves some staged entries into byid in one transaction: the
// largest staging partitions (consecutive id key ranges) of the feed with
// the most staged entries, at most mergeChunk entries unless the largest
// partition alone holds more. It puts their entries into byid in id key
// order and drops their sub-buckets (the feed's whole staging bucket when
// they are all of it). Merging the largest partitions keeps a merge's
// entries as dense in byid as merging everything would (a partition's
// share of the staged entries is what decides how many of them share a
// leaf page), while one step costs one partition's transaction instead of
// a pause of every partition's: merging all 262,144 entries at once held
// the writer for 2.4 s on the large catalog, and every batch of the stream
// with it. The transaction keeps every entry in exactly one of the two
// places, so a crash loses nothing. Called with Store.pendMu held.
func (s *Store) mergeStep(ctx context.Context) error {
	feed, most := "", 0
	for f, m := range s.pend.feeds {
		if len(m) > most || len(m) == most && f < feed {
			feed, most = f, len(m)
		}
	}
	if most == 0 {
		return nil
	}
	m := s.pend.feeds[feed]
	var sizes [256]int
	for k := range m {
		sizes[partOf([]byte(k))]++
	}
	parts := make([]int, 0, 256)
	for p, n := range sizes {
		if n > 0 {
			parts = append(parts, p)
		}
	}
	slices.SortStableFunc(parts, func(a, b int) int { return sizes[b] - sizes[a] })
	take, n := [256]bool{}, 0
	for i, p := range parts {
		if i > 0 && n+sizes[p] > s.mergeChunk {
			break
		}
		take[p], n = true, n+sizes[p]
	}
	keys := make([]string, 0, n)
	for k := range m {
		if take[partOf([]byte(k))] {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	all := len(keys) == len(m)
	err := s.update(ctx, func(tx *Tx) error {
		fb, err := tx.feed(feed, false)
		if err != nil {
			return err
		}
		if fb == nil || fb.staged == nil {
			return fmt.Errorf("state: feed %q has staged id index entries in memory but no staging bucket: %w", feed, errCorrupt)
		}
		for _, k := range keys {
			if err := fb.byID.Put([]byte(k), tx.keepString(m[k].ek)); err != nil {
				return err
			}
		}
		if all {
			return fb.root.dropSub(bStaged)
		}
		for p, ok := range take {
			if ok {
				if err := fb.staged.dropSub([]byte{byte(p)}); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		// Store.pend still holds the entries (this transaction uses no
		// pendView): read them again from the file before the next write.
		s.pend.stale = true
		return fmt.Errorf("state: merge the staged id index entries of feed %q: %w", feed, err)
	}
	// Nothing else writes while pendMu is held: Store.pend is brought up
	// to date with the committed step.
	if all {
		delete(s.pend.feeds, feed)
	} else {
		for _, k := range keys {
			delete(m, k)
		}
	}
	s.pend.n -= len(keys)
	return nil
}

// checkStaged is Check's part for the staging bucket: every entry decodes
// and is in its partition, and none repeats an id key or is in byid too.
func checkStaged(fb *feedBuckets, bad func(string, ...any)) (n int) {
	if fb.staged == nil {
		return 0
	}
	seen := map[string]bool{}
	err := forEachStaged(fb.staged, func(_ uint64, idk, _ []byte) error {
		n++
		id, _ := decodeID(idk)
		if seen[string(idk)] {
			bad("id %s is staged twice in the id index", id)
		}
		seen[string(idk)] = true
		if fb.byID.Get(idk) != nil {
			bad("id %s is both in the id index and staged", id)
		}
		return nil
	})
	if err != nil {
		bad("%v", err)
	}
	return n
}

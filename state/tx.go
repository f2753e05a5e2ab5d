package state

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/feedcdc/feedcdc/change"
)

// Per-feed sub-buckets of feeds/<feed>.
var (
	bItems    = []byte("items")    // uvarint(len(entity)) entity idkey -> item
	bByID     = []byte("byid")     // idkey -> entity key
	bFailed   = []byte("failed")   // nextAttempt(8) idkey -> "" (status 2, not attention)
	bStatus   = []byte("status")   // status(2) idkey -> "" (status != 200)
	bOutbox   = []byte("outbox")   // seq(8) -> outbox entry
	bOutboxID = []byte("outboxid") // id -> seq(8)
	bFeedMeta = []byte("fmeta")    // "counts", "progress"
)

var (
	kCounts   = []byte("counts")
	kProgress = []byte("progress")
)

// ErrReadOnly is returned by Tx write methods inside View.
var ErrReadOnly = errors.New("state: write in a read-only transaction (use Store.Update)")

// Tx is one state transaction, passed to the functions given to Update and
// View. It must not be used after that function returns, nor from other
// goroutines.
type Tx struct {
	ctx   context.Context
	s     *Store
	tx    *bolt.Tx
	feeds map[string]*feedBuckets
	buf   []byte
	kbuf  []byte
	kbuf2 []byte
	// inflight counts the write-ahead records this transaction added
	// (negative: removed); Store.Update adds it to Store.inflight on commit.
	inflight int64

	recording bool // the store has a commit hook: writes are recorded in ops
	ops       []Op

	// pend is this transaction's view of the staged id index entries per
	// feed (see idindex.go).
	pend map[string]*pendView
}

type feedBuckets struct {
	name                                               string
	root, items, byID, failed, status, outbox, outbxID *bucket
	meta                                               *bucket
	staged                                             *bucket          // nil until the first staged id index entry
	parts                                              map[byte]*bucket // staging partitions used by this transaction
	delta                                              Counts
	dirty                                              bool
	seq                                                uint64 // staging sequence as advanced by this transaction
	seqRead                                            bool   // seq was read from staged
}

func newTx(ctx context.Context, s *Store, btx *bolt.Tx) *Tx {
	return &Tx{ctx: ctx, s: s, tx: btx, feeds: map[string]*feedBuckets{}, kbuf: make([]byte, 0, 256), kbuf2: make([]byte, 0, 256)}
}

func validFeed(feed string) error {
	if feed == "" {
		return errors.New("state: empty feed name")
	}
	if len(feed) > 200 {
		return fmt.Errorf("state: feed name of %d bytes is too long (max 200)", len(feed))
	}
	return nil
}

// feed returns the buckets of feed, creating them when create is true. It
// returns nil (and no error) for a feed that does not exist yet when create
// is false.
func (t *Tx) feed(feed string, create bool) (*feedBuckets, error) {
	if fb, ok := t.feeds[feed]; ok {
		return fb, nil
	}
	if err := validFeed(feed); err != nil {
		return nil, err
	}
	feeds := t.root(bFeeds)
	root := feeds.sub([]byte(feed))
	if root == nil {
		if !create {
			return nil, nil
		}
		if !t.tx.Writable() {
			return nil, ErrReadOnly
		}
		var err error
		if root, err = feeds.createSub([]byte(feed)); err != nil {
			return nil, fmt.Errorf("state: create feed %q: %w", feed, err)
		}
		for _, n := range [][]byte{bItems, bByID, bFailed, bStatus, bOutbox, bOutboxID, bFeedMeta} {
			if _, err := root.createSub(n); err != nil {
				return nil, fmt.Errorf("state: create feed %q bucket %s: %w", feed, n, err)
			}
		}
	}
	fb := &feedBuckets{
		name:    feed,
		root:    root,
		items:   root.sub(bItems),
		byID:    root.sub(bByID),
		failed:  root.sub(bFailed),
		status:  root.sub(bStatus),
		outbox:  root.sub(bOutbox),
		outbxID: root.sub(bOutboxID),
		meta:    root.sub(bFeedMeta),
		staged:  root.sub(bStaged),
	}
	if fb.items == nil || fb.byID == nil || fb.failed == nil || fb.status == nil || fb.outbox == nil || fb.outbxID == nil || fb.meta == nil {
		return nil, fmt.Errorf("state: feed %q is missing sub-buckets: %w", feed, errCorrupt)
	}
	// Items are written mostly in entity order by full syncs, the outbox
	// and the failed index at the end of their key space: pack their pages
	// fully instead of leaving split pages half empty.
	fb.items.FillPercent = 0.9
	fb.outbox.FillPercent = 0.95
	fb.failed.FillPercent = 0.9
	t.feeds[feed] = fb
	return fb, nil
}

// finish writes the counter deltas accumulated during the transaction and
// the staging sequences it advanced.
func (t *Tx) finish() error {
	if err := t.finishStaged(); err != nil {
		return err
	}
	for _, fb := range t.feeds {
		if !fb.dirty {
			continue
		}
		c, err := readCounts(fb.meta.Bucket)
		if err != nil {
			return fmt.Errorf("state: feed %q: %w", fb.name, err)
		}
		c.add(fb.delta, 1)
		if err := fb.meta.Put(kCounts, encodeCounts(c)); err != nil {
			return fmt.Errorf("state: feed %q: write counts: %w", fb.name, err)
		}
		fb.delta, fb.dirty = Counts{}, false
	}
	return nil
}

func (t *Tx) writable() error {
	if !t.tx.Writable() {
		return ErrReadOnly
	}
	return t.ctx.Err()
}

// SetCheckpoint records pos as the position streaming resumes from, and at
// as when it was reached. Call it in the same Update that writes the item
// states (or outbox entries) of every transaction up to pos: that is what
// makes the checkpoint never ahead of the state it covers.
func (t *Tx) SetCheckpoint(pos change.Position, at time.Time) error {
	if err := t.writable(); err != nil {
		return err
	}
	if pos.IsZero() {
		return errors.New("state: refusing to store an empty checkpoint position")
	}
	b, err := json.Marshal(checkpointRecord{Position: pos, At: at.UTC()})
	if err != nil {
		return err
	}
	if err := t.root(bCheckpoint).Put(kPos, b); err != nil {
		return fmt.Errorf("state: write checkpoint: %w", err)
	}
	return nil
}

// Checkpoint returns the checkpoint as of this transaction.
func (t *Tx) Checkpoint() (pos change.Position, at time.Time, ok bool, err error) {
	v := t.tx.Bucket(bCheckpoint).Get(kPos)
	if v == nil {
		return pos, at, false, nil
	}
	var r checkpointRecord
	if err := json.Unmarshal(v, &r); err != nil {
		return pos, at, false, fmt.Errorf("state: read checkpoint: %w", err)
	}
	return r.Position, r.At, true, nil
}

// Feeds lists the feeds that have state, in name order.
func (t *Tx) Feeds() ([]string, error) {
	var out []string
	err := t.tx.Bucket(bFeeds).ForEachBucket(func(k []byte) error {
		out = append(out, string(k))
		return nil
	})
	return out, err
}

// Feeds lists the feeds that have state, in name order.
func (s *Store) Feeds(ctx context.Context) (feeds []string, err error) {
	err = s.View(ctx, func(tx *Tx) error {
		feeds, err = tx.Feeds()
		return err
	})
	return feeds, err
}

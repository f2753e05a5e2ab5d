package state

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	berrors "go.etcd.io/bbolt/errors"
)

// DefaultRetention is how long deleted items that were sent are kept.
const DefaultRetention = 7 * 24 * time.Hour

const (
	cleanupScanPerTx   = 50_000
	cleanupDeletePerTx = 10_000
)

// Cleanup removes the state of items that are deleted, were sent (status
// 200), and whose last change (the later of SentAt and ModifiedAt) is older
// than now-retention (DefaultRetention when retention <= 0). It works in
// bounded transactions so that it never blocks flushes for long, and
// re-checks each item inside the transaction that removes it.
func (s *Store) Cleanup(ctx context.Context, now time.Time, retention time.Duration) (removed int, err error) {
	if retention <= 0 {
		retention = DefaultRetention
	}
	cutoff := timeToMicro(now.Add(-retention))
	feeds, err := s.Feeds(ctx)
	if err != nil {
		return 0, err
	}
	expired := func(h itemHead) bool {
		return h.Deleted && h.Status == StatusSent && max(h.SentAt, h.ModifiedAt) < cutoff
	}
	for _, feed := range feeds {
		var from []byte
		for done := false; !done; {
			// Find candidates in a read transaction, so that a scan that
			// finds nothing never takes the writer lock.
			var victims [][]byte
			err := s.View(ctx, func(tx *Tx) error {
				fb, err := tx.feed(feed, false)
				if err != nil || fb == nil {
					done = true
					return err
				}
				c := fb.items.Cursor()
				k, v := c.First()
				if from != nil {
					k, v = c.Seek(from)
				}
				for scanned := 0; k != nil && scanned < s.cleanupScan && len(victims) < s.cleanupBatch; k, v = c.Next() {
					scanned++
					h, _, err := decodeHead(v)
					if err != nil {
						return fmt.Errorf("state: cleanup feed %q: %w", feed, err)
					}
					if expired(h) {
						_, idk, err := splitItemKey(k)
						if err != nil {
							return err
						}
						victims = append(victims, append([]byte(nil), idk...))
					}
				}
				if k == nil {
					done = true
				} else {
					from = append(from[:0], k...)
				}
				return nil
			})
			if err != nil {
				return removed, err
			}
			if len(victims) == 0 {
				continue
			}
			// Remove them, re-checking each: it may have changed since.
			n := 0
			err = s.Update(ctx, func(tx *Tx) error {
				n = 0
				fb, err := tx.feed(feed, false)
				if err != nil || fb == nil {
					return err
				}
				for _, idk := range victims {
					ref, _, v, err := tx.lookup(fb, idk)
					if err != nil {
						return err
					}
					if ref.ek == nil || v == nil {
						continue
					}
					h, _, err := decodeHead(v)
					if err != nil {
						return fmt.Errorf("state: cleanup feed %q: %w", feed, err)
					}
					if !expired(h) {
						continue
					}
					if err := tx.deleteItem(fb, idk); err != nil {
						return err
					}
					n++
				}
				return nil
			})
			if err != nil {
				return removed, err
			}
			removed += n
		}
	}
	return removed, nil
}

// ForgetFeed removes all state of feed — items, indexes, outbox, counters
// and resync progress — so that every item is sent again (--cleanup-feed).
// The feed's operation lock is kept. Unknown feeds are not an error.
func (s *Store) ForgetFeed(ctx context.Context, feed string) error {
	if err := validFeed(feed); err != nil {
		return err
	}
	return s.Update(ctx, func(tx *Tx) error {
		err := tx.root(bFeeds).dropSub([]byte(feed))
		if err != nil && !errors.Is(err, berrors.ErrBucketNotFound) {
			return fmt.Errorf("state: forget feed %q: %w", feed, err)
		}
		delete(tx.feeds, feed)
		p, err := tx.pendView(feed, nil)
		if err != nil {
			return err
		}
		p.clear() // its staged id index entries went with it
		return nil
	})
}

// Check verifies every feed's indexes and counters against its items and
// the outbox against its id map, and returns an error describing the first
// inconsistencies found. It reads the whole file in one read transaction.
func (s *Store) Check(ctx context.Context) error {
	return s.View(ctx, func(tx *Tx) error {
		feeds, err := tx.Feeds()
		if err != nil {
			return err
		}
		var problems []error
		for _, feed := range feeds {
			if err := tx.checkFeed(feed); err != nil {
				problems = append(problems, err)
			}
		}
		return errors.Join(problems...)
	})
}

func (t *Tx) checkFeed(feed string) error {
	fb, err := t.feed(feed, false)
	if err != nil || fb == nil {
		return err
	}
	var problems []error
	bad := func(format string, args ...any) {
		if len(problems) < 10 {
			problems = append(problems, fmt.Errorf("feed %q: "+format, append([]any{feed}, args...)...))
		}
	}
	var want Counts
	var nFailed, nStatus int
	// The id index is byid and the staged entries (idindex.go), read
	// from this snapshot (not Store.pend: a check may run in a write
	// transaction of its own).
	nStaged := checkStaged(fb, bad)
	var staged map[string]pendEntry
	if fb.staged != nil {
		if staged, err = loadStaged(fb.staged); err != nil {
			staged = nil
		}
	}
	var kb []byte
	c := fb.items.Cursor()
	n := 0
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if n++; n%8192 == 0 {
			if err := t.ctx.Err(); err != nil {
				return err
			}
		}
		ek, idk, err := splitItemKey(k)
		if err != nil {
			bad("%v", err)
			continue
		}
		id, err := decodeID(idk)
		if err != nil {
			bad("item key %x: %v", k, err)
			continue
		}
		if _, err := decodeItem(feed, id, string(ek), v); err != nil {
			bad("item %s: %v", id, err)
			continue
		}
		h, _, _ := decodeHead(v)
		want.add(contribution(h.Status, h.Deleted, h.Attention), 1)
		got := fb.byID.Get(idk)
		if e, ok := staged[string(idk)]; ok && got == nil {
			got = []byte(e.ek)
		}
		if got == nil || !bytes.Equal(got, ek) {
			bad("item %s (entity %q) has id index entry %q", id, ek, got)
		}
		if inFailedIndex(h.Status, h.Attention) {
			nFailed++
			if fb.failed.Get(failedKey(kb[:0], h.NextAttempt, idk)) == nil {
				bad("item %s missing from the failed index", id)
			}
		}
		if inStatusIndex(h.Status) {
			nStatus++
			if fb.status.Get(statusKey(kb[:0], h.Status, idk)) == nil {
				bad("item %s missing from the status index", id)
			}
		}
	}
	if got := fb.byID.Stats().KeyN + nStaged; got != int(want.Total) {
		bad("id index has %d entries (%d of them staged) for %d items", got, nStaged, want.Total)
	}
	if got := fb.failed.Stats().KeyN; got != nFailed {
		bad("failed index has %d entries for %d failed items", got, nFailed)
	}
	if got := fb.status.Stats().KeyN; got != nStatus {
		bad("status index has %d entries for %d items not sent", got, nStatus)
	}
	oc := fb.outbox.Cursor()
	for k, v := oc.First(); k != nil; k, v = oc.Next() {
		want.Outbox++
		e, err := decodeOutbox(feed, k, v)
		if err != nil {
			bad("%v", err)
			continue
		}
		if e.ID != "" {
			if cur := fb.outbxID.Get(encodeID(kb[:0], e.ID)); cur == nil || !bytes.Equal(cur, k) {
				bad("outbox entry %d (id %s) not in the outbox id map", e.Seq, e.ID)
			}
		}
	}
	err = fb.outbxID.ForEach(func(k, v []byte) error {
		if len(v) != 8 || fb.outbox.Get(v) == nil {
			bad("outbox id map entry %x points to a missing entry", k)
		} else if binary.BigEndian.Uint64(v) == 0 {
			bad("outbox id map entry %x has sequence 0", k)
		}
		return nil
	})
	if err != nil {
		return err
	}
	got, err := readCounts(fb.meta.Bucket)
	if err != nil {
		bad("%v", err)
	} else if got != want {
		bad("counters %+v, items say %+v", got, want)
	}
	return errors.Join(problems...)
}

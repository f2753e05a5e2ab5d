package state

import (
	"bytes"
	"context"
	"fmt"
)

// bDeferred is the root bucket of deferred entity keys: feed "\x00" entity
// key -> deferredMark. The pipeline records there the keys of a transaction too large
// to build in the batch that read them, in the same Update as the batch's
// checkpoint, and builds them later in small steps (DeleteDeferred in the
// Update that stores their items). It is created on first use, so files
// written before it existed open unchanged.
var bDeferred = []byte("deferred")

// deferredMark is the value of a deferred key (a non-empty value, so that
// Get tells a waiting key from a missing one).
var deferredMark = []byte{1}

func deferredKey(buf []byte, feed, key string) []byte {
	buf = append(buf[:0], feed...)
	buf = append(buf, 0)
	return append(buf, key...)
}

// PutDeferred records entity keys of feed as waiting to be built and
// returns how many were not waiting already.
func (t *Tx) PutDeferred(feed string, keys []string) (added int, err error) {
	if err := t.writable(); err != nil {
		return 0, err
	}
	if err := validFeed(feed); err != nil {
		return 0, err
	}
	b, err := t.createRoot(bDeferred)
	if err != nil {
		return 0, fmt.Errorf("state: create the deferred keys bucket: %w", err)
	}
	b.FillPercent = 0.9 // keys of one transaction arrive mostly in order
	for _, k := range keys {
		t.kbuf = deferredKey(t.kbuf, feed, k)
		if b.Get(t.kbuf) != nil {
			continue
		}
		if err := b.Put(t.kbuf, deferredMark); err != nil {
			return added, fmt.Errorf("state: feed %q: defer key %q: %w", feed, k, err)
		}
		added++
	}
	return added, nil
}

// DeleteDeferred removes entity keys of feed from the deferred set (they
// were built) and returns how many were waiting.
func (t *Tx) DeleteDeferred(feed string, keys []string) (removed int, err error) {
	if err := t.writable(); err != nil {
		return 0, err
	}
	if t.tx.Bucket(bDeferred) == nil {
		return 0, nil
	}
	b := t.root(bDeferred)
	for _, k := range keys {
		t.kbuf = deferredKey(t.kbuf, feed, k)
		if b.Get(t.kbuf) == nil {
			continue
		}
		if err := b.Delete(t.kbuf); err != nil {
			return removed, fmt.Errorf("state: feed %q: delete deferred key %q: %w", feed, k, err)
		}
		removed++
	}
	return removed, nil
}

// Deferred returns, for each feed with deferred keys, its first (lowest)
// perFeed keys in key order that sort after after[feed] (all of a feed
// missing from after), and how many keys it returned in all. The cursor
// lets the pipeline read the next step while the keys of the step before
// it, not yet built, are still in the set.
func (t *Tx) Deferred(perFeed int, after map[string]string) (map[string][]string, int, error) {
	out := map[string][]string{}
	b := t.tx.Bucket(bDeferred)
	if b == nil || perFeed <= 0 {
		return out, 0, nil
	}
	n := 0
	c := b.Cursor()
	k, _ := c.First()
	for k != nil {
		i := bytes.IndexByte(k, 0)
		if i <= 0 {
			return nil, n, fmt.Errorf("state: deferred key %q has no feed name: %w", k, errCorrupt)
		}
		feed := string(k[:i])
		if a, ok := after[feed]; ok {
			// The first key after a: seek to it, and step over a itself.
			t.kbuf = deferredKey(t.kbuf, feed, a)
			if k, _ = c.Seek(t.kbuf); k != nil && bytes.Equal(k, t.kbuf) {
				k, _ = c.Next()
			}
		}
		var keys []string
		for ; k != nil && len(keys) < perFeed && len(k) > i && k[i] == 0 && string(k[:i]) == feed; k, _ = c.Next() {
			keys = append(keys, string(k[i+1:]))
		}
		if len(keys) > 0 {
			out[feed] = keys
		}
		n += len(keys)
		// The next feed's keys start after feed "\x01".
		k, _ = c.Seek(append([]byte(feed), 1))
	}
	return out, n, nil
}

// DeferredAmong returns which of keys of feed wait in the deferred set.
func (t *Tx) DeferredAmong(feed string, keys []string) map[string]bool {
	out := map[string]bool{}
	b := t.tx.Bucket(bDeferred)
	if b == nil {
		return out
	}
	var buf []byte
	for _, k := range keys {
		buf = deferredKey(buf, feed, k)
		if b.Get(buf) != nil {
			out[k] = true
		}
	}
	return out
}

// DeferredCount counts the deferred keys (it reads them all: call it once,
// at start, and keep the count up to date).
func (t *Tx) DeferredCount() (int, error) {
	b := t.tx.Bucket(bDeferred)
	if b == nil {
		return 0, nil
	}
	return b.Stats().KeyN, nil
}

// DeferredCount counts the deferred keys of every feed.
func (s *Store) DeferredCount(ctx context.Context) (n int, err error) {
	err = s.View(ctx, func(tx *Tx) error {
		n, err = tx.DeferredCount()
		return err
	})
	return n, err
}

// DeferredAmong returns which of keys of feed wait in the deferred set
// (see Tx.DeferredAmong).
func (s *Store) DeferredAmong(ctx context.Context, feed string, keys []string) (deferred map[string]bool, err error) {
	err = s.View(ctx, func(tx *Tx) error {
		deferred = tx.DeferredAmong(feed, keys)
		return nil
	})
	return deferred, err
}

// Deferred returns up to perFeed deferred keys of each feed, after the
// feed's key in after (see Tx.Deferred).
func (s *Store) Deferred(ctx context.Context, perFeed int, after map[string]string) (keys map[string][]string, n int, err error) {
	err = s.View(ctx, func(tx *Tx) error {
		keys, n, err = tx.Deferred(perFeed, after)
		return err
	})
	return keys, n, err
}

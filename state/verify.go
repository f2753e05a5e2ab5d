package state

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// kVerify is the key of a feed's last verify report in its meta bucket
// (next to "counts" and "progress"): one JSON value, replaced by each run.
var kVerify = []byte("verify")

// EntityLess reports whether entity key a sorts before b in the store's
// entity order: by length, then bytewise, which is numeric order for
// decimal keys (the order of a feed's Scan and of the items bucket).
func EntityLess(a, b string) bool {
	if len(a) != len(b) {
		return len(a) < len(b)
	}
	return a < b
}

// EntitiesBetween returns the entity keys of feed that have at least one
// item, in entity order (EntityLess), after after (exclusive; "" = from the
// first) up to upTo (inclusive; "" = to the last), at most limit of them;
// more is true when the range holds further keys (call again with after
// set to the last key returned).
func (t *Tx) EntitiesBetween(feed, after, upTo string, limit int) (keys []string, more bool, err error) {
	if limit <= 0 {
		limit = maxListLimit
	}
	fb, err := t.feed(feed, false)
	if err != nil || fb == nil {
		return nil, false, err
	}
	c := fb.items.Cursor()
	k, _ := c.First()
	if after != "" {
		k, _ = c.Seek(entityPrefix(after))
	}
	var last []byte
	n := 0
	for ; k != nil; k, _ = c.Next() {
		if n++; n%4096 == 0 {
			if err := t.ctx.Err(); err != nil {
				return nil, false, err
			}
		}
		ek, _, err := splitItemKey(k)
		if err != nil {
			return nil, false, fmt.Errorf("state: feed %q: %w", feed, err)
		}
		if last != nil && bytes.Equal(ek, last) {
			continue
		}
		s := string(ek)
		if after != "" && !EntityLess(after, s) {
			continue
		}
		if upTo != "" && EntityLess(upTo, s) {
			break
		}
		if len(keys) == limit {
			return keys, true, nil
		}
		keys = append(keys, s)
		last = append(last[:0], ek...)
	}
	return keys, false, nil
}

// EntitiesBetween is Tx.EntitiesBetween in its own read transaction.
func (s *Store) EntitiesBetween(ctx context.Context, feed, after, upTo string, limit int) (keys []string, more bool, err error) {
	err = s.View(ctx, func(tx *Tx) error {
		keys, more, err = tx.EntitiesBetween(feed, after, upTo, limit)
		return err
	})
	return keys, more, err
}

// VerifyReport is the stored summary of a feed's last verify (feedcdc
// verify, or its schedule): when it ran, what it found, a bounded sample of
// the differing items, and what a repair sent.
type VerifyReport struct {
	Feed       string    `json:"feed"`
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at"`
	// Counts by result: "checked", "equal", "stale", "missing", "orphaned",
	// "unsettled" and the destination results of a read-back.
	Counts map[string]int64 `json:"counts"`
	Drift  int64            `json:"drift"`
	// Repaired is how many items a repair sent (0 without --repair).
	Repaired int64 `json:"repaired"`
	// Sample holds a few differing items as "result feed_id identity".
	Sample []string `json:"sample,omitempty"`
	Error  string   `json:"error,omitempty"`
}

// maxVerifySample bounds VerifyReport.Sample as stored.
const maxVerifySample = 20

// PutVerifyReport stores r as the last verify report of r.Feed.
func (t *Tx) PutVerifyReport(r VerifyReport) error {
	if err := t.writable(); err != nil {
		return err
	}
	fb, err := t.feed(r.Feed, true)
	if err != nil {
		return err
	}
	if len(r.Sample) > maxVerifySample {
		r.Sample = r.Sample[:maxVerifySample]
	}
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if err := fb.meta.Put(kVerify, b); err != nil {
		return fmt.Errorf("state: feed %q: write verify report: %w", r.Feed, err)
	}
	return nil
}

// VerifyReport returns the last verify report of feed; ok is false if none.
func (t *Tx) VerifyReport(feed string) (r VerifyReport, ok bool, err error) {
	fb, err := t.feed(feed, false)
	if err != nil || fb == nil {
		return r, false, err
	}
	v := fb.meta.Get(kVerify)
	if v == nil {
		return r, false, nil
	}
	if err := json.Unmarshal(v, &r); err != nil {
		return r, false, fmt.Errorf("state: feed %q: read verify report: %w", feed, err)
	}
	return r, true, nil
}

// PutVerifyReport stores r in its own transaction.
func (s *Store) PutVerifyReport(ctx context.Context, r VerifyReport) error {
	return s.Update(ctx, func(tx *Tx) error { return tx.PutVerifyReport(r) })
}

// VerifyReport returns the last verify report of feed; ok is false if none.
func (s *Store) VerifyReport(ctx context.Context, feed string) (r VerifyReport, ok bool, err error) {
	err = s.View(ctx, func(tx *Tx) error {
		r, ok, err = tx.VerifyReport(feed)
		return err
	})
	return r, ok, err
}

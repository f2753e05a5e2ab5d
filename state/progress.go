package state

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/feedcdc/feedcdc/change"
)

// Progress is the persisted progress of a feed's full sync (resync), written
// after each completed chunk in the same transaction as the chunk's items.
type Progress struct {
	Feed string `json:"feed"`
	// LastKey is the source key that ends the last completed chunk;
	// --continue-resync starts after it. Its format is the snapshot
	// reader's business (for example a decimal entity_id).
	LastKey   string `json:"last_key,omitempty"`
	Chunks    int64  `json:"chunks"`
	Processed int64  `json:"processed"` // source keys read
	Synced    int64  `json:"synced"`    // feed items sent or queued
	Failed    int64  `json:"failed"`    // feed items that failed
	Total     int64  `json:"total,omitempty"`
	// Position is the binlog position captured when the sync started.
	Position   change.Position `json:"position"`
	StartedAt  time.Time       `json:"started_at"`
	UpdatedAt  time.Time       `json:"updated_at"`
	FinishedAt time.Time       `json:"finished_at"`
	DryRun     bool            `json:"dry_run,omitempty"`
	// StateItems is how many items the state held for the feed when the
	// sync began (nil in progress written before it was recorded): with
	// none, nothing can have vanished and the sync skips that pass.
	StateItems *int64 `json:"state_items,omitempty"`
}

// Finished reports whether the sync completed.
func (p Progress) Finished() bool { return !p.FinishedAt.IsZero() }

// PutProgress stores p as the resync progress of p.Feed.
func (t *Tx) PutProgress(p Progress) error {
	if err := t.writable(); err != nil {
		return err
	}
	fb, err := t.feed(p.Feed, true)
	if err != nil {
		return err
	}
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	if err := fb.meta.Put(kProgress, b); err != nil {
		return fmt.Errorf("state: feed %q: write progress: %w", p.Feed, err)
	}
	return nil
}

// Progress returns the resync progress of feed; ok is false if none.
func (t *Tx) Progress(feed string) (p Progress, ok bool, err error) {
	fb, err := t.feed(feed, false)
	if err != nil || fb == nil {
		return p, false, err
	}
	v := fb.meta.Get(kProgress)
	if v == nil {
		return p, false, nil
	}
	if err := json.Unmarshal(v, &p); err != nil {
		return p, false, fmt.Errorf("state: feed %q: read progress: %w", feed, err)
	}
	return p, true, nil
}

// DeleteProgress forgets feed's resync progress.
func (t *Tx) DeleteProgress(feed string) error {
	if err := t.writable(); err != nil {
		return err
	}
	fb, err := t.feed(feed, false)
	if err != nil || fb == nil {
		return err
	}
	return fb.meta.Delete(kProgress)
}

// Progress returns the resync progress of feed; ok is false if none.
func (s *Store) Progress(ctx context.Context, feed string) (p Progress, ok bool, err error) {
	err = s.View(ctx, func(tx *Tx) error {
		p, ok, err = tx.Progress(feed)
		return err
	})
	return p, ok, err
}

package state

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/feedcdc/feedcdc/change"
)

// kPosHistory is the key, in the checkpoint bucket, of the position history:
// the changes made to the checkpoint other than by streaming.
var kPosHistory = []byte("history")

// MaxPositionHistory bounds the position history: older entries are dropped.
const MaxPositionHistory = 100

// PositionChange is one entry of the position history: the checkpoint set,
// reset or moved by a command or by the purge policy, rather than by
// streaming.
type PositionChange struct {
	At time.Time `json:"at"`
	// Old is the checkpoint before the change (nil: there was none).
	Old *change.Position `json:"old,omitempty"`
	// New is the checkpoint after it (nil: removed; the next start is a
	// first start).
	New *change.Position `json:"new,omitempty"`
	// Command is who made the change ("feedcdc position set current",
	// "feedcdc run (source.on_purged_position: resync)").
	Command string `json:"command"`
	// Reason says why, in words.
	Reason string `json:"reason,omitempty"`
	// Gap is set when raw change streams miss the changes between Old and
	// New (the checkpoint jumped forward over binlog that was never read).
	Gap bool `json:"gap,omitempty"`
}

func (c PositionChange) String() string {
	old, nw := "none", "none"
	if c.Old != nil {
		old = c.Old.String()
	}
	if c.New != nil {
		nw = c.New.String()
	}
	s := fmt.Sprintf("%s by %s: %s -> %s", c.At.UTC().Format(time.RFC3339), c.Command, old, nw)
	if c.Gap {
		s += " (raw streams have a gap)"
	}
	if c.Reason != "" {
		s += "; " + c.Reason
	}
	return s
}

// DeleteCheckpoint removes the checkpoint, so that the next start is a first
// start. Item state, progress and the schema history are kept.
func (t *Tx) DeleteCheckpoint() error {
	if err := t.writable(); err != nil {
		return err
	}
	if err := t.root(bCheckpoint).Delete(kPos); err != nil {
		return fmt.Errorf("state: delete checkpoint: %w", err)
	}
	return nil
}

// RecordPositionChange appends c to the position history, dropping the
// oldest entries beyond MaxPositionHistory. Call it in the Update that
// changes the checkpoint.
func (t *Tx) RecordPositionChange(c PositionChange) error {
	if err := t.writable(); err != nil {
		return err
	}
	h, err := t.PositionHistory()
	if err != nil {
		return err
	}
	c.At = c.At.UTC()
	h = append(h, c)
	if len(h) > MaxPositionHistory {
		h = h[len(h)-MaxPositionHistory:]
	}
	b, err := json.Marshal(h)
	if err != nil {
		return err
	}
	if err := t.root(bCheckpoint).Put(kPosHistory, b); err != nil {
		return fmt.Errorf("state: write position history: %w", err)
	}
	return nil
}

// PositionHistory returns the position history, oldest first.
func (t *Tx) PositionHistory() ([]PositionChange, error) {
	v := t.tx.Bucket(bCheckpoint).Get(kPosHistory)
	if v == nil {
		return nil, nil
	}
	var h []PositionChange
	if err := json.Unmarshal(v, &h); err != nil {
		return nil, fmt.Errorf("state: read position history: %w", err)
	}
	return h, nil
}

// PositionHistory returns the position history, oldest first.
func (s *Store) PositionHistory(ctx context.Context) (h []PositionChange, err error) {
	err = s.View(ctx, func(tx *Tx) error {
		h, err = tx.PositionHistory()
		return err
	})
	return h, err
}

// TouchCheckpoint rewrites the stored checkpoint's time as at, keeping its
// position, so that its age says the connector confirmed it (an idle source
// has nothing newer). It does nothing when no checkpoint is stored.
func (t *Tx) TouchCheckpoint(at time.Time) (pos change.Position, ok bool, err error) {
	pos, _, ok, err = t.Checkpoint()
	if err != nil || !ok {
		return pos, ok, err
	}
	return pos, true, t.SetCheckpoint(pos, at)
}

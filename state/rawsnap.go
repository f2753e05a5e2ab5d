package state

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// bRawSnap holds the progress of raw-table snapshots: table ("db.t") ->
// RawSnapshot (JSON).
var bRawSnap = []byte("rawsnap")

// States of a raw snapshot.
const (
	RawSnapRunning = "running"
	RawSnapPaused  = "paused"
	RawSnapStopped = "stopped"
	RawSnapDone    = "done"
)

// RawSnapshot is the progress of the snapshot of one table into its raw
// stream. The connector writes it after each chunk in the same state
// transaction as the batch that holds the chunk's last record (and so with
// the checkpoint that covers it): after a crash the snapshot resumes after
// the last chunk whose records were delivered.
type RawSnapshot struct {
	Table string `json:"table"` // "db.table"
	// Where is an SQL condition that limits the rows read (feedcdc
	// snapshot --where).
	Where string `json:"where,omitempty"`
	// Mode is "initial" (raw.snapshot: initial) or "incremental" (on
	// demand): the records' source.snapshot.
	Mode string `json:"mode"`
	// Last is set on the last table of an initial snapshot: its last
	// record carries source.snapshot "last".
	Last bool `json:"last,omitempty"`
	// Seq orders the snapshots that wait: lower runs first.
	Seq int64 `json:"seq"`
	// LastKey holds the primary-key values (as SQL text) of the last row
	// of the last completed chunk; the next chunk starts after it.
	LastKey []string `json:"last_key,omitempty"`
	Chunks  int64    `json:"chunks"`
	Read    int64    `json:"read"`    // rows read from the table
	Sent    int64    `json:"sent"`    // snapshot records emitted
	Dropped int64    `json:"dropped"` // rows dropped because the stream had a newer change
	Total   int64    `json:"total,omitempty"`
	State   string   `json:"state"`
	Error   string   `json:"error,omitempty"`

	StartedAt  time.Time `json:"started_at"`
	UpdatedAt  time.Time `json:"updated_at"`
	FinishedAt time.Time `json:"finished_at"`
}

// PutRawSnapshot stores p as the progress of p.Table.
func (t *Tx) PutRawSnapshot(p RawSnapshot) error {
	if err := t.writable(); err != nil {
		return err
	}
	b, err := t.createRoot(bRawSnap) // recorded: replicated with high availability
	if err != nil {
		return fmt.Errorf("state: raw snapshots: %w", err)
	}
	v, err := json.Marshal(p)
	if err != nil {
		return err
	}
	if err := b.Put([]byte(p.Table), v); err != nil {
		return fmt.Errorf("state: raw snapshot of %s: %w", p.Table, err)
	}
	return nil
}

// RawSnapshot returns the progress of table's snapshot; ok is false if none.
func (t *Tx) RawSnapshot(table string) (p RawSnapshot, ok bool, err error) {
	b := t.tx.Bucket(bRawSnap)
	if b == nil {
		return p, false, nil
	}
	v := b.Get([]byte(table))
	if v == nil {
		return p, false, nil
	}
	if err := json.Unmarshal(v, &p); err != nil {
		return p, false, fmt.Errorf("state: raw snapshot of %s: %w", table, err)
	}
	return p, true, nil
}

// RawSnapshots returns every stored snapshot progress, in table order.
func (t *Tx) RawSnapshots() ([]RawSnapshot, error) {
	b := t.tx.Bucket(bRawSnap)
	if b == nil {
		return nil, nil
	}
	var out []RawSnapshot
	err := b.ForEach(func(k, v []byte) error {
		var p RawSnapshot
		if err := json.Unmarshal(v, &p); err != nil {
			return fmt.Errorf("state: raw snapshot of %s: %w", k, err)
		}
		out = append(out, p)
		return nil
	})
	return out, err
}

// RawSnapshots returns every stored snapshot progress, in table order.
func (s *Store) RawSnapshots(ctx context.Context) (out []RawSnapshot, err error) {
	err = s.View(ctx, func(tx *Tx) error {
		out, err = tx.RawSnapshots()
		return err
	})
	return out, err
}

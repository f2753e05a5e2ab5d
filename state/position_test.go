package state

import (
	"context"
	"testing"
	"time"

	"github.com/feedcdc/feedcdc/change"
)

// TestPositionHistoryAndReset: removing the checkpoint keeps every item and
// the resync progress; each change is recorded in a bounded history that
// survives reopening the file.
func TestPositionHistoryAndReset(t *testing.T) {
	ctx := context.Background()
	st, path := openTemp(t)
	put(t, st, product("A", "default", 1, 200), product("B", "default", 2, 200))
	old := change.Position{Flavor: "mariadb", File: "bin.000001", Pos: 400, GTIDSet: "0-1-7"}
	if err := st.Update(ctx, func(tx *Tx) error {
		if err := tx.PutProgress(Progress{Feed: "products", Position: old, StartedAt: time.Now()}); err != nil {
			return err
		}
		return tx.SetCheckpoint(old, time.Now())
	}); err != nil {
		t.Fatal(err)
	}
	if err := st.Update(ctx, func(tx *Tx) error {
		if err := tx.DeleteCheckpoint(); err != nil {
			return err
		}
		return tx.RecordPositionChange(PositionChange{At: time.Now(), Old: &old, Command: "feedcdc position reset"})
	}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < MaxPositionHistory+5; i++ {
		p := change.Position{File: "bin.000002", Pos: uint32(4 + i)}
		if err := st.Update(ctx, func(tx *Tx) error {
			return tx.RecordPositionChange(PositionChange{At: time.Now(), New: &p, Command: "test", Gap: true})
		}); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	st, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, _, ok, err := st.Checkpoint(ctx); err != nil || ok {
		t.Fatalf("checkpoint after reset: ok=%v err=%v, want none", ok, err)
	}
	c, err := st.Counts(ctx, "products")
	if err != nil || c.Total != 2 {
		t.Fatalf("items after reset: %+v %v, want 2 kept", c, err)
	}
	if p, ok, err := st.Progress(ctx, "products"); err != nil || !ok || p.Position != old {
		t.Fatalf("progress after reset: %+v ok=%v err=%v", p, ok, err)
	}
	h, err := st.PositionHistory(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != MaxPositionHistory {
		t.Fatalf("history holds %d entries, want the newest %d", len(h), MaxPositionHistory)
	}
	last := h[len(h)-1]
	if last.New == nil || last.New.Pos != uint32(4+MaxPositionHistory+4) || !last.Gap {
		t.Errorf("last history entry %+v", last)
	}
	if h[0].Command != "test" || h[0].New.Pos != 9 {
		t.Errorf("oldest kept entry %s, want the 6th written (the reset and 4 more dropped)", h[0])
	}
}

// TestTouchCheckpoint keeps the position and moves the time; without a
// checkpoint it writes nothing.
func TestTouchCheckpoint(t *testing.T) {
	ctx := context.Background()
	st, _ := openTemp(t)
	if err := st.Update(ctx, func(tx *Tx) error {
		_, ok, err := tx.TouchCheckpoint(time.Now())
		if ok {
			t.Error("touch without a checkpoint reported one")
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if _, _, ok, _ := st.Checkpoint(ctx); ok {
		t.Fatal("touch created a checkpoint")
	}
	p := change.Position{File: "bin.000001", Pos: 4}
	t0 := time.Now().Add(-time.Hour)
	if err := st.Update(ctx, func(tx *Tx) error { return tx.SetCheckpoint(p, t0) }); err != nil {
		t.Fatal(err)
	}
	t1 := time.Now()
	if err := st.Update(ctx, func(tx *Tx) error { _, _, err := tx.TouchCheckpoint(t1); return err }); err != nil {
		t.Fatal(err)
	}
	got, at, ok, err := st.Checkpoint(ctx)
	if err != nil || !ok || got != p || !at.Equal(t1.UTC()) {
		t.Fatalf("after touch: %v at %v ok=%v err=%v; want %v at %v", got, at, ok, err, p, t1.UTC())
	}
}

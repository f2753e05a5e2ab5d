package state

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"

	"github.com/feedcdc/feedcdc/change"
)

// TestLinkIndexIsKeptLocally: a saved link index reads back with its
// checkpoint after a reopen, is replaced by the next save and removed by
// DeleteLinkIndex, and is never handed to the replication hook (an index
// of millions of links does not fit a Kafka record; a successor loads its
// own from the source).
func TestLinkIndexIsKeptLocally(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "s.db")
	var replicated []Op
	hook := func(_ context.Context, ops []Op) error { replicated = append(replicated, ops...); return nil }
	st, err := Open(path, Options{NoSync: true, OnCommit: hook})
	if err != nil {
		t.Fatal(err)
	}
	want := LinkIndex{Checkpoint: change.Position{Flavor: "mariadb", GTIDSet: "0-1-42", File: "b.000002", Pos: 4711}, Data: bytes.Repeat([]byte{1, 2, 3}, 100_000)}
	for _, x := range []LinkIndex{{Checkpoint: change.Position{File: "b.000001", Pos: 4}, Data: []byte("old")}, want} {
		if err := st.Update(ctx, func(tx *Tx) error { return tx.PutLinkIndex(x) }); err != nil {
			t.Fatal(err)
		}
	}
	if len(replicated) != 0 {
		t.Fatalf("saving the link index was replicated: %d ops", len(replicated))
	}
	st.Close()
	if st, err = Open(path, Options{NoSync: true}); err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var got LinkIndex
	var ok bool
	if err := st.View(ctx, func(tx *Tx) (err error) { got, ok, err = tx.LinkIndex(); return err }); err != nil || !ok {
		t.Fatalf("saved link index not read back: ok %v, %v", ok, err)
	}
	if got.Checkpoint != want.Checkpoint || !bytes.Equal(got.Data, want.Data) {
		t.Fatalf("read back %v (%d bytes), saved %v (%d bytes)", got.Checkpoint, len(got.Data), want.Checkpoint, len(want.Data))
	}
	if err := st.Update(ctx, func(tx *Tx) error { return tx.DeleteLinkIndex() }); err != nil {
		t.Fatal(err)
	}
	if err := st.View(ctx, func(tx *Tx) (err error) { _, ok, err = tx.LinkIndex(); return err }); err != nil || ok {
		t.Fatalf("link index still there after DeleteLinkIndex: ok %v, %v", ok, err)
	}
}

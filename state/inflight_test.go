package state

import (
	"context"
	"reflect"
	"testing"
	"time"
)

// pendingOf is the write-ahead state of it: a new hash, not sent yet.
func pendingOf(it Item, hash string) Item {
	it.Hash, it.Status, it.SentAt = hash, StatusPending, time.Time{}
	it.ModifiedAt = time.Date(2026, 12, 6, 23, 0, 0, 0, time.UTC)
	return it
}

// TestInflightRecordLeftBehindIsAppliedAtOpen: a write-ahead record whose
// final Update never came (the process stopped in between) leaves the
// state, once the file is opened again, exactly as PutItems of the same
// pending states would have: same items, indexes and counters.
func TestInflightRecordLeftBehindIsAppliedAtOpen(t *testing.T) {
	ctx := context.Background()
	st, path := openTemp(t)
	old := product("A", "default", 1, StatusSent)
	put(t, st, old, product("B", "default", 2, StatusSent))
	inflight := []Item{
		pendingOf(old, sha1hex("new A")),                       // an update
		pendingOf(product("C", "default", 3, 0), sha1hex("C")), // a new item
	}
	inflight[1].Deleted = true
	var token uint64
	err := st.Update(ctx, func(tx *Tx) (err error) {
		token, err = tx.PutInflight(inflight)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := st.InflightRecords(); got != 1 {
		t.Fatalf("InflightRecords %d, want 1", got)
	}
	// The record is not applied while it is in flight.
	if c, _ := st.Counts(ctx, "products"); c.Total != 2 || c.Sent != 2 {
		t.Fatalf("counts before the record is applied: %+v", c)
	}
	st.Close()

	// The same writes through PutItems, in another file: what the state
	// must look like.
	want, _ := openTemp(t)
	put(t, want, old, product("B", "default", 2, StatusSent))
	put(t, want, inflight...)

	st, err = Open(path, Options{Command: "feedcdc test"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	mustCheck(t, st)
	if got := st.InflightRecords(); got != 0 {
		t.Fatalf("InflightRecords %d after Open, want 0", got)
	}
	for _, it := range append(inflight, product("B", "default", 2, StatusSent)) {
		g, ok, err := st.Item(ctx, "products", it.ID)
		w, _, _ := want.Item(ctx, "products", it.ID)
		if err != nil || !ok || !reflect.DeepEqual(g, w) {
			t.Errorf("item %s after Open: %+v (ok %v, err %v), want %+v", it.Identity["sku"], g, ok, err, w)
		}
	}
	gc, _ := st.Counts(ctx, "products")
	wc, _ := want.Counts(ctx, "products")
	if gc != wc || gc.Pending != 2 || gc.Deleted != 1 {
		t.Errorf("counts %+v, want %+v (2 pending, 1 deleted)", gc, wc)
	}
	// Applied once: the final states written now are not overwritten by a
	// later Open.
	final := inflight[0]
	final.Status = StatusSent
	if err := st.Update(ctx, func(tx *Tx) error {
		if err := tx.PutItems([]Item{final}); err != nil {
			return err
		}
		return tx.DeleteInflight(token) // applied at Open already: a no-op
	}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	st, err = Open(path, Options{Command: "feedcdc test"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if g, _, _ := st.Item(ctx, "products", final.ID); g.Status != StatusSent || g.Hash != final.Hash {
		t.Errorf("item A after a second Open: %+v, want its final state", g)
	}
}

// TestInflightRecordRemovedWithFinalStates: the Update that stores the
// final states removes the record, so nothing is applied later; a record
// abandoned while the file stays open is applied by ApplyInflight.
func TestInflightRecordRemovedWithFinalStates(t *testing.T) {
	ctx := context.Background()
	st, path := openTemp(t)
	it := product("A", "default", 1, StatusSent)
	var token uint64
	if err := st.Update(ctx, func(tx *Tx) (err error) {
		token, err = tx.PutInflight([]Item{pendingOf(it, it.Hash)})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := st.Update(ctx, func(tx *Tx) error {
		if err := tx.PutItems([]Item{it}); err != nil {
			return err
		}
		return tx.DeleteInflight(token)
	}); err != nil {
		t.Fatal(err)
	}
	if n := st.InflightRecords(); n != 0 {
		t.Fatalf("InflightRecords %d after the final Update, want 0", n)
	}
	// An abandoned export: its record is applied by ApplyInflight.
	changed := pendingOf(it, sha1hex("changed"))
	if err := st.Update(ctx, func(tx *Tx) (err error) {
		_, err = tx.PutInflight([]Item{changed})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	n, err := st.ApplyInflight(ctx)
	if err != nil || n != 1 {
		t.Fatalf("ApplyInflight: %d, %v; want 1 record", n, err)
	}
	if g, _, _ := st.Item(ctx, "products", it.ID); g.Status != StatusPending || g.Hash != changed.Hash {
		t.Errorf("after ApplyInflight: %+v, want the pending state", g)
	}
	mustCheck(t, st)
	// A bad item is refused when recorded, not when applied.
	err = st.Update(ctx, func(tx *Tx) error {
		_, err := tx.PutInflight([]Item{{Feed: "products", EntityKey: "1"}})
		return err
	})
	if err == nil {
		t.Fatal("PutInflight accepted an item without a feed id")
	}
	st.Close()
	st, err = Open(path, Options{Command: "feedcdc test"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if g, _, _ := st.Item(ctx, "products", it.ID); g.Status != StatusPending || g.Hash != changed.Hash {
		t.Errorf("after reopening: %+v, want the pending state kept", g)
	}
}

// TestPutItemsLaterItemWinsWhateverTheKeyOrder: PutItems writes in item-key
// order, but the last of two items with the same id still wins, also when
// it moves the item to an entity that sorts before the earlier one's.
func TestPutItemsLaterItemWinsWhateverTheKeyOrder(t *testing.T) {
	ctx := context.Background()
	st, _ := openTemp(t)
	first := product("A", "default", 5, StatusPending)
	later := product("A", "default", 3, StatusSent)
	later.Hash = sha1hex("later")
	put(t, st, first, product("B", "default", 4, StatusSent), later, product("C", "default", 1, StatusSent))
	mustCheck(t, st)
	g, ok, err := st.Item(ctx, "products", later.ID)
	if err != nil || !ok || g.EntityKey != "3" || g.Hash != later.Hash || g.Status != StatusSent {
		t.Fatalf("item A: %+v (ok %v, err %v), want the later one (entity 3, status 200)", g, ok, err)
	}
	if c, _ := st.Counts(ctx, "products"); c.Total != 3 || c.Sent != 3 {
		t.Fatalf("counts %+v, want 3 items sent", c)
	}
	byEntity, err := st.ItemsByEntity(ctx, "products", []string{"5"})
	if err != nil || len(byEntity["5"]) != 0 {
		t.Fatalf("entity 5 still holds %+v (%v)", byEntity["5"], err)
	}
}

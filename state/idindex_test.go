package state

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// idIndexSizes counts the entries of a feed's byid and staging buckets in
// the committed file.
func idIndexSizes(t *testing.T, st *Store, feed string) (byid, staged int) {
	t.Helper()
	err := st.db.View(func(tx *bolt.Tx) error {
		fb := tx.Bucket(bFeeds).Bucket([]byte(feed))
		if fb == nil {
			return nil
		}
		byid = fb.Bucket(bByID).Stats().KeyN
		if s := fb.Bucket(bStaged); s != nil {
			return s.ForEachBucket(func(name []byte) error {
				staged += s.Bucket(name).Stats().KeyN
				return nil
			})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return byid, staged
}

// firstStaged returns the first staging partition of a feed bucket and
// its first key.
func firstStaged(fb *bolt.Bucket) (*bolt.Bucket, []byte) {
	s := fb.Bucket(bStaged)
	name, _ := s.Cursor().First()
	part := s.Bucket(name)
	k, _ := part.Cursor().First()
	return part, k
}

// pendLen is the number of staged entries Store.pend holds for feed.
func pendLen(st *Store, feed string) int {
	st.pendMu.Lock()
	defer st.pendMu.Unlock()
	return len(st.pend.feeds[feed])
}

func mustItem(t *testing.T, st *Store, id, wantEntity string) {
	t.Helper()
	it, ok, err := st.Item(context.Background(), "products", id)
	if err != nil || !ok {
		t.Fatalf("item %s: ok=%v err=%v", id, ok, err)
	}
	if it.EntityKey != wantEntity {
		t.Fatalf("item %s: entity %q, want %q", id, it.EntityKey, wantEntity)
	}
}

func mustNoItem(t *testing.T, st *Store, id string) {
	t.Helper()
	if _, ok, err := st.Item(context.Background(), "products", id); err != nil || ok {
		t.Fatalf("item %s: ok=%v err=%v, want absent", id, ok, err)
	}
}

// TestStagedIDsAreFoundEverywhere: new ids go to the staging bucket, not
// byid, and are found by id in the same transaction, in later write and
// read transactions (GetItem, Items, DueFailed and the status index,
// which resolve ids), after a reopen, and by Check.
func TestStagedIDsAreFoundEverywhere(t *testing.T) {
	ctx := context.Background()
	st, path := openTemp(t)
	a := product("A", "default", 1, StatusSent)
	b := product("B", "default", 2, StatusRetryableFailure)
	err := st.Update(ctx, func(tx *Tx) error {
		if err := tx.PutItems([]Item{a, b}); err != nil {
			return err
		}
		// Same transaction: found by id, and a rewrite under another
		// entity moves the staged entry.
		it, ok, err := tx.Item("products", a.ID)
		if err != nil || !ok || it.EntityKey != "1" {
			return fmt.Errorf("same tx: %+v %v %v", it, ok, err)
		}
		a2 := a
		a2.EntityKey = "7"
		return tx.PutItems([]Item{a2})
	})
	if err != nil {
		t.Fatal(err)
	}
	if byid, staged := idIndexSizes(t, st, "products"); byid != 0 || staged != 2 {
		t.Fatalf("byid %d staged %d, want 0 and 2", byid, staged)
	}
	mustItem(t, st, a.ID, "7")
	mustItem(t, st, b.ID, "2")
	got, err := st.Items(ctx, "products", []string{a.ID, b.ID, sha1hex("none")})
	if err != nil || len(got) != 2 {
		t.Fatalf("Items: %v %v", got, err)
	}
	due, err := st.DueFailed(ctx, "products", b.NextAttempt, 10)
	if err != nil || len(due) != 1 || due[0].ID != b.ID {
		t.Fatalf("DueFailed: %v %v", due, err)
	}
	page, _, err := st.ListItems(ctx, ListQuery{Feed: "products", Statuses: []int{StatusRetryableFailure}})
	if err != nil || len(page) != 1 || page[0].ID != b.ID {
		t.Fatalf("ListItems by status: %v %v", page, err)
	}
	if m, err := st.ItemsByEntity(ctx, "products", []string{"1", "7"}); err != nil || len(m["1"]) != 0 || len(m["7"]) != 1 {
		t.Fatalf("ItemsByEntity: %v %v", m, err)
	}
	mustCheck(t, st)
	// A later write transaction finds the staged id: an update under the
	// same id is a replacement, not a second item.
	b.Hash = "new"
	put(t, st, b)
	if c, _ := st.Counts(ctx, "products"); c.Total != 2 {
		t.Fatalf("counts %+v", c)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	mustItem(t, st, a.ID, "7")
	// After the reopen Store.pend is loaded before the first write: a move
	// of a staged id finds it.
	a.EntityKey = "8"
	put(t, st, a)
	mustItem(t, st, a.ID, "8")
	if c, _ := st.Counts(ctx, "products"); c.Total != 2 {
		t.Fatalf("counts after reopen %+v", c)
	}
	if n := pendLen(st, "products"); n != 2 {
		t.Fatalf("Store.pend holds %d entries, want 2", n)
	}
	mustCheck(t, st)
}

// TestStagedIDMovesAndDeletes: moves of an id between entities and
// deletions, while staged and after the merge into byid.
func TestStagedIDMovesAndDeletes(t *testing.T) {
	ctx := context.Background()
	st, _ := openTemp(t)
	a := product("A", "default", 1, StatusSent)
	b := product("B", "default", 2, StatusRetryableFailure)
	c := product("C", "default", 3, 404)
	put(t, st, a, b, c)
	// Staged: move a, delete b.
	a.EntityKey = "11"
	put(t, st, a)
	if err := st.Update(ctx, func(tx *Tx) error { return tx.DeleteItems("products", []string{b.ID}) }); err != nil {
		t.Fatal(err)
	}
	mustItem(t, st, a.ID, "11")
	mustNoItem(t, st, b.ID)
	if byid, staged := idIndexSizes(t, st, "products"); byid != 0 || staged != 2 {
		t.Fatalf("byid %d staged %d, want 0 and 2", byid, staged)
	}
	if n := pendLen(st, "products"); n != 2 {
		t.Fatalf("Store.pend holds %d, want 2", n)
	}
	mustCheck(t, st)
	// Merge (bound reached by the next write).
	st.pendBound = 3
	put(t, st, b)
	if byid, staged := idIndexSizes(t, st, "products"); byid != 3 || staged != 0 {
		t.Fatalf("after the merge: byid %d staged %d, want 3 and 0", byid, staged)
	}
	if n := pendLen(st, "products"); n != 0 {
		t.Fatalf("Store.pend holds %d after the merge", n)
	}
	mustCheck(t, st)
	// In byid: move a back, delete c, then stage a new one.
	st.pendBound = 100
	a.EntityKey = "1"
	put(t, st, a)
	if err := st.Update(ctx, func(tx *Tx) error { return tx.DeleteItems("products", []string{c.ID}) }); err != nil {
		t.Fatal(err)
	}
	d := product("D", "default", 4, StatusSent)
	put(t, st, d)
	mustItem(t, st, a.ID, "1")
	mustItem(t, st, b.ID, "2")
	mustItem(t, st, d.ID, "4")
	mustNoItem(t, st, c.ID)
	if byid, staged := idIndexSizes(t, st, "products"); byid != 2 || staged != 1 {
		t.Fatalf("byid %d staged %d, want 2 and 1", byid, staged)
	}
	if m, _ := st.ItemsByEntity(ctx, "products", []string{"1", "11", "3"}); len(m["1"]) != 1 || len(m["11"]) != 0 || len(m["3"]) != 0 {
		t.Fatalf("ItemsByEntity: %v", m)
	}
	mustCheck(t, st)
}

// TestRolledBackTransactionLeavesStagedIDsUnchanged: the staged entries a
// rolled-back transaction added, moved or removed are as before in memory
// and in the file.
func TestRolledBackTransactionLeavesStagedIDsUnchanged(t *testing.T) {
	ctx := context.Background()
	st, _ := openTemp(t)
	a := product("A", "default", 1, StatusSent)
	b := product("B", "default", 2, StatusSent)
	put(t, st, a, b)
	boom := errors.New("boom")
	err := st.Update(ctx, func(tx *Tx) error {
		a2 := a
		a2.EntityKey = "9"
		if err := tx.PutItems([]Item{a2, product("N", "default", 5, StatusSent)}); err != nil {
			return err
		}
		if err := tx.DeleteItems("products", []string{b.ID}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update: %v", err)
	}
	st.pendMu.Lock()
	m := st.pend.feeds["products"]
	n := st.pend.n
	st.pendMu.Unlock()
	if n != 2 || len(m) != 2 || m[string(encodeID(nil, a.ID))].ek != "1" || m[string(encodeID(nil, b.ID))].ek != "2" {
		t.Fatalf("Store.pend after a rollback: n=%d %v", n, m)
	}
	mustItem(t, st, a.ID, "1")
	mustItem(t, st, b.ID, "2")
	mustNoItem(t, st, product("N", "default", 5, StatusSent).ID)
	// The next transactions see the entries as committed: b is removed
	// (not missed), N staged once.
	if err := st.Update(ctx, func(tx *Tx) error { return tx.DeleteItems("products", []string{b.ID}) }); err != nil {
		t.Fatal(err)
	}
	put(t, st, product("N", "default", 5, StatusSent))
	if byid, staged := idIndexSizes(t, st, "products"); byid != 0 || staged != 2 {
		t.Fatalf("byid %d staged %d, want 0 and 2", byid, staged)
	}
	mustCheck(t, st)
}

// TestStagedIDsMergeInStepsBelowTheBound: once a commit of a few new ids
// (a streamed batch) leaves the staged entries at the bound, Update merges
// steps of whole partitions, at most mergeChunk entries each, only until
// they are below it — not all of them, which paused every write (and the
// stream behind it) for seconds on a large catalog; a commit of many new
// ids (a full sync's) merges them all. Every id stays found.
func TestStagedIDsMergeInStepsBelowTheBound(t *testing.T) {
	ctx := context.Background()
	commits := 0
	st, err := Open(filepath.Join(t.TempDir(), "state.db"), Options{NoSync: true, OnCommit: func(context.Context, []Op) error {
		commits++
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	st.pendBound, st.mergeChunk = 1000, 300
	var all []Item
	for i := range 2500 {
		all = append(all, product("S"+strconv.Itoa(i), "default", i/2, StatusSent))
	}
	steps := 0
	for i := 0; i < 1500; i += 100 {
		before, prev := commits, 0
		if i > 0 {
			prev, _ = idIndexSizes(t, st, "products")
		}
		put(t, st, all[i:i+100]...)
		byid, staged := idIndexSizes(t, st, "products")
		if byid+staged != i+100 || staged >= st.pendBound {
			t.Fatalf("after %d items: byid %d staged %d", i+100, byid, staged)
		}
		if n := pendLen(st, "products"); n != staged {
			t.Fatalf("Store.pend holds %d, the file %d", n, staged)
		}
		if n := commits - before - 1; n > 0 {
			steps += n
			// Only as much as gets below the bound, a step (one
			// transaction) at most mergeChunk entries.
			if staged < st.pendBound-st.mergeChunk || byid-prev > n*st.mergeChunk {
				t.Fatalf("after %d items: %d steps merged %d entries, %d left staged; want steps of at most %d entries, stopping just below the bound",
					i+100, n, byid-prev, staged, st.mergeChunk)
			}
		}
	}
	if steps == 0 {
		t.Fatal("the staged entries never reached the bound")
	}
	// A commit of mergeChunk new ids or more merges every staged entry.
	put(t, st, all[1500:]...)
	if byid, staged := idIndexSizes(t, st, "products"); byid != len(all) || staged != 0 {
		t.Fatalf("after a commit of %d new ids: byid %d staged %d, want all merged", len(all)-1500, byid, staged)
	}
	got, err := st.Items(ctx, "products", func() []string {
		var ids []string
		for _, it := range all {
			ids = append(ids, it.ID)
		}
		return ids
	}())
	if err != nil || len(got) != len(all) {
		t.Fatalf("Items: %d of %d, %v", len(got), len(all), err)
	}
	mustCheck(t, st)
	// A merged id moves in byid; a staged one in staging.
	m, s := all[0], all[2499]
	m.EntityKey, s.EntityKey = "x", "y"
	put(t, st, m, s)
	mustItem(t, st, m.ID, "x")
	mustItem(t, st, s.ID, "y")
	mustCheck(t, st)
}

// TestForgetFeedDropsStagedIDs: a forgotten feed's staged entries leave
// Store.pend with its buckets; the feed's ids are new again.
func TestForgetFeedDropsStagedIDs(t *testing.T) {
	ctx := context.Background()
	st, _ := openTemp(t)
	a := product("A", "default", 1, StatusSent)
	put(t, st, a, product("B", "default", 2, StatusSent))
	if err := st.ForgetFeed(ctx, "products"); err != nil {
		t.Fatal(err)
	}
	if n := pendLen(st, "products"); n != 0 {
		t.Fatalf("Store.pend holds %d after ForgetFeed", n)
	}
	a.EntityKey = "3"
	put(t, st, a)
	mustItem(t, st, a.ID, "3")
	if c, _ := st.Counts(ctx, "products"); c.Total != 1 {
		t.Fatalf("counts %+v", c)
	}
	mustCheck(t, st)
}

// TestCheckFindsABrokenStagedIDIndex: Check accepts staged entries and
// reports a missing one, one that names another entity, and an id both
// staged and in byid.
func TestCheckFindsABrokenStagedIDIndex(t *testing.T) {
	for _, tc := range []struct {
		name, want string
		damage     func(fb *bolt.Bucket, idk []byte) error
	}{
		{"missing", "has id index entry", func(fb *bolt.Bucket, idk []byte) error {
			part, k := firstStaged(fb)
			return part.Delete(k)
		}},
		{"wrong entity", "has id index entry", func(fb *bolt.Bucket, idk []byte) error {
			part, k := firstStaged(fb)
			v := part.Get(k)
			_, sidk, _, err := decodeStaged(k, v)
			if err != nil {
				return err
			}
			return part.Put(k, stagedValue(sidk, "999"))
		}},
		{"wrong partition", "in partition", func(fb *bolt.Bucket, idk []byte) error {
			part, k := firstStaged(fb)
			other, err := fb.Bucket(bStaged).CreateBucketIfNotExists([]byte{0xff})
			if err != nil {
				return err
			}
			if err := other.Put(k, part.Get(k)); err != nil {
				return err
			}
			return part.Delete(k)
		}},
		{"in both", "both in the id index and staged", func(fb *bolt.Bucket, idk []byte) error {
			return fb.Bucket(bByID).Put(idk, []byte("1"))
		}},
		{"undecodable", "staged id index entry", func(fb *bolt.Bucket, idk []byte) error {
			part, _ := firstStaged(fb)
			return part.Put(stagedKey(99), []byte{0})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, _ := openTemp(t)
			a := product("A", "default", 1, StatusSent)
			put(t, st, a, product("B", "default", 2, StatusSent))
			mustCheck(t, st)
			err := st.db.Update(func(tx *bolt.Tx) error {
				return tc.damage(tx.Bucket(bFeeds).Bucket([]byte("products")), encodeID(nil, a.ID))
			})
			if err != nil {
				t.Fatal(err)
			}
			err = st.Check(context.Background())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Check: %v, want %q", err, tc.want)
			}
			r, err := st.CheckReport(context.Background())
			if err != nil || len(r.Problems) == 0 {
				t.Fatalf("CheckReport: %+v %v", r.Problems, err)
			}
		})
	}
}

// TestReplicaFindsStagedIDs: a standby that applies the active's ops finds
// staged ids (read and write transactions), including after the active
// merged them and after its own Store.pend was loaded before an Apply.
func TestReplicaFindsStagedIDs(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	standby, err := Open(filepath.Join(dir, "standby.db"), Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer standby.Close()
	active, err := Open(filepath.Join(dir, "active.db"), Options{NoSync: true, OnCommit: func(ctx context.Context, ops []Op) error {
		return standby.Apply(ctx, ops, nil)
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer active.Close()
	active.pendBound, active.mergeChunk = 6, 2
	a := product("A", "default", 1, StatusSent)
	b := product("B", "default", 2, StatusSent)
	put(t, active, a, b)
	mustItem(t, standby, a.ID, "1")
	// The standby runs a write transaction once (Store.pend loaded), then
	// applies more: its next write transaction must see the applied
	// staged entries.
	if err := standby.Update(ctx, func(tx *Tx) error {
		if _, ok, err := tx.Item("products", b.ID); err != nil || !ok {
			return fmt.Errorf("standby write tx: %v %v", ok, err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	c := product("C", "default", 3, StatusSent)
	a.EntityKey = "5"
	put(t, active, c, a)
	mustItem(t, standby, a.ID, "5")
	mustItem(t, standby, c.ID, "3")
	if err := standby.Update(ctx, func(tx *Tx) error {
		it, ok, err := tx.Item("products", c.ID)
		if err != nil || !ok || it.EntityKey != "3" {
			return fmt.Errorf("standby write tx: %+v %v %v", it, ok, err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	mustCheck(t, standby)
	// The active merges (6 entries, 3 of them staged by this commit: all
	// merged); the standby follows.
	put(t, active, product("D", "default", 4, StatusSent), product("E", "default", 5, StatusSent), product("F", "default", 6, StatusSent))
	if byid, staged := idIndexSizes(t, standby, "products"); byid != 6 || staged != 0 {
		t.Fatalf("standby after the merge: byid %d staged %d", byid, staged)
	}
	if dumpFile(t, active) != dumpFile(t, standby) {
		t.Fatal("standby differs from the active")
	}
	// A standby taking over writes with what it applied.
	if err := standby.Update(ctx, func(tx *Tx) error { return tx.DeleteItems("products", []string{b.ID}) }); err != nil {
		t.Fatal(err)
	}
	mustNoItem(t, standby, b.ID)
	mustItem(t, standby, a.ID, "5")
	mustCheck(t, standby)
}

// TestMergeStoppedByAnErrorResumes: a merge transaction that commits but
// whose replication fails stops the merge with an error; the store's
// staged entries are then read again from the file, every id is still
// found, and the next write finishes the merge.
func TestMergeStoppedByAnErrorResumes(t *testing.T) {
	ctx := context.Background()
	commits, failAt := 0, -1
	st, err := Open(filepath.Join(t.TempDir(), "state.db"), Options{NoSync: true, OnCommit: func(context.Context, []Op) error {
		commits++
		if commits == failAt {
			return errors.New("changelog down")
		}
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	st.pendBound, st.mergeChunk = 500, 100
	var all []Item
	for i := range 600 {
		all = append(all, product("M"+strconv.Itoa(i), "default", i, StatusSent))
	}
	put(t, st, all[:400]...)
	failAt = commits + 3 // the second merge transaction
	err = st.Update(ctx, func(tx *Tx) error { return tx.PutItems(all[400:]) })
	if err == nil || !strings.Contains(err.Error(), "changelog down") {
		t.Fatalf("Update: %v, want the merge's replication error", err)
	}
	byid, staged := idIndexSizes(t, st, "products")
	if byid == 0 || staged == 0 || byid+staged != 600 {
		t.Fatalf("after the stopped merge: byid %d staged %d", byid, staged)
	}
	for _, it := range []Item{all[0], all[300], all[599]} {
		mustItem(t, st, it.ID, it.EntityKey)
	}
	mustCheck(t, st)
	// The next write reloads the staged entries (it moves a merged id and
	// a staged one); once the bound is reached again, the merge goes on.
	a, b := all[0], all[599]
	a.EntityKey, b.EntityKey = "x", "y"
	put(t, st, a, b)
	if n := pendLen(st, "products"); n != staged {
		t.Fatalf("Store.pend holds %d after the reload, the file %d", n, staged)
	}
	var more []Item
	for i := range 500 - staged {
		more = append(more, product("N"+strconv.Itoa(i), "default", i, StatusSent))
	}
	put(t, st, more...)
	after, left := idIndexSizes(t, st, "products")
	if n := pendLen(st, "products"); n != left {
		t.Fatalf("Store.pend holds %d after the resumed merge, the file %d", n, left)
	}
	if after <= byid || left >= st.pendBound || after+left != 600+len(more) {
		t.Fatalf("after the resumed merge: byid %d staged %d (before: byid %d)", after, left, byid)
	}
	mustItem(t, st, a.ID, "x")
	mustItem(t, st, b.ID, "y")
	mustCheck(t, st)
}

// TestFormat1FileIsUpgradedAndNewerRefused: a file of format 1 (no staged
// id index entries) opens and is marked format 2, so that a feedcdc that
// reads only format 1, and would not see staged ids, refuses it; a file of
// a newer format is refused.
func TestFormat1FileIsUpgradedAndNewerRefused(t *testing.T) {
	st, path := openTemp(t)
	put(t, st, product("A", "default", 1, StatusSent))
	setFormat := func(v uint32) {
		t.Helper()
		err := st.db.Update(func(tx *bolt.Tx) error {
			return tx.Bucket(bMeta).Put(kFormat, binary.BigEndian.AppendUint32(nil, v))
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
	}
	setFormat(1)
	var err error
	if st, err = Open(path, Options{}); err != nil {
		t.Fatal(err)
	}
	err = st.db.View(func(tx *bolt.Tx) error {
		if v := binary.BigEndian.Uint32(tx.Bucket(bMeta).Get(kFormat)); v != 2 {
			return fmt.Errorf("format %d after opening a format 1 file, want 2", v)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	mustItem(t, st, product("A", "default", 1, StatusSent).ID, "1")
	setFormat(3)
	if _, err := Open(path, Options{}); err == nil || !strings.Contains(err.Error(), "newer feedcdc") {
		t.Fatalf("Open of a format 3 file: %v", err)
	}
}

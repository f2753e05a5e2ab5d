package state

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/feedcdc/feedcdc/change"
)

// dumpFile lists every bucket, key, value and bucket sequence of the store
// except the per-process meta bucket, in key order.
func dumpFile(t *testing.T, s *Store) string {
	t.Helper()
	var sb strings.Builder
	var walkB func(prefix string, b *bolt.Bucket)
	walkB = func(prefix string, b *bolt.Bucket) {
		fmt.Fprintf(&sb, "%s seq=%d\n", prefix, b.Sequence())
		b.ForEach(func(k, v []byte) error {
			if v == nil {
				walkB(fmt.Sprintf("%s/%q", prefix, k), b.Bucket(k))
				return nil
			}
			fmt.Fprintf(&sb, "%s %q=%q\n", prefix, k, v)
			return nil
		})
	}
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			if !bytes.Equal(name, bMeta) {
				walkB(fmt.Sprintf("%q", name), b)
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return sb.String()
}

// TestReplicatedWritesRebuildTheSameFile: the ops a store's commit hook
// receives, applied to another (empty) store, give it the same content —
// items and their indexes, counters, outbox and its sequence, deferred
// keys, schema history and its sequence, progress, feed locks, the
// checkpoint, and a forgotten feed's removal.
func TestReplicatedWritesRebuildTheSameFile(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	standby, err := Open(filepath.Join(dir, "standby.db"), Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer standby.Close()
	commits := 0
	active, err := Open(filepath.Join(dir, "active.db"), Options{NoSync: true, OnCommit: func(ctx context.Context, ops []Op) error {
		commits++
		return standby.Apply(ctx, ops, []byte(fmt.Sprint(commits)))
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer active.Close()
	for i := 1; i <= 30; i++ {
		items := crashBatch(i)
		err := active.Update(ctx, func(tx *Tx) error {
			if err := tx.PutItems(items); err != nil {
				return err
			}
			if i%7 == 0 {
				if err := tx.DeleteItems("products", []string{items[0].ID}); err != nil {
					return err
				}
			}
			if err := tx.PutOutbox("products", []OutboxEntry{{ID: items[1].ID, Payload: []byte(items[1].Hash)}, {ID: items[2].ID, Payload: []byte("x")}}); err != nil {
				return err
			}
			if i%5 == 0 {
				if err := tx.DeleteOutbox("products", []uint64{uint64(i)}); err != nil {
					return err
				}
			}
			if _, err := tx.PutDeferred("products", []string{fmt.Sprint(i), fmt.Sprint(i + 1)}); err != nil {
				return err
			}
			if _, err := tx.DeleteDeferred("products", []string{fmt.Sprint(i - 1)}); err != nil {
				return err
			}
			// write-ahead records of exports in flight, some removed
			if i%3 == 0 {
				tok, err := tx.PutInflight(items[:2])
				if err != nil {
					return err
				}
				if i%6 == 0 {
					if err := tx.DeleteInflight(tok); err != nil {
						return err
					}
				}
			}
			if i%10 == 0 {
				if err := tx.PutRawSnapshot(RawSnapshot{Table: fmt.Sprintf("shop.t%d", i), LastKey: []string{fmt.Sprint(i)}}); err != nil {
					return err
				}
			}
			return tx.SetCheckpoint(change.Position{File: "bin.000001", Pos: uint32(i)}, time.Unix(int64(i), 0))
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	variants := crashBatch(3)
	for i := range variants {
		variants[i].Feed = "variants"
	}
	if err := active.Update(ctx, func(tx *Tx) error { return tx.PutItems(variants) }); err != nil {
		t.Fatal(err)
	}
	if err := active.ForgetFeed(ctx, "variants"); err != nil {
		t.Fatal(err)
	}
	if err := active.AppendSchema(ctx, SchemaRecord{DB: "shop", Table: "t", DDL: "CREATE TABLE t (a INT)"}); err != nil {
		t.Fatal(err)
	}
	if err := active.AppendSchema(ctx, SchemaRecord{Seq: 10, DB: "shop", Table: "t", DDL: "DROP TABLE t"}); err != nil {
		t.Fatal(err)
	}
	if err := active.Update(ctx, func(tx *Tx) error {
		return tx.PutProgress(Progress{Feed: "products", LastKey: "99", Chunks: 2, StartedAt: time.Unix(5, 0)})
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := active.AcquireFeedLock(ctx, "productOverrides", "resync"); err != nil {
		t.Fatal(err)
	}
	if commits < 35 {
		t.Fatalf("the commit hook ran %d times, want one per Update (35)", commits)
	}
	want, got := dumpFile(t, active), dumpFile(t, standby)
	if want != got {
		t.Fatalf("the standby's file differs from the active one's\nactive:\n%s\nstandby:\n%s", want, got)
	}
	if !strings.Contains(want, `"products"`) || strings.Contains(want, `"variants"`) {
		t.Fatalf("unexpected content:\n%s", want)
	}
	if err := standby.Check(ctx); err != nil {
		t.Fatalf("the standby's indexes: %v", err)
	}
	if m, err := standby.ReplicaMark(ctx); err != nil || string(m) != fmt.Sprint(commits) {
		t.Fatalf("replica mark %q %v, want %d", m, err, commits)
	}
	// The standby continues where the active stopped: sequences were
	// replicated, so a new schema record and outbox entry do not reuse
	// numbers.
	if err := standby.AppendSchema(ctx, SchemaRecord{DB: "shop", Table: "u"}); err != nil {
		t.Fatal(err)
	}
	recs, err := standby.SchemaRecords(ctx)
	if err != nil || len(recs) != 3 || recs[2].Seq != 11 {
		t.Fatalf("schema history on the standby after a new record: %+v %v", recs, err)
	}
	// Lookup gives the current value of what an op wrote.
	if cur, err := active.Lookup(ctx, Op{Kind: OpDelete, Bucket: [][]byte{bCheckpoint}, Key: kPos}); err != nil || cur.Kind != OpPut || !bytes.Contains(cur.Value, []byte(`"pos":30`)) {
		t.Fatalf("Lookup of the checkpoint: %+v %v", cur, err)
	}
	if cur, err := active.Lookup(ctx, Op{Kind: OpPut, Bucket: [][]byte{bFeeds, []byte("variants"), bItems}, Key: []byte("x")}); err != nil || cur.Kind != OpDelete {
		t.Fatalf("Lookup in a forgotten feed: %+v %v", cur, err)
	}
	if cur, err := active.Lookup(ctx, Op{Kind: OpCreateBucket, Bucket: [][]byte{bFeeds, []byte("variants")}}); err != nil || cur.Kind != OpDropBucket {
		t.Fatalf("Lookup of a forgotten feed's bucket: %+v %v", cur, err)
	}
	// Export rebuilds the same content in an empty file, in slices.
	copyDB, err := Open(filepath.Join(dir, "export.db"), Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer copyDB.Close()
	slices := 0
	if err := active.Export(ctx, 1000, func(ops []Op) error {
		slices++
		if len(ops) > 1000 {
			t.Fatalf("a slice of %d ops", len(ops))
		}
		return copyDB.Apply(ctx, ops, nil)
	}); err != nil {
		t.Fatal(err)
	}
	if got := dumpFile(t, copyDB); got != dumpFile(t, active) || slices < 2 {
		t.Fatalf("the exported copy differs (or came in %d slices)\nactive:\n%s\ncopy:\n%s", slices, dumpFile(t, active), got)
	}
	// A store without a hook records nothing (no cost for one process).
	if err := standby.Update(ctx, func(tx *Tx) error {
		if tx.recording || len(tx.ops) != 0 {
			t.Fatal("a store without a commit hook records writes")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// TestCommitHookErrorIsReturned: a replication failure is reported by
// Update (the connector then stops), after the local commit.
func TestCommitHookErrorIsReturned(t *testing.T) {
	ctx := context.Background()
	st, err := Open(filepath.Join(t.TempDir(), "s.db"), Options{NoSync: true, OnCommit: func(context.Context, []Op) error {
		return fmt.Errorf("broker unreachable")
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	err = st.Update(ctx, func(tx *Tx) error {
		return tx.SetCheckpoint(change.Position{File: "bin.000001", Pos: 4}, time.Now())
	})
	if err == nil || !strings.Contains(err.Error(), "replication failed: broker unreachable") {
		t.Fatalf("Update with a failing hook: %v", err)
	}
	if pos, _, ok, _ := st.Checkpoint(ctx); !ok || pos.Pos != 4 {
		t.Fatalf("the local commit did not stand: %v %v", pos, ok)
	}
}

// TestApplyRejectsMalformedOps: a malformed op writes nothing.
func TestApplyRejectsMalformedOps(t *testing.T) {
	ctx := context.Background()
	st, err := Open(filepath.Join(t.TempDir(), "s.db"), Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	err = st.Apply(ctx, []Op{
		{Kind: OpPut, Bucket: [][]byte{bCheckpoint}, Key: kPos, Value: []byte(`{"position":{"file":"b","pos":4}}`)},
		{Kind: OpSequence, Bucket: [][]byte{bSchema}, Value: []byte{1}},
	}, []byte("mark"))
	if err == nil || !strings.Contains(err.Error(), "replicated write 1") || !strings.Contains(err.Error(), "sequence of 1 bytes") {
		t.Fatalf("Apply of a malformed op: %v", err)
	}
	if _, _, ok, _ := st.Checkpoint(ctx); ok {
		t.Fatal("a rejected Apply wrote its first op")
	}
	if m, _ := st.ReplicaMark(ctx); m != nil {
		t.Fatalf("a rejected Apply wrote its mark %q", m)
	}
}

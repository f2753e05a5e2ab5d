package ha

import (
	"context"
	"crypto/sha1"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/feedcdc/feedcdc/change"
	"github.com/feedcdc/feedcdc/sink"
	"github.com/feedcdc/feedcdc/sink/filesink"
	"github.com/feedcdc/feedcdc/state"
	"github.com/feedcdc/feedcdc/test/kafkatest"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

func testOptions(c *kafkatest.Cluster, instance string) Options {
	return Options{Brokers: []string{c.Addr()}, Name: "shop", TopicPrefix: "feedcdc", Instance: instance,
		SessionTimeout: 3 * time.Second, Replication: -1, Logger: slog.Default()}
}

func startCluster(t *testing.T) *kafkatest.Cluster {
	return kafkatest.Start(t, kafkatest.WithBrokerConfigs(map[string]string{"group.min.session.timeout.ms": "500"}))
}

// electedActive starts instance "a", waits until it is elected and lets
// it take over an empty state file at path, as the runner does (restore:
// nothing yet; take over), leaving the file closed for the caller to open
// with the node's commit hook.
func electedActive(ctx context.Context, t *testing.T, c *kafkatest.Cluster, path string) *Node {
	t.Helper()
	a, err := Start(ctx, testOptions(c, "a"))
	if err != nil {
		t.Fatal(err)
	}
	waitElected(t, a, 20*time.Second)
	st, err := state.Open(path, state.Options{NoSync: true})
	if err != nil {
		a.Close()
		t.Fatal(err)
	}
	defer st.Close()
	f, err := a.Follow(ctx, st)
	if err == nil {
		err = f.Takeover(ctx)
	}
	if err != nil {
		a.Close()
		t.Fatal(err)
	}
	return a
}

func waitElected(t *testing.T, n *Node, within time.Duration) int64 {
	t.Helper()
	select {
	case e := <-n.Elected():
		return e
	case <-time.After(within):
		t.Fatalf("%s was not elected within %s", n.opts.Instance, within)
	}
	return 0
}

func writeTx(ctx context.Context, st *state.Store, i int) error {
	return st.Update(ctx, func(tx *state.Tx) error {
		if err := tx.PutItems([]state.Item{{Feed: "products", ID: fmt.Sprintf("id-%d", i%50), EntityKey: fmt.Sprint(i % 50),
			Hash: fmt.Sprint("h", i), Status: state.StatusSent, ModifiedAt: time.Unix(int64(i), 0)}}); err != nil {
			return err
		}
		if err := tx.PutOutbox("products", []state.OutboxEntry{{ID: fmt.Sprintf("id-%d", i%7), Payload: []byte(fmt.Sprint(i))}}); err != nil {
			return err
		}
		return tx.SetCheckpoint(change.Position{File: "bin.000001", Pos: uint32(i)}, time.Unix(int64(i), 0))
	})
}

// TestHAReplicatesAndTakesOver: the first node is elected; a second one
// follows the changelog of the first's state transactions into its own
// file; when the first leaves, the second is elected with a larger epoch,
// takes over with the same state, and the first is fenced.
func TestHAReplicatesAndTakesOver(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := startCluster(t)
	dir := t.TempDir()

	a, err := Start(ctx, testOptions(c, "a"))
	if err != nil {
		t.Fatal(err)
	}
	waitElected(t, a, 20*time.Second)
	if err := a.Writable(); err != nil {
		t.Fatalf("the elected node is not writable: %v", err)
	}
	// As the runner does: restore (nothing yet), take over, then open the
	// state with the commit hook.
	stA, err := state.Open(filepath.Join(dir, "a.db"), state.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	fa, err := a.Follow(ctx, stA)
	if err != nil {
		t.Fatal(err)
	}
	if err := fa.Takeover(ctx); err != nil {
		t.Fatal(err)
	}
	epochA := a.Epoch()
	stA.Close()
	stA, err = state.Open(filepath.Join(dir, "a.db"), state.Options{NoSync: true, OnCommit: a.Commit})
	if err != nil {
		t.Fatal(err)
	}
	defer stA.Close()

	b, err := Start(ctx, testOptions(c, "b"))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	stB, err := state.Open(filepath.Join(dir, "b.db"), state.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer stB.Close()
	fb, err := b.Follow(ctx, stB)
	if err != nil {
		t.Fatal(err)
	}
	fctx, fcancel := context.WithCancel(ctx)
	fdone := make(chan error, 1)
	go func() { fdone <- fb.Run(fctx) }()

	for i := 1; i <= 200; i++ {
		if err := writeTx(ctx, stA, i); err != nil {
			t.Fatalf("write %d on the active node: %v", i, err)
		}
	}
	if err := b.Writable(); !errors.Is(err, ErrFenced) {
		t.Fatalf("a standby is writable: %v", err)
	}
	// The standby catches up while following.
	deadline := time.Now().Add(20 * time.Second)
	for {
		pos, _, ok, _ := stB.Checkpoint(ctx)
		if ok && pos.Pos == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the standby's checkpoint is %v (ok %v), want 200", pos, ok)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if s := b.Status(); s.Role != RoleStandby || s.Epoch != epochA {
		t.Fatalf("standby status %+v, want role standby and epoch %d", s, epochA)
	}

	// The active leaves; the standby is elected and takes over.
	a.Close()
	if err := a.Writable(); !errors.Is(err, ErrFenced) {
		t.Fatalf("a closed node is writable: %v", err)
	}
	if err := writeTx(ctx, stA, 201); !errors.Is(err, ErrFenced) {
		t.Fatalf("a fenced node's state commit replicated: %v", err)
	}
	waitElected(t, b, 20*time.Second)
	fcancel()
	if err := <-fdone; err != nil {
		t.Fatal(err)
	}
	if err := fb.Takeover(ctx); err != nil {
		t.Fatal(err)
	}
	if epochB := b.Epoch(); epochB <= epochA {
		t.Fatalf("epoch %d after takeover, not above %d", epochB, epochA)
	}
	if err := b.WaitFence(ctx); err != nil {
		t.Fatal(err)
	}
	if m, ok, err := ReadMark(ctx, stB); err != nil || ok || m.Role != RoleActive {
		t.Fatalf("mark after takeover %+v ok=%v err=%v, want role active", m, ok, err)
	}
	pos, _, _, _ := stB.Checkpoint(ctx)
	if pos.Pos != 200 {
		t.Fatalf("the new active resumes from %v, want the replicated checkpoint 200", pos)
	}
	if err := stB.Check(ctx); err != nil {
		t.Fatal(err)
	}
	itemsA, _ := stA.Counts(ctx, "products")
	itemsB, _ := stB.Counts(ctx, "products")
	if itemsA != itemsB {
		t.Fatalf("counts differ: active %+v, standby %+v", itemsA, itemsB)
	}
}

// TestHAPartitionedActiveIsFenced: an active instance that cannot reach
// the group coordinator (the broker is down) loses its lease: Writable
// fails with ErrFenced, and a guarded sink delivers nothing (the file sink
// writes no line), while before the outage the same send was delivered.
func TestHAPartitionedActiveIsFenced(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := startCluster(t)
	a, err := Start(ctx, testOptions(c, "a"))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	waitElected(t, a, 20*time.Second)
	dir := t.TempDir()
	fs, err := filesink.New(filesink.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	s := a.GuardSink(fs)
	send := func(id string) error {
		_, err := s.Send(ctx, []sink.Record{{Feed: "products", ID: id, Value: []byte(`{"sku":"` + id + `"}`)}})
		return err
	}
	if err := send("before"); err != nil {
		t.Fatalf("the active instance's send: %v", err)
	}
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	for a.Writable() == nil {
		time.Sleep(20 * time.Millisecond)
	}
	if err := a.Writable(); !errors.Is(err, ErrFenced) {
		t.Fatalf("Writable: %v", err)
	}
	if err := send("after"); !errors.Is(err, ErrFenced) {
		t.Fatalf("a fenced instance's send: %v, want ErrFenced", err)
	}
	if err := a.Commit(ctx, []state.Op{{Kind: state.OpPut, Bucket: [][]byte{[]byte("checkpoint")}, Key: []byte("pos"), Value: []byte("x")}}); !errors.Is(err, ErrFenced) {
		t.Fatalf("a fenced instance's changelog write: %v, want ErrFenced", err)
	}
	out, err := os.ReadFile(filepath.Join(dir, "products.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "before") || strings.Contains(string(out), "after") {
		t.Fatalf("file sink content %q: want the send before the outage only", out)
	}
}

// TestHALeaseContextReportsFencingAtOnce: the context a guarded sink gets
// reports the lost lease through Err as soon as the lease is over, before
// any goroutine cancels anything: a sink's per-request ctx.Err() check
// then stops the rest of a send that began while the lease held.
func TestHALeaseContextReportsFencingAtOnce(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := startCluster(t)
	a, err := Start(ctx, testOptions(c, "a"))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	waitElected(t, a, 20*time.Second)
	lc := leaseContext{Context: ctx, n: a}
	if err := lc.Err(); err != nil {
		t.Fatalf("Err while the lease holds: %v", err)
	}
	if err := c.Stop(); err != nil { // the lease can no longer be renewed
		t.Fatal(err)
	}
	for a.Writable() == nil {
		time.Sleep(20 * time.Millisecond)
	}
	if err := lc.Err(); !errors.Is(err, context.Canceled) || !errors.Is(err, ErrFenced) {
		t.Fatalf("Err after the lease: %v, want context.Canceled and ErrFenced", err)
	}
	if ctx.Err() != nil {
		t.Fatal("the parent context was canceled: the test proves nothing")
	}
}

// TestHAPublishesExistingStateToEmptyChangelog: HA turned on for an
// existing connector: the first active instance publishes its local file
// to the empty changelog, so a standby with an empty disk gets the whole
// state, not only what is written after.
func TestHAPublishesExistingStateToEmptyChangelog(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := startCluster(t)
	dir := t.TempDir()
	st, err := state.Open(filepath.Join(dir, "a.db"), state.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 120; i++ { // written by the single process, before HA
		if err := writeTx(ctx, st, i); err != nil {
			t.Fatal(err)
		}
	}
	a, err := Start(ctx, testOptions(c, "a"))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	waitElected(t, a, 20*time.Second)
	fa, err := a.Follow(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	if err := fa.Takeover(ctx); err != nil {
		t.Fatal(err)
	}
	want, _ := st.Counts(ctx, "products")
	st.Close()

	b, err := Start(ctx, testOptions(c, "b"))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	stB, err := state.Open(filepath.Join(dir, "b.db"), state.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer stB.Close()
	fb, err := b.Follow(ctx, stB)
	if err != nil {
		t.Fatal(err)
	}
	defer fb.Close()
	end, err := b.End(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for fb.Offset() < end {
		if err := fb.pollOnce(ctx); err != nil {
			t.Fatal(err)
		}
	}
	pos, _, ok, _ := stB.Checkpoint(ctx)
	got, _ := stB.Counts(ctx, "products")
	if !ok || pos.Pos != 120 || got != want || want.Total != 50 {
		t.Fatalf("the standby restored checkpoint %v (ok %v) and counts %+v, want 120 and %+v", pos, ok, got, want)
	}
	if err := stB.Check(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestHAEpochSurvivesGroupDeletion: after every instance was down and the
// empty group was deleted (Kafka does so for a group without members and
// committed offsets), group generations start at 1 again; the next active
// instance's writes must still be applied by a restoring standby (its
// epoch, a changelog offset, is above every earlier one).
func TestHAEpochSurvivesGroupDeletion(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := startCluster(t)
	dir := t.TempDir()
	takeover := func(n *Node, path string) *state.Store {
		t.Helper()
		st, err := state.Open(path, state.Options{NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		f, err := n.Follow(ctx, st)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Takeover(ctx); err != nil {
			t.Fatal(err)
		}
		st.Close()
		st, err = state.Open(path, state.Options{NoSync: true, OnCommit: n.Commit})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	// x is elected first; a joins, and becomes active when x leaves: its
	// election is at a later generation.
	x, err := Start(ctx, testOptions(c, "x"))
	if err != nil {
		t.Fatal(err)
	}
	waitElected(t, x, 20*time.Second)
	stX := takeover(x, filepath.Join(dir, "x.db"))
	a, err := Start(ctx, testOptions(c, "a"))
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // let a join as a standby
	stX.Close()
	x.Close()
	genA := waitElected(t, a, 20*time.Second)
	if genA < 2 {
		t.Fatalf("a was elected at generation %d; the test needs a later one", genA)
	}
	stA := takeover(a, filepath.Join(dir, "a.db"))
	if err := writeTx(ctx, stA, 1); err != nil {
		t.Fatal(err)
	}
	stA.Close()
	a.Close()
	// Every instance is down; the group goes.
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if _, err := adm.DeleteGroup(ctx, testOptions(c, "").Group()); err != nil {
		t.Fatal(err)
	}
	b, err := Start(ctx, testOptions(c, "b"))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if genB := waitElected(t, b, 20*time.Second); genB >= genA {
		t.Fatalf("the new group's generation %d is not below the old one's %d: the test proves nothing", genB, genA)
	}
	stB := takeover(b, filepath.Join(dir, "b.db"))
	if err := writeTx(ctx, stB, 2); err != nil {
		t.Fatal(err)
	}
	stB.Close()
	// A standby with an empty disk restores everything, b's write included.
	stC, err := state.Open(filepath.Join(dir, "c.db"), state.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer stC.Close()
	f, err := b.Follow(ctx, stC)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	end, err := b.End(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(time.Minute); f.Offset() < end; {
		if time.Now().After(deadline) {
			t.Fatalf("the standby read up to offset %d of %d", f.Offset(), end)
		}
		if err := f.pollOnce(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if pos, _, ok, _ := stC.Checkpoint(ctx); !ok || pos.Pos != 2 {
		t.Fatalf("the restored checkpoint is %v (ok %v), want the new active's 2", pos, ok)
	}
}

// cancelAfter is a context that its own Err cancels on the n-th call. The
// follower consults ctx.Err once after each poll and once before applying
// each transaction (state.Store.Apply), so it ends the context at an exact
// point inside a fetch: where the runner's cancel lands when the standby
// is elected while it applies a fetch (a restarted standby restoring the
// changelog, or one that lags).
type cancelAfter struct {
	context.Context
	n      atomic.Int32
	cancel context.CancelFunc
}

func newCancelAfter(parent context.Context, n int32) *cancelAfter {
	ctx, cancel := context.WithCancel(parent)
	c := &cancelAfter{Context: ctx, cancel: cancel}
	c.n.Store(n)
	return c
}

func (c *cancelAfter) Err() error {
	if c.n.Add(-1) == 0 {
		c.cancel()
	}
	return c.Context.Err()
}

// exportAll is the whole content of a state file as Export hands it out.
func exportAll(t *testing.T, ctx context.Context, st *state.Store) []state.Op {
	t.Helper()
	var all []state.Op
	if err := st.Export(ctx, 1000, func(ops []state.Op) error {
		all = append(all, ops...)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return all
}

// TestHATakeoverAppliesTheRecordsOfAnInterruptedFetch: a standby is
// elected while it applies a fetch of the changelog (it lags, or restores
// after a restart), so the runner ends its follow in the middle of the
// fetch: two of the fetch's transactions are applied, the third's apply
// meets the ended context. The takeover must still apply every record
// after what the file holds: the new active's file equals the old
// active's. Before the fix the takeover read on from where the consumer
// had got to, after the whole fetch, and the new active lost the fetch's
// other transactions: outbox entries that had been replaced (an older
// payload, flushed later as if it were the item's current version), the
// item states of sends, the counters.
func TestHATakeoverAppliesTheRecordsOfAnInterruptedFetch(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := startCluster(t)
	dir := t.TempDir()
	a := electedActive(ctx, t, c, filepath.Join(dir, "a.db"))
	defer a.Close()
	stA, err := state.Open(filepath.Join(dir, "a.db"), state.Options{NoSync: true, OnCommit: a.Commit})
	if err != nil {
		t.Fatal(err)
	}
	defer stA.Close()
	const fetched, txs = 60, 80
	for i := 1; i <= fetched; i++ {
		if err := writeTx(ctx, stA, i); err != nil {
			t.Fatal(err)
		}
	}

	b, err := Start(ctx, testOptions(c, "b"))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	stB, err := state.Open(filepath.Join(dir, "b.db"), state.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer stB.Close()
	fb, err := b.Follow(ctx, stB)
	if err != nil {
		t.Fatal(err)
	}
	// The first fetch holds the whole changelog (written before the follow
	// began): a's epoch marker, the publication of its (empty) file, then
	// the transactions. The context ends at the apply of transaction 3:
	// the poll's Err, the marker, the publication, transactions 1 and 2,
	// then the sixth call.
	cctx := newCancelAfter(ctx, 6)
	if err := fb.pollOnce(cctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("the interrupted poll returned %v, want context.Canceled", err)
	}
	if pos, _, _, _ := stB.Checkpoint(ctx); pos.Pos != 2 {
		t.Fatalf("the interrupted poll applied up to transaction %d, want 2: the fetch did not hold the transactions the test needs", pos.Pos)
	}

	// The active writes on while the standby has not read them yet.
	for i := fetched + 1; i <= txs; i++ {
		if err := writeTx(ctx, stA, i); err != nil {
			t.Fatal(err)
		}
	}
	want := exportAll(t, ctx, stA)
	a.Close()
	waitElected(t, b, 20*time.Second)
	tctx, tcancel := context.WithTimeout(ctx, time.Minute)
	defer tcancel()
	if err := fb.Takeover(tctx); err != nil {
		t.Fatal(err)
	}
	got := exportAll(t, ctx, stB)
	if pos, _, _, _ := stB.Checkpoint(ctx); pos.Pos != txs {
		t.Errorf("the new active resumes from transaction %d, want %d", pos.Pos, txs)
	}
	if n, _ := stB.OutboxLen(ctx, "products"); n != 7 {
		t.Errorf("the new active's outbox holds %d entries, want 7 (one per id)", n)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("the new active's file differs from the old active's: %d records against %d", len(got), len(want))
	}
	if err := stB.Check(ctx); err != nil {
		t.Error(err)
	}
}

// TestHAReplicatesATransactionLargerThanABrokerMessage: one state
// transaction whose changelog records add up to more than the broker's
// default message size limit (max.message.bytes, 1 MiB) is replicated
// and restored whole: the state topic is created with max.message.bytes
// as large as the producer's batches. Before, the producer filled batches
// of up to 16 MiB that the broker refused (MESSAGE_TOO_LARGE): the active
// instance stopped with "committed locally but its replication failed",
// seen in TestHA when a takeover's first batch rebuilt every product
// (21,553 records, 1.08 MB compressed).
func TestHAReplicatesATransactionLargerThanABrokerMessage(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := startCluster(t)
	dir := t.TempDir()
	a := electedActive(ctx, t, c, filepath.Join(dir, "a.db"))
	defer a.Close()
	var ops int
	stA, err := state.Open(filepath.Join(dir, "a.db"), state.Options{NoSync: true, OnCommit: func(ctx context.Context, o []state.Op) error {
		ops = len(o)
		return a.Commit(ctx, o)
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer stA.Close()
	const n = 60_000
	items := make([]state.Item, n)
	for i := range items {
		id := fmt.Sprintf("%x", sha1.Sum([]byte(fmt.Sprint("id", i))))
		h := fmt.Sprintf("%x", sha1.Sum([]byte(fmt.Sprint("hash", i))))
		items[i] = state.Item{Feed: "products", ID: id, EntityKey: fmt.Sprint(i), Hash: h, Status: state.StatusSent,
			RequestID: h[:16], ModifiedAt: time.Unix(int64(i), 0), SentAt: time.Unix(int64(i), 0)}
	}
	if err := stA.Update(ctx, func(tx *state.Tx) error {
		if err := tx.PutItems(items); err != nil {
			return err
		}
		return tx.SetCheckpoint(change.Position{File: "bin.000001", Pos: 1}, time.Unix(1, 0))
	}); err != nil {
		t.Fatalf("a transaction of %d items: %v", n, err)
	}
	end, err := a.End(ctx)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := c.ReadAll(ctx, a.Options().StateTopic())
	if err != nil {
		t.Fatal(err)
	}
	size := 0
	for _, r := range recs {
		size += len(r.Key) + len(r.Value)
	}
	if size <= 8<<20 {
		t.Fatalf("the changelog holds %d bytes of keys and values: the test needs more than 8 MiB", size)
	}
	want := exportAll(t, ctx, stA)
	if cfg, err := c.TopicConfig(ctx, a.Options().StateTopic()); err != nil || cfg["max.message.bytes"] != fmt.Sprint(maxBatchBytes) {
		t.Errorf("the state topic's max.message.bytes is %q (%v), want %d", cfg["max.message.bytes"], err, maxBatchBytes)
	}

	stB, err := state.Open(filepath.Join(dir, "b.db"), state.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer stB.Close()
	fb, err := a.Follow(ctx, stB)
	if err != nil {
		t.Fatal(err)
	}
	defer fb.Close()
	for deadline := time.Now().Add(time.Minute); fb.Offset() < end; {
		if time.Now().After(deadline) {
			t.Fatalf("the standby read up to offset %d of %d", fb.Offset(), end)
		}
		if err := fb.pollOnce(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if got := exportAll(t, ctx, stB); !reflect.DeepEqual(got, want) {
		t.Errorf("the restored file differs: %d records against %d", len(got), len(want))
	}
	t.Logf("one transaction of %d changelog records, %d bytes of keys and values", ops, size)
}

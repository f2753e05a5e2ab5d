package connector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/feedcdc/feedcdc/change"
	"github.com/feedcdc/feedcdc/sink"
)

// gatedSink holds every Send until the gate opens or the send's context
// ends, as a destination that stopped answering would; entered receives one
// value per Send that started waiting.
type gatedSink struct {
	sink.Sink
	entered chan struct{}
	mu      sync.Mutex
	gate    chan struct{}
}

func newGatedSink() *gatedSink {
	return &gatedSink{entered: make(chan struct{}, 1000), gate: make(chan struct{})}
}

func (g *gatedSink) Send(ctx context.Context, recs []sink.Record) ([]sink.Result, error) {
	g.mu.Lock()
	gate := g.gate
	g.mu.Unlock()
	select {
	case g.entered <- struct{}{}:
	default:
	}
	select {
	case <-gate:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return g.Sink.Send(ctx, recs)
}

func (g *gatedSink) open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.gate:
	default:
		close(g.gate)
	}
}

// TestResyncCancelledStopsTouchingState: a resync whose caller gives up
// (its context is cancelled while a chunk is being sent) returns only once
// its chunk job stopped, with the chunk's items recorded as in flight
// (pending: the write-ahead record of the abandoned export applied); nothing writes the feed's progress or items after
// it returned, its feed lock is free at once, and a second resync then
// runs cleanly. The chunk job used to keep running on the exporter with the
// exporter's context after Resync had returned and released the lock, and
// wrote the progress of a sync nobody ran any more.
func TestResyncCancelledStopsTouchingState(t *testing.T) {
	g := newGatedSink()
	e := newEnv(t, nil, func(s sink.Sink) sink.Sink { g.Sink = s; return g })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := e.p.Resync(ctx, ResyncOptions{Feed: "products", BatchSize: 20, ThreadCount: 2})
		done <- err
	}()
	select {
	case <-g.entered:
	case err := <-done:
		t.Fatalf("resync ended before sending anything: %v", err)
	case <-time.After(time.Minute):
		t.Fatal("the resync never sent a chunk")
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled resync returned %v, want context.Canceled", err)
	}
	bg := context.Background()
	before, hadBefore, err := e.store.Progress(bg, "products")
	if err != nil {
		t.Fatal(err)
	}
	countsBefore, err := e.store.Counts(bg, "products")
	if err != nil {
		t.Fatal(err)
	}
	// The chunk that was being sent when the resync gave up is in the
	// state as in flight (its write-ahead, applied before Resync returned):
	// the destination may hold it.
	if countsBefore.Total == 0 || countsBefore.Pending != countsBefore.Total || e.store.InflightRecords() != 0 {
		t.Fatalf("after the cancelled resync: counts %+v, %d write-ahead records; want the chunk in flight as pending items, no record left",
			countsBefore, e.store.InflightRecords())
	}
	// Whatever the cancelled resync still had running may proceed now.
	g.open()
	if err := e.p.Do(bg, func(context.Context) error { return nil }); err != nil {
		t.Fatal(err)
	}
	after, hadAfter, err := e.store.Progress(bg, "products")
	if err != nil {
		t.Fatal(err)
	}
	countsAfter, err := e.store.Counts(bg, "products")
	if err != nil {
		t.Fatal(err)
	}
	if hadBefore != hadAfter || before.Chunks != after.Chunks || before.Processed != after.Processed || !before.UpdatedAt.Equal(after.UpdatedAt) {
		t.Fatalf("progress written after the cancelled resync returned: %+v (had %v), then %+v (had %v)", before, hadBefore, after, hadAfter)
	}
	if countsBefore != countsAfter {
		t.Fatalf("item states written after the cancelled resync returned: %+v, then %+v", countsBefore, countsAfter)
	}
	// The lock is free at once and a second resync finishes the job.
	release, err := e.store.AcquireFeedLock(bg, "products", "test")
	if err != nil {
		t.Fatalf("feed lock after the cancelled resync: %v", err)
	}
	if err := release(); err != nil {
		t.Fatal(err)
	}
	res, err := e.p.Resync(bg, ResyncOptions{Feed: "products", BatchSize: 20, ThreadCount: 2})
	if err != nil {
		t.Fatal(err)
	}
	counts, err := e.store.Counts(bg, "products")
	if err != nil {
		t.Fatal(err)
	}
	recs := e.records(t, "products")
	if res.Stats.Sent == 0 || counts.Sent != counts.Total || int(counts.Total) != len(recs) || counts.Pending != 0 {
		t.Fatalf("second resync: %+v; state %+v; topic has %d keys", res.Stats, counts, len(recs))
	}
	if !res.Progress.Finished() {
		t.Fatalf("second resync's progress not finished: %+v", res.Progress)
	}
}

// TestResyncVanishedPassOnlyWhenTheStateHeldItems: a first full sync (the
// state held nothing for the feed) reads no remembered item at all; a
// resync of an unchanged catalog reads the state once and rebuilds
// nothing for the pass; after products are deleted at the source, a resync
// rebuilds exactly them and sends their items once as deleted.
func TestResyncVanishedPassOnlyWhenTheStateHeldItems(t *testing.T) {
	e := newEnv(t, nil, nil)
	ctx := context.Background()
	first, err := e.p.Resync(ctx, ResyncOptions{Feed: "products", BatchSize: 25, ThreadCount: 2})
	if err != nil {
		t.Fatal(err)
	}
	if !first.Vanished.Skipped || first.Vanished.Checked != 0 || first.Vanished.Rebuilt != 0 || first.Stats.Sent == 0 {
		t.Fatalf("first sync: vanished %+v, stats %+v; want the pass skipped", first.Vanished, first.Stats)
	}
	again, err := e.p.Resync(ctx, ResyncOptions{Feed: "products", BatchSize: 25, ThreadCount: 2})
	if err != nil {
		t.Fatal(err)
	}
	if again.Vanished.Skipped || again.Vanished.Checked != first.Stats.Sent || again.Vanished.Rebuilt != 0 || again.Stats.Sent != 0 {
		t.Fatalf("unchanged resync: vanished %+v, stats %+v; want %d items checked, nothing rebuilt or sent", again.Vanished, again.Stats, first.Stats.Sent)
	}
	rows, err := e.admin.QueryContext(ctx, "SELECT entity_id, sku FROM catalog_product_entity WHERE type_id = 'simple' ORDER BY entity_id DESC LIMIT 2")
	if err != nil {
		t.Fatal(err)
	}
	gone := map[string]bool{}
	var ids []any
	for rows.Next() {
		var id int64
		var sku string
		if err := rows.Scan(&id, &sku); err != nil {
			t.Fatal(err)
		}
		gone[sku] = true
		ids = append(ids, id)
	}
	rows.Close()
	if len(ids) != 2 {
		t.Fatalf("found %d simple products", len(ids))
	}
	if _, err := e.admin.ExecContext(ctx, "DELETE FROM catalog_product_entity WHERE entity_id IN (?, ?)", ids...); err != nil {
		t.Fatal(err)
	}
	after, err := e.p.Resync(ctx, ResyncOptions{Feed: "products", BatchSize: 25, ThreadCount: 2})
	if err != nil {
		t.Fatal(err)
	}
	if after.Vanished.Rebuilt != 2 || after.Stats.Deleted == 0 || after.Stats.Deleted != after.Stats.Sent {
		t.Fatalf("resync after deleting 2 products: vanished %+v, stats %+v; want 2 entities rebuilt, only deleted payloads sent", after.Vanished, after.Stats)
	}
	deleted := 0
	for _, r := range e.records(t, "products") {
		var item map[string]any
		if err := json.Unmarshal(r.Value, &item); err != nil {
			t.Fatal(err)
		}
		sku, _ := item["sku"].(string)
		if gone[sku] != (item["deleted"] == true) {
			t.Fatalf("latest record of %s: deleted=%v", sku, item["deleted"])
		}
		if gone[sku] {
			deleted++
		}
	}
	if deleted != after.Stats.Deleted {
		t.Fatalf("%d deleted records in the topic, the resync sent %d", deleted, after.Stats.Deleted)
	}
}

// TestResyncChunkBuiltBeforeAStreamExportIsRebuilt: full-sync chunks are
// built off the exporter, ahead of their export. A stream batch that
// exports a key after its chunk was built but before the chunk is
// exported must win: the chunk rebuilds that key on the exporter instead of
// sending its older build (which would bring back the product's old SKU
// and delete its new one at the destination).
func TestResyncChunkBuiltBeforeAStreamExportIsRebuilt(t *testing.T) {
	g := newGatedSink()
	rec := &buildRecorder{}
	e := newEnv(t, nil, func(s sink.Sink) sink.Sink { g.Sink = s; return g }, func(o *PipelineOptions) { o.Observer = rec })
	ctx := context.Background()
	f, _ := e.reg.Feed("products")
	keys := scanKeys(t, f)
	const size = 10
	if len(keys) < 5*size {
		t.Fatalf("the catalog has %d products, want at least %d", len(keys), 5*size)
	}
	// The first two chunks are exported together and wait at the gate;
	// meanwhile the third and fourth are built. Its first key changes.
	key := keys[2*size]
	var sku string
	var setID int64
	if err := e.admin.QueryRow("SELECT sku, attribute_set_id FROM catalog_product_entity WHERE entity_id = ?", key).Scan(&sku, &setID); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := e.p.Resync(ctx, ResyncOptions{Feed: "products", BatchSize: size, ThreadCount: 2})
		done <- err
	}()
	<-g.entered
	deadline := time.Now().Add(time.Minute)
	for rec.count() < 4 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d chunks built while the first ones wait at the sink", rec.count())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := e.admin.Exec("UPDATE catalog_product_entity SET sku = CONCAT(sku, '-new') WHERE entity_id = ?", key); err != nil {
		t.Fatal(err)
	}
	id, _ := strconv.ParseInt(key, 10, 64)
	c := &change.Change{Table: productTable(e.db), Op: change.OpUpdate, Before: []any{id, setID, "simple", sku}, After: []any{id, setID, "simple", sku + "-new"}}
	if err := e.p.Change(ctx, c); err != nil {
		t.Fatal(err)
	}
	if err := e.p.TxEnd(ctx, change.TxEnd{Position: change.Position{Flavor: "mariadb", GTIDSet: "0-1-9", File: "binlog.000001", Pos: 999}, Timestamp: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := e.p.cut(ctx, false); err != nil {
		t.Fatal(err)
	}
	g.open()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := e.p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	renamed := 0
	for _, r := range e.records(t, "products") {
		var item map[string]any
		if err := json.Unmarshal(r.Value, &item); err != nil {
			t.Fatal(err)
		}
		switch item["sku"] {
		case sku:
			if item["deleted"] != true {
				t.Fatalf("the old SKU %s is live again at the destination: %s", sku, r.Value)
			}
		case sku + "-new":
			if item["deleted"] == true {
				t.Fatalf("the new SKU %s-new is deleted at the destination", sku)
			}
			renamed++
		}
	}
	if renamed == 0 {
		t.Fatalf("no item of the new SKU %s-new at the destination", sku)
	}
}

func (r *buildRecorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.builds)
}

// TestFullSyncMemoryIsBounded: a full sync builds chunks ahead of their
// export. With a destination that stopped answering, it used to build
// about three times thread_count chunks ahead whatever their items weigh
// (a first start's four feeds at once held 600 MiB on the large catalog);
// now the items built and not yet persisted stay within
// backpressure.max_inflight_bytes (Pipeline.syncMem, plus the error of one
// chunk's estimate), the sync finishes once the destination answers, and
// every byte is returned.
func TestFullSyncMemoryIsBounded(t *testing.T) {
	g := newGatedSink()
	var built atomic.Int64
	const limit = 64 << 10
	e := newEnv(t, nil, func(s sink.Sink) sink.Sink { g.Sink = s; return g }, func(o *PipelineOptions) {
		o.Observer, o.MaxInflightBytes = builtCounter{&built}, limit
	})
	ctx := context.Background()
	f, _ := e.reg.Feed("products")
	keys := scanKeys(t, f)
	const size, threads = 4, 4
	sample, err := f.Build(ctx, keys[:size])
	if err != nil {
		t.Fatal(err)
	}
	perItem := itemsBytes(sample) / len(sample)
	chunk := itemsBytes(sample)
	if unbounded := 3 * threads * chunk; unbounded <= 2*limit || len(keys) < 4*3*threads {
		t.Fatalf("the test needs chunks that overrun the bound: chunk %d bytes, limit %d, %d products", chunk, limit, len(keys))
	}
	done := make(chan error, 1)
	go func() {
		_, err := e.p.Resync(ctx, ResyncOptions{Feed: "products", BatchSize: size, ThreadCount: threads})
		done <- err
	}()
	select {
	case <-g.entered:
	case err := <-done:
		t.Fatalf("resync ended before sending anything: %v", err)
	case <-time.After(time.Minute):
		t.Fatal("the resync never sent a chunk")
	}
	// Wait until the builders stopped: the planner waits for memory and
	// the count of built items no longer moves.
	last, still := int64(-1), 0
	for deadline := time.Now().Add(time.Minute); still < 10; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the builders never stopped (built %d items)", built.Load())
		}
		if n := built.Load(); n == last && e.p.syncMem.Waiting() == 1 {
			still++
		} else {
			last, still = n, 0
		}
	}
	if held := int(built.Load()) * perItem; held > 2*limit || held < 2*chunk {
		t.Errorf("items built ahead of the stalled export: %d items, about %d bytes; want at least two chunks (%d bytes) and at most 2 x max_inflight_bytes (%d)",
			built.Load(), held, 2*chunk, 2*limit)
	}
	g.open()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	counts, err := e.store.Counts(ctx, "products")
	if err != nil {
		t.Fatal(err)
	}
	if counts.Sent != counts.Total || int(counts.Total) != len(e.records(t, "products")) {
		t.Fatalf("after the gate opened: %+v, %d records", counts, len(e.records(t, "products")))
	}
	if n := e.p.syncMem.InFlight(); n != 0 {
		t.Fatalf("%d bytes of sync memory still held after the sync", n)
	}
}

// chunkSizes is an Observer recording the items of each build of one feed.
type chunkSizes struct {
	feed  string
	mu    sync.Mutex
	sizes []int
}

func (c *chunkSizes) Built(feed string, items int, _ time.Duration) {
	if feed == c.feed {
		c.mu.Lock()
		c.sizes = append(c.sizes, items)
		c.mu.Unlock()
	}
}
func (*chunkSizes) Exported(string, ExportStats, time.Duration) {}
func (*chunkSizes) RawSent(int, time.Duration)                  {}
func (*chunkSizes) Checkpointed(change.Position, time.Time)     {}
func (*chunkSizes) Queue(int, int64)                            {}
func (*chunkSizes) SourceEvent(time.Time)                       {}

// TestFullSyncChunksOfManyItemsPerKeyAreCut: productOverrides has one item
// per store view and customer group of an entity (ten per key on the tiny
// catalog); once its first chunks showed that, a full sync cuts chunks of
// fewer keys so that one holds at most chunkItemsPerKey × batch_size items
// (one chunk is one state transaction, and the bbolt nodes it touches are
// what it holds in memory). Before, every chunk had batch_size keys (the
// large catalog's chunks held 20,000 items, 40,000 in a transaction).
func TestFullSyncChunksOfManyItemsPerKeyAreCut(t *testing.T) {
	rec := &chunkSizes{feed: "productOverrides"}
	e := newEnv(t, nil, nil, func(o *PipelineOptions) { o.Observer = rec })
	f, _ := e.reg.Feed("productOverrides")
	keys := scanKeys(t, f)
	const size = 4
	res, err := e.p.Resync(context.Background(), ResyncOptions{Feed: "productOverrides", BatchSize: size, ThreadCount: 1})
	if err != nil {
		t.Fatal(err)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	items := 0
	for _, n := range rec.sizes {
		items += n
	}
	if items != res.Stats.Built || items < 2*chunkItemsPerKey*len(keys) {
		t.Fatalf("built %d items in chunks %v (resync built %d) for %d keys; want more than %d items per key for this test", items, rec.sizes, res.Stats.Built, len(keys), 2*chunkItemsPerKey)
	}
	// The planner cuts up to three chunks (one building, one queued, one
	// waiting) before the first build tells it the items per key.
	for i, n := range rec.sizes {
		if i >= 3 && n > chunkItemsPerKey*size {
			t.Errorf("chunk %d holds %d items, want at most %d (chunks: %v)", i+1, n, chunkItemsPerKey*size, rec.sizes)
		}
	}
	if want := (len(keys) + size - 1) / size; len(rec.sizes) <= want {
		t.Errorf("%d chunks for %d keys, want more than %d chunks of %d keys (chunks: %v)", len(rec.sizes), len(keys), want, size, rec.sizes)
	}
}

// TestResyncOfDuplicateSkusSendsNothingTheSecondTime: a product that
// copies another's sku and falls into another chunk builds no items (the
// lower entity_id owns the sku in every chunk), so a resync of the
// unchanged catalog sends nothing and the topic holds the owner's items;
// when the owner's delete is streamed, the duplicate's items take the sku
// over.
func TestResyncOfDuplicateSkusSendsNothingTheSecondTime(t *testing.T) {
	e := newEnv(t, nil, nil)
	ctx := context.Background()
	var owner int64
	var sku string
	if err := e.admin.QueryRowContext(ctx, "SELECT entity_id, sku FROM catalog_product_entity WHERE type_id = 'simple' ORDER BY entity_id LIMIT 1").Scan(&owner, &sku); err != nil {
		t.Fatal(err)
	}
	const dup = 900000
	for _, q := range []string{
		fmt.Sprintf(`INSERT INTO catalog_product_entity (entity_id, attribute_set_id, type_id, sku, created_at, updated_at) VALUES (%d, 4, 'simple', '%s', NOW(), NOW())`, dup, sku),
		fmt.Sprintf(`INSERT INTO catalog_product_website (product_id, website_id) SELECT %d, website_id FROM catalog_product_website WHERE product_id = %d`, dup, owner),
	} {
		if _, err := e.admin.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	productIDs := func() map[float64]int {
		out := map[float64]int{}
		for _, r := range e.records(t, "products") {
			var item map[string]any
			if err := json.Unmarshal(r.Value, &item); err != nil {
				t.Fatal(err)
			}
			if item["sku"] == sku && item["deleted"] != true {
				id, _ := item["productId"].(float64)
				out[id]++
			}
		}
		return out
	}
	opts := ResyncOptions{Feed: "products", BatchSize: 25, ThreadCount: 2}
	if _, err := e.p.Resync(ctx, opts); err != nil {
		t.Fatal(err)
	}
	if got := productIDs(); len(got) != 1 || got[float64(owner)] == 0 {
		t.Fatalf("items of sku %s by productId after the first sync: %v, want only %d's", sku, got, owner)
	}
	again, err := e.p.Resync(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if again.Stats.Sent != 0 {
		t.Fatalf("resync of the unchanged catalog sent %d items (stats %+v), want 0", again.Stats.Sent, again.Stats)
	}
	// The owner's delete, streamed: the duplicate is rebuilt with it.
	if _, err := e.admin.ExecContext(ctx, "DELETE FROM catalog_product_entity WHERE entity_id = ?", owner); err != nil {
		t.Fatal(err)
	}
	c := &change.Change{Table: productTable(e.db), Op: change.OpDelete, Before: []any{owner, int64(4), "simple", sku}}
	if err := e.p.Change(ctx, c); err != nil {
		t.Fatal(err)
	}
	if err := e.p.TxEnd(ctx, change.TxEnd{Position: change.Position{Flavor: "mariadb", GTIDSet: "0-1-78", File: "binlog.000001", Pos: 4343}, Timestamp: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := e.p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := productIDs(); len(got) != 1 || got[dup] == 0 {
		t.Fatalf("items of sku %s by productId after the owner's delete: %v, want only %d's", sku, got, dup)
	}
}

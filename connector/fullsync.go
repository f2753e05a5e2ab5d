package connector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/feedcdc/feedcdc/connector/snapshot"
	"github.com/feedcdc/feedcdc/feeds"
	"github.com/feedcdc/feedcdc/state"
	"github.com/feedcdc/feedcdc/telemetry"
	"go.opentelemetry.io/otel/trace"
)

// A full sync (Resync) is a pipeline of three stages, so that reading the
// source, building, sending and writing the state overlap:
//
//  1. plan: one goroutine enumerates the feed's entity keys (Feed.Scan) and
//     cuts them into chunks of BatchSize keys, in key order;
//  2. build: ThreadCount goroutines build chunks (Feed.Build) off the
//     exporter; only reads of the source happen here;
//  3. persist: the caller's goroutine hands the built chunks, in key order,
//     to the exporter as jobs (Pipeline.Do), which diff them with the
//     state, send what changed and write item states and progress in one
//     state transaction.
//
// The queue between the stages holds at most ThreadCount chunks, so at
// most about 2×ThreadCount+2 chunks are in memory whatever the catalog's
// size. A chunk built off the exporter may be older than an export the
// stream (or a retry) made of one of its keys meanwhile: the exporter
// records the keys it exported while a full sync of their feed runs
// (exportWatch), and the persist job rebuilds those keys on the exporter
// before exporting the chunk, so a newer export is never overwritten by an
// older full-sync build.

// VanishedStats says what the pass over remembered entities did.
type VanishedStats struct {
	// Skipped is set when the state held no item of the feed when the
	// sync began (a first start, or after CleanupFeed): nothing can have
	// vanished, so the state is not read at all.
	Skipped bool `json:"skipped"`
	// Checked counts the remembered items read from the state.
	Checked int `json:"checked"`
	// Rebuilt counts the remembered entities the scan did not enumerate,
	// rebuilt so that the vanished ones are sent as deleted.
	Rebuilt int `json:"rebuilt"`
}

// fullSync is one run of Resync.
type fullSync struct {
	p   *Pipeline
	f   feeds.Feed
	ro  ResyncOptions
	op  string
	log *slog.Logger
	eo  ExportOptions
	// prog is written by the persist jobs on the exporter and read by the
	// caller between them (Do returns only after its job stopped).
	prog   state.Progress
	res    ResyncResult
	sample []feeds.Item
	// seen holds every key the scan enumerated when a vanished pass is
	// needed (nil otherwise).
	seen *keySet
	// refreshed counts keys rebuilt on the exporter because the stream
	// exported them after their chunk was built.
	refreshed int
	start     time.Time
	// scanned counts the keys the scan enumerated so far (the ones an
	// earlier attempt completed too), scanDone is set once it ended: the
	// progress's total is then exact, and ro.Total (an estimate) until.
	// Written by the plan goroutine, read by the persist jobs.
	scanned  atomic.Int64
	scanDone atomic.Bool
	// chunkBytes is the memory estimate of the next chunk: the size of the
	// last one built (0 before the first build).
	chunkBytes atomic.Int64
	// itemsPerKey is the items per key of the last chunk built, in
	// thousandths (0 before the first build): chunkKeys cuts chunks by it.
	itemsPerKey atomic.Int64
	// held are the chunks holding bytes of Pipeline.syncMem.
	heldMu sync.Mutex
	held   map[*syncChunk]struct{}
}

// total is the progress's total: the keys the scan enumerated once it has
// ended, until then the estimate given (ro.Total) or, when the scan has
// already enumerated more, that.
func (fs *fullSync) total() int64 {
	n := fs.scanned.Load()
	if fs.scanDone.Load() {
		return n
	}
	return max(fs.ro.Total, n)
}

// syncChunk is one chunk of keys on its way through the stages.
type syncChunk struct {
	keys []string
	seq  uint64 // exportWatch sequence when its build started
	// items and err are set by the build before built is closed.
	items []feeds.Item
	err   error
	built chan struct{}
	// acquired and charged are the chunk's bytes in Pipeline.syncMem:
	// acquired before the build (the estimate), charged after it when the
	// items turned out larger; both are returned once it is persisted
	// (fullSync.release).
	acquired int
	charged  int64
}

// Resync runs a full (or by-ids) sync of one feed through the pipeline
// (see the stages above). Progress is persisted per persist job, in the
// same transaction as its items. When ctx ends, Resync returns once
// nothing it started touches the state any more.
func (p *Pipeline) Resync(ctx context.Context, ro ResyncOptions) (ResyncResult, error) {
	fs, err := p.newFullSync(ro)
	if err != nil {
		return ResyncResult{Feed: ro.Feed}, err
	}
	release, err := p.o.Store.AcquireFeedLock(ctx, ro.Feed, fs.owner())
	if err != nil {
		return fs.res, fmt.Errorf("connector: resync %s: %w", ro.Feed, err)
	}
	defer release()
	if err := fs.begin(ctx); err != nil {
		return fs.res, err
	}
	if len(ro.ByIDs) > 0 {
		err = fs.runByIDs(ctx)
	} else {
		err = fs.runFull(ctx)
	}
	if err != nil {
		return fs.res, err
	}
	return fs.finish(), nil
}

// newFullSync checks the options and fills in their defaults.
func (p *Pipeline) newFullSync(ro ResyncOptions) (*fullSync, error) {
	if p.o.Registry == nil {
		return nil, errors.New("connector: no feeds are enabled")
	}
	f, ok := p.o.Registry.Feed(ro.Feed)
	if !ok {
		return nil, fmt.Errorf("connector: unknown or disabled feed %q; enabled feeds: %s", ro.Feed, strings.Join(p.FeedNames(), ", "))
	}
	if ro.BatchSize <= 0 {
		ro.BatchSize = 500
	}
	if ro.ThreadCount <= 0 {
		ro.ThreadCount = 1
	}
	op := OpFullSync
	if len(ro.ByIDs) > 0 {
		op = OpResyncByIDs
	} else if p.o.policy(ro.Feed).Mode == ModeLegacy {
		op = OpFullSyncLegcy
	}
	fs := &fullSync{p: p, f: f, ro: ro, op: op, log: p.o.Logger.With("feed", ro.Feed)}
	fs.res = ResyncResult{Feed: ro.Feed}
	return fs, nil
}

func (fs *fullSync) owner() string {
	if fs.ro.Owner != "" {
		return fs.ro.Owner
	}
	return fmt.Sprintf("resync(pid %d)", os.Getpid())
}

// begin forgets the feed's state when asked, sets up the progress (a new
// one, or the unfinished one to continue) and decides whether a vanished
// pass can find anything.
func (fs *fullSync) begin(ctx context.Context) error {
	p, ro := fs.p, fs.ro
	start := p.o.Now()
	fs.start = start
	if ro.CleanupFeed && !ro.DryRun {
		fs.log.Warn("forgetting the feed's state: every item is sent again, and items of entities deleted meanwhile stay at the destination; clean the destination first", "operation", fs.op)
		if err := p.Do(ctx, func(ctx context.Context) error { return p.o.Store.ForgetFeed(ctx, ro.Feed) }); err != nil {
			return fmt.Errorf("connector: cleanup feed %s: %w", ro.Feed, err)
		}
	}
	counts, err := p.o.Store.Counts(ctx, ro.Feed)
	if err != nil {
		return fmt.Errorf("connector: resync %s: %w", ro.Feed, err)
	}
	held := counts.Total
	fs.prog = state.Progress{Feed: ro.Feed, Position: ro.Position, StartedAt: start, DryRun: ro.DryRun, StateItems: &held}
	if ro.Continue {
		old, ok, err := p.o.Store.Progress(ctx, ro.Feed)
		if err != nil {
			return err
		}
		if ok && !old.Finished() && !old.DryRun {
			fs.prog = old
			fs.log.Info("continuing resync", "operation", fs.op, "after_key", old.LastKey, "chunks_done", old.Chunks)
		} else {
			fs.log.Info("no unfinished resync to continue; starting from the beginning", "operation", fs.op)
		}
	}
	if ro.Total > 0 {
		fs.prog.Total = ro.Total
	}
	// What the state held when the sync (or the one continued) began; a
	// progress written before this was recorded counts as "something".
	if fs.prog.StateItems == nil || *fs.prog.StateItems > 0 {
		fs.seen = &keySet{}
	}
	if ro.DryRun && ro.SampleSize > 0 {
		fs.sample = make([]feeds.Item, 0, ro.SampleSize)
	}
	fs.eo = ExportOptions{DryRun: ro.DryRun, Operation: fs.op, Force: len(ro.ByIDs) > 0, Position: ro.Position}
	if fs.sample != nil {
		fs.eo.Sample = &fs.sample
	}
	fs.res.Progress = fs.prog
	fs.log.Info("start processing", "operation", fs.op, "batch_size", ro.BatchSize, "threads", ro.ThreadCount)
	return nil
}

// runByIDs exports the entities named by ByIDs (no progress is kept).
func (fs *fullSync) runByIDs(ctx context.Context) error {
	keys, err := fs.p.resolveIDs(ctx, fs.f, fs.ro.ByIDs, fs.ro.IDType)
	if err != nil {
		return err
	}
	return fs.pipeline(ctx, func(_ context.Context, emit func([]string) error) error { return emit(keys) })
}

// runFull exports every entity the feed's scan enumerates, then the deleted
// payloads of remembered entities it no longer has, and marks the progress
// finished.
func (fs *fullSync) runFull(ctx context.Context) error {
	if err := fs.pipeline(ctx, fs.f.Scan); err != nil {
		return err
	}
	if err := fs.vanished(ctx); err != nil {
		return err
	}
	fs.prog.FinishedAt = fs.p.o.Now()
	fs.prog.Total = fs.total()
	if fs.ro.DryRun {
		return nil
	}
	prog := fs.prog
	return fs.p.Do(ctx, func(ctx context.Context) error {
		return fs.p.o.Store.Update(ctx, func(tx *state.Tx) error { return tx.PutProgress(prog) })
	})
}

// finish logs the result and returns it.
func (fs *fullSync) finish() ResyncResult {
	res := fs.res
	res.Progress = fs.prog
	for _, it := range fs.sample {
		res.Sample = append(res.Sample, SampleItem{ID: it.ID, Deleted: it.Deleted, Data: it.Data})
	}
	res.Elapsed = fs.p.o.Now().Sub(fs.start)
	fs.log.Info("complete", "operation", fs.op, "processed", fs.prog.Processed, "synced", res.Stats.Sent, "skipped", res.Stats.Skipped,
		"failed", res.Stats.Failed, "rejected", res.Stats.Rejected, "vanished_checked", res.Vanished.Checked,
		"vanished_rebuilt", res.Vanished.Rebuilt, "rebuilt_after_stream", fs.refreshed, "elapsed", res.Elapsed.Round(time.Millisecond).String())
	return res
}

// pipeline runs the plan, build and persist stages over the keys enumerate
// emits, and returns when all of them stopped.
func (fs *fullSync) pipeline(ctx context.Context, enumerate func(context.Context, func([]string) error) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	unwatch := fs.p.watch.watch(fs.ro.Feed)
	defer unwatch()
	threads := fs.ro.ThreadCount
	todo := make(chan *syncChunk, threads)
	ordered := make(chan *syncChunk, threads)
	resumeAfter := "" // read here: the persist jobs write fs.prog
	if fs.ro.Continue {
		resumeAfter = fs.prog.LastKey
	}
	var wg sync.WaitGroup
	defer fs.releaseAll() // chunks an error left unpersisted
	planErr := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(todo)
		defer close(ordered)
		planErr <- fs.plan(ctx, enumerate, resumeAfter, todo, ordered)
	}()
	for range threads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range todo {
				fs.build(ctx, c)
			}
		}()
	}
	err := fs.persistAll(ctx, ordered)
	cancel()
	wg.Wait()
	if pe := <-planErr; err == nil {
		err = pe
	}
	return err
}

// plan enumerates the keys, records them for the vanished pass, skips those
// an earlier attempt completed and cuts them into chunks that, paced by
// the throttle (pacedChunks), go to the builders and, in order, to the
// persister.
func (fs *fullSync) plan(ctx context.Context, enumerate func(context.Context, func([]string) error) error, resumeAfter string, todo, ordered chan<- *syncChunk) error {
	filtered := func(ctx context.Context, emit func([]string) error) error {
		err := enumerate(ctx, func(keys []string) error {
			fs.scanned.Add(int64(len(keys)))
			if fs.seen != nil {
				fs.seen.add(keys)
			}
			if resumeAfter != "" {
				keys = keysAfter(keys, resumeAfter)
			}
			if len(keys) == 0 {
				return nil
			}
			return emit(keys)
		})
		if err == nil {
			// Before the last chunk is handed on, so that its progress
			// has the exact total.
			fs.scanDone.Store(true)
		}
		return err
	}
	err := pacedChunks(ctx, filtered, fs.chunkKeys, fs.ro.Throttle, func(keys []string) error {
		c, err := fs.newChunk(ctx, keys)
		if err != nil {
			return err
		}
		for _, ch := range []chan<- *syncChunk{ordered, todo} {
			select {
			case ch <- c:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("connector: resync %s: scan: %w", fs.ro.Feed, err)
	}
	return nil
}

// pacedChunks is how a full sync and a verify read the source: it cuts the
// keys enumerate emits (scan pages of up to 1,000 keys, or ids) into chunks
// of size() keys, in order, and hands each to fn once the throttle (nil:
// none) accounted for it. Pacing per chunk rather than per scan page makes
// rows_per_second and max_replica_lag hold from the first chunk at every
// catalog size; at most one chunk and one scan page are held here.
func pacedChunks(ctx context.Context, enumerate func(context.Context, func([]string) error) error, size func() int, th *snapshot.Throttle,
	fn func(keys []string) error) error {
	var pending []string
	send := func(keys []string) error {
		if th != nil {
			if err := th.Wait(ctx, len(keys)); err != nil {
				return err
			}
		}
		return fn(keys)
	}
	err := enumerate(ctx, func(keys []string) error {
		pending = append(pending, keys...)
		for n := size(); len(pending) >= n; n = size() {
			if err := send(pending[:n:n]); err != nil {
				return err
			}
			pending = pending[n:]
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(pending) > 0 {
		return send(pending)
	}
	return nil
}

// build builds one chunk off the exporter.
func (fs *fullSync) build(ctx context.Context, c *syncChunk) {
	defer close(c.built)
	p, feed := fs.p, fs.ro.Feed
	c.seq = p.watch.begin(feed)
	t0 := p.o.Now()
	bctx, endSpan := p.span(ctx, func(t *telemetry.Tracing) (context.Context, trace.Span) {
		return t.StartBuild(ctx, feed, len(c.keys), fs.ro.Position)
	})
	items, err := fs.f.Build(bctx, c.keys)
	endSpan(err)
	if err != nil {
		c.err = fmt.Errorf("connector: build %s for %d keys (%s..%s): %w", feed, len(c.keys), c.keys[0], c.keys[len(c.keys)-1], err)
		return
	}
	if p.o.Observer != nil {
		p.o.Observer.Built(feed, len(items), p.o.Now().Sub(t0))
	}
	c.items = items
	size := int64(itemsBytes(items))
	fs.chunkBytes.Store(size)
	if len(c.keys) > 0 {
		fs.itemsPerKey.Store(int64(len(items) * 1000 / len(c.keys)))
	}
	if extra := size - int64(c.acquired); extra > 0 {
		p.syncMem.Charge(extra)
		c.charged = extra
	}
}

// Memory of a full sync.
//
// The chunks a full sync has built and not yet persisted hold their items
// in memory; with several feeds syncing at once (a first start) and
// thread_count chunks built ahead per feed, that is what a sync's memory
// is made of. So every chunk holds bytes of the pipeline's syncMem
// (backpressure.max_inflight_bytes, shared by every full sync and apart
// from the stream's bound, so a resync never delays the stream): the
// planner acquires the feed's estimate (the size of its last chunk, or a
// quarter of the bound before the first build) before the chunk goes to a
// builder, the builder charges what the items turned out to need beyond
// it, and the persist job returns both. Acquiring only before a build
// keeps the order deadlock-free: a chunk that holds bytes never waits for
// more, and the exporter, which persists chunks in order, needs none. A
// chunk larger than the bound is admitted alone.

// chunkItemsPerKey is how many items a chunk of resync.batch_size keys
// may hold per key at most: a feed with more items per entity (e.g.
// productOverrides, one item per store view and customer group) gets
// chunks of fewer keys, so that one chunk, and so one state transaction,
// holds at most about chunkItemsPerKey × batch_size items. The bbolt
// nodes a transaction touches are what it holds in memory, and an item
// whose id goes into the id index touches about one node.
const chunkItemsPerKey = 5

// chunkKeys is the size of the next chunk: resync.batch_size keys, fewer
// when the feed's last chunk had more than chunkItemsPerKey items per key.
func (fs *fullSync) chunkKeys() int {
	n := fs.ro.BatchSize
	if ipk := fs.itemsPerKey.Load(); ipk > chunkItemsPerKey*1000 {
		n = max(1, int(int64(n)*chunkItemsPerKey*1000/ipk))
	}
	return n
}

// newChunk makes the next chunk of keys once the sync memory holds its
// estimate.
func (fs *fullSync) newChunk(ctx context.Context, keys []string) (*syncChunk, error) {
	est := fs.chunkBytes.Load()
	if est == 0 {
		est = fs.p.syncMem.Max() / 4
	}
	if err := fs.p.syncMem.Acquire(ctx, int(est)); err != nil {
		return nil, fmt.Errorf("connector: resync %s: %w", fs.ro.Feed, err)
	}
	c := &syncChunk{keys: keys, built: make(chan struct{}), acquired: int(est)}
	fs.heldMu.Lock()
	if fs.held == nil {
		fs.held = map[*syncChunk]struct{}{}
	}
	fs.held[c] = struct{}{}
	fs.heldMu.Unlock()
	return c, nil
}

// release returns a chunk's sync memory (once).
func (fs *fullSync) release(c *syncChunk) {
	fs.heldMu.Lock()
	_, ok := fs.held[c]
	delete(fs.held, c)
	fs.heldMu.Unlock()
	if ok {
		fs.p.syncMem.Release(c.acquired)
		fs.p.syncMem.Discharge(c.charged)
	}
}

// releaseAll returns the memory of every chunk still holding some, once
// no goroutine of the sync uses them any more.
func (fs *fullSync) releaseAll() {
	fs.heldMu.Lock()
	held := make([]*syncChunk, 0, len(fs.held))
	for c := range fs.held {
		held = append(held, c)
	}
	fs.heldMu.Unlock()
	for _, c := range held {
		fs.release(c)
	}
}

// itemsBytes estimates the memory items hold: their strings, payloads
// and identity maps, and the structs themselves.
func itemsBytes(items []feeds.Item) int {
	n := 0
	for i := range items {
		it := &items[i]
		n += 160 + len(it.Feed) + len(it.ID) + len(it.EntityKey) + len(it.Data) + len(it.Hash)
		for k, v := range it.Identity {
			n += 48 + len(k) + len(v)
		}
	}
	return n
}

// persistAll takes the built chunks in key order and persists them, up to
// ThreadCount chunks already built at once in one exporter job.
func (fs *fullSync) persistAll(ctx context.Context, ordered <-chan *syncChunk) error {
	var held *syncChunk
	for {
		c := held
		held = nil
		if c == nil {
			var ok bool
			if c, ok = <-ordered; !ok {
				return nil
			}
		}
		select {
		case <-c.built:
		case <-ctx.Done():
			return ctx.Err()
		}
		group := []*syncChunk{c}
	more:
		for len(group) < fs.ro.ThreadCount {
			select {
			case n, ok := <-ordered:
				if !ok {
					break more
				}
				select {
				case <-n.built:
					group = append(group, n)
				default:
					held = n
					break more
				}
			default:
				break more
			}
		}
		for _, g := range group {
			if g.err != nil {
				return g.err
			}
		}
		if err := fs.persist(ctx, group); err != nil {
			return err
		}
	}
}

// persist exports a group of built chunks on the exporter: keys the
// exporter exported since their build started are rebuilt first; then one
// diff, one send and one state transaction with the progress.
func (fs *fullSync) persist(ctx context.Context, group []*syncChunk) error {
	p, ro := fs.p, fs.ro
	var keys []string
	var items []feeds.Item
	for _, c := range group {
		keys = append(keys, c.keys...)
		items = append(items, c.items...)
	}
	var st ExportStats
	err := p.Do(ctx, func(ctx context.Context) (err error) {
		ctx, end := p.span(ctx, func(t *telemetry.Tracing) (context.Context, trace.Span) {
			return t.StartResyncChunk(ctx, ro.Feed, fs.prog.Chunks+1, len(keys), ro.Position)
		})
		defer func() { end(err) }()
		if items, err = fs.refresh(ctx, group, items); err != nil {
			return err
		}
		var w writeSet
		st, err = p.exportBuilt(ctx, ro.Feed, keys, items, fs.eo, &w)
		// A step of deferred keys built ahead must not export an older
		// build of these keys after this one.
		p.watch.exported(ro.Feed, keys)
		if err != nil {
			return err
		}
		prog := fs.prog
		prog.Chunks += int64(len(group))
		prog.Processed += int64(len(keys))
		prog.Synced += int64(st.Sent)
		prog.Failed += int64(st.Failed + st.Rejected)
		prog.LastKey = keys[len(keys)-1]
		prog.Total = fs.total()
		prog.UpdatedAt = p.o.Now()
		if !ro.DryRun {
			err = p.o.Store.Update(ctx, func(tx *state.Tx) error {
				if err := w.apply(tx); err != nil {
					return err
				}
				if len(ro.ByIDs) > 0 {
					return nil
				}
				return tx.PutProgress(prog)
			})
			if err != nil {
				return err
			}
		}
		fs.prog = prog
		return nil
	})
	for _, c := range group {
		p.watch.end(ro.Feed, c.seq)
		c.items = nil
		fs.release(c)
	}
	if err != nil {
		return err
	}
	fs.res.Stats.add(st)
	if ro.Progress != nil {
		ro.Progress(fs.prog)
	}
	return nil
}

// refresh rebuilds, on the exporter, the keys of a group that the exporter
// exported after the chunk's build started, and returns the group's items
// with theirs replaced.
func (fs *fullSync) refresh(ctx context.Context, group []*syncChunk, items []feeds.Item) ([]feeds.Item, error) {
	var stale []string
	for _, c := range group {
		stale = append(stale, fs.p.watch.since(fs.ro.Feed, c.seq, c.keys)...)
	}
	fs.refreshed += len(stale)
	return fs.p.rebuildStale(ctx, fs.f, stale, items)
}

// vanished sends the deleted payloads of the entities the state remembers
// but the scan did not enumerate. It reads the state once, and not at all
// when the state held nothing for the feed when the sync began.
func (fs *fullSync) vanished(ctx context.Context) error {
	if fs.seen == nil {
		fs.res.Vanished.Skipped = true
		return nil
	}
	err := fs.p.exportVanished(ctx, fs.ro.Feed, fs.seen, fs.eo, &fs.res.Vanished, &fs.res.Stats, fs.p.Do)
	if err != nil {
		return fmt.Errorf("connector: resync %s: vanished entities: %w", fs.ro.Feed, err)
	}
	return nil
}

// exportVanished reads the feed's remembered items once and exports (by
// rebuilding them: Build returns nothing for a vanished entity, and the
// diff turns its items into deleted payloads) the entities seen lacks.
// run runs each export on the exporter: Do from a caller off it, or a
// plain call on it.
func (p *Pipeline) exportVanished(ctx context.Context, feed string, seen *keySet, eo ExportOptions, vs *VanishedStats, total *ExportStats,
	run func(context.Context, func(context.Context) error) error) error {
	seen.seal()
	for after := ""; ; {
		items, next, err := p.o.Store.ListItems(ctx, state.ListQuery{Feed: feed, After: after, Limit: 1000})
		if err != nil {
			return err
		}
		var gone []string
		for _, it := range items {
			vs.Checked++
			// A deleted payload whose send never completed (status not
			// final) is looked at too: nothing else resends it.
			if it.Deleted && state.IsFinal(it.Status) || seen.has(it.EntityKey) {
				continue
			}
			if len(gone) == 0 || gone[len(gone)-1] != it.EntityKey {
				gone = append(gone, it.EntityKey)
			}
		}
		if len(gone) > 0 {
			vs.Rebuilt += len(gone)
			var st ExportStats
			err := run(ctx, func(ctx context.Context) (err error) {
				st, err = p.ExportKeys(ctx, feed, gone, eo, nil)
				return err
			})
			total.add(st)
			if err != nil {
				return err
			}
		}
		if next == "" {
			return nil
		}
		after = next
	}
}

// keysAfter drops keys not after last (numeric order for numeric keys).
func keysAfter(keys []string, last string) []string {
	ln, lerr := strconv.ParseInt(last, 10, 64)
	out := keys[:0:0]
	for _, k := range keys {
		if kn, err := strconv.ParseInt(k, 10, 64); err == nil && lerr == nil {
			if kn > ln {
				out = append(out, k)
			}
		} else if k > last {
			out = append(out, k)
		}
	}
	return out
}

// keySet is the set of entity keys a scan enumerated, for the vanished
// pass: decimal keys (every feed's today) as one sorted []uint64, 8 bytes
// per key; others in a map.
type keySet struct {
	nums  []uint64
	other map[string]struct{}
}

func (s *keySet) add(keys []string) {
	for _, k := range keys {
		if n, ok := decimalKey(k); ok {
			s.nums = append(s.nums, n)
			continue
		}
		if s.other == nil {
			s.other = map[string]struct{}{}
		}
		s.other[k] = struct{}{}
	}
}

// seal sorts the numeric keys; call it once all keys are added.
func (s *keySet) seal() {
	if !slices.IsSorted(s.nums) {
		slices.Sort(s.nums)
	}
}

func (s *keySet) has(k string) bool {
	if n, ok := decimalKey(k); ok {
		_, found := slices.BinarySearch(s.nums, n)
		return found
	}
	_, ok := s.other[k]
	return ok
}

// decimalKey parses a canonical decimal key (no sign, no leading zero).
func decimalKey(k string) (uint64, bool) {
	if k == "" || len(k) > 1 && k[0] == '0' {
		return 0, false
	}
	n, err := strconv.ParseUint(k, 10, 64)
	return n, err == nil
}

// exportWatch records, per feed with a full sync running, which entity keys
// the exporter built and exported (stream batches, retries, rebuilds) and
// when, as a sequence number, so that a full-sync chunk built off the
// exporter before one of those exports rebuilds the key instead of sending
// its older build. Entries no build in flight can need are pruned, so it
// holds at most the keys exported during the builds in flight.
type exportWatch struct {
	mu    sync.Mutex
	seq   uint64
	feeds map[string]*feedWatch
}

type feedWatch struct {
	syncs  int               // full syncs of the feed running
	builds map[uint64]int    // sequence at build start -> builds in flight
	keys   map[string]uint64 // key -> sequence of its last export
}

// watch starts recording the feed's exports; call the result when the
// full sync ends.
func (w *exportWatch) watch(feed string) (unwatch func()) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.feeds == nil {
		w.feeds = map[string]*feedWatch{}
	}
	fw := w.feeds[feed]
	if fw == nil {
		fw = &feedWatch{builds: map[uint64]int{}, keys: map[string]uint64{}}
		w.feeds[feed] = fw
	}
	fw.syncs++
	return func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		if fw.syncs--; fw.syncs == 0 {
			delete(w.feeds, feed)
		}
	}
}

// exported records that the exporter exported keys of feed.
func (w *exportWatch) exported(feed string, keys []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	fw := w.feeds[feed]
	if fw == nil {
		return
	}
	w.seq++
	for _, k := range keys {
		fw.keys[k] = w.seq
	}
}

// begin is called as a full-sync build starts; it returns its sequence.
func (w *exportWatch) begin(feed string) uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	if fw := w.feeds[feed]; fw != nil {
		fw.builds[w.seq]++
	}
	return w.seq
}

// since returns the keys exported after sequence seq.
func (w *exportWatch) since(feed string, seq uint64, keys []string) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	fw := w.feeds[feed]
	if fw == nil || len(fw.keys) == 0 {
		return nil
	}
	var out []string
	for _, k := range keys {
		if s, ok := fw.keys[k]; ok && s > seq {
			out = append(out, k)
		}
	}
	return out
}

// end is called once the chunk whose build began at seq is persisted; it
// forgets the exports no build in flight started before.
func (w *exportWatch) end(feed string, seq uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	fw := w.feeds[feed]
	if fw == nil {
		return
	}
	if fw.builds[seq]--; fw.builds[seq] <= 0 {
		delete(fw.builds, seq)
	}
	oldest := w.seq
	for s := range fw.builds {
		oldest = min(oldest, s)
	}
	for k, s := range fw.keys {
		if s <= oldest {
			delete(fw.keys, k)
		}
	}
}

package connector

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/feedcdc/feedcdc/change"
	"github.com/feedcdc/feedcdc/feeds"
	"github.com/feedcdc/feedcdc/state"
	"github.com/feedcdc/feedcdc/telemetry"
	"go.opentelemetry.io/otel/trace"
)

// Big transactions.
//
// A transaction that alone gives BatchKeys feed keys or more is not built
// batch by batch in stream order: every batch cut in its middle records its
// keys in the state's deferred set (state.Tx.PutDeferred), after the
// batch's visibility fence and in the same Update as the batch's
// checkpoint, and the exporter builds the deferred keys later in steps
// (drainDeferred) between the stream's batches. So the reader goes on at
// once, the changes behind the transaction wait for at most one step, and
// the rules hold:
//
//   - Checkpoint: a key is either exported or durably deferred before the
//     checkpoint passes its transaction; deferred keys survive a crash and
//     are built after the restart.
//   - Visibility: a deferred batch waits for its fence like any batch, so
//     every deferred key belongs to a transaction proven committed; it can
//     be built at any later time.
//   - Work: the deferred keys are not built until the batch holding the
//     big transaction's end is exported, so a key it changes many times is
//     built once (the set holds each key once).
//   - Per-key order: items are built from the database's current state,
//     and a key's exports follow the order of its builds, so any later
//     export of a key shows a state at least as new as an earlier one. A
//     stream batch that builds a deferred key removes it from the set.
//     The one build made off the exporter — the step built ahead while the
//     step before it is exported and the stream's batches run — is
//     checked against the exports made since its build began
//     (exportWatch, as a full sync's chunks are): those keys are built
//     again on the exporter before the step is exported. A batch that
//     defers keys again (a new big transaction) drops the step built
//     ahead, whose build may predate that transaction.

// loadDeferred counts the state's deferred keys, once per pipeline.
func (p *Pipeline) loadDeferred(ctx context.Context) error {
	if p.deferredLoaded {
		return nil
	}
	n, err := p.o.Store.DeferredCount(ctx)
	if err != nil {
		return fmt.Errorf("connector: count deferred keys: %w", err)
	}
	p.deferred.Store(int64(n))
	p.deferredLoaded = true
	p.deferredChanged()
	if n > 0 {
		p.o.Logger.Info("building the deferred keys of big transactions read before the restart", "keys", n)
	}
	return nil
}

// deferredChanged reports the deferred key count to the observer.
func (p *Pipeline) deferredChanged() {
	if do, ok := p.o.Observer.(DeferredObserver); ok {
		do.Deferred(int(p.deferred.Load()))
	}
}

// DeferredKeys is the number of entity keys of big transactions waiting to
// be built.
func (p *Pipeline) DeferredKeys() int { return int(p.deferred.Load()) }

// deferBatch records the keys of a batch of a big transaction in the
// deferred set, with the batch's checkpoint, instead of building them. The
// caller has sent its raw records, passed its fence and made its rebuilds.
func (p *Pipeline) deferBatch(ctx context.Context, b *batch) error {
	// A step built ahead may hold a key this batch defers again, built
	// before this transaction: exporting it would remove the key from the
	// set without showing this transaction's change.
	p.dropNext()
	added := 0
	err := p.o.Store.Update(ctx, func(tx *state.Tx) error {
		added = 0
		for _, f := range slices.Sorted(maps.Keys(b.keys)) {
			n, err := tx.PutDeferred(f, slices.Sorted(maps.Keys(b.keys[f])))
			if err != nil {
				return err
			}
			added += n
		}
		if err := putRawSnaps(tx, b.rawSnaps); err != nil {
			return err
		}
		if b.checkpoint != nil {
			return tx.SetCheckpoint(*b.checkpoint, p.o.Now())
		}
		return nil
	})
	p.limiter.Release(b.rawBytes)
	if err != nil {
		return fmt.Errorf("connector: persist the deferred keys of a big transaction: %w", err)
	}
	if !p.inBigTx {
		if do, ok := p.o.Observer.(DeferredObserver); ok {
			do.LargeTransaction()
		}
	}
	p.inBigTx = true
	if before := p.deferred.Add(int64(added)) - int64(added); before == 0 && added > 0 {
		p.o.Logger.Info("keys of a big transaction deferred: they are built in steps between the stream's batches",
			"keys", added, "batch_keys", p.o.BatchKeys)
	}
	p.deferredChanged()
	if p.deferHook != nil {
		p.deferHook(added)
	}
	if b.checkpoint != nil {
		p.storedAt.Store(p.o.Now().UnixNano())
		if p.o.Observer != nil {
			p.o.Observer.Checkpointed(*b.checkpoint, b.sourceTime)
		}
	}
	return nil
}

// deferredStep is one step of deferred keys: read from the state's set,
// built off the exporter (startStep), then exported, written and removed
// from the set on it (drainDeferred).
type deferredStep struct {
	feeds []string            // in name order
	keys  map[string][]string // feed -> keys, in key order
	// seq is the exportWatch sequence of each feed when its builds began;
	// a key the exporter exported after it is built again before the
	// step is exported.
	seq     map[string]uint64
	unwatch []func()
	// items (feed -> built items) and err are set once done is closed.
	items  map[string][]feeds.Item
	err    error
	done   chan struct{}
	cancel context.CancelFunc
}

// after is the cursor of the step that follows this one: the last key of
// each feed.
func (s *deferredStep) after() map[string]string {
	out := make(map[string]string, len(s.keys))
	for f, keys := range s.keys {
		out[f] = keys[len(keys)-1]
	}
	return out
}

// startStep reads the next step of deferred keys (after the cursor; nil:
// from the first) and starts building it off the exporter: of each feed,
// max(2, BuildThreads) chunks of BuildChunk keys, all at once. It returns
// nil when no key waits after the cursor. It runs on the exporter, so no
// export is in progress while it takes the watch sequence.
func (p *Pipeline) startStep(ctx context.Context, after map[string]string) (*deferredStep, error) {
	threads := max(2, p.o.BuildThreads)
	size := max(p.o.BuildChunk, 1)
	keys, n, err := p.o.Store.Deferred(ctx, size*threads, after)
	if err != nil {
		return nil, fmt.Errorf("connector: read deferred keys: %w", err)
	}
	if n == 0 {
		return nil, nil
	}
	s := &deferredStep{feeds: slices.Sorted(maps.Keys(keys)), keys: keys, seq: map[string]uint64{},
		items: map[string][]feeds.Item{}, done: make(chan struct{})}
	// The builds outlive the call that started them (the next step is
	// built while the exporter runs other tasks): their context ends when
	// the step is dropped.
	bctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel = cancel
	type chunk struct {
		feed  feeds.Feed
		name  string
		keys  []string
		items []feeds.Item
		err   error
	}
	var chunks []*chunk
	for _, name := range s.feeds {
		if p.o.Registry == nil || !p.hasFeed(name) {
			continue // dropped by drainDeferred
		}
		f, _ := p.o.Registry.Feed(name)
		s.unwatch = append(s.unwatch, p.watch.watch(name))
		s.seq[name] = p.watch.begin(name)
		for c := range slices.Chunk(keys[name], size) {
			chunks = append(chunks, &chunk{feed: f, name: name, keys: c})
		}
	}
	var wg sync.WaitGroup
	for _, c := range chunks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t0 := p.o.Now()
			cctx, endSpan := p.span(bctx, func(t *telemetry.Tracing) (context.Context, trace.Span) {
				return t.StartBuild(bctx, c.name, len(c.keys), change.Position{})
			})
			c.items, c.err = c.feed.Build(cctx, c.keys)
			endSpan(c.err)
			if c.err != nil {
				c.err = fmt.Errorf("connector: build deferred %s for %d keys (%s..%s): %w", c.name, len(c.keys), c.keys[0], c.keys[len(c.keys)-1], c.err)
			} else if p.o.Observer != nil {
				p.o.Observer.Built(c.name, len(c.items), p.o.Now().Sub(t0))
			}
		}()
	}
	go func() {
		wg.Wait()
		for _, c := range chunks {
			if c.err != nil && s.err == nil {
				s.err = c.err
			}
			s.items[c.name] = append(s.items[c.name], c.items...)
		}
		close(s.done)
	}()
	return s, nil
}

// release waits for the step's builds (cancelling them first when cancel
// is set) and ends its watch.
func (p *Pipeline) release(s *deferredStep, cancel bool) {
	if cancel {
		s.cancel()
	}
	<-s.done
	s.cancel()
	for f, seq := range s.seq {
		p.watch.end(f, seq)
	}
	for _, unwatch := range s.unwatch {
		unwatch()
	}
}

// dropNext drops the step built ahead, if any (the pipeline stops, a step
// failed, or nothing is deferred any more).
func (p *Pipeline) dropNext() {
	if p.next != nil {
		p.release(p.next, true)
		p.next = nil
	}
}

// drainDeferred builds, exports and removes one step of deferred keys
// (startStep), with one state Update for their items and their removal
// from the set. The step after it is built meanwhile, off the exporter,
// while this one is diffed, sent and written and while the stream's
// batches run before the next call (p.next); keys the exporter exported
// since that build began are built again before it is exported, so a key's
// exports keep the order of its builds. A step is what a change behind a
// big transaction may wait for: about the time of one step's send and
// state write, its build having run ahead.
func (p *Pipeline) drainDeferred(ctx context.Context) (err error) {
	defer func() {
		if err != nil {
			p.dropNext()
		}
	}()
	cur := p.next
	p.next = nil
	if cur == nil {
		if cur, err = p.startStep(ctx, nil); err != nil {
			return err
		}
		if cur == nil {
			p.deferred.Store(0)
			p.deferredChanged()
			return nil
		}
	}
	w, err := p.exportStep(ctx, cur)
	p.release(cur, false)
	if err != nil {
		return err
	}
	if err := p.o.Store.Update(ctx, w.apply); err != nil {
		return fmt.Errorf("connector: persist built deferred keys: %w", err)
	}
	p.deferred.Add(-int64(w.removed))
	p.deferredChanged()
	return nil
}

// stepWrite is the final state write of a step of deferred keys: its
// items' states and their removal from the deferred set.
type stepWrite struct {
	feeds   []string
	ws      []writeSet
	keys    map[string][]string
	removed int // keys the write removed from the set
}

func (w *stepWrite) apply(tx *state.Tx) error {
	w.removed = 0
	for i, f := range w.feeds {
		if err := w.ws[i].apply(tx); err != nil {
			return err
		}
		n, err := tx.DeleteDeferred(f, w.keys[f])
		if err != nil {
			return err
		}
		w.removed += n
	}
	return nil
}

// exportStep exports one built step of deferred keys (its feeds
// concurrently, as in a stream batch) and returns its final write, not
// yet made.
func (p *Pipeline) exportStep(ctx context.Context, cur *deferredStep) (*stepWrite, error) {
	select {
	case <-cur.done:
	case <-ctx.Done():
		cur.cancel()
		return nil, ctx.Err()
	}
	if cur.err != nil {
		return nil, cur.err
	}
	if !p.noStepAhead {
		var err error
		if p.next, err = p.startStep(ctx, cur.after()); err != nil {
			return nil, err
		}
		if p.next != nil && p.aheadHook != nil {
			p.aheadHook(ctx, p.next)
		}
	}
	eo := ExportOptions{Operation: OpPartialSync}
	w := &stepWrite{feeds: cur.feeds, keys: cur.keys, ws: make([]writeSet, len(cur.feeds))}
	errs := make([]error, len(cur.feeds))
	var wg sync.WaitGroup
	for i, name := range cur.feeds {
		if p.o.Registry == nil || !p.hasFeed(name) {
			// The feed was disabled since: nothing builds it any more.
			p.o.Logger.Warn("dropping deferred keys of a feed that is not enabled", "feed", name, "keys", len(cur.keys[name]))
			continue
		}
		f, _ := p.o.Registry.Feed(name)
		wg.Add(1)
		go func() {
			defer wg.Done()
			keys := cur.keys[name]
			items, err := p.rebuildStale(ctx, f, p.watch.since(name, cur.seq[name], keys), cur.items[name])
			if err == nil {
				_, err = p.exportBuilt(ctx, name, keys, items, eo, &w.ws[i])
			}
			p.watch.exported(name, keys)
			errs[i] = err
		}()
	}
	wg.Wait()
	return w, errors.Join(errs...)
}

// rebuildStale builds the stale keys again (on the exporter) and returns
// items with those keys' items replaced by the new build's: the keys the
// exporter exported after an off-exporter build of items began, whose
// export must not be followed by that older build.
func (p *Pipeline) rebuildStale(ctx context.Context, f feeds.Feed, stale []string, items []feeds.Item) ([]feeds.Item, error) {
	if len(stale) == 0 {
		return items, nil
	}
	fresh, err := f.Build(ctx, stale)
	if err != nil {
		return nil, fmt.Errorf("connector: rebuild %s for %d keys the exporter exported meanwhile: %w", f.Name(), len(stale), err)
	}
	if p.staleHook != nil {
		p.staleHook(f.Name(), stale)
	}
	drop := make(map[string]bool, len(stale))
	for _, k := range stale {
		drop[k] = true
	}
	kept := items[:0:0]
	for _, it := range items {
		if !drop[it.EntityKey] {
			kept = append(kept, it)
		}
	}
	return append(kept, fresh...), nil
}

func (p *Pipeline) hasFeed(name string) bool {
	_, ok := p.o.Registry.Feed(name)
	return ok
}

// drainAllDeferred builds every deferred key (Flush).
func (p *Pipeline) drainAllDeferred(ctx context.Context) error {
	if err := p.loadDeferred(ctx); err != nil {
		return err
	}
	for p.deferred.Load() > 0 {
		if err := p.o.SourceRetry.Do(ctx, "build deferred keys", p.drainDeferred); err != nil {
			return err
		}
	}
	return nil
}

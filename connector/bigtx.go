package connector

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/feedcdc/feedcdc/state"
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
//     and the exporter builds one key at a time, so any later build of a
//     key shows a state at least as new as an earlier one. A stream batch
//     that builds a deferred key removes it from the set.

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

// drainDeferred builds, exports and removes one step of deferred keys:
// of each feed, max(2, BuildThreads) chunks of BuildChunk keys, built at
// once (the feeds concurrently too, as in a stream batch), with one state
// Update for their items and their removal from the set. A step is what a
// change behind a big transaction may wait for: about the time of one
// chunk's build and send.
func (p *Pipeline) drainDeferred(ctx context.Context) error {
	threads := max(2, p.o.BuildThreads)
	keys, n, err := p.o.Store.Deferred(ctx, p.o.BuildChunk*threads)
	if err != nil {
		return fmt.Errorf("connector: read deferred keys: %w", err)
	}
	if n == 0 {
		p.deferred.Store(0)
		p.deferredChanged()
		return nil
	}
	feedNames := slices.Sorted(maps.Keys(keys))
	ws := make([]writeSet, len(feedNames))
	errs := make([]error, len(feedNames))
	var wg sync.WaitGroup
	for i, f := range feedNames {
		if p.o.Registry == nil || !p.hasFeed(f) {
			// The feed was disabled since: nothing builds it any more.
			p.o.Logger.Warn("dropping deferred keys of a feed that is not enabled", "feed", f, "keys", len(keys[f]))
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = p.exportKeys(ctx, f, keys[f], ExportOptions{Operation: OpPartialSync}, &ws[i], threads, p.o.BuildChunk)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	removed := 0
	err = p.o.Store.Update(ctx, func(tx *state.Tx) error {
		removed = 0
		for i, f := range feedNames {
			if err := ws[i].apply(tx); err != nil {
				return err
			}
			n, err := tx.DeleteDeferred(f, keys[f])
			if err != nil {
				return err
			}
			removed += n
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("connector: persist built deferred keys: %w", err)
	}
	p.deferred.Add(-int64(removed))
	p.deferredChanged()
	return nil
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

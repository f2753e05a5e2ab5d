package connector

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/feedcdc/feedcdc/change"
	"github.com/feedcdc/feedcdc/connector/snapshot"
	"github.com/feedcdc/feedcdc/feeds"
	"github.com/feedcdc/feedcdc/sink"
	"github.com/feedcdc/feedcdc/state"
	"github.com/feedcdc/feedcdc/telemetry"
	"go.opentelemetry.io/otel/trace"
)

// Operation names as the system feedcdc replaces logs them; legacy ones
// carry "(legacy)".
const (
	OpFullSync      = "full sync"
	OpPartialSync   = "partial sync"
	OpRetryFailed   = "retry failed items"
	OpResyncByIDs   = "partial resync by ids"
	OpLegacyFlush   = "partial sync (legacy)"
	OpFullSyncLegcy = "full sync(legacy)"
	OpCleanup       = "cleanup deleted feed items"
)

// ResyncOptions are the options of a full sync (feedcdc resync).
type ResyncOptions struct {
	Feed string
	// ByIDs limits the resync to these entities: SKUs by default, entity
	// ids with IDType "productId" (attribute codes for productAttributes).
	ByIDs  []string
	IDType string
	// DryRun builds and reports counts and a sample; sends and persists
	// nothing.
	DryRun bool
	// CleanupFeed forgets the feed's state first, so every item is sent
	// again (stale remote items of vanished entities are not deleted).
	CleanupFeed bool
	// Continue resumes after the last completed chunk of an unfinished
	// resync.
	Continue bool
	// BatchSize is the number of entity keys per chunk; ThreadCount chunks
	// are built in parallel.
	BatchSize   int
	ThreadCount int
	// Throttle paces the key scan (rows/s, replica lag).
	Throttle *snapshot.Throttle
	// SampleSize is how many built items a dry run returns.
	SampleSize int
	// Position is the binlog position the sync starts from (recorded in
	// its progress).
	Position change.Position
	// Progress is called after every chunk.
	Progress func(state.Progress)
	// Owner names who runs it (for the feed lock), e.g. "resync(pid 123)".
	Owner string
}

// ResyncResult summarises a resync.
type ResyncResult struct {
	Feed     string
	Stats    ExportStats
	Progress state.Progress
	Sample   []feeds.Item
	Elapsed  time.Duration
}

// Resync runs a full (or by-ids) sync of one feed through the pipeline:
// keys are enumerated in chunks and each group of ThreadCount chunks is
// built and exported as one job on the exporter, between stream batches.
// Progress is persisted per job, in the same transaction as its items.
func (p *Pipeline) Resync(ctx context.Context, ro ResyncOptions) (ResyncResult, error) {
	start := p.o.Now()
	res := ResyncResult{Feed: ro.Feed}
	if p.o.Registry == nil {
		return res, errors.New("connector: no feeds are enabled")
	}
	f, ok := p.o.Registry.Feed(ro.Feed)
	if !ok {
		return res, fmt.Errorf("connector: unknown or disabled feed %q; enabled feeds: %s", ro.Feed, strings.Join(p.FeedNames(), ", "))
	}
	if ro.BatchSize <= 0 {
		ro.BatchSize = 500
	}
	if ro.ThreadCount <= 0 {
		ro.ThreadCount = 1
	}
	owner := ro.Owner
	if owner == "" {
		owner = fmt.Sprintf("resync(pid %d)", os.Getpid())
	}
	release, err := p.o.Store.AcquireFeedLock(ctx, ro.Feed, owner)
	if err != nil {
		return res, fmt.Errorf("connector: resync %s: %w", ro.Feed, err)
	}
	defer release()
	log := p.o.Logger.With("feed", ro.Feed)
	op := OpFullSync
	if len(ro.ByIDs) > 0 {
		op = OpResyncByIDs
	} else if p.o.policy(ro.Feed).Mode == ModeLegacy {
		op = OpFullSyncLegcy
	}
	if ro.CleanupFeed && !ro.DryRun {
		log.Warn("forgetting the feed's state: every item is sent again, and items of entities deleted meanwhile stay at the destination; clean the destination first", "operation", op)
		if err := p.Do(ctx, func(ctx context.Context) error { return p.o.Store.ForgetFeed(ctx, ro.Feed) }); err != nil {
			return res, fmt.Errorf("connector: cleanup feed %s: %w", ro.Feed, err)
		}
	}
	prog := state.Progress{Feed: ro.Feed, Position: ro.Position, StartedAt: start, DryRun: ro.DryRun}
	if ro.Continue {
		old, ok, err := p.o.Store.Progress(ctx, ro.Feed)
		if err != nil {
			return res, err
		}
		if ok && !old.Finished() && !old.DryRun {
			prog = old
			log.Info("continuing resync", "operation", op, "after_key", old.LastKey, "chunks_done", old.Chunks)
		} else {
			log.Info("no unfinished resync to continue; starting from the beginning", "operation", op)
		}
	}
	var sample []feeds.Item
	if ro.DryRun && ro.SampleSize > 0 {
		sample = make([]feeds.Item, 0, ro.SampleSize)
	}
	eo := ExportOptions{DryRun: ro.DryRun, Operation: op, Force: len(ro.ByIDs) > 0, Position: ro.Position}
	if sample != nil {
		eo.Sample = &sample
	}
	log.Info("start processing", "operation", op, "batch_size", ro.BatchSize, "threads", ro.ThreadCount)

	var pending []string
	flush := func(last string) error {
		if len(pending) == 0 {
			return nil
		}
		keys := pending
		pending = nil
		var st ExportStats
		err := p.Do(ctx, func(ctx context.Context) (err error) {
			ctx, end := p.span(ctx, func(t *telemetry.Tracing) (context.Context, trace.Span) {
				return t.StartResyncChunk(ctx, ro.Feed, prog.Chunks+1, len(keys), ro.Position)
			})
			defer func() { end(err) }()
			var w writeSet
			st, err = p.exportKeys(ctx, ro.Feed, keys, eo, &w, ro.ThreadCount, ro.BatchSize)
			if err != nil {
				return err
			}
			prog.Chunks++
			prog.Processed += int64(len(keys))
			prog.Synced += int64(st.Sent)
			prog.Failed += int64(st.Failed + st.Rejected)
			if last != "" {
				prog.LastKey = last
			}
			prog.UpdatedAt = p.o.Now()
			if ro.DryRun {
				return nil
			}
			return p.o.Store.Update(ctx, func(tx *state.Tx) error {
				if err := w.apply(tx); err != nil {
					return err
				}
				if len(ro.ByIDs) > 0 {
					return nil
				}
				return tx.PutProgress(prog)
			})
		})
		if err != nil {
			return err
		}
		res.Stats.add(st)
		if ro.Progress != nil {
			ro.Progress(prog)
		}
		return nil
	}
	group := ro.BatchSize * ro.ThreadCount
	emit := func(keys []string) error {
		if ro.Continue && prog.LastKey != "" {
			keys = keysAfter(keys, prog.LastKey)
		}
		if len(keys) == 0 {
			return nil
		}
		if ro.Throttle != nil {
			if err := ro.Throttle.Wait(ctx, len(keys)); err != nil {
				return err
			}
		}
		for _, k := range keys {
			pending = append(pending, k)
			if len(pending) >= group {
				if err := flush(k); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if len(ro.ByIDs) > 0 {
		keys, err := p.resolveIDs(ctx, f, ro.ByIDs, ro.IDType)
		if err != nil {
			return res, err
		}
		err = emit(keys)
		if err == nil {
			err = flush("")
		}
		if err != nil {
			return res, err
		}
	} else {
		if err := f.Scan(ctx, emit); err != nil {
			return res, fmt.Errorf("connector: resync %s: scan: %w", ro.Feed, err)
		}
		if err := flush(lastOf(pending)); err != nil {
			return res, err
		}
		// Entities the state store knows but the source no longer has:
		// rebuilding them sends their items once as deleted.
		if err := p.resyncVanished(ctx, ro.Feed, f, eo, &res.Stats); err != nil {
			return res, err
		}
		prog.FinishedAt = p.o.Now()
		if !ro.DryRun {
			if err := p.Do(ctx, func(ctx context.Context) error {
				return p.o.Store.Update(ctx, func(tx *state.Tx) error { return tx.PutProgress(prog) })
			}); err != nil {
				return res, err
			}
		}
	}
	res.Progress = prog
	res.Sample = sample
	res.Elapsed = p.o.Now().Sub(start)
	log.Info("complete", "operation", op, "processed", prog.Processed, "synced", res.Stats.Sent, "skipped", res.Stats.Skipped,
		"failed", res.Stats.Failed, "rejected", res.Stats.Rejected, "elapsed", res.Elapsed.Round(time.Millisecond).String())
	return res, nil
}

func lastOf(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[len(s)-1]
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

// resyncVanished rebuilds the entity keys the state store knows that are not
// deleted yet (or whose deleted payload is not final); Build returns nothing for vanished ones and Diff turns their
// items into deleted payloads. Existing entities are rebuilt too and skipped
// as unchanged, so this costs one more build of the feed's state.
func (p *Pipeline) resyncVanished(ctx context.Context, feed string, f feeds.Feed, eo ExportOptions, total *ExportStats) error {
	after := ""
	for {
		var next string
		err := p.Do(ctx, func(ctx context.Context) (err error) {
			next, err = p.exportVanishedPage(ctx, feed, f, after, eo, total)
			return err
		})
		if err != nil {
			return fmt.Errorf("connector: resync %s: vanished entities: %w", feed, err)
		}
		if next == "" {
			return nil
		}
		after = next
	}
}

// exportVanishedPage looks at one page of the entities the state knows for
// a feed (after the item id after) and exports the deleted payloads of
// those the source no longer has. It returns where the next page starts
// ("" at the end). It runs on the exporter goroutine.
func (p *Pipeline) exportVanishedPage(ctx context.Context, feed string, f feeds.Feed, after string, eo ExportOptions, total *ExportStats) (string, error) {
	seen := map[string]bool{}
	var keys []string
	items, next, err := p.o.Store.ListItems(ctx, state.ListQuery{Feed: feed, After: after, Limit: 1000})
	if err != nil {
		return "", err
	}
	for _, it := range items {
		// A deleted payload whose send never completed (the process was
		// killed after the write-ahead recorded it, status not final) is
		// looked at too: nothing else resends it when no replay covers it
		// (a first start begun again, or a resumed full sync).
		if (!it.Deleted || !state.IsFinal(it.Status)) && !seen[it.EntityKey] {
			seen[it.EntityKey] = true
			keys = append(keys, it.EntityKey)
		}
	}
	if len(keys) == 0 {
		return next, nil
	}
	exists, err := p.existing(ctx, f, keys)
	if err != nil {
		return "", err
	}
	var gone []string
	for _, k := range keys {
		if !exists[k] {
			gone = append(gone, k)
		}
	}
	if len(gone) == 0 {
		return next, nil
	}
	st, err := p.ExportKeys(ctx, feed, gone, eo, nil)
	total.add(st)
	return next, err
}

// rebuildAll rebuilds every item of a feed after why (a TRUNCATE of a table
// it reads, or a rename that replaced one): every
// entity the source has, then the deleted payloads of entities only the
// state knows. It runs on the exporter goroutine, inside the batch holding
// the statement; item states are persisted per chunk and the batch's
// checkpoint only after, so a crash repeats the rebuild.
func (p *Pipeline) rebuildAll(ctx context.Context, feed, why string, eo ExportOptions) error {
	f, ok := p.o.Registry.Feed(feed)
	if !ok {
		return nil
	}
	start := p.o.Now()
	var total ExportStats
	err := f.Scan(ctx, func(keys []string) error {
		st, err := p.ExportKeys(ctx, feed, keys, eo, nil)
		total.add(st)
		return err
	})
	if err != nil {
		return fmt.Errorf("connector: rebuild %s after %s: %w", feed, why, err)
	}
	for after := ""; ; {
		next, err := p.exportVanishedPage(ctx, feed, f, after, eo, &total)
		if err != nil {
			return fmt.Errorf("connector: rebuild %s after %s: vanished entities: %w", feed, why, err)
		}
		if next == "" {
			break
		}
		after = next
	}
	p.o.Logger.Info("rebuilt every item", "feed", feed, "after", why, "operation", eo.Operation,
		"entities", total.Keys, "synced", total.Sent, "skipped", total.Skipped, "deleted", total.Deleted, "failed", total.Failed, "elapsed", p.o.Now().Sub(start).Round(time.Millisecond))
	return nil
}

// existing reports which entity keys still have items, by building them
// (Build returns no items for vanished entities).
func (p *Pipeline) existing(ctx context.Context, f feeds.Feed, keys []string) (map[string]bool, error) {
	built, err := f.Build(ctx, keys)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, it := range built {
		out[it.EntityKey] = true
	}
	return out, nil
}

// resolveIDs maps --by-ids values to the feed's entity keys.
func (p *Pipeline) resolveIDs(ctx context.Context, f feeds.Feed, ids []string, idType string) ([]string, error) {
	r, ok := f.(interface {
		ResolveIDs(ctx context.Context, ids []string, idType string) ([]string, error)
	})
	if !ok {
		if idType == "productId" || idType == "entityId" || idType == "" {
			return ids, nil
		}
		return nil, fmt.Errorf("connector: feed %s cannot resolve ids of type %q", f.Name(), idType)
	}
	keys, err := r.ResolveIDs(ctx, ids, idType)
	if err != nil {
		return nil, fmt.Errorf("connector: resolve %s ids: %w", f.Name(), err)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("connector: none of the ids %s exists in feed %s (ids are SKUs by default; use --id-type=productId for entity ids)", strings.Join(ids, ","), f.Name())
	}
	return keys, nil
}

// FeedNames lists the enabled feeds.
func (p *Pipeline) FeedNames() []string {
	if p.o.Registry == nil {
		return nil
	}
	var out []string
	for _, f := range p.o.Registry.Feeds() {
		out = append(out, f.Name())
	}
	return out
}

// ErrRetryRunning is returned by RetryFailed when the feed's retry of
// failed items is already running (in this process).
var ErrRetryRunning = errors.New("retry of failed items already running")

// ClaimRetry reserves the feed's retry of failed items: at most one runs
// per feed at a time, whoever starts it (schedule, dashboard, command).
// ok is false when one is running; otherwise call release when done.
func (p *Pipeline) ClaimRetry(feed string) (release func(), ok bool) {
	p.retryMu.Lock()
	defer p.retryMu.Unlock()
	if p.retrying[feed] {
		return nil, false
	}
	if p.retrying == nil {
		p.retrying = map[string]bool{}
	}
	p.retrying[feed] = true
	if p.retryHook != nil {
		p.retryHook(feed, +1)
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			p.retryMu.Lock()
			delete(p.retrying, feed)
			if p.retryHook != nil {
				p.retryHook(feed, -1)
			}
			p.retryMu.Unlock()
		})
	}, true
}

// RetryFailed runs the <feed>_resend_failed_items job: items with status 2
// whose backoff has passed are rebuilt from the source's current state and
// sent again. It returns how many entities were retried. If the feed's
// retry is already running it returns an error wrapping ErrRetryRunning at
// once (one retry per feed at a time).
func (p *Pipeline) RetryFailed(ctx context.Context, feed string, now time.Time) (ExportStats, error) {
	release, ok := p.ClaimRetry(feed)
	if !ok {
		return ExportStats{}, fmt.Errorf("connector: %s_resend_failed_items: %w", feed, ErrRetryRunning)
	}
	defer release()
	return p.RetryFailedClaimed(ctx, feed, now)
}

// RetryFailedClaimed is RetryFailed for a caller that holds the feed's
// ClaimRetry.
func (p *Pipeline) RetryFailedClaimed(ctx context.Context, feed string, now time.Time) (ExportStats, error) {
	var total ExportStats
	for {
		var st ExportStats
		var n int
		err := p.Do(ctx, func(ctx context.Context) error {
			due, err := p.o.Store.DueFailed(ctx, feed, now, 1000)
			if err != nil {
				return err
			}
			n = len(due)
			if n == 0 {
				return nil
			}
			seen := map[string]bool{}
			var keys []string
			for _, it := range due {
				if !seen[it.EntityKey] {
					seen[it.EntityKey] = true
					keys = append(keys, it.EntityKey)
				}
			}
			sort.Strings(keys)
			var w writeSet
			st, err = p.ExportKeys(ctx, feed, keys, ExportOptions{Operation: OpRetryFailed}, &w)
			if err != nil {
				return err
			}
			// Items that were due but not rebuilt as changed (their entity
			// now builds an identical, already-sent item) need no retry;
			// items that vanished were turned into deleted payloads.
			return p.o.Store.Update(ctx, w.apply)
		})
		if err != nil {
			return total, fmt.Errorf("connector: %s_resend_failed_items: %w", feed, err)
		}
		total.add(st)
		if n < 1000 || st.Sent+st.Rejected == 0 {
			break
		}
	}
	if total.Keys > 0 {
		p.o.Logger.Info("retried failed items", "feed", feed, "operation", OpRetryFailed, "entities", total.Keys,
			"synced", total.Sent, "failed", total.Failed, "rejected", total.Rejected, "attention", total.Attention)
	}
	return total, nil
}

// FlushOutbox sends the legacy outbox of a feed in batches (the legacy
// export's scheduled submit).
func (p *Pipeline) FlushOutbox(ctx context.Context, feed string, batchSize int) (ExportStats, error) {
	var total ExportStats
	if batchSize <= 0 {
		batchSize = 500
	}
	f, ok := p.o.Registry.Feed(feed)
	if !ok {
		return total, fmt.Errorf("connector: feed %q is not enabled", feed)
	}
	pol := p.o.policy(feed)
	start := p.o.Now()
	for {
		var n int
		err := p.Do(ctx, func(ctx context.Context) error {
			entries, err := p.o.Store.OutboxBatch(ctx, feed, batchSize)
			if err != nil {
				return err
			}
			n = len(entries)
			if n == 0 {
				return nil
			}
			ids := make([]string, n)
			for i, e := range entries {
				ids[i] = e.ID
			}
			stored, err := p.o.Store.Items(ctx, feed, ids)
			if err != nil {
				return err
			}
			recs := make([]sink.Record, n)
			for i, e := range entries {
				it := stored[e.ID]
				fi := feeds.Item{Feed: feed, ID: e.ID, EntityKey: it.EntityKey, Identity: it.Identity, Data: e.Payload, Hash: it.Hash, Deleted: it.Deleted}
				recs[i] = Record(fi, f.IdentityFields())
			}
			res, err := sink.SendWithRetry(ctx, p.o.Sink, recs, p.o.SendBackoff)
			if err != nil && ctx.Err() != nil {
				return ctx.Err()
			}
			now := p.o.Now()
			var st ExportStats
			updates := make([]state.Item, 0, n)
			seqs := make([]uint64, n)
			for i, e := range entries {
				seqs[i] = e.Seq
				it, ok := stored[e.ID]
				if !ok {
					it = state.Item{Feed: feed, ID: e.ID}
				}
				p.applyResult(&it, res[i], it, pol, now, &st)
				updates = append(updates, it)
			}
			total.add(st)
			return p.o.Store.Update(ctx, func(tx *state.Tx) error {
				if err := tx.PutItems(updates); err != nil {
					return err
				}
				return tx.DeleteOutbox(feed, seqs)
			})
		})
		if err != nil {
			return total, fmt.Errorf("connector: %s: %w", OpLegacyFlush, err)
		}
		if n < batchSize {
			break
		}
	}
	if total.Sent+total.Failed+total.Rejected > 0 {
		p.o.Logger.Info("complete", "feed", feed, "operation", OpLegacyFlush, "synced", total.Sent, "failed", total.Failed,
			"rejected", total.Rejected, "elapsed", p.o.Now().Sub(start).Round(time.Millisecond).String())
	}
	return total, nil
}

package connector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/feedcdc/feedcdc/change"
	"github.com/feedcdc/feedcdc/connector/snapshot"
	"github.com/feedcdc/feedcdc/feeds"
	"github.com/feedcdc/feedcdc/sink"
	"github.com/feedcdc/feedcdc/state"
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
	// Total estimates how many entities the sync goes through
	// (Connector.Resync: estimateTotal), so that status shows a total
	// while the sync runs; once its scan has ended the progress holds the
	// keys it counted instead. 0: unknown until then.
	Total int64
	// Progress is called after every chunk.
	Progress func(state.Progress)
	// Owner names who runs it (for the feed lock), e.g. "resync(pid 123)".
	Owner string
}

// ResyncResult summarises a resync.
type ResyncResult struct {
	Feed     string         `json:"feed"`
	Stats    ExportStats    `json:"stats"`
	Progress state.Progress `json:"progress"`
	// Sample holds up to ResyncOptions.SampleSize built items (dry runs).
	Sample  []SampleItem  `json:"sample,omitempty"`
	Elapsed time.Duration `json:"elapsed_ns"`
	// Vanished is what the pass over remembered entities did.
	Vanished VanishedStats `json:"vanished"`
}

// SampleItem is a built item as a resync's sample shows it.
type SampleItem struct {
	ID      string          `json:"feed_id"`
	Deleted bool            `json:"deleted,omitempty"`
	Data    json.RawMessage `json:"data"`
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
	seen := &keySet{}
	err := f.Scan(ctx, func(keys []string) error {
		seen.add(keys)
		st, err := p.ExportKeys(ctx, feed, keys, eo, nil)
		total.add(st)
		return err
	})
	if err != nil {
		return fmt.Errorf("connector: rebuild %s after %s: %w", feed, why, err)
	}
	var vs VanishedStats
	onExporter := func(ctx context.Context, job func(context.Context) error) error { return job(ctx) }
	if err := p.exportVanished(ctx, feed, seen, eo, &vs, &total, onExporter); err != nil {
		return fmt.Errorf("connector: rebuild %s after %s: vanished entities: %w", feed, why, err)
	}
	p.o.Logger.Info("rebuilt every item", "feed", feed, "after", why, "operation", eo.Operation,
		"entities", total.Keys, "synced", total.Sent, "skipped", total.Skipped, "deleted", total.Deleted, "failed", total.Failed,
		"vanished_checked", vs.Checked, "vanished_rebuilt", vs.Rebuilt, "elapsed", p.o.Now().Sub(start).Round(time.Millisecond))
	return nil
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

// ClaimRetry reserves the feed's retry of failed items for who (named in
// the error of a later claim: "retry job 4", "the retry schedule"): at most
// one runs per feed at a time, whoever starts it (schedule, dashboard,
// command). While one runs it returns an error wrapping ErrRetryRunning
// that names its holder and since when; otherwise call release when done.
func (p *Pipeline) ClaimRetry(feed, who string) (release func(), err error) {
	p.retryMu.Lock()
	defer p.retryMu.Unlock()
	if h, ok := p.retrying[feed]; ok {
		return nil, fmt.Errorf("%w: %s, running since %s", ErrRetryRunning, h.who, h.since.UTC().Format(time.RFC3339))
	}
	if p.retrying == nil {
		p.retrying = map[string]retryClaim{}
	}
	p.retrying[feed] = retryClaim{who: who, since: time.Now()}
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
	}, nil
}

// retryClaim is who holds a feed's retry of failed items, since when.
type retryClaim struct {
	who   string
	since time.Time
}

// RetryFailed runs the <feed>_resend_failed_items job: items with status 2
// whose backoff has passed are rebuilt from the source's current state and
// sent again. It returns how many entities were retried. If the feed's
// retry is already running it returns an error wrapping ErrRetryRunning at
// once (one retry per feed at a time).
func (p *Pipeline) RetryFailed(ctx context.Context, feed string, now time.Time) (ExportStats, error) {
	release, err := p.ClaimRetry(feed, "the retry schedule")
	if err != nil {
		return ExportStats{}, fmt.Errorf("connector: %s_resend_failed_items: %w", feed, err)
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
		if ro, ok := p.o.Observer.(interface{ Retried(feed string, n int) }); ok {
			ro.Retried(feed, st.Sent+st.Failed+st.Rejected) // feedcdc_feed_items_retried_total
		}
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

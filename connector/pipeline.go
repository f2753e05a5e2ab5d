package connector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/feedcdc/feedcdc/change"
	"github.com/feedcdc/feedcdc/connector/raw"
	"github.com/feedcdc/feedcdc/feeds"
	"github.com/feedcdc/feedcdc/sink"
	"github.com/feedcdc/feedcdc/state"
	"github.com/feedcdc/feedcdc/telemetry"
	"go.opentelemetry.io/otel/trace"
)

// Export modes of a feed.
const (
	ModeImmediate = "immediate"
	ModeLegacy    = "legacy"
)

// FeedPolicy is how one feed is exported.
type FeedPolicy struct {
	// Mode is ModeImmediate (send right after building) or ModeLegacy
	// (write to the outbox; a scheduled flush sends it).
	Mode string
	// MaxAttempts is how many failed sends an item may have before it is
	// marked as requiring attention (default 10).
	MaxAttempts int
	// BackoffBase and BackoffMax bound the per-item retry backoff of the
	// retry job (default 1 m and 1 h).
	BackoffBase, BackoffMax time.Duration
	// Stores and Websites, when set, export only items whose identity's
	// storeViewCode / websiteCode is listed; items filtered out are treated
	// as vanished (sent once as deleted if they were exported before).
	Stores, Websites []string
}

// keep reports whether an item passes the policy's store/website filter.
func (p FeedPolicy) keep(it feeds.Item) bool {
	if len(p.Stores) > 0 {
		if code, ok := it.Identity["storeViewCode"]; ok && !slices.Contains(p.Stores, code) {
			return false
		}
	}
	if len(p.Websites) > 0 {
		if code, ok := it.Identity["websiteCode"]; ok && !slices.Contains(p.Websites, code) {
			return false
		}
	}
	return true
}

// Observer receives the pipeline's measurements (telemetry implements it).
// Methods must be cheap and must not block.
type Observer interface {
	Built(feed string, items int, d time.Duration)
	// Exported is called after every export of a feed's items, and with
	// d 0 when a batch held only unchanged items (nothing was exported).
	Exported(feed string, st ExportStats, d time.Duration)
	RawSent(records int, d time.Duration)
	Checkpointed(pos change.Position, sourceTime time.Time)
	Queue(batches int, bytes int64)
	// SourceEvent is called for every change read, with its commit time.
	SourceEvent(ts time.Time)
}

// ExportStats counts what one export did for one feed.
type ExportStats struct {
	Keys      int `json:"keys"`      // entity keys rebuilt
	Built     int `json:"built"`     // items built
	Skipped   int `json:"skipped"`   // unchanged (hash equal), not sent
	Sent      int `json:"sent"`      // acknowledged by every sink (or queued in the outbox)
	Deleted   int `json:"deleted"`   // of Sent: deleted payloads
	Failed    int `json:"failed"`    // retryable failures recorded for the retry job
	Rejected  int `json:"rejected"`  // rejected by a sink (final until the hash changes)
	Attention int `json:"attention"` // failures that reached the maximum attempts
}

func (s *ExportStats) add(o ExportStats) {
	s.Keys += o.Keys
	s.Built += o.Built
	s.Skipped += o.Skipped
	s.Sent += o.Sent
	s.Deleted += o.Deleted
	s.Failed += o.Failed
	s.Rejected += o.Rejected
	s.Attention += o.Attention
}

// PipelineOptions configure a Pipeline.
type PipelineOptions struct {
	Logger *slog.Logger
	Store  *state.Store
	// Registry holds the entity feeds; nil when only raw streams run.
	Registry *feeds.Registry
	// Policies per feed name; missing feeds use immediate mode and defaults.
	Policies map[string]FeedPolicy
	// Raw encodes raw change streams; nil disables them. RawTables selects
	// the tables whose changes go to raw streams (nil: every captured table).
	Raw       *raw.Encoder
	RawTables func(*change.Table) bool
	// RawTopicName names a raw record's topic in messages as the sinks
	// write it (the {prefix} the sinks fill in, filled in); nil: as is.
	RawTopicName func(topic string) string
	// Sink receives every record (usually a sink.Router).
	Sink sink.Sink
	// A stream batch is cut at BatchKeys dirty keys (all feeds), BatchRecords
	// raw records or BatchBytes raw bytes, or when it is Window old.
	BatchKeys    int           // default 1000
	BatchRecords int           // default 5000
	BatchBytes   int           // default 4 MiB
	Window       time.Duration // default 200 ms
	// BuildChunk is the number of entity keys per Build call (default 500);
	// BuildThreads chunks of one feed are built at a time (default 1).
	BuildChunk   int
	BuildThreads int
	// QueueLen is the number of cut batches waiting for the exporter
	// (default 4); MaxInflightBytes bounds the raw bytes they hold
	// (default 64 MiB). When either is full the binlog reader waits.
	QueueLen         int
	MaxInflightBytes int64
	// SendBackoff is the in-place retry of feed items before they are
	// recorded as failed (default: 5 attempts, 200 ms .. 10 s).
	SendBackoff sink.Backoff
	// RawBackoff is the in-place retry of raw records, which are retried
	// until delivered or ctx ends (default 200 ms .. 2 s: the cap bounds how
	// long after a sink's return the stream resumes).
	RawBackoff sink.Backoff
	Observer   Observer
	// Fence, when set, makes each batch's builds wait until the batch's
	// newest feed transaction is visible to other sessions.
	Fence *VisibilityFence
	// Tracing, when set, records a span per build and export batch and per
	// resync chunk, carrying the source position.
	Tracing *telemetry.Tracing
	// IdleCheckpoint, when positive, re-stores the checkpoint (same
	// position, new time) once it is this old and nothing newer was stored:
	// an idle source's checkpoint age stays bounded. The write goes through
	// the exporter's queue, after everything read before it.
	IdleCheckpoint time.Duration
	// SourceRetry retries what reads the source (a batch's fence and
	// builds, fan-out lookups) after transient failures; nil runs them
	// once and a failure stops the pipeline.
	SourceRetry *SourceRetry
	// MissingTableWait bounds how long a batch waits for a table a feed
	// reads to exist again (a two-statement table swap); default
	// MissingTableWait.
	MissingTableWait time.Duration
	// Heartbeat, when positive and Raw is set, adds a heartbeat record to
	// the raw streams this often (heartbeat.go); ServerTime reads the
	// source server's clock for it (nil or failing: server_ts_ms null).
	Heartbeat  time.Duration
	ServerTime func(ctx context.Context) (time.Time, error)
	Now        func() time.Time
}

func (o *PipelineOptions) defaults() {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.BatchKeys <= 0 {
		o.BatchKeys = 1000
	}
	if o.MissingTableWait <= 0 {
		o.MissingTableWait = MissingTableWait
	}
	if o.BatchRecords <= 0 {
		o.BatchRecords = 5000
	}
	if o.BatchBytes <= 0 {
		o.BatchBytes = 4 << 20
	}
	if o.Window <= 0 {
		o.Window = 200 * time.Millisecond
	}
	if o.BuildChunk <= 0 {
		o.BuildChunk = 500
	}
	if o.BuildThreads <= 0 {
		o.BuildThreads = 1
	}
	if o.QueueLen <= 0 {
		o.QueueLen = 4
	}
	if o.MaxInflightBytes <= 0 {
		o.MaxInflightBytes = 64 << 20
	}
	if o.SendBackoff.MaxAttempts == 0 {
		o.SendBackoff = sink.Backoff{Initial: 200 * time.Millisecond, Max: 10 * time.Second, MaxAttempts: 5}
	}
	if o.RawBackoff.Initial == 0 {
		o.RawBackoff = sink.Backoff{Initial: 200 * time.Millisecond, Max: 2 * time.Second}
	}
	if o.Policies == nil {
		o.Policies = map[string]FeedPolicy{}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

func (o *PipelineOptions) policy(feed string) FeedPolicy {
	p := o.Policies[feed]
	if p.Mode == "" {
		p.Mode = ModeImmediate
	}
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = 10
	}
	if p.BackoffBase <= 0 {
		p.BackoffBase = time.Minute
	}
	if p.BackoffMax <= 0 {
		p.BackoffMax = time.Hour
	}
	return p
}

// batch is what the reader collected between two cuts.
type batch struct {
	keys       map[string]map[string]struct{} // feed -> entity keys
	nkeys      int
	raw        []sink.Record
	rawBytes   int
	checkpoint *change.Position // last TxEnd read before the cut
	sourceTime time.Time        // commit time of that TxEnd
	started    time.Time
	// fence is the newest change (of a table with a primary key) that gave
	// this batch feed keys, read at fenceAt; the batch is built once its
	// transaction is visible. Kept as the change itself: the key is only
	// extracted once per batch.
	fence   *change.Change
	fenceAt time.Time
	// rebuild maps a feed to the statement (a TRUNCATE, or a rename that
	// replaced a table, e.g. "TRUNCATE of shop.t") that makes the batch
	// rebuild every item of the feed.
	rebuild map[string]string
	// fanouts are the fan-out lookups made while collecting this batch
	// (feeds.Memo): a repeated one is skipped, its keys are already here.
	fanouts map[string]struct{}
	// rawSent is set once the raw records are delivered: an export that
	// failed later (the source went away during a build) and is retried
	// does not send them again.
	rawSent bool
	// deferKeys is set on a batch cut in the middle of a transaction that
	// alone gave BatchKeys keys or more (a big transaction): its keys are
	// recorded in the state's deferred set with the batch's checkpoint
	// instead of being built, and built later in steps (drainDeferred).
	deferKeys bool
	// endsBigTx is set on the batch holding the end of a big transaction:
	// once it is exported, every deferred batch of the transaction is.
	endsBigTx bool
	// rawSnaps is the progress of raw snapshots whose chunk ends in this
	// batch, written in its state transaction (rawsnapshot.go).
	rawSnaps []state.RawSnapshot
	// heartbeats counts the heartbeat records among raw: a batch holding
	// only those does not keep the idle checkpoint from being re-stored.
	heartbeats int
	// cached holds this batch's changes of tables whose rows the feeds
	// cache (feeds.Registry.Caches): once the batch's changes are visible
	// (its fence), what the caches hold of their rows is dropped again
	// (Registry.Committed).
	cached []*change.Change
}

func (b *batch) empty() bool {
	return b.nkeys == 0 && len(b.raw) == 0 && b.checkpoint == nil && len(b.rebuild) == 0 && len(b.rawSnaps) == 0
}

// maxCachedChanges bounds the changes of cached tables a batch keeps for
// Registry.Committed; beyond it they are kept as one row-less delete per
// table (coarseCached), which drops all that is cached of the table.
const maxCachedChanges = 1024

// coarseCached replaces changes by one row-less delete per table: what the
// caches hold of any row of the table is dropped, as for every one of the
// changes.
func coarseCached(cs []*change.Change) []*change.Change {
	var out []*change.Change
	seen := map[string]bool{}
	for _, c := range cs {
		if !seen[c.Table.Name] {
			seen[c.Table.Name] = true
			out = append(out, &change.Change{Table: c.Table, Op: change.OpDelete})
		}
	}
	return out
}

// task is one unit of the exporter's ordered queue.
type task struct {
	batch *batch
	// job runs on the exporter goroutine, in queue order (resync chunks,
	// retries, legacy flushes).
	job  func(ctx context.Context) error
	done chan error
}

// Pipeline turns a stream of changes into exported feed items and raw
// records, with checkpoints only at transaction ends. It implements the
// binlog source's Handler (Change, TxEnd).
type Pipeline struct {
	o       PipelineOptions
	queue   chan task
	limiter *sink.Limiter
	// syncMem bounds the bytes of full-sync chunks built and not yet
	// persisted, over every full sync of the pipeline (fullsync.go).
	syncMem *sink.Limiter

	mu  sync.Mutex // guards cur and txKeys
	cur *batch
	// txKeys counts the feed keys the transaction being read has added to
	// batches so far (reset at its TxEnd).
	txKeys int
	// deferred is the number of keys in the state's deferred set (written
	// by the exporter goroutine only); deferredLoaded is set once it was
	// counted from the state.
	deferred       atomic.Int64
	deferredLoaded bool
	// inBigTx is set (on the exporter goroutine) from a deferred batch
	// until the batch that ends its transaction is exported: deferred keys
	// are not built meanwhile, so that a key the transaction changes again
	// and again is built once, after it.
	inBigTx bool

	cutMu sync.Mutex // orders cuts onto the queue
	// waiting counts the stream batches queued and not yet taken by the
	// exporter; a batch is cut by its window only while none waits
	// (cut). nudge wakes the window ticker when the exporter takes one.
	waiting atomic.Int32
	nudge   chan struct{}

	// Reader-side state of the raw hot path, touched only by Change (the
	// binlog source calls it from one goroutine).
	slab      []byte                     // raw envelopes are encoded into its free tail
	rawTables map[*change.Table]rawTable // per table version: captured?, topic
	// memoCtx is the last context Change was called with, carrying the
	// batch memo for feeds.Registry.Keys (derived once, not per change).
	memoParent, memoCtx context.Context

	syncMu   sync.Mutex
	lastSync map[string]time.Time // feed -> last export that sent something

	// storedAt is when this process last stored the checkpoint (unix ns;
	// 0 = not yet); touching is set while an idle re-store is queued.
	storedAt atomic.Int64
	touching atomic.Bool
	retryMu  sync.Mutex
	retrying map[string]retryClaim // feeds whose retry of failed items runs now
	// retryHook, when set (tests), is called as a retry run starts (+1)
	// and ends (-1).
	retryHook func(feed string, delta int)
	// deferHook, when set (tests), is called with the number of keys each
	// deferred batch added to the state's deferred set.
	deferHook func(added int)
	// noDefer, when set (benchmarks), builds big transactions batch by
	// batch in stream order, as before deferred keys existed.
	noDefer bool
	// next is the step of deferred keys built ahead (exporter goroutine
	// only; bigtx.go); noStepAhead, when set (benchmarks), builds each
	// step only when it is exported, as before steps were built ahead.
	next        *deferredStep
	noStepAhead bool
	// aheadHook, when set (tests), is called on the exporter with a step
	// of deferred keys just started ahead, before the step before it is
	// exported.
	aheadHook func(ctx context.Context, next *deferredStep)
	// staleHook, when set (tests), is called with the keys of a build
	// made off the exporter that are built again because the exporter
	// exported them meanwhile.
	staleHook func(feed string, keys []string)
	// watch records the keys exported while a full sync of their feed
	// builds chunks off the exporter (fullsync.go).
	watch exportWatch
	// snap reconciles raw snapshot chunks with the stream (rawsnapshot.go).
	snap snapWatch
	// tx is the transaction being read, for transaction metadata (reader
	// goroutine only; nil between transactions).
	tx *txMeta
	// readPos and readTime are the position and source time of the last
	// TxEnd read (guarded by mu), for heartbeat records.
	readPos  change.Position
	readTime time.Time
}

// LastSync is when the feed last exported items in this process.
func (p *Pipeline) LastSync(feed string) time.Time {
	p.syncMu.Lock()
	defer p.syncMu.Unlock()
	return p.lastSync[feed]
}

func (p *Pipeline) synced(feed string, t time.Time) {
	p.syncMu.Lock()
	p.lastSync[feed] = t
	p.syncMu.Unlock()
}

// NewPipeline builds a pipeline; call Run to start its exporter.
func NewPipeline(o PipelineOptions) (*Pipeline, error) {
	o.defaults()
	if o.Store == nil {
		return nil, errors.New("connector: pipeline needs a state store")
	}
	if o.Sink == nil {
		return nil, errors.New("connector: pipeline needs a sink")
	}
	p := &Pipeline{o: o, queue: make(chan task, o.QueueLen), nudge: make(chan struct{}, 1), limiter: sink.NewLimiter(o.MaxInflightBytes),
		syncMem: sink.NewLimiter(o.MaxInflightBytes), lastSync: map[string]time.Time{}}
	p.cur = p.newBatch()
	return p, nil
}

func (p *Pipeline) newBatch() *batch {
	return &batch{keys: map[string]map[string]struct{}{}, started: p.o.Now()}
}

// rawTable is what the raw stream caches per table version.
type rawTable struct {
	captured bool
	topic    string
	// plan applies the raw column rules (nil: none concern the table);
	// planErr is why they cannot be applied (a wrong key_columns entry).
	plan    *raw.TablePlan
	planErr error
}

const (
	// slabSize is the size of the blocks raw envelopes are encoded into:
	// one allocation for a few hundred changes instead of several growing
	// buffers per change. A block lives until every batch holding one of
	// its records is exported.
	slabSize = 256 << 10
	// slabMinFree is the free tail below which a new block is started.
	slabMinFree = 16 << 10
)

// rawTableOf returns whether t's changes go to raw streams, and their topic.
func (p *Pipeline) rawTableOf(t *change.Table) rawTable {
	if rt, ok := p.rawTables[t]; ok {
		return rt
	}
	if p.rawTables == nil || len(p.rawTables) >= 4096 {
		// Table versions change only with DDL; bound the cache anyway.
		p.rawTables = map[*change.Table]rawTable{}
	}
	rt := rawTable{captured: p.o.RawTables == nil || p.o.RawTables(t)}
	if rt.captured {
		rt.topic = p.o.Raw.Topic(t)
		rt.plan, rt.planErr = p.o.Raw.Columns.Plan(t)
	}
	p.rawTables[t] = rt
	return rt
}

// encodeRaw renders the key and envelope of c into the slab and returns
// them as capacity-capped sub-slices (what raw.Encoder.Encode returns).
func (p *Pipeline) encodeRaw(c *change.Change, plan *raw.TablePlan, order *raw.TxOrder) (key, value []byte) {
	if cap(p.slab)-len(p.slab) < slabMinFree {
		p.slab = make([]byte, 0, slabSize)
	}
	buf := p.slab
	start := len(buf)
	kc := c
	if plan != nil {
		c, kc = plan.Apply(c)
	}
	if len(kc.Table.PK) > 0 {
		buf = raw.AppendKey(buf, kc)
		key = buf[start:len(buf):len(buf)]
	}
	vstart := len(buf)
	buf = p.o.Raw.AppendEnvelope(buf, c)
	if order != nil {
		buf = raw.AppendTransactionBlock(buf, *order)
	}
	value = buf[vstart:len(buf):len(buf)]
	if len(buf) <= cap(p.slab) {
		// Encoded in place: the slab's free tail starts after it.
		p.slab = p.slab[:len(buf)]
	} else {
		// A large change did not fit and was moved to its own memory; its
		// key may still lie in the slab, so the slab is not reused.
		p.slab = p.slab[:cap(p.slab)]
	}
	return key, value
}

// Change implements binlog.Handler.
func (p *Pipeline) Change(ctx context.Context, c *change.Change) error {
	p.snap.mu.Lock()
	defer p.snap.mu.Unlock()
	if p.o.Observer != nil {
		p.o.Observer.SourceEvent(c.Source.Timestamp)
	}
	if p.o.Raw != nil {
		if rt := p.rawTableOf(c.Table); rt.captured {
			if p.snap.pending != nil {
				p.snap.changed(c)
			}
			if err := p.addRaw(ctx, c, rt); err != nil {
				return err
			}
		}
	}
	if p.o.Registry != nil {
		if ctx != p.memoParent {
			p.memoParent, p.memoCtx = ctx, feeds.WithMemo(ctx, batchMemo{p})
		}
		fenceable := p.o.Fence != nil && len(c.Table.PK) > 0
		var readAt time.Time
		// A change of a cached table is recorded in every batch that gets
		// keys of it, and in the batch current when its keys are done:
		// each of them drops the rows cached before the change was
		// visible, after its fence and before its builds. (Recorded only
		// after Keys, a batch cut in between — by the window's timer, or
		// by a fan-out's chunks — built its keys from rows cached while
		// the change was not committed yet, and nothing rebuilt them.)
		caches := p.o.Registry.Caches(c)
		var cachedIn *batch
		recordCached := func() { // p.mu held
			if !caches || cachedIn == p.cur {
				return
			}
			p.cur.cached = append(p.cur.cached, c)
			if len(p.cur.cached) > maxCachedChanges {
				p.cur.cached = coarseCached(p.cur.cached)
			}
			cachedIn = p.cur
		}
		kctx := p.memoCtx
		err := p.o.SourceRetry.Do(ctx, "fan-out lookup", func(context.Context) error {
			defer func() {
				// A retry makes every lookup again: the failed attempt may
				// have recorded a lookup in the memo before its query
				// failed, and the keys it did emit are deduplicated.
				kctx = ctx
			}()
			return p.o.Registry.Keys(kctx, c, func(feed string, keys []string) error {
				p.mu.Lock()
				if fenceable {
					// Every batch that gets keys of this change waits for it.
					if readAt.IsZero() {
						readAt = p.o.Now()
					}
					p.cur.fence, p.cur.fenceAt = c, readAt
				}
				recordCached()
				set := p.cur.keys[feed]
				if set == nil {
					set = map[string]struct{}{}
					p.cur.keys[feed] = set
				}
				for _, k := range keys {
					if _, ok := set[k]; !ok {
						set[k] = struct{}{}
						p.cur.nkeys++
						p.txKeys++
					}
				}
				over := p.cur.nkeys >= p.o.BatchKeys
				p.mu.Unlock()
				if over {
					// A fan-out may emit many chunks: cut as they come so the
					// dirty set stays bounded.
					return p.cut(ctx, false)
				}
				return nil
			})
		})
		if err != nil {
			return err
		}
		p.mu.Lock()
		recordCached()
		p.mu.Unlock()
	}
	if p.o.Registry == nil {
		return nil // addRaw checked the batch limits
	}
	p.mu.Lock()
	full := p.full(p.cur)
	p.mu.Unlock()
	if full {
		return p.cut(ctx, false)
	}
	return nil
}

// Truncate implements binlog.Truncater. A raw stream of the table gets a
// truncate record (op "t", no key, null images, as Debezium sends it); the
// feeds that read the table rebuild every item — current entities and those
// known to the state — in the batch that holds the statement, before its
// checkpoint.
func (p *Pipeline) Truncate(ctx context.Context, t *change.Table, src change.Source) error {
	p.snap.mu.Lock()
	defer p.snap.mu.Unlock()
	p.snap.replaced(t)
	if p.o.Observer != nil {
		p.o.Observer.SourceEvent(src.Timestamp)
	}
	if p.o.Raw != nil {
		if rt := p.rawTableOf(t); rt.captured {
			if err := p.addRaw(ctx, &change.Change{Table: t, Op: change.OpTruncate, Source: src}, rt); err != nil {
				return err
			}
		}
	}
	if p.o.Registry != nil {
		p.o.Registry.TableReplaced(t)
	}
	p.rebuildReading(t, "TRUNCATE of "+t.FullName(), src)
	return nil
}

// Replace implements binlog.Replacer: a rename put the table that was
// called from in t's place (gh-ost's or pt-online-schema-change's cut-over,
// a staging-table swap), so none of its rows were row events of t. A raw
// stream of t gets a replace record (op "replace", no key, null images, the
// statement's source position); the feeds that read t rebuild every item,
// as after a TRUNCATE, in the batch that holds the statement, before its
// checkpoint.
func (p *Pipeline) Replace(ctx context.Context, t *change.Table, from string, src change.Source) error {
	p.snap.mu.Lock()
	defer p.snap.mu.Unlock()
	p.snap.replaced(t)
	if p.o.Observer != nil {
		p.o.Observer.SourceEvent(src.Timestamp)
	}
	if p.o.Raw != nil {
		if rt := p.rawTableOf(t); rt.captured {
			if err := p.addRaw(ctx, &change.Change{Table: t, Op: change.OpReplace, Source: src}, rt); err != nil {
				return err
			}
		}
	}
	if p.o.Registry != nil {
		p.o.Registry.TableReplaced(t)
	}
	p.rebuildReading(t, "RENAME of "+from+" to "+t.FullName(), src)
	return nil
}

// SchemaChange implements binlog.SchemaChanger: with schema-change
// records on, a DDL statement that changed a table of the raw streams
// becomes one record on the schema-change topic, in the batch that holds
// the statement (so in binlog order with the data records).
func (p *Pipeline) SchemaChange(ctx context.Context, sc change.SchemaChange) error {
	if p.o.Raw == nil || !p.o.Raw.SchemaChanges || (p.o.RawTables != nil && !p.o.RawTables(sc.Table)) {
		return nil
	}
	pos := sc.Source.GTID
	if pos == "" {
		pos = fmt.Sprintf("%s:%d", sc.Source.File, sc.Source.Pos)
	}
	key := raw.AppendSchemaChangeKey(nil, &sc)
	value := p.o.Raw.AppendSchemaChange(nil, &sc)
	return p.addRawRecords(ctx, []sink.Record{{Feed: "raw", Topic: p.o.Raw.SchemaChangesTopicName(), Key: key, Value: value, Op: "ddl", Position: pos}}, false)
}

// rebuildReading marks every feed reading t for a full rebuild in the
// current batch; why names the statement.
func (p *Pipeline) rebuildReading(t *change.Table, why string, src change.Source) {
	if p.o.Registry == nil {
		return
	}
	names := p.o.Registry.FeedsReading(t)
	if len(names) == 0 {
		return
	}
	at := src.GTID
	if at == "" {
		at = fmt.Sprintf("%s:%d", src.File, src.Pos)
	}
	p.o.Logger.Warn(why+" changed every row the feeds read from it without row events: every item of these feeds is rebuilt with the batch holding it", "table", t.FullName(), "feeds", names, "position", at)
	p.mu.Lock()
	if p.cur.rebuild == nil {
		p.cur.rebuild = map[string]string{}
	}
	for _, f := range names {
		p.cur.rebuild[f] = why
	}
	p.mu.Unlock()
}

// batchMemo is the feeds.Memo of the batch being collected: a lookup is
// recorded in the current batch, and a cut starts a fresh record.
type batchMemo struct{ p *Pipeline }

func (m batchMemo) First(key string) bool {
	m.p.mu.Lock()
	defer m.p.mu.Unlock()
	b := m.p.cur
	if _, ok := b.fanouts[key]; ok {
		return false
	}
	if b.fanouts == nil {
		b.fanouts = map[string]struct{}{}
	}
	b.fanouts[key] = struct{}{}
	return true
}

// full reports whether b reached a batch limit. Call with p.mu held.
func (p *Pipeline) full(b *batch) bool {
	return len(b.raw) >= p.o.BatchRecords || b.rawBytes >= p.o.BatchBytes || b.nkeys >= p.o.BatchKeys
}

// addRaw adds the raw record(s) of c to the current batch, waiting for
// in-flight bytes first, and cuts the batch when it is full.
func (p *Pipeline) addRaw(ctx context.Context, c *change.Change, rt rawTable) error {
	if rt.planErr != nil {
		return fmt.Errorf("connector: raw stream of %s: %w", c.Table.FullName(), rt.planErr)
	}
	topic := rt.topic
	var order *raw.TxOrder
	if p.o.Raw.Transactions && c.Op != change.OpRead { // snapshot reads belong to no transaction
		o, err := p.txEvent(ctx, c)
		if err != nil {
			return err
		}
		order = &o
	}
	key, value := p.encodeRaw(c, rt.plan, order)
	pos := c.Source.GTID
	if pos == "" {
		pos = fmt.Sprintf("%s:%d", c.Source.File, c.Source.Pos)
	}
	var recs [2]sink.Record
	rec := recs[:1]
	rec[0] = sink.Record{Feed: "raw", Topic: topic, Key: key, Value: value, Op: string(c.Op), Position: pos}
	if p.o.Raw.Tombstones && c.Op == change.OpDelete && key != nil {
		rec = append(rec, sink.Record{Feed: "raw", Topic: topic, Key: key, Op: string(c.Op), Position: pos})
	}
	return p.addRawRecords(ctx, rec, false)
}

// addRawRecords adds raw records to the current batch, waiting for
// in-flight bytes first, and cuts the batch when it is full. heartbeat
// marks heartbeat records.
func (p *Pipeline) addRawRecords(ctx context.Context, rec []sink.Record, heartbeat bool) error {
	n := 0
	for i := range rec {
		n += rec[i].Size()
	}
	if err := p.limiter.Acquire(ctx, n); err != nil {
		return err
	}
	p.mu.Lock()
	b := p.cur
	if b.raw == nil {
		b.raw = make([]sink.Record, 0, min(p.o.BatchRecords+1, 1<<16))
	}
	b.raw = append(b.raw, rec...)
	b.rawBytes += n
	if heartbeat {
		b.heartbeats += len(rec)
	}
	full := p.full(b)
	p.mu.Unlock()
	if full {
		return p.cut(ctx, false)
	}
	return nil
}

// TxEnd implements binlog.Handler.
func (p *Pipeline) TxEnd(ctx context.Context, e change.TxEnd) error {
	p.snap.mu.Lock()
	defer p.snap.mu.Unlock()
	p.snap.read(e.Position)
	if p.tx != nil {
		if err := p.txEnd(ctx, e); err != nil {
			return err
		}
	}
	p.mu.Lock()
	pos := e.Position
	if p.txKeys >= p.o.BatchKeys && !p.noDefer {
		p.cur.endsBigTx = true
	}
	p.txKeys = 0
	p.cur.checkpoint = &pos
	p.cur.sourceTime = e.Timestamp
	p.readPos, p.readTime = pos, e.Timestamp
	due := p.o.Now().Sub(p.cur.started) >= p.o.Window
	p.mu.Unlock()
	if due {
		return p.cut(ctx, true)
	}
	return nil
}

// cut closes the current batch and queues it (blocking while the queue is
// full). With onlyIfDue (the batch window), it cuts only a batch older
// than the window, and only while no batch cut before waits for the
// exporter: under load a batch keeps growing (up to its size limits,
// which cut it whatever waits) until the exporter can take the next one.
// So the exporter's costs per batch (the fence, the builders' round trips,
// the sends' acknowledgements, the state commit) are shared by all the
// changes that arrived meanwhile, instead of queueing one batch per
// window behind each other — each of which the exporter took longer to
// export than the window to fill, so latency grew with the queue.
func (p *Pipeline) cut(ctx context.Context, onlyIfDue bool) error {
	p.cutMu.Lock()
	defer p.cutMu.Unlock()
	p.mu.Lock()
	b := p.cur
	if b.empty() || (onlyIfDue && (p.o.Now().Sub(b.started) < p.o.Window || p.waiting.Load() > 0)) {
		p.mu.Unlock()
		return nil
	}
	if p.txKeys >= p.o.BatchKeys && !p.noDefer {
		// Cut (by size or by the window) inside a big transaction: its
		// keys are deferred, so that the reader and the changes behind the
		// transaction need not wait for all of its builds.
		b.deferKeys = true
	}
	p.cur = p.newBatch()
	p.mu.Unlock()
	p.waiting.Add(1)
	select {
	case p.queue <- task{batch: b}:
		if p.o.Observer != nil {
			p.o.Observer.Queue(len(p.queue), p.limiter.InFlight())
		}
		return nil
	case <-ctx.Done():
		p.waiting.Add(-1)
		return ctx.Err()
	}
}

// Flush cuts the current batch and waits until everything queued so far is
// exported and checkpointed, and every deferred key of a big transaction
// is built and exported.
func (p *Pipeline) Flush(ctx context.Context) error {
	if err := p.cut(ctx, false); err != nil {
		return err
	}
	return p.Do(ctx, p.drainAllDeferred)
}

// FlushQueued is Flush without building the deferred keys of big
// transactions (they stay in the state and are built after the next
// start): a clean stop need not wait for a big transaction's builds.
func (p *Pipeline) FlushQueued(ctx context.Context) error {
	if err := p.cut(ctx, false); err != nil {
		return err
	}
	return p.Do(ctx, func(context.Context) error { return nil })
}

// Do runs job on the exporter goroutine after everything queued before it,
// and waits for its result. Jobs see the state store as the exporter left
// it, so they keep per-key order with the stream. The job's context ends
// with ctx as well as with the exporter's; when ctx ends, Do returns at
// once if the job has not started (it then never runs), and otherwise only
// after the job returned, so that nothing the caller started is still
// writing when Do returns.
func (p *Pipeline) Do(ctx context.Context, job func(ctx context.Context) error) error {
	done := make(chan error, 1)
	var claim atomic.Int32 // jobQueued, jobRunning or jobAbandoned
	bound := func(ectx context.Context) error {
		if !claim.CompareAndSwap(jobQueued, jobRunning) {
			return context.Canceled
		}
		jctx, cancel := context.WithCancel(ectx)
		defer cancel()
		stop := context.AfterFunc(ctx, cancel)
		defer stop()
		return job(jctx)
	}
	if err := p.Enqueue(ctx, bound, done); err != nil {
		return err
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		if !claim.CompareAndSwap(jobQueued, jobAbandoned) {
			<-done // running, with its context cancelled: wait until it stopped
		}
		return ctx.Err()
	}
}

// States of a job queued by Do.
const (
	jobQueued int32 = iota
	jobRunning
	jobAbandoned
)

// Enqueue queues job after the current batch without waiting for it; done
// (optional) receives its result.
func (p *Pipeline) Enqueue(ctx context.Context, job func(ctx context.Context) error, done chan error) error {
	if err := p.cut(ctx, false); err != nil {
		return err
	}
	p.cutMu.Lock()
	defer p.cutMu.Unlock()
	select {
	case p.queue <- task{job: job, done: done}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Run runs the exporter until ctx ends or an export fails for good. On a
// clean stop (ctx cancelled) the caller should not expect queued batches to
// be exported: the checkpoint covers exactly what was.
func (p *Pipeline) Run(ctx context.Context) error {
	ticker := time.NewTicker(p.o.Window / 2)
	defer ticker.Stop()
	var idle <-chan time.Time
	if p.o.IdleCheckpoint > 0 {
		it := time.NewTicker(max(p.o.IdleCheckpoint/4, 10*time.Millisecond))
		defer it.Stop()
		idle = it.C
	}
	tickErr := make(chan error, 2) // the window ticker and heartbeats
	tctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if p.o.Raw != nil && p.o.Heartbeat > 0 {
		go p.heartbeats(tctx, tickErr)
	}
	go func() {
		for {
			select {
			case <-tctx.Done():
				return
			case <-ticker.C:
				if err := p.cut(tctx, true); err != nil && tctx.Err() == nil {
					tickErr <- err
					return
				}
			case <-p.nudge: // the exporter took the waiting batch
				if err := p.cut(tctx, true); err != nil && tctx.Err() == nil {
					tickErr <- err
					return
				}
			case <-idle:
				p.idleTouch(tctx)
			}
		}
	}()
	if err := p.loadDeferred(ctx); err != nil {
		return err
	}
	defer p.dropNext()
	// Deferred keys of big transactions are built in steps when the queue
	// is empty, and at least every deferredEvery tasks otherwise: the
	// changes behind a big transaction wait for one step, not for all of it.
	sinceStep := 0
	for {
		if p.deferred.Load() > 0 && !p.inBigTx {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case err := <-tickErr:
				return err
			case t := <-p.queue:
				if err := p.runTask(ctx, t); err != nil {
					return err
				}
				if sinceStep++; sinceStep < deferredEvery || p.deferred.Load() == 0 || p.inBigTx {
					continue
				}
			default:
			}
			sinceStep = 0
			if err := p.o.SourceRetry.Do(ctx, "build deferred keys", p.drainDeferred); err != nil {
				return err
			}
			continue
		}
		// No step is drained now (nothing deferred, or a big transaction
		// is being read): a step built ahead would only grow stale.
		p.dropNext()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-tickErr:
			return err
		case t := <-p.queue:
			if err := p.runTask(ctx, t); err != nil {
				return err
			}
		}
	}
}

// deferredEvery is how many queued tasks may run before a step of deferred
// keys does, while both wait.
const deferredEvery = 4

// runTask runs one task of the queue; a failed batch stops the exporter.
func (p *Pipeline) runTask(ctx context.Context, t task) error {
	var err error
	if t.batch != nil {
		if p.waiting.Add(-1) == 0 {
			select {
			case p.nudge <- struct{}{}:
			default:
			}
		}
		// A batch that met a source failure is exported again, whole,
		// once the source answers; its checkpoint is written only
		// with its items, so nothing is skipped meanwhile.
		err = p.o.SourceRetry.Do(ctx, "export batch", func(ctx context.Context) error {
			err := p.exportBatchWaitingForTables(ctx, t.batch)
			if serr := p.settleInflight(ctx); err == nil {
				err = serr
			}
			return err
		})
	} else {
		err = t.job(ctx)
		if serr := p.settleInflight(ctx); err == nil {
			err = serr
		}
	}
	if t.done != nil {
		t.done <- err
	}
	if t.batch != nil {
		return err
	}
	return nil
}

// settleInflight runs after each exporter task (and each attempt of a
// batch) and applies the write-ahead records of its exports that ended
// without their final Update (an error, a cancelled job): the state then
// holds their items' pending states, as if they had been written ahead
// item by item, before the task's caller learns that it ended. After a
// task no export of the exporter is between its write-ahead and its final
// Update, so every record left is such a one. It writes even when ctx was
// cancelled: the write-ahead it completes was made already.
func (p *Pipeline) settleInflight(ctx context.Context) error {
	if p.o.Store.InflightRecords() <= 0 {
		return nil
	}
	n, err := p.o.Store.ApplyInflight(context.WithoutCancel(ctx))
	if err != nil {
		return fmt.Errorf("connector: apply the write-ahead records of unfinished exports: %w", err)
	}
	if n > 0 {
		p.o.Logger.Info("applied the write-ahead records of exports that did not finish; their items are sent again", "records", n)
	}
	return nil
}

// exportBatch exports one stream batch: raw records until delivered, feed
// keys rebuilt, diffed and exported, then one state transaction with the
// item states and the checkpoint.
func (p *Pipeline) exportBatch(ctx context.Context, b *batch) error {
	if len(b.raw) > 0 && !b.rawSent {
		start := p.o.Now()
		if err := p.sendRaw(ctx, b.raw); err != nil {
			return err
		}
		b.rawSent = true
		if p.o.Observer != nil {
			p.o.Observer.RawSent(len(b.raw), p.o.Now().Sub(start))
		}
	}
	eo := ExportOptions{Operation: OpPartialSync}
	if b.checkpoint != nil {
		eo.Position = *b.checkpoint
	}
	if p.o.Fence != nil && b.fence != nil && (len(b.keys) > 0 || len(b.rebuild) > 0) {
		if err := p.o.Fence.Wait(ctx, newFenceRow(b.fence, b.fenceAt)); err != nil {
			return err
		}
	}
	// The batch's changes are visible now: what a build cached of their
	// tables before they were is dropped.
	for _, c := range b.cached {
		p.o.Registry.Committed(c)
	}
	// A TRUNCATE or a table replacement rebuilds all of a feed; its other
	// keys are covered.
	for _, f := range slices.Sorted(maps.Keys(b.rebuild)) {
		if err := p.rebuildAll(ctx, f, b.rebuild[f], eo); err != nil {
			return err
		}
		delete(b.keys, f)
	}
	if b.deferKeys {
		return p.deferBatch(ctx, b)
	}
	if b.endsBigTx {
		defer func() { p.inBigTx = false }()
	}
	feedNames := make([]string, 0, len(b.keys))
	for f := range b.keys {
		feedNames = append(feedNames, f)
	}
	sort.Strings(feedNames)
	// The feeds of one batch are exported concurrently: they have disjoint
	// keys, topics and item states, and each one's export is mostly waiting
	// (builder queries, sink acknowledgements), so a batch costs the
	// slowest feed instead of the sum. Their state writes are applied in
	// feed order in the batch's one transaction below.
	ws := make([]writeSet, len(feedNames))
	errs := make([]error, len(feedNames))
	exportFeed := func(i int) {
		f := feedNames[i]
		keys := make([]string, 0, len(b.keys[f]))
		for k := range b.keys[f] {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		_, errs[i] = p.ExportKeys(ctx, f, keys, eo, &ws[i])
	}
	if len(feedNames) == 1 {
		exportFeed(0)
	} else {
		var wg sync.WaitGroup
		for i := range feedNames {
			wg.Add(1)
			go func() {
				defer wg.Done()
				exportFeed(i)
			}()
		}
		wg.Wait()
	}
	for _, err := range errs {
		if err != nil {
			return err // the first failing feed's, in feed order
		}
	}
	var w writeSet
	for i := range ws {
		w.add(&ws[i])
	}
	undeferred := 0
	err := p.o.Store.Update(ctx, func(tx *state.Tx) error {
		undeferred = 0
		if err := w.apply(tx); err != nil {
			return err
		}
		if p.deferred.Load() > 0 {
			// Keys built here need no deferred build any more.
			for _, f := range feedNames {
				n, err := tx.DeleteDeferred(f, slices.Collect(maps.Keys(b.keys[f])))
				if err != nil {
					return err
				}
				undeferred += n
			}
		}
		if err := putRawSnaps(tx, b.rawSnaps); err != nil {
			return err
		}
		if b.checkpoint != nil {
			return tx.SetCheckpoint(*b.checkpoint, p.o.Now())
		}
		return nil
	})
	if err == nil && undeferred > 0 {
		p.deferred.Add(-int64(undeferred))
		p.deferredChanged()
	}
	p.limiter.Release(b.rawBytes)
	if err != nil {
		return fmt.Errorf("connector: persist batch: %w", err)
	}
	if b.checkpoint != nil {
		p.storedAt.Store(p.o.Now().UnixNano())
		if p.o.Observer != nil {
			p.o.Observer.Checkpointed(*b.checkpoint, b.sourceTime)
		}
	}
	return nil
}

// TouchCheckpoint stores the checkpoint again with the current time, after
// everything queued before it is exported: the position stays the last one
// whose every change was handed off, so it is never ahead of anything
// unexported. It is how an idle source's checkpoint keeps a bounded age,
// and how a clean stop confirms its final checkpoint.
func (p *Pipeline) TouchCheckpoint(ctx context.Context) error {
	return p.Do(ctx, p.touch)
}

func (p *Pipeline) touch(ctx context.Context) error {
	var pos change.Position
	var ok bool
	err := p.o.Store.Update(ctx, func(tx *state.Tx) (err error) {
		pos, ok, err = tx.TouchCheckpoint(p.o.Now())
		return err
	})
	if err != nil {
		return fmt.Errorf("connector: store the checkpoint again: %w", err)
	}
	if ok {
		p.storedAt.Store(p.o.Now().UnixNano())
		if p.o.Observer != nil {
			p.o.Observer.Checkpointed(pos, time.Time{})
		}
	}
	return nil
}

// idleTouch queues a re-store of the checkpoint when none was stored for
// IdleCheckpoint and no batch is being collected; it never blocks the
// ticker (a full queue means the pipeline is busy, not idle).
func (p *Pipeline) idleTouch(ctx context.Context) {
	now := p.o.Now()
	if last := p.storedAt.Load(); last != 0 && now.Sub(time.Unix(0, last)) < p.o.IdleCheckpoint {
		return
	}
	p.mu.Lock()
	b := p.cur
	busy := !b.empty() && !(b.nkeys == 0 && len(b.raw) == b.heartbeats && b.checkpoint == nil && len(b.rebuild) == 0)
	p.mu.Unlock()
	if busy || !p.touching.CompareAndSwap(false, true) {
		return
	}
	job := func(ctx context.Context) error {
		defer p.touching.Store(false)
		if err := p.touch(ctx); err != nil && ctx.Err() == nil {
			p.o.Logger.Warn("idle checkpoint not stored; retried at the next interval", "error", err)
			return err
		}
		return nil
	}
	p.cutMu.Lock()
	defer p.cutMu.Unlock()
	select {
	case p.queue <- task{job: job}:
	case <-ctx.Done():
		p.touching.Store(false)
	default:
		p.touching.Store(false)
	}
}

// sendRaw delivers raw records, retrying in place until every one is
// delivered. A record the destination rejects (too large for the broker)
// stops the pipeline: skipping it would lose a change.
func (p *Pipeline) sendRaw(ctx context.Context, recs []sink.Record) error {
	for attempt := 1; ; attempt++ {
		res, err := sink.SendWithRetry(ctx, p.o.Sink, recs, p.o.RawBackoff)
		if err != nil && ctx.Err() != nil {
			return ctx.Err()
		}
		for i, r := range res {
			if r.Status == sink.StatusRejected {
				topic := recs[i].Topic
				if p.o.RawTopicName != nil {
					topic = p.o.RawTopicName(topic)
				}
				return fmt.Errorf("connector: raw change on %s at %s was rejected by the sink (%s); feedcdc stops rather than skip a change: raise the limit named there and restart",
					topic, recs[i].Position, r.Reason)
			}
		}
		if err == nil {
			return nil
		}
		p.o.Logger.Warn("raw records not delivered yet, retrying", "records", len(recs), "attempt", attempt, "error", err)
	}
}

// ExportOptions tune one ExportKeys call.
type ExportOptions struct {
	// DryRun builds and diffs but sends and persists nothing; items get
	// status -1 in the returned sample only.
	DryRun bool
	// Force sends every built item even if its hash is unchanged (resync
	// --by-ids bypasses the hash check).
	Force bool
	// Operation names the operation in logs ("partial sync", "full sync",
	// "retry failed items", ...).
	Operation string
	// Sample, when non-nil, receives up to cap(*Sample) built items.
	Sample *[]feeds.Item
	// Position is the source position the keys were read at (spans).
	Position change.Position
}

// span starts a span with start when tracing is on; end closes it.
func (p *Pipeline) span(ctx context.Context, start func(*telemetry.Tracing) (context.Context, trace.Span)) (context.Context, func(error)) {
	if p.o.Tracing == nil {
		return ctx, func(error) {}
	}
	ctx, sp := start(p.o.Tracing)
	return ctx, func(err error) { telemetry.End(sp, err) }
}

// writeSet collects the state writes of one export for a single
// transaction: the final item states, outbox entries, and the write-ahead
// records (state.Tx.PutInflight) those states settle.
type writeSet struct {
	items    []state.Item
	outbox   map[string][]state.OutboxEntry
	inflight []uint64
}

// add appends o's writes to w.
func (w *writeSet) add(o *writeSet) {
	w.items = append(w.items, o.items...)
	w.inflight = append(w.inflight, o.inflight...)
	for feed, entries := range o.outbox {
		if w.outbox == nil {
			w.outbox = map[string][]state.OutboxEntry{}
		}
		w.outbox[feed] = append(w.outbox[feed], entries...)
	}
}

func (w *writeSet) apply(tx *state.Tx) error {
	if len(w.items) > 0 {
		if err := tx.PutItems(w.items); err != nil {
			return err
		}
	}
	for _, token := range w.inflight {
		if err := tx.DeleteInflight(token); err != nil {
			return err
		}
	}
	for feed, entries := range w.outbox {
		if err := tx.PutOutbox(feed, entries); err != nil {
			return err
		}
	}
	return nil
}

// loadPrev reads what the state store knows of some entities of a feed,
// as feeds.Diff wants it and by item id with the full stored state.
func loadPrev(ctx context.Context, s *state.Store, feed string, keys []string) (map[string][]feeds.PrevItem, map[string]state.Item, error) {
	m, err := s.ItemsByEntity(ctx, feed, keys)
	if err != nil {
		return nil, nil, err
	}
	out := make(map[string][]feeds.PrevItem, len(m))
	byID := map[string]state.Item{}
	for k, items := range m {
		ps := make([]feeds.PrevItem, len(items))
		for i, it := range items {
			ps[i] = feeds.PrevItem{ID: it.ID, EntityKey: it.EntityKey, Identity: it.Identity, Hash: it.Hash, Status: it.Status, Deleted: it.Deleted}
			byID[it.ID] = it
		}
		out[k] = ps
	}
	return out, byID, nil
}

// ExportKeys rebuilds the items of the given entity keys of one feed, diffs
// them with the state store and exports what changed. The resulting item
// states are added to w (the caller persists them, with a checkpoint or
// progress, in one transaction); with w nil they are persisted here.
// Keys are built in chunks of BuildChunk, BuildThreads chunks at a time.
// It must run on the exporter goroutine (inside a batch or a Do job).
func (p *Pipeline) ExportKeys(ctx context.Context, feed string, keys []string, eo ExportOptions, w *writeSet) (ExportStats, error) {
	return p.exportKeys(ctx, feed, keys, eo, w, p.o.BuildThreads, p.o.BuildChunk)
}

// exportKeys is ExportKeys with the chunk size and the number of chunks
// built at once given. Chunks are built concurrently (Build only reads the
// source) but diffed, sent and recorded one after another in key order, so
// the items of a key leave in the same order as with one thread; at most
// threads built chunks wait in memory.
func (p *Pipeline) exportKeys(ctx context.Context, feed string, keys []string, eo ExportOptions, w *writeSet, threads, size int) (ExportStats, error) {
	var total ExportStats
	if p.o.Registry == nil {
		return total, fmt.Errorf("connector: no feeds configured")
	}
	f, ok := p.o.Registry.Feed(feed)
	if !ok {
		return total, fmt.Errorf("connector: feed %q is not enabled", feed)
	}
	own := w == nil
	if own {
		w = &writeSet{}
	}
	defer p.watch.exported(feed, keys)
	size = max(size, 1)
	nchunks := (len(keys) + size - 1) / size
	threads = max(1, min(threads, nchunks))
	chunk := func(i int) []string { return keys[i*size : min((i+1)*size, len(keys))] }
	type built struct {
		items []feeds.Item
		err   error
	}
	build := func(c []string) built {
		t0 := p.o.Now()
		bctx, endSpan := p.span(ctx, func(t *telemetry.Tracing) (context.Context, trace.Span) {
			return t.StartBuild(ctx, feed, len(c), eo.Position)
		})
		items, err := f.Build(bctx, c)
		endSpan(err)
		if err != nil {
			return built{err: fmt.Errorf("connector: build %s for %d keys (%s..%s): %w", feed, len(c), c[0], c[len(c)-1], err)}
		}
		if p.o.Observer != nil {
			p.o.Observer.Built(feed, len(items), p.o.Now().Sub(t0))
		}
		return built{items: items}
	}
	// results[i] receives chunk i's build; a chunk's build starts when the
	// chunk threads places before it has been exported, which bounds both
	// the source connections used and the items held.
	results := make([]chan built, nchunks)
	start := func(i int) {
		if i < nchunks {
			results[i] = make(chan built, 1)
			go func() { results[i] <- build(chunk(i)) }()
		}
	}
	if threads > 1 {
		for i := range threads {
			start(i)
		}
	}
	for i := range nchunks {
		var b built
		if threads > 1 {
			b = <-results[i]
		} else {
			b = build(chunk(i))
		}
		var st ExportStats
		err := b.err
		if err == nil {
			st, err = p.exportBuilt(ctx, feed, chunk(i), b.items, eo, w)
			total.add(st)
		}
		if err != nil {
			if threads > 1 {
				// Wait for the builds still running before returning.
				for j := i + 1; j < min(i+threads, nchunks); j++ {
					<-results[j]
				}
			}
			return total, err
		}
		if threads > 1 {
			start(i + threads)
		}
	}
	if own && !eo.DryRun {
		if err := p.o.Store.Update(ctx, w.apply); err != nil {
			return total, fmt.Errorf("connector: persist %s items: %w", feed, err)
		}
	}
	return total, nil
}

// exportBuilt diffs freshly built items of some entity keys with the state
// store and exports what changed, adding the new item states to w.
func (p *Pipeline) exportBuilt(ctx context.Context, feed string, chunk []string, built []feeds.Item, eo ExportOptions, w *writeSet) (ExportStats, error) {
	f, _ := p.o.Registry.Feed(feed)
	pol := p.o.policy(feed)
	prev, prevByID, err := loadPrev(ctx, p.o.Store, feed, chunk)
	if err != nil {
		return ExportStats{}, fmt.Errorf("connector: read state of %s: %w", feed, err)
	}
	if len(pol.Stores) > 0 || len(pol.Websites) > 0 {
		kept := built[:0:0]
		for _, it := range built {
			if pol.keep(it) {
				kept = append(kept, it)
			}
		}
		built = kept
	}
	changed, deleted, unchanged := feeds.Diff(f, built, prev)
	if eo.Force {
		// resync --by-ids bypasses the hash check: send every built item.
		changed, unchanged = built, 0
	}
	// A deleted payload that failed to send (deleted, status not final) is
	// sent again: Diff only turns live items into deleted ones.
	builtIDs := make(map[string]bool, len(built))
	for _, it := range built {
		builtIDs[it.ID] = true
	}
	for _, items := range prev {
		for _, pi := range items {
			if pi.Deleted && !state.IsFinal(pi.Status) && !builtIDs[pi.ID] {
				deleted = append(deleted, f.DeletedPayload(pi))
			}
		}
	}
	st := ExportStats{Keys: len(chunk), Built: len(built), Skipped: unchanged}
	items := append(changed, deleted...)
	if eo.Sample != nil {
		for _, it := range items {
			if len(*eo.Sample) < cap(*eo.Sample) {
				it.Data = slices.Clone(it.Data) // kept to the end: not the Build's shared buffer
				*eo.Sample = append(*eo.Sample, it)
			}
		}
	}
	if eo.DryRun {
		st.Sent = len(items)
		return st, nil
	}
	if len(items) == 0 {
		if p.o.Observer != nil && st.Skipped > 0 {
			p.o.Observer.Exported(feed, st, 0) // unchanged items only: counted, no export
		}
		return st, nil
	}
	t1 := p.o.Now()
	ectx, end := p.span(ctx, func(t *telemetry.Tracing) (context.Context, trace.Span) {
		return t.StartExport(ctx, feed, p.o.Sink.Name(), len(items), eo.Position)
	})
	err = p.exportItems(ectx, feed, pol, items, prevByID, w, &st)
	end(err)
	if err != nil {
		return st, err
	}
	if p.o.Observer != nil {
		p.o.Observer.Exported(feed, st, p.o.Now().Sub(t1))
	}
	if st.Sent > 0 {
		p.synced(feed, p.o.Now())
	}
	return st, nil
}

// Record builds the sink record of a feed item.
func Record(it feeds.Item, identityFields []string) sink.Record {
	op := "u"
	if it.Deleted {
		op = "d"
	}
	return sink.Record{Feed: it.Feed, Key: identityKey(it, identityFields), Value: it.Data, ID: it.ID, Hash: it.Hash, Op: op}
}

// identityKey is the record key: the JSON object of the identity fields in
// feed order, e.g. {"sku":"24-MB01","storeViewCode":"default"}.
func identityKey(it feeds.Item, fields []string) []byte {
	n := 2
	for _, f := range fields {
		n += len(f) + len(it.Identity[f]) + 6
	}
	b := make([]byte, 0, n) // one allocation unless a value needs escapes
	b = append(b, '{')
	for i, f := range fields {
		if i > 0 {
			b = append(b, ',')
		}
		b = raw.AppendString(b, f)
		b = append(b, ':')
		b = raw.AppendString(b, it.Identity[f])
	}
	return append(b, '}')
}

// exportItems sends (or, in legacy mode, queues) items and records their new
// states in w.
func (p *Pipeline) exportItems(ctx context.Context, feed string, pol FeedPolicy, items []feeds.Item, prev map[string]state.Item, w *writeSet, st *ExportStats) error {
	f, _ := p.o.Registry.Feed(feed)
	now := p.o.Now()
	base := func(it feeds.Item) state.Item {
		return state.Item{Feed: feed, ID: it.ID, EntityKey: it.EntityKey, Identity: it.Identity, Hash: it.Hash,
			ModifiedAt: now, Deleted: it.Deleted}
	}
	if pol.Mode == ModeLegacy {
		if w.outbox == nil {
			w.outbox = map[string][]state.OutboxEntry{}
		}
		for _, it := range items {
			w.outbox[feed] = append(w.outbox[feed], state.OutboxEntry{Feed: feed, ID: it.ID, Payload: it.Data, Added: now})
			s := base(it)
			s.Status = state.StatusPending
			w.items = append(w.items, s)
			st.Sent++
			if it.Deleted {
				st.Deleted++
			}
		}
		return nil
	}
	// Write-ahead: the state learns what is about to be sent (new hash and
	// identity, status pending) before the sink may accept it. A crash
	// between the sink's acknowledgement and the batch's state commit then
	// replays into a state that knows the in-flight version: an entity that
	// changed back is resent (its hash differs from the pending one), and a
	// vanished one gets its deleted payload. The states are written as one
	// record (PutInflight), which the final Update removes; a record left
	// behind is applied as those pending states (state.Store.ApplyInflight:
	// at Open, and by the exporter before each task).
	inflight := make([]state.Item, len(items))
	for i, it := range items {
		inflight[i] = base(it)
		inflight[i].Status = state.StatusPending
	}
	var token uint64
	err := p.o.Store.Update(ctx, func(tx *state.Tx) (err error) {
		token, err = tx.PutInflight(inflight)
		return err
	})
	if err != nil {
		return fmt.Errorf("connector: record %s items in flight: %w", feed, err)
	}
	w.inflight = append(w.inflight, token)
	recs := make([]sink.Record, len(items))
	fields := f.IdentityFields()
	for i, it := range items {
		recs[i] = Record(it, fields)
		// A version some sinks already accepted goes only to the others.
		if pv := prev[it.ID]; pv.Status == state.StatusRetryableFailure && pv.Hash == it.Hash && pv.Deleted == it.Deleted {
			recs[i].SkipSinks = pv.Accepted
		}
	}
	res, err := sink.SendWithRetry(ctx, p.o.Sink, recs, p.o.SendBackoff)
	if err != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	// The final states reuse the write-ahead's slice (its record is
	// written): one slice of states per export instead of two.
	for i, it := range items {
		s := &inflight[i]
		*s = base(it)
		p.applyResult(s, res[i], prev[it.ID], pol, now, st)
		if it.Deleted && s.Status == state.StatusSent {
			st.Deleted++
		}
	}
	if w.items == nil {
		w.items = inflight
	} else {
		w.items = append(w.items, inflight...)
	}
	return nil
}

// applyResult sets an item's status from a sink result.
func (p *Pipeline) applyResult(s *state.Item, r sink.Result, prev state.Item, pol FeedPolicy, now time.Time, st *ExportStats) {
	s.RequestID = r.RequestID
	switch r.Status {
	case sink.StatusOK:
		s.Status, s.SentAt, s.Attempts, s.LastError = state.StatusSent, now, 0, ""
		st.Sent++
	case sink.StatusRejected:
		s.Status = state.StatusRejected
		if r.ItemRejected {
			s.Status = state.StatusRejectedByService
		}
		s.LastError = r.Reason
		st.Rejected++
	default:
		s.Status = state.StatusRetryableFailure
		attempts := 1
		if prev.ID != "" && prev.Status == state.StatusRetryableFailure && prev.Hash == s.Hash {
			attempts = prev.Attempts + 1
		}
		s.Attempts = attempts
		// Sinks that have this version: those that accepted it before
		// (skipped this time) and those that accepted it now.
		if prev.ID != "" && prev.Status == state.StatusRetryableFailure && prev.Hash == s.Hash && prev.Deleted == s.Deleted {
			s.Accepted = append(s.Accepted, prev.Accepted...)
		}
		for _, n := range r.Accepted {
			if !slices.Contains(s.Accepted, n) {
				s.Accepted = append(s.Accepted, n)
			}
		}
		s.LastError = r.Reason
		if s.LastError == "" && r.Err != nil {
			s.LastError = r.Err.Error()
		}
		wait := state.NextBackoff(attempts, pol.BackoffBase, pol.BackoffMax)
		if r.RetryAfter > wait {
			wait = r.RetryAfter
		}
		s.NextAttempt = now.Add(wait)
		if attempts >= pol.MaxAttempts {
			s.Attention = true
			st.Attention++
		}
		st.Failed++
	}
}

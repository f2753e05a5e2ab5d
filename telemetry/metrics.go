package telemetry

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/feedcdc/feedcdc/change"
)

// Metric names (OpenTelemetry naming; the Prometheus exposition turns dots
// into underscores and adds unit and _total suffixes, see docs/operations.md).
const (
	MetricBinlogEvents        = "feedcdc.binlog.events"
	MetricBinlogRows          = "feedcdc.binlog.rows"
	MetricBinlogBytes         = "feedcdc.binlog.bytes"
	MetricSourceLag           = "feedcdc.source.lag"
	MetricSourceHeartbeats    = "feedcdc.source.heartbeats"
	MetricSourceConnected     = "feedcdc.source.connected"
	MetricSourceDisconnects   = "feedcdc.source.disconnects"
	MetricSourceRetries       = "feedcdc.source.retries"
	MetricTxLarge             = "feedcdc.tx.large"
	MetricQueueDepth          = "feedcdc.queue.depth"
	MetricQueueDepthBytes     = "feedcdc.queue.depth.bytes"
	MetricQueueCapacity       = "feedcdc.queue.capacity"
	MetricQueueCapacityBytes  = "feedcdc.queue.capacity.bytes"
	MetricItemsBuilt          = "feedcdc.feed.items.built"
	MetricItemsSent           = "feedcdc.feed.items.sent"
	MetricItemsSkipped        = "feedcdc.feed.items.skipped"
	MetricItemsFailed         = "feedcdc.feed.items.failed"
	MetricItemsRetried        = "feedcdc.feed.items.retried"
	MetricBuildDuration       = "feedcdc.feed.build.duration"
	MetricExportDuration      = "feedcdc.feed.export.duration"
	MetricE2ELatency          = "feedcdc.e2e.latency"
	MetricFenceWait           = "feedcdc.fence.wait"
	MetricFenceTimeouts       = "feedcdc.fence.timeouts"
	MetricResyncProgress      = "feedcdc.resync.progress"
	MetricResyncDone          = "feedcdc.resync.done"
	MetricResyncTotal         = "feedcdc.resync.total"
	MetricCheckpointPosition  = "feedcdc.checkpoint.position"
	MetricCheckpointFile      = "feedcdc.checkpoint.file"
	MetricCheckpointAge       = "feedcdc.checkpoint.age"
	MetricPositionGaps        = "feedcdc.position.gaps"
	MetricFeedItems           = "feedcdc.feed.items"
	MetricHAActive            = "feedcdc.ha.active"
	MetricHAEpoch             = "feedcdc.ha.epoch"
	MetricHATakeover          = "feedcdc.ha.takeover.duration"
	MetricHAChangelogLag      = "feedcdc.ha.changelog.lag"
	attrFeed                  = "feed"
	attrQueue                 = "queue"
	attrFailure               = "failure"
	failureRetryable          = "retryable"
	failureRejected           = "rejected"
	defaultDurationBucketsMax = 120.0
)

var durationBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, defaultDurationBucketsMax}

var latencyBuckets = []float64{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800}

// Metrics holds feedcdc's typed instruments. Its methods are what the
// connector calls on the hot path. Counters, gauges and the lag are kept in
// atomics and read by one callback at collection time (scrape or OTLP
// push), so recording costs about one atomic add; only the latency
// histograms record synchronously. Attribute sets are computed once per
// feed or queue name, and no method allocates.
type Metrics struct {
	now func() time.Time
	lag *LagTracker
	ctx context.Context

	events, rows, bytes     atomic.Int64
	heartbeats, disconnects atomic.Int64
	txLarge                 atomic.Int64
	fenceTimeouts           atomic.Int64
	positionGaps            atomic.Int64
	connected               atomic.Int64 // -1 = never reported
	ckptPos, ckptFile       atomic.Int64
	ckptFileKnown           atomic.Bool
	ckptStoredAt            atomic.Int64 // unix nanoseconds of the last stored checkpoint; 0 = none
	itemCounts              atomic.Pointer[func() []FeedItemCounts]
	haStatus                atomic.Pointer[func() HAStatus]
	standby                 atomic.Bool // only the feedcdc.ha.* gauges are reported

	buildDur, exportDur, e2e metric.Float64Histogram
	fenceWait                metric.Float64Histogram
	// sourceRetries counts retried source reads by reason; recorded
	// synchronously (rare: only while the source fails).
	sourceRetries metric.Int64Counter
	verify        verifyInstruments
	rawSnap       rawSnapInstruments

	srcMu  sync.Mutex
	srcUp  bool
	srcErr string

	mu     sync.RWMutex
	feeds  map[string]*FeedMetrics
	queues map[string]*QueueMetrics
	feedL  []*FeedMetrics  // feeds in creation order, for the callback
	queueL []*QueueMetrics // queues in creation order
}

type observables struct {
	events, rows, bytes, heartbeats, disconnects, txLarge metric.Int64ObservableCounter
	fenceTimeouts, positionGaps                           metric.Int64ObservableCounter
	built, sent, skipped, failed, retried                 metric.Int64ObservableCounter
	connected, ckptPos, ckptFile                          metric.Int64ObservableGauge
	queueDepth, queueBytes, queueCap, queueCapBytes       metric.Int64ObservableGauge
	resyncDone, resyncTotal                               metric.Int64ObservableGauge
	resyncProgress, ckptAge                               metric.Float64ObservableGauge
	lag                                                   metric.Int64ObservableGauge
	feedItems                                             metric.Int64ObservableGauge
	haActive, haEpoch, haTakeover, haChangelogLag         metric.Int64ObservableGauge
}

// NewMetrics creates the instruments on meter. lag feeds the
// feedcdc.source.lag gauge, which is computed at collection time; now is the
// clock (time.Now when nil).
func NewMetrics(meter metric.Meter, lag *LagTracker, now func() time.Time) (*Metrics, error) {
	if now == nil {
		now = time.Now
	}
	if lag == nil {
		lag = NewLagTracker(LagOptions{Now: now})
	}
	m := &Metrics{
		ctx:    context.Background(),
		now:    now,
		lag:    lag,
		feeds:  map[string]*FeedMetrics{},
		queues: map[string]*QueueMetrics{},
	}
	m.connected.Store(-1)
	var errs []error
	var o observables
	counter := func(name, unit, desc string) metric.Int64ObservableCounter {
		c, err := meter.Int64ObservableCounter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		if err != nil {
			errs = append(errs, err)
		}
		return c
	}
	gauge := func(name, unit, desc string) metric.Int64ObservableGauge {
		g, err := meter.Int64ObservableGauge(name, metric.WithUnit(unit), metric.WithDescription(desc))
		if err != nil {
			errs = append(errs, err)
		}
		return g
	}
	fgauge := func(name, unit, desc string) metric.Float64ObservableGauge {
		g, err := meter.Float64ObservableGauge(name, metric.WithUnit(unit), metric.WithDescription(desc))
		if err != nil {
			errs = append(errs, err)
		}
		return g
	}
	hist := func(name, desc string, buckets []float64) metric.Float64Histogram {
		h, err := meter.Float64Histogram(name, metric.WithUnit("s"), metric.WithDescription(desc),
			metric.WithExplicitBucketBoundaries(buckets...))
		if err != nil {
			errs = append(errs, err)
		}
		return h
	}
	o.events = counter(MetricBinlogEvents, "{event}", "Binlog events read from the source (heartbeats excluded).")
	o.rows = counter(MetricBinlogRows, "{row}", "Row images of captured tables decoded from the binlog.")
	o.bytes = counter(MetricBinlogBytes, "By", "Binlog bytes read from the source.")
	o.heartbeats = counter(MetricSourceHeartbeats, "{heartbeat}", "Binlog heartbeats received (the source had nothing more to send).")
	o.disconnects = counter(MetricSourceDisconnects, "{disconnect}", "Times the binlog connection to the source was lost.")
	o.txLarge = counter(MetricTxLarge, "{transaction}", "Source transactions larger than the large-transaction threshold.")
	o.positionGaps = counter(MetricPositionGaps, "{gap}", "Times the checkpoint jumped over binlog that was never read (source.on_purged_position: resync after a purge), so raw streams miss the changes in between; the gap is recorded in the state's position history (feedcdc status).")
	o.fenceTimeouts = counter(MetricFenceTimeouts, "{batch}", "Streamed batches whose newest transaction the visibility fence could not prove committed within feeds.visibility_fence_timeout; they were not exported and are retried.")
	o.connected = gauge(MetricSourceConnected, "", "1 while the binlog connection to the source is up, else 0.")
	o.queueDepth = gauge(MetricQueueDepth, "{item}", "Items waiting in an internal queue.")
	o.queueBytes = gauge(MetricQueueDepthBytes, "By", "Bytes waiting in an internal queue.")
	o.queueCap = gauge(MetricQueueCapacity, "{item}", "Capacity of an internal queue in items.")
	o.queueCapBytes = gauge(MetricQueueCapacityBytes, "By", "Capacity of an internal queue in bytes (0: not bounded by bytes).")
	o.built = counter(MetricItemsBuilt, "{item}", "Feed items built from the source.")
	o.sent = counter(MetricItemsSent, "{item}", "Feed items acknowledged by the sink.")
	o.skipped = counter(MetricItemsSkipped, "{item}", "Feed items not sent because their hash is unchanged.")
	o.failed = counter(MetricItemsFailed, "{item}", "Feed items that failed to export (failure=retryable|rejected).")
	o.retried = counter(MetricItemsRetried, "{item}", "Feed items sent again by the retry of failed items.")
	o.resyncProgress = fgauge(MetricResyncProgress, "1", "Full-sync progress of a feed, 0..1.")
	o.resyncDone = gauge(MetricResyncDone, "{key}", "Source keys processed by the running or last full sync of a feed.")
	o.resyncTotal = gauge(MetricResyncTotal, "{key}", "Source keys to process in the running or last full sync of a feed.")
	o.ckptPos = gauge(MetricCheckpointPosition, "By", "Byte offset of the stored checkpoint within its binlog file.")
	o.ckptFile = gauge(MetricCheckpointFile, "{file}", "Sequence number of the stored checkpoint's binlog file (mysql-bin.000042 → 42).")
	o.ckptAge = fgauge(MetricCheckpointAge, "s", "Seconds since the checkpoint was last stored.")
	o.feedItems = gauge(MetricFeedItems, "{item}", "Feed items of a feed in the state store now, by status: failed (status 2, will retry), rejected (status 400/1, require attention), pending (not sent yet).")
	o.haActive = gauge(MetricHAActive, "", "High availability: 1 while this instance is the active one and its lease holds, else 0.")
	o.haEpoch = gauge(MetricHAEpoch, "", "High availability: the epoch of this instance's leadership (the changelog offset of its epoch marker); on a standby, the newest epoch it read.")
	o.haTakeover = gauge(MetricHATakeover, "ms", "High availability: how long this instance's last takeover took, from its election to the connector streaming.")
	o.haChangelogLag = gauge(MetricHAChangelogLag, "{record}", "High availability: on a standby, the state changelog records it has not applied yet (0 on the active instance).")
	o.lag = gauge(MetricSourceLag, "ms", "How far the binlog reader is behind the source, from event timestamps and heartbeats; 0 when idle, growing when the source is silent or disconnected.")
	m.buildDur = hist(MetricBuildDuration, "Time to build one batch of feed items.", durationBuckets)
	m.exportDur = hist(MetricExportDuration, "Time to export one batch of feed items to the sink, until acknowledged.", durationBuckets)
	m.fenceWait = hist(MetricFenceWait, "Time a streamed batch waited for its newest transaction to become visible to other sessions (visibility fence).", durationBuckets)
	if c, err := meter.Int64Counter(MetricSourceRetries, metric.WithUnit("{retry}"),
		metric.WithDescription("SQL reads on the source (builds, fan-out lookups, fence, full-sync chunks) retried after a transient failure, by reason (connection, shutdown, deadlock, lock_wait_timeout, read_only, statement_timeout, ...).")); err != nil {
		errs = append(errs, err)
	} else {
		m.sourceRetries = c
	}
	if v, err := newVerifyInstruments(meter); err != nil {
		errs = append(errs, err)
	} else {
		m.verify = v
	}
	if r, err := newRawSnapInstruments(meter); err != nil {
		errs = append(errs, err)
	} else {
		m.rawSnap = r
	}
	m.e2e = hist(MetricE2ELatency, "From the source commit timestamp of the transaction that closed a batch to the checkpoint stored once every sink acknowledged it (whole-second source precision).", latencyBuckets)
	if len(errs) > 0 {
		return nil, fmt.Errorf("telemetry: creating instruments: %v", errs)
	}
	_, err := meter.RegisterCallback(func(_ context.Context, ob metric.Observer) error {
		m.observe(ob, &o)
		return nil
	}, o.events, o.rows, o.bytes, o.heartbeats, o.disconnects, o.txLarge, o.fenceTimeouts, o.positionGaps,
		o.built, o.sent, o.skipped, o.failed, o.retried,
		o.connected, o.ckptPos, o.ckptFile, o.queueDepth, o.queueBytes, o.queueCap, o.queueCapBytes,
		o.resyncDone, o.resyncTotal, o.resyncProgress, o.ckptAge, o.lag, o.feedItems, o.haActive, o.haEpoch, o.haTakeover, o.haChangelogLag)
	if err != nil {
		return nil, fmt.Errorf("telemetry: registering the metrics callback: %w", err)
	}
	return m, nil
}

// observe reports every atomic to the SDK; called at collection time.
func (m *Metrics) observe(ob metric.Observer, o *observables) {
	if fn := m.haStatus.Load(); fn != nil {
		s := (*fn)()
		active := int64(0)
		if s.Active {
			active = 1
		}
		ob.ObserveInt64(o.haActive, active)
		ob.ObserveInt64(o.haEpoch, s.Epoch)
		ob.ObserveInt64(o.haTakeover, s.TakeoverMillis)
		ob.ObserveInt64(o.haChangelogLag, s.ChangelogLag)
	}
	if m.standby.Load() {
		return
	}
	ob.ObserveInt64(o.events, m.events.Load())
	ob.ObserveInt64(o.rows, m.rows.Load())
	ob.ObserveInt64(o.bytes, m.bytes.Load())
	ob.ObserveInt64(o.heartbeats, m.heartbeats.Load())
	ob.ObserveInt64(o.disconnects, m.disconnects.Load())
	ob.ObserveInt64(o.txLarge, m.txLarge.Load())
	ob.ObserveInt64(o.fenceTimeouts, m.fenceTimeouts.Load())
	ob.ObserveInt64(o.positionGaps, m.positionGaps.Load())
	// 0 until the first connection too: a source unreachable from the
	// start is "down" (alert Source down), not absent.
	ob.ObserveInt64(o.connected, max(0, m.connected.Load()))
	if r := m.lag.Read(); r.State != LagUnknown {
		ob.ObserveInt64(o.lag, r.Lag.Milliseconds())
	}
	if at := m.ckptStoredAt.Load(); at != 0 {
		ob.ObserveInt64(o.ckptPos, m.ckptPos.Load())
		if m.ckptFileKnown.Load() {
			ob.ObserveInt64(o.ckptFile, m.ckptFile.Load())
		}
		ob.ObserveFloat64(o.ckptAge, m.now().Sub(time.Unix(0, at)).Seconds())
	}
	m.mu.RLock()
	feeds, queues := m.feedL, m.queueL
	m.mu.RUnlock()
	for _, f := range feeds {
		ob.ObserveInt64(o.built, f.built.Load(), f.obs)
		ob.ObserveInt64(o.sent, f.sent.Load(), f.obs)
		ob.ObserveInt64(o.skipped, f.skipped.Load(), f.obs)
		ob.ObserveInt64(o.failed, f.failedRetryable.Load(), f.obsRetryable)
		ob.ObserveInt64(o.failed, f.failedRejected.Load(), f.obsRejected)
		ob.ObserveInt64(o.retried, f.retried.Load(), f.obs)
		if f.resyncSet.Load() {
			done, total := f.resyncDone.Load(), f.resyncTotal.Load()
			ob.ObserveInt64(o.resyncDone, done, f.obs)
			ob.ObserveInt64(o.resyncTotal, total, f.obs)
			ob.ObserveFloat64(o.resyncProgress, progress(done, total), f.obs)
		}
	}
	if fn := m.itemCounts.Load(); fn != nil {
		for _, c := range (*fn)() {
			for _, st := range []struct {
				status string
				n      int64
			}{{"failed", c.Failed}, {"rejected", c.Rejected}, {"pending", c.Pending}} {
				ob.ObserveInt64(o.feedItems, st.n, metric.WithAttributeSet(attribute.NewSet(
					attribute.String(attrFeed, c.Feed), attribute.String("status", st.status))))
			}
		}
	}
	for _, q := range queues {
		ob.ObserveInt64(o.queueDepth, q.items.Load(), q.obs)
		ob.ObserveInt64(o.queueBytes, q.bytes.Load(), q.obs)
		if q.capSet.Load() {
			ob.ObserveInt64(o.queueCap, q.capItems.Load(), q.obs)
			ob.ObserveInt64(o.queueCapBytes, q.capBytes.Load(), q.obs)
		}
	}
}

func progress(done, total int64) float64 {
	switch {
	case total > 0:
		return min(float64(done)/float64(total), 1)
	case done > 0:
		return 1
	}
	return 0
}

// Lag returns the tracker behind feedcdc.source.lag. The binlog reader
// calls Lag().Event(ts) for events; use Heartbeat/SourceDisconnected for
// the rest so counters and lag stay consistent.
func (m *Metrics) Lag() *LagTracker { return m.lag }

// EventsRead counts binlog events read.
func (m *Metrics) EventsRead(n int64) { m.events.Add(n) }

// RowsRead counts row images of captured tables decoded.
func (m *Metrics) RowsRead(n int64) { m.rows.Add(n) }

// BytesRead counts binlog bytes read.
func (m *Metrics) BytesRead(n int64) { m.bytes.Add(n) }

// SourceEvent records the source timestamp of an event just read (lag).
func (m *Metrics) SourceEvent(ts time.Time) { m.lag.Event(ts) }

// Heartbeat records a binlog heartbeat: counted, and the lag drops to 0.
func (m *Metrics) Heartbeat() {
	m.heartbeats.Add(1)
	m.lag.Heartbeat()
}

// SourceConnected records that the binlog connection is up.
func (m *Metrics) SourceConnected() {
	m.connected.Store(1)
	m.srcMu.Lock()
	m.srcUp, m.srcErr = true, ""
	m.srcMu.Unlock()
}

// SourceDisconnected records a lost binlog connection and its cause:
// counted, the connected gauge drops to 0 and the lag starts growing.
func (m *Metrics) SourceDisconnected(cause error) {
	m.disconnects.Add(1)
	m.connected.Store(0)
	m.lag.Disconnected()
	m.srcMu.Lock()
	m.srcUp, m.srcErr = false, ""
	if cause != nil {
		m.srcErr = cause.Error()
	}
	m.srcMu.Unlock()
}

// SourceState reports whether the binlog connection is up and, if not, the
// cause of the last disconnect. Its signature fits Connected:
// telemetry.Connected("source", m.SourceState).
func (m *Metrics) SourceState() (bool, string) {
	m.srcMu.Lock()
	defer m.srcMu.Unlock()
	if !m.srcUp && m.srcErr == "" {
		return false, "not connected yet"
	}
	return m.srcUp, m.srcErr
}

// LargeTransaction counts a source transaction above the size threshold.
func (m *Metrics) LargeTransaction() { m.txLarge.Add(1) }

// PositionGap counts a checkpoint jump over binlog that was never read.
func (m *Metrics) PositionGap() { m.positionGaps.Add(1) }

// Fenced records one visibility-fence wait; timedOut when the fence ran
// out of feeds.visibility_fence_timeout without proof that the batch's
// newest transaction committed (the batch is retried).
func (m *Metrics) Fenced(d time.Duration, timedOut bool) {
	m.fenceWait.Record(m.ctx, d.Seconds())
	if timedOut {
		m.fenceTimeouts.Add(1)
	}
}

// SourceRetried counts one retried SQL read on the source, with the reason
// of its failure.
func (m *Metrics) SourceRetried(reason string) {
	m.sourceRetries.Add(m.ctx, 1, metric.WithAttributes(attribute.String("reason", reason)))
}

// CheckpointStored records the position just stored as the checkpoint and
// restarts the checkpoint age.
func (m *Metrics) CheckpointStored(pos change.Position) {
	m.ckptPos.Store(int64(pos.Pos))
	if n, ok := BinlogFileSeq(pos.File); ok {
		m.ckptFile.Store(n)
		m.ckptFileKnown.Store(true)
	}
	m.ckptStoredAt.Store(m.now().UnixNano())
}

// BinlogFileSeq returns the numeric suffix of a binlog file name
// ("mysql-bin.000042" → 42).
func BinlogFileSeq(file string) (int64, bool) {
	i := len(file)
	for i > 0 && file[i-1] >= '0' && file[i-1] <= '9' {
		i--
	}
	if i == len(file) {
		return 0, false
	}
	n, err := strconv.ParseInt(file[i:], 10, 64)
	return n, err == nil
}

// Feed returns the per-feed instruments of feed, creating its attribute
// sets on first use. Keep the returned value to skip the map lookup.
func (m *Metrics) Feed(feed string) *FeedMetrics {
	m.mu.RLock()
	f := m.feeds[feed]
	m.mu.RUnlock()
	if f != nil {
		return f
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if f = m.feeds[feed]; f != nil {
		return f
	}
	opt := metric.WithAttributeSet(attribute.NewSet(attribute.String(attrFeed, feed)))
	f = &FeedMetrics{
		m:   m,
		rec: []metric.RecordOption{opt},
		obs: opt,
		obsRetryable: metric.WithAttributeSet(attribute.NewSet(
			attribute.String(attrFeed, feed), attribute.String(attrFailure, failureRetryable))),
		obsRejected: metric.WithAttributeSet(attribute.NewSet(
			attribute.String(attrFeed, feed), attribute.String(attrFailure, failureRejected))),
	}
	m.feeds[feed] = f
	m.feedL = append(m.feedL[:len(m.feedL):len(m.feedL)], f) // copy on write: the callback reads the old slice
	return f
}

// ItemsBuilt counts feed items built for feed.
func (m *Metrics) ItemsBuilt(feed string, n int64) { m.Feed(feed).Built(n) }

// ItemsSent counts feed items acknowledged by the sink.
func (m *Metrics) ItemsSent(feed string, n int64) { m.Feed(feed).Sent(n) }

// ItemsSkipped counts feed items skipped because their hash is unchanged.
func (m *Metrics) ItemsSkipped(feed string, n int64) { m.Feed(feed).Skipped(n) }

// ItemsFailed counts feed items that failed with a retryable error (status 2).
func (m *Metrics) ItemsFailed(feed string, n int64) { m.Feed(feed).Failed(n) }

// ItemsRejected counts feed items rejected for good (status 400 or 1).
func (m *Metrics) ItemsRejected(feed string, n int64) { m.Feed(feed).Rejected(n) }

// ItemsRetried counts feed items sent again by the retry job.
func (m *Metrics) ItemsRetried(feed string, n int64) { m.Feed(feed).Retried(n) }

// FeedMetrics are the instruments of one feed with its attributes bound.
type FeedMetrics struct {
	m                               *Metrics
	rec                             []metric.RecordOption
	obs, obsRetryable, obsRejected  metric.ObserveOption
	built, sent, skipped, retried   atomic.Int64
	failedRetryable, failedRejected atomic.Int64
	resyncDone, resyncTotal         atomic.Int64
	resyncSet                       atomic.Bool
}

// Built counts feed items built.
func (f *FeedMetrics) Built(n int64) { f.built.Add(n) }

// Sent counts feed items acknowledged by the sink.
func (f *FeedMetrics) Sent(n int64) { f.sent.Add(n) }

// Skipped counts feed items not sent because unchanged.
func (f *FeedMetrics) Skipped(n int64) { f.skipped.Add(n) }

// Failed counts feed items that failed with a retryable error (status 2).
func (f *FeedMetrics) Failed(n int64) { f.failedRetryable.Add(n) }

// Rejected counts feed items rejected for good (status 400 or 1).
func (f *FeedMetrics) Rejected(n int64) { f.failedRejected.Add(n) }

// Retried counts feed items sent again by the retry of failed items.
func (f *FeedMetrics) Retried(n int64) { f.retried.Add(n) }

// BuildDuration records the time to build one batch.
func (f *FeedMetrics) BuildDuration(d time.Duration) {
	f.m.buildDur.Record(f.m.ctx, d.Seconds(), f.rec...)
}

// ExportDuration records the time to export one batch until acknowledged.
func (f *FeedMetrics) ExportDuration(d time.Duration) {
	f.m.exportDur.Record(f.m.ctx, d.Seconds(), f.rec...)
}

// FeedItemCounts are one feed's items in the state store by status.
type FeedItemCounts struct {
	Feed                      string
	Failed, Rejected, Pending int64
}

// ItemCounts registers fn, called at every scrape (or OTLP push) for the
// feedcdc.feed.items gauges; it must be quick and bounded.
func (m *Metrics) ItemCounts(fn func() []FeedItemCounts) { m.itemCounts.Store(&fn) }

// HAStatus is what the feedcdc.ha.* gauges show (high availability).
type HAStatus struct {
	Active         bool
	Epoch          int64
	TakeoverMillis int64
	// ChangelogLag is, on a standby, the state changelog records not
	// applied yet.
	ChangelogLag int64
}

// HA sets the function the feedcdc.ha.* gauges read at collection time;
// without it (no high availability) they are not reported.
func (m *Metrics) HA(fn func() HAStatus) { m.haStatus.Store(&fn) }

// Standby is HA for a standby instance, which runs no connector: only the
// feedcdc.ha.* gauges are reported, so that the connector's metrics (and
// the alerts reading them, such as Source down) belong to the active
// instance alone.
func (m *Metrics) Standby(fn func() HAStatus) {
	m.standby.Store(true)
	m.HA(fn)
}

// Committed records the end-to-end latency of the transaction that closed
// a batch: from its source commit (whole-second precision) to ack, when
// the checkpoint after it was stored. Negative values (clock skew) are
// recorded as 0.
func (m *Metrics) Committed(commit, ack time.Time) {
	m.e2e.Record(m.ctx, max(0, ack.Sub(commit)).Seconds())
}

// ResyncProgress records full-sync progress: done of total source keys.
func (f *FeedMetrics) ResyncProgress(done, total int64) {
	f.resyncDone.Store(done)
	f.resyncTotal.Store(total)
	f.resyncSet.Store(true)
}

// Queue returns the instruments of the named internal queue (e.g.
// "changes", "outbox"), creating its attribute set on first use.
func (m *Metrics) Queue(name string) *QueueMetrics {
	m.mu.RLock()
	q := m.queues[name]
	m.mu.RUnlock()
	if q != nil {
		return q
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if q = m.queues[name]; q != nil {
		return q
	}
	q = &QueueMetrics{obs: metric.WithAttributeSet(attribute.NewSet(attribute.String(attrQueue, name)))}
	m.queues[name] = q
	m.queueL = append(m.queueL[:len(m.queueL):len(m.queueL)], q)
	return q
}

// QueueMetrics are the instruments of one queue.
type QueueMetrics struct {
	obs                metric.ObserveOption
	items, bytes       atomic.Int64
	capItems, capBytes atomic.Int64
	capSet             atomic.Bool
}

// Depth records the queue's current content.
func (q *QueueMetrics) Depth(items, bytes int64) {
	q.items.Store(items)
	q.bytes.Store(bytes)
}

// Add changes the queue's content by items and bytes (negative to remove),
// for queues that count as they go.
func (q *QueueMetrics) Add(items, bytes int64) {
	q.items.Add(items)
	q.bytes.Add(bytes)
}

// Capacity records the queue's capacity (0 bytes = not bounded by bytes).
func (q *QueueMetrics) Capacity(items, bytes int64) {
	q.capItems.Store(items)
	q.capBytes.Store(bytes)
	q.capSet.Store(true)
}

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
	MetricResyncProgress      = "feedcdc.resync.progress"
	MetricResyncDone          = "feedcdc.resync.done"
	MetricResyncTotal         = "feedcdc.resync.total"
	MetricCheckpointPosition  = "feedcdc.checkpoint.position"
	MetricCheckpointFile      = "feedcdc.checkpoint.file"
	MetricCheckpointAge       = "feedcdc.checkpoint.age"
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
// connector calls on the hot path: they take no context, build no attribute
// sets (per-feed and per-queue sets are computed once, on first use of a
// name) and do not allocate.
type Metrics struct {
	ctx context.Context
	now func() time.Time
	lag *LagTracker

	events, rows, bytes      metric.Int64Counter
	heartbeats, disconnects  metric.Int64Counter
	txLarge                  metric.Int64Counter
	connected                metric.Int64Gauge
	queueDepth, queueBytes   metric.Int64Gauge
	queueCap, queueCapBytes  metric.Int64Gauge
	built, sent, skipped     metric.Int64Counter
	failed, retried          metric.Int64Counter
	buildDur, exportDur, e2e metric.Float64Histogram
	resyncProgress           metric.Float64Gauge
	resyncDone, resyncTotal  metric.Int64Gauge
	ckptPos, ckptFile        metric.Int64Gauge

	ckptStoredAt atomic.Int64 // unix nanoseconds of the last stored checkpoint; 0 = none

	mu     sync.RWMutex
	feeds  map[string]*FeedMetrics
	queues map[string]*QueueMetrics
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
	var errs []error
	counter := func(name, unit, desc string) metric.Int64Counter {
		c, err := meter.Int64Counter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		if err != nil {
			errs = append(errs, err)
		}
		return c
	}
	gauge := func(name, unit, desc string) metric.Int64Gauge {
		g, err := meter.Int64Gauge(name, metric.WithUnit(unit), metric.WithDescription(desc))
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
	m.events = counter(MetricBinlogEvents, "{event}", "Binlog events read from the source.")
	m.rows = counter(MetricBinlogRows, "{row}", "Row images of captured tables decoded from the binlog.")
	m.bytes = counter(MetricBinlogBytes, "By", "Binlog bytes read from the source.")
	m.heartbeats = counter(MetricSourceHeartbeats, "{heartbeat}", "Binlog heartbeats received (the source had nothing more to send).")
	m.disconnects = counter(MetricSourceDisconnects, "{disconnect}", "Times the binlog connection to the source was lost.")
	m.txLarge = counter(MetricTxLarge, "{transaction}", "Source transactions larger than the large-transaction threshold.")
	m.connected = gauge(MetricSourceConnected, "", "1 while the binlog connection to the source is up, else 0.")
	m.queueDepth = gauge(MetricQueueDepth, "{item}", "Items waiting in an internal queue.")
	m.queueBytes = gauge(MetricQueueDepthBytes, "By", "Bytes waiting in an internal queue.")
	m.queueCap = gauge(MetricQueueCapacity, "{item}", "Capacity of an internal queue in items.")
	m.queueCapBytes = gauge(MetricQueueCapacityBytes, "By", "Capacity of an internal queue in bytes.")
	m.built = counter(MetricItemsBuilt, "{item}", "Feed items built from the source.")
	m.sent = counter(MetricItemsSent, "{item}", "Feed items acknowledged by the sink.")
	m.skipped = counter(MetricItemsSkipped, "{item}", "Feed items not sent because their hash is unchanged.")
	m.failed = counter(MetricItemsFailed, "{item}", "Feed items that failed to export (failure=retryable|rejected).")
	m.retried = counter(MetricItemsRetried, "{item}", "Feed items sent again by the retry of failed items.")
	m.buildDur = hist(MetricBuildDuration, "Time to build one batch of feed items.", durationBuckets)
	m.exportDur = hist(MetricExportDuration, "Time to export one batch of feed items to the sink, until acknowledged.", durationBuckets)
	m.e2e = hist(MetricE2ELatency, "From the source commit timestamp to the sink acknowledgement (whole-second source precision).", latencyBuckets)
	rp, err := meter.Float64Gauge(MetricResyncProgress, metric.WithUnit("1"), metric.WithDescription("Full-sync progress of a feed, 0..1."))
	if err != nil {
		errs = append(errs, err)
	}
	m.resyncProgress = rp
	m.resyncDone = gauge(MetricResyncDone, "{key}", "Source keys processed by the running or last full sync of a feed.")
	m.resyncTotal = gauge(MetricResyncTotal, "{key}", "Source keys to process in the running or last full sync of a feed.")
	m.ckptPos = gauge(MetricCheckpointPosition, "By", "Byte offset of the stored checkpoint within its binlog file.")
	m.ckptFile = gauge(MetricCheckpointFile, "{file}", "Sequence number of the stored checkpoint's binlog file (mysql-bin.000042 → 42).")

	lagGauge, err := meter.Int64ObservableGauge(MetricSourceLag, metric.WithUnit("ms"),
		metric.WithDescription("How far the binlog reader is behind the source, from event timestamps and heartbeats; 0 when idle, growing when the source is silent or disconnected."))
	if err != nil {
		errs = append(errs, err)
	}
	ageGauge, err := meter.Float64ObservableGauge(MetricCheckpointAge, metric.WithUnit("s"),
		metric.WithDescription("Seconds since the checkpoint was last stored."))
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("telemetry: creating instruments: %v", errs)
	}
	_, err = meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		if r := m.lag.Read(); r.State != LagUnknown {
			o.ObserveInt64(lagGauge, r.Lag.Milliseconds())
		}
		if at := m.ckptStoredAt.Load(); at != 0 {
			o.ObserveFloat64(ageGauge, m.now().Sub(time.Unix(0, at)).Seconds())
		}
		return nil
	}, lagGauge, ageGauge)
	if err != nil {
		return nil, fmt.Errorf("telemetry: registering gauge callback: %w", err)
	}
	return m, nil
}

// Lag returns the tracker behind feedcdc.source.lag. The binlog reader
// calls Lag().Event(ts) for events; use Heartbeat/SourceDisconnected for
// the rest so counters and lag stay consistent.
func (m *Metrics) Lag() *LagTracker { return m.lag }

// EventsRead counts binlog events read.
func (m *Metrics) EventsRead(n int64) { m.events.Add(m.ctx, n) }

// RowsRead counts row images of captured tables decoded.
func (m *Metrics) RowsRead(n int64) { m.rows.Add(m.ctx, n) }

// BytesRead counts binlog bytes read.
func (m *Metrics) BytesRead(n int64) { m.bytes.Add(m.ctx, n) }

// SourceEvent records the source timestamp of an event just read (lag).
func (m *Metrics) SourceEvent(ts time.Time) { m.lag.Event(ts) }

// Heartbeat records a binlog heartbeat: counted, and the lag drops to 0.
func (m *Metrics) Heartbeat() {
	m.heartbeats.Add(m.ctx, 1)
	m.lag.Heartbeat()
}

// SourceConnected records that the binlog connection is up.
func (m *Metrics) SourceConnected() { m.connected.Record(m.ctx, 1) }

// SourceDisconnected records a lost binlog connection: counted, the
// connected gauge drops to 0 and the lag starts growing.
func (m *Metrics) SourceDisconnected() {
	m.disconnects.Add(m.ctx, 1)
	m.connected.Record(m.ctx, 0)
	m.lag.Disconnected()
}

// LargeTransaction counts a source transaction above the size threshold.
func (m *Metrics) LargeTransaction() { m.txLarge.Add(m.ctx, 1) }

// CheckpointStored records the position just stored as the checkpoint and
// restarts the checkpoint age.
func (m *Metrics) CheckpointStored(pos change.Position) {
	m.ckptPos.Record(m.ctx, int64(pos.Pos))
	if n, ok := BinlogFileSeq(pos.File); ok {
		m.ckptFile.Record(m.ctx, n)
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
	set := attribute.NewSet(attribute.String(attrFeed, feed))
	opt := metric.WithAttributeSet(set)
	f = &FeedMetrics{
		m:   m,
		add: []metric.AddOption{opt},
		rec: []metric.RecordOption{opt},
		addRetryable: []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(
			attribute.String(attrFeed, feed), attribute.String(attrFailure, failureRetryable)))},
		addRejected: []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(
			attribute.String(attrFeed, feed), attribute.String(attrFailure, failureRejected)))},
	}
	m.feeds[feed] = f
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
	m            *Metrics
	add          []metric.AddOption
	rec          []metric.RecordOption
	addRetryable []metric.AddOption
	addRejected  []metric.AddOption
}

// Built counts feed items built.
func (f *FeedMetrics) Built(n int64) { f.m.built.Add(f.m.ctx, n, f.add...) }

// Sent counts feed items acknowledged by the sink.
func (f *FeedMetrics) Sent(n int64) { f.m.sent.Add(f.m.ctx, n, f.add...) }

// Skipped counts feed items not sent because unchanged.
func (f *FeedMetrics) Skipped(n int64) { f.m.skipped.Add(f.m.ctx, n, f.add...) }

// Failed counts feed items that failed with a retryable error (status 2).
func (f *FeedMetrics) Failed(n int64) { f.m.failed.Add(f.m.ctx, n, f.addRetryable...) }

// Rejected counts feed items rejected for good (status 400 or 1).
func (f *FeedMetrics) Rejected(n int64) { f.m.failed.Add(f.m.ctx, n, f.addRejected...) }

// Retried counts feed items sent again by the retry of failed items.
func (f *FeedMetrics) Retried(n int64) { f.m.retried.Add(f.m.ctx, n, f.add...) }

// BuildDuration records the time to build one batch.
func (f *FeedMetrics) BuildDuration(d time.Duration) {
	f.m.buildDur.Record(f.m.ctx, d.Seconds(), f.rec...)
}

// ExportDuration records the time to export one batch until acknowledged.
func (f *FeedMetrics) ExportDuration(d time.Duration) {
	f.m.exportDur.Record(f.m.ctx, d.Seconds(), f.rec...)
}

// Acknowledged records the end-to-end latency of an item whose source
// transaction committed at commit and that the sink acknowledged at ack.
// Source timestamps have whole-second precision; negative values (clock
// skew) are recorded as 0.
func (f *FeedMetrics) Acknowledged(commit, ack time.Time) {
	d := ack.Sub(commit)
	if d < 0 {
		d = 0
	}
	f.m.e2e.Record(f.m.ctx, d.Seconds(), f.rec...)
}

// E2ELatency records an end-to-end latency measured by the caller.
func (f *FeedMetrics) E2ELatency(d time.Duration) {
	if d < 0 {
		d = 0
	}
	f.m.e2e.Record(f.m.ctx, d.Seconds(), f.rec...)
}

// ResyncProgress records full-sync progress: done of total source keys.
func (f *FeedMetrics) ResyncProgress(done, total int64) {
	f.m.resyncDone.Record(f.m.ctx, done, f.rec...)
	f.m.resyncTotal.Record(f.m.ctx, total, f.rec...)
	p := 0.0
	switch {
	case total > 0:
		p = float64(done) / float64(total)
		if p > 1 {
			p = 1
		}
	case done > 0:
		p = 1
	}
	f.m.resyncProgress.Record(f.m.ctx, p, f.rec...)
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
	q = &QueueMetrics{m: m, rec: []metric.RecordOption{
		metric.WithAttributeSet(attribute.NewSet(attribute.String(attrQueue, name)))}}
	m.queues[name] = q
	return q
}

// QueueMetrics are the instruments of one queue.
type QueueMetrics struct {
	m   *Metrics
	rec []metric.RecordOption
}

// Depth records the queue's current content.
func (q *QueueMetrics) Depth(items, bytes int64) {
	q.m.queueDepth.Record(q.m.ctx, items, q.rec...)
	q.m.queueBytes.Record(q.m.ctx, bytes, q.rec...)
}

// Capacity records the queue's capacity (0 bytes = not bounded by bytes).
func (q *QueueMetrics) Capacity(items, bytes int64) {
	q.m.queueCap.Record(q.m.ctx, items, q.rec...)
	q.m.queueCapBytes.Record(q.m.ctx, bytes, q.rec...)
}

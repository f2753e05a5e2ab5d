package connector

import (
	"time"

	"github.com/feedcdc/feedcdc/change"
	"github.com/feedcdc/feedcdc/telemetry"
)

// MetricsObserver records the pipeline's measurements as OpenTelemetry
// metrics.
type MetricsObserver struct {
	M   *telemetry.Metrics
	Now func() time.Time
}

func (o MetricsObserver) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

// Built implements Observer.
func (o MetricsObserver) Built(feed string, items int, d time.Duration) {
	f := o.M.Feed(feed)
	f.Built(int64(items))
	f.BuildDuration(d)
}

// Exported implements Observer.
func (o MetricsObserver) Exported(feed string, st ExportStats, d time.Duration) {
	f := o.M.Feed(feed)
	f.Sent(int64(st.Sent))
	f.Skipped(int64(st.Skipped))
	f.Failed(int64(st.Failed))
	f.Rejected(int64(st.Rejected))
	if st.Sent+st.Failed+st.Rejected+st.Attention > 0 {
		f.ExportDuration(d)
	}
}

// Retried counts the items a retry of failed items sent again, whatever
// the answer (feedcdc_feed_items_retried_total).
func (o MetricsObserver) Retried(feed string, n int) { o.M.ItemsRetried(feed, int64(n)) }

// RawSent implements Observer.
func (o MetricsObserver) RawSent(records int, d time.Duration) {
	f := o.M.Feed("raw")
	f.Sent(int64(records))
	f.ExportDuration(d)
}

// Checkpointed implements Observer: the checkpoint position and the
// end-to-end latency of the transaction that closed the batch.
func (o MetricsObserver) Checkpointed(pos change.Position, sourceTime time.Time) {
	o.M.CheckpointStored(pos)
	if !sourceTime.IsZero() {
		o.M.Committed(sourceTime, o.now())
	}
}

// PositionGap implements GapObserver.
func (o MetricsObserver) PositionGap() { o.M.PositionGap() }

// GapObserver is an optional Observer extension: the checkpoint jumped over
// binlog that was never read (a purge recovered by resync).
type GapObserver interface{ PositionGap() }

// Queue implements Observer.
func (o MetricsObserver) Queue(batches int, bytes int64) {
	o.M.Queue("export").Depth(int64(batches), bytes)
}

// Deferred implements DeferredObserver: the deferred keys of big
// transactions are the "deferred" queue (feedcdc_queue_depth{queue="deferred"}).
func (o MetricsObserver) Deferred(keys int) { o.M.Queue("deferred").Depth(int64(keys), 0) }

// LargeTransaction implements DeferredObserver (feedcdc_tx_large_total).
func (o MetricsObserver) LargeTransaction() { o.M.LargeTransaction() }

// DeferredObserver is an optional Observer extension for big transactions:
// LargeTransaction when one starts being deferred, Deferred when the number
// of deferred keys waiting to be built changed.
type DeferredObserver interface {
	Deferred(keys int)
	LargeTransaction()
}

// SourceEvent implements Observer: a row change read from the binlog (the
// lag comes from EventRead, which sees every event).
func (o MetricsObserver) SourceEvent(ts time.Time) { o.M.RowsRead(1) }

// SourceRetried counts a retried SQL read on the source (SourceRetry.OnRetry).
func (o MetricsObserver) SourceRetried(reason string) { o.M.SourceRetried(reason) }

// Fenced records a visibility-fence wait (VisibilityFence.OnWait).
func (o MetricsObserver) Fenced(d time.Duration, timedOut bool) { o.M.Fenced(d, timedOut) }

// SourceObserver is an optional Observer extension for source-level events
// (events and bytes read, heartbeats, connections).
type SourceObserver interface {
	EventRead(size uint32, ts time.Time)
	Heartbeat()
	Connected()
	Disconnected(err error)
}

// EventRead implements binlog.Observer by forwarding to the pipeline's
// Observer when it is a SourceObserver.
func (p *Pipeline) EventRead(size uint32, ts time.Time) {
	if so, ok := p.o.Observer.(SourceObserver); ok {
		so.EventRead(size, ts)
	}
}

// Heartbeat implements binlog.Observer.
func (p *Pipeline) Heartbeat() {
	if so, ok := p.o.Observer.(SourceObserver); ok {
		so.Heartbeat()
	}
}

// Connected implements binlog.Observer.
func (p *Pipeline) Connected() {
	if so, ok := p.o.Observer.(SourceObserver); ok {
		so.Connected()
	}
}

// Disconnected implements binlog.Observer.
func (p *Pipeline) Disconnected(err error) {
	if so, ok := p.o.Observer.(SourceObserver); ok {
		so.Disconnected(err)
	}
}

// EventRead implements SourceObserver: events, bytes and the source lag
// from the event's commit timestamp.
func (o MetricsObserver) EventRead(size uint32, ts time.Time) {
	o.M.EventsRead(1)
	o.M.BytesRead(int64(size))
	o.M.SourceEvent(ts)
}

// Heartbeat implements SourceObserver: an idle source is caught up.
func (o MetricsObserver) Heartbeat() { o.M.Heartbeat() }

// Connected implements SourceObserver.
func (o MetricsObserver) Connected() { o.M.SourceConnected() }

// Disconnected implements SourceObserver.
func (o MetricsObserver) Disconnected(err error) { o.M.SourceDisconnected(err) }

// ResyncProgress implements ResyncObserver.
func (o MetricsObserver) ResyncProgress(feed string, done, total int64) {
	o.M.Feed(feed).ResyncProgress(done, total)
}

// RawSnapshotProgress implements RawSnapshotObserver.
func (o MetricsObserver) RawSnapshotProgress(table string, read, sent, dropped, total int64) {
	o.M.RawSnapshotProgress(table, read, sent, dropped, total)
}

// ResyncObserver is an optional Observer extension: progress of a full
// sync, entities done of total (counted before the first chunk).
type ResyncObserver interface {
	ResyncProgress(feed string, done, total int64)
}

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
	f.ExportDuration(d)
}

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
		o.M.Feed("all").Acknowledged(sourceTime, o.now())
	}
}

// Queue implements Observer.
func (o MetricsObserver) Queue(batches int, bytes int64) {
	o.M.Queue("export").Depth(int64(batches), bytes)
}

// SourceEvent implements Observer: a change read from the binlog.
func (o MetricsObserver) SourceEvent(ts time.Time) {
	o.M.RowsRead(1)
	if !ts.IsZero() {
		o.M.SourceEvent(ts)
	}
}

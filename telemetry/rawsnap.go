package telemetry

import (
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Instruments of raw-table snapshots.
const (
	MetricRawSnapshotRows  = "feedcdc.raw_snapshot.rows"
	MetricRawSnapshotTotal = "feedcdc.raw_snapshot.total"
)

type rawSnapInstruments struct {
	rows, total metric.Int64Gauge
}

func newRawSnapInstruments(meter metric.Meter) (rawSnapInstruments, error) {
	var r rawSnapInstruments
	var err error
	if r.rows, err = meter.Int64Gauge(MetricRawSnapshotRows, metric.WithUnit("{row}"),
		metric.WithDescription("Rows of the running or last snapshot of a raw table, by kind: read (from the table), sent (op r records), dropped (left out because the stream had a newer change of the row).")); err != nil {
		return r, err
	}
	r.total, err = meter.Int64Gauge(MetricRawSnapshotTotal, metric.WithUnit("{row}"),
		metric.WithDescription("Estimated rows of a table being snapshotted into its raw stream (information_schema; 0 with --where)."))
	return r, err
}

// RawSnapshotProgress records the progress of a raw table's snapshot.
func (m *Metrics) RawSnapshotProgress(table string, read, sent, dropped, total int64) {
	if m.rawSnap.rows == nil {
		return
	}
	t := attribute.String("table", table)
	for _, k := range []struct {
		kind string
		n    int64
	}{{"read", read}, {"sent", sent}, {"dropped", dropped}} {
		m.rawSnap.rows.Record(m.ctx, k.n, metric.WithAttributes(t, attribute.String("kind", k.kind)))
	}
	m.rawSnap.total.Record(m.ctx, total, metric.WithAttributes(t))
}

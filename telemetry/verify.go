package telemetry

import (
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Metric names of feedcdc verify.
const (
	MetricVerifyItems = "feedcdc.verify.items"
	MetricVerifyDrift = "feedcdc.verify.drift"
	attrResult        = "result"
)

// verifyInstruments are the gauges of the last verify per feed. They are
// recorded synchronously: a verify ends a few times a day at most.
type verifyInstruments struct {
	items, drift metric.Int64Gauge
}

func newVerifyInstruments(meter metric.Meter) (verifyInstruments, error) {
	var v verifyInstruments
	var err error
	if v.items, err = meter.Int64Gauge(MetricVerifyItems, metric.WithUnit("{item}"),
		metric.WithDescription("Items of the feed's last verify by result (equal, stale, missing, orphaned, unsettled, missing_at_destination, differs_at_destination, orphaned_at_destination).")); err != nil {
		return v, err
	}
	v.drift, err = meter.Int64Gauge(MetricVerifyDrift, metric.WithUnit("{item}"),
		metric.WithDescription("Items the feed's last verify found drifted (stale + missing + orphaned, and at the destination); 0 = the feed equals the database."))
	return v, err
}

// Verified records the result of a feed's verify: items per result and the
// drift.
func (m *Metrics) Verified(feed string, counts map[string]int64, drift int64) {
	if m.verify.items == nil {
		return
	}
	for result, n := range counts {
		m.verify.items.Record(m.ctx, n, metric.WithAttributes(attribute.String(attrFeed, feed), attribute.String(attrResult, result)))
	}
	m.verify.drift.Record(m.ctx, drift, metric.WithAttributes(attribute.String(attrFeed, feed)))
}

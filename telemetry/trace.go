package telemetry

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/feedcdc/feedcdc/change"
)

// Span names and attribute keys used by Tracing.
const (
	SpanBuild       = "feedcdc.feed.build"
	SpanExport      = "feedcdc.feed.export"
	SpanResyncChunk = "feedcdc.resync.chunk"

	AttrFeed         = "feedcdc.feed"
	AttrSink         = "feedcdc.sink"
	AttrItems        = "feedcdc.items"
	AttrChunk        = "feedcdc.resync.chunk"
	AttrKeys         = "feedcdc.resync.keys"
	AttrSourceGTID   = "feedcdc.source.gtid_set"
	AttrSourceFile   = "feedcdc.source.file"
	AttrSourcePos    = "feedcdc.source.pos"
	AttrSourceFlavor = "feedcdc.source.flavor"
)

// Tracing starts feedcdc's spans. With traces disabled its spans are
// no-ops and cost next to nothing.
type Tracing struct {
	tracer trace.Tracer
}

// Tracer returns the underlying tracer.
func (t *Tracing) Tracer() trace.Tracer { return t.tracer }

// StartBuild starts the span of one build batch of n keys of feed, at the
// source position pos (the position of the transaction that made the keys
// dirty, or the snapshot position for a resync).
func (t *Tracing) StartBuild(ctx context.Context, feed string, n int, pos change.Position) (context.Context, trace.Span) {
	return t.tracer.Start(ctx, SpanBuild, trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithAttributes(append(posAttrs(pos), attribute.String(AttrFeed, feed), attribute.Int(AttrItems, n))...))
}

// StartExport starts the span of one export batch of n items of feed to
// sink, up to the source position pos.
func (t *Tracing) StartExport(ctx context.Context, feed, sink string, n int, pos change.Position) (context.Context, trace.Span) {
	return t.tracer.Start(ctx, SpanExport, trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(append(posAttrs(pos),
			attribute.String(AttrFeed, feed), attribute.String(AttrSink, sink), attribute.Int(AttrItems, n))...))
}

// StartResyncChunk starts the span of resync chunk number chunk of feed
// covering keys source keys, read while the stream was at pos.
func (t *Tracing) StartResyncChunk(ctx context.Context, feed string, chunk int64, keys int, pos change.Position) (context.Context, trace.Span) {
	return t.tracer.Start(ctx, SpanResyncChunk, trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithAttributes(append(posAttrs(pos),
			attribute.String(AttrFeed, feed), attribute.Int64(AttrChunk, chunk), attribute.Int(AttrKeys, keys))...))
}

// End ends span, recording err (if any) as the span's error status.
func End(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

func posAttrs(pos change.Position) []attribute.KeyValue {
	a := make([]attribute.KeyValue, 0, 7)
	if pos.Flavor != "" {
		a = append(a, attribute.String(AttrSourceFlavor, pos.Flavor))
	}
	if pos.GTIDSet != "" {
		a = append(a, attribute.String(AttrSourceGTID, pos.GTIDSet))
	}
	if pos.File != "" {
		a = append(a, attribute.String(AttrSourceFile, pos.File), attribute.Int64(AttrSourcePos, int64(pos.Pos)))
	}
	return a
}

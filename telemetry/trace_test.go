package telemetry

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	collmetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	colltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/feedcdc/feedcdc/change"
)

func attrMap(kvs []attribute.KeyValue) map[string]attribute.Value {
	m := map[string]attribute.Value{}
	for _, kv := range kvs {
		m[string(kv.Key)] = kv.Value
	}
	return m
}

func TestSpansCarrySourcePosition(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tel := newTestTelemetry(t, Options{TracesEnabled: true, SpanExporter: exp})
	pos := change.Position{Flavor: "mariadb", GTIDSet: "0-1-77", File: "mariadb-bin.000003", Pos: 4567}
	ctx := context.Background()

	bctx, build := tel.Tracing.StartBuild(ctx, "products", 100, pos)
	_, export := tel.Tracing.StartExport(bctx, "products", "kafka", 98, pos)
	End(export, errors.New("broker said no"))
	End(build, nil)
	_, chunk := tel.Tracing.StartResyncChunk(ctx, "variants", 7, 500, pos)
	End(chunk, nil)
	if err := tel.ForceFlush(ctx); err != nil {
		t.Fatal(err)
	}

	spans := map[string]tracetest.SpanStub{}
	for _, s := range exp.GetSpans() {
		spans[s.Name] = s
	}
	if len(spans) != 3 {
		t.Fatalf("got spans %v, want build, export and resync chunk", exp.GetSpans())
	}
	b, e, c := spans[SpanBuild], spans[SpanExport], spans[SpanResyncChunk]
	if e.Parent.SpanID() != b.SpanContext.SpanID() {
		t.Errorf("export span is not a child of the build span")
	}
	for _, s := range []tracetest.SpanStub{b, e, c} {
		a := attrMap(s.Attributes)
		if a[AttrSourceGTID].AsString() != "0-1-77" || a[AttrSourceFile].AsString() != "mariadb-bin.000003" ||
			a[AttrSourcePos].AsInt64() != 4567 || a[AttrSourceFlavor].AsString() != "mariadb" {
			t.Errorf("span %s lacks the source position: %v", s.Name, a)
		}
	}
	if a := attrMap(e.Attributes); a[AttrFeed].AsString() != "products" || a[AttrSink].AsString() != "kafka" || a[AttrItems].AsInt64() != 98 {
		t.Errorf("export attributes: %v", a)
	}
	if e.Status.Code != codes.Error || e.Status.Description != "broker said no" {
		t.Errorf("export status = %+v, want the error", e.Status)
	}
	if b.Status.Code == codes.Error {
		t.Errorf("build span marked as error")
	}
	if a := attrMap(c.Attributes); a[AttrChunk].AsInt64() != 7 || a[AttrKeys].AsInt64() != 500 || a[AttrFeed].AsString() != "variants" {
		t.Errorf("resync chunk attributes: %v", a)
	}
}

func TestTracesOffAreNoops(t *testing.T) {
	tel := newTestTelemetry(t, Options{})
	_, span := tel.Tracing.StartBuild(context.Background(), "products", 1, change.Position{})
	if span.SpanContext().IsValid() || span.IsRecording() {
		t.Fatal("traces disabled but span is recording")
	}
	End(span, errors.New("ignored"))
}

// otlpCollector is a real HTTP server speaking the OTLP/HTTP protobuf
// protocol, recording what it receives.
type otlpCollector struct {
	mu      sync.Mutex
	metrics map[string]bool
	spans   map[string]bool
}

func (c *otlpCollector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch r.URL.Path {
	case "/otel/v1/metrics":
		var req collmetrics.ExportMetricsServiceRequest
		if err := proto.Unmarshal(body, &req); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		for _, rm := range req.GetResourceMetrics() {
			for _, sm := range rm.GetScopeMetrics() {
				for _, m := range sm.GetMetrics() {
					c.metrics[m.GetName()] = true
				}
			}
		}
		out, _ := proto.Marshal(&collmetrics.ExportMetricsServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
	case "/otel/v1/traces":
		var req colltrace.ExportTraceServiceRequest
		if err := proto.Unmarshal(body, &req); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		for _, rs := range req.GetResourceSpans() {
			for _, ss := range rs.GetScopeSpans() {
				for _, s := range ss.GetSpans() {
					c.spans[s.GetName()] = true
				}
			}
		}
		out, _ := proto.Marshal(&colltrace.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
	default:
		http.NotFound(w, r)
	}
}

func TestOTLPExportToRealHTTPCollector(t *testing.T) {
	col := &otlpCollector{metrics: map[string]bool{}, spans: map[string]bool{}}
	srv := httptest.NewServer(col)
	t.Cleanup(srv.Close) // after the telemetry's Shutdown flush (cleanups run last-in first-out)
	tel := newTestTelemetry(t, Options{OTLPEndpoint: srv.URL + "/otel", TracesEnabled: true, ServiceVersion: "test"})
	tel.Metrics.ItemsSent("products", 3)
	tel.Metrics.Heartbeat()
	_, s := tel.Tracing.StartExport(context.Background(), "products", "http", 3, change.Position{File: "b.000001", Pos: 4})
	End(s, nil)
	if err := tel.ForceFlush(context.Background()); err != nil {
		t.Fatalf("ForceFlush: %v", err)
	}
	col.mu.Lock()
	defer col.mu.Unlock()
	for _, name := range []string{MetricItemsSent, MetricSourceLag, MetricSourceHeartbeats} {
		if !col.metrics[name] {
			t.Errorf("OTLP collector did not receive metric %s; got %v", name, col.metrics)
		}
	}
	if !col.spans[SpanExport] {
		t.Errorf("OTLP collector did not receive span %s; got %v", SpanExport, col.spans)
	}
}

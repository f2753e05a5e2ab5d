package connector

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/feedcdc/feedcdc/change"
	"github.com/feedcdc/feedcdc/telemetry"
)

// TestSpansPerBuildExportAndResyncChunk: with tracing on, a resync records a
// span per chunk and per build and export batch, carrying the position.
func TestSpansPerBuildExportAndResyncChunk(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tel, err := telemetry.New(context.Background(), telemetry.Options{TracesEnabled: true, SpanExporter: exp})
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Shutdown(context.Background())
	e := newEnv(t, nil, nil)
	e.p.o.Tracing = tel.Tracing
	pos := change.Position{Flavor: "mariadb", GTIDSet: "0-1-42", File: "binlog.000007", Pos: 1234}
	if _, err := e.p.Resync(context.Background(), ResyncOptions{Feed: "variants", BatchSize: 10, Position: pos}); err != nil {
		t.Fatal(err)
	}
	if err := tel.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	names := map[string]int{}
	for _, s := range exp.GetSpans() {
		names[s.Name]++
		hasPos := false
		for _, a := range s.Attributes {
			if string(a.Key) == telemetry.AttrSourceFile && a.Value.AsString() == "binlog.000007" {
				hasPos = true
			}
		}
		if !hasPos {
			t.Errorf("span %s lacks the source position: %v", s.Name, s.Attributes)
		}
	}
	for _, n := range []string{telemetry.SpanResyncChunk, telemetry.SpanBuild, telemetry.SpanExport} {
		if names[n] == 0 {
			t.Errorf("no %s span (got %v)", n, names)
		}
	}
}

// Package telemetry gives feedcdc its OpenTelemetry meter and tracer
// providers, the typed feedcdc.* instruments the connector records into,
// a truthful source-lag tracker, the /metrics, /healthz and /readyz HTTP
// endpoints, and the slog logger setup.
//
// Invariants:
//   - Nothing here touches OpenTelemetry or Prometheus globals: every
//     Telemetry owns its providers and its own Prometheus registry, so two
//     instances (or tests) never see each other's series.
//   - Hot-path methods of Metrics, FeedMetrics and QueueMetrics do not
//     allocate: attribute sets are built once per feed or queue name.
//   - The source lag is computed when it is read, from the newest evidence
//     (event timestamp or heartbeat) and the silence since; it never
//     reports a frozen value (see LagTracker).
//   - Shutdown flushes the OTLP exporters (if configured) and is safe to
//     call more than once.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/otlptranslator"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Options configures New. The zero value gives Prometheus metrics only.
type Options struct {
	ServiceName    string // resource service.name; default "feedcdc"
	ServiceVersion string // resource service.version

	// OTLPEndpoint, when set, pushes metrics (and traces, if enabled) over
	// OTLP/HTTP to this base URL, e.g. "http://127.0.0.1:4318". The
	// standard paths /v1/metrics and /v1/traces are appended. http:// is
	// sent in clear text, https:// with TLS.
	OTLPEndpoint string
	// OTLPHeaders are extra request headers (e.g. an API key).
	OTLPHeaders map[string]string
	// MetricInterval is the OTLP metric push period (default 15s).
	MetricInterval time.Duration

	// TracesEnabled turns on spans per build/export batch and per resync
	// chunk. They are exported to OTLPEndpoint and/or SpanExporter; with
	// neither, New fails.
	TracesEnabled bool
	// TraceSampleRatio is the fraction of root spans kept (default 1).
	TraceSampleRatio float64
	// SpanExporter is an extra span exporter (tests, or a custom backend).
	SpanExporter sdktrace.SpanExporter

	// Lag configures the source lag tracker (heartbeat period, stale window).
	// Lag.Now defaults to Now.
	Lag LagOptions
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// Logger receives exporter errors (slog.Default() when nil).
	Logger *slog.Logger
}

// Telemetry owns feedcdc's meter and tracer providers and its Prometheus
// registry.
type Telemetry struct {
	Metrics *Metrics
	Tracing *Tracing

	meterProvider  *sdkmetric.MeterProvider
	tracerProvider trace.TracerProvider
	sdkTracer      *sdktrace.TracerProvider // nil when traces are off
	registry       *prometheus.Registry
	logger         *slog.Logger

	shutdownOnce sync.Once
	shutdownErr  error
}

// ScopeName is the instrumentation scope of feedcdc's meter and tracer.
const ScopeName = "github.com/feedcdc/feedcdc"

// New builds the providers and instruments. Call Shutdown when done.
func New(ctx context.Context, o Options) (*Telemetry, error) {
	if o.ServiceName == "" {
		o.ServiceName = "feedcdc"
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Lag.Now == nil {
		o.Lag.Now = o.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.MetricInterval <= 0 {
		o.MetricInterval = 15 * time.Second
	}
	if o.TraceSampleRatio < 0 || o.TraceSampleRatio > 1 {
		return nil, fmt.Errorf("telemetry: trace sample ratio %v is out of range: use a value between 0 and 1", o.TraceSampleRatio)
	}
	if o.TraceSampleRatio == 0 {
		o.TraceSampleRatio = 1
	}
	var endpoint *url.URL
	if o.OTLPEndpoint != "" {
		u, err := url.Parse(o.OTLPEndpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("telemetry: OTLP endpoint %q is not a URL like http://127.0.0.1:4318 (scheme http or https, with host and port)", o.OTLPEndpoint)
		}
		endpoint = u
	}
	if o.TracesEnabled && endpoint == nil && o.SpanExporter == nil {
		return nil, errors.New("telemetry: traces are enabled but there is nowhere to send them: set the OTLP endpoint (e.g. http://127.0.0.1:4318) or disable traces")
	}

	attrs := []attribute.KeyValue{attribute.String("service.name", o.ServiceName)}
	if o.ServiceVersion != "" {
		attrs = append(attrs, attribute.String("service.version", o.ServiceVersion))
	}
	res := resource.NewSchemaless(attrs...)

	t := &Telemetry{registry: prometheus.NewRegistry(), logger: o.Logger}
	t.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	promExp, err := otelprom.New(
		otelprom.WithRegisterer(t.registry),
		otelprom.WithTranslationStrategy(otlptranslator.UnderscoreEscapingWithSuffixes),
		otelprom.WithoutScopeInfo(),
	)
	if err != nil {
		return nil, fmt.Errorf("telemetry: prometheus exporter: %w", err)
	}
	mopts := []sdkmetric.Option{sdkmetric.WithResource(res), sdkmetric.WithReader(promExp)}
	if endpoint != nil {
		exp, err := otlpmetrichttp.New(ctx, otlpmetrichttp.WithEndpointURL(joinURL(endpoint, "/v1/metrics")),
			otlpmetrichttp.WithHeaders(o.OTLPHeaders))
		if err != nil {
			return nil, fmt.Errorf("telemetry: OTLP metric exporter for %s: %w", o.OTLPEndpoint, err)
		}
		mopts = append(mopts, sdkmetric.WithReader(sdkmetric.NewPeriodicReader(exp, sdkmetric.WithInterval(o.MetricInterval))))
	}
	t.meterProvider = sdkmetric.NewMeterProvider(mopts...)

	if o.TracesEnabled {
		topts := []sdktrace.TracerProviderOption{
			sdktrace.WithResource(res),
			sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(o.TraceSampleRatio))),
		}
		if endpoint != nil {
			exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(joinURL(endpoint, "/v1/traces")),
				otlptracehttp.WithHeaders(o.OTLPHeaders))
			if err != nil {
				_ = t.meterProvider.Shutdown(ctx)
				return nil, fmt.Errorf("telemetry: OTLP trace exporter for %s: %w", o.OTLPEndpoint, err)
			}
			topts = append(topts, sdktrace.WithBatcher(exp))
		}
		if o.SpanExporter != nil {
			topts = append(topts, sdktrace.WithBatcher(o.SpanExporter))
		}
		t.sdkTracer = sdktrace.NewTracerProvider(topts...)
		t.tracerProvider = t.sdkTracer
	} else {
		t.tracerProvider = noop.NewTracerProvider()
	}

	lag := NewLagTracker(o.Lag)
	t.Metrics, err = NewMetrics(t.meterProvider.Meter(ScopeName), lag, o.Now)
	if err != nil {
		_ = t.Shutdown(ctx)
		return nil, err
	}
	t.Tracing = &Tracing{tracer: t.tracerProvider.Tracer(ScopeName)}
	return t, nil
}

func joinURL(base *url.URL, path string) string {
	u := *base
	u.Path = strings.TrimSuffix(u.Path, "/") + path
	return u.String()
}

// ForceFlush pushes pending OTLP metrics and spans now.
func (t *Telemetry) ForceFlush(ctx context.Context) error {
	err := t.meterProvider.ForceFlush(ctx)
	if t.sdkTracer != nil {
		err = errors.Join(err, t.sdkTracer.ForceFlush(ctx))
	}
	return err
}

// Shutdown flushes and stops the exporters. Safe to call more than once.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	t.shutdownOnce.Do(func() {
		var errs []error
		if t.sdkTracer != nil {
			if err := t.sdkTracer.Shutdown(ctx); err != nil {
				errs = append(errs, fmt.Errorf("tracer provider: %w", err))
			}
		}
		if err := t.meterProvider.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("meter provider: %w", err))
		}
		if len(errs) > 0 {
			t.shutdownErr = fmt.Errorf("telemetry shutdown: %w", errors.Join(errs...))
		}
	})
	return t.shutdownErr
}

// MetricsHandler serves the Prometheus exposition of this Telemetry's
// registry (OpenMetrics when the scraper asks for it).
func (t *Telemetry) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(t.registry, promhttp.HandlerOpts{
		EnableOpenMetrics: true,
		ErrorLog:          slogPromLogger{t.logger},
	})
}

type slogPromLogger struct{ l *slog.Logger }

func (s slogPromLogger) Println(v ...any) { s.l.Error("metrics exposition", "error", fmt.Sprint(v...)) }

// Handler returns a mux with GET /metrics, /healthz and /readyz. ready
// decides readiness (nil: always ready).
func (t *Telemetry) Handler(ready Readiness) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", t.MetricsHandler())
	mux.Handle("GET /healthz", HealthzHandler())
	mux.Handle("GET /readyz", ReadyzHandler(ready))
	return mux
}

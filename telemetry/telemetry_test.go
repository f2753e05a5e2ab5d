package telemetry

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/feedcdc/feedcdc/change"
)

func newTestTelemetry(t *testing.T, o Options) *Telemetry {
	t.Helper()
	tel, err := New(context.Background(), o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := tel.Shutdown(context.Background()); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return tel
}

// scrape GETs /metrics from a real HTTP server and parses the exposition.
func scrape(t *testing.T, base string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	return fams
}

// sample finds the metric of family name whose labels include want.
func sample(t *testing.T, fams map[string]*dto.MetricFamily, name string, want map[string]string) *dto.Metric {
	t.Helper()
	fam, ok := fams[name]
	if !ok {
		var names []string
		for n := range fams {
			if strings.HasPrefix(n, "feedcdc") {
				names = append(names, n)
			}
		}
		sort.Strings(names)
		t.Fatalf("metric %s not exposed; feedcdc metrics: %v", name, names)
	}
next:
	for _, m := range fam.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if labels[k] != v {
				continue next
			}
		}
		return m
	}
	t.Fatalf("metric %s has no sample with labels %v", name, want)
	return nil
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	}
	return math.NaN()
}

func TestMetricsExposedOnRealServer(t *testing.T) {
	clk := newFakeClock()
	tel := newTestTelemetry(t, Options{Now: clk.Now, Lag: LagOptions{HeartbeatPeriod: time.Second}})
	srv := httptest.NewServer(tel.Handler(nil))
	defer srv.Close()
	m := tel.Metrics

	m.SourceConnected()
	m.EventsRead(3)
	m.EventsRead(4)
	m.RowsRead(10)
	m.BytesRead(4096)
	m.SourceEvent(clk.Now().Add(-1500 * time.Millisecond))
	m.LargeTransaction()
	m.Fenced(2*time.Millisecond, false)
	m.Fenced(time.Second, true)
	m.SourceRetried("connection")
	m.SourceRetried("connection")
	m.SourceRetried("deadlock")
	p := m.Feed("products")
	p.Built(8)
	p.Sent(5)
	p.Skipped(2)
	p.Failed(1)
	p.Rejected(3)
	p.Retried(1)
	m.ItemsSent("variants", 7)
	p.BuildDuration(20 * time.Millisecond)
	p.BuildDuration(40 * time.Millisecond)
	p.ExportDuration(200 * time.Millisecond)
	m.Committed(clk.Now().Add(-2*time.Second), clk.Now())
	m.ItemCounts(func() []FeedItemCounts {
		return []FeedItemCounts{{Feed: "products", Failed: 4, Rejected: 2, Pending: 9}}
	})
	p.ResyncProgress(250, 1000)
	m.RawSnapshotProgress("shop.orders", 1500, 1490, 10, 4000)
	m.HA(func() HAStatus { return HAStatus{Active: true, Epoch: 7, TakeoverMillis: 4200, ChangelogLag: 3} })
	q := m.Queue("changes")
	q.Depth(12, 3000)
	q.Capacity(1000, 64<<20)
	m.CheckpointStored(change.Position{File: "mysql-bin.000042", Pos: 1234})
	m.PositionGap()
	clk.Advance(30 * time.Second)

	fams := scrape(t, srv.URL)
	checks := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"feedcdc_binlog_events_total", nil, 7},
		{"feedcdc_binlog_rows_total", nil, 10},
		{"feedcdc_binlog_bytes_total", nil, 4096},
		{"feedcdc_source_connected", nil, 1},
		{"feedcdc_tx_large_total", nil, 1},
		{"feedcdc_fence_timeouts_total", nil, 1},
		{"feedcdc_position_gaps_total", nil, 1},
		{"feedcdc_ha_active", nil, 1},
		{"feedcdc_ha_epoch", nil, 7},
		{"feedcdc_ha_takeover_duration_milliseconds", nil, 4200},
		{"feedcdc_ha_changelog_lag", nil, 3},
		{"feedcdc_source_retries_total", map[string]string{"reason": "connection"}, 2},
		{"feedcdc_source_retries_total", map[string]string{"reason": "deadlock"}, 1},
		{"feedcdc_feed_items_built_total", map[string]string{"feed": "products"}, 8},
		{"feedcdc_feed_items_sent_total", map[string]string{"feed": "products"}, 5},
		{"feedcdc_feed_items_sent_total", map[string]string{"feed": "variants"}, 7},
		{"feedcdc_feed_items_skipped_total", map[string]string{"feed": "products"}, 2},
		{"feedcdc_feed_items_failed_total", map[string]string{"feed": "products", "failure": "retryable"}, 1},
		{"feedcdc_feed_items_failed_total", map[string]string{"feed": "products", "failure": "rejected"}, 3},
		{"feedcdc_feed_items_retried_total", map[string]string{"feed": "products"}, 1},
		{"feedcdc_resync_progress_ratio", map[string]string{"feed": "products"}, 0.25},
		{"feedcdc_resync_done", map[string]string{"feed": "products"}, 250},
		{"feedcdc_resync_total", map[string]string{"feed": "products"}, 1000},
		{"feedcdc_raw_snapshot_rows", map[string]string{"table": "shop.orders", "kind": "read"}, 1500},
		{"feedcdc_raw_snapshot_rows", map[string]string{"table": "shop.orders", "kind": "sent"}, 1490},
		{"feedcdc_raw_snapshot_rows", map[string]string{"table": "shop.orders", "kind": "dropped"}, 10},
		{"feedcdc_raw_snapshot_total", map[string]string{"table": "shop.orders"}, 4000},
		{"feedcdc_feed_items", map[string]string{"feed": "products", "status": "failed"}, 4},
		{"feedcdc_feed_items", map[string]string{"feed": "products", "status": "rejected"}, 2},
		{"feedcdc_feed_items", map[string]string{"feed": "products", "status": "pending"}, 9},
		{"feedcdc_queue_depth", map[string]string{"queue": "changes"}, 12},
		{"feedcdc_queue_depth_bytes", map[string]string{"queue": "changes"}, 3000},
		{"feedcdc_queue_capacity", map[string]string{"queue": "changes"}, 1000},
		{"feedcdc_queue_capacity_bytes", map[string]string{"queue": "changes"}, 64 << 20},
		{"feedcdc_checkpoint_position_bytes", nil, 1234},
		{"feedcdc_checkpoint_file", nil, 42},
		{"feedcdc_checkpoint_age_seconds", nil, 30},
		// The source went silent for 30 s (> the 3 s stale window) after an
		// event read 1.5 s late: the lag is not frozen at 1.5 s but grows.
		{"feedcdc_source_lag_milliseconds", nil, 31500},
	}
	for _, c := range checks {
		if got := value(sample(t, fams, c.name, c.labels)); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	h := sample(t, fams, "feedcdc_feed_build_duration_seconds", map[string]string{"feed": "products"}).GetHistogram()
	if h.GetSampleCount() != 2 || math.Abs(h.GetSampleSum()-0.06) > 1e-9 {
		t.Errorf("build duration histogram: count %d sum %v, want 2 and 0.06", h.GetSampleCount(), h.GetSampleSum())
	}
	if h := sample(t, fams, "feedcdc_fence_wait_seconds", nil).GetHistogram(); h.GetSampleCount() != 2 || math.Abs(h.GetSampleSum()-1.002) > 1e-9 {
		t.Errorf("fence wait histogram: count %d sum %v, want 2 and 1.002", h.GetSampleCount(), h.GetSampleSum())
	}
	if h := sample(t, fams, "feedcdc_feed_export_duration_seconds", map[string]string{"feed": "products"}).GetHistogram(); h.GetSampleCount() != 1 {
		t.Errorf("export duration count = %d, want 1", h.GetSampleCount())
	}
	e2e := sample(t, fams, "feedcdc_e2e_latency_seconds", nil).GetHistogram()
	if e2e.GetSampleCount() != 1 || e2e.GetSampleSum() != 2 {
		t.Errorf("e2e latency: count %d sum %v, want 1 and 2", e2e.GetSampleCount(), e2e.GetSampleSum())
	}

	// Heartbeat: the lag drops to 0 on the next scrape; disconnects counted.
	m.Heartbeat()
	m.SourceDisconnected(errors.New("connection reset by peer"))
	if up, why := m.SourceState(); up || why != "connection reset by peer" {
		t.Errorf("SourceState after disconnect = %v %q", up, why)
	}
	m.Heartbeat()
	fams = scrape(t, srv.URL)
	if got := value(sample(t, fams, "feedcdc_source_lag_milliseconds", nil)); got != 0 {
		t.Errorf("lag after heartbeat = %v, want 0", got)
	}
	if got := value(sample(t, fams, "feedcdc_source_heartbeats_total", nil)); got != 2 {
		t.Errorf("heartbeats = %v, want 2", got)
	}
	if got := value(sample(t, fams, "feedcdc_source_disconnects_total", nil)); got != 1 {
		t.Errorf("disconnects = %v, want 1", got)
	}
	if got := value(sample(t, fams, "feedcdc_source_connected", nil)); got != 0 {
		t.Errorf("connected after disconnect = %v, want 0", got)
	}
	// Process and Go runtime metrics come from the private registry too.
	if _, ok := fams["go_goroutines"]; !ok {
		t.Errorf("go_goroutines not exposed")
	}
}

func TestLagNotExposedBeforeEvidence(t *testing.T) {
	tel := newTestTelemetry(t, Options{})
	srv := httptest.NewServer(tel.Handler(nil))
	defer srv.Close()
	if _, ok := scrape(t, srv.URL)["feedcdc_source_lag_milliseconds"]; ok {
		t.Fatal("lag exposed before any event or heartbeat: a made-up 0 would look healthy")
	}
	tel.Metrics.Heartbeat()
	if got := value(sample(t, scrape(t, srv.URL), "feedcdc_source_lag_milliseconds", nil)); got != 0 {
		t.Fatalf("lag after heartbeat = %v", got)
	}
}

func TestTwoInstancesDoNotShareSeries(t *testing.T) {
	a := newTestTelemetry(t, Options{})
	b := newTestTelemetry(t, Options{})
	a.Metrics.RowsRead(5)
	sa := httptest.NewServer(a.Handler(nil))
	defer sa.Close()
	sb := httptest.NewServer(b.Handler(nil))
	defer sb.Close()
	if got := value(sample(t, scrape(t, sa.URL), "feedcdc_binlog_rows_total", nil)); got != 5 {
		t.Fatalf("a rows = %v", got)
	}
	if fam, ok := scrape(t, sb.URL)["feedcdc_binlog_rows_total"]; ok && value(fam.GetMetric()[0]) != 0 {
		t.Fatalf("b sees a's rows: %v", fam)
	}
}

func TestHotPathDoesNotAllocate(t *testing.T) {
	tel := newTestTelemetry(t, Options{})
	m := tel.Metrics
	f := m.Feed("products")
	q := m.Queue("changes")
	ts := time.Now()
	// Warm up so the SDK has created its per-attribute-set aggregators.
	for range 3 {
		m.RowsRead(1)
		m.ItemsSent("products", 1)
		f.Sent(1)
		f.BuildDuration(time.Millisecond)
		q.Depth(1, 1)
		m.SourceEvent(ts)
	}
	cases := map[string]func(){
		"RowsRead":        func() { m.RowsRead(1) },
		"EventsRead":      func() { m.EventsRead(1) },
		"ItemsSent(name)": func() { m.ItemsSent("products", 1) },
		"Feed.Sent":       func() { f.Sent(1) },
		"Feed.Failed":     func() { f.Failed(1) },
		"Feed.Build":      func() { f.BuildDuration(time.Millisecond) },
		"Queue.Depth":     func() { q.Depth(3, 100) },
		"SourceEvent":     func() { m.SourceEvent(ts) },
	}
	for name, fn := range cases {
		if n := testing.AllocsPerRun(200, fn); n != 0 {
			t.Errorf("%s allocates %.1f times per call, want 0", name, n)
		}
	}
}

func getJSON(t *testing.T, url string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var v map[string]any
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("GET %s: body %q is not JSON: %v", url, body, err)
	}
	return resp.StatusCode, v
}

func TestHealthzAndReadyzTransitions(t *testing.T) {
	clk := newFakeClock()
	tel := newTestTelemetry(t, Options{Now: clk.Now, Lag: LagOptions{HeartbeatPeriod: time.Second}})
	sinkUp := true
	sinkErr := ""
	ready := AllReady(
		Connected("source", tel.Metrics.SourceState),
		Connected("sink kafka", func() (bool, string) { return sinkUp, sinkErr }),
		LagBelow(tel.Metrics.Lag(), 10*time.Second),
		nil,
	)
	srv := httptest.NewServer(tel.Handler(ready))
	defer srv.Close()

	if code, body := getJSON(t, srv.URL+"/healthz"); code != 200 || body["status"] != "ok" {
		t.Fatalf("healthz: %d %v", code, body)
	}
	reasons := func(body map[string]any) string {
		var s []string
		for _, r := range body["reasons"].([]any) {
			s = append(s, r.(string))
		}
		return strings.Join(s, "; ")
	}

	// Nothing connected, nothing heard: not ready, both reasons given.
	code, body := getJSON(t, srv.URL+"/readyz")
	if code != 503 || body["status"] != "not ready" {
		t.Fatalf("readyz at start: %d %v", code, body)
	}
	if r := reasons(body); !strings.Contains(r, "source is not connected: not connected yet") || !strings.Contains(r, "source lag unknown") {
		t.Fatalf("readyz reasons at start: %q", r)
	}

	// Connected and a heartbeat: ready.
	tel.Metrics.SourceConnected()
	tel.Metrics.Heartbeat()
	if code, body := getJSON(t, srv.URL+"/readyz"); code != 200 || body["status"] != "ready" {
		t.Fatalf("readyz when caught up: %d %v", code, body)
	}

	// Catching up 40 s behind: not ready, and says why.
	tel.Metrics.SourceEvent(clk.Now().Add(-40 * time.Second))
	code, body = getJSON(t, srv.URL+"/readyz")
	if code != 503 || !strings.Contains(reasons(body), "source lag 40s exceeds the readiness limit 10s (streaming)") {
		t.Fatalf("readyz when behind: %d %v", code, body)
	}

	// Caught up again, then the sink fails.
	tel.Metrics.Heartbeat()
	sinkUp, sinkErr = false, "dial tcp 127.0.0.1:9092: connection refused"
	code, body = getJSON(t, srv.URL+"/readyz")
	if code != 503 || reasons(body) != "sink kafka is not connected: dial tcp 127.0.0.1:9092: connection refused" {
		t.Fatalf("readyz with sink down: %d %v", code, body)
	}
	sinkUp = true

	// Heartbeats stop for longer than the limit: the stale lag makes it unready.
	clk.Advance(11 * time.Second)
	code, body = getJSON(t, srv.URL+"/readyz")
	if code != 503 || !strings.Contains(reasons(body), "(stale)") {
		t.Fatalf("readyz when silent: %d %v", code, body)
	}
	tel.Metrics.Heartbeat()
	if code, _ := getJSON(t, srv.URL+"/readyz"); code != 200 {
		t.Fatalf("readyz after heartbeat: %d", code)
	}

	// The binlog connection drops: not ready, with the cause.
	tel.Metrics.SourceDisconnected(errors.New("EOF"))
	code, body = getJSON(t, srv.URL+"/readyz")
	if code != 503 || !strings.Contains(reasons(body), "source is not connected: EOF") {
		t.Fatalf("readyz after disconnect: %d %v", code, body)
	}

	// Unknown paths and methods are not served.
	resp, err := http.Post(srv.URL+"/healthz", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST /healthz = %d, want 405", resp.StatusCode)
	}
}

func TestReadyzNilIsReady(t *testing.T) {
	srv := httptest.NewServer(ReadyzHandler(nil))
	defer srv.Close()
	if code, body := getJSON(t, srv.URL); code != 200 || body["status"] != "ready" {
		t.Fatalf("%d %v", code, body)
	}
}

func TestNewOptionErrors(t *testing.T) {
	cases := []struct {
		o    Options
		want string
	}{
		{Options{OTLPEndpoint: "127.0.0.1:4318"}, "is not a URL like http://127.0.0.1:4318"},
		{Options{OTLPEndpoint: "ftp://x:1"}, "scheme http or https"},
		{Options{TracesEnabled: true}, "traces are enabled but there is nowhere to send them"},
		{Options{TraceSampleRatio: 2}, "between 0 and 1"},
	}
	for _, c := range cases {
		_, err := New(context.Background(), c.o)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New(%+v) = %v, want error containing %q", c.o, err, c.want)
		}
	}
}

func TestBinlogFileSeq(t *testing.T) {
	for in, want := range map[string]int64{"mysql-bin.000042": 42, "mariadb-bin.1": 1, "binlog.999999": 999999} {
		if got, ok := BinlogFileSeq(in); !ok || got != want {
			t.Errorf("BinlogFileSeq(%q) = %d %v", in, got, ok)
		}
	}
	for _, in := range []string{"", "mysql-bin.", "x"} {
		if _, ok := BinlogFileSeq(in); ok {
			t.Errorf("BinlogFileSeq(%q) ok", in)
		}
	}
}

package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/feedcdc/feedcdc/change"
	"github.com/feedcdc/feedcdc/config"
	"github.com/feedcdc/feedcdc/connector"
	"github.com/feedcdc/feedcdc/dashboard/dashboardtest"
	"github.com/feedcdc/feedcdc/internal/runner"
	"github.com/feedcdc/feedcdc/state"
	"github.com/feedcdc/feedcdc/test/catalog"
)

// scrape returns the sum of every sample of a metric family (all label
// sets) from a Prometheus text exposition.
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name, rest, _ := strings.Cut(line, " ")
		if i := strings.IndexByte(name, '{'); i >= 0 {
			// keep one family total and the per-feed products series
			if strings.Contains(name, `feed="products"`) {
				v, _ := strconv.ParseFloat(strings.Fields(rest)[0], 64)
				out[name[:i]+"/products"] += v
			}
			name = name[:i]
		}
		v, err := strconv.ParseFloat(strings.Fields(rest)[0], 64)
		if err == nil {
			out[name] += v
		}
	}
	return out
}

// TestDashboardAndMetricsOnARunningConnector runs the connector against the
// private mariadbd with a real catalog: /metrics moves during a workload and
// the lag returns to ~0 once the source is idle; the dashboard, driven in
// Chromium, shows the state store's counts and schedules a resync of one SKU
// that the connector processes.
func TestDashboardAndMetricsOnARunningConnector(t *testing.T) {
	ctx := context.Background()
	admin := srv.Admin(t, "")
	if _, err := admin.Exec("DROP DATABASE IF EXISTS obsshop; CREATE DATABASE obsshop CHARACTER SET utf8mb4"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Exec("DROP DATABASE IF EXISTS obsshop") })
	shop := srv.Admin(t, "obsshop")
	if _, err := catalog.Load(ctx, shop, catalog.Tiny(), 5); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	y := fmt.Sprintf(`name: obs
source:
  host: 127.0.0.1
  port: %d
  user: %s
  password_env: OBS_SOURCE_PASSWORD
  server_id: 778001
  heartbeat: 1s
  read_timeout: 10s
state:
  path: %s
feeds:
  database: obsshop
resync:
  max_replica_lag: 0s
sinks:
  files:
    type: file
    file:
      dir: %s
      fsync: false
telemetry:
  listen: 127.0.0.1:%d
  pprof: true
dashboard:
  enabled: true
  listen: 127.0.0.1:%d
  token_env: OBS_DASHBOARD_TOKEN
  refresh_interval: 1s
`, srv.Port, srv.CDCUser, filepath.Join(dir, "state.db"), filepath.Join(dir, "out"), freePort(t), freePort(t))
	cfg, err := config.LoadBytes([]byte(y), "obs", []string{"OBS_SOURCE_PASSWORD=" + srv.CDCPassword, "OBS_DASHBOARD_TOKEN=s3cret-token"})
	if err != nil {
		t.Fatal(err)
	}
	var conn *connector.Connector
	var metricsAddr, dashAddr string
	ready := make(chan struct{})
	hooks := &runner.Hooks{
		OnReady: func(c *connector.Connector, _ change.Position, _ bool) { conn = c; close(ready) },
		Addrs:   func(m, d string) { metricsAddr, dashAddr = m, d },
	}
	runCtx, cancel := context.WithCancel(ctx)
	runErr := make(chan error, 1)
	go func() {
		runErr <- runner.Run(runCtx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), Version, hooks)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-runErr; err != nil {
			t.Errorf("connector: %v", err)
		}
	})
	select {
	case <-ready:
	case err := <-runErr:
		t.Fatalf("connector: %v", err)
	}
	waitFor(t, "the first-start full sync", 2*time.Minute, func() bool {
		for _, f := range cfg.EnabledFeeds() {
			if p, ok, _ := conn.Store.Progress(ctx, f); !ok || !p.Finished() {
				return false
			}
		}
		return true
	})
	metricsURL := "http://" + metricsAddr + "/metrics"

	// telemetry.pprof serves the runtime's profiles beside /metrics.
	resp, err := http.Get("http://" + metricsAddr + "/debug/pprof/heap?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	heap, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(string(heap), "heap profile:") {
		t.Errorf("GET /debug/pprof/heap with telemetry.pprof: %s %.80q", resp.Status, heap)
	}

	// Metrics move during a workload.
	before := scrape(t, metricsURL)
	wl := catalog.NewWorkload(shop, 9, catalog.WorkloadOptions{})
	if _, err := wl.Run(ctx, 300, 100); err != nil {
		t.Fatal(err)
	}
	during := scrape(t, metricsURL)
	for _, m := range []string{"feedcdc_binlog_events_total", "feedcdc_binlog_rows_total", "feedcdc_feed_items_sent_total/products",
		"feedcdc_feed_items_built_total/products", "feedcdc_feed_build_duration_seconds_count", "feedcdc_feed_export_duration_seconds_count"} {
		if during[m] <= before[m] {
			t.Errorf("%s did not move during the workload: %v -> %v", m, before[m], during[m])
		}
	}
	if _, ok := during["feedcdc_source_lag_milliseconds"]; !ok {
		t.Errorf("no lag metric exposed")
	}
	// Once the source is idle, heartbeats bring the lag to ~0 within two
	// heartbeat periods (1 s each; plus slack for this shared machine).
	idleAt := time.Now()
	var lag float64
	waitFor(t, "the lag to return to ~0 after the workload", 2*time.Second+5*time.Second, func() bool {
		lag = scrape(t, metricsURL)["feedcdc_source_lag_milliseconds"]
		return lag < 500
	})
	t.Logf("lag back to %.0f ms %s after the workload stopped", lag, time.Since(idleAt).Round(10*time.Millisecond))

	// Wait until everything is exported, then compare the dashboard with
	// the state store.
	var target string
	if err := admin.QueryRow("SELECT @@gtid_binlog_pos").Scan(&target); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "catch-up", time.Minute, func() bool {
		pos, _, ok, _ := conn.Store.Checkpoint(ctx)
		return ok && pos.GTIDSet == target
	})
	b := dashboardtest.NewBrowser(t)
	b.Open("http://" + dashAddr + "/")
	b.WaitLoaded()
	for _, f := range cfg.EnabledFeeds() {
		n, err := conn.Store.Counts(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		if got := b.FeedValue(f, "sent"); got != n.Sent {
			t.Errorf("%s: dashboard shows %d sent, state store has %d", f, got, n.Sent)
		}
		if got := b.FeedValue(f, "failed"); got != n.Failed {
			t.Errorf("%s: dashboard shows %d failed, state store has %d", f, got, n.Failed)
		}
	}
	// Schedule a resync of one SKU through the page and see it processed.
	items, _, err := conn.Store.ListItems(ctx, state.ListQuery{Feed: "products", Statuses: []int{state.StatusSent}, Limit: 1})
	if err != nil || len(items) == 0 {
		t.Fatalf("no sent product (%v)", err)
	}
	it := items[0]
	sku := it.Identity["sku"]
	if got := b.SetToken("s3cret-token"); got != "ok" {
		t.Fatalf("token %s", got)
	}
	if st, msg := b.ScheduleResync("products", sku); st != "ok" {
		t.Fatalf("schedule resync: %s %s", st, msg)
	}
	waitFor(t, "the resync of "+sku, time.Minute, func() bool {
		now, ok, _ := conn.Store.Item(ctx, "products", it.ID)
		return ok && now.SentAt.After(it.SentAt)
	})
	path := b.Screenshot("dashboard-running-connector")
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("screenshot: %v", err)
	}
}

func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// freePort returns a port that was free on 127.0.0.1 a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/feedcdc/feedcdc/change"
	"github.com/feedcdc/feedcdc/config"
	"github.com/feedcdc/feedcdc/connector"
	"github.com/feedcdc/feedcdc/internal/runner"
	"github.com/feedcdc/feedcdc/state"
)

// TestVerifyThroughTheRunningConnector runs feedcdc verify while `run`
// holds the state file: the verify goes through the dashboard API, exits 0
// on an undrifted feed, 3 when a product was unassigned from a website
// behind feedcdc's back (binlog off), --repair sends exactly the orphaned
// items, and a verify after it exits 0 again.
func TestVerifyThroughTheRunningConnector(t *testing.T) {
	ctx := context.Background()
	_, _, cfgPath, _ := runningConnector(t, "vfyshop", 777311)
	verify := func(args ...string) (int, connector.VerifyResult, string) {
		t.Helper()
		code, out, errOut := run(t, nil, append([]string{"verify", "--feed", "products", "--json", "-c", cfgPath}, args...)...)
		var res connector.VerifyResult
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatalf("exit %d, output not JSON: %v\n%s\n%s", code, err, out, errOut)
		}
		return code, res, errOut
	}
	code, res, errOut := verify("--read-back")
	if code != 0 || res.Drift != 0 || res.Checked == 0 || res.Counts[connector.VerifyEqual] != res.Checked || len(res.ReadBack) != 1 {
		t.Fatalf("undrifted feed: exit %d, %+v\n%s", code, res, errOut)
	}

	admin := srv.Admin(t, "vfyshop")
	conn, err := admin.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"SET SESSION sql_log_bin = 0",
		"DELETE FROM catalog_product_website WHERE product_id = (SELECT MIN(product_id) FROM (SELECT product_id FROM catalog_product_website GROUP BY product_id HAVING COUNT(*) > 1) x) ORDER BY website_id LIMIT 1"} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	conn.Close()

	code, res, errOut = verify()
	orphans := res.Counts[connector.VerifyOrphaned]
	if code != exitDrift || orphans == 0 || res.Drift != orphans {
		t.Fatalf("drifted feed: exit %d (want %d), %+v\n%s", code, exitDrift, res, errOut)
	}
	code, res, errOut = verify("--repair")
	if code != exitDrift || res.Repair == nil || int64(res.Repair.Sent) != orphans || res.Repair.Deleted != int(orphans) {
		t.Fatalf("repair: exit %d, %+v\n%s", code, res, errOut)
	}
	code, res, errOut = verify("--read-back")
	if code != 0 || res.Drift != 0 {
		t.Fatalf("after repair: exit %d, %+v\n%s", code, res, errOut)
	}
	// The text report names the results.
	code, out, _ := run(t, nil, "verify", "--feed", "products", "-c", cfgPath)
	if code != 0 || !strings.Contains(out, "drift 0") || !strings.Contains(out, "orphaned") {
		t.Fatalf("text report: exit %d\n%s", code, out)
	}
}

// TestScheduledVerifyReportsDrift runs the connector with
// feeds.products.verify_schedule: 1s: after a product is unassigned from a
// website behind its back, the scheduled verify keeps a report with the
// drift in the state (shown by status through the running connector) and
// exports feedcdc.verify.drift and feedcdc.verify.items; it repairs
// nothing.
func TestScheduledVerifyReportsDrift(t *testing.T) {
	ctx := context.Background()
	loadShop(t, "vsched", 4)
	shop := srv.Admin(t, "vsched")
	dir := t.TempDir()
	y := fmt.Sprintf(`name: vs
source:
  host: 127.0.0.1
  port: %d
  user: %s
  password_env: VS_SOURCE_PASSWORD
  server_id: 778311
state:
  path: %s
feeds:
  database: vsched
  products:
    verify_schedule: 1s
  productAttributes: {enabled: false}
  variants: {enabled: false}
  productOverrides: {enabled: false}
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
dashboard:
  enabled: true
  listen: 127.0.0.1:%d
`, srv.Port, srv.CDCUser, filepath.Join(dir, "state.db"), filepath.Join(dir, "out"), freePort(t), freePort(t))
	cfgPath := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfgPath, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("VS_SOURCE_PASSWORD", srv.CDCPassword)
	cfg, err := config.Load(cfgPath, os.Environ())
	if err != nil {
		t.Fatal(err)
	}
	var conn *connector.Connector
	var metricsAddr string
	ready := make(chan struct{})
	runCtx, cancel := context.WithCancel(ctx)
	runErr := make(chan error, 1)
	go func() {
		runErr <- runner.Run(runCtx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), Version, &runner.Hooks{
			OnReady: func(c *connector.Connector, _ change.Position, _ bool) { conn = c; close(ready) },
			Addrs:   func(m, _ string) { metricsAddr = m }})
	}()
	t.Cleanup(func() { cancel(); <-runErr })
	select {
	case <-ready:
	case err := <-runErr:
		t.Fatalf("connector: %v", err)
	}
	// Before any drift, a scheduled verify finds none.
	waitFor(t, "a scheduled verify after the full sync", 2*time.Minute, func() bool {
		p, ok, _ := conn.Store.Progress(ctx, "products")
		r, rok, _ := conn.Store.VerifyReport(ctx, "products")
		return ok && p.Finished() && rok && r.StartedAt.After(p.FinishedAt)
	})
	if r, _, _ := conn.Store.VerifyReport(ctx, "products"); r.Drift != 0 || r.Counts["checked"] == 0 {
		t.Fatalf("undrifted feed: %+v", r)
	}
	c, err := shop.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"SET SESSION sql_log_bin = 0",
		"DELETE FROM catalog_product_website WHERE product_id = (SELECT MIN(product_id) FROM (SELECT product_id FROM catalog_product_website GROUP BY product_id HAVING COUNT(*) > 1) x) ORDER BY website_id LIMIT 1"} {
		if _, err := c.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	c.Close()
	var rep state.VerifyReport
	waitFor(t, "a scheduled verify to find the drift", time.Minute, func() bool {
		rep, _, _ = conn.Store.VerifyReport(ctx, "products")
		return rep.Drift > 0
	})
	if rep.Counts["orphaned"] != rep.Drift || rep.Repaired != 0 || len(rep.Sample) == 0 || !strings.HasPrefix(rep.Sample[0], "orphaned ") {
		t.Fatalf("report %+v", rep)
	}
	// The report is stored just before the gauges are recorded.
	var m map[string]float64
	waitFor(t, "the verify gauges", 30*time.Second, func() bool {
		m = scrape(t, "http://"+metricsAddr+"/metrics")
		return m["feedcdc_verify_drift/products"] == float64(rep.Drift)
	})
	if m["feedcdc_verify_items/products"] != float64(rep.Counts["equal"]+rep.Counts["orphaned"]) {
		t.Errorf("feedcdc.verify.items: %v, report %v", filterPrefix(m, "feedcdc_verify"), rep.Counts)
	}
	code, out, errOut := run(t, nil, "status", "-c", cfgPath)
	if code != 0 || !strings.Contains(out, "last verify of products") || !strings.Contains(out, fmt.Sprintf("drift %d", rep.Drift)) {
		t.Fatalf("status: exit %d\n%s\n%s", code, out, errOut)
	}
}

func filterPrefix(m map[string]float64, prefix string) map[string]float64 {
	out := map[string]float64{}
	for k, v := range m {
		if strings.HasPrefix(k, prefix) {
			out[k] = v
		}
	}
	return out
}

// TestVerifyStandalone runs feedcdc verify with the connector stopped
// (verify opens the state file itself), file sink with envelope: after a
// resync it exits 0; with
// the file sink's output emptied it exits 3 naming every item missing at
// the destination; --repair rewrites them and the next verify exits 0.
func TestVerifyStandalone(t *testing.T) {
	loadShop(t, "vstand", 6)
	cfgPath := writeConfig(t, "")
	b, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	y := strings.Replace(string(b), "database: clishop", "database: vstand\n  productAttributes: {enabled: false}\n  variants: {enabled: false}\n  productOverrides: {enabled: false}", 1)
	// With envelope the read-back takes each record's feed_id from it.
	y = strings.Replace(y, "      fsync: false", "      fsync: false\n      envelope: true", 1)
	if err := os.WriteFile(cfgPath, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := run(t, nil, "resync", "--feed", "products", "-c", cfgPath); code != 0 {
		t.Fatalf("resync: exit %d: %s", code, errOut)
	}
	code, out, errOut := run(t, nil, "verify", "--feed", "products", "--read-back", "-c", cfgPath)
	if code != 0 || !strings.Contains(out, "drift 0") {
		t.Fatalf("verify: exit %d\n%s\n%s", code, out, errOut)
	}
	outFile := filepath.Join(filepath.Dir(cfgPath), "out", "products.jsonl")
	lines, err := os.ReadFile(outFile)
	if err != nil {
		t.Fatal(err)
	}
	n := strings.Count(string(lines), "\n")
	if err := os.WriteFile(outFile, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = run(t, nil, "verify", "--feed", "products", "--read-back", "--examples", "2", "-c", cfgPath)
	if code != exitDrift || !strings.Contains(out, fmt.Sprintf("missing_at_destination   %d", n)) || !strings.Contains(out, "run again with --repair") {
		t.Fatalf("verify of an emptied sink: exit %d\n%s\n%s", code, out, errOut)
	}
	code, out, errOut = run(t, nil, "verify", "--feed", "products", "--read-back", "--repair", "-c", cfgPath)
	if code != exitDrift || !strings.Contains(out, fmt.Sprintf("repair: sent %d", n)) {
		t.Fatalf("repair: exit %d\n%s\n%s", code, out, errOut)
	}
	if code, out, errOut = run(t, nil, "verify", "--feed", "products", "--read-back", "-c", cfgPath); code != 0 {
		t.Fatalf("after repair: exit %d\n%s\n%s", code, out, errOut)
	}
}

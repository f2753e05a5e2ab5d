package runner

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/feedcdc/feedcdc/change"
	"github.com/feedcdc/feedcdc/config"
	"github.com/feedcdc/feedcdc/ha"
	"github.com/feedcdc/feedcdc/state"
	"github.com/feedcdc/feedcdc/test/kafkatest"
)

// activeNode makes a bare ha.Node the group's active instance, as the
// runner does (elected, takeover, state replicated), and writes n state
// transactions to the changelog. The caller closes it.
func activeNode(t *testing.T, ctx context.Context, o ha.Options, n int) *ha.Node {
	t.Helper()
	a, err := ha.Start(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-a.Elected():
	case <-time.After(20 * time.Second):
		t.Fatal("the first node was not elected within 20s")
	}
	path := filepath.Join(t.TempDir(), "a.db")
	st, err := state.Open(path, state.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	f, err := a.Follow(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Takeover(ctx); err != nil {
		t.Fatal(err)
	}
	st.Close()
	st, err = state.Open(path, state.Options{NoSync: true, OnCommit: a.Commit})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	for i := 1; i <= n; i++ {
		if err := st.Update(ctx, func(tx *state.Tx) error {
			return tx.SetCheckpoint(change.Position{File: "bin.000001", Pos: uint32(i)}, time.Unix(int64(i), 0))
		}); err != nil {
			t.Fatalf("write %d on the active node: %v", i, err)
		}
	}
	return a
}

// haConfig is a configuration of instance in the HA group of the
// kafkatest cluster c, serving telemetry on a free loopback port.
func haConfig(t *testing.T, c *kafkatest.Cluster, instance string) *config.Config {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg := config.Default()
	cfg.Name = "shop"
	cfg.State.Path = filepath.Join(t.TempDir(), "state.db")
	cfg.Telemetry.Listen = addr
	cfg.Dashboard.Enabled = false
	cfg.HA.Enabled = true
	cfg.HA.Brokers = []string{c.Addr()}
	cfg.HA.TopicPrefix = "feedcdc"
	cfg.HA.Instance = instance
	cfg.HA.SessionTimeout = config.Duration(3 * time.Second)
	return cfg
}

// documentedHAMetrics returns the Prometheus series names of the rows of
// the docs/operations.md metrics table marked "High availability only".
func documentedHAMetrics(t *testing.T) map[string]bool {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	name := regexp.MustCompile("`(feedcdc_[a-z0-9_]+)")
	out := map[string]bool{}
	for _, l := range strings.Split(string(doc), "\n") {
		cols := strings.Split(l, "|")
		if !strings.HasPrefix(l, "| `feedcdc.") || len(cols) < 5 || !strings.Contains(l, "High availability only") {
			continue
		}
		for _, m := range name.FindAllStringSubmatch(cols[2], -1) {
			out[m[1]] = true
		}
	}
	if len(out) < 4 {
		t.Fatalf("found only %d high-availability metrics in docs/operations.md: %v", len(out), out)
	}
	return out
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestHAStandbyServesMetrics: a standby serves /metrics with the HA
// gauges — not active, the epoch it follows, its changelog lag — and none
// of the connector's metrics (it runs no connector: alerts such as Source
// down must not fire on it), next to /healthz (live) and /readyz (503).
func TestHAStandbyServesMetrics(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := kafkatest.Start(t, kafkatest.WithBrokerConfigs(map[string]string{"group.min.session.timeout.ms": "500"}))
	o := ha.Options{Brokers: []string{c.Addr()}, Name: "shop", TopicPrefix: "feedcdc", Instance: "z",
		SessionTimeout: 3 * time.Second, Replication: -1, Logger: slog.Default()}
	// A first leadership, so that the epoch followed is not 0.
	activeNode(t, ctx, o, 5).Close()
	o.Instance = "a"
	a := activeNode(t, ctx, o, 20)
	defer a.Close()
	epoch := a.Epoch()
	if epoch == 0 {
		t.Fatal("the second leadership's epoch is 0")
	}

	cfg := haConfig(t, c, "b")
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, slog.Default(), "test", nil) }()

	base := "http://" + cfg.Telemetry.Listen
	want := fmt.Sprintf("feedcdc_ha_active 0\nfeedcdc_ha_changelog_lag 0\nfeedcdc_ha_epoch %d\n", epoch)
	gauges := regexp.MustCompile(`(?m)^feedcdc_ha_(active|changelog_lag|epoch) .*\n`)
	var body string
	deadline := time.Now().Add(30 * time.Second)
	for {
		var code int
		code, body = get(t, base+"/metrics")
		if code == http.StatusOK && strings.Join(gauges.FindAllString(body, -1), "") == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("standby /metrics: %d, want the gauges\n%s\ngot:\n%s", code, want, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	exported := map[string]bool{}
	for _, l := range strings.Split(body, "\n") {
		if f := strings.Fields(l); len(f) == 4 && f[1] == "TYPE" && strings.HasPrefix(f[2], "feedcdc_") {
			exported[f[2]] = true
		}
		if strings.HasPrefix(l, "feedcdc_") && !strings.HasPrefix(l, "feedcdc_ha_") {
			t.Errorf("standby /metrics reports a connector metric: %s", l)
		}
	}
	// The standby exports exactly the metrics docs/operations.md lists as
	// "High availability only".
	documented := documentedHAMetrics(t)
	for m := range exported {
		if !documented[m] {
			t.Errorf("standby metric %s is not documented in docs/operations.md as \"High availability only\"", m)
		}
	}
	for m := range documented {
		if !exported[m] {
			t.Errorf("metric %s is documented in docs/operations.md as \"High availability only\" but a standby does not export it", m)
		}
	}
	if code, _ := get(t, base+"/healthz"); code != http.StatusOK {
		t.Errorf("standby /healthz: %d, want 200", code)
	}
	if code, body := get(t, base+"/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "standby") {
		t.Errorf("standby /readyz: %d %q, want 503 naming the standby role", code, body)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after the context ended")
	}
}

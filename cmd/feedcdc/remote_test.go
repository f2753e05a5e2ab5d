package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/feedcdc/feedcdc/test/catalog"
)

// remoteConfig writes a configuration with the catalog feeds of db, a file
// sink, /metrics and the dashboard (token from FEEDCDC_DASHBOARD_TOKEN).
func remoteConfig(t *testing.T, db string, serverID int) (cfgPath, dir string, metricsPort int) {
	t.Helper()
	metricsPort = freePort(t)
	cfgPath, dir = cliConfig{Name: db, Env: "CLI", ServerID: serverID, Database: db, Source: []string{"heartbeat: 1s"},
		Telemetry: []string{fmt.Sprintf("listen: 127.0.0.1:%d", metricsPort)},
		Dashboard: []string{"enabled: true", fmt.Sprintf("listen: 127.0.0.1:%d", freePort(t))}}.write(t)
	return cfgPath, dir, metricsPort
}

// loadShop creates database db with the tiny catalog of seed, dropped at
// the end of the test.
func loadShop(t *testing.T, db string, seed int64) {
	t.Helper()
	admin := srv.Admin(t, "")
	if _, err := admin.Exec("DROP DATABASE IF EXISTS " + db + "; CREATE DATABASE " + db + " CHARACTER SET utf8mb4"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Exec("DROP DATABASE IF EXISTS " + db) })
	if _, err := catalog.Load(context.Background(), srv.Admin(t, db), catalog.Tiny(), seed); err != nil {
		t.Fatal(err)
	}
}

// docJQ runs the `feedcdc status --json | jq` line of docs/operations.md
// on the output of `feedcdc status --json -c cfg`.
func docJQ(t *testing.T, cfg string) string {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	var line string
	for _, l := range strings.Split(string(doc), "\n") {
		if strings.HasPrefix(l, "feedcdc status --json | jq ") {
			line = l
		}
	}
	if line == "" {
		t.Fatal("docs/operations.md has no `feedcdc status --json | jq` line")
	}
	code, out, errOut := run(t, nil, "status", "--json", "-c", cfg)
	if code != 0 {
		t.Fatalf("status --json: exit %d\n%s", code, errOut)
	}
	js := filepath.Join(t.TempDir(), "status.json")
	if err := os.WriteFile(js, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", "-c", strings.Replace(line, "feedcdc status --json", "cat "+js, 1))
	got, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", line, err, got)
	}
	return string(got)
}

// documentedMetrics returns the Prometheus series names of the metrics
// table of docs/operations.md; optional are those documented as exported
// only from their first event on, or with high availability only.
func documentedMetrics(t *testing.T) (all, optional map[string]bool) {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	all, optional = map[string]bool{}, map[string]bool{}
	in := false
	name := regexp.MustCompile("`(feedcdc_[a-z0-9_]+)")
	for _, l := range strings.Split(string(doc), "\n") {
		switch {
		case strings.HasPrefix(l, "| OTel name | Prometheus series"):
			in = true
			continue
		case in && !strings.HasPrefix(l, "|"):
			in = false
		}
		if !in || strings.HasPrefix(l, "|---") {
			continue
		}
		cols := strings.Split(l, "|")
		for _, m := range name.FindAllStringSubmatch(cols[2], -1) {
			all[m[1]] = true
			// High-availability gauges are compared with a standby's
			// /metrics by internal/runner's TestHAStandbyServesMetrics.
			if strings.Contains(l, "Exported from the first") || strings.Contains(l, "High availability only") {
				optional[m[1]] = true
			}
		}
	}
	if len(all) < 20 {
		t.Fatalf("found only %d metrics in the docs/operations.md table", len(all))
	}
	return all, optional
}

// exportedMetrics scrapes /metrics and returns the feedcdc_ families and
// every sample line.
func exportedMetrics(t *testing.T, url string) (map[string]bool, []string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	fams := map[string]bool{}
	var samples []string
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) == 4 && f[1] == "TYPE" && strings.HasPrefix(f[2], "feedcdc_") {
			fams[f[2]] = true
		} else if strings.HasPrefix(l, "feedcdc_") {
			samples = append(samples, l)
		}
	}
	return fams, samples
}

// checkMetricsDocumented compares the running connector's metrics with
// the documented ones, both ways.
func checkMetricsDocumented(t *testing.T, url string) {
	t.Helper()
	documented, optional := documentedMetrics(t)
	exported, samples := exportedMetrics(t, url)
	for m := range exported {
		if !documented[m] {
			t.Errorf("metric %s is exported but not documented in docs/operations.md", m)
		}
	}
	for m := range documented {
		if !exported[m] && !optional[m] {
			t.Errorf("metric %s is documented in docs/operations.md but not exported", m)
		}
	}
	// Every metric an alert of docs/operations.md reads is exported, so
	// the alerts can evaluate (and fire) at all.
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	alerts := string(doc)[strings.Index(string(doc), "### Alerts"):]
	alerts = alerts[:strings.Index(alerts, "\n## ")]
	ref := regexp.MustCompile(`feedcdc_[a-z0-9_]+`)
	n := 0
	for _, m := range ref.FindAllString(alerts, -1) {
		m = strings.TrimSuffix(m, "_bucket")
		n++
		if !exported[m] && !optional[m] {
			t.Errorf("an alert in docs/operations.md reads %s, which is not exported", m)
		}
	}
	if n < 15 {
		t.Fatalf("found only %d metric references in the alerts", n)
	}
	for _, s := range samples {
		if strings.Contains(s, `feed="all"`) {
			t.Errorf("a feed=\"all\" series is exported: %s", s)
		}
	}
}

// statusJSON runs `feedcdc status --json` and decodes it generically.
func statusJSON(t *testing.T, cfg string) (int, map[string]any, string) {
	t.Helper()
	code, out, errOut := run(t, nil, "status", "--json", "-c", cfg)
	var m map[string]any
	if code == 0 {
		if err := json.Unmarshal([]byte(out), &m); err != nil {
			t.Fatalf("status --json: %v\n%s", err, out)
		}
	}
	return code, m, errOut
}

// keyPaths lists every object key path of a JSON value (arrays merged).
func keyPaths(v any, prefix string, out map[string]bool) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			out[prefix+"."+k] = true
			keyPaths(e, prefix+"."+k, out)
		}
	case []any:
		for _, e := range x {
			keyPaths(e, prefix+"[]", out)
		}
	}
}

func fileHash(t *testing.T, path string) ([32]byte, time.Time) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b), st.ModTime()
}

// apiGet GETs path from the dashboard of the connector configured in cfg
// (its dashboard.listen) with token, and decodes the JSON object.
func apiGet(t *testing.T, cfg, path, token string) map[string]any {
	t.Helper()
	y, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^dashboard:\n(?:  .*\n)*?  listen: (\S+)`).FindSubmatch(y)
	if m == nil {
		t.Fatalf("no dashboard.listen in %s", cfg)
	}
	req, _ := http.NewRequest("GET", "http://"+string(m[1])+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %v", path, resp.StatusCode, err)
	}
	return out
}

// TestCLIThroughRunningConnector runs every state command against a
// running connector: they go through its job API, wait, show progress
// with a counted total, report the summary of the mode they ran in, and a
// failing job reaches the CLI's exit code. status has one shape in both
// modes, and never writes the state file.
func TestCLIThroughRunningConnector(t *testing.T) {
	loadShop(t, "remoteshop", 5)
	t.Setenv("FEEDCDC_DASHBOARD_TOKEN", "remote-s3cret")
	cfg, dir, metricsPort := remoteConfig(t, "remoteshop", 779101)
	r := startRun(t, cfg)
	var st map[string]any
	waitFor(t, "the first-start full sync", 2*time.Minute, func() bool {
		code, m, _ := statusJSON(t, cfg)
		if code != 0 {
			return false
		}
		for _, f := range m["feeds"].([]any) {
			rs, _ := f.(map[string]any)["resync"].(map[string]any)
			if rs == nil || rs["finished_at"] == nil || strings.HasPrefix(rs["finished_at"].(string), "0001") {
				return false
			}
		}
		st = m
		return true
	})
	if st["running"] != true || st["pid"].(float64) != float64(os.Getpid()) {
		t.Fatalf("status through the running connector: running %v pid %v", st["running"], st["pid"])
	}
	pid := fmt.Sprintf("pid %d", os.Getpid())

	// A by-ids resync of an id that does not exist fails, and the CLI says
	// so with exit 1.
	code, out, errOut := run(t, nil, "resync", "--feed", "products", "--by-ids", "NOPE-1", "-c", cfg)
	if code != 1 || !strings.Contains(errOut, "none of the ids NOPE-1 exists") || !strings.Contains(errOut, pid) {
		t.Fatalf("resync --by-ids NOPE-1: exit %d\nstdout %s\nstderr %s", code, out, errOut)
	}
	// A real SKU: a by-ids summary, not a full re-sync.
	var sku string
	if err := srv.Admin(t, "remoteshop").QueryRow("SELECT sku FROM catalog_product_entity ORDER BY entity_id LIMIT 1").Scan(&sku); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = run(t, nil, "resync", "--feed", "products", "--by-ids", sku, "-c", cfg)
	if code != 0 || !strings.Contains(out, "resync by ids (1 SKUs given) complete") || strings.Contains(out, "full re-sync") || !strings.Contains(out, pid) ||
		strings.Contains(out, "vanished pass") {
		t.Fatalf("resync --by-ids %s: exit %d\nstdout %s\nstderr %s", sku, code, out, errOut)
	}
	// --json prints the job's result as GET /api/jobs/{id} has it: the
	// same object, with the documented lower-case keys.
	code, out, errOut = run(t, nil, "resync", "--feed", "products", "--by-ids", sku, "--json", "-c", cfg)
	jm := regexp.MustCompile(`as job (\d+)`).FindStringSubmatch(errOut)
	var cliRes map[string]any
	if code != 0 || jm == nil || json.Unmarshal([]byte(out), &cliRes) != nil {
		t.Fatalf("resync --json: exit %d\nstdout %s\nstderr %s", code, out, errOut)
	}
	apiJob := apiGet(t, cfg, "/api/jobs/"+jm[1], "remote-s3cret")
	if !reflect.DeepEqual(cliRes, apiJob["result"]) {
		t.Fatalf("resync --json differs from the API's job result:\nCLI %v\nAPI %v", cliRes, apiJob["result"])
	}
	remoteShape := map[string]bool{}
	keyPaths(cliRes, "", remoteShape)
	for _, k := range []string{".feed", ".stats.sent", ".stats.keys", ".vanished.checked", ".elapsed_ns", ".progress.processed"} {
		if !remoteShape[k] {
			t.Fatalf("resync --json lacks %s (documented in docs/operations.md): %v", k, cliRes)
		}
	}
	for k := range remoteShape {
		if k != strings.ToLower(k) {
			t.Fatalf("resync --json has a key with capitals: %s", k)
		}
	}
	// --id-type productId goes through too.
	code, out, errOut = run(t, nil, "resync", "--feed", "products", "--by-ids", "1", "--id-type", "productId", "-c", cfg)
	if code != 0 || !strings.Contains(out, "resync by ids (1 product ids given) complete") || !regexp.MustCompile(`sent [1-9]`).MatchString(out) {
		t.Fatalf("resync --id-type productId: exit %d\nstdout %s\nstderr %s", code, out, errOut)
	}
	// A dry run says what it would send, and its progress has the counted
	// total.
	code, out, errOut = run(t, nil, "resync", "--feed", "products", "--dry-run", "-c", cfg)
	// Its vanished pass read the 222 remembered items and found nothing
	// vanished; a by-ids resync has no such pass.
	if code != 0 || !strings.Contains(out, "would send 0") || !strings.Contains(out, "unchanged 222") || strings.Contains(out, ", sent ") ||
		!strings.Contains(out, "vanished pass: checked 222 remembered items, rebuilt 0 entities") {
		t.Fatalf("resync --dry-run: exit %d\nstdout %s\nstderr %s", code, out, errOut)
	}
	if m := regexp.MustCompile(`progress (\d+)/(\d+) entities`).FindStringSubmatch(errOut); m == nil || m[2] == "0" || strings.Contains(errOut, "/?") {
		t.Fatalf("resync progress lacks a total:\n%s", errOut)
	}
	// --no-wait prints the job id; status lists the job.
	code, out, errOut = run(t, nil, "resync", "--feed", "variants", "--no-wait", "-c", cfg)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 2 || !strings.Contains(lines[0], "started as job "+lines[1]) {
		t.Fatalf("resync --no-wait: exit %d\nstdout %s\nstderr %s", code, out, errOut)
	}
	waitFor(t, "job "+lines[1], time.Minute, func() bool {
		_, m, _ := statusJSON(t, cfg)
		for _, j := range m["jobs"].([]any) {
			if j := j.(map[string]any); j["id"] == lines[1] && j["state"] == "done" {
				return true
			}
		}
		return false
	})
	// retry runs on the connector too.
	code, out, errOut = run(t, nil, "retry", "--feed", "products", "--all", "-c", cfg)
	if code != 0 || !strings.Contains(out, "products_resend_failed_items:") || !strings.Contains(out, pid) {
		t.Fatalf("retry: exit %d\nstdout %s\nstderr %s", code, out, errOut)
	}
	// Without the token in the shell the error names the variable.
	t.Setenv("FEEDCDC_DASHBOARD_TOKEN", "")
	code, _, errOut = run(t, nil, "resync", "--feed", "products", "-c", cfg)
	if code != 1 || !strings.Contains(errOut, "FEEDCDC_DASHBOARD_TOKEN") || !strings.Contains(errOut, pid) || strings.Contains(errOut, "enable dashboard") {
		t.Fatalf("resync without the token: exit %d\n%s", code, errOut)
	}
	code, _, errOut = run(t, nil, "retry", "--feed", "products", "-c", cfg)
	if code != 1 || !strings.Contains(errOut, "FEEDCDC_DASHBOARD_TOKEN") {
		t.Fatalf("retry without the token: exit %d\n%s", code, errOut)
	}
	code, _, errOut = run(t, nil, "verify", "--feed", "products", "-c", cfg)
	if code != 1 || !strings.Contains(errOut, "FEEDCDC_DASHBOARD_TOKEN") || !strings.Contains(errOut, pid) {
		t.Fatalf("verify without the token: exit %d\n%s", code, errOut)
	}
	// position show too, without a token.
	code, out, errOut = run(t, nil, "position", "show", "--json", "-c", cfg)
	var pr struct {
		Checkpoint *struct {
			GTIDSet string `json:"gtid_set"`
		}
		Server *struct{ Available bool }
	}
	if code != 0 || json.Unmarshal([]byte(out), &pr) != nil || pr.Checkpoint == nil || pr.Checkpoint.GTIDSet == "" || pr.Server == nil || !pr.Server.Available {
		t.Fatalf("position show through the running connector: exit %d\n%s\n%s", code, out, errOut)
	}
	// A verify through the connector records the verify gauges (they exist
	// once a verify ran) and its report in status.
	t.Setenv("FEEDCDC_DASHBOARD_TOKEN", "remote-s3cret")
	if code, out, errOut := run(t, nil, "verify", "--feed", "products", "-c", cfg); code != 0 {
		t.Fatalf("verify through the running connector: exit %d\n%s\n%s", code, out, errOut)
	}
	t.Setenv("FEEDCDC_DASHBOARD_TOKEN", "")
	// status needs no token.
	code, running, errOut := statusJSON(t, cfg)
	if code != 0 {
		t.Fatalf("status without the token: exit %d\n%s", code, errOut)
	}
	if got := docJQ(t, cfg); !strings.Contains(got, "products failed=0 rejected=0\n") {
		t.Fatalf("the documented jq line on a running connector's status printed:\n%s", got)
	}
	checkMetricsDocumented(t, fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort))
	if c := r.stop(t); c != 0 {
		t.Fatalf("run exit %d:\n%s", c, r.stderr.String())
	}
	// A standalone resync --json has the shape of the job's result.
	code, out, errOut = run(t, nil, "resync", "--feed", "products", "--by-ids", sku, "--json", "-c", cfg)
	var standalone map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &standalone) != nil {
		t.Fatalf("standalone resync --json: exit %d\nstdout %s\nstderr %s", code, out, errOut)
	}
	standaloneShape := map[string]bool{}
	keyPaths(standalone, "", standaloneShape)
	if !reflect.DeepEqual(standaloneShape, remoteShape) {
		t.Fatalf("resync --json shapes differ: standalone %v, through the connector %v", standaloneShape, remoteShape)
	}

	// Stopped: the same shape, and the state file is not written.
	stateFile := filepath.Join(dir, "state.db")
	h0, m0 := fileHash(t, stateFile)
	time.Sleep(20 * time.Millisecond) // a write would give a later mtime
	code, stopped, errOut := statusJSON(t, cfg)
	if code != 0 {
		t.Fatalf("status (stopped): exit %d\n%s", code, errOut)
	}
	if code, _, errOut := run(t, nil, "status", "-c", cfg); code != 0 {
		t.Fatalf("status table (stopped): exit %d\n%s", code, errOut)
	}
	if h1, m1 := fileHash(t, stateFile); h1 != h0 || !m1.Equal(m0) {
		t.Fatalf("status wrote the state file (mtime %s -> %s)", m0, m1)
	}
	if got := docJQ(t, cfg); !strings.Contains(got, "products failed=0 rejected=0\n") {
		t.Fatalf("the documented jq line on a stopped connector's status printed:\n%s", got)
	}
	// A restart says where it resumes from.
	cp := stopped["checkpoint"].(map[string]any)["gtid_set"].(string)
	r2 := startRun(t, cfg)
	waitFor(t, "the start line", time.Minute, func() bool { return strings.Contains(r2.stderr.String(), "resuming from checkpoint") })
	if line := r2.stderr.String(); !strings.Contains(line, "resuming from checkpoint gtid:"+cp) || !strings.Contains(line, "mode=gtid") {
		t.Fatalf("start line lacks the checkpoint %s and its mode:\n%s", cp, line)
	}
	if c := r2.stop(t); c != 0 {
		t.Fatalf("run exit %d:\n%s", c, r2.stderr.String())
	}
	if stopped["running"] != false {
		t.Fatalf("stopped status says running: %v", stopped["running"])
	}
	want, got := map[string]bool{}, map[string]bool{}
	keyPaths(running, "", want)
	keyPaths(stopped, "", got)
	delete(want, ".pid")
	for k := range want {
		if strings.HasPrefix(k, ".jobs[]") {
			delete(want, k)
		}
	}
	if !reflect.DeepEqual(want, got) {
		var diff []string
		for k := range want {
			if !got[k] {
				diff = append(diff, "only running: "+k)
			}
		}
		for k := range got {
			if !want[k] {
				diff = append(diff, "only stopped: "+k)
			}
		}
		sort.Strings(diff)
		t.Fatalf("status shapes differ:\n%s", strings.Join(diff, "\n"))
	}
}

// TestStandaloneResyncStoppedBySignalExitsZero stops a throttled
// standalone resync the way SIGTERM does (main cancels the context): it
// ends cleanly after a chunk with exit 0 and says how to resume.
func TestStandaloneResyncStoppedBySignalExitsZero(t *testing.T) {
	loadShop(t, "sigshop", 5)
	cfg, _, _ := remoteConfig(t, "sigshop", 779102)
	t.Setenv("FEEDCDC_RESYNC_ROWS_PER_SECOND", "20")
	t.Setenv("FEEDCDC_RESYNC_BATCH_SIZE", "10")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errb := &syncBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- Main(ctx, []string{"resync", "--feed", "products", "-c", cfg}, strings.NewReader(""), io.Discard, errb)
	}()
	waitFor(t, "the first progress line", time.Minute, func() bool { return strings.Contains(errb.String(), "progress ") })
	cancel()
	select {
	case code := <-done:
		if code != 0 || !strings.Contains(errb.String(), "--continue-resync") {
			t.Fatalf("resync stopped by a signal: exit %d\n%s", code, errb.String())
		}
	case <-time.After(time.Minute):
		t.Fatalf("resync did not stop:\n%s", errb.String())
	}
}

package connector

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/feedcdc/feedcdc/dashboard"
	"github.com/feedcdc/feedcdc/test/catalog"
)

// TestBusyFeedNamesItsHolder: a job the feed cannot take now is answered
// 409 with a body that says what holds the feed (the resync job and its
// id, or the retry's holder) and since when, so that the CLI, which prints
// the body, can tell the operator what to wait for.
func TestBusyFeedNamesItsHolder(t *testing.T) {
	ctx := context.Background()
	db := srv.NewDatabase(t, "busy")
	admin := srv.Admin(t, db)
	if err := catalog.CreateSchema(ctx, admin); err != nil {
		t.Fatal(err)
	}
	if _, err := catalog.Load(ctx, admin, catalog.Tiny(), 7); err != nil {
		t.Fatal(err)
	}
	cc := connectorYAML{Name: "busy", Database: db,
		Feeds:    []string{"productAttributes: {enabled: false}", "variants: {enabled: false}", "productOverrides: {enabled: false}"},
		Sections: "resync: {max_replica_lag: 0s, rows_per_second: 10, on_first_start: none}\nsinks:\n  files:\n    type: file\n    file: {dir: " + t.TempDir() + "}\n"}
	c := openConnector(t, cc.load(t), OpenOptions{})
	runCtx, cancelRun := context.WithCancel(ctx)
	defer cancelRun()
	_, stop := startRun(t, c, RunOptions{NoSchedule: true})
	defer stop()
	b := &Backend{C: c, Ctx: runCtx}
	hs := httptest.NewServer(dashboard.New(b, dashboard.Options{Token: "busy-token"}))
	defer hs.Close()
	post := func(body string) (int, string) {
		req, _ := http.NewRequest("POST", hs.URL+"/api/jobs", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer busy-token")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	// A slow full sync (one entity per chunk, throttled) holds the feed.
	code, body := post(`{"kind":"resync","feed":"products","batch_size":1}`)
	if code != http.StatusAccepted {
		t.Fatalf("first resync: %d %s", code, body)
	}
	var j dashboard.Job
	if err := json.Unmarshal([]byte(body), &j); err != nil {
		t.Fatal(err)
	}
	code, body = post(`{"kind":"resync","feed":"products","ids":["x"]}`)
	var e struct{ Error string }
	if code != http.StatusConflict || json.Unmarshal([]byte(body), &e) != nil ||
		!strings.Contains(e.Error, "feed products is busy") || !strings.Contains(e.Error, "resync job "+j.ID) ||
		!strings.Contains(e.Error, "pid "+strconv.Itoa(os.Getpid())) || !strings.Contains(e.Error, " since "+j.StartedAt.UTC().Format("2006-01-02T15")) {
		t.Fatalf("second resync while job %s runs: %d %s; want 409 naming job %s, its pid and since when", j.ID, code, body, j.ID)
	}

	// A retry held by someone else names that holder.
	release, err := c.Pipeline.ClaimRetry("products", "the retry schedule")
	if err != nil {
		t.Fatal(err)
	}
	code, body = post(`{"kind":"retry","feed":"products"}`)
	release()
	if code != http.StatusConflict || !strings.Contains(body, "the retry schedule, running since ") {
		t.Fatalf("retry while the schedule's retry runs: %d %s; want 409 naming the retry schedule", code, body)
	}
	// The refused retry left no job behind.
	st, err := b.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, jb := range st.(Status).Jobs {
		if jb.Kind == dashboard.JobRetry {
			t.Fatalf("a refused retry left a job: %+v", jb)
		}
	}
}

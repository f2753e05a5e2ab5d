package connector

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/feedcdc/feedcdc/dashboard"
	"github.com/feedcdc/feedcdc/sink"
	"github.com/feedcdc/feedcdc/state"
	"github.com/feedcdc/feedcdc/test/catalog"
)

// downService is a real HTTP feed service that answers 503 while down is
// set and accepts everything otherwise.
type downService struct {
	down     atomic.Bool
	requests atomic.Int64
	failed   atomic.Int64
}

func (s *downService) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	if s.down.Load() {
		s.failed.Add(1)
		http.Error(w, `{"error":"unavailable"}`, http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"invalidFeedItems":[]}`))
}

// fileLines counts the lines per item id in a file sink's <feed>.jsonl
// (envelope on).
func fileLines(t *testing.T, path string) map[string]int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]int{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var e struct{ ID string }
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out[e.ID]++
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// Issue 13: a feed routed to two sinks, one failing (HTTP 503) and one
// accepting (a file). The items fail as a whole (status 2), and the retry
// job must send them only to the sink that has not accepted them: the file
// holds each item exactly once.
func TestRetryJobSendsOnlyToSinksThatFailed(t *testing.T) {
	ctx := context.Background()
	db := srv.NewDatabase(t, "retry2")
	admin := srv.Admin(t, db)
	if err := catalog.CreateSchema(ctx, admin); err != nil {
		t.Fatal(err)
	}
	if _, err := catalog.Load(ctx, admin, catalog.Tiny(), 5); err != nil {
		t.Fatal(err)
	}
	svc := &downService{}
	svc.down.Store(true)
	hs := httptest.NewServer(svc)
	defer hs.Close()
	out := t.TempDir()
	cc := connectorYAML{Name: "retry2", Database: db,
		Feeds: []string{"productAttributes: {enabled: false}", "variants: {enabled: false}", "productOverrides: {enabled: false}",
			"products: {retry_schedule: 1h}"},
		Sections: unthrottledResync + fmt.Sprintf("sinks:\n  service:\n    type: http\n    http:\n      base_url: %s\n      timeout: 5s\n"+
			"  files:\n    type: file\n    file:\n      dir: %s\n      envelope: true\n", hs.URL, out)}
	c := openConnector(t, cc.load(t), OpenOptions{})
	c.Pipeline.o.SendBackoff = sink.Backoff{Initial: 5 * time.Millisecond, Max: 20 * time.Millisecond, MaxAttempts: 2}
	_, stop := startRun(t, c, RunOptions{NoSchedule: true})
	waitFullSyncs(t, c)
	counts, err := c.Store.Counts(ctx, "products")
	if err != nil {
		t.Fatal(err)
	}
	if counts.Failed == 0 || counts.Failed != counts.Total {
		t.Fatalf("with the service down every products item should be failed: %+v", counts)
	}
	// Failed twice more: the file sink must not get them again either.
	for round := 0; round < 2; round++ {
		if _, err := c.Pipeline.RetryFailed(ctx, "products", time.Now().Add(365*24*time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	svc.down.Store(false)
	st, err := c.Pipeline.RetryFailed(ctx, "products", time.Now().Add(365*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	stop()
	counts, _ = c.Store.Counts(ctx, "products")
	if counts.Failed != 0 || counts.Sent != counts.Total {
		t.Fatalf("after the service recovered and the retry job ran: %+v (retry: %+v)", counts, st)
	}
	lines := fileLines(t, filepath.Join(out, "products.jsonl"))
	dups := 0
	for id, n := range lines {
		if n != 1 {
			dups++
			if dups <= 3 {
				t.Errorf("item %s written %d times to the file sink that accepted it the first time", id, n)
			}
		}
	}
	if dups > 0 {
		t.Errorf("%d of %d items delivered more than once to the accepting sink", dups, len(lines))
	}
	if int64(len(lines)) != counts.Total {
		t.Errorf("the file sink holds %d items, the state %d", len(lines), counts.Total)
	}
	it, _, _ := c.Store.ListItems(ctx, state.ListQuery{Feed: "products", Limit: 1})
	t.Logf("%d items, %d service requests (%d failed); a sent item: %+v", len(lines), svc.requests.Load(), svc.failed.Load(), it[0].Status)
}

// Issue 13: during a sink outage a 1 s retry schedule must never run two
// retries of one feed at once (robfig/cron starts a job on every tick even
// while its previous run is still running), and a dashboard POST while a
// retry runs is answered "already running" instead of starting another.
// The outage lasts FEEDCDC_OUTAGE_SECONDS (default 8; the figure
// is 60): every retry run during it takes longer than the 1 s tick.
func TestScheduledRetriesNeverOverlapDuringOutage(t *testing.T) {
	outage := 8 * time.Second
	if v := os.Getenv("FEEDCDC_OUTAGE_SECONDS"); v != "" {
		n, err := time.ParseDuration(v + "s")
		if err != nil {
			t.Fatalf("FEEDCDC_OUTAGE_SECONDS=%q: %v", v, err)
		}
		outage = n
	}
	ctx := context.Background()
	db := srv.NewDatabase(t, "overlap")
	admin := srv.Admin(t, db)
	if err := catalog.CreateSchema(ctx, admin); err != nil {
		t.Fatal(err)
	}
	if _, err := catalog.Load(ctx, admin, catalog.Tiny(), 6); err != nil {
		t.Fatal(err)
	}
	svc := &downService{}
	svc.down.Store(true)
	hs := httptest.NewServer(svc)
	defer hs.Close()
	cc := connectorYAML{Name: "overlap", Database: db,
		Feeds: []string{"productAttributes: {enabled: false}", "variants: {enabled: false}",
			"products: {retry_schedule: 1s, backoff_base: 1s, backoff_max: 1s}",
			"productOverrides: {retry_schedule: 1s, backoff_base: 1s, backoff_max: 1s}"},
		Sections: unthrottledResync + fmt.Sprintf("sinks:\n  service:\n    type: http\n    http:\n      base_url: %s\n      timeout: 5s\n", hs.URL)}
	c := openConnector(t, cc.load(t), OpenOptions{})
	// Each retry run during the outage takes about 3 s (5 attempts, 200 ms
	// doubling): three ticks of the 1 s schedule.
	c.Pipeline.o.SendBackoff = sink.Backoff{Initial: 200 * time.Millisecond, Max: 2 * time.Second, MaxAttempts: 5}
	var mu sync.Mutex
	running, peak, runs := map[string]int{}, map[string]int{}, map[string]int{}
	c.Pipeline.retryHook = func(feed string, d int) {
		mu.Lock()
		defer mu.Unlock()
		running[feed] += d
		if d > 0 {
			runs[feed]++
		}
		peak[feed] = max(peak[feed], running[feed])
	}
	runCtx, cancelRun := context.WithCancel(ctx)
	defer cancelRun()
	_, stop := startRun(t, c, RunOptions{})
	waitFullSyncs(t, c)
	b := &Backend{C: c, Ctx: runCtx}
	start := time.Now()
	var accepted, busy int
	for time.Since(start) < outage {
		for i := 0; i < 2; i++ { // two POSTs back to back
			switch err := b.RetryFailed(ctx, "products"); {
			case err == nil:
				accepted++
			case errors.Is(err, dashboard.ErrBusy):
				busy++
			default:
				t.Fatalf("dashboard retry: %v", err)
			}
		}
		time.Sleep(700 * time.Millisecond)
	}
	svc.down.Store(false)
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(200 * time.Millisecond) {
		p, _ := c.Store.Counts(ctx, "products")
		o, _ := c.Store.Counts(ctx, "productOverrides")
		if p.Failed == 0 && o.Failed == 0 && p.Sent > 0 && o.Sent > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("failed items not retried after the outage: products %+v, productOverrides %+v", p, o)
		}
	}
	stop()
	mu.Lock()
	defer mu.Unlock()
	t.Logf("outage %s: retry runs %v, peak concurrent %v; dashboard POSTs accepted %d, answered busy %d; service requests %d (%d failed)",
		outage, runs, peak, accepted, busy, svc.requests.Load(), svc.failed.Load())
	for _, f := range []string{"products", "productOverrides"} {
		if runs[f] < 2 {
			t.Errorf("%s: only %d retry runs: the schedule did not run during the outage, the test proves nothing", f, runs[f])
		}
		if peak[f] > 1 {
			t.Errorf("%s: %d retry runs at once; want at most one per feed", f, peak[f])
		}
	}
	if busy == 0 {
		t.Errorf("no dashboard POST was answered busy while a retry ran (accepted %d)", accepted)
	}
}

// Found by the chaos suite (scenario kill9): a process killed after the
// write-ahead recorded a deleted payload as in flight (status 0, deleted)
// and before the sink's answer was committed left the item pending; when
// the next start was a first start again (or resumed a full sync), the
// full sync's pass over vanished entities skipped it because it was
// already marked deleted, so the service kept the live version for ever.
// A full sync must send such an item's deleted payload.
func TestFullSyncSendsPendingDeletedPayload(t *testing.T) {
	ctx := context.Background()
	db := srv.NewDatabase(t, "pendel")
	admin := srv.Admin(t, db)
	if err := catalog.CreateSchema(ctx, admin); err != nil {
		t.Fatal(err)
	}
	if _, err := catalog.Load(ctx, admin, catalog.Tiny(), 7); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	cc := connectorYAML{Name: "pendel", Database: db,
		Feeds:    []string{"productAttributes: {enabled: false}", "variants: {enabled: false}", "productOverrides: {enabled: false}"},
		Sections: unthrottledResync + fmt.Sprintf("sinks:\n  files:\n    type: file\n    file:\n      dir: %s\n      envelope: true\n", out)}
	c := openConnector(t, cc.load(t), OpenOptions{})
	stopExp := c.RunExporter(ctx)
	defer stopExp()
	// The state a kill leaves: a vanished entity's item recorded as in
	// flight with its deleted payload.
	gone := state.Item{Feed: "products", ID: "0123456789abcdef0123456789abcdef01234567", EntityKey: "999999",
		Identity: map[string]string{"sku": "gone-sku", "storeViewCode": "default"}, Hash: "feedfacefeedfacefeedfacefeedfacefeedface",
		Status: state.StatusPending, Deleted: true, ModifiedAt: time.Now()}
	if err := c.Store.Update(ctx, func(tx *state.Tx) error { return tx.PutItems([]state.Item{gone}) }); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Resync(ctx, ResyncOptions{Feed: "products"}); err != nil {
		t.Fatal(err)
	}
	st, ok, err := c.Store.Item(ctx, "products", gone.ID)
	if err != nil || !ok {
		t.Fatalf("item: %v %v", ok, err)
	}
	if st.Status != state.StatusSent || !st.Deleted {
		t.Fatalf("after a full sync the pending deleted item is %+v; want sent (200) and deleted", st)
	}
	if n := fileLines(t, filepath.Join(out, "products.jsonl"))[gone.ID]; n != 1 {
		t.Fatalf("the deleted payload reached the file sink %d times, want 1", n)
	}
}

package dashboard_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/feedcdc/feedcdc/dashboard"
	"github.com/feedcdc/feedcdc/dashboard/dashboardtest"
)

// TestDashboardInBrowser loads the dashboard in Debian's headless Chromium,
// checks that what the page shows equals the backend's numbers, searches a
// SKU, opens its JSON, schedules a resync for it with the token (and
// checks the backend received it and the page shows the change), and saves
// screenshots to test-artifacts/.
func TestDashboardInBrowser(t *testing.T) {
	b := newMemBackend()
	// A long error code without spaces, as feed services return them.
	var longErrID string
	for i := range b.items {
		if b.items[i].row.Status == 400 {
			b.items[i].row.Error = longErrorText
			longErrID = b.items[i].row.FeedID
			break
		}
	}
	// A sink named after its type, and one with its own name, down.
	b.health.Sinks = []dashboard.SinkStatus{
		{Name: "kafka", Kind: "kafka", Target: "127.0.0.1:9092", Connected: true},
		{Name: "audit", Kind: "http", Target: "https://feeds.example.com/api", Error: "HTTP 503"},
	}
	// High availability on: this is the active instance.
	b.ha = &dashboard.HAStatus{Instance: "feedcdc-0", Role: "active", Epoch: 42, ChangelogLag: 0,
		LastTakeover: b.now.Add(-90 * time.Second), TakeoverMillis: 4610}
	jb := &jobMemBackend{memBackend: b}
	srv := newServer(t, jb, dashboard.Options{Token: testToken, RefreshInterval: time.Second})
	br := dashboardtest.NewBrowser(t)
	br.Open(srv.URL + "/")

	// The HA block shows the role, instance, epoch, lag and last takeover.
	if got := br.Eval(`String(document.getElementById("ha-status").offsetParent !== null)`); got != "true" {
		t.Errorf("the HA block is not visible with HA on")
	}
	for attr, want := range map[string]string{"data-role": "active", "data-instance": "feedcdc-0", "data-epoch": "42",
		"data-changelog-lag": "0", "data-takeover-ms": "4610", "data-last-takeover": b.ha.LastTakeover.Format(time.RFC3339)} {
		if got := br.Attr("#ha-status", attr); got != want {
			t.Errorf("HA block %s shown %q, want %q", attr, got, want)
		}
	}
	if got := br.Text("#ha-status"); !strings.HasPrefix(got, "HA active · feedcdc-0 · epoch 42 · changelog lag 0 records · last takeover ") ||
		!strings.HasSuffix(got, ", took 4.6 s") {
		t.Errorf("HA block shows %q", got)
	}

	// Counts shown equal the backend's.
	if got := strings.Join(br.Feeds(), ","); got != "products,productAttributes,variants" {
		t.Fatalf("feeds shown: %s", got)
	}
	for _, f := range []string{"products", "productAttributes", "variants"} {
		want := b.counts(f)
		for field, n := range map[string]int64{
			"source_records": want.SourceRecords, "sent": want.Sent, "failed": want.Failed,
			"rejected": want.Rejected, "pending": want.Pending,
		} {
			if got := br.FeedValue(f, field); got != n {
				t.Errorf("%s %s shown %d, backend has %d", f, field, got, n)
			}
		}
	}
	if got := br.Attr(dashboardtest.FeedCellSelector("variants", "mode"), "data-value"); got != "legacy" {
		t.Errorf("variants mode shown %q", got)
	}
	if done, total, running := br.ResyncProgress("products"); done != 30 || total != 120 || !running {
		t.Errorf("products resync shown %d/%d running=%v", done, total, running)
	}
	// The last verify: drift found and repaired, or "never".
	lvCell := dashboardtest.FeedCellSelector("productAttributes", "last_verify")
	for attr, want := range map[string]string{"data-checked": "40", "data-drift": "3", "data-repaired": "2", "data-error": ""} {
		if got := br.Attr(lvCell, attr); got != want {
			t.Errorf("productAttributes last verify %s shown %q, want %q", attr, got, want)
		}
	}
	if got := br.Text(lvCell); !strings.Contains(got, "ago") || !strings.Contains(got, "40 checked, drift 3, repaired 2") {
		t.Errorf("productAttributes last verify shows %q", got)
	}
	if got := br.Text(dashboardtest.FeedCellSelector("variants", "last_verify")); got != "never" {
		t.Errorf("variants last verify shows %q, want never", got)
	}
	if got := br.Attr("#source-status", "data-connected"); got != "true" {
		t.Errorf("source connected shown %q", got)
	}
	if got := br.Attr("#health-retention", "data-status"); got != "PASS" {
		t.Errorf("retention status shown %q", got)
	}
	if got := br.Attr(`#checks-body tr[data-check="binlog_row_metadata"]`, "data-status"); got != "WARN" {
		t.Errorf("check row shown %q", got)
	}
	failedShown := br.Attr("#items-total", "data-value")
	wantFailed := 0
	for _, f := range []string{"products", "productAttributes", "variants"} {
		c := b.counts(f)
		wantFailed += int(c.Failed + c.Rejected)
	}
	if failedShown != jsonInt(wantFailed) {
		t.Errorf("failed items total shown %s, want %d", failedShown, wantFailed)
	}
	br.Screenshot("overview")

	// "Successfully sent" can exceed "Source records" (a deleted item is
	// sent, with deleted: true, but has no source record): the page says so.
	if sent, src := br.FeedValue("productAttributes", "sent"), br.FeedValue("productAttributes", "source_records"); sent <= src {
		t.Fatalf("fixture: productAttributes sent %d should exceed source records %d (one deleted item)", sent, src)
	}
	if got := br.Text("#feeds-help"); !strings.Contains(got, "deleted items too") || !strings.Contains(got, "still exist in the source") {
		t.Errorf("feeds help line: %q", got)
	}
	if got := br.Attr("#feeds-table thead th:nth-child(4)", "title"); !strings.Contains(got, "deleted ones included") {
		t.Errorf("Successfully sent header tooltip: %q", got)
	}

	// Sinks are labelled once: type, name when it differs, target.
	if got := br.Text(`#health-sinks [data-sink="kafka"]`); got != "kafka → 127.0.0.1:9092 · connected" {
		t.Errorf("kafka sink label %q", got)
	}
	if got := br.Text(`#health-sinks [data-sink="audit"]`); got != "http audit → https://feeds.example.com/api · down: HTTP 503" {
		t.Errorf("http sink label %q", got)
	}

	// A long error code wraps at its separators, never mid-word, in a
	// column wide enough to read.
	errCell := fmt.Sprintf(`#items-body tr[data-item-id=%q] td[data-field="error"]`, longErrID)
	if got := br.Text(errCell); got != longErrorText {
		t.Fatalf("error cell shows %q", got)
	}
	if broken := br.MidWordBreaks("#items-body td[data-field=error]"); broken != nil {
		t.Errorf("error texts broken mid-word: %q", broken)
	}
	if w := br.ElementWidth(errCell); w < 200 {
		t.Errorf("error column is %.0f px wide; too narrow to read", w)
	}

	// With a full page of items, the first row's detail opens in a side
	// panel in view (not below the table), and Escape closes it.
	br.SelectStatus("all")
	if n := len(br.ItemIDs()); n != 50 {
		t.Fatalf("status all shows %d rows, want a full page of 50", n)
	}
	firstID := br.ItemIDs()[0]
	if text := br.OpenItem(firstID); !strings.Contains(text, `"sku"`) {
		t.Fatalf("first item JSON: %q", text)
	}
	if !br.InViewport("#item-detail") {
		t.Errorf("the item panel is not in view after clicking the first row")
	}
	br.ScreenshotWindow("item-panel")
	br.Do("pressing Escape", chromedp.KeyEvent(kb.Escape))
	br.WaitJS("the panel to close", `document.getElementById("item-detail").hidden`)
	br.SelectStatus("failed")
	br.OpenItem(longErrID)
	if !br.InViewport("#item-detail") {
		t.Errorf("the item panel is not in view")
	}
	if got := br.Text(`#item-detail-meta dd[data-field="error"]`); got != longErrorText {
		t.Errorf("panel error %q", got)
	}
	if broken := br.MidWordBreaks("#item-detail-meta"); broken != nil {
		t.Errorf("panel texts broken mid-word: %q", broken)
	}
	br.Do("closing the panel", chromedp.Click(chromedp.CSS("#item-close")))
	br.WaitJS("the panel to close", `document.getElementById("item-detail").hidden`)

	// The page refreshes by itself: a change in the backend (an item of
	// variants delivered) shows up without any interaction.
	sentBefore := br.FeedValue("variants", "sent")
	b.mu.Lock()
	for i := range b.items {
		if b.items[i].row.Feed == "variants" && b.items[i].row.Status == 2 {
			b.items[i].row.Status = 200
			break
		}
	}
	b.mu.Unlock()
	br.WaitJS("the auto-refresh to show the delivered item", fmt.Sprintf(
		`document.querySelector(%q).dataset.value === "%d"`, dashboardtest.FeedCellSelector("variants", "sent"), sentBefore+1))

	// A backend failure is shown in a banner, and cleared when it recovers.
	b.mu.Lock()
	b.failWith = errors.New("state store is closed")
	b.mu.Unlock()
	br.WaitJS("the error banner", `!document.getElementById("error-banner").hidden`)
	if got := br.Text("#error-banner"); !strings.Contains(got, "overview: state store is closed") {
		t.Errorf("error banner: %q", got)
	}
	b.mu.Lock()
	b.failWith = nil
	b.mu.Unlock()
	br.WaitJS("the error banner to clear", `document.getElementById("error-banner").hidden`)

	// SQL reads on the source failing: the source pill says so, with the
	// wait's details, and returns to normal when they succeed again.
	b.mu.Lock()
	b.sourceUnavailable = "source unavailable, retrying (since 2026-12-06T06:34:42Z, attempts 7, last error: dial tcp 127.0.0.1:3307: connect: connection refused)"
	b.mu.Unlock()
	br.WaitJS("the source pill to say the source is unavailable", `document.getElementById("source-status").dataset.unavailable === "true"`)
	if got := br.Text("#source-status"); !strings.Contains(got, "attempts 7, last error: dial tcp") {
		t.Errorf("source pill while unavailable: %q", got)
	}
	b.mu.Lock()
	b.sourceUnavailable = ""
	b.mu.Unlock()
	br.WaitJS("the source pill to clear", `document.getElementById("source-status").dataset.unavailable === undefined`)

	// Search by SKU, then open an item's JSON.
	br.SelectStatus("all")
	ids := br.SearchSKU("mh07-xs")
	if len(ids) != 3 {
		t.Fatalf("search mh07-xs shows %d rows, want 3 (2 store views + 1 variant)", len(ids))
	}
	var productID string
	for _, it := range b.items {
		if it.row.Feed == "products" && it.row.Identifiers["sku"] == "MH07-XS-Blue" && it.row.Identifiers["storeViewCode"] == "french" {
			productID = it.row.FeedID
		}
	}
	text := br.OpenItem(productID)
	var item map[string]any
	if err := json.Unmarshal([]byte(text), &item); err != nil || item["sku"] != "MH07-XS-Blue" || item["storeViewCode"] != "french" {
		t.Fatalf("item JSON shown: %q (%v)", text, err)
	}
	br.Do("closing the panel", chromedp.Click(chromedp.CSS("#item-close")))
	br.WaitJS("the panel to close", `document.getElementById("item-detail").hidden`)

	// Without a token the action is refused and nothing reaches the backend.
	state, msg := br.ScheduleResync("products", "MH07-XS-Blue")
	if state != "error" || !strings.Contains(msg, "token") {
		t.Fatalf("resync without token: %s %q", state, msg)
	}
	if got := br.SetToken("not-the-token"); got != "rejected" {
		t.Fatalf("wrong token state %q", got)
	}
	state, msg = br.ScheduleResync("products", "MH07-XS-Blue")
	if state != "error" || !strings.Contains(msg, "token") {
		t.Fatalf("resync with wrong token: %s %q", state, msg)
	}
	if rs, _ := b.calls(); len(rs) != 0 {
		t.Fatalf("backend received resyncs without a valid token: %+v", rs)
	}

	// With the token: the backend receives exactly this SKU.
	if got := br.SetToken(testToken); got != "ok" {
		t.Fatalf("token state %q", got)
	}
	// The resync runs as a job, like the CLI's: the page shows its
	// progress until it ends, then its summary.
	pendingBefore := br.FeedValue("products", "pending")
	progress, state, msg := br.ScheduleResyncJob("products", "MH07-XS-Blue")
	if state != "ok" || msg != "resync job 1 of products done: 3/3 entities, sent 3, unchanged 0, failed 0, rejected 0" {
		t.Fatalf("resync: %s %q (progress shown %q)", state, msg, progress)
	}
	if len(progress) == 0 || !regexp.MustCompile(`^resync job 1 of products: [0-2]/3 entities$`).MatchString(progress[len(progress)-1]) || jb.pollCount() < 3 {
		t.Fatalf("resync job progress shown %q after %d polls; want done/total while it ran", progress, jb.pollCount())
	}
	if got := br.Attr("#action-result", "data-job-state"); got != "done" {
		t.Fatalf("action result data-job-state %q", got)
	}
	rs, _ := b.calls()
	if len(rs) != 1 || rs[0].Feed != "products" || len(rs[0].IDs) != 1 || rs[0].IDs[0] != "MH07-XS-Blue" {
		t.Fatalf("backend resyncs = %+v", rs)
	}
	// The page refreshes by itself and shows the scheduled items pending.
	wantPending := b.counts("products").Pending
	if wantPending <= pendingBefore {
		t.Fatalf("backend pending %d did not grow from %d", wantPending, pendingBefore)
	}
	br.WaitJS("pending to update", `document.querySelector('#feeds-body tr[data-feed="products"] td[data-field="pending"]').dataset.value === "`+jsonInt(int(wantPending))+`"`)

	// A raw snapshot: the form starts it, the list shows its progress, its
	// pause button pauses it.
	state, msg = br.StartRawSnapshot("shop.orders", "id > 5")
	if state != "ok" || msg != "raw snapshot of shop.orders started" {
		t.Fatalf("raw snapshot: %s %q", state, msg)
	}
	if s, _, ok := b.snapshot("shop.orders"); !ok || s.Where != "id > 5" {
		t.Fatalf("backend raw snapshot = %+v, %v", s, ok)
	}
	state, msg = br.RawSnapshotAction("shop.orders", "pause")
	if state != "ok" {
		t.Fatalf("raw snapshot pause: %s %q", state, msg)
	}
	if _, acts, _ := b.snapshot("shop.orders"); len(acts) != 1 || acts[0] != "pause" {
		t.Fatalf("backend raw snapshot actions = %v", acts)
	}
	br.WaitJS("the paused snapshot", `document.querySelector('#raw-snapshots li[data-table="shop.orders"]').dataset.state === "paused"`)
	if got := br.Text(`#raw-snapshots li[data-table="shop.orders"]`); !strings.Contains(got, "read 40 of about 100, sent 39, left out for newer changes 1") {
		t.Fatalf("raw snapshot shown as %q", got)
	}

	// Retry failed now, for the legacy feed: a job like the CLI's `retry
	// --all`, whose progress and outcome the page shows.
	polls := jb.pollCount()
	state, msg = br.RetryFailed("variants")
	if want := "retry job 2 of variants done: 3 entities rebuilt, sent 2, still failing 1, rejected 0, requiring attention 0; the feed has 1 failed items now"; state != "ok" || msg != want {
		t.Fatalf("retry: %s %q, want ok %q", state, msg, want)
	}
	if got := br.Attr("#action-result", "data-job-state"); got != "done" || jb.pollCount() < polls+3 {
		t.Fatalf("retry job: data-job-state %q after %d polls; want done, followed to its end", got, jb.pollCount()-polls)
	}
	if _, rt := b.calls(); len(rt) != 1 || rt[0] != "variants" {
		t.Fatalf("backend retries = %v", rt)
	}
	if reqs := jb.jobRequests(); len(reqs) != 2 || reqs[1].Kind != dashboard.JobRetry || reqs[1].Feed != "variants" || !reqs[1].All {
		t.Fatalf("jobs requested = %+v, want the resync then a retry --all of variants", reqs)
	}
	path := br.Screenshot("after-resync")
	if st, err := os.Stat(path); err != nil || st.Size() < 10_000 {
		t.Fatalf("screenshot %s: %v (%d bytes)", path, err, st.Size())
	}
}

// longErrorText is a feed service error with a long code without spaces.
const longErrorText = "ITEM_VALIDATION_FAILED.ATTRIBUTE_VALUE_EXCEEDS_MAXIMUM_LENGTH_FOR_STORE_VIEW_SCOPE: attribute description_long_html_content_for_french_store_view has 70000 characters; the limit is 65535"

// TestDashboardEmptyStates: with no feeds, items, checks or sinks, every
// table says so in words instead of showing nothing.
func TestDashboardEmptyStates(t *testing.T) {
	b := &memBackend{now: time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC), busy: map[string]bool{}}
	jb := &jobMemBackend{memBackend: b}
	srv := newServer(t, jb, dashboard.Options{Token: testToken, RefreshInterval: time.Second})
	br := dashboardtest.NewBrowser(t)
	br.Open(srv.URL + "/")
	// High availability off: no HA block.
	if got := br.Eval(`String(document.getElementById("ha-status").offsetParent === null)`); got != "true" {
		t.Errorf("the HA block is visible with HA off: %q", br.Text("#ha-status"))
	}
	for sel, want := range map[string]string{
		`#feeds-body tr[data-empty="feeds"]`:   "No feeds are enabled: enable one under feeds:",
		`#items-body tr[data-empty="items"]`:   "No failed items. Nothing needs attention.",
		`#checks-body tr[data-empty="checks"]`: "No check results yet",
		`#health-sinks [data-empty="sinks"]`:   "no sinks configured",
	} {
		if got := br.Text(sel); !strings.Contains(got, want) {
			t.Errorf("%s shows %q, want %q", sel, got, want)
		}
	}
	br.SelectStatus("pending")
	if got := br.Text(`#items-body tr[data-empty="items"]`); got != "No items awaiting submission." {
		t.Errorf("empty pending items: %q", got)
	}
	br.SearchSKU("MH99")
	if got := br.Text(`#items-body tr[data-empty="items"]`); !strings.HasPrefix(got, "No items awaiting submission matching SKU “MH99”.") {
		t.Errorf("empty search: %q", got)
	}
	br.Screenshot("empty")
}

// TestDashboardItemsTokenRule: on a non-loopback listen address the item
// endpoints (full item payloads) answer 401 without the token; the page
// says the token is needed instead of failing, and shows the items once
// the token is given. On loopback they stay open.
func TestDashboardItemsTokenRule(t *testing.T) {
	b := newMemBackend()
	open := newServer(t, b, dashboard.Options{Token: testToken, Listen: "127.0.0.1:8484"})
	locked := newServer(t, b, dashboard.Options{Token: testToken, Listen: "0.0.0.0:8484", RefreshInterval: time.Second})
	id := b.items[0].row.FeedID
	for _, path := range []string{"/api/items", "/api/items?status=all&sku=MH01", "/api/feeds/products/items/" + id} {
		if r := do(t, "GET", locked.URL+path, "", nil); r.code != 401 || !strings.Contains(r.errorText(t), "needs the dashboard token") {
			t.Errorf("non-loopback GET %s without token: %d %.200s", path, r.code, r.body)
		}
		if r := do(t, "GET", locked.URL+path, "wrong", nil); r.code != 401 {
			t.Errorf("non-loopback GET %s with a wrong token: %d", path, r.code)
		}
		if r := do(t, "GET", locked.URL+path, testToken, nil); r.code != 200 {
			t.Errorf("non-loopback GET %s with the token: %d %s", path, r.code, r.body)
		}
		if r := do(t, "GET", open.URL+path, "", nil); r.code != 200 {
			t.Errorf("loopback GET %s without token: %d %s", path, r.code, r.body)
		}
	}
	// The overview and health stay readable: they hold counts, no payloads.
	if r := do(t, "GET", locked.URL+"/api/overview", "", nil); r.code != 200 {
		t.Errorf("non-loopback overview: %d", r.code)
	}

	br := dashboardtest.NewBrowser(t)
	br.Open(locked.URL + "/")
	if got := br.Text(`#items-body tr[data-empty="items"]`); !strings.Contains(got, "Feed items need the dashboard token on this address") {
		t.Errorf("items table without token: %q", got)
	}
	if br.Eval(`String(document.getElementById("error-banner").hidden)`) != "true" {
		t.Errorf("error banner shown for a missing token: %q", br.Text("#error-banner"))
	}
	if got := br.SetToken(testToken); got != "ok" {
		t.Fatalf("token state %q", got)
	}
	br.WaitJS("the items to load with the token", `document.querySelectorAll("#items-body tr[data-item-id]").length > 0`)
	ids := br.ItemIDs()
	if text := br.OpenItem(ids[0]); !strings.Contains(text, "sku") {
		t.Errorf("item JSON with the token: %q", text)
	}
}

func jsonInt(n int) string {
	raw, _ := json.Marshal(n)
	return string(raw)
}

package dashboard_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

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
	srv := newServer(t, b, dashboard.Options{Token: testToken, RefreshInterval: time.Second})
	br := dashboardtest.NewBrowser(t)
	br.Open(srv.URL + "/")

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
	pendingBefore := br.FeedValue("products", "pending")
	state, msg = br.ScheduleResync("products", "MH07-XS-Blue")
	if state != "ok" || msg != "resync of 1 item(s) of products scheduled" {
		t.Fatalf("resync: %s %q", state, msg)
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

	// Retry failed now, for the legacy feed.
	state, msg = br.RetryFailed("variants")
	if state != "ok" || !strings.Contains(msg, "retry of failed items of variants started") {
		t.Fatalf("retry: %s %q", state, msg)
	}
	if _, rt := b.calls(); len(rt) != 1 || rt[0] != "variants" {
		t.Fatalf("backend retries = %v", rt)
	}
	path := br.Screenshot("after-resync")
	if st, err := os.Stat(path); err != nil || st.Size() < 10_000 {
		t.Fatalf("screenshot %s: %v (%d bytes)", path, err, st.Size())
	}
}

func jsonInt(n int) string {
	raw, _ := json.Marshal(n)
	return string(raw)
}

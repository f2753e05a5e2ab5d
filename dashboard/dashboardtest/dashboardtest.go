// Package dashboardtest drives the feedcdc dashboard in a real headless
// Chromium (Debian's chromium package) through chromedp, for tests: open
// the page, read the numbers it shows, search, click, schedule a resync
// with the token, and save screenshots as test artifacts.
//
// Invariants:
//   - Every browser runs with a new, empty user-data directory and with
//     background networking, component updates, sync and QUIC disabled, so
//     it contacts nothing but the test's loopback server.
//   - The browser process is started by the test and stopped by t.Cleanup;
//     nothing else is ever killed.
//   - Selectors used here are the dashboard's stable ids and data-*
//     attributes (see docs/operations.md), so tests read what a user sees.
package dashboardtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// ChromiumEnv names the environment variable that overrides the browser path.
const ChromiumEnv = "FEEDCDC_CHROMIUM"

// ChromiumPath finds the browser: $FEEDCDC_CHROMIUM, then chromium,
// chromium-browser, google-chrome on PATH and in /usr/bin.
func ChromiumPath() (string, error) {
	if p := os.Getenv(ChromiumEnv); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%s=%s: %w", ChromiumEnv, p, err)
		}
		return p, nil
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "/usr/bin/chromium"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", errors.New("no Chromium found: install Debian's chromium (apt-get install -y chromium, done by .ci/deps) or set " + ChromiumEnv + " to the browser binary")
}

// Browser is one headless Chromium tab bound to a test.
type Browser struct {
	t       testing.TB
	ctx     context.Context
	Timeout time.Duration // per operation (default 30s)
}

// NewBrowser starts a headless Chromium for t (failing t if there is none)
// and stops it when t ends.
func NewBrowser(t testing.TB) *Browser {
	t.Helper()
	path, err := ChromiumPath()
	if err != nil {
		t.Fatal(err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1400, 1100),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("mute-audio", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.Flag("metrics-recording-only", true),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancelCtx()
		cancelAlloc() // waits for the browser process we started to exit
	})
	b := &Browser{t: t, ctx: ctx, Timeout: 30 * time.Second}
	// Start the browser now so a launch failure is reported here. The
	// first action must run on the tab's own context: the browser lives as
	// long as the context that started it.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("starting %s: %v", path, err)
	}
	return b
}

// op returns a context for one operation, bounded by b.Timeout. (Only
// contexts made by chromedp.NewContext own a tab; cancelling this one
// does not close it.)
func (b *Browser) op() (context.Context, context.CancelFunc) {
	return context.WithTimeout(b.ctx, b.Timeout)
}

// Do runs actions, failing the test on error.
func (b *Browser) Do(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := b.op()
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("browser: %s: %v", what, err)
	}
}

// Eval evaluates a JavaScript expression and returns its value as a string.
func (b *Browser) Eval(expr string) string {
	b.t.Helper()
	ctx, cancel := b.op()
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
	if err != nil {
		b.t.Fatalf("browser: evaluating %s: %v", expr, err)
	}
	return v
}

// WaitJS waits until the JavaScript expression is truthy. A poll that
// loses its JavaScript context (the page navigated or reloaded while it
// ran: "Cannot find context with specified id") polls again in the new
// page, until the timeout.
func (b *Browser) WaitJS(what, expr string) {
	b.t.Helper()
	ctx, cancel := b.op()
	defer cancel()
	for {
		_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr,
			chromedp.WithPollingTimeout(b.Timeout), chromedp.WithPollingInterval(50*time.Millisecond)))
		if err == nil {
			return
		}
		if ctx.Err() != nil || !strings.Contains(err.Error(), "Cannot find context with specified id") {
			b.t.Fatalf("browser: waiting for %s (%s): %v", what, expr, err)
		}
	}
}

// Open loads the dashboard at url and waits for its first complete refresh.
func (b *Browser) Open(url string) {
	b.t.Helper()
	b.Do("navigating to "+url, chromedp.Navigate(url))
	b.WaitLoaded()
}

// WaitLoaded waits until the page has rendered data from every endpoint.
func (b *Browser) WaitLoaded() {
	b.t.Helper()
	b.WaitJS("the dashboard to load", `document.body.dataset.loaded === "true"`)
}

// Attr returns attribute name of the first element matching the CSS
// selector sel ("" when absent).
func (b *Browser) Attr(sel, name string) string {
	b.t.Helper()
	return b.Eval(fmt.Sprintf(`(function(){const e=document.querySelector(%s);return e?(e.getAttribute(%s)||""):""})()`,
		strconv.Quote(sel), strconv.Quote(name)))
}

// Text returns the text content of the first element matching sel.
func (b *Browser) Text(sel string) string {
	b.t.Helper()
	return b.Eval(fmt.Sprintf(`(function(){const e=document.querySelector(%s);return e?e.textContent:""})()`, strconv.Quote(sel)))
}

// FeedCellSelector is the CSS selector of a feed's cell in the feeds table.
// field is one of name, mode, source_records, sent, failed, rejected,
// pending, last_sync, lag_ms, resync.
func FeedCellSelector(feed, field string) string {
	return fmt.Sprintf(`#feeds-body tr[data-feed=%s] td[data-field=%s]`, strconv.Quote(feed), strconv.Quote(field))
}

// FeedValue returns the number a feed's cell shows (its data-value).
func (b *Browser) FeedValue(feed, field string) int64 {
	b.t.Helper()
	sel := FeedCellSelector(feed, field)
	v := b.Attr(sel, "data-value")
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		b.t.Fatalf("browser: %s has data-value %q, not a number", sel, v)
	}
	return n
}

// Feeds returns the feed names in the feeds table, in order.
func (b *Browser) Feeds() []string {
	b.t.Helper()
	s := b.Eval(`Array.from(document.querySelectorAll("#feeds-body tr[data-feed]")).map(e => e.dataset.feed).join("\n")`)
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// ResyncProgress returns the done/total/running shown for a feed.
func (b *Browser) ResyncProgress(feed string) (done, total int64, running bool) {
	b.t.Helper()
	sel := FeedCellSelector(feed, "resync")
	done, _ = strconv.ParseInt(b.Attr(sel, "data-done"), 10, 64)
	total, _ = strconv.ParseInt(b.Attr(sel, "data-total"), 10, 64)
	return done, total, b.Attr(sel, "data-running") == "true"
}

// setInput replaces an input's value the way typing does (select all,
// then type), so the page's input listeners fire.
func (b *Browser) setInput(sel, text string) {
	b.t.Helper()
	b.Eval(fmt.Sprintf(`(function(){const e=document.querySelector(%s);e.value="";e.dispatchEvent(new Event("input"));return ""})()`, strconv.Quote(sel)))
	if text != "" {
		b.Do("typing into "+sel, chromedp.SendKeys(chromedp.CSS(sel), text))
	}
}

// SetToken types the dashboard token and saves it (sessionStorage), then
// waits until the page reports whether the server accepted it; it returns
// "ok" or "rejected".
func (b *Browser) SetToken(token string) string {
	b.t.Helper()
	b.setInput("#token", token)
	b.Eval(`(function(){document.getElementById("token-state").dataset.state="";return ""})()`)
	b.Do("saving the token", chromedp.Click(chromedp.CSS("#token-save")))
	b.WaitJS("the token check", `["ok","rejected"].includes(document.getElementById("token-state").dataset.state)`)
	return b.Attr("#token-state", "data-state")
}

// SearchSKU types sku into the items search box, waits until the table
// shows the results of that search, and returns the feed item ids shown.
func (b *Browser) SearchSKU(sku string) []string {
	b.t.Helper()
	b.setInput("#items-search", sku)
	b.WaitJS("the search results for "+sku, fmt.Sprintf(`document.getElementById("items-body").dataset.sku === %s`, strconv.Quote(sku)))
	return b.ItemIDs()
}

// SelectStatus chooses the items table's status filter (failed, retryable,
// rejected, pending, sent, all) and waits for the reload.
func (b *Browser) SelectStatus(filter string) {
	b.t.Helper()
	b.Do("choosing status "+filter, chromedp.SetValue(chromedp.CSS("#items-status"), filter))
	b.Eval(`(function(){document.getElementById("items-status").dispatchEvent(new Event("change"));return ""})()`)
	b.WaitJS("the items filtered by "+filter, fmt.Sprintf(`document.getElementById("items-body").dataset.status === %s`, strconv.Quote(filter)))
}

// ItemIDs returns the feed item ids in the items table, in order.
func (b *Browser) ItemIDs() []string {
	b.t.Helper()
	s := b.Eval(`Array.from(document.querySelectorAll("#items-body tr[data-item-id]")).map(e => e.dataset.itemId).join("\n")`)
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// OpenItem scrolls the item's row into view, clicks it and returns the JSON
// text shown.
func (b *Browser) OpenItem(feedItemID string) string {
	b.t.Helper()
	// Scroll the row to the middle of the window and click it in one
	// script: the auto-refresh replaces the rows, so a node looked up
	// earlier may be gone by the time a separate click arrives.
	sel := fmt.Sprintf(`#items-body tr[data-item-id=%s]`, strconv.Quote(feedItemID))
	if b.Eval(fmt.Sprintf(`(function(){const r=document.querySelector(%s);if(!r)return "missing";r.scrollIntoView({block:"center"});r.click();return "ok"})()`, strconv.Quote(sel))) != "ok" {
		b.t.Fatalf("browser: no row for item %s", feedItemID)
	}
	b.WaitJS("the item JSON", fmt.Sprintf(`(function(){const p=document.getElementById("item-json");return p.dataset.itemId===%s && p.dataset.loaded!=="false"})()`, strconv.Quote(feedItemID)))
	if st := b.Attr("#item-json", "data-loaded"); st != "true" {
		b.t.Fatalf("browser: item %s did not load: %s", feedItemID, b.Text("#item-json"))
	}
	return b.Text("#item-json")
}

// InViewport reports whether the first element matching sel is shown and
// lies entirely inside the browser window as it is scrolled now (what a
// user sees without scrolling).
func (b *Browser) InViewport(sel string) bool {
	b.t.Helper()
	return b.Eval(fmt.Sprintf(`(function(){const e=document.querySelector(%s);if(!e||e.hidden)return "false";
const r=e.getBoundingClientRect();
return String(r.width>0&&r.height>0&&r.top>=0&&r.left>=0&&r.bottom<=window.innerHeight&&r.right<=window.innerWidth)})()`, strconv.Quote(sel))) == "true"
}

// MidWordBreaks returns the words (runs of letters and digits) inside the
// elements matching sel that the browser laid out over more than one
// line, i.e. broke mid-word; nil when every word is whole.
func (b *Browser) MidWordBreaks(sel string) []string {
	b.t.Helper()
	s := b.Eval(fmt.Sprintf(`(function(){const broken=[];
for (const e of document.querySelectorAll(%s)) {
  const w=document.createTreeWalker(e, NodeFilter.SHOW_TEXT);
  for (let n=w.nextNode(); n; n=w.nextNode()) {
    const re=/[\p{L}\p{N}]+/gu; let m;
    while ((m=re.exec(n.data))!==null) {
      const r=document.createRange(); r.setStart(n, m.index); r.setEnd(n, m.index+m[0].length);
      const tops=new Set(Array.from(r.getClientRects()).filter(x=>x.width>0).map(x=>Math.round(x.top)));
      if (tops.size>1) broken.push(m[0]);
    }
  }
}
return broken.join("\n")})()`, strconv.Quote(sel)))
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// ElementWidth returns the rendered width in CSS pixels of the first
// element matching sel (0 when absent).
func (b *Browser) ElementWidth(sel string) float64 {
	b.t.Helper()
	v := b.Eval(fmt.Sprintf(`(function(){const e=document.querySelector(%s);return e?String(e.getBoundingClientRect().width):"0"})()`, strconv.Quote(sel)))
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		b.t.Fatalf("browser: width of %s: %q", sel, v)
	}
	return f
}

// ScheduleResync fills the actions form (feed, SKUs; no ids = whole feed),
// clicks "Schedule resync" and returns the outcome shown ("ok" or "error")
// and its message.
func (b *Browser) ScheduleResync(feed string, skus ...string) (state, message string) {
	b.t.Helper()
	b.Do("choosing feed "+feed, chromedp.SetValue(chromedp.CSS("#action-feed"), feed))
	b.setInput("#resync-ids", strings.Join(skus, ", "))
	whole := b.Eval(`String(document.getElementById("resync-whole").checked)`) == "true"
	if whole != (len(skus) == 0) {
		b.Do("toggling whole feed", chromedp.Click(chromedp.CSS("#resync-whole")))
	}
	return b.clickAction("#resync-button")
}

// StartRawSnapshot fills the raw snapshot form (table, condition), clicks
// its button and returns the outcome shown ("ok" or "error") and its
// message.
func (b *Browser) StartRawSnapshot(table, where string) (state, message string) {
	b.t.Helper()
	b.setInput("#snapshot-table", table)
	b.setInput("#snapshot-where", where)
	return b.clickAction("#snapshot-button")
}

// RawSnapshotAction clicks the action button (pause, resume, stop) shown
// for table's raw snapshot once the list shows it, and returns the outcome.
func (b *Browser) RawSnapshotAction(table, action string) (state, message string) {
	b.t.Helper()
	sel := fmt.Sprintf(`#raw-snapshots li[data-table=%s] button[data-action=%s]`, strconv.Quote(table), strconv.Quote(action))
	b.WaitJS("the "+action+" button of "+table, fmt.Sprintf(`document.querySelector(%s) !== null`, strconv.Quote(sel)))
	return b.clickAction(sel)
}

// ScheduleResyncJob is ScheduleResync for a connector that runs the
// resync as a job: it also returns every progress message the page showed
// while the job ran ("resync job 1 of products: 1/3 entities"), read
// until the outcome is shown (within a minute).
func (b *Browser) ScheduleResyncJob(feed string, skus ...string) (progress []string, state, message string) {
	b.t.Helper()
	b.Do("choosing feed "+feed, chromedp.SetValue(chromedp.CSS("#action-feed"), feed))
	b.setInput("#resync-ids", strings.Join(skus, ", "))
	whole := b.Eval(`String(document.getElementById("resync-whole").checked)`) == "true"
	if whole != (len(skus) == 0) {
		b.Do("toggling whole feed", chromedp.Click(chromedp.CSS("#resync-whole")))
	}
	b.Eval(`(function(){const r=document.getElementById("action-result");r.dataset.state="";r.textContent="";return ""})()`)
	b.Do("clicking #resync-button", chromedp.Click(chromedp.CSS("#resync-button")))
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		state, text, _ := strings.Cut(b.Eval(`(function(){const r=document.getElementById("action-result");return r.dataset.state+"\n"+r.textContent})()`), "\n")
		switch state {
		case "ok", "error":
			return progress, state, text
		case "busy":
			if len(progress) == 0 || progress[len(progress)-1] != text {
				progress = append(progress, text)
			}
		}
	}
	b.t.Fatalf("browser: the resync job's outcome was not shown within a minute (progress seen: %q)", progress)
	return nil, "", ""
}

// RetryFailed clicks "Retry failed now" for feed and returns the outcome.
func (b *Browser) RetryFailed(feed string) (state, message string) {
	b.t.Helper()
	b.Do("choosing feed "+feed, chromedp.SetValue(chromedp.CSS("#action-feed"), feed))
	return b.clickAction("#retry-button")
}

func (b *Browser) clickAction(button string) (string, string) {
	b.t.Helper()
	b.Eval(`(function(){const r=document.getElementById("action-result");r.dataset.state="";r.textContent="";return ""})()`)
	b.Do("clicking "+button, chromedp.Click(chromedp.CSS(button)))
	b.WaitJS("the action result", `["ok","error"].includes(document.getElementById("action-result").dataset.state)`)
	return b.Attr("#action-result", "data-state"), b.Text("#action-result")
}

// Screenshot saves a full-page PNG named name.png in the test's artifacts
// directory and returns its path (also logged).
func (b *Browser) Screenshot(name string) string {
	b.t.Helper()
	return b.screenshot(name, chromedp.FullScreenshot(100))
}

// ScreenshotWindow saves what the window shows now (no scrolling; fixed
// panels where the user sees them) as name.png, like Screenshot.
func (b *Browser) ScreenshotWindow(name string) string {
	b.t.Helper()
	return b.screenshot(name, chromedp.CaptureScreenshot())
}

func (b *Browser) screenshot(name string, shot chromedp.Action[[]byte]) string {
	b.t.Helper()
	ctx, cancel := b.op()
	defer cancel()
	png, err := chromedp.Run(ctx, shot)
	if err != nil {
		b.t.Fatalf("browser: screenshot: %v", err)
	}
	path := filepath.Join(ArtifactsDir(b.t), name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatalf("saving screenshot: %v", err)
	}
	b.t.Logf("screenshot saved: %s", path)
	return path
}

// ArtifactsDir returns (creating it) test-artifacts/<test name> at the
// module root (git-ignored), or under $FEEDCDC_TEST_ARTIFACTS when set.
func ArtifactsDir(t testing.TB) string {
	t.Helper()
	root := os.Getenv("FEEDCDC_TEST_ARTIFACTS")
	if root == "" {
		root = filepath.Join(moduleRoot(t), "test-artifacts")
	}
	name := strings.NewReplacer("/", "_", " ", "_", ":", "_").Replace(t.Name())
	dir := filepath.Join(root, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("creating artifacts dir: %v", err)
	}
	return dir
}

func moduleRoot(t testing.TB) string {
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			return dir
		}
	}
}

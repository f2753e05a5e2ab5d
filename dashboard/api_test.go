package dashboard_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/feedcdc/feedcdc/dashboard"
)

const testToken = "s3cret-token-for-tests"

func newServer(t *testing.T, b dashboard.Backend, o dashboard.Options) *httptest.Server {
	t.Helper()
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	srv := httptest.NewServer(dashboard.New(b, o))
	t.Cleanup(srv.Close)
	return srv
}

type reply struct {
	code   int
	header http.Header
	body   []byte
}

func do(t *testing.T, method, url, token string, body any) reply {
	t.Helper()
	var rd io.Reader
	switch v := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(v)
	default:
		raw, _ := json.Marshal(v)
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, resp.Header, raw}
}

func (r reply) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("body %q: %v", r.body, err)
	}
}

func (r reply) errorText(t *testing.T) string {
	t.Helper()
	var e struct{ Error string }
	r.decode(t, &e)
	return e.Error
}

func TestOverviewAPIMatchesBackend(t *testing.T) {
	b := newMemBackend()
	srv := newServer(t, b, dashboard.Options{})
	r := do(t, "GET", srv.URL+"/api/overview", "", nil)
	if r.code != 200 || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("overview: %d %s", r.code, r.body)
	}
	var ov dashboard.Overview
	r.decode(t, &ov)
	if len(ov.Feeds) != 3 {
		t.Fatalf("feeds = %d", len(ov.Feeds))
	}
	for _, f := range ov.Feeds {
		want := b.counts(f.Name)
		if f.SourceRecords != want.SourceRecords || f.Sent != want.Sent || f.Failed != want.Failed ||
			f.Rejected != want.Rejected || f.Pending != want.Pending || !f.LastSync.Equal(want.LastSync) {
			t.Errorf("feed %s: got %+v, want counts %+v", f.Name, f, want)
		}
	}
	p := ov.Feeds[0]
	if p.Name != "products" || p.Mode != "immediate" || p.Resync.Done != 30 || p.Resync.Total != 120 || !p.Resync.Running || p.LagMS != 120 {
		t.Errorf("products line: %+v", p)
	}
	if p.SourceRecords != 60 || p.Sent+p.Failed+p.Rejected+p.Pending != 60 {
		t.Errorf("products counts do not add up: %+v", p)
	}
	if ov.Checkpoint.File != "mariadb-bin.000003" || ov.Checkpoint.Pos != 4567 || !ov.Source.Connected {
		t.Errorf("checkpoint/source: %+v %+v", ov.Checkpoint, ov.Source)
	}
	// the deleted attribute is not a source record
	if a := b.counts("productAttributes"); a.SourceRecords != 2 || a.Sent != 3 {
		t.Errorf("attributes counts: %+v", a)
	}
}

func TestItemsAPIFiltersSearchAndPaging(t *testing.T) {
	b := newMemBackend()
	srv := newServer(t, b, dashboard.Options{})
	get := func(query string) dashboard.ItemPage {
		t.Helper()
		r := do(t, "GET", srv.URL+"/api/items?"+query, "", nil)
		if r.code != 200 {
			t.Fatalf("items?%s: %d %s", query, r.code, r.body)
		}
		var p dashboard.ItemPage
		r.decode(t, &p)
		return p
	}
	// Default: failed items of every feed (2, 400, 1).
	p := get("")
	want := 0
	for _, f := range []string{"products", "variants", "productAttributes"} {
		c := b.counts(f)
		want += int(c.Failed + c.Rejected)
	}
	if p.Total != want || p.Limit != 50 || p.Offset != 0 {
		t.Fatalf("default page: total %d limit %d, want total %d limit 50", p.Total, p.Limit, want)
	}
	for _, it := range p.Items {
		if it.Status != 2 && it.Status != 400 && it.Status != 1 {
			t.Errorf("non-failed item in failed list: %+v", it)
		}
		if it.StatusText == "" || it.FeedID == "" {
			t.Errorf("item lacks status text or feed id: %+v", it)
		}
	}
	if p := get("feed=products&status=retryable"); p.Total != int(b.counts("products").Failed) {
		t.Errorf("retryable products = %d, want %d", p.Total, b.counts("products").Failed)
	}
	if p := get("feed=products&status=rejected"); p.Total != int(b.counts("products").Rejected) {
		t.Errorf("rejected products = %d", p.Total)
	} else {
		for _, it := range p.Items {
			if it.StatusText != "Failed, require attention" {
				t.Errorf("rejected label = %q", it.StatusText)
			}
		}
	}
	// SKU search: substring, case-insensitive, across identifier fields.
	p = get("status=all&sku=mh07-xs")
	if p.Total != 3 { // 2 store views of the product + 1 variant
		t.Fatalf("search mh07-xs: total %d, want 3: %+v", p.Total, p.Items)
	}
	for _, it := range p.Items {
		if !strings.Contains(it.Identifiers["sku"]+it.Identifiers["productSku"], "MH07-XS") {
			t.Errorf("search returned %+v", it.Identifiers)
		}
	}
	// Paging covers every item exactly once.
	seen := map[string]bool{}
	total := get("status=all").Total
	for off := 0; off < total; off += 7 {
		for _, it := range get("status=all&limit=7&offset=" + strconv.Itoa(off)).Items {
			if seen[it.Feed+it.FeedID] {
				t.Fatalf("item %s on two pages", it.FeedID)
			}
			seen[it.Feed+it.FeedID] = true
		}
	}
	if len(seen) != total || total != len(b.items) {
		t.Fatalf("paging saw %d of %d (backend has %d)", len(seen), total, len(b.items))
	}
	// Bad parameters are explained.
	for q, want := range map[string]string{
		"status=broken":  `status filter "broken" is not one of failed, retryable, rejected, pending, sent, all`,
		"limit=0":        `limit: "0" is not a whole number between 1 and 500`,
		"limit=501":      `limit: "501" is not a whole number between 1 and 500`,
		"offset=-1":      `offset: "-1" is not a whole number`,
		"feed=nosuch":    `items: feed "nosuch": not found`,
		"limit=ten&x=1":  `limit: "ten"`,
		"offset=1.5&y=2": `offset: "1.5"`,
	} {
		r := do(t, "GET", srv.URL+"/api/items?"+q, "", nil)
		if (r.code != 400 && r.code != 404) || !strings.Contains(r.errorText(t), want) {
			t.Errorf("items?%s: %d %s, want error containing %q", q, r.code, r.body, want)
		}
	}
}

func TestItemJSON(t *testing.T) {
	b := newMemBackend()
	srv := newServer(t, b, dashboard.Options{})
	it := b.items[4]
	r := do(t, "GET", srv.URL+"/api/feeds/products/items/"+it.row.FeedID, "", nil)
	if r.code != 200 || !bytes.Equal(r.body, it.payload) {
		t.Fatalf("item: %d %s, want %s", r.code, r.body, it.payload)
	}
	r = do(t, "GET", srv.URL+"/api/feeds/products/items/0000", "", nil)
	if r.code != 404 || !strings.Contains(r.errorText(t), "item 0000 of feed products: not found") {
		t.Fatalf("missing item: %d %s", r.code, r.body)
	}
}

func TestMutationsRequireToken(t *testing.T) {
	b := newMemBackend()
	var logs bytes.Buffer
	srv := newServer(t, b, dashboard.Options{Token: testToken, Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	endpoints := []struct {
		path string
		body any
	}{
		{"/api/feeds/products/resync", map[string]any{"ids": []string{"MH01-XS-Blue"}}},
		{"/api/feeds/products/retry", nil},
		{"/api/auth/check", nil},
	}
	for _, e := range endpoints {
		// No token.
		r := do(t, "POST", srv.URL+e.path, "", e.body)
		if r.code != 401 || r.header.Get("WWW-Authenticate") == "" || !strings.Contains(r.errorText(t), "needs the dashboard token") {
			t.Errorf("%s without token: %d %s", e.path, r.code, r.body)
		}
		// Wrong token, including a prefix of the right one and other schemes.
		for _, bad := range []string{"wrong", testToken[:len(testToken)-1], testToken + "x"} {
			r = do(t, "POST", srv.URL+e.path, bad, e.body)
			if r.code != 401 || r.errorText(t) != "the dashboard token is wrong" {
				t.Errorf("%s with token %q: %d %s", e.path, bad, r.code, r.body)
			}
		}
		req, _ := http.NewRequest("POST", srv.URL+e.path, nil)
		req.Header.Set("Authorization", "Basic "+testToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Errorf("%s with Basic auth: %d", e.path, resp.StatusCode)
		}
	}
	if rs, rt := b.calls(); len(rs) != 0 || len(rt) != 0 {
		t.Fatalf("backend acted on unauthorized requests: %v %v", rs, rt)
	}
	// Right token: accepted, and the backend receives the action.
	if r := do(t, "POST", srv.URL+"/api/auth/check", testToken, nil); r.code != 204 {
		t.Fatalf("auth check: %d", r.code)
	}
	r := do(t, "POST", srv.URL+"/api/feeds/products/resync", testToken, map[string]any{"ids": []string{" MH01-XS-Blue ", "MH02-XS-Blue", "MH01-XS-Blue", ""}})
	var ar dashboard.ActionResponse
	r.decode(t, &ar)
	if r.code != 202 || ar.Status != "scheduled" || ar.IDs != 2 {
		t.Fatalf("resync: %d %s", r.code, r.body)
	}
	r = do(t, "POST", srv.URL+"/api/feeds/variants/resync", testToken, map[string]any{"whole_feed": true})
	if r.code != 202 {
		t.Fatalf("whole-feed resync: %d %s", r.code, r.body)
	}
	r = do(t, "POST", srv.URL+"/api/feeds/variants/retry", testToken, nil)
	if r.code != 202 {
		t.Fatalf("retry: %d %s", r.code, r.body)
	}
	rs, rt := b.calls()
	if len(rs) != 2 || rs[0].Feed != "products" || strings.Join(rs[0].IDs, ",") != "MH01-XS-Blue,MH02-XS-Blue" ||
		rs[1].Feed != "variants" || len(rs[1].IDs) != 0 {
		t.Fatalf("backend resyncs = %+v", rs)
	}
	if len(rt) != 1 || rt[0] != "variants" {
		t.Fatalf("backend retries = %v", rt)
	}
	// Reads need no token.
	if r := do(t, "GET", srv.URL+"/api/overview", "", nil); r.code != 200 {
		t.Fatalf("overview without token: %d", r.code)
	}
	// The token never reaches the logs.
	if strings.Contains(logs.String(), testToken) || !strings.Contains(logs.String(), `"operation":"partial resync by ids"`) {
		t.Fatalf("logs: %s", logs.String())
	}
}

func TestActionsDisabledWithoutConfiguredToken(t *testing.T) {
	b := newMemBackend()
	srv := newServer(t, b, dashboard.Options{})
	for _, tok := range []string{"", "anything"} {
		r := do(t, "POST", srv.URL+"/api/feeds/products/retry", tok, nil)
		if r.code != 403 || !strings.Contains(r.errorText(t), "dashboard actions are disabled: configure a dashboard token") {
			t.Fatalf("retry with no server token (client %q): %d %s", tok, r.code, r.body)
		}
	}
	if _, rt := b.calls(); len(rt) != 0 {
		t.Fatal("backend acted")
	}
	r := do(t, "GET", srv.URL+"/", "", nil)
	if !strings.Contains(string(r.body), `data-actions-enabled="false"`) {
		t.Fatalf("page does not say actions are disabled")
	}
}

func TestResyncValidationAndBackendErrors(t *testing.T) {
	b := newMemBackend()
	b.busy["variants"] = true
	srv := newServer(t, b, dashboard.Options{Token: testToken, MaxResyncIDs: 3})
	cases := []struct {
		path string
		body any
		code int
		want string
	}{
		{"/api/feeds/products/resync", map[string]any{}, 400, `give the SKUs to resync in "ids", or set "whole_feed": true`},
		{"/api/feeds/products/resync", map[string]any{"ids": []string{" ", ""}}, 400, `give the SKUs to resync`},
		{"/api/feeds/products/resync", map[string]any{"ids": []string{"A"}, "whole_feed": true}, 400, `either "ids" or "whole_feed", not both`},
		{"/api/feeds/products/resync", map[string]any{"ids": []string{"A", "B", "C", "D"}}, 400, "4 ids in one request; the limit is 3"},
		{"/api/feeds/products/resync", map[string]any{"skus": []string{"A"}}, 400, `unknown field "skus"`},
		{"/api/feeds/products/resync", "not json", 400, `body must be JSON like {"ids":["SKU-1","SKU-2"]}`},
		{"/api/feeds/nosuch/resync", map[string]any{"ids": []string{"A"}}, 404, `schedule resync: feed "nosuch": not found`},
		{"/api/feeds/variants/resync", map[string]any{"whole_feed": true}, 409, "feed variants is locked by resync(4242)"},
		{"/api/feeds/nosuch/retry", nil, 404, "not found"},
	}
	for _, c := range cases {
		r := do(t, "POST", srv.URL+c.path, testToken, c.body)
		if r.code != c.code || !strings.Contains(r.errorText(t), c.want) {
			t.Errorf("POST %s %v: %d %s, want %d %q", c.path, c.body, r.code, r.body, c.code, c.want)
		}
	}
	if rs, _ := b.calls(); len(rs) != 0 {
		t.Fatalf("backend received invalid resyncs: %+v", rs)
	}
	// A backend failure is a 500 with the message, and logged.
	var logs bytes.Buffer
	b.failWith = errors.New("state store closed")
	srv2 := newServer(t, b, dashboard.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	r := do(t, "GET", srv2.URL+"/api/overview", "", nil)
	if r.code != 500 || r.errorText(t) != "overview: state store closed" || !strings.Contains(logs.String(), "state store closed") {
		t.Fatalf("backend failure: %d %s; logs %s", r.code, r.body, logs.String())
	}
	if r := do(t, "GET", srv2.URL+"/api/nothing", "", nil); r.code != 404 {
		t.Fatalf("unknown endpoint: %d", r.code)
	}
}

func TestHealthAPIGradesRetention(t *testing.T) {
	b := newMemBackend()
	srv := newServer(t, b, dashboard.Options{})
	for _, c := range []struct {
		age, retention float64
		want           string
	}{{4 * 3600, 24 * 3600, "PASS"}, {13 * 3600, 24 * 3600, "WARN"}, {25 * 3600, 24 * 3600, "FAIL"}, {25 * 3600, 0, ""}} {
		b.mu.Lock()
		b.health.CheckpointAgeSeconds, b.health.BinlogRetentionSeconds = c.age, c.retention
		b.mu.Unlock()
		var h dashboard.Health
		r := do(t, "GET", srv.URL+"/api/health", "", nil)
		r.decode(t, &h)
		if r.code != 200 || h.RetentionStatus != c.want || len(h.Checks) != 2 || h.Checks[1].Fix == "" {
			t.Errorf("age %v retention %v: %d %+v, want %q", c.age, c.retention, r.code, h, c.want)
		}
	}
	if got := dashboard.RetentionStatus(time.Hour, 0); got != "" {
		t.Errorf("unknown retention graded %q", got)
	}
}

func TestPageAndAssetsAreSelfContained(t *testing.T) {
	srv := newServer(t, newMemBackend(), dashboard.Options{Token: testToken, RefreshInterval: 2 * time.Second})
	r := do(t, "GET", srv.URL+"/", "", nil)
	if r.code != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") {
		t.Fatalf("index: %d %s", r.code, r.header)
	}
	page := string(r.body)
	for _, want := range []string{`data-refresh-ms="2000"`, `data-actions-enabled="true"`, `id="feeds-body"`, `id="items-search"`, `id="resync-button"`, `id="retry-button"`, `id="checks-body"`} {
		if !strings.Contains(page, want) {
			t.Errorf("index lacks %s", want)
		}
	}
	csp := r.header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "script-src 'self'") || r.header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("security headers: %v", r.header)
	}
	for path, ctype := range map[string]string{"/assets/app.js": "javascript", "/assets/style.css": "text/css"} {
		r := do(t, "GET", srv.URL+path, "", nil)
		if r.code != 200 || !strings.Contains(r.header.Get("Content-Type"), ctype) || len(r.body) < 500 {
			t.Errorf("%s: %d %s (%d bytes)", path, r.code, r.header.Get("Content-Type"), len(r.body))
		}
	}
	// Nothing in the embedded assets points outside the dashboard: no
	// absolute URLs, no inline scripts or styles (the CSP would block them).
	external := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}|<script>|<style|style="|on(click|load|error)=`)
	err := fs.WalkDir(dashboard.Assets(), ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		raw, err := fs.ReadFile(dashboard.Assets(), path)
		if err != nil {
			return err
		}
		if m := external.FindString(string(raw)); m != "" {
			t.Errorf("asset %s references %q", path, m)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestItemsNeedToken(t *testing.T) {
	for _, c := range []struct {
		mode, listen string
		want         bool
	}{
		{"auto", "127.0.0.1:8484", false},
		{"", "127.0.0.1:8484", false},
		{"auto", "", false},
		{"auto", "localhost:8484", false},
		{"auto", "[::1]:8484", false},
		{"auto", "127.3.4.5:8484", false},
		{"auto", "0.0.0.0:8484", true},
		{"auto", ":8484", true},
		{"auto", "10.1.2.3:8484", true},
		{"auto", "[::]:8484", true},
		{"always", "127.0.0.1:8484", true},
		{"never", "0.0.0.0:8484", false},
	} {
		if got := dashboard.ItemsNeedToken(c.mode, c.listen); got != c.want {
			t.Errorf("ItemsNeedToken(%q, %q) = %v, want %v", c.mode, c.listen, got, c.want)
		}
	}
}

package httpsink

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/feedcdc/feedcdc/sink"
	"github.com/feedcdc/feedcdc/test/kafkatest"
)

type feedItem struct {
	SKU     string `json:"sku"`
	Bad     bool   `json:"bad,omitempty"`     // the service lists it as invalid
	Limited bool   `json:"limited,omitempty"` // listed once as items_limit_exceeded
}

func itemRec(feed string, it feedItem) sink.Record {
	b, _ := json.Marshal(it)
	return sink.Record{Feed: feed, Value: b, ID: it.SKU, Op: "u"}
}

// decode reads a request body as the service would.
func decode(t *testing.T, r *http.Request) []feedItem {
	t.Helper()
	var rd io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			t.Errorf("request body is not gzip: %v", err)
			return nil
		}
		rd = zr
	}
	var items []feedItem
	if err := json.NewDecoder(rd).Decode(&items); err != nil {
		t.Errorf("request body is not a JSON array of items: %v", err)
	}
	return items
}

// flakyService is a real HTTP feed service that fails at random: 429 with
// Retry-After, 503, connections reset mid-request (hijacked and closed), and
// per-item invalid items in both response formats. It records the items it
// accepted.
type flakyService struct {
	t   *testing.T
	key string

	mu       sync.Mutex
	rnd      *rand.Rand
	accepted map[string]int // sku -> times accepted
	limited  map[string]bool
	requests int
	outcomes map[string]int
}

func (f *flakyService) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.requests++
	reqID := fmt.Sprintf("req-%d", f.requests)
	p := f.rnd.Float64()
	n := f.requests
	f.mu.Unlock()
	if r.Header.Get("x-api-key") != f.key || r.Header.Get("magento-api-key") != f.key {
		http.Error(w, "API Keys Validation Failed", http.StatusUnauthorized)
		return
	}
	if r.URL.Path != "/feeds/products/ds-1" && r.URL.Path != "/feeds/prices-route/ds-1" {
		http.Error(w, "no route "+r.URL.Path, http.StatusBadRequest)
		return
	}
	w.Header().Set("x-request-id", reqID)
	outcome := func(o string) { f.mu.Lock(); f.outcomes[o]++; f.mu.Unlock() }
	// The first requests fail in each way for sure; later ones at random.
	switch n {
	case 1:
		p = 0
	case 2:
		p = 0.2
	case 3:
		p = 0.3
	}
	switch {
	case p < 0.12:
		outcome("429")
		w.Header().Set("Retry-After", "1")
		http.Error(w, `{"message":"Too Many Requests"}`, http.StatusTooManyRequests)
		return
	case p < 0.24:
		outcome("503")
		http.Error(w, "upstream unavailable", http.StatusServiceUnavailable)
		return
	case p < 0.36:
		outcome("reset")
		// Read part of the body, then drop the connection: the client sees a
		// reset/EOF with no response.
		io.CopyN(io.Discard, r.Body, 10)
		conn, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			f.t.Errorf("hijack: %v", err)
			return
		}
		conn.Close()
		return
	}
	items := decode(f.t, r)
	var invalid []map[string]any
	f.mu.Lock()
	for i, it := range items {
		switch {
		case it.Bad:
			if i%2 == 0 {
				invalid = append(invalid, map[string]any{"itemIndex": i, "code": "invalid_sku", "message": "sku is not valid"})
			} else {
				invalid = append(invalid, map[string]any{"field": fmt.Sprintf("/%d/sku", i), "message": "must match ^[a-z]"})
			}
		case it.Limited && !f.limited[it.SKU]:
			f.limited[it.SKU] = true
			invalid = append(invalid, map[string]any{"itemIndex": i, "code": "items_limit_exceeded", "message": "too many items"})
		default:
			f.accepted[it.SKU]++
		}
	}
	f.mu.Unlock()
	outcome("200")
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"invalidFeedItems": invalid})
}

// Against a service failing at random, every item ends in the right status:
// valid items OK (accepted by the service), invalid ones Rejected with the
// service's reason and never accepted, and rate-limited ones OK after a retry.
func TestFlakyServiceEveryItemEndsRight(t *testing.T) {
	const key = "k-8c1f0e"
	svc := &flakyService{t: t, key: key, rnd: rand.New(rand.NewPCG(1, 2)), accepted: map[string]int{}, limited: map[string]bool{}, outcomes: map[string]int{}}
	srv := httptest.NewServer(svc)
	defer srv.Close()
	var logs bytes.Buffer
	t.Setenv("FEEDCDC_TEST_HTTP_KEY", key)
	s, err := New(Config{
		Name: "saas", BaseURL: srv.URL + "/feeds/", DataSpace: "ds-1", Routes: map[string]string{"prices": "prices-route"},
		APIKeyEnv: "FEEDCDC_TEST_HTTP_KEY", APIKeyHeaders: []string{"x-api-key", "magento-api-key"},
		Gzip: true, MaxItemsPerRequest: 25, Timeout: 5 * time.Second,
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	var recs []sink.Record
	want := map[string]sink.Status{}
	for i := 0; i < 400; i++ {
		it := feedItem{SKU: fmt.Sprintf("sku-%03d", i), Bad: i%13 == 5, Limited: i%17 == 3}
		feed := "products"
		if i%3 == 0 {
			feed = "prices"
		}
		recs = append(recs, itemRec(feed, it))
		want[it.SKU] = sink.StatusOK
		if it.Bad {
			want[it.SKU] = sink.StatusRejected
		}
	}
	recs = append(recs, sink.Record{Feed: "products", Value: nil, ID: "tombstone"})

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := sink.SendWithRetry(ctx, s, recs, sink.Backoff{Initial: 10 * time.Millisecond, Max: 100 * time.Millisecond, MaxAttempts: 200})
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res[:400] {
		sku := fmt.Sprintf("sku-%03d", i)
		if r.Status != want[sku] {
			t.Errorf("%s: %v (%s), want %v", sku, r.Status, r.Reason, want[sku])
		}
		if r.RequestID == "" {
			t.Errorf("%s: no request id recorded", sku)
		}
		switch want[sku] {
		case sink.StatusOK:
			if svc.accepted[sku] < 1 {
				t.Errorf("%s reported OK but the service never accepted it", sku)
			}
		case sink.StatusRejected:
			if svc.accepted[sku] != 0 {
				t.Errorf("%s reported rejected but the service accepted it", sku)
			}
			if !strings.Contains(r.Reason, "invalid") {
				t.Errorf("%s: reason %q does not carry the service's message", sku, r.Reason)
			}
			if !r.ItemRejected {
				t.Errorf("%s: rejected by the service on its own, but not marked ItemRejected (feed status 1)", sku)
			}
		}
	}
	if res[400].Status != sink.StatusOK {
		t.Errorf("tombstone: %+v", res[400])
	}
	for _, o := range []string{"429", "503", "reset", "200"} {
		if svc.outcomes[o] == 0 {
			t.Errorf("the service never answered %s; the test did not exercise it (outcomes %v)", o, svc.outcomes)
		}
	}
	if strings.Contains(logs.String(), key) {
		t.Fatal("the API key appears in the sink's logs")
	}
	// One line per request with failed items, naming the sink, the feed,
	// examples of the failed items and the service's reason.
	rejectedLine := regexp.MustCompile(`msg="http feed: items not accepted" sink=saas feed=(products|prices) url=\S+ status_code=\d+ request_id=\S+ items=\d+ rejected=[1-9]\d* retryable=\d+ ids="?[^ ]+.* reason="[^"]*invalid`)
	if !rejectedLine.MatchString(logs.String()) {
		t.Errorf("no log line of a request with rejected items naming sink, feed, ids and the item's reason:\n%s", logs.String())
	}
	t.Logf("requests %d, outcomes %v", svc.requests, svc.outcomes)
}

func TestStatusMapping(t *testing.T) {
	type answer struct {
		code    int
		body    string
		headers map[string]string
	}
	var mu sync.Mutex
	var next answer
	var sizes []int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		items := decode(t, r)
		mu.Lock()
		a := next
		sizes = append(sizes, len(items))
		mu.Unlock()
		if a.code == http.StatusRequestEntityTooLarge {
			for _, it := range items {
				if it.Bad && len(items) >= 1 {
					http.Error(w, "too large", http.StatusRequestEntityTooLarge)
					return
				}
			}
			w.Header().Set("x-request-id", "split-ok")
			w.WriteHeader(200)
			return
		}
		for k, v := range a.headers {
			w.Header().Set(k, v)
		}
		w.Header().Set("x-request-id", "rid")
		w.WriteHeader(a.code)
		io.WriteString(w, a.body)
	}))
	defer srv.Close()
	s, err := New(Config{BaseURL: srv.URL, Gzip: false, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	three := []sink.Record{itemRec("products", feedItem{SKU: "a"}), itemRec("products", feedItem{SKU: "b"}), itemRec("products", feedItem{SKU: "c"})}
	for _, tc := range []struct {
		name string
		a    answer
		want []sink.Status
		why  string
		ra   time.Duration
	}{
		{"200", answer{200, `{"invalidFeedItems":[]}`, nil}, []sink.Status{0, 0, 0}, "", 0},
		{"200 one invalid", answer{200, `{"invalidFeedItems":[{"itemIndex":1,"code":"bad","message":"nope"}]}`, nil}, []sink.Status{0, 2, 0}, "bad", 0},
		{"200 unmatched list ignored", answer{200, `{"invalidFeedItems":[{"itemIndex":7,"message":"?"}]}`, nil}, []sink.Status{0, 0, 0}, "", 0},
		{"400 no list", answer{400, `{"message":"malformed"}`, nil}, []sink.Status{2, 2, 2}, "malformed", 0},
		{"400 with list", answer{400, `{"invalidFeedItems":[{"field":"/2/sku","message":"required"}]}`, nil}, []sink.Status{1, 1, 2}, "required", 0},
		{"422", answer{422, `unprocessable`, nil}, []sink.Status{2, 2, 2}, "HTTP 422", 0},
		{"429 seconds", answer{429, ``, map[string]string{"Retry-After": "7"}}, []sink.Status{1, 1, 1}, "HTTP 429", 7 * time.Second},
		{"503 date", answer{503, ``, map[string]string{"Retry-After": time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)}}, []sink.Status{1, 1, 1}, "HTTP 503", 90 * time.Second},
		{"401 retryable", answer{401, `API Keys Validation Failed`, nil}, []sink.Status{1, 1, 1}, "HTTP 401", 0},
		{"limit exceeded", answer{200, `{"invalidFeedItems":[{"itemIndex":0,"code":"items_limit_exceeded"}]}`, nil}, []sink.Status{1, 0, 0}, "items_limit_exceeded", 0},
	} {
		mu.Lock()
		next = tc.a
		mu.Unlock()
		res, err := s.Send(context.Background(), three)
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range res {
			if r.Status != tc.want[i] {
				t.Errorf("%s: item %d %v (%s), want %v", tc.name, i, r.Status, r.Reason, tc.want[i])
			}
			if r.RequestID != "rid" {
				t.Errorf("%s: request id %q", tc.name, r.RequestID)
			}
			if r.Status != sink.StatusOK && tc.why != "" && !strings.Contains(r.Reason+" "+fmt.Sprint(r.Err), tc.why) && tc.want[i] != sink.StatusRetryable {
				t.Errorf("%s: item %d reason %q lacks %q", tc.name, i, r.Reason, tc.why)
			}
			if tc.ra > 0 && (r.RetryAfter < tc.ra-2*time.Second || r.RetryAfter > tc.ra) {
				t.Errorf("%s: RetryAfter %v, want ~%v", tc.name, r.RetryAfter, tc.ra)
			}
		}
	}

	// 413 splits the request until the oversized item stands alone.
	mu.Lock()
	next = answer{code: 413}
	sizes = nil
	mu.Unlock()
	four := append(append([]sink.Record{}, three...), itemRec("products", feedItem{SKU: "big", Bad: true}))
	res, err := s.Send(context.Background(), four)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		want := sink.StatusOK
		if i == 3 {
			want = sink.StatusRejected
		}
		if r.Status != want {
			t.Errorf("413 split: item %d %v (%s), want %v", i, r.Status, r.Reason, want)
		}
	}
	if fmt.Sprint(sizes) != "[4 2 2 1 1]" {
		t.Errorf("413 split request sizes %v", sizes)
	}
	// An invalid JSON value is rejected alone, without a request.
	res, _ = s.Send(context.Background(), []sink.Record{{Feed: "products", Value: []byte(`{"sku":`)}})
	if res[0].Status != sink.StatusRejected || res[0].ItemRejected {
		t.Errorf("invalid JSON (a data error, not the service's rejection): %+v", res[0])
	}
}

func TestTimeoutAndClosedServerAreRetryable(t *testing.T) {
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(block)
	s, err := New(Config{BaseURL: srv.URL, Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	res, _ := s.Send(context.Background(), []sink.Record{itemRec("products", feedItem{SKU: "a"})})
	if res[0].Status != sink.StatusRetryable || res[0].Reason != "TIMEOUT" {
		t.Fatalf("timeout: %+v", res[0])
	}
	// Nothing listening at all.
	dead := httptest.NewServer(http.NotFoundHandler())
	url := dead.URL
	dead.Close()
	s2, _ := New(Config{BaseURL: url})
	res, _ = s2.Send(context.Background(), []sink.Record{itemRec("products", feedItem{SKU: "a"})})
	if res[0].Status != sink.StatusRetryable || res[0].Reason != "NETWORK" {
		t.Fatalf("connection refused: %+v", res[0])
	}
	if ok, detail := s2.Health(); ok || !strings.Contains(detail, "NETWORK") {
		t.Fatalf("Health with the service down: %v %q", ok, detail)
	}
}

func TestURLKeysAndTLS(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "key")
	if err := os.WriteFile(keyFile, []byte("file-key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	certs, err := kafkatest.NewCerts(dir)
	if err != nil {
		t.Fatal(err)
	}
	var gotKey, gotPath, gotCustom string
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotKey, gotPath, gotCustom = r.Header.Get("x-api-key"), r.URL.Path, r.Header.Get("service-connector-metadata")
		w.WriteHeader(200)
	}))
	srv.TLS = certs.ServerTLS(false)
	srv.StartTLS()
	defer srv.Close()
	s, err := New(Config{BaseURL: srv.URL + "/base", Routes: map[string]string{"products": "/catalog/products/"}, DataSpace: "space 1",
		APIKeyFile: keyFile, Headers: map[string]string{"service-connector-metadata": `{"v":1}`}, TLS: sink.TLSFiles{CAFile: certs.CAFile}})
	if err != nil {
		t.Fatal(err)
	}
	res, _ := s.Send(context.Background(), []sink.Record{itemRec("products", feedItem{SKU: "a"})})
	if res[0].Status != sink.StatusOK {
		t.Fatalf("https: %+v", res[0])
	}
	if gotKey != "file-key" || gotPath != "/base/catalog/products/space 1" || s.URL("products") != srv.URL+"/base/catalog/products/space%201" || gotCustom != `{"v":1}` {
		t.Fatalf("key %q path %q header %q", gotKey, gotPath, gotCustom)
	}
	// A server whose certificate the CA did not sign: retryable, not sent in clear.
	other, _ := kafkatest.NewCerts(t.TempDir())
	s2, _ := New(Config{BaseURL: srv.URL, TLS: sink.TLSFiles{CAFile: other.CAFile}})
	res, _ = s2.Send(context.Background(), []sink.Record{itemRec("products", feedItem{SKU: "a"})})
	if res[0].Status != sink.StatusRetryable || !strings.Contains(res[0].Err.Error(), "certificate") {
		t.Fatalf("wrong CA: %+v", res[0])
	}
	for _, bad := range []Config{
		{},
		{BaseURL: "ftp://x"},
		{BaseURL: "http://x", APIKeyEnv: "FEEDCDC_TEST_UNSET_KEY"},
		{BaseURL: "http://x", APIKeyFile: filepath.Join(dir, "missing")},
		{BaseURL: "http://x", Headers: map[string]string{"X-Api-Key": "inline"}},
		{BaseURL: "http://x", DataSpace: "a/b"},
	} {
		if _, err := New(bad); err == nil {
			t.Errorf("New(%+v) accepted a bad config", bad)
		}
	}
}

// TestRedirectIsNotFollowed: a service answering with a redirect to another
// host never receives the API key there; the items stay retryable and the
// error names the redirect target.
func TestRedirectIsNotFollowed(t *testing.T) {
	var leaked []string
	var mu sync.Mutex
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		leaked = append(leaked, r.Header.Get("x-api-key"))
		mu.Unlock()
		w.WriteHeader(200)
	}))
	defer elsewhere.Close()
	for _, code := range []int{http.StatusMovedPermanently, http.StatusFound, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		svc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, elsewhere.URL+"/stolen", code)
		}))
		t.Setenv("FEEDCDC_TEST_REDIRECT_KEY", "s3cret")
		s, err := New(Config{BaseURL: svc.URL, APIKeyEnv: "FEEDCDC_TEST_REDIRECT_KEY"})
		if err != nil {
			t.Fatal(err)
		}
		res, err := s.Send(context.Background(), []sink.Record{itemRec("products", feedItem{SKU: "a"})})
		s.Close()
		svc.Close()
		if err != nil {
			t.Fatal(err)
		}
		if r := res[0]; r.Status != sink.StatusRetryable || !strings.Contains(r.Err.Error(), elsewhere.URL+"/stolen") || !strings.Contains(r.Err.Error(), "base_url") {
			t.Errorf("HTTP %d: %+v (err %v); want retryable, naming the target and base_url", code, r, r.Err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(leaked) != 0 {
		t.Fatalf("the redirect target received %d requests (API keys %q)", len(leaked), leaked)
	}
}

// TestFencingTokenIsSentAsEpochHeader: a send whose context carries a
// fencing token (an HA instance's epoch) sends it as X-Feedcdc-Epoch, so a
// feed service can refuse what a fenced former leader had in flight; a
// send without one sends no such header.
func TestFencingTokenIsSentAsEpochHeader(t *testing.T) {
	var mu sync.Mutex
	var got []string
	svc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Header.Get(EpochHeader))
		mu.Unlock()
		w.WriteHeader(200)
	}))
	defer svc.Close()
	s, err := New(Config{BaseURL: svc.URL})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, ctx := range []context.Context{sink.WithFencingToken(context.Background(), 4711), context.Background()} {
		if _, err := s.Send(ctx, []sink.Record{itemRec("products", feedItem{SKU: "a"})}); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 || got[0] != "4711" || got[1] != "" {
		t.Fatalf("X-Feedcdc-Epoch headers %q, want [4711 \"\"]", got)
	}
}

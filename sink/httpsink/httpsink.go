// Package httpsink sends feed items to an HTTP feed service the way Adobe
// Commerce's SaaS Data Export does: POST {base_url}/{route}/{data_space}
// with a gzip JSON array of items, API keys in headers, and per-item
// failures read from an invalidFeedItems-style response field.
//
// Invariants:
//   - An item is OK only when the service answered 2xx and did not list it
//     as invalid. Items the service lists as invalid are Rejected with its
//     code and message (except code items_limit_exceeded: Retryable).
//   - 429, 5xx, 401/403/404/407/408/409/423/425, timeouts and network
//     errors (including a connection reset mid-request) make every item of
//     the request Retryable, with the service's Retry-After when given:
//     none of them says anything is wrong with the items. Other 4xx (400,
//     422, ...) are Rejected, except that on a 400 listing invalid items
//     only the listed items are Rejected and the others Retryable (they were
//     refused only because of their neighbours). A 413 splits the request
//     until the item that is too large stands alone.
//   - Redirects are never followed (they would carry the API key headers
//     elsewhere): a 3xx makes every item of the request Retryable, with an
//     error naming the target so that base_url can be corrected.
//   - Every result carries the response's request id (x-request-id).
//   - The API key is read once at start from the config, an environment
//     variable or a file, sent only in the configured headers, and never
//     logged or put in an error.
//   - Tombstones (nil values) are acknowledged without being sent: the
//     service knows deletions as items with deleted: true.
package httpsink

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/feedcdc/feedcdc/sink"
)

// Config configures an HTTP sink. Field names follow config.yaml's
// sinks.<name>.http section.
type Config struct {
	Name               string            // sink name (reasons, logs)
	BaseURL            string            // base_url (required), http or https
	Routes             map[string]string // routes: feed -> route; default the feed name
	DataSpace          string            // data_space: appended to the URL when set
	Headers            map[string]string // headers: extra non-secret request headers
	APIKey             string            // api_key
	APIKeyEnv          string            // api_key_env: environment variable holding the key
	APIKeyFile         string            // api_key_file: file holding the key
	APIKeyHeaders      []string          // api_key_headers; default ["x-api-key"]
	Timeout            time.Duration     // timeout of one request; default 30 s
	Gzip               bool              // gzip request bodies
	MaxItemsPerRequest int               // max_items_per_request; default 100
	ErrorItemsField    string            // error_items_field; default "invalidFeedItems"
	RequestIDHeader    string            // request_id_header; default "x-request-id"
	TLS                sink.TLSFiles     // tls (for https base URLs)
	TLSConfig          *tls.Config       // programmatic TLS config (overrides TLS)
	Client             *http.Client      // optional client (its Timeout is left as is)
	Logger             *slog.Logger
}

// Sink is an HTTP feed service sink. It is safe for concurrent use.
type Sink struct {
	cfg    Config
	base   *url.URL
	apiKey string
	client *http.Client
	log    *slog.Logger
	health sink.Health

	mu     sync.Mutex
	closed bool
}

var _ sink.Sink = (*Sink)(nil)

// maxResponseBody bounds how much of a response is read.
const maxResponseBody = 4 << 20

// New validates cfg and builds the sink. It does not contact the service.
func New(cfg Config) (*Sink, error) {
	if cfg.Name == "" {
		cfg.Name = "http"
	}
	if cfg.BaseURL == "" {
		return nil, fmt.Errorf("http sink %s: base_url is empty; set it to the feed service URL, e.g. https://commerce.adobe.io/feeds", cfg.Name)
	}
	u, err := url.Parse(strings.TrimRight(cfg.BaseURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("http sink %s: base_url %q must be an absolute http:// or https:// URL", cfg.Name, cfg.BaseURL)
	}
	if strings.ContainsAny(cfg.DataSpace, "/?#") {
		return nil, fmt.Errorf("http sink %s: data_space %q must not contain '/', '?' or '#'", cfg.Name, cfg.DataSpace)
	}
	key, err := sink.ReadSecret("api key", cfg.APIKey, cfg.APIKeyEnv, cfg.APIKeyFile)
	if err != nil {
		return nil, fmt.Errorf("http sink %s: %w", cfg.Name, err)
	}
	if len(cfg.APIKeyHeaders) == 0 {
		cfg.APIKeyHeaders = []string{"x-api-key"}
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.MaxItemsPerRequest <= 0 {
		cfg.MaxItemsPerRequest = 100
	}
	if cfg.ErrorItemsField == "" {
		cfg.ErrorItemsField = "invalidFeedItems"
	}
	if cfg.RequestIDHeader == "" {
		cfg.RequestIDHeader = "x-request-id"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	for h := range cfg.Headers {
		for _, kh := range cfg.APIKeyHeaders {
			if strings.EqualFold(h, kh) {
				return nil, fmt.Errorf("http sink %s: header %q is also an api_key_headers entry; put the key in api_key/api_key_env/api_key_file, not in headers", cfg.Name, h)
			}
		}
	}
	client := cfg.Client
	if client == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = 8
		if u.Scheme == "https" {
			tc := cfg.TLSConfig
			if tc == nil {
				if tc, err = cfg.TLS.Build(); err != nil {
					return nil, fmt.Errorf("http sink %s: %w", cfg.Name, err)
				}
			}
			if tc.InsecureSkipVerify {
				cfg.Logger.Warn("http sink: TLS server certificate verification is OFF (insecure_skip_verify); use only for testing", "sink", cfg.Name)
			}
			tr.TLSClientConfig = tc
		}
		client = &http.Client{Transport: tr}
	}
	// Never follow a redirect: it would carry the API key headers to
	// whatever address the response names (Go strips only Authorization and
	// cookies on a cross-host redirect). A 3xx is answered as retryable with
	// the target in the error, so that base_url can be corrected.
	c := *client
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	client = &c
	if key == "" {
		cfg.Logger.Warn("http sink: no API key configured; requests are sent without one", "sink", cfg.Name)
	}
	return &Sink{cfg: cfg, base: u, apiKey: key, client: client, log: cfg.Logger.With("sink", cfg.Name)}, nil
}

// Name implements sink.Sink.
func (s *Sink) Name() string { return s.cfg.Name }

// URL returns the endpoint of a feed: {base_url}/{route}[/{data_space}].
func (s *Sink) URL(feed string) string {
	route := feed
	if r, ok := s.cfg.Routes[feed]; ok && r != "" {
		route = r
	}
	u := *s.base
	u.RawPath = ""
	u.Path = strings.TrimRight(u.Path, "/") + "/" + strings.Trim(route, "/")
	if s.cfg.DataSpace != "" {
		u.Path += "/" + s.cfg.DataSpace
	}
	return u.String()
}

// Send implements sink.Sink. Items are grouped by feed and sent in requests
// of at most max_items_per_request items, one request at a time.
func (s *Sink) Send(ctx context.Context, recs []sink.Record) ([]sink.Result, error) {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return nil, errors.New("http sink " + s.cfg.Name + " is closed")
	}
	results := make([]sink.Result, len(recs))
	byFeed := map[string][]int{}
	var feeds []string
	for i := range recs {
		switch {
		case recs[i].Value == nil:
			continue // tombstone: nothing to send, acknowledged
		case !json.Valid(recs[i].Value):
			results[i] = sink.Result{Status: sink.StatusRejected, Err: errors.New("item value is not valid JSON"), Reason: "INVALID_JSON"}
			continue
		}
		f := recs[i].Feed
		if _, ok := byFeed[f]; !ok {
			feeds = append(feeds, f)
		}
		byFeed[f] = append(byFeed[f], i)
	}
	for _, f := range feeds {
		idx := byFeed[f]
		for start := 0; start < len(idx); start += s.cfg.MaxItemsPerRequest {
			end := min(start+s.cfg.MaxItemsPerRequest, len(idx))
			s.post(ctx, f, recs, idx[start:end], results)
		}
	}
	s.health.Observe(results, time.Now())
	return results, nil
}

// post sends the items idx of one feed in one request and fills their
// results; on 413 it splits the request.
func (s *Sink) post(ctx context.Context, feed string, recs []sink.Record, idx []int, results []sink.Result) {
	setAll := func(r sink.Result) {
		for _, i := range idx {
			results[i] = r
		}
	}
	if err := ctx.Err(); err != nil {
		setAll(sink.Result{Status: sink.StatusRetryable, Err: err, Reason: "CANCELED"})
		return
	}
	body, err := s.body(recs, idx)
	if err != nil {
		setAll(sink.Result{Status: sink.StatusRetryable, Err: err, Reason: "ENCODE"})
		return
	}
	endpoint := s.URL(feed)
	resp, failed := s.send(ctx, feed, endpoint, body, len(idx))
	if failed != nil {
		setAll(*failed)
		return
	}
	if resp.code == http.StatusRequestEntityTooLarge {
		if len(idx) > 1 {
			mid := len(idx) / 2
			s.post(ctx, feed, recs, idx[:mid], results)
			s.post(ctx, feed, recs, idx[mid:], results)
			return
		}
		setAll(sink.Result{Status: sink.StatusRejected, Err: fmt.Errorf("HTTP 413 for a single item of %d bytes", len(recs[idx[0]].Value)), Reason: "HTTP 413: item too large", RequestID: resp.requestID})
		return
	}
	invalid, listErr := parseInvalid(resp.body, s.cfg.ErrorItemsField, len(idx))
	if listErr != nil {
		s.log.Warn("http feed response lists invalid items that cannot be matched to the request; using the HTTP status for every item",
			"feed", feed, "status_code", resp.code, "request_id", resp.requestID, "error", listErr)
		invalid = nil
	}
	base := requestResult(endpoint, resp, len(invalid) > 0)
	s.itemResults(feed, endpoint, resp, base, invalid, recs, idx, results)
}

// response is what post needs of the service's answer.
type response struct {
	code      int
	header    http.Header
	body      []byte // at most maxResponseBody bytes
	requestID string
}

// send POSTs body to endpoint and reads the answer. When there is no
// usable answer (no request, a network error, a 2xx answer cut short) it
// returns the result of every item of the request instead.
func (s *Sink) send(ctx context.Context, feed, endpoint string, body []byte, items int) (response, *sink.Result) {
	rctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return response{}, &sink.Result{Status: sink.StatusRejected, Err: err, Reason: "BAD_REQUEST_URL"}
	}
	s.setHeaders(req)
	resp, err := s.client.Do(req)
	if err != nil {
		reason := "NETWORK"
		if errors.Is(err, context.DeadlineExceeded) {
			reason = "TIMEOUT"
		}
		s.log.Warn("http feed request failed", "feed", feed, "url", endpoint, "items", items, "reason", reason, "error", err)
		return response{}, &sink.Result{Status: sink.StatusRetryable, Err: fmt.Errorf("POST %s: %w", endpoint, err), Reason: reason}
	}
	respBody, rerr := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody))
	resp.Body.Close()
	r := response{code: resp.StatusCode, header: resp.Header, body: respBody, requestID: resp.Header.Get(s.cfg.RequestIDHeader)}
	if rerr != nil && r.code/100 == 2 {
		// The service said yes but the answer was cut: we cannot know which
		// items it refused, so send them again.
		return r, &sink.Result{Status: sink.StatusRetryable, Err: fmt.Errorf("read response: %w", rerr), Reason: "NETWORK", RequestID: r.requestID}
	}
	return r, nil
}

// setHeaders sets the content headers, the configured headers and the API
// key headers of a request.
func (s *Sink) setHeaders(req *http.Request) {
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if s.cfg.Gzip {
		req.Header.Set("Content-Encoding", "gzip")
	}
	for k, v := range s.cfg.Headers {
		req.Header.Set(k, v)
	}
	if s.apiKey != "" {
		for _, h := range s.cfg.APIKeyHeaders {
			req.Header.Set(h, s.apiKey)
		}
	}
	if e, ok := sink.FencingToken(req.Context()); ok {
		req.Header.Set(EpochHeader, strconv.FormatInt(e, 10))
	}
}

// EpochHeader carries a high-availability instance's fencing token (its
// leadership's epoch; docs/operations.md "High availability"): a feed
// service that answers 409 to a request whose epoch is lower than the
// highest it has seen refuses what a paused former leader had in flight.
const EpochHeader = "X-Feedcdc-Epoch"

// requestResult is the result the HTTP status gives every item of the
// request that the answer does not list as invalid (someInvalid: it lists
// some).
func requestResult(endpoint string, resp response, someInvalid bool) sink.Result {
	code := resp.code
	snippet := bodySnippet(resp.body)
	base := sink.Result{RequestID: resp.requestID}
	switch {
	case code/100 == 2:
		// base stays OK
	case code/100 == 3:
		base.Status = sink.StatusRetryable
		base.Reason = fmt.Sprintf("HTTP %d redirect", code)
		base.Err = fmt.Errorf("POST %s: HTTP %d redirect to %q: the sink does not follow redirects (they would carry the API key to another address); set base_url to the address the service is really at", endpoint, code, resp.header.Get("Location"))
	case retryableStatus(code):
		base.Status = sink.StatusRetryable
		base.Reason = fmt.Sprintf("HTTP %d", code)
		base.Err = fmt.Errorf("POST %s: HTTP %d %s", endpoint, code, snippet)
		base.RetryAfter = retryAfter(resp.header.Get("Retry-After"), time.Now())
	case code == http.StatusBadRequest && someInvalid:
		// Only the listed items are at fault; the rest were refused with them.
		base.Status = sink.StatusRetryable
		base.Reason = "HTTP 400: refused with invalid items of the same request"
		base.Err = fmt.Errorf("POST %s: HTTP 400 (other items invalid)", endpoint)
	default:
		base.Status = sink.StatusRejected
		base.Reason = fmt.Sprintf("HTTP %d", code)
		if snippet != "" {
			base.Reason += ": " + snippet
		}
		base.Err = fmt.Errorf("POST %s: HTTP %d %s", endpoint, code, snippet)
	}
	return base
}

// itemResults fills the results of the items idx: base, or the item's own
// rejection when the answer lists it as invalid; a request with failed
// items is logged.
func (s *Sink) itemResults(feed, endpoint string, resp response, base sink.Result, invalid map[int]invalidItem, recs []sink.Record, idx []int, results []sink.Result) {
	var rejected, retry int
	var ids []string      // examples of failed items, for the log
	var itemReason string // a listed item's own reason, a rejected one's first
	var itemRejected bool
	for j, i := range idx {
		r := base
		if it, ok := invalid[j]; ok {
			r = sink.Result{Status: sink.StatusRejected, RequestID: resp.requestID, Reason: it.reason(), ItemRejected: true}
			if it.Code == "items_limit_exceeded" {
				r.Status, r.ItemRejected = sink.StatusRetryable, false
			}
			r.Err = errors.New(r.Reason)
			if itemReason == "" || r.Status == sink.StatusRejected && !itemRejected {
				itemReason, itemRejected = r.Reason, r.Status == sink.StatusRejected
			}
		}
		if r.Status != sink.StatusOK && len(ids) < 3 {
			ids = append(ids, recs[i].ID)
		}
		switch r.Status {
		case sink.StatusRejected:
			rejected++
		case sink.StatusRetryable:
			retry++
		}
		results[i] = r
	}
	if rejected+retry > 0 {
		reason := base.Reason
		if reason == "" || (itemReason != "" && rejected > 0) {
			reason = itemReason
		}
		s.log.Warn("http feed: items not accepted", "feed", feed, "url", endpoint, "status_code", resp.code,
			"request_id", resp.requestID, "items", len(idx), "rejected", rejected, "retryable", retry, "ids", strings.Join(ids, ", "), "reason", reason)
	}
}

// body is the JSON array of the items, gzipped if configured.
func (s *Sink) body(recs []sink.Record, idx []int) ([]byte, error) {
	var buf bytes.Buffer
	var w io.Writer = &buf
	var zw *gzip.Writer
	if s.cfg.Gzip {
		zw = gzip.NewWriter(&buf)
		w = zw
	}
	if _, err := io.WriteString(w, "["); err != nil {
		return nil, err
	}
	for j, i := range idx {
		if j > 0 {
			if _, err := io.WriteString(w, ","); err != nil {
				return nil, err
			}
		}
		if _, err := w.Write(recs[i].Value); err != nil {
			return nil, err
		}
	}
	if _, err := io.WriteString(w, "]"); err != nil {
		return nil, err
	}
	if zw != nil {
		if err := zw.Close(); err != nil {
			return nil, err
		}
	}
	return buf.Bytes(), nil
}

func retryableStatus(code int) bool {
	switch code {
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound, http.StatusProxyAuthRequired,
		http.StatusRequestTimeout, http.StatusConflict, http.StatusLocked, http.StatusTooEarly, http.StatusTooManyRequests:
		return true
	}
	return code >= 500
}

// retryAfter parses a Retry-After header (seconds or an HTTP date), capped
// at 10 minutes.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var d time.Duration
	if n, err := strconv.Atoi(v); err == nil {
		d = time.Duration(n) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	if d < 0 {
		d = 0
	}
	return min(d, 10*time.Minute)
}

func bodySnippet(b []byte) string {
	s := strings.Join(strings.Fields(string(b)), " ")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// invalidItem is one entry of the response's invalid items list, in either
// of the service's formats: {"itemIndex": N, "code": ..., "message": ...}
// or {"field": "/<index>/<field>", "message": ...}.
type invalidItem struct {
	ItemIndex *int   `json:"itemIndex"`
	Field     string `json:"field"`
	Code      string `json:"code"`
	Message   string `json:"message"`
}

func (it invalidItem) reason() string {
	var parts []string
	if it.Code != "" {
		parts = append(parts, it.Code)
	}
	if it.Field != "" {
		parts = append(parts, it.Field)
	}
	if it.Message != "" {
		parts = append(parts, it.Message)
	}
	if len(parts) == 0 {
		return "invalid item"
	}
	return "invalid: " + strings.Join(parts, ": ")
}

// parseInvalid reads the invalid items field of a JSON object body and maps
// each entry to its item's index in the request. An error means the list
// exists but an entry cannot be matched to an item; the caller then ignores
// the whole list (as the reference service client does).
func parseInvalid(body []byte, field string, n int) (map[int]invalidItem, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 || body[0] != '{' {
		return nil, nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(body, &obj); err != nil {
		return nil, nil
	}
	raw, ok := obj[field]
	if !ok || string(raw) == "null" {
		return nil, nil
	}
	var items []invalidItem
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, fmt.Errorf("%s is not a list of items: %v", field, err)
	}
	out := make(map[int]invalidItem, len(items))
	for k, it := range items {
		idx := -1
		switch {
		case it.ItemIndex != nil:
			idx = *it.ItemIndex
		case strings.HasPrefix(it.Field, "/"):
			seg := strings.SplitN(strings.TrimPrefix(it.Field, "/"), "/", 2)[0]
			if v, err := strconv.Atoi(seg); err == nil {
				idx = v
			}
		}
		if idx < 0 || idx >= n {
			return nil, fmt.Errorf("%s[%d] names no item of the %d sent (itemIndex/field %q)", field, k, n, it.Field)
		}
		if prev, dup := out[idx]; dup {
			// Several problems with one item: keep them all in the reason.
			it.Message = strings.TrimPrefix(prev.reason(), "invalid: ") + "; " + strings.TrimPrefix(it.reason(), "invalid: ")
			if it.Code != prev.Code {
				it.Code = "" // mixed problems: rejected
			}
			it.Field = ""
		}
		out[idx] = it
	}
	return out, nil
}

// Health implements sink.HealthReporter.
func (s *Sink) Health() (bool, string) { return s.health.Health() }

// Close releases idle connections.
func (s *Sink) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.client.CloseIdleConnections()
	return nil
}

// Package dashboard serves feedcdc's data management dashboard: a JSON API
// under /api/ and a single-page UI (plain HTML, CSS and JavaScript embedded
// in the binary; nothing is loaded from the internet) showing per-feed
// counts, resync progress, failed items with their errors and JSON, and a
// health panel, refreshing itself every few seconds.
//
// Invariants:
//   - The dashboard reads and acts only through the Backend interface; it
//     holds no state of its own besides its options.
//   - Mutating endpoints (schedule resync, retry failed) and the state file
//     endpoints (check, backup: the copy holds every item) require
//     "Authorization: Bearer <token>", compared in constant time; without a
//     configured token they are disabled (403). The token is never logged.
//   - The item endpoints (GET /api/items, GET /api/feeds/{feed}/items/{id}:
//     full item payloads) require the same token when Options.ItemsToken
//     says so; by default ("auto") exactly when the dashboard listens on a
//     non-loopback address.
//   - The CLI's job endpoints (POST /api/jobs, GET /api/jobs/{id}) need
//     the token too; they exist only when the Backend implements
//     JobBackend (501 otherwise). GET /api/status (StatusBackend) reads.
//   - Responses carry a strict Content-Security-Policy (scripts and styles
//     from the dashboard itself only), and the UI renders every backend
//     string as text, never as HTML.
package dashboard

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

//go:embed assets
var assets embed.FS

// Assets returns the embedded UI files (index.html, app.js, style.css).
func Assets() fs.FS {
	sub, err := fs.Sub(assets, "assets")
	if err != nil {
		panic(fmt.Sprintf("dashboard: embedded assets missing: %v", err)) // build-time invariant
	}
	return sub
}

// Options configures the dashboard.
type Options struct {
	// Token enables the mutating endpoints; requests must send
	// "Authorization: Bearer <Token>". Empty: actions are disabled.
	Token string
	// Logger receives one line per action and per backend error
	// (slog.Default() when nil).
	Logger *slog.Logger
	// RefreshInterval is how often the page refreshes itself (default 5s,
	// at least 1s).
	RefreshInterval time.Duration
	// MaxResyncIDs bounds the ids of one resync request (default 10000).
	MaxResyncIDs int
	// Timeout bounds each backend call (default 10s).
	Timeout time.Duration
	// Listen is the address the dashboard is served on; with ItemsToken
	// "auto" it decides whether the item endpoints need the token ("":
	// unknown, treated as loopback).
	Listen string
	// ItemsToken says when the item endpoints (full item payloads) need
	// the token: ItemsTokenAuto (default: when Listen is not a loopback
	// address), ItemsTokenAlways or ItemsTokenNever.
	ItemsToken string
}

// Values of Options.ItemsToken (config: dashboard.items_token).
const (
	ItemsTokenAuto   = "auto"
	ItemsTokenAlways = "always"
	ItemsTokenNever  = "never"
)

// ItemsNeedToken reports whether the item endpoints need the token for the
// given mode (ItemsToken*; "" is auto) and listen address. An address
// without a host (":8484") listens on every interface: not loopback. An
// empty listen (not told) keeps them open, as on loopback.
func ItemsNeedToken(mode, listen string) bool {
	switch mode {
	case ItemsTokenAlways:
		return true
	case ItemsTokenNever:
		return false
	}
	return listen != "" && !IsLoopback(listen)
}

// IsLoopback reports whether the host of a host:port listen address is
// "localhost" or a loopback IP.
func IsLoopback(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		host = listen
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

const (
	maxBody      = 1 << 20
	defaultLimit = 50
	maxLimit     = 500
)

type server struct {
	b          Backend
	o          Options
	itemsToken bool // the item endpoints need the token
	tokenHash  [32]byte
	index      []byte
	static     fs.FS
}

// New returns the dashboard's HTTP handler, to mount at the root of its own
// listener (the paths are /, /assets/ and /api/).
func New(b Backend, o Options) http.Handler {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.RefreshInterval <= 0 {
		o.RefreshInterval = 5 * time.Second
	}
	if o.RefreshInterval < time.Second {
		o.RefreshInterval = time.Second
	}
	if o.MaxResyncIDs <= 0 {
		o.MaxResyncIDs = 10000
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	s := &server{b: b, o: o, tokenHash: sha256.Sum256([]byte(o.Token)), itemsToken: ItemsNeedToken(o.ItemsToken, o.Listen)}
	static := Assets()
	s.static = static
	s.index = s.renderIndex()

	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.handleIndex)
	mux.Handle("GET /assets/", http.StripPrefix("/assets/", http.FileServerFS(static)))
	mux.HandleFunc("GET /api/overview", s.handleOverview)
	mux.HandleFunc("GET /api/health", s.handleHealth)
	items, item := s.handleItems, s.handleItem
	if s.itemsToken {
		items, item = s.authorized(items), s.authorized(item)
	}
	mux.HandleFunc("GET /api/items", items)
	mux.HandleFunc("GET /api/feeds/{feed}/items/{id}", item)
	mux.HandleFunc("POST /api/feeds/{feed}/resync", s.authorized(s.handleResync))
	mux.HandleFunc("POST /api/feeds/{feed}/retry", s.authorized(s.handleRetry))
	mux.HandleFunc("POST /api/feeds/{feed}/verify", s.authorized(s.handleVerify))
	mux.HandleFunc("GET /api/state/check", s.authorized(s.handleStateCheck))
	mux.HandleFunc("GET /api/state/backup", s.authorized(s.handleStateBackup))
	s.registerJobs(mux)
	s.registerRawSnapshots(mux)
	mux.HandleFunc("POST /api/auth/check", s.authorized(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such API endpoint: "+r.Method+" "+r.URL.Path)
	})
	return securityHeaders(mux)
}

func (s *server) stateBackend(w http.ResponseWriter) (StateBackend, bool) {
	sb, ok := s.b.(StateBackend)
	if !ok {
		writeError(w, http.StatusNotImplemented, "this connector cannot check or back up its state file through the dashboard")
	}
	return sb, ok
}

// handleStateCheck answers 200 with the report when the state file passes
// and 500 with the report when it does not. It runs without the backend
// timeout: a check reads the whole file.
func (s *server) handleStateCheck(w http.ResponseWriter, r *http.Request) {
	sb, ok := s.stateBackend(w)
	if !ok {
		return
	}
	report, passed, err := sb.CheckState(r.Context())
	if err != nil {
		s.backendError(w, r, "state check", err)
		return
	}
	s.o.Logger.Info("dashboard: state check", "passed", passed, "remote", r.RemoteAddr)
	code := http.StatusOK
	if !passed {
		code = http.StatusInternalServerError
	}
	writeJSON(w, code, report)
}

// handleStateBackup streams a consistent copy of the state file with its
// exact Content-Length, so that a cut-off copy is detected by the client.
func (s *server) handleStateBackup(w http.ResponseWriter, r *http.Request) {
	sb, ok := s.stateBackend(w)
	if !ok {
		return
	}
	started := false
	n, err := sb.BackupState(r.Context(), w, func(size int64) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
		started = true
	})
	if err != nil {
		if !started {
			s.backendError(w, r, "state backup", err)
			return
		}
		s.o.Logger.Error("dashboard: state backup cut off", "bytes", n, "err", err, "remote", r.RemoteAddr)
		return
	}
	s.o.Logger.Info("dashboard: state backup sent", "bytes", n, "remote", r.RemoteAddr)
}

func (s *server) renderIndex() []byte {
	raw, err := fs.ReadFile(s.static, "index.html")
	if err != nil {
		panic(fmt.Sprintf("dashboard: embedded index.html missing: %v", err))
	}
	tpl := template.Must(template.New("index").Parse(string(raw)))
	var buf bytes.Buffer
	if err := tpl.Execute(&buf, map[string]any{
		"RefreshMS":      s.o.RefreshInterval.Milliseconds(),
		"ActionsEnabled": s.o.Token != "",
		"ItemsNeedToken": s.itemsToken,
	}); err != nil {
		panic(fmt.Sprintf("dashboard: rendering index.html: %v", err))
	}
	return buf.Bytes()
}

func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		next.ServeHTTP(w, r)
	})
}

func (s *server) handleIndex(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(s.index)
}

// authorized wraps a handler with the bearer-token check: the mutating
// and state file endpoints, and the item endpoints when s.itemsToken.
func (s *server) authorized(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.o.Token == "" {
			writeError(w, http.StatusForbidden, "dashboard actions are disabled: configure a dashboard token (dashboard.token or FEEDCDC_DASHBOARD_TOKEN) and restart")
			return
		}
		auth := r.Header.Get("Authorization")
		tok, ok := strings.CutPrefix(auth, "Bearer ")
		if !ok || tok == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="feedcdc"`)
			writeError(w, http.StatusUnauthorized, "this request needs the dashboard token: send Authorization: Bearer <token>")
			return
		}
		got := sha256.Sum256([]byte(tok))
		if subtle.ConstantTimeCompare(got[:], s.tokenHash[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="feedcdc", error="invalid_token"`)
			s.o.Logger.Warn("dashboard: rejected action with a wrong token", "path", r.URL.Path, "remote", r.RemoteAddr)
			writeError(w, http.StatusUnauthorized, "the dashboard token is wrong")
			return
		}
		next(w, r)
	}
}

func (s *server) ctx(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), s.o.Timeout)
}

func (s *server) handleOverview(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := s.ctx(r)
	defer cancel()
	ov, err := s.b.Overview(ctx)
	if err != nil {
		s.backendError(w, r, "overview", err)
		return
	}
	if ov.Feeds == nil {
		ov.Feeds = []FeedStatus{}
	}
	writeJSON(w, http.StatusOK, ov)
}

func (s *server) handleHealth(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := s.ctx(r)
	defer cancel()
	h, err := s.b.Health(ctx)
	if err != nil {
		s.backendError(w, r, "health", err)
		return
	}
	h.RetentionStatus = RetentionStatus(secondsToDuration(h.CheckpointAgeSeconds), secondsToDuration(h.BinlogRetentionSeconds))
	if h.Sinks == nil {
		h.Sinks = []SinkStatus{}
	}
	slices.SortFunc(h.Sinks, func(a, b SinkStatus) int { return strings.Compare(a.Name, b.Name) })
	if h.Checks == nil {
		h.Checks = []CheckResult{}
	}
	writeJSON(w, http.StatusOK, h)
}

func secondsToDuration(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

func (s *server) handleItems(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query()
	q := ItemQuery{Feed: v.Get("feed"), Status: v.Get("status"), SKU: strings.TrimSpace(v.Get("sku")), Limit: defaultLimit}
	switch q.Status {
	case "", FilterFailed, FilterRetryable, FilterRejected, FilterPending, FilterSent, FilterAll:
	default:
		writeError(w, http.StatusBadRequest, fmt.Sprintf("status filter %q is not one of failed, retryable, rejected, pending, sent, all", q.Status))
		return
	}
	if q.Status == "" {
		q.Status = FilterFailed
	}
	var err error
	if q.Offset, err = intParam(v.Get("offset"), 0, 0, 1<<31-1); err != nil {
		writeError(w, http.StatusBadRequest, "offset: "+err.Error())
		return
	}
	if q.Limit, err = intParam(v.Get("limit"), defaultLimit, 1, maxLimit); err != nil {
		writeError(w, http.StatusBadRequest, "limit: "+err.Error())
		return
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	page, err := s.b.Items(ctx, q)
	if err != nil {
		s.backendError(w, r, "items", err)
		return
	}
	if page.Items == nil {
		page.Items = []ItemRow{}
	}
	for i := range page.Items {
		if page.Items[i].StatusText == "" {
			page.Items[i].StatusText = StatusLabel(page.Items[i].Status)
		}
		if page.Items[i].Identifiers == nil {
			page.Items[i].Identifiers = map[string]string{}
		}
	}
	page.Offset, page.Limit = q.Offset, q.Limit
	writeJSON(w, http.StatusOK, page)
}

func intParam(s string, def, lo, hi int) (int, error) {
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("%q is not a whole number between %d and %d", s, lo, hi)
	}
	return n, nil
}

func (s *server) handleItem(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := s.ctx(r)
	defer cancel()
	raw, err := s.b.Item(ctx, r.PathValue("feed"), r.PathValue("id"))
	if err != nil {
		s.backendError(w, r, "item", err)
		return
	}
	if !json.Valid(raw) {
		s.backendError(w, r, "item", errors.New("backend returned invalid JSON for the item"))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(raw)
}

// ResyncRequest is the body of POST /api/feeds/{feed}/resync.
type ResyncRequest struct {
	IDs       []string `json:"ids"`        // SKUs; empty requires WholeFeed
	WholeFeed bool     `json:"whole_feed"` // must be true to resync the whole feed
}

// ActionResponse is the answer of a successful action.
type ActionResponse struct {
	Status  string `json:"status"` // "scheduled" or "started"
	Feed    string `json:"feed"`
	IDs     int    `json:"ids"`
	Message string `json:"message"`
	// Job is the resync or retry job started (backends that run jobs);
	// follow it with GET /api/jobs/{id}.
	Job *Job `json:"job,omitempty"`
}

func (s *server) handleResync(w http.ResponseWriter, r *http.Request) {
	feed := r.PathValue("feed")
	var req ResyncRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, `body must be JSON like {"ids":["SKU-1","SKU-2"]} or {"whole_feed":true}: `+err.Error())
		return
	}
	ids := make([]string, 0, len(req.IDs))
	seen := make(map[string]bool, len(req.IDs))
	for _, id := range req.IDs {
		id = strings.TrimSpace(id)
		if id != "" && !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	switch {
	case len(ids) == 0 && !req.WholeFeed:
		writeError(w, http.StatusBadRequest, `give the SKUs to resync in "ids", or set "whole_feed": true to resync every item of the feed`)
		return
	case len(ids) > 0 && req.WholeFeed:
		writeError(w, http.StatusBadRequest, `give either "ids" or "whole_feed", not both`)
		return
	case len(ids) > s.o.MaxResyncIDs:
		writeError(w, http.StatusBadRequest, fmt.Sprintf("%d ids in one request; the limit is %d: split the list, or resync the whole feed", len(ids), s.o.MaxResyncIDs))
		return
	}
	op := "full sync" // the operation names of the connector's logs (Adobe's)
	if len(ids) > 0 {
		op = "partial resync by ids"
	}
	if jb, ok := s.b.(JobBackend); ok {
		// The same job the CLI starts: the page follows its progress.
		job, err := jb.StartJob(JobRequest{Kind: JobResync, Feed: feed, IDs: ids})
		if err != nil {
			s.backendError(w, r, "start resync", err)
			return
		}
		s.o.Logger.Info("dashboard action", "operation", op, "feed", feed, "ids", len(ids), "job", job.ID, "remote", r.RemoteAddr)
		writeJSON(w, http.StatusAccepted, ActionResponse{Status: "started", Feed: feed, IDs: len(ids),
			Message: fmt.Sprintf("resync job %s of %s started", job.ID, feed), Job: &job})
		return
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	if err := s.b.ScheduleResync(ctx, feed, ids); err != nil {
		s.backendError(w, r, "schedule resync", err)
		return
	}
	msg := fmt.Sprintf("resync of %d item(s) of %s scheduled", len(ids), feed)
	if len(ids) == 0 {
		msg = "resync of the whole feed " + feed + " scheduled"
	}
	s.o.Logger.Info("dashboard action", "operation", op, "feed", feed, "ids", len(ids), "remote", r.RemoteAddr)
	writeJSON(w, http.StatusAccepted, ActionResponse{Status: "scheduled", Feed: feed, IDs: len(ids), Message: msg})
}

func (s *server) handleRetry(w http.ResponseWriter, r *http.Request) {
	feed := r.PathValue("feed")
	if jb, ok := s.b.(JobBackend); ok {
		// The same job as the CLI's `retry --all`: the page follows it.
		job, err := jb.StartJob(JobRequest{Kind: JobRetry, Feed: feed, All: true})
		if err != nil {
			s.backendError(w, r, "retry failed items", err)
			return
		}
		s.o.Logger.Info("dashboard action", "operation", "retry failed items", "feed", feed, "job", job.ID, "remote", r.RemoteAddr)
		writeJSON(w, http.StatusAccepted, ActionResponse{Status: "started", Feed: feed,
			Message: fmt.Sprintf("retry job %s of %s started", job.ID, feed), Job: &job})
		return
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	if err := s.b.RetryFailed(ctx, feed); err != nil {
		s.backendError(w, r, "retry failed items", err)
		return
	}
	s.o.Logger.Info("dashboard action", "operation", "retry failed items", "feed", feed, "remote", r.RemoteAddr)
	writeJSON(w, http.StatusAccepted, ActionResponse{Status: "started", Feed: feed, Message: "retry of failed items of " + feed + " started"})
}

func (s *server) backendError(w http.ResponseWriter, r *http.Request, what string, err error) {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, ErrNotFound):
		code = http.StatusNotFound
	case errors.Is(err, ErrInvalid):
		code = http.StatusBadRequest
	case errors.Is(err, ErrBusy):
		code = http.StatusConflict
	case errors.Is(err, context.DeadlineExceeded):
		code = http.StatusGatewayTimeout
	}
	if code >= 500 {
		s.o.Logger.Error("dashboard: backend failed", "operation", what, "path", r.URL.Path, "error", err)
	}
	writeError(w, code, what+": "+err.Error())
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

package dashboard

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"
	"time"
)

// Backend is what the dashboard needs from the connector. The connector
// implements it over its state store, feed registry and runtime status.
// Every method may be called concurrently, from HTTP handlers, with a
// request-scoped context.
type Backend interface {
	// Overview returns per-feed counts and the source/checkpoint status.
	Overview(ctx context.Context) (Overview, error)
	// Items returns one page of feed items matching q (the failed-items
	// table). Implementations should use q.MatchStatus and q.MatchSKU so
	// every backend filters the same way.
	Items(ctx context.Context, q ItemQuery) (ItemPage, error)
	// Item returns the JSON of one feed item (the last built payload, or the
	// stored minimal payload). Unknown feed or id: an error wrapping
	// ErrNotFound.
	Item(ctx context.Context, feed, id string) (json.RawMessage, error)
	// ScheduleResync schedules the feed items of the given SKUs (or the
	// whole feed when ids is empty) to be rebuilt and sent again even if
	// unchanged. Unknown feed: wrap ErrNotFound; bad ids: wrap ErrInvalid;
	// feed locked by another operation: wrap ErrBusy.
	ScheduleResync(ctx context.Context, feed string, ids []string) error
	// RetryFailed runs the feed's retry of failed items now (in the
	// background; it returns once the job is started or queued).
	RetryFailed(ctx context.Context, feed string) error
	// Health returns the source and sink connections, the preflight check
	// results and the checkpoint age against the binlog retention.
	Health(ctx context.Context) (Health, error)
}

// StateBackend is implemented by backends that can check and copy the
// running connector's state file, which no other process can open while
// the connector holds it (feedcdc state check / feedcdc state backup).
// A Backend without it answers those endpoints with 501.
type StateBackend interface {
	// CheckState checks the state file and returns the report (sent as
	// JSON) and whether it passed.
	CheckState(ctx context.Context) (report any, ok bool, err error)
	// BackupState writes a consistent copy of the state file to w, calling
	// size with its exact length before the first byte.
	BackupState(ctx context.Context, w io.Writer, size func(int64)) (int64, error)
}

// Errors a Backend wraps so the API answers with the right HTTP status.
var (
	ErrNotFound = errors.New("not found")         // 404
	ErrInvalid  = errors.New("invalid request")   // 400
	ErrBusy     = errors.New("operation running") // 409
)

// Feed modes.
const (
	ModeImmediate = "immediate"
	ModeLegacy    = "legacy"
)

// Feed item status codes, as stored in the feed state (see DESIGN.md).
const (
	StatusSent      = 200 // submitted to the service
	StatusRejected  = 400 // data error; final until the item changes
	StatusItemError = 1   // item rejected by the service; final until it changes
	StatusRetryable = 2   // failed, will retry
	StatusPending   = 0   // awaiting submission (legacy outbox, or not yet exported)
	StatusDryRun    = -1  // built by a dry run; nothing sent
)

// StatusLabel returns the operator-facing label of a status code, with the
// words of the system we replace.
func StatusLabel(code int) string {
	switch code {
	case StatusSent:
		return "Submitted to service"
	case StatusRetryable:
		return "Failed, will retry"
	case StatusRejected, StatusItemError:
		return "Failed, require attention"
	case StatusPending:
		return "Awaiting submission"
	case StatusDryRun:
		return "Dry run, not sent"
	}
	return "Status " + strconv.Itoa(code)
}

// Overview is the dashboard's main view.
type Overview struct {
	GeneratedAt time.Time    `json:"generated_at"`
	Source      SourceStatus `json:"source"`
	Checkpoint  Checkpoint   `json:"checkpoint"`
	Feeds       []FeedStatus `json:"feeds"`
	// HA is this instance's high-availability status (ha.enabled only).
	HA *HAStatus `json:"ha,omitempty"`
}

// HAStatus is the high-availability block of the overview: the instance's
// role (the dashboard runs on the active one), the epoch of its
// leadership, its changelog lag and its last takeover.
type HAStatus struct {
	Instance       string    `json:"instance"`
	Role           string    `json:"role"`
	Epoch          int64     `json:"epoch"`
	ChangelogLag   int64     `json:"changelog_lag"`
	LastTakeover   time.Time `json:"last_takeover,omitzero"`
	TakeoverMillis int64     `json:"takeover_ms,omitempty"`
}

// SourceStatus is the binlog connection to the source.
type SourceStatus struct {
	Connected bool   `json:"connected"`
	Address   string `json:"address,omitempty"` // host:port, never credentials
	Flavor    string `json:"flavor,omitempty"`  // "mariadb" or "mysql"
	Version   string `json:"version,omitempty"`
	LagMS     int64  `json:"lag_ms"`
	LagState  string `json:"lag_state,omitempty"` // telemetry.LagState.String()
	Error     string `json:"error,omitempty"`     // last connection error
	// Unavailable, when set, says that SQL reads on the source fail and
	// are being retried: "source unavailable, retrying (since …, attempts
	// N, last error …)".
	Unavailable string `json:"unavailable,omitempty"`
}

// Checkpoint is the stored binlog position streaming resumes from.
type Checkpoint struct {
	Position   string    `json:"position"` // change.Position.String()
	GTIDSet    string    `json:"gtid_set,omitempty"`
	File       string    `json:"file,omitempty"`
	Pos        uint32    `json:"pos,omitempty"`
	StoredAt   time.Time `json:"stored_at,omitzero"`
	AgeSeconds float64   `json:"age_seconds"`
}

// FeedStatus is one feed's line of the overview.
type FeedStatus struct {
	Name          string         `json:"name"`
	Mode          string         `json:"mode"`           // ModeImmediate or ModeLegacy
	SourceRecords int64          `json:"source_records"` // feed items known for the feed (not deleted)
	Sent          int64          `json:"sent"`           // status 200
	Failed        int64          `json:"failed"`         // status 2 (will retry)
	Rejected      int64          `json:"rejected"`       // status 400 and 1 (require attention)
	Pending       int64          `json:"pending"`        // awaiting submission
	LastSync      time.Time      `json:"last_sync,omitzero"`
	LagMS         int64          `json:"lag_ms"` // age of the oldest pending change, 0 when none
	Resync        ResyncProgress `json:"resync"`
	LastVerify    *LastVerify    `json:"last_verify,omitempty"` // feedcdc verify's last run, if any
}

// ResyncProgress is the progress of a feed's running or last full sync.
type ResyncProgress struct {
	Running   bool      `json:"running"`
	Done      int64     `json:"done"`
	Total     int64     `json:"total"`
	StartedAt time.Time `json:"started_at,omitzero"`
	UpdatedAt time.Time `json:"updated_at,omitzero"`
}

// Status filters of ItemQuery.Status.
const (
	FilterFailed    = "failed"    // 2, 400 and 1 (the default)
	FilterRetryable = "retryable" // 2
	FilterRejected  = "rejected"  // 400 and 1
	FilterPending   = "pending"   // 0
	FilterSent      = "sent"      // 200
	FilterAll       = "all"
)

// ItemQuery selects feed items for the items table.
type ItemQuery struct {
	Feed   string // "" = every feed
	Status string // one of the Filter* values; "" means FilterFailed
	SKU    string // case-insensitive substring of the item's identifiers; "" = any
	Offset int
	Limit  int // 1..500; the API defaults to 50
}

// MatchStatus reports whether an item with status code matches q.Status.
func (q ItemQuery) MatchStatus(code int) bool {
	switch q.Status {
	case "", FilterFailed:
		return code == StatusRetryable || code == StatusRejected || code == StatusItemError
	case FilterRetryable:
		return code == StatusRetryable
	case FilterRejected:
		return code == StatusRejected || code == StatusItemError
	case FilterPending:
		return code == StatusPending
	case FilterSent:
		return code == StatusSent
	case FilterAll:
		return true
	}
	return false
}

// MatchSKU reports whether any identifier value contains q.SKU
// (case-insensitive).
func (q ItemQuery) MatchSKU(identifiers map[string]string) bool {
	if q.SKU == "" {
		return true
	}
	want := strings.ToLower(q.SKU)
	for _, v := range identifiers {
		if strings.Contains(strings.ToLower(v), want) {
			return true
		}
	}
	return false
}

// ItemPage is one page of the items table.
type ItemPage struct {
	Items  []ItemRow `json:"items"`
	Total  int       `json:"total"` // matching items across all pages
	Offset int       `json:"offset"`
	Limit  int       `json:"limit"`
}

// ItemRow is one feed item in the items table.
type ItemRow struct {
	Feed        string            `json:"feed"`
	FeedID      string            `json:"feed_id"`   // sha1 of the identity fields
	EntityID    string            `json:"entity_id"` // source entity id
	Identifiers map[string]string `json:"identifiers"`
	Status      int               `json:"status"`
	StatusText  string            `json:"status_text,omitempty"` // StatusLabel(Status) when empty
	Attempts    int               `json:"attempts"`
	Deleted     bool              `json:"deleted"`
	LastSync    time.Time         `json:"last_sync,omitzero"`
	Error       string            `json:"error,omitempty"`
	RequestID   string            `json:"request_id,omitempty"`
}

// Check results.
const (
	CheckPass = "PASS"
	CheckWarn = "WARN"
	CheckFail = "FAIL"
)

// Health is the health panel.
type Health struct {
	CheckedAt time.Time     `json:"checked_at"`
	Source    SourceStatus  `json:"source"`
	Sinks     []SinkStatus  `json:"sinks"`
	Checks    []CheckResult `json:"checks"`
	// CheckpointAgeSeconds is the time since the checkpoint was stored;
	// BinlogRetentionSeconds is the source's binlog retention (0 = unknown).
	CheckpointAgeSeconds   float64 `json:"checkpoint_age_seconds"`
	BinlogRetentionSeconds float64 `json:"binlog_retention_seconds"`
	// RetentionStatus is filled by the API from the two values above:
	// PASS below half the retention, WARN above half, FAIL beyond it, ""
	// when the retention is unknown.
	RetentionStatus string `json:"retention_status"`
}

// SinkStatus is one configured sink.
type SinkStatus struct {
	Name string `json:"name"`
	Kind string `json:"kind"` // kafka, http, file
	// Target is where the sink sends to: Kafka bootstrap brokers, the HTTP
	// service's base URL (without credentials or query), the file sink's
	// directory.
	Target    string `json:"target,omitempty"`
	Connected bool   `json:"connected"`
	Error     string `json:"error,omitempty"`
}

// CheckResult is one line of `feedcdc check`.
type CheckResult struct {
	Name    string `json:"name"`
	Status  string `json:"status"` // CheckPass, CheckWarn or CheckFail
	Message string `json:"message"`
	Fix     string `json:"fix,omitempty"` // the SQL or config change that fixes it
}

// RetentionStatus grades a checkpoint age against the binlog retention.
func RetentionStatus(age, retention time.Duration) string {
	switch {
	case retention <= 0:
		return ""
	case age > retention:
		return CheckFail
	case age > retention/2:
		return CheckWarn
	}
	return CheckPass
}

package dashboard

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Job kinds of JobRequest.Kind.
const (
	JobResync = "resync" // feedcdc resync
	JobRetry  = "retry"  // feedcdc retry
)

// Job states of Job.State.
const (
	JobRunning = "running"
	JobDone    = "done"
	JobFailed  = "failed"
)

// JobRequest is the body of POST /api/jobs: a CLI command (resync or
// retry) run by the connector that holds the state file, with the
// command's flags.
type JobRequest struct {
	Kind string   `json:"kind"` // JobResync or JobRetry
	Feed string   `json:"feed"`
	IDs  []string `json:"ids,omitempty"` // resync --by-ids
	// IDType is what IDs list: "" (SKUs) or "productId".
	IDType      string `json:"id_type,omitempty"`
	DryRun      bool   `json:"dry_run,omitempty"`
	CleanupFeed bool   `json:"cleanup_feed,omitempty"`
	Continue    bool   `json:"continue,omitempty"`
	BatchSize   int    `json:"batch_size,omitempty"`
	ThreadCount int    `json:"thread_count,omitempty"`
	// All retries every failed item now, ignoring backoff (retry --all).
	All bool `json:"all,omitempty"`
}

// Job is a command the running connector runs for the CLI, as GET
// /api/jobs/{id} reports it.
type Job struct {
	ID    string `json:"id"`
	Kind  string `json:"kind"`
	Feed  string `json:"feed"`
	State string `json:"state"` // JobRunning, JobDone or JobFailed
	// Done and Total count entities (Total 0 = not known yet).
	Done       int64     `json:"done"`
	Total      int64     `json:"total"`
	Error      string    `json:"error,omitempty"`
	PID        int       `json:"pid"` // of the connector process
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
	// Result is the kind's summary once done (the connector's
	// ResyncResult or RetryResult).
	Result json.RawMessage `json:"result,omitempty"`
}

// JobBackend is implemented by backends that run CLI commands for the CLI
// while they hold the state file. A Backend without it answers the job
// endpoints with 501.
type JobBackend interface {
	// StartJob validates r and starts it in the background. Unknown feed:
	// wrap ErrNotFound; bad request: ErrInvalid; feed busy: ErrBusy.
	StartJob(r JobRequest) (Job, error)
	// Job returns a job started by StartJob (ErrNotFound when unknown or
	// forgotten; a bounded number of finished jobs is kept).
	Job(id string) (Job, error)
}

// StatusBackend is implemented by backends that report the connector's
// status in the shape of `feedcdc status --json` (GET /api/status).
type StatusBackend interface {
	Status(ctx context.Context) (any, error)
}

// PositionBackend is implemented by backends that report the checkpoint
// in the shape of `feedcdc position show --json` (GET /api/position).
type PositionBackend interface {
	Position(ctx context.Context) (any, error)
}

// registerJobs adds the CLI's endpoints: jobs (token required: they act
// and their results may hold item payloads) and the status.
func (s *server) registerJobs(mux *http.ServeMux) {
	mux.HandleFunc("POST /api/jobs", s.authorized(s.handleStartJob))
	mux.HandleFunc("GET /api/jobs/{id}", s.authorized(s.handleJob))
	mux.HandleFunc("GET /api/status", s.handleStatus)
	mux.HandleFunc("GET /api/position", s.handlePosition)
}

func (s *server) handlePosition(w http.ResponseWriter, r *http.Request) {
	pb, ok := s.b.(PositionBackend)
	if !ok {
		writeError(w, http.StatusNotImplemented, "this connector does not report its position")
		return
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	p, err := pb.Position(ctx)
	if err != nil {
		s.backendError(w, r, "position", err)
		return
	}
	writeJSON(w, http.StatusOK, p)
}

func (s *server) jobBackend(w http.ResponseWriter) (JobBackend, bool) {
	jb, ok := s.b.(JobBackend)
	if !ok {
		writeError(w, http.StatusNotImplemented, "this connector does not run jobs for the CLI")
	}
	return jb, ok
}

func (s *server) handleStartJob(w http.ResponseWriter, r *http.Request) {
	var req JobRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, `body must be JSON like {"kind":"resync","feed":"products","ids":["SKU-1"]}: `+err.Error())
		return
	}
	if req.Kind != JobResync && req.Kind != JobRetry {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("job kind %q: use %q or %q", req.Kind, JobResync, JobRetry))
		return
	}
	ids := req.IDs[:0]
	for _, id := range req.IDs {
		if id = strings.TrimSpace(id); id != "" {
			ids = append(ids, id)
		}
	}
	req.IDs = ids
	if len(req.IDs) > s.o.MaxResyncIDs {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("%d ids in one request; the limit is %d: split the list, or resync the whole feed", len(req.IDs), s.o.MaxResyncIDs))
		return
	}
	jb, ok := s.jobBackend(w)
	if !ok {
		return
	}
	job, err := jb.StartJob(req)
	if err != nil {
		s.backendError(w, r, "start "+req.Kind, err)
		return
	}
	s.o.Logger.Info("dashboard: job started", "operation", req.Kind, "feed", req.Feed, "job", job.ID, "remote", r.RemoteAddr)
	writeJSON(w, http.StatusAccepted, job)
}

func (s *server) handleJob(w http.ResponseWriter, r *http.Request) {
	jb, ok := s.jobBackend(w)
	if !ok {
		return
	}
	job, err := jb.Job(r.PathValue("id"))
	if err != nil {
		s.backendError(w, r, "job", err)
		return
	}
	writeJSON(w, http.StatusOK, job)
}

func (s *server) handleStatus(w http.ResponseWriter, r *http.Request) {
	sb, ok := s.b.(StatusBackend)
	if !ok {
		writeError(w, http.StatusNotImplemented, "this connector does not report its status")
		return
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	st, err := sb.Status(ctx)
	if err != nil {
		s.backendError(w, r, "status", err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

package dashboard

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
)

// RawSnapshotRequest is the body of POST /api/raw-snapshots.
type RawSnapshotRequest struct {
	Table string `json:"table"`           // "db.table"
	Where string `json:"where,omitempty"` // optional SQL condition
}

// RawSnapshotBackend is implemented by backends that snapshot raw tables.
// A Backend without it answers the raw snapshot endpoints with 501.
type RawSnapshotBackend interface {
	// RawSnapshots lists the snapshots and their progress.
	RawSnapshots(ctx context.Context) (any, error)
	// StartRawSnapshot requests the snapshot of a table (bad request:
	// wrap ErrInvalid; one already running: ErrBusy).
	StartRawSnapshot(ctx context.Context, r RawSnapshotRequest) (any, error)
	// ControlRawSnapshot pauses, resumes or stops one (unknown: wrap
	// ErrNotFound; bad action: ErrInvalid).
	ControlRawSnapshot(ctx context.Context, table, action string) (any, error)
}

// registerRawSnapshots adds the raw snapshot endpoints: the list is read
// like the status; starting and controlling need the token.
func (s *server) registerRawSnapshots(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/raw-snapshots", s.handleRawSnapshots)
	mux.HandleFunc("POST /api/raw-snapshots", s.authorized(s.handleStartRawSnapshot))
	mux.HandleFunc("POST /api/raw-snapshots/{table}/{action}", s.authorized(s.handleControlRawSnapshot))
}

func (s *server) rawBackend(w http.ResponseWriter) (RawSnapshotBackend, bool) {
	rb, ok := s.b.(RawSnapshotBackend)
	if !ok {
		writeError(w, http.StatusNotImplemented, "this connector does not snapshot raw tables")
	}
	return rb, ok
}

func (s *server) handleRawSnapshots(w http.ResponseWriter, r *http.Request) {
	rb, ok := s.rawBackend(w)
	if !ok {
		return
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	v, err := rb.RawSnapshots(ctx)
	if err != nil {
		s.backendError(w, r, "raw snapshots", err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (s *server) handleStartRawSnapshot(w http.ResponseWriter, r *http.Request) {
	rb, ok := s.rawBackend(w)
	if !ok {
		return
	}
	var req RawSnapshotRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || req.Table == "" {
		msg := `body must be JSON like {"table":"shop.orders","where":"id > 100"}`
		if err != nil {
			msg += ": " + err.Error()
		}
		writeError(w, http.StatusBadRequest, msg)
		return
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	v, err := rb.StartRawSnapshot(ctx, req)
	if err != nil {
		s.backendError(w, r, "raw snapshot of "+req.Table, err)
		return
	}
	s.o.Logger.Info("dashboard action", "operation", "raw snapshot", "table", req.Table, "where", req.Where, "remote", r.RemoteAddr)
	writeJSON(w, http.StatusAccepted, v)
}

func (s *server) handleControlRawSnapshot(w http.ResponseWriter, r *http.Request) {
	rb, ok := s.rawBackend(w)
	if !ok {
		return
	}
	table, action := r.PathValue("table"), r.PathValue("action")
	ctx, cancel := s.ctx(r)
	defer cancel()
	v, err := rb.ControlRawSnapshot(ctx, table, action)
	if err != nil {
		s.backendError(w, r, fmt.Sprintf("%s the raw snapshot of %s", action, table), err)
		return
	}
	s.o.Logger.Info("dashboard action", "operation", "raw snapshot "+action, "table", table, "remote", r.RemoteAddr)
	writeJSON(w, http.StatusOK, v)
}

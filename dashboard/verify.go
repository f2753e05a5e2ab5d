package dashboard

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// VerifyBackend is implemented by backends that can verify a feed against
// the source (feedcdc verify through the running connector). A Backend
// without it answers POST /api/feeds/{feed}/verify with 501.
type VerifyBackend interface {
	// Verify runs a verify of the feed and returns its result (sent as
	// JSON). Unknown feed: wrap ErrNotFound; bad request: ErrInvalid; the
	// feed locked by another operation: ErrBusy.
	Verify(ctx context.Context, feed string, req VerifyRequest) (any, error)
}

// VerifyRequest is the body of POST /api/feeds/{feed}/verify.
type VerifyRequest struct {
	IDs      []string `json:"ids,omitempty"`       // SKUs (or entity ids with IDType productId); empty = whole feed
	IDType   string   `json:"id_type,omitempty"`   // "" (SKUs) or "productId"
	Repair   bool     `json:"repair,omitempty"`    // export the differing items
	ReadBack bool     `json:"read_back,omitempty"` // compare with what the sinks hold
	Examples int      `json:"examples,omitempty"`  // examples per result (default 10)
}

// handleVerify runs the verify synchronously, without the backend timeout
// (it reads the whole feed), and answers 200 with its result.
func (s *server) handleVerify(w http.ResponseWriter, r *http.Request) {
	vb, ok := s.b.(VerifyBackend)
	if !ok {
		writeError(w, http.StatusNotImplemented, "this connector cannot verify feeds through the dashboard")
		return
	}
	feed := r.PathValue("feed")
	var req VerifyRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, `body must be JSON like {"repair":false,"read_back":true} or {"ids":["SKU-1"]}: `+err.Error())
		return
	}
	if req.IDType != "" && req.IDType != "productId" {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("id_type %q: use \"\" (SKUs) or \"productId\"", req.IDType))
		return
	}
	if len(req.IDs) > s.o.MaxResyncIDs {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("%d ids in one request; the limit is %d: split the list, or verify the whole feed", len(req.IDs), s.o.MaxResyncIDs))
		return
	}
	for i := range req.IDs {
		req.IDs[i] = strings.TrimSpace(req.IDs[i])
	}
	s.o.Logger.Info("dashboard action", "operation", "verify", "feed", feed, "ids", len(req.IDs), "repair", req.Repair, "read_back", req.ReadBack, "remote", r.RemoteAddr)
	res, err := vb.Verify(r.Context(), feed, req)
	if err != nil {
		s.backendError(w, r, "verify", err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// LastVerify is a feed's last verify, as kept in the state (the overview's
// per-feed "last verify").
type LastVerify struct {
	FinishedAt time.Time `json:"finished_at"`
	Elapsed    string    `json:"elapsed"`
	Checked    int64     `json:"checked"`
	Drift      int64     `json:"drift"`    // items found differing
	Repaired   int64     `json:"repaired"` // items a repair sent
	Error      string    `json:"error,omitempty"`
}

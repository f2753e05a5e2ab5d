package telemetry

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// Readiness reports why the process is not ready to serve; an empty result
// means ready. Each reason is one short sentence an operator can act on.
type Readiness func(ctx context.Context) []string

// AllReady combines checks: ready when every one is; reasons are
// concatenated in order. nil checks are ignored.
func AllReady(checks ...Readiness) Readiness {
	return func(ctx context.Context) []string {
		var reasons []string
		for _, c := range checks {
			if c != nil {
				reasons = append(reasons, c(ctx)...)
			}
		}
		return reasons
	}
}

// Connected is ready while up() is true; otherwise the reason says that
// name (e.g. "source", "sink kafka") is not connected, followed by the
// detail up returns (may be empty).
func Connected(name string, up func() (bool, string)) Readiness {
	return func(context.Context) []string {
		ok, detail := up()
		if ok {
			return nil
		}
		if detail != "" {
			return []string{fmt.Sprintf("%s is not connected: %s", name, detail)}
		}
		return []string{name + " is not connected"}
	}
}

// LagBelow is ready while the source lag is known and at most max.
func LagBelow(t *LagTracker, max time.Duration) Readiness {
	return func(context.Context) []string {
		r := t.Read()
		switch {
		case r.State == LagUnknown:
			return []string{"source lag unknown: no binlog event or heartbeat received yet"}
		case r.Lag > max:
			return []string{fmt.Sprintf("source lag %s exceeds the readiness limit %s (%s)",
				r.Lag.Round(time.Millisecond), max, r.State)}
		}
		return nil
	}
}

// HealthzHandler answers 200 {"status":"ok"} while the process serves HTTP.
func HealthzHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"status": "ok"})
	})
}

// ReadyzHandler answers 200 {"status":"ready"} when ready reports no
// reasons, else 503 {"status":"not ready","reasons":[...]}. The check runs
// with the request's context, bounded to 5 s.
func ReadyzHandler(ready Readiness) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ready == nil {
			writeJSON(w, http.StatusOK, map[string]any{"status": "ready"})
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		reasons := ready(ctx)
		if len(reasons) == 0 {
			writeJSON(w, http.StatusOK, map[string]any{"status": "ready"})
			return
		}
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "not ready", "reasons": reasons})
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

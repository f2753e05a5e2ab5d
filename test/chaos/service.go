package chaos

import (
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// Service is an HTTP feed service: POST {base}/{feed} with a JSON array of
// items; it keeps the last accepted payload per feed_id. It can be down
// (every request 503) or fail a fraction of requests with 429, 500 or 503,
// with or without Retry-After.
type Service struct {
	identity map[string][]string // feed -> identity fields

	down     atomic.Bool
	failRate atomic.Uint64 // fraction * 1e6

	mu       sync.Mutex
	rng      *rand.Rand
	accepted map[string]map[string]json.RawMessage // feed -> id -> payload
	stats    map[string]int
	items    int
	// maxEpoch is the highest fencing token (X-Feedcdc-Epoch) seen: a
	// request with a lower one comes from a fenced former leader and is
	// refused with 409, as docs/operations.md asks of a feed service.
	maxEpoch int64
}

// NewService builds a service for feeds with the given identity fields.
func NewService(identity map[string][]string, seed int64) *Service {
	return &Service{identity: identity, rng: rand.New(rand.NewPCG(uint64(seed), 99)),
		accepted: map[string]map[string]json.RawMessage{}, stats: map[string]int{}}
}

// SetDown makes every request fail with 503 (true) or not.
func (s *Service) SetDown(down bool) { s.down.Store(down) }

// SetFailRate makes a fraction of requests fail with 429/500/503.
func (s *Service) SetFailRate(f float64) { s.failRate.Store(uint64(f * 1e6)) }

// Stats returns request outcome counts.
func (s *Service) Stats() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.stats))
	for k, v := range s.stats {
		out[k] = v
	}
	out["items accepted"] = s.items
	return out
}

// Accepted returns the last accepted payload per feed_id of feed.
func (s *Service) Accepted(feed string) map[string]json.RawMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]json.RawMessage, len(s.accepted[feed]))
	for k, v := range s.accepted[feed] {
		out[k] = v
	}
	return out
}

func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	feed := strings.Trim(r.URL.Path, "/")
	fields, ok := s.identity[feed]
	if !ok || r.Method != http.MethodPost {
		http.Error(w, "unknown feed "+feed, http.StatusNotFound)
		return
	}
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = zr
	}
	var items []json.RawMessage
	if err := json.NewDecoder(body).Decode(&items); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if h := r.Header.Get("X-Feedcdc-Epoch"); h != "" {
		e, err := strconv.ParseInt(h, 10, 64)
		if err != nil {
			http.Error(w, "bad X-Feedcdc-Epoch", http.StatusBadRequest)
			return
		}
		if e < s.maxEpoch {
			s.stats["409 (stale epoch)"]++
			http.Error(w, fmt.Sprintf(`{"error":"epoch %d is older than %d"}`, e, s.maxEpoch), http.StatusConflict)
			return
		}
		s.maxEpoch = e
	}
	if s.down.Load() {
		s.stats["503 (down)"]++
		http.Error(w, `{"error":"down"}`, http.StatusServiceUnavailable)
		return
	}
	if rate := float64(s.failRate.Load()) / 1e6; rate > 0 && s.rng.Float64() < rate {
		code := []int{http.StatusTooManyRequests, http.StatusInternalServerError, http.StatusServiceUnavailable}[s.rng.IntN(3)]
		after := s.rng.IntN(2) == 0
		if after {
			w.Header().Set("Retry-After", "1")
		}
		s.stats[fmt.Sprintf("%d retry-after=%v", code, after)]++
		http.Error(w, `{"error":"injected"}`, code)
		return
	}
	for _, raw := range items {
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			continue
		}
		vals := make([]string, len(fields))
		for j, f := range fields {
			vals[j], _ = m[f].(string)
		}
		id := feedID(vals...)
		if s.accepted[feed] == nil {
			s.accepted[feed] = map[string]json.RawMessage{}
		}
		s.accepted[feed][id] = append(json.RawMessage(nil), raw...)
		s.items++
	}
	s.stats["200"]++
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"invalidFeedItems":[]}`))
}

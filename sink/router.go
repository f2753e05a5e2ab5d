package sink

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
)

// Router is a Sink that sends each record to every sink its feed is routed
// to, in parallel, and reports a record as OK only when every one of those
// sinks has it (see Combine for how failures merge). A record whose feed has
// no route is Rejected with a reason naming the feed.
//
// When one sink fails a record that another accepted, SendWithRetry resends
// it to the failing sink only, and the combined Result names the sinks that
// accepted it (Result.Accepted); a caller that sends it again later passes
// those names in Record.SkipSinks so that only the others get it. Sinks may
// see duplicates after a crash (at-least-once), never gaps.
type Router struct {
	routes   map[string][]Sink
	fallback []Sink
	all      []Sink // distinct sinks, in first-seen order
}

// NewRouter routes each feed named in routes to its sinks; feeds not named
// go to fallback (nil: they are rejected). A sink may appear in several
// routes; it is closed once.
func NewRouter(routes map[string][]Sink, fallback []Sink) (*Router, error) {
	r := &Router{routes: make(map[string][]Sink, len(routes)), fallback: fallback}
	seen := map[Sink]bool{}
	add := func(s Sink) {
		if !seen[s] {
			seen[s] = true
			r.all = append(r.all, s)
		}
	}
	check := func(where string, ss []Sink) error {
		dup := map[Sink]bool{}
		for _, s := range ss {
			if s == nil {
				return fmt.Errorf("router: %s has a nil sink", where)
			}
			if dup[s] {
				return fmt.Errorf("router: %s lists sink %q twice", where, s.Name())
			}
			dup[s] = true
			add(s)
		}
		return nil
	}
	for feed, ss := range routes {
		if len(ss) == 0 {
			return nil, fmt.Errorf("router: feed %q is routed to no sink; give it at least one sink or remove the route", feed)
		}
		if err := check("feed "+feed, ss); err != nil {
			return nil, err
		}
		r.routes[feed] = append([]Sink(nil), ss...)
	}
	if err := check("the fallback route", fallback); err != nil {
		return nil, err
	}
	return r, nil
}

// Name is "router".
func (r *Router) Name() string { return "router" }

// SinksFor returns the sinks records of feed go to.
func (r *Router) SinksFor(feed string) []Sink {
	if ss, ok := r.routes[feed]; ok {
		return ss
	}
	return r.fallback
}

// Sinks returns every distinct sink of the router.
func (r *Router) Sinks() []Sink { return append([]Sink(nil), r.all...) }

// Send implements Sink.
func (r *Router) Send(ctx context.Context, recs []Record) ([]Result, error) {
	return r.fanOut(ctx, recs, func(ctx context.Context, s Sink, batch []Record) ([]Result, error) {
		return s.Send(ctx, batch)
	})
}

// SendWithRetry is SendWithRetry for a router: each sink gets its own retry
// loop over its records, in parallel, so a record is resent only to the
// sinks that have not accepted it, and one sink's Retry-After does not slow
// the others. Results combine as in Send; the error, if any, names every
// sink that stopped early.
func (r *Router) SendWithRetry(ctx context.Context, recs []Record, b Backoff) ([]Result, error) {
	var mu sync.Mutex
	var errs []error
	res, _ := r.fanOut(ctx, recs, func(ctx context.Context, s Sink, batch []Record) ([]Result, error) {
		res, err := sendWithRetry(ctx, s, batch, b)
		if err != nil {
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
		}
		return res, nil
	})
	return res, errors.Join(errs...)
}

// fanOut sends each sink its records with send, in parallel, and combines
// the results per record.
func (r *Router) fanOut(ctx context.Context, recs []Record, send func(context.Context, Sink, []Record) ([]Result, error)) ([]Result, error) {
	type part struct {
		idx []int // record indexes
		res []Result
	}
	parts := map[Sink]*part{}
	routes := make([][]Sink, len(recs))
	for i := range recs {
		ss := r.SinksFor(recs[i].Feed)
		routes[i] = ss
		for _, s := range ss {
			if slices.Contains(recs[i].SkipSinks, s.Name()) {
				continue // it has this version already
			}
			p := parts[s]
			if p == nil {
				p = &part{}
				parts[s] = p
			}
			p.idx = append(p.idx, i)
		}
	}
	var wg sync.WaitGroup
	for s, p := range parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			batch := recs // every record, in order (indexes ascend): no copy
			if len(p.idx) != len(recs) {
				batch = make([]Record, len(p.idx))
				for j, i := range p.idx {
					batch[j] = recs[i]
				}
			}
			res, err := send(ctx, s, batch)
			if err == nil && len(res) != len(batch) {
				err = fmt.Errorf("sink %s returned %d results for %d records", s.Name(), len(res), len(batch))
			}
			if err != nil {
				res = Fill(len(batch), StatusRetryable, err, err.Error())
			}
			p.res = res
		}()
	}
	wg.Wait()

	// Per record, the results of its sinks in route order.
	pos := make(map[Sink]int, len(parts))
	out := make([]Result, len(recs))
	for i := range recs {
		ss := routes[i]
		if len(ss) == 0 {
			out[i] = Result{Status: StatusRejected, Err: fmt.Errorf("no sink is routed for feed %q", recs[i].Feed),
				Reason: fmt.Sprintf("no sink for feed %q", recs[i].Feed)}
			continue
		}
		if len(ss) == 1 { // the result of its one sink, or OK if it skipped it
			if s := ss[0]; !slices.Contains(recs[i].SkipSinks, s.Name()) {
				out[i] = parts[s].res[pos[s]]
				pos[s]++
			}
			continue
		}
		names := make([]string, len(ss))
		rs := make([]Result, len(ss))
		for k, s := range ss {
			names[k] = s.Name()
			if slices.Contains(recs[i].SkipSinks, s.Name()) {
				continue // OK: accepted in an earlier attempt
			}
			rs[k] = parts[s].res[pos[s]]
			pos[s]++
		}
		out[i] = Combine(names, rs)
	}
	return out, nil
}

// Close closes every distinct sink once and joins their errors.
func (r *Router) Close() error {
	var errs []error
	for _, s := range r.all {
		if err := s.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close sink %s: %w", s.Name(), err))
		}
	}
	return errors.Join(errs...)
}

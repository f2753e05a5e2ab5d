// Package sink is the seam between feedcdc's exporters and its destinations
// (Kafka, an HTTP feed service, JSON Lines files): a Sink takes a batch of
// Records and answers with one Result per record.
//
// Invariants:
//   - Send returns exactly one Result per record, in the same order, unless
//     it returns an error; an error means "nothing of this call is known to
//     be delivered" and the caller treats every record as Retryable.
//   - StatusOK means the destination has durably accepted the record (Kafka
//     acks per the configured acks, an HTTP 2xx that did not list the item as
//     invalid, a file fsynced when fsync is on). A record is never reported
//     OK before that.
//   - StatusRejected is reserved for records the destination will never
//     accept as they are (too large, invalid per the service); retrying them
//     unchanged is pointless. Anything that may succeed later (network,
//     timeouts, throttling, 5xx, a broker outage, authentication set-up) is
//     StatusRetryable. Errors are never dropped.
//   - Sinks never log record values or credentials.
//   - Memory is bounded by the caller: a Limiter bounds the bytes in flight
//     between the binlog reader and the sinks; sinks hold a batch only for
//     the duration of Send.
package sink

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Header is one record header (Kafka headers; other sinks ignore them).
type Header struct {
	Key   string
	Value []byte
}

// Record is one item handed to a sink.
type Record struct {
	// Feed is the feed name (products, productAttributes, ...) or, for raw
	// per-table change streams, "raw". Routing and per-feed URLs use it.
	Feed string
	// Topic is the Kafka topic (file sink: the file's base name). Empty means
	// the sink's template for Feed ("{prefix}.{feed}" by default). It may
	// contain {prefix}, {feed} and {name}, which the sink fills in.
	Topic string
	// Key is the record key (the item's identity; raw: the primary key).
	// Empty means ID.
	Key []byte
	// Value is the item JSON; nil is a tombstone (Kafka: a null value; the
	// HTTP and file sinks acknowledge tombstones without sending them).
	Value []byte
	// ID is the item's feed_id (raw: empty).
	ID string
	// Hash is the item's feed_hash (raw: empty).
	Hash string
	// Op is the change kind: c, u, d or r.
	Op string
	// Position is the source position of the change (e.g. a GTID).
	Position string
	// Headers are extra headers added after the standard ones.
	Headers []Header
	// SkipSinks names sinks that already acknowledged this very record
	// (same ID and Hash) in an earlier attempt: a Router does not send it
	// to them again and counts them as OK. Other sinks ignore it.
	SkipSinks []string
}

// Size is the record's approximate in-memory and on-the-wire size in bytes,
// used for backpressure and batch limits.
func (r *Record) Size() int {
	n := len(r.Feed) + len(r.Topic) + len(r.Key) + len(r.Value) + len(r.ID) + len(r.Hash) + len(r.Op) + len(r.Position) + 64
	for _, h := range r.Headers {
		n += len(h.Key) + len(h.Value) + 8
	}
	return n
}

// KeyOrID returns Key, or ID when Key is empty.
func (r *Record) KeyOrID() []byte {
	if len(r.Key) > 0 {
		return r.Key
	}
	return []byte(r.ID)
}

// Status is the outcome of sending one record.
type Status int

const (
	// StatusOK: durably accepted by the destination.
	StatusOK Status = iota
	// StatusRetryable: not accepted now; sending it again later may succeed.
	StatusRetryable
	// StatusRejected: the destination will not accept this record as it is.
	StatusRejected
)

func (s Status) String() string {
	switch s {
	case StatusOK:
		return "ok"
	case StatusRetryable:
		return "retryable"
	case StatusRejected:
		return "rejected"
	}
	return fmt.Sprintf("status(%d)", int(s))
}

// Result is the outcome for one record.
type Result struct {
	Status Status
	// Err is the underlying error (nil for OK).
	Err error
	// Reason is a short human-readable cause (e.g. "MESSAGE_TOO_LARGE",
	// "HTTP 429", "invalid: /0/sku: required"); stored with failed items.
	Reason string
	// RequestID identifies the request that carried the record (HTTP:
	// the response's request id header), for traceability.
	RequestID string
	// RetryAfter is the destination's requested delay before a retry
	// (HTTP Retry-After); 0 means "use your own backoff".
	RetryAfter time.Duration
	// ItemRejected marks a rejection of this item on its own by the
	// destination (an HTTP feed service naming it invalid): feed item status
	// 1. A Rejected result without it is a refused request or a data error
	// (status 400).
	ItemRejected bool
	// Accepted names, for a record routed to several sinks that is not OK
	// as a whole, the sinks that did accept it (see Record.SkipSinks).
	Accepted []string
}

// OK reports whether the status is StatusOK.
func (r Result) OK() bool { return r.Status == StatusOK }

// Sink delivers records to one destination. Implementations are safe for
// concurrent use.
type Sink interface {
	// Name is the sink's configured name (used in reasons, logs, metrics).
	Name() string
	// Send delivers recs and returns one Result per record in the same
	// order. A non-nil error concerns the whole call (e.g. the sink is
	// closed) and means no record is known to be delivered.
	Send(ctx context.Context, recs []Record) ([]Result, error)
	// Close flushes and releases the sink; Send must not be called after.
	Close() error
}

// Fill returns n results with the same status, error and reason.
func Fill(n int, st Status, err error, reason string) []Result {
	out := make([]Result, n)
	for i := range out {
		out[i] = Result{Status: st, Err: err, Reason: reason}
	}
	return out
}

// Combine merges the results of one record from several sinks: retryable if
// any sink says retryable, else rejected if any says rejected, else OK. The
// reasons of failing sinks are joined as "name: reason"; RetryAfter is the
// largest requested; request ids are joined.
func Combine(names []string, rs []Result) Result {
	var out Result
	var reasons, ids []string
	var firstErr error
	for i, r := range rs {
		name := ""
		if i < len(names) {
			name = names[i]
		}
		if r.RequestID != "" {
			if name != "" && len(rs) > 1 {
				ids = append(ids, name+"="+r.RequestID)
			} else {
				ids = append(ids, r.RequestID)
			}
		}
		if r.Status == StatusOK {
			continue
		}
		switch r.Status {
		case StatusRetryable:
			out.Status = StatusRetryable
		case StatusRejected:
			if out.Status != StatusRetryable {
				out.Status = StatusRejected
			}
			out.ItemRejected = out.ItemRejected || r.ItemRejected
		}
		reason := r.Reason
		if reason == "" && r.Err != nil {
			reason = r.Err.Error()
		}
		if name != "" {
			reason = name + ": " + reason
		}
		reasons = append(reasons, reason)
		if firstErr == nil {
			firstErr = r.Err
			if firstErr == nil {
				firstErr = fmt.Errorf("%s", reason)
			}
		}
		if r.RetryAfter > out.RetryAfter {
			out.RetryAfter = r.RetryAfter
		}
	}
	out.ItemRejected = out.ItemRejected && out.Status == StatusRejected
	out.Reason = strings.Join(reasons, "; ")
	out.RequestID = strings.Join(ids, ",")
	if out.Status != StatusOK {
		out.Err = firstErr
		for i, r := range rs {
			if r.Status == StatusOK && i < len(names) && names[i] != "" {
				out.Accepted = append(out.Accepted, names[i])
			}
		}
	}
	return out
}

// fencingKey is the context key of a send's fencing token.
type fencingKey struct{}

// WithFencingToken returns ctx carrying the sender's fencing token: the
// epoch of a high-availability leadership (ha). A sink that can hand it to
// its destination does (the HTTP sink: header X-Feedcdc-Epoch), so that a
// destination which refuses a token lower than the highest it has seen
// also refuses a request a paused former leader had in flight.
func WithFencingToken(ctx context.Context, epoch int64) context.Context {
	return context.WithValue(ctx, fencingKey{}, epoch)
}

// FencingToken returns the fencing token of a send's context, if any.
func FencingToken(ctx context.Context) (int64, bool) {
	e, ok := ctx.Value(fencingKey{}).(int64)
	return e, ok
}

package ha

import (
	"context"
	"fmt"

	"github.com/feedcdc/feedcdc/sink"
)

// guarded is a sink that sends only while its node may write.
type guarded struct {
	sink.Sink
	n *Node
}

// GuardSink wraps s so that a send by a fenced instance fails before it
// starts, with an error matching ErrFenced (no record is delivered; the
// items stay retryable in the state, which the fenced instance cannot
// replicate any more).
func (n *Node) GuardSink(s sink.Sink) sink.Sink { return &guarded{Sink: s, n: n} }

func (g *guarded) Send(ctx context.Context, recs []sink.Record) ([]sink.Result, error) {
	if err := g.n.Writable(); err != nil {
		return nil, err
	}
	// The epoch goes along as the send's fencing token (the HTTP sink sends
	// it as a header; a destination that refuses lower epochs also refuses
	// a request this instance had in flight when it was paused).
	return g.Sink.Send(sink.WithFencingToken(leaseContext{Context: ctx, n: g.n}, g.n.Epoch()), recs)
}

// leaseContext is a send's context whose Err reports a lost lease at once,
// without waiting for a goroutine to notice and cancel: a sink that checks
// ctx.Err() before each request (the HTTP sink splits a send into
// requests) starts none after a pause that outlived the lease, even when
// its goroutine is the first to run after the resume. Only a request
// already being written when the process was paused can still complete.
type leaseContext struct {
	context.Context
	n *Node
}

func (c leaseContext) Err() error {
	if err := c.n.Writable(); err != nil {
		return fmt.Errorf("%w: %w", context.Canceled, err)
	}
	return c.Context.Err()
}

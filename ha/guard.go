package ha

import (
	"context"

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
	return g.Sink.Send(ctx, recs)
}

package connector

import (
	"context"
	"time"

	"github.com/feedcdc/feedcdc/sink"
)

// heartbeats adds a heartbeat record to the raw streams every
// PipelineOptions.Heartbeat until ctx ends: the position of the last
// transaction end read (the stored checkpoint before the first one) and
// the source server's clock. The record joins the batch being collected,
// so it is exported in order with the changes around it, and on an idle
// source the window cuts a batch holding only it. A failure to queue it
// (the exporter stopped) is reported on errc.
func (p *Pipeline) heartbeats(ctx context.Context, errc chan<- error) {
	t := time.NewTicker(p.o.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := p.heartbeat(ctx); err != nil {
			if ctx.Err() == nil {
				select {
				case errc <- err:
				default:
				}
			}
			return
		}
	}
}

// heartbeat adds one heartbeat record to the current batch.
func (p *Pipeline) heartbeat(ctx context.Context) error {
	var server time.Time
	if p.o.ServerTime != nil {
		qctx, cancel := context.WithTimeout(ctx, min(p.o.Heartbeat, 5*time.Second))
		st, err := p.o.ServerTime(qctx)
		cancel()
		if err != nil {
			p.o.Logger.Debug("heartbeat: source server time not read", "error", err)
		} else {
			server = st
		}
	}
	p.mu.Lock()
	pos, at := p.readPos, p.readTime
	p.mu.Unlock()
	if pos.IsZero() {
		if cp, _, ok, err := p.o.Store.Checkpoint(ctx); err == nil && ok {
			pos = cp
		}
	}
	enc := p.o.Raw
	rec := sink.Record{Feed: "raw", Topic: enc.HeartbeatTopicName(), Key: enc.AppendHeartbeatKey(nil),
		Value: enc.AppendHeartbeat(nil, pos, at, server), Op: "heartbeat", Position: pos.String()}
	return p.addRawRecords(ctx, []sink.Record{rec}, true)
}

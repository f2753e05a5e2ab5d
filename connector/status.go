package connector

import (
	"context"
	"time"

	"github.com/feedcdc/feedcdc/change"
	"github.com/feedcdc/feedcdc/dashboard"
	"github.com/feedcdc/feedcdc/ha"
	"github.com/feedcdc/feedcdc/state"
	"github.com/feedcdc/feedcdc/telemetry"
)

// FeedStatus is one feed's line of `feedcdc status`.
type FeedStatus struct {
	Name     string          `json:"name"`
	Mode     string          `json:"mode"`
	Tables   []string        `json:"tables,omitempty"`
	Counts   StatusCounts    `json:"counts"`
	LastSync time.Time       `json:"last_sync,omitzero"`
	Resync   *state.Progress `json:"resync,omitempty"`
	Lock     *state.FeedLock `json:"lock,omitempty"`
	// Verify is the feed's last verify report (feedcdc verify or its
	// schedule), if any.
	Verify *state.VerifyReport `json:"verify,omitempty"`
}

// StatusCounts are a feed's item counts (state.Counts with the JSON
// names of the documented status schema).
type StatusCounts struct {
	Total     int64 `json:"total"`     // items
	Sent      int64 `json:"sent"`      // status 200
	Failed    int64 `json:"failed"`    // status 2 (including those requiring attention)
	Rejected  int64 `json:"rejected"`  // status 400 or 1
	Pending   int64 `json:"pending"`   // not sent yet (0), dry run (-1)
	Deleted   int64 `json:"deleted"`   // items marked deleted, whatever their status
	Attention int64 `json:"attention"` // status 2 items that reached the maximum attempts
	Outbox    int64 `json:"outbox"`    // legacy outbox entries waiting for the flush
}

// Status is what `feedcdc status` shows.
type Status struct {
	Name string `json:"name"`
	// Running is true when the figures come from the running connector
	// (through its dashboard API), PID is that process.
	Running          bool             `json:"running"`
	PID              int              `json:"pid,omitempty"`
	Source           string           `json:"source"`
	Checkpoint       *change.Position `json:"checkpoint,omitempty"`
	CheckpointAt     time.Time        `json:"checkpoint_at,omitzero"`
	CheckpointAgeSec float64          `json:"checkpoint_age_seconds"`
	// LastPositionChange is the newest entry of the position history
	// (a command or policy that set, reset or moved the checkpoint);
	// LastGap the newest one that left raw streams with a gap.
	LastPositionChange *state.PositionChange `json:"last_position_change,omitempty"`
	LastGap            *state.PositionChange `json:"last_gap,omitempty"`
	StateFile          string                `json:"state_file"`
	StateBytes         int64                 `json:"state_bytes"`
	Feeds              []FeedStatus          `json:"feeds"`
	// Jobs are the CLI's jobs the running connector runs or ran since it
	// started (resync, retry), oldest first; empty when it is stopped.
	Jobs []dashboard.Job `json:"jobs"`
	// RawSnapshots is the progress of the snapshots of raw tables.
	RawSnapshots []state.RawSnapshot `json:"raw_snapshots,omitempty"`
	// HA is, with ha.enabled, this instance's role, epoch, changelog lag
	// and last takeover; role "stopped" when no instance runs on this
	// state file (the epoch is then the one its file last followed).
	HA *ha.Status `json:"ha,omitempty"`
}

// Status reads the connector's state: checkpoint, and per feed its mode,
// item counts, last sync and resync progress. It never shows secrets.
func (c *Connector) Status(ctx context.Context) (Status, error) {
	cfg := c.Config
	st := Status{Name: cfg.Name, Source: cfg.Source.Addr(), StateFile: c.Store.Path(), Feeds: []FeedStatus{}, Jobs: []dashboard.Job{}}
	st.StateBytes, _ = c.Store.Size()
	pos, at, ok, err := c.Store.Checkpoint(ctx)
	if err != nil {
		return st, err
	}
	if ok {
		st.Checkpoint, st.CheckpointAt = &pos, at
		st.CheckpointAgeSec = time.Since(at).Seconds()
	}
	hist, err := c.Store.PositionHistory(ctx)
	if err != nil {
		return st, err
	}
	if n := len(hist); n > 0 {
		st.LastPositionChange = &hist[n-1]
	}
	for i := len(hist) - 1; i >= 0; i-- {
		if hist[i].Gap {
			st.LastGap = &hist[i]
			break
		}
	}
	locks, _ := c.Store.FeedLocks(ctx)
	for _, name := range cfg.EnabledFeeds() {
		fs := FeedStatus{Name: name, Mode: cfg.Feeds.Feed(name).Mode}
		if c.Registry != nil {
			if f, ok := c.Registry.Feed(name); ok {
				fs.Tables = f.Tables()
			}
		}
		counts, err := c.Store.Counts(ctx, name)
		if err != nil {
			return st, err
		}
		fs.Counts = StatusCounts(counts)
		if p, ok, err := c.Store.Progress(ctx, name); err == nil && ok {
			fs.Resync = &p
		}
		if t := c.Pipeline.LastSync(name); !t.IsZero() {
			fs.LastSync = t
		} else if ok {
			fs.LastSync = at
		}
		if r, ok, err := c.Store.VerifyReport(ctx, name); err == nil && ok {
			fs.Verify = &r
		}
		for i := range locks {
			if locks[i].Feed == name {
				fs.Lock = &locks[i]
			}
		}
		st.Feeds = append(st.Feeds, fs)
	}
	if st.RawSnapshots, err = c.Store.RawSnapshots(ctx); err != nil {
		return st, err
	}
	switch {
	case c.ha != nil:
		h := c.ha()
		st.HA = &h
	case cfg.HA.Enabled:
		h, err := ha.StoppedStatus(ctx, c.Store, cfg.HA.Instance)
		if err != nil {
			return st, err
		}
		st.HA = &h
	}
	return st, nil
}

// ItemCounts returns every enabled feed's failed, rejected and pending
// items from the state store's maintained counters (the
// feedcdc_feed_items gauges); a feed whose counts cannot be read within a
// second is left out of that scrape.
func (c *Connector) ItemCounts() []telemetry.FeedItemCounts {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	var out []telemetry.FeedItemCounts
	for _, name := range c.Config.EnabledFeeds() {
		n, err := c.Store.Counts(ctx, name)
		if err != nil {
			continue
		}
		out = append(out, telemetry.FeedItemCounts{Feed: name, Failed: n.Failed, Rejected: n.Rejected, Pending: n.Pending + n.Outbox})
	}
	return out
}

// QueueLen is the capacity of the exporter's queue, in batches
// (feedcdc_queue_capacity{queue="export"}).
func (p *Pipeline) QueueLen() int { return cap(p.queue) }

// MaxInflightBytes is the bound of the bytes in flight
// (feedcdc_queue_capacity_bytes{queue="export"}).
func (p *Pipeline) MaxInflightBytes() int64 { return p.o.MaxInflightBytes }

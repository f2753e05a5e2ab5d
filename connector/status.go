package connector

import (
	"context"
	"time"

	"github.com/feedcdc/feedcdc/change"
	"github.com/feedcdc/feedcdc/state"
)

// FeedStatus is one feed's line of `feedcdc status`.
type FeedStatus struct {
	Name     string          `json:"name"`
	Mode     string          `json:"mode"`
	Tables   []string        `json:"tables,omitempty"`
	Counts   state.Counts    `json:"counts"`
	LastSync time.Time       `json:"last_sync,omitzero"`
	Resync   *state.Progress `json:"resync,omitempty"`
	Lock     *state.FeedLock `json:"lock,omitempty"`
	// Verify is the feed's last verify report (feedcdc verify or its
	// schedule), if any.
	Verify *state.VerifyReport `json:"verify,omitempty"`
}

// Status is what `feedcdc status` shows.
type Status struct {
	Name             string           `json:"name"`
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
}

// Status reads the connector's state: checkpoint, and per feed its mode,
// item counts, last sync and resync progress. It never shows secrets.
func (c *Connector) Status(ctx context.Context) (Status, error) {
	cfg := c.Config
	st := Status{Name: cfg.Name, Source: cfg.Source.Addr(), StateFile: c.Store.Path()}
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
		if fs.Counts, err = c.Store.Counts(ctx, name); err != nil {
			return st, err
		}
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
	return st, nil
}

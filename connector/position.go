package connector

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/feedcdc/feedcdc/change"
	"github.com/feedcdc/feedcdc/connector/binlog"
	"github.com/feedcdc/feedcdc/state"
)

// Purge policies (source.on_purged_position).
const (
	OnPurgedFail   = "fail"
	OnPurgedResync = "resync"
)

// startPlan is where Run streams from, and what it must store first.
type startPlan struct {
	pos        change.Position
	firstStart bool
	// store: pos is new (first start, purge recovery) and is stored as the
	// checkpoint, with record in the position history, before anything
	// else happens.
	store  bool
	record state.PositionChange
	// syncAll: every feed is fully synced from scratch next to the stream.
	syncAll bool
}

// startPosition decides where Run streams from: the checkpoint; on a first
// start the current position (resync.on_first_start: full with feeds) or
// source.start_position resolved on the server; and, when the server no
// longer has the checkpoint's binlog, what source.on_purged_position says.
func (c *Connector) startPosition(ctx context.Context) (startPlan, error) {
	cfg := c.Config
	log := c.Logger
	pos, _, ok, err := c.Store.Checkpoint(ctx)
	if err != nil {
		return startPlan{}, err
	}
	now := time.Now()
	if !ok {
		sp := startPlan{firstStart: true, store: true}
		if cfg.Resync.OnFirstStart == "full" && c.Registry != nil {
			sp.syncAll = true
			if sp.pos, err = binlog.CurrentPosition(ctx, c.SourceConfig()); err != nil {
				return sp, fmt.Errorf("read the source's current position: %w", err)
			}
			log.Info("first start: full sync of every feed, then streaming from the position captured now", "position", sp.pos.String())
		} else {
			if sp.pos, err = binlog.ResolveStart(ctx, c.SourceConfig()); err != nil {
				return sp, fmt.Errorf("resolve source.start_position %q: %w", cfg.Source.StartPosition, err)
			}
			log.Info("first start: streaming from source.start_position", "start_position", cfg.Source.StartPosition, "position", sp.pos.String())
		}
		p := sp.pos
		sp.record = state.PositionChange{At: now, New: &p, Command: "feedcdc run", Reason: "first start (no checkpoint)"}
		return sp, nil
	}
	a, err := binlog.CheckPosition(ctx, c.SourceConfig(), pos)
	if err != nil {
		// The stream itself tells a purged position apart; this is only the
		// early check.
		log.Warn("could not check whether the server still has the checkpoint's binlog", "checkpoint", pos.String(), "error", err)
		return startPlan{pos: pos}, nil
	}
	if a.Available {
		return startPlan{pos: pos}, nil
	}
	if cfg.Source.OnPurgedPosition != OnPurgedResync {
		return startPlan{}, c.purgedError(pos, a.Reason)
	}
	old, cur := pos, a.Current
	log.Warn("the server no longer has the checkpoint's binlog (source.on_purged_position: resync): streaming from the current position and full-syncing every feed; raw streams have a gap",
		"gap_from", old.String(), "gap_to", cur.String(), "reason", a.Reason)
	return startPlan{pos: cur, store: true, syncAll: c.Registry != nil, record: state.PositionChange{At: now, Old: &old, New: &cur, Gap: true,
		Command: "feedcdc run (source.on_purged_position: resync)", Reason: "binlog purged past the checkpoint: " + a.Reason}}, nil
}

// purgedError is the error of a checkpoint whose binlog the server no
// longer has, with remedies that work when followed as written.
func (c *Connector) purgedError(pos change.Position, reason string) error {
	cfg := c.Config
	flag := ""
	if cfg.File != "" {
		flag = " -c " + shellQuote(cfg.File)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: checkpoint %s: %s.\nTo recover, run these commands in order (the connector must be stopped):\n", binlog.ErrPositionPurged, pos, reason)
	fmt.Fprintf(&b, "  feedcdc position set current%s\n", flag)
	for _, f := range c.Pipeline.FeedNames() {
		fmt.Fprintf(&b, "  feedcdc resync --feed %s%s\n", f, flag)
	}
	fmt.Fprintf(&b, "  feedcdc run%s\n", flag)
	b.WriteString("The feeds then converge through the normal diff (unchanged items are not resent); raw streams miss the changes between the checkpoint and the current position " +
		"(`feedcdc position set earliest` instead keeps those still on the server). Or set source.on_purged_position: resync to do this at start. Raise the binlog retention (binlog_expire_logs_seconds / expire_logs_days) to avoid it.")
	return &purgedError{msg: b.String()}
}

type purgedError struct{ msg string }

func (e *purgedError) Error() string { return e.msg }
func (e *purgedError) Unwrap() error { return binlog.ErrPositionPurged }

func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r == '/' || r == '.' || r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z')
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

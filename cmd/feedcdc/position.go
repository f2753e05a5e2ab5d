package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/feedcdc/feedcdc/change"
	"github.com/feedcdc/feedcdc/connector"
	"github.com/feedcdc/feedcdc/connector/binlog"
	"github.com/feedcdc/feedcdc/state"
)

func newPosition(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "position",
		Short: "Show, set or reset the stored binlog checkpoint",
		Long: `The checkpoint is the binlog position 'feedcdc run' resumes from. These
commands show it (and whether the server still has it), move it, or remove
it so that the next start is a first start. Item state (hashes, statuses,
outbox, resync progress) is always kept. Every change is recorded in the
state file's position history, which 'feedcdc status' and 'position show'
print.

They need the state file to themselves: stop 'feedcdc run' first (SIGTERM
stores its final checkpoint).`,
		Example: `  feedcdc position show
  feedcdc position set current --dry-run
  feedcdc position set earliest
  feedcdc position set gtid:0-1-2028
  feedcdc position set mysql-bin.000042:4
  feedcdc position reset`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newPositionShow(g), newPositionSet(g), newPositionReset(g))
	return cmd
}

// openForPosition opens the connector (no sinks) for a position command,
// refusing while another process holds the state file.
func (g *globals) openForPosition(ctx context.Context, command string) (*connector.Connector, error) {
	cfg, log, err := g.configAndLogger()
	if err != nil {
		return nil, err
	}
	c, err := connector.Open(ctx, cfg, connector.OpenOptions{Logger: log, Command: command, NoSinks: true})
	if errors.Is(err, state.ErrInUse) {
		return nil, fmt.Errorf("%w\n%s needs the state file to itself: stop `feedcdc run` first (SIGTERM stores its final checkpoint), then run it again", err, command)
	}
	return c, err
}

// PositionReport is what `feedcdc position show --json` prints.
type PositionReport = connector.PositionReport

func newPositionShow(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "show",
		Short: "Show the checkpoint (GTID set, file/pos, age), whether the server still has it, and its history",
		Long: `Prints the stored checkpoint: its GTID set and binlog file/position, when it
was stored, whether the source server still has the binlog from there on
(compared with SHOW BINARY LOGS and the purged GTIDs), and the recent
changes made to it by commands or by source.on_purged_position.`,
		Example: `  feedcdc position show
  feedcdc position show --json | jq .server.available`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			r, err := g.positionReport(ctx)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(g.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(r)
			}
			printPosition(g.stdout, r)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// positionReport reads the report from the state file or, while `feedcdc
// run` holds it, from the running connector (GET /api/position).
func (g *globals) positionReport(ctx context.Context) (PositionReport, error) {
	var r PositionReport
	cfg, log, err := g.configAndLogger()
	if err != nil {
		return r, err
	}
	c, err := connector.Open(ctx, cfg, connector.OpenOptions{Logger: log, Command: "feedcdc position show", NoSinks: true, ReadOnly: true})
	switch {
	case errors.Is(err, state.ErrInUse):
		rm, rerr := g.remoteFor(cfg, "feedcdc position show", err, false)
		if rerr != nil {
			return r, rerr
		}
		return r, rm.do(ctx, http.MethodGet, "/api/position", nil, &r)
	case errors.Is(err, os.ErrNotExist):
		return r, nil // no state yet: no checkpoint, the next run is a first start
	case err != nil:
		return r, err
	}
	defer c.Close()
	return c.PositionReport(ctx)
}

func printPosition(w io.Writer, r PositionReport) {
	if r.Checkpoint == nil {
		fmt.Fprintln(w, "checkpoint   none: the next `feedcdc run` is a first start")
	} else {
		p := r.Checkpoint
		fmt.Fprintf(w, "checkpoint   %s\n", p)
		fmt.Fprintf(w, "gtid set     %s\n", orDash(p.GTIDSet))
		if p.File != "" {
			fmt.Fprintf(w, "file/pos     %s:%d\n", p.File, p.Pos)
		} else {
			fmt.Fprintln(w, "file/pos     -")
		}
		fmt.Fprintf(w, "stored       %s (%s ago)\n", r.StoredAt.UTC().Format(time.RFC3339), time.Duration(r.AgeSeconds*float64(time.Second)).Round(time.Second))
		switch {
		case r.Server == nil:
			fmt.Fprintf(w, "on server    unknown: %s\n", r.ServerError)
		case r.Server.Available:
			fmt.Fprintf(w, "on server    yes (binlog files %s .. %s; current %s)\n", r.Server.Files[0], r.Server.Files[len(r.Server.Files)-1], r.Server.Current)
		default:
			fmt.Fprintf(w, "on server    NO: %s\n             `feedcdc run` fails (source.on_purged_position: fail) or resyncs every feed (resync); `feedcdc position set current` or `earliest` moves the checkpoint\n", r.Server.Reason)
		}
	}
	if n := len(r.History); n > 0 {
		fmt.Fprintln(w, "history (newest first):")
		for i := n - 1; i >= 0 && i >= n-5; i-- {
			fmt.Fprintf(w, "  %s\n", r.History[i])
		}
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func newPositionSet(g *globals) *cobra.Command {
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "set gtid:<set>|<file>:<pos>|current|earliest",
		Short: "Move the checkpoint to a position (item state is kept)",
		Long: `Stores a new checkpoint: current (the server's end of binlog now), earliest
(the start of the oldest binlog file the server still has), gtid:<set> or
<file>:<pos>. A given position must still be on the server. The next
'feedcdc run' streams from there; changes between the old and the new
position are not streamed (raw streams skip them, or get them again when
moving back). To bring the feeds up to date after skipping changes, run
'feedcdc resync --feed F' for each feed after setting the position.
--dry-run shows what would change without writing.`,
		Example: `  feedcdc position set current --dry-run
  feedcdc position set current && feedcdc resync --feed products
  feedcdc position set earliest
  feedcdc position set gtid:0-1-2028
  feedcdc position set mysql-bin.000042:4`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			target := strings.TrimSpace(args[0])
			var given change.Position
			switch strings.ToLower(target) {
			case "current", "earliest":
			default:
				sp, err := change.ParseStartPosition(target)
				if err != nil {
					return fmt.Errorf("position %w", err)
				}
				given = sp.Position
			}
			c, err := g.openForPosition(ctx, "feedcdc position set "+target)
			if err != nil {
				return err
			}
			defer c.Close()
			scfg, err := c.ResolvedSourceConfig(ctx)
			if err != nil {
				return fmt.Errorf("position set %s: %w", target, err)
			}
			var pos change.Position
			switch strings.ToLower(target) {
			case "current":
				pos, err = binlog.CurrentPosition(ctx, scfg)
			case "earliest":
				pos, err = binlog.EarliestPosition(ctx, scfg)
			default:
				pos = given
				a, cerr := binlog.CheckPosition(ctx, scfg, pos)
				switch {
				case cerr != nil:
					err = fmt.Errorf("check that the server has %s: %w", pos, cerr)
				case !a.Available:
					err = fmt.Errorf("the server cannot stream from %s: %s; use current or earliest, or a position after %s", pos, a.Reason, a.Earliest)
				}
			}
			if err != nil {
				return fmt.Errorf("position set %s: %w", target, err)
			}
			old, _, had, err := c.Store.Checkpoint(ctx)
			if err != nil {
				return err
			}
			oldText := "none"
			if had {
				oldText = old.String()
			}
			if dryRun {
				fmt.Fprintf(g.stdout, "dry run: would move the checkpoint from %s to %s; nothing written\n", oldText, pos)
				return nil
			}
			if err := c.Store.Update(ctx, func(tx *state.Tx) error {
				if err := tx.SetCheckpoint(pos, time.Now()); err != nil {
					return err
				}
				pc := state.PositionChange{At: time.Now(), New: &pos, Command: "feedcdc position set " + target, Reason: "set by an operator"}
				if had {
					pc.Old = &old
				}
				return tx.RecordPositionChange(pc)
			}); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "checkpoint moved from %s to %s; item state kept. `feedcdc run` streams from there; run `feedcdc resync --feed F` for the feeds that must catch up on skipped changes.\n", oldText, pos)
			return nil
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "show what would change, write nothing")
	return cmd
}

func newPositionReset(g *globals) *cobra.Command {
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "reset",
		Short: "Remove the checkpoint so that the next start is a first start (item state is kept)",
		Long: `Removes the stored checkpoint. The next 'feedcdc run' is a first start: with
resync.on_first_start: full it captures the current position and full-syncs
every feed through the normal diff (items whose content did not change are
not sent again), then streams from that position; with none it streams from
source.start_position. Item state, the outbox, resync progress and the schema
history are kept. --dry-run shows what would change without writing.`,
		Example: `  feedcdc position reset --dry-run
  feedcdc position reset && feedcdc run`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			c, err := g.openForPosition(ctx, "feedcdc position reset")
			if err != nil {
				return err
			}
			defer c.Close()
			old, _, had, err := c.Store.Checkpoint(ctx)
			if err != nil {
				return err
			}
			if !had {
				fmt.Fprintln(g.stdout, "no checkpoint stored; nothing to reset (the next `feedcdc run` is a first start)")
				return nil
			}
			next := "streams from source.start_position (" + c.Config.Source.StartPosition + ")"
			if c.Config.Resync.OnFirstStart == "full" && len(c.Config.EnabledFeeds()) > 0 {
				next = "full-syncs every enabled feed through the diff (unchanged items are not resent), then streams from the position captured then"
			}
			if dryRun {
				fmt.Fprintf(g.stdout, "dry run: would remove the checkpoint %s; item state kept; the next `feedcdc run` %s. Nothing written.\n", old, next)
				return nil
			}
			if err := c.Store.Update(ctx, func(tx *state.Tx) error {
				if err := tx.DeleteCheckpoint(); err != nil {
					return err
				}
				return tx.RecordPositionChange(state.PositionChange{At: time.Now(), Old: &old, Command: "feedcdc position reset", Reason: "reset by an operator"})
			}); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "checkpoint %s removed; item state kept; the next `feedcdc run` %s.\n", old, next)
			return nil
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "show what would change, write nothing")
	return cmd
}

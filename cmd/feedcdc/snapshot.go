package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/spf13/cobra"

	"github.com/feedcdc/feedcdc/config"
	"github.com/feedcdc/feedcdc/connector"
	"github.com/feedcdc/feedcdc/dashboard"
	"github.com/feedcdc/feedcdc/state"
)

func newSnapshot(g *globals) *cobra.Command {
	var table, where string
	var pause, resume, stop, list bool
	cmd := &cobra.Command{
		Use:   "snapshot",
		Short: "Snapshot a captured table into its raw change stream (op r), or pause, resume, stop one",
		Long: `Reads the table in primary-key chunks and sends every row to the table's raw
stream as a record with op "r" and source.snapshot "incremental", while
streaming goes on: lock-free, without writes to the source, paced by
resync.rows_per_second and resync.max_replica_lag. Each chunk is reconciled
with the binlog: a row the stream changed while the chunk was read and
held is left out (the streamed change is newer), so that a consumer that
applies the topic in order ends with the table's contents. The snapshot is
resumable per chunk across restarts (docs/sinks.md, "Raw snapshots").

While 'feedcdc run' holds the state file, the request goes to the running
connector through its dashboard API (dashboard.enabled, and the dashboard
token in FEEDCDC_DASHBOARD_TOKEN). Otherwise it is stored in the state
file and the next 'feedcdc run' performs it. The command returns once the
snapshot is requested; follow it with 'feedcdc status' or --list.`,
		Example: `  feedcdc snapshot --table shop.orders
  feedcdc snapshot --table shop.orders --where "created_at >= '2026-01-01'"
  feedcdc snapshot --table shop.orders --pause     # --resume, --stop
  feedcdc snapshot --list`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			action := ""
			n := 0
			for a, on := range map[string]bool{connector.RawSnapPause: pause, connector.RawSnapResume: resume, connector.RawSnapStop: stop} {
				if on {
					action, n = a, n+1
				}
			}
			switch {
			case n > 1:
				return errors.New("use one of --pause, --resume, --stop")
			case list && (n > 0 || table != ""):
				return errors.New("--list takes no other flag")
			case !list && table == "":
				return errors.New("--table db.table is required (or --list)")
			case n > 0 && where != "":
				return errors.New("--where goes with a new snapshot, not with --" + action)
			}
			cfg, err := g.loadConfig()
			if err != nil {
				return err
			}
			log, err := g.logger(cfg)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			c, err := connector.Open(ctx, cfg, connector.OpenOptions{Logger: log, Command: "feedcdc snapshot", NoSinks: true})
			if errors.Is(err, state.ErrInUse) {
				return g.remoteSnapshot(ctx, cfg, table, where, action, list, err)
			}
			if err != nil {
				return err
			}
			defer c.Close()
			switch {
			case list:
				all, err := c.Store.RawSnapshots(ctx)
				if err != nil {
					return err
				}
				printRawSnaps(g, all)
			case action != "":
				p, err := c.ControlRawSnapshot(ctx, table, action)
				if err != nil {
					return err
				}
				fmt.Fprintf(g.stdout, "raw snapshot of %s: %s\n", p.Table, rawSnapLine(p))
			default:
				p, err := c.RequestRawSnapshot(ctx, connector.RawSnapshotRequest{Table: table, Where: where})
				if err != nil {
					return err
				}
				fmt.Fprintf(g.stdout, "raw snapshot of %s requested (about %d rows); the next 'feedcdc run' performs it\n", p.Table, p.Total)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&table, "table", "", "captured table to snapshot, as db.table")
	f.StringVar(&where, "where", "", "SQL condition limiting the rows read (e.g. \"id > 1000\")")
	f.BoolVar(&pause, "pause", false, "pause the table's snapshot after its current chunk")
	f.BoolVar(&resume, "resume", false, "resume a paused snapshot after its last chunk")
	f.BoolVar(&stop, "stop", false, "stop the table's snapshot for good")
	f.BoolVar(&list, "list", false, "list the snapshots and their progress")
	return cmd
}

// remoteSnapshot sends the request to the running connector's API.
func (g *globals) remoteSnapshot(ctx context.Context, cfg *config.Config, table, where, action string, list bool, inUse error) error {
	rm, err := g.remoteFor(cfg, "feedcdc snapshot", inUse, !list)
	if err != nil {
		return err
	}
	switch {
	case list:
		var st connector.RawSnapshotsStatus
		if err := rm.do(ctx, http.MethodGet, "/api/raw-snapshots", nil, &st); err != nil {
			return err
		}
		printRawSnaps(g, st.Snapshots)
	case action != "":
		var p state.RawSnapshot
		if err := rm.do(ctx, http.MethodPost, "/api/raw-snapshots/"+url.PathEscape(table)+"/"+action, nil, &p); err != nil {
			return err
		}
		fmt.Fprintf(g.stdout, "raw snapshot of %s: %s\n", p.Table, rawSnapLine(p))
	default:
		var p state.RawSnapshot
		if err := rm.do(ctx, http.MethodPost, "/api/raw-snapshots", dashboard.RawSnapshotRequest{Table: table, Where: where}, &p); err != nil {
			return err
		}
		fmt.Fprintf(g.stdout, "raw snapshot of %s started in %s (about %d rows); follow it with 'feedcdc status'\n", p.Table, rm.who(), p.Total)
	}
	return nil
}

func printRawSnaps(g *globals, all []state.RawSnapshot) {
	if len(all) == 0 {
		fmt.Fprintln(g.stdout, "no raw snapshots")
	}
	for _, p := range all {
		fmt.Fprintf(g.stdout, "%s: %s\n", p.Table, rawSnapLine(p))
	}
}

// rawSnapLine summarises one snapshot's progress.
func rawSnapLine(p state.RawSnapshot) string {
	s := fmt.Sprintf("%s (%s), read %d", p.State, p.Mode, p.Read)
	if p.Total > 0 {
		s += fmt.Sprintf(" of about %d", p.Total)
	}
	s += fmt.Sprintf(" rows in %d chunks, sent %d, left out for newer changes %d", p.Chunks, p.Sent, p.Dropped)
	if p.Where != "" {
		s += ", where " + p.Where
	}
	if !p.UpdatedAt.IsZero() {
		s += ", updated " + p.UpdatedAt.UTC().Format(time.RFC3339)
	}
	if p.Error != "" {
		s += ": " + p.Error
	}
	return s
}

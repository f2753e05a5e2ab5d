package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/feedcdc/feedcdc/config"
	"github.com/feedcdc/feedcdc/connector"
	"github.com/feedcdc/feedcdc/dashboard"
	"github.com/feedcdc/feedcdc/state"
)

func newStatus(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the checkpoint and, per feed, mode, item counts, last sync and resync progress",
		Long: `Reads the state file: the checkpoint position and its age, and per feed its
export mode, items total / sent / failed / rejected / pending, last sync time
and resync progress. While 'feedcdc run' holds the state file, status reads
the same figures from the running connector's dashboard API (enable
dashboard). Secrets are never shown.`,
		Example: `  feedcdc status
  feedcdc status --json | jq '.feeds[] | {name, failed: .counts.Failed}'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, log, err := g.configAndLogger()
			if err != nil {
				return err
			}
			c, err := connector.Open(cmd.Context(), cfg, connector.OpenOptions{Logger: log, Command: "feedcdc status", NoSinks: true})
			if errors.Is(err, state.ErrInUse) {
				return g.remoteStatus(cfg, asJSON, err)
			}
			if err != nil {
				return err
			}
			defer c.Close()
			st, err := c.Status(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(g.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			}
			printStatus(g.stdout, st)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func printStatus(w io.Writer, st connector.Status) {
	fmt.Fprintf(w, "connector %s, source %s, state %s (%d bytes)\n", st.Name, st.Source, st.StateFile, st.StateBytes)
	if st.Checkpoint != nil {
		fmt.Fprintf(w, "checkpoint %s, stored %s ago\n", st.Checkpoint, time.Duration(st.CheckpointAgeSec*float64(time.Second)).Round(time.Second))
	} else {
		fmt.Fprintln(w, "checkpoint none (the next start is a first start)")
	}
	if pc := st.LastPositionChange; pc != nil {
		fmt.Fprintf(w, "last position change %s\n", pc)
	}
	if g := st.LastGap; g != nil && g != st.LastPositionChange {
		fmt.Fprintf(w, "last raw stream gap %s\n", g)
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FEED\tMODE\tTOTAL\tSENT\tFAILED\tREJECTED\tPENDING\tLAST SYNC\tRESYNC")
	for _, f := range st.Feeds {
		last := "-"
		if !f.LastSync.IsZero() {
			last = f.LastSync.UTC().Format(time.RFC3339)
		}
		rs := "-"
		if f.Resync != nil {
			if f.Resync.Finished() {
				rs = fmt.Sprintf("done %d", f.Resync.Processed)
			} else {
				rs = fmt.Sprintf("running %d", f.Resync.Processed)
				if f.Resync.Total > 0 {
					rs += fmt.Sprintf("/%d", f.Resync.Total)
				}
			}
		}
		if f.Lock != nil {
			rs += " (locked by " + f.Lock.Owner + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%s\t%s\n", f.Name, f.Mode, f.Counts.Total, f.Counts.Sent, f.Counts.Failed,
			f.Counts.Rejected, f.Counts.Pending+f.Counts.Outbox, last, rs)
	}
	tw.Flush()
	for _, f := range st.Feeds {
		if v := f.Verify; v != nil {
			fmt.Fprintf(w, "last verify of %s: %s, checked %d, drift %d, repaired %d%s\n", f.Name, v.FinishedAt.UTC().Format(time.RFC3339),
				v.Counts["checked"], v.Drift, v.Repaired, verifyErr(v.Error))
		}
	}
}

func (g *globals) remoteStatus(cfg *config.Config, asJSON bool, inUse error) error {
	if !cfg.Dashboard.Enabled {
		return fmt.Errorf("%w\nenable dashboard in the configuration so that status can ask the running connector", inUse)
	}
	resp, err := http.Get("http://" + cfg.Dashboard.Listen + "/api/overview")
	if err != nil {
		return fmt.Errorf("%w\nand its dashboard at %s did not answer: %v", inUse, cfg.Dashboard.Listen, err)
	}
	defer resp.Body.Close()
	var ov dashboard.Overview
	if err := json.NewDecoder(resp.Body).Decode(&ov); err != nil {
		return fmt.Errorf("dashboard overview: %w", err)
	}
	if asJSON {
		enc := json.NewEncoder(g.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(ov)
	}
	fmt.Fprintf(g.stdout, "connector %s is running (source connected: %v, lag %d ms)\ncheckpoint %s, %.0fs old\n", cfg.Name, ov.Source.Connected, ov.Source.LagMS, ov.Checkpoint.Position, ov.Checkpoint.AgeSeconds)
	if ov.Source.Unavailable != "" {
		fmt.Fprintln(g.stdout, ov.Source.Unavailable)
	}
	tw := tabwriter.NewWriter(g.stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FEED\tMODE\tRECORDS\tSENT\tFAILED\tREJECTED\tPENDING\tRESYNC")
	for _, f := range ov.Feeds {
		rs := "-"
		if f.Resync.Running {
			rs = fmt.Sprintf("running %d/%d", f.Resync.Done, f.Resync.Total)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%s\n", f.Name, f.Mode, f.SourceRecords, f.Sent, f.Failed, f.Rejected, f.Pending, rs)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, f := range ov.Feeds {
		if v := f.LastVerify; v != nil {
			fmt.Fprintf(g.stdout, "last verify of %s: %s, checked %d, drift %d, repaired %d%s\n", f.Name, v.FinishedAt.UTC().Format(time.RFC3339),
				v.Checked, v.Drift, v.Repaired, verifyErr(v.Error))
		}
	}
	return nil
}

func verifyErr(e string) string {
	if e == "" {
		return ""
	}
	return " (failed: " + e + ")"
}

func newFeeds(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "feeds",
		Short:   "List the feeds with their export mode, sinks and watched tables",
		Example: "  feedcdc feeds -c config.yaml",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.loadConfig()
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(g.stdout, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "FEED\tENABLED\tMODE\tSINKS\tWATCHED TABLES")
			tables := feedTables(cfg)
			for _, name := range config.FeedNames {
				f := cfg.Feeds.Feed(name)
				fmt.Fprintf(tw, "%s\t%v\t%s\t%s\t%s\n", name, f.Enabled, f.Mode, strings.Join(cfg.SinksFor(name), ","), strings.Join(tables[name], " "))
			}
			if cfg.Raw.Enabled {
				fmt.Fprintf(tw, "raw\ttrue\timmediate\t%s\t%s\n", strings.Join(cfg.RawSinks(), ","), "captured tables (source.databases / include_tables)")
			}
			return tw.Flush()
		},
	}
}

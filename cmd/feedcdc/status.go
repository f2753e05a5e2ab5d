package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/feedcdc/feedcdc/config"
	"github.com/feedcdc/feedcdc/connector"
	"github.com/feedcdc/feedcdc/dashboard"
	"github.com/feedcdc/feedcdc/ha"
	"github.com/feedcdc/feedcdc/state"
)

func newStatus(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the checkpoint and, per feed, mode, item counts, last sync and resync progress",
		Long: `Shows the checkpoint position and its age, and per feed its export mode,
items total / sent / failed / rejected / pending, last sync time and resync
progress. It opens the state file read-only and never writes it. While
'feedcdc run' holds the state file, status reads the same figures from the
running connector's dashboard API (dashboard.enabled; no token needed):
the table and the JSON have the same shape either way ("running" tells
which). With ha.enabled it also shows this instance's role, epoch,
changelog lag and last takeover; a running standby is asked through its
GET /ha on telemetry.listen and shows only those (the figures are on the
active instance). The JSON schema is documented in docs/operations.md.
Secrets are never shown.`,
		Example: `  feedcdc status
  feedcdc status --json | jq -r '.feeds[] | "\(.name) \(.counts.failed)"'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, log, err := g.configAndLogger()
			if err != nil {
				return err
			}
			var st connector.Status
			c, err := connector.Open(cmd.Context(), cfg, connector.OpenOptions{Logger: log, Command: "feedcdc status", NoSinks: true, ReadOnly: true})
			switch {
			case errors.Is(err, state.ErrInUse) && cfg.HA.Enabled && standbyStatus(cmd.Context(), cfg, err, &st):
				// A standby holds the file and runs no dashboard: its role,
				// epoch and changelog lag come from its GET /ha.
			case errors.Is(err, state.ErrInUse):
				rm, rerr := g.remoteFor(cfg, "feedcdc status", err, false)
				if rerr != nil {
					return rerr
				}
				if err := rm.do(cmd.Context(), http.MethodGet, "/api/status", nil, &st); err != nil {
					if cfg.HA.Enabled && cfg.Telemetry.Listen == "" {
						return fmt.Errorf("%w\nwith ha.enabled the holder may be a standby, which serves no dashboard: status asks a standby through GET /ha on telemetry.listen, which is not set; set telemetry.listen (e.g. 127.0.0.1:9464) and restart it", err)
					}
					return err
				}
			case errors.Is(err, os.ErrNotExist):
				return fmt.Errorf("state file %s does not exist: the connector has not run yet with this state.path (the first 'feedcdc run' creates it)", cfg.State.Path)
			case err != nil:
				return err
			default:
				defer c.Close()
				if st, err = c.Status(cmd.Context()); err != nil {
					return err
				}
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
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON (schema in docs/operations.md)")
	return cmd
}

// standbyStatus reads the HA status of the instance that holds the state
// file (inUse) from GET /ha on telemetry.listen; it reports whether that
// instance is a standby, and then fills st.
func standbyStatus(ctx context.Context, cfg *config.Config, inUse error, st *connector.Status) bool {
	if cfg.Telemetry.Listen == "" {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+cfg.Telemetry.Listen+"/ha", nil)
	if err != nil {
		return false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var h ha.Status
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&h) != nil || h.Role != ha.RoleStandby {
		return false
	}
	*st = connector.Status{Name: cfg.Name, Running: true, Source: cfg.Source.Addr(), StateFile: cfg.State.Path,
		Feeds: []connector.FeedStatus{}, Jobs: []dashboard.Job{}, HA: &h}
	var iu *state.InUseError
	if errors.As(inUse, &iu) {
		st.PID = iu.Owner.PID
	}
	return true
}

func printStatus(w io.Writer, st connector.Status) {
	run := "stopped"
	if st.Running {
		run = fmt.Sprintf("running (pid %d)", st.PID)
	}
	if h := st.HA; h != nil && h.Role == ha.RoleStandby {
		fmt.Fprintf(w, "connector %s %s as a high-availability standby, source %s, state %s\n", st.Name, run, st.Source, st.StateFile)
		fmt.Fprintf(w, "ha: standby, instance %s, following epoch %d, changelog lag %d records\n", h.Instance, h.Epoch, h.Lag)
		fmt.Fprintln(w, "feeds, checkpoint and jobs: run feedcdc status on the active instance (the one whose /readyz answers 200)")
		return
	}
	fmt.Fprintf(w, "connector %s %s, source %s, state %s (%d bytes)\n", st.Name, run, st.Source, st.StateFile, st.StateBytes)
	if h := st.HA; h != nil {
		line := fmt.Sprintf("ha: %s, instance %s, epoch %d", h.Role, orDash(h.Instance), h.Epoch)
		if h.Role == ha.RoleStopped {
			line += " (from the state file)"
		}
		if !h.LastTakeover.IsZero() {
			line += fmt.Sprintf(", last takeover %s (took %s)", h.LastTakeover.UTC().Format(time.RFC3339), time.Duration(h.TakeoverMillis)*time.Millisecond)
		}
		fmt.Fprintln(w, line)
	}
	if st.Checkpoint != nil {
		fmt.Fprintf(w, "checkpoint %s, stored %s ago\n", st.Checkpoint, time.Duration(st.CheckpointAgeSec*float64(time.Second)).Round(time.Second))
	} else {
		fmt.Fprintln(w, "checkpoint none (the next start is a first start)")
	}
	if pc := st.LastPositionChange; pc != nil {
		fmt.Fprintf(w, "last position change %s\n", pc)
	}
	if g := st.LastGap; g != nil && (st.LastPositionChange == nil || g.String() != st.LastPositionChange.String()) {
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
	for _, j := range st.Jobs {
		line := fmt.Sprintf("job %s: %s %s %s, %d/%d entities, started %s", j.ID, j.Kind, j.Feed, j.State, j.Done, j.Total, j.StartedAt.UTC().Format(time.RFC3339))
		if j.Error != "" {
			line += ": " + j.Error
		}
		fmt.Fprintln(w, line)
	}
	for _, r := range st.RawSnapshots {
		fmt.Fprintf(w, "raw snapshot of %s: %s\n", r.Table, rawSnapLine(r))
	}
	for _, f := range st.Feeds {
		if v := f.Verify; v != nil {
			fmt.Fprintf(w, "last verify of %s: %s, checked %d, drift %d, repaired %d%s\n", f.Name, v.FinishedAt.UTC().Format(time.RFC3339),
				v.Counts["checked"], v.Drift, v.Repaired, verifyErr(v.Error))
		}
	}
}

func verifyErr(e string) string {
	if e == "" {
		return ""
	}
	return " (failed: " + e + ")"
}

func newFeeds(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "feeds",
		Short: "List the feeds with their export mode, sinks, topics and watched tables",
		Long: `Lists every feed with whether it is enabled, its export mode, and where its
items go: per sink, the Kafka topic, the HTTP route or the file, as the
connector names them (templates filled in).`,
		Example: "  feedcdc feeds -c config.yaml",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.loadConfig()
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(g.stdout, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "FEED\tENABLED\tMODE\tSINKS\tTOPICS\tWATCHED TABLES")
			tables := feedTables(cfg)
			for _, name := range config.FeedNames {
				f := cfg.Feeds.Feed(name)
				sinks := cfg.SinksFor(name)
				var topics []string
				for _, s := range sinks {
					topics = append(topics, s+":"+feedTopic(cfg, s, name))
				}
				fmt.Fprintf(tw, "%s\t%v\t%s\t%s\t%s\t%s\n", name, f.Enabled, f.Mode, strings.Join(sinks, ","), strings.Join(topics, " "), strings.Join(tables[name], " "))
			}
			if cfg.Raw.Enabled {
				var topics []string
				for _, s := range cfg.RawSinks() {
					topics = append(topics, s+":"+rawTopic(cfg, s))
				}
				fmt.Fprintf(tw, "raw\ttrue\timmediate\t%s\t%s\t%s\n", strings.Join(cfg.RawSinks(), ","), strings.Join(topics, " "), "captured tables (source.databases / include_tables)")
			}
			return tw.Flush()
		},
	}
}

// feedTopic names where sink sends feed's items: a Kafka topic, an HTTP
// route or a file, with the sink's placeholders filled in as the sinks do.
func feedTopic(cfg *config.Config, sinkName, feed string) string {
	s := cfg.Sinks[sinkName]
	switch {
	case s == nil:
		return "?"
	case s.Kafka != nil:
		tpl := s.Kafka.TopicTemplate
		if tpl == "" {
			tpl = "{prefix}.{feed}"
		}
		return strings.Trim(strings.NewReplacer("{prefix}", s.Kafka.TopicPrefix, "{feed}", feed, "{name}", cfg.Name).Replace(tpl), ".")
	case s.HTTP != nil:
		route := feed
		if r, ok := s.HTTP.Routes[feed]; ok {
			route = r
		}
		u := strings.TrimRight(s.HTTP.BaseURL, "/") + "/" + route
		if s.HTTP.DataSpace != "" {
			u += "/" + s.HTTP.DataSpace
		}
		return "POST " + u
	case s.File != nil:
		return filepath.Join(s.File.Dir, feed+".jsonl")
	}
	return "?"
}

// rawTopic names the raw streams' topic (or file) pattern on a sink.
func rawTopic(cfg *config.Config, sinkName string) string {
	tpl := strings.ReplaceAll(cfg.Raw.TopicTemplate, "{name}", cfg.Name)
	s := cfg.Sinks[sinkName]
	switch {
	case s == nil:
		return "?"
	case s.Kafka != nil:
		return strings.TrimPrefix(strings.ReplaceAll(tpl, "{prefix}", s.Kafka.TopicPrefix), ".")
	case s.File != nil:
		return filepath.Join(s.File.Dir, strings.ReplaceAll(tpl, "{prefix}", cfg.Name)+".jsonl")
	}
	return tpl
}

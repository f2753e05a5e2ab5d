package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/feedcdc/feedcdc/config"
	"github.com/feedcdc/feedcdc/state"
)

func newState(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "state",
		Short: "Check or back up the state file (checkpoint and feed item state)",
		Long: `The state file (state.path) holds the checkpoint and every feed item's hash
and status. 'state check' verifies it; 'state backup' writes a consistent copy.
Both work while 'feedcdc run' holds the file, through the running connector's
dashboard API (enable dashboard with a token), and directly when it is stopped.`,
		Example: `  feedcdc state check -c config.yaml
  feedcdc state backup /backup/feedcdc-state-$(date +%F).db`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newStateCheck(g), newStateBackup(g))
	return cmd
}

func newStateCheck(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Verify the state file: bbolt's consistency check and feedcdc's own; PASS or FAIL",
		Long: `Checks the state file without changing it: both bbolt meta pages, the file
size against the size its last transaction uses, every page (bbolt Tx.Check:
page references, free pages, key order), and feedcdc's records (its buckets,
the checkpoint, every feed's indexes and counters). Prints PASS or FAIL with
the problems found and exits 1 on damage.

While 'feedcdc run' holds the state file, the check runs inside the running
connector through its dashboard API (needs the dashboard token); its flushes
wait for the check.`,
		Example: `  feedcdc state check
  feedcdc state check --json | jq .problems`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.loadConfig()
			if err != nil {
				return err
			}
			path := cfg.State.Path
			r, err := state.CheckFile(cmd.Context(), path, state.Options{Command: "feedcdc state check"})
			if errors.Is(err, state.ErrInUse) {
				r, err = g.remoteStateCheck(cmd.Context(), cfg, err)
			}
			if errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("state file %s does not exist: the connector has not run yet with this state.path (the first 'feedcdc run' creates it)", path)
			}
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(g.stdout)
				enc.SetIndent("", "  ")
				if err := enc.Encode(r); err != nil {
					return err
				}
			} else {
				printCheckReport(g.stdout, r)
			}
			if !r.OK() {
				problem := r.Problems[0]
				if len(r.Problems) > 1 {
					problem += fmt.Sprintf(" (and %d more problems)", len(r.Problems)-1)
				}
				return &state.DamagedError{Path: path, Problem: problem}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	return cmd
}

func printCheckReport(w io.Writer, r state.CheckReport) {
	fmt.Fprintf(w, "state file %s: %d bytes (last transaction %d uses %d, pages of %d bytes)\n", r.Path, r.Size, r.TxID, r.HighWater, r.PageSize)
	if r.Checkpoint != "" {
		fmt.Fprintf(w, "checkpoint %s\n", r.Checkpoint)
	} else if r.OK() {
		fmt.Fprintln(w, "checkpoint none (never streamed)")
	}
	feeds := make([]string, 0, len(r.Items))
	for f := range r.Items {
		feeds = append(feeds, f)
	}
	sort.Strings(feeds)
	for _, f := range feeds {
		fmt.Fprintf(w, "items %s: %d\n", f, r.Items[f])
	}
	for _, warn := range r.Warnings {
		fmt.Fprintf(w, "WARN  %s\n", warn)
	}
	for _, p := range r.Problems {
		fmt.Fprintf(w, "FAIL  %s\n", p)
	}
	if r.OK() {
		fmt.Fprintln(w, "PASS  state file is consistent")
	} else {
		fmt.Fprintln(w, "FAIL  state file is damaged")
	}
}

func newStateBackup(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "backup FILE",
		Short: "Write a consistent copy of the state file to FILE (also while run is running)",
		Long: `Writes a consistent copy of the state file, as of one transaction (bbolt
Tx.WriteTo), to FILE.tmp, syncs it, checks the copy like 'state check', and
renames it to FILE (replacing an older backup only when the new copy passed).

While 'feedcdc run' holds the state file, the running connector streams the
copy through its dashboard API (needs the dashboard token); it does not stop
its flushes. To restore: stop feedcdc, copy the backup over state.path, run
'feedcdc state check', start again.`,
		Example: `  feedcdc state backup /backup/feedcdc-state.db
  FEEDCDC_DASHBOARD_TOKEN=... feedcdc state backup /backup/feedcdc-state-$(date +%F).db`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := g.loadConfig()
			if err != nil {
				return err
			}
			ctx, dst, path := cmd.Context(), args[0], cfg.State.Path
			var copyFn func(w io.Writer) (int64, error)
			st, err := state.OpenReadOnly(path, state.Options{Command: "feedcdc state backup"})
			switch {
			case errors.Is(err, state.ErrInUse):
				if copyFn, err = g.remoteStateBackup(ctx, cfg, err); err != nil {
					return err
				}
			case errors.Is(err, os.ErrNotExist):
				return fmt.Errorf("state file %s does not exist: nothing to back up", path)
			case err != nil:
				return err
			default:
				defer st.Close()
				copyFn = func(w io.Writer) (int64, error) { return st.Backup(ctx, w, nil) }
			}
			r, err := state.WriteBackup(ctx, dst, path, copyFn)
			if err != nil {
				return err
			}
			cp := r.Checkpoint
			if cp == "" {
				cp = "none"
			}
			fmt.Fprintf(g.stdout, "backup of %s written to %s: %d bytes, checkpoint %s", path, dst, r.Size, cp)
			feeds := make([]string, 0, len(r.Items))
			for f, n := range r.Items {
				feeds = append(feeds, fmt.Sprintf("%s %d", f, n))
			}
			sort.Strings(feeds)
			if len(feeds) > 0 {
				fmt.Fprintf(g.stdout, ", items: %s", strings.Join(feeds, ", "))
			}
			fmt.Fprintln(g.stdout, "; the copy passed the check")
			return nil
		},
	}
}

// dashboardGet sends an authenticated GET to the running connector's
// dashboard API; inUse is the error that says the connector holds the file.
func (g *globals) dashboardGet(ctx context.Context, cfg *config.Config, what, path string, inUse error) (*http.Response, error) {
	rm, err := g.remoteFor(cfg, what, inUse, true)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rm.base+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+rm.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w\nand the running connector's dashboard at %s did not answer: %v", inUse, cfg.Dashboard.Listen, err)
	}
	return resp, nil
}

func (g *globals) remoteStateCheck(ctx context.Context, cfg *config.Config, inUse error) (state.CheckReport, error) {
	var r state.CheckReport
	resp, err := g.dashboardGet(ctx, cfg, "state check", "/api/state/check", inUse)
	if err != nil {
		return r, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return r, fmt.Errorf("state check through the running connector: %w", err)
	}
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusInternalServerError {
		return r, fmt.Errorf("the running connector refused the state check: %s %s", resp.Status, strings.TrimSpace(string(body)))
	}
	if err := json.Unmarshal(body, &r); err != nil || r.Path == "" {
		return r, fmt.Errorf("the running connector's state check answered %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	return r, nil
}

// remoteStateBackup returns a copy function that streams the backup from
// the running connector.
func (g *globals) remoteStateBackup(ctx context.Context, cfg *config.Config, inUse error) (func(io.Writer) (int64, error), error) {
	resp, err := g.dashboardGet(ctx, cfg, "state backup", "/api/state/backup", inUse)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return nil, fmt.Errorf("the running connector refused the state backup: %s %s", resp.Status, strings.TrimSpace(string(msg)))
	}
	return func(w io.Writer) (int64, error) {
		defer resp.Body.Close()
		n, err := io.Copy(w, resp.Body)
		if err == nil && resp.ContentLength >= 0 && n != resp.ContentLength {
			err = io.ErrUnexpectedEOF
		}
		if err != nil {
			return n, fmt.Errorf("state backup from the running connector cut off after %d of %d bytes: %w", n, resp.ContentLength, err)
		}
		return n, nil
	}, nil
}

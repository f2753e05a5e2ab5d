package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/feedcdc/feedcdc/config"
	"github.com/feedcdc/feedcdc/connector"
	"github.com/feedcdc/feedcdc/dashboard"
	"github.com/feedcdc/feedcdc/state"
)

func newRetry(g *globals) *cobra.Command {
	var feed string
	var all, asJSON bool
	cmd := &cobra.Command{
		Use:   "retry",
		Short: "Run the retry of failed items (<feed>_resend_failed_items) now",
		Long: `Rebuilds the items of a feed that failed with a retryable error (status 2)
from the source's current state and sends them again. By default only items
whose backoff has passed are retried, as the scheduled job does; --all retries
every failed item now. While 'feedcdc run' holds the state file, the retry
runs as a job of the running connector through its dashboard API (with the
dashboard token in FEEDCDC_DASHBOARD_TOKEN), and the command waits for it.
Items rejected by the destination (status 400 / 1) are
final until their content changes.`,
		Example: `  feedcdc retry --feed products
  feedcdc retry --feed productOverrides --all`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.loadConfig()
			if err != nil {
				return err
			}
			name, err := canonicalFeed(feed)
			if err != nil {
				return err
			}
			log, err := g.logger(cfg)
			if err != nil {
				return err
			}
			c, err := connector.Open(cmd.Context(), cfg, connector.OpenOptions{Logger: log, Command: "feedcdc retry --feed " + name})
			if errors.Is(err, state.ErrInUse) {
				return g.remoteRetry(cmd.Context(), cfg, name, all, asJSON, err)
			}
			if err != nil {
				return err
			}
			defer c.Close()
			stop := c.RunExporter(cmd.Context())
			now := time.Now()
			if all {
				now = now.Add(100 * 365 * 24 * time.Hour)
			}
			st, err := c.Pipeline.RetryFailed(cmd.Context(), name, now)
			if serr := stop(); err == nil {
				err = serr
			}
			if err != nil {
				return err
			}
			counts, _ := c.Store.Counts(cmd.Context(), name)
			res := connector.RetryResult{Feed: name, Stats: st, FailedNow: counts.Failed}
			if asJSON {
				return writeJSON(g.stdout, res)
			}
			printRetry(g.stdout, res)
			return nil
		},
	}
	cmd.Flags().StringVar(&feed, "feed", "", "feed whose failed items are retried (required)")
	cmd.Flags().BoolVar(&all, "all", false, "retry every failed item now, ignoring backoff")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the summary as JSON (the result object of GET /api/jobs/{id}, documented in docs/operations.md)")
	_ = cmd.MarkFlagRequired("feed")
	return cmd
}

func printRetry(w io.Writer, r connector.RetryResult) {
	st := r.Stats
	fmt.Fprintf(w, "%s_resend_failed_items: %d entities rebuilt, %d items sent, %d still failing, %d rejected, %d requiring attention (feed now: %d failed in total)\n",
		r.Feed, st.Keys, st.Sent, st.Failed, st.Rejected, st.Attention, r.FailedNow)
}

// remoteRetry runs the retry as a job of the running connector and waits
// for it.
func (g *globals) remoteRetry(ctx context.Context, cfg *config.Config, feed string, all, asJSON bool, inUse error) error {
	rm, err := g.remoteFor(cfg, "feedcdc retry", inUse, true)
	if err != nil {
		return err
	}
	job, err := rm.startJob(ctx, dashboard.JobRequest{Kind: dashboard.JobRetry, Feed: feed, All: all}, true, nil)
	if err != nil {
		return err
	}
	var res connector.RetryResult
	if err := json.Unmarshal(job.Result, &res); err != nil {
		return fmt.Errorf("retry job %s ended without a readable result: %w", job.ID, err)
	}
	if asJSON {
		fmt.Fprintf(g.stderr, "ran on %s as job %s\n", rm.who(), job.ID)
		return writeJSON(g.stdout, res)
	}
	fmt.Fprintf(g.stdout, "ran on %s as job %s\n", rm.who(), job.ID)
	printRetry(g.stdout, res)
	return nil
}

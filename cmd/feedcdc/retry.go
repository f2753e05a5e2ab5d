package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/feedcdc/feedcdc/connector"
	"github.com/feedcdc/feedcdc/state"
)

func newRetry(g *globals) *cobra.Command {
	var feed string
	var all bool
	cmd := &cobra.Command{
		Use:   "retry",
		Short: "Run the retry of failed items (<feed>_resend_failed_items) now",
		Long: `Rebuilds the items of a feed that failed with a retryable error (status 2)
from the source's current state and sends them again. By default only items
whose backoff has passed are retried, as the scheduled job does; --all retries
every failed item now. Items rejected by the destination (status 400 / 1) are
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
				return fmt.Errorf("%w\nthe running connector retries failed items on feeds.%s.retry_schedule; use its dashboard's \"retry failed now\" to run it at once", err, name)
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
			fmt.Fprintf(g.stdout, "%s_resend_failed_items: %d entities rebuilt, %d items sent, %d still failing, %d rejected, %d requiring attention (feed now: %d failed in total)\n",
				name, st.Keys, st.Sent, st.Failed, st.Rejected, st.Attention, counts.Failed)
			return nil
		},
	}
	cmd.Flags().StringVar(&feed, "feed", "", "feed whose failed items are retried (required)")
	cmd.Flags().BoolVar(&all, "all", false, "retry every failed item now, ignoring backoff")
	_ = cmd.MarkFlagRequired("feed")
	return cmd
}

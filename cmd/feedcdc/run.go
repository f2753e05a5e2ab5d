package main

import (
	"github.com/spf13/cobra"

	"github.com/feedcdc/feedcdc/internal/runner"
)

func newRun(g *globals) *cobra.Command {
	var newState bool
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Stream the binlog into the feeds and run the scheduled jobs",
		Long: `First runs the source checks of "feedcdc check" (binlog on, ROW format,
FULL row image, grants, keyed raw-stream tables, ...): any FAIL stops run
before it reads or writes anything, with the same message and fix as check;
WARNs are logged; while the source cannot be reached it retries with backoff
(source.reconnect_min .. reconnect_max).

Then streams from the stored checkpoint (on a first start: captures the current
position, runs a full sync of every enabled feed, then streams from that
position), exports feed items and raw changes, runs the retry of failed items
and the legacy flushes on their schedules, and serves /metrics, /healthz,
/readyz and the dashboard when configured. SIGTERM or SIGINT stops it
gracefully with a final checkpoint.

A damaged, empty or foreign state file stops it with an error naming the
file; --new-state moves such a file aside (to <state.path>.damaged-<time>)
and starts with a new state: a full sync that sends every item once more.
A healthy state file is kept even with --new-state.`,
		Example: `  feedcdc run -c /etc/feedcdc/config.yaml
  FEEDCDC_SOURCE_PASSWORD=secret feedcdc run --log-format text
  feedcdc run --new-state      # after 'feedcdc state check' reported damage and no backup is left`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, log, err := g.configAndLogger()
			if err != nil {
				return err
			}
			return runner.Run(cmd.Context(), cfg, log, Version, &runner.Hooks{NewState: newState})
		},
	}
	cmd.Flags().BoolVar(&newState, "new-state", false, "if the state file is damaged, empty or foreign, move it aside and start with a new one (full sync, every item sent again)")
	return cmd
}

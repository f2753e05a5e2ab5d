package connector

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/feedcdc/feedcdc/dashboard"
	"github.com/feedcdc/feedcdc/state"
)

// scheduleVerify registers the feed's scheduled verify
// (feeds.<feed>.verify_schedule; none when empty). Like the other jobs it
// skips a tick while its previous run is still going (the scheduler's
// SkipIfStillRunning), and it skips a tick while another operation holds
// the feed (a resync, a verify from the command line). It compares with
// the state only and repairs nothing: drift is logged, kept in the state
// (feedcdc status) and exported as metrics; repair is an operator's
// decision (feedcdc verify --repair).
func (c *Connector) scheduleVerify(ctx context.Context, sched *cron.Cron, feed string) error {
	spec := c.Config.Feeds.Feed(feed).VerifySchedule
	if spec == "" {
		return nil
	}
	s, err := spec.Parse()
	if err != nil {
		return fmt.Errorf("feeds.%s.verify_schedule: %w", feed, err)
	}
	sched.Schedule(s, cron.FuncJob(func() {
		res, err := c.Verify(ctx, VerifyOptions{Feed: feed, Owner: fmt.Sprintf("scheduled verify(pid %d)", os.Getpid())})
		switch {
		case errors.Is(err, state.ErrFeedLocked):
			c.Logger.Info("scheduled verify skipped: another operation holds the feed", "feed", feed, "operation", OpVerify, "error", err)
		case err != nil && ctx.Err() == nil:
			c.Logger.Error("scheduled verify failed", "feed", feed, "operation", OpVerify, "error", err)
		case err == nil && res.Drift > 0:
			c.Logger.Warn("verify found drift: the feed's delivered items differ from the database; run `feedcdc verify --feed "+feed+" --repair` to send exactly the differing items",
				"feed", feed, "operation", OpVerify, "drift", res.Drift, "stale", res.Counts[VerifyStale], "missing", res.Counts[VerifyMissing],
				"orphaned", res.Counts[VerifyOrphaned])
		}
	}))
	return nil
}

// Verified implements the connector's verify observer: the result as
// metrics (feedcdc.verify.items, feedcdc.verify.drift).
func (o MetricsObserver) Verified(feed string, counts map[string]int64, drift int64) {
	o.M.Verified(feed, counts, drift)
}

// lastVerify is a stored verify report as the dashboard shows it.
func lastVerify(r *state.VerifyReport) *dashboard.LastVerify {
	if r == nil {
		return nil
	}
	return &dashboard.LastVerify{FinishedAt: r.FinishedAt, Elapsed: r.FinishedAt.Sub(r.StartedAt).Round(time.Millisecond).String(),
		Checked: r.Counts["checked"], Drift: r.Drift, Repaired: r.Repaired, Error: r.Error}
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/feedcdc/feedcdc/config"
	"github.com/feedcdc/feedcdc/connector"
	"github.com/feedcdc/feedcdc/dashboard"
	"github.com/feedcdc/feedcdc/state"
	"github.com/feedcdc/feedcdc/telemetry"
)

func newResync(g *globals) *cobra.Command {
	var o connector.ResyncOptions
	var byIDs string
	var noWait, asJSON bool
	cmd := &cobra.Command{
		Use:   "resync",
		Short: "Full sync (or by-ids sync) of a feed, safe to run at any time",
		Long: `Enumerates the feed's entities in primary-key chunks and sends every item
whose content changed (or, with --by-ids, the given entities whether changed
or not) through the same build/diff/export path as streaming. It takes no
locks and writes nothing on the source; it is throttled by resync.rows_per_second
and resync.max_replica_lag, and resumable with --continue-resync.

Progress shows entities done/total (the total is counted first), the rate
and the time left. SIGINT or SIGTERM stops it cleanly after the current
chunk (exit 0; --continue-resync resumes it). The summary counts entities,
items built, sent, unchanged, failed and rejected and, for a full sync,
what the pass over remembered entities found (remembered items checked,
entities the scan did not list rebuilt, or that it was skipped because the
state held no item of the feed).

While 'feedcdc run' holds the state file, resync runs as a job of the
running connector, through its dashboard API (dashboard.enabled, and the
dashboard token in FEEDCDC_DASHBOARD_TOKEN): every flag works the same.
The command waits for the job, shows its progress and exits 1 when it
fails; --no-wait prints the job id and returns (follow it with
'feedcdc status').`,
		Example: `  feedcdc resync --feed products
  feedcdc resync --feed products --by-ids '24-MB01,24-MB04'
  feedcdc resync --feed products --by-ids 1,2,3 --id-type productId
  feedcdc resync --feed variants --dry-run
  feedcdc resync --feed products --continue-resync --thread-count 4 --batch-size 1000
  feedcdc resync --feed products --no-wait     # while run runs: print the job id`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.loadConfig()
			if err != nil {
				return err
			}
			feed, err := canonicalFeed(o.Feed)
			if err != nil {
				return err
			}
			o.Feed = feed
			if byIDs != "" {
				for _, id := range strings.Split(byIDs, ",") {
					if id = strings.TrimSpace(id); id != "" {
						o.ByIDs = append(o.ByIDs, id)
					}
				}
			}
			if o.IDType != "sku" && o.IDType != "productId" {
				return fmt.Errorf("--id-type %q: use sku (default) or productId", o.IDType)
			}
			if o.IDType == "sku" {
				o.IDType = ""
			}
			if o.Continue && len(o.ByIDs) > 0 {
				return errors.New("--continue-resync resumes a full sync; it cannot be combined with --by-ids")
			}
			log, err := g.logger(cfg)
			if err != nil {
				return err
			}
			c, err := connector.Open(cmd.Context(), cfg, connector.OpenOptions{Logger: log, Command: "feedcdc resync --feed " + feed, NoSinks: o.DryRun})
			if errors.Is(err, state.ErrInUse) {
				return g.remoteResync(cmd.Context(), cfg, o, !noWait, asJSON, err)
			}
			if err != nil {
				return err
			}
			defer c.Close()
			if !cfg.Feeds.Feed(feed).Enabled {
				return fmt.Errorf("feed %s is disabled in %s (feeds.%s.enabled: false)", feed, cfg.File, feed)
			}
			ctx := cmd.Context()
			stop := c.RunExporter(ctx)
			progress := newProgress(g.stderr, feed)
			o.Progress = progress.update
			o.SampleSize = 3
			res, err := c.Resync(ctx, o)
			progress.done()
			if serr := stop(); err == nil {
				err = serr
			}
			if err != nil {
				return interrupted(ctx, feed, err)
			}
			if asJSON {
				return writeJSON(g.stdout, res)
			}
			printResync(g.stdout, res, o)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Feed, "feed", "", "feed to sync: products, productAttributes, variants, productOverrides (required)")
	f.StringVar(&byIDs, "by-ids", "", "comma-separated SKUs (or entity ids with --id-type productId) to resync, sent even if unchanged")
	f.StringVar(&o.IDType, "id-type", "sku", "what --by-ids lists: sku or productId")
	f.BoolVar(&o.DryRun, "dry-run", false, "build and report counts and a sample; send and persist nothing")
	f.BoolVar(&o.CleanupFeed, "cleanup-feed", false, "forget the feed's state first so every item is sent again (items of entities deleted meanwhile stay at the destination)")
	f.BoolVar(&o.Continue, "continue-resync", false, "resume an interrupted full sync after its last completed chunk")
	f.IntVar(&o.BatchSize, "batch-size", 0, "entities per chunk (default resync.batch_size)")
	f.IntVar(&o.ThreadCount, "thread-count", 0, "chunks built in parallel (default resync.thread_count)")
	f.BoolVar(&asJSON, "json", false, "print the summary as JSON (the result object of GET /api/jobs/{id}, documented in docs/operations.md)")
	f.BoolVar(&noWait, "no-wait", false, "while 'feedcdc run' runs: print the job id and return instead of waiting for the job")
	_ = cmd.MarkFlagRequired("feed")
	return cmd
}

// interrupted turns the end of a resync stopped by SIGINT/SIGTERM into a
// clean stop (exit 0) that says how to resume it; other errors pass.
func interrupted(ctx context.Context, feed string, err error) error {
	if ctx.Err() == nil || !errors.Is(err, context.Canceled) {
		return err
	}
	return &exitError{code: 0, err: fmt.Errorf("resync of %s stopped by a signal after its last completed chunk; `feedcdc resync --feed %s --continue-resync` resumes a full sync", feed, feed)}
}

func printResync(w io.Writer, res connector.ResyncResult, o connector.ResyncOptions) {
	what := "full re-sync"
	if len(o.ByIDs) > 0 {
		idType := "SKUs"
		if o.IDType == "productId" {
			idType = "product ids"
		}
		what = fmt.Sprintf("resync by ids (%d %s given)", len(o.ByIDs), idType)
	}
	if o.DryRun {
		fmt.Fprintf(w, "%s: %s dry run complete in %s: nothing sent or stored\n", res.Feed, what, fmtElapsed(res.Elapsed))
		fmt.Fprintf(w, "  entities %d, items built %d, would send %d (deleted %d), unchanged %d\n",
			res.Stats.Keys, res.Stats.Built, res.Stats.Sent, res.Stats.Deleted, res.Stats.Skipped)
	} else {
		fmt.Fprintf(w, "%s: %s complete in %s\n", res.Feed, what, fmtElapsed(res.Elapsed))
		fmt.Fprintf(w, "  entities %d, items built %d, sent %d (deleted %d), unchanged %d, failed %d, rejected %d\n",
			res.Stats.Keys, res.Stats.Built, res.Stats.Sent, res.Stats.Deleted, res.Stats.Skipped, res.Stats.Failed, res.Stats.Rejected)
	}
	if len(o.ByIDs) == 0 {
		// The pass over remembered entities that finds vanished ones.
		if res.Vanished.Skipped {
			fmt.Fprintln(w, "  vanished pass: skipped (the state held no item of the feed when the sync began)")
		} else {
			fmt.Fprintf(w, "  vanished pass: checked %d remembered items, rebuilt %d entities the scan did not list\n",
				res.Vanished.Checked, res.Vanished.Rebuilt)
		}
	}
	for i, it := range res.Sample {
		fmt.Fprintf(w, "  sample %d: %s\n", i+1, it.Data)
	}
	if o.CleanupFeed && !o.DryRun {
		fmt.Fprintln(w, "  note: --cleanup-feed forgot the feed's state; items of entities deleted before this resync remain at the destination")
	}
}

// writeJSON prints v as indented JSON, without escaping HTML in item
// payloads.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

func fmtElapsed(d time.Duration) string {
	d = d.Round(time.Second)
	return fmt.Sprintf("%02d:%02d:%02d", int(d.Hours()), int(d.Minutes())%60, int(d.Seconds())%60)
}

// remoteResync runs the resync as a job of the running connector (which
// holds the state file), through its dashboard API.
func (g *globals) remoteResync(ctx context.Context, cfg *config.Config, o connector.ResyncOptions, wait, asJSON bool, inUse error) error {
	rm, err := g.remoteFor(cfg, "feedcdc resync", inUse, true)
	if err != nil {
		return err
	}
	req := dashboard.JobRequest{Kind: dashboard.JobResync, Feed: o.Feed, IDs: o.ByIDs, IDType: o.IDType, DryRun: o.DryRun,
		CleanupFeed: o.CleanupFeed, Continue: o.Continue, BatchSize: o.BatchSize, ThreadCount: o.ThreadCount}
	var progress *progress
	if wait {
		progress = newProgress(g.stderr, o.Feed)
	}
	job, err := rm.startJob(ctx, req, wait, func(j dashboard.Job) {
		if j.Total == 0 && j.State == dashboard.JobRunning {
			return // still counting the entities
		}
		progress.total = j.Total
		progress.update(state.Progress{Processed: j.Done})
	})
	if progress != nil {
		progress.done()
	}
	if err != nil {
		return err
	}
	if !wait {
		fmt.Fprintf(g.stdout, "resync of %s started as job %s on %s; follow it with `feedcdc status`\n", o.Feed, job.ID, rm.who())
		fmt.Fprintln(g.stdout, job.ID)
		return nil
	}
	var res connector.ResyncResult
	if err := json.Unmarshal(job.Result, &res); err != nil {
		return fmt.Errorf("resync job %s ended without a readable result: %w", job.ID, err)
	}
	if asJSON {
		fmt.Fprintf(g.stderr, "ran on %s as job %s\n", rm.who(), job.ID)
		return writeJSON(g.stdout, res)
	}
	fmt.Fprintf(g.stdout, "ran on %s as job %s\n", rm.who(), job.ID)
	printResync(g.stdout, res, o)
	return nil
}

// progress shows resync progress: a live bar on a terminal, otherwise a
// line every interval. Both show entities done/total, the rate and the
// time left.
type progress struct {
	w        io.Writer
	feed     string
	tty      bool
	start    time.Time
	total    int64
	last     time.Time
	interval time.Duration
	lines    int
}

func newProgress(w io.Writer, feed string) *progress {
	return &progress{w: w, feed: feed, tty: telemetry.IsTerminal(w), start: time.Now(), interval: 30 * time.Second}
}

func (p *progress) update(pr state.Progress) {
	if pr.Total > 0 {
		p.total = pr.Total
	}
	now := time.Now()
	rate := float64(pr.Processed) / now.Sub(p.start).Seconds()
	eta := "?"
	if p.total > 0 && rate > 0 {
		eta = (time.Duration(float64(max(0, p.total-pr.Processed))/rate) * time.Second).Round(time.Second).String()
	}
	if p.tty {
		if now.Sub(p.last) < 200*time.Millisecond {
			return
		}
		p.last = now
		frac := 0.0
		if p.total > 0 {
			frac = min(1, float64(pr.Processed)/float64(p.total))
		}
		bar := strings.Repeat("#", int(frac*30)) + strings.Repeat(".", 30-int(frac*30))
		fmt.Fprintf(p.w, "\r%s [%s] %d/%d entities, %d synced, %.0f/s, ETA %s   ", p.feed, bar, pr.Processed, p.total, pr.Synced, rate, eta)
		return
	}
	if p.lines > 0 && now.Sub(p.last) < p.interval {
		return
	}
	p.last = now
	p.lines++
	fmt.Fprintf(p.w, "%s: progress %d/%d entities, synced %d, %.0f/s, ETA %s\n", p.feed, pr.Processed, p.total, pr.Synced, rate, eta)
}

func (p *progress) done() {
	if p.tty {
		fmt.Fprintln(p.w)
	}
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/feedcdc/feedcdc/config"
	"github.com/feedcdc/feedcdc/connector"
	"github.com/feedcdc/feedcdc/state"
	"github.com/feedcdc/feedcdc/telemetry"
)

func newResync(g *globals) *cobra.Command {
	var o connector.ResyncOptions
	var byIDs string
	cmd := &cobra.Command{
		Use:   "resync",
		Short: "Full sync (or by-ids sync) of a feed, safe to run at any time",
		Long: `Enumerates the feed's entities in primary-key chunks and sends every item
whose content changed (or, with --by-ids, the given entities whether changed
or not) through the same build/diff/export path as streaming. It takes no
locks and writes nothing on the source; it is throttled by resync.rows_per_second
and resync.max_replica_lag, and resumable with --continue-resync.

While 'feedcdc run' holds the state file, resync asks the running connector
to do it (through its dashboard API, which must be enabled with a token).`,
		Example: `  feedcdc resync --feed products
  feedcdc resync --feed products --by-ids '24-MB01,24-MB04'
  feedcdc resync --feed products --by-ids 1,2,3 --id-type productId
  feedcdc resync --feed variants --dry-run
  feedcdc resync --feed products --continue-resync --thread-count 4 --batch-size 1000`,
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
				return g.remoteResync(cmd.Context(), cfg, o, err)
			}
			if err != nil {
				return err
			}
			defer c.Close()
			if !cfg.Feeds.Feed(feed).Enabled {
				return fmt.Errorf("feed %s is disabled in %s (feeds.%s.enabled: false)", feed, cfg.File, feed)
			}
			stop := c.RunExporter(cmd.Context())
			progress := newProgress(g.stderr, feed)
			o.Progress = progress.update
			o.SampleSize = 3
			if o.Continue {
				if p, ok, _ := c.Store.Progress(cmd.Context(), feed); ok {
					progress.total = p.Total
				}
			}
			res, err := c.Resync(cmd.Context(), o)
			progress.done()
			if serr := stop(); err == nil {
				err = serr
			}
			if err != nil {
				return err
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
	_ = cmd.MarkFlagRequired("feed")
	return cmd
}

func printResync(w io.Writer, res connector.ResyncResult, o connector.ResyncOptions) {
	mode := ""
	if o.DryRun {
		mode = " (dry run: nothing sent or stored)"
	}
	fmt.Fprintf(w, "%s: full re-sync complete in %s%s\n", res.Feed, fmtElapsed(res.Elapsed), mode)
	fmt.Fprintf(w, "  entities %d, items built %d, sent %d (deleted %d), unchanged %d, failed %d, rejected %d\n",
		res.Stats.Keys, res.Stats.Built, res.Stats.Sent, res.Stats.Deleted, res.Stats.Skipped, res.Stats.Failed, res.Stats.Rejected)
	for i, it := range res.Sample {
		fmt.Fprintf(w, "  sample %d: %s\n", i+1, it.Data)
	}
	if o.CleanupFeed && !o.DryRun {
		fmt.Fprintln(w, "  note: --cleanup-feed forgot the feed's state; items of entities deleted before this resync remain at the destination")
	}
}

func fmtElapsed(d time.Duration) string {
	d = d.Round(time.Second)
	return fmt.Sprintf("%02d:%02d:%02d", int(d.Hours()), int(d.Minutes())%60, int(d.Seconds())%60)
}

// remoteResync asks the running connector (which holds the state file) to
// run the resync, through its dashboard API.
func (g *globals) remoteResync(ctx context.Context, cfg *config.Config, o connector.ResyncOptions, inUse error) error {
	var iu *state.InUseError
	if errors.As(inUse, &iu) && !strings.Contains(iu.Owner.Command, " run") {
		return fmt.Errorf("%w\nanother feedcdc command holds the state file (%s, pid %d); wait for it to finish and run this resync again", inUse, iu.Owner.Command, iu.Owner.PID)
	}
	if !cfg.Dashboard.Enabled || cfg.Dashboard.Token.Value() == "" || o.DryRun || o.Continue || o.CleanupFeed || o.IDType != "" {
		return fmt.Errorf("%w\nwhile `feedcdc run` is running, schedule the resync through it: enable dashboard (with a token) and run `feedcdc resync --feed %s [--by-ids ...]` again, or use the dashboard; --dry-run, --continue-resync, --cleanup-feed and --id-type need the connector stopped", inUse, o.Feed)
	}
	body, _ := json.Marshal(map[string]any{"ids": o.ByIDs, "whole_feed": len(o.ByIDs) == 0})
	url := "http://" + cfg.Dashboard.Listen + "/api/feeds/" + o.Feed + "/resync"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+cfg.Dashboard.Token.Value())
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("%w\nand the running connector's dashboard at %s did not answer: %v", inUse, cfg.Dashboard.Listen, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("the running connector refused the resync: %s %s", resp.Status, strings.TrimSpace(string(msg)))
	}
	fmt.Fprintf(g.stdout, "resync of %s scheduled on the running connector (pid holding %s); follow it with `feedcdc status`\n", o.Feed, cfg.State.Path)
	return nil
}

// progress shows resync progress: a live bar on a terminal, otherwise lines
// like the system feedcdc replaces ("Progress i/n, processed X, synced Y").
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
	if p.tty {
		if now.Sub(p.last) < 200*time.Millisecond {
			return
		}
		p.last = now
		var bar string
		eta := "?"
		if p.total > 0 {
			frac := min(1, float64(pr.Processed)/float64(p.total))
			bar = strings.Repeat("#", int(frac*30)) + strings.Repeat(".", 30-int(frac*30))
			if rate > 0 {
				eta = (time.Duration(float64(p.total-pr.Processed)/rate) * time.Second).Round(time.Second).String()
			}
		} else {
			bar = strings.Repeat(".", 30)
		}
		fmt.Fprintf(p.w, "\r%s [%s] %d entities, %d synced, %.0f/s, ETA %s   ", p.feed, bar, pr.Processed, pr.Synced, rate, eta)
		return
	}
	if p.lines > 0 && now.Sub(p.last) < p.interval {
		return
	}
	p.last = now
	p.lines++
	total := "?"
	if p.total > 0 {
		total = fmt.Sprint(p.total)
	}
	fmt.Fprintf(p.w, "%s: Progress %d/%s, processed %d, synced %d\n", p.feed, pr.Chunks, total, pr.Processed, pr.Synced)
}

func (p *progress) done() {
	if p.tty {
		fmt.Fprintln(p.w)
	}
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/spf13/cobra"

	"github.com/feedcdc/feedcdc/config"
	"github.com/feedcdc/feedcdc/connector"
	"github.com/feedcdc/feedcdc/dashboard"
	"github.com/feedcdc/feedcdc/state"
)

// exitDrift is verify's exit code when it found drift.
const exitDrift = 3

type verifyFlags struct {
	feed, byIDs, idType      string
	repair, readBack, asJSON bool
	examples                 int
}

func newVerify(g *globals) *cobra.Command {
	var fl verifyFlags
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Prove that a feed's delivered items equal the database, and repair any drift",
		Long: `Enumerates the feed's entities in primary-key chunks (paced per chunk by
verify.rows_per_second and verify.max_replica_lag), builds their
items from the database's current state and compares them with what the
state file records as delivered. It reports items checked, equal, stale
(hash differs), missing (never delivered, or recorded deleted), orphaned
(recorded live but no longer built) and unsettled (pending, failed or
rejected: the retry job's business; or deferred keys of a big transaction
still to be built: in flight, not drift), with examples.

--read-back also reads what the sinks hold (file sink: its files; Kafka: the
feed topic, latest value per key) and reports items missing, differing or
orphaned at the destination. --repair exports exactly the differing items
(deleted payloads for orphans) through the normal export path; without it
nothing is sent.

Exit code: 0 no drift, 3 drift found (also when --repair repaired it),
1 on error. While 'feedcdc run' holds the state file, verify asks the
running connector to do it (through its dashboard API, which must be
enabled with a token). See docs/verify.md.`,
		Example: `  feedcdc verify --feed products
  feedcdc verify --feed products --read-back --json
  feedcdc verify --feed products --repair
  feedcdc verify --feed products --by-ids '24-MB01,24-MB04'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.verify(cmd.Context(), fl)
		},
	}
	f := cmd.Flags()
	f.StringVar(&fl.feed, "feed", "", "feed to verify: products, productAttributes, variants, productOverrides (required)")
	f.StringVar(&fl.byIDs, "by-ids", "", "comma-separated SKUs (or entity ids with --id-type productId) to verify instead of the whole feed")
	f.StringVar(&fl.idType, "id-type", "sku", "what --by-ids lists: sku or productId")
	f.BoolVar(&fl.repair, "repair", false, "export exactly the differing items (deleted payloads for orphans)")
	f.BoolVar(&fl.readBack, "read-back", false, "also compare with what the sinks hold (file and Kafka sinks)")
	f.BoolVar(&fl.asJSON, "json", false, "print the result as JSON")
	f.IntVar(&fl.examples, "examples", 10, "examples shown per result")
	_ = cmd.MarkFlagRequired("feed")
	return cmd
}

func (g *globals) verify(ctx context.Context, fl verifyFlags) error {
	cfg, err := g.loadConfig()
	if err != nil {
		return err
	}
	feed, err := canonicalFeed(fl.feed)
	if err != nil {
		return err
	}
	vo := connector.VerifyOptions{Feed: feed, Repair: fl.repair, Examples: fl.examples}
	for _, id := range strings.Split(fl.byIDs, ",") {
		if id = strings.TrimSpace(id); id != "" {
			vo.ByIDs = append(vo.ByIDs, id)
		}
	}
	switch fl.idType {
	case "sku":
	case "productId":
		vo.IDType = fl.idType
	default:
		return fmt.Errorf("--id-type %q: use sku (default) or productId", fl.idType)
	}
	if fl.examples < 0 {
		return fmt.Errorf("--examples %d: give 0 or more", fl.examples)
	}
	log, err := g.logger(cfg)
	if err != nil {
		return err
	}
	c, err := connector.Open(ctx, cfg, connector.OpenOptions{Logger: log, Command: "feedcdc verify --feed " + feed, NoSinks: !fl.repair && !fl.readBack})
	if errors.Is(err, state.ErrInUse) {
		res, rerr := g.remoteVerify(ctx, cfg, vo, fl.readBack, err)
		if rerr != nil {
			return rerr
		}
		return g.printVerify(res, fl)
	}
	if err != nil {
		return err
	}
	defer c.Close()
	if !cfg.Feeds.Feed(feed).Enabled {
		return fmt.Errorf("feed %s is disabled in %s (feeds.%s.enabled: false)", feed, cfg.File, feed)
	}
	if fl.readBack {
		var unreadable []string
		vo.Destinations, unreadable = c.Destinations(feed)
		for _, n := range unreadable {
			fmt.Fprintf(g.stderr, "note: sink %s cannot be read back (only file and Kafka sinks can); for it only the state is compared\n", n)
		}
	}
	stop := c.RunExporter(ctx)
	res, err := c.Verify(ctx, vo)
	if serr := stop(); err == nil {
		err = serr
	}
	if err != nil {
		return err
	}
	return g.printVerify(res, fl)
}

// printVerify prints the result and turns drift into exit code 3.
func (g *globals) printVerify(res connector.VerifyResult, fl verifyFlags) error {
	if fl.asJSON {
		enc := json.NewEncoder(g.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			return err
		}
	} else {
		printVerifyText(g.stdout, res)
	}
	if res.Drift > 0 {
		return &exitError{code: exitDrift}
	}
	return nil
}

func printVerifyText(w io.Writer, res connector.VerifyResult) {
	fmt.Fprintf(w, "%s: verify complete in %s: %d items checked, drift %d\n", res.Feed, fmtElapsed(res.Elapsed), res.Checked, res.Drift)
	for _, k := range connector.VerifyResults {
		if n, ok := res.Counts[k]; ok && (n > 0 || !strings.Contains(k, "destination") || len(res.ReadBack) > 0) {
			fmt.Fprintf(w, "  %-24s %d\n", k, n)
		}
	}
	if len(res.ReadBack) > 0 {
		fmt.Fprintf(w, "  read back: %s (%d items held)\n", strings.Join(res.ReadBack, ", "), res.DestinationRecords)
	}
	for _, e := range res.Examples {
		line := fmt.Sprintf("  %s: feed_id %s entity %s %s", e.Result, e.FeedID, e.EntityKey, identityText(e.Identity))
		if e.Sink != "" {
			line += " sink " + e.Sink
		}
		if e.Result == connector.VerifyUnsettled {
			line += fmt.Sprintf(" status %d", e.Status)
		}
		if len(e.Fields) > 0 {
			line += " fields " + strings.Join(e.Fields, ",")
		}
		fmt.Fprintln(w, line)
	}
	if r := res.Repair; r != nil {
		fmt.Fprintf(w, "  repair: sent %d (deleted %d), failed %d, rejected %d\n", r.Sent, r.Deleted, r.Failed, r.Rejected)
	} else if res.Drift > 0 {
		fmt.Fprintf(w, "  nothing was sent; run again with --repair to export exactly these %d items\n", res.Drift)
	}
}

func identityText(id map[string]string) string {
	var parts []string
	for _, k := range []string{"sku", "storeViewCode", "attributeCode", "parentSku", "productSku", "websiteCode", "customerGroupCode"} {
		if v, ok := id[k]; ok {
			parts = append(parts, k+"="+v)
		}
	}
	return strings.Join(parts, " ")
}

// remoteVerify asks the running connector (which holds the state file) to
// run the verify, through its dashboard API, and waits for the result.
func (g *globals) remoteVerify(ctx context.Context, cfg *config.Config, vo connector.VerifyOptions, readBack bool, inUse error) (connector.VerifyResult, error) {
	var res connector.VerifyResult
	r, err := g.remoteFor(cfg, "feedcdc verify --feed "+vo.Feed, inUse, true)
	if err != nil {
		return res, err
	}
	req := dashboard.VerifyRequest{IDs: vo.ByIDs, IDType: vo.IDType, Repair: vo.Repair, ReadBack: readBack, Examples: vo.Examples}
	err = r.do(ctx, http.MethodPost, "/api/feeds/"+vo.Feed+"/verify", req, &res)
	return res, err
}

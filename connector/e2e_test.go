package connector

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/feedcdc/feedcdc/config"
	"github.com/feedcdc/feedcdc/feeds"
	"github.com/feedcdc/feedcdc/test/catalog"
	"github.com/feedcdc/feedcdc/test/kafkatest"
)

// e2eConfig is a connector configuration for the shared private server.
func e2eConfig(t *testing.T, db, kafkaAddr string, extra string) *config.Config {
	t.Helper()
	c := connectorYAML{Name: "e2e", Database: db, Sections: unthrottledResync + kafkaSink(kafkaAddr, db, "linger: 1ms") + extra}
	return c.load(t)
}

// waitCaughtUp waits until the connector's checkpoint covers everything the
// server has written to its binlog.
func waitCaughtUp(t testing.TB, c *Connector, admin *sql.DB, runErr <-chan error) {
	t.Helper()
	waitCaughtUpWithin(t, c, admin, runErr, 3*time.Minute)
}

// waitCaughtUpWithin is waitCaughtUp with its own deadline.
func waitCaughtUpWithin(t testing.TB, c *Connector, admin *sql.DB, runErr <-chan error, within time.Duration) {
	t.Helper()
	var target string
	if err := admin.QueryRow("SELECT @@gtid_binlog_pos").Scan(&target); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(within)
	for {
		pos, _, ok, err := c.Store.Checkpoint(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if ok && gtidCovers(pos.GTIDSet, target) {
			return
		}
		select {
		case err := <-runErr:
			t.Fatalf("connector stopped: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("not caught up: checkpoint %v, server at %s", pos, target)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// gtidCovers reports whether MariaDB GTID set have includes every domain's
// sequence of want.
func gtidCovers(have, want string) bool {
	seqs := map[string]uint64{}
	for _, g := range strings.Split(have, ",") {
		parts := strings.Split(strings.TrimSpace(g), "-")
		if len(parts) == 3 {
			n, _ := strconv.ParseUint(parts[2], 10, 64)
			seqs[parts[0]] = max(seqs[parts[0]], n)
		}
	}
	for _, g := range strings.Split(want, ",") {
		parts := strings.Split(strings.TrimSpace(g), "-")
		if len(parts) != 3 {
			continue
		}
		n, _ := strconv.ParseUint(parts[2], 10, 64)
		if seqs[parts[0]] < n {
			return false
		}
	}
	return true
}

// freshBuild builds every current item of a feed from the database.
func freshBuild(t *testing.T, f feeds.Feed) map[string]feeds.Item {
	t.Helper()
	out := map[string]feeds.Item{}
	err := f.Scan(context.Background(), func(keys []string) error {
		items, err := f.Build(context.Background(), keys)
		for _, it := range items {
			out[it.ID] = it
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestDifferentialFeedsEqualDatabase is the acceptance test of the feeds:
// after a full sync and a seeded workload of every change kind streamed
// through the binlog, the latest exported item of every key equals a fresh
// build from the database, and vanished keys are marked deleted.
func TestDifferentialFeedsEqualDatabase(t *testing.T) {
	changes := 10000
	if v := os.Getenv("FEEDCDC_E2E_CHANGES"); v != "" {
		changes, _ = strconv.Atoi(v)
	}
	for _, seed := range []int64{1, 2, 3} {
		t.Run(fmt.Sprintf("seed%d", seed), func(t *testing.T) {
			t.Parallel()
			differential(t, seed, changes)
		})
	}
}

func differential(t *testing.T, seed int64, changes int) {
	ctx := context.Background()
	db := srv.NewDatabase(t, "diff")
	admin := srv.Admin(t, db)
	p := catalog.Tiny()
	p.ExtraStoreViews = 1
	if _, err := catalog.Load(ctx, admin, p, seed); err != nil {
		t.Fatal(err)
	}
	kafka := kafkatest.Start(t)
	cfg := e2eConfig(t, db, kafka.Addr(), "")
	c := openConnector(t, cfg, OpenOptions{})
	runErr, _ := startRun(t, c, RunOptions{NoSchedule: true})
	// The first start runs a full sync of every feed while streaming.
	wl := catalog.NewWorkload(admin, seed, catalog.WorkloadOptions{})
	st, err := wl.Run(ctx, changes, 0)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for k, n := range st.Kinds {
		kinds = append(kinds, fmt.Sprintf("%s=%d", k, n))
	}
	sort.Strings(kinds)
	t.Logf("seed %d: %d transactions; kinds: %s", seed, st.Transactions, strings.Join(kinds, " "))
	for _, k := range catalog.AllKinds() {
		if k != catalog.KindLarge && st.Kinds[k] == 0 {
			t.Errorf("workload exercised no %s change", k)
		}
	}
	waitCaughtUp(t, c, admin, runErr)
	for _, f := range cfg.EnabledFeeds() {
		for {
			pr, ok, _ := c.Store.Progress(ctx, f)
			if ok && pr.Finished() {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	// Export anything the last batch still holds.
	if err := c.Pipeline.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	feedsEqualFreshBuild(t, c, kafka, db)
}

// feedsEqualFreshBuild checks that the latest Kafka record of every item of
// every enabled feed (topics db.<feed>) equals a fresh build from the
// database, and that every exported item the database no longer has was
// last sent as deleted.
func feedsEqualFreshBuild(t *testing.T, c *Connector, kafka *kafkatest.Cluster, db string) {
	t.Helper()
	ctx := context.Background()
	for _, feed := range c.Registry.Feeds() {
		want := freshBuild(t, feed)
		recs, err := kafka.ReadAll(ctx, db+"."+feed.Name())
		if err != nil {
			t.Fatal(err)
		}
		latest := map[string]kafkatest.Record{}
		for _, r := range recs {
			latest[string(r.Key)] = r
		}
		byID := map[string]kafkatest.Record{}
		for _, r := range latest {
			id, _ := r.Header("feed_id")
			if id == "" {
				t.Fatalf("%s record without feed_id header: %v", feed.Name(), r.Headers)
			}
			byID[id] = r
		}
		var missing, differ, notDeleted int
		for id, it := range want {
			r, ok := byID[id]
			if !ok {
				missing++
				if missing <= 3 {
					t.Errorf("%s: item %s (%v) never exported", feed.Name(), id, it.Identity)
				}
				continue
			}
			if h, _ := r.Header("feed_hash"); h != it.Hash {
				differ++
				if differ <= 3 {
					t.Errorf("%s: item %v differs:\n kafka: %s\n db:    %s", feed.Name(), it.Identity, r.Value, it.Data)
				}
			}
		}
		for id, r := range byID {
			if _, ok := want[id]; ok {
				continue
			}
			var v struct {
				Deleted bool `json:"deleted"`
			}
			if err := json.Unmarshal(r.Value, &v); err != nil || !v.Deleted {
				notDeleted++
				if notDeleted <= 3 {
					t.Errorf("%s: vanished item %s not marked deleted: %s", feed.Name(), r.Key, bytes.TrimSpace(r.Value))
				}
			}
		}
		t.Logf("%s: %d current items, %d keys in Kafka; missing %d, differing %d, vanished-not-deleted %d",
			feed.Name(), len(want), len(byID), missing, differ, notDeleted)
	}
}

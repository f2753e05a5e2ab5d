package connector

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/feedcdc/feedcdc/config"
	"github.com/feedcdc/feedcdc/state"
	"github.com/feedcdc/feedcdc/telemetry"
	"github.com/feedcdc/feedcdc/test/catalog"
	"github.com/feedcdc/feedcdc/test/mysqltest"
)

// rawIDs reads the ids of the raw change records of table db.rawt that the
// file sink in dir holds (current and rotated files).
func rawIDs(t *testing.T, dir, db string) map[int]int {
	t.Helper()
	return rawIDsOf(t, dir, "sync", db)
}

// rawIDsOf is rawIDs for connector name name.
func rawIDsOf(t *testing.T, dir, name, db string) map[int]int {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, name+"."+db+".rawt*.jsonl"))
	got := map[int]int{}
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var e struct {
				After *struct {
					ID int `json:"id"`
				} `json:"after"`
			}
			if json.Unmarshal(sc.Bytes(), &e) == nil && e.After != nil {
				got[e.After.ID]++
			}
		}
		fh.Close()
	}
	return got
}

func waitUntil(t *testing.T, what string, d time.Duration, cond func() bool, diag func() string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s\n%s", what, diag())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func insertRaw(t *testing.T, s *mysqltest.Server, db string, from, to int) {
	t.Helper()
	admin := s.Admin(t, db)
	for i := from; i <= to; i++ {
		if _, err := admin.Exec("INSERT INTO rawt (id, v) VALUES (?, ?)", i, i); err != nil {
			t.Fatal(err)
		}
	}
}

func readState(t *testing.T, path string, fn func(st *state.Store)) {
	t.Helper()
	st, err := state.Open(path, state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	fn(st)
}

// TestCheckpointFromTheFirstMoment: a first start stores its position and
// its full syncs at once, so that a connector process killed (SIGKILL) in
// the middle of its first full sync resumes that sync instead of starting
// over; killed again on an idle source after the sync finished, it
// delivers every raw row written while it was down, without a second
// first-start sync; stopped with SIGTERM, it stores the final checkpoint and
// again delivers everything written while it was stopped.
func TestCheckpointFromTheFirstMoment(t *testing.T) {
	ctx := context.Background()
	db := srv.NewDatabase(t, "firstck")
	admin := srv.Admin(t, db)
	// More products than one key-scan chunk (1,000), so that the throttle
	// below has a second chunk to hold back: the throttle never waits
	// before the first chunk, and a tiny catalog's sync is one chunk.
	prof := catalog.Tiny()
	prof.SimpleProducts = 1100
	if _, err := catalog.Load(ctx, admin, prof, 5); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec("CREATE TABLE rawt (id INT PRIMARY KEY, v INT NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	statePath := filepath.Join(dir, "state.db")
	writeCfg := func(resync string) string {
		c := connectorYAML{Name: "sync", StatePath: statePath, Database: db,
			Source: []string{fmt.Sprintf("include_tables: [\"%s.rawt\"]", db)},
			Sections: "raw:\n  enabled: true\n  tombstones: false\nresync: " + resync + "\nsinks:\n  files:\n    type: file\n    file:\n      dir: " + out +
				"\n      fsync: false\nlog: {format: text, level: info}\n"}
		return c.write(t, dir)
	}
	feedsAll := []string{"products", "productAttributes", "variants", "productOverrides"}

	// 1. First start, throttled so that it is killed in the middle of the
	// first full sync.
	cfgPath := writeCfg("{rows_per_second: 20, batch_size: 10, max_replica_lag: 0s}")
	first := startSyncChild(t, srv, cfgPath, "FEEDCDC_SYNC_MODE=run")
	waitUntil(t, "the first full sync to start", 2*time.Minute, func() bool { return strings.Contains(first.stderr.String(), "start processing feed=") },
		first.stderr.String)
	time.Sleep(700 * time.Millisecond)
	first.kill()
	if !strings.Contains(first.stderr.String(), "first start") {
		t.Fatalf("the first run was not a first start:\n%s", first.stderr.String())
	}
	readState(t, statePath, func(st *state.Store) {
		pos, _, ok, err := st.Checkpoint(ctx)
		if err != nil || !ok {
			t.Fatalf("after SIGKILL during the first full sync: no checkpoint (ok=%v, err=%v); the next start would be a first start again", ok, err)
		}
		unfinished := 0
		for _, f := range feedsAll {
			p, ok, err := st.Progress(ctx, f)
			if err != nil || !ok {
				t.Fatalf("feed %s: no full sync recorded as started (%v)", f, err)
			}
			if p.Position != pos {
				t.Errorf("feed %s: sync position %s, checkpoint %s", f, p.Position, pos)
			}
			if !p.Finished() {
				unfinished++
			}
		}
		if unfinished == 0 {
			t.Fatalf("every full sync finished before the kill; the test did not stop one in the middle; child log:\n%s", first.stderr.String())
		}
		t.Logf("killed during the first full sync: checkpoint %s, %d of 4 syncs unfinished", pos, unfinished)
	})

	// 2. Restart: the unfinished syncs resume, no first start.
	cfgPath = writeCfg("{rows_per_second: 0, max_replica_lag: 0s}")
	second := startSyncChild(t, srv, cfgPath, "FEEDCDC_SYNC_MODE=run")
	waitUntil(t, "the resumed full syncs to complete", 3*time.Minute, func() bool {
		l := second.stderr.String()
		return strings.Contains(l, "resuming an unfinished full sync") && strings.Count(l, "operation=\"full sync\"") > 0 && strings.Count(l, "complete feed=") >= strings.Count(l, "resuming an unfinished full sync")
	}, second.stderr.String)
	time.Sleep(500 * time.Millisecond) // idle: nothing in flight
	second.kill()
	if l := second.stderr.String(); strings.Contains(l, "first start") {
		t.Fatalf("the restart after SIGKILL was a second first start:\n%s", l)
	}
	finished := map[string]time.Time{}
	readState(t, statePath, func(st *state.Store) {
		for _, f := range feedsAll {
			p, ok, err := st.Progress(ctx, f)
			if err != nil || !ok || !p.Finished() {
				t.Fatalf("feed %s after the resumed sync: %+v ok=%v err=%v", f, p, ok, err)
			}
			finished[f] = p.FinishedAt
		}
	})

	// 3. Killed on an idle source after the full sync: 50 transactions
	// while down, every row delivered after the restart.
	insertRaw(t, srv, db, 1, 50)
	third := startSyncChild(t, srv, cfgPath, "FEEDCDC_SYNC_MODE=run")
	waitUntil(t, "raw rows 1..50", 2*time.Minute, func() bool { return len(rawIDs(t, out, db)) >= 50 },
		func() string {
			return fmt.Sprintf("%d of 50 rows delivered\n%s", len(rawIDs(t, out, db)), third.stderr.String())
		})
	if err := third.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if _, err := third.wait(t); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	if l := third.stderr.String(); strings.Contains(l, "first start") || strings.Contains(l, "start processing") {
		t.Fatalf("the restart synced again:\n%s", l)
	}
	var binlogPos string
	if err := admin.QueryRow("SELECT @@gtid_binlog_pos").Scan(&binlogPos); err != nil {
		t.Fatal(err)
	}
	readState(t, statePath, func(st *state.Store) {
		pos, _, ok, err := st.Checkpoint(ctx)
		if err != nil || !ok || pos.GTIDSet != binlogPos {
			t.Errorf("after SIGTERM: checkpoint %s (ok=%v, err=%v), want the server's %s", pos, ok, err, binlogPos)
		}
		for _, f := range feedsAll {
			if p, _, _ := st.Progress(ctx, f); !p.FinishedAt.Equal(finished[f]) {
				t.Errorf("feed %s was full-synced again (finished %s, before %s)", f, p.FinishedAt, finished[f])
			}
		}
	})

	// 4. After SIGTERM: 50 more transactions while stopped, all delivered.
	insertRaw(t, srv, db, 51, 100)
	fourth := startSyncChild(t, srv, cfgPath, "FEEDCDC_SYNC_MODE=run")
	waitUntil(t, "raw rows 1..100", 2*time.Minute, func() bool { return len(rawIDs(t, out, db)) >= 100 },
		func() string {
			return fmt.Sprintf("%d of 100 rows delivered\n%s", len(rawIDs(t, out, db)), fourth.stderr.String())
		})
	fourth.cmd.Process.Signal(syscall.SIGTERM)
	if _, err := fourth.wait(t); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	ids := rawIDs(t, out, db)
	for i := 1; i <= 100; i++ {
		if ids[i] == 0 {
			t.Errorf("raw row %d never delivered", i)
		}
	}
	if l := fourth.stderr.String(); strings.Contains(l, "first start") || strings.Contains(l, "start processing") {
		t.Fatalf("the restart after SIGTERM synced again:\n%s", l)
	}
}

// TestIdleCheckpointAgeAndFinalCheckpoint: on a source where nothing is
// written, the stored checkpoint's age stays below about
// state.idle_checkpoint_interval plus one flush (over about 7 s, or
// FEEDCDC_IDLE_WINDOW), and a clean stop stores the final checkpoint with
// the stop's time even when nothing moved.
func TestIdleCheckpointAgeAndFinalCheckpoint(t *testing.T) {
	ctx := context.Background()
	db := srv.NewDatabase(t, "idleck")
	if _, err := srv.Admin(t, db).Exec("CREATE TABLE rawt (id INT PRIMARY KEY, v INT NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	open := func(interval time.Duration) *Connector {
		c := connectorYAML{Name: "idle", Database: db, Feeds: noFeeds,
			Source:   []string{fmt.Sprintf("include_tables: [\"%s.rawt\"]", db)},
			Sections: "raw:\n  enabled: true\nsinks:\n  files:\n    type: file\n    file:\n      dir: " + filepath.Join(t.TempDir(), "out") + "\n      fsync: false\n"}
		cfg := c.load(t)
		cfg.State.IdleCheckpointInterval = config.Duration(interval)
		return openConnector(t, cfg, OpenOptions{})
	}

	// The age stays bounded over a window several times the interval.
	const interval = 300 * time.Millisecond
	bound := interval + 200*time.Millisecond + 2*time.Second // + flush_interval + slack for a loaded machine
	window := 3 * bound
	if v := os.Getenv("FEEDCDC_IDLE_WINDOW"); v != "" { // e.g. 60s, as issue 12 asks
		if d, err := time.ParseDuration(v); err == nil {
			window = d
		}
	}
	c := open(interval)
	runErr, stop := startRun(t, c, RunOptions{NoSchedule: true})
	waitUntil(t, "a checkpoint", time.Minute, func() bool { _, _, ok, _ := c.Store.Checkpoint(ctx); return ok }, func() string { return "" })
	var maxAge time.Duration
	writes := map[time.Time]bool{}
	for end := time.Now().Add(window); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		_, at, _, err := c.Store.Checkpoint(ctx)
		if err != nil {
			t.Fatal(err)
		}
		writes[at] = true
		maxAge = max(maxAge, time.Since(at))
	}
	select {
	case err := <-runErr:
		t.Fatalf("run stopped: %v", err)
	default:
	}
	stop()
	if maxAge > bound {
		t.Fatalf("idle checkpoint age reached %s over %s (interval %s, bound %s)", maxAge, window, interval, bound)
	}
	// Bounded write rate: at most one write per interval (plus the first).
	if n := len(writes); n > int(window/interval)+2 {
		t.Errorf("%d checkpoint writes in %s with an interval of %s", n, window, interval)
	}
	t.Logf("idle for %s: checkpoint age at most %s, %d distinct writes seen (interval %s)", window.Round(time.Millisecond), maxAge.Round(time.Millisecond), len(writes), interval)

	// A clean stop stores the final checkpoint, also when idle (no idle
	// re-store in between: the interval is an hour).
	c.Close()
	c = open(time.Hour)
	_, stop = startRun(t, c, RunOptions{NoSchedule: true})
	waitUntil(t, "a checkpoint", time.Minute, func() bool { _, _, ok, _ := c.Store.Checkpoint(ctx); return ok }, func() string { return "" })
	_, started, _, _ := c.Store.Checkpoint(ctx)
	time.Sleep(1500 * time.Millisecond)
	stopAt := time.Now()
	stop()
	_, final, ok, err := c.Store.Checkpoint(ctx)
	if err != nil || !ok || final.Before(stopAt) {
		t.Fatalf("final checkpoint stored at %s (ok=%v, err=%v), stop at %s, previous %s: not stored on the clean stop", final, ok, err, stopAt, started)
	}
}

// purgeTo makes server s purge every binlog file before the current one
// (MariaDB skips files its binlog checkpoint still needs: retried).
func purgeTo(t *testing.T, s *mysqltest.Server) string {
	t.Helper()
	admin := s.Admin(t, "")
	if _, err := admin.Exec("FLUSH BINARY LOGS"); err != nil {
		t.Fatal(err)
	}
	var cur string
	var pos int64
	var skip1, skip2 any
	if err := admin.QueryRow("SHOW MASTER STATUS").Scan(&cur, &pos, &skip1, &skip2); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "PURGE BINARY LOGS", time.Minute, func() bool {
		if _, err := admin.Exec(fmt.Sprintf("PURGE BINARY LOGS TO '%s'", cur)); err != nil {
			t.Fatal(err)
		}
		var first string
		var size any
		if err := admin.QueryRow("SHOW BINARY LOGS").Scan(&first, &size); err != nil {
			t.Fatal(err)
		}
		return first == cur
	}, func() string { return "" })
	return cur
}

// TestPurgedCheckpointRecoveredByResync: with source.on_purged_position:
// resync, a checkpoint whose binlog was purged while the connector was
// stopped is replaced by the current position at start; every feed is
// fully synced through the normal diff (only the changed product is sent
// again) and equals a fresh build; the raw streams' gap is logged and
// recorded in the position history that status shows.
func TestPurgedCheckpointRecoveredByResync(t *testing.T) {
	ctx := context.Background()
	s := func() *mysqltest.Server {
		sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		s, err := mysqltest.Start(sctx, mysqltest.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Stop() })
		return s
	}()
	db := s.NewDatabase(t, "purge")
	admin := s.Admin(t, db)
	if _, err := catalog.Load(ctx, admin, catalog.Tiny(), 6); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec("CREATE TABLE rawt (id INT PRIMARY KEY, v INT NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out")
	logs := &syncBuffer{}
	cc := connectorYAML{Name: "purge", Server: s, Database: db, StatePath: filepath.Join(t.TempDir(), "state.db"),
		Source:   []string{fmt.Sprintf("include_tables: [\"%s.rawt\"]", db), "on_purged_position: resync"},
		Sections: unthrottledResync + "raw:\n  enabled: true\n  tombstones: false\nsinks:\n  files:\n    type: file\n    file:\n      dir: " + out + "\n      fsync: false\n"}
	cfg := cc.load(t)
	feedsAll := cfg.EnabledFeeds()
	allSynced := func(c *Connector, after time.Time) func() bool {
		return func() bool {
			for _, f := range feedsAll {
				p, ok, _ := c.Store.Progress(ctx, f)
				if !ok || !p.Finished() || p.StartedAt.Before(after) {
					return false
				}
			}
			return true
		}
	}
	lines := func(feed string) int {
		b, _ := os.ReadFile(filepath.Join(out, feed+".jsonl"))
		return strings.Count(string(b), "\n")
	}

	// First run: the first full sync, then a clean stop.
	c := openConnector(t, cfg, OpenOptions{Logger: slog.New(slog.NewTextHandler(logs, nil))})
	_, stop := startRun(t, c, RunOptions{NoSchedule: true})
	waitUntil(t, "the first full sync", 2*time.Minute, allSynced(c, time.Time{}), logs.String)
	stop()
	old, _, _, err := c.Store.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	before := map[string]int{}
	for _, f := range feedsAll {
		before[f] = lines(f)
	}

	// While stopped: one product renamed, raw rows written, the binlog
	// holding them purged.
	if _, err := admin.Exec("UPDATE catalog_product_entity SET sku = CONCAT(sku, '-renamed') ORDER BY entity_id LIMIT 1"); err != nil {
		t.Fatal(err)
	}
	insertRaw(t, s, db, 1, 10)
	purgeTo(t, s)

	// The restart recovers by itself.
	restart := time.Now()
	logs2 := &syncBuffer{}
	tel, err := telemetry.New(ctx, telemetry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Shutdown(ctx)
	metricsSrv := httptest.NewServer(tel.MetricsHandler())
	defer metricsSrv.Close()
	c = openConnector(t, cfg, OpenOptions{Logger: slog.New(slog.NewTextHandler(logs2, nil)), Observer: MetricsObserver{M: tel.Metrics}})
	runErr, stop := startRun(t, c, RunOptions{NoSchedule: true})
	waitUntil(t, "the recovery full sync", 2*time.Minute, func() bool {
		select {
		case err := <-runErr:
			t.Fatalf("run failed: %v\n%s", err, logs2.String())
		default:
		}
		return allSynced(c, restart)()
	}, logs2.String)
	insertRaw(t, s, db, 11, 12) // streaming goes on from the new position
	waitUntil(t, "raw rows after the recovery", time.Minute, func() bool { ids := rawIDsOf(t, out, "purge", db); return ids[11] > 0 && ids[12] > 0 },
		logs2.String)
	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	stop()
	if g := st.LastGap; g == nil || g.Old == nil || *g.Old != old || g.New == nil || !g.Gap {
		t.Fatalf("status reports no gap from %s: %+v", old, st.LastGap)
	}
	if !strings.Contains(logs2.String(), "raw streams have a gap") || !strings.Contains(logs2.String(), old.String()) {
		t.Errorf("the log does not report the gap from %s:\n%s", old, logs2.String())
	}
	resp, err := http.Get(metricsSrv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !regexp.MustCompile(`(?m)^feedcdc_position_gaps_total(\{[^}]*\})? 1$`).Match(body) {
		t.Errorf("metrics do not count the gap:\n%s", grepLines(string(body), "position_gaps"))
	}
	if ids := rawIDsOf(t, out, "purge", db); ids[1] != 0 {
		t.Logf("raw row 1 was delivered although its binlog was purged (%v)", ids)
	}
	// Only what changed was sent again: the renamed product's items.
	for _, f := range feedsAll {
		t.Logf("%s: %d records before the purge, %d after the recovery", f, before[f], lines(f))
	}
	if d := lines("products") - before["products"]; d == 0 || d > 12 {
		t.Errorf("the recovery sent %d products records; want the renamed product's (new and deleted items, a few store views)", d)
	}
	// The state equals a fresh build of every feed.
	for _, f := range feedsAll {
		fresh := freshBuild(t, openFeed(t, s, db, f))
		inState := map[string]state.Item{}
		after := ""
		for {
			items, next, err := c.Store.ListItems(ctx, state.ListQuery{Feed: f, Limit: 1000, After: after})
			if err != nil {
				t.Fatal(err)
			}
			for _, it := range items {
				inState[it.ID] = it
			}
			if next == "" {
				break
			}
			after = next
		}
		for id, it := range fresh {
			si, ok := inState[id]
			if !ok || si.Hash != it.Hash || si.Deleted || si.Status != state.StatusSent {
				t.Errorf("%s item %s: state %+v, fresh hash %s", f, id, si, it.Hash)
			}
		}
		for id, si := range inState {
			if _, ok := fresh[id]; !ok && !si.Deleted {
				t.Errorf("%s item %s is gone from the database but not deleted in the state", f, id)
			}
		}
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

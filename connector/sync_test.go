package connector

// Tests of the sync types (issue 5): a full sync killed with SIGKILL and
// continued, a flaky HTTP feed service with retries across a restart,
// legacy export through Run, and feed locking across processes.
//
// The SIGKILL test uses catalog.Small() with 2 extra store views by default;
// FEEDCDC_SYNC_PROFILE=medium runs it on the medium profile (40,000
// products; loading alone takes about a minute).

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/feedcdc/feedcdc/config"
	"github.com/feedcdc/feedcdc/connector/snapshot"
	"github.com/feedcdc/feedcdc/feeds"
	"github.com/feedcdc/feedcdc/sink"
	"github.com/feedcdc/feedcdc/state"
	"github.com/feedcdc/feedcdc/test/catalog"
	"github.com/feedcdc/feedcdc/test/kafkatest"
	"github.com/feedcdc/feedcdc/test/mysqltest"
)

// syncChild runs, in a re-executed test binary, a connector from the config
// file named by FEEDCDC_SYNC_CHILD. FEEDCDC_SYNC_MODE selects what it does:
//
//   - "resync": a standalone full sync of FEEDCDC_SYNC_FEED (as `feedcdc
//     resync --feed F`, with --continue-resync when FEEDCDC_SYNC_CONTINUE=1),
//     printing "progress <chunks> <processed>" after every chunk and
//     "done <stats JSON>" at the end on stdout;
//   - "run": the connector (streaming, and the first-start full sync) until
//     SIGTERM or SIGKILL.
//
// FEEDCDC_SYNC_SEND_ATTEMPTS shortens the in-place send retry to that many
// quick attempts, so that flaky-sink failures reach the retry job.
// Exit status 3 means the connector could not be opened (e.g. the state
// file is held by another process); the error is on stderr.
func syncChild() int {
	cfg, err := config.Load(os.Getenv("FEEDCDC_SYNC_CHILD"), os.Environ())
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	feed := os.Getenv("FEEDCDC_SYNC_FEED")
	c, err := Open(ctx, cfg, OpenOptions{Command: "feedcdc resync --feed " + feed})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 3
	}
	defer c.Close()
	if n, _ := strconv.Atoi(os.Getenv("FEEDCDC_SYNC_SEND_ATTEMPTS")); n > 0 {
		c.Pipeline.o.SendBackoff = sink.Backoff{Initial: 5 * time.Millisecond, Max: 20 * time.Millisecond, MaxAttempts: n}
	}
	switch os.Getenv("FEEDCDC_SYNC_MODE") {
	case "resync":
		stopExporter := c.RunExporter(ctx)
		res, err := c.Resync(ctx, ResyncOptions{Feed: feed, Continue: os.Getenv("FEEDCDC_SYNC_CONTINUE") == "1",
			Progress: func(p state.Progress) { fmt.Printf("progress %d %d\n", p.Chunks, p.Processed) }})
		if serr := stopExporter(); err == nil {
			err = serr
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			return 1
		}
		b, _ := json.Marshal(res.Stats)
		fmt.Printf("done %s\n", b)
	case "run":
		if err := c.Run(ctx, RunOptions{NoSchedule: true}); err != nil && ctx.Err() == nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			return 1
		}
	default:
		fmt.Fprintln(os.Stderr, "child: FEEDCDC_SYNC_MODE must be resync or run")
		return 2
	}
	return 0
}

// child is a running syncChild process.
type child struct {
	cmd    *exec.Cmd
	lines  chan string // stdout, line by line; closed at EOF
	stderr *syncBuffer
	waited chan error
}

func startSyncChild(t *testing.T, s *mysqltest.Server, cfgPath string, env ...string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "FEEDCDC_SYNC_CHILD="+cfgPath, "SYNC_SOURCE_PASSWORD="+s.CDCPassword)
	cmd.Env = append(cmd.Env, env...)
	ch := &child{cmd: cmd, lines: make(chan string, 100000), stderr: &syncBuffer{}, waited: make(chan error, 1)}
	cmd.Stderr = ch.stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			ch.lines <- sc.Text()
		}
		close(ch.lines)
		ch.waited <- cmd.Wait()
	}()
	// os.Process.Kill is a no-op error once the child has been waited for.
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	return ch
}

// kill SIGKILLs the child and waits for it.
func (c *child) kill() {
	_ = c.cmd.Process.Kill()
	for range c.lines {
	}
	<-c.waited
}

// wait waits for the child to exit and returns its "done" line's payload.
func (c *child) wait(t *testing.T) (string, error) {
	t.Helper()
	var done string
	for l := range c.lines {
		if rest, ok := strings.CutPrefix(l, "done "); ok {
			done = rest
		}
	}
	err := <-c.waited
	if err != nil {
		err = fmt.Errorf("%w; stderr:\n%s", err, c.stderr.String())
	}
	return done, err
}

// syncConfig writes a connector configuration for server s and returns its
// path. feedsYAML is the body of feeds: (indented two spaces), sinksYAML
// of sinks:, extra any further top-level keys.
func syncConfig(t *testing.T, s *mysqltest.Server, db, dir, feedsYAML, sinksYAML, extra string) string {
	t.Helper()
	c := connectorYAML{Name: "sync", Server: s, StatePath: filepath.Join(dir, "state.db"), Database: db, Feeds: yamlLines(feedsYAML),
		Sections: "sinks:\n" + sinksYAML + "\nlog: {format: json, level: warn}\n" + extra}
	return c.write(t, dir)
}

// onlyFeeds is a feeds: body enabling only the named feeds, with extra
// per-feed settings (e.g. "mode: legacy").
func onlyFeeds(settings map[string]string) string {
	var b strings.Builder
	for _, f := range []string{"products", "productAttributes", "variants", "productOverrides"} {
		if s, ok := settings[f]; ok {
			fmt.Fprintf(&b, "  %s: {enabled: true%s}\n", f, s)
		} else {
			fmt.Fprintf(&b, "  %s: {enabled: false}\n", f)
		}
	}
	return strings.TrimRight(b.String(), "\n")
}

func kafkaSinkYAML(addr string) string {
	return fmt.Sprintf(`  kafka:
    type: kafka
    kafka:
      brokers: ["%s"]
      topic_prefix: sync
      partitions: 1
      linger: 2ms`, addr)
}

// openFeed opens a feed builder on database db of server s, for fresh
// builds in the test.
func openFeed(t *testing.T, s *mysqltest.Server, db, name string) feeds.Feed {
	t.Helper()
	src, err := sql.Open("mysql", s.CDCDSN(db))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	reg, err := feeds.NewRegistry(feeds.Config{DB: src, Database: db, Feeds: []string{name}})
	if err != nil {
		t.Fatal(err)
	}
	f, ok := reg.Feed(name)
	if !ok {
		t.Fatalf("feed %s not in registry", name)
	}
	return f
}

// scanKeys lists every entity key a full sync of f enumerates.
func scanKeys(t *testing.T, f feeds.Feed) []string {
	t.Helper()
	var keys []string
	if err := f.Scan(context.Background(), func(k []string) error { keys = append(keys, k...); return nil }); err != nil {
		t.Fatal(err)
	}
	return keys
}

// compareKafka checks that the latest record of every key in recs equals a
// fresh build (want, by item id): every current item present with its
// hash, every other item marked deleted. It returns the records per item id.
func compareKafka(t *testing.T, feed string, recs []kafkatest.Record, want map[string]feeds.Item) map[string][]kafkatest.Record {
	t.Helper()
	latest := map[string]kafkatest.Record{}
	for _, r := range recs {
		latest[string(r.Key)] = r
	}
	all := map[string][]kafkatest.Record{}
	for _, r := range recs {
		id, _ := r.Header("feed_id")
		all[id] = append(all[id], r)
	}
	byID := map[string]kafkatest.Record{}
	for _, r := range latest {
		id, ok := r.Header("feed_id")
		if !ok {
			t.Fatalf("%s record without feed_id header: %v", feed, r.Headers)
		}
		byID[id] = r
	}
	var missing, differ, notDeleted int
	for id, it := range want {
		r, ok := byID[id]
		if !ok {
			if missing++; missing <= 3 {
				t.Errorf("%s: item %v never exported", feed, it.Identity)
			}
			continue
		}
		if h, _ := r.Header("feed_hash"); h != it.Hash || !sameExceptModified(r.Value, it.Data) {
			if differ++; differ <= 3 {
				t.Errorf("%s: item %v differs in %s", feed, it.Identity, payloadDiff(r.Value, it.Data))
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
		if json.Unmarshal(r.Value, &v) != nil || !v.Deleted {
			if notDeleted++; notDeleted <= 3 {
				t.Errorf("%s: vanished item %s not marked deleted: %s", feed, r.Key, r.Value)
			}
		}
	}
	t.Logf("%s: %d current items, %d keys in Kafka (%d records); missing %d, differing %d, vanished-not-deleted %d",
		feed, len(want), len(byID), len(recs), missing, differ, notDeleted)
	return all
}

// sameExceptModified compares two item payloads ignoring modifiedAt and
// updatedAt, which feed_hash does not cover either (an item whose only
// change is its updatedAt is not sent again).
func sameExceptModified(a, b []byte) bool {
	var ma, mb map[string]any
	if json.Unmarshal(a, &ma) != nil || json.Unmarshal(b, &mb) != nil {
		return bytes.Equal(a, b)
	}
	for _, k := range []string{"modifiedAt", "updatedAt"} {
		delete(ma, k)
		delete(mb, k)
	}
	ja, _ := json.Marshal(ma)
	jb, _ := json.Marshal(mb)
	return bytes.Equal(ja, jb)
}

// payloadDiff describes the fields in which payload a (exported) differs
// from b (fresh build).
func payloadDiff(a, b []byte) string {
	var ma, mb map[string]any
	if json.Unmarshal(a, &ma) != nil || json.Unmarshal(b, &mb) != nil {
		return fmt.Sprintf("\n exported: %s\n fresh:    %s", a, b)
	}
	var out []string
	for k, vb := range mb {
		if k == "modifiedAt" || k == "updatedAt" {
			continue
		}
		ja, _ := json.Marshal(ma[k])
		jb, _ := json.Marshal(vb)
		if !bytes.Equal(ja, jb) {
			out = append(out, fmt.Sprintf("%s: exported %s, fresh %s", k, ja, jb))
		}
	}
	for k, va := range ma {
		if _, ok := mb[k]; !ok {
			ja, _ := json.Marshal(va)
			out = append(out, fmt.Sprintf("%s: exported %s, fresh (absent)", k, ja))
		}
	}
	return strings.Join(out, "; ")
}

// syncProfile is the catalog of the SIGKILL and replica tests: small with 3
// store views by default, medium with FEEDCDC_SYNC_PROFILE=medium.
func syncProfile() (catalog.Profile, bool) {
	if os.Getenv("FEEDCDC_SYNC_PROFILE") == "medium" {
		return catalog.Medium(), true
	}
	p := catalog.Small()
	p.ExtraStoreViews = 2
	return p, false
}

// TestResyncSIGKILLThenContinue kills a standalone full sync of the
// products feed with SIGKILL midway, then resumes it with
// --continue-resync: every key is processed exactly once according to the
// persisted progress, at most one chunk (one job of batch_size ×
// thread_count keys) is sent twice, and the latest record of every key in
// Kafka equals a fresh build.
func TestResyncSIGKILLThenContinue(t *testing.T) {
	ctx := context.Background()
	prof, medium := syncProfile()
	db := srv.NewDatabase(t, "sigkill")
	admin := srv.Admin(t, db)
	t0 := time.Now()
	if _, err := catalog.Load(ctx, admin, prof, 11); err != nil {
		t.Fatal(err)
	}
	t.Logf("loaded %s profile in %s", prof.Name, time.Since(t0).Round(time.Millisecond))
	kafka := kafkatest.Start(t)
	dir := t.TempDir()
	batch, threads, rate := 50, 2, 400
	if medium {
		batch, threads, rate = 500, 2, 0
	}
	cfgPath := syncConfig(t, srv, db, dir, onlyFeeds(map[string]string{"products": ""}), kafkaSinkYAML(kafka.Addr()),
		fmt.Sprintf("resync: {batch_size: %d, thread_count: %d, rows_per_second: %d, max_replica_lag: 0s}", batch, threads, rate))
	f := openFeed(t, srv, db, "products")
	keys := scanKeys(t, f)
	group := batch * threads
	t.Logf("%d product keys, %d keys per job", len(keys), group)

	// First run: killed once about 40% of the keys are done.
	tFirst := time.Now()
	first := startSyncChild(t, srv, cfgPath, "FEEDCDC_SYNC_MODE=resync", "FEEDCDC_SYNC_FEED=products")
	killAt := int64(len(keys)) * 4 / 10
	var seen int64
	lastLine, jobTime := time.Now(), time.Duration(0)
	for l := range first.lines {
		var chunks, processed int64
		if _, err := fmt.Sscanf(l, "progress %d %d", &chunks, &processed); err == nil {
			seen = processed
			jobTime, lastLine = time.Since(lastLine), time.Now()
			if processed >= killAt {
				break
			}
		}
		if strings.HasPrefix(l, "done") {
			t.Fatalf("resync finished before it could be killed (rows_per_second too high for this machine?)")
		}
	}
	// Kill at a random moment of the next job, not right after one.
	time.Sleep(time.Duration(rand.Int64N(int64(jobTime) + 1)))
	first.kill()
	firstTook := time.Since(tFirst)
	if seen < killAt {
		t.Fatalf("child exited before reaching %d keys: %s", killAt, first.stderr.String())
	}
	recs, err := kafka.ReadAll(ctx, "sync.products")
	if err != nil {
		t.Fatal(err)
	}
	afterKill := len(recs)
	store, err := state.Open(filepath.Join(dir, "state.db"), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	p1, ok, err := store.Progress(ctx, "products")
	store.Close()
	if err != nil || !ok || p1.Finished() || p1.Processed == 0 {
		t.Fatalf("progress after kill: %+v ok=%v err=%v", p1, ok, err)
	}
	t.Logf("killed after %d keys reported (%s); persisted progress: %d chunks, %d keys, last key %s; %d records in Kafka",
		seen, firstTook.Round(time.Millisecond), p1.Chunks, p1.Processed, p1.LastKey, afterKill)

	// Continue.
	tSecond := time.Now()
	second := startSyncChild(t, srv, cfgPath, "FEEDCDC_SYNC_MODE=resync", "FEEDCDC_SYNC_FEED=products", "FEEDCDC_SYNC_CONTINUE=1")
	done, err := second.wait(t)
	secondTook := time.Since(tSecond)
	if err != nil {
		t.Fatalf("continued resync: %v", err)
	}
	var st ExportStats
	if err := json.Unmarshal([]byte(done), &st); err != nil {
		t.Fatalf("child result %q: %v", done, err)
	}
	store, err = state.Open(filepath.Join(dir, "state.db"), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	p2, ok, err := store.Progress(ctx, "products")
	if err != nil || !ok || !p2.Finished() {
		t.Fatalf("progress after continue: %+v ok=%v err=%v", p2, ok, err)
	}
	if p2.Processed != int64(len(keys)) {
		t.Errorf("progress counts %d keys processed, the feed has %d (keys skipped or counted twice)", p2.Processed, len(keys))
	}
	if int64(st.Keys) != int64(len(keys))-p1.Processed {
		t.Errorf("continued run rebuilt %d keys, want %d (total %d - %d persisted)", st.Keys, int64(len(keys))-p1.Processed, len(keys), p1.Processed)
	}
	recs, err = kafka.ReadAll(ctx, "sync.products")
	if err != nil {
		t.Fatal(err)
	}
	want := freshBuild(t, f)
	byID := compareKafka(t, "products", recs, want)
	// Keys sent twice: those of the job in flight when the child died.
	redone := map[string]bool{}
	dupRecords := 0
	for id, rs := range byID {
		if len(rs) > 1 {
			dupRecords += len(rs) - 1
			redone[want[id].EntityKey] = true
		}
	}
	if len(redone) > group {
		t.Errorf("%d keys were sent twice, more than one job of %d keys", len(redone), group)
	}
	counts, err := store.Counts(ctx, "products")
	if err != nil {
		t.Fatal(err)
	}
	if counts.Sent != int64(len(want)) || counts.Total != int64(len(want)) {
		t.Errorf("state counts %+v, want %d items sent", counts, len(want))
	}
	t.Logf("continue (%s, process start to exit): %d keys rebuilt of %d (%d persisted before the kill); %d items sent; redone: %d keys, %d duplicate records (%d records before kill, %d after)",
		secondTook.Round(time.Millisecond), st.Keys, len(keys), p1.Processed, st.Sent, len(redone), dupRecords, afterKill, len(recs))
}

// TestFeedLockAcrossProcesses: while a resync of a feed runs in one
// process, a second `feedcdc resync` of the same feed fails fast with an
// error naming the process that holds it; within one process a second
// resync of the same feed fails with the holder's name, while another feed
// can be synced.
func TestFeedLockAcrossProcesses(t *testing.T) {
	ctx := context.Background()
	db := srv.NewDatabase(t, "lock")
	admin := srv.Admin(t, db)
	if _, err := catalog.Load(ctx, admin, catalog.Small(), 5); err != nil {
		t.Fatal(err)
	}
	kafka := kafkatest.Start(t)
	dir := t.TempDir()
	// 150 keys/s: the scan reads 1,000 keys, then waits about 7 s before
	// the remaining 200, so the first resync holds the feed for a while.
	cfgPath := syncConfig(t, srv, db, dir, onlyFeeds(map[string]string{"products": "", "productAttributes": ""}), kafkaSinkYAML(kafka.Addr()),
		"resync: {batch_size: 100, thread_count: 1, rows_per_second: 150, max_replica_lag: 0s}")
	holder := startSyncChild(t, srv, cfgPath, "FEEDCDC_SYNC_MODE=resync", "FEEDCDC_SYNC_FEED=products")
	for l := range holder.lines {
		if strings.HasPrefix(l, "progress") {
			break
		}
	}
	t0 := time.Now()
	second := startSyncChild(t, srv, cfgPath, "FEEDCDC_SYNC_MODE=resync", "FEEDCDC_SYNC_FEED=products")
	_, err := second.wait(t)
	took := time.Since(t0)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("second resync: %v, want exit status 3 (cannot open)", err)
	}
	msg := second.stderr.String()
	for _, want := range []string{"in use by pid " + strconv.Itoa(holder.cmd.Process.Pid), "feedcdc resync --feed products", "stop it"} {
		if !strings.Contains(msg, want) {
			t.Errorf("second resync's error does not say %q:\n%s", want, msg)
		}
	}
	t.Logf("second process refused after %s: %s", took.Round(time.Millisecond), strings.TrimSpace(msg))
	holder.kill()

	// Within one process: the lock names the operation holding the feed.
	cfg, err := config.Load(cfgPath, []string{"SYNC_SOURCE_PASSWORD=" + srv.CDCPassword})
	if err != nil {
		t.Fatal(err)
	}
	c, err := Open(ctx, cfg, OpenOptions{Command: "lock test"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	stop := c.RunExporter(ctx)
	defer stop()
	started := make(chan struct{})
	var once sync.Once
	firstErr := make(chan error, 1)
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		_, err := c.Resync(rctx, ResyncOptions{Feed: "products", Owner: "resync products (first)",
			Progress: func(state.Progress) { once.Do(func() { close(started) }) }})
		firstErr <- err
	}()
	<-started
	_, err = c.Resync(ctx, ResyncOptions{Feed: "products", Owner: "resync products (second)"})
	var le *state.FeedLockedError
	if !errors.As(err, &le) || le.Holder.Owner != "resync products (first)" || !strings.Contains(err.Error(), "resync products (first)") {
		t.Fatalf("second resync in the same process: %v, want a FeedLockedError naming the first", err)
	}
	t.Logf("same process: %v", err)
	// Another feed is not blocked.
	if _, err := c.Resync(ctx, ResyncOptions{Feed: "productAttributes", Throttle: &snapshot.Throttle{}}); err != nil {
		t.Fatalf("resync of another feed while products is locked: %v", err)
	}
	cancel()
	if err := <-firstErr; !errors.Is(err, context.Canceled) {
		t.Fatalf("first resync: %v, want canceled", err)
	}
	// The lock is released: the feed can be synced again.
	if _, err := c.Resync(ctx, ResyncOptions{Feed: "products", Continue: true, Throttle: &snapshot.Throttle{}}); err != nil {
		t.Fatalf("resync after the first ended: %v", err)
	}
	if locks, _ := c.Store.FeedLocks(ctx); len(locks) != 0 {
		t.Fatalf("locks left: %+v", locks)
	}
}

// legacyWatch sits between the pipeline and the real sinks and checks, at
// the moment a legacy feed's record is sent, that the item is waiting in
// the outbox: a legacy item reaches a sink only through a flush.
type legacyWatch struct {
	sink.Sink
	store *state.Store
	feed  string

	mu         sync.Mutex
	sent       int // legacy records sent
	sends      int // Send calls with legacy records
	violations []string
}

func (w *legacyWatch) Send(ctx context.Context, recs []sink.Record) ([]sink.Result, error) {
	var ids []string
	for _, r := range recs {
		if r.Feed == w.feed {
			ids = append(ids, r.ID)
		}
	}
	if len(ids) > 0 {
		entries, err := w.store.OutboxBatch(ctx, w.feed, 1<<30)
		w.mu.Lock()
		if err != nil {
			w.violations = append(w.violations, err.Error())
		}
		queued := map[string]bool{}
		for _, e := range entries {
			queued[e.ID] = true
		}
		for _, id := range ids {
			if !queued[id] {
				w.violations = append(w.violations, "item "+id+" sent without being in the outbox")
			}
		}
		w.sent += len(ids)
		w.sends++
		w.mu.Unlock()
	}
	return w.Sink.Send(ctx, recs)
}

func (w *legacyWatch) counts() (sent, sends int, violations []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.sent, w.sends, append([]string(nil), w.violations...)
}

// TestLegacyModeThroughRun runs the connector (Run, with its scheduler) with
// products in legacy mode (legacy_schedule 2s) and productAttributes
// immediate: the first-start full sync and a streamed workload put product
// items in the outbox only; every product record that reaches Kafka was in
// the outbox when it was sent (a flush sent it); after the flushes the
// outbox is empty and the latest record of every key equals a fresh build;
// the logs label legacy operations "(legacy)".
func TestLegacyModeThroughRun(t *testing.T) {
	ctx := context.Background()
	db := srv.NewDatabase(t, "legacy")
	admin := srv.Admin(t, db)
	if _, err := catalog.Load(ctx, admin, catalog.Tiny(), 3); err != nil {
		t.Fatal(err)
	}
	kafka := kafkatest.Start(t)
	dir := t.TempDir()
	cfgPath := syncConfig(t, srv, db, dir, onlyFeeds(map[string]string{
		"products":          ", mode: legacy, legacy_schedule: 2s, batch_size: 200",
		"productAttributes": ""}), kafkaSinkYAML(kafka.Addr()),
		"resync: {max_replica_lag: 0s, rows_per_second: 0}")
	cfg, err := config.Load(cfgPath, []string{"SYNC_SOURCE_PASSWORD=" + srv.CDCPassword})
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	c, err := Open(ctx, cfg, OpenOptions{Logger: slog.New(slog.NewJSONHandler(logs, nil)), Command: "legacy test"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	watch := &legacyWatch{Sink: c.Pipeline.o.Sink, store: c.Store, feed: "products"}
	c.Pipeline.o.Sink = watch
	runCtx, cancel := context.WithCancel(ctx)
	runErr := make(chan error, 1)
	go func() { runErr <- c.Run(runCtx, RunOptions{}) }()
	defer func() {
		cancel()
		if err := <-runErr; err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	waitFinished := func(feed string) state.Progress {
		for {
			pr, ok, err := c.Store.Progress(ctx, feed)
			if err != nil {
				t.Fatal(err)
			}
			if ok && pr.Finished() {
				return pr
			}
			select {
			case err := <-runErr:
				t.Fatalf("connector stopped: %v", err)
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	pr := waitFinished("products")
	waitFinished("productAttributes")
	// Right after the full sync, before the first flush (if it has not run
	// yet): the immediate feed is in Kafka, the legacy one only in the
	// outbox.
	_, sendsBefore, _ := watch.counts()
	queued, _ := c.Store.OutboxLen(ctx, "products")
	inKafka := len(recordsOrNone(t, kafka, "sync.products"))
	attrs := len(recordsOrNone(t, kafka, "sync.productAttributes"))
	_, sendsAfter, _ := watch.counts()
	if sendsBefore == 0 && sendsAfter == 0 {
		if inKafka != 0 || int64(queued) != pr.Synced {
			t.Fatalf("before the first flush: %d product records in Kafka, %d in the outbox; want 0 and %d", inKafka, queued, pr.Synced)
		}
		t.Logf("before the first flush: 0 product records in Kafka, %d in the outbox; %d productAttributes records (immediate)", queued, attrs)
	} else {
		t.Logf("the first flush ran during the full sync (%d sends)", sendsAfter)
	}
	if attrs == 0 {
		t.Fatal("the immediate feed sent nothing")
	}

	// Stream a workload; its product changes go through the outbox too.
	wl := catalog.NewWorkload(admin, 3, catalog.WorkloadOptions{})
	if _, err := wl.Run(ctx, 300, 0); err != nil {
		t.Fatal(err)
	}
	waitCaughtUp(t, c, admin, runErr)
	if err := c.Pipeline.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	// Wait for a flush that empties the outbox.
	deadline := time.Now().Add(time.Minute)
	for {
		n, err := c.Store.OutboxLen(ctx, "products")
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("outbox still holds %d items after a minute of 2 s flushes", n)
		}
		time.Sleep(100 * time.Millisecond)
	}
	sent, sends, violations := watch.counts()
	if len(violations) > 0 {
		t.Fatalf("%d legacy records sent outside a flush, e.g. %s", len(violations), violations[0])
	}
	counts, err := c.Store.Counts(ctx, "products")
	if err != nil {
		t.Fatal(err)
	}
	if counts.Pending != 0 || counts.Outbox != 0 || counts.Failed != 0 {
		t.Fatalf("after the flush: %+v", counts)
	}
	recs, err := kafka.ReadAll(ctx, "sync.products")
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != sent {
		t.Errorf("%d product records in Kafka, %d sent by flushes", len(recs), sent)
	}
	compareKafka(t, "products", recs, freshBuild(t, openFeed(t, srv, db, "products")))
	lg := logs.String()
	var flushes int
	for _, l := range strings.Split(lg, "\n") {
		if strings.Contains(l, `"operation":"partial sync (legacy)"`) && strings.Contains(l, `"msg":"complete"`) {
			flushes++
		}
	}
	if flushes == 0 || !strings.Contains(lg, `"operation":"full sync(legacy)"`) {
		t.Fatalf("legacy operations not labelled \"(legacy)\" in the logs:\n%s", lg)
	}
	t.Logf("%d product records sent by %d flush sends (%d flushes logged as \"partial sync (legacy)\")", sent, sends, flushes)
}

// recordsOrNone reads a topic, treating a topic not created yet as empty.
func recordsOrNone(t *testing.T, kafka *kafkatest.Cluster, topic string) []kafkatest.Record {
	t.Helper()
	recs, err := kafka.ReadAll(context.Background(), topic)
	if err != nil {
		if strings.Contains(err.Error(), "UNKNOWN_TOPIC") || strings.Contains(err.Error(), "Unknown Topic") {
			return nil
		}
		t.Fatal(err)
	}
	return recs
}

// flakyService is an HTTP feed service that fails items at random: per
// request, 10% answer 503 (every item retryable); otherwise each item is
// refused with items_limit_exceeded (retryable) with probability 22% and
// listed as invalid (rejected for good) with probability 5.5% — about 30%
// retryable and 5% non-retryable failures per attempt. It remembers the
// outcome of the last attempt and the last accepted payload of every item
// (by sku and store view).
type flakyService struct {
	mu      sync.Mutex
	rng     *rand.Rand
	last    map[string]string          // identity -> "ok", "retry" or "rejected: <message>"
	payload map[string]json.RawMessage // identity -> last accepted payload

	requests, items, accepted, retryable, rejected, unavailable int
}

func newFlakyService() *flakyService {
	return &flakyService{rng: rand.New(rand.NewPCG(7, 8)), last: map[string]string{}, payload: map[string]json.RawMessage{}}
}

func productIdentity(raw []byte) string {
	var v struct {
		SKU   string `json:"sku"`
		Store string `json:"storeViewCode"`
	}
	_ = json.Unmarshal(raw, &v)
	return v.SKU + "|" + v.Store
}

func (f *flakyService) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	items, err := decodeFeedPost(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests++
	f.items += len(items)
	if f.rng.Float64() < 0.10 {
		for _, it := range items {
			f.last[productIdentity(it)] = "retry"
		}
		f.retryable += len(items)
		f.unavailable++
		http.Error(w, "flaky service: overloaded", http.StatusServiceUnavailable)
		return
	}
	type invalid struct {
		ItemIndex int    `json:"itemIndex"`
		Code      string `json:"code"`
		Message   string `json:"message"`
	}
	var bad []invalid
	for j, it := range items {
		id := productIdentity(it)
		switch x := f.rng.Float64(); {
		case x < 0.055:
			msg := "flaky service: rejected " + id
			bad = append(bad, invalid{j, "invalid_value", msg})
			f.last[id] = "rejected: " + msg
			f.rejected++
		case x < 0.055+0.22:
			bad = append(bad, invalid{j, "items_limit_exceeded", "flaky service: try again later"})
			f.last[id] = "retry"
			f.retryable++
		default:
			f.last[id] = "ok"
			f.payload[id] = append(json.RawMessage(nil), it...)
			f.accepted++
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("x-request-id", fmt.Sprintf("req-%d", f.requests))
	_ = json.NewEncoder(w).Encode(map[string]any{"invalidFeedItems": bad})
}

// TestFlakySinkRetriesAcrossRestart: with an HTTP feed service that fails
// about 30% of items with retryable errors and 5% for good, a connector
// does its first-start full sync of products while a workload streams; it
// is killed with SIGKILL midway and restarted (in this process), the full
// sync is continued, and the retry job runs until no item is failed. Then
// every current item is either delivered (the service's last accepted
// payload equals a fresh build) or rejected and recorded with status 1 and
// the service's message; the state's counts equal what the service saw last
// for each item; nothing was lost across the restart.
func TestFlakySinkRetriesAcrossRestart(t *testing.T) {
	ctx := context.Background()
	db := srv.NewDatabase(t, "flaky")
	admin := srv.Admin(t, db)
	if _, err := catalog.Load(ctx, admin, catalog.Small(), 13); err != nil {
		t.Fatal(err)
	}
	svc := newFlakyService()
	hs := httptest.NewServer(svc)
	defer hs.Close()
	dir := t.TempDir()
	cfgPath := syncConfig(t, srv, db, dir, onlyFeeds(map[string]string{"products": ", max_attempts: 1000, backoff_base: 1s, backoff_max: 2s"}),
		fmt.Sprintf(`  svc:
    type: http
    http:
      base_url: %s
      max_items_per_request: 100
      timeout: 10s`, hs.URL),
		"resync: {batch_size: 100, thread_count: 2, rows_per_second: 250, max_replica_lag: 0s}")

	// The workload streams for about 6 s while the first connector runs.
	wl := catalog.NewWorkload(admin, 13, catalog.WorkloadOptions{})
	wlDone := make(chan error, 1)
	go func() {
		_, err := wl.Run(ctx, 900, 150)
		wlDone <- err
	}()
	first := startSyncChild(t, srv, cfgPath, "FEEDCDC_SYNC_MODE=run", "FEEDCDC_SYNC_FEED=products", "FEEDCDC_SYNC_SEND_ATTEMPTS=2")
	// Killed midway: once the service has seen about half the catalog's
	// items, plus a random moment.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		svc.mu.Lock()
		n := svc.items
		svc.mu.Unlock()
		if n >= 600 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the first connector sent only %d items in 2 minutes; stderr:\n%s", n, first.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(time.Duration(rand.IntN(1500)) * time.Millisecond)
	first.kill()
	svc.mu.Lock()
	beforeRestart := svc.items
	svc.mu.Unlock()

	cfg, err := config.Load(cfgPath, []string{"SYNC_SOURCE_PASSWORD=" + srv.CDCPassword})
	if err != nil {
		t.Fatal(err)
	}
	c, err := Open(ctx, cfg, OpenOptions{Command: "flaky test"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Pipeline.o.SendBackoff = sink.Backoff{Initial: 5 * time.Millisecond, Max: 20 * time.Millisecond, MaxAttempts: 2}
	_, _, hadCheckpoint, err := c.Store.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p1, hadProgress, _ := c.Store.Progress(ctx, "products")
	t.Logf("killed after %d items reached the service; checkpoint: %v; resync progress: %d keys in %d chunks (finished %v)",
		beforeRestart, hadCheckpoint, p1.Processed, p1.Chunks, p1.Finished())
	runCtx, cancel := context.WithCancel(ctx)
	runErr := make(chan error, 1)
	go func() { runErr <- c.Run(runCtx, RunOptions{NoSchedule: true}) }()
	defer func() {
		cancel()
		<-runErr
	}()
	// Run resumes an unfinished full sync by itself. A first-start sync
	// killed after the first checkpoint but before its first chunk left no
	// progress record, and Run does not know to redo it: the test runs it
	// as an operator would (feedcdc resync --feed products).
	if hadCheckpoint && !hadProgress {
		t.Logf("killed after the first checkpoint but before the full sync recorded progress: Run will not redo it; resyncing by hand")
		if _, err := c.Resync(ctx, ResyncOptions{Feed: "products"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-wlDone; err != nil {
		t.Fatal(err)
	}
	waitCaughtUp(t, c, admin, runErr)
	for {
		pr, ok, _ := c.Store.Progress(ctx, "products")
		if ok && pr.Finished() {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := c.Pipeline.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	before, err := c.Store.Counts(ctx, "products")
	if err != nil {
		t.Fatal(err)
	}
	// The retry job, as if its schedule had passed every backoff.
	var retried ExportStats
	rounds := 0
	for ; rounds < 100; rounds++ {
		counts, err := c.Store.Counts(ctx, "products")
		if err != nil {
			t.Fatal(err)
		}
		if counts.Failed == 0 {
			break
		}
		st, err := c.Pipeline.RetryFailed(ctx, "products", time.Now().Add(365*24*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		retried.add(st)
	}
	if before.Failed == 0 || retried.Keys == 0 {
		t.Fatalf("no item reached the retry job (before retries: %+v); the test does not exercise it", before)
	}

	// Compare the state, the service and a fresh build.
	counts, err := c.Store.Counts(ctx, "products")
	if err != nil {
		t.Fatal(err)
	}
	if counts.Failed != 0 || counts.Attention != 0 || counts.Pending != 0 {
		t.Fatalf("after %d retry rounds: %+v", rounds, counts)
	}
	stateItems := map[string]state.Item{} // by identity
	after := ""
	for {
		items, next, err := c.Store.ListItems(ctx, state.ListQuery{Feed: "products", Limit: 1000, After: after})
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range items {
			stateItems[it.Identity["sku"]+"|"+it.Identity["storeViewCode"]] = it
		}
		if next == "" {
			break
		}
		after = next
	}
	if int64(len(stateItems)) != counts.Total {
		t.Fatalf("listed %d items, counts say %d", len(stateItems), counts.Total)
	}
	svc.mu.Lock()
	defer svc.mu.Unlock()
	fresh := freshBuild(t, openFeed(t, srv, db, "products"))
	var delivered, rejected int
	for _, it := range fresh {
		id := productIdentity(it.Data)
		st, ok := stateItems[id]
		switch {
		case !ok:
			t.Errorf("item %s is not in the state", id)
		case st.Hash != it.Hash:
			t.Errorf("item %s: state hash %s, fresh build %s", id, st.Hash, it.Hash)
		case st.Status == state.StatusSent:
			if svc.last[id] != "ok" || !sameExceptModified(svc.payload[id], it.Data) {
				t.Errorf("item %s: state says sent, the service's last outcome is %q and its payload differs in %s", id, svc.last[id], payloadDiff(svc.payload[id], it.Data))
			}
			delivered++
		case st.Status == state.StatusRejectedByService:
			if !strings.HasPrefix(svc.last[id], "rejected: ") || !strings.Contains(st.LastError, strings.TrimPrefix(svc.last[id], "rejected: ")) {
				t.Errorf("item %s: rejected with error %q, the service's last outcome is %q", id, st.LastError, svc.last[id])
			}
			rejected++
		default:
			t.Errorf("item %s: status %d (%s)", id, st.Status, st.LastError)
		}
	}
	// Counts: the state's sent/rejected items are exactly those whose last
	// attempt the service accepted/rejected.
	var svcOK, svcRejected, unknown int
	for id, out := range svc.last {
		st, ok := stateItems[id]
		if !ok {
			// Sent by the killed process and not persisted; such an item
			// must be one that no longer exists (else it was sent again).
			unknown++
			if _, live := findIdentity(fresh, id); live {
				t.Errorf("item %s reached the service before the kill but is unknown to the state", id)
			}
			continue
		}
		switch {
		case out == "ok":
			svcOK++
			if st.Status != state.StatusSent {
				t.Errorf("item %s: the service accepted its last attempt, the state says %d", id, st.Status)
			}
		case strings.HasPrefix(out, "rejected"):
			svcRejected++
		default:
			t.Errorf("item %s: the service's last outcome is %q, the state says %d", id, out, st.Status)
		}
	}
	if int64(svcOK) != counts.Sent || int64(svcRejected) != counts.Rejected {
		t.Errorf("state counts %d sent, %d rejected; the service's last outcomes: %d accepted, %d rejected", counts.Sent, counts.Rejected, svcOK, svcRejected)
	}
	t.Logf("service: %d requests (%d answered 503), %d items: %d accepted, %d retryable (%.1f%%), %d rejected (%.1f%%)",
		svc.requests, svc.unavailable, svc.items, svc.accepted, svc.retryable, 100*float64(svc.retryable)/float64(svc.items),
		svc.rejected, 100*float64(svc.rejected)/float64(svc.items))
	t.Logf("before retries: %+v; retry job: %d rounds, %d entities, %d sent, %d failed again, %d rejected", before, rounds, retried.Keys, retried.Sent, retried.Failed, retried.Rejected)
	t.Logf("final: %d current items: %d delivered, %d rejected; state %+v; %d items only the killed process sent (vanished since)",
		len(fresh), delivered, rejected, counts, unknown)
}

func findIdentity(items map[string]feeds.Item, id string) (feeds.Item, bool) {
	for _, it := range items {
		if productIdentity(it.Data) == id {
			return it, true
		}
	}
	return feeds.Item{}, false
}

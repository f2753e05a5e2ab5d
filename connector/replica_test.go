package connector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/feedcdc/feedcdc/config"
	"github.com/feedcdc/feedcdc/state"
	"github.com/feedcdc/feedcdc/test/catalog"
	"github.com/feedcdc/feedcdc/test/kafkatest"
	"github.com/feedcdc/feedcdc/test/mysqltest"
)

// replicaConfig is a connector configuration attached to server s (the
// replica) with products enabled and the given resync settings.
func replicaConfig(t *testing.T, s *mysqltest.Server, db, kafkaAddr, prefix, feedsYAML, resync string) *config.Config {
	t.Helper()
	c := connectorYAML{Name: "replica", Server: s, Database: db, Feeds: yamlLines(feedsYAML),
		Sections: "resync: " + resync + "\n" + kafkaSink(kafkaAddr, prefix, "linger: 2ms")}
	return c.load(t)
}

// TestReplicaTopologyFullSyncUnderLoad is the topology DBAs run: a primary
// and a GTID replica (two private mariadbd), the connector attached to the
// replica, the workload written to the primary at up to 500 changes/s.
//
//   - Without SLAVE MONITOR the connector cannot read the replica's lag: a
//     full sync warns once and completes (max_replica_lag not enforced).
//   - With it, a first-start full sync of products runs while the workload
//     streams; the replica's lag, sampled during the sync, stays under
//     resync.max_replica_lag; after catch-up the latest record of every key
//     in Kafka equals a fresh build from the replica.
//
// The catalog is small with 3 store views by default, medium with
// FEEDCDC_SYNC_PROFILE=medium.
func TestReplicaTopologyFullSyncUnderLoad(t *testing.T) {
	ctx := context.Background()
	primary, err := mysqltest.Start(ctx, mysqltest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { primary.Stop() })
	replica, err := mysqltest.StartReplica(ctx, primary, mysqltest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { replica.Stop() })
	prof, _ := syncProfile()
	db := primary.NewDatabase(t, "topo")
	padmin := primary.Admin(t, db)
	t0 := time.Now()
	if _, err := catalog.Load(ctx, padmin, prof, 21); err != nil {
		t.Fatal(err)
	}
	if err := replica.WaitReplicated(ctx, primary); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s profile loaded on the primary and replicated in %s", prof.Name, time.Since(t0).Round(time.Millisecond))
	radmin := replica.Admin(t, db)
	kafka := kafkatest.Start(t)
	const maxLag = 10 * time.Second

	// 1. No SLAVE MONITOR: the lag cannot be read; the sync warns and runs.
	{
		logs := &syncBuffer{}
		cfg := replicaConfig(t, replica, db, kafka.Addr(), "nopriv", onlyFeeds(map[string]string{"productAttributes": ""}),
			fmt.Sprintf("{max_replica_lag: %s, rows_per_second: 0}", maxLag))
		c, err := Open(ctx, cfg, OpenOptions{Logger: slog.New(slog.NewJSONHandler(logs, nil))})
		if err != nil {
			t.Fatal(err)
		}
		stop := c.RunExporter(ctx)
		res, err := c.Resync(ctx, ResyncOptions{Feed: "productAttributes"})
		if serr := stop(); err == nil {
			err = serr
		}
		c.Close()
		if err != nil {
			t.Fatalf("full sync without SLAVE MONITOR: %v", err)
		}
		if res.Stats.Sent == 0 || !strings.Contains(logs.String(), "cannot read the source's replication lag") ||
			!strings.Contains(logs.String(), "GRANT SLAVE MONITOR") || !c.lagDenied.Load() {
			t.Fatalf("without SLAVE MONITOR: sent %d; want a warning naming the grant; logs:\n%s", res.Stats.Sent, logs.String())
		}
		if n := strings.Count(logs.String(), "cannot read the source's replication lag"); n != 1 {
			t.Errorf("lag warning logged %d times, want once", n)
		}
	}

	// 2. Grant it (as the DBA would) and sync under load.
	for _, host := range []string{"127.0.0.1", "localhost", "%"} {
		if _, err := radmin.ExecContext(ctx, "SET SESSION sql_log_bin = 0"); err != nil {
			t.Fatal(err)
		}
		if _, err := radmin.ExecContext(ctx, fmt.Sprintf("GRANT SLAVE MONITOR ON *.* TO '%s'@'%s'", replica.CDCUser, host)); err != nil {
			t.Fatal(err)
		}
	}
	logs := &syncBuffer{}
	batch := 500
	cfg := replicaConfig(t, replica, db, kafka.Addr(), "topo", onlyFeeds(map[string]string{"products": ""}),
		fmt.Sprintf("{batch_size: %d, thread_count: 2, max_replica_lag: %s, rows_per_second: 0}", batch, maxLag))
	c, err := Open(ctx, cfg, OpenOptions{Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if lag, err := c.replicaLag(ctx); err != nil || c.lagDenied.Load() {
		t.Fatalf("with SLAVE MONITOR the connector cannot read the lag: %v %v\n%s", lag, err, logs.String())
	}

	// The workload: up to 500 changes/s on the primary, from 2 s before the
	// sync until 1 s after it.
	wl := catalog.NewWorkload(padmin, 21, catalog.WorkloadOptions{})
	wlCtx, wlCancel := context.WithCancel(ctx)
	defer wlCancel()
	type wlResult struct {
		st  catalog.WorkloadStats
		err error
	}
	wlDone := make(chan wlResult, 1)
	go func() {
		st, err := wl.Run(wlCtx, 1<<30, 500)
		if errors.Is(err, context.Canceled) {
			err = nil
		}
		wlDone <- wlResult{st, err}
	}()
	// Lag sampler: every 250 ms, labelled by phase.
	var mu sync.Mutex
	phase := "baseline"
	lags := map[string][]int64{}
	sampleCtx, stopSampling := context.WithCancel(ctx)
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-sampleCtx.Done():
				return
			case <-tick.C:
			}
			lag, err := replica.ReplicaLagSeconds(sampleCtx)
			if err != nil {
				continue
			}
			mu.Lock()
			lags[phase] = append(lags[phase], lag)
			mu.Unlock()
		}
	}()
	time.Sleep(2 * time.Second) // baseline: workload only

	mu.Lock()
	phase = "sync"
	mu.Unlock()
	runCtx, cancel := context.WithCancel(ctx)
	runErr := make(chan error, 1)
	go func() { runErr <- c.Run(runCtx, RunOptions{NoSchedule: true}) }()
	var stopOnce sync.Once
	stopRun := func() { stopOnce.Do(func() { cancel(); <-runErr }) }
	defer stopRun()
	var prog state.Progress
	for {
		pr, ok, err := c.Store.Progress(ctx, "products")
		if err != nil {
			t.Fatal(err)
		}
		if ok && pr.Finished() {
			prog = pr
			break
		}
		select {
		case err := <-runErr:
			t.Fatalf("connector stopped: %v", err)
		case <-time.After(100 * time.Millisecond):
		}
	}
	mu.Lock()
	phase = "after"
	mu.Unlock()
	time.Sleep(time.Second)
	wlCancel()
	wr := <-wlDone
	if wr.err != nil {
		t.Fatal(wr.err)
	}
	stopSampling()
	<-sampled
	if err := replica.WaitReplicated(ctx, primary); err != nil {
		t.Fatal(err)
	}
	waitCaughtUp(t, c, radmin, runErr)
	if err := c.Pipeline.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	recs, err := kafka.ReadAll(ctx, "topo.products")
	if err != nil {
		t.Fatal(err)
	}
	compareKafka(t, "products", recs, freshBuild(t, openFeed(t, replica, db, "products")))

	mu.Lock()
	maxOf := func(v []int64) (m int64) {
		for _, x := range v {
			m = max(m, x)
		}
		return m
	}
	p95 := func(v []int64) int64 {
		if len(v) == 0 {
			return 0
		}
		s := append([]int64(nil), v...)
		sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
		return s[len(s)*95/100]
	}
	if len(lags["sync"]) == 0 {
		t.Fatal("no lag sample during the sync")
	}
	if m := maxOf(lags["sync"]); time.Duration(m)*time.Second >= maxLag {
		t.Errorf("replica lag reached %d s during the full sync; resync.max_replica_lag is %s", m, maxLag)
	}
	if strings.Contains(logs.String(), "cannot read the source's replication lag") {
		t.Errorf("lag warning with SLAVE MONITOR granted:\n%s", logs.String())
	}
	syncTime := prog.FinishedAt.Sub(prog.StartedAt)
	t.Logf("workload: %d transactions in %s (%.0f/s, target 500/s) on the primary", wr.st.Transactions, wr.st.Duration.Round(time.Millisecond), float64(wr.st.Transactions)/wr.st.Duration.Seconds())
	t.Logf("full sync of products on the replica: %d keys, %d items in %s (%.0f keys/s, %.0f items/s)",
		prog.Processed, prog.Synced, syncTime.Round(time.Millisecond), float64(prog.Processed)/syncTime.Seconds(), float64(prog.Synced)/syncTime.Seconds())
	for _, ph := range []string{"baseline", "sync", "after"} {
		t.Logf("replica lag %-8s: %d samples, max %d s, p95 %d s (limit %s)", ph, len(lags[ph]), maxOf(lags[ph]), p95(lags[ph]), maxLag)
	}
	if os.Getenv("FEEDCDC_SYNC_VERBOSE") != "" {
		t.Log(logs.String())
	}
	mu.Unlock()
	stopRun()
	lagPausesSync(t, primary, replica, db, kafka.Addr())
}

// lagPausesSync delays the replica (MASTER_DELAY) while the primary keeps
// writing, so that its lag exceeds resync.max_replica_lag: a full sync
// started then waits without reading a key, says so in the logs, and
// completes once the delay is lifted and the replica catches up.
func lagPausesSync(t *testing.T, primary, replica *mysqltest.Server, db, kafkaAddr string) {
	ctx := context.Background()
	radmin := replica.Admin(t, "")
	setDelay := func(d int) {
		t.Helper()
		for _, q := range []string{"STOP SLAVE", fmt.Sprintf("CHANGE MASTER TO MASTER_DELAY = %d", d), "START SLAVE"} {
			if _, err := radmin.ExecContext(ctx, q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
	}
	setDelay(8)
	wlCtx, wlCancel := context.WithCancel(ctx)
	defer wlCancel()
	wlDone := make(chan error, 1)
	go func() {
		_, err := catalog.NewWorkload(primary.Admin(t, db), 31, catalog.WorkloadOptions{}).Run(wlCtx, 1<<30, 5)
		if errors.Is(err, context.Canceled) {
			err = nil
		}
		wlDone <- err
	}()
	deadline := time.Now().Add(time.Minute)
	for {
		lag, err := replica.ReplicaLagSeconds(ctx)
		if err == nil && lag >= 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica lag did not grow with MASTER_DELAY=8: %d %v", lag, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	logs := &syncBuffer{}
	cfg := replicaConfig(t, replica, db, kafkaAddr, "paused", onlyFeeds(map[string]string{"productAttributes": ""}),
		"{max_replica_lag: 2s, rows_per_second: 0}")
	c, err := Open(ctx, cfg, OpenOptions{Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	stop := c.RunExporter(ctx)
	defer stop()
	var mu sync.Mutex
	var firstChunk time.Time
	type result struct {
		res ResyncResult
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := c.Resync(ctx, ResyncOptions{Feed: "productAttributes", Progress: func(state.Progress) {
			mu.Lock()
			if firstChunk.IsZero() {
				firstChunk = time.Now()
			}
			mu.Unlock()
		}})
		done <- result{res, err}
	}()
	// Paused: the warning is logged and nothing is processed for 3 s.
	deadline = time.Now().Add(30 * time.Second)
	for !strings.Contains(logs.String(), "replica lag above limit, pausing full sync") {
		if time.Now().After(deadline) {
			t.Fatalf("the full sync did not pause for lag; logs:\n%s", logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(3 * time.Second)
	select {
	case r := <-done:
		t.Fatalf("the full sync finished while the replica lagged: %+v %v", r.res.Stats, r.err)
	default:
	}
	mu.Lock()
	early := !firstChunk.IsZero()
	mu.Unlock()
	if early {
		t.Fatal("the full sync exported a chunk while the replica lagged beyond the limit")
	}
	lifted := time.Now()
	wlCancel()
	if err := <-wlDone; err != nil {
		t.Fatal(err)
	}
	setDelay(0)
	r := <-done
	if r.err != nil {
		t.Fatalf("full sync after the lag cleared: %v", r.err)
	}
	if r.res.Stats.Sent == 0 || !strings.Contains(logs.String(), "replica caught up, resuming full sync") {
		t.Fatalf("full sync after the lag cleared sent %d; logs:\n%s", r.res.Stats.Sent, logs.String())
	}
	t.Logf("full sync paused while the replica lagged (MASTER_DELAY=8, limit 2s) and resumed %s after the delay was lifted; sent %d items",
		firstChunk.Sub(lifted).Round(time.Millisecond), r.res.Stats.Sent)
}

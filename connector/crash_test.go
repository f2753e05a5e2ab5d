package connector

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/feedcdc/feedcdc/config"
	"github.com/feedcdc/feedcdc/test/kafkatest"
)

// crashChild runs a connector from the config file named by
// FEEDCDC_CRASH_CHILD until it is killed (or SIGTERM stops it cleanly).
func crashChild() int {
	cfg, err := config.Load(os.Getenv("FEEDCDC_CRASH_CHILD"), os.Environ())
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	fmt.Fprintln(os.Stderr, childReady) // SIGTERM stops it cleanly from here on
	c, err := Open(ctx, cfg, OpenOptions{Command: "crash child"})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	defer c.Close()
	// TestRawSnapshotUnderWorkloadSurvivesSIGKILL shows with it that the
	// test fails without the watermark reconciliation.
	c.Pipeline.snap.noReconcile = os.Getenv("FEEDCDC_RAWSNAP_NO_RECONCILE") != ""
	if os.Getenv("FEEDCDC_BIGTX_KILL_AHEAD") != "" {
		// TestBigTransactionKilledBetweenStepsLosesNothing: die once a
		// step of deferred keys was written and the next two are built
		// (the one about to be exported) and building (the one ahead).
		steps := 0
		c.Pipeline.aheadHook = func(context.Context, *deferredStep) {
			if steps++; steps == 2 {
				fmt.Fprintln(os.Stderr, "child: killing myself while a step of deferred keys is built ahead")
				_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			}
		}
	}
	if err := c.Run(ctx, RunOptions{NoSchedule: true}); err != nil && ctx.Err() == nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	return 0
}

// TestRawStreamSurvivesSIGKILL streams a workload of single-row
// transactions through a connector process that is killed with SIGKILL at
// random moments and restarted: every committed change must be in Kafka,
// in commit order per key, and duplicates may only start at a restart
// (the unacknowledged tail replayed from the checkpoint).
func TestRawStreamSurvivesSIGKILL(t *testing.T) {
	txs, kills := 20000, 10
	if v := os.Getenv("FEEDCDC_CRASH_TXS"); v != "" {
		txs, _ = strconv.Atoi(v)
	}
	ctx := context.Background()
	db := srv.NewDatabase(t, "crash")
	admin := srv.Admin(t, db)
	if _, err := admin.Exec("CREATE TABLE counters (id INT PRIMARY KEY, v INT NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	var start string
	if err := admin.QueryRow("SELECT @@gtid_binlog_pos").Scan(&start); err != nil {
		t.Fatal(err)
	}
	kafka := kafkatest.Start(t)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "config.yaml")
	cc := connectorYAML{Name: "crash", ServerID: 6100001, StatePath: filepath.Join(dir, "state.db"), Database: db, Feeds: noFeeds,
		Source:   []string{fmt.Sprintf("start_position: \"gtid:%s\"", start), fmt.Sprintf("include_tables: [\"%s.counters\"]", db)},
		Sections: "raw:\n  enabled: true\n  tombstones: false\n" + kafkaSink(kafka.Addr(), "crash", "linger: 2ms") + "log: {format: json, level: warn}\n"}
	cc.write(t, dir)
	var stderr *prefixWriter
	startChild := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "FEEDCDC_CRASH_CHILD="+cfgPath, "CRASH_SOURCE_PASSWORD="+srv.CDCPassword)
		stderr = &prefixWriter{t: t, ready: make(chan struct{})}
		cmd.Stderr = stderr
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}

	// The workload: txs single-row transactions over 300 keys, each bumping
	// the key's version, so that Kafka must hold versions 1..n of every key.
	const keys = 300
	var done atomic.Int64
	wlErr := make(chan error, 1)
	go func() {
		rng := rand.New(rand.NewPCG(1, 2))
		// Paced to span the kills (about 2 s each, plus restarts).
		pace := time.Duration(float64(kills) * 2.6 * float64(time.Second) / float64(txs))
		t0 := time.Now()
		for i := 0; i < txs; i++ {
			if d := time.Until(t0.Add(time.Duration(i) * pace)); d > 0 {
				time.Sleep(d)
			}
			k := rng.IntN(keys)
			if _, err := admin.Exec("INSERT INTO counters (id, v) VALUES (?, 1) ON DUPLICATE KEY UPDATE v = v + 1", k); err != nil {
				wlErr <- err
				return
			}
			done.Add(1)
		}
		wlErr <- nil
	}()
	rng := rand.New(rand.NewPCG(3, 4))
	killed := 0
	var wlDone error
	finished := false
	for killed < kills || !finished {
		if !finished {
			select {
			case wlDone = <-wlErr:
				finished = true
				if wlDone != nil {
					t.Fatalf("workload: %v\nserver log:\n%s", wlDone, srv.ErrorLogTail(30))
				}
			default:
			}
		}
		child := startChild()
		time.Sleep(time.Duration(1000+rng.IntN(2000)) * time.Millisecond)
		_ = child.Process.Kill() // SIGKILL
		_ = child.Wait()
		killed++
		inKafka := 0
		if recs, err := kafka.ReadAll(ctx, "crash."+db+".counters"); err == nil {
			inKafka = len(recs)
		}
		t.Logf("kill %d: %d transactions committed, %d records in Kafka", killed, done.Load(), inKafka)
	}
	// Expected final version per key.
	want := map[int]int{}
	rows, err := admin.Query("SELECT id, v FROM counters")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id, v int
		rows.Scan(&id, &v)
		want[id] = v
	}
	rows.Close()
	// A last run catches up (every key's final version in Kafka), then
	// stops cleanly.
	child := startChild()
	topic := "crash." + db + ".counters"
	var recs []kafkatest.Record
	deadline := time.Now().Add(3 * time.Minute)
	for {
		var err error
		recs, err = kafka.ReadAll(ctx, topic)
		if err == nil && caughtUp(recs, want) {
			break
		}
		if time.Now().After(deadline) {
			child.Process.Kill()
			child.Wait()
			t.Fatalf("not caught up after 3 minutes (%d records, err %v)", len(recs), err)
		}
		time.Sleep(300 * time.Millisecond)
	}
	// Kafka may have held every version before this child started: the
	// clean stop waits until the child handles SIGTERM, or the signal's
	// default action would end it.
	select {
	case <-stderr.ready:
	case <-time.After(time.Minute):
		t.Fatal("the last child did not start within a minute")
	}
	child.Process.Signal(syscall.SIGTERM)
	if err := child.Wait(); err != nil {
		t.Fatalf("clean stop: %v", err)
	}
	recs, err = kafka.ReadAll(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	total, dups, replays := checkVersions(t, recs, want)
	if replays > (kills+1)*keys {
		t.Fatalf("%d replays for %d restarts", replays, kills+1)
	}
	t.Logf("%d transactions, %d kills: %d records in Kafka, %d duplicates (%.1f%%), %d replay starts",
		txs, kills, total, dups, 100*float64(dups)/float64(total), replays)
}

type envelope struct {
	After struct {
		ID int `json:"id"`
		V  int `json:"v"`
	} `json:"after"`
}

// caughtUp reports whether recs hold the final version of every key.
func caughtUp(recs []kafkatest.Record, want map[int]int) bool {
	got := map[int]int{}
	for _, r := range recs {
		var e envelope
		if json.Unmarshal(r.Value, &e) == nil && e.After.V > got[e.After.ID] {
			got[e.After.ID] = e.After.V
		}
	}
	for id, v := range want {
		if got[id] != v {
			return false
		}
	}
	return true
}

// childReady is the line crashChild writes once SIGTERM stops it cleanly.
const childReady = "child: handling SIGTERM"

// prefixWriter logs a child's stderr; ready (if not nil) is closed when the
// child wrote childReady.
type prefixWriter struct {
	t     *testing.T
	ready chan struct{}
	once  sync.Once
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.t.Logf("child: %s", b)
	if p.ready != nil && strings.Contains(string(b), childReady) {
		p.once.Do(func() { close(p.ready) })
	}
	return len(b), nil
}

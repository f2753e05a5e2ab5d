package connector

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/feedcdc/feedcdc/change"
	"github.com/feedcdc/feedcdc/test/catalog"
	"github.com/feedcdc/feedcdc/test/kafkatest"
)

// BenchmarkBigTransaction measures how a connector catches up with one
// large price transaction (catalog.Workload.LargeTransaction, the shape of
// a mass price import) and how long single changes committed behind it
// wait, for the pipeline as shipped (keys of a big transaction deferred
// and built in steps, each step built while the one before it is exported)
// and, in the same run on the same catalog, two former behaviours as
// baselines: every batch of the transaction built in stream order, and
// deferred steps each built only when it is exported (noStepAhead). Set
// FEEDCDC_BENCH_BIGTX_ONLY to a prefix of the variants' names to run some
// ("deferred" runs both deferred variants), and FEEDCDC_BENCH_BIGTX_REPEAT
// to run them that many times, alternating their order.
//
// Per variant: a connector with a fresh state, all four feeds, config
// defaults, no first-start full sync, a kfake sink; the transaction of
// FEEDCDC_BENCH_BIGTX_ROWS rows (default 200,000; it cycles over the
// catalog's simple products) is applied while a probe renames one
// configurable product every 50 ms (autocommit). Catch-up = from the
// transaction's commit until the checkpoint covers it and no deferred key
// is left (every item it changed is exported); ratio = catch-up / the
// transaction's apply time (BEGIN .. COMMIT). Probe lag = the probe's
// arrival in Kafka (its name or a later probe's) − its send time, for the
// probes sent from the transaction's start until the catch-up.
//
//	FEEDCDC_BENCH_CATALOG=medium go test -run '^$' -bench BigTransaction -benchtime 1x -v ./connector
func BenchmarkBigTransaction(b *testing.B) {
	for range b.N {
		bigTransaction(b)
	}
}

func bigTransaction(t testing.TB) {
	ctx := context.Background()
	rows := 200000
	if v, err := strconv.Atoi(os.Getenv("FEEDCDC_BENCH_BIGTX_ROWS")); err == nil && v > 0 {
		rows = v
	}
	profile := "medium"
	if v := os.Getenv("FEEDCDC_BENCH_CATALOG"); v != "" {
		profile = v
	}
	p, err := catalog.ProfileByName(profile)
	if err != nil {
		t.Fatal(err)
	}
	db := srv.NewDatabase(t, "bigtx")
	admin := srv.Admin(t, db)
	lst, err := catalog.Load(ctx, admin, p, 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("loaded %s profile: %d rows in %s", p.Name, lst.Rows, lst.Duration.Round(time.Millisecond))
	var probeID uint32
	var probeSKU string
	if err := admin.QueryRow(`SELECT e.entity_id, e.sku FROM catalog_product_entity e WHERE e.type_id = 'configurable' AND NOT EXISTS (SELECT 1 FROM catalog_product_entity_varchar v
		WHERE v.entity_id = e.entity_id AND v.attribute_id = ? AND v.store_id > 0) ORDER BY e.entity_id LIMIT 1`, catalog.AttrName).Scan(&probeID, &probeSKU); err != nil {
		t.Fatal(err)
	}
	type variant struct {
		name             string
		noDefer, noAhead bool
	}
	variants := []variant{{"stream order (before)", true, false}, {"deferred keys, one step at a time (before)", false, true}, {"deferred keys, steps built ahead", false, false}}
	repeat := 1
	if v, err := strconv.Atoi(os.Getenv("FEEDCDC_BENCH_BIGTX_REPEAT")); err == nil && v > 0 {
		repeat = v
	}
	var table []string
	seed := int64(10)
	for r := range repeat {
		order := slices.Clone(variants)
		if r%2 == 1 {
			slices.Reverse(order)
		}
		for _, v := range order {
			if only := os.Getenv("FEEDCDC_BENCH_BIGTX_ONLY"); only != "" && !strings.HasPrefix(v.name, only) {
				continue // e.g. FEEDCDC_BENCH_BIGTX_ONLY=deferred for the deferred variants only
			}
			table = append(table, bigTransactionVariant(t, db, v.name, v.noDefer, v.noAhead, seed, rows, probeID, probeSKU))
			seed++
		}
	}
	t.Logf("\n%s profile, one transaction of %d price rows; load average at the end %s\n"+
		"| pipeline | apply | catch-up after commit | ratio | items built | probe lag p50 | p99 | max | probes seen | test process CPU in catch-up | load average |\n|---|---|---|---|---|---|---|---|---|---|---|\n%s",
		p.Name, rows, loadAvg(), strings.Join(table, "\n"))
}

func bigTransactionVariant(t testing.TB, db, variant string, noDefer, noAhead bool, seed int64, rows int, probeID uint32, probeSKU string) string {
	ctx := context.Background()
	admin := srv.Admin(t, db)
	kc, err := kafkatest.New(ctx, kafkatest.InMemory())
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	prefix := fmt.Sprintf("big%d", seed)
	cc := connectorYAML{Name: "bigtx", StatePath: filepath.Join(t.TempDir(), "state.db"), Database: db,
		Sections: "resync: {on_first_start: none}\n" + kafkaSink(kc.Addr(), prefix) + "log: {level: warn}\n"}
	cfg := cc.load(t)
	c := openConnector(t, cfg, OpenOptions{Logger: quietSlog()})
	c.Pipeline.noDefer = noDefer
	c.Pipeline.noStepAhead = noAhead
	var built atomic.Int64
	c.Pipeline.o.Observer = builtCounter{&built}
	runErr, stop := startRun(t, c, RunOptions{NoSchedule: true})
	defer stop()

	setName := func(seq int) error {
		_, err := admin.ExecContext(ctx, `INSERT INTO catalog_product_entity_varchar (attribute_id, store_id, entity_id, value) VALUES (?, 0, ?, ?)
			ON DUPLICATE KEY UPDATE value = VALUES(value)`, catalog.AttrName, probeID, fmt.Sprintf("bigtx-probe-%d", seq))
		return err
	}
	// The connector streams from the position it captured at start: wait
	// until it has exported a first change.
	if err := setName(0); err != nil {
		t.Fatal(err)
	}
	waitCaughtUp(t, c, admin, runErr)

	type arrival struct {
		seq int
		at  time.Time
	}
	var mu sync.Mutex
	var arrivals []arrival
	cl, err := kgo.NewClient(append(kc.ClientOptions(), kgo.ConsumeTopics(prefix+".products"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(50*time.Millisecond))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	cctx, ccancel := context.WithCancel(ctx)
	defer ccancel()
	consumerDone := make(chan struct{})
	go func() {
		defer close(consumerDone)
		for cctx.Err() == nil {
			fs := cl.PollFetches(cctx)
			now := time.Now()
			fs.EachRecord(func(r *kgo.Record) {
				if !strings.Contains(string(r.Key), probeSKU) {
					return
				}
				var it struct {
					Name string `json:"name"`
				}
				if json.Unmarshal(r.Value, &it) != nil || !strings.HasPrefix(it.Name, "bigtx-probe-") {
					if os.Getenv("FEEDCDC_BENCH_DEBUG") != "" {
						t.Logf("probe product record: %s", r.Value)
					}
					return
				}
				seq, _ := strconv.Atoi(strings.TrimPrefix(it.Name, "bigtx-probe-"))
				mu.Lock()
				arrivals = append(arrivals, arrival{seq, now})
				mu.Unlock()
			})
		}
	}()

	// Probes every 50 ms from just before the transaction until caught up.
	sent := map[int]time.Time{}
	var sentMu sync.Mutex
	pctx, pcancel := context.WithCancel(ctx)
	probesDone := make(chan struct{})
	go func() {
		defer close(probesDone)
		start := time.Now()
		for seq := 1; pctx.Err() == nil; seq++ {
			t0 := time.Now()
			if err := setName(seq); err == nil {
				sentMu.Lock()
				sent[seq] = t0
				sentMu.Unlock()
			}
			time.Sleep(time.Until(start.Add(time.Duration(seq) * 50 * time.Millisecond)))
		}
	}()

	wl := catalog.NewWorkload(admin, seed, catalog.WorkloadOptions{})
	built.Store(0)
	t0 := time.Now()
	if _, err := wl.LargeTransaction(ctx, rows); err != nil {
		t.Fatal(err)
	}
	apply := time.Since(t0)
	committed := time.Now()
	cpu0 := processCPU(t)
	var target string
	if err := admin.QueryRow("SELECT @@gtid_binlog_pos").Scan(&target); err != nil {
		t.Fatal(err)
	}
	var catchUp, cpu time.Duration
	for deadline := time.Now().Add(30 * time.Minute); ; time.Sleep(20 * time.Millisecond) {
		pos, _, ok, err := c.Store.Checkpoint(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if ok && gtidCovers(pos.GTIDSet, target) && c.Pipeline.DeferredKeys() == 0 {
			catchUp = time.Since(committed)
			cpu = processCPU(t) - cpu0
			break
		}
		select {
		case err := <-runErr:
			t.Fatalf("connector stopped: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not caught up after 30 minutes", variant)
		}
	}
	itemsBuilt := built.Load()
	pcancel()
	<-probesDone
	// Let the last probes arrive.
	waitCaughtUp(t, c, admin, runErr)
	time.Sleep(500 * time.Millisecond)
	ccancel()
	<-consumerDone

	var lags []time.Duration
	for seq, at := range sent {
		var first time.Time
		for _, a := range arrivals {
			if a.seq >= seq && (first.IsZero() || a.at.Before(first)) {
				first = a.at
			}
		}
		if !first.IsZero() {
			lags = append(lags, first.Sub(at))
		}
	}
	sort.Slice(lags, func(a, b int) bool { return lags[a] < lags[b] })
	pct := func(p float64) time.Duration {
		if len(lags) == 0 {
			return 0
		}
		return lags[min(len(lags)-1, int(p*float64(len(lags))))].Round(time.Millisecond)
	}
	row := fmt.Sprintf("| %s | %s | %s | %.1f× | %d | %s | %s | %s | %d of %d | %s | %s |", variant, apply.Round(time.Millisecond), catchUp.Round(time.Millisecond),
		catchUp.Seconds()/apply.Seconds(), itemsBuilt, pct(.5), pct(.99), pct(1), len(lags), len(sent), cpu.Round(10*time.Millisecond), loadAvg())
	t.Log(row)
	return row
}

// processCPU is the user and system CPU time this process used so far.
func processCPU(t testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// builtCounter is an Observer that counts built items.
type builtCounter struct{ n *atomic.Int64 }

func (b builtCounter) Built(_ string, items int, _ time.Duration) { b.n.Add(int64(items)) }
func (builtCounter) Exported(string, ExportStats, time.Duration)  {}
func (builtCounter) RawSent(int, time.Duration)                   {}
func (builtCounter) Checkpointed(change.Position, time.Time)      {}
func (builtCounter) Queue(int, int64)                             {}
func (builtCounter) SourceEvent(time.Time)                        {}

package connector

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/feedcdc/feedcdc/feeds"
	"github.com/feedcdc/feedcdc/state"
	"github.com/feedcdc/feedcdc/telemetry"
	"github.com/feedcdc/feedcdc/test/catalog"
	"github.com/feedcdc/feedcdc/test/kafkatest"
)

// bigTxConfig is a connector on db whose batches hold 200 keys and whose
// products are built 100 at a time, so that a 20,000-row transaction over
// the small catalog's ~1,200 products is a big one.
func bigTxConfig(db, kafkaAddr, statePath string, sections string) connectorYAML {
	return connectorYAML{Name: "bigtx", Database: db,
		// The state section is written as "path: <StatePath>"; the batch
		// size rides on it.
		StatePath: statePath + "\n  flush_batch: 200",
		Feeds:     []string{"products: {batch_size: 100}"},
		Sections:  unthrottledResync + kafkaSink(kafkaAddr, db, "linger: 1ms") + sections}
}

// loadBigTxCatalog loads the small profile with 3 store views.
func loadBigTxCatalog(t *testing.T, admin *sql.DB) {
	t.Helper()
	p := catalog.Small()
	p.ExtraStoreViews = 2
	if _, err := catalog.Load(context.Background(), admin, p, 5); err != nil {
		t.Fatal(err)
	}
}

// probeProduct is a simple product in a website without store-level
// prices: its store-0 price is its items' regularPrice.
func probeProduct(t testing.TB, admin *sql.DB) uint32 {
	t.Helper()
	var id uint32
	err := admin.QueryRow(`SELECT e.entity_id FROM catalog_product_entity e JOIN catalog_product_website w ON w.product_id = e.entity_id
		WHERE e.type_id = 'simple' AND NOT EXISTS (SELECT 1 FROM catalog_product_entity_decimal d
		WHERE d.entity_id = e.entity_id AND d.attribute_id = ? AND d.store_id > 0) ORDER BY e.entity_id LIMIT 1`, catalog.AttrPrice).Scan(&id)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestBigTransactionIsDeferredAndExportedInOrder: a 20,000-row price
// transaction (every simple product of the catalog, many times) is cut
// into deferred batches whose keys are built after it in steps, while 50
// single-price transactions on one product it touched follow it: every
// feed ends equal to a fresh build, the product's prices reach Kafka in
// commit order (never an older price after a newer one), and the deferred
// set is empty at the end.
func TestBigTransactionIsDeferredAndExportedInOrder(t *testing.T) {
	ctx := context.Background()
	db := srv.NewDatabase(t, "bigtx")
	admin := srv.Admin(t, db)
	loadBigTxCatalog(t, admin)
	kafka := kafkatest.Start(t)
	cc := bigTxConfig(db, kafka.Addr(), filepath.Join(t.TempDir(), "state.db"), "")
	cfg := cc.load(t)
	tel, err := telemetry.New(ctx, telemetry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Shutdown(ctx)
	metricsSrv := httptest.NewServer(tel.MetricsHandler())
	defer metricsSrv.Close()
	deferredGauge := func() string {
		resp, err := http.Get(metricsSrv.URL)
		if err != nil {
			return err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return string(regexp.MustCompile(`(?m)^feedcdc_queue_depth\{[^}]*queue="deferred"[^}]*\} \d+$`).Find(body))
	}
	c := openConnector(t, cfg, OpenOptions{Observer: MetricsObserver{M: tel.Metrics}})
	var deferred atomic.Int64
	var gaugeAtFirst string
	c.Pipeline.deferHook = func(n int) {
		if deferred.Add(int64(n)) == int64(n) {
			gaugeAtFirst = deferredGauge()
		}
	}
	runErr, _ := startRun(t, c, RunOptions{NoSchedule: true})
	waitFullSyncs(t, c)

	probe := probeProduct(t, admin)
	wl := catalog.NewWorkload(admin, 3, catalog.WorkloadOptions{Reserved: []uint32{probe}})
	n, err := wl.LargeTransaction(ctx, 20000)
	if err != nil || n != 20000 {
		t.Fatalf("large transaction: %d rows, %v", n, err)
	}
	for i := 1; i <= 50; i++ {
		if _, err := admin.Exec(`INSERT INTO catalog_product_entity_decimal (attribute_id, store_id, entity_id, value) VALUES (?, 0, ?, ?)
			ON DUPLICATE KEY UPDATE value = VALUES(value)`, catalog.AttrPrice, probe, 900000+i); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := wl.Run(ctx, 100, 0); err != nil {
		t.Fatal(err)
	}
	waitCaughtUp(t, c, admin, runErr)
	if err := c.Pipeline.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if deferred.Load() == 0 {
		t.Fatal("no key of the big transaction was deferred")
	}
	if !strings.HasSuffix(gaugeAtFirst, "} 200") {
		t.Errorf("feedcdc_queue_depth{queue=\"deferred\"} after the first deferred batch: %q, want 200 keys", gaugeAtFirst)
	}
	if resp, err := http.Get(metricsSrv.URL); err == nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !regexp.MustCompile(`(?m)^feedcdc_tx_large_total(\{[^}]*\})? 1$`).Match(body) {
			t.Errorf("feedcdc_tx_large_total is not 1 after one big transaction")
		}
	}
	if g := deferredGauge(); !strings.HasSuffix(g, "} 0") {
		t.Errorf("feedcdc_queue_depth{queue=\"deferred\"} after Flush: %q, want 0", g)
	}
	if n := c.Pipeline.DeferredKeys(); n != 0 {
		t.Errorf("%d deferred keys left after Flush", n)
	}
	if n, err := c.Store.DeferredCount(ctx); err != nil || n != 0 {
		t.Errorf("state holds %d deferred keys after Flush (%v)", n, err)
	}
	feedsEqualFreshBuild(t, c, kafka, db)

	// The probe's prices, per item (store view), in Kafka order.
	recs, err := kafka.ReadAll(ctx, db+".products")
	if err != nil {
		t.Fatal(err)
	}
	var sku string
	if err := admin.QueryRow("SELECT sku FROM catalog_product_entity WHERE entity_id = ?", probe).Scan(&sku); err != nil {
		t.Fatal(err)
	}
	last := map[string]float64{}
	seen := 0
	for _, r := range recs {
		var it struct {
			SKU    string `json:"sku"`
			Prices struct {
				RegularPrice *float64 `json:"regularPrice"`
			} `json:"prices"`
		}
		if json.Unmarshal(r.Value, &it) != nil || it.SKU != sku || it.Prices.RegularPrice == nil {
			continue
		}
		p, key := *it.Prices.RegularPrice, string(r.Key)
		if p >= 900000 {
			seen++
			if p < last[key] {
				t.Errorf("%s: price %.0f after %.0f: an older state was exported after a newer one", key, p, last[key])
			}
		} else if last[key] >= 900000 {
			t.Errorf("%s: price %.2f (the big transaction's) after the later %.0f", key, p, last[key])
		}
		last[key] = p
	}
	for key, p := range last {
		if p != 900050 {
			t.Errorf("%s: last price %.2f, want 900050", key, p)
		}
	}
	t.Logf("%d keys deferred; probe %s: %d records with a probe price over %d items", deferred.Load(), sku, seen, len(last))
}

// TestBigTransactionSurvivesSIGKILL kills the connector process (SIGKILL)
// right after it deferred the first keys of a 20,000-row transaction, checks
// that the state file holds deferred keys, restarts it, and waits until
// every feed in Kafka equals a fresh build; then the same with a clean stop
// (SIGTERM) right after the first deferral of a second big transaction;
// then stops it cleanly and finds the deferred set empty.
func TestBigTransactionSurvivesSIGKILL(t *testing.T) {
	ctx := context.Background()
	db := srv.NewDatabase(t, "bigkill")
	admin := srv.Admin(t, db)
	loadBigTxCatalog(t, admin)
	kafka := kafkatest.Start(t)
	dir := t.TempDir()
	statePath := filepath.Join(dir, "state.db")
	cc := bigTxConfig(db, kafka.Addr(), statePath, "log: {format: json, level: info}\n")
	startChild, waitEqual := bigTxCrashBed(t, cc, dir, db, kafka)

	w1 := newSignalWriter(t, "keys of a big transaction deferred")
	child := startChild(w1)
	waitEqual("first start")
	wl := catalog.NewWorkload(admin, 4, catalog.WorkloadOptions{})
	if _, err := wl.LargeTransaction(ctx, 20000); err != nil {
		t.Fatal(err)
	}
	select {
	case <-w1.matched:
	case <-time.After(2 * time.Minute):
		child.Process.Kill()
		child.Wait()
		t.Fatal("the connector never deferred keys of the big transaction")
	}
	_ = child.Process.Kill() // SIGKILL
	_ = child.Wait()
	st, err := state.Open(statePath, state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	left, err := st.DeferredCount(ctx)
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	if left == 0 {
		t.Fatal("killed after the first deferral, yet the state holds no deferred key: the kill came too late to test anything")
	}
	t.Logf("killed with %d deferred keys in the state", left)

	child = startChild(newSignalWriter(t, ""))
	waitEqual("after the restart")

	// A clean stop (SIGTERM) right after the first deferral of a second
	// big transaction leaves its deferred keys in the state rather than
	// building them all before exiting; the next start builds them.
	w3 := newSignalWriter(t, "keys of a big transaction deferred")
	child.Process.Signal(syscall.SIGTERM)
	if err := child.Wait(); err != nil {
		t.Fatalf("clean stop: %v", err)
	}
	child = startChild(w3)
	if _, err := wl.LargeTransaction(ctx, 20000); err != nil {
		t.Fatal(err)
	}
	select {
	case <-w3.matched:
	case <-time.After(2 * time.Minute):
		child.Process.Kill()
		child.Wait()
		t.Fatal("the connector never deferred keys of the second big transaction")
	}
	child.Process.Signal(syscall.SIGTERM)
	if err := child.Wait(); err != nil {
		t.Fatalf("clean stop during the big transaction: %v", err)
	}
	if st, err = state.Open(statePath, state.Options{}); err != nil {
		t.Fatal(err)
	}
	left, err = st.DeferredCount(ctx)
	st.Close()
	t.Logf("stopped cleanly with %d deferred keys in the state (%v)", left, err)
	child = startChild(newSignalWriter(t, ""))
	waitEqual("after the clean stop and restart")
	child.Process.Signal(syscall.SIGTERM)
	if err := child.Wait(); err != nil {
		t.Fatalf("clean stop: %v", err)
	}
	st, err = state.Open(statePath, state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if n, err := st.DeferredCount(ctx); err != nil || n != 0 {
		t.Errorf("%d deferred keys left after catching up (%v)", n, err)
	}
}

// TestBigTransactionKilledBetweenStepsLosesNothing: a connector process
// building the deferred keys of a 20,000-row transaction in steps of 100
// keys per feed kills itself (SIGKILL) after the first step was written,
// with the second built and about to be exported and the third being built
// ahead; restarted, it builds what was left, every feed in Kafka equals a
// fresh build and the deferred set ends empty.
func TestBigTransactionKilledBetweenStepsLosesNothing(t *testing.T) {
	ctx := context.Background()
	db := srv.NewDatabase(t, "bigstep")
	admin := srv.Admin(t, db)
	loadBigTxCatalog(t, admin)
	kafka := kafkatest.Start(t)
	dir := t.TempDir()
	statePath := filepath.Join(dir, "state.db")
	cc := bigTxConfig(db, kafka.Addr(), statePath, "log: {format: json, level: info}\n")
	cc.Feeds = []string{"products: {batch_size: 50}", "productAttributes: {batch_size: 50}", "variants: {batch_size: 50}", "productOverrides: {batch_size: 50}"}
	startChild, waitEqual := bigTxCrashBed(t, cc, dir, db, kafka)

	w := newSignalWriter(t, "killing myself while a step of deferred keys is built ahead")
	child := startChild(w, "FEEDCDC_BIGTX_KILL_AHEAD=1")
	waitEqual("first start")
	if _, err := catalog.NewWorkload(admin, 5, catalog.WorkloadOptions{}).LargeTransaction(ctx, 20000); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- child.Wait() }()
	select {
	case <-exited:
	case <-time.After(3 * time.Minute):
		child.Process.Kill()
		<-exited
		t.Fatal("the connector did not die while building the deferred keys")
	}
	select {
	case <-w.matched:
	default:
		t.Fatal("the connector exited without having built a step ahead: the kill tested nothing")
	}
	st, err := state.Open(statePath, state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	left, err := st.DeferredCount(ctx)
	st.Close()
	if err != nil || left == 0 {
		t.Fatalf("killed between steps, yet the state holds %d deferred keys (%v)", left, err)
	}
	t.Logf("killed between two steps with %d deferred keys in the state", left)

	child = startChild(newSignalWriter(t, ""))
	waitEqual("after the restart")
	child.Process.Signal(syscall.SIGTERM)
	if err := child.Wait(); err != nil {
		t.Fatalf("clean stop: %v", err)
	}
	if st, err = state.Open(statePath, state.Options{}); err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if n, err := st.DeferredCount(ctx); err != nil || n != 0 {
		t.Errorf("%d deferred keys left after catching up (%v)", n, err)
	}
}

// signalWriter logs a child's stderr and closes matched at the first line
// containing want.
type signalWriter struct {
	t       *testing.T
	want    []byte
	once    sync.Once
	matched chan struct{}
}

func newSignalWriter(t *testing.T, want string) *signalWriter {
	return &signalWriter{t: t, want: []byte(want), matched: make(chan struct{})}
}

func (w *signalWriter) Write(b []byte) (int, error) {
	if len(w.want) > 0 && bytes.Contains(b, w.want) {
		w.once.Do(func() { close(w.matched) })
	}
	if !bytes.Contains(b, []byte(`"level":"INFO"`)) {
		w.t.Logf("child: %s", b)
	}
	return len(b), nil
}

// TestDeferredStepBuiltAheadKeepsPerKeyOrder: a step of deferred keys is
// built while the step before it is exported, and the stream's batches run
// before it is exported in turn. Two interleavings are forced from the
// exporter (aheadHook), once each:
//
//  1. after the step ahead was built, one of its products gets a new price
//     (autocommit) and the stream's batch exports it before the step: the
//     step builds that product again, so the last record of each of its
//     items in Kafka has the new price (exporting the step's older build
//     would end on the big transaction's price);
//  2. after the next step ahead was built, a second big transaction
//     changes the prices of its products: its deferred batches reach the
//     exporter before that step, which is then dropped, so the second
//     transaction's prices are exported (exporting the step would remove
//     its keys from the deferred set with the older prices).
//
// Every feed in Kafka ends equal to a fresh build.
func TestDeferredStepBuiltAheadKeepsPerKeyOrder(t *testing.T) {
	ctx := context.Background()
	db := srv.NewDatabase(t, "bigahead")
	admin := srv.Admin(t, db)
	loadBigTxCatalog(t, admin)
	kafka := kafkatest.Start(t)
	cc := bigTxConfig(db, kafka.Addr(), filepath.Join(t.TempDir(), "state.db"), "")
	c := openConnector(t, cc.load(t), OpenOptions{})
	p := c.Pipeline
	// Steps of 2 chunks of 50 keys per feed: the catalog's ~1,200
	// products take a dozen steps.
	p.o.BuildChunk = 50

	var mu sync.Mutex
	var stale []string
	p.staleHook = func(feed string, keys []string) {
		if feed == "products" {
			mu.Lock()
			stale = append(stale, keys...)
			mu.Unlock()
		}
	}
	// queueThrough waits (on the exporter) until the reader has read the
	// server's last transaction, and queues the batch holding it.
	queueThrough := func(ctx context.Context) error {
		var target string
		if err := admin.QueryRow("SELECT @@gtid_binlog_pos").Scan(&target); err != nil {
			return err
		}
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(10 * time.Millisecond) {
			p.mu.Lock()
			read := p.readPos.GTIDSet
			p.mu.Unlock()
			if gtidCovers(read, target) {
				return p.cut(ctx, false)
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("the reader did not read %s in a minute (at %s)", target, read)
			}
		}
	}
	// simplesAmong returns the simple products among keys (nil: all)
	// without store-level prices (their store-0 price is every item's
	// regularPrice), in id order.
	simplesAmong := func(keys []string) ([]uint32, error) {
		list := strings.Join(keys, ",")
		rows, err := admin.Query(`SELECT e.entity_id FROM catalog_product_entity e JOIN catalog_product_website w ON w.product_id = e.entity_id
			WHERE e.type_id = 'simple' AND (? = '' OR FIND_IN_SET(e.entity_id, ?)) AND NOT EXISTS (SELECT 1 FROM catalog_product_entity_decimal d
			WHERE d.entity_id = e.entity_id AND d.attribute_id = ? AND d.store_id > 0) GROUP BY e.entity_id ORDER BY e.entity_id`, list, list, catalog.AttrPrice)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		var ids []uint32
		for rows.Next() {
			var id uint32
			if err := rows.Scan(&id); err != nil {
				return nil, err
			}
			ids = append(ids, id)
		}
		return ids, rows.Err()
	}
	const probePrice = 777777
	var probe uint32
	var second []uint32 // the products of the second big transaction
	var hookErr error
	calls := 0
	p.aheadHook = func(ctx context.Context, next *deferredStep) {
		if hookErr != nil || calls >= 2 || len(next.keys["products"]) == 0 {
			return
		}
		<-next.done // the step is built: what follows is newer than its build
		ids, err := simplesAmong(next.keys["products"])
		if err != nil || len(ids) < 2 {
			hookErr = fmt.Errorf("simple products among the step's keys: %d, %v", len(ids), err)
			return
		}
		calls++
		if calls == 1 {
			probe = ids[0]
			_, err = admin.Exec(`UPDATE catalog_product_entity_decimal SET value = ? WHERE attribute_id = ? AND store_id = 0 AND entity_id = ?`,
				probePrice, catalog.AttrPrice, probe)
		} else {
			// The step's products and enough others for a big transaction
			// (the batches hold 200 keys), but not the probe.
			var more []uint32
			more, err = simplesAmong(nil)
			second = ids
			for _, id := range more {
				if len(second) >= 450 {
					break
				}
				if !slices.Contains(second, id) {
					second = append(second, id)
				}
			}
			second = slices.DeleteFunc(second, func(id uint32) bool { return id == probe })
			if err == nil {
				_, err = admin.Exec(`UPDATE catalog_product_entity_decimal SET value = value + 1000 WHERE attribute_id = ? AND store_id = 0 AND FIND_IN_SET(entity_id, ?)`,
					catalog.AttrPrice, joinIDs(second))
			}
		}
		if err == nil {
			err = queueThrough(ctx)
		}
		if err != nil {
			hookErr = err
		}
	}
	runErr, _ := startRun(t, c, RunOptions{NoSchedule: true})
	waitFullSyncs(t, c)

	wl := catalog.NewWorkload(admin, 3, catalog.WorkloadOptions{})
	if _, err := wl.LargeTransaction(ctx, 20000); err != nil {
		t.Fatal(err)
	}
	waitCaughtUp(t, c, admin, runErr)
	// The exporter's loop builds the steps (Flush would build them in one
	// job, with no stream batch between them).
	for deadline := time.Now().Add(3 * time.Minute); c.Pipeline.DeferredKeys() > 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d deferred keys left after 3 minutes", c.Pipeline.DeferredKeys())
		}
	}
	if err := c.Pipeline.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if hookErr != nil {
		t.Fatal(hookErr)
	}
	if calls != 2 {
		t.Fatalf("the hook forced %d interleavings, want 2 (no steps built ahead?)", calls)
	}
	mu.Lock()
	probeKey := strconv.FormatUint(uint64(probe), 10)
	if !slices.Contains(stale, probeKey) {
		t.Errorf("the step built ahead did not build product %s again after the stream exported it (rebuilt: %v)", probeKey, stale)
	}
	mu.Unlock()
	if n, err := c.Store.DeferredCount(ctx); err != nil || n != 0 {
		t.Errorf("state holds %d deferred keys after Flush (%v)", n, err)
	}
	feedsEqualFreshBuild(t, c, kafka, db)

	// The last price of every item of the probe, and of the second
	// transaction's products, in Kafka order.
	recs, err := kafka.ReadAll(ctx, db+".products")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{} // productId -> price expected last
	want[probeKey] = probePrice
	for _, id := range second {
		var v float64
		if err := admin.QueryRow(`SELECT value FROM catalog_product_entity_decimal WHERE attribute_id = ? AND store_id = 0 AND entity_id = ?`, catalog.AttrPrice, id).Scan(&v); err != nil {
			t.Fatal(err)
		}
		want[strconv.FormatUint(uint64(id), 10)] = v
	}
	last := map[string]float64{} // record key -> last price
	product := map[string]string{}
	for _, r := range recs {
		var it struct {
			ProductID json.Number `json:"productId"`
			Prices    struct {
				RegularPrice *float64 `json:"regularPrice"`
			} `json:"prices"`
		}
		if json.Unmarshal(r.Value, &it) != nil || it.Prices.RegularPrice == nil {
			continue
		}
		if _, ok := want[it.ProductID.String()]; ok {
			last[string(r.Key)] = *it.Prices.RegularPrice
			product[string(r.Key)] = it.ProductID.String()
		}
	}
	seen := map[string]bool{}
	for key, price := range last {
		id := product[key]
		seen[id] = true
		if price != want[id] {
			t.Errorf("product %s, item %s: last price in Kafka %.2f, want %.2f", id, key, price, want[id])
		}
	}
	if !seen[probeKey] {
		t.Errorf("no record of the probe product %s in Kafka", probeKey)
	}
	t.Logf("probe %s; second transaction: %d products; rebuilt after a stream export: %d keys", probeKey, len(second), len(stale))
}

// joinIDs formats ids for FIND_IN_SET.
func joinIDs(ids []uint32) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = strconv.FormatUint(uint64(id), 10)
	}
	return strings.Join(s, ",")
}

// bigTxCrashBed writes cc into dir and returns how to start a connector
// child process on it (killed with the test; env is added to its
// environment) and how to wait until every feed in Kafka equals a fresh
// build of db.
func bigTxCrashBed(t *testing.T, cc connectorYAML, dir, db string, kafka *kafkatest.Cluster) (startChild func(w *signalWriter, env ...string) *exec.Cmd, waitEqual func(what string)) {
	cfgPath := cc.write(t, dir)
	var fs []feeds.Feed
	for _, f := range cc.load(t).EnabledFeeds() {
		fs = append(fs, openFeed(t, srv, db, f))
	}
	startChild = func(w *signalWriter, env ...string) *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(append(os.Environ(), "FEEDCDC_CRASH_CHILD="+cfgPath, "BIGTX_SOURCE_PASSWORD="+srv.CDCPassword), env...)
		cmd.Stderr = w
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	waitEqual = func(what string) {
		t.Helper()
		deadline := time.Now().Add(3 * time.Minute)
		for {
			bad, detail := feedsInKafka(t, kafka, db, fs)
			if bad == 0 {
				t.Logf("%s: every feed equals a fresh build (%s)", what, detail)
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: feeds differ from a fresh build after 3 minutes: %s", what, detail)
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	return startChild, waitEqual
}

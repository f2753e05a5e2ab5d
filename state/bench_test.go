package state

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Benchmarks (all fsync on commit, as in production):
//
//	go test -run '^$' -bench . -benchtime 1x ./state/
//	FEEDCDC_STATE_BENCH_LARGE=1 go test -run '^$' -bench ProfileLarge -benchtime 1x -timeout 30m ./state/
//
// Each compares feedcdc's state writes with a baseline measured in the
// same run: raw bbolt puts of the same key and value bytes into one bucket
// per feed (no indexes, no counters). See docs/benchmarks.md.

// profile is a catalog size (see reference/magento-schema.md §6). Overrides
// assume 10% of products carry a customer-group price on every website for
// the 4 default customer groups.
type profile struct {
	name                 string
	products, views      int // simple+configurable products, store views (= websites)
	configurables, perCf int // configurables × variants each
	attributes           int
}

var (
	profileMedium = profile{name: "medium", products: 24_640, views: 3, configurables: 640, perCf: 24, attributes: 300}
	profileLarge  = profile{name: "large", products: 300_000, views: 5, configurables: 8_000, perCf: 24, attributes: 1_000}
)

const customerGroups = 4

func (p profile) counts() (products, variants, overrides, attrs int) {
	return p.products * p.views, p.configurables * p.perCf, p.products / 10 * p.views * customerGroups, p.attributes * p.views
}

// items calls fn with realistic item states in batches of batch, in the
// order a full sync produces them (entity order; feed ids are random).
func (p profile) items(batch int, fn func([]Item) error) error {
	rng := rand.New(rand.NewPCG(1, 2))
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	buf := make([]Item, 0, batch)
	reqID := ""
	emit := func(it Item) error {
		if len(buf)%100 == 0 { // one request id per request of 100 items
			reqID = fmt.Sprintf("%08x-%04x-4%03x-a%03x-%012x", rng.Uint32(), rng.IntN(1<<16), rng.IntN(1<<12), rng.IntN(1<<12), rng.Uint64()&(1<<48-1))
		}
		it.Hash = sha1hex(it.ID + "payload")
		it.Status, it.RequestID = StatusSent, reqID
		it.ModifiedAt = now.Add(-time.Duration(rng.IntN(1e6)) * time.Second)
		it.SentAt = it.ModifiedAt.Add(time.Second)
		if rng.IntN(100) == 0 { // 1% retryable failures
			it.Status, it.Attempts = StatusRetryableFailure, 1+rng.IntN(5)
			it.LastError = "HTTP 503 Service Unavailable: upstream connect error"
			it.NextAttempt = now.Add(time.Duration(rng.IntN(3600)) * time.Second)
			it.SentAt = time.Time{}
		}
		buf = append(buf, it)
		if len(buf) == batch {
			err := fn(buf)
			buf = buf[:0]
			return err
		}
		return nil
	}
	view := func(v int) string {
		if v == 0 {
			return "default"
		}
		return "store_view_" + strconv.Itoa(v+1)
	}
	for e := 1; e <= p.products; e++ {
		sku := "product_dynamic_" + strconv.Itoa(e)
		for v := range p.views {
			if err := emit(Item{Feed: "products", ID: sha1hex(sku + "\x00" + view(v)), EntityKey: strconv.Itoa(e),
				Identity: map[string]string{"sku": sku, "storeViewCode": view(v), "storeCode": "store_" + strconv.Itoa(v+1),
					"websiteCode": "website_" + strconv.Itoa(v+1), "productId": strconv.Itoa(e)}}); err != nil {
				return err
			}
		}
	}
	for c := range p.configurables {
		parent := "configurable_dynamic_" + strconv.Itoa(c+1)
		for k := range p.perCf {
			child := parent + "-option " + strconv.Itoa(k+1)
			if err := emit(Item{Feed: "variants", ID: sha1hex(parent + "\x00" + child), EntityKey: strconv.Itoa(p.products + c*p.perCf + k + 1),
				Identity: map[string]string{"parentSku": parent, "productSku": child}}); err != nil {
				return err
			}
		}
	}
	for e := 1; e <= p.products/10; e++ {
		sku := "product_dynamic_" + strconv.Itoa(e*10)
		for w := range p.views {
			for g := range customerGroups {
				grp := sha1hex(strconv.Itoa(g))
				if err := emit(Item{Feed: "productOverrides", ID: sha1hex(sku + "\x00website_" + strconv.Itoa(w+1) + "\x00" + grp), EntityKey: strconv.Itoa(e * 10),
					Identity: map[string]string{"sku": sku, "websiteCode": "website_" + strconv.Itoa(w+1), "customerGroupCode": grp}}); err != nil {
					return err
				}
			}
		}
	}
	for a := range p.attributes {
		code := "attribute_" + strconv.Itoa(a+1)
		for v := range p.views {
			if err := emit(Item{Feed: "productAttributes", ID: sha1hex(code + "\x00" + view(v)), EntityKey: strconv.Itoa(a + 1),
				Identity: map[string]string{"attributeCode": code, "storeViewCode": view(v)}}); err != nil {
				return err
			}
		}
	}
	if len(buf) > 0 {
		return fn(buf)
	}
	return nil
}

// rawDB is the baseline: one bbolt bucket per feed holding the same key and
// value bytes as the store's items bucket, without the id, failed and status
// indexes, the counters and the lookups that maintain them.
type rawDB struct{ db *bolt.DB }

func openRaw(tb testing.TB, path string) *rawDB {
	db, err := bolt.Open(path, 0o600, &bolt.Options{FreelistType: bolt.FreelistMapType, InitialMmapSize: 1 << 30})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return &rawDB{db}
}

func (r *rawDB) put(items []Item) error {
	return r.db.Update(func(tx *bolt.Tx) error {
		for i := range items {
			b, err := tx.CreateBucketIfNotExists([]byte(items[i].Feed))
			if err != nil {
				return err
			}
			b.FillPercent = 0.9
			if err := b.Put(itemKey(nil, items[i].EntityKey, encodeID(nil, items[i].ID)), encodeItem(nil, &items[i])); err != nil {
				return err
			}
		}
		return nil
	})
}

func fileSize(tb testing.TB, path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		tb.Fatal(err)
	}
	return fi.Size()
}

type profileResult struct {
	items                      int
	stateSecs, rawSecs         float64
	stateLoaded, rawLoaded     int64         // file sizes right after the load
	stateBytes, rawBytes       int64         // file sizes after the steady-state flushes
	flushState, flushRaw       time.Duration // median 10k-item flush, random items
	flushSeqState, flushSeqRaw time.Duration // median 10k-item flush, consecutive entities (resync)
	// Process CPU time (user+sys) of the same flushes: robust against other
	// processes competing for the CPU, but without the fsync wait.
	cpuState, cpuRaw, cpuSeqState, cpuSeqRaw time.Duration
	loadCPUState, loadCPURaw                 time.Duration
	// Block writes of the process (/proc/self/io write_bytes) during
	// each initial load; -1 when the kernel does not report them.
	loadWritesState, loadWritesRaw int64
	reopen                         time.Duration // Open of the full file (rebuilds the freelist)
}

// runProfile writes the whole profile into a state store and into the raw
// baseline in flushes of 10k items, then measures steady-state flushes of
// 10k random updates on the full files.
func runProfile(b *testing.B, p profile) profileResult {
	ctx := context.Background()
	dir := b.TempDir()
	st, err := Open(filepath.Join(dir, "state.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	raw := openRaw(b, filepath.Join(dir, "raw.db"))
	var res profileResult
	var ids []Item // a sample of items for the steady-state flushes
	var loadWall, rawWall time.Duration
	put := func(items []Item) error {
		return st.Update(ctx, func(tx *Tx) error { return tx.PutItems(items) })
	}
	// Only the writes are timed, not the generation of the items.
	w0 := blockWrites()
	err = p.items(10_000, func(items []Item) error {
		res.items += len(items)
		for i := 0; i < len(items); i += 20 {
			ids = append(ids, items[i])
		}
		w, c, err := timed(func() error { return put(items) })
		loadWall += w
		res.loadCPUState += c
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	w1 := blockWrites()
	err = p.items(10_000, func(items []Item) error {
		w, c, err := timed(func() error { return raw.put(items) })
		rawWall += w
		res.loadCPURaw += c
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	w2 := blockWrites()
	res.loadWritesState, res.loadWritesRaw = w1-w0, w2-w1
	if w0 < 0 {
		res.loadWritesState, res.loadWritesRaw = -1, -1
	}
	res.stateSecs, res.rawSecs = loadWall.Seconds(), rawWall.Seconds()
	res.stateLoaded = fileSize(b, filepath.Join(dir, "state.db"))
	res.rawLoaded = fileSize(b, filepath.Join(dir, "raw.db"))

	// both times one flush into the store and the same flush into the
	// baseline, alternating.
	var ws, wr, cs, cr []time.Duration
	both := func(batch []Item) error {
		w, c, err := timed(func() error { return put(batch) })
		if err != nil {
			return err
		}
		ws, cs = append(ws, w), append(cs, c)
		w, c, err = timed(func() error { return raw.put(batch) })
		wr, cr = append(wr, w), append(cr, c)
		return err
	}
	const rounds = 9

	// Steady state: flushes of 10k changed items (new hash, sent again)
	// picked at random across feeds.
	rng := rand.New(rand.NewPCG(3, 4))
	for round := range rounds {
		batch := make([]Item, 10_000)
		for i := range batch {
			it := ids[rng.IntN(len(ids))]
			it.Hash = sha1hex(it.ID + strconv.Itoa(round))
			it.Status, it.Attempts, it.LastError, it.NextAttempt = StatusSent, 0, "", time.Time{}
			it.SentAt = time.Now()
			batch[i] = it
		}
		if err := both(batch); err != nil {
			b.Fatal(err)
		}
	}
	res.flushState, res.flushRaw, res.cpuState, res.cpuRaw = median(ws), median(wr), median(cs), median(cr)

	// Resync of an already synced catalog: flushes of 10k consecutive
	// items (entity order) with changed hashes.
	ws, wr, cs, cr = ws[:0], wr[:0], cs[:0], cr[:0]
	nb := 0
	err = p.items(10_000, func(batch []Item) error {
		if nb++; nb%3 != 0 || len(ws) == rounds {
			return nil
		}
		for i := range batch {
			batch[i].Hash = sha1hex(batch[i].ID + "resync")
			batch[i].SentAt = time.Now()
		}
		return both(batch)
	})
	if err != nil {
		b.Fatal(err)
	}
	res.flushSeqState, res.flushSeqRaw, res.cpuSeqState, res.cpuSeqRaw = median(ws), median(wr), median(cs), median(cr)
	if err := st.Check(ctx); err != nil {
		b.Fatal(err)
	}
	res.stateBytes = fileSize(b, filepath.Join(dir, "state.db"))
	res.rawBytes = fileSize(b, filepath.Join(dir, "raw.db"))
	if err := st.Close(); err != nil {
		b.Fatal(err)
	}
	t0 := time.Now()
	st2, err := Open(filepath.Join(dir, "state.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	res.reopen = time.Since(t0)
	st2.Close()
	return res
}

// blockWrites is the bytes this process caused to be written to storage
// (write_bytes in /proc/self/io), -1 when it cannot be read.
func blockWrites() int64 {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "write_bytes: "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return -1
			}
			return n
		}
	}
	return -1
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// timed runs f and returns its wall and CPU time.
func timed(f func() error) (wall, cpu time.Duration, err error) {
	c0, t0 := cpuTime(), time.Now()
	err = f()
	return time.Since(t0), cpuTime() - c0, err
}

func median(d []time.Duration) time.Duration {
	slices.Sort(d)
	return d[len(d)/2]
}

func reportProfile(b *testing.B, p profile, r profileResult) {
	pr, va, ov, at := p.counts()
	ms := func(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d)/1e6) }
	b.Logf("profile %s: %d items (products %d, variants %d, overrides %d, attributes %d)", p.name, r.items, pr, va, ov, at)
	b.Logf("  after load: state file %.1f MiB (%.0f B/item); raw bbolt of the same bytes %.1f MiB (%.0f B/item); size ratio %.2f",
		float64(r.stateLoaded)/(1<<20), float64(r.stateLoaded)/float64(r.items), float64(r.rawLoaded)/(1<<20), float64(r.rawLoaded)/float64(r.items),
		float64(r.stateLoaded)/float64(r.rawLoaded))
	b.Logf("  after the update flushes: state file %.1f MiB, raw %.1f MiB", float64(r.stateBytes)/(1<<20), float64(r.rawBytes)/(1<<20))
	b.Logf("  initial load in 10k flushes: state %.0f items/s (CPU %.1f µs/item), raw %.0f items/s (CPU %.1f µs/item); wall ratio %.2f, CPU ratio %.2f",
		float64(r.items)/r.stateSecs, float64(r.loadCPUState)/1e3/float64(r.items), float64(r.items)/r.rawSecs, float64(r.loadCPURaw)/1e3/float64(r.items),
		r.stateSecs/r.rawSecs, float64(r.loadCPUState)/float64(r.loadCPURaw))
	if r.loadWritesState >= 0 {
		b.Logf("  initial load, block writes (/proc/self/io write_bytes): state %.0f MiB (%.0f B/item), raw %.0f MiB; ratio %.2f",
			float64(r.loadWritesState)/(1<<20), float64(r.loadWritesState)/float64(r.items), float64(r.loadWritesRaw)/(1<<20),
			float64(r.loadWritesState)/float64(max(r.loadWritesRaw, 1)))
	}
	b.Logf("  10k-item flush, random items (median of 9, fsync): state %s wall / %s CPU, raw %s / %s; ratios %.2f / %.2f",
		ms(r.flushState), ms(r.cpuState), ms(r.flushRaw), ms(r.cpuRaw), float64(r.flushState)/float64(r.flushRaw), float64(r.cpuState)/float64(r.cpuRaw))
	b.Logf("  10k-item flush, consecutive entities (resync): state %s wall / %s CPU, raw %s / %s; ratios %.2f / %.2f",
		ms(r.flushSeqState), ms(r.cpuSeqState), ms(r.flushSeqRaw), ms(r.cpuSeqRaw), float64(r.flushSeqState)/float64(r.flushSeqRaw), float64(r.cpuSeqState)/float64(r.cpuSeqRaw))
	b.Logf("  reopen of the full file: %s", ms(r.reopen))
	b.ReportMetric(float64(r.stateLoaded)/(1<<20), "state-MiB")
	b.ReportMetric(float64(r.stateLoaded)/float64(r.items), "state-B/item")
	b.ReportMetric(float64(r.stateLoaded)/float64(r.rawLoaded), "size-ratio")
	b.ReportMetric(float64(r.items)/r.stateSecs, "load-items/s")
	b.ReportMetric(float64(r.flushSeqState)/1e6, "resync10k-ms")
	b.ReportMetric(float64(r.cpuSeqState)/1e6, "resync10k-cpu-ms")
	b.ReportMetric(float64(r.flushState)/1e6, "random10k-ms")
	b.ReportMetric(float64(r.cpuSeqState)/float64(r.cpuSeqRaw), "resync-cpu-ratio")
}

// BenchmarkProfileMedium: ~120k items (medium profile).
func BenchmarkProfileMedium(b *testing.B) {
	for range b.N {
		reportProfile(b, profileMedium, runProfile(b, profileMedium))
	}
}

// BenchmarkProfileLarge: ~2.3M items (large profile); several minutes, so
// it runs only with FEEDCDC_STATE_BENCH_LARGE=1.
func BenchmarkProfileLarge(b *testing.B) {
	if os.Getenv("FEEDCDC_STATE_BENCH_LARGE") == "" {
		b.Skip("set FEEDCDC_STATE_BENCH_LARGE=1 to run the large profile (about 2.3M items)")
	}
	for range b.N {
		reportProfile(b, profileLarge, runProfile(b, profileLarge))
	}
}

// BenchmarkFlush10k: one op = one Update of 10k changed items on a store
// holding 100k items; the same batch into the raw baseline is timed in the
// same iteration and reported as a ratio.
func BenchmarkFlush10k(b *testing.B) {
	ctx := context.Background()
	dir := b.TempDir()
	st, err := Open(filepath.Join(dir, "state.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	raw := openRaw(b, filepath.Join(dir, "raw.db"))
	var base []Item
	p := profile{products: 33_334, views: 3}
	if err := p.items(10_000, func(items []Item) error {
		base = append(base, items...)
		if err := raw.put(items); err != nil {
			return err
		}
		return st.Update(ctx, func(tx *Tx) error { return tx.PutItems(items) })
	}); err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(5, 6))
	var tState, tRaw time.Duration
	b.ResetTimer()
	for n := range b.N {
		batch := make([]Item, 10_000)
		for i := range batch {
			it := base[rng.IntN(len(base))]
			it.Hash = sha1hex(it.ID + strconv.Itoa(n))
			if i%50 == 0 {
				it.Status, it.Attempts, it.NextAttempt = StatusRetryableFailure, 1, time.Now().Add(time.Minute)
			} else {
				it.Status = StatusSent
			}
			batch[i] = it
		}
		t0 := time.Now()
		if err := st.Update(ctx, func(tx *Tx) error { return tx.PutItems(batch) }); err != nil {
			b.Fatal(err)
		}
		tState += time.Since(t0)
		b.StopTimer()
		t0 = time.Now()
		if err := raw.put(batch); err != nil {
			b.Fatal(err)
		}
		tRaw += time.Since(t0)
		b.StartTimer()
	}
	b.ReportMetric(float64(tState.Microseconds())/1000/float64(b.N), "state-ms/flush")
	b.ReportMetric(float64(tRaw.Microseconds())/1000/float64(b.N), "raw-ms/flush")
	b.ReportMetric(float64(tState)/float64(tRaw), "ratio")
}

// BenchmarkLookups: the differ's reads for one batch of 1000 entities (3
// items each) on a 100k-item store.
func BenchmarkLookups(b *testing.B) {
	ctx := context.Background()
	st, err := Open(filepath.Join(b.TempDir(), "state.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	var ids []string
	p := profile{products: 33_334, views: 3}
	if err := p.items(10_000, func(items []Item) error {
		for _, it := range items {
			ids = append(ids, it.ID)
		}
		return st.Update(ctx, func(tx *Tx) error { return tx.PutItems(items) })
	}); err != nil {
		b.Fatal(err)
	}
	keys := make([]string, 1000)
	batch := make([]string, 3000)
	b.ResetTimer()
	for n := range b.N {
		for i := range keys {
			keys[i] = strconv.Itoa(1 + (n*1000+i*31)%p.products)
		}
		for i := range batch {
			batch[i] = ids[(n*3000+i*7)%len(ids)]
		}
		m, err := st.ItemsByEntity(ctx, "products", keys)
		if err != nil || len(m) != len(keys) {
			b.Fatalf("%d entities, %v", len(m), err)
		}
		if _, err := st.Items(ctx, "products", batch); err != nil {
			b.Fatal(err)
		}
	}
}

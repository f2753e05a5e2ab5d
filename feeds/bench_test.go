package feeds

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/feedcdc/feedcdc/test/catalog"
)

// loadCatalog loads a generated profile into a fresh database and returns a
// registry on the connector user.
func loadCatalog(tb testing.TB, p catalog.Profile, chunk int) (string, *sql.DB, *Registry) {
	tb.Helper()
	ctx := context.Background()
	db := srv.NewDatabase(tb, "feeds_"+p.Name)
	admin := srv.Admin(tb, db)
	st, err := catalog.Load(ctx, admin, p, 1)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Logf("loaded %s: %d rows in %s", p.Name, st.Rows, st.Duration.Round(time.Millisecond))
	pool, err := sql.Open("mysql", srv.CDCDSN(db))
	if err != nil {
		tb.Fatal(err)
	}
	pool.SetMaxIdleConns(8)
	tb.Cleanup(func() { pool.Close() })
	reg, err := NewRegistry(Config{DB: pool, Database: db, ChunkSize: chunk, Now: func() time.Time { return fixedNow },
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		tb.Fatal(err)
	}
	return db, admin, reg
}

// fullBuild scans every feed and builds all items with batches of batch keys
// on workers goroutines. It returns the items per feed.
func fullBuild(ctx context.Context, reg *Registry, batch, workers int) (map[string][]Item, error) {
	out := map[string][]Item{}
	err := buildAll(ctx, reg, batch, workers, func(feed string, items []Item) { out[feed] = append(out[feed], items...) })
	return out, err
}

// buildAll is fullBuild handing each batch's items to sink (in batch order)
// instead of keeping them, as the connector does.
func buildAll(ctx context.Context, reg *Registry, batch, workers int, sink func(feed string, items []Item)) error {
	return buildAllTimed(ctx, reg, batch, workers, sink, nil)
}

// buildAllTimed is buildAll adding each feed's wall time to took.
func buildAllTimed(ctx context.Context, reg *Registry, batch, workers int, sink func(feed string, items []Item), took map[string]time.Duration) error {
	for _, f := range reg.Feeds() {
		start := time.Now()
		var keys []string
		if err := f.Scan(ctx, func(k []string) error { keys = append(keys, k...); return nil }); err != nil {
			return err
		}
		var batches [][]string
		for len(keys) > 0 {
			n := min(batch, len(keys))
			batches = append(batches, keys[:n])
			keys = keys[n:]
		}
		results := make([]chan []Item, len(batches))
		errs := make([]error, len(batches))
		for i := range results {
			results[i] = make(chan []Item, 1)
		}
		next := make(chan int)
		var wg sync.WaitGroup
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range next {
					items, err := f.Build(ctx, batches[i])
					errs[i] = err
					results[i] <- items
				}
			}()
		}
		go func() {
			for i := range batches {
				next <- i
			}
			close(next)
		}()
		var firstErr error
		for i := range batches {
			items := <-results[i]
			if errs[i] != nil && firstErr == nil {
				firstErr = errs[i]
			}
			if firstErr == nil {
				sink(f.Name(), items)
			}
		}
		wg.Wait()
		if firstErr != nil {
			return firstErr
		}
		if took != nil {
			took[f.Name()] += time.Since(start)
		}
	}
	return nil
}

func countRows(t testing.TB, db *sql.DB, q string) int {
	t.Helper()
	var n int
	if err := db.QueryRow(q).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// TestFullBuildTinyProfile builds every feed of a generated catalog and
// checks the item counts against independent SQL counts, and that the build
// does not depend on batching.
func TestFullBuildTinyProfile(t *testing.T) {
	ctx := context.Background()
	p := catalog.Tiny()
	_, admin, reg := loadCatalog(t, p, 7)
	got, err := fullBuild(ctx, reg, 13, 2)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{
		"products": countRows(t, admin, `SELECT COUNT(*) FROM catalog_product_entity p JOIN catalog_product_website w ON w.product_id = p.entity_id
			JOIN store s ON s.website_id = w.website_id AND s.store_id <> 0`),
		"productAttributes": countRows(t, admin, `SELECT COUNT(*) FROM eav_attribute a JOIN store s ON s.store_id <> 0 WHERE a.entity_type_id = 4`),
		"variants":          countRows(t, admin, `SELECT COUNT(*) FROM catalog_product_super_link`),
		"productOverrides": countRows(t, admin, `SELECT COUNT(DISTINCT i.product_id, s.website_id, i.customer_group_id) FROM magento_catalogpermissions_index_product i
			JOIN store s ON s.store_id = i.store_id JOIN customer_group g ON g.customer_group_id = i.customer_group_id`),
	}
	for feed, n := range want {
		if len(got[feed]) != n || n == 0 {
			t.Errorf("%s: %d items, want %d (> 0)", feed, len(got[feed]), n)
		}
		seen := map[string]bool{}
		for _, it := range got[feed] {
			if seen[it.ID] {
				t.Errorf("%s: duplicate item %s", feed, it.ID)
			}
			seen[it.ID] = true
		}
	}
	// Same items whatever the batching.
	again, err := fullBuild(ctx, reg, 1000, 1)
	if err != nil {
		t.Fatal(err)
	}
	for feed := range want {
		a, b := map[string]string{}, map[string]string{}
		for _, it := range got[feed] {
			a[it.ID] = string(it.Data)
		}
		for _, it := range again[feed] {
			b[it.ID] = string(it.Data)
		}
		if !reflect.DeepEqual(a, b) {
			t.Errorf("%s: build depends on batching", feed)
		}
	}
}

// BenchmarkFullBuild measures a full build of all four feeds against a
// mariadb-dump of the tables the feeds read, in the same run on the same
// server. The profile is FEEDCDC_FEEDS_BENCH_PROFILE (default "small"; use
// "medium" for the figures in docs/benchmarks.md), workers
// FEEDCDC_FEEDS_BENCH_WORKERS (default 4), keys per Build
// FEEDCDC_FEEDS_BENCH_BATCH (default 1000):
//
//	FEEDCDC_FEEDS_BENCH_PROFILE=medium go test -run '^$' -bench FullBuild -benchtime 1x ./feeds
func BenchmarkFullBuild(b *testing.B) {
	name := envOr("FEEDCDC_FEEDS_BENCH_PROFILE", "small")
	p, err := catalog.ProfileByName(name)
	if err != nil {
		b.Fatal(err)
	}
	workers, _ := strconv.Atoi(envOr("FEEDCDC_FEEDS_BENCH_WORKERS", "4"))
	batch, _ := strconv.Atoi(envOr("FEEDCDC_FEEDS_BENCH_BATCH", "1000"))
	db, admin, reg := loadCatalog(b, p, 1000)
	ctx := context.Background()
	var tables []string
	rows := 0
	for _, t := range reg.Tables() {
		var n int
		if err := admin.QueryRow("SELECT COUNT(*) FROM " + t).Scan(&n); err != nil {
			continue // a watched table this schema does not have
		}
		tables = append(tables, t)
		rows += n
	}
	b.ResetTimer()
	var items map[string]int
	took := map[string]time.Duration{}
	var buildDur, dumpDur time.Duration
	var buildCPU, buildSrvCPU, dumpCPU, dumpSrvCPU time.Duration
	var dumpBytes int64
	for i := 0; i < b.N; i++ {
		start, cpu0, srv0 := time.Now(), selfCPU(), serverCPU()
		items = map[string]int{}
		err = buildAllTimed(ctx, reg, batch, workers, func(feed string, its []Item) { items[feed] += len(its) }, took)
		if err != nil {
			b.Fatal(err)
		}
		buildDur += time.Since(start)
		buildCPU += selfCPU() - cpu0
		buildSrvCPU += serverCPU() - srv0

		start, srv0 = time.Now(), serverCPU()
		args := []string{"--protocol=tcp", "-h", srv.Host, "-P", strconv.Itoa(srv.Port), "-u", srv.AdminUser}
		if srv.AdminPassword != "" {
			args = append(args, "-p"+srv.AdminPassword)
		}
		args = append(args, "--single-transaction", "--skip-lock-tables", db)
		cmd := exec.CommandContext(ctx, "mariadb-dump", append(args, tables...)...)
		cw := &countWriter{}
		cmd.Stdout = cw
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			b.Fatalf("mariadb-dump: %v", err)
		}
		dumpDur += time.Since(start)
		dumpSrvCPU += serverCPU() - srv0
		dumpCPU += cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
		dumpBytes += cw.n
	}
	b.StopTimer()
	total := 0
	for _, n := range items {
		total += n
	}
	n := float64(b.N)
	itemsPerSec := float64(total) * n / buildDur.Seconds()
	productsPerSec := float64(items["products"]) * n / took["products"].Seconds()
	rowsPerSec := float64(rows) * n / dumpDur.Seconds()
	b.ReportMetric(itemsPerSec, "items/s")
	b.ReportMetric(productsPerSec, "product-items/s")
	b.ReportMetric(rowsPerSec, "dump-rows/s")
	b.ReportMetric(buildDur.Seconds()/dumpDur.Seconds(), "build/dump-time")
	b.Logf("profile %s, %d workers, %d keys per Build", p.Name, workers, batch)
	for _, f := range reg.Feeds() {
		d := took[f.Name()] / time.Duration(b.N)
		b.Logf("  %-18s %8d items in %8s = %6.0f items/s", f.Name(), items[f.Name()], d.Round(time.Millisecond), float64(items[f.Name()])/d.Seconds())
	}
	b.Logf("full build: %d items in %s = %.0f items/s (products %.0f items/s)", total, (buildDur / time.Duration(b.N)).Round(time.Millisecond), itemsPerSec, productsPerSec)
	b.Logf("mariadb-dump of the %d source tables: %d rows, %d bytes in %s = %.0f rows/s", len(tables), rows, dumpBytes/int64(b.N), (dumpDur / time.Duration(b.N)).Round(time.Millisecond), rowsPerSec)
	b.Logf("build time / dump time = %.2f", buildDur.Seconds()/dumpDur.Seconds())
	if srv.PID() > 0 {
		b.Logf("CPU: build %s client + %s server = %.0f items per CPU-second; dump %s client + %s server = %.0f rows per CPU-second",
			buildCPU/time.Duration(b.N), buildSrvCPU/time.Duration(b.N), float64(total)*n/(buildCPU+buildSrvCPU).Seconds(),
			dumpCPU/time.Duration(b.N), dumpSrvCPU/time.Duration(b.N), float64(rows)*n/(dumpCPU+dumpSrvCPU).Seconds())
	}
}

// selfCPU is this process's user+system CPU time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// serverCPU is the private mariadbd's user+system CPU time (0 for an
// external server).
func serverCPU() time.Duration {
	pid := srv.PID()
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the ")" of the command name; utime and stime are the
	// 14th and 15th fields of the whole line, in clock ticks (100 Hz).
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// BenchmarkBuildOneKey measures Build of a single entity per feed (the
// partial-sync case: one changed product) on the small profile.
//
//	go test -run '^$' -bench BuildOneKey ./feeds
func BenchmarkBuildOneKey(b *testing.B) {
	ctx := context.Background()
	_, _, reg := loadCatalog(b, catalog.Small(), 1000)
	for _, f := range reg.Feeds() {
		var keys []string
		if err := f.Scan(ctx, func(k []string) error { keys = append(keys, k...); return nil }); err != nil {
			b.Fatal(err)
		}
		b.Run(f.Name(), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if _, err := f.Build(ctx, keys[i%len(keys):i%len(keys)+1]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

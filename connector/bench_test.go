package connector

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/feedcdc/feedcdc/change"
	"github.com/feedcdc/feedcdc/config"
	"github.com/feedcdc/feedcdc/connector/binlog"
	"github.com/feedcdc/feedcdc/test/catalog"
	"github.com/feedcdc/feedcdc/test/kafkatest"
	"github.com/feedcdc/feedcdc/test/mysqltest"
)

// The benchmarks in this file are heavy (a private mariadbd with a
// 2M-row-change binlog, a kfake broker holding every record), so they run
// only when asked for:
//
//	go test -run '^$' -bench RawStreamThroughput -benchtime 1x -v -timeout 60m ./connector
//
// Knobs (environment):
//
//	FEEDCDC_BENCH_ROWS    rows of the table (default 1000000): segment A
//	                      inserts them in 1000-row transactions, segment B
//	                      updates all of them in ONE transaction.
//	FEEDCDC_BENCH_ROUNDS  measured rounds, variants interleaved (default 2).
//	FEEDCDC_BENCH_GOGC    GOGC of the connector process (default: unset).
//	FEEDCDC_BENCH_COMPRESSION  the Kafka sink's compression (default none).
//	FEEDCDC_BENCH_CPUPROFILE  path prefix: CPU profile of each connector
//	                      process (<prefix>.<segment>.<server id>).
//	FEEDCDC_BENCH_VARIANTS  name=binary,... : connector test binaries of
//	                      other builds, run interleaved (before/after).
//	FEEDCDC_BENCH_INPROC  1: run the connector in this process (for
//	                      -cpuprofile); its RSS is then not measured.
//
// The connector runs as a child process (this test binary re-executed with
// FEEDCDC_CRASH_CHILD, see crash_test.go) so that its peak RSS (VmHWM) and
// CPU time are its own: kfake, which keeps every record in memory, stays in
// the parent.

// init starts a CPU profile in a connector child process when the parent
// asks for one (FEEDCDC_BENCH_CPUPROFILE); the parent stops it with SIGUSR1
// once the run is measured, before it stops the child.
func init() {
	path := os.Getenv("FEEDCDC_BENCH_CHILD_CPUPROFILE")
	if path == "" || os.Getenv("FEEDCDC_CRASH_CHILD") == "" {
		return
	}
	f, err := os.Create(path)
	if err != nil {
		return
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		return
	}
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGUSR1)
	go func() {
		<-ch
		pprof.StopCPUProfile()
		f.Close()
		_ = os.WriteFile(path+".done", nil, 0o600)
	}()
}

// benchEnv is the generated binlog: segment A (inserts in 1000-row
// transactions) and segment B (one UPDATE transaction of every row).
type benchEnv struct {
	srv      *mysqltest.Server
	db       string
	rows     int
	segments []benchSegment
}

type benchSegment struct {
	name       string
	from       change.Position
	rowChanges int
}

func benchRows() int {
	if v, err := strconv.Atoi(os.Getenv("FEEDCDC_BENCH_ROWS")); err == nil && v > 0 {
		return v
	}
	return 1_000_000
}

func newBenchEnv(t testing.TB) *benchEnv {
	t.Helper()
	ctx := context.Background()
	s, err := mysqltest.Start(ctx, mysqltest.Options{Args: []string{"--max-binlog-size=1G", "--innodb-buffer-pool-size=512M",
		"--binlog-annotate-row-events=OFF"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop() })
	e := &benchEnv{srv: s, rows: benchRows()}
	e.db = s.NewDatabase(t, "bench")
	admin := s.Admin(t, e.db)
	if _, err := admin.Exec(`CREATE TABLE products (id BIGINT PRIMARY KEY, sku VARCHAR(64), name VARCHAR(255),
		price DECIMAL(12,4), qty INT, updated_at DATETIME) DEFAULT CHARSET=utf8mb4`); err != nil {
		t.Fatal(err)
	}
	bc := binlog.Config{Host: s.Host, Port: s.Port, User: s.CDCUser, Password: s.CDCPassword, ServerID: 1}
	cur := func() change.Position {
		p, err := binlog.CurrentPosition(ctx, bc)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	gen := time.Now()
	p0 := cur()
	for i := 0; i < e.rows; i += 1000 {
		if _, err := admin.Exec(fmt.Sprintf(`INSERT INTO products SELECT seq, CONCAT('SKU-', seq), CONCAT('Product name number ', seq, ' with some text'),
			seq / 100, seq %% 1000, '2024-01-02 03:04:05' FROM seq_%d_to_%d`, i+1, min(i+1000, e.rows))); err != nil {
			t.Fatal(err)
		}
	}
	p1 := cur()
	if _, err := admin.Exec("UPDATE products SET price = price + 1.0001, qty = qty + 1, updated_at = updated_at + INTERVAL 1 DAY"); err != nil {
		t.Fatal(err)
	}
	p2 := cur()
	if p0.File != p2.File {
		t.Fatalf("workload spans binlog files %s..%s", p0.File, p2.File)
	}
	st, _ := os.Stat(filepath.Join(s.Dir, "data", p2.File))
	t.Logf("generated %d inserts (1000-row transactions) + one %d-row UPDATE in %s; binlog %s %d..%d..%d (%d bytes on disk)",
		e.rows, e.rows, time.Since(gen).Round(time.Millisecond), p0.File, p0.Pos, p1.Pos, p2.Pos, st.Size())
	e.segments = []benchSegment{
		{name: fmt.Sprintf("A: %dk inserts, 1000-row transactions", e.rows/1000), from: p0, rowChanges: e.rows},
		{name: fmt.Sprintf("B: one %dk-row UPDATE transaction", e.rows/1000), from: p1, rowChanges: e.rows},
	}
	return e
}

// decodeOnly is the baseline: go-mysql's BinlogSyncer from the segment's
// position, typed decoding (ParseTime, UseDecimal), CRC32 verified, rows
// counted and dropped.
func (e *benchEnv) decodeOnly(t testing.TB, seg benchSegment, serverID uint32) (wall, cpu time.Duration) {
	n := 0
	done := make(chan struct{})
	s := e.srv
	syncer := replication.NewBinlogSyncer(replication.BinlogSyncerConfig{ServerID: serverID, Flavor: "mariadb", Host: s.Host, Port: uint16(s.Port),
		User: s.CDCUser, Password: s.CDCPassword, ParseTime: true, UseDecimal: true, VerifyChecksum: true, EventCacheCount: 1,
		Logger: quietSlog(),
		SynchronousEventHandler: benchHandler(func(ev *replication.BinlogEvent) error {
			re, ok := ev.Event.(*replication.RowsEvent)
			if !ok || string(re.Table.Table) != "products" {
				return nil
			}
			if ev.Header.EventType == replication.UPDATE_ROWS_EVENTv1 || ev.Header.EventType == replication.UPDATE_ROWS_EVENTv2 {
				n += len(re.Rows) / 2
			} else {
				n += len(re.Rows)
			}
			if n == seg.rowChanges {
				close(done)
			}
			return nil
		})})
	defer syncer.Close()
	t0, cpu0 := time.Now(), procCPU(os.Getpid())
	if _, err := syncer.StartSync(mysql.Position{Name: seg.from.File, Pos: seg.from.Pos}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Minute):
		t.Fatalf("decode-only: %d of %d row changes after 10 minutes", n, seg.rowChanges)
	}
	return time.Since(t0), procCPU(os.Getpid()) - cpu0
}

type benchHandler func(*replication.BinlogEvent) error

func (f benchHandler) HandleEvent(e *replication.BinlogEvent) error { return f(e) }

// connectorRun is one measured run of the raw stream.
type connectorRun struct {
	wall, firstRecord time.Duration
	cpu               time.Duration // the connector process (or this process in-process)
	brokerCPU         time.Duration // this process (kfake) while the child ran
	serverCPU         time.Duration // mariadbd
	peakRSSMiB        int           // VmHWM of the connector process (-1 in-process)
}

// rawStream runs the connector (raw stream of the products table, no feeds)
// from the segment's position to a fresh kfake, until every row change of
// the segment is acknowledged by the broker (the topic's end offset).
func (e *benchEnv) rawStream(t testing.TB, seg benchSegment, serverID uint32, gogc, binary string) connectorRun {
	ctx := context.Background()
	kc, err := kafkatest.New(ctx, kafkatest.InMemory())
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	topic := "bench." + e.db + ".products"
	if err := kc.CreateTopic(ctx, topic, 1, map[string]string{"max.message.bytes": "8388608"}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cc := connectorYAML{Name: "bench", Server: e.srv, ServerID: int64(serverID), StatePath: filepath.Join(dir, "state.db"), Database: e.db, Feeds: noFeeds,
		Source:   []string{fmt.Sprintf("start_position: \"%s:%d\"", seg.from.File, seg.from.Pos), fmt.Sprintf("include_tables: [\"%s.products\"]", e.db)},
		Sections: "raw:\n  enabled: true\n  tombstones: false\n" + kafkaSink(kc.Addr(), "bench", "compression: "+benchCompression()) + "log: {format: json, level: warn}\n"}
	cfgPath := cc.write(t, dir)
	adm, err := kgo.NewClient(kc.ClientOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	admin := kadm.NewClient(adm)
	endOffset := func() int64 {
		offs, err := admin.ListEndOffsets(ctx, topic)
		if err != nil {
			return 0
		}
		o, _ := offs.Lookup(topic, 0)
		return o.Offset
	}

	var run connectorRun
	inproc := os.Getenv("FEEDCDC_BENCH_INPROC") == "1"
	serverCPU0 := procCPU(e.srv.PID())
	selfCPU0 := procCPU(os.Getpid())
	var stop func()
	var childPID int
	t0 := time.Now()
	if inproc {
		cfg, err := config.Load(cfgPath, append(os.Environ(), "BENCH_SOURCE_PASSWORD="+e.srv.CDCPassword))
		if err != nil {
			t.Fatal(err)
		}
		c, err := Open(ctx, cfg, OpenOptions{Logger: quietSlog()})
		if err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- c.Run(rctx, RunOptions{NoSchedule: true}) }()
		stop = func() {
			cancel()
			if err := <-done; err != nil && rctx.Err() == nil {
				t.Errorf("connector: %v", err)
			}
			c.Close()
		}
	} else {
		cmd := exec.Command(binary, "-test.run=^$")
		cmd.Env = append(os.Environ(), "FEEDCDC_CRASH_CHILD="+cfgPath, "BENCH_SOURCE_PASSWORD="+e.srv.CDCPassword)
		if gogc != "" {
			cmd.Env = append(cmd.Env, "GOGC="+gogc)
		}
		prof := ""
		if p := os.Getenv("FEEDCDC_BENCH_CPUPROFILE"); p != "" {
			prof = fmt.Sprintf("%s.%s.%d", p, seg.name[:1], serverID)
			cmd.Env = append(cmd.Env, "FEEDCDC_BENCH_CHILD_CPUPROFILE="+prof)
		}
		cmd.Stderr = os.Stderr
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		childPID = cmd.Process.Pid
		stop = func() {
			if prof != "" {
				_ = cmd.Process.Signal(syscall.SIGUSR1)
				for i := 0; i < 100; i++ {
					if _, err := os.Stat(prof + ".done"); err == nil {
						t.Logf("connector CPU profile: %s", prof)
						break
					}
					time.Sleep(50 * time.Millisecond)
				}
			}
			_ = cmd.Process.Signal(syscall.SIGTERM)
			if err := cmd.Wait(); err != nil {
				t.Errorf("connector process: %v", err)
			}
		}
	}
	deadline := t0.Add(10 * time.Minute)
	for {
		off := endOffset()
		if off > 0 && run.firstRecord == 0 {
			run.firstRecord = time.Since(t0)
		}
		if off >= int64(seg.rowChanges) {
			run.wall = time.Since(t0)
			break
		}
		if time.Now().After(deadline) {
			stop()
			t.Fatalf("raw stream: %d of %d records after 10 minutes", off, seg.rowChanges)
		}
		time.Sleep(10 * time.Millisecond)
	}
	run.serverCPU = procCPU(e.srv.PID()) - serverCPU0
	if inproc {
		run.cpu = procCPU(os.Getpid()) - selfCPU0
		run.peakRSSMiB = -1
	} else {
		run.cpu = procCPU(childPID)
		run.brokerCPU = procCPU(os.Getpid()) - selfCPU0
		run.peakRSSMiB = vmHWM(childPID)
	}
	stop()
	// Segment A's connector reads on into segment B until it is stopped,
	// so only the lower bound is exact here.
	if off := endOffset(); off < int64(seg.rowChanges) {
		t.Fatalf("raw stream: %d records in Kafka, want at least %d", off, seg.rowChanges)
	}
	return run
}

// benchCompression is the Kafka sink's compression (FEEDCDC_BENCH_COMPRESSION,
// default none, the sink's default).
func benchCompression() string {
	if v := os.Getenv("FEEDCDC_BENCH_COMPRESSION"); v != "" {
		return v
	}
	return "none"
}

// quietSlog logs the benchmarks' connectors at WARN, or at the level
// FEEDCDC_BENCH_LOG_LEVEL names (e.g. info, to see the feeds' fallbacks to
// a rebuild of every entity).
func quietSlog() *slog.Logger {
	level := slog.LevelWarn
	if v := os.Getenv("FEEDCDC_BENCH_LOG_LEVEL"); v != "" {
		if err := level.UnmarshalText([]byte(v)); err != nil {
			panic("FEEDCDC_BENCH_LOG_LEVEL: " + err.Error())
		}
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

// procCPU is the user+system CPU time of a process (/proc/PID/stat).
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	f := strings.Fields(s[i+2:])
	// fields after ")": state(0) ... utime(11) stime(12)
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ
}

// vmHWM is the peak resident set size of a process in MiB.
func vmHWM(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.Atoi(f[1])
			return kb / 1024
		}
	}
	return -1
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	return strings.Join(f[:3], " ")
}

// BenchmarkRawStreamThroughput measures the raw change stream end to end
// (binlog → decode → envelope JSON → kafka sink → kfake, acks=all) against
// go-mysql's decode-only rate of the same binlog segment, interleaved in
// the same run, and prints the table recorded in docs/benchmarks.md.
func BenchmarkRawStreamThroughput(b *testing.B) {
	for range b.N {
		rawStreamThroughput(b)
	}
}

func rawStreamThroughput(t testing.TB) {
	rounds := 2
	if v, err := strconv.Atoi(os.Getenv("FEEDCDC_BENCH_ROUNDS")); err == nil && v > 0 {
		rounds = v
	}
	gogc := os.Getenv("FEEDCDC_BENCH_GOGC")
	// Connector variants: this binary, or test binaries of other builds
	// (FEEDCDC_BENCH_VARIANTS=name=/path/connector.test,...) for a
	// before/after comparison in one run.
	type variant struct{ name, binary string }
	variants := []variant{{"this build", os.Args[0]}}
	if v := os.Getenv("FEEDCDC_BENCH_VARIANTS"); v != "" {
		variants = nil
		for _, kv := range strings.Split(v, ",") {
			name, bin, ok := strings.Cut(kv, "=")
			if !ok {
				t.Fatalf("FEEDCDC_BENCH_VARIANTS: %q is not name=binary", kv)
			}
			variants = append(variants, variant{name, bin})
		}
	}
	e := newBenchEnv(t)
	type result struct {
		seg           benchSegment
		variant       string
		base, baseCPU []time.Duration
		runs          []connectorRun
	}
	var results []*result
	sid := uint32(7_000_000 + time.Now().UnixNano()%100_000)
	for round := 0; round < rounds; round++ {
		k := 0
		for _, seg := range e.segments {
			runtime.GC()
			sid++
			b, bcpu := e.decodeOnly(t, seg, sid)
			for _, v := range variants {
				runtime.GC()
				sid++
				r := e.rawStream(t, seg, sid, gogc, v.binary)
				if round == 0 {
					results = append(results, &result{seg: seg, variant: v.name})
				}
				res := results[k]
				k++
				res.base = append(res.base, b)
				res.baseCPU = append(res.baseCPU, bcpu)
				res.runs = append(res.runs, r)
				t.Logf("round %d %s [%s]: decode-only %s (%.0f/s, CPU %s); raw stream %s (%.0f/s, first record after %s), connector CPU %s, kfake CPU %s, mariadbd CPU %s, peak RSS %d MiB; load %s",
					round+1, seg.name, v.name, b.Round(time.Millisecond), float64(seg.rowChanges)/b.Seconds(), bcpu, r.wall.Round(time.Millisecond),
					float64(seg.rowChanges)/r.wall.Seconds(), r.firstRecord.Round(time.Millisecond), r.cpu, r.brokerCPU, r.serverCPU, r.peakRSSMiB, loadAvg())
			}
		}
	}
	median := func(ds []time.Duration) time.Duration {
		s := append([]time.Duration(nil), ds...)
		sort.Slice(s, func(a, b int) bool { return s[a] < s[b] })
		return s[(len(s)-1)/2]
	}
	var b strings.Builder
	fmt.Fprintf(&b, "GOGC of the connector: %q; compression %s; GOMAXPROCS %d; load average at the end: %s\n\n", gogc, benchCompression(), runtime.GOMAXPROCS(0), loadAvg())
	fmt.Fprintf(&b, "| segment | connector | decode-only row changes/s | raw stream row changes/s | ratio | decode-only CPU µs/change | connector CPU µs/change | kfake CPU µs/change | CPU ratio | decode-only best | raw stream best | best ratio | connector peak RSS |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range results {
		seg := r.seg
		walls := make([]time.Duration, len(r.runs))
		cpus := make([]time.Duration, len(r.runs))
		kcpus := make([]time.Duration, len(r.runs))
		rss := 0
		for j, x := range r.runs {
			walls[j], cpus[j], kcpus[j] = x.wall, x.cpu, x.brokerCPU
			rss = max(rss, x.peakRSSMiB)
		}
		mb, mr := median(r.base), median(walls)
		sb := append([]time.Duration(nil), r.base...)
		sort.Slice(sb, func(a, b int) bool { return sb[a] < sb[b] })
		sw := append([]time.Duration(nil), walls...)
		sort.Slice(sw, func(a, b int) bool { return sw[a] < sw[b] })
		n := float64(seg.rowChanges)
		bc, cc := median(r.baseCPU), median(cpus)
		fmt.Fprintf(&b, "| %s | %s | %.0f | %.0f | %.2f | %.2f | %.2f | %.2f | %.2f | %.0f | %.0f | %.2f | %d MiB |\n", seg.name, r.variant, n/mb.Seconds(), n/mr.Seconds(), mb.Seconds()/mr.Seconds(),
			float64(bc.Microseconds())/n, float64(cc.Microseconds())/n, float64(median(kcpus).Microseconds())/n, bc.Seconds()/cc.Seconds(), n/sb[0].Seconds(), n/sw[0].Seconds(), sb[0].Seconds()/sw[0].Seconds(), rss)
	}
	t.Log("\n" + b.String())
}

// BenchmarkPartialSyncLatency measures commit → item-in-Kafka latency of the
// products feed while a steady workload of catalog changes runs:
//
//	go test -run '^$' -bench PartialSyncLatency -benchtime 1x -v -timeout 30m ./connector
//
// Setup: the small catalog profile loaded into the package's mariadbd, the
// connector (every feed enabled, default batching: batch_window 100 ms,
// batch_size 500; Kafka linger 0, acks=all) streaming to an in-process
// kfake after its first-start full sync. Load: FEEDCDC_BENCH_WORKLOADS
// (default 8, on their own connections) catalog workloads of every change kind, together paced at
// FEEDCDC_BENCH_RATE changes/s (default 1000), for FEEDCDC_BENCH_SECONDS
// (default 30); FEEDCDC_BENCH_LINGER sets the Kafka sink's linger (default
// 0s, the sink's default). Probe: 20 times a second a probe sets the store-0 price of
// one of 50 products to 900000+seq (no workload price is that high),
// remembering the time just before the statement (autocommit) was sent;
// a consumer reads the products topic as records arrive. Latency of a
// probe = (its item's arrival at the consumer, or the record's producer
// timestamp) − that time, so it is an upper bound by the statement's own
// round trip. Probes whose item never arrives (the workload deleted or
// unassigned the product, or overwrote the price first) are counted.
// regularPrice reads prices.regularPrice of a products item (false when it
// is null or missing).
func regularPrice(item []byte) (float64, bool) {
	const field = `"regularPrice":`
	i := bytes.Index(item, []byte(field))
	if i < 0 {
		return 0, false
	}
	rest := item[i+len(field):]
	end := bytes.IndexAny(rest, ",}")
	if end < 0 {
		return 0, false
	}
	v, err := strconv.ParseFloat(string(bytes.TrimSpace(rest[:end])), 64)
	return v, err == nil
}

func BenchmarkPartialSyncLatency(b *testing.B) {
	for range b.N {
		partialSyncLatency(b)
	}
}

func partialSyncLatency(t testing.TB) {
	envInt := func(k string, def int) int {
		if v, err := strconv.Atoi(os.Getenv(k)); err == nil && v > 0 {
			return v
		}
		return def
	}
	workers, rate, secs := envInt("FEEDCDC_BENCH_WORKLOADS", 8), envInt("FEEDCDC_BENCH_RATE", 1000), envInt("FEEDCDC_BENCH_SECONDS", 30)
	linger := "0s" // the sink's default
	if v := os.Getenv("FEEDCDC_BENCH_LINGER"); v != "" {
		linger = v
	}
	ctx := context.Background()
	// FEEDCDC_BENCH_DB: a catalog already loaded on the server of
	// FEEDCDC_TEST_MYSQL_DSN (e.g. the large profile); FEEDCDC_BENCH_STATE:
	// a state file of a connector that already synced it (copied, e.g. kept
	// by go run ./test/cmd/firststart --keep), so the measurement starts
	// from a full state at scale instead of a first start;
	// FEEDCDC_BENCH_STATE_SAVE=1 writes the run's final state back to it.
	db := os.Getenv("FEEDCDC_BENCH_DB")
	if db == "" {
		db = srv.NewDatabase(t, "lat")
	}
	admin := srv.Admin(t, db)
	admin.SetMaxOpenConns(workers + 4)
	if os.Getenv("FEEDCDC_BENCH_DB") == "" {
		lst, err := catalog.Load(ctx, admin, catalog.Small(), 1)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("loaded small profile: %d rows in %s", lst.Rows, lst.Duration.Round(time.Millisecond))
	}
	var probeIDs []uint32
	rows, err := admin.Query(`SELECT DISTINCT e.entity_id FROM catalog_product_entity e JOIN catalog_product_website w ON w.product_id = e.entity_id
		WHERE e.type_id = 'simple' AND NOT EXISTS (SELECT 1 FROM catalog_product_entity_decimal d
		WHERE d.entity_id = e.entity_id AND d.attribute_id = ? AND d.store_id > 0) ORDER BY e.entity_id LIMIT 50`, catalog.AttrPrice)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id uint32
		rows.Scan(&id)
		probeIDs = append(probeIDs, id)
	}
	rows.Close()
	if len(probeIDs) == 0 {
		t.Fatal("no simple product assigned to a website")
	}

	kc, err := kafkatest.New(ctx, kafkatest.InMemory())
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	dir := t.TempDir()
	if from := os.Getenv("FEEDCDC_BENCH_STATE"); from != "" {
		if err := copyFile(from, filepath.Join(dir, "state.db")); err != nil {
			t.Fatal(err)
		}
	}
	cc := connectorYAML{Name: "latency", StatePath: filepath.Join(dir, "state.db"), Database: db,
		Sections: unthrottledResync + kafkaSink(kc.Addr(), "lat", "linger: "+linger)}
	cfg := cc.load(t)
	c := openConnector(t, cfg, OpenOptions{Logger: quietSlog()})
	runErr, stopRun := startRun(t, c, RunOptions{NoSchedule: true})
	syncStart := time.Now()
	for _, f := range cfg.EnabledFeeds() {
		for {
			pr, ok, _ := c.Store.Progress(ctx, f)
			if ok && pr.Finished() {
				break
			}
			select {
			case err := <-runErr:
				t.Fatalf("connector stopped: %v", err)
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	t.Logf("first-start full sync of %v done in %s", cfg.EnabledFeeds(), time.Since(syncStart).Round(time.Millisecond))
	waitCaughtUpWithin(t, c, admin, runErr, 30*time.Minute) // a copied state may start behind the source
	// The catch-up of a copied state can leave deferred keys (a big
	// transaction, a rebuild of a deleted configurable's products): the
	// load starts once they are exported, so that it measures the stream.
	for settle := time.Now(); c.Pipeline.DeferredKeys() > 0; time.Sleep(100 * time.Millisecond) {
		if time.Since(settle) > 30*time.Minute {
			t.Fatalf("%d deferred keys left 30 minutes after the catch-up", c.Pipeline.DeferredKeys())
		}
	}
	t.Logf("caught up with the source %s after the start", time.Since(syncStart).Round(time.Millisecond))

	// Probe values are 900000 + probeBase + seq, with a base of this run's
	// own, so items of an earlier run's probes (still in the catalog of a
	// kept database, and sent again while a copied state catches up) are
	// not taken for this run's.
	probeBase := int(time.Now().Unix()%100000) * 1000
	// The consumer: every products record as it arrives.
	topic := "lat.products"
	type arrival struct {
		seq       int
		at, stamp time.Time
	}
	arrivals := make(chan arrival, 1<<16)
	// It reads from the topic's end as of now: what the catch-up sent
	// before the load would otherwise be read first, and a backlog of a
	// copied state's catch-up once delayed every probe's receipt by 25 s.
	from, err := topicEnds(ctx, kc.ClientOptions(), topic)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(append(kc.ClientOptions(), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: from}),
		kgo.FetchMaxWait(50*time.Millisecond))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	cctx, ccancel := context.WithCancel(ctx)
	consumerDone := make(chan struct{})
	go func() {
		defer close(consumerDone)
		for cctx.Err() == nil {
			fs := cl.PollFetches(cctx)
			now := time.Now()
			fs.EachRecord(func(r *kgo.Record) {
				// The price is read where the products encoder writes it
				// (prices.regularPrice, a JSON number or null): decoding
				// every item of the stream cost the benchmark's process
				// about 5 % of its CPU, which the connector then lacked.
				price, ok := regularPrice(r.Value)
				if !ok || price < float64(900000+probeBase) {
					return
				}
				arrivals <- arrival{seq: int(price) - 900000 - probeBase, at: now, stamp: r.Timestamp}
			})
		}
	}()

	// Load and probes.
	// The workloads stop at the end of the period whether or not they
	// reached their paced count (the achieved rate is reported).
	lctx, lcancel := context.WithTimeout(ctx, time.Duration(secs)*time.Second)
	defer lcancel()
	type wres struct {
		st  catalog.WorkloadStats
		err error
	}
	wdone := make(chan wres, workers)
	per := float64(rate) / float64(workers)
	// FEEDCDC_BENCH_EXCLUDE: change kinds left out of the mix, e.g.
	// attribute_label,option_label (admin edits of attribute metadata that
	// rebuild every product using the attribute: thousands on the large
	// profile).
	var weights map[catalog.Kind]int
	if ex := os.Getenv("FEEDCDC_BENCH_EXCLUDE"); ex != "" {
		weights = catalog.DefaultWeights()
		for _, k := range strings.Split(ex, ",") {
			if _, ok := weights[catalog.Kind(k)]; !ok {
				t.Fatalf("FEEDCDC_BENCH_EXCLUDE: %q is not a workload kind", k)
			}
			delete(weights, catalog.Kind(k))
		}
	}
	for w := 0; w < workers; w++ {
		// The probe products are the probe's own: a workload price change
		// or delete would hide a probe value until the product's next probe.
		wl := catalog.NewWorkload(admin, int64(100+w), catalog.WorkloadOptions{Reserved: probeIDs, Weights: weights})
		go func() {
			st, err := wl.Run(lctx, int(per*float64(secs)), per)
			wdone <- wres{st, err}
		}()
	}
	sent := map[int]time.Time{}
	var probeErrs int
	probeStart := time.Now()
	for seq := 1; time.Since(probeStart) < time.Duration(secs)*time.Second; seq++ {
		id := probeIDs[seq%len(probeIDs)]
		t0 := time.Now()
		_, err := admin.ExecContext(ctx, `INSERT INTO catalog_product_entity_decimal (attribute_id, store_id, entity_id, value) VALUES (?, 0, ?, ?)
			ON DUPLICATE KEY UPDATE value = VALUES(value)`, catalog.AttrPrice, id, 900000+probeBase+seq)
		if err != nil {
			if probeErrs == 0 {
				t.Logf("first probe error (the probe is skipped): %v", err)
			}
			probeErrs++ // e.g. the workload deleted the product
		} else {
			sent[seq] = t0
		}
		time.Sleep(time.Until(probeStart.Add(time.Duration(seq) * 50 * time.Millisecond)))
	}
	var total catalog.WorkloadStats
	var changes int
	for w := 0; w < workers; w++ {
		r := <-wdone
		if r.err != nil && lctx.Err() == nil {
			// A workload that stopped early (e.g. a deadlock it does not
			// retry) only lowers the achieved rate, which is reported.
			t.Logf("a workload stopped early: %v", r.err)
		}
		changes += r.st.Transactions
		total.Statements += r.st.Statements
		total.RowsAffected += r.st.RowsAffected
		total.Duration = max(total.Duration, r.st.Duration)
	}
	loadDur := time.Since(probeStart)
	waitCaughtUp(t, c, admin, runErr)
	if err := c.Pipeline.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	ccancel()
	<-consumerDone
	close(arrivals)
	// Items are rebuilt from the database's current state, so a probe
	// overwritten by a later probe of the same product before its batch
	// was built shows up as that later value. A probe is visible in Kafka
	// once an item of its product with its value or a later one arrives.
	var all []arrival
	for a := range arrivals {
		all = append(all, a)
	}
	var consume, stamp []time.Duration
	type slow struct {
		at, lat time.Duration
	}
	var slowest []slow // when the slowest probes were sent: a pause, or spread out
	for seq, t0 := range sent {
		var first *arrival
		for i := range all {
			a := &all[i]
			if a.seq >= seq && a.seq%len(probeIDs) == seq%len(probeIDs) && (first == nil || a.at.Before(first.at)) {
				first = a
			}
		}
		if first != nil {
			consume = append(consume, first.at.Sub(t0))
			stamp = append(stamp, first.stamp.Sub(t0))
			slowest = append(slowest, slow{t0.Sub(probeStart), first.at.Sub(t0)})
		}
	}
	sort.Slice(slowest, func(a, b int) bool { return slowest[a].lat > slowest[b].lat })
	var worst strings.Builder
	for _, s := range slowest[:min(len(slowest), max(1, len(slowest)/100))] {
		fmt.Fprintf(&worst, " %s at %s;", s.lat.Round(time.Millisecond), s.at.Round(100*time.Millisecond))
	}
	pct := func(ds []time.Duration, p float64) time.Duration {
		if len(ds) == 0 {
			return 0
		}
		s := append([]time.Duration(nil), ds...)
		sort.Slice(s, func(a, b int) bool { return s[a] < s[b] })
		return s[min(len(s)-1, int(p*float64(len(s))))]
	}
	t.Logf("\nkafka linger %s; load: %d workload transactions (%d statements, %d rows) + %d probes in %s = %.0f changes/s (target %d/s); probe errors %d; load average %s\n"+
		"| latency commit → products item | p50 | p90 | p99 | max | probes seen |\n|---|---|---|---|---|---|\n"+
		"| consumer receipt | %s | %s | %s | %s | %d of %d |\n| producer timestamp | %s | %s | %s | %s | |\n"+
		"the slowest 1%% of the probes (latency at send time, from the load's start):%s",
		linger, changes, total.Statements, total.RowsAffected, len(sent), loadDur.Round(time.Millisecond), float64(changes+len(sent))/loadDur.Seconds(), rate, probeErrs, loadAvg(),
		pct(consume, .5).Round(time.Millisecond), pct(consume, .9).Round(time.Millisecond), pct(consume, .99).Round(time.Millisecond), pct(consume, 1).Round(time.Millisecond), len(consume), len(sent),
		pct(stamp, .5).Round(time.Millisecond), pct(stamp, .9).Round(time.Millisecond), pct(stamp, .99).Round(time.Millisecond), pct(stamp, 1).Round(time.Millisecond), worst.String())
	if len(consume) < len(sent)/2 {
		t.Fatalf("only %d of %d probes reached Kafka", len(consume), len(sent))
	}
	if from := os.Getenv("FEEDCDC_BENCH_STATE"); from != "" && os.Getenv("FEEDCDC_BENCH_STATE_SAVE") == "1" {
		// The next run starts from this one's end, caught up, instead of
		// replaying every earlier run's changes.
		stopRun()
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		if err := copyFile(filepath.Join(dir, "state.db"), from+".new"); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(from+".new", from); err != nil {
			t.Fatal(err)
		}
	}
}

// copyFile copies the file from to the new file to.
func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// topicEnds returns the offset each partition of topic will give its next
// record.
func topicEnds(ctx context.Context, opts []kgo.Opt, topic string) (map[int32]kgo.Offset, error) {
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("end offsets of %s: %w", topic, err)
	}
	out := map[int32]kgo.Offset{}
	var perr error
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			perr = fmt.Errorf("end offset of %s[%d]: %w", topic, o.Partition, o.Err)
		}
		out[o.Partition] = kgo.NewOffset().At(o.Offset)
	})
	if perr == nil && len(out) == 0 {
		perr = fmt.Errorf("topic %s has no partitions", topic)
	}
	return out, perr
}

package binlog

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
	"github.com/shopspring/decimal"

	"github.com/feedcdc/feedcdc/change"
	"github.com/feedcdc/feedcdc/connector/raw"
	"github.com/feedcdc/feedcdc/test/mysqltest"
)

// countHandler counts changes and optionally encodes them as raw envelopes.
type countHandler struct {
	enc     *raw.Encoder
	buf     []byte
	changes int
	bytes   int
	target  int
	done    chan struct{}
}

func (h *countHandler) Change(_ context.Context, c *change.Change) error {
	h.changes++
	if h.enc != nil {
		_, k, v := h.enc.Encode(c, h.buf[:0])
		h.bytes += len(k) + len(v)
	}
	if h.target > 0 && h.changes == h.target {
		close(h.done)
	}
	return nil
}

func (h *countHandler) TxEnd(context.Context, change.TxEnd) error { return nil }

// BenchmarkThroughput measures decode and decode+encode rates of a 1M-row-change
// binlog (500k inserts in 1000-row transactions, then one 500k-row UPDATE
// transaction) against go-mysql's decode-only rate of the same file, all in
// one run, and prints the table recorded in docs/benchmarks.md. It is heavy,
// so it is a benchmark, run once:
//
//	go test -run '^$' -bench Throughput -benchtime 1x -v -timeout 30m ./connector/binlog
func BenchmarkThroughput(b *testing.B) {
	for range b.N {
		throughput(b)
	}
}

func throughput(t testing.TB) {
	const rows = 500_000
	s := startPrivate(t, mysqltest.Options{Args: []string{privateTmp(t), "--max-binlog-size=1G", "--innodb-buffer-pool-size=512M"}})
	db := s.NewDatabase(t, "bench")
	s.Exec(t, db, `CREATE TABLE products (id BIGINT PRIMARY KEY, sku VARCHAR(64), name VARCHAR(255),
		price DECIMAL(12,4), qty INT, updated_at DATETIME) DEFAULT CHARSET=utf8mb4`)
	cfg := sourceConfig(s, db+".products")
	start := changePositionCurrent(t, cfg)
	gen := time.Now()
	pool := s.Admin(t, db)
	for i := 0; i < rows; i += 1000 {
		mustExec(t, pool, fmt.Sprintf(`INSERT INTO products SELECT seq, CONCAT('SKU-', seq), CONCAT('Product name number ', seq, ' with some text'),
			seq / 100, seq %% 1000, '2024-01-02 03:04:05' FROM seq_%d_to_%d`, i+1, i+1000))
	}
	mustExec(t, pool, "UPDATE products SET price = price + 1.0001, qty = qty + 1, updated_at = updated_at + INTERVAL 1 DAY")
	end := changePositionCurrent(t, cfg)
	t.Logf("generated %d row changes in %s; binlog %s:%d .. %s:%d", 2*rows, time.Since(gen).Round(time.Millisecond), start.File, start.Pos, end.File, end.Pos)
	if start.File != end.File {
		t.Fatalf("workload spans binlog files %s..%s", start.File, end.File)
	}
	path := filepath.Join(s.Dir, "data", end.File)
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	total := 2 * rows

	// A: go-mysql full decode (its defaults), counting row images like a decode-only consumer.
	gomysql := func() int {
		p := replication.NewBinlogParser()
		n := 0
		if err := p.ParseFile(path, 0, func(e *replication.BinlogEvent) error {
			if re, ok := e.Event.(*replication.RowsEvent); ok && string(re.Table.Table) == "products" {
				if e.Header.EventType == replication.UPDATE_ROWS_EVENTv1 || e.Header.EventType == replication.UPDATE_ROWS_EVENTv2 {
					n += len(re.Rows) / 2
				} else {
					n += len(re.Rows)
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return n
	}
	// go-mysql with ParseTime and the two DECIMAL modes: exact strings
	// (default) vs UseDecimal + StringFixed(scale), the decision in docs/types.md.
	decimalMode := func(useDecimal bool) func() int {
		return func() int {
			p := replication.NewBinlogParser()
			p.SetParseTime(true)
			p.SetUseDecimal(useDecimal)
			n := 0
			var sink int
			if err := p.ParseFile(path, 0, func(e *replication.BinlogEvent) error {
				re, ok := e.Event.(*replication.RowsEvent)
				if !ok || string(re.Table.Table) != "products" {
					return nil
				}
				for _, row := range re.Rows {
					switch v := row[3].(type) {
					case decimal.Decimal:
						sink += len(v.StringFixed(int32(re.Table.ColumnMeta[3] & 0xff)))
					case string:
						sink += len(v)
					}
				}
				if e.Header.EventType == replication.UPDATE_ROWS_EVENTv1 {
					n += len(re.Rows) / 2
				} else {
					n += len(re.Rows)
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if sink == 0 {
				t.Fatal("no decimals seen")
			}
			return n
		}
	}
	feed := func(encode bool) int {
		h := &countHandler{}
		if encode {
			h.enc = &raw.Encoder{ServerName: "bench", Prefix: "cdc"}
			h.buf = make([]byte, 0, 4096)
		}
		d := newDecoder("", ZeroDatesNull, Filter{Include: []string{db + ".products"}}, nil, h, nil)
		if err := readFile(context.Background(), path, d); err != nil {
			t.Fatal(err)
		}
		return h.changes
	}
	live := func(encode bool) int {
		h := &countHandler{target: total, done: make(chan struct{})}
		if encode {
			h.enc = &raw.Encoder{ServerName: "bench", Prefix: "cdc"}
			h.buf = make([]byte, 0, 4096)
		}
		src, err := New(cfg, testLogger(t), nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() { errc <- src.Run(ctx, start, h) }()
		select {
		case <-h.done:
		case err := <-errc:
			t.Fatalf("live source: %v", err)
		case <-time.After(5 * time.Minute):
			t.Fatal("live source too slow")
		}
		cancel()
		<-errc
		return h.changes
	}
	liveGoMySQL := func() int {
		n := 0
		done := make(chan struct{})
		syncer := replication.NewBinlogSyncer(replication.BinlogSyncerConfig{ServerID: cfg.ServerID + 1, Flavor: "mariadb", Host: s.Host, Port: uint16(s.Port),
			User: s.CDCUser, Password: s.CDCPassword, Logger: testLogger(t), EventCacheCount: 1,
			SynchronousEventHandler: handlerFunc(func(e *replication.BinlogEvent) error {
				if re, ok := e.Event.(*replication.RowsEvent); ok && string(re.Table.Table) == "products" {
					if e.Header.EventType == replication.UPDATE_ROWS_EVENTv1 {
						n += len(re.Rows) / 2
					} else {
						n += len(re.Rows)
					}
					if n == total {
						close(done)
					}
				}
				return nil
			})})
		defer syncer.Close()
		if _, err := syncer.StartSync(mysql.Position{Name: start.File, Pos: start.Pos}); err != nil {
			t.Fatal(err)
		}
		select {
		case <-done:
		case <-time.After(5 * time.Minute):
			t.Fatal("go-mysql syncer too slow")
		}
		return n
	}

	type variant struct {
		name string
		run  func() int
	}
	variants := []variant{
		{"file: go-mysql decode-only (baseline)", gomysql},
		{"file: feedcdc decode (normalised Change)", func() int { return feed(false) }},
		{"file: feedcdc decode + raw JSON envelope", func() int { return feed(true) }},
		{"file: go-mysql ParseTime, DECIMAL as string (default)", decimalMode(false)},
		{"file: go-mysql ParseTime, UseDecimal + StringFixed", decimalMode(true)},
		{"live: go-mysql BinlogSyncer decode-only", liveGoMySQL},
		{"live: feedcdc Source decode + raw JSON envelope", func() int { return live(true) }},
	}
	times := make([][]time.Duration, len(variants))
	for round := 0; round < 5; round++ {
		for i, v := range variants {
			runtime.GC()
			t0 := time.Now()
			n := v.run()
			d := time.Since(t0)
			if n != total {
				t.Fatalf("%s: %d row changes, want %d", v.name, n, total)
			}
			times[i] = append(times[i], d)
		}
	}
	median := func(ds []time.Duration) time.Duration {
		s := append([]time.Duration(nil), ds...)
		sort.Slice(s, func(a, b int) bool { return s[a] < s[b] })
		return s[len(s)/2]
	}
	var b strings.Builder
	base := median(times[0])
	liveBase := median(times[5])
	fmt.Fprintf(&b, "binlog: %d row changes (%d inserts in 1000-row transactions + one %d-row UPDATE transaction), %d bytes\n\n", total, rows, rows, st.Size())
	fmt.Fprintf(&b, "| variant | median of 5 | row changes/s | vs baseline |\n|---|---|---|---|\n")
	for i, v := range variants {
		m := median(times[i])
		ref := base
		if i >= 5 {
			ref = liveBase
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %.0f%% |\n", v.name, m.Round(time.Millisecond), strconv.Itoa(int(float64(total)/m.Seconds())), 100*ref.Seconds()/m.Seconds())
	}
	fmt.Fprintf(&b, "\npeak RSS of the test process: %d MiB (GOGC=%d)\n", peakRSSMiB(), debug.SetGCPercent(-1))
	debug.SetGCPercent(100)
	t.Log("\n" + b.String())
}

func mustExec(t testing.TB, pool *sql.DB, q string) {
	t.Helper()
	if _, err := pool.Exec(q); err != nil {
		t.Fatalf("%s: %v", q[:min(len(q), 80)], err)
	}
}

type handlerFunc func(*replication.BinlogEvent) error

func (f handlerFunc) HandleEvent(e *replication.BinlogEvent) error { return f(e) }

// peakRSSMiB reads VmHWM from /proc/self/status.
func peakRSSMiB() int {
	b, err := os.ReadFile("/proc/self/status")
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

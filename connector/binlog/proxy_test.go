package binlog

import (
	"bytes"
	"context"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/feedcdc/feedcdc/change"
)

// tcpProxy forwards loopback connections to a server and can cut them all,
// like a network failure between the connector and the database.
type tcpProxy struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
	// corrupt, when set, flips one byte of the first occurrence of this
	// marker in the server-to-client stream.
	corrupt []byte
	done    bool
}

func newProxy(t *testing.T, upstream string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", upstream)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, u)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(u, c); u.Close() }()
			go func() { p.copyDown(c, u); c.Close() }()
		}
	}()
	t.Cleanup(func() { ln.Close(); p.cut() })
	return p
}

// copyDown forwards server bytes to the client, corrupting the marker once.
func (p *tcpProxy) copyDown(dst io.Writer, src io.Reader) {
	buf := make([]byte, 64<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			chunk := buf[:n]
			p.mu.Lock()
			if p.corrupt != nil && !p.done {
				if i := bytes.Index(chunk, p.corrupt); i >= 0 {
					chunk[i+len(p.corrupt)-1] ^= 0x01
					p.done = true
				}
			}
			p.mu.Unlock()
			if _, werr := dst.Write(chunk); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *tcpProxy) port() int { return p.ln.Addr().(*net.TCPAddr).Port }

// cut closes every connection made so far.
func (p *tcpProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// blockingCollector blocks inside the first change of a table's row with
// id >= blockFrom until released.
type blockingCollector struct {
	collector
	blockFrom int64
	once      sync.Once
	blocked   chan struct{}
	release   chan struct{}
}

func (b *blockingCollector) Change(ctx context.Context, c *change.Change) error {
	if v, ok := c.Get("id"); ok && v.(int64) >= b.blockFrom {
		b.once.Do(func() {
			close(b.blocked)
			<-b.release
		})
	}
	return b.collector.Change(ctx, c)
}

// TestLiveReconnectMidTransaction cuts the network inside a large
// transaction: the source reconnects from the last TxEnd, the Handler is
// told (TxAbort), the transaction is delivered again in full, and its TxEnd
// exactly once.
func TestLiveReconnectMidTransaction(t *testing.T) {
	db := srv.NewDatabase(t, "midtx")
	srv.Exec(t, db, "CREATE TABLE t (id BIGINT PRIMARY KEY, pad VARCHAR(250))")
	proxy := newProxy(t, srv.Addr())
	cfg := sourceConfig(srv, db+".t")
	start := changePositionCurrent(t, cfg)
	cfg.Port = proxy.port()
	src, err := New(cfg, testLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	h := &blockingCollector{blockFrom: 2, blocked: make(chan struct{}), release: make(chan struct{})}
	stop := runSource(t, src, start, h)

	srv.Exec(t, db, "INSERT INTO t VALUES (1, 'one')")
	waitFor(t, "row 1", func() bool { return len(h.tableChanges(db, "t")) == 1 })
	const big = 100_000 // ~25 MB: far more than the socket buffers hold
	srv.Exec(t, db, "INSERT INTO t SELECT seq, REPEAT('x', 240) FROM seq_2_to_"+strconv.Itoa(big+1))
	<-h.blocked
	proxy.cut()
	close(h.release)
	waitFor(t, "the big transaction's TxEnd", func() bool {
		_, ends := h.snapshot()
		for _, e := range ends {
			if e.Rows == big {
				return true
			}
		}
		return false
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	chs, ends := h.snapshot()
	h.mu.Lock()
	aborts := h.aborts
	h.mu.Unlock()
	if aborts < 1 {
		t.Fatalf("TxAbort was not called (the cut did not land inside the transaction?)")
	}
	seen := map[string]int{}
	for _, e := range ends {
		if e.GTID != "" {
			seen[e.GTID]++
		}
	}
	for g, n := range seen {
		if n != 1 {
			t.Errorf("TxEnd of %s delivered %d times", g, n)
		}
	}
	// after the last abort, the big transaction arrives complete and in order
	var tail []*change.Change
	for i := len(chs) - 1; i >= 0; i-- {
		if v, _ := chs[i].Get("id"); v.(int64) == 2 {
			tail = chs[i:]
			break
		}
	}
	if len(tail) != big {
		t.Fatalf("last delivery of the big transaction has %d changes, want %d", len(tail), big)
	}
	for i, c := range tail {
		if v, _ := c.Get("id"); v.(int64) != int64(i+2) {
			t.Fatalf("change %d has id %v", i, v)
		}
	}
}

// TestLiveCorruptEventInTransit: a byte flipped inside a rows event on the
// wire fails the checksum; the source stops with an error naming the
// position instead of retrying forever or skipping the event.
func TestLiveCorruptEventInTransit(t *testing.T) {
	db := srv.NewDatabase(t, "corrupt")
	srv.Exec(t, db, "CREATE TABLE t (id BIGINT PRIMARY KEY, pad TEXT)")
	proxy := newProxy(t, srv.Addr())
	proxy.corrupt = []byte("CORRUPT-ME-MARKER")
	cfg := sourceConfig(srv, db+".t")
	start := changePositionCurrent(t, cfg)
	cfg.Port = proxy.port()
	src, err := New(cfg, testLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	srv.Exec(t, db, "INSERT INTO t VALUES (1, 'fine')", "INSERT INTO t VALUES (2, REPEAT('CORRUPT-ME-MARKER', 500))")
	col := &collector{}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err = src.Run(ctx, start, col)
	if err == nil || ctx.Err() != nil || !strings.Contains(err.Error(), "checksum") || !strings.Contains(err.Error(), "at position") {
		t.Fatalf("got %v", err)
	}
	if got := ids(col, db); len(got) != 1 || got[0] != 1 {
		t.Errorf("rows before the corrupt event: %v", got)
	}
}

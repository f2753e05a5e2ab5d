package binlog

import (
	"context"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/feedcdc/feedcdc/change"
	"github.com/feedcdc/feedcdc/test/mysqltest"
)

var srv *mysqltest.Server

func TestMain(m *testing.M) {
	// A private tmpdir: something on this machine removes files from /tmp,
	// which breaks the server's internal temporary tables.
	tmp, err := os.MkdirTemp("", "binlog-test-tmpdir-")
	if err != nil {
		panic(err)
	}
	code := mysqltest.Main(m, mysqltest.Options{Args: []string{"--tmpdir=" + tmp}}, &srv)
	_ = os.RemoveAll(tmp)
	os.Exit(code)
}

// privateTmp is a --tmpdir flag for extra servers (see TestMain).
func privateTmp(t testing.TB) string { return "--tmpdir=" + t.TempDir() }

// collector is a Handler that records everything it is given.
type collector struct {
	mu      sync.Mutex
	changes []*change.Change
	ends    []change.TxEnd
	aborts  int
	// Observer counts
	events, heartbeats, connects, disconnects int
}

func (c *collector) EventRead(size uint32, ts time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if size > 0 && !ts.IsZero() {
		c.events++
	}
}

func (c *collector) Heartbeat() { c.mu.Lock(); c.heartbeats++; c.mu.Unlock() }
func (c *collector) Connected() { c.mu.Lock(); c.connects++; c.mu.Unlock() }
func (c *collector) Disconnected(error) {
	c.mu.Lock()
	c.disconnects++
	c.mu.Unlock()
}

func (c *collector) Change(_ context.Context, ch *change.Change) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.changes = append(c.changes, ch)
	return nil
}

func (c *collector) TxEnd(_ context.Context, e change.TxEnd) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ends = append(c.ends, e)
	return nil
}

func (c *collector) TxAbort(context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.aborts++
	return nil
}

// snapshot returns copies of what was collected so far.
func (c *collector) snapshot() ([]*change.Change, []change.TxEnd) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*change.Change(nil), c.changes...), append([]change.TxEnd(nil), c.ends...)
}

// tableChanges returns the changes of one table.
func (c *collector) tableChanges(db, table string) []*change.Change {
	ch, _ := c.snapshot()
	var out []*change.Change
	for _, x := range ch {
		if x.Table.DB == db && x.Table.Name == table {
			out = append(out, x)
		}
	}
	return out
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	waitForOr(t, what, cond, func() string { return "" })
}

// waitForOr is waitFor that shows got() when it times out.
func waitForOr(t *testing.T, what string, cond func() bool, got func() string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; got:\n%s", what, got())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

func sourceConfig(s *mysqltest.Server, include ...string) Config {
	return Config{Host: s.Host, Port: s.Port, User: s.CDCUser, Password: s.CDCPassword,
		ServerID: uint32(100000 + time.Now().UnixNano()%100000), Filter: Filter{Include: include},
		HeartbeatPeriod: time.Second, ReadTimeout: 10 * time.Second, ReconnectMin: 100 * time.Millisecond, ReconnectMax: time.Second}
}

// runSource starts src.Run in the background; the returned stop cancels it
// and returns Run's error (nil when it ended by cancellation).
func runSource(t *testing.T, src *Source, from change.Position, h Handler) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		err := src.Run(ctx, from, h)
		if err != nil && ctx.Err() == nil {
			t.Errorf("source stopped: %v", err)
		}
		done <- err
	}()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(30 * time.Second):
				err = context.DeadlineExceeded
			}
			if err == context.Canceled {
				err = nil
			}
		})
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

func changePositionCurrent(t testing.TB, cfg Config) change.Position {
	t.Helper()
	p, err := CurrentPosition(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// setGlobal sets a global server variable (value and restore are SQL
// literals) of the shared server for one test
// (new sessions see it) and restores it afterwards.
func setGlobal(t *testing.T, name, value, restore string) {
	t.Helper()
	srv.Exec(t, "", "SET GLOBAL "+name+" = "+value)
	t.Cleanup(func() { srv.Exec(t, "", "SET GLOBAL "+name+" = "+restore) })
}

package binlog

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/feedcdc/feedcdc/change"
	"github.com/feedcdc/feedcdc/test/mysqltest"
)

func startPrivate(t testing.TB, opts mysqltest.Options) *mysqltest.Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := mysqltest.Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop() })
	return s
}

// ids returns the "id" values of the changes of db.t, in order.
func ids(col *collector, db string) []int64 {
	var out []int64
	for _, c := range col.tableChanges(db, "t") {
		v, _ := c.Get("id")
		out = append(out, v.(int64))
	}
	return out
}

func seq(from, to int64) []int64 {
	var out []int64
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

func lastEnd(col *collector) change.TxEnd {
	_, ends := col.snapshot()
	return ends[len(ends)-1]
}

// TestLiveReconnectAndResumeByGTID: the source server restarts under a
// running stream (reconnect with backoff, nothing lost or repeated), then
// the connector restarts from its last TxEnd (GTID) and continues exactly
// after it.
func TestLiveReconnectAndResumeByGTID(t *testing.T) {
	opts := mysqltest.Options{Args: []string{privateTmp(t)}}
	s := startPrivate(t, opts)
	db := s.NewDatabase(t, "resume")
	s.Exec(t, db, "CREATE TABLE t (id BIGINT PRIMARY KEY, v VARCHAR(20))")
	insert := func(from, to int64) {
		for i := from; i <= to; i++ {
			s.Exec(t, db, fmt.Sprintf("INSERT INTO t VALUES (%d, 'v%d')", i, i))
		}
	}
	cfg := sourceConfig(s, db+".t")
	start, err := CurrentPosition(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if start.GTIDSet == "" || start.Flavor != "mariadb" {
		t.Fatalf("current position %+v: want a MariaDB GTID set", start)
	}
	src, err := New(cfg, testLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	col := &collector{}
	stop := runSource(t, src, start, col)
	insert(1, 5)
	waitFor(t, "rows 1-5", func() bool { return len(ids(col, db)) == 5 })

	if err := s.Shutdown(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // the source sees the connection drop and backs off
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.Restart(ctx, opts); err != nil {
		t.Fatal(err)
	}
	insert(6, 8)
	waitFor(t, "rows 6-8 after the server restart", func() bool { return len(ids(col, db)) >= 8 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got := ids(col, db); fmt.Sprint(got) != fmt.Sprint(seq(1, 8)) {
		t.Fatalf("ids across the reconnect = %v, want 1..8 exactly once", got)
	}
	col.mu.Lock()
	if col.connects < 2 || col.disconnects < 1 || col.events == 0 {
		t.Errorf("observer: %d connects, %d disconnects, %d events", col.connects, col.disconnects, col.events)
	}
	col.mu.Unlock()
	last := lastEnd(col)
	if last.Position.GTIDSet == "" || !strings.Contains(last.Position.GTIDSet, last.GTID) {
		t.Fatalf("last TxEnd %+v has no GTID set containing its GTID", last)
	}

	// connector restart: resume from the last TxEnd, by GTID
	insert(9, 10)
	col2 := &collector{}
	src2, err := New(cfg, testLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	resume := last.Position
	resume.File, resume.Pos = "", 0 // GTID alone must be enough (another replica has other file names)
	stop2 := runSource(t, src2, resume, col2)
	waitFor(t, "rows 9-10", func() bool { return len(ids(col2, db)) >= 2 })
	insert(11, 11)
	waitFor(t, "row 11", func() bool { return len(ids(col2, db)) >= 3 })
	if err := stop2(); err != nil {
		t.Fatal(err)
	}
	if got := ids(col2, db); fmt.Sprint(got) != fmt.Sprint(seq(9, 11)) {
		t.Fatalf("ids after resume = %v, want 9..11", got)
	}
}

// TestLiveFilePosResume starts from a file:pos start position string.
func TestLiveFilePosResume(t *testing.T) {
	db := srv.NewDatabase(t, "filepos")
	srv.Exec(t, db, "CREATE TABLE t (id BIGINT PRIMARY KEY)")
	srv.Exec(t, db, "INSERT INTO t VALUES (1)")
	cfg := sourceConfig(srv, db+".t")
	p, err := CurrentPosition(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv.Exec(t, db, "INSERT INTO t VALUES (2)", "INSERT INTO t VALUES (3)")
	cfg.StartPosition = fmt.Sprintf("%s:%d", p.File, p.Pos)
	src, err := New(cfg, testLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	col := &collector{}
	stop := runSource(t, src, change.Position{}, col)
	waitFor(t, "rows 2-3", func() bool { return len(ids(col, db)) >= 2 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got := ids(col, db); fmt.Sprint(got) != "[2 3]" {
		t.Fatalf("ids = %v", got)
	}
	// MariaDB always has GTIDs: checkpoints carry a GTID set even from a file/pos start
	if e := lastEnd(col); e.Position.GTIDSet == "" || e.Position.File == "" {
		t.Errorf("TxEnd position %+v", e.Position)
	}
}

// TestLivePurgedPosition: a resume position whose binlog was purged stops
// with ErrPositionPurged naming the position and the remedies.
func TestLivePurgedPosition(t *testing.T) {
	s := startPrivate(t, mysqltest.Options{Args: []string{privateTmp(t)}})
	db := s.NewDatabase(t, "purge")
	s.Exec(t, db, "CREATE TABLE t (id BIGINT PRIMARY KEY)", "INSERT INTO t VALUES (1)")
	cfg := sourceConfig(s, db+".t")
	old, err := CurrentPosition(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.Exec(t, db, "INSERT INTO t VALUES (2)", "FLUSH BINARY LOGS", "INSERT INTO t VALUES (3)")
	cur, err := CurrentPosition(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	// MariaDB skips files its binlog checkpoint still needs: retry until purged.
	var earliest change.Position
	waitFor(t, "PURGE BINARY LOGS", func() bool {
		s.Exec(t, db, fmt.Sprintf("PURGE BINARY LOGS TO '%s'", cur.File))
		earliest, err = EarliestPosition(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		return earliest.File == cur.File
	})
	if earliest.Pos != 4 {
		t.Fatalf("earliest %+v, want %s:4", earliest, cur.File)
	}

	// CheckPosition sees the same as the server: the old position is gone
	// both by file and by GTID, the current one is there.
	for name, tc := range map[string]struct {
		pos  change.Position
		want bool
	}{
		"old file/pos": {change.Position{File: old.File, Pos: old.Pos}, false},
		"old gtid":     {change.Position{GTIDSet: old.GTIDSet, File: old.File, Pos: old.Pos}, false},
		"current":      {cur, true},
		"earliest":     {earliest, true},
	} {
		a, err := CheckPosition(context.Background(), cfg, tc.pos)
		if err != nil {
			t.Fatalf("CheckPosition(%s): %v", name, err)
		}
		if a.Available != tc.want || (!a.Available && a.Reason == "") || a.Files[0] != cur.File {
			t.Errorf("CheckPosition(%s) = %+v, want available %v", name, a, tc.want)
		}
	}
	if p, err := ResolveStart(context.Background(), Config{Host: cfg.Host, Port: cfg.Port, User: cfg.User, Password: cfg.Password, ServerID: cfg.ServerID, StartPosition: "earliest"}); err != nil || p.File != earliest.File || p.Pos != 4 || p.Flavor == "" {
		t.Errorf("ResolveStart(earliest) = %+v, %v; want %s:4 with its flavor", p, err, earliest.File)
	}

	for name, from := range map[string]change.Position{
		"file/pos": {File: old.File, Pos: old.Pos},
		"gtid":     {GTIDSet: old.GTIDSet},
	} {
		src, err := New(cfg, testLogger(t), nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err = src.Run(ctx, from, &collector{})
		cancel()
		var pe *PositionPurgedError
		if !errors.Is(err, ErrPositionPurged) || !errors.As(err, &pe) || pe.Position.File != from.File || pe.Position.Pos != from.Pos {
			t.Fatalf("%s: Run = %v, want a *PositionPurgedError for %s", name, err, from)
		}
		for _, want := range []string{"feedcdc position set current", "feedcdc resync", "position set earliest", from.String()} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: error lacks %q: %v", name, want, err)
			}
		}
	}

	// "earliest" then works and sees row 3 (row 1-2 were purged)
	cfg.StartPosition = "earliest"
	src, err := New(cfg, testLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	col := &collector{}
	stop := runSource(t, src, change.Position{}, col)
	waitFor(t, "row 3", func() bool { return len(ids(col, db)) >= 1 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got := ids(col, db); fmt.Sprint(got) != "[3]" {
		t.Errorf("ids from earliest = %v", got)
	}
}

// TestLiveHeartbeat: an idle stream receives server heartbeats.
func TestLiveHeartbeat(t *testing.T) {
	cfg := sourceConfig(srv, "nothing.here")
	cfg.HeartbeatPeriod = 200 * time.Millisecond
	src, err := New(cfg, testLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	col := &collector{}
	stop := runSource(t, src, changePositionCurrent(t, cfg), col)
	waitFor(t, "two heartbeats", func() bool { col.mu.Lock(); defer col.mu.Unlock(); return col.heartbeats >= 2 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

package binlog

import (
	"context"
	"database/sql"
	"strings"
	"testing"
	"time"

	"github.com/feedcdc/feedcdc/change"
)

// xaCollector records rows and transaction ends in order, like
// truncCollector, and the position each TxEnd carries.
type xaCollector struct {
	truncCollector
	ends []change.TxEnd
}

func (c *xaCollector) TxEnd(ctx context.Context, e change.TxEnd) error {
	c.mu.Lock()
	c.ends = append(c.ends, e)
	c.mu.Unlock()
	return c.truncCollector.TxEnd(ctx, e)
}

// TestLiveXATransactions: the rows of an XA transaction reach the handler
// only when it commits (two-phase, after XA PREPARE, from another session;
// or one phase), never when it is rolled back after XA PREPARE; and while a
// prepared transaction is pending, transaction ends carry the position
// before it, so that a restart from a checkpoint reads its rows again.
func TestLiveXATransactions(t *testing.T) {
	db := srv.NewDatabase(t, "xa")
	srv.Exec(t, db, "CREATE TABLE t (id INT PRIMARY KEY)")
	cfg := sourceConfig(srv, db+".t")
	start := changePositionCurrent(t, cfg)
	src, err := New(cfg, testLogger(t), &MemoryHistory{})
	if err != nil {
		t.Fatal(err)
	}
	col := &xaCollector{}
	stop := runSource(t, src, start, col)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// Sessions that really disconnect when closed: MariaDB lets another
	// session finish a prepared XA transaction only once the preparing
	// session is gone.
	pool, err := sql.Open("mysql", srv.AdminDSN(db))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	pool.SetMaxIdleConns(0)
	run := func(stmts ...string) {
		t.Helper()
		conn, err := pool.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		for _, s := range stmts {
			_, err := conn.ExecContext(ctx, s)
			// The server detaches a prepared transaction from its session
			// after the session's close returned here: until then another
			// session gets XAER_NOTA (1397) for its XID.
			for deadline := time.Now().Add(30 * time.Second); err != nil && strings.Contains(err.Error(), "1397") && time.Now().Before(deadline); {
				time.Sleep(100 * time.Millisecond)
				_, err = conn.ExecContext(ctx, s)
			}
			if err != nil {
				t.Fatalf("%s: %v", s, err)
			}
		}
	}
	run("INSERT INTO t VALUES (1)")
	// Prepared, then rolled back from another session, with another
	// transaction committed in between.
	run("XA START 'rb'", "INSERT INTO t VALUES (10)", "XA END 'rb'", "XA PREPARE 'rb'")
	run("INSERT INTO t VALUES (2)")
	run("XA ROLLBACK 'rb'")
	// Prepared with a full XID (gtrid, bqual, format ID), committed from
	// another session.
	run("XA START 'ok', 'branch', 7", "INSERT INTO t VALUES (20)", "UPDATE t SET id = 21 WHERE id = 20", "XA END 'ok', 'branch', 7", "XA PREPARE 'ok', 'branch', 7")
	run("XA COMMIT 'ok', 'branch', 7")
	// One phase.
	run("XA START 'one'", "INSERT INTO t VALUES (30)", "XA END 'one'", "XA COMMIT 'one' ONE PHASE")
	run("INSERT INTO t VALUES (4)")

	want := "c t 1; end; end; c t 2; end; end; end; c t 20; u t 21; end; c t 30; end; c t 4; end"
	waitForOr(t, "every transaction", func() bool { return strings.HasSuffix(col.String(), "c t 4; end") }, col.String)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got := col.String(); got != want {
		t.Fatalf("stream:\n got %s\nwant %s", got, want)
	}
	// Ends: 0 insert 1, 1 prepare rb, 2 insert 2, 3 rollback rb, 4 prepare
	// ok, 5 commit ok, 6 one phase, 7 insert 4. While rb is pending (ends 1
	// and 2) the position stays at end 0; so it does while ok is pending
	// (end 4, which holds at end 3's own position).
	ends := col.ends
	if len(ends) != 8 {
		t.Fatalf("%d transaction ends, want 8: %+v", len(ends), ends)
	}
	if ends[1].Position != ends[0].Position || ends[2].Position != ends[0].Position {
		t.Fatalf("ends while XA 'rb' was prepared moved the position: %v %v, want %v", ends[1].Position, ends[2].Position, ends[0].Position)
	}
	if ends[3].Position == ends[0].Position || ends[4].Position != ends[3].Position || ends[5].Position == ends[3].Position {
		t.Fatalf("positions after the rollback / around XA 'ok': %v %v %v", ends[3].Position, ends[4].Position, ends[5].Position)
	}
	if ends[5].Rows != 2 || ends[3].Rows != 0 || ends[1].Rows != 0 {
		t.Fatalf("rows per end: commit %d, rollback %d, prepare %d; want 2, 0, 0", ends[5].Rows, ends[3].Rows, ends[1].Rows)
	}

	// A restart from the position held while 'ok' was prepared reads its
	// rows again and delivers them at its commit.
	col2 := &xaCollector{}
	stop2 := runSource(t, src, ends[4].Position, col2)
	waitForOr(t, "the replay", func() bool { return strings.HasSuffix(col2.String(), "c t 4; end") }, col2.String)
	if err := stop2(); err != nil {
		t.Fatal(err)
	}
	if got := col2.String(); got != "end; c t 20; u t 21; end; c t 30; end; c t 4; end" {
		t.Fatalf("replay from %v:\n got %s", ends[4].Position, got)
	}
}

func TestParseXAStatementXID(t *testing.T) {
	for in, want := range map[string]string{
		"X'6f6b',X'6272616e6368',7": "X'6f6b',X'6272616e6368',7",
		"'ok', 'branch', 7":         "X'6f6b',X'6272616e6368',7",
		"'rb'":                      "X'7262',X'',1",
		"X'7262',X'',1":             "X'7262',X'',1",
		"'it''s' ONE PHASE":         "X'69742773',X'',1",
		"0x7262":                    "X'7262',X'',1",
		`"q", 'b'`:                  "X'71',X'62',1",
	} {
		got, err := parseXAStatementXID(in)
		if err != nil || got != want {
			t.Errorf("%s: %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "rb", "'open", "X'zz'"} {
		if _, err := parseXAStatementXID(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

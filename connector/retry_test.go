package connector

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/feedcdc/feedcdc/sink"
	"github.com/feedcdc/feedcdc/test/catalog"
	"github.com/feedcdc/feedcdc/test/kafkatest"
)

// realSourceErrors provokes each kind of source failure on the package's
// private server (or a closed port) and returns the errors the driver gave.
func realSourceErrors(t *testing.T) map[string]error {
	t.Helper()
	ctx := context.Background()
	db := srv.NewDatabase(t, "classify")
	admin := srv.Admin(t, db)
	srv.Exec(t, db, "CREATE TABLE t (id INT PRIMARY KEY, v INT)", "INSERT INTO t VALUES (1, 1)")
	out := map[string]error{}

	// Nothing listens: connection refused.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	mc := mysql.NewConfig()
	mc.User, mc.Net, mc.Addr, mc.Timeout = "nobody", "tcp", addr, time.Second
	closed, _ := sql.Open("mysql", mc.FormatDSN())
	defer closed.Close()
	out["refused"] = closed.PingContext(ctx)

	// Wrong password: access denied (1045).
	mc = mysql.NewConfig()
	mc.User, mc.Passwd, mc.Net, mc.Addr = srv.CDCUser, "wrong", "tcp", srv.Addr()
	denied, _ := sql.Open("mysql", mc.FormatDSN())
	defer denied.Close()
	out["denied"] = denied.PingContext(ctx)

	// Unknown table (1146) and column (1054).
	_, out["no_table"] = admin.ExecContext(ctx, "SELECT * FROM missing_table")
	_, out["no_column"] = admin.ExecContext(ctx, "SELECT missing_column FROM t")

	// Lock wait timeout (1205): another session holds the row.
	holder, err := admin.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := holder.ExecContext(ctx, "UPDATE t SET v = 2 WHERE id = 1"); err != nil {
		t.Fatal(err)
	}
	conn, err := admin.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, "SET SESSION innodb_lock_wait_timeout = 1"); err != nil {
		t.Fatal(err)
	}
	_, out["lock_wait"] = conn.ExecContext(ctx, "SELECT v FROM t WHERE id = 1 LOCK IN SHARE MODE")
	holder.Rollback()

	// Statement timeout (MariaDB 1969): the server stops the statement.
	_, out["statement_timeout"] = conn.ExecContext(ctx, "SET STATEMENT max_statement_time = 0.1 FOR SELECT SLEEP(5) FROM t")

	// The connection killed under a query (MariaDB 1927 / lost connection).
	var id int64
	if err := conn.QueryRowContext(ctx, "SELECT CONNECTION_ID()").Scan(&id); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := conn.ExecContext(ctx, "SELECT SLEEP(30)")
		done <- err
	}()
	time.Sleep(300 * time.Millisecond)
	if _, err := admin.ExecContext(ctx, fmt.Sprintf("KILL %d", id)); err != nil {
		t.Fatal(err)
	}
	out["killed"] = <-done
	conn.Close()
	return out
}

func TestClassifySourceErrorsFromARealServer(t *testing.T) {
	errs := realSourceErrors(t)
	want := map[string]struct{ class, reason, remedy string }{
		"refused":           {SourceTransient, "connection", ""},
		"denied":            {SourcePermanent, "access_denied", "check source.user"},
		"no_table":          {SourcePermanent, "unknown_table", "disable the feed"},
		"no_column":         {SourcePermanent, "unknown_column", "disable the feed"},
		"lock_wait":         {SourceTransient, "lock_wait_timeout", ""},
		"statement_timeout": {SourceTransient, "statement_timeout", ""},
		"killed":            {SourceTransient, "", ""},
	}
	for name, w := range want {
		err := errs[name]
		if err == nil {
			t.Errorf("%s: the server gave no error", name)
			continue
		}
		// As the builders wrap them.
		se := ClassifySourceError(fmt.Errorf("products: read parents: %w", err))
		if se.Class != w.class || (w.reason != "" && se.Reason != w.reason) {
			t.Errorf("%s (%v): class %s reason %s, want %s %s", name, err, se.Class, se.Reason, w.class, w.reason)
		}
		if w.remedy != "" && !strings.Contains(se.Error(), w.remedy) {
			t.Errorf("%s: %q names no remedy (%q)", name, se.Error(), w.remedy)
		}
	}
	if se := ClassifySourceError(errors.New("state: bbolt: database not open")); se.Class != NotSource {
		t.Errorf("a state error classified as %s", se.Class)
	}
}

func TestSourceRetryWaitsReportsAndGivesUp(t *testing.T) {
	errs := realSourceErrors(t)
	ctx := context.Background()
	var reasons []string
	r := &SourceRetry{Backoff: sink.Backoff{Initial: 10 * time.Millisecond, Max: 20 * time.Millisecond},
		OnRetry: func(reason string) { reasons = append(reasons, reason) }}

	// Transient failures are retried until the operation succeeds; while
	// it waits, the status says so.
	calls := 0
	var during SourceWait
	var waiting bool
	err := r.Do(ctx, "build", func(context.Context) error {
		calls++
		if calls == 3 {
			during, waiting = r.Status()
			return nil
		}
		return fmt.Errorf("build products: %w", errs["refused"])
	})
	if err != nil || calls != 3 {
		t.Fatalf("Do: %v after %d calls, want success after 3", err, calls)
	}
	if !waiting || during.Attempts != 2 || !strings.Contains(during.LastError, "connection refused") ||
		!strings.HasPrefix(during.String(), "source unavailable, retrying (since ") {
		t.Errorf("status while waiting: %v %+v (%s)", waiting, during, during)
	}
	if _, waiting := r.Status(); waiting {
		t.Error("still unavailable after success")
	}
	if strings.Join(reasons, ",") != "connection,connection" {
		t.Errorf("retry reasons %v", reasons)
	}

	// A permanent failure stops at once, with the remedy.
	calls = 0
	err = r.Do(ctx, "build", func(context.Context) error { calls++; return errs["denied"] })
	var se *SourceError
	if calls != 1 || !errors.As(err, &se) || se.Class != SourcePermanent || !strings.Contains(err.Error(), "GRANT SELECT") {
		t.Errorf("permanent: %d calls, %v", calls, err)
	}

	// Errors of other components are not retried and keep their text.
	other := errors.New("connector: persist batch: disk full")
	if err := r.Do(ctx, "export", func(context.Context) error { return other }); err != other {
		t.Errorf("other error: %v", err)
	}

	// max_elapsed bounds the wait.
	r.MaxElapsed = 50 * time.Millisecond
	err = r.Do(ctx, "fan-out lookup", func(context.Context) error { return errs["lock_wait"] })
	if err == nil || !strings.Contains(err.Error(), "source.retry.max_elapsed") || !errors.Is(err, errs["lock_wait"]) {
		t.Errorf("max_elapsed: %v", err)
	}
	if _, waiting := r.Status(); waiting {
		t.Error("still unavailable after giving up")
	}

	// The caller's cancellation ends the wait.
	r.MaxElapsed = 0
	cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if err := r.Do(cctx, "build", func(context.Context) error { return errs["refused"] }); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("cancelled: %v", err)
	}
	// Also when the cancellation comes during an attempt that then fails
	// on its own: the caller learns it was stopped, and why the attempt
	// failed (this returned only the attempt's error, so a clean stop
	// looked like a source failure).
	dctx, stop := context.WithCancel(ctx)
	defer stop()
	err = r.Do(dctx, "build", func(context.Context) error { stop(); return errs["refused"] })
	if !errors.Is(err, context.Canceled) || !errors.Is(err, errs["refused"]) {
		t.Errorf("cancelled during an attempt: %v", err)
	}
}

// TestSourcePoolHasAStatementDeadline checks that source.query_timeout
// reaches the server as the session's statement deadline.
func TestSourcePoolHasAStatementDeadline(t *testing.T) {
	db := srv.NewDatabase(t, "deadline")
	cy := connectorYAML{Name: "deadline", Database: db, Source: []string{"query_timeout: 42s"}, Sections: "raw: {enabled: true}\n" + unthrottledResync,
		Feeds: noFeeds}
	c := openConnector(t, cy.load(t), OpenOptions{NoSinks: true})
	var v float64
	if err := c.SourceDB.QueryRow("SELECT @@SESSION.max_statement_time").Scan(&v); err != nil {
		t.Fatal(err)
	}
	if v != 42 {
		t.Errorf("max_statement_time = %v, want 42", v)
	}
}

// TestPermanentSourceErrorStopsRunWithRemedy: a table a feed needs vanishes
// while the connector runs; the next build meets 1146, which no retry can
// fix: Run waits the (here shortened) MissingTableWait for a table swap to
// put it back, then stops and says what to do.
func TestPermanentSourceErrorStopsRunWithRemedy(t *testing.T) {
	ctx := context.Background()
	db := srv.NewDatabase(t, "permanent")
	admin := srv.Admin(t, db)
	if _, err := catalog.Load(ctx, admin, catalog.Tiny(), 3); err != nil {
		t.Fatal(err)
	}
	kafka := kafkatest.Start(t)
	cy := connectorYAML{Name: "permanent", Database: db, Source: []string{"retry: {initial: 50ms, max: 200ms}"},
		Sections: unthrottledResync + kafkaSink(kafka.Addr(), db, "linger: 1ms")}
	c := openConnector(t, cy.load(t), OpenOptions{})
	c.Pipeline.o.MissingTableWait = 2 * time.Second
	runErr, _ := startRun(t, c, RunOptions{NoSchedule: true})
	waitFullSyncs(t, c)
	if _, err := admin.ExecContext(ctx, "RENAME TABLE catalog_category_product TO catalog_category_product_gone"); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.ExecContext(ctx, "UPDATE catalog_product_entity SET updated_at = NOW() + INTERVAL 1 DAY ORDER BY entity_id LIMIT 1"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-runErr:
		t.Logf("Run stopped: %v", err)
		var se *SourceError
		if !errors.As(err, &se) || se.Class != SourcePermanent || se.Reason != "unknown_table" ||
			!strings.Contains(err.Error(), "catalog_category_product") || !strings.Contains(err.Error(), "restore it, or disable the feed") {
			t.Errorf("Run stopped with %v, want the missing table and its remedy", err)
		}
	case <-time.After(2 * time.Minute):
		t.Fatalf("Run did not stop on a missing table (source status: %v)", func() string { w, _ := c.SourceUnavailable(); return w.String() }())
	}
}

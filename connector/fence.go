package connector

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	mysqldriver "github.com/go-sql-driver/mysql"

	"github.com/feedcdc/feedcdc/change"
	"github.com/feedcdc/feedcdc/sink"
)

// fenceRow is one row changed by the newest transaction of a batch whose
// table a feed watches.
type fenceRow struct {
	table  *change.Table
	key    []any
	readAt time.Time
}

// VisibilityFence makes a batch's builds see the batch's own transactions.
//
// MySQL and MariaDB write a transaction to the binlog, let binlog readers
// (replicas, feedcdc) see it, and only then commit it in InnoDB, where other
// sessions see its rows. A build that queried right after reading the event
// could miss the transaction's rows — and nothing would rebuild them later.
// Before a batch is built, the fence takes a shared lock on one row the
// batch's newest transaction changed (SELECT ... LOCK IN SHARE MODE, released
// at once in autocommit): an uncommitted writer still holds its row lock, so
// the read waits until it has committed. Transactions commit in binlog order
// (binlog_order_commits; MariaDB's commit_ordered), so every earlier
// transaction of the batch is then visible too.
//
// If another, later transaction holds the row, the wait ends after one second
// (innodb_lock_wait_timeout) and the batch proceeds: the newest transaction
// is certainly committed by then on a healthy server, and the later one
// brings its own change. Where the connector's user may not take shared
// locks (MySQL 8.0.22+ wants LOCK TABLES, UPDATE or DELETE besides SELECT
// for it), the fence warns once with the GRANT that fixes it and falls back
// to waiting Settle after the row was read.
type VisibilityFence struct {
	DB     *sql.DB
	Logger *slog.Logger
	// Settle is the fallback wait after the fence row was read (default
	// 100 ms).
	Settle time.Duration
	// User names the connector's user in the GRANT hint.
	User string
	// OnWait, when set, learns how long each Wait took and whether a later
	// transaction held the row (the wait ended on the lock timeout).
	OnWait func(d time.Duration, timedOut bool)

	mu       sync.Mutex
	fallback bool
	queries  map[*change.Table]string
}

// Wait returns once the transaction that changed r is visible to other
// sessions (or, on fallback, Settle after r was read).
func (f *VisibilityFence) Wait(ctx context.Context, r *fenceRow) error {
	f.mu.Lock()
	fallback := f.fallback
	q, ok := f.queries[r.table]
	if !ok {
		q = fenceQuery(r.table)
		if f.queries == nil || len(f.queries) >= 4096 {
			// Table versions change only with DDL; bound the cache anyway.
			f.queries = map[*change.Table]string{}
		}
		f.queries[r.table] = q
	}
	f.mu.Unlock()
	if fallback {
		return f.settle(ctx, r)
	}
	start := time.Now()
	conn, err := f.DB.Conn(ctx)
	if err != nil {
		return fmt.Errorf("connector: visibility fence: %w", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "SET SESSION innodb_lock_wait_timeout = 1"); err != nil {
		return fmt.Errorf("connector: visibility fence: %w", err)
	}
	rows, err := conn.QueryContext(ctx, q, r.key...)
	if err == nil {
		err = rows.Close()
	}
	var me *mysqldriver.MySQLError
	switch {
	case err == nil:
		f.observe(start, false)
		return nil
	case errors.As(err, &me) && me.Number == 1205: // lock wait timeout: a later transaction holds the row
		f.observe(start, true)
		return nil
	case errors.As(err, &me) && (me.Number == 1142 || me.Number == 1044 || me.Number == 1227):
		f.mu.Lock()
		f.fallback = true
		f.mu.Unlock()
		f.log().Warn("the connector's user may not take shared row locks, so batches wait a fixed time for their transactions to become visible instead of exactly as long as needed; to fix it run: GRANT LOCK TABLES ON `"+r.table.DB+"`.* TO "+f.user(),
			"error", err, "settle", f.settleTime())
		return f.settle(ctx, r)
	default:
		return fmt.Errorf("connector: visibility fence on %s: %w", r.table.FullName(), err)
	}
}

func (f *VisibilityFence) observe(start time.Time, timedOut bool) {
	if f.OnWait != nil {
		f.OnWait(time.Since(start), timedOut)
	}
}

func (f *VisibilityFence) settle(ctx context.Context, r *fenceRow) error {
	if d := time.Until(r.readAt.Add(f.settleTime())); d > 0 {
		return sink.Sleep(ctx, d)
	}
	return nil
}

func (f *VisibilityFence) settleTime() time.Duration {
	if f.Settle > 0 {
		return f.Settle
	}
	return 100 * time.Millisecond
}

func (f *VisibilityFence) log() *slog.Logger {
	if f.Logger != nil {
		return f.Logger
	}
	return slog.Default()
}

func (f *VisibilityFence) user() string {
	if f.User == "" {
		return "'<connector user>'@'<host>'"
	}
	return "'" + strings.ReplaceAll(f.User, "'", "''") + "' (add @'host' if the user is defined for one host)"
}

// fenceQuery is the shared-lock point read of one row of t by primary key.
func fenceQuery(t *change.Table) string {
	ident := func(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }
	var b strings.Builder
	b.WriteString("SELECT 1 FROM " + ident(t.DB) + "." + ident(t.Name) + " WHERE ")
	for i, idx := range t.PK {
		if i > 0 {
			b.WriteString(" AND ")
		}
		b.WriteString(ident(t.Columns[idx].Name) + " = ?")
	}
	b.WriteString(" LOCK IN SHARE MODE")
	return b.String()
}

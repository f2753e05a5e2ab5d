package connector

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	mysqldriver "github.com/go-sql-driver/mysql"

	"github.com/feedcdc/feedcdc/change"
	"github.com/feedcdc/feedcdc/sink"
)

// ErrFenceUnproven is matched (errors.Is) by the error VisibilityFence.Wait
// returns when it could not prove within its Timeout that the batch's newest
// transaction is committed. The batch must not be built or checkpointed; it
// is safe to retry it (FenceUnprovenError.Temporary is true).
var ErrFenceUnproven = errors.New("visibility fence: the batch's newest transaction is not proven committed")

// FenceUnprovenError says which row the fence waited for and how long.
type FenceUnprovenError struct {
	Table  string
	Key    []any
	GTID   string
	Waited time.Duration
}

func (e *FenceUnprovenError) Error() string {
	g := ""
	if e.GTID != "" {
		g = " (GTID " + e.GTID + ")"
	}
	return fmt.Sprintf("%v: the transaction%s that changed %s key %v is in the binlog but was not seen committed after %s "+
		"(its row stays locked and its new values are not visible); the batch was not exported and its checkpoint did not move. "+
		"Usual causes: a commit waiting for a semi-sync acknowledgement (rpl_semi_sync_master_timeout / rpl_semi_sync_source_timeout), a stalled fsync, "+
		"or a later transaction holding the row for longer than feeds.visibility_fence_timeout; raise feeds.visibility_fence_timeout if such waits are expected",
		ErrFenceUnproven, g, e.Table, e.Key, e.Waited.Round(time.Millisecond))
}

// Is makes errors.Is(err, ErrFenceUnproven) true.
func (e *FenceUnprovenError) Is(target error) bool { return target == ErrFenceUnproven }

// Temporary reports that retrying the batch may succeed.
func (e *FenceUnprovenError) Temporary() bool { return true }

// fenceRow is the newest change of a batch whose table a feed watches.
type fenceRow struct {
	table  *change.Table
	key    []any
	readAt time.Time
	// change is the change itself (its images prove the commit when a
	// later transaction holds the row); nil: only the row lock proves it.
	change *change.Change
}

func newFenceRow(c *change.Change, readAt time.Time) *fenceRow {
	return &fenceRow{table: c.Table, key: c.Key(), readAt: readAt, change: c}
}

// VisibilityFence makes a batch's builds see the batch's own transactions.
//
// MySQL and MariaDB write a transaction to the binlog, let binlog readers
// (replicas, feedcdc) see it, and only then commit it in InnoDB, where other
// sessions see its rows: right away normally, seconds later when the commit
// waits for a semi-sync acknowledgement (AFTER_SYNC), a slow fsync or a
// stalled replica SQL thread. A build that queried before the commit would
// miss the transaction's rows — and nothing would rebuild them later.
//
// Invariant: Wait returns nil only when the batch's newest transaction is
// proven committed (or the fence fell back to the fixed Settle wait, which
// it logs as a warning). Proof is either
//   - a shared lock on a row the transaction changed (SELECT ... LOCK IN
//     SHARE MODE in its own transaction, rolled back at once, so no lock
//     outlives the read even with autocommit=0): an uncommitted writer holds
//     its row lock until it has committed; or
//   - when the lock wait times out because a transaction holds the row, a
//     consistent non-locking read of the row that shows the change's result:
//     an insert's or a key-changing update's row exists, a delete's row is
//     gone, an update's changed columns hold the after image. No other
//     transaction can write the row before the change committed, so a later
//     writer holding the row cannot fake that result. Columns whose text
//     form is not exact (float, decimal, timestamp, JSON, ...) are not
//     compared.
//
// Transactions commit in binlog order (binlog_order_commits; MariaDB's
// commit_ordered), so every earlier transaction of the batch is then
// visible too. Without proof the fence keeps trying until Timeout and then
// returns a FenceUnprovenError (errors.Is ErrFenceUnproven): the batch is
// not built and its checkpoint does not move.
//
// Fallbacks (Settle after the row was read, with a warning): where the
// connector's user may not take shared locks (MySQL 8.0.22+ wants LOCK
// TABLES, UPDATE or DELETE besides SELECT) — once, with the GRANT that fixes
// it — and for a table version whose fence query fails because the table
// was dropped or its key column renamed since the change.
//
// The lock wait of one attempt is the session's innodb_lock_wait_timeout,
// which the source pool sets to 1 s through the DSN (config.MySQLConfig);
// each attempt is also bounded by what is left of Timeout.
type VisibilityFence struct {
	DB     *sql.DB
	Logger *slog.Logger
	// Settle is the fallback wait after the fence row was read (default
	// 100 ms).
	Settle time.Duration
	// Timeout bounds the whole wait for proof (default 60 s).
	Timeout time.Duration
	// User names the connector's user in the GRANT hint.
	User string
	// OnWait, when set, learns how long each Wait took and whether it ran
	// out of Timeout without proof (the batch is then retried).
	OnWait func(d time.Duration, timedOut bool)
	// now is the clock (tests); nil is time.Now.
	now func() time.Time

	mu       sync.Mutex
	fallback bool
	queries  map[*change.Table]*fenceQueries
	unproven *FenceUnprovenError // the last Wait ran out of Timeout; nil after a proof
}

// Unproven returns the error of the last Wait when it ran out of Timeout
// without proof, and nil once a later Wait proved its batch (health).
func (f *VisibilityFence) Unproven() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.unproven == nil {
		return nil
	}
	return f.unproven
}

// fenceQueries are the fence's statements for one table version.
type fenceQueries struct {
	lock  string // shared-lock point read
	image string // non-locking point read of the compared columns
	cols  []int  // column indexes image returns
	// broken is set once the table or its key column is gone: the fence
	// settles for this table version instead.
	broken bool
}

// Wait returns nil once the transaction that changed r is proven visible to
// other sessions (or, on fallback, Settle after r was read); a
// FenceUnprovenError when Timeout ran out without proof.
func (f *VisibilityFence) Wait(ctx context.Context, r *fenceRow) error {
	f.mu.Lock()
	fallback := f.fallback
	q, ok := f.queries[r.table]
	if !ok {
		q = newFenceQueries(r.table)
		if f.queries == nil || len(f.queries) >= 4096 {
			// Table versions change only with DDL; bound the cache anyway.
			f.queries = map[*change.Table]*fenceQueries{}
		}
		f.queries[r.table] = q
	}
	broken := q.broken
	f.mu.Unlock()
	if fallback || broken {
		return f.settle(ctx, r)
	}
	start := f.clock()
	deadline := start.Add(f.timeout())
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			// A lock wait normally paces the loop; this keeps it from
			// spinning when the lock attempt fails fast.
			if err := sink.Sleep(ctx, min(50*time.Millisecond, max(0, deadline.Sub(f.clock())))); err != nil {
				return err
			}
		}
		if !f.clock().Before(deadline) {
			f.observe(start, true)
			err := &FenceUnprovenError{Table: r.table.FullName(), Key: r.key, Waited: f.clock().Sub(start)}
			if r.change != nil {
				err.GTID = r.change.Source.GTID
			}
			f.log().Error("visibility fence: batch not proven committed; it is retried and the checkpoint stays", "error", err)
			f.mu.Lock()
			f.unproven = err
			f.mu.Unlock()
			return err
		}
		proven, err := f.attempt(ctx, deadline, q, r)
		if err == nil && proven {
			f.observe(start, false)
			f.mu.Lock()
			f.unproven = nil
			f.mu.Unlock()
			return nil
		}
		if err == nil || errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			continue
		}
		var me *mysqldriver.MySQLError
		switch {
		case errors.As(err, &me) && (me.Number == 1142 || me.Number == 1044 || me.Number == 1227):
			f.mu.Lock()
			f.fallback = true
			f.mu.Unlock()
			f.log().Warn("the connector's user may not take shared row locks, so batches wait a fixed time for their transactions to become visible instead of exactly as long as needed; to fix it run: GRANT LOCK TABLES ON `"+r.table.DB+"`.* TO "+f.user(),
				"error", err, "settle", f.settleTime())
			return f.settle(ctx, r)
		case errors.As(err, &me) && (me.Number == 1146 || me.Number == 1054):
			// ER_NO_SUCH_TABLE, ER_BAD_FIELD_ERROR: dropped or renamed since
			// the change; the builds decide what that means for the feeds.
			f.mu.Lock()
			q.broken = true
			f.mu.Unlock()
			f.log().Warn("visibility fence: the table of the batch's newest change was dropped or its key column renamed since the change; batches of this table version wait a fixed time instead of for proof",
				"table", r.table.FullName(), "error", err, "settle", f.settleTime())
			return f.settle(ctx, r)
		default:
			return fmt.Errorf("connector: visibility fence on %s: %w", r.table.FullName(), err)
		}
	}
}

// attempt tries once to prove that r's transaction is committed.
func (f *VisibilityFence) attempt(ctx context.Context, deadline time.Time, q *fenceQueries, r *fenceRow) (bool, error) {
	actx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	err := f.inTx(actx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(actx, q.lock, r.key...)
		if err != nil {
			return err
		}
		return rows.Close()
	})
	var me *mysqldriver.MySQLError
	if err == nil {
		return true, nil
	}
	if !errors.As(err, &me) || me.Number != 1205 { // 1205: lock wait timeout
		return false, err
	}
	// A transaction holds the row: ours still committing, or a later one.
	if r.change == nil {
		return false, nil
	}
	var cur []sql.RawBytes
	var found bool
	err = f.inTx(actx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(actx, q.image, r.key...)
		if err != nil {
			return err
		}
		defer rows.Close()
		if rows.Next() {
			found = true
			var one sql.RawBytes
			vals := make([]sql.RawBytes, len(q.cols))
			dest := []any{&one}
			for i := range vals {
				dest = append(dest, &vals[i])
			}
			if err := rows.Scan(dest...); err != nil {
				return err
			}
			cur = make([]sql.RawBytes, len(vals))
			for i, v := range vals {
				if v != nil {
					cur[i] = append(sql.RawBytes{}, v...)
				}
			}
		}
		return rows.Err()
	})
	if err != nil {
		return false, err
	}
	return committedImage(r.change, q.cols, found, cur), nil
}

// inTx runs read in its own transaction and rolls it back, so that no lock
// or read view outlives the read whatever the session's autocommit.
func (f *VisibilityFence) inTx(ctx context.Context, read func(*sql.Tx) error) error {
	tx, err := f.DB.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	err = read(tx)
	if rerr := tx.Rollback(); err == nil && rerr != nil && !errors.Is(rerr, sql.ErrTxDone) {
		err = rerr
	}
	return err
}

// committedImage reports whether the row's committed state (found, cur:
// the text of columns cols) proves that c is committed: see the
// VisibilityFence invariant.
func committedImage(c *change.Change, cols []int, found bool, cur []sql.RawBytes) bool {
	switch {
	case c.Op == change.OpDelete:
		return !found
	case c.Op == change.OpCreate || c.Before == nil:
		return found
	case !found:
		// An update's row is gone: deleted by a later transaction, which
		// could only write it after ours committed.
		return true
	}
	for _, i := range c.Table.PK {
		if i >= len(c.Before) || i >= len(c.After) || !sameValue(c.Before[i], c.After[i]) {
			return true // the key changed: the new key's row exists
		}
	}
	informative := false
	for j, i := range cols {
		if i >= len(c.Before) || i >= len(c.After) || sameValue(c.Before[i], c.After[i]) {
			continue
		}
		want, ok := valueText(c.After[i])
		if !ok {
			continue
		}
		informative = true
		if cur[j] == nil != (want == nil) || !bytes.Equal(cur[j], want) {
			return false
		}
	}
	return informative
}

// sameValue compares two decoded values of one column.
func sameValue(a, b any) bool {
	at, aok := valueText(a)
	bt, bok := valueText(b)
	if !aok || !bok {
		return false
	}
	return at == nil == (bt == nil) && bytes.Equal(at, bt)
}

// valueText is a decoded value's text as the server sends it; ok is false
// for types without an exact text form.
func valueText(v any) ([]byte, bool) {
	switch x := v.(type) {
	case nil:
		return nil, true
	case int64:
		return strconv.AppendInt(nil, x, 10), true
	case uint64:
		return strconv.AppendUint(nil, x, 10), true
	case string:
		return []byte(x), true
	case []byte:
		return x, true
	}
	return nil, false
}

// exactTextTypes are the column types whose decoded binlog value and the
// server's text form are byte-identical.
var exactTextTypes = map[string]bool{
	"tinyint": true, "smallint": true, "mediumint": true, "int": true, "bigint": true, "year": true,
	"varchar": true, "enum": true, "tinytext": true, "text": true, "mediumtext": true, "longtext": true,
	"varbinary": true, "tinyblob": true, "blob": true, "mediumblob": true, "longblob": true,
	"date": true, "datetime": true,
}

func (f *VisibilityFence) observe(start time.Time, timedOut bool) {
	if f.OnWait != nil {
		f.OnWait(f.clock().Sub(start), timedOut)
	}
}

func (f *VisibilityFence) settle(ctx context.Context, r *fenceRow) error {
	if d := r.readAt.Add(f.settleTime()).Sub(f.clock()); d > 0 {
		return sink.Sleep(ctx, d)
	}
	return nil
}

func (f *VisibilityFence) clock() time.Time {
	if f.now != nil {
		return f.now()
	}
	return time.Now()
}

func (f *VisibilityFence) settleTime() time.Duration {
	if f.Settle > 0 {
		return f.Settle
	}
	return 100 * time.Millisecond
}

func (f *VisibilityFence) timeout() time.Duration {
	if f.Timeout > 0 {
		return f.Timeout
	}
	return 60 * time.Second
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

// newFenceQueries builds the fence's point reads of t by primary key: the
// shared-lock read and the non-locking read of t's exactly comparable
// columns.
func newFenceQueries(t *change.Table) *fenceQueries {
	ident := func(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }
	var where strings.Builder
	for i, idx := range t.PK {
		if i > 0 {
			where.WriteString(" AND ")
		}
		where.WriteString(ident(t.Columns[idx].Name) + " = ?")
	}
	from := " FROM " + ident(t.DB) + "." + ident(t.Name) + " WHERE " + where.String()
	q := &fenceQueries{lock: "SELECT 1" + from + " LOCK IN SHARE MODE"}
	sel := []string{"1"}
	for i, c := range t.Columns {
		if exactTextTypes[c.Type] {
			q.cols = append(q.cols, i)
			sel = append(sel, ident(c.Name))
		}
	}
	q.image = "SELECT " + strings.Join(sel, ", ") + from
	return q
}

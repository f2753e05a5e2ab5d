package connector

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"syscall"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-sql-driver/mysql"

	"github.com/feedcdc/feedcdc/sink"
)

// Classes of source errors (ClassifySourceError).
const (
	// SourceTransient errors go away by themselves: the operation is retried.
	SourceTransient = "transient"
	// SourcePermanent errors need a person: the connector stops with a
	// remedy.
	SourcePermanent = "permanent"
	// NotSource errors did not come from the source (state store, sinks,
	// bugs); they keep their meaning and are not retried here.
	NotSource = "other"
)

// SourceError is an error of a SQL read on the source, classified.
type SourceError struct {
	// Class is SourceTransient or SourcePermanent.
	Class string
	// Reason is a short stable name of the cause ("connection", "shutdown",
	// "deadlock", "access_denied", ...), the metric attribute.
	Reason string
	// Remedy tells a person what to do about a permanent error.
	Remedy string
	Err    error
}

func (e *SourceError) Error() string {
	if e.Remedy != "" {
		return e.Err.Error() + "; " + e.Remedy
	}
	return e.Err.Error()
}

func (e *SourceError) Unwrap() error { return e.Err }

// mysqlErrors maps server error numbers to their class and reason.
var mysqlErrors = map[uint16]struct{ class, reason string }{
	1040: {SourceTransient, "too_many_connections"}, // ER_CON_COUNT_ERROR
	1203: {SourceTransient, "too_many_connections"}, // ER_TOO_MANY_USER_CONNECTIONS
	1053: {SourceTransient, "shutdown"},             // ER_SERVER_SHUTDOWN
	1077: {SourceTransient, "shutdown"},             // ER_NORMAL_SHUTDOWN
	1078: {SourceTransient, "shutdown"},             // ER_GOT_SIGNAL
	1079: {SourceTransient, "shutdown"},             // ER_SHUTDOWN_COMPLETE
	2006: {SourceTransient, "connection"},           // CR_SERVER_GONE_ERROR
	2013: {SourceTransient, "connection"},           // CR_SERVER_LOST
	1152: {SourceTransient, "connection"},           // ER_ABORTING_CONNECTION
	1158: {SourceTransient, "connection"},           // ER_NET_READ_ERROR
	1159: {SourceTransient, "connection"},           // ER_NET_READ_INTERRUPTED
	1160: {SourceTransient, "connection"},           // ER_NET_ERROR_ON_WRITE
	1161: {SourceTransient, "connection"},           // ER_NET_WRITE_INTERRUPTED
	4031: {SourceTransient, "connection"},           // MySQL: disconnected by the server for inactivity
	1317: {SourceTransient, "killed"},               // ER_QUERY_INTERRUPTED
	1927: {SourceTransient, "killed"},               // MariaDB ER_CONNECTION_KILLED
	1213: {SourceTransient, "deadlock"},             // ER_LOCK_DEADLOCK
	1205: {SourceTransient, "lock_wait_timeout"},    // ER_LOCK_WAIT_TIMEOUT
	1290: {SourceTransient, "read_only"},            // ER_OPTION_PREVENTS_STATEMENT (--read-only)
	1836: {SourceTransient, "read_only"},            // ER_READ_ONLY_MODE
	3032: {SourceTransient, "read_only"},            // MySQL ER_SERVER_OFFLINE_MODE
	3024: {SourceTransient, "statement_timeout"},    // MySQL max_execution_time exceeded
	1969: {SourceTransient, "statement_timeout"},    // MariaDB max_statement_time exceeded
	1615: {SourceTransient, "reprepare"},            // ER_NEED_REPREPARE (table changed under a prepared statement)
	1044: {SourcePermanent, "access_denied"},        // ER_DBACCESS_DENIED_ERROR
	1045: {SourcePermanent, "access_denied"},        // ER_ACCESS_DENIED_ERROR
	1142: {SourcePermanent, "access_denied"},        // ER_TABLEACCESS_DENIED_ERROR
	1143: {SourcePermanent, "access_denied"},        // ER_COLUMNACCESS_DENIED_ERROR
	1227: {SourcePermanent, "access_denied"},        // ER_SPECIFIC_ACCESS_DENIED_ERROR
	1049: {SourcePermanent, "unknown_database"},     // ER_BAD_DB_ERROR
	1146: {SourcePermanent, "unknown_table"},        // ER_NO_SUCH_TABLE
	1054: {SourcePermanent, "unknown_column"},       // ER_BAD_FIELD_ERROR
	1236: {SourcePermanent, "binlog_purged"},        // ER_MASTER_FATAL_ERROR_READING_BINLOG
}

// remedies tell a person what to do about a permanent source error.
var remedies = map[string]string{
	"access_denied":    "the source refused the connector's user: check source.user and its password, and GRANT SELECT on the catalog tables (plus REPLICATION SLAVE, REPLICATION CLIENT) to it, then restart",
	"unknown_database": "the database feedcdc reads does not exist on this server: check feeds.database (and that source.host is the right server), then restart",
	"unknown_table":    "a table a feed needs is missing: restore it, or disable the feed that reads it (feeds.<feed>.enabled: false), then restart",
	"unknown_column":   "a column a feed needs is missing (a schema change removed or renamed it): restore it, or disable the feed that reads it, then restart",
	"binlog_purged":    "the source no longer has the binlog position feedcdc needs: start from the current position with a full sync (see docs/operations.md, \"Binlog purged\")",
}

// ClassifySourceError tells whether err, returned by a SQL read on the
// source, is transient (retry), permanent (stop with a remedy) or not a
// source error at all. A nil error classifies as NotSource.
func ClassifySourceError(err error) *SourceError {
	if err == nil {
		return &SourceError{Class: NotSource}
	}
	var se *SourceError
	if errors.As(err, &se) {
		return se
	}
	var number uint16
	var me *mysql.MySQLError
	var ge *gomysql.MyError // the binlog client's admin connection
	switch {
	case errors.As(err, &me):
		number = me.Number
	case errors.As(err, &ge):
		number = ge.Code
	}
	if number != 0 {
		if c, ok := mysqlErrors[number]; ok {
			return &SourceError{Class: c.class, Reason: c.reason, Remedy: remedies[c.reason], Err: err}
		}
		// Any other server error is a statement the server will refuse
		// again: a person (or a code fix) has to act.
		return &SourceError{Class: SourcePermanent, Reason: fmt.Sprintf("error_%d", number), Err: err}
	}
	transient := func(reason string) *SourceError {
		return &SourceError{Class: SourceTransient, Reason: reason, Err: err}
	}
	switch {
	case errors.Is(err, driver.ErrBadConn), errors.Is(err, mysql.ErrInvalidConn), errors.Is(err, gomysql.ErrBadConn), errors.Is(err, mysql.ErrPktSync),
		errors.Is(err, mysql.ErrPktSyncMul), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, syscall.ECONNABORTED), errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return transient("connection")
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, syscall.ETIMEDOUT):
		// A query's own deadline (source.query_timeout); the caller checks
		// its context first, so this is not the connector stopping.
		return transient("timeout")
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return transient("connection")
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		return transient("connection")
	}
	// Errors flattened to text by a layer that did not wrap them.
	msg := err.Error()
	for _, s := range []string{"connection refused", "connection reset", "broken pipe", "invalid connection", "bad connection", "server has gone away", "lost connection", "connection was bad"} {
		if strings.Contains(msg, s) {
			return transient("connection")
		}
	}
	return &SourceError{Class: NotSource, Err: err}
}

// SourceRetry retries SQL reads on the source after transient failures with
// bounded exponential backoff and jitter. Permanent failures are returned at
// once as a *SourceError carrying the remedy; errors that do not come from
// the source are returned unchanged.
//
// While at least one operation waits for the source, Status reports since
// when, how many attempts failed and the last error (for /readyz, the
// dashboard and `feedcdc status`). A nil *SourceRetry runs operations once.
type SourceRetry struct {
	// Backoff is the wait between attempts (Initial, Max; MaxAttempts is
	// ignored).
	Backoff sink.Backoff
	// MaxElapsed gives up after the source failed this long (0: never).
	MaxElapsed time.Duration
	Logger     *slog.Logger
	// OnRetry, when set, learns every retried failure's reason (metrics).
	OnRetry func(reason string)

	mu      sync.Mutex
	waiting int // operations currently waiting for the source
	status  SourceWait
}

// SourceWait describes the source being unavailable.
type SourceWait struct {
	// Since is when the first waiting operation failed.
	Since time.Time `json:"since"`
	// Attempts counts the failed attempts since then (all operations).
	Attempts int `json:"attempts"`
	// LastError is the most recent failure.
	LastError string `json:"last_error"`
	// Operation names the operation that failed last ("build", ...).
	Operation string `json:"operation"`
}

// String is the sentence operators see.
func (w SourceWait) String() string {
	return fmt.Sprintf("source unavailable, retrying (since %s, attempts %d, last error: %s)",
		w.Since.UTC().Format(time.RFC3339), w.Attempts, w.LastError)
}

// Status returns the current wait, and whether the source is unavailable
// (some operation is waiting for it).
func (r *SourceRetry) Status() (SourceWait, bool) {
	if r == nil {
		return SourceWait{}, false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.status, r.waiting > 0
}

func (r *SourceRetry) log() *slog.Logger {
	if r.Logger != nil {
		return r.Logger
	}
	return slog.Default()
}

// Do runs fn until it succeeds, fails for a reason that is not transient,
// ctx ends, or the source has failed for MaxElapsed. op names the operation
// in logs and the status ("export batch", "fan-out lookup", "full sync of
// products", ...). fn must be safe to run again from the start.
func (r *SourceRetry) Do(ctx context.Context, op string, fn func(ctx context.Context) error) error {
	return r.DoLong(ctx, op, func(ctx context.Context, _ func()) error { return fn(ctx) })
}

// DoLong is Do for an operation that keeps running once it has reached the
// source (the binlog stream): fn calls started when it got through, and
// from then on the source counts as available again; a later transient
// failure starts a new wait. started may be called more than once.
func (r *SourceRetry) DoLong(ctx context.Context, op string, fn func(ctx context.Context, started func()) error) error {
	if r == nil {
		return fn(ctx, func() {})
	}
	var (
		mu      sync.Mutex
		first   time.Time
		entered bool
		attempt int
	)
	started := func() {
		mu.Lock()
		defer mu.Unlock()
		if entered {
			r.log().Info("source available again", "operation", op, "attempts", attempt, "waited", time.Since(first).Round(time.Millisecond).String())
			r.leave()
		}
		entered, attempt = false, 0
	}
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		if entered {
			r.leave()
		}
	}()
	for {
		err := fn(ctx, started)
		if err == nil {
			started()
			return nil
		}
		if cerr := ctx.Err(); cerr != nil {
			// The caller stopped: say so (errors.Is finds both), also when
			// the attempt failed on its own just as the context ended.
			if errors.Is(err, cerr) {
				return err
			}
			return fmt.Errorf("%w (%w)", err, cerr)
		}
		se := ClassifySourceError(err)
		switch se.Class {
		case NotSource:
			return err
		case SourcePermanent:
			return se
		}
		now := time.Now()
		mu.Lock()
		if !entered {
			entered, first = true, now
			r.enter(now)
		}
		attempt++
		n, since := attempt, first
		mu.Unlock()
		if r.MaxElapsed > 0 && now.Sub(since) >= r.MaxElapsed {
			// Permanent from here on: an outer retry must not start over.
			return &SourceError{Class: SourcePermanent, Reason: "max_elapsed", Err: fmt.Errorf("source unavailable for %s (%d attempts of %s), giving up as source.retry.max_elapsed says; feedcdc resumes from its checkpoint when restarted: %w",
				now.Sub(since).Round(time.Second), n, op, err)}
		}
		r.failed(op, err)
		if r.OnRetry != nil {
			r.OnRetry(se.Reason)
		}
		wait := r.Backoff.Delay(n)
		r.log().Warn("source unavailable, retrying", "operation", op, "attempt", n, "reason", se.Reason, "retry_in", wait.Round(time.Millisecond).String(), "error", err)
		if err := sink.Sleep(ctx, wait); err != nil {
			return err
		}
	}
}

func (r *SourceRetry) enter(now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.waiting == 0 {
		r.status = SourceWait{Since: now}
	}
	r.waiting++
}

func (r *SourceRetry) leave() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.waiting--
	if r.waiting == 0 {
		r.status = SourceWait{}
	}
}

func (r *SourceRetry) failed(op string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.status.Attempts++
	r.status.LastError = err.Error()
	r.status.Operation = op
}

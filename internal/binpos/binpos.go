// Package binpos reads and orders binlog positions of the source: the
// position a consistent snapshot's reads are consistent with, the
// server's current position, and whether a reader has reached a position.
//
// Invariants:
//   - On MariaDB, SnapshotPosition is the position of the snapshot opened by
//     START TRANSACTION WITH CONSISTENT SNAPSHOT on the same connection
//     (binlog_snapshot_file / binlog_snapshot_position): the snapshot's
//     reads show exactly the transactions the binlog holds up to it.
//   - CurrentPosition read after a read is at or after every transaction the
//     read saw: a server writes a transaction to its binlog before it
//     commits it in the storage engine.
//   - Reached and Compare never call the server; nothing here keeps state
//     between calls.
package binpos

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/feedcdc/feedcdc/change"
	gomysql "github.com/go-mysql-org/go-mysql/mysql"
)

// Querier is what the position queries need: a *sql.DB, *sql.Conn or
// *sql.Tx.
type Querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// Flavor asks the server whether it is MariaDB or MySQL (go-mysql's
// flavor names "mariadb" and "mysql").
func Flavor(ctx context.Context, q Querier) (string, error) {
	var v string
	if err := q.QueryRowContext(ctx, "SELECT VERSION()").Scan(&v); err != nil {
		return "", fmt.Errorf("read the server version: %w", err)
	}
	if strings.Contains(strings.ToLower(v), "mariadb") {
		return gomysql.MariaDBFlavor, nil
	}
	return gomysql.MySQLFlavor, nil
}

// StartSnapshot opens a read-only consistent snapshot on conn (START
// TRANSACTION WITH CONSISTENT SNAPSHOT) under REPEATABLE READ, set for this
// transaction alone: a snapshot's binlog position describes what its reads
// see only at that level. The caller ends it with ROLLBACK.
func StartSnapshot(ctx context.Context, conn *sql.Conn) error {
	if _, err := conn.ExecContext(ctx, "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"); err != nil {
		return fmt.Errorf("set REPEATABLE READ for a snapshot: %w", err)
	}
	if _, err := conn.ExecContext(ctx, "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY"); err != nil {
		return fmt.Errorf("start a consistent snapshot: %w", err)
	}
	return nil
}

// SnapshotPosition is the binlog position (with its GTID state) of the
// consistent snapshot that the current transaction of conn opened with
// START TRANSACTION WITH CONSISTENT SNAPSHOT on MariaDB.
func SnapshotPosition(ctx context.Context, conn Querier) (change.Position, error) {
	rows, err := conn.QueryContext(ctx, "SHOW STATUS LIKE 'binlog_snapshot_%'")
	if err != nil {
		return change.Position{}, fmt.Errorf("read the snapshot's binlog position: %w", err)
	}
	p := change.Position{Flavor: gomysql.MariaDBFlavor}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			rows.Close()
			return p, err
		}
		switch strings.ToLower(k) {
		case "binlog_snapshot_file":
			p.File = v
		case "binlog_snapshot_position":
			n, _ := strconv.ParseUint(v, 10, 32)
			p.Pos = uint32(n)
		}
	}
	rows.Close()
	if p.File == "" {
		return p, errors.New("the source reports no binlog snapshot position (binlog_snapshot_file): it needs log_bin")
	}
	var g sql.NullString
	if err := conn.QueryRowContext(ctx, "SELECT BINLOG_GTID_POS(?, ?)", p.File, p.Pos).Scan(&g); err != nil {
		return p, fmt.Errorf("GTID state at %s: %w", p, err)
	}
	p.GTIDSet = g.String
	return p, nil
}

// OpenedSnapshot is the binlog position of the consistent snapshot just
// opened on conn (START TRANSACTION WITH CONSISTENT SNAPSHOT) on a server
// of the flavor: on MariaDB the snapshot's own position, on MySQL the
// current position, which is at or after every transaction the snapshot
// sees. Transactions whose events end after it are not in the snapshot.
func OpenedSnapshot(ctx context.Context, conn Querier, flavor string) (change.Position, error) {
	if flavor == gomysql.MariaDBFlavor {
		return SnapshotPosition(ctx, conn)
	}
	return CurrentPosition(ctx, conn)
}

// CurrentPosition is the server's binlog position now (SHOW MASTER STATUS,
// or SHOW BINARY LOG STATUS where that is gone), with its executed GTID set
// on MySQL.
func CurrentPosition(ctx context.Context, conn Querier) (change.Position, error) {
	rows, err := conn.QueryContext(ctx, "SHOW MASTER STATUS")
	if err != nil {
		if rows, err = conn.QueryContext(ctx, "SHOW BINARY LOG STATUS"); err != nil {
			return change.Position{}, fmt.Errorf("read the binlog position (needs REPLICATION CLIENT): %w", err)
		}
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	if !rows.Next() {
		return change.Position{}, errors.New("the source has no binary log (log_bin)")
	}
	vals := make([]sql.NullString, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		return change.Position{}, err
	}
	p := change.Position{Flavor: gomysql.MySQLFlavor, File: vals[0].String}
	if len(vals) > 1 {
		n, _ := strconv.ParseUint(vals[1].String, 10, 32)
		p.Pos = uint32(n)
	}
	if len(vals) >= 5 {
		p.GTIDSet = strings.ReplaceAll(vals[4].String, "\n", "")
	}
	return p, nil
}

// Reached reports whether a reader whose last transaction end is cur has
// read every transaction up to the watermark wm. GTID sets are compared
// when both positions have them, file/pos otherwise.
func Reached(cur, wm change.Position) bool {
	if cur.GTIDSet != "" && wm.GTIDSet != "" {
		flavor := wm.Flavor
		if flavor == "" {
			flavor = cur.Flavor
		}
		cs, err1 := gomysql.ParseGTIDSet(flavor, cur.GTIDSet)
		ws, err2 := gomysql.ParseGTIDSet(flavor, wm.GTIDSet)
		if err1 == nil && err2 == nil {
			return cs.Contain(ws)
		}
	}
	if wm.File == "" {
		return true
	}
	if cur.File == "" {
		return false
	}
	c, _ := Compare(cur.File, cur.Pos, wm.File, wm.Pos)
	return c >= 0
}

// Compare orders two file/pos positions of one server's binlog: -1, 0 or
// 1. ok is false when the files do not belong to one binlog (their base
// names differ, as after a switch to another server), so that no order is
// known; the result then orders the names as text.
func Compare(fileA string, posA uint32, fileB string, posB uint32) (c int, ok bool) {
	if c, ok = compareFiles(fileA, fileB); c != 0 {
		return c, ok
	}
	return cmp.Compare(posA, posB), ok
}

// compareFiles orders binlog file names (base.000123) by their sequence;
// ok tells whether both names have one base.
func compareFiles(a, b string) (c int, ok bool) {
	ia, ib := strings.LastIndexByte(a, '.'), strings.LastIndexByte(b, '.')
	if ia >= 0 && ib >= 0 {
		ok = a[:ia] == b[:ib]
		na, ea := strconv.ParseUint(a[ia+1:], 10, 64)
		nb, eb := strconv.ParseUint(b[ib+1:], 10, 64)
		if ea == nil && eb == nil {
			return cmp.Compare(na, nb), ok
		}
	}
	return strings.Compare(a, b), ok || a == b
}

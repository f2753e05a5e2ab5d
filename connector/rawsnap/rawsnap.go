// Package rawsnap reads captured tables for raw-stream snapshots: chunks of
// rows in primary-key order, each with the binlog position its rows are
// consistent with (its high watermark), without locks and without writes
// to the source.
//
// Invariants:
//   - On MariaDB a chunk is read inside START TRANSACTION WITH CONSISTENT
//     SNAPSHOT, and its watermark is the snapshot's own binlog position
//     (binlog_snapshot_file / binlog_snapshot_position, with its GTID
//     state): the rows show exactly the transactions the binlog holds up
//     to the watermark. On MySQL the watermark is the position read right
//     after the chunk's SELECT (SHOW MASTER STATUS / gtid_executed), which
//     is at or after every transaction the SELECT saw.
//   - Values are converted to the representation the binlog decoder gives
//     the same columns (docs/types.md), so that a snapshot record and a
//     streamed one of the same row have equal images and equal keys.
//   - A chunk holds at most its limit of rows; nothing here keeps state
//     between calls.
package rawsnap

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/feedcdc/feedcdc/change"
	"github.com/feedcdc/feedcdc/internal/binpos"
	gomysql "github.com/go-mysql-org/go-mysql/mysql"
)

// Table is a table to snapshot: its columns as the raw stream names them
// and the conversion of each column's SQL value.
type Table struct {
	*change.Table
	kinds []kind
}

type kind uint8

const (
	kText kind = iota
	kInt
	kUint
	kDecimal
	kFloat
	kDouble
	kBinary
	kDatetime
	kTimestamp
	kBit
	kYear
	kJSON
	kGeometry
)

// LoadTable reads the columns and primary key of db.name from
// information_schema. A table without a primary key cannot be chunked and
// is refused with an error that says so.
func LoadTable(ctx context.Context, pool *sql.DB, db, name string) (*Table, error) {
	rows, err := pool.QueryContext(ctx, `SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE
		FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION`, db, name)
	if err != nil {
		return nil, fmt.Errorf("rawsnap: read the columns of %s.%s: %w", db, name, err)
	}
	defer rows.Close()
	t := &Table{Table: &change.Table{DB: db, Name: name}}
	for rows.Next() {
		var col, dt, ct, null string
		if err := rows.Scan(&col, &dt, &ct, &null); err != nil {
			return nil, fmt.Errorf("rawsnap: read the columns of %s.%s: %w", db, name, err)
		}
		dt = strings.ToLower(dt)
		unsigned := strings.Contains(strings.ToLower(ct), "unsigned")
		t.Columns = append(t.Columns, change.Column{Name: col, Type: dt, Unsigned: unsigned, Nullable: null == "YES"})
		t.kinds = append(t.kinds, kindOf(dt, unsigned))
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("rawsnap: read the columns of %s.%s: %w", db, name, err)
	}
	if len(t.Columns) == 0 {
		return nil, fmt.Errorf("rawsnap: table %s.%s does not exist (or the user may not read it): check the name and GRANT SELECT on it", db, name)
	}
	pk, err := pool.QueryContext(ctx, `SELECT COLUMN_NAME FROM information_schema.STATISTICS
		WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND INDEX_NAME = 'PRIMARY' ORDER BY SEQ_IN_INDEX`, db, name)
	if err != nil {
		return nil, fmt.Errorf("rawsnap: read the primary key of %s.%s: %w", db, name, err)
	}
	defer pk.Close()
	for pk.Next() {
		var col string
		if err := pk.Scan(&col); err != nil {
			return nil, err
		}
		if i := t.ColumnIndex(col); i >= 0 {
			t.PK = append(t.PK, i)
		}
	}
	if err := pk.Err(); err != nil {
		return nil, err
	}
	// MariaDB's JSON is a LONGTEXT with a json_valid() check named after
	// the column; the stream renders it inline, so does the snapshot. (No
	// such table on MySQL: the query fails and changes nothing.)
	if chk, err := pool.QueryContext(ctx, `SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS
		WHERE CONSTRAINT_SCHEMA = ? AND TABLE_NAME = ? AND CHECK_CLAUSE LIKE 'json_valid(%'`, db, name); err == nil {
		for chk.Next() {
			var clause string
			if chk.Scan(&clause) == nil {
				col := strings.Trim(strings.TrimSuffix(strings.TrimPrefix(clause, "json_valid("), ")"), "`")
				if i := t.ColumnIndex(col); i >= 0 {
					t.Columns[i].Type, t.kinds[i] = "json", kJSON
				}
			}
		}
		chk.Close()
	}
	if len(t.PK) == 0 {
		return nil, fmt.Errorf("rawsnap: table %s.%s has no primary key: a snapshot reads it in primary-key chunks; add a primary key", db, name)
	}
	return t, nil
}

func kindOf(dt string, unsigned bool) kind {
	switch dt {
	case "tinyint", "smallint", "mediumint", "int", "integer", "bigint":
		if unsigned {
			return kUint
		}
		return kInt
	case "decimal", "numeric", "time":
		return kDecimal
	case "float":
		return kFloat
	case "double", "real":
		return kDouble
	case "binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob":
		return kBinary
	case "date", "datetime":
		return kDatetime
	case "timestamp":
		return kTimestamp
	case "bit":
		return kBit
	case "year":
		return kYear
	case "json":
		return kJSON
	case "geometry", "point", "linestring", "polygon", "multipoint", "multilinestring", "multipolygon", "geometrycollection":
		return kGeometry
	}
	return kText
}

// convert turns a value as the driver scanned it into the binlog
// decoder's representation of the column (docs/types.md).
func (t *Table) convert(i int, v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	k := t.kinds[i]
	switch x := v.(type) {
	case int64:
		switch k {
		case kUint, kBit:
			return uint64(x), nil
		case kFloat:
			return float32(x), nil
		case kDouble:
			return float64(x), nil
		case kText, kDecimal:
			return strconv.FormatInt(x, 10), nil
		}
		return x, nil
	case uint64:
		if k == kInt {
			return int64(x), nil
		}
		return x, nil
	case float32:
		if k == kDouble {
			return float64(x), nil
		}
		return x, nil
	case float64:
		if k == kFloat {
			return float32(x), nil
		}
		return x, nil
	case []byte:
		return t.convertBytes(i, k, x)
	case string:
		return t.convertBytes(i, k, []byte(x))
	}
	return nil, fmt.Errorf("rawsnap: %s.%s: unexpected %T value for column %s", t.DB, t.Name, v, t.Columns[i].Name)
}

func (t *Table) convertBytes(i int, k kind, b []byte) (any, error) {
	col := t.Columns[i].Name
	switch k {
	case kInt:
		return strconv.ParseInt(string(b), 10, 64)
	case kUint:
		return strconv.ParseUint(string(b), 10, 64)
	case kYear:
		return strconv.ParseInt(string(b), 10, 64)
	case kFloat:
		f, err := strconv.ParseFloat(string(b), 32)
		return float32(f), err
	case kDouble:
		return strconv.ParseFloat(string(b), 64)
	case kBinary:
		return append([]byte(nil), b...), nil
	case kBit:
		var u uint64
		for _, c := range b {
			u = u<<8 | uint64(c)
		}
		return u, nil
	case kDatetime:
		s := string(b)
		if zeroDate(s) {
			return nil, nil
		}
		return s, nil
	case kTimestamp:
		// Read with time_zone '+00:00': UTC wall clock -> RFC 3339.
		s := string(b)
		if zeroDate(s) {
			return nil, nil
		}
		if len(s) >= 19 && s[10] == ' ' {
			return s[:10] + "T" + s[11:] + "Z", nil
		}
		return s, nil
	case kJSON:
		if len(b) == 0 {
			return json.RawMessage("null"), nil
		}
		return json.RawMessage(append([]byte(nil), b...)), nil
	case kGeometry:
		if len(b) < 4 {
			return nil, fmt.Errorf("rawsnap: %s.%s: GEOMETRY value of column %s has %d bytes, shorter than its SRID", t.DB, t.Name, col, len(b))
		}
		return hex.EncodeToString(b[4:]), nil
	}
	return string(b), nil
}

func zeroDate(s string) bool { return len(s) >= 10 && (s[5:7] == "00" || s[8:10] == "00") }

// Chunk is one primary-key range of a table, read at one watermark.
type Chunk struct {
	Rows [][]any
	// LastKey is the primary key of the last row as SQL text (nil when
	// Rows is empty): the next chunk starts after it.
	LastKey []string
	// Watermark is the binlog position the rows are consistent with: a
	// reader that reached it has read every change the rows show.
	Watermark change.Position
	// More is set when rows after this chunk exist (the chunk is not the
	// table's last).
	More bool
}

// Reader reads chunks of tables from the source.
type Reader struct {
	DB *sql.DB
	// Flavor is "mariadb" or "mysql" (go-mysql's flavor names); empty:
	// asked from the server on the first chunk.
	Flavor string

	conn *sql.Conn // held between chunks, time_zone '+00:00'
	tz   string    // its time_zone before
}

// ReadChunk reads up to limit rows of t after the key after (nil: from the
// start) that match where (SQL, may be empty), in primary-key order. The
// Reader keeps one connection of the pool (time_zone '+00:00') between
// chunks; Close gives it back. After an error the connection is given
// back, and the next call takes another.
func (r *Reader) ReadChunk(ctx context.Context, t *Table, where string, after []string, limit int) (Chunk, error) {
	ch, err := r.readChunk(ctx, t, where, after, limit)
	if err != nil {
		r.Close()
	}
	return ch, err
}

func (r *Reader) readChunk(ctx context.Context, t *Table, where string, after []string, limit int) (Chunk, error) {
	if r.Flavor == "" {
		f, err := binpos.Flavor(ctx, r.DB)
		if err != nil {
			return Chunk{}, fmt.Errorf("rawsnap: %w", err)
		}
		r.Flavor = f
	}
	if r.conn == nil {
		conn, err := r.DB.Conn(ctx)
		if err != nil {
			return Chunk{}, fmt.Errorf("rawsnap: %w", err)
		}
		if err := conn.QueryRowContext(ctx, "SELECT @@session.time_zone").Scan(&r.tz); err != nil {
			conn.Close()
			return Chunk{}, fmt.Errorf("rawsnap: read time_zone: %w", err)
		}
		// TIMESTAMP values in UTC, as the binlog has them.
		if _, err := conn.ExecContext(ctx, "SET time_zone = '+00:00'"); err != nil {
			conn.Close()
			return Chunk{}, fmt.Errorf("rawsnap: set time_zone: %w", err)
		}
		r.conn = conn
	}
	conn := r.conn
	var ch Chunk
	var err error
	if r.Flavor == gomysql.MariaDBFlavor {
		if err := binpos.StartSnapshot(ctx, conn); err != nil {
			return Chunk{}, fmt.Errorf("rawsnap: %w", err)
		}
		defer conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK") //nolint:errcheck // read-only; a broken connection is dropped by Close
		if ch.Watermark, err = binpos.SnapshotPosition(ctx, conn); err != nil {
			return Chunk{}, fmt.Errorf("rawsnap: %w", err)
		}
		if err := readRows(ctx, conn, t, where, after, limit, &ch); err != nil {
			return Chunk{}, err
		}
		return ch, nil
	}
	if err := readRows(ctx, conn, t, where, after, limit, &ch); err != nil {
		return Chunk{}, err
	}
	if ch.Watermark, err = binpos.CurrentPosition(ctx, conn); err != nil {
		return Chunk{}, fmt.Errorf("rawsnap: %w", err)
	}
	return ch, nil
}

// Close gives the Reader's connection back to the pool with its time_zone
// restored.
func (r *Reader) Close() {
	if r.conn == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := r.conn.ExecContext(ctx, "SET time_zone = ?", r.tz); err != nil {
		// Do not hand a connection in UTC to the pool's next user.
		_ = r.conn.Raw(func(any) error { return driver.ErrBadConn })
	}
	r.conn.Close()
	r.conn = nil
}

// quoteIdent quotes an identifier with backticks.
func quoteIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

func readRows(ctx context.Context, conn *sql.Conn, t *Table, where string, after []string, limit int, ch *Chunk) error {
	var q strings.Builder
	q.WriteString("SELECT ")
	for i, c := range t.Columns {
		if i > 0 {
			q.WriteString(", ")
		}
		q.WriteString(quoteIdent(c.Name))
	}
	q.WriteString(" FROM " + quoteIdent(t.DB) + "." + quoteIdent(t.Name))
	var conds []string
	var args []any
	if strings.TrimSpace(where) != "" {
		conds = append(conds, "("+where+")")
	}
	if len(after) == len(t.PK) && len(after) > 0 {
		// (a > ?) OR (a = ? AND b > ?) ...: a range the optimizer uses.
		var ors []string
		for i := range t.PK {
			var ands []string
			for j := 0; j < i; j++ {
				ands = append(ands, quoteIdent(t.Columns[t.PK[j]].Name)+" = "+bound(after[j], &args))
			}
			ands = append(ands, quoteIdent(t.Columns[t.PK[i]].Name)+" > "+bound(after[i], &args))
			ors = append(ors, "("+strings.Join(ands, " AND ")+")")
		}
		conds = append(conds, "("+strings.Join(ors, " OR ")+")")
	}
	if len(conds) > 0 {
		q.WriteString(" WHERE " + strings.Join(conds, " AND "))
	}
	q.WriteString(" ORDER BY ")
	for i, idx := range t.PK {
		if i > 0 {
			q.WriteString(", ")
		}
		q.WriteString(quoteIdent(t.Columns[idx].Name))
	}
	q.WriteString(" LIMIT " + strconv.Itoa(limit+1)) // one more: is there a next chunk?
	rows, err := conn.QueryContext(ctx, q.String(), args...)
	if err != nil {
		return fmt.Errorf("rawsnap: read a chunk of %s.%s: %w", t.DB, t.Name, err)
	}
	defer rows.Close()
	n := len(t.Columns)
	scan := make([]any, n)
	ptrs := make([]any, n)
	for i := range scan {
		ptrs[i] = &scan[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return fmt.Errorf("rawsnap: read a chunk of %s.%s: %w", t.DB, t.Name, err)
		}
		row := make([]any, n)
		for i, v := range scan {
			c, err := t.convert(i, v)
			if err != nil {
				return err
			}
			row[i] = c
		}
		ch.Rows = append(ch.Rows, row)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("rawsnap: read a chunk of %s.%s: %w", t.DB, t.Name, err)
	}
	if len(ch.Rows) > limit {
		ch.Rows, ch.More = ch.Rows[:limit], true
	}
	if len(ch.Rows) > 0 {
		last := ch.Rows[len(ch.Rows)-1]
		ch.LastKey = make([]string, len(t.PK))
		for i, idx := range t.PK {
			ch.LastKey[i] = keyText(last[idx])
		}
	}
	return nil
}

// bound returns the SQL of a key bound: an integer inline (the chunk's
// query then needs one round trip, not a prepared statement's three), any
// other value as a placeholder with its argument.
func bound(v string, args *[]any) string {
	if _, err := strconv.ParseInt(v, 10, 64); err == nil {
		return v
	}
	if _, err := strconv.ParseUint(v, 10, 64); err == nil {
		return v
	}
	*args = append(*args, v)
	return "?"
}

// keyText renders a key value as SQL text for the next chunk's bound.
func keyText(v any) string {
	switch x := v.(type) {
	case []byte:
		return string(x)
	case nil:
		return ""
	}
	return fmt.Sprint(v)
}

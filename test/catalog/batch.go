package catalog

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
)

// batcher streams rows of one table into multi-row INSERT statements on one
// connection, committing a transaction every commitRows rows. Values are
// written as SQL literals (text protocol, no prepare round trip), so memory
// is bounded by one statement.
type batcher struct {
	conn       *sql.Conn
	table      string
	head       []byte
	buf        []byte
	rows       int // rows in buf
	maxRows    int
	maxBytes   int
	commitRows int
	txRows     int
	inTx       bool
	total      int64
	inRow      bool
	first      bool // first value of the current row
	// explicitIDs: begin writes base+slot+1 as the row's first value
	// (the primary key) and advances slot.
	explicitIDs bool
	base, slot  uint64
}

const maxStatementBytes = 1 << 20

func newBatcher(conn *sql.Conn, table, columns string, maxRows int) *batcher {
	b := &batcher{conn: conn, table: table, maxRows: maxRows, maxBytes: maxStatementBytes, commitRows: 20000}
	b.head = []byte("INSERT INTO " + table + " (" + columns + ") VALUES ")
	b.buf = make([]byte, 0, 64<<10)
	return b
}

func (b *batcher) begin() {
	if b.rows == 0 {
		b.buf = append(b.buf[:0], b.head...)
	} else {
		b.buf = append(b.buf, ',')
	}
	b.buf = append(b.buf, '(')
	b.inRow, b.first = true, true
	if b.explicitIDs {
		b.slot++
		b.u(b.base + b.slot)
	}
}

func (b *batcher) sep() {
	if !b.first {
		b.buf = append(b.buf, ',')
	}
	b.first = false
}

func (b *batcher) u(v uint64) *batcher { b.sep(); b.buf = strconv.AppendUint(b.buf, v, 10); return b }
func (b *batcher) i(v int64) *batcher  { b.sep(); b.buf = strconv.AppendInt(b.buf, v, 10); return b }
func (b *batcher) null() *batcher      { b.sep(); b.buf = append(b.buf, "NULL"...); return b }

// cents writes v/100 as an exact decimal literal.
func (b *batcher) cents(v int64) *batcher {
	b.sep()
	b.buf = appendCents(b.buf, v)
	return b
}

func appendCents(buf []byte, v int64) []byte {
	if v < 0 {
		buf = append(buf, '-')
		v = -v
	}
	buf = strconv.AppendInt(buf, v/100, 10)
	buf = append(buf, '.')
	if v%100 < 10 {
		buf = append(buf, '0')
	}
	return strconv.AppendInt(buf, v%100, 10)
}

func (b *batcher) s(v string) *batcher {
	b.sep()
	b.buf = appendQuoted(b.buf, v)
	return b
}

// appendQuoted appends v as a single-quoted MariaDB string literal (default
// sql_mode, backslash escapes on).
func appendQuoted(buf []byte, v string) []byte {
	buf = append(buf, '\'')
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		case 0:
			buf = append(buf, '\\', '0')
		case '\n':
			buf = append(buf, '\\', 'n')
		case '\r':
			buf = append(buf, '\\', 'r')
		case '\\':
			buf = append(buf, '\\', '\\')
		case '\'':
			buf = append(buf, '\\', '\'')
		case '"':
			buf = append(buf, '\\', '"')
		case 0x1a:
			buf = append(buf, '\\', 'Z')
		default:
			buf = append(buf, c)
		}
	}
	return append(buf, '\'')
}

// end closes the row and flushes when the statement is full.
func (b *batcher) end(ctx context.Context) error {
	b.buf = append(b.buf, ')')
	b.inRow = false
	b.rows++
	if b.rows >= b.maxRows || len(b.buf) >= b.maxBytes {
		return b.flush(ctx)
	}
	return nil
}

func (b *batcher) flush(ctx context.Context) error {
	if b.rows == 0 {
		return nil
	}
	if !b.inTx {
		if _, err := b.conn.ExecContext(ctx, "BEGIN"); err != nil {
			return fmt.Errorf("%s: begin: %w", b.table, err)
		}
		b.inTx = true
	}
	if _, err := b.conn.ExecContext(ctx, string(b.buf)); err != nil {
		return fmt.Errorf("insert %d rows into %s: %w", b.rows, b.table, err)
	}
	b.total += int64(b.rows)
	b.txRows += b.rows
	b.rows = 0
	b.buf = b.buf[:0]
	if b.txRows >= b.commitRows {
		return b.commit(ctx)
	}
	return nil
}

func (b *batcher) commit(ctx context.Context) error {
	if !b.inTx {
		return nil
	}
	b.inTx, b.txRows = false, 0
	if _, err := b.conn.ExecContext(ctx, "COMMIT"); err != nil {
		return fmt.Errorf("%s: commit: %w", b.table, err)
	}
	return nil
}

// close flushes the last statement and commits.
func (b *batcher) close(ctx context.Context) error {
	if err := b.flush(ctx); err != nil {
		return err
	}
	return b.commit(ctx)
}

// abort rolls back an open transaction after an error.
func (b *batcher) abort() {
	if b.inTx {
		_, _ = b.conn.ExecContext(context.Background(), "ROLLBACK")
		b.inTx = false
	}
}

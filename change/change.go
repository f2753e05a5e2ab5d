// Package change defines the records that flow from the binlog source to the
// feeds and raw streams: one Change per row image, and a TxEnd that closes
// each source transaction.
//
// Invariants:
//   - Changes of one transaction arrive in binlog order, followed by exactly
//     one TxEnd carrying the position just after that transaction. Only a
//     TxEnd position may ever be stored as a checkpoint.
//   - A Change's Before/After slices are indexed like Table.Columns; a nil
//     slice means "no image" (Before of an insert, After of a delete).
//   - Table values are immutable once published and shared by every Change
//     decoded under that schema version, so receivers may keep the pointer.
//   - Values are already normalised by the decoder (see docs/types.md):
//     integers as int64/uint64, DECIMAL as an exact string, temporal values as
//     strings, binary values as []byte, JSON as json.RawMessage, NULL as nil.
//   - A start position (source.start_position, feedcdc position set) has one
//     syntax and one parser, ParseStartPosition, used by config to validate
//     it and by connector/binlog to resolve it.
package change

import (
	"fmt"
	"strings"
	"time"
)

// Op is the kind of a row change, with Debezium's letters.
type Op string

const (
	OpCreate Op = "c" // insert
	OpUpdate Op = "u" // update
	OpDelete Op = "d" // delete
	OpRead   Op = "r" // snapshot read
	// OpTruncate is a TRUNCATE TABLE: no images, the table was emptied.
	OpTruncate Op = "t"
	// OpReplace is a rename that put another table in this table's place
	// (an online schema change's cut-over, a staging-table swap): no
	// images; the rows now in the table never were row events of it. Not a
	// Debezium letter: Debezium has no such event.
	OpReplace Op = "replace"
)

// Column describes one column of a captured table.
type Column struct {
	Name     string
	Type     string // lower-case SQL type name, e.g. "bigint", "decimal", "varchar"
	Unsigned bool
	Nullable bool
}

// Table is the schema of a captured table at one point in the binlog.
type Table struct {
	DB      string
	Name    string
	Columns []Column
	PK      []int // indexes into Columns, in key order; empty if the table has no primary key
}

// ColumnIndex returns the index of the named column, or -1.
func (t *Table) ColumnIndex(name string) int {
	for i := range t.Columns {
		if strings.EqualFold(t.Columns[i].Name, name) {
			return i
		}
	}
	return -1
}

// FullName is "db.table".
func (t *Table) FullName() string { return t.DB + "." + t.Name }

// Position is a point in the source's binlog: a GTID set (preferred for
// resume) and a file/offset pair (always set for positions read from a
// stream).
type Position struct {
	Flavor  string `json:"flavor,omitempty"` // "mysql" or "mariadb"
	GTIDSet string `json:"gtid_set,omitempty"`
	File    string `json:"file,omitempty"`
	Pos     uint32 `json:"pos,omitempty"`
}

// IsZero reports whether no position is set.
func (p Position) IsZero() bool { return p.GTIDSet == "" && p.File == "" }

func (p Position) String() string {
	switch {
	case p.GTIDSet != "" && p.File != "":
		return fmt.Sprintf("gtid:%s (%s:%d)", p.GTIDSet, p.File, p.Pos)
	case p.GTIDSet != "":
		return "gtid:" + p.GTIDSet
	case p.File != "":
		return fmt.Sprintf("%s:%d", p.File, p.Pos)
	}
	return "(none)"
}

// Source says where a change came from.
type Source struct {
	ServerID  uint32
	GTID      string    // GTID of the transaction ("" without GTIDs)
	File      string    // binlog file of the rows event
	Pos       uint32    // end position of the rows event
	Row       int       // index of the row image within its rows event
	Timestamp time.Time // event timestamp (commit time on the source, second precision)
	// Snapshot is source.snapshot of a snapshot read (Op "r"): "true" (a
	// row of the initial snapshot), "last" (its last row) or
	// "incremental" (a snapshot asked for later); "" for streamed changes
	// (rendered "false", as Debezium does).
	Snapshot string
	Flavor   string // "mysql" or "mariadb" (the server the change was read from)
	Query    string // the statement that made the row change, when the server logs it ("" otherwise)
	Thread   uint32 // id of the session (connection) that made the change, when known (0 otherwise)
}

// Change is one row change of a captured table.
type Change struct {
	Table  *Table
	Op     Op
	Before []any
	After  []any
	Source Source
}

// Row returns the newest image: After, or Before for a delete.
func (c *Change) Row() []any {
	if c.After != nil {
		return c.After
	}
	return c.Before
}

// Get returns the value of the named column in the newest image, and whether
// the column exists.
func (c *Change) Get(col string) (any, bool) {
	i := c.Table.ColumnIndex(col)
	row := c.Row()
	if i < 0 || i >= len(row) {
		return nil, false
	}
	return row[i], true
}

// GetBefore returns the value of the named column in the before image.
func (c *Change) GetBefore(col string) (any, bool) {
	i := c.Table.ColumnIndex(col)
	if i < 0 || i >= len(c.Before) {
		return nil, false
	}
	return c.Before[i], true
}

// Key returns the primary-key values of the newest image, in key order.
func (c *Change) Key() []any {
	row := c.Row()
	k := make([]any, len(c.Table.PK))
	for i, idx := range c.Table.PK {
		if idx < len(row) {
			k[i] = row[idx]
		}
	}
	return k
}

// SchemaChange is one DDL statement that changed (created, altered,
// renamed, dropped) a captured table, delivered at its place in the stream.
type SchemaChange struct {
	// Table names the table; its Columns and PK are the schema after the
	// statement (empty for a dropped table, or one whose schema is unknown).
	Table *Table
	// Kind is CREATE, ALTER or DROP (a rename drops the old name and
	// creates the new one).
	Kind string
	// DDL is the statement as logged.
	DDL    string
	Source Source
}

// TxEnd closes a source transaction. Position is where streaming resumes to
// continue after it; it is the only kind of position stored as a checkpoint.
type TxEnd struct {
	GTID      string
	Position  Position
	Timestamp time.Time
	Rows      int // row changes of captured tables in the transaction
}

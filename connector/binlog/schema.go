package binlog

import (
	"fmt"
	"strconv"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"

	"github.com/feedcdc/feedcdc/change"
)

// valueKind is how a decoded value is normalised (see docs/types.md).
type valueKind uint8

const (
	kInt valueKind = iota
	kUint
	kDecimal
	kFloat
	kDouble
	kBit
	kYear
	kDate
	kDatetime
	kTimestamp
	kTime
	kText     // character string in some charset
	kBinary   // BINARY/VARBINARY/BLOB: []byte
	kFixedBin // BINARY(n): []byte re-padded with 0x00 to n bytes
	kEnum
	kSet
	kJSON     // MySQL binary JSON
	kJSONText // MariaDB JSON (a LONGTEXT with a json_valid check)
	kGeometry
	kVector
	kNull
)

// colInfo is everything the normaliser needs about one column.
type colInfo struct {
	kind    valueKind
	typ     byte // binlog column type (real type for ENUM/SET)
	meta    uint16
	length  int // BINARY(n) length
	charset charset
	values  []string // ENUM/SET member strings; nil when unknown
}

// tableInfo is the decoding plan of one table version.
type tableInfo struct {
	table *change.Table
	cols  []colInfo
}

// storedColumn is a column as kept in the schema history: change.Column's
// fields plus what decoding needs and change.Column does not carry.
type storedColumn struct {
	Name     string
	Type     string
	Unsigned bool     `json:",omitempty"`
	Nullable bool     `json:",omitempty"`
	Charset  string   `json:",omitempty"`
	Values   []string `json:",omitempty"` // ENUM/SET members
	Length   int      `json:",omitempty"` // BINARY(n)/CHAR(n) length in characters
}

// storedTable is the JSON kept in SchemaRecord.Schema; it is a superset of
// change.Table's JSON, so a change.Table can be unmarshalled from it.
type storedTable struct {
	DB      string
	Name    string
	Columns []storedColumn
	PK      []int
}

// binlogTypeName names a binlog column type the SQL way.
func binlogTypeName(real byte, cs charset, meta uint16) string {
	bin := cs.kind == csBinary
	switch real {
	case mysql.MYSQL_TYPE_TINY:
		return "tinyint"
	case mysql.MYSQL_TYPE_SHORT:
		return "smallint"
	case mysql.MYSQL_TYPE_INT24:
		return "mediumint"
	case mysql.MYSQL_TYPE_LONG:
		return "int"
	case mysql.MYSQL_TYPE_LONGLONG:
		return "bigint"
	case mysql.MYSQL_TYPE_NEWDECIMAL, mysql.MYSQL_TYPE_DECIMAL:
		return "decimal"
	case mysql.MYSQL_TYPE_FLOAT:
		return "float"
	case mysql.MYSQL_TYPE_DOUBLE:
		return "double"
	case mysql.MYSQL_TYPE_BIT:
		return "bit"
	case mysql.MYSQL_TYPE_YEAR:
		return "year"
	case mysql.MYSQL_TYPE_DATE, mysql.MYSQL_TYPE_NEWDATE:
		return "date"
	case mysql.MYSQL_TYPE_DATETIME, mysql.MYSQL_TYPE_DATETIME2:
		return "datetime"
	case mysql.MYSQL_TYPE_TIMESTAMP, mysql.MYSQL_TYPE_TIMESTAMP2:
		return "timestamp"
	case mysql.MYSQL_TYPE_TIME, mysql.MYSQL_TYPE_TIME2:
		return "time"
	case mysql.MYSQL_TYPE_VARCHAR, mysql.MYSQL_TYPE_VAR_STRING:
		if bin {
			return "varbinary"
		}
		return "varchar"
	case mysql.MYSQL_TYPE_STRING:
		if bin {
			return "binary"
		}
		return "char"
	case mysql.MYSQL_TYPE_ENUM:
		return "enum"
	case mysql.MYSQL_TYPE_SET:
		return "set"
	case mysql.MYSQL_TYPE_BLOB, mysql.MYSQL_TYPE_TINY_BLOB, mysql.MYSQL_TYPE_MEDIUM_BLOB, mysql.MYSQL_TYPE_LONG_BLOB:
		prefix := [5]string{"", "tiny", "", "medium", "long"}
		p := ""
		if int(meta) < len(prefix) {
			p = prefix[meta]
		}
		if bin {
			return p + "blob"
		}
		return p + "text"
	case mysql.MYSQL_TYPE_JSON:
		return "json"
	case mysql.MYSQL_TYPE_GEOMETRY:
		return "geometry"
	case mysql.MYSQL_TYPE_VECTOR:
		return "vector"
	}
	return "type" + strconv.Itoa(int(real))
}

// realTypeMeta resolves the real type of a MYSQL_TYPE_STRING column (ENUM,
// SET and CHAR share it) and the CHAR/BINARY byte length.
func realTypeMeta(typ byte, meta uint16) (real byte, length int) {
	if typ != mysql.MYSQL_TYPE_STRING || meta < 256 {
		return typ, int(meta)
	}
	b0 := byte(meta >> 8)
	b1 := byte(meta & 0xff)
	if b0&0x30 != 0x30 {
		return b0 | 0x30, int(uint16(b1) | uint16((b0&0x30)^0x30)<<4)
	}
	return b0, int(b1)
}

// kindFor picks the normalisation of a column from its binlog type.
func kindFor(real byte, unsigned bool, cs charset, jsonText bool) valueKind {
	switch real {
	case mysql.MYSQL_TYPE_TINY, mysql.MYSQL_TYPE_SHORT, mysql.MYSQL_TYPE_INT24, mysql.MYSQL_TYPE_LONG, mysql.MYSQL_TYPE_LONGLONG:
		if unsigned {
			return kUint
		}
		return kInt
	case mysql.MYSQL_TYPE_NEWDECIMAL, mysql.MYSQL_TYPE_DECIMAL:
		return kDecimal
	case mysql.MYSQL_TYPE_FLOAT:
		return kFloat
	case mysql.MYSQL_TYPE_DOUBLE:
		return kDouble
	case mysql.MYSQL_TYPE_BIT:
		return kBit
	case mysql.MYSQL_TYPE_YEAR:
		return kYear
	case mysql.MYSQL_TYPE_DATE, mysql.MYSQL_TYPE_NEWDATE:
		return kDate
	case mysql.MYSQL_TYPE_DATETIME, mysql.MYSQL_TYPE_DATETIME2:
		return kDatetime
	case mysql.MYSQL_TYPE_TIMESTAMP, mysql.MYSQL_TYPE_TIMESTAMP2:
		return kTimestamp
	case mysql.MYSQL_TYPE_TIME, mysql.MYSQL_TYPE_TIME2:
		return kTime
	case mysql.MYSQL_TYPE_ENUM:
		return kEnum
	case mysql.MYSQL_TYPE_SET:
		return kSet
	case mysql.MYSQL_TYPE_JSON:
		return kJSON
	case mysql.MYSQL_TYPE_GEOMETRY:
		return kGeometry
	case mysql.MYSQL_TYPE_VECTOR:
		return kVector
	case mysql.MYSQL_TYPE_NULL:
		return kNull
	case mysql.MYSQL_TYPE_STRING:
		if cs.kind == csBinary {
			return kFixedBin
		}
		return kText
	case mysql.MYSQL_TYPE_VARCHAR, mysql.MYSQL_TYPE_VAR_STRING, mysql.MYSQL_TYPE_BLOB,
		mysql.MYSQL_TYPE_TINY_BLOB, mysql.MYSQL_TYPE_MEDIUM_BLOB, mysql.MYSQL_TYPE_LONG_BLOB:
		if cs.kind == csBinary {
			return kBinary
		}
		if jsonText {
			return kJSONText
		}
		return kText
	}
	return kBinary
}

// tableFromMap builds the decoding plan of a TABLE_MAP event. When the event
// carries column names (binlog_row_metadata=FULL) it is self-sufficient;
// otherwise hist (the schema history's version of the table, may be nil)
// supplies names, signedness, charsets and ENUM/SET members, and without
// either the columns are named @1, @2, … like mysqlbinlog does.
// jsonCols names MariaDB JSON columns known from the schema history.
func tableFromMap(tm *replication.TableMapEvent, hist *storedTable) (*tableInfo, error) {
	n := int(tm.ColumnCount)
	names := tm.ColumnNameString()
	full := len(names) == n && n > 0
	if hist != nil && !full && len(hist.Columns) != n {
		return nil, fmt.Errorf("schema history has %d columns for %s.%s but the binlog row has %d: the history is out of step with the binlog (see docs/binlog.md, \"Schema\")",
			len(hist.Columns), tm.Schema, tm.Table, n)
	}
	unsigned := tm.UnsignedMap()
	colls := tm.CollationMap()
	esColls := tm.EnumSetCollationMap()
	enums := tm.EnumStrValueMap()
	sets := tm.SetStrValueMap()

	var histCols map[string]*storedColumn
	if hist != nil && full {
		histCols = make(map[string]*storedColumn, len(hist.Columns))
		for i := range hist.Columns {
			histCols[hist.Columns[i].Name] = &hist.Columns[i]
		}
	}

	ti := &tableInfo{
		table: &change.Table{DB: string(tm.Schema), Name: string(tm.Table), Columns: make([]change.Column, n)},
		cols:  make([]colInfo, n),
	}
	for i := 0; i < n; i++ {
		typ := tm.ColumnType[i]
		meta := tm.ColumnMeta[i]
		real, length := realTypeMeta(typ, meta)
		ci := colInfo{typ: real, meta: meta, length: length, charset: charsetUTF8}
		col := change.Column{}
		_, col.Nullable = tm.Nullable(i)

		var hc *storedColumn
		switch {
		case full:
			col.Name = names[i]
			hc = histCols[col.Name]
		case hist != nil:
			hc = &hist.Columns[i]
			col.Name = hc.Name
		default:
			col.Name = "@" + strconv.Itoa(i+1)
		}

		if u, ok := unsigned[i]; ok {
			col.Unsigned = u
		} else if hc != nil {
			col.Unsigned = hc.Unsigned
		}
		ci.charset = columnCharset(i, real, hc, colls, esColls)
		ci.values = columnMembers(i, real, hc, enums, sets)
		jsonText := hc != nil && hc.Type == "json" && real != mysql.MYSQL_TYPE_JSON
		ci.kind = kindFor(real, col.Unsigned, ci.charset, jsonText)
		if hc != nil && hc.Type != "" {
			col.Type = hc.Type
		} else {
			col.Type = binlogTypeName(real, ci.charset, meta)
		}
		ti.table.Columns[i] = col
		ti.cols[i] = ci
	}
	ti.table.PK = primaryKey(tm, hist, full, ti.table)
	return ti, nil
}

// columnCharset is column i's character set: from the event's collations,
// else from the schema history, else binary for a type that is binary
// only when the event has no collations (default UTF-8).
func columnCharset(i int, real byte, hc *storedColumn, colls, esColls map[int]uint64) charset {
	if id, ok := colls[i]; ok {
		return charsetForCollation(id)
	} else if id, ok := esColls[i]; ok {
		return charsetForCollation(id)
	} else if hc != nil && hc.Charset != "" {
		return charsetForName(hc.Charset)
	} else if hc == nil && isBinaryOnlyType(real, colls == nil) {
		return charsetBinary
	}
	return charsetUTF8
}

// columnMembers is column i's ENUM or SET members: from the event, else
// from the schema history (nil when unknown).
func columnMembers(i int, real byte, hc *storedColumn, enums, sets map[int][]string) []string {
	if v, ok := enums[i]; ok {
		return v
	} else if v, ok := sets[i]; ok {
		return v
	} else if hc != nil && (real == mysql.MYSQL_TYPE_ENUM || real == mysql.MYSQL_TYPE_SET) {
		return hc.Values
	}
	return nil
}

// primaryKey is the table's primary key: from the event, else the schema
// history's, mapped onto the event's columns by name when the event has
// names (full), by position otherwise.
func primaryKey(tm *replication.TableMapEvent, hist *storedTable, full bool, table *change.Table) []int {
	var pk []int
	switch {
	case len(tm.PrimaryKey) > 0:
		pk = make([]int, len(tm.PrimaryKey))
		for i, p := range tm.PrimaryKey {
			pk[i] = int(p)
		}
	case hist != nil:
		for _, p := range hist.PK {
			if full {
				// map the history's PK column names onto this event's order
				if p < len(hist.Columns) {
					if idx := table.ColumnIndex(hist.Columns[p].Name); idx >= 0 {
						pk = append(pk, idx)
					}
				}
			} else if p < int(tm.ColumnCount) {
				pk = append(pk, p)
			}
		}
	}
	return pk
}

// isBinaryOnlyType reports columns decoded as bytes when neither the binlog
// nor the schema history says their charset: GEOMETRY and VECTOR always, and
// BLOB/TEXT when the TABLE_MAP has no charset metadata at all (so that binary
// data is never mangled). CHAR/VARCHAR without metadata decode as UTF-8 text.
func isBinaryOnlyType(real byte, noCharsetInfo bool) bool {
	switch real {
	case mysql.MYSQL_TYPE_GEOMETRY, mysql.MYSQL_TYPE_VECTOR:
		return true
	case mysql.MYSQL_TYPE_BLOB, mysql.MYSQL_TYPE_TINY_BLOB, mysql.MYSQL_TYPE_MEDIUM_BLOB, mysql.MYSQL_TYPE_LONG_BLOB:
		return noCharsetInfo
	}
	return false
}

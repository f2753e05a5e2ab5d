package binlog

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/go-mysql-org/go-mysql/replication"
)

// ZeroDates says what a zero or partly-zero DATE/DATETIME/TIMESTAMP
// ('0000-00-00', '2024-00-10 …') becomes.
type ZeroDates string

const (
	ZeroDatesNull   ZeroDates = "null"   // nil (default)
	ZeroDatesString ZeroDates = "string" // the MySQL text, e.g. "0000-00-00 00:00:00"
)

// errPartialJSON is returned for a PARTIAL_UPDATE_ROWS image carrying a JSON diff.
var errPartialJSON = fmt.Errorf("the row update carries a partial JSON diff (binlog_row_value_options=PARTIAL_JSON), which cannot be turned into a full after image: run SET GLOBAL binlog_row_value_options='' on the source, then resync the affected tables")

// normalize turns one value as decoded by go-mysql into the representation
// documented in docs/types.md. v is never nil here. Each kind has its own
// step; a value of a Go type the kind does not expect is an error.
func normalize(v any, c *colInfo, zero ZeroDates) (any, error) {
	switch c.kind {
	case kInt:
		return normalizeInt(v, c)
	case kUint:
		return normalizeUint(v, c)
	case kDecimal, kTime:
		if s, ok := v.(string); ok {
			return s, nil
		}
	case kFloat:
		if f, ok := v.(float32); ok {
			return f, nil
		}
	case kDouble:
		if f, ok := v.(float64); ok {
			return f, nil
		}
	case kBit:
		if x, ok := v.(int64); ok {
			return uint64(x), nil
		}
	case kYear:
		if x, ok := v.(int); ok {
			return int64(x), nil
		}
	case kDate, kDatetime:
		return normalizeDatetime(v, c, zero)
	case kTimestamp:
		return normalizeTimestamp(v, c, zero)
	case kText:
		return normalizeText(v, c)
	case kBinary, kFixedBin:
		return normalizeBinary(v, c)
	case kEnum:
		return normalizeEnum(v, c)
	case kSet:
		return normalizeSet(v, c)
	case kJSON:
		return normalizeJSON(v, c)
	case kJSONText:
		return normalizeJSONText(v)
	case kGeometry:
		if b, ok := v.([]byte); ok {
			if len(b) < 4 {
				return nil, fmt.Errorf("GEOMETRY value of %d bytes is shorter than its 4-byte SRID", len(b))
			}
			return hex.EncodeToString(b[4:]), nil
		}
	case kVector:
		if b, ok := v.([]byte); ok {
			return b, nil
		}
	case kNull:
		return nil, nil
	}
	return nil, unexpectedValue(v, c)
}

func unexpectedValue(v any, c *colInfo) error {
	return fmt.Errorf("unexpected %T value for a %s column", v, kindName(c.kind))
}

// normalizeInt widens a signed integer to int64. go-mysql may hand a signed
// column's value as an unsigned Go type; its bits are reinterpreted at the
// column's width.
func normalizeInt(v any, c *colInfo) (any, error) {
	switch x := v.(type) {
	case int8:
		return int64(x), nil
	case int16:
		return int64(x), nil
	case int32:
		return int64(x), nil
	case int64:
		return x, nil
	case uint8:
		return int64(int8(x)), nil
	case uint16:
		return int64(int16(x)), nil
	case uint32:
		if c.typ == 9 { // INT24 decoded unsigned
			return int64(int32(x<<8) >> 8), nil
		}
		return int64(int32(x)), nil
	case uint64:
		return int64(x), nil
	}
	return nil, unexpectedValue(v, c)
}

// normalizeUint widens an unsigned integer to uint64. go-mysql decodes
// unsigned columns as signed unless the TABLE_MAP carries signedness;
// the bits are reinterpreted at the column's width.
func normalizeUint(v any, c *colInfo) (any, error) {
	switch x := v.(type) {
	case int8:
		return uint64(uint8(x)), nil
	case int16:
		return uint64(uint16(x)), nil
	case int32:
		if c.typ == 9 { // INT24
			return uint64(uint32(x) & 0xffffff), nil
		}
		return uint64(uint32(x)), nil
	case int64:
		return uint64(x), nil
	case uint8:
		return uint64(x), nil
	case uint16:
		return uint64(x), nil
	case uint32:
		return uint64(x), nil
	case uint64:
		return x, nil
	}
	return nil, unexpectedValue(v, c)
}

// normalizeDatetime keeps a DATE/DATETIME as its wall-clock text; a zero
// date becomes nil unless zero is ZeroDatesString.
func normalizeDatetime(v any, c *colInfo, zero ZeroDates) (any, error) {
	switch x := v.(type) {
	case string:
		if zeroDate(x) && zero != ZeroDatesString {
			return nil, nil
		}
		return x, nil
	case time.Time: // ParseTime: DATETIME(fsp) from 1970 on, already in UTC = wall clock
		return formatDatetime(x, int(c.meta), ' ', false), nil
	}
	return nil, unexpectedValue(v, c)
}

// normalizeTimestamp turns a TIMESTAMP into RFC 3339 UTC text; a zero
// timestamp becomes nil unless zero is ZeroDatesString.
func normalizeTimestamp(v any, c *colInfo, zero ZeroDates) (any, error) {
	switch x := v.(type) {
	case time.Time:
		return formatDatetime(x.UTC(), int(c.meta), 'T', true), nil
	case string:
		if zeroDate(x) {
			if zero != ZeroDatesString {
				return nil, nil
			}
			return x, nil
		}
		// "2006-01-02 15:04:05[.ffffff]" in UTC -> RFC 3339 "…T…Z"
		if len(x) >= 19 && x[10] == ' ' {
			return x[:10] + "T" + x[11:] + "Z", nil
		}
		return x, nil
	}
	return nil, unexpectedValue(v, c)
}

// normalizeText decodes text in the column's character set to UTF-8.
func normalizeText(v any, c *colInfo) (any, error) {
	switch x := v.(type) {
	case string:
		return c.charset.decodeTextString(x)
	case []byte:
		return c.charset.decodeText(x)
	}
	return nil, unexpectedValue(v, c)
}

// normalizeBinary returns the bytes of a binary column; BINARY(n) gets
// back the trailing 0x00 bytes MySQL strips from row images.
func normalizeBinary(v any, c *colInfo) (any, error) {
	var b []byte
	switch x := v.(type) {
	case []byte:
		b = x
	case string:
		b = []byte(x)
	default:
		return nil, unexpectedValue(v, c)
	}
	if c.kind == kFixedBin && len(b) < c.length {
		p := make([]byte, c.length)
		copy(p, b)
		b = p
	}
	return b, nil
}

// normalizeEnum turns an ENUM index into its member's name (the index
// itself when the members are unknown; "" for the "invalid value" 0).
func normalizeEnum(v any, c *colInfo) (any, error) {
	x, ok := v.(int64)
	if !ok {
		return nil, unexpectedValue(v, c)
	}
	if c.values == nil {
		return x, nil
	}
	if x == 0 {
		return "", nil // the "invalid value" member
	}
	if int(x) <= len(c.values) {
		return c.values[x-1], nil
	}
	return nil, fmt.Errorf("ENUM index %d out of range (%d members)", x, len(c.values))
}

// normalizeSet turns a SET bitmap into its members' names joined by
// commas (the bitmap itself when the members are unknown).
func normalizeSet(v any, c *colInfo) (any, error) {
	x, ok := v.(int64)
	if !ok {
		return nil, unexpectedValue(v, c)
	}
	if c.values == nil {
		return uint64(x), nil
	}
	var sb strings.Builder
	for i, m := range c.values {
		if x&(1<<uint(i)) != 0 {
			if sb.Len() > 0 {
				sb.WriteByte(',')
			}
			sb.WriteString(m)
		}
	}
	return sb.String(), nil
}

// normalizeJSON returns MySQL's JSON (decoded to text by go-mysql) as raw
// JSON; a partial JSON diff cannot be turned into a value.
func normalizeJSON(v any, c *colInfo) (any, error) {
	switch x := v.(type) {
	case string:
		return json.RawMessage(x), nil
	case []byte:
		if len(x) == 0 {
			return json.RawMessage("null"), nil
		}
		return json.RawMessage(x), nil
	case *replication.JsonDiff:
		return nil, errPartialJSON
	}
	return nil, unexpectedValue(v, c)
}

// normalizeJSONText returns MariaDB's JSON (a LONGTEXT) as raw JSON after
// checking that it is valid.
func normalizeJSONText(v any) (any, error) {
	var b []byte
	switch x := v.(type) {
	case []byte:
		b = x
	case string:
		b = []byte(x)
	}
	if !json.Valid(b) {
		return nil, fmt.Errorf("MariaDB JSON column holds invalid JSON text %q", truncate(b, 64))
	}
	return json.RawMessage(b), nil
}

// zeroDate reports a zero or partly-zero date ("0000-00-00", "2024-00-01",
// "2024-05-00 …").
func zeroDate(s string) bool {
	if len(s) < 10 {
		return false
	}
	return s[5:7] == "00" || s[8:10] == "00"
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

func kindName(k valueKind) string {
	names := [...]string{"int", "unsigned int", "decimal", "float", "double", "bit", "year", "date", "datetime", "timestamp", "time", "text", "binary", "binary(n)", "enum", "set", "json", "json text", "geometry", "vector", "null"}
	if int(k) < len(names) {
		return names[k]
	}
	return "unknown"
}

// formatDatetime renders t as "2006-01-02 15:04:05" (sep ' ') or
// "2006-01-02T15:04:05" plus fsp fractional digits (0-6), with a trailing
// "Z" when utc is set. It avoids fmt/time.Format on the hot path.
func formatDatetime(t time.Time, fsp int, sep byte, utc bool) string {
	if fsp < 0 || fsp > 6 {
		fsp = 0
	}
	var b [32]byte
	y, mo, d := t.Date()
	h, mi, s := t.Clock()
	put := func(i, v, n int) {
		for k := n - 1; k >= 0; k-- {
			b[i+k] = byte('0' + v%10)
			v /= 10
		}
	}
	put(0, y, 4)
	b[4] = '-'
	put(5, int(mo), 2)
	b[7] = '-'
	put(8, d, 2)
	b[10] = sep
	put(11, h, 2)
	b[13] = ':'
	put(14, mi, 2)
	b[16] = ':'
	put(17, s, 2)
	n := 19
	if fsp > 0 {
		b[19] = '.'
		us := t.Nanosecond() / 1000
		for k := 0; k < 6-fsp; k++ {
			us /= 10
		}
		put(20, us, fsp)
		n = 20 + fsp
	}
	if utc {
		b[n] = 'Z'
		n++
	}
	return string(b[:n])
}

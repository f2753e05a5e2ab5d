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
// documented in docs/types.md. v is never nil here.
func normalize(v any, c *colInfo, zero ZeroDates) (any, error) {
	switch c.kind {
	case kInt:
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
	case kUint:
		// go-mysql decodes unsigned columns as signed unless the TABLE_MAP
		// carries signedness; reinterpret the bits at the column's width.
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
	case kDecimal:
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
		switch x := v.(type) {
		case string:
			if zeroDate(x) && zero != ZeroDatesString {
				return nil, nil
			}
			return x, nil
		case time.Time: // ParseTime: DATETIME(fsp) from 1970 on, already in UTC = wall clock
			return formatDatetime(x, int(c.meta), ' ', false), nil
		}
	case kTimestamp:
		if t, ok := v.(time.Time); ok {
			return formatDatetime(t.UTC(), int(c.meta), 'T', true), nil
		}
		if s, ok := v.(string); ok {
			if zeroDate(s) {
				if zero != ZeroDatesString {
					return nil, nil
				}
				return s, nil
			}
			// "2006-01-02 15:04:05[.ffffff]" in UTC -> RFC 3339 "…T…Z"
			if len(s) >= 19 && s[10] == ' ' {
				return s[:10] + "T" + s[11:] + "Z", nil
			}
			return s, nil
		}
	case kTime:
		if s, ok := v.(string); ok {
			return s, nil
		}
	case kText:
		switch x := v.(type) {
		case string:
			return c.charset.decodeTextString(x)
		case []byte:
			return c.charset.decodeText(x)
		}
	case kBinary:
		switch x := v.(type) {
		case []byte:
			return x, nil
		case string:
			return []byte(x), nil
		}
	case kFixedBin:
		var b []byte
		switch x := v.(type) {
		case []byte:
			b = x
		case string:
			b = []byte(x)
		}
		if b != nil || v != nil {
			if len(b) < c.length {
				// MySQL strips trailing 0x00 from BINARY(n) in row images; restore them.
				p := make([]byte, c.length)
				copy(p, b)
				b = p
			}
			return b, nil
		}
	case kEnum:
		if x, ok := v.(int64); ok {
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
	case kSet:
		if x, ok := v.(int64); ok {
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
	case kJSON:
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
	case kJSONText:
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
	return nil, fmt.Errorf("unexpected %T value for a %s column", v, kindName(c.kind))
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

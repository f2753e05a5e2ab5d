// Package raw turns row changes into Debezium-style JSON envelopes for the
// raw per-table change streams:
//
//	{"before":{…}|null,"after":{…}|null,"op":"c|u|d|r",
//	 "source":{"name":…,"server_id":…,"gtid":…,"file":…,"pos":…,"row":…,
//	           "ts_ms":…,"db":…,"table":…,"snapshot":"false|true|last|incremental"},
//	 "ts_ms":…}
//
// keyed by the JSON object of the primary-key columns ({"id":1}), on a
// topic named by a template ("{prefix}.{db}.{table}" by default). It also
// renders the other records of the raw streams (records.go): schema
// changes, heartbeats and transaction BEGIN/END records, and applies the
// column rules (columns.go: include/exclude, masks, key columns) through a
// TablePlan per table version, which never modifies the change it is
// given.
//
// Invariants: encoding is append-based and allocation-light (it runs once
// per row change on the hot path); the output is always valid JSON (invalid
// UTF-8 in strings becomes U+FFFD); values are rendered exactly as
// docs/types.md documents (DECIMAL as a string, []byte as base64, JSON
// columns inline). An Encoder holds no mutable state and is safe for
// concurrent use.
package raw

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"github.com/feedcdc/feedcdc/internal/jsonw"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/feedcdc/feedcdc/change"
)

// DefaultTopicTemplate is the topic of a table when Encoder.TopicTemplate is empty.
const DefaultTopicTemplate = "{prefix}.{db}.{table}"

// Encoder renders change envelopes. The zero value works (empty server
// name and prefix, default template, no tombstones).
type Encoder struct {
	// ServerName is source.name in every envelope (the logical name of the
	// source database server, e.g. "shop-primary").
	ServerName string
	// Prefix is substituted for {prefix} in TopicTemplate.
	Prefix string
	// TopicTemplate names the topic of a table; the placeholders {prefix},
	// {db} and {table} are replaced, everything else is kept literally.
	// When Prefix is empty, a leading "{prefix}." is dropped.
	TopicTemplate string
	// Tombstones makes Append emit a tombstone (same key, nil value) after
	// every delete, so that compacted topics can forget the key.
	Tombstones bool
	// Now returns the processing time for the top-level ts_ms (nil: time.Now).
	Now func() time.Time
	// SchemaChanges turns on schema-change records (one per DDL statement
	// on a captured table) on SchemaChangesTopic
	// (DefaultSchemaChangesTopic when empty; {prefix} is filled in).
	SchemaChanges      bool
	SchemaChangesTopic string
	// Transactions turns on transaction metadata: BEGIN/END records on
	// TransactionTopic (DefaultTransactionTopic when empty) and a
	// transaction block in every envelope.
	Transactions     bool
	TransactionTopic string
	// IncludeQuery adds source.query (the statement that made the change,
	// when the server logs it) to envelopes.
	IncludeQuery bool
	// Version is source.version, feedcdc's version ("" leaves version and
	// connector out of the source block).
	Version string
	// Columns are the column filters, masks and key overrides (nil: none).
	Columns *Columns
	// HeartbeatTopic is the topic of heartbeat records
	// (DefaultHeartbeatTopic when empty; {prefix} is filled in).
	HeartbeatTopic string
}

// Topic returns the topic of a table.
func (e *Encoder) Topic(t *change.Table) string {
	tpl := e.TopicTemplate
	if tpl == "" {
		tpl = DefaultTopicTemplate
	}
	if e.Prefix == "" {
		tpl = strings.TrimPrefix(tpl, "{prefix}.")
	}
	if tpl == DefaultTopicTemplate {
		return e.Prefix + "." + t.DB + "." + t.Name
	}
	if tpl == "{db}.{table}" {
		return t.DB + "." + t.Name
	}
	var b strings.Builder
	for {
		i := strings.IndexByte(tpl, '{')
		if i < 0 {
			b.WriteString(tpl)
			break
		}
		b.WriteString(tpl[:i])
		rest := tpl[i:]
		switch {
		case strings.HasPrefix(rest, "{prefix}"):
			b.WriteString(e.Prefix)
			tpl = rest[len("{prefix}"):]
		case strings.HasPrefix(rest, "{db}"):
			b.WriteString(t.DB)
			tpl = rest[len("{db}"):]
		case strings.HasPrefix(rest, "{table}"):
			b.WriteString(t.Name)
			tpl = rest[len("{table}"):]
		default:
			b.WriteByte('{')
			tpl = rest[1:]
		}
	}
	return b.String()
}

// Record is one message for a raw stream. Value nil is a tombstone.
type Record struct {
	Topic string
	Key   []byte
	Value []byte
}

// Encode renders the key and envelope of c, appending both to buf (pass nil
// for fresh memory). key and value are sub-slices of the returned memory:
// don't reuse buf while they are in use. key is nil for tables without a
// primary key.
func (e *Encoder) Encode(c *change.Change, buf []byte) (topic string, key, value []byte) {
	topic = e.Topic(c.Table)
	start := len(buf)
	if len(c.Table.PK) > 0 {
		buf = AppendKey(buf, c)
		key = buf[start:len(buf):len(buf)]
	}
	vstart := len(buf)
	buf = e.AppendEnvelope(buf, c)
	value = buf[vstart:len(buf):len(buf)]
	return topic, key, value
}

// Append adds the records of c (its envelope, and a tombstone after a
// delete when Tombstones is set) to recs.
func (e *Encoder) Append(recs []Record, c *change.Change) []Record {
	topic, key, value := e.Encode(c, nil)
	recs = append(recs, Record{Topic: topic, Key: key, Value: value})
	if e.Tombstones && c.Op == change.OpDelete && key != nil {
		recs = append(recs, Record{Topic: topic, Key: key})
	}
	return recs
}

// AppendKey appends the JSON object of the primary-key columns of c's
// newest image ({"id":1}).
func AppendKey(buf []byte, c *change.Change) []byte {
	row := c.Row()
	buf = append(buf, '{')
	for i, idx := range c.Table.PK {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = AppendString(buf, c.Table.Columns[idx].Name)
		buf = append(buf, ':')
		var v any
		if idx < len(row) {
			v = row[idx]
		}
		buf = AppendValue(buf, v)
	}
	return append(buf, '}')
}

// AppendEnvelope appends the JSON envelope of c.
func (e *Encoder) AppendEnvelope(buf []byte, c *change.Change) []byte {
	buf = append(buf, `{"before":`...)
	buf = AppendRow(buf, c.Table, c.Before)
	buf = append(buf, `,"after":`...)
	buf = AppendRow(buf, c.Table, c.After)
	buf = append(buf, `,"op":"`...)
	buf = append(buf, c.Op...)
	buf = append(buf, `","source":{`...)
	if e.Version != "" {
		buf = append(buf, `"version":`...)
		buf = AppendString(buf, e.Version)
		buf = append(buf, `,"connector":`...)
		buf = AppendString(buf, c.Source.Flavor)
		buf = append(buf, ',')
	}
	buf = append(buf, `"name":`...)
	buf = AppendString(buf, e.ServerName)
	buf = append(buf, `,"server_id":`...)
	buf = strconv.AppendUint(buf, uint64(c.Source.ServerID), 10)
	buf = append(buf, `,"gtid":`...)
	if c.Source.GTID == "" {
		buf = append(buf, "null"...)
	} else {
		buf = AppendString(buf, c.Source.GTID)
	}
	buf = append(buf, `,"file":`...)
	buf = AppendString(buf, c.Source.File)
	buf = append(buf, `,"pos":`...)
	buf = strconv.AppendUint(buf, uint64(c.Source.Pos), 10)
	buf = append(buf, `,"row":`...)
	buf = strconv.AppendInt(buf, int64(c.Source.Row), 10)
	if c.Source.Thread != 0 {
		buf = append(buf, `,"thread":`...)
		buf = strconv.AppendUint(buf, uint64(c.Source.Thread), 10)
	}
	if e.IncludeQuery && c.Source.Query != "" {
		buf = append(buf, `,"query":`...)
		buf = AppendString(buf, c.Source.Query)
	}
	buf = append(buf, `,"ts_ms":`...)
	if c.Source.Timestamp.IsZero() {
		buf = append(buf, '0')
	} else {
		buf = strconv.AppendInt(buf, c.Source.Timestamp.UnixMilli(), 10)
	}
	buf = append(buf, `,"db":`...)
	buf = AppendString(buf, c.Table.DB)
	buf = append(buf, `,"table":`...)
	buf = AppendString(buf, c.Table.Name)
	if c.Source.Snapshot == "" {
		buf = append(buf, `,"snapshot":"false"},"ts_ms":`...)
	} else {
		buf = append(buf, `,"snapshot":`...)
		buf = AppendString(buf, c.Source.Snapshot)
		buf = append(buf, `},"ts_ms":`...)
	}
	now := time.Now
	if e.Now != nil {
		now = e.Now
	}
	buf = strconv.AppendInt(buf, now().UnixMilli(), 10)
	return append(buf, '}')
}

// AppendRow appends a row image as a JSON object keyed by column name, or
// null for a nil image.
func AppendRow(buf []byte, t *change.Table, row []any) []byte {
	if row == nil {
		return append(buf, "null"...)
	}
	buf = append(buf, '{')
	for i, v := range row {
		if i > 0 {
			buf = append(buf, ',')
		}
		if i < len(t.Columns) {
			buf = AppendString(buf, t.Columns[i].Name)
		} else {
			buf = AppendString(buf, "@"+strconv.Itoa(i+1))
		}
		buf = append(buf, ':')
		buf = AppendValue(buf, v)
	}
	return append(buf, '}')
}

// AppendValue appends the JSON of one normalised value (docs/types.md).
func AppendValue(buf []byte, v any) []byte {
	switch x := v.(type) {
	case nil:
		return append(buf, "null"...)
	case string:
		return AppendString(buf, x)
	case int64:
		return strconv.AppendInt(buf, x, 10)
	case uint64:
		return strconv.AppendUint(buf, x, 10)
	case json.RawMessage:
		if len(x) == 0 {
			return append(buf, "null"...)
		}
		return append(buf, x...)
	case []byte:
		buf = append(buf, '"')
		n := base64.StdEncoding.EncodedLen(len(x))
		buf = grow(buf, n)
		base64.StdEncoding.Encode(buf[len(buf):len(buf)+n], x)
		buf = buf[:len(buf)+n]
		return append(buf, '"')
	case float64:
		return appendFloat(buf, x, 64)
	case float32:
		return appendFloat(buf, float64(x), 32)
	case int:
		return strconv.AppendInt(buf, int64(x), 10)
	case int32:
		return strconv.AppendInt(buf, int64(x), 10)
	case uint32:
		return strconv.AppendUint(buf, uint64(x), 10)
	case bool:
		return strconv.AppendBool(buf, x)
	case time.Time:
		buf = append(buf, '"')
		buf = x.UTC().AppendFormat(buf, time.RFC3339Nano)
		return append(buf, '"')
	}
	b, err := json.Marshal(v)
	if err != nil {
		return AppendString(buf, fmt.Sprint(v))
	}
	return append(buf, b...)
}

func grow(buf []byte, n int) []byte {
	if cap(buf)-len(buf) >= n {
		return buf
	}
	nb := make([]byte, len(buf), 2*cap(buf)+n)
	copy(nb, buf)
	return nb
}

func appendFloat(buf []byte, f float64, bits int) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(buf, "null"...)
	}
	abs := math.Abs(f)
	fmtc := byte('f')
	if abs != 0 && (bits == 64 && (abs < 1e-6 || abs >= 1e21) || bits == 32 && (float32(abs) < 1e-6 || float32(abs) >= 1e21)) {
		fmtc = 'e'
	}
	return strconv.AppendFloat(buf, f, fmtc, -1, bits)
}

// AppendString appends s as a JSON string, byte for byte as encoding/json
// writes it with SetEscapeHTML(false).
func AppendString(buf []byte, s string) []byte { return jsonw.AppendString(buf, s) }

package raw

import (
	"strconv"
	"strings"
	"time"

	"github.com/feedcdc/feedcdc/change"
)

// DefaultSchemaChangesTopic and DefaultHeartbeatTopic name the topics of
// schema-change and heartbeat records when the Encoder leaves them empty.
const (
	DefaultSchemaChangesTopic = "{prefix}.schema-changes"
	DefaultHeartbeatTopic     = "{prefix}.heartbeat"
)

// expand fills {prefix} (dropping a leading "{prefix}." when Prefix is
// empty, like Topic).
func (e *Encoder) expand(tpl string) string {
	if e.Prefix == "" {
		tpl = strings.TrimPrefix(tpl, "{prefix}.")
	}
	return strings.ReplaceAll(tpl, "{prefix}", e.Prefix)
}

// SchemaChangesTopicName is the topic of schema-change records.
func (e *Encoder) SchemaChangesTopicName() string {
	if e.SchemaChangesTopic == "" {
		return e.expand(DefaultSchemaChangesTopic)
	}
	return e.expand(e.SchemaChangesTopic)
}

// HeartbeatTopicName is the topic of heartbeat records.
func (e *Encoder) HeartbeatTopicName() string {
	if e.HeartbeatTopic == "" {
		return e.expand(DefaultHeartbeatTopic)
	}
	return e.expand(e.HeartbeatTopic)
}

// AppendSchemaChangeKey appends the key of a schema-change record,
// {"databaseName":"<db>"} (Debezium's), so that the changes of one
// database keep their order in one partition.
func AppendSchemaChangeKey(buf []byte, sc *change.SchemaChange) []byte {
	buf = append(buf, `{"databaseName":`...)
	buf = AppendString(buf, sc.Table.DB)
	return append(buf, '}')
}

// AppendSchemaChange appends the value of a schema-change record, shaped
// like Debezium's schema-change topic:
//
//	{"source":{…},"ts_ms":…,"databaseName":"shop","schemaName":null,
//	 "ddl":"ALTER TABLE …","tableChanges":[{"type":"ALTER","id":"\"shop\".\"t\"",
//	  "table":{"primaryKeyColumnNames":["id"],"columns":[{"name":"id",
//	  "typeName":"int","position":1,"optional":false,"unsigned":false},…]}}]}
//
// "table" is null for a dropped table (or one whose schema is unknown).
func (e *Encoder) AppendSchemaChange(buf []byte, sc *change.SchemaChange) []byte {
	t := sc.Table
	buf = append(buf, `{"source":`...)
	buf = e.appendSource(buf, t, sc.Source)
	buf = append(buf, `,"ts_ms":`...)
	buf = strconv.AppendInt(buf, e.now().UnixMilli(), 10)
	buf = append(buf, `,"databaseName":`...)
	buf = AppendString(buf, t.DB)
	buf = append(buf, `,"schemaName":null,"ddl":`...)
	buf = AppendString(buf, sc.DDL)
	buf = append(buf, `,"tableChanges":[{"type":`...)
	buf = AppendString(buf, sc.Kind)
	buf = append(buf, `,"id":`...)
	buf = AppendString(buf, strconv.Quote(t.DB)+"."+strconv.Quote(t.Name))
	buf = append(buf, `,"table":`...)
	if len(t.Columns) == 0 {
		buf = append(buf, "null"...)
	} else {
		buf = append(buf, `{"primaryKeyColumnNames":[`...)
		for i, idx := range t.PK {
			if i > 0 {
				buf = append(buf, ',')
			}
			if idx < len(t.Columns) {
				buf = AppendString(buf, t.Columns[idx].Name)
			}
		}
		buf = append(buf, `],"columns":[`...)
		for i, c := range t.Columns {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = append(buf, `{"name":`...)
			buf = AppendString(buf, c.Name)
			buf = append(buf, `,"typeName":`...)
			buf = AppendString(buf, c.Type)
			buf = append(buf, `,"position":`...)
			buf = strconv.AppendInt(buf, int64(i+1), 10)
			buf = append(buf, `,"optional":`...)
			buf = strconv.AppendBool(buf, c.Nullable)
			buf = append(buf, `,"unsigned":`...)
			buf = strconv.AppendBool(buf, c.Unsigned)
			buf = append(buf, '}')
		}
		buf = append(buf, "]}"...)
	}
	return append(buf, "}]}"...)
}

// appendSource appends the source block of a schema-change record: where
// the statement is in the binlog and which table it changed.
func (e *Encoder) appendSource(buf []byte, t *change.Table, src change.Source) []byte {
	buf = append(buf, `{"name":`...)
	buf = AppendString(buf, e.ServerName)
	buf = append(buf, `,"server_id":`...)
	buf = strconv.AppendUint(buf, uint64(src.ServerID), 10)
	buf = append(buf, `,"gtid":`...)
	if src.GTID == "" {
		buf = append(buf, "null"...)
	} else {
		buf = AppendString(buf, src.GTID)
	}
	buf = append(buf, `,"file":`...)
	buf = AppendString(buf, src.File)
	buf = append(buf, `,"pos":`...)
	buf = strconv.AppendUint(buf, uint64(src.Pos), 10)
	buf = append(buf, `,"ts_ms":`...)
	if src.Timestamp.IsZero() {
		buf = append(buf, '0')
	} else {
		buf = strconv.AppendInt(buf, src.Timestamp.UnixMilli(), 10)
	}
	buf = append(buf, `,"db":`...)
	buf = AppendString(buf, t.DB)
	buf = append(buf, `,"table":`...)
	buf = AppendString(buf, t.Name)
	return append(buf, '}')
}

// AppendHeartbeatKey appends the key of a heartbeat record,
// {"serverName":"<name>"} (Debezium's).
func (e *Encoder) AppendHeartbeatKey(buf []byte) []byte {
	buf = append(buf, `{"serverName":`...)
	buf = AppendString(buf, e.ServerName)
	return append(buf, '}')
}

// AppendHeartbeat appends the value of a heartbeat record:
//
//	{"ts_ms":…,"server_ts_ms":…|null,"source":{"name":…,"gtid_set":…|null,
//	 "file":…,"pos":…,"ts_ms":…}}
//
// pos is the position of the last transaction end read (where the stream
// is), sourceTime the source timestamp of that transaction, serverTime
// the source server's clock when the heartbeat was made (zero: unknown).
func (e *Encoder) AppendHeartbeat(buf []byte, pos change.Position, sourceTime, serverTime time.Time) []byte {
	buf = append(buf, `{"ts_ms":`...)
	buf = strconv.AppendInt(buf, e.now().UnixMilli(), 10)
	buf = append(buf, `,"server_ts_ms":`...)
	buf = appendMillis(buf, serverTime)
	buf = append(buf, `,"source":{"name":`...)
	buf = AppendString(buf, e.ServerName)
	buf = append(buf, `,"gtid_set":`...)
	if pos.GTIDSet == "" {
		buf = append(buf, "null"...)
	} else {
		buf = AppendString(buf, pos.GTIDSet)
	}
	buf = append(buf, `,"file":`...)
	buf = AppendString(buf, pos.File)
	buf = append(buf, `,"pos":`...)
	buf = strconv.AppendUint(buf, uint64(pos.Pos), 10)
	buf = append(buf, `,"ts_ms":`...)
	buf = appendMillis(buf, sourceTime)
	return append(buf, "}}"...)
}

// appendMillis appends t as Unix milliseconds, or null for the zero time.
func appendMillis(buf []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(buf, "null"...)
	}
	return strconv.AppendInt(buf, t.UnixMilli(), 10)
}

func (e *Encoder) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

// DefaultTransactionTopic names the topic of transaction metadata records
// when the Encoder leaves it empty.
const DefaultTransactionTopic = "{prefix}.transaction"

// TransactionTopicName is the topic of transaction BEGIN/END records.
func (e *Encoder) TransactionTopicName() string {
	if e.TransactionTopic == "" {
		return e.expand(DefaultTransactionTopic)
	}
	return e.expand(e.TransactionTopic)
}

// TxOrder places one change in its transaction (Debezium's transaction
// block): the transaction id, the change's 1-based position among the
// transaction's events, and among the events of its table.
type TxOrder struct {
	ID                  string
	TotalOrder          int64
	DataCollectionOrder int64
}

// AppendTransactionBlock adds the transaction block to an envelope that
// buf ends with (its closing brace is replaced):
// …,"transaction":{"id":…,"total_order":…,"data_collection_order":…}}.
func AppendTransactionBlock(buf []byte, o TxOrder) []byte {
	buf = buf[:len(buf)-1]
	buf = append(buf, `,"transaction":{"id":`...)
	buf = AppendString(buf, o.ID)
	buf = append(buf, `,"total_order":`...)
	buf = strconv.AppendInt(buf, o.TotalOrder, 10)
	buf = append(buf, `,"data_collection_order":`...)
	buf = strconv.AppendInt(buf, o.DataCollectionOrder, 10)
	return append(buf, "}}"...)
}

// AppendTransactionKey appends the key of a transaction record, {"id":…}.
func AppendTransactionKey(buf []byte, id string) []byte {
	buf = append(buf, `{"id":`...)
	buf = AppendString(buf, id)
	return append(buf, '}')
}

// CollectionCount is the number of events of one table in a transaction.
type CollectionCount struct {
	DataCollection string // "db.table"
	EventCount     int64
}

// AppendTransaction appends a transaction record (Debezium's format):
// BEGIN has null counts; END carries event_count and the events per table
// in the order the tables first appeared.
//
//	{"status":"END","id":"0-1-42","event_count":3,
//	 "data_collections":[{"data_collection":"shop.t","event_count":3}],"ts_ms":…}
func (e *Encoder) AppendTransaction(buf []byte, status, id string, total int64, colls []CollectionCount, ts time.Time) []byte {
	buf = append(buf, `{"status":`...)
	buf = AppendString(buf, status)
	buf = append(buf, `,"id":`...)
	buf = AppendString(buf, id)
	if status == "BEGIN" {
		buf = append(buf, `,"event_count":null,"data_collections":null`...)
	} else {
		buf = append(buf, `,"event_count":`...)
		buf = strconv.AppendInt(buf, total, 10)
		buf = append(buf, `,"data_collections":[`...)
		for i, c := range colls {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = append(buf, `{"data_collection":`...)
			buf = AppendString(buf, c.DataCollection)
			buf = append(buf, `,"event_count":`...)
			buf = strconv.AppendInt(buf, c.EventCount, 10)
			buf = append(buf, '}')
		}
		buf = append(buf, ']')
	}
	buf = append(buf, `,"ts_ms":`...)
	buf = appendMillis(buf, ts)
	return append(buf, '}')
}

package binlog

import (
	"context"
	"fmt"
	"testing"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
)

// synthetic builds events for the decoder's state machine.
type synthetic struct {
	pos uint32
	evs []*replication.BinlogEvent
}

func (s *synthetic) add(t replication.EventType, size uint32, ev replication.Event, zeroPos bool) {
	s.pos += size
	h := &replication.EventHeader{EventType: t, EventSize: size, LogPos: s.pos, Timestamp: 1700000000, ServerID: 1}
	if zeroPos {
		h.LogPos = 0
	}
	s.evs = append(s.evs, &replication.BinlogEvent{Header: h, Event: ev})
}

func tableMap(id uint64) *replication.TableMapEvent {
	return &replication.TableMapEvent{TableID: id, Schema: []byte("shop"), Table: []byte("t"), ColumnCount: 2,
		ColumnType: []byte{mysql.MYSQL_TYPE_LONG, mysql.MYSQL_TYPE_VARCHAR}, ColumnMeta: []uint16{0, 40},
		ColumnName: [][]byte{[]byte("id"), []byte("v")}, PrimaryKey: []uint64{0}}
}

func rowsEvent(id uint64, rows ...[]any) *replication.RowsEvent {
	return &replication.RowsEvent{TableID: id, Rows: rows, ColumnCount: 2}
}

// TestDecoderMySQLCreateSelect: MySQL 8 logs CREATE TABLE … SELECT as one
// transaction (a DDL query, rows, XID); the GTID event's transaction length
// keeps it one transaction with one TxEnd at its true end.
func TestDecoderMySQLCreateSelect(t *testing.T) {
	s := &synthetic{pos: 4}
	sid := []byte{0x3e, 0x11, 0xfa, 0x47, 0x71, 0xca, 0x11, 0xe1, 0x9e, 0x33, 0xc8, 0x0a, 0xa9, 0x42, 0x95, 0x62}
	s.add(replication.GTID_EVENT, 79, &replication.GTIDEvent{SID: sid, GNO: 7, TransactionLength: 79 + 100 + 50 + 60 + 31}, false)
	s.add(replication.QUERY_EVENT, 100, &replication.QueryEvent{Schema: []byte("shop"), Query: []byte("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(10)) START TRANSACTION SELECT 1, 'a'")}, false)
	s.add(replication.TABLE_MAP_EVENT, 50, tableMap(9), false)
	s.add(replication.WRITE_ROWS_EVENTv2, 60, rowsEvent(9, []any{int32(1), "a"}), false)
	s.add(replication.XID_EVENT, 31, &replication.XIDEvent{XID: 1}, false)
	col := &collector{}
	d := newDecoder("mysql", ZeroDatesNull, Filter{}, nil, col, nil)
	d.file, d.pos = "binlog.000001", 4
	for _, ev := range s.evs {
		if err := d.handle(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
	}
	chs, ends := col.snapshot()
	if len(chs) != 1 || len(ends) != 1 {
		t.Fatalf("%d changes, %d tx ends (want 1, 1): %+v", len(chs), len(ends), ends)
	}
	e := ends[0]
	if e.GTID != "3e11fa47-71ca-11e1-9e33-c80aa9429562:7" || e.Rows != 1 || e.Position.Pos != s.pos || e.Position.GTIDSet != "3e11fa47-71ca-11e1-9e33-c80aa9429562:7" {
		t.Errorf("tx end %+v", e)
	}
	if chs[0].Source.GTID != e.GTID {
		t.Errorf("change GTID %q", chs[0].Source.GTID)
	}
}

// TestDecoderMariaDBZeroLogPos: MariaDB 11.4+ writes end_log_pos=0 inside
// transactions; positions are computed from event sizes.
func TestDecoderMariaDBZeroLogPos(t *testing.T) {
	s := &synthetic{pos: 1000}
	s.add(replication.MARIADB_GTID_EVENT, 42, &replication.MariadbGTIDEvent{GTID: mysql.MariadbGTID{DomainID: 0, ServerID: 1, SequenceNumber: 5}}, false)
	s.add(replication.QUERY_EVENT, 70, &replication.QueryEvent{Query: []byte("BEGIN")}, true)
	s.add(replication.TABLE_MAP_EVENT, 50, tableMap(3), true)
	s.add(replication.WRITE_ROWS_EVENTv1, 60, rowsEvent(3, []any{int32(1), "x"}, []any{int32(2), "y"}), true)
	s.add(replication.XID_EVENT, 31, &replication.XIDEvent{XID: 2}, true)
	col := &collector{}
	d := newDecoder("mariadb", ZeroDatesNull, Filter{}, nil, col, nil)
	d.file, d.pos = "binlog.000009", 1000
	d.gset, _ = mysql.ParseMariadbGTIDSet("0-1-4")
	for _, ev := range s.evs {
		if err := d.handle(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
	}
	chs, ends := col.snapshot()
	if len(chs) != 2 || len(ends) != 1 {
		t.Fatalf("%d changes, %d tx ends", len(chs), len(ends))
	}
	if chs[1].Source.Pos != 1000+42+70+50+60 || chs[1].Source.Row != 1 {
		t.Errorf("rows event position %d row %d", chs[1].Source.Pos, chs[1].Source.Row)
	}
	if got := fmt.Sprintf("%s:%d %s", ends[0].Position.File, ends[0].Position.Pos, ends[0].Position.GTIDSet); got != fmt.Sprintf("binlog.000009:%d 0-1-5", s.pos) {
		t.Errorf("tx end position %s", got)
	}
}

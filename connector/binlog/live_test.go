package binlog

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"math"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/feedcdc/feedcdc/change"
	"github.com/feedcdc/feedcdc/connector/raw"
)

const typeMatrixDDL = `CREATE TABLE types (
 id INT NOT NULL PRIMARY KEY,
 ti TINYINT, tiu TINYINT UNSIGNED, si SMALLINT, siu SMALLINT UNSIGNED, mi MEDIUMINT, miu MEDIUMINT UNSIGNED,
 i INT, iu INT UNSIGNED, bi BIGINT, biu BIGINT UNSIGNED,
 d DECIMAL(65,30), d2 DECIMAL(12,4), f FLOAT, db DOUBLE,
 bt1 BIT(1), bt64 BIT(64),
 dt DATE, dtm DATETIME, dtm6 DATETIME(6), ts TIMESTAMP(3) NULL DEFAULT NULL, tm TIME, tm3 TIME(3), yr YEAR,
 c CHAR(10), vc VARCHAR(100), tx TEXT, lat VARCHAR(20) CHARACTER SET latin1,
 bn BINARY(4), vb VARBINARY(10), bl BLOB, lb LONGBLOB,
 e ENUM('a','b','c'), s SET('x','y','z'),
 j JSON, g GEOMETRY
) DEFAULT CHARSET=utf8mb4`

var typeCols = []string{"id", "ti", "tiu", "si", "siu", "mi", "miu", "i", "iu", "bi", "biu", "d", "d2", "f", "db", "bt1", "bt64",
	"dt", "dtm", "dtm6", "ts", "tm", "tm3", "yr", "c", "vc", "tx", "lat", "bn", "vb", "bl", "lb", "e", "s", "j", "g"}

func TestLiveTypeMatrix(t *testing.T) {
	db := srv.NewDatabase(t, "types")
	srv.Exec(t, db, typeMatrixDDL)

	cfg := sourceConfig(srv, db+".*")
	start, err := CurrentPosition(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	src, err := New(cfg, testLogger(t), &MemoryHistory{})
	if err != nil {
		t.Fatal(err)
	}
	col := &collector{}
	stop := runSource(t, src, start, col)

	big := make([]byte, 4<<20)
	if _, err := rand.Read(big); err != nil {
		t.Fatal(err)
	}
	pool := srv.Admin(t, db)
	ctx := context.Background()
	conn, err := pool.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := conn.ExecContext(ctx, q, args...); err != nil {
			t.Fatalf("%s: %v", q[:min(len(q), 60)], err)
		}
	}
	exec("SET SESSION time_zone = '+02:00', SESSION sql_mode = ''")
	ins := "INSERT INTO types (" + strings.Join(typeCols, ",") + ") VALUES "
	exec(ins + `(1, -128, 0, -32768, 0, -8388608, 0, -2147483648, 0, -9223372036854775808, 0,
	  '-99999999999999999999999999999999999.999999999999999999999999999999', '-12.3400', -1.5, -2.5e-300,
	  b'0', 0, '1000-01-01', '1000-01-01 00:00:00', '1000-01-01 00:00:00.000000', '1970-01-01 02:00:01.000',
	  '-838:59:59', '-838:59:58.999', 1901, '', '', '', '', '', '', '', '', 'a', '', '[]', ST_GeomFromText('POINT(0 0)'))`)
	exec(ins+`(2, 127, 255, 32767, 65535, 8388607, 16777215, 2147483647, 4294967295, 9223372036854775807, 18446744073709551615,
	  '99999999999999999999999999999999999.999999999999999999999999999999', '12.3400', 3.5, 1.7976931348623157e308,
	  b'1', b'1111111111111111111111111111111111111111111111111111111111111111', '9999-12-31', '9999-12-31 23:59:59',
	  '9999-12-31 23:59:59.999999', '2038-01-19 05:14:07.999', '838:59:59', '838:59:58.999', 2155,
	  'héllo', '😀 ünïcode ✓', 'some text', 'café ÿ', 0x0102, 0x00ff00, 0xdeadbeef, ?, 'c', 'x,z',
	  '{"a": [1, 2.5, "x", null, true]}', ST_GeomFromText('POINT(1 2)'))`, big)
	exec("INSERT INTO types (id) VALUES (3)")
	exec(`INSERT INTO types (id, dt, dtm, dtm6, ts, yr) VALUES (4, '0000-00-00', '0000-00-00 00:00:00', '2024-00-10 10:00:00.5', '0000-00-00 00:00:00', 0)`)
	exec("UPDATE types SET vc = 'updated', biu = 1 WHERE id = 2")
	exec("DELETE FROM types WHERE id = 1")

	// wait for the six changes and for the delete's transaction end, which
	// arrives after its row event
	waitFor(t, "6 changes of the type matrix and the delete's TxEnd", func() bool {
		ch := col.tableChanges(db, "types")
		if len(ch) < 6 {
			return false
		}
		_, ends := col.snapshot()
		for _, e := range ends {
			if e.GTID == ch[5].Source.GTID {
				return true
			}
		}
		return false
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	ch := col.tableChanges(db, "types")
	if len(ch) != 6 {
		t.Fatalf("got %d changes, want 6", len(ch))
	}
	row := func(c *change.Change, img []any) map[string]any {
		m := map[string]any{}
		for i, v := range img {
			m[c.Table.Columns[i].Name] = v
		}
		return m
	}
	check := func(what string, got map[string]any, want map[string]any) {
		t.Helper()
		for k, w := range want {
			if !reflect.DeepEqual(got[k], w) {
				t.Errorf("%s: column %s = %#v (%T), want %#v (%T)", what, k, got[k], got[k], w, w)
			}
		}
	}
	if ch[0].Op != change.OpCreate || !reflect.DeepEqual(ch[0].Table.PK, []int{0}) {
		t.Fatalf("first change op %s pk %v", ch[0].Op, ch[0].Table.PK)
	}
	for i, name := range typeCols {
		if ch[0].Table.Columns[i].Name != name {
			t.Fatalf("column %d is %q, want %q", i, ch[0].Table.Columns[i].Name, name)
		}
	}
	check("min row", row(ch[0], ch[0].After), map[string]any{
		"id": int64(1), "ti": int64(-128), "tiu": uint64(0), "si": int64(-32768), "siu": uint64(0), "mi": int64(-8388608), "miu": uint64(0),
		"i": int64(-2147483648), "iu": uint64(0), "bi": int64(math.MinInt64), "biu": uint64(0),
		"d": "-99999999999999999999999999999999999.999999999999999999999999999999", "d2": "-12.3400", "f": float32(-1.5), "db": -2.5e-300,
		"bt1": uint64(0), "bt64": uint64(0), "dt": "1000-01-01", "dtm": "1000-01-01 00:00:00", "dtm6": "1000-01-01 00:00:00.000000",
		"ts": "1970-01-01T00:00:01.000Z", "tm": "-838:59:59", "tm3": "-838:59:58.999", "yr": int64(1901),
		"c": "", "vc": "", "tx": "", "lat": "", "bn": []byte{0, 0, 0, 0}, "vb": []byte{}, "bl": []byte{}, "lb": []byte{},
		"e": "a", "s": "", "j": json.RawMessage("[]"), "g": "010100000000000000000000000000000000000000",
	})
	check("max row", row(ch[1], ch[1].After), map[string]any{
		"ti": int64(127), "tiu": uint64(255), "si": int64(32767), "siu": uint64(65535), "mi": int64(8388607), "miu": uint64(16777215),
		"i": int64(2147483647), "iu": uint64(4294967295), "bi": int64(math.MaxInt64), "biu": uint64(math.MaxUint64),
		"d": "99999999999999999999999999999999999.999999999999999999999999999999", "d2": "12.3400", "f": float32(3.5), "db": 1.7976931348623157e308,
		"bt1": uint64(1), "bt64": uint64(math.MaxUint64), "dt": "9999-12-31", "dtm": "9999-12-31 23:59:59", "dtm6": "9999-12-31 23:59:59.999999",
		"ts": "2038-01-19T03:14:07.999Z", "tm": "838:59:59", "tm3": "838:59:58.999", "yr": int64(2155),
		"c": "héllo", "vc": "😀 ünïcode ✓", "tx": "some text", "lat": "café ÿ", "bn": []byte{1, 2, 0, 0}, "vb": []byte{0, 0xff, 0}, "bl": []byte{0xde, 0xad, 0xbe, 0xef},
		"e": "c", "s": "x,z", "j": json.RawMessage(`{"a": [1, 2.5, "x", null, true]}`), "g": "0101000000000000000000f03f0000000000000040",
	})
	if lb, _ := row(ch[1], ch[1].After)["lb"].([]byte); !bytes.Equal(lb, big) {
		t.Errorf("4 MiB LONGBLOB differs (got %d bytes)", len(lb))
	}
	nulls := row(ch[2], ch[2].After)
	for _, name := range typeCols[1:] {
		if nulls[name] != nil {
			t.Errorf("NULL row: %s = %#v", name, nulls[name])
		}
	}
	check("zero dates", row(ch[3], ch[3].After), map[string]any{"dt": nil, "dtm": nil, "dtm6": nil, "ts": nil, "yr": int64(0)})
	upd := ch[4]
	if upd.Op != change.OpUpdate {
		t.Fatalf("op %s", upd.Op)
	}
	check("update before", row(upd, upd.Before), map[string]any{"vc": "😀 ünïcode ✓", "biu": uint64(math.MaxUint64)})
	check("update after", row(upd, upd.After), map[string]any{"vc": "updated", "biu": uint64(1), "d2": "12.3400"})
	del := ch[5]
	if del.Op != change.OpDelete || del.After != nil {
		t.Fatalf("delete: op %s after %v", del.Op, del.After)
	}
	check("delete before", row(del, del.Before), map[string]any{"id": int64(1), "d2": "-12.3400"})

	// The JSON rendering of the envelope (docs/types.md).
	enc := &raw.Encoder{ServerName: "test", Prefix: "cdc"}
	_, key, value := enc.Encode(ch[0], nil)
	if string(key) != `{"id":1}` {
		t.Errorf("key %s", key)
	}
	for _, want := range []string{`"bi":-9223372036854775808`, `"d":"-99999999999999999999999999999999999.999999999999999999999999999999"`,
		`"bn":"AAAAAA=="`, `"j":[]`, `"ts":"1970-01-01T00:00:01.000Z"`, `"op":"c"`, `"db":"` + db + `"`} {
		if !strings.Contains(string(value), want) {
			t.Errorf("envelope lacks %s:\n%s", want, value)
		}
	}
	_, _, value = enc.Encode(ch[1], nil)
	for _, want := range []string{`"biu":18446744073709551615`, `"vc":"😀 ünïcode ✓"`, `"db":1.7976931348623157e+308`, `"j":{"a": [1, 2.5, "x", null, true]}`} {
		if !strings.Contains(string(value), want) {
			t.Errorf("envelope lacks %s", want)
		}
	}
	// every change carries the transaction's GTID, and each transaction ended
	_, ends := col.snapshot()
	if ch[0].Source.GTID == "" || ch[0].Source.File == "" || ch[0].Source.Pos == 0 {
		t.Errorf("source %+v", ch[0].Source)
	}
	var found bool
	for _, e := range ends {
		if e.GTID == ch[5].Source.GTID {
			found = true
			if e.Rows != 1 || e.Position.GTIDSet == "" || !strings.Contains(e.Position.GTIDSet, e.GTID) {
				t.Errorf("delete's TxEnd %+v", e)
			}
		}
	}
	if !found {
		t.Errorf("no TxEnd for the delete's GTID %s", ch[5].Source.GTID)
	}

	// The same binlog decoded offline (inspect) gives the same values, except
	// MariaDB JSON, which the binlog does not mark (a string offline).
	var out bytes.Buffer
	path := filepath.Join(srv.Dir, "data", ch[5].Source.File)
	if err := InspectFiles(context.Background(), []string{path}, &out, InspectOptions{Filter: Filter{Include: []string{db + ".types"}}}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 6 {
		t.Fatalf("inspect: %d records, want 6", len(lines))
	}
	for _, want := range []string{`"biu":18446744073709551615`, `"lat":"café ÿ"`, `"bn":"AQIAAA=="`, `"ts":"2038-01-19T03:14:07.999Z"`,
		`"j":"{\"a\": [1, 2.5, \"x\", null, true]}"`, `"g":"0101000000000000000000f03f0000000000000040"`, `"e":"c"`, `"s":"x,z"`} {
		if !strings.Contains(lines[1], want) {
			t.Errorf("inspect of the max row lacks %s", want)
		}
	}
}

func TestLiveZeroDatesAsString(t *testing.T) {
	db := srv.NewDatabase(t, "zero")
	srv.Exec(t, db, "CREATE TABLE z (id INT PRIMARY KEY, d DATE, dt DATETIME(2))")
	cfg := sourceConfig(srv, db+".z")
	cfg.ZeroDates = ZeroDatesString
	start, err := CurrentPosition(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	src, err := New(cfg, testLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	col := &collector{}
	stop := runSource(t, src, start, col)
	srv.Exec(t, db, "SET SESSION sql_mode=''; INSERT INTO z VALUES (1, '0000-00-00', '2024-05-00 01:02:03.45')")
	waitFor(t, "the insert", func() bool { return len(col.tableChanges(db, "z")) == 1 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	c := col.tableChanges(db, "z")[0]
	if c.After[1] != "0000-00-00" || c.After[2] != "2024-05-00 01:02:03.45" {
		t.Errorf("zero dates as strings: %#v", c.After)
	}
}

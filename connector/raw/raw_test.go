package raw

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/feedcdc/feedcdc/change"
)

var testTable = &change.Table{DB: "shop", Name: "product", PK: []int{0},
	Columns: []change.Column{{Name: "id", Type: "bigint", Unsigned: true}, {Name: "sku", Type: "varchar"}, {Name: "price", Type: "decimal"},
		{Name: "img", Type: "blob"}, {Name: "attrs", Type: "json"}, {Name: "w", Type: "double"}, {Name: "f", Type: "float"}, {Name: "n", Type: "int"}}}

func fixedNow() time.Time { return time.UnixMilli(1700000000123) }

func TestEnvelope(t *testing.T) {
	e := &Encoder{ServerName: "shop-primary", Prefix: "cdc", Now: fixedNow}
	c := &change.Change{Table: testTable, Op: change.OpUpdate,
		Before: []any{uint64(math.MaxUint64), "a\"b\\c\n\x01é😀", "12.3400", []byte{0, 1, 2, 0xff}, json.RawMessage(`{"a":[1,2]}`), 1.5, float32(0.1), int64(-5)},
		After:  []any{uint64(math.MaxUint64), "new", nil, nil, nil, math.NaN(), float32(3), int64(7)},
		Source: change.Source{ServerID: 7, GTID: "0-1-5", File: "binlog.000003", Pos: 1234, Row: 2, Timestamp: time.Unix(1700000000, 0)}}
	topic, key, value := e.Encode(c, nil)
	if topic != "cdc.shop.product" {
		t.Errorf("topic %q", topic)
	}
	if string(key) != `{"id":18446744073709551615}` {
		t.Errorf("key %s", key)
	}
	want := `{"before":{"id":18446744073709551615,"sku":"a\"b\\c\n\u0001é😀","price":"12.3400","img":"AAEC/w==","attrs":{"a":[1,2]},"w":1.5,"f":0.1,"n":-5},` +
		`"after":{"id":18446744073709551615,"sku":"new","price":null,"img":null,"attrs":null,"w":null,"f":3,"n":7},"op":"u",` +
		`"source":{"name":"shop-primary","server_id":7,"gtid":"0-1-5","file":"binlog.000003","pos":1234,"row":2,"ts_ms":1700000000000,"db":"shop","table":"product","snapshot":"false"},"ts_ms":1700000000123}`
	if string(value) != want {
		t.Errorf("value\n got %s\nwant %s", value, want)
	}
	var v map[string]any
	if err := json.Unmarshal(value, &v); err != nil {
		t.Fatalf("not JSON: %v", err)
	}
}

func TestInvalidUTF8AndControlChars(t *testing.T) {
	for _, s := range []string{"\xff\xfe", "a\x00b", "\u2028", strings.Repeat("x", 1000) + "\x80", "tab\there"} {
		b := AppendString(nil, s)
		if !json.Valid(b) {
			t.Errorf("%q -> invalid JSON %s", s, b)
		}
		var back string
		_ = json.Unmarshal(b, &back)
		if perByteReplace(s) != back {
			t.Errorf("%q round-trips to %q", s, back)
		}
	}
}

// perByteReplace replaces every invalid UTF-8 byte with U+FFFD.
func perByteReplace(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			b.WriteRune(utf8.RuneError)
		} else {
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

func TestFloats(t *testing.T) {
	for _, tc := range []struct {
		v    any
		want string
	}{{1e21, "1e+21"}, {1e-7, "1e-07"}, {123.456, "123.456"}, {float32(1.1), "1.1"}, {0.0, "0"}, {math.Inf(1), "null"}} {
		if got := string(AppendValue(nil, tc.v)); got != tc.want {
			t.Errorf("%v -> %s, want %s", tc.v, got, tc.want)
		}
		if !json.Valid(AppendValue(nil, tc.v)) {
			t.Errorf("%v: invalid JSON", tc.v)
		}
	}
}

func TestDeleteTombstoneAndNoPK(t *testing.T) {
	e := &Encoder{Prefix: "p", Tombstones: true, Now: fixedNow}
	del := &change.Change{Table: testTable, Op: change.OpDelete, Before: []any{uint64(9), "s", "1.00", nil, nil, nil, nil, nil}}
	recs := e.Append(nil, del)
	if len(recs) != 2 || recs[1].Value != nil || !bytes.Equal(recs[0].Key, recs[1].Key) || string(recs[0].Key) != `{"id":9}` {
		t.Fatalf("records %+v", recs)
	}
	if !strings.Contains(string(recs[0].Value), `"after":null,"op":"d"`) {
		t.Errorf("delete envelope %s", recs[0].Value)
	}
	noPK := &change.Table{DB: "d", Name: "t", Columns: []change.Column{{Name: "a"}}}
	recs = e.Append(nil, &change.Change{Table: noPK, Op: change.OpDelete, Before: []any{int64(1)}})
	if len(recs) != 1 || recs[0].Key != nil {
		t.Errorf("no-PK delete: %+v (want one record, nil key, no tombstone)", recs)
	}
}

func TestTopicTemplate(t *testing.T) {
	for _, tc := range []struct{ prefix, tpl, want string }{
		{"cdc", "", "cdc.shop.product"},
		{"", "", "shop.product"},
		{"cdc", "{prefix}-{db}_{table}", "cdc-shop_product"},
		{"cdc", "raw.{table}", "raw.product"},
		{"cdc", "{db}.{table}", "shop.product"},
	} {
		e := &Encoder{Prefix: tc.prefix, TopicTemplate: tc.tpl}
		if got := e.Topic(testTable); got != tc.want {
			t.Errorf("prefix %q template %q: %q, want %q", tc.prefix, tc.tpl, got, tc.want)
		}
	}
}

func TestSnapshotRead(t *testing.T) {
	e := &Encoder{Now: fixedNow}
	_, _, v := e.Encode(&change.Change{Table: testTable, Op: change.OpRead, After: make([]any, 8), Source: change.Source{Snapshot: "incremental"}}, nil)
	if !strings.Contains(string(v), `"op":"r"`) || !strings.Contains(string(v), `"snapshot":"incremental"`) || !strings.Contains(string(v), `"gtid":null`) {
		t.Errorf("snapshot envelope %s", v)
	}
}

func BenchmarkEncode(b *testing.B) {
	e := &Encoder{ServerName: "s", Prefix: "cdc"}
	c := &change.Change{Table: testTable, Op: change.OpUpdate,
		Before: []any{uint64(123456), "SKU-000123", "12.3400", nil, nil, 1.5, float32(2), int64(7)},
		After:  []any{uint64(123456), "SKU-000123", "13.3401", nil, nil, 1.5, float32(2), int64(8)},
		Source: change.Source{ServerID: 1, GTID: "0-1-2000", File: "binlog.000002", Pos: 123456, Timestamp: time.Now()}}
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		_, _, v := e.Encode(c, buf[:0])
		b.SetBytes(int64(len(v)))
	}
}

package binlog

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/feedcdc/feedcdc/change"
)

func TestFilter(t *testing.T) {
	f := Filter{Include: []string{"shop.*", "*.catalog_product_entity*", "Other.T?"}, Exclude: []string{"shop.*_tmp", "shop.log"}}
	if err := f.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		db, table string
		want      bool
	}{
		{"shop", "orders", true}, {"SHOP", "Orders", true}, {"shop", "idx_tmp", false}, {"shop", "log", false},
		{"b2b", "catalog_product_entity_int", true}, {"b2b", "sales", false}, {"other", "t1", true}, {"other", "t12", false},
		{"mysql", "user", false},
	} {
		if got := f.Match(tc.db, tc.table); got != tc.want {
			t.Errorf("Match(%s.%s) = %v, want %v", tc.db, tc.table, got, tc.want)
		}
	}
	if !(Filter{}).Match("shop", "x") || (Filter{}).Match("mysql", "user") {
		t.Error("empty filter: every non-system table")
	}
	if !(Filter{Include: []string{"mysql.user"}}).Match("mysql", "user") {
		t.Error("an include naming a system schema captures it")
	}
	for _, bad := range []string{"shop", "a.b.c", ".t", "db."} {
		if err := (Filter{Include: []string{bad}}).Validate(); err == nil || !strings.Contains(err.Error(), "db.table") {
			t.Errorf("pattern %q accepted: %v", bad, err)
		}
	}
}

func TestParseStart(t *testing.T) {
	for in, want := range map[string]startSpec{
		"":                    {kind: "current"},
		"CURRENT":             {kind: "current"},
		"earliest":            {kind: "earliest"},
		"gtid:0-1-5,1-2-7":    {kind: "gtid", pos: change.Position{GTIDSet: "0-1-5,1-2-7"}},
		"binlog.000003:4":     {kind: "file", pos: change.Position{File: "binlog.000003", Pos: 4}},
		"mysql-bin.000010:99": {kind: "file", pos: change.Position{File: "mysql-bin.000010", Pos: 99}},
	} {
		got, err := parseStart(in)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("parseStart(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"gtid:", "binlog.000003", "yesterday", "file:x"} {
		if _, err := parseStart(bad); err == nil {
			t.Errorf("parseStart(%q) accepted", bad)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	_, err := New(Config{Port: 3306, StartPosition: "nope", Filter: Filter{Include: []string{"x"}}, TLS: TLSConfig{CertFile: "c"}}, nil, nil)
	for _, want := range []string{"host is empty", "server_id is 0", "start position", "db.table", "cert_file and key_file"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("config error lacks %q: %v", want, err)
		}
	}
}

func TestPositionLE(t *testing.T) {
	m := func(g string) change.Position { return change.Position{Flavor: "mariadb", GTIDSet: g} }
	my := func(g string) change.Position { return change.Position{Flavor: "mysql", GTIDSet: g} }
	fp := func(f string, p uint32) change.Position { return change.Position{File: f, Pos: p} }
	for _, tc := range []struct {
		a, b change.Position
		want bool
	}{
		{m("0-1-5"), m("0-1-7"), true}, {m("0-1-7"), m("0-1-5"), false}, {m("0-1-5"), m("0-1-5"), true},
		{m("0-1-5,1-1-3"), m("0-1-9"), false},
		{my("3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5"), my("3e11fa47-71ca-11e1-9e33-c80aa9429562:1-9"), true},
		{my("3e11fa47-71ca-11e1-9e33-c80aa9429562:1-10"), my("3e11fa47-71ca-11e1-9e33-c80aa9429562:1-9"), false},
		{fp("binlog.000002", 100), fp("binlog.000002", 100), true}, {fp("binlog.000002", 100), fp("binlog.000003", 4), true},
		{fp("binlog.000003", 4), fp("binlog.000002", 900), false},
	} {
		if got := positionLE(tc.a, tc.b); got != tc.want {
			t.Errorf("positionLE(%v, %v) = %v", tc.a, tc.b, got)
		}
	}
}

func TestParseEnumValues(t *testing.T) {
	got := parseEnumValues(`enum('a','it''s','x,y','')`)
	if !reflect.DeepEqual(got, []string{"a", "it's", "x,y", ""}) {
		t.Errorf("got %q", got)
	}
}

func TestFormatDatetime(t *testing.T) {
	tm := time.Date(2024, 1, 2, 3, 4, 5, 123456000, time.UTC)
	for _, tc := range []struct {
		fsp  int
		sep  byte
		utc  bool
		want string
	}{
		{0, ' ', false, "2024-01-02 03:04:05"}, {3, ' ', false, "2024-01-02 03:04:05.123"},
		{6, 'T', true, "2024-01-02T03:04:05.123456Z"}, {1, 'T', true, "2024-01-02T03:04:05.1Z"},
	} {
		if got := formatDatetime(tm, tc.fsp, tc.sep, tc.utc); got != tc.want {
			t.Errorf("fsp %d: %s, want %s", tc.fsp, got, tc.want)
		}
	}
}

func TestNormalizeIntegers(t *testing.T) {
	int24 := &colInfo{kind: kUint, typ: 9}
	if v, _ := normalize(int32(-1), int24, ZeroDatesNull); v != uint64(16777215) {
		t.Errorf("MEDIUMINT UNSIGNED -1 bits -> %v", v)
	}
	big := &colInfo{kind: kUint, typ: 8}
	if v, _ := normalize(int64(-1), big, ZeroDatesNull); v != uint64(18446744073709551615) {
		t.Errorf("BIGINT UNSIGNED -1 bits -> %v", v)
	}
	tiny := &colInfo{kind: kUint, typ: 1}
	if v, _ := normalize(int8(-56), tiny, ZeroDatesNull); v != uint64(200) {
		t.Errorf("TINYINT UNSIGNED -> %v", v)
	}
	if _, err := normalize("x", &colInfo{kind: kInt}, ZeroDatesNull); err == nil {
		t.Error("a string for an int column was accepted")
	}
	e := &colInfo{kind: kEnum, values: []string{"a", "b"}}
	if _, err := normalize(int64(3), e, ZeroDatesNull); err == nil {
		t.Error("ENUM index out of range accepted")
	}
	if v, _ := normalize(int64(2), e, ZeroDatesNull); v != "b" {
		t.Errorf("ENUM 2 -> %v", v)
	}
	set := &colInfo{kind: kSet, values: []string{"x", "y", "z"}}
	if v, _ := normalize(int64(5), set, ZeroDatesNull); v != "x,z" {
		t.Errorf("SET 5 -> %v", v)
	}
	lat := &colInfo{kind: kText, charset: charsetForCollation(8)}
	if v, _ := normalize("caf\xe9 \x80", lat, ZeroDatesNull); v != "café €" {
		t.Errorf("latin1 (cp1252) -> %q", v)
	}
}

func TestErrorText(t *testing.T) {
	e := errorText(stackErr("io.CopyN failed\nconnection was bad\ngithub.com/x/y.init\n\t<autogenerated>:1\nruntime.main\n\t/usr/local/go/src/runtime/proc.go:258"))
	if e != "io.CopyN failed: connection was bad" {
		t.Errorf("got %q", e)
	}
}

type stackErr string

func (s stackErr) Error() string { return string(s) }

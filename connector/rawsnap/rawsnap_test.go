package rawsnap

import (
	"testing"

	"github.com/feedcdc/feedcdc/change"
)

func TestReached(t *testing.T) {
	pos := func(file string, p uint32, gtid string) change.Position {
		return change.Position{Flavor: "mariadb", File: file, Pos: p, GTIDSet: gtid}
	}
	for _, c := range []struct {
		name    string
		cur, wm change.Position
		want    bool
	}{
		{"same GTID", pos("b.000001", 900, "0-1-10"), pos("b.000001", 900, "0-1-10"), true},
		{"GTID behind", pos("b.000001", 800, "0-1-9"), pos("b.000001", 900, "0-1-10"), false},
		{"GTID ahead", pos("b.000001", 1000, "0-1-11"), pos("b.000001", 900, "0-1-10"), true},
		// An idle source after a rotation: the watermark's file/pos is in a
		// newer file, but no transaction came after the reader's last one.
		{"GTID decides over a rotation", pos("b.000001", 900, "0-1-10"), pos("b.000002", 385, "0-1-10"), true},
		{"every domain of the watermark", pos("b.000001", 900, "0-1-10"), pos("b.000001", 900, "0-1-10,1-1-3"), false},
		{"file/pos behind", pos("b.000001", 800, ""), pos("b.000001", 900, ""), false},
		{"file/pos equal", pos("b.000001", 900, ""), pos("b.000001", 900, ""), true},
		{"older file", pos("b.000009", 9999, ""), pos("b.000010", 4, ""), false},
		{"newer file, lower pos", pos("b.000010", 4, ""), pos("b.000009", 9999, ""), true},
		{"file numbers, not text", pos("b.1000000", 4, ""), pos("b.999999", 9999, ""), true},
		{"reader has no position yet", change.Position{}, pos("b.000001", 900, ""), false},
	} {
		if got := Reached(c.cur, c.wm); got != c.want {
			t.Errorf("%s: Reached(%v, %v) = %v, want %v", c.name, c.cur, c.wm, got, c.want)
		}
	}
}

func TestConvertMatchesTheBinlogRepresentation(t *testing.T) {
	tb := &Table{Table: &change.Table{DB: "d", Name: "t"}}
	for _, c := range []struct {
		dt       string
		unsigned bool
		in       any
		want     any
	}{
		{"int", false, int64(-5), int64(-5)},
		{"bigint", true, uint64(1<<63 + 1), uint64(1<<63 + 1)},
		{"bigint", true, int64(7), uint64(7)},
		{"decimal", false, []byte("12.340"), "12.340"},
		{"float", false, float32(1.5), float32(1.5)},
		{"double", false, float64(2.25), float64(2.25)},
		{"varchar", false, []byte("héllo"), "héllo"},
		{"datetime", false, []byte("0000-00-00 00:00:00"), nil},
		{"timestamp", false, []byte("2024-05-06 07:08:09.123"), "2024-05-06T07:08:09.123Z"},
		{"bit", false, []byte{0x02, 0x81}, uint64(0x281)},
		{"year", false, int64(2024), int64(2024)},
		{"geometry", false, []byte{0, 0, 0, 0, 1, 2}, "0102"},
	} {
		tb.Columns = []change.Column{{Name: "c", Type: c.dt, Unsigned: c.unsigned}}
		tb.kinds = []kind{kindOf(c.dt, c.unsigned)}
		got, err := tb.convert(0, c.in)
		if err != nil || got != c.want {
			t.Errorf("%s %v: convert(%#v) = %#v, %v; want %#v", c.dt, c.unsigned, c.in, got, err, c.want)
		}
	}
}

package rawsnap

import (
	"testing"

	"github.com/feedcdc/feedcdc/change"
)

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

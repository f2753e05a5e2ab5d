package binpos

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

func TestCompareKnowsOneBinlogFromAnother(t *testing.T) {
	for _, c := range []struct {
		fa     string
		pa     uint32
		fb     string
		pb     uint32
		want   int
		wantOK bool
	}{
		{"b.000002", 10, "b.000002", 10, 0, true},
		{"b.000002", 9, "b.000002", 10, -1, true},
		{"b.000003", 4, "b.000002", 10, 1, true},
		{"b.1000000", 4, "b.999999", 10, 1, true},
		{"other.000001", 4, "b.000002", 10, -1, false},
		{"b", 4, "b", 10, -1, true},
	} {
		got, ok := Compare(c.fa, c.pa, c.fb, c.pb)
		if got != c.want || ok != c.wantOK {
			t.Errorf("Compare(%s:%d, %s:%d) = %d, %v; want %d, %v", c.fa, c.pa, c.fb, c.pb, got, ok, c.want, c.wantOK)
		}
	}
}

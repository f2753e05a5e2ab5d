package feeds

import (
	"context"
	"testing"
	"time"

	"github.com/feedcdc/feedcdc/change"
)

// TestUnsureOrdersDeletionsByPositionThenTime: a deleted composite
// product's children are known from the link index when its deletion came
// after the index's snapshot. Positions of one binlog decide; times (whole
// seconds, from the primary's clock) only when the positions cannot be
// compared.
func TestUnsureOrdersDeletionsByPositionThenTime(t *testing.T) {
	at := time.Date(2026, 12, 7, 10, 0, 0, 500_000_000, time.UTC)
	del := func(file string, pos uint32, ts time.Time) *change.Change {
		return &change.Change{Source: change.Source{File: file, Pos: pos, Timestamp: ts}}
	}
	for _, c := range []struct {
		name   string
		loaded change.Position
		c      *change.Change
		want   bool
	}{
		{"after the snapshot, stamped before the load", change.Position{File: "b.000002", Pos: 1000}, del("b.000002", 1500, at.Add(-time.Minute)), false},
		{"in a later file", change.Position{File: "b.000002", Pos: 1000}, del("b.000003", 400, at), false},
		{"in the snapshot, stamped after the load", change.Position{File: "b.000002", Pos: 1000}, del("b.000002", 900, at.Add(time.Minute)), true},
		{"at the snapshot's end", change.Position{File: "b.000002", Pos: 1000}, del("b.000002", 1000, at.Add(time.Minute)), true},
		{"another server's binlog, after the load", change.Position{File: "b.000002", Pos: 1000}, del("other.000001", 5, at.Add(2*time.Second)), false},
		{"another server's binlog, within the margin", change.Position{File: "b.000002", Pos: 1000}, del("other.000001", 5000, at.Truncate(time.Second)), true},
		{"no snapshot position, after the load", change.Position{}, del("b.000002", 5, at.Add(2*time.Second)), false},
		{"no snapshot position, within the margin", change.Position{}, del("b.000002", 5000, at.Add(time.Second).Truncate(time.Second)), true},
		{"no position, no time", change.Position{}, del("", 0, time.Time{}), true},
	} {
		l := newLinkIndexes(&env{})
		l.loaded, l.loadedPos, l.loadedAt = true, c.loaded, at
		got, err := l.unsure(context.Background(), c.c, true)
		if err != nil {
			t.Fatal(err)
		}
		if got != c.want {
			t.Errorf("%s: unsure = %v, want %v", c.name, got, c.want)
		}
	}
}

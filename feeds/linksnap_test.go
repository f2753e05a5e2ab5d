package feeds

import (
	"context"
	"database/sql"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/feedcdc/feedcdc/change"
)

// TestSavedLinkIndexRestoresAsOfItsLastChange: a saved index restores the
// same links (relation and super-link kept apart), stamped with the
// position of the last change it followed when that is after the
// snapshot it was loaded from, so only deletions up to that position are
// unsure; and data that is damaged, truncated or saved for another
// database is refused without loading anything.
func TestSavedLinkIndexRestoresAsOfItsLastChange(t *testing.T) {
	db := srv.NewDatabase(t, "linksnap")
	pool, err := sql.Open("mysql", srv.CDCDSN(db))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	newIndexes := func(dbName string) *linkIndexes {
		l := newLinkIndexes(&env{db: pool, dbName: dbName})
		l.enabled = true
		return l
	}
	src := newIndexes(db)
	src.loaded, src.relation, src.super = true, newLinkIndex(), newLinkIndex()
	src.loadedPos = change.Position{File: "b.000002", Pos: 1000}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 5000 {
		p, c := rng.Uint32N(3000)+1, rng.Uint32N(1<<31)+1
		src.relation.add(p, c)
		if rng.IntN(3) == 0 {
			src.super.add(p, c)
		}
	}
	src.super.add(1<<32-1, 1<<32-1) // the largest ids survive the gaps
	src.appliedPos = change.Position{File: "b.000003", Pos: 77}

	data, ok := src.save()
	if !ok {
		t.Fatal("a loaded index was not saved")
	}
	dst := newIndexes(db)
	if err := dst.restore(context.Background(), data); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(dst.relation.parents, src.relation.parents) || !reflect.DeepEqual(dst.super.parents, src.super.parents) {
		t.Fatal("restored link counts differ from the saved ones")
	}
	for _, x := range []struct{ a, b *linkIndex }{{src.relation, dst.relation}, {src.super, dst.super}} {
		if len(x.a.children) != len(x.b.children) {
			t.Fatalf("%d parents restored, %d saved", len(x.b.children), len(x.a.children))
		}
		for p, ch := range x.a.children {
			got, _ := dst.children(context.Background(), x.a == src.super, uint64(p))
			if len(got) != len(ch) {
				t.Fatalf("parent %d: %d children restored, %d saved", p, len(got), len(ch))
			}
		}
	}
	del := func(file string, pos uint32) *change.Change {
		return &change.Change{Source: change.Source{File: file, Pos: pos, Timestamp: time.Now().Add(-time.Hour)}}
	}
	for _, c := range []struct {
		c    *change.Change
		want bool
	}{{del("b.000002", 2000), true}, {del("b.000003", 77), true}, {del("b.000003", 78), false}} {
		if got, err := dst.unsure(context.Background(), c.c, true); err != nil || got != c.want {
			t.Errorf("deletion at %s:%d: unsure = %v (%v), want %v", c.c.Source.File, c.c.Source.Pos, got, err, c.want)
		}
	}

	if _, ok := newIndexes(db).save(); ok {
		t.Error("an index never loaded was saved")
	}
	for n := 0; n < len(data); n += 1 + n/64 {
		if err := newIndexes(db).restore(context.Background(), data[:n]); err == nil {
			t.Fatalf("the first %d of %d bytes restored without an error", n, len(data))
		}
	}
	other := newIndexes("another")
	if err := other.restore(context.Background(), data); err == nil || !strings.Contains(err.Error(), "saved for database") || other.loaded {
		t.Fatalf("an index saved for another database: %v (loaded %v)", err, other.loaded)
	}
}

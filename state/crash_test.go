package state

import (
	"context"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestSurvivesKill9 runs a writer subprocess that loops over flushes (items
// + outbox entry + checkpoint in one Update) and SIGKILLs it at random
// moments. After each kill the file must open, pass Check, and hold exactly
// the state of the flush its checkpoint names: every item of that flush
// with that flush's hash, and nothing from a later flush.
func TestSurvivesKill9(t *testing.T) { survivesKill9(t, "writer") }

// TestSurvivesKill9WhileMergingTheIDIndex is TestSurvivesKill9 with a
// writer that merges its staged id index entries into byid every two or
// three flushes, in chunk transactions, so that kills land in merges too.
func TestSurvivesKill9WhileMergingTheIDIndex(t *testing.T) {
	path := survivesKill9(t, "writer-merge")
	st, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if byid, _ := idIndexSizes(t, st, "products"); byid == 0 {
		t.Fatal("the writer never merged its staged id index entries")
	}
}

func survivesKill9(t *testing.T, kind string) (path string) {
	ctx := context.Background()
	path = filepath.Join(t.TempDir(), "state.db")
	lastSeen := 0
	for round := range 6 {
		h, first := startHelper(t, kind, path)
		n, err := strconv.Atoi(first)
		if err != nil {
			t.Fatalf("writer said %q", first)
		}
		// Let it run for a random number of further flushes, then kill it
		// mid-flight (the next flush is in progress).
		target := n + 5 + rand.IntN(60)
		for n < target && h.out.Scan() {
			n, _ = strconv.Atoi(h.out.Text())
		}
		time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
		h.kill(t)
		if n < lastSeen {
			t.Fatalf("round %d: writer restarted at %d, before the acknowledged %d", round, n, lastSeen)
		}

		st, err := Open(path, Options{})
		if err != nil {
			t.Fatalf("round %d: reopen after kill -9: %v", round, err)
		}
		if err := st.Check(ctx); err != nil {
			t.Fatalf("round %d: check after kill -9: %v", round, err)
		}
		pos, _, ok, err := st.Checkpoint(ctx)
		if err != nil || !ok {
			t.Fatalf("round %d: checkpoint ok=%v err=%v", round, ok, err)
		}
		c := int(pos.Pos)
		// Every flush the writer reported committed (fsync before Update
		// returned), so the checkpoint is at least the last one reported.
		if c < n {
			t.Fatalf("round %d: checkpoint %d behind acknowledged flush %d", round, c, n)
		}
		batch := crashBatch(c)
		var ids []string
		for _, it := range batch {
			ids = append(ids, it.ID)
		}
		got, err := st.Items(ctx, "products", ids)
		if err != nil {
			t.Fatal(err)
		}
		for j, it := range batch {
			g, ok := got[it.ID]
			if j == 0 && c%7 == 0 {
				if ok {
					t.Fatalf("round %d: item deleted by flush %d is present", round, c)
				}
				continue
			}
			if !ok || g.Hash != it.Hash {
				t.Fatalf("round %d: checkpoint %d but item %d has hash %q (present %v)", round, c, j, g.Hash, ok)
			}
		}
		// Nothing from a flush after the checkpoint.
		var next string
		for {
			page, nx, err := st.ListItems(ctx, ListQuery{Feed: "products", Limit: 1000, After: next})
			if err != nil {
				t.Fatal(err)
			}
			for _, it := range page {
				k, _ := strconv.Atoi(strings.TrimPrefix(it.Hash, "h"))
				if k > c {
					t.Fatalf("round %d: item with hash of flush %d, checkpoint says %d", round, k, c)
				}
			}
			if nx == "" {
				break
			}
			next = nx
		}
		ob, err := st.OutboxBatch(ctx, "products", 10000)
		if err != nil {
			t.Fatal(err)
		}
		if len(ob) == 0 || string(ob[len(ob)-1].Payload) != batch[1].Hash {
			t.Fatalf("round %d: outbox tail does not belong to flush %d", round, c)
		}
		lastSeen = c
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

package state

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/feedcdc/feedcdc/change"
)

// TestDeferredKeys: keys are recorded once per feed, listed in key order up
// to a limit per feed, removed, committed with a checkpoint, and still there
// after the file is reopened.
func TestDeferredKeys(t *testing.T) {
	ctx := context.Background()
	st, path := openTemp(t)
	if n, err := st.DeferredCount(ctx); err != nil || n != 0 {
		t.Fatalf("new file: %d deferred keys, %v", n, err)
	}
	pos := change.Position{File: "binlog.000001", Pos: 4}
	err := st.Update(ctx, func(tx *Tx) error {
		for _, c := range []struct {
			feed string
			keys []string
			want int
		}{{"products", []string{"3", "1", "2"}, 3}, {"products", []string{"2", "4"}, 1}, {"variants", []string{"9"}, 1}} {
			n, err := tx.PutDeferred(c.feed, c.keys)
			if err != nil || n != c.want {
				t.Errorf("PutDeferred(%s, %v) = %d, %v; want %d", c.feed, c.keys, n, err, c.want)
			}
		}
		return tx.SetCheckpoint(pos, time.Now())
	})
	if err != nil {
		t.Fatal(err)
	}
	keys, n, err := st.Deferred(ctx, 3, nil)
	if err != nil || n != 4 || !reflect.DeepEqual(keys, map[string][]string{"products": {"1", "2", "3"}, "variants": {"9"}}) {
		t.Fatalf("Deferred(3) = %v, %d, %v", keys, n, err)
	}
	if err := st.Update(ctx, func(tx *Tx) error {
		n, err := tx.DeleteDeferred("products", []string{"1", "2", "7"})
		if n != 2 {
			t.Errorf("DeleteDeferred removed %d keys, want 2", n)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	st, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if n, err := st.DeferredCount(ctx); err != nil || n != 3 {
		t.Fatalf("after reopening: %d deferred keys, %v; want 3", n, err)
	}
	keys, n, err = st.Deferred(ctx, 10, nil)
	if err != nil || n != 3 || !reflect.DeepEqual(keys, map[string][]string{"products": {"3", "4"}, "variants": {"9"}}) {
		t.Fatalf("Deferred(10) = %v, %d, %v", keys, n, err)
	}
	// A cursor per feed: the keys after it (the key itself is not
	// returned, whether it waits or not); a feed not in the map from its
	// first key.
	for _, c := range []struct {
		after map[string]string
		want  map[string][]string
	}{
		{map[string]string{"products": "3"}, map[string][]string{"products": {"4"}, "variants": {"9"}}},
		{map[string]string{"products": "2"}, map[string][]string{"products": {"3", "4"}, "variants": {"9"}}},
		{map[string]string{"products": "4", "variants": "1"}, map[string][]string{"variants": {"9"}}},
		{map[string]string{"products": "9", "variants": "9"}, map[string][]string{}},
	} {
		keys, n, err := st.Deferred(ctx, 10, c.after)
		want := 0
		for _, k := range c.want {
			want += len(k)
		}
		if err != nil || n != want || !reflect.DeepEqual(keys, c.want) {
			t.Errorf("Deferred(10, %v) = %v, %d, %v; want %v", c.after, keys, n, err, c.want)
		}
	}
	if err := st.View(ctx, func(tx *Tx) error {
		_, err := tx.PutDeferred("products", []string{"5"})
		return err
	}); err == nil {
		t.Error("PutDeferred in a read-only transaction succeeded")
	}
}

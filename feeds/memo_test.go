package feeds

import (
	"context"
	"reflect"
	"sort"
	"testing"

	"github.com/feedcdc/feedcdc/change"
)

// setMemo is a Memo over a set, counting the lookups it let through.
type setMemo struct {
	seen map[string]bool
	let  int
}

func (m *setMemo) First(key string) bool {
	if m.seen[key] {
		return false
	}
	if m.seen == nil {
		m.seen = map[string]bool{}
	}
	m.seen[key] = true
	m.let++
	return true
}

// TestMemoSkipsRepeatedOptionLookups: the labels of option 10 change in two
// store views while one batch is collected (a Magento option save rewrites
// every store's row). With the batch's memo the second change makes no
// lookup and emits nothing (its products are already in the batch); with a
// fresh memo (the next batch) they are found again.
func TestMemoSkipsRepeatedOptionLookups(t *testing.T) {
	f := newFixture(t, baseCatalog...)
	cols := []string{"value_id", "option_id", "store_id", "value"}
	admin := f.chg("eav_attribute_option_value", cols, []any{uint64(1), uint64(10), uint64(0), "Red"}, []any{uint64(1), uint64(10), uint64(0), "Crimson"})
	store := f.chg("eav_attribute_option_value", cols, []any{uint64(2), uint64(10), uint64(2), "Rouge"}, []any{uint64(2), uint64(10), uint64(2), "Rouge!"})
	keys := func(ctx context.Context, c *change.Change) map[string][]string {
		t.Helper()
		got := map[string][]string{}
		if err := f.reg.Keys(ctx, c, func(feed string, keys []string) error {
			got[feed] = append(got[feed], keys...)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		for _, k := range got {
			sort.Strings(k)
		}
		return got
	}
	want := keys(context.Background(), admin)
	if !reflect.DeepEqual(want["products"], []string{"1", "11"}) || len(want["productAttributes"]) == 0 {
		t.Fatalf("without a memo the option label change gives %v", want)
	}
	batch := &setMemo{}
	ctx := WithMemo(context.Background(), batch)
	if got := keys(ctx, admin); !reflect.DeepEqual(got, want) {
		t.Fatalf("first change with a memo: %v, want %v", got, want)
	}
	lookups := batch.let
	if got := keys(ctx, store); len(got) != 0 {
		t.Fatalf("the same option again in the same batch emitted %v; its keys are already in the batch", got)
	}
	if batch.let != lookups {
		t.Fatalf("the memo let %d more lookups through", batch.let-lookups)
	}
	next := WithMemo(context.Background(), &setMemo{})
	if got := keys(next, store); !reflect.DeepEqual(got["products"], []string{"1", "11"}) {
		t.Fatalf("in the next batch the option's products are %v, want [1 11]", got["products"])
	}
}

package feeds

import (
	"context"
	"strconv"
)

// Memo lets the caller of Registry.Keys skip fan-out lookups that were
// already made for the batch of keys being collected: a Magento option
// label save rewrites every store's label row of the option (delete +
// insert), and each row would otherwise repeat the same scan for the
// products using the option on the binlog reader's goroutine.
//
// First reports whether key is new to the batch being collected, and
// records it. Skipping a repeated lookup is safe because the batch that
// received the first lookup's keys is built after the repeated change was
// committed (it is still being collected when First is asked), and a
// product that started using the option since then emits its own key.
// The caller must therefore tie the memo to one batch and start a new one
// when that batch is closed.
type Memo interface {
	First(key string) bool
}

type memoKey struct{}

// WithMemo returns a context whose Registry.Keys calls consult m.
func WithMemo(ctx context.Context, m Memo) context.Context {
	return context.WithValue(ctx, memoKey{}, m)
}

// firstLookup reports whether the fan-out lookup named by feed, kind and id
// must be made (true without a memo).
func firstLookup(ctx context.Context, feed, kind string, id uint64) bool {
	m, ok := ctx.Value(memoKey{}).(Memo)
	if !ok {
		return true
	}
	return m.First(feed + "/" + kind + "/" + strconv.FormatUint(id, 10))
}

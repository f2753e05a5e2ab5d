package feeds

import (
	"slices"
	"strings"

	"github.com/feedcdc/feedcdc/state"
)

// Diff compares freshly built items of some entities with what the state
// store remembers of those entities (prev, keyed by entity key; pass every
// rebuilt entity key, with an empty slice when nothing is known).
//
//   - changed: built items that are new, whose hash differs from the stored
//     one, that were deleted before, or whose stored status is not final
//     (state.IsFinal: 200, 400, 1 are final until the hash changes;
//     anything else is sent again).
//   - deleted: previously known, not yet deleted items of the rebuilt
//     entities that Build no longer returns (entity deleted, unassigned from
//     a website, store removed, relinked), as f.DeletedPayload. An item that
//     is already marked deleted is not deleted again.
//   - unchanged: built items skipped because their stored hash is equal.
//
// An item that moved to another rebuilt entity (same feed_id, new entity key)
// is compared, not deleted. Output is ordered by item ID.
func Diff(f Feed, built []Item, prev map[string][]PrevItem) (changed, deleted []Item, unchanged int) {
	known := make(map[string]PrevItem)
	for _, items := range prev {
		for _, p := range items {
			known[p.ID] = p
		}
	}
	builtIDs := make(map[string]struct{}, len(built))
	changed = make([]Item, 0, len(built))
	for _, it := range built {
		if _, dup := builtIDs[it.ID]; dup {
			continue // Build already resolved duplicates; keep the first
		}
		builtIDs[it.ID] = struct{}{}
		p, ok := known[it.ID]
		if ok && !p.Deleted && p.Hash == it.Hash && state.IsFinal(p.Status) {
			unchanged++
			continue
		}
		changed = append(changed, it)
	}
	for _, p := range known {
		if p.Deleted {
			continue
		}
		if _, ok := builtIDs[p.ID]; ok {
			continue
		}
		deleted = append(deleted, f.DeletedPayload(p))
	}
	// Ids are distinct in each list, so any sort gives the same order.
	byID := func(a, b Item) int { return strings.Compare(a.ID, b.ID) }
	slices.SortFunc(changed, byID)
	slices.SortFunc(deleted, byID)
	if len(changed) == 0 {
		changed = nil // nothing changed: nil, not the reserved slice
	}
	return changed, deleted, unchanged
}

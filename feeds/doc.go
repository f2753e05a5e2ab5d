// Package feeds turns row changes of a Magento catalog into entity feed items
// (products, productAttributes, variants, productOverrides): which entities a
// change affects (Keys), what their items look like now (Build), and which of
// them changed since the last export (Diff).
//
// Invariants:
//   - An Item's ID is feed_id = sha1(join("\0", identity values)) in lower-case
//     hex, and its Hash is the sha1 of its canonical JSON without modifiedAt
//     and updatedAt. Canonical JSON has a fixed field order, sorted arrays and
//     no HTML escaping, so equal data always hashes equal.
//   - Build(keys) returns every current item of those entities and nothing
//     else, reading the source with a few batched queries per call (never one
//     query per item). An entity that no longer exists yields no items; Diff
//     turns its previously known items into deleted payloads.
//   - Keys never holds a fan-out in memory: large fan-outs (an option label
//     used by 100k products, a website deletion) are read with keyset
//     pagination and handed to the caller in chunks of at most ChunkSize keys.
//   - Registry.Keys must see every captured change in binlog order: it keeps
//     a parent/child link index up to date from the stream, because InnoDB
//     foreign-key cascades (a deleted configurable's links) never reach the
//     binlog. The index holds every link change up to the position of the
//     last change it followed (or of the snapshot it was loaded from) and
//     none after; SaveLinks encodes it with that position, and RestoreLinks
//     is correct only for a stream that resumes at or before it.
//   - A Memo in the context of Registry.Keys (WithMemo) skips fan-out
//     lookups already made for the batch being collected; without one every
//     change is resolved on its own.
//   - Items are read only once built. The items of one Build may share the
//     memory behind their Data (products: 256 KiB slabs, each Data capped at
//     its length, so an append reallocates instead of reaching the next
//     item); a caller keeping one item's Data beyond its batch copies it, so
//     that it does not pin the slab.
//   - Feeds hold no per-item state; the state store (through PrevState) is
//     the only memory of what was exported.
package feeds

// Package state is feedcdc's embedded state store: one bbolt file per
// connector holding the binlog checkpoint, the schema history, per-item feed
// state with its indexes, the legacy outbox, resync progress, feed
// operation locks, the deferred keys of big transactions and the write-ahead
// records of exports in flight. See
// docs/state.md for the file layout and sizes.
//
// Invariants:
//   - One process at a time. Open takes bbolt's exclusive file lock with a
//     short timeout; a second opener gets an *InUseError naming the holder
//     (pid, host, command, start time) read from the "<path>.owner" record.
//   - A damaged file is an error, never a crash, and is never written. Open
//     validates an existing file read-only before bbolt opens it for
//     writing: both meta pages (magic, version, checksum; one torn meta
//     page is tolerated as bbolt does), the file size against the high-water
//     mark of the meta page in use, every page, key and value of every
//     bucket (read under guard, keys ascending), and feedcdc's own records (root buckets, meta/format,
//     checkpoint). An empty (0-byte) or foreign file is refused too. The
//     error matches ErrDamaged; Options.NewState renames the file to
//     "<path>.damaged-<time>" and starts a new one. Every bbolt call on an
//     open Store runs under guard (debug.SetPanicOnFault + recover on the
//     calling goroutine): a fault on the mapping or a bbolt panic becomes a
//     *DamagedError and the Store refuses all later calls.
//   - All-or-nothing flushes. Everything written inside one Update commits
//     atomically and is synced to disk before Update returns. The
//     checkpoint can only be written through Tx.SetCheckpoint, so a caller
//     that writes a flush's item states,
//     outbox entries and checkpoint in one Update never has a checkpoint
//     ahead of the state it covers — also after kill -9 or power loss.
//   - Indexes never drift. Items are stored under (entity key, feed id), so
//     one entity's items are contiguous. Every Tx.PutItems / DeleteItems
//     (and Cleanup, ForgetFeed) updates, in the same transaction, the id
//     index (feed id -> entity key), the failed index (status 2 and not
//     Attention, by NextAttempt), the status index (status != 200) and the
//     per-feed counters. Store.Check verifies this.
//   - The id index of a feed is byid plus its staged entries (byidnew,
//     idindex.go), each id in exactly one of them after every commit. New
//     ids are staged; once they reach Store.pendBound, Update merges the
//     largest staging partitions into byid until they are below it (all
//     of them after a commit that staged many). Store.pend holds exactly the staged entries
//     of the last commit (a transaction's changes are applied to it only
//     when it commits), loaded from the file before the first write
//     transaction and again after an Apply that touched them; it is read
//     by write transactions only. Its size is bounded by the merge bound.
//   - Attention is only kept on items with status 2.
//   - The legacy outbox is FIFO per feed and holds at most one entry per
//     feed id: a newer payload for the same id replaces the waiting one and
//     moves to the end.
//   - At most one operation per feed holds its feed lock; locks recorded by
//     an earlier process (which cannot still have the file open) are stale
//     and taken over.
//   - The checkpoint moves by streaming (SetCheckpoint with the flush it
//     covers) or by an operator/policy decision; the latter is recorded in
//     the same transaction in a bounded position history (at most
//     MaxPositionHistory entries), and removing the checkpoint
//     (DeleteCheckpoint) keeps every item, progress and schema record.
//   - The deferred set (PutDeferred / DeleteDeferred) holds each (feed,
//     entity key) once; a caller that records keys in it in the Update of
//     a checkpoint and removes them in the Update of their item states
//     never has a checkpoint past a key that is neither stored nor
//     deferred.
//   - A write-ahead record (PutInflight) is removed in the Update that
//     stores its items' final states (DeleteInflight) or applied as
//     PutItems of its pending states (ApplyInflight, and Open for records
//     an earlier process left); it is never applied after the final states
//     of its own export.
//   - Replication sees every write (high availability). With
//     Options.OnCommit set, every write an Update makes (puts, deletes,
//     bucket creation and removal, bucket sequences; not the per-process
//     meta bucket) is recorded as an Op, and the hook receives the ops of
//     each committed Update after it is durable, in commit order (Updates
//     and the hook are serialised). Store.Apply replays ops in one
//     transaction; a file built by Apply has the same content as the
//     original; so does one built from Export's ops. Without a hook nothing
//     is recorded.
//   - Values returned by reads are copies: they stay valid after the
//     transaction ends.
package state

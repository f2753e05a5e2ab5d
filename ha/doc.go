// Package ha makes several `feedcdc run` instances of one connector highly
// available on Kafka: leader election on Kafka's consumer-group protocol,
// state replication through a compacted changelog topic, and fencing of an
// active instance that lost its membership.
//
// Invariants:
//   - At most one instance writes at a time. The instances join the group
//     feedcdc.<name> and consume the single-partition coordination topic
//     <prefix>.<name>.leader; the member assigned its partition 0 is
//     active. Its epoch is the changelog offset of the epoch marker its
//     takeover writes: offsets only grow, so a later active has a larger
//     epoch — also after every instance was down and Kafka deleted the
//     empty group, which restarts group generations. An
//     active instance may write (sinks, changelog) only while its lease
//     holds: the lease is renewed, for SessionTimeout/2 from the moment the
//     request was sent, each time the coordinator lists this member in the
//     group; a paused, partitioned or evicted instance finds its lease
//     expired before it writes anything else (Node.Writable). A new active
//     instance waits one lease length after its election before it starts,
//     so the old one's writes have stopped.
//   - The changelog <prefix>.<name>.state holds every committed state
//     transaction of the active instance (state.Options.OnCommit runs after
//     the local commit, which follows the sinks' acknowledgements), one
//     record per write keyed by its place in the state file, so compaction
//     keeps one record per live key. Each record carries its epoch, its
//     transaction number and the transaction's record count.
//   - A follower (standby) applies a transaction in one state transaction
//     once all its records arrived, or, incomplete, when a record of
//     another transaction follows (its missing records were compacted away,
//     or the next active wrote corrections for them). It ignores records of
//     an epoch older than the newest epoch marker it read. Its file records
//     how far it read (state.Store.Apply's mark); a file whose mark is not
//     a standby's (it was active, or a single-process file) is replaced by
//     a restore from the changelog.
//   - Takeover: the new active writes an epoch marker, reads the changelog
//     from its file's mark up to the marker (so it applied exactly what
//     every follower applies; the mark, not the consumer's position, since
//     the election ends the follow wherever it is, also inside a fetch
//     whose records it has not applied), writes
//     corrections for an incomplete last transaction it did not apply, and
//     only then opens the connector, which resumes from the replicated
//     checkpoint. On an empty changelog (a new group) it publishes its
//     whole local file first (state.Store.Export). At-least-once and per-key order hold; duplicates come only
//     from the batch in flight at the failure.
package ha

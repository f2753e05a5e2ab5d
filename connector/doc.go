// Package connector is feedcdc's runtime: it wires the binlog source, the
// feeds, the raw change streams, the sinks and the state store into one
// ordered pipeline, and runs the scheduled jobs (legacy flush, retry of
// failed items, cleanup) and full syncs on it.
//
// Invariants:
//   - One exporter goroutine handles stream batches and jobs strictly in
//     queue order, so a key is never in flight twice and a later change is
//     never exported before an earlier one (per-key order).
//   - A checkpoint is written only in the same state transaction as the item
//     states of the batch it closes, and only at a transaction end: every
//     change before it has been acknowledged by every sink it is routed to,
//     or recorded as failed for the retry job (feed items), or delivered
//     (raw records, which are retried in place until delivered).
//   - A checkpoint exists from the first moment: a first start (and a purge
//     recovered by source.on_purged_position: resync) stores its start
//     position, with its full syncs recorded as started, before anything
//     is read, so a stop at any later moment resumes from there. Otherwise
//     the checkpoint only moves as above, or is stored again unchanged
//     (TouchCheckpoint: idle source, clean stop), or by an operator command
//     recorded in the state's position history.
//   - A streamed batch is built only once its newest feed transaction is
//     visible to other sessions (VisibilityFence): the binlog shows a
//     transaction before InnoDB has committed it.
//   - A source restart never stops the connector: every SQL read on the
//     source (fence, builds, fan-out lookups, full-sync chunks, the start of
//     the binlog stream) that fails transiently is retried with bounded
//     backoff (SourceRetry); a streamed batch is then exported again whole,
//     and its checkpoint is written only with it. Only permanent errors
//     (ClassifySourceError) stop it, with their remedy.
//   - Every statement on the source has a deadline (source.query_timeout:
//     the session's statement time limit and the driver's I/O timeouts).
//   - A TRUNCATE of a table a feed reads, or a rename that puts another
//     table in its place (an online schema change's cut-over), rebuilds all
//     of that feed's items before the checkpoint of the batch holding it.
//   - Open opens every configured sink or none: when one fails, those
//     already opened are closed before the error is returned.
//   - Memory is bounded: a batch holds at most BatchKeys keys and
//     BatchRecords/BatchBytes raw records; at most QueueLen batches and
//     MaxInflightBytes raw bytes wait for the exporter; beyond that the
//     binlog reader blocks (backpressure).
package connector

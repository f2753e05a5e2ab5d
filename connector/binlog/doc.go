// Package binlog is feedcdc's binlog source: it reads a MySQL or MariaDB
// binary log (live as a replica through go-mysql's BinlogSyncer, or offline
// from files) and turns row events into change.Change records and
// transaction ends into change.TxEnd records.
//
// Invariants:
//   - Changes are delivered in binlog order; every transaction ends with
//     exactly one TxEnd whose Position is where streaming resumes after it
//     (GTID set including the transaction, plus file/pos). Only TxEnd
//     positions are resume points.
//   - Rows of an XA transaction are delivered only when its XA COMMIT is
//     read (held by XID since its XA PREPARE, at most maxHeldXARows), never
//     after an XA ROLLBACK; while one is prepared, TxEnd positions stay at
//     the resume point before its prepare.
//   - Values are normalised as docs/types.md documents; nothing is silently
//     dropped: an event that cannot be decoded exactly (partial JSON, a
//     non-FULL row image, an unknown rows event type, a library panic)
//     stops the stream with an error naming file, position and event type.
//   - A position's GTID set is complete: never only the GTIDs seen since a
//     start (a MySQL start in the middle of a file resolves the set there
//     from the file's PREVIOUS_GTIDS and the GTIDs before the position, or
//     keeps file/pos-only positions where the file has no GTIDs).
//   - The first-start schema snapshot is the schema at its recorded
//     position: no DDL on a captured table was logged while it was read.
//   - Rows of tables outside the Filter are never decoded.
//   - Schemas come from TABLE_MAP full metadata when present, otherwise
//     from the schema history, which is versioned by binlog position so that
//     old events decode with the schema they were written under.
//     The history follows every table of a database with captured tables
//     (shadow tables of online schema changes), and reads a captured
//     table it cannot know from the server when it becomes captured.
//   - A TRUNCATE of a captured table, and a rename that puts another table
//     at a captured name, reach the Handler (Truncater, Replacer) before
//     the statement's TxEnd; so does every DDL that changed a captured
//     table (SchemaChanger), once per table, with its schema after it.
package binlog

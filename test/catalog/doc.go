// Package catalog is feedcdc's Magento catalog fixture: the DDL of the
// Magento 2.4 Open Source catalog tables the feeds read (schema.sql, written
// from shared/reference/magento-schema.md §1), the seed rows of a fresh
// install, a deterministic generator of the Magento performance-toolkit
// profiles, and a workload generator of realistic catalog changes.
//
// Invariants:
//   - Keying is Open Source (entity_id); every table is InnoDB utf8mb4 with
//     the real column names, types, unique keys and foreign keys.
//   - The generator is deterministic: the same Profile and seed produce the
//     same rows (auto-increment ids included), whatever the parallelism.
//   - Generation streams: rows are computed per entity from a seeded hash and
//     written in bounded multi-row INSERT batches; no table is ever held in
//     memory (only the category tree and the store layout are).
//   - The workload keeps the catalog consistent the way Magento does (a new
//     product gets EAV rows, website assignment and a stock item; deletes
//     rely on the foreign keys' ON DELETE CASCADE, as Magento does, so the
//     cascaded child rows do not appear in the binlog).
package catalog

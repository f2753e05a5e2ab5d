// Package chaos is feedcdc's fault-injection suite: it runs the real
// feedcdc binary against a private mariadbd (test/mysqltest), a kfake
// broker (test/kafkatest) and an HTTP feed service of its own, injects
// faults (SIGKILL, SIGTERM, source restarts, sink outages, partial produce
// failures, sink error storms, a full disk, an online schema change and
// TRUNCATEs) under a seeded workload, and checks the outcome with a
// checker that does not use the connector's code:
//
//   - raw streams: the server's binlog decoded by mariadb-binlog -v (an
//     independent C decoder) is the expected change list; every row change
//     must be in Kafka at least once, per key in binlog order (the expected
//     sequence is a subsequence of what was delivered) and ending with the
//     last change; duplicates are counted; each TRUNCATE and RENAME TABLE
//     in the binlog must have its truncate or replace record (same GTID),
//     and the per-key state a consumer replays must equal the binlog's;
//   - feeds: the last record per feed_id in Kafka (and, where a feed goes
//     to the HTTP service, the service's last accepted payload) must equal
//     a fresh full build made after the run by the built binary itself
//     (feedcdc resync per feed, into a state and a file sink of its own:
//     no feed code runs in the suite's process), and items whose entity
//     vanished must end with deleted: true.
//
// Every scenario is deterministic in its seed (workload, fault times) up to
// the machine's timing, and returns a Summary (kills, changes checked,
// lost, duplicated, wrong, RSS peak, catch-up seconds). go run
// ./test/cmd/chaos runs the full suite; TestReduced (go test, make test)
// runs a reduced one.
//
// Invariants: the suite starts only loopback listeners and processes it
// owns, kills only those by PID, and removes its temporary folders.
package chaos

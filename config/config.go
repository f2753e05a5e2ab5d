// Package config loads, defaults and validates feedcdc's configuration
// (config.yaml plus FEEDCDC_* environment overrides).
//
// Invariants:
//   - The set of keys is defined once, by the yaml tags of the Config struct
//     tree; config.yaml at the repository root and docs/configuration.md are
//     tested to document exactly those keys, with their defaults.
//   - Every key has a default (its default tag; Default), so a file that
//     only names the source host and user is a complete configuration.
//   - One decoding path: one reflective walker (load.go) decodes the YAML
//     node tree into the typed struct, and decodes each FEEDCDC_* value as a
//     YAML scalar of the key it names, so a value is checked by the same
//     code wherever it comes from and every problem knows its line or
//     variable. Every mapping (section, sinks, string map) is read by one
//     function: merge keys apply, a key given twice is an error.
//   - Load reports every problem of a file at once, as one *ValidationError
//     whose Problems name the key path, the config.yaml line (or the
//     environment variable) and how to fix it. A *Config returned without
//     error has passed every check in Validate, and each sink has exactly
//     the options section of its type.
//   - Secrets (source password, SASL passwords, HTTP API keys, dashboard
//     token, hash salt) come only from the environment or from files; a
//     literal secret in the YAML is an error. Secret values never print,
//     log or marshal their content.
//   - Adding an option is adding one struct field with its tags (yaml, doc,
//     default, and enum/min/max/required/pattern/needs/ref/keys as needed):
//     the walk over the tree (eachKey) gives it its default, its decoding,
//     its FEEDCDC_* override, the tag checks and its row in Keys. Checks the
//     tags cannot express (across keys, or the syntax of one key such as
//     table patterns, URLs and brokers) are written out in validate.go, so
//     Validate applies them to a Config built in code as Load does to a
//     file.
//   - The package describes and checks the configuration; what is built from
//     it lives with its user: TLS and driver configurations in connector,
//     the table filter in connector/binlog, topic names and URLs in the
//     sinks, the start position syntax in change.
//
// This package imports no other feedcdc package except change.
package config

import (
	"hash/fnv"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Feed names, in the spelling used in config.yaml, on the CLI and in logs.
const (
	FeedProducts          = "products"
	FeedProductAttributes = "productAttributes"
	FeedVariants          = "variants"
	FeedProductOverrides  = "productOverrides"
)

// FeedNames lists every entity feed, in a stable order.
var FeedNames = []string{FeedProducts, FeedProductAttributes, FeedVariants, FeedProductOverrides}

// Config is the whole configuration. Field tags:
// yaml = key name; doc = meaning (shown in docs/configuration.md);
// default = the built-in value, in config.yaml syntax (lists
// comma-separated); enum = allowed values; min/max = inclusive range;
// required = the key must not be empty, and how to fix it; pattern (listen, name, file: an existing file); needs = the
// sibling key that must be set with this one; ref:"sink" = the values name
// sinks; keys = what the keys of a map are (feed, header, config,
// producer, column, table), which also selects the check of its entries
// (entryChecks). A Secret field is read only from the environment or its
// <key>_env / <key>_file siblings.
type Config struct {
	Name         string           `yaml:"name" doc:"Connector name: appears in raw envelopes (source.name), logs, metrics and feed locks. Keep it stable and unique per connector." pattern:"name" default:"feedcdc"`
	Source       Source           `yaml:"source" doc:"The MySQL/MariaDB server feedcdc reads the binlog from (usually a replica)."`
	State        State            `yaml:"state" doc:"The embedded state store (checkpoints, feed item state, outbox)."`
	Feeds        Feeds            `yaml:"feeds" doc:"Catalog entity feeds."`
	Raw          Raw              `yaml:"raw" doc:"Raw per-table change streams (Debezium-style envelopes)."`
	Resync       Resync           `yaml:"resync" doc:"Full sync (resync) defaults; resync command flags override them per run."`
	Verify       Verify           `yaml:"verify" doc:"Rate limits of feedcdc verify (the command, the dashboard API and feeds.<feed>.verify_schedule); its chunks are resync.batch_size keys, resync.thread_count built at once. See docs/verify.md."`
	Sinks        map[string]*Sink `yaml:"sinks" doc:"Named destinations. Feeds and raw streams route to them by name."`
	Backpressure Backpressure     `yaml:"backpressure" doc:"Memory bounds between the binlog reader and the sinks."`
	Telemetry    Telemetry        `yaml:"telemetry" doc:"Metrics, traces and health endpoints."`
	Dashboard    Dashboard        `yaml:"dashboard" doc:"The data management dashboard (web)."`
	Log          Log              `yaml:"log" doc:"Logging."`
	HA           HA               `yaml:"ha" doc:"High availability on Kafka: several feedcdc run instances with the same name form one connector; one is active, the others are warm standbys (docs/operations.md, High availability)."`

	// Warnings collected while loading (e.g. an unknown FEEDCDC_* variable,
	// a world-readable secret file). Not a configuration key.
	Warnings []string `yaml:"-"`
	// File is the path the configuration was loaded from ("" for Default()).
	File string `yaml:"-"`
}

// Source is the binlog source.
type Source struct {
	Host             string      `yaml:"host" doc:"Host name or IP address of the source server." required:"set the source server's host, e.g. host: db-replica.internal" default:"127.0.0.1"`
	Port             int         `yaml:"port" doc:"TCP port of the source server." min:"1" max:"65535" default:"3306"`
	User             string      `yaml:"user" doc:"Replication user; needs REPLICATION SLAVE, REPLICATION CLIENT and SELECT on the captured tables, and on MariaDB SLAVE MONITOR for resync.max_replica_lag (README, Grants)." required:"set the replication user (needs REPLICATION SLAVE, REPLICATION CLIENT and SELECT), e.g. user: feedcdc, or FEEDCDC_SOURCE_USER"`
	Password         Secret      `yaml:"password" doc:"Password of user. Only from FEEDCDC_SOURCE_PASSWORD, password_env or password_file; a literal value in the file is rejected."`
	PasswordFile     string      `yaml:"password_file" doc:"File holding the password (trailing newline ignored)."`
	PasswordEnv      string      `yaml:"password_env" doc:"Name of an environment variable holding the password."`
	ServerID         uint32      `yaml:"server_id" doc:"Replica server_id feedcdc registers with; must differ from every other replica of the source. 0 = derived from the host name and state.path (stable, in 1000000000..4294967295)." max:"4294967295"`
	Flavor           string      `yaml:"flavor" doc:"Server flavor. auto detects it from the server version." enum:"auto,mysql,mariadb" default:"auto"`
	TLS              SourceTLS   `yaml:"tls" doc:"TLS to the source server."`
	Heartbeat        Duration    `yaml:"heartbeat" doc:"Binlog heartbeat period requested from the server. Keeps lag truthful and positions moving while the source is idle (lag returns to ~0 within two periods)." min:"100ms" max:"1h" default:"10s"`
	ReadTimeout      Duration    `yaml:"read_timeout" doc:"A binlog connection that delivered nothing for this long is considered dead and reconnected. Must exceed heartbeat, and the longest backpressure stall (the socket is not read while sinks are full)." min:"1s" max:"24h" default:"90s"`
	ConnectTimeout   Duration    `yaml:"connect_timeout" doc:"Timeout of each connection attempt." min:"100ms" max:"10m" default:"10s"`
	ReconnectMin     Duration    `yaml:"reconnect_min" doc:"First wait before reconnecting after a network error; doubles per failed attempt." min:"10ms" max:"1h" default:"500ms"`
	ReconnectMax     Duration    `yaml:"reconnect_max" doc:"Longest wait between reconnect attempts." min:"100ms" max:"24h" default:"30s"`
	StartPosition    string      `yaml:"start_position" doc:"Where streaming starts when there is no checkpoint: current, earliest, gtid:<set> (gtid:0-1-100, gtid:<uuid>:1-100) or <file>:<pos> (mysql-bin.000003:4). Resolved and stored as the checkpoint at the first start; ignored once a checkpoint exists (see feedcdc position set/reset)." default:"current"`
	OnPurgedPosition string      `yaml:"on_purged_position" doc:"When the server no longer has the checkpoint's binlog (purged): fail = stop with remedies (feedcdc position set current, then feedcdc resync of every feed); resync = take the current position, full sync every enabled feed through the normal diff, and report the gap in raw streams (logs, feedcdc.position.gaps metric, status)." enum:"fail,resync" default:"fail"`
	Databases        []string    `yaml:"databases" doc:"Databases whose tables are captured for raw streams. Empty = every database except mysql, sys, information_schema and performance_schema. The feeds read feeds.database regardless."`
	IncludeTables    []string    `yaml:"include_tables" doc:"Tables to capture (raw streams) as db.table patterns where * matches any run of characters and ? one character, case-insensitive. Empty = every table of the captured databases. The feeds' catalog tables are always captured."`
	ExcludeTables    []string    `yaml:"exclude_tables" doc:"Tables never captured for raw streams (db.table patterns); wins over include_tables."`
	ZeroDates        string      `yaml:"zero_dates" doc:"How zero and partly-zero dates (0000-00-00, 2024-00-10) are emitted: null, or the string as stored." enum:"null,string" default:"null"`
	PoolSize         int         `yaml:"pool_size" doc:"Connections in the pool used by feed builders and resync scans." min:"1" max:"256" default:"4"`
	QueryTimeout     Duration    `yaml:"query_timeout" doc:"Deadline of every SQL statement feedcdc runs on the source (builds, fan-out lookups, fence, resync scans): the server stops it (MariaDB max_statement_time, MySQL max_execution_time for SELECTs) and the driver gives up reading after it; the statement is then retried as a transient failure. Longer than your slowest build of feeds.*.batch_size keys." min:"1s" max:"24h" default:"5m"`
	Retry            SourceRetry `yaml:"retry" doc:"Retry of SQL reads on the source after a transient failure (connection refused or lost, server restarting, deadlock, lock wait or statement timeout, read-only failover). The batch and its checkpoint stay where they were and are rebuilt whole once the source answers; permanent errors (access denied, a table a feed needs is missing) stop the connector with the remedy."`
}

// SourceRetry is the bounded exponential backoff of source queries.
type SourceRetry struct {
	Initial    Duration `yaml:"initial" doc:"First wait after a transient source error; doubles per failed attempt (with +-20% jitter)." min:"10ms" max:"1h" default:"500ms"`
	Max        Duration `yaml:"max" doc:"Longest wait between attempts." min:"100ms" max:"24h" default:"30s"`
	MaxElapsed Duration `yaml:"max_elapsed" doc:"Give up (and stop the connector) when the source has been failing for this long. 0 = retry forever." min:"0s" max:"8760h"`
}

// SourceTLS configures TLS to the source, with MySQL's ssl-mode semantics.
type SourceTLS struct {
	Mode       string `yaml:"mode" doc:"disabled: plaintext. preferred: TLS if the server offers it, plaintext (logged as a warning) only when it answers that it has none; if it cannot be asked, feedcdc run stops with an error. required: TLS, no verification. verify-ca: TLS, server certificate signed by ca_file (or system roots). verify-identity: verify-ca plus host name check." enum:"disabled,preferred,required,verify-ca,verify-identity" default:"preferred"`
	CAFile     string `yaml:"ca_file" doc:"PEM CA bundle for verify-ca/verify-identity. Empty = system roots." pattern:"file"`
	CertFile   string `yaml:"cert_file" doc:"PEM client certificate (needs key_file)." pattern:"file" needs:"key_file"`
	KeyFile    string `yaml:"key_file" doc:"PEM client private key (needs cert_file)." pattern:"file" needs:"cert_file"`
	ServerName string `yaml:"server_name" doc:"Host name expected in the server certificate. Empty = source.host."`
}

// State is the embedded state store.
type State struct {
	Path                   string   `yaml:"path" doc:"bbolt state file (checkpoint, schema history, feed item state, outbox, resync progress). Relative paths are relative to the working directory. Its directory is created if missing. A damaged, empty or foreign file stops every command with the remedy (docs/state.md); check it with feedcdc state check, back it up with feedcdc state backup FILE." required:"set path, e.g. path: feedcdc-data/state.db" default:"feedcdc-data/state.db"`
	Retention              Duration `yaml:"retention" doc:"How long the state of deleted items that were sent successfully is kept before cleanup." min:"1h" max:"3650d" default:"7d"`
	FlushInterval          Duration `yaml:"flush_interval" doc:"Longest time changes are collected into one batch before it is exported and checkpointed in one state transaction (a feed's batch_window can make it shorter). While the exporter is still busy with an earlier batch, the batch keeps collecting (up to its size limits) until the exporter can take it, so one export covers every change that arrived meanwhile." min:"1ms" max:"1m" default:"200ms"`
	FlushBatch             int      `yaml:"flush_batch" doc:"Changed entity keys (all feeds together) that close a batch before flush_interval." min:"1" max:"1000000" default:"5000"`
	IdleCheckpointInterval Duration `yaml:"idle_checkpoint_interval" doc:"While nothing is in flight (an idle source), the checkpoint is re-stored (its position and time) at most this often, so its age stays below about this interval plus one flush_interval; with traffic it moves with every flush anyway." min:"100ms" max:"1h" default:"10s"`
}

// Feeds holds the four entity feeds.
type Feeds struct {
	Database               string   `yaml:"database" doc:"Database holding the Magento catalog tables the feed builders read." required:"set database, e.g. database: magento" default:"magento"`
	TablePrefix            string   `yaml:"table_prefix" doc:"Magento table prefix (app/etc/env.php db.table_prefix). Only the empty prefix is supported so far; a non-empty one is refused at start."`
	VisibilityFence        bool     `yaml:"visibility_fence" doc:"Before a streamed batch is built, prove that its newest transaction is committed, so the build sees it: take a shared lock on one row it changed (a point read in its own transaction, released at once), or, when a later transaction holds the row, read the row and find the change's result in it. MySQL and MariaDB show a transaction in the binlog before other sessions see its rows (seconds before with semi-sync AFTER_SYNC or a slow fsync); see feeds.visibility_fence_timeout. On MySQL 8.0.22+ this needs LOCK TABLES (or UPDATE/DELETE) on the catalog database; without it feedcdc warns once and waits 100 ms instead. Off: a build may miss a transaction read the instant it was committed." default:"true"`
	VisibilityFenceTimeout Duration `yaml:"visibility_fence_timeout" doc:"Longest time the visibility fence waits for proof that a streamed batch's newest transaction is committed (its row lock is free, or its row shows the change while a later transaction holds the lock). A lock-wait timeout alone is no proof: a commit waiting for a semi-sync acknowledgement, a slow fsync or a stalled replica SQL thread looks the same. When the time runs out the batch is not exported, its checkpoint does not move, feedcdc.fence.timeouts counts it, an error is logged and the batch is retried. Set it above rpl_semi_sync_master_timeout / rpl_semi_sync_source_timeout." min:"1s" max:"1h" default:"1m"`
	BuildThreads           int      `yaml:"build_threads" doc:"Build calls (batch_size keys each) of one feed run at once when a streamed batch holds more keys than batch_size; items are still exported in key order. At most source.pool_size." min:"1" max:"64" default:"2"`
	Products               Feed     `yaml:"products" doc:"products feed: one item per product and store view."`
	ProductAttributes      Feed     `yaml:"productAttributes" doc:"productAttributes feed: one item per attribute and store view."`
	Variants               Feed     `yaml:"variants" doc:"variants feed: one item per configurable parent and child."`
	ProductOverrides       Feed     `yaml:"productOverrides" doc:"productOverrides feed: one item per product, website and customer group (needs the catalog permissions index)."`
}

// Feed is one entity feed's settings.
type Feed struct {
	Enabled        bool     `yaml:"enabled" doc:"Whether the feed is built and exported." default:"true"`
	Mode           string   `yaml:"mode" doc:"immediate: export right after building. legacy: collect built items in the outbox and send them on legacy_schedule (logs say \"(legacy)\")." enum:"immediate,legacy" default:"immediate"`
	BatchSize      int      `yaml:"batch_size" doc:"Most keys built per batch (a few SELECTs per batch)." min:"1" max:"100000" default:"500"`
	BatchWindow    Duration `yaml:"batch_window" doc:"Longest time changed keys are collected (and deduplicated) before a batch is built. While the exporter is still busy with an earlier batch, the batch keeps collecting (up to its size limits) until the exporter can take it, so one export covers every change that arrived meanwhile." min:"0s" max:"1m" default:"100ms"`
	Sinks          []string `yaml:"sinks" doc:"Names of the sinks (under sinks:) this feed is sent to; an item is delivered when every one has it. Empty = every sink." ref:"sink"`
	LegacySchedule Schedule `yaml:"legacy_schedule" doc:"legacy mode: when the outbox is flushed, as a duration (5m, 30s) or cron expression (*/5 * * * *)." default:"5m"`
	RetrySchedule  Schedule `yaml:"retry_schedule" doc:"When the <feed>_resend_failed_items job rebuilds and resends items with status 2 (duration or cron)." default:"5m"`
	VerifySchedule Schedule `yaml:"verify_schedule" doc:"When the connector verifies the feed against the source on its own, like feedcdc verify without --repair (duration or cron; throttled by verify.rows_per_second and verify.max_replica_lag). Empty = never. See docs/verify.md."`
	MaxAttempts    int      `yaml:"max_attempts" doc:"Attempts after which a failing item is marked as requiring attention and no longer retried automatically." min:"1" max:"1000" default:"10"`
	BackoffBase    Duration `yaml:"backoff_base" doc:"Per-item retry backoff after the first failure; doubles per attempt." min:"1s" max:"24h" default:"1m"`
	BackoffMax     Duration `yaml:"backoff_max" doc:"Upper bound of the per-item retry backoff." min:"1s" max:"30d" default:"1h"`
	Stores         []string `yaml:"stores" doc:"Store view codes to export (products, productAttributes). Empty = all."`
	Websites       []string `yaml:"websites" doc:"Website codes to export (products, productAttributes, productOverrides). Empty = all."`
}

// Raw configures raw per-table change streams.
type Raw struct {
	Enabled             bool              `yaml:"enabled" doc:"Emit every row change of the captured tables as a JSON envelope {before, after, op, source, ts_ms}."`
	TopicTemplate       string            `yaml:"topic_template" doc:"Topic (Kafka) or file name (file sink) per table. Placeholders: {prefix} (a Kafka sink's topic_prefix; the connector name for file sinks), {db}, {table}, {name} (connector name)." required:"set topic_template, e.g. topic_template: \"{prefix}.{db}.{table}\"" default:"{prefix}.{db}.{table}"`
	Tombstones          bool              `yaml:"tombstones" doc:"Follow each delete with a tombstone (null value) for log compaction." default:"true"`
	Sinks               []string          `yaml:"sinks" doc:"Sinks (kafka or file) raw streams go to. Empty = every kafka and file sink." ref:"sink"`
	SchemaChanges       bool              `yaml:"schema_changes" doc:"Emit a schema-change record for every DDL statement (CREATE, ALTER, RENAME, DROP) that changes a table of the raw streams: statement, db, table, binlog position/GTID, timestamp and the table's columns after it, in binlog order with the data records (Debezium's schema-change topic; docs/sinks.md)." default:"true"`
	SchemaChangesTopic  string            `yaml:"schema_changes_topic" doc:"Topic (Kafka) or file name (file sink) of schema-change records. Placeholders: {prefix}, {name}." default:"{prefix}.schema-changes"`
	HeartbeatInterval   Duration          `yaml:"heartbeat_interval" doc:"Emit a heartbeat record (the connector's current binlog position and the source server's time) this often, also while the source is idle, so consumers can tell an idle source from a stopped connector (Debezium's heartbeat.interval.ms). 0 = off." min:"0s" max:"24h"`
	HeartbeatTopic      string            `yaml:"heartbeat_topic" doc:"Topic (Kafka) or file name (file sink) of heartbeat records. Placeholders: {prefix}, {name}." default:"{prefix}.heartbeat"`
	TransactionMetadata bool              `yaml:"transaction_metadata" doc:"Emit a BEGIN and an END record (with the event count per table) for every transaction with raw changes on transaction_topic, and a transaction block {id, total_order, data_collection_order} in every envelope (Debezium's provide.transaction.metadata)."`
	TransactionTopic    string            `yaml:"transaction_topic" doc:"Topic (Kafka) or file name (file sink) of transaction BEGIN/END records. Placeholders: {prefix}, {name}." default:"{prefix}.transaction"`
	IncludeQuery        bool              `yaml:"include_query" doc:"Add source.query, the SQL statement that made the row change, to envelopes, when the server logs it (MariaDB binlog_annotate_row_events, on by default; MySQL binlog_rows_query_log_events). Off by default, like Debezium's include.query: a statement shows values in clear that mask_columns hides."`
	IncludeColumns      []string          `yaml:"include_columns" doc:"Columns shown in raw envelopes, as db.table.column patterns (* and ?, case-insensitive). A table named by at least one pattern shows only its matching columns; other tables show every column. The record key is not affected."`
	ExcludeColumns      []string          `yaml:"exclude_columns" doc:"Columns never shown in raw envelopes (db.table.column patterns); applied after include_columns."`
	MaskColumns         map[string]string `yaml:"mask_columns" doc:"Masks per db.table.column pattern: hash (hex HMAC-SHA-256 of the value keyed with hash_salt), mask:N (N asterisks) or truncate:N (the first N characters; N bytes of a binary value). NULL stays null. Applied to before, after and a key column alike; with several matching patterns the first in sorted order wins." keys:"column"`
	HashSalt            Secret            `yaml:"hash_salt" doc:"Salt (HMAC key) of hash masks; required when a mask is hash. Only from FEEDCDC_RAW_HASH_SALT, hash_salt_env or hash_salt_file."`
	HashSaltFile        string            `yaml:"hash_salt_file" doc:"File holding the hash salt."`
	HashSaltEnv         string            `yaml:"hash_salt_env" doc:"Environment variable holding the hash salt."`
	KeyColumns          map[string]string `yaml:"key_columns" doc:"Message key columns per db.table pattern, comma-separated (\"sku,store_id\"): they key the table's records instead of its primary key, or supply a key for a table without one. A column the table lacks stops the stream with an error naming the entry." keys:"table"`
	Snapshot            string            `yaml:"snapshot" doc:"initial = on a first start (no checkpoint), snapshot every captured table into its raw stream (op r) while streaming, lock-free, chunked by primary key, resumable; none = only on demand (feedcdc snapshot, the dashboard, the API). Paced by resync.rows_per_second and resync.max_replica_lag." enum:"none,initial" default:"none"`
	SnapshotChunk       int               `yaml:"snapshot_chunk_size" doc:"Rows per chunk of a raw snapshot: each chunk is one SELECT by primary key, held until the stream reaches the chunk's binlog position (memory is bounded by one chunk)." min:"1" max:"100000" default:"2000"`
}

// Resync configures full sync.
type Resync struct {
	BatchSize     int      `yaml:"batch_size" doc:"Primary-key chunk size of the keyset scan (--batch-size). A feed with more than five items per entity (productOverrides: one per store view and customer group) gets chunks of fewer entities, so that a chunk, and the state transaction that persists it, holds at most about five times this many items." min:"1" max:"1000000" default:"1000"`
	ThreadCount   int      `yaml:"thread_count" doc:"Chunks built in parallel (--thread-count)." min:"1" max:"64" default:"2"`
	RowsPerSecond int      `yaml:"rows_per_second" doc:"Scan rate limit in source rows per second. 0 = unlimited." min:"0" max:"100000000" default:"20000"`
	MaxReplicaLag Duration `yaml:"max_replica_lag" doc:"Pause the scan while the source replica lags its primary by more than this (Seconds_Behind_Master; needs SLAVE MONITOR on MariaDB, REPLICATION CLIENT on MySQL, else the throttle is off with a warning). 0 = do not watch lag." min:"0s" max:"24h" default:"10s"`
	OnFirstStart  string   `yaml:"on_first_start" doc:"With no checkpoint: full = capture the current position, full sync every enabled feed, then stream from that position; none = just stream from start_position." enum:"full,none" default:"full"`
}

// Verify configures the pacing of feedcdc verify.
type Verify struct {
	RowsPerSecond int      `yaml:"rows_per_second" doc:"Source rows a verify reads per second (paced per chunk of resync.batch_size keys, from the first chunk). Lower than resync's by default: a scheduled verify runs beside the stream for as long as it takes. 0 = unlimited." min:"0" max:"100000000" default:"5000"`
	MaxReplicaLag Duration `yaml:"max_replica_lag" doc:"Pause a verify while the source replica lags its primary by more than this (as resync.max_replica_lag; needs the same privilege, else the lag is not watched, with a warning). 0 = do not watch lag." min:"0s" max:"24h" default:"10s"`
}

// Sink is one named destination. Exactly the section matching Type is set
// after loading.
type Sink struct {
	Type  string     `yaml:"type" doc:"Sink type; may be omitted when exactly one of kafka, http, file is given." enum:"kafka,http,file"`
	Kafka *KafkaSink `yaml:"kafka,omitempty" doc:"Kafka options (type kafka)."`
	HTTP  *HTTPSink  `yaml:"http,omitempty" doc:"HTTP feed service options (type http)."`
	File  *FileSink  `yaml:"file,omitempty" doc:"JSON Lines file options (type file)."`
}

// KafkaSink is a Kafka destination.
type KafkaSink struct {
	Brokers           []string          `yaml:"brokers" doc:"Bootstrap brokers as host:port." required:"write at least one entry, e.g. brokers: [kafka-1:9092]"`
	ClientID          string            `yaml:"client_id" doc:"Kafka client.id." default:"feedcdc"`
	TopicPrefix       string            `yaml:"topic_prefix" doc:"Value of {prefix} in topic templates." default:"feedcdc"`
	TopicTemplate     string            `yaml:"topic_template" doc:"Topic per entity feed. Placeholders: {prefix}, {feed}, {name}." required:"set topic_template, e.g. topic_template: \"{prefix}.{feed}\"" default:"{prefix}.{feed}"`
	Compression       string            `yaml:"compression" doc:"Producer compression codec." enum:"none,gzip,snappy,lz4,zstd" default:"none"`
	Acks              string            `yaml:"acks" doc:"Acknowledgements required: all (durable; required for at-least-once), one (leader only), none." enum:"all,one,none" default:"all"`
	BatchSize         int               `yaml:"batch_size" doc:"Most messages per produce request. kafka-go reserves room for this many (about 150 bytes each) in every batch it starts, however few it then holds: above what batch_bytes lets a batch hold (about 1,700 products items in 1 MiB), raising it costs memory and CPU for nothing." min:"1" max:"1000000" default:"1000"`
	BatchBytes        ByteSize          `yaml:"batch_bytes" doc:"Most bytes (before compression) of one partition's record batch in a produce request. Keep it at or below the topic's max.message.bytes: the broker refuses a bigger batch whole, and feedcdc then resends its records in smaller requests, at a cost in throughput (logged once as a warning)." min:"1KiB" max:"1GiB" default:"1MiB"`
	Linger            Duration          `yaml:"linger" doc:"Longest wait to fill a batch before it is sent. feedcdc hands each export's records to the producer at once and waits for their acknowledgements, so they fill the batches without waiting; a linger only holds back the last, partly filled batch of each partition. 0 = send it at once." min:"0s" max:"1m" default:"0s"`
	WriteTimeout      Duration          `yaml:"write_timeout" doc:"Timeout of one produce request; on expiry the items are retryable." min:"1s" max:"10m" default:"30s"`
	CreateTopics      bool              `yaml:"create_topics" doc:"Create missing topics at start with partitions, replication_factor and (for entity feeds, if compact) cleanup.policy=compact." default:"true"`
	Partitions        int               `yaml:"partitions" doc:"Partitions of created topics (records are partitioned by key, so per-key order holds)." min:"1" max:"10000" default:"3"`
	ReplicationFactor int               `yaml:"replication_factor" doc:"Replication factor of created topics. -1 = the broker's default.replication.factor." min:"-1" max:"32" default:"-1"`
	Compact           bool              `yaml:"compact" doc:"Create entity feed topics with cleanup.policy=compact (raw topics keep the broker default)." default:"true"`
	TopicConfigs      map[string]string `yaml:"topic_configs" doc:"Extra topic configs for created topics (e.g. retention.ms: \"604800000\", min.insync.replicas: \"2\")." keys:"config"`
	MaxMessageBytes   ByteSize          `yaml:"max_message_bytes" doc:"Largest record sent; a bigger item fails alone as rejected. Keep at or below the broker's message.max.bytes." min:"1KiB" max:"1GiB" default:"1000000"`
	Producer          map[string]string `yaml:"producer" doc:"Kafka producer settings handed to kafka-go's Writer, named like the Java client's properties (linger.ms, batch.size, compression.type, acks, max.request.size, request.timeout.ms, retries, ...; docs/sinks.md lists them); they override the kafka keys above. An unknown or unsupported name is refused." keys:"producer"`
	TLS               KafkaTLS          `yaml:"tls" doc:"TLS to the brokers."`
	SASL              KafkaSASL         `yaml:"sasl" doc:"SASL authentication."`
}

// KafkaTLS configures TLS to Kafka.
type KafkaTLS struct {
	Enabled            bool   `yaml:"enabled" doc:"Connect with TLS (the server certificate is verified against ca_file or the system roots)."`
	CAFile             string `yaml:"ca_file" doc:"PEM CA bundle. Empty = system roots." pattern:"file"`
	CertFile           string `yaml:"cert_file" doc:"PEM client certificate for mutual TLS (needs key_file)." pattern:"file" needs:"key_file"`
	KeyFile            string `yaml:"key_file" doc:"PEM client private key (needs cert_file)." pattern:"file" needs:"cert_file"`
	ServerName         string `yaml:"server_name" doc:"Host name expected in broker certificates. Empty = the broker's host."`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify" doc:"Do not verify broker certificates (testing only; logged as a warning)."`
}

// KafkaSASL configures SASL to Kafka.
type KafkaSASL struct {
	Mechanism    string `yaml:"mechanism" doc:"SASL mechanism; empty = no SASL." enum:",PLAIN,SCRAM-SHA-256,SCRAM-SHA-512"`
	User         string `yaml:"user" doc:"SASL user name."`
	Password     Secret `yaml:"password" doc:"SASL password. Only from FEEDCDC_SINKS_<NAME>_KAFKA_SASL_PASSWORD, password_env or password_file."`
	PasswordFile string `yaml:"password_file" doc:"File holding the SASL password."`
	PasswordEnv  string `yaml:"password_env" doc:"Environment variable holding the SASL password."`
}

// HTTPSink is an HTTP feed service (Adobe SaaS Data Export style).
type HTTPSink struct {
	BaseURL            string            `yaml:"base_url" doc:"Service base URL; requests go to POST {base_url}/{route}/{data_space} (or {base_url}/{route} without data_space)." required:"set base_url, e.g. base_url: https://feeds.example.com/api"`
	Routes             map[string]string `yaml:"routes" doc:"Route per feed name; a feed not listed uses its own name." keys:"feed"`
	DataSpace          string            `yaml:"data_space" doc:"Data space (environment) id appended to the URL."`
	Headers            map[string]string `yaml:"headers" doc:"Extra non-secret request headers. Credentials go in api_key, never here." keys:"header"`
	APIKey             Secret            `yaml:"api_key" doc:"API key sent in every header of api_key_headers. Only from FEEDCDC_SINKS_<NAME>_HTTP_API_KEY, api_key_env or api_key_file."`
	APIKeyFile         string            `yaml:"api_key_file" doc:"File holding the API key."`
	APIKeyEnv          string            `yaml:"api_key_env" doc:"Environment variable holding the API key."`
	APIKeyHeaders      []string          `yaml:"api_key_headers" doc:"Headers that carry the API key." default:"x-api-key"`
	Timeout            Duration          `yaml:"timeout" doc:"Timeout of one request; on expiry its items are retryable." min:"100ms" max:"10m" default:"30s"`
	Gzip               bool              `yaml:"gzip" doc:"gzip request bodies (Content-Encoding: gzip)." default:"true"`
	MaxItemsPerRequest int               `yaml:"max_items_per_request" doc:"Most items per POST (the service rejects bigger requests)." min:"1" max:"100000" default:"100"`
	ErrorItemsField    string            `yaml:"error_items_field" doc:"Response field listing rejected items ({itemIndex, code, message} or {field: /<index>/..., message})." default:"invalidFeedItems"`
	RequestIDHeader    string            `yaml:"request_id_header" doc:"Response header whose value is recorded with the items as their request id." default:"x-request-id"`
	TLS                HTTPTLS           `yaml:"tls" doc:"TLS for https base URLs."`
}

// HTTPTLS configures TLS for an https base_url.
type HTTPTLS struct {
	CAFile             string `yaml:"ca_file" doc:"PEM CA bundle. Empty = system roots." pattern:"file"`
	CertFile           string `yaml:"cert_file" doc:"PEM client certificate (needs key_file)." pattern:"file" needs:"key_file"`
	KeyFile            string `yaml:"key_file" doc:"PEM client private key (needs cert_file)." pattern:"file" needs:"cert_file"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify" doc:"Do not verify the server certificate (testing only; logged as a warning)."`
}

// FileSink writes JSON Lines files.
type FileSink struct {
	Dir      string   `yaml:"dir" doc:"Directory of the files (<feed>.jsonl, raw: the raw topic_template + .jsonl); created if missing." required:"set dir, e.g. dir: feedcdc-data/out" default:"feedcdc-data/out"`
	MaxSize  ByteSize `yaml:"max_size" doc:"A file is rotated when it would exceed this size." min:"1KiB" max:"1TiB" default:"100MiB"`
	MaxFiles int      `yaml:"max_files" doc:"Rotated files kept per stream; the oldest is deleted (and the deletion logged) when one more is made, although its items were acknowledged. 0 = keep all." min:"0" max:"100000" default:"10"`
	Fsync    bool     `yaml:"fsync" doc:"fsync before acknowledging a batch (durable; slower). Without it a power loss can lose acknowledged lines." default:"true"`
	Envelope bool     `yaml:"envelope" doc:"Write each line as {feed, topic, id, key, hash, op, position, value} instead of the bare item JSON (tombstones then appear with value null)."`
}

// Backpressure bounds memory between reader and sinks.
type Backpressure struct {
	MaxInflightBytes ByteSize `yaml:"max_inflight_bytes" doc:"Bytes of changes and items in flight (read, not yet acknowledged by every sink); the binlog reader pauses at this bound and resumes as sinks drain. Full syncs (first start, resync) keep the items they built and did not persist yet within a second bound of this size, shared by every feed's sync." min:"1MiB" max:"64GiB" default:"64MiB"`
	QueueSize        int      `yaml:"queue_size" doc:"Raw change records that close a batch before flush_interval (a batch holds at most this many records)." min:"1" max:"10000000" default:"8192"`
	MemoryLimit      ByteSize `yaml:"memory_limit" doc:"Soft limit of the Go runtime's memory (heap, stacks; not the memory-mapped state file): the garbage collector works harder as the process nears it, so anonymous memory stays about there. 0 = 64MiB plus twice max_inflight_bytes (192MiB with the defaults). The GOMEMLIMIT environment variable, when set, wins." max:"64GiB"`
	SinkQueueSize    int      `yaml:"sink_queue_size" doc:"Closed batches waiting for the exporter; when it is full (or max_inflight_bytes is reached) the binlog reader waits." min:"1" max:"100000" default:"16"`
}

// Telemetry configures metrics, traces and health.
type Telemetry struct {
	Listen         string   `yaml:"listen" doc:"Address serving /metrics (Prometheus), /healthz and /readyz. Empty = off." pattern:"listen" default:"127.0.0.1:9464"`
	OTLPEndpoint   string   `yaml:"otlp_endpoint" doc:"OTLP/HTTP endpoint (http://host:4318) for metrics and traces. Empty = no OTLP export."`
	Traces         bool     `yaml:"traces" doc:"Record spans per build/export batch and resync chunk (exported over OTLP)."`
	ServiceName    string   `yaml:"service_name" doc:"OpenTelemetry service.name. Empty = the connector name."`
	ReadyMaxLag    Duration `yaml:"ready_max_lag" doc:"/readyz fails while lag behind the source exceeds this." min:"1s" max:"24h" default:"1m"`
	MetricInterval Duration `yaml:"metric_interval" doc:"OTLP metric push period." min:"1s" max:"1h" default:"15s"`
	Pprof          bool     `yaml:"pprof" doc:"Also serve Go's runtime profiles (heap, CPU, goroutines) at /debug/pprof/ on listen, for diagnosing memory and CPU use (go tool pprof http://<listen>/debug/pprof/heap). Keep listen on loopback when on."`
}

// Dashboard configures the web dashboard.
type Dashboard struct {
	Enabled         bool     `yaml:"enabled" doc:"Serve the dashboard from feedcdc run." default:"true"`
	Listen          string   `yaml:"listen" doc:"Dashboard address. A non-loopback address requires a token." pattern:"listen" default:"127.0.0.1:8484"`
	Token           Secret   `yaml:"token" doc:"Bearer token required by mutating actions (resync, retry). Only from FEEDCDC_DASHBOARD_TOKEN, token_env or token_file."`
	TokenFile       string   `yaml:"token_file" doc:"File holding the dashboard token."`
	TokenEnv        string   `yaml:"token_env" doc:"Environment variable holding the dashboard token."`
	RefreshInterval Duration `yaml:"refresh_interval" doc:"How often the page refreshes itself." min:"1s" max:"1h" default:"5s"`
	ItemsToken      string   `yaml:"items_token" doc:"When reading feed items (GET /api/items, GET /api/feeds/{feed}/items/{id}: full item payloads) needs the token: auto (when listen is not a loopback address), always, or never." enum:"auto,always,never" default:"auto"`
}

// HA configures high availability on Kafka (docs/operations.md).
type HA struct {
	Enabled        bool     `yaml:"enabled" doc:"Run as one instance of a highly available connector: instances with the same name join the Kafka group feedcdc.<name>; the one assigned the coordination topic's partition is active, the others replicate its state from the changelog topic and take over when it goes. Off = one process with its local state file." default:"false"`
	Brokers        []string `yaml:"brokers" doc:"Bootstrap brokers (host:port) of the Kafka cluster holding the group, the coordination topic and the state changelog. Required when enabled."`
	TopicPrefix    string   `yaml:"topic_prefix" doc:"Prefix of the coordination topic <prefix>.<name>.leader and the compacted state changelog <prefix>.<name>.state (both created when missing)." pattern:"name" default:"feedcdc"`
	Instance       string   `yaml:"instance" doc:"This instance's name in status, metrics and logs. Empty = host name and process id."`
	SessionTimeout Duration `yaml:"session_timeout" doc:"Group session timeout: an active instance that has not reached the group coordinator for this long is replaced, and fences itself (stops exporting) after half of it without reaching the coordinator. A takeover after a crash takes about 1.5 times this plus the connector's start (docs/benchmarks.md); the broker's group.min.session.timeout.ms must allow it." min:"1s" max:"5m" default:"6s"`
	Replication    int      `yaml:"replication_factor" doc:"Replication factor of the topics feedcdc creates (-1 = the broker default)." min:"-1" max:"32" default:"-1"`
}

// Log configures logging.
type Log struct {
	Level  string `yaml:"level" doc:"Lowest level logged." enum:"debug,info,warn,error" default:"info"`
	Format string `yaml:"format" doc:"json, text, or auto (text on a terminal, json otherwise)." enum:"json,text,auto" default:"auto"`
}

// Default returns the built-in configuration: every key at its default
// (the default tags above; lists and maps empty, not nil) and the default
// sink set. It is not valid on its own: source.user must be set.
func Default() *Config {
	return withDefaults(&Config{Sinks: DefaultSinks()})
}

// DefaultSinks is the sink set used when the file defines none: one file
// sink named "file" writing JSON Lines under feedcdc-data/out.
func DefaultSinks() map[string]*Sink {
	return map[string]*Sink{"file": {Type: "file", File: DefaultFileSink()}}
}

// DefaultKafkaSink returns a Kafka sink section with every default set
// (brokers empty).
func DefaultKafkaSink() *KafkaSink { return withDefaults(&KafkaSink{}) }

// DefaultHTTPSink returns an HTTP sink section with every default set
// (base_url empty).
func DefaultHTTPSink() *HTTPSink { return withDefaults(&HTTPSink{}) }

// DefaultFileSink returns a file sink section with every default set.
func DefaultFileSink() *FileSink { return withDefaults(&FileSink{}) }

// Feed returns the settings of the named feed (names compare
// case-insensitively), or nil for an unknown name.
func (f *Feeds) Feed(name string) *Feed {
	if i := slices.IndexFunc(FeedNames, func(n string) bool { return strings.EqualFold(n, name) }); i >= 0 {
		return []*Feed{&f.Products, &f.ProductAttributes, &f.Variants, &f.ProductOverrides}[i]
	}
	return nil
}

// CanonicalFeedName maps a feed name in any letter case to its canonical
// spelling (e.g. "productattributes" -> "productAttributes"); ok is false for
// unknown names.
func CanonicalFeedName(name string) (string, bool) {
	for _, n := range FeedNames {
		if strings.EqualFold(n, name) {
			return n, true
		}
	}
	return "", false
}

// SinksFor returns the sink names a feed is routed to (its sinks list, or
// every sink when the list is empty), sorted.
func (c *Config) SinksFor(feed string) []string {
	f := c.Feeds.Feed(feed)
	if f == nil {
		return nil
	}
	if len(f.Sinks) > 0 {
		return append([]string(nil), f.Sinks...)
	}
	return c.sinkNames(func(*Sink) bool { return true })
}

// RawSinks returns the sink names raw streams go to (raw.sinks, or every
// kafka and file sink when empty), sorted.
func (c *Config) RawSinks() []string {
	if len(c.Raw.Sinks) > 0 {
		return append([]string(nil), c.Raw.Sinks...)
	}
	return c.sinkNames(func(s *Sink) bool { return s.Type == "kafka" || s.Type == "file" })
}

// EnabledFeeds lists the enabled feeds in FeedNames order.
func (c *Config) EnabledFeeds() []string {
	var out []string
	for _, n := range FeedNames {
		if c.Feeds.Feed(n).Enabled {
			out = append(out, n)
		}
	}
	return out
}

// Redacted renders the effective configuration as YAML with every secret
// masked as "<redacted>" (unset secrets are ""). Use it for `status`, logs
// and support bundles.
func (c *Config) Redacted() string {
	out, err := yaml.Marshal(c)
	if err != nil {
		return "<config: " + err.Error() + ">"
	}
	return string(out)
}

// RedactedMap is Redacted as a generic map keyed like config.yaml, for JSON
// output.
func (c *Config) RedactedMap() map[string]any {
	var m map[string]any
	if err := yaml.Unmarshal([]byte(c.Redacted()), &m); err != nil {
		return map[string]any{"error": err.Error()}
	}
	return m
}

// Addr is host:port of the source.
func (s *Source) Addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// String is Redacted.
func (c *Config) String() string { return c.Redacted() }

// EffectiveServerID is source.server_id, or when it is 0 a stable id derived
// from the machine's host name and the absolute state.path, in
// 1000000000..4294967295 (above the small ids DBAs usually hand out), so two
// connectors on different hosts or with different state files do not clash.
func (c *Config) EffectiveServerID() uint32 {
	if c.Source.ServerID != 0 {
		return c.Source.ServerID
	}
	host, _ := os.Hostname()
	h := fnv.New32a()
	h.Write([]byte(host + "\x00" + resolveAbs(c.State.Path)))
	const lo = 1_000_000_000
	return lo + h.Sum32()%(4294967295-lo+1)
}

// resolveAbs is filepath.Abs that falls back to the input.
func resolveAbs(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

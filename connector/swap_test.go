package connector

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/feedcdc/feedcdc/config"
	"github.com/feedcdc/feedcdc/test/catalog"
	"github.com/feedcdc/feedcdc/test/kafkatest"
	"github.com/feedcdc/feedcdc/test/mysqltest"
)

// metadataModes are the binlog_row_metadata settings the swap tests run
// under: FULL (the package's shared server) and MINIMAL (no column names in
// the table maps: the schema history alone decodes rows).
var metadataModes = []string{"FULL", "MINIMAL"}

// metadataServer returns a server logging rows with binlog_row_metadata
// mode: the shared one for FULL, a private one for MINIMAL.
func metadataServer(t *testing.T, mode string) *mysqltest.Server {
	t.Helper()
	if mode == "FULL" {
		return srv
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := mysqltest.Start(ctx, mysqltest.Options{Args: []string{"--tmpdir=" + t.TempDir(), "--binlog-row-metadata=" + mode}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop() })
	var got string
	if err := s.Admin(t, "").QueryRow("SELECT @@binlog_row_metadata").Scan(&got); err != nil || got != mode {
		t.Fatalf("binlog_row_metadata = %q (%v), want %s", got, err, mode)
	}
	return s
}

// swapConfig is a connector configuration for server s with raw streams of
// every table except those matching the exclude patterns (the staging and
// shadow tables, which are then not captured).
func swapConfig(t *testing.T, s *mysqltest.Server, db, kafkaAddr string, exclude ...string) *config.Config {
	t.Helper()
	var src []string
	if len(exclude) > 0 {
		src = append(src, "exclude_tables: ["+strings.Join(exclude, ", ")+"]")
	}
	c := connectorYAML{Name: "swap", Server: s, Database: db, Source: src,
		Sections: unthrottledResync + kafkaSink(kafkaAddr, db, "linger: 1ms") + "raw:\n  enabled: true\n  tombstones: false\n"}
	return c.load(t)
}

// rawOps returns the op of every record of a raw topic, in order.
func rawOps(t *testing.T, kafka *kafkatest.Cluster, topic string) []string {
	t.Helper()
	recs, err := kafka.ReadAll(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	var ops []string
	for _, r := range recs {
		var env struct {
			Op     string `json:"op"`
			Source struct {
				GTID  string `json:"gtid"`
				File  string `json:"file"`
				Pos   uint64 `json:"pos"`
				Table string `json:"table"`
			} `json:"source"`
		}
		if err := json.Unmarshal(r.Value, &env); err != nil {
			t.Fatalf("%s: %v: %s", topic, err, r.Value)
		}
		if env.Op == "replace" && (len(r.Key) != 0 || env.Source.GTID == "" || env.Source.File == "" || env.Source.Pos == 0) {
			t.Errorf("%s: replace record without its position or with a key: key %s, value %s", topic, r.Key, r.Value)
		}
		ops = append(ops, env.Op)
	}
	return ops
}

// TestTableSwapRebuildsFeeds: a staging table whose rows differ from the
// captured table's (some changed, some missing, some new) is swapped in with
// one RENAME TABLE. None of its rows were row events of the captured table,
// so only a rebuild of every item reading the table makes the feeds equal a
// fresh build. The staging table exists before feedcdc first starts and is
// not captured, so its schema is learned from the server at the swap (the
// MINIMAL mode has no column names in the binlog). The raw stream of the
// table gets a replace record between its rows before and after the swap.
func TestTableSwapRebuildsFeeds(t *testing.T) {
	for _, mode := range metadataModes {
		t.Run(mode, func(t *testing.T) {
			ctx := context.Background()
			s := metadataServer(t, mode)
			db := s.NewDatabase(t, "swap")
			admin := s.Admin(t, db)
			if _, err := catalog.Load(ctx, admin, catalog.Tiny(), 43); err != nil {
				t.Fatal(err)
			}
			// the staging copy, made before the connector's first start
			s.Exec(t, db, "CREATE TABLE stage_varchar LIKE catalog_product_entity_varchar",
				"INSERT INTO stage_varchar SELECT * FROM catalog_product_entity_varchar")
			kafka := kafkatest.Start(t)
			cfg := swapConfig(t, s, db, kafka.Addr(), db+".stage_*", db+".old_*")
			c := openConnector(t, cfg, OpenOptions{})
			runErr, _ := startRun(t, c, RunOptions{NoSchedule: true})
			waitFullSyncs(t, c)
			// The live table changes; the staging table changes differently.
			s.Exec(t, db,
				"UPDATE catalog_product_entity_varchar SET value = CONCAT(value, ' live') WHERE value_id % 4 = 0",
				"UPDATE stage_varchar SET value = CONCAT(value, ' staged') WHERE value_id % 3 = 0",
				"DELETE FROM stage_varchar WHERE value_id % 7 = 0",
				"INSERT IGNORE INTO stage_varchar (attribute_id, store_id, entity_id, value) SELECT attribute_id, 1, entity_id, CONCAT(value, ' new') FROM catalog_product_entity_varchar WHERE store_id = 0 AND entity_id % 5 = 0",
			)
			var changed, missing, added int
			for q, n := range map[string]*int{
				"SELECT COUNT(*) FROM stage_varchar s JOIN catalog_product_entity_varchar v USING (value_id) WHERE NOT (s.value <=> v.value)": &changed,
				"SELECT COUNT(*) FROM catalog_product_entity_varchar v LEFT JOIN stage_varchar s USING (value_id) WHERE s.value_id IS NULL":   &missing,
				"SELECT COUNT(*) FROM stage_varchar s LEFT JOIN catalog_product_entity_varchar v USING (value_id) WHERE v.value_id IS NULL":   &added,
			} {
				if err := admin.QueryRow(q).Scan(n); err != nil {
					t.Fatal(err)
				}
			}
			if changed == 0 || missing == 0 || added == 0 {
				t.Fatalf("the staging table should differ: %d changed, %d missing, %d new rows", changed, missing, added)
			}
			s.Exec(t, db, "RENAME TABLE catalog_product_entity_varchar TO old_varchar, stage_varchar TO catalog_product_entity_varchar",
				// a row event of the new table, decoded with its schema
				"UPDATE catalog_product_entity_varchar SET value = CONCAT(value, ' after') ORDER BY value_id LIMIT 1")
			waitCaughtUp(t, c, admin, runErr)
			if err := c.Pipeline.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			if bad, detail := feedsInKafka(t, kafka, db, c.Registry.Feeds()); bad > 0 {
				t.Fatalf("after the swap (%d changed, %d missing, %d new rows) the feeds differ from a fresh build: %s", changed, missing, added, detail)
			}
			ops := rawOps(t, kafka, db+"."+db+".catalog_product_entity_varchar")
			want := "u… replace u"
			if len(ops) < 3 || ops[len(ops)-2] != "replace" || ops[len(ops)-1] != "u" || ops[0] != "u" {
				t.Fatalf("raw stream of the swapped table: ops %v, want %s", ops, want)
			}
			for _, topic := range []string{"stage_varchar", "old_varchar"} {
				if recs, _ := kafka.ReadAll(ctx, db+"."+db+"."+topic); len(recs) > 0 {
					t.Errorf("the excluded table %s has %d raw records", topic, len(recs))
				}
			}
		})
	}
}

// TestSwapInTwoStatementsWaitsForTheTable: the staging-table pattern
// written as two statements (RENAME TABLE t TO t_prev; ALTER TABLE t_stage
// RENAME TO t) leaves no table t between them. A batch built in that window
// meets "table doesn't exist"; it waits for the table instead of stopping
// the connector, and once the staging table is in place the feeds equal a
// fresh build.
func TestSwapInTwoStatementsWaitsForTheTable(t *testing.T) {
	ctx := context.Background()
	db := srv.NewDatabase(t, "swap2")
	admin := srv.Admin(t, db)
	if _, err := catalog.Load(ctx, admin, catalog.Tiny(), 44); err != nil {
		t.Fatal(err)
	}
	kafka := kafkatest.Start(t)
	cfg := swapConfig(t, srv, db, kafka.Addr(), db+".*_stage", db+".*_prev")
	logs := &syncBuffer{}
	c := openConnector(t, cfg, OpenOptions{Logger: slog.New(slog.NewTextHandler(logs, nil))})
	runErr, _ := startRun(t, c, RunOptions{NoSchedule: true})
	waitFullSyncs(t, c)
	srv.Exec(t, db, "CREATE TABLE catalog_product_entity_varchar_stage LIKE catalog_product_entity_varchar",
		"INSERT INTO catalog_product_entity_varchar_stage SELECT * FROM catalog_product_entity_varchar",
		"UPDATE catalog_product_entity_varchar_stage SET value = CONCAT(value, ' staged')",
		"RENAME TABLE catalog_product_entity_varchar TO catalog_product_entity_varchar_prev",
		// a change the products feed builds while the table is missing
		"UPDATE catalog_product_entity SET updated_at = NOW() + INTERVAL 1 DAY ORDER BY entity_id LIMIT 3")
	for deadline := time.Now().Add(2 * time.Minute); !strings.Contains(logs.String(), "batch waits for it"); time.Sleep(50 * time.Millisecond) {
		select {
		case err := <-runErr:
			t.Fatalf("connector stopped while the table was missing: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no batch met the missing table:\n%s", logs.String())
		}
	}
	srv.Exec(t, db, "ALTER TABLE catalog_product_entity_varchar_stage RENAME TO catalog_product_entity_varchar")
	waitCaughtUp(t, c, admin, runErr)
	if err := c.Pipeline.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if bad, detail := feedsInKafka(t, kafka, db, c.Registry.Feeds()); bad > 0 {
		t.Fatalf("after the two-statement swap the feeds differ from a fresh build: %s", detail)
	}
}

// TestSchemaReloadRecoversAnUnknownTable: without column names in the
// binlog (MINIMAL), a table swapped in from a table created before the
// first start whose schema the server can no longer tell (the table was
// renamed away again before feedcdc read the swap) cannot be decoded. The
// connector stops with an error naming `feedcdc schema reload`; once the
// table is back, ReloadSchema (the command) stores its schema, and the next
// run — from the kept checkpoint and item states, without a new full sync
// — decodes the table's rows exactly.
func TestSchemaReloadRecoversAnUnknownTable(t *testing.T) {
	ctx := context.Background()
	s := metadataServer(t, "MINIMAL")
	db := s.NewDatabase(t, "reload")
	admin := s.Admin(t, db)
	if _, err := catalog.Load(ctx, admin, catalog.Tiny(), 45); err != nil {
		t.Fatal(err)
	}
	s.Exec(t, db, "CREATE TABLE events (id INT PRIMARY KEY, v VARCHAR(20))", "INSERT INTO events VALUES (1, 'a')",
		"CREATE TABLE events_stage (note VARCHAR(20), id INT PRIMARY KEY, v VARCHAR(20))", "INSERT INTO events_stage VALUES ('n', 1, 'b')")
	kafka := kafkatest.Start(t)
	cfg := swapConfig(t, s, db, kafka.Addr(), db+".*_stage", db+".*_old", db+".*_away")
	c := openConnector(t, cfg, OpenOptions{})
	runErr, stop := startRun(t, c, RunOptions{NoSchedule: true})
	waitFullSyncs(t, c)
	s.Exec(t, db, "CREATE TABLE marker (id INT PRIMARY KEY)") // a checkpoint to resume from
	waitCaughtUp(t, c, admin, runErr)
	stop()
	c.Close()

	// While feedcdc is stopped: the swap, rows of the new table, and the
	// table renamed away, so that the server cannot tell its schema when
	// feedcdc reads the swap.
	s.Exec(t, db, "RENAME TABLE events TO events_old, events_stage TO events",
		"INSERT INTO events VALUES ('m', 2, 'c')",
		"RENAME TABLE events TO events_away")
	c = openConnector(t, cfg, OpenOptions{})
	runErr, stop = startRun(t, c, RunOptions{NoSchedule: true})
	var err error
	select {
	case err = <-runErr:
	case <-time.After(30 * time.Second):
		t.Fatal("the connector decoded rows of a table whose schema it cannot know")
	}
	stop()
	c.Close()
	fix := "feedcdc schema reload --table " + db + ".events"
	if err == nil || !strings.Contains(err.Error(), fix) {
		t.Fatalf("error %v, want one naming `%s`", err, fix)
	}
	t.Logf("stopped as expected: %v", err)

	s.Exec(t, db, "RENAME TABLE events_away TO events")
	c = openConnector(t, cfg, OpenOptions{})
	if _, err := c.ReloadSchema(ctx, db+".events_old"); err == nil {
		t.Error("reload of a table that is not captured succeeded")
	}
	rec, err := c.ReloadSchema(ctx, db+".events")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(rec.Schema), `"Name":"note"`) {
		t.Errorf("reloaded schema: %s", rec.Schema)
	}
	before, err := c.Store.Counts(ctx, "products")
	if err != nil || before.Sent == 0 {
		t.Fatalf("products item states before the restart: %+v, %v", before, err)
	}
	runErr, _ = startRun(t, c, RunOptions{NoSchedule: true})
	waitCaughtUp(t, c, admin, runErr)
	if err := c.Pipeline.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	recs, err := kafka.ReadAll(ctx, db+"."+db+".events")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range recs {
		var env struct {
			Op    string
			After map[string]any
		}
		if err := json.Unmarshal(r.Value, &env); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%s %v", env.Op, env.After))
	}
	// the swap, its row decoded with the reloaded schema, and the rename
	// that put the table back
	if want := "[replace map[] c map[id:2 note:m v:c] replace map[]]"; fmt.Sprint(got) != want {
		t.Fatalf("raw events stream %v, want %s", got, want)
	}
	if bad, detail := feedsInKafka(t, kafka, db, c.Registry.Feeds()); bad > 0 {
		t.Fatalf("after schema reload the feeds differ from a fresh build: %s", detail)
	}
	if pr, ok, _ := c.Store.Progress(ctx, "products"); !ok || !pr.Finished() {
		t.Errorf("products full sync progress after the restart: %+v %v (a reload must not start a new full sync)", pr, ok)
	}
}

// TestSwapOfALinkTableReloadsTheLinkIndex: the registry's parent/child
// index follows catalog_product_super_link from the stream. After a swap of
// that table (a new child linked only in the staging table) the index must
// be read again: deleting the parent later (its links vanish by cascade,
// without row events) has to reach the new child's variant too.
func TestSwapOfALinkTableReloadsTheLinkIndex(t *testing.T) {
	ctx := context.Background()
	db := srv.NewDatabase(t, "swapl")
	admin := srv.Admin(t, db)
	if _, err := catalog.Load(ctx, admin, catalog.Tiny(), 46); err != nil {
		t.Fatal(err)
	}
	var parent, simple int64
	if err := admin.QueryRow("SELECT MIN(parent_id) FROM catalog_product_super_link").Scan(&parent); err != nil {
		t.Fatal(err)
	}
	if err := admin.QueryRow("SELECT MIN(entity_id) FROM catalog_product_entity WHERE type_id = 'simple' AND entity_id NOT IN (SELECT product_id FROM catalog_product_super_link)").Scan(&simple); err != nil {
		t.Fatal(err)
	}
	kafka := kafkatest.Start(t)
	cfg := swapConfig(t, srv, db, kafka.Addr(), db+".*_stage", db+".*_prev")
	c := openConnector(t, cfg, OpenOptions{})
	runErr, _ := startRun(t, c, RunOptions{NoSchedule: true})
	waitFullSyncs(t, c)
	// A first change loads the link index. Deletions within a few seconds
	// of the load fall back to every entity (feeds' fallbackMargin), which
	// would hide a stale index: the parent is deleted well after it.
	srv.Exec(t, db, "UPDATE catalog_product_entity SET updated_at = NOW() ORDER BY entity_id LIMIT 1")
	waitCaughtUp(t, c, admin, runErr)
	time.Sleep(7 * time.Second)
	srv.Exec(t, db,
		"CREATE TABLE catalog_product_super_link_stage LIKE catalog_product_super_link",
		"INSERT INTO catalog_product_super_link_stage SELECT * FROM catalog_product_super_link",
		fmt.Sprintf("INSERT INTO catalog_product_super_link_stage (product_id, parent_id) VALUES (%d, %d)", simple, parent),
		"RENAME TABLE catalog_product_super_link TO catalog_product_super_link_prev, catalog_product_super_link_stage TO catalog_product_super_link")
	waitCaughtUp(t, c, admin, runErr)
	if err := c.Pipeline.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if bad, detail := feedsInKafka(t, kafka, db, c.Registry.Feeds()); bad > 0 {
		t.Fatalf("after the swap of the links the feeds differ from a fresh build: %s", detail)
	}
	srv.Exec(t, db, fmt.Sprintf("DELETE FROM catalog_product_entity WHERE entity_id = %d", parent))
	waitCaughtUp(t, c, admin, runErr)
	if err := c.Pipeline.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if bad, detail := feedsInKafka(t, kafka, db, c.Registry.Feeds()); bad > 0 {
		t.Fatalf("after the parent's deletion the feeds differ from a fresh build: %s", detail)
	}
}

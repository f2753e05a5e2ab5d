package connector

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	mysqldriver "github.com/go-sql-driver/mysql"

	"github.com/feedcdc/feedcdc/change"
	"github.com/feedcdc/feedcdc/test/catalog"
	"github.com/feedcdc/feedcdc/test/kafkatest"
)

// TestFenceWaitsForASemiSyncCommit reproduces a slow commit as production
// has it: semi-sync replication with rpl_semi_sync_master_wait_point=
// AFTER_SYNC and no semi-sync replica acknowledging. The server writes the
// transaction to the binlog, lets binlog readers (feedcdc) read it, and
// commits it in InnoDB only when rpl_semi_sync_master_timeout (5 s here) has
// passed. A later writer queues on the same row and holds it after the
// commit. The running connector must build the product only after the
// commit and export the committed SKU. Before the fence demanded proof, its
// 1 s lock wait timed out during the hold, the build read the old row,
// nothing was sent and the checkpoint moved past the change.
func TestFenceWaitsForASemiSyncCommit(t *testing.T) {
	ctx := context.Background()
	db := srv.NewDatabase(t, "semisync")
	admin := srv.Admin(t, db)
	if _, err := catalog.Load(ctx, admin, catalog.Tiny(), 11); err != nil {
		t.Fatal(err)
	}
	kafka := kafkatest.Start(t)
	cfg := e2eConfig(t, db, kafka.Addr(), "")
	c := openConnector(t, cfg, OpenOptions{})
	runErr, _ := startRun(t, c, RunOptions{NoSchedule: true})
	waitFullSyncs(t, c)

	var id int64
	var sku string
	if err := admin.QueryRow("SELECT entity_id, sku FROM catalog_product_entity WHERE type_id='simple' ORDER BY entity_id LIMIT 1").Scan(&id, &sku); err != nil {
		t.Fatal(err)
	}
	var file string
	var before int64
	masterPos := func() (string, int64) {
		t.Helper()
		var f, dodb, ignore string
		var p int64
		if err := admin.QueryRow("SHOW MASTER STATUS").Scan(&f, &p, &dodb, &ignore); err != nil {
			t.Fatal(err)
		}
		return f, p
	}
	file, before = masterPos()

	for _, q := range []string{"SET GLOBAL rpl_semi_sync_master_wait_point = AFTER_SYNC", "SET GLOBAL rpl_semi_sync_master_timeout = 5000",
		"SET GLOBAL rpl_semi_sync_master_enabled = 1"} {
		if _, err := admin.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	t.Cleanup(func() {
		admin.Exec("SET GLOBAL rpl_semi_sync_master_enabled = 0")
		admin.Exec("SET GLOBAL rpl_semi_sync_master_timeout = 10000")
		admin.Exec("SET GLOBAL rpl_semi_sync_master_wait_point = AFTER_COMMIT")
	})
	committed := make(chan error, 1)
	go func() {
		_, err := admin.Exec("UPDATE catalog_product_entity SET sku = CONCAT(sku, '-committed') WHERE entity_id = ?", id)
		committed <- err
	}()
	// The transaction is in the binlog but not committed: other sessions
	// still read the old SKU.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if f, p := masterPos(); f != file || p > before {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the update never reached the binlog")
		}
	}
	var visible string
	if err := admin.QueryRow("SELECT sku FROM catalog_product_entity WHERE entity_id = ?", id).Scan(&visible); err != nil {
		t.Fatal(err)
	}
	if visible != sku {
		t.Fatalf("the semi-sync hold did not work: the update is visible (%q) right after it reached the binlog", visible)
	}
	// A later writer on the same row: it waits for the commit, then holds
	// the row until the test ends it.
	later, err := admin.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer later.Rollback()
	laterDone := make(chan error, 1)
	go func() {
		_, err := later.Exec("UPDATE catalog_product_entity SET sku = CONCAT(sku, '-later') WHERE entity_id = ?", id)
		laterDone <- err
	}()
	if err := <-committed; err != nil {
		t.Fatal(err)
	}
	if err := <-laterDone; err != nil {
		t.Fatal(err)
	}
	// The committed SKU must reach Kafka while the later writer still holds
	// the row (it is not committed, so no later batch could bring it).
	want := sku + "-committed"
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(200 * time.Millisecond) {
		recs, err := kafka.ReadAll(ctx, db+".products")
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, r := range recs {
			var item map[string]any
			if err := json.Unmarshal(r.Value, &item); err == nil && item["sku"] == want {
				found = true
			}
		}
		if found {
			break
		}
		select {
		case err := <-runErr:
			t.Fatalf("connector stopped: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no products item with the committed sku %q: the batch was built before the commit and the change was lost", want)
		}
	}
	if err := later.Commit(); err != nil {
		t.Fatal(err)
	}
	waitCaughtUp(t, c, admin, runErr)
	if err := c.Pipeline.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if bad, detail := feedsInKafka(t, kafka, db, c.Registry.Feeds()); bad > 0 {
		t.Fatalf("after the slow commit the feeds differ from a fresh build: %s", detail)
	}
}

// TestFenceHoldsNoLockWithAutocommitOff: with autocommit=0 set globally on
// the source (so also for every new session), the source pool still runs in
// autocommit (MySQLConfig sets it through the DSN, with the lock wait
// timeouts) and the fence's shared-lock read releases its lock right after
// the read: a writer on the same row never waits on feedcdc.
func TestFenceHoldsNoLockWithAutocommitOff(t *testing.T) {
	ctx := context.Background()
	db := srv.NewDatabase(t, "autocommit")
	admin := srv.Admin(t, db)
	if _, err := admin.Exec("CREATE TABLE t (id INT PRIMARY KEY, v INT)"); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec("INSERT INTO t VALUES (1, 1)"); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec("SET GLOBAL autocommit = 0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Exec("SET GLOBAL autocommit = 1") })

	pool := sourcePool(t, "ac", db)
	pool.SetMaxOpenConns(1) // the fence and the check below share one session
	var autocommit, rowLock, mdlLock int
	if err := pool.QueryRow("SELECT @@autocommit, @@innodb_lock_wait_timeout, @@lock_wait_timeout").Scan(&autocommit, &rowLock, &mdlLock); err != nil {
		t.Fatal(err)
	}
	if autocommit != 1 || rowLock != 1 || mdlLock != 60 {
		t.Fatalf("source pool session: autocommit=%d innodb_lock_wait_timeout=%d lock_wait_timeout=%d; want 1, 1, 60", autocommit, rowLock, mdlLock)
	}

	tbl := &change.Table{DB: db, Name: "t", Columns: []change.Column{{Name: "id", Type: "int"}, {Name: "v", Type: "int"}}, PK: []int{0}}
	f := &VisibilityFence{DB: pool, Timeout: 10 * time.Second}
	ins := &change.Change{Table: tbl, Op: change.OpCreate, After: []any{int64(1), int64(1)}}
	if err := f.Wait(ctx, newFenceRow(ins, time.Now())); err != nil {
		t.Fatal(err)
	}
	// The writer's session has autocommit=0 too (the global): explicit
	// statements, and a 1 s lock wait so that a held lock fails it.
	w, err := admin.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for _, q := range []string{"SET SESSION innodb_lock_wait_timeout = 1", "UPDATE t SET v = 2 WHERE id = 1", "COMMIT"} {
		if _, err := w.ExecContext(ctx, q); err != nil {
			t.Fatalf("writer on the fenced row: %s: %v (the fence left its shared lock on a pooled connection)", q, err)
		}
	}
}

// TestSourcePoolSendsArgumentsInTheStatementText: a query with arguments on
// the source pool is one text statement (no server-side prepare, execute
// and close: two round trips more per fan-out lookup), and the driver's
// escaping keeps every argument exact, also under NO_BACKSLASH_ESCAPES and
// for bytes that are not text.
func TestSourcePoolSendsArgumentsInTheStatementText(t *testing.T) {
	ctx := context.Background()
	db := srv.NewDatabase(t, "interp")
	conn, err := sourcePool(t, "interp", db).Conn(ctx) // the status below is the session's
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	prepared := func() int {
		var name string
		var n int
		if err := conn.QueryRowContext(ctx, "SHOW SESSION STATUS LIKE 'Com_stmt_prepare'").Scan(&name, &n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	tricky := []any{`it's a "sku" \ with \\ backslashes; --`, "ünïcödé 😀", []byte{0, '\'', '\\', 0xff, '\n'}, uint64(18446744073709551615), int64(-7)}
	for _, mode := range []string{"", "NO_BACKSLASH_ESCAPES"} {
		if _, err := conn.ExecContext(ctx, "SET SESSION sql_mode = ?", mode); err != nil {
			t.Fatal(err)
		}
		before := prepared()
		for _, arg := range tricky {
			var got []byte
			if err := conn.QueryRowContext(ctx, "SELECT ?", arg).Scan(&got); err != nil {
				t.Fatalf("sql_mode %q: SELECT ? with %#v: %v", mode, arg, err)
			}
			want := fmt.Sprint(arg)
			if b, ok := arg.([]byte); ok {
				want = string(b)
			}
			if string(got) != want {
				t.Errorf("sql_mode %q: SELECT ? returned %q, want %q", mode, got, want)
			}
		}
		if n := prepared() - before; n != 0 {
			t.Errorf("sql_mode %q: %d statements were prepared on the server for queries with arguments; want 0 (arguments in the statement text)", mode, n)
		}
	}
}

// sourcePool opens a pool on db of the test server as the connector opens
// its source pool (MySQLConfig), closed when the test ends.
func sourcePool(t *testing.T, name, db string) *sql.DB {
	t.Helper()
	mc, err := MySQLConfig((&connectorYAML{Name: name, Database: db}).load(t), db)
	if err != nil {
		t.Fatal(err)
	}
	connector, err := mysqldriver.NewConnector(mc)
	if err != nil {
		t.Fatal(err)
	}
	pool := sql.OpenDB(connector)
	t.Cleanup(func() { pool.Close() })
	return pool
}

package connector

import (
	"context"
	"database/sql"
	"encoding/json"
	"testing"
	"time"

	"github.com/feedcdc/feedcdc/change"
)

// TestFenceBuildWaitsForTheTransactionToCommit reproduces what a binlog
// reader can see on MySQL and MariaDB: a transaction's event before the
// transaction is committed in InnoDB. The product's rename is in the stream
// while the renaming transaction still holds its row lock; with the fence
// the batch is built once it has committed and exports the new SKU. Without
// it the build would read the old row and export nothing new.
func TestFenceBuildWaitsForTheTransactionToCommit(t *testing.T) {
	fence := &VisibilityFence{User: "cdc"}
	e := newEnv(t, nil, nil, func(o *PipelineOptions) { o.Fence = fence })
	fence.DB = e.src // the least-privilege connector user; set before any batch
	ctx := context.Background()
	if _, err := e.p.Resync(ctx, ResyncOptions{Feed: "products", BatchSize: 100}); err != nil {
		t.Fatal(err)
	}
	var id int64
	var sku string
	if err := e.admin.QueryRow("SELECT entity_id, sku FROM catalog_product_entity WHERE type_id='simple' ORDER BY entity_id LIMIT 1").Scan(&id, &sku); err != nil {
		t.Fatal(err)
	}
	tx, err := e.admin.BeginTx(ctx, &sql.TxOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.Exec("UPDATE catalog_product_entity SET sku = CONCAT(sku, '-fenced') WHERE entity_id = ?", id); err != nil {
		t.Fatal(err)
	}
	// The event is read (here: handed to the pipeline) before the commit.
	c := &change.Change{Table: productTable(e.db), Op: change.OpUpdate, Before: []any{id, int64(4), "simple", sku}, After: []any{id, int64(4), "simple", sku + "-fenced"}}
	if err := e.p.Change(ctx, c); err != nil {
		t.Fatal(err)
	}
	if err := e.p.TxEnd(ctx, change.TxEnd{Position: change.Position{Flavor: "mariadb", GTIDSet: "0-1-90", File: "binlog.000001", Pos: 9090}, Timestamp: time.Now()}); err != nil {
		t.Fatal(err)
	}
	flushed := make(chan error, 1)
	go func() { flushed <- e.p.Flush(ctx) }()
	select {
	case err := <-flushed:
		t.Fatalf("the batch was exported while its transaction was uncommitted (flush: %v)", err)
	case <-time.After(300 * time.Millisecond):
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := <-flushed; err != nil {
		t.Fatal(err)
	}
	var fenced int
	for _, r := range e.records(t, "products") {
		var item map[string]any
		if err := json.Unmarshal(r.Value, &item); err != nil {
			t.Fatal(err)
		}
		if item["sku"] == sku+"-fenced" {
			fenced++
		}
	}
	if fenced == 0 {
		t.Fatal("the batch was built before its transaction was visible: no item with the new sku")
	}
}

// TestFenceDoesNotWaitForALaterTransaction: when the fence row is locked by
// a transaction the batch does not contain (still open), the fence gives up
// after the lock wait timeout and the batch proceeds.
func TestFenceDoesNotWaitForALaterTransaction(t *testing.T) {
	ctx := context.Background()
	db := srv.NewDatabase(t, "fence")
	admin := srv.Admin(t, db)
	if _, err := admin.Exec("CREATE TABLE t (id INT PRIMARY KEY, v INT)"); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec("INSERT INTO t VALUES (1, 1)"); err != nil {
		t.Fatal(err)
	}
	cdc, err := sql.Open("mysql", srv.CDCDSN(db))
	if err != nil {
		t.Fatal(err)
	}
	defer cdc.Close()
	tbl := &change.Table{DB: db, Name: "t", Columns: []change.Column{{Name: "id"}, {Name: "v"}}, PK: []int{0}}
	var waits, timeouts int
	f := &VisibilityFence{DB: cdc, OnWait: func(_ time.Duration, timedOut bool) {
		waits++
		if timedOut {
			timeouts++
		}
	}}
	// Committed and unlocked: no wait, with the least-privilege user.
	if err := f.Wait(ctx, &fenceRow{table: tbl, key: []any{int64(1)}, readAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	later, err := admin.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer later.Rollback()
	if _, err := later.Exec("UPDATE t SET v = 2 WHERE id = 1"); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- f.Wait(ctx, &fenceRow{table: tbl, key: []any{int64(1)}, readAt: time.Now()}) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("fence on a row held by a later transaction: %v; want it to give up and proceed", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the fence kept waiting for a transaction the batch does not contain")
	}
	if f.fallback {
		t.Fatal("the least-privilege user fell back to the fixed wait on MariaDB")
	}
	if waits != 2 || timeouts != 1 {
		t.Fatalf("OnWait saw %d waits, %d timed out; want 2 and 1", waits, timeouts)
	}
}

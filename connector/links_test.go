package connector

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"testing"

	"github.com/feedcdc/feedcdc/state"
	"github.com/feedcdc/feedcdc/test/catalog"
)

// TestLinkIndexLoadedBeforeTheStreamKnowsTheChildren: the parent/child
// link index is loaded when the connector starts, from one consistent
// snapshot stamped with its binlog position. A configurable product
// deleted afterwards (its links go by foreign-key cascade, which the
// binlog does not show) has its children found in the index, however its
// binlog event is timed. Before, the index was stamped with the source's
// clock, and a composite product deleted within a second of the load (or
// on a replica whose primary's clock is behind) rebuilt every product of
// the catalog: 1.1 million items on the large profile, twice, which held
// every change behind it for seconds after a restart on a busy source.
func TestLinkIndexLoadedBeforeTheStreamKnowsTheChildren(t *testing.T) {
	ctx := context.Background()
	db := srv.NewDatabase(t, "links")
	admin := srv.Admin(t, db)
	if _, err := catalog.Load(ctx, admin, catalog.Tiny(), 8); err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	cc := connectorYAML{Name: "links", Database: db, Sections: unthrottledResync +
		"sinks:\n  files:\n    type: file\n    file:\n      dir: " + t.TempDir() + "\n      fsync: false\n"}
	c := openConnector(t, cc.load(t), OpenOptions{Logger: slog.New(slog.NewTextHandler(logs, nil))})
	runErr, _ := startRun(t, c, RunOptions{NoSchedule: true})
	waitFullSyncs(t, c)
	waitCaughtUp(t, c, admin, runErr)
	var parent int64
	var children int
	if err := admin.QueryRow("SELECT parent_id, COUNT(*) FROM catalog_product_super_link GROUP BY parent_id ORDER BY parent_id LIMIT 1").Scan(&parent, &children); err != nil {
		t.Fatal(err)
	}
	// The deletion's binlog event is stamped a minute before the index
	// was loaded, as by a primary whose clock is behind (and as any
	// deletion within a second of the load is, binlog times having whole
	// seconds): only its position orders it after the snapshot.
	conn, err := admin.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "SET timestamp = UNIX_TIMESTAMP() - 60"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, "DELETE FROM catalog_product_entity WHERE entity_id = ?", parent); err != nil {
		t.Fatal(err)
	}
	waitCaughtUp(t, c, admin, runErr)
	if strings.Contains(logs.String(), "rebuilding all products") {
		t.Fatalf("a configurable deleted after the start rebuilt every product:\n%s", logs.String())
	}
	// Its variants became deleted payloads: the index knew the children.
	items, _, err := c.Store.ListItems(ctx, state.ListQuery{Feed: "variants", Search: strconv.FormatInt(parent, 10), Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	deleted := 0
	for _, it := range items {
		if it.Deleted && it.Identity["parentId"] == strconv.FormatInt(parent, 10) {
			deleted++
		}
	}
	if deleted != children {
		t.Fatalf("%d of the deleted configurable's %d variants were sent as deleted", deleted, children)
	}
}

// TestLinkIndexSavedAtStopKnowsChildrenDeletedWhileStopped: a run that
// stops saves the link index with the checkpoint, and the next run
// restores it while the checkpoint is unchanged. A configurable product
// deleted while no connector ran (its links went by cascade, which the
// binlog does not show) then has its children found in the restored
// index. Loaded from the source instead, the index no longer held them,
// and the replayed deletion rebuilt every product: on the large profile a
// restart after a day's edits spent minutes rebuilding 2.5 million items
// that had not changed. An index saved at an older checkpoint is not used
// (the deletion then falls back to every product, as before).
func TestLinkIndexSavedAtStopKnowsChildrenDeletedWhileStopped(t *testing.T) {
	ctx := context.Background()
	db := srv.NewDatabase(t, "linksave")
	admin := srv.Admin(t, db)
	if _, err := catalog.Load(ctx, admin, catalog.Tiny(), 8); err != nil {
		t.Fatal(err)
	}
	cc := connectorYAML{Name: "linksave", Database: db, Sections: unthrottledResync +
		"sinks:\n  files:\n    type: file\n    file:\n      dir: " + t.TempDir() + "\n      fsync: false\n"}
	// run starts a connector on the shared state, waits until it caught
	// up with the source and stops it; it returns the logs.
	run := func(first bool) string {
		t.Helper()
		logs := &syncBuffer{}
		c := openConnector(t, cc.load(t), OpenOptions{Logger: slog.New(slog.NewTextHandler(logs, nil))})
		runErr, stop := startRun(t, c, RunOptions{NoSchedule: true})
		if first {
			waitFullSyncs(t, c)
		}
		waitCaughtUp(t, c, admin, runErr)
		stop()
		c.Close()
		return logs.String()
	}
	// deleteConfigurable deletes a configurable and returns its number of
	// children.
	deleteConfigurable := func(parent int64) int {
		t.Helper()
		var children int
		if err := admin.QueryRow("SELECT COUNT(*) FROM catalog_product_super_link WHERE parent_id = ?", parent).Scan(&children); err != nil {
			t.Fatal(err)
		}
		if _, err := admin.Exec("DELETE FROM catalog_product_entity WHERE entity_id = ?", parent); err != nil {
			t.Fatal(err)
		}
		return children
	}
	// deletedVariants counts the parent's variants sent as deleted.
	deletedVariants := func(parent int64) int {
		t.Helper()
		st, err := state.Open(cc.StatePath, state.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		id := strconv.FormatInt(parent, 10)
		items, _, err := st.ListItems(ctx, state.ListQuery{Feed: "variants", Search: id, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, it := range items {
			if it.Deleted && it.Identity["parentId"] == id {
				n++
			}
		}
		return n
	}

	// savedIndex reads the index saved at the last stop.
	savedIndex := func() state.LinkIndex {
		t.Helper()
		st, err := state.Open(cc.StatePath, state.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		var x state.LinkIndex
		if err := st.View(ctx, func(tx *state.Tx) error {
			var ok bool
			var err error
			if x, ok, err = tx.LinkIndex(); err == nil && !ok {
				err = errors.New("none saved")
			}
			return err
		}); err != nil {
			t.Fatalf("link index saved at the stop: %v", err)
		}
		return x
	}

	var first, second, moved int64
	if err := admin.QueryRow(`SELECT MIN(parent_id), MAX(parent_id) FROM catalog_product_super_link`).Scan(&first, &second); err != nil || first == second {
		t.Fatalf("two configurables: %d, %d, %v", first, second, err)
	}
	if err := admin.QueryRow(`SELECT MIN(product_id) FROM catalog_product_super_link WHERE parent_id = ?`, first).Scan(&moved); err != nil {
		t.Fatal(err)
	}

	run(true)
	saved := savedIndex()
	// While stopped: a variant moves to the second configurable (a link
	// the first run's index does not hold), and the first is deleted.
	for _, q := range []string{"UPDATE catalog_product_super_link SET parent_id = ? WHERE product_id = ?", "UPDATE catalog_product_relation SET parent_id = ? WHERE child_id = ?"} {
		if _, err := admin.Exec(q, second, moved); err != nil {
			t.Fatal(err)
		}
	}
	children := deleteConfigurable(first) + 1 // and the moved variant's item
	logs := run(false)
	if !strings.Contains(logs, "link index restored") || strings.Contains(logs, "rebuilding all products") {
		t.Fatalf("a configurable deleted while stopped was not resolved from the saved link index:\n%s", logs)
	}
	if n := deletedVariants(first); n != children {
		t.Fatalf("%d of the deleted configurable's %d variants were sent as deleted", n, children)
	}

	// The first run's index, left as if the second had been killed after
	// its checkpoint moved on: restored, it would miss the moved variant.
	st, err := state.Open(cc.StatePath, state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Update(ctx, func(tx *state.Tx) error { return tx.PutLinkIndex(saved) }); err != nil {
		t.Fatal(err)
	}
	st.Close()
	children = deleteConfigurable(second)
	logs = run(false)
	if !strings.Contains(logs, "older than the checkpoint") || strings.Contains(logs, "link index restored") {
		t.Fatalf("an index saved at an older checkpoint was used:\n%s", logs)
	}
	if n := deletedVariants(second); n != children {
		t.Fatalf("%d of the second deleted configurable's %d variants were sent as deleted", n, children)
	}
}

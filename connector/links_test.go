package connector

import (
	"context"
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

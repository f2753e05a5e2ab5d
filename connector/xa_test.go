package connector

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/feedcdc/feedcdc/test/catalog"
	"github.com/feedcdc/feedcdc/test/kafkatest"
)

// TestXARollbackNeverReachesRawStreams: the row of an XA transaction that
// is prepared and then rolled back never reaches the raw stream; the row of
// one prepared and then committed does, once, in order.
func TestXARollbackNeverReachesRawStreams(t *testing.T) {
	ctx := context.Background()
	db := srv.NewDatabase(t, "xaraw")
	admin := srv.Admin(t, db)
	if _, err := catalog.Load(ctx, admin, catalog.Tiny(), 43); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec("CREATE TABLE events (id INT PRIMARY KEY, v INT)"); err != nil {
		t.Fatal(err)
	}
	kafka := kafkatest.Start(t)
	cfg := e2eConfig(t, db, kafka.Addr(), "raw:\n  enabled: true\n  tombstones: false\n")
	c := openConnector(t, cfg, OpenOptions{})
	runErr, _ := startRun(t, c, RunOptions{NoSchedule: true})
	waitFullSyncs(t, c)
	conn, err := admin.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, q := range []string{"INSERT INTO events VALUES (1, 1)",
		"XA START 'rb'", "INSERT INTO events VALUES (10, 10)", "XA END 'rb'", "XA PREPARE 'rb'", "XA ROLLBACK 'rb'",
		"XA START 'ok'", "INSERT INTO events VALUES (20, 20)", "XA END 'ok'", "XA PREPARE 'ok'", "XA COMMIT 'ok'",
		"INSERT INTO events VALUES (3, 3)"} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	waitCaughtUp(t, c, admin, runErr)
	if err := c.Pipeline.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	recs, err := kafka.ReadAll(ctx, db+"."+db+".events")
	if err != nil {
		t.Fatal(err)
	}
	var ids []int
	for _, r := range recs {
		var env struct {
			After struct {
				ID int `json:"id"`
			} `json:"after"`
		}
		if err := json.Unmarshal(r.Value, &env); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, env.After.ID)
	}
	if fmt.Sprint(ids) != "[1 20 3]" {
		t.Fatalf("raw events stream rows %v, want [1 20 3] (10 was rolled back)", ids)
	}
}

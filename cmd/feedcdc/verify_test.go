package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/feedcdc/feedcdc/connector"
)

// TestVerifyThroughTheRunningConnector runs feedcdc verify while `run`
// holds the state file: the verify goes through the dashboard API, exits 0
// on an undrifted feed, 3 when a product was unassigned from a website
// behind feedcdc's back (binlog off), --repair sends exactly the orphaned
// items, and a verify after it exits 0 again.
func TestVerifyThroughTheRunningConnector(t *testing.T) {
	ctx := context.Background()
	_, _, cfgPath, _ := runningConnector(t, "vfyshop", 777311)
	verify := func(args ...string) (int, connector.VerifyResult, string) {
		t.Helper()
		code, out, errOut := run(t, nil, append([]string{"verify", "--feed", "products", "--json", "-c", cfgPath}, args...)...)
		var res connector.VerifyResult
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatalf("exit %d, output not JSON: %v\n%s\n%s", code, err, out, errOut)
		}
		return code, res, errOut
	}
	code, res, errOut := verify("--read-back")
	if code != 0 || res.Drift != 0 || res.Checked == 0 || res.Counts[connector.VerifyEqual] != res.Checked || len(res.ReadBack) != 1 {
		t.Fatalf("undrifted feed: exit %d, %+v\n%s", code, res, errOut)
	}

	admin := srv.Admin(t, "vfyshop")
	conn, err := admin.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"SET SESSION sql_log_bin = 0",
		"DELETE FROM catalog_product_website WHERE product_id = (SELECT MIN(product_id) FROM (SELECT product_id FROM catalog_product_website GROUP BY product_id HAVING COUNT(*) > 1) x) ORDER BY website_id LIMIT 1"} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	conn.Close()

	code, res, errOut = verify()
	orphans := res.Counts[connector.VerifyOrphaned]
	if code != exitDrift || orphans == 0 || res.Drift != orphans {
		t.Fatalf("drifted feed: exit %d (want %d), %+v\n%s", code, exitDrift, res, errOut)
	}
	code, res, errOut = verify("--repair")
	if code != exitDrift || res.Repair == nil || int64(res.Repair.Sent) != orphans || res.Repair.Deleted != int(orphans) {
		t.Fatalf("repair: exit %d, %+v\n%s", code, res, errOut)
	}
	code, res, errOut = verify("--read-back")
	if code != 0 || res.Drift != 0 {
		t.Fatalf("after repair: exit %d, %+v\n%s", code, res, errOut)
	}
	// The text report names the results.
	code, out, _ := run(t, nil, "verify", "--feed", "products", "-c", cfgPath)
	if code != 0 || !strings.Contains(out, "drift 0") || !strings.Contains(out, "orphaned") {
		t.Fatalf("text report: exit %d\n%s", code, out)
	}
}

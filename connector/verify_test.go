package connector

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/feedcdc/feedcdc/feeds"
	"github.com/feedcdc/feedcdc/test/catalog"
)

// buildEntities builds the current items of some entities of a feed, by id.
func buildEntities(t *testing.T, f feeds.Feed, keys ...string) map[string]feeds.Item {
	t.Helper()
	items, err := f.Build(context.Background(), keys)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]feeds.Item{}
	for _, it := range items {
		out[it.ID] = it
	}
	return out
}

// sinkLines reads a file sink's JSON Lines file (item payloads, no
// envelope) as feed_id -> payloads in write order, for the products feed.
func sinkLines(t *testing.T, path string) (lines []string, byID map[string][]string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	byID = map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		l := sc.Text()
		var v struct {
			SKU   string `json:"sku"`
			Store string `json:"storeViewCode"`
		}
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Fatalf("%s: %v: %s", path, err, l)
		}
		id := feeds.FeedID(v.SKU, v.Store)
		lines = append(lines, id)
		byID[id] = append(byID[id], l)
	}
	return lines, byID
}

// normal is a payload without modifiedAt/updatedAt, keys sorted.
func normal(t *testing.T, b []byte) string {
	t.Helper()
	m, err := decodeObject(b)
	if err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	delete(m, "modifiedAt")
	delete(m, "updatedAt")
	out, _ := json.Marshal(m)
	return string(out)
}

func idsOf(r VerifyResult, result string) []string {
	var out []string
	for _, e := range r.Examples {
		if e.Result == result {
			out = append(out, e.FeedID)
		}
	}
	sort.Strings(out)
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := slices.Collect(maps.Keys(m))
	sort.Strings(out)
	return out
}

// TestVerifyFindsExactlyTheDriftAndRepairsIt is the acceptance test of
// feedcdc verify: drift of every kind is made behind feedcdc's back — a
// state file restored from a backup taken before a streamed change, rows
// changed and deleted with the binlog off, a product unassigned from a
// website with the binlog off, and items deleted from the file sink's
// output. Verify reports exactly those items and sends nothing; verify
// --repair sends exactly those; a second verify reports no drift; and the
// last line per item in the file sink equals a fresh build.
func TestVerifyFindsExactlyTheDriftAndRepairsIt(t *testing.T) {
	ctx := context.Background()
	db := srv.NewDatabase(t, "verify")
	admin := srv.Admin(t, db)
	if _, err := catalog.Load(ctx, admin, catalog.Tiny(), 7); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out")
	cy := connectorYAML{Name: "verify", Database: db,
		Feeds:    []string{"productAttributes: {enabled: false}", "variants: {enabled: false}", "productOverrides: {enabled: false}"},
		Sections: unthrottledResync + "sinks:\n  files:\n    type: file\n    file:\n      dir: " + out + "\n      fsync: false\n"}
	cfg := cy.load(t)
	c := openConnector(t, cfg, OpenOptions{})
	runErr, stop := startRun(t, c, RunOptions{NoSchedule: true})
	waitFullSyncs(t, c)
	waitCaughtUp(t, c, admin, runErr)
	if err := c.Pipeline.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	f, _ := c.Registry.Feed("products")

	// Pick five products with items in at least two store views and in
	// more than one website (W loses one of them).
	var multi []string
	rows, err := admin.QueryContext(ctx, `SELECT product_id FROM catalog_product_website GROUP BY product_id HAVING COUNT(*) > 1 ORDER BY product_id`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		if len(buildEntities(t, f, id)) >= 2 {
			multi = append(multi, id)
		}
	}
	rows.Close()
	if len(multi) < 5 {
		t.Fatalf("need 5 products in several websites, have %v", multi)
	}
	X, Y, Z, W, V := multi[0], multi[1], multi[2], multi[3], multi[4]
	before := buildEntities(t, f, X, Y, Z, W, V)

	// The state backup the operator will restore later.
	backup := filepath.Join(t.TempDir(), "backup.db")
	bf, err := os.Create(backup)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Store.Backup(ctx, bf, func(int64) {}); err != nil {
		t.Fatal(err)
	}
	bf.Close()
	// X changes through the binlog after the backup: streamed and exported.
	nameAttr := `(SELECT a.attribute_id FROM eav_attribute a JOIN eav_entity_type t ON t.entity_type_id = a.entity_type_id
		WHERE t.entity_type_code = 'catalog_product' AND a.attribute_code = 'name')`
	if _, err := admin.ExecContext(ctx, `UPDATE catalog_product_entity_varchar SET value = CONCAT(value, ' streamed') WHERE entity_id = ? AND attribute_id = `+nameAttr, X); err != nil {
		t.Fatal(err)
	}
	waitCaughtUp(t, c, admin, runErr)
	if err := c.Pipeline.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	stop()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}

	// Behind feedcdc's back: the state file restored from the backup ...
	b, err := os.ReadFile(backup)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg.State.Path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	// ... rows changed, deleted and unassigned with the binlog off ...
	conn, err := admin.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := conn.ExecContext(ctx, q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	exec("SET SESSION sql_log_bin = 0")
	exec(`UPDATE catalog_product_entity_varchar SET value = CONCAT(value, ' fixed') WHERE entity_id = ? AND attribute_id = `+nameAttr, Y)
	exec("DELETE FROM catalog_product_entity WHERE entity_id = ?", Z)
	exec("DELETE FROM catalog_product_website WHERE product_id = ? ORDER BY website_id LIMIT 1", W)
	conn.Close()
	// ... and V's items deleted from the file sink's output.
	path := filepath.Join(out, "products.jsonl")
	vItems := map[string]feeds.Item{}
	for id, it := range before {
		if it.EntityKey == V {
			vItems[id] = it
		}
	}
	var kept bytes.Buffer
	{
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range bytes.SplitAfter(raw, []byte("\n")) {
			if len(l) == 0 {
				continue
			}
			m, err := decodeObject(l)
			if err != nil {
				t.Fatal(err)
			}
			if _, isV := vItems[feedIDOf(m, f.IdentityFields())]; !isV {
				kept.Write(l)
			}
		}
		if err := os.WriteFile(path, kept.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A standalone verify (as `feedcdc verify` runs with the connector
	// stopped): exporter only, no streaming.
	c2 := openConnector(t, cfg, OpenOptions{})
	stop2 := c2.RunExporter(ctx)
	defer stop2()
	f, _ = c2.Registry.Feed("products")
	after := buildEntities(t, f, X, Y, Z, W, V)
	var wantStale, wantOrphaned, wantMissing []string
	for id, it := range before {
		switch a, ok := after[id]; {
		case !ok:
			wantOrphaned = append(wantOrphaned, id)
		case a.Hash != it.Hash:
			wantStale = append(wantStale, id)
		}
	}
	for id := range after {
		if _, ok := before[id]; !ok {
			wantMissing = append(wantMissing, id)
		}
	}
	wantAtDest := sortedKeys(vItems)
	sort.Strings(wantStale)
	sort.Strings(wantOrphaned)
	if len(wantStale) < 4 || len(wantOrphaned) < 3 || len(wantMissing) != 0 {
		t.Fatalf("the test's drift is not what it meant: stale %v orphaned %v missing %v", wantStale, wantOrphaned, wantMissing)
	}
	wantDrift := len(wantStale) + len(wantOrphaned) + len(wantAtDest)

	dests, unreadable := c2.Destinations("products")
	if len(dests) != 1 || len(unreadable) != 0 {
		t.Fatalf("destinations %v, unreadable %v", dests, unreadable)
	}
	verify := func(repair bool) VerifyResult {
		t.Helper()
		res, err := c2.Verify(ctx, VerifyOptions{Feed: "products", Repair: repair, Destinations: dests, Examples: 1000})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("verify (repair %v): checked %d, counts %v, drift %d", repair, res.Checked, res.Counts, res.Drift)
		return res
	}
	linesBefore, _ := sinkLines(t, path)
	res := verify(false)
	check := func(result string, want []string) {
		t.Helper()
		if got := idsOf(res, result); !slices.Equal(got, want) {
			t.Errorf("%s: got %v, want %v", result, got, want)
		}
		if res.Counts[result] != int64(len(want)) {
			t.Errorf("%s: count %d, want %d", result, res.Counts[result], len(want))
		}
	}
	check(VerifyStale, wantStale)
	check(VerifyOrphaned, wantOrphaned)
	check(VerifyMissing, nil)
	check(VerifyMissingAtDest, wantAtDest)
	check(VerifyDiffersAtDest, nil)
	check(VerifyOrphanedAtDest, nil)
	check(VerifyUnsettled, nil)
	if res.Drift != int64(wantDrift) {
		t.Errorf("drift %d, want %d", res.Drift, wantDrift)
	}
	if linesNow, _ := sinkLines(t, path); len(linesNow) != len(linesBefore) {
		t.Fatalf("verify without --repair wrote %d lines", len(linesNow)-len(linesBefore))
	}
	rep, ok, err := c2.Store.VerifyReport(ctx, "products")
	if err != nil || !ok || rep.Drift != int64(wantDrift) || rep.Counts["stale"] != int64(len(wantStale)) {
		t.Errorf("stored report %+v ok %v err %v", rep, ok, err)
	}

	// --repair sends exactly those items.
	res = verify(true)
	if res.Repair == nil || res.Repair.Sent != wantDrift {
		t.Errorf("repair: %+v, want %d sent", res.Repair, wantDrift)
	}
	linesAfter, byID := sinkLines(t, path)
	sent := slices.Clone(linesAfter[len(linesBefore):])
	sort.Strings(sent)
	wantSent := slices.Concat(wantStale, wantOrphaned, wantAtDest)
	sort.Strings(wantSent)
	if !slices.Equal(sent, wantSent) {
		t.Errorf("repair sent %v\nwant %v", sent, wantSent)
	}

	// A second verify finds nothing.
	res = verify(false)
	if res.Drift != 0 || res.Counts[VerifyUnsettled] != 0 {
		t.Errorf("after repair: drift %d, counts %v, examples %+v", res.Drift, res.Counts, res.Examples)
	}

	// The last line per item equals a fresh full build; vanished items
	// were last sent as deleted.
	want := freshBuild(t, f)
	for id, it := range want {
		ls := byID[id]
		if len(ls) == 0 {
			t.Errorf("item %v never written", it.Identity)
			continue
		}
		if got, exp := normal(t, []byte(ls[len(ls)-1])), normal(t, it.Data); got != exp {
			t.Errorf("item %v: last line\n %s\nwant\n %s", it.Identity, got, exp)
		}
	}
	for id, ls := range byID {
		if _, ok := want[id]; ok {
			continue
		}
		if !strings.Contains(ls[len(ls)-1], `"deleted":true`) {
			t.Errorf("vanished item %s: last line %s", id, ls[len(ls)-1])
		}
	}
}

package connector

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/feedcdc/feedcdc/test/catalog"
	"github.com/feedcdc/feedcdc/test/kafkatest"
)

// TestVerifyRepairsOrphansOnlyTheDestinationKnows: the compacted Kafka
// topic and the file sink each hold a live item of a product the source
// does not have and the state file has never heard of (written under
// another state file, or kept by a destination restored from a backup
// after the state's retention forgot the product). Read-back reports both
// as orphaned at the destination; --repair sends their deleted payloads
// (same record key, so compaction replaces the live value) and counts them
// as repaired; a second verify finds no drift.
func TestVerifyRepairsOrphansOnlyTheDestinationKnows(t *testing.T) {
	ctx := context.Background()
	db := srv.NewDatabase(t, "vorphan")
	admin := srv.Admin(t, db)
	if _, err := catalog.Load(ctx, admin, catalog.Tiny(), 5); err != nil {
		t.Fatal(err)
	}
	kafka := kafkatest.Start(t)
	out := filepath.Join(t.TempDir(), "out")
	cy := connectorYAML{Name: "vorphan", Database: db,
		Feeds: []string{"productAttributes: {enabled: false}", "variants: {enabled: false}", "productOverrides: {enabled: false}"},
		Sections: unthrottledResync + kafkaSink(kafka.Addr(), db, "linger: 1ms", "create_topics: true", "compact: true") +
			"  files:\n    type: file\n    file:\n      dir: " + out + "\n      fsync: false\n"}
	cfg := cy.load(t)
	c := openConnector(t, cfg, OpenOptions{})
	stop := c.RunExporter(ctx)
	defer stop()
	if _, err := c.Resync(ctx, ResyncOptions{Feed: "products"}); err != nil {
		t.Fatal(err)
	}
	f, _ := c.Registry.Feed("products")
	fields := f.IdentityFields()

	// Two ghosts made from a real item: another productId and sku.
	keys := scanKeys(t, f)
	var model []byte
	for _, it := range buildEntities(t, f, keys[0]) {
		model = it.Data
		break
	}
	ghost := func(sku string) (id string, key, value []byte) {
		t.Helper()
		m, err := decodeObject(model)
		if err != nil {
			t.Fatal(err)
		}
		m["productId"], m["sku"] = json.Number("987654"), sku
		if value, err = json.Marshal(m); err != nil {
			t.Fatal(err)
		}
		k := map[string]any{}
		for _, f := range fields {
			k[f] = m[f]
		}
		key, _ = json.Marshal(k)
		return feedIDOf(m, fields), key, value
	}
	topic := db + ".products"
	kID, kKey, kVal := ghost("GHOST-KAFKA")
	cl, err := kgo.NewClient(kafka.ClientOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	rec := &kgo.Record{Topic: topic, Key: kKey, Value: kVal, Headers: []kgo.RecordHeader{{Key: "feed_id", Value: []byte(kID)}}}
	if err := cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
		t.Fatal(err)
	}
	fID, _, fVal := ghost("GHOST-FILE")
	path := filepath.Join(out, "products.jsonl")
	fh, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fh.Write(append(fVal, '\n')); err != nil {
		t.Fatal(err)
	}
	fh.Close()
	want := []string{kID, fID}
	sort.Strings(want)

	dests, _ := c.Destinations("products")
	if len(dests) != 2 {
		t.Fatalf("destinations %v, want the Kafka and the file sink", dests)
	}
	verify := func(repair bool) VerifyResult {
		t.Helper()
		res, err := c.Verify(ctx, VerifyOptions{Feed: "products", Repair: repair, Destinations: dests, Examples: 100})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("verify (repair %v): checked %d, counts %v, repair %+v", repair, res.Checked, res.Counts, res.Repair)
		return res
	}
	res := verify(false)
	if got := idsOf(res, VerifyOrphanedAtDest); !slices.Equal(got, want) || res.Drift != 2 {
		t.Fatalf("orphaned at destination %v (drift %d), want %v", got, res.Drift, want)
	}
	for _, e := range res.Examples {
		if e.Identity["sku"] != "GHOST-KAFKA" && e.Identity["sku"] != "GHOST-FILE" {
			t.Errorf("example %+v does not name the ghost's sku", e)
		}
	}
	res = verify(true)
	if res.Repair == nil || res.Repair.Sent != 2 || res.Repair.Deleted != 2 {
		t.Fatalf("repair %+v, want 2 deleted payloads sent", res.Repair)
	}
	// Kafka: the ghost's key now ends with a deleted payload.
	recs, err := kafka.ReadAll(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	var lastK []byte
	for _, r := range recs {
		if bytes.Equal(r.Key, kKey) {
			lastK = r.Value
		}
	}
	if !bytes.Contains(lastK, []byte(`"deleted":true`)) || !bytes.Contains(lastK, []byte(`"sku":"GHOST-KAFKA"`)) {
		t.Errorf("last value of the Kafka ghost's key: %s", lastK)
	}
	// File sink: the ghost's last line is its deleted payload.
	_, byID := sinkLines(t, path)
	if ls := byID[fID]; len(ls) < 2 || !strings.Contains(ls[len(ls)-1], `"deleted":true`) {
		t.Errorf("file ghost's lines: %v", ls)
	}
	if res = verify(false); res.Drift != 0 {
		t.Errorf("after repair: drift %d, counts %v, examples %+v", res.Drift, res.Counts, res.Examples)
	}
}

package connector

import (
	"context"
	"slices"
	"sort"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/feedcdc/feedcdc/test/catalog"
	"github.com/feedcdc/feedcdc/test/kafkatest"
)

// TestVerifyReadsBackKafka proves the Kafka read-back: after a full sync
// to a compacted topic, the first records are deleted from the topic
// (DeleteRecords: as if never written) and two other keys get tombstones
// (deleted, then compacted). Verify reports exactly those items as missing
// at the destination while the state says they were delivered; --repair
// writes them again and a second verify finds nothing.
func TestVerifyReadsBackKafka(t *testing.T) {
	ctx := context.Background()
	db := srv.NewDatabase(t, "vkafka")
	admin := srv.Admin(t, db)
	if _, err := catalog.Load(ctx, admin, catalog.Tiny(), 3); err != nil {
		t.Fatal(err)
	}
	kafka := kafkatest.Start(t)
	cy := connectorYAML{Name: "vkafka", Database: db,
		Feeds:    []string{"productAttributes: {enabled: false}", "variants: {enabled: false}", "productOverrides: {enabled: false}"},
		Sections: unthrottledResync + kafkaSink(kafka.Addr(), db, "linger: 1ms", "create_topics: true", "compact: true")}
	cfg := cy.load(t)
	c := openConnector(t, cfg, OpenOptions{})
	runErr, stop := startRun(t, c, RunOptions{NoSchedule: true})
	waitFullSyncs(t, c)
	waitCaughtUp(t, c, admin, runErr)
	if err := c.Pipeline.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	stop()
	c.Close()

	topic := db + ".products"
	recs, err := kafka.ReadAll(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, r := range recs {
		count[string(r.Key)]++
	}
	// Records 0..4 vanish (their keys were written once); records 5 and 6
	// get tombstones.
	const cut = 5
	var want []string
	for _, r := range recs[:cut+2] {
		if count[string(r.Key)] != 1 {
			t.Fatalf("key %s written %d times; the test needs keys written once", r.Key, count[string(r.Key)])
		}
		id, _ := r.Header("feed_id")
		want = append(want, id)
	}
	sort.Strings(want)
	cl, err := kgo.NewClient(kafka.ClientOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	// Tombstones first: kfake's Compact forgets a log start offset moved
	// by DeleteRecords before it.
	for _, r := range recs[cut : cut+2] {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: 0, Key: r.Key}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	kafka.Compact()
	var offs kadm.Offsets
	offs.AddOffset(topic, 0, recs[cut].Offset, -1)
	resp, err := kadm.NewClient(cl).DeleteRecords(ctx, offs)
	if err != nil {
		t.Fatal(err)
	}
	resp.Each(func(r kadm.DeleteRecordsResponse) {
		if r.Err != nil {
			t.Fatalf("delete records: %v", r.Err)
		}
	})
	after, err := kafka.ReadAll(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	latest := map[string][]byte{}
	for _, r := range after {
		latest[string(r.Key)] = r.Value
	}
	for _, r := range recs[:cut+2] {
		if v, ok := latest[string(r.Key)]; ok && v != nil {
			t.Fatalf("key %s still has a value in the topic", r.Key)
		}
	}
	c2 := openConnector(t, cfg, OpenOptions{})
	stop2 := c2.RunExporter(ctx)
	defer stop2()
	dests, _ := c2.Destinations("products")
	if len(dests) != 1 {
		t.Fatalf("destinations %v", dests)
	}
	verify := func(repair bool) VerifyResult {
		t.Helper()
		res, err := c2.Verify(ctx, VerifyOptions{Feed: "products", Repair: repair, Destinations: dests, Examples: 100})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("verify (repair %v): checked %d, counts %v, destination records %d", repair, res.Checked, res.Counts, res.DestinationRecords)
		return res
	}
	res := verify(false)
	if got := idsOf(res, VerifyMissingAtDest); !slices.Equal(got, want) || res.Drift != int64(len(want)) {
		t.Errorf("missing at destination %v (drift %d), want %v", got, res.Drift, want)
	}
	res = verify(true)
	if res.Repair == nil || res.Repair.Sent != len(want) {
		t.Errorf("repair %+v, want %d sent", res.Repair, len(want))
	}
	if res = verify(false); res.Drift != 0 {
		t.Errorf("after repair: %v", res.Counts)
	}
}

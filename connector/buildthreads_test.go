package connector

import (
	"context"
	"encoding/json"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/feedcdc/feedcdc/change"
)

// buildRecorder is an Observer that keeps the interval of every Build call.
type buildRecorder struct {
	mu     sync.Mutex
	builds [][2]time.Time
}

func (r *buildRecorder) Built(feed string, items int, d time.Duration) {
	if feed != "products" {
		return
	}
	now := time.Now()
	r.mu.Lock()
	r.builds = append(r.builds, [2]time.Time{now.Add(-d), now})
	r.mu.Unlock()
}
func (*buildRecorder) Exported(string, ExportStats, time.Duration) {}
func (*buildRecorder) RawSent(int, time.Duration)                  {}
func (*buildRecorder) Checkpointed(change.Position, time.Time)     {}
func (*buildRecorder) Queue(int, int64)                            {}
func (*buildRecorder) SourceEvent(time.Time)                       {}

// maxOverlap is the largest number of build intervals open at one time.
func (r *buildRecorder) maxOverlap() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	type ev struct {
		t     time.Time
		delta int
	}
	var evs []ev
	for _, b := range r.builds {
		evs = append(evs, ev{b[0], 1}, ev{b[1], -1})
	}
	sort.Slice(evs, func(i, j int) bool {
		if evs[i].t.Equal(evs[j].t) {
			return evs[i].delta < evs[j].delta
		}
		return evs[i].t.Before(evs[j].t)
	})
	open, most := 0, 0
	for _, e := range evs {
		open += e.delta
		most = max(most, open)
	}
	return most
}

// TestBuildThreadsBuildChunksConcurrentlyAndExportInKeyOrder exports every
// product of the tiny catalog in chunks of 7 keys with 3 build threads: the
// Build calls overlap (up to 3 at once), and the items still reach Kafka
// chunk after chunk in key order, each product once per store view.
func TestBuildThreadsBuildChunksConcurrentlyAndExportInKeyOrder(t *testing.T) {
	rec := &buildRecorder{}
	const size, threads = 7, 3
	e := newEnv(t, nil, nil, func(o *PipelineOptions) {
		o.BuildChunk, o.BuildThreads, o.Observer = size, threads, rec
	})
	ctx := context.Background()
	rows, err := e.admin.QueryContext(ctx, "SELECT entity_id, sku FROM catalog_product_entity")
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	skuKey := map[string]string{}
	for rows.Next() {
		var id int64
		var sku string
		if err := rows.Scan(&id, &sku); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, strconv.FormatInt(id, 10))
		skuKey[sku] = strconv.FormatInt(id, 10)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	sort.Strings(keys)
	chunkOf := map[string]int{}
	for i, k := range keys {
		chunkOf[k] = i / size
	}
	var st ExportStats
	if err := e.p.Do(ctx, func(ctx context.Context) error {
		var err error
		st, err = e.p.ExportKeys(ctx, "products", keys, ExportOptions{Operation: OpPartialSync}, nil)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	nchunks := (len(keys) + size - 1) / size
	if got := len(rec.builds); got != nchunks {
		t.Fatalf("%d Build calls for %d keys in chunks of %d, want %d", got, len(keys), size, nchunks)
	}
	if o := rec.maxOverlap(); o < 2 || o > threads {
		t.Fatalf("at most %d Build calls ran at once with build threads %d; want 2..%d", o, threads, threads)
	}
	recs, err := e.kafka.ReadAll(ctx, "shop.products")
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != st.Sent || st.Sent == 0 {
		t.Fatalf("%d records in Kafka, %d sent", len(recs), st.Sent)
	}
	last := -1
	for i, r := range recs {
		var id struct{ SKU string }
		if err := json.Unmarshal(r.Key, &id); err != nil {
			t.Fatal(err)
		}
		c, ok := chunkOf[skuKey[id.SKU]]
		if !ok {
			t.Fatalf("record %d: sku %q is not a product", i, id.SKU)
		}
		if c < last {
			t.Fatalf("record %d (sku %s) is of chunk %d after a record of chunk %d: chunks left out of key order", i, id.SKU, c, last)
		}
		last = c
	}
	t.Logf("%d keys, %d chunks, %d items sent in key order; up to %d builds at once", len(keys), nchunks, st.Sent, rec.maxOverlap())
}

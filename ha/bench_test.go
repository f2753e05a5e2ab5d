package ha

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/feedcdc/feedcdc/change"
	"github.com/feedcdc/feedcdc/state"
	"github.com/feedcdc/feedcdc/test/kafkatest"
)

// benchItems is flush f (of size n) of a synthetic products feed: items
// like the connector stores them (sku and store view identity, sha1 id and
// hash, status 200, a request id, timestamps); round changes the hashes.
func benchItems(f, n, round int) []state.Item {
	items := make([]state.Item, n)
	now := time.Unix(1_790_000_000, 0)
	for j := range items {
		k := f*n + j
		sku := fmt.Sprintf("SKU-%07d", k/3)
		view := [...]string{"default", "fr", "de"}[k%3]
		id := sha1.Sum([]byte(sku + "\x00" + view))
		h := sha1.Sum([]byte(fmt.Sprint(sku, view, round)))
		items[j] = state.Item{Feed: "products", ID: hex.EncodeToString(id[:]), EntityKey: strconv.Itoa(k / 3),
			Identity: map[string]string{"sku": sku, "storeViewCode": view}, Hash: hex.EncodeToString(h[:]),
			Status: state.StatusSent, RequestID: fmt.Sprintf("req-%d", k/100), ModifiedAt: now, SentAt: now}
	}
	return items
}

func loadItems(b *testing.B, st *state.Store, items, flush, round int) time.Duration {
	ctx := context.Background()
	start := time.Now()
	for f := 0; f*flush < items; f++ {
		batch := benchItems(f, min(flush, items-f*flush), round)
		err := st.Update(ctx, func(tx *state.Tx) error {
			if err := tx.PutItems(batch); err != nil {
				return err
			}
			return tx.SetCheckpoint(change.Position{File: "bin.000001", Pos: uint32(4 + f)}, time.Now())
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	return time.Since(start)
}

// BenchmarkChangelog measures, for FEEDCDC_HA_BENCH_ITEMS item states
// (default 100,000) written in flushes of 10,000: the cost of replicating
// every state transaction to the changelog (the active instance's flush
// time, against the same flushes without HA: the baseline), the
// changelog's size before and after compaction when every item was
// written twice, and the catch-up rate of an empty-disk standby restoring
// the whole state from it (against the baseline's local write time).
func BenchmarkChangelog(b *testing.B) {
	items := 100_000
	if v := os.Getenv("FEEDCDC_HA_BENCH_ITEMS"); v != "" {
		items, _ = strconv.Atoi(v)
	}
	const flush = 10_000
	ctx := context.Background()
	for range b.N {
		dir := b.TempDir()
		c := kafkatest.Start(b, kafkatest.InMemory(), kafkatest.WithBrokerConfigs(map[string]string{"group.min.session.timeout.ms": "500"}))
		o := Options{Brokers: []string{c.Addr()}, Name: "bench", TopicPrefix: "feedcdc", Instance: "a", SessionTimeout: 3 * time.Second, Replication: -1}
		n, err := Start(ctx, o)
		if err != nil {
			b.Fatal(err)
		}
		select {
		case <-n.Elected():
		case <-time.After(30 * time.Second):
			b.Fatal("not elected")
		}
		// Baseline: the same flushes into a local file without HA.
		local, err := state.Open(filepath.Join(dir, "local.db"), state.Options{})
		if err != nil {
			b.Fatal(err)
		}
		base := loadItems(b, local, items, flush, 1)
		localSize, _ := local.Size()
		local.Close()

		st, err := state.Open(filepath.Join(dir, "active.db"), state.Options{OnCommit: n.Commit})
		if err != nil {
			b.Fatal(err)
		}
		repl := loadItems(b, st, items, flush, 1)
		loadItems(b, st, items, flush, 2) // every item rewritten: compaction's work
		st.Close()
		end, err := n.End(ctx)
		if err != nil {
			b.Fatal(err)
		}
		size := func() (recs int, bytes int64) {
			all, err := c.ReadAll(ctx, o.StateTopic())
			if err != nil {
				b.Fatal(err)
			}
			for _, r := range all {
				bytes += int64(len(r.Key) + len(r.Value))
				for _, h := range r.Headers {
					bytes += int64(len(h.Key) + len(h.Value))
				}
			}
			return len(all), bytes
		}
		before, beforeBytes := size()
		c.Compact()
		after, afterBytes := size()

		// An empty-disk standby restores the whole state.
		restored, err := state.Open(filepath.Join(dir, "standby.db"), state.Options{})
		if err != nil {
			b.Fatal(err)
		}
		f, err := n.Follow(ctx, restored)
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		for f.Offset() < end {
			if err := f.pollOnce(ctx); err != nil {
				b.Fatal(err)
			}
		}
		restore := time.Since(start)
		f.Close()
		counts, _ := restored.Counts(ctx, "products")
		if counts.Total != int64(items) {
			b.Fatalf("restored %d items, want %d", counts.Total, items)
		}
		restoredSize, _ := restored.Size()
		restored.Close()
		n.Close()

		b.ReportMetric(repl.Seconds()/base.Seconds(), "replicated/local_flush")
		b.ReportMetric(float64(after)/float64(items), "records/item")
		b.ReportMetric(float64(items)/restore.Seconds(), "items/s_restore")
		b.Logf("%d items: local flushes %s, replicated %s (x%.2f); changelog %d records / %.1f MiB after two writes of every item, %d records / %.1f MiB (%.0f B/item) after compaction; local file %.1f MiB; restore of an empty disk %s = %.0f items/s, %.0f records/s (x%.2f the local write time), restored file %.1f MiB",
			items, base.Round(time.Millisecond), repl.Round(time.Millisecond), repl.Seconds()/base.Seconds(),
			before, float64(beforeBytes)/(1<<20), after, float64(afterBytes)/(1<<20), float64(afterBytes)/float64(items), float64(localSize)/(1<<20),
			restore.Round(time.Millisecond), float64(items)/restore.Seconds(), float64(after)/restore.Seconds(), restore.Seconds()/base.Seconds(), float64(restoredSize)/(1<<20))
	}
}

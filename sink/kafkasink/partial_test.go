package kafkasink

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/feedcdc/feedcdc/sink"
	"github.com/feedcdc/feedcdc/test/kafkatest"
)

// failProduce makes the broker answer the produce requests chosen by fail
// with a non-retriable error for every partition in them (so kafka-go gives
// up on that batch at once), and count every produce request it sees.
func failProduce(c *kafkatest.Cluster, fail func(n int64) bool) *atomic.Int64 {
	var n atomic.Int64
	kc := c.Kfake()
	kc.ControlKey(int16(kmsg.Produce), func(kr kmsg.Request) (kmsg.Response, error, bool) {
		kc.KeepControl()
		req := kr.(*kmsg.ProduceRequest)
		if !fail(n.Add(1)) {
			return nil, nil, false
		}
		resp := req.ResponseKind().(*kmsg.ProduceResponse)
		for _, rt := range req.Topics {
			st := kmsg.NewProduceResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				sp := kmsg.NewProduceResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = kerr.PolicyViolation.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	return &n
}

// checkSubsequence checks, per key, that the versions read back contain
// 1..versions in order (duplicates allowed) and end with the newest: what a
// consumer applying records in offset order needs.
func checkSubsequence(t *testing.T, got []kafkatest.Record, keys, versions int) (dups int) {
	t.Helper()
	seq := map[string][]int{}
	for _, r := range got {
		var v struct{ Version int }
		if err := json.Unmarshal(r.Value, &v); err != nil {
			t.Fatal(err)
		}
		seq[string(r.Key)] = append(seq[string(r.Key)], v.Version)
	}
	if len(seq) != keys {
		t.Fatalf("read %d keys, want %d", len(seq), keys)
	}
	for k, s := range seq {
		want := 1
		for _, v := range s {
			if v == want {
				want++
			}
		}
		if want != versions+1 {
			t.Fatalf("key %q: read versions %v, which do not contain 1..%d in order", k, s, versions)
		}
		if s[len(s)-1] != versions {
			t.Fatalf("key %q: read versions %v; the last one is not %d, so a consumer ends on an old version", k, s, versions)
		}
		dups += len(s) - versions
	}
	return dups
}

// Issue 13: kafka-go splits one Send into several produce requests per
// partition and keeps sending the later ones after an earlier one failed.
// If only the failed records were resent, v2 of a key could be stored
// before v1's resend. The sink must report the records after a key's first
// failure as retryable too, so that SendWithRetry resends them in order.
func TestPartialProduceFailureKeepsPerKeyOrder(t *testing.T) {
	ctx := ctxT(t, 2*time.Minute)
	c := kafkatest.Start(t, kafkatest.InMemory(), kafkatest.WithKfakeOptions(kfake.SeedTopics(1, "p.raw")))
	s := newSink(t, Config{Name: "partial", Brokers: []string{c.Addr()}, TopicTemplate: "p.raw",
		BatchSize: 10, MaxAttempts: 1, Linger: time.Millisecond, WriteTimeout: 20 * time.Second})
	// Warm up metadata so that the first produce request is a data batch.
	wantAllOK(t, sendBounded(t, s, []sink.Record{item("warm", "warm", 1)}), nil, 1)

	const keys, versions = 5, 12
	var recs []sink.Record
	for v := 1; v <= versions; v++ {
		for k := 0; k < keys; k++ {
			r := item("raw", fmt.Sprintf("k%d", k), v)
			recs = append(recs, r)
		}
	}
	// Fail the 1st and the 4th produce request of the send: later batches
	// of the same partition (later versions of the same keys) still go out.
	produced := failProduce(c, func(n int64) bool { return n == 1 || n == 4 })
	res, err := sink.SendWithRetry(ctx, s, recs, sink.Backoff{Initial: 10 * time.Millisecond, Max: 50 * time.Millisecond, MaxAttempts: 20})
	wantAllOK(t, res, err, len(recs))
	if produced.Load() < 4 {
		t.Fatalf("only %d produce requests: the batch was not split, the test proves nothing", produced.Load())
	}
	got, err := c.ReadAll(ctx, "p.raw")
	if err != nil {
		t.Fatal(err)
	}
	var data []kafkatest.Record
	for _, r := range got {
		if string(r.Key) != "warm\x00default" {
			data = append(data, r)
		}
	}
	dups := checkSubsequence(t, data, keys, versions)
	t.Logf("%d produce requests, %d records stored, %d duplicates", produced.Load(), len(data), dups)
}

// TestBatchOverBrokerLimitResentInHalves: with batch_bytes above the
// topic's max.message.bytes, the broker refuses whole batches. Their
// records are resent in order in requests of half the size until they
// fit: every record is stored, per-key order holds, a record too large
// alone is rejected, the mismatch is logged once with the remedy, and the
// next send is cut to the size the broker accepted. Sent one at a time
// instead (as before), 1,000 records cost 1,000 produce requests: a first
// start with batch_size 5000 and batch_bytes 4MiB against a 1 MB topic
// limit ran more than ten times slower.
func TestBatchOverBrokerLimitResentInHalves(t *testing.T) {
	c := kafkatest.Start(t, kafkatest.InMemory(), kafkatest.WithBrokerConfigs(map[string]string{"message.max.bytes": "65536"}))
	requests := failProduce(c, func(int64) bool { return false })
	// 1 MiB: one batch per request, refused or stored whole. 100 KiB: a
	// request spans several batches, and a key's later record can be
	// stored while its earlier one is refused; it is then reported for a
	// resend after it.
	for _, batchBytes := range []int64{1 << 20, 100 << 10} {
		t.Run(fmt.Sprint(batchBytes), func(t *testing.T) {
			ctx := ctxT(t, time.Minute)
			prefix := fmt.Sprintf("halves%d", batchBytes)
			logs := &bytes.Buffer{}
			var mu sync.Mutex
			s := newSink(t, Config{Brokers: []string{c.Addr()}, TopicPrefix: prefix, CreateTopics: true, Partitions: 1, Linger: time.Millisecond, BatchBytes: batchBytes,
				Logger: slog.New(slog.NewTextHandler(lockedWriter{&mu, logs}, nil))})
			const keys, versions = 40, 25 // a key every 40 records: several times in one batch span
			pad := strings.Repeat("x", 1000)
			var recs []sink.Record
			for v := 1; v <= versions; v++ {
				for k := range keys {
					r := item("products", fmt.Sprintf("sku-%03d", k), v)
					r.Value = []byte(fmt.Sprintf(`{"sku":"sku-%03d","version":%d,"pad":%q}`, k, v, pad))
					recs = append(recs, r)
				}
			}
			huge := item("products", "huge", 1)
			huge.Value = []byte(`{"sku":"huge","pad":"` + strings.Repeat("x", 100_000) + `"}`)
			recs = append(recs[:500:500], append([]sink.Record{huge}, recs[500:]...)...)
			if err := s.EnsureTopics(ctx, []string{"products", "variants"}, nil); err != nil {
				t.Fatal(err)
			}
			before := requests.Load()
			// Sent until every record is stored or rejected, as the
			// exporter retries what is retryable.
			for pending := recs; len(pending) > 0; {
				res, err := s.Send(ctx, pending)
				if err != nil {
					t.Fatal(err)
				}
				var again []sink.Record
				for i, r := range res {
					switch {
					case r.Status == sink.StatusRetryable && strings.HasPrefix(r.Reason, "RESENT_FOR_ORDER"):
						again = append(again, pending[i])
					case string(pending[i].Key[:4]) == "huge":
						if r.Status != sink.StatusRejected || !strings.Contains(r.Reason, "MESSAGE_TOO_LARGE") {
							t.Fatalf("the record too large alone: %v %s", r.Status, r.Reason)
						}
					case r.Status != sink.StatusOK:
						t.Fatalf("record %d: %v %s (%v)", i, r.Status, r.Reason, r.Err)
					}
				}
				pending = again
			}
			if n := requests.Load() - before; n > 300 {
				t.Fatalf("%d produce requests for %d records", n, len(recs))
			}
			got, err := c.ReadAll(ctx, prefix+".products")
			if err != nil {
				t.Fatal(err)
			}
			checkSubsequence(t, got, keys, versions)

			// The next send is cut to the size the broker accepted:
			// nothing refused, so no request beyond those of that size.
			fit := s.fit.Load()
			if fit <= 0 || fit > 65536 {
				t.Fatalf("learned request size %d", fit)
			}
			var next []sink.Record
			var size int64
			for v := 1; v <= versions; v++ {
				for k := range keys {
					r := item("variants", fmt.Sprintf("sku-%03d", k), v)
					r.Value = []byte(fmt.Sprintf(`{"sku":"sku-%03d","version":%d,"pad":%q}`, k, v, pad))
					next = append(next, r)
					m := Message(prefix+".variants", &r)
					size += messageSize(&m)
				}
			}
			before = requests.Load()
			res, err := s.Send(ctx, next)
			wantAllOK(t, res, err, len(next))
			if n, most := requests.Load()-before, size/fit*11/10+2; n > most {
				t.Fatalf("%d produce requests for %d bytes cut to %d bytes each (at most %d without a refusal)", n, size, fit, most)
			}
			if got, err = c.ReadAll(ctx, prefix+".variants"); err != nil {
				t.Fatal(err)
			}
			checkSubsequence(t, got, keys, versions)
			mu.Lock()
			defer mu.Unlock()
			if n := strings.Count(logs.String(), "refused a batch as too large"); n != 1 || !strings.Contains(logs.String(), "sinks.kafka.kafka.batch_bytes") {
				t.Fatalf("the refused batches were logged %d times (want once, with the remedy):\n%s", n, logs.String())
			}
		})
	}
}

// lockedWriter serialises writes to w.
type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

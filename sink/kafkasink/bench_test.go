package kafkasink

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	kafka "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/feedcdc/feedcdc/sink"
	"github.com/feedcdc/feedcdc/test/kafkatest"
)

// benchRecords builds n product items of about 1 KB of JSON each.
func benchRecords(n int) []sink.Record {
	desc := strings.Repeat("Soft organic cotton, regular fit. ", 20)
	recs := make([]sink.Record, n)
	for i := range recs {
		sku := fmt.Sprintf("MH%07d", i)
		v := fmt.Sprintf(`{"sku":%q,"storeViewCode":"default","websiteCode":"base","name":"Shirt %d","type":"simple","status":"Enabled","visibility":"Catalog, Search","price":{"regular":29.99,"final":24.99},"description":%q,"attributes":[{"attributeCode":"color","value":["Blue"]},{"attributeCode":"size","value":["M"]}],"deleted":false,"modifiedAt":"2026-11-29T12:00:00Z"}`, sku, i, desc)
		recs[i] = sink.Record{Feed: "products", Key: []byte(sku + "\x00default"), Value: []byte(v),
			ID: fmt.Sprintf("%040x", i), Hash: fmt.Sprintf("%040x", i*7), Op: "u", Position: fmt.Sprintf("0-1-%d", i)}
	}
	return recs
}

func deleteTopic(b *testing.B, c *kafkatest.Cluster, topic string) {
	cl, err := kgo.NewClient(c.ClientOptions()...)
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	if _, err := kadm.NewClient(cl).DeleteTopics(context.Background(), topic); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkKafkaSinkVsRaw measures the sink's throughput against two bare
// kafka-go Writer baselines sending the same records (same key, value,
// headers, batch settings, linger, acks=all, murmur2 partitioning) to the
// same kfake broker, interleaved round by round:
//   - prebuilt: kafka.Messages built before the clock starts (the Writer
//     alone; an upper bound no caller reaches);
//   - built: the caller builds each kafka.Message (with the same headers) in
//     the timed loop, as a hand-written producer would.
//
// It reports the three rates and the sink's ratio to each. Run it with
//
//	go test -run '^$' -bench KafkaSinkVsRaw -benchtime 1x ./sink/kafkasink/
func BenchmarkKafkaSinkVsRaw(b *testing.B) {
	const n, batch, rounds = 100_000, 1000, 5
	recs := benchRecords(n)
	naive := func(r *sink.Record) kafka.Message {
		return kafka.Message{Key: r.KeyOrID(), Value: r.Value, Headers: []kafka.Header{
			{Key: "feed", Value: []byte(r.Feed)}, {Key: "feed_id", Value: []byte(r.ID)}, {Key: "feed_hash", Value: []byte(r.Hash)},
			{Key: "op", Value: []byte(r.Op)}, {Key: "source_position", Value: []byte(r.Position)}, {Key: "content-type", Value: []byte("application/json")},
		}}
	}
	for _, codec := range []string{"none", "snappy"} {
		b.Run(codec, func(b *testing.B) {
			ctx := context.Background()
			c := kafkatest.Start(b, kafkatest.InMemory())
			comp, _ := compression(codec)
			rates := map[string][]float64{}
			raw := func(name, topic string, prebuilt bool) time.Duration {
				if err := c.CreateTopic(ctx, topic, 1, nil); err != nil {
					b.Fatal(err)
				}
				defer deleteTopic(b, c, topic)
				w := &kafka.Writer{Addr: kafka.TCP(c.Addr()), Topic: topic, Balancer: &kafka.Murmur2Balancer{}, RequiredAcks: kafka.RequireAll,
					Compression: comp, BatchSize: batch, BatchBytes: 1 << 20, BatchTimeout: benchLinger, Transport: &kafka.Transport{}}
				defer w.Close()
				var msgs []kafka.Message
				if prebuilt {
					msgs = make([]kafka.Message, n)
					for i := range recs {
						msgs[i] = naive(&recs[i])
					}
				}
				start := time.Now()
				for i := 0; i < n; i += batch {
					chunk := msgs
					if prebuilt {
						chunk = msgs[i : i+batch]
					} else {
						chunk = make([]kafka.Message, batch)
						for j := range chunk {
							chunk[j] = naive(&recs[i+j])
						}
					}
					if err := w.WriteMessages(ctx, chunk...); err != nil {
						b.Fatal(err)
					}
				}
				return time.Since(start)
			}
			viaSink := func(prefix string) time.Duration {
				if err := c.CreateTopic(ctx, prefix+".products", 1, nil); err != nil {
					b.Fatal(err)
				}
				defer deleteTopic(b, c, prefix+".products")
				s, err := New(Config{Brokers: []string{c.Addr()}, TopicPrefix: prefix, Compression: codec, BatchSize: batch, BatchBytes: 1 << 20, Linger: benchLinger})
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				start := time.Now()
				for i := 0; i < n; i += batch {
					res, err := s.Send(ctx, recs[i:i+batch])
					if err != nil {
						b.Fatal(err)
					}
					for _, r := range res {
						if r.Status != sink.StatusOK {
							b.Fatalf("%v %s", r.Status, r.Reason)
						}
					}
				}
				return time.Since(start)
			}
			for it := 0; it < b.N; it++ {
				for round := 0; round <= rounds; round++ { // round 0 warms up
					d := map[string]time.Duration{
						"prebuilt": raw("prebuilt", fmt.Sprintf("pre%d.%d", it, round), true),
						"built":    raw("built", fmt.Sprintf("built%d.%d", it, round), false),
						"sink":     viaSink(fmt.Sprintf("sink%d.%d", it, round)),
					}
					if round > 0 {
						for k, v := range d {
							rates[k] = append(rates[k], float64(n)/v.Seconds())
						}
					}
				}
			}
			pre, built, snk := median(rates["prebuilt"]), median(rates["built"]), median(rates["sink"])
			b.ReportMetric(pre, "prebuilt_rec/s")
			b.ReportMetric(built, "built_rec/s")
			b.ReportMetric(snk, "sink_rec/s")
			b.ReportMetric(snk/pre, "sink/prebuilt")
			b.ReportMetric(snk/built, "sink/built")
			b.Logf("%s: kafka-go prebuilt %.0f rec/s, kafka-go built %.0f rec/s, sink %.0f rec/s; sink/prebuilt %.2f, sink/built %.2f (medians of %d interleaved rounds of %d records of %d B)",
				codec, pre, built, snk, snk/pre, snk/built, len(rates["sink"]), n, len(recs[0].Value))
		})
	}
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}

// benchLinger is the linger of both the baseline and the sink. Each
// synchronous Send waits up to linger for its last, partial batch, so a
// short linger suits one sender.
const benchLinger = time.Millisecond

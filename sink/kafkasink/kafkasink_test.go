package kafkasink

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/s2"
	kafka "github.com/segmentio/kafka-go"

	"github.com/feedcdc/feedcdc/sink"
	"github.com/feedcdc/feedcdc/test/kafkatest"
)

func ctxT(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func newSink(t *testing.T, cfg Config) *Sink {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func item(feed, sku string, version int) sink.Record {
	return sink.Record{
		Feed:     feed,
		Key:      []byte(sku + "\x00default"),
		Value:    []byte(fmt.Sprintf(`{"sku":%q,"storeViewCode":"default","version":%d}`, sku, version)),
		ID:       fmt.Sprintf("id-%s", sku),
		Hash:     fmt.Sprintf("hash-%s-%d", sku, version),
		Op:       "u",
		Position: fmt.Sprintf("0-1-%d", version),
	}
}

func wantAllOK(t *testing.T, res []sink.Result, err error, n int) {
	t.Helper()
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	if len(res) != n {
		t.Fatalf("Send returned %d results for %d records", len(res), n)
	}
	for i, r := range res {
		if r.Status != sink.StatusOK {
			t.Fatalf("record %d: %v %s (%v)", i, r.Status, r.Reason, r.Err)
		}
	}
}

func TestSendTopicsKeysHeadersAndCompaction(t *testing.T) {
	ctx := ctxT(t, time.Minute)
	c := kafkatest.Start(t, kafkatest.InMemory())
	s := newSink(t, Config{
		Name: "main", Brokers: []string{c.Addr()}, TopicPrefix: "shop", CreateTopics: true,
		Compact: true, Partitions: 3, Linger: time.Millisecond,
		TopicConfigs: map[string]string{"retention.ms": "604800000", "cleanup.policy": "delete"},
	})
	recs := []sink.Record{
		item("products", "sku-1", 1),
		item("products", "sku-2", 1),
		item("variants", "cfg-1", 1),
		// A raw stream record names its own topic; {prefix} is filled in.
		{Feed: "raw", Topic: "{prefix}.raw.shop.catalog_product_entity", Key: []byte(`{"entity_id":7}`),
			Value: []byte(`{"op":"d"}`), Op: "d", Position: "0-1-9", Headers: []sink.Header{{Key: "table", Value: []byte("catalog_product_entity")}}},
		{Feed: "raw", Topic: "{prefix}.raw.shop.catalog_product_entity", Key: []byte(`{"entity_id":7}`), Value: nil, Op: "d", Position: "0-1-9"},
	}
	res, err := s.Send(ctx, recs)
	wantAllOK(t, res, err, len(recs))

	for topic, compact := range map[string]bool{"shop.products": true, "shop.variants": true, "shop.raw.shop.catalog_product_entity": false} {
		cfg, err := c.TopicConfig(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		if got := cfg["cleanup.policy"] == "compact"; got != compact {
			t.Errorf("topic %s: cleanup.policy=%q, want compact=%v", topic, cfg["cleanup.policy"], compact)
		}
		if cfg["retention.ms"] != "604800000" {
			t.Errorf("topic %s: retention.ms=%q, want topic_configs applied", topic, cfg["retention.ms"])
		}
		if n, err := c.Partitions(ctx, topic); err != nil || n != 3 {
			t.Errorf("topic %s: %d partitions (%v), want 3", topic, n, err)
		}
	}

	got, err := c.ReadAll(ctx, "shop.products")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("shop.products has %d records, want 2", len(got))
	}
	bySKU := map[string]kafkatest.Record{}
	for _, r := range got {
		bySKU[string(r.Key)] = r
	}
	r := bySKU["sku-1\x00default"]
	if string(r.Value) != string(recs[0].Value) {
		t.Errorf("value %q, want %q", r.Value, recs[0].Value)
	}
	for k, want := range map[string]string{"feed": "products", "feed_id": "id-sku-1", "feed_hash": "hash-sku-1-1", "op": "u", "source_position": "0-1-1", "content-type": "application/json"} {
		if v, ok := r.Header(k); !ok || v != want {
			t.Errorf("header %s = %q (present %v), want %q", k, v, ok, want)
		}
	}

	raw, err := c.ReadAll(ctx, "shop.raw.shop.catalog_product_entity")
	if err != nil {
		t.Fatal(err)
	}
	if len(raw) != 2 || raw[1].Value != nil || raw[0].Partition != raw[1].Partition {
		t.Fatalf("raw topic: %+v; want the delete then a tombstone on the same partition", raw)
	}
	if v, _ := raw[0].Header("table"); v != "catalog_product_entity" {
		t.Errorf("extra header table = %q", v)
	}
	if _, ok := raw[1].Header("content-type"); ok {
		t.Errorf("tombstone carries a content-type header")
	}

	// Debian's kcat, an independent client, reads the same keys, headers and
	// the tombstone.
	kc, err := c.KcatReadAll(ctx, "shop.raw.shop.catalog_product_entity")
	if err != nil {
		t.Fatal(err)
	}
	if len(kc) != 2 {
		t.Fatalf("kcat read %d records, want 2", len(kc))
	}
	if kc[0].Key == nil || *kc[0].Key != `{"entity_id":7}` || kc[1].Payload != nil {
		t.Errorf("kcat: %+v", kc)
	}
	if h := strings.Join(kc[0].Headers, ","); !strings.Contains(h, "feed,raw") || !strings.Contains(h, "op,d") || !strings.Contains(h, "source_position,0-1-9") || !strings.Contains(h, "table,catalog_product_entity") {
		t.Errorf("kcat headers: %s", h)
	}
}

// TestFencingTokenIsTheEpochHeader: records sent with a high-availability
// leader's fencing token carry it as header "epoch" (what a consumer fences
// a paused former leader's late records with); records sent without one
// carry no such header.
func TestFencingTokenIsTheEpochHeader(t *testing.T) {
	ctx := ctxT(t, time.Minute)
	c := kafkatest.Start(t, kafkatest.InMemory())
	s := newSink(t, Config{Name: "main", Brokers: []string{c.Addr()}, TopicPrefix: "ha", CreateTopics: true, Linger: time.Millisecond})
	res, err := s.Send(ctx, []sink.Record{item("products", "sku-1", 1)})
	wantAllOK(t, res, err, 1)
	res, err = s.Send(sink.WithFencingToken(ctx, 4711), []sink.Record{item("products", "sku-1", 2)})
	wantAllOK(t, res, err, 1)
	got, err := c.ReadAll(ctx, "ha.products")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("%d records, want 2", len(got))
	}
	if v, ok := got[0].Header(EpochHeader); ok {
		t.Errorf("a record sent without a fencing token has header epoch %q", v)
	}
	if v, ok := got[1].Header(EpochHeader); !ok || v != "4711" {
		t.Errorf("header epoch = %q (present %v), want 4711", v, ok)
	}
}

func TestPerKeyOrderAcrossSends(t *testing.T) {
	ctx := ctxT(t, time.Minute)
	c := kafkatest.Start(t, kafkatest.InMemory())
	s := newSink(t, Config{Brokers: []string{c.Addr()}, TopicPrefix: "o", CreateTopics: true, Partitions: 4, Linger: time.Millisecond})
	const keys, versions = 20, 5
	for v := 1; v <= versions; v++ {
		var recs []sink.Record
		for k := 0; k < keys; k++ {
			recs = append(recs, item("products", fmt.Sprintf("sku-%d", k), v))
		}
		res, err := s.Send(ctx, recs)
		wantAllOK(t, res, err, len(recs))
	}
	got, err := c.ReadAll(ctx, "o.products")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != keys*versions {
		t.Fatalf("read %d records, want %d", len(got), keys*versions)
	}
	last := map[string]int{}
	part := map[string]int32{}
	for _, r := range got { // partition, offset order
		var v struct{ Version int }
		if err := json.Unmarshal(r.Value, &v); err != nil {
			t.Fatal(err)
		}
		k := string(r.Key)
		if p, ok := part[k]; ok && p != r.Partition {
			t.Fatalf("key %q on partitions %d and %d", k, p, r.Partition)
		}
		part[k] = r.Partition
		if v.Version != last[k]+1 {
			t.Fatalf("key %q: version %d after %d", k, v.Version, last[k])
		}
		last[k] = v.Version
	}
}

func TestTooLargeRejectedAloneRestDelivered(t *testing.T) {
	ctx := ctxT(t, time.Minute)
	// The broker accepts at most 64 KiB per batch; the sink believes 1 MB.
	c := kafkatest.Start(t, kafkatest.InMemory(), kafkatest.WithBrokerConfigs(map[string]string{"message.max.bytes": "65536"}))
	s := newSink(t, Config{Brokers: []string{c.Addr()}, TopicPrefix: "big", CreateTopics: true, Partitions: 1, Linger: time.Millisecond})
	huge := item("products", "huge", 1)
	huge.Value = []byte(`{"sku":"huge","description":"` + strings.Repeat("x", 200_000) + `"}`)
	recs := []sink.Record{item("products", "a", 1), huge, item("products", "b", 1)}
	res, err := s.Send(ctx, recs)
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Status != sink.StatusOK || res[2].Status != sink.StatusOK {
		t.Fatalf("small records: %+v %+v", res[0], res[2])
	}
	if res[1].Status != sink.StatusRejected || !strings.Contains(res[1].Reason, "MESSAGE_TOO_LARGE") {
		t.Fatalf("huge record (broker limit): %+v", res[1])
	}

	// A record refused alone teaches nothing about the size of requests.
	s3 := newSink(t, Config{Brokers: []string{c.Addr()}, TopicPrefix: "big", Linger: time.Millisecond})
	res, err = s3.Send(ctx, []sink.Record{huge})
	if err != nil || res[0].Status != sink.StatusRejected || s3.fit.Load() != 0 {
		t.Fatalf("huge record alone: %+v, %v; learned request size %d", res, err, s3.fit.Load())
	}

	// Client-side limit: rejected before sending.
	s2 := newSink(t, Config{Brokers: []string{c.Addr()}, TopicPrefix: "big", MaxMessageBytes: 10_000, Linger: time.Millisecond})
	res, err = s2.Send(ctx, []sink.Record{item("products", "c", 1), huge})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Status != sink.StatusOK || res[1].Status != sink.StatusRejected || !strings.Contains(res[1].Reason, "MESSAGE_TOO_LARGE") {
		t.Fatalf("client-side limit: %+v", res)
	}
	got, err := c.ReadAll(ctx, "big.products")
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, r := range got {
		keys = append(keys, strings.SplitN(string(r.Key), "\x00", 2)[0])
	}
	if strings.Join(keys, ",") != "a,b,c" {
		t.Fatalf("stored keys %v, want a,b,c", keys)
	}
}

func TestCompressionCodecs(t *testing.T) {
	ctx := ctxT(t, time.Minute)
	c := kafkatest.Start(t, kafkatest.InMemory())
	for _, codec := range []string{"none", "gzip", "snappy", "lz4", "zstd"} {
		s := newSink(t, Config{Brokers: []string{c.Addr()}, TopicPrefix: codec, Compression: codec, CreateTopics: true, Partitions: 1, Linger: time.Millisecond})
		var recs []sink.Record
		for i := 0; i < 50; i++ {
			recs = append(recs, item("products", fmt.Sprintf("sku-%d", i), 1))
		}
		res, err := s.Send(ctx, recs)
		wantAllOK(t, res, err, len(recs))
		got, err := c.ReadAll(ctx, codec+".products")
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 50 || string(got[49].Value) != string(recs[49].Value) {
			t.Fatalf("%s: read %d records", codec, len(got))
		}
	}
	if _, err := New(Config{Brokers: []string{c.Addr()}, Compression: "brotli"}); err == nil || !strings.Contains(err.Error(), "brotli") {
		t.Fatalf("unknown codec accepted: %v", err)
	}
	// Debian's kcat (librdkafka's own snappy decoder) reads the snappy
	// batches too.
	kc, err := c.KcatReadAll(ctx, "snappy.products")
	if err != nil {
		t.Fatal(err)
	}
	if len(kc) != 50 {
		t.Fatalf("kcat read %d snappy records, want 50", len(kc))
	}
}

// TestSnappyEncodesWithS2FastMode: snappy batches are encoded with s2's
// fast mode (EncodeSnappy), not kafka-go's default "better" mode, which
// costs the connector more CPU than lz4 (docs/benchmarks.md, stop 30).
func TestSnappyEncodesWithS2FastMode(t *testing.T) {
	var data []byte
	for _, r := range benchRecords(40) {
		data = append(data, r.Value...)
	}
	data = data[:30000] // one xerial block
	var buf bytes.Buffer
	w := kafka.Snappy.Codec().NewWriter(&buf)
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	fast, better := s2.EncodeSnappy(nil, data), s2.EncodeSnappyBetter(nil, data)
	if bytes.Equal(fast, better) {
		t.Fatal("the sample encodes the same in both modes: it cannot tell them apart")
	}
	if !bytes.Contains(buf.Bytes(), fast) {
		t.Errorf("the snappy codec's %d bytes do not hold s2's fast encoding (%d bytes; the better one is %d)", buf.Len(), len(fast), len(better))
	}
}

func TestMissingTopicIsRetryableOthersDelivered(t *testing.T) {
	ctx := ctxT(t, time.Minute)
	c := kafkatest.Start(t, kafkatest.InMemory())
	if err := c.CreateTopic(ctx, "m.products", 1, nil); err != nil {
		t.Fatal(err)
	}
	s := newSink(t, Config{Brokers: []string{c.Addr()}, TopicPrefix: "m", Linger: time.Millisecond})
	res, err := s.Send(ctx, []sink.Record{item("products", "a", 1), item("variants", "v", 1)})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Status != sink.StatusOK {
		t.Fatalf("existing topic: %+v", res[0])
	}
	if res[1].Status != sink.StatusRetryable || !strings.Contains(res[1].Reason, "UNKNOWN_TOPIC") {
		t.Fatalf("missing topic: %+v", res[1])
	}
	if err := s.PingTopics(ctx, "m.products"); err != nil {
		t.Fatalf("PingTopics(existing): %v", err)
	}
	if err := s.PingTopics(ctx, "m.variants"); err == nil {
		t.Fatal("PingTopics of a missing topic with create_topics off succeeded")
	}
	// A topic name Kafka would refuse is caught locally, with the fix named.
	res, err = s.Send(ctx, []sink.Record{{Feed: "raw", Topic: "m.shop/catalog", Key: []byte("k"), Value: []byte("{}")}, item("products", "b", 1)})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Status != sink.StatusRetryable || !strings.Contains(res[0].Reason, "INVALID_TOPIC") || res[1].Status != sink.StatusOK {
		t.Fatalf("invalid topic: %+v", res)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "brokers is empty"},
		{Config{Brokers: []string{"localhost"}}, "not host:port"},
		{Config{Brokers: []string{"a:1"}, Acks: "two"}, "unknown acks"},
		{Config{Brokers: []string{"a:1"}, SASL: SASLConfig{Mechanism: "GSSAPI", User: "u", Password: "p"}}, "unknown sasl mechanism"},
		{Config{Brokers: []string{"a:1"}, SASL: SASLConfig{Mechanism: "PLAIN", User: "u", PasswordEnv: "FEEDCDC_TEST_UNSET_VAR"}}, "FEEDCDC_TEST_UNSET_VAR"},
		{Config{Brokers: []string{"a:1"}, TLS: TLSConfig{Enabled: true, TLSFiles: sink.TLSFiles{CAFile: "/nonexistent/ca.pem"}}}, "ca_file"},
		{Config{Brokers: []string{"a:1"}, TLS: TLSConfig{Enabled: true, TLSFiles: sink.TLSFiles{CertFile: "/x.pem"}}}, "together"},
	} {
		_, err := New(tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) = %v, want error containing %q", tc.cfg, err, tc.want)
		}
	}
}

// TestRejectionsLoggedOncePerBatch: records over feedcdc's own
// max_message_bytes are logged as one line for the batch, with the feed,
// the topic, the count, key examples and the limit that was hit.
func TestRejectionsLoggedOncePerBatch(t *testing.T) {
	ctx := ctxT(t, time.Minute)
	c := kafkatest.Start(t, kafkatest.InMemory())
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	s := newSink(t, Config{Name: "events", Brokers: []string{c.Addr()}, TopicPrefix: "agg", CreateTopics: true, Partitions: 1,
		MaxMessageBytes: 10_000, Linger: time.Millisecond, Logger: log})
	recs := []sink.Record{item("products", "small", 1)}
	for i := 0; i < 5; i++ {
		r := item("products", fmt.Sprintf("huge-%d", i), 1)
		r.Value = []byte(`{"description":"` + strings.Repeat("x", 20_000) + `"}`)
		recs = append(recs, r)
	}
	res, err := s.Send(ctx, recs)
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Status != sink.StatusOK || res[5].Status != sink.StatusRejected || !strings.Contains(res[5].Reason, "sinks.events.kafka.max_message_bytes") {
		t.Fatalf("results: %+v", res)
	}
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		if m["level"] == "WARN" {
			lines = append(lines, m)
		}
	}
	if len(lines) != 1 {
		t.Fatalf("%d warnings for one batch, want 1:\n%s", len(lines), logs.String())
	}
	l := lines[0]
	if l["feed"] != "products" || l["topic"] != "agg.products" || l["records"] != 5.0 || l["keys"] != "huge-0|default, huge-1|default, huge-2|default" ||
		!strings.Contains(l["reason"].(string), "feedcdc's limit of 10000 bytes (sinks.events.kafka.max_message_bytes)") || strings.Contains(fmt.Sprint(l), "{prefix}") {
		t.Fatalf("rejection log line: %v", l)
	}
}

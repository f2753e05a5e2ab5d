package kafkatest

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// produce writes msgs with kafka-go (the producer feedcdc uses), with its own
// transport so no metadata is cached across tests.
func produce(t *testing.T, ctx context.Context, addr, topic string, msgs ...kafka.Message) {
	t.Helper()
	w := &kafka.Writer{
		Addr:         kafka.TCP(addr),
		Topic:        topic,
		Balancer:     &kafka.Hash{},
		RequiredAcks: kafka.RequireAll,
		Transport:    &kafka.Transport{},
		BatchTimeout: time.Millisecond,
	}
	defer w.Close()
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatalf("kafka-go write: %v", err)
	}
}

func testMessages() []kafka.Message {
	return []kafka.Message{
		{Key: []byte("sku-1|default"), Value: []byte(`{"sku":"sku-1","name":"Shirt"}`),
			Headers: []kafka.Header{{Key: "feed", Value: []byte("products")}, {Key: "op", Value: []byte("u")}}},
		{Key: []byte("sku-2|default"), Value: []byte(`{"sku":"sku-2","name":"Hat ✓"}`),
			Headers: []kafka.Header{{Key: "feed", Value: []byte("products")}, {Key: "op", Value: []byte("c")}}},
		{Key: []byte("sku-3|default"), Value: nil, // tombstone
			Headers: []kafka.Header{{Key: "feed", Value: []byte("products")}, {Key: "op", Value: []byte("d")}}},
	}
}

func TestKcatReadsWhatKafkaGoProduced(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := Start(t, InMemory())
	if err := c.CreateTopic(ctx, "feed.products", 1, nil); err != nil {
		t.Fatal(err)
	}
	msgs := testMessages()
	produce(t, ctx, c.Addr(), "feed.products", msgs...)

	got, err := c.KcatReadAll(ctx, "feed.products")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(msgs) {
		t.Fatalf("kcat read %d records, want %d: %+v", len(got), len(msgs), got)
	}
	for i, m := range msgs {
		r := got[i]
		if r.Key == nil || *r.Key != string(m.Key) {
			t.Errorf("record %d: key %v, want %q", i, r.Key, m.Key)
		}
		if m.Value == nil {
			if r.Payload != nil {
				t.Errorf("record %d: tombstone read as payload %q", i, *r.Payload)
			}
		} else if r.Payload == nil || *r.Payload != string(m.Value) {
			t.Errorf("record %d: payload %v, want %q", i, r.Payload, m.Value)
		}
		var want []string
		for _, h := range m.Headers {
			want = append(want, h.Key, string(h.Value))
		}
		if fmt.Sprint(r.Headers) != fmt.Sprint(want) {
			t.Errorf("record %d: headers %v, want %v", i, r.Headers, want)
		}
		if op, _ := r.Header("op"); op != string(m.Headers[1].Value) {
			t.Errorf("record %d: kcat op header %q", i, op)
		}
		if r.Offset != int64(i) {
			t.Errorf("record %d: offset %d", i, r.Offset)
		}
	}

	// The harness's own reader (kgo) agrees with kcat.
	recs, err := c.ReadAll(ctx, "feed.products")
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != len(msgs) {
		t.Fatalf("ReadAll: %d records, want %d", len(recs), len(msgs))
	}
	for i, m := range msgs {
		r := recs[i]
		if string(r.Key) != string(m.Key) || !bytes.Equal(r.Value, m.Value) || (m.Value == nil) != (r.Value == nil) {
			t.Errorf("ReadAll record %d: key %q value %q, want %q %q", i, r.Key, r.Value, m.Key, m.Value)
		}
		if op, _ := r.Header("op"); op != string(m.Headers[1].Value) {
			t.Errorf("ReadAll record %d: op header %q", i, op)
		}
		if r.Timestamp.IsZero() {
			t.Errorf("ReadAll record %d: no timestamp", i)
		}
	}
}

func TestCreateTopicCompactAndPartitions(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := Start(t, InMemory())
	if err := c.CreateTopic(ctx, "compacted", 3, map[string]string{"cleanup.policy": "compact"}); err != nil {
		t.Fatal(err)
	}
	cfg, err := c.TopicConfig(ctx, "compacted")
	if err != nil {
		t.Fatal(err)
	}
	if cfg["cleanup.policy"] != "compact" {
		t.Fatalf("cleanup.policy = %q, want compact", cfg["cleanup.policy"])
	}
	n, err := c.Partitions(ctx, "compacted")
	if err != nil || n != 3 {
		t.Fatalf("partitions = %d, %v; want 3", n, err)
	}
	if err := c.CreateTopic(ctx, "compacted", 3, nil); err == nil {
		t.Fatal("creating an existing topic succeeded")
	}
	// Records spread over the three partitions by key are all read back.
	var msgs []kafka.Message
	for i := 0; i < 30; i++ {
		msgs = append(msgs, kafka.Message{Key: []byte(fmt.Sprintf("k%d", i)), Value: []byte(fmt.Sprintf("v%d", i))})
	}
	produce(t, ctx, c.Addr(), "compacted", msgs...)
	recs, err := c.ReadAll(ctx, "compacted")
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 30 {
		t.Fatalf("ReadAll: %d records, want 30", len(recs))
	}
	parts := map[int32]bool{}
	for _, r := range recs {
		parts[r.Partition] = true
	}
	if len(parts) < 2 {
		t.Fatalf("records landed on %d partitions, want them spread", len(parts))
	}
	if recs, err := c.ReadAll(ctx, "missing-topic"); err == nil && len(recs) > 0 {
		t.Fatalf("ReadAll of a missing topic returned %d records", len(recs))
	}
}

func TestStopRestartKeepsDataOnSamePort(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := Start(t)
	addr := c.Addr()
	if err := c.CreateTopic(ctx, "t", 1, nil); err != nil {
		t.Fatal(err)
	}
	produce(t, ctx, addr, "t", kafka.Message{Key: []byte("a"), Value: []byte("1")})
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	// While stopped, a producer cannot deliver.
	wctx, wcancel := context.WithTimeout(ctx, 2*time.Second)
	w := &kafka.Writer{Addr: kafka.TCP(addr), Topic: "t", Transport: &kafka.Transport{}, RequiredAcks: kafka.RequireAll, MaxAttempts: 1}
	err := w.WriteMessages(wctx, kafka.Message{Key: []byte("x"), Value: []byte("x")})
	wcancel()
	w.Close()
	if err == nil {
		t.Fatal("write to a stopped broker succeeded")
	}
	if err := c.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if c.Addr() != addr {
		t.Fatalf("address changed across restart: %s -> %s", addr, c.Addr())
	}
	produce(t, ctx, addr, "t", kafka.Message{Key: []byte("b"), Value: []byte("2")})
	recs, err := c.ReadAll(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || string(recs[0].Value) != "1" || string(recs[1].Value) != "2" {
		t.Fatalf("after restart read %+v, want values 1 and 2", recs)
	}
}

func TestInMemoryCannotStop(t *testing.T) {
	c := Start(t, InMemory())
	if err := c.Stop(); err == nil {
		t.Fatal("Stop of an in-memory cluster succeeded; it would lose the log")
	}
}

func TestWithPortAndNew(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	first := Start(t, InMemory())
	// A taken port is an error naming the address, not a silent other port.
	if c, err := New(ctx, InMemory(), WithPort(first.Port())); err == nil {
		c.Close()
		t.Fatal("starting on a taken port succeeded")
	}
	dir := t.TempDir()
	c, err := New(ctx, WithDataDir(dir))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.CreateTopic(ctx, "kept", 1, nil); err != nil {
		t.Fatal(err)
	}
	produce(t, ctx, c.Addr(), "kept", kafka.Message{Key: []byte("k"), Value: []byte("v")})
	port := c.Port()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	// A data dir given by the caller survives Close, and a new cluster on it
	// (here on the same port) has the records.
	c2, err := New(ctx, WithDataDir(dir), WithPort(port))
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	recs, err := c2.ReadAll(ctx, "kept")
	if err != nil || len(recs) != 1 || string(recs[0].Value) != "v" {
		t.Fatalf("after reopening the data dir: %+v %v", recs, err)
	}
}

func TestCompactThenReadAll(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := Start(t, InMemory())
	if err := c.CreateTopic(ctx, "cmp", 1, map[string]string{"cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.01"}); err != nil {
		t.Fatal(err)
	}
	for v := 1; v <= 4; v++ { // separate batches, so older ones can be compacted
		produce(t, ctx, c.Addr(), "cmp",
			kafka.Message{Key: []byte("a"), Value: []byte(fmt.Sprintf("a%d", v))},
			kafka.Message{Key: []byte("b"), Value: []byte(fmt.Sprintf("b%d", v))})
	}
	c.Compact()
	recs, err := c.ReadAll(ctx, "cmp")
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) >= 8 {
		t.Fatalf("compaction removed nothing: %d records", len(recs))
	}
	latest := map[string]string{}
	for _, r := range recs {
		latest[string(r.Key)] = string(r.Value)
	}
	if latest["a"] != "a4" || latest["b"] != "b4" {
		t.Fatalf("latest values after compaction %v", latest)
	}
}

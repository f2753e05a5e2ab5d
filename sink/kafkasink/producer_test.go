package kafkasink

import (
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/feedcdc/feedcdc/config"
	"github.com/feedcdc/feedcdc/sink"
	"github.com/feedcdc/feedcdc/test/kafkatest"
)

// TestProducerSettingsReachTheWriter: producer: settings override the typed
// options and reach kafka-go's Writer; max.request.size changes which
// records a real broker round trip accepts.
func TestProducerSettingsReachTheWriter(t *testing.T) {
	ctx := ctxT(t, time.Minute)
	c := kafkatest.Start(t, kafkatest.InMemory())
	s := newSink(t, Config{Brokers: []string{c.Addr()}, TopicPrefix: "prod", CreateTopics: true, Partitions: 1, Compression: "none",
		Producer: map[string]string{"max.request.size": "2048", "compression.type": "gzip", "linger.ms": "0", "retries": "5",
			"batch.num.messages": "7", "batch.size": "65536", "acks": "1", "request.timeout.ms": "4000",
			"retry.backoff.ms": "50", "retry.backoff.max.ms": "300", "metadata.max.age.ms": "1500", "client.id": "pass-through"}})
	w := s.writer
	if w.Compression != kafka.Gzip || w.MaxAttempts != 6 || w.BatchSize != 7 || w.BatchBytes != 65536 || w.BatchTimeout != time.Microsecond ||
		w.RequiredAcks != kafka.RequireOne || w.WriteTimeout != 4*time.Second || w.WriteBackoffMin != 50*time.Millisecond ||
		w.WriteBackoffMax != 300*time.Millisecond || s.transport.MetadataTTL != 1500*time.Millisecond || s.transport.ClientID != "pass-through" {
		t.Fatalf("writer does not carry the producer settings: %+v", w)
	}
	small := item("products", "small", 1)
	big := item("products", "big", 1)
	big.Value = []byte(`{"sku":"big","d":"` + strings.Repeat("x", 3000) + `"}`)
	res, err := s.Send(ctx, []sink.Record{small, big})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Status != sink.StatusOK || res[1].Status != sink.StatusRejected || !strings.Contains(res[1].Reason, "MESSAGE_TOO_LARGE") {
		t.Fatalf("with max.request.size 2048: %+v", res)
	}
	got, err := c.ReadAll(ctx, "prod.products")
	if err != nil || len(got) != 1 {
		t.Fatalf("stored %d records (%v), want the small one", len(got), err)
	}

	_, err = New(Config{Name: "bus", Brokers: []string{c.Addr()}, Producer: map[string]string{"linger.msec": "5"}})
	if err == nil || !strings.Contains(err.Error(), `"linger.msec"`) {
		t.Fatalf("unknown producer setting: err = %v", err)
	}
	_, err = New(Config{Name: "bus", Brokers: []string{c.Addr()}, Producer: map[string]string{"linger.ms": "soon"}})
	if err == nil || !strings.Contains(err.Error(), "producer.linger.ms") {
		t.Fatalf("bad producer value: err = %v", err)
	}
}

// TestProducerSettingsDocumentedAreApplied: every setting the config
// package accepts (and documents) is one the sink applies.
func TestProducerSettingsDocumentedAreApplied(t *testing.T) {
	for _, ps := range config.ProducerSettings {
		v := "1"
		switch {
		case ps.Kind == "enum":
			v = ps.Values[0]
		case ps.Kind == "bytes":
			v = "4096"
		case ps.Kind == "string":
			v = "x"
		}
		c := Config{Name: "k", Brokers: []string{"127.0.0.1:9"}, Producer: map[string]string{ps.Name: v}}
		if err := c.applyProducer(); err != nil {
			t.Errorf("config accepts producer.%s but the sink does not: %v", ps.Name, err)
		}
	}
}

// TestDefaultLingerSendsAtOnce: with the configuration's default linger
// the writer sends the last, partly filled batch of a Send at once. A
// Send hands all its records over together, so a linger would only delay
// every export (it was 10 ms, waited by each streamed batch).
func TestDefaultLingerSendsAtOnce(t *testing.T) {
	c := kafkatest.Start(t, kafkatest.InMemory())
	s := newSink(t, Config{Brokers: []string{c.Addr()}, TopicPrefix: "lg", Linger: config.DefaultKafkaSink().Linger.D()})
	if s.writer.BatchTimeout != time.Microsecond {
		t.Fatalf("default linger gives kafka-go a BatchTimeout of %s, want 1µs (send at once)", s.writer.BatchTimeout)
	}
	for _, linger := range []time.Duration{0, -1} {
		if bt := batchTimeout(linger); bt != time.Microsecond {
			t.Fatalf("linger %s: BatchTimeout %s, want 1µs (kafka-go reads 0 as 1 s)", linger, bt)
		}
	}
}

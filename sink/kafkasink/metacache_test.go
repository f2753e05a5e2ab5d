package kafkasink

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	meta "github.com/segmentio/kafka-go/protocol/metadata"

	"github.com/feedcdc/feedcdc/sink"
	"github.com/feedcdc/feedcdc/test/kafkatest"
)

// countingTransport counts the metadata requests that reach the Transport.
type countingTransport struct {
	kafka.RoundTripper
	metadata atomic.Int64
}

func (c *countingTransport) RoundTrip(ctx context.Context, addr net.Addr, req kafka.Request) (kafka.Response, error) {
	if _, ok := req.(*meta.Request); ok {
		c.metadata.Add(1)
	}
	return c.RoundTripper.RoundTrip(ctx, addr, req)
}

// TestPartitionCountLookedUpOncePerTTL proves that the Writer's per-message
// partition count lookup is answered from the sink's cache (kafka-go asks
// once per message: 1,500 lookups here), and that a topic grown to more
// partitions is used once the metadata TTL has passed, so per-key order
// after a partition change is as with kafka-go alone.
func TestPartitionCountLookedUpOncePerTTL(t *testing.T) {
	ctx := ctxT(t, time.Minute)
	c := kafkatest.Start(t, kafkatest.InMemory())
	if err := c.CreateTopic(ctx, "grow", 1, nil); err != nil {
		t.Fatal(err)
	}
	ttl := 300 * time.Millisecond
	s := newSink(t, Config{Name: "main", Brokers: []string{c.Addr()}, Linger: time.Millisecond, MetadataTTL: ttl})
	pc, ok := s.writer.Transport.(*partitionCache)
	if !ok {
		t.Fatalf("the writer's transport is %T, not the partition cache", s.writer.Transport)
	}
	counter := &countingTransport{RoundTripper: pc.RoundTripper}
	pc.RoundTripper = counter

	batch := func(round, n int) []sink.Record {
		recs := make([]sink.Record, n)
		for i := range recs {
			recs[i] = sink.Record{Feed: "raw", Topic: "grow", Key: fmt.Appendf(nil, "k%d-%d", round, i), Value: []byte(`{}`), Op: "c"}
		}
		return recs
	}
	for round := range 3 {
		res, err := s.Send(ctx, batch(round, 500))
		wantAllOK(t, res, err, 500)
	}
	if n := counter.metadata.Load(); n > 6 {
		t.Fatalf("%d metadata requests reached the transport for 1,500 records in 3 sends: the partition count is not cached", n)
	}

	if err := c.SetPartitions(ctx, "grow", 3); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * ttl)
	res, err := s.Send(ctx, batch(9, 300))
	wantAllOK(t, res, err, 300)
	recs, err := c.ReadAll(ctx, "grow")
	if err != nil {
		t.Fatal(err)
	}
	perPartition := map[int32]int{}
	for _, r := range recs {
		if strings.HasPrefix(string(r.Key), "k9-") {
			perPartition[r.Partition]++
		}
	}
	if len(recs) != 1800 || len(perPartition) != 3 {
		t.Fatalf("after growing the topic to 3 partitions: %d records, last 300 spread over partitions %v; want 1800 over 3", len(recs), perPartition)
	}
}

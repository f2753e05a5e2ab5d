package kafkasink

import (
	"context"
	"errors"
	"fmt"
	"time"

	kafka "github.com/segmentio/kafka-go"

	"github.com/feedcdc/feedcdc/sink"
)

// ReadFeed reads back a feed's topic (feedcdc verify --read-back): every
// partition from its first offset up to its end as of the call, handed to
// fn as (id, key, value) in offset order per partition; id is the
// record's feed_id header ("" without one); a tombstone has a nil value. On a compacted topic the last value per key is the one that
// counts. It reads with a bounded reader (one partition at a time, one
// fetch of at most 10 MB in memory) and gives up when ctx ends or no
// message arrives for the sink's write_timeout.
func (s *Sink) ReadFeed(ctx context.Context, feed string, fn func(id string, key, value []byte) error) error {
	topic, _ := s.TopicFor(&sink.Record{Feed: feed})
	md, err := s.client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return fmt.Errorf("kafka sink %s: read back %s: metadata: %w", s.cfg.Name, topic, err)
	}
	var parts []int
	for _, t := range md.Topics {
		if t.Name != topic {
			continue
		}
		if t.Error != nil {
			if errors.Is(t.Error, kafka.UnknownTopicOrPartition) {
				return nil // nothing was ever written
			}
			return fmt.Errorf("kafka sink %s: read back %s: %w", s.cfg.Name, topic, t.Error)
		}
		for _, p := range t.Partitions {
			parts = append(parts, p.ID)
		}
	}
	if len(parts) == 0 {
		return nil
	}
	req := &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{}}
	for _, p := range parts {
		req.Topics[topic] = append(req.Topics[topic], kafka.FirstOffsetOf(p), kafka.LastOffsetOf(p))
	}
	offs, err := s.client.ListOffsets(ctx, req)
	if err != nil {
		return fmt.Errorf("kafka sink %s: read back %s: list offsets: %w", s.cfg.Name, topic, err)
	}
	dialer := &kafka.Dialer{ClientID: s.cfg.ClientID, Timeout: s.cfg.WriteTimeout, TLS: s.transport.TLS, SASLMechanism: s.transport.SASL}
	for _, po := range offs.Topics[topic] {
		if po.Error != nil {
			return fmt.Errorf("kafka sink %s: read back %s partition %d: %w", s.cfg.Name, topic, po.Partition, po.Error)
		}
		if po.LastOffset <= po.FirstOffset {
			continue
		}
		if err := s.readPartition(ctx, dialer, topic, po, fn); err != nil {
			return err
		}
	}
	return nil
}

func (s *Sink) readPartition(ctx context.Context, dialer *kafka.Dialer, topic string, po kafka.PartitionOffsets, fn func(id string, key, value []byte) error) error {
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: s.cfg.Brokers, Topic: topic, Partition: po.Partition, Dialer: dialer,
		MinBytes: 1, MaxBytes: 10 << 20, MaxWait: 250 * time.Millisecond})
	defer r.Close()
	if err := r.SetOffset(po.FirstOffset); err != nil {
		return fmt.Errorf("kafka sink %s: read back %s partition %d: %w", s.cfg.Name, topic, po.Partition, err)
	}
	idle := max(s.cfg.WriteTimeout, 5*time.Second)
	for {
		mctx, cancel := context.WithTimeout(ctx, idle)
		m, err := r.FetchMessage(mctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("kafka sink %s: read back %s partition %d at offset %d (end %d): %w", s.cfg.Name, topic, po.Partition, r.Offset(), po.LastOffset, err)
		}
		id := ""
		for _, h := range m.Headers {
			if h.Key == "feed_id" {
				id = string(h.Value)
				break
			}
		}
		if err := fn(id, m.Key, m.Value); err != nil {
			return err
		}
		if m.Offset >= po.LastOffset-1 {
			return nil
		}
	}
}

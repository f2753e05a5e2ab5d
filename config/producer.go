package config

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// ProducerSetting is one Kafka producer setting a kafka sink accepts under
// producer:, named like the Java client's property.
type ProducerSetting struct {
	Name string
	// Kind is how the value is checked: "bytes", "count", "ms" (a
	// non-negative integer) or "enum" (one of Values).
	Kind   string
	Values []string
	// Key is the kafka: key it overrides ("" when it has none).
	Key string
	Doc string
}

// ProducerSettings are the settings of sinks.<name>.kafka.producer, handed
// to kafka-go's Writer (sink/kafkasink applies them; a connector test
// checks that it knows every one).
var ProducerSettings = []ProducerSetting{
	{Name: "acks", Kind: "enum", Values: []string{"all", "-1", "1", "0"}, Key: "acks", Doc: "acknowledgements (kafka-go RequiredAcks)"},
	{Name: "batch.num.messages", Kind: "count", Key: "batch_size", Doc: "most messages per produce request (kafka-go BatchSize)"},
	{Name: "batch.size", Kind: "bytes", Key: "batch_bytes", Doc: "most bytes per produce request (kafka-go BatchBytes)"},
	{Name: "client.id", Kind: "string", Key: "client_id", Doc: "client id sent to the brokers"},
	{Name: "compression.type", Kind: "enum", Values: []string{"none", "gzip", "snappy", "lz4", "zstd"}, Key: "compression", Doc: "batch compression (kafka-go Compression)"},
	{Name: "linger.ms", Kind: "ms", Key: "linger", Doc: "longest wait to fill a batch (kafka-go BatchTimeout; 0 = send at once)"},
	{Name: "max.request.size", Kind: "bytes", Key: "max_message_bytes", Doc: "largest record sent; bigger ones are rejected alone"},
	{Name: "metadata.max.age.ms", Kind: "ms", Doc: "metadata refresh interval (kafka-go Transport.MetadataTTL; default 2000)"},
	{Name: "request.timeout.ms", Kind: "ms", Key: "write_timeout", Doc: "bound of one produce request (kafka-go WriteTimeout and ReadTimeout)"},
	{Name: "retries", Kind: "count", Doc: "retries of a failed batch inside one send (kafka-go MaxAttempts - 1; default 2)"},
	{Name: "retry.backoff.max.ms", Kind: "ms", Doc: "longest wait between those retries (kafka-go WriteBackoffMax; default 1000)"},
	{Name: "retry.backoff.ms", Kind: "ms", Doc: "first wait between those retries (kafka-go WriteBackoffMin; default 100)"},
}

// unsupportedProducer names Java producer settings kafka-go cannot honour,
// with what to do instead.
var unsupportedProducer = map[string]string{
	"enable.idempotence":                    "kafka-go has no idempotent producer; delivery is at-least-once (docs/sinks.md, Known limits)",
	"transactional.id":                      "kafka-go has no transactional producer",
	"max.in.flight.requests.per.connection": "the sink writes a partition's batches one after another already (per-key order)",
	"buffer.memory":                         "memory in flight is bounded by backpressure.max_inflight_bytes",
	"partitioner.class":                     "records are partitioned by key with murmur2, like the Java client's default",
	"key.serializer":                        "keys and values are JSON bytes",
	"value.serializer":                      "keys and values are JSON bytes",
	"delivery.timeout.ms":                   "use request.timeout.ms (or write_timeout); records are retried until delivered",
}

// producerProblem says what is wrong with a producer setting, its name or
// its value ("" if nothing).
func producerProblem(key, val string) string {
	i := slices.IndexFunc(ProducerSettings, func(s ProducerSetting) bool { return s.Name == key })
	if why, ok := unsupportedProducer[key]; ok {
		return fmt.Sprintf("producer setting %q is not supported: %s", key, why)
	} else if i < 0 {
		names := make([]string, len(ProducerSettings))
		for i, s := range ProducerSettings {
			names[i] = s.Name
		}
		if c := closest(key, names); c != "" {
			return fmt.Sprintf("unknown producer setting %q (did you mean %q?)", key, c)
		}
		return fmt.Sprintf("unknown producer setting %q; supported: %s", key, strings.Join(names, ", "))
	}
	switch s := ProducerSettings[i]; s.Kind {
	case "enum":
		if !slices.Contains(s.Values, strings.ToLower(val)) {
			return fmt.Sprintf("%q is not one of %s", val, strings.Join(s.Values, ", "))
		}
	case "bytes", "count", "ms":
		least := map[string]int64{"bytes": 1024}[s.Kind]
		if n, err := strconv.ParseInt(val, 10, 64); err != nil || n < least {
			return fmt.Sprintf("%q must be an integer of at least %d (%s)", val, least, map[string]string{"bytes": "bytes", "count": "a count", "ms": "milliseconds"}[s.Kind])
		}
	}
	return ""
}

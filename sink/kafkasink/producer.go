package kafkasink

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// applyProducer applies Config.Producer (Java-client property names, as
// config.ProducerSettings documents them) over the typed fields. An unknown
// name or a bad value is an error naming it.
func (c *Config) applyProducer() error {
	names := make([]string, 0, len(c.Producer))
	for k := range c.Producer {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		v := strings.TrimSpace(c.Producer[k])
		num := func() (int64, error) {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				return 0, fmt.Errorf("producer.%s: %q is not a non-negative integer", k, v)
			}
			return n, nil
		}
		ms := func(dst *time.Duration) error {
			n, err := num()
			*dst = time.Duration(n) * time.Millisecond
			return err
		}
		var err error
		switch k {
		case "acks":
			c.Acks = v
		case "compression.type":
			c.Compression = v
		case "client.id":
			c.ClientID = v
		case "batch.num.messages":
			var n int64
			n, err = num()
			c.BatchSize = int(n)
		case "batch.size":
			c.BatchBytes, err = num()
		case "max.request.size":
			c.MaxMessageBytes, err = num()
		case "linger.ms":
			err = ms(&c.Linger)
		case "request.timeout.ms":
			err = ms(&c.WriteTimeout)
		case "metadata.max.age.ms":
			err = ms(&c.MetadataTTL)
		case "retries":
			var n int64
			n, err = num()
			c.MaxAttempts = int(n) + 1
		case "retry.backoff.ms":
			err = ms(&c.BackoffMin)
		case "retry.backoff.max.ms":
			err = ms(&c.BackoffMax)
		default:
			return fmt.Errorf("kafka sink %s: unknown producer setting %q (see docs/sinks.md, Producer settings)", c.Name, k)
		}
		if err != nil {
			return fmt.Errorf("kafka sink %s: %w", c.Name, err)
		}
	}
	return nil
}

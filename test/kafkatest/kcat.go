package kafkatest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
)

// KcatRecord is one record as Debian's kcat (librdkafka) reads it with -J.
type KcatRecord struct {
	Topic     string   `json:"topic"`
	Partition int32    `json:"partition"`
	Offset    int64    `json:"offset"`
	Key       *string  `json:"key"`     // nil: no key
	Payload   *string  `json:"payload"` // nil: tombstone
	Headers   []string `json:"headers"` // name, value, name, value, ...
}

// Header returns the value of the first header named key.
func (r KcatRecord) Header(key string) (string, bool) {
	for i := 0; i+1 < len(r.Headers); i += 2 {
		if r.Headers[i] == key {
			return r.Headers[i+1], true
		}
	}
	return "", false
}

// KcatReadAll reads every record of topic with kcat, an independent client
// (`kcat -b addr -C -t topic -o beginning -e -J`), in kcat's order
// (partition by partition). It needs the kcat binary (apt-get install -y
// kcat) and a cluster without TLS or SASL.
func (c *Cluster) KcatReadAll(ctx context.Context, topic string) ([]KcatRecord, error) {
	if c.o.serverTLS != nil || c.o.saslMech != "" {
		return nil, errors.New("kafkatest: KcatReadAll supports only plaintext clusters without SASL")
	}
	if _, err := exec.LookPath("kcat"); err != nil {
		return nil, fmt.Errorf("kafkatest: kcat is not installed (apt-get install -y kcat): %w", err)
	}
	cmd := exec.CommandContext(ctx, "kcat", "-b", c.Addr(), "-C", "-t", topic, "-o", "beginning", "-e", "-J", "-q")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("kafkatest: kcat: %w: %s", err, stderr.String())
	}
	var recs []KcatRecord
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 64<<20)
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var r KcatRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return recs, fmt.Errorf("kafkatest: kcat output line %q: %w", sc.Text(), err)
		}
		recs = append(recs, r)
	}
	return recs, sc.Err()
}

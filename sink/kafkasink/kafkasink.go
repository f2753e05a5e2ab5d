// Package kafkasink is feedcdc's Kafka sink, built on segmentio/kafka-go's
// Writer.
//
// Invariants:
//   - One topic per feed from a template ("{prefix}.{feed}" by default); a
//     record may name its own topic (raw streams). The key is the item's
//     identity and partitioning hashes the key (murmur2, like the Java
//     client), so all versions of one item land on one partition in order.
//   - A record is OK only after the broker acknowledged it with the
//     configured acks (all by default). A record bigger than the size limit
//     is Rejected alone, before sending; if the broker still answers
//     MESSAGE_TOO_LARGE for a batch, its records are re-sent one by one so
//     only the offending one is Rejected. Every other failure (broker down,
//     timeouts, unknown topic, authorisation) is Retryable.
//   - Send never blocks past its context or write_timeout, whichever ends
//     first, even while the broker is down.
//   - Per-key order holds across partial failures: after the first record
//     of a key that failed in a Send, every later record of that key is
//     reported Retryable too (even if the broker stored it), so a retry
//     resends them in order; the price is a duplicate, never a reordering.
//   - Records of different topics are written independently, so a missing
//     or failing topic does not hold back the others.
//   - The sink has its own kafka-go Transport (no metadata shared with other
//     writers) and never falls back from TLS/SASL to plaintext.
package kafkasink

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	kafka "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/compress"
	ksnappy "github.com/segmentio/kafka-go/compress/snappy"
	kplain "github.com/segmentio/kafka-go/sasl/plain"

	"github.com/feedcdc/feedcdc/sink"
)

// Config configures a Kafka sink. Field names follow config.yaml's
// sinks.<name>.kafka section.
type Config struct {
	Name              string        // sink name (reasons, logs)
	Brokers           []string      // brokers: bootstrap host:port list (required)
	ClientID          string        // client_id; default "feedcdc"
	TopicPrefix       string        // topic_prefix: value of {prefix}
	TopicTemplate     string        // topic_template; default "{prefix}.{feed}"; {prefix} {feed} {name}
	ConnectorName     string        // value of {name}
	Compression       string        // compression: none|gzip|snappy|lz4|zstd; default none
	Acks              string        // acks: all|one|none; default all
	BatchSize         int           // batch_size: messages per produce request; default 1000
	BatchBytes        int64         // batch_bytes: bytes per produce request; default 1 MiB
	Linger            time.Duration // linger: wait to fill a batch; default 0 (send at once)
	WriteTimeout      time.Duration // write_timeout: bound of one Send; default 30 s
	CreateTopics      bool          // create_topics: create missing topics on first use
	Partitions        int           // partitions of created topics; default 3
	ReplicationFactor int           // replication_factor of created topics; -1 = broker default
	Compact           bool          // compact: create entity-feed topics with cleanup.policy=compact
	TopicConfigs      map[string]string
	MaxMessageBytes   int64         // max_message_bytes: largest record; default 1,000,000
	MaxAttempts       int           // max_attempts inside kafka-go per batch; default 3
	MetadataTTL       time.Duration // metadata_ttl: metadata refresh interval; default 2 s
	BackoffMin        time.Duration // first wait before kafka-go retries a batch; default 100 ms
	BackoffMax        time.Duration // longest wait between those retries; default 1 s
	// Producer holds producer settings named like the Java client's
	// (linger.ms, batch.size, ...; producer.go), applied over the fields
	// above.
	Producer map[string]string
	TLS      TLSConfig
	SASL     SASLConfig
	Logger   *slog.Logger
}

// TLSConfig is the tls section. Config, when set, is used as is (tests,
// embedding); otherwise the files are loaded.
type TLSConfig struct {
	Enabled bool
	sink.TLSFiles
	Config *tls.Config
}

// SASLConfig is the sasl section. The password is taken from Password,
// else from the environment variable PasswordEnv, else from PasswordFile.
type SASLConfig struct {
	Mechanism    string // "", PLAIN, SCRAM-SHA-256, SCRAM-SHA-512
	User         string
	Password     string
	PasswordEnv  string
	PasswordFile string
}

// Sink is a Kafka sink. It is safe for concurrent use.
type Sink struct {
	cfg       Config
	log       *slog.Logger
	transport *kafka.Transport
	writer    *kafka.Writer
	client    *kafka.Client
	maxRecord int64

	topics sync.Map // topicKey -> resolved topic
	health sink.Health
	// warnedBatch: the broker refusing a whole batch as too large was
	// logged (once per sink). fit: the request size in bytes the broker
	// was seen to accept after refusing a bigger one (0: none refused).
	warnedBatch atomic.Bool
	fit         atomic.Int64

	mu      sync.Mutex
	ensured map[string]bool // topics known to exist
	closed  bool
}

var _ sink.Sink = (*Sink)(nil)

func (c *Config) defaults() error {
	if c.Name == "" {
		c.Name = "kafka"
	}
	if len(c.Brokers) == 0 {
		return fmt.Errorf("kafka sink %s: brokers is empty; list at least one bootstrap broker as host:port", c.Name)
	}
	for _, b := range c.Brokers {
		if _, _, err := net.SplitHostPort(b); err != nil {
			return fmt.Errorf("kafka sink %s: broker %q is not host:port: %v", c.Name, b, err)
		}
	}
	if c.ClientID == "" {
		c.ClientID = "feedcdc"
	}
	if c.TopicTemplate == "" {
		c.TopicTemplate = "{prefix}.{feed}"
	}
	if c.TopicPrefix == "" && strings.Contains(c.TopicTemplate, "{prefix}") {
		c.TopicPrefix = "feedcdc"
	}
	if c.BatchSize <= 0 {
		c.BatchSize = 1000
	}
	if c.BatchBytes <= 0 {
		c.BatchBytes = 1 << 20
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 30 * time.Second
	}
	if c.Partitions <= 0 {
		c.Partitions = 3
	}
	if c.ReplicationFactor == 0 {
		c.ReplicationFactor = -1
	}
	if c.MaxMessageBytes <= 0 {
		c.MaxMessageBytes = 1_000_000
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 3
	}
	if c.MetadataTTL <= 0 {
		c.MetadataTTL = 2 * time.Second
	}
	if c.BackoffMin <= 0 {
		c.BackoffMin = 100 * time.Millisecond
	}
	if c.BackoffMax <= 0 {
		c.BackoffMax = time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// init makes kafka-go's snappy codec encode with s2's fast mode. kafka-go
// keeps its codecs in a process-wide table, and its snappy codec encodes
// with s2's "better" mode unless told otherwise, which on a first start of
// the large profile cost the connector more CPU than lz4. The fast mode
// made Kafka with snappy the cheapest way to a broker on the same machine
// (1.07-1.25x the file sink's time over six runs; without compression
// 1.22-1.32x, lz4 1.26x; docs/benchmarks.md, stops 30 and 31). Set once
// before any writer exists; decoding is the same for every mode.
func init() { compress.SnappyCodec.Compression = ksnappy.FasterCompression }

func compression(name string) (kafka.Compression, error) {
	switch strings.ToLower(name) {
	case "", "none":
		return 0, nil
	case "gzip":
		return kafka.Gzip, nil
	case "snappy":
		return kafka.Snappy, nil
	case "lz4":
		return kafka.Lz4, nil
	case "zstd":
		return kafka.Zstd, nil
	}
	return 0, fmt.Errorf("unknown compression %q: use none, gzip, snappy, lz4 or zstd", name)
}

func acks(name string) (kafka.RequiredAcks, error) {
	switch strings.ToLower(name) {
	case "", "all", "-1":
		return kafka.RequireAll, nil
	case "one", "1":
		return kafka.RequireOne, nil
	case "none", "0":
		return kafka.RequireNone, nil
	}
	return 0, fmt.Errorf("unknown acks %q: use all, one or none", name)
}

// New builds the sink. It does not connect: the first Send (or
// EnsureTopics) does, so a broker that is down at start only makes records
// Retryable.
func New(cfg Config) (*Sink, error) {
	if err := cfg.applyProducer(); err != nil {
		return nil, err
	}
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	comp, err := compression(cfg.Compression)
	if err != nil {
		return nil, fmt.Errorf("kafka sink %s: %w", cfg.Name, err)
	}
	ack, err := acks(cfg.Acks)
	if err != nil {
		return nil, fmt.Errorf("kafka sink %s: %w", cfg.Name, err)
	}
	tr := &kafka.Transport{
		ClientID:    cfg.ClientID,
		DialTimeout: min(10*time.Second, cfg.WriteTimeout),
		MetadataTTL: cfg.MetadataTTL,
	}
	if cfg.TLS.Enabled || cfg.TLS.Config != nil {
		tc := cfg.TLS.Config
		if tc == nil {
			if tc, err = cfg.TLS.Build(); err != nil {
				return nil, fmt.Errorf("kafka sink %s: %w", cfg.Name, err)
			}
		}
		if tc.InsecureSkipVerify {
			cfg.Logger.Warn("kafka sink: TLS server certificate verification is OFF (insecure_skip_verify); use only for testing", "sink", cfg.Name)
		}
		tr.TLS = tc
	}
	if cfg.SASL.Mechanism != "" {
		mech, err := saslMechanism(cfg.SASL)
		if err != nil {
			return nil, fmt.Errorf("kafka sink %s: %w", cfg.Name, err)
		}
		tr.SASL = mech
		if tr.TLS == nil {
			cfg.Logger.Warn("kafka sink: SASL without TLS sends credentials (PLAIN) or a SCRAM exchange in clear text", "sink", cfg.Name, "mechanism", cfg.SASL.Mechanism)
		}
	}
	maxRecord := cfg.MaxMessageBytes
	if cfg.BatchBytes < maxRecord {
		// kafka-go refuses a whole WriteMessages call when one message is
		// bigger than BatchBytes, so that is also a per-record limit.
		maxRecord = cfg.BatchBytes
	}
	s := &Sink{
		cfg:       cfg,
		log:       cfg.Logger.With("sink", cfg.Name),
		transport: tr,
		maxRecord: maxRecord,
		ensured:   map[string]bool{},
	}
	s.writer = &kafka.Writer{
		Addr:            kafka.TCP(cfg.Brokers...),
		Balancer:        &kafka.Murmur2Balancer{},
		MaxAttempts:     cfg.MaxAttempts,
		WriteBackoffMin: cfg.BackoffMin,
		WriteBackoffMax: cfg.BackoffMax,
		BatchSize:       cfg.BatchSize,
		BatchBytes:      cfg.BatchBytes,
		BatchTimeout:    batchTimeout(cfg.Linger),
		ReadTimeout:     cfg.WriteTimeout,
		WriteTimeout:    cfg.WriteTimeout,
		RequiredAcks:    ack,
		Compression:     comp,
		Transport:       newPartitionCache(tr, cfg.MetadataTTL),
		ErrorLogger: kafka.LoggerFunc(func(msg string, args ...any) {
			s.log.Debug("kafka-go: " + fmt.Sprintf(msg, args...))
		}),
	}
	s.client = &kafka.Client{Addr: kafka.TCP(cfg.Brokers...), Transport: tr, Timeout: cfg.WriteTimeout}
	return s, nil
}

// Name implements sink.Sink.
func (s *Sink) Name() string { return s.cfg.Name }

// MaxRecordBytes is the largest record (key, value and headers as kafka-go
// counts them) this sink sends; bigger ones are Rejected.
func (s *Sink) MaxRecordBytes() int64 { return s.maxRecord }

// TopicFor returns the topic a record goes to, and whether it comes from the
// sink's feed template (entity feeds, created compacted when compact is on).
func (s *Sink) TopicFor(r *sink.Record) (topic string, fromTemplate bool) {
	fromTemplate = r.Topic == ""
	key := topicKey{r.Topic, r.Feed}
	if !fromTemplate && !strings.Contains(r.Topic, "{") {
		return r.Topic, false
	}
	if t, ok := s.topics.Load(key); ok {
		return t.(string), fromTemplate
	}
	t := r.Topic
	if fromTemplate {
		t = s.cfg.TopicTemplate
	}
	t = strings.NewReplacer("{prefix}", s.cfg.TopicPrefix, "{feed}", r.Feed, "{name}", s.cfg.ConnectorName).Replace(t)
	s.topics.Store(key, t)
	return t, fromTemplate
}

type topicKey struct{ topic, feed string }

// EpochHeader is the record header holding a high-availability leader's
// fencing token (its epoch, decimal; docs/operations.md "High
// availability"), on every record sent with one (sink.WithFencingToken). A
// consumer that keeps, per partition, the highest epoch it has read and
// skips records of a lower one never applies a record that a paused former
// leader had in flight and that landed after its successor's.
const EpochHeader = "epoch"

// Message builds the Kafka message for r: key = identity, value = item JSON
// (nil: tombstone), standard headers (feed, feed_id, feed_hash, op,
// source_position, content-type; empty ones omitted) then r.Headers.
func Message(topic string, r *sink.Record) kafka.Message {
	const contentType = "application/json"
	// One allocation holds every standard header value.
	n := len(r.Feed) + len(r.ID) + len(r.Hash) + len(r.Op) + len(r.Position)
	if r.Value != nil {
		n += len(contentType)
	}
	arena := make([]byte, 0, n)
	hs := make([]kafka.Header, 0, 6+len(r.Headers))
	add := func(k, v string) {
		if v != "" {
			start := len(arena)
			arena = append(arena, v...)
			hs = append(hs, kafka.Header{Key: k, Value: arena[start:len(arena):len(arena)]})
		}
	}
	add("feed", r.Feed)
	add("feed_id", r.ID)
	add("feed_hash", r.Hash)
	add("op", r.Op)
	add("source_position", r.Position)
	if r.Value != nil {
		add("content-type", contentType)
	}
	for _, h := range r.Headers {
		hs = append(hs, kafka.Header{Key: h.Key, Value: h.Value})
	}
	return kafka.Message{Topic: topic, Key: r.KeyOrID(), Value: r.Value, Headers: hs}
}

// batchTimeout is kafka-go's BatchTimeout for a linger. Send hands all of
// its records to the writer at once and waits for them, so the records of
// one Send fill the batches without any wait, and a linger only holds back
// the last, partly filled batch of each partition (feedcdc's exporter
// sends one export at a time, so no other records can join it). 0 sends
// that batch at once: kafka-go reads a BatchTimeout of 0 as one second, so
// it becomes the shortest positive one.
func batchTimeout(linger time.Duration) time.Duration {
	return max(linger, time.Microsecond)
}

// messageSize is kafka-go's own size accounting of a message (the number it
// compares with BatchBytes).
func messageSize(m *kafka.Message) int64 {
	varint := func(n int64) int64 {
		u := uint64((n << 1) ^ (n >> 63))
		l := int64(1)
		for u >= 0x80 {
			u >>= 7
			l++
		}
		return l
	}
	bytesLen := func(b []byte) int64 { return varint(int64(len(b))) + int64(len(b)) }
	n := int64(4+1+1+8) + 4 + int64(len(m.Key)) + 4 + int64(len(m.Value))
	h := varint(int64(len(m.Headers)))
	for i := range m.Headers {
		h += varint(int64(len(m.Headers[i].Key))) + int64(len(m.Headers[i].Key)) + bytesLen(m.Headers[i].Value)
	}
	return n + h
}

// EnsureTopics creates the topics of the given feeds (from the template)
// and raw topics, if create_topics is on and they are missing.
func (s *Sink) EnsureTopics(ctx context.Context, feeds []string, rawTopics []string) error {
	if !s.cfg.CreateTopics {
		return nil
	}
	var errs []error
	for _, f := range feeds {
		t, _ := s.TopicFor(&sink.Record{Feed: f})
		if err := s.ensureTopic(ctx, t, true); err != nil {
			errs = append(errs, err)
		}
	}
	for _, t := range rawTopics {
		t, _ := s.TopicFor(&sink.Record{Topic: t})
		if err := s.ensureTopic(ctx, t, false); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (s *Sink) ensureTopic(ctx context.Context, topic string, entity bool) error {
	s.mu.Lock()
	done := s.ensured[topic]
	s.mu.Unlock()
	if done {
		return nil
	}
	tc := kafka.TopicConfig{Topic: topic, NumPartitions: s.cfg.Partitions, ReplicationFactor: s.cfg.ReplicationFactor}
	cfgs := make(map[string]string, len(s.cfg.TopicConfigs)+1)
	for k, v := range s.cfg.TopicConfigs {
		cfgs[k] = v
	}
	if entity && s.cfg.Compact {
		cfgs["cleanup.policy"] = "compact" // compact wins over topic_configs for entity feeds
	}
	keys := make([]string, 0, len(cfgs))
	for k := range cfgs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		tc.ConfigEntries = append(tc.ConfigEntries, kafka.ConfigEntry{ConfigName: k, ConfigValue: cfgs[k]})
	}
	resp, err := s.client.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{tc}})
	if err != nil {
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	if terr := resp.Errors[topic]; terr != nil && !errors.Is(terr, kafka.TopicAlreadyExists) {
		return fmt.Errorf("create topic %s: %w", topic, terr)
	}
	s.mu.Lock()
	s.ensured[topic] = true
	s.mu.Unlock()
	s.log.Info("kafka topic ready", "topic", topic, "partitions", s.cfg.Partitions, "compact", entity && s.cfg.Compact)
	return nil
}

// Send implements sink.Sink.
func (s *Sink) Send(ctx context.Context, recs []sink.Record) ([]sink.Result, error) {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return nil, errors.New("kafka sink " + s.cfg.Name + " is closed")
	}
	results := make([]sink.Result, len(recs))
	if len(recs) == 0 {
		return results, nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.WriteTimeout)
	defer cancel()

	type group struct {
		entity bool
		idx    []int
		msgs   []kafka.Message
	}
	groups := map[string]*group{}
	var order []string
	var epoch []byte // a high-availability leader's fencing token, as header "epoch"
	if e, ok := sink.FencingToken(ctx); ok {
		epoch = strconv.AppendInt(nil, e, 10)
	}
	for i := range recs {
		topic, entity := s.TopicFor(&recs[i])
		if err := validTopic(topic); err != nil {
			// A configuration problem (template, prefix), not the item's:
			// retryable so that nothing is lost while the config is fixed.
			results[i] = retry(err, "INVALID_TOPIC (fix topic_template/topic_prefix or raw.topic_template)")
			continue
		}
		m := Message(topic, &recs[i])
		if epoch != nil {
			m.Headers = append(m.Headers, kafka.Header{Key: EpochHeader, Value: epoch})
		}
		if n := messageSize(&m); n > s.maxRecord {
			results[i] = reject(fmt.Errorf("record of %d bytes exceeds feedcdc's own limit of %d bytes (sinks.%s.kafka.max_message_bytes, or batch_bytes if lower); raise it if the topic's max.message.bytes allows: %w", n, s.maxRecord, s.cfg.Name, kafka.MessageSizeTooLarge),
				fmt.Sprintf("MESSAGE_TOO_LARGE: %d bytes > feedcdc's limit of %d bytes (sinks.%s.kafka.max_message_bytes)", n, s.maxRecord, s.cfg.Name))
			continue
		}
		g := groups[topic]
		if g == nil {
			g = &group{entity: entity}
			if len(groups) == 0 {
				// Usually a batch has one topic: size for all of it.
				g.idx = make([]int, 0, len(recs)-i)
				g.msgs = make([]kafka.Message, 0, len(recs)-i)
			}
			groups[topic] = g
			order = append(order, topic)
		}
		g.idx = append(g.idx, i)
		g.msgs = append(g.msgs, m)
	}

	var wg sync.WaitGroup
	for _, topic := range order {
		g := groups[topic]
		wg.Add(1)
		go func() {
			defer wg.Done()
			if s.cfg.CreateTopics {
				if err := s.ensureTopic(ctx, topic, g.entity); err != nil {
					for _, i := range g.idx {
						results[i] = retry(err, "CREATE_TOPIC_FAILED")
					}
					return
				}
			}
			res := s.write(ctx, topic, g.msgs)
			for j, i := range g.idx {
				results[i] = res[j]
			}
		}()
	}
	wg.Wait()

	s.health.Observe(results, time.Now())
	s.logIncomplete(recs, results)
	return results, nil
}

// logIncomplete logs the records of one batch that were not delivered:
// one line per feed, topic and reason, with the count, up to three keys
// and the reason (which names the limit hit), never one line per record.
func (s *Sink) logIncomplete(recs []sink.Record, results []sink.Result) {
	type agg struct {
		feed, topic, reason string
		status              int
		n                   int
		keys                []string
	}
	var groups []*agg
	index := map[[3]string]*agg{}
	for i, r := range results {
		if r.Status == sink.StatusOK {
			continue
		}
		topic, _ := s.TopicFor(&recs[i])
		reason := r.Reason
		if j := strings.IndexByte(reason, ':'); j > 0 {
			reason = reason[:j] // the code: one line per kind of failure
		}
		k := [3]string{recs[i].Feed, topic, reason}
		g := index[k]
		if g == nil {
			g = &agg{feed: recs[i].Feed, topic: topic, reason: r.Reason, status: int(r.Status)}
			index[k] = g
			groups = append(groups, g)
		}
		g.n++
		if len(g.keys) < 3 {
			g.keys = append(g.keys, strings.ReplaceAll(string(recs[i].Key), "\x00", "|"))
		}
	}
	for _, g := range groups {
		what := "records failed (retried)"
		if g.status == int(sink.StatusRejected) {
			what = "records rejected (final until the item changes)"
		}
		s.log.Warn("kafka: "+what, "sink", s.cfg.Name, "feed", g.feed, "topic", g.topic, "records", g.n, "of", len(recs),
			"keys", strings.Join(g.keys, ", "), "reason", g.reason)
	}
}

// write sends msgs of one topic and maps kafka-go's outcome to one result
// per message.
func (s *Sink) write(ctx context.Context, topic string, msgs []kafka.Message) []sink.Result {
	res := make([]sink.Result, len(msgs))
	if fit := s.fit.Load(); fit > 0 {
		// The broker refused a batch as too large before: cut the
		// requests to the size it accepted.
		idx := make([]int, len(msgs))
		for i := range idx {
			idx[i] = i
		}
		s.sendChunks(ctx, topic, msgs, idx, res, map[string]bool{}, fit)
		return res
	}
	err := s.writer.WriteMessages(ctx, msgs...)
	if err == nil {
		return res
	}
	var werrs kafka.WriteErrors
	if !errors.As(err, &werrs) || len(werrs) != len(msgs) {
		// Whole-call failure: metadata, unknown topic, timeout, closed.
		r := s.classify(err, topic)
		for i := range res {
			res[i] = r
		}
		return res
	}
	// kafka-go splits one call into several produce requests per
	// partition and sends the later ones even after an earlier one failed.
	// Resending only the failed records would store an older version of a
	// key after a newer one; so every record after a key's first failure
	// is reported Retryable too and resent with it, in order (a duplicate
	// of an acknowledged record, never a reordering).
	broken := map[string]bool{}
	for i, e := range werrs {
		k := string(msgs[i].Key)
		if e != nil {
			broken[k] = true
		} else if broken[k] {
			res[i] = resentForOrder()
		}
	}
	var tooLarge []int
	for i, e := range werrs {
		if e == nil {
			continue
		}
		if isTooLarge(e) {
			tooLarge = append(tooLarge, i)
			continue
		}
		res[i] = s.classify(e, topic)
	}
	// The broker refused whole batches as too large: resend their records
	// in smaller requests, in order. A refused record after a retryable
	// result of its key (another failure, or a record stored after a
	// refused one) waits for that one's resend.
	if len(tooLarge) > 0 {
		blocked := map[string]bool{}
		var resend []int
		for i, e := range werrs {
			k := string(msgs[i].Key)
			switch {
			case isTooLarge(e) && blocked[k]:
				res[i] = resentForOrder()
			case isTooLarge(e):
				resend = append(resend, i)
			case res[i].Status == sink.StatusRetryable:
				blocked[k] = true
			}
		}
		var size int64
		for _, i := range resend {
			size += messageSize(&msgs[i])
		}
		bound := s.cfg.BatchBytes // one record alone: rejected, nothing learned
		if len(resend) > 1 {
			s.warnRefused(topic, size, len(resend))
			bound = s.lowerFit(size / 2)
		}
		s.sendChunks(ctx, topic, msgs, resend, res, map[string]bool{}, bound)
	}
	return res
}

// lowerFit lowers the request size that the broker is known to accept to
// at most n bytes (at least one byte, at most batch_bytes) and returns it. Once a batch was
// refused as too large, every request is cut to this size before kafka-go
// sees it, so that the broker does not refuse one batch after another
// (batch_bytes above the topic's max.message.bytes).
func (s *Sink) lowerFit(n int64) int64 {
	n = max(min(n, s.cfg.BatchBytes), 1)
	for {
		cur := s.fit.Load()
		if cur != 0 && cur <= n {
			return cur
		}
		if s.fit.CompareAndSwap(cur, n) {
			return n
		}
	}
}

// warnRefused logs, once per sink, that the broker refused batches as too
// large, with the remedy.
func (s *Sink) warnRefused(topic string, bytes int64, records int) {
	if s.warnedBatch.CompareAndSwap(false, true) {
		s.log.Warn("kafka: the broker refused a batch as too large; its records are resent in smaller requests, and later requests are cut to the size it accepts. "+
			"Lower sinks."+s.cfg.Name+".kafka.batch_bytes to the topic's max.message.bytes (the broker's message.max.bytes) or below",
			"sink", s.cfg.Name, "topic", topic, "batch_bytes", s.cfg.BatchBytes, "refused_bytes", bytes, "records", records)
	}
}

// sendChunks sends the records idx of msgs, in order, in requests of at
// most bound bytes and batch_size records: one record batch per partition
// each, which the broker stores or refuses whole, so a key's records are
// never stored out of order within one. A request refused as too large
// is sent again in requests of half its size before the next one goes
// (halving ends below the topic's max.message.bytes after a few rounds;
// sending them one per request made a too high batch_bytes more than ten
// times slower); a record refused alone is rejected. failed holds the keys
// with a retryable result here: their later records are reported
// RESENT_FOR_ORDER, so that each is stored again after the one before it.
func (s *Sink) sendChunks(ctx context.Context, topic string, msgs []kafka.Message, idx []int, res []sink.Result, failed map[string]bool, bound int64) {
	for start := 0; start < len(idx); {
		end, size := start, int64(0)
		for end < len(idx) && end-start < s.cfg.BatchSize {
			n := messageSize(&msgs[idx[end]])
			if end > start && size+n > bound {
				break
			}
			size += n
			end++
		}
		s.sendChunk(ctx, topic, msgs, idx[start:end], res, failed)
		start = end
	}
}

func (s *Sink) sendChunk(ctx context.Context, topic string, msgs []kafka.Message, idx []int, res []sink.Result, failed map[string]bool) {
	resent := func(i int) {
		res[i] = resentForOrder()
		failed[string(msgs[i].Key)] = true
	}
	send := idx[:0:0]
	for _, i := range idx {
		if failed[string(msgs[i].Key)] {
			resent(i)
			continue
		}
		send = append(send, i)
	}
	if len(send) == 0 {
		return
	}
	part := make([]kafka.Message, len(send))
	for j, i := range send {
		part[j] = msgs[i]
	}
	err := s.writer.WriteMessages(ctx, part...)
	var werrs kafka.WriteErrors
	if err != nil && (!errors.As(err, &werrs) || len(werrs) != len(part)) {
		r := s.classify(err, topic)
		for _, i := range send {
			res[i] = r
			if r.Status == sink.StatusRetryable {
				failed[string(msgs[i].Key)] = true
			}
		}
		return
	}
	var refused []int
	var refusedErr error
	var size int64
	refusedKey := map[string]bool{}
	for j, i := range send {
		k := string(msgs[i].Key)
		var e error
		if werrs != nil {
			e = werrs[j]
		}
		switch {
		case e == nil && refusedKey[k]:
			resent(i) // stored after a refused record of its key
		case e == nil:
			res[i] = sink.Result{}
		case isTooLarge(e):
			refused, refusedErr = append(refused, i), e
			refusedKey[k] = true
			size += messageSize(&msgs[i])
		default:
			res[i] = s.classify(e, topic)
			if res[i].Status == sink.StatusRetryable {
				failed[k] = true
			}
		}
	}
	switch {
	case len(refused) == 1:
		i := refused[0]
		res[i] = reject(refusedErr, fmt.Sprintf("MESSAGE_TOO_LARGE: the broker refused the record (%d bytes): the topic's max.message.bytes (or the broker's message.max.bytes) is lower than feedcdc's max_message_bytes; raise the topic's limit or lower sinks.%s.kafka.max_message_bytes", messageSize(&msgs[i]), s.cfg.Name))
	case len(refused) > 1:
		s.warnRefused(topic, size, len(refused))
		s.sendChunks(ctx, topic, msgs, refused, res, failed, s.lowerFit(size/2))
	}
}

// validTopic checks Kafka's topic name rules: 1-249 characters of
// [a-zA-Z0-9._-], not "." or "..".
func validTopic(t string) error {
	if t == "" || t == "." || t == ".." || len(t) > 249 {
		return fmt.Errorf("topic name %q is not valid (1-249 characters, not . or ..)", t)
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("topic name %q has character %q; Kafka allows only a-z A-Z 0-9 . _ -", t, c)
		}
	}
	return nil
}

func isTooLarge(err error) bool {
	return errors.Is(err, kafka.MessageSizeTooLarge) || errors.Is(err, kafka.RecordListTooLarge)
}

func reject(err error, reason string) sink.Result {
	return sink.Result{Status: sink.StatusRejected, Err: err, Reason: reason}
}

// resentForOrder is the result of a record sent (or stored) after an
// earlier record of its key failed in the same send: it is sent again
// after that one.
func resentForOrder() sink.Result {
	return retry(errors.New("an earlier record of the same key failed in this send"), "RESENT_FOR_ORDER")
}

func retry(err error, reason string) sink.Result {
	return sink.Result{Status: sink.StatusRetryable, Err: err, Reason: reason + ": " + shorten(err.Error())}
}

func shorten(s string) string {
	if len(s) > 300 {
		return s[:300] + "…"
	}
	return s
}

// classify maps a kafka-go error for a record to a result. Only errors that
// are the record's own fault are Rejected; the rest are Retryable.
func (s *Sink) classify(err error, topic string) sink.Result {
	var ke kafka.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return retry(err, "TIMEOUT")
	case errors.Is(err, context.Canceled):
		return retry(err, "CANCELED")
	case errors.As(err, &ke):
		switch ke {
		case kafka.InvalidRecord:
			return reject(err, "INVALID_RECORD: "+shorten(err.Error()))
		case kafka.UnknownTopicOrPartition:
			return retry(fmt.Errorf("topic %s: %w", topic, err), "UNKNOWN_TOPIC_OR_PARTITION (create the topic or set create_topics: true)")
		case kafka.TopicAuthorizationFailed, kafka.ClusterAuthorizationFailed, kafka.SASLAuthenticationFailed:
			return retry(err, "NOT_AUTHORIZED")
		}
		return retry(err, strings.ToUpper(strings.ReplaceAll(ke.Title(), " ", "_")))
	}
	var cve *tls.CertificateVerificationError
	var rhe tls.RecordHeaderError
	var ae tls.AlertError
	if errors.As(err, &cve) || errors.As(err, &rhe) || errors.As(err, &ae) {
		return retry(err, "TLS")
	}
	if s.closedDuringAuth(err) {
		return retry(s.explainAuth(err), "NETWORK (with SASL "+s.cfg.SASL.Mechanism+", a refused login looks like this: check the sasl user and password)")
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return retry(err, "NETWORK")
	}
	return retry(err, "ERROR")
}

// closedDuringAuth reports whether err is the broker closing the connection
// while SASL is configured: brokers (and kfake) answer refused credentials
// on older SaslAuthenticate versions by closing it, which kafka-go reports
// as a bare EOF.
func (s *Sink) closedDuringAuth(err error) bool {
	return s.cfg.SASL.Mechanism != "" &&
		(errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET))
}

// explainAuth adds to an error that may be a refused SASL login what to
// check, naming the sink's settings (never the password).
func (s *Sink) explainAuth(err error) error {
	if !s.closedDuringAuth(err) {
		return err
	}
	return fmt.Errorf("%w (the broker closed the connection; with SASL %s this usually means it refused the login of user %q: check sinks.%s.kafka.sasl.user and its password or password_file)",
		err, s.cfg.SASL.Mechanism, s.cfg.SASL.User, s.cfg.Name)
}

// Health implements sink.HealthReporter.
func (s *Sink) Health() (bool, string) { return s.health.Health() }

// Ping implements sink.Pinger: it asks the brokers for metadata, which
// needs a working connection, TLS and SASL.
func (s *Sink) Ping(ctx context.Context) error { return s.PingTopics(ctx) }

// PingTopics is Ping that also checks the given topics: with create_topics
// off a missing one is an error.
func (s *Sink) PingTopics(ctx context.Context, topics ...string) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.WriteTimeout)
	defer cancel()
	// A fresh transport: the sink's own one answers metadata from its cache.
	tr := &kafka.Transport{ClientID: s.transport.ClientID, DialTimeout: s.transport.DialTimeout, TLS: s.transport.TLS, SASL: s.transport.SASL}
	defer tr.CloseIdleConnections()
	cl := &kafka.Client{Addr: s.client.Addr, Transport: tr, Timeout: s.cfg.WriteTimeout}
	resp, err := cl.Metadata(ctx, &kafka.MetadataRequest{Topics: topics})
	if err != nil {
		return fmt.Errorf("kafka sink %s: brokers %v: %w", s.cfg.Name, s.cfg.Brokers, s.explainAuth(err))
	}
	if len(resp.Brokers) == 0 {
		return fmt.Errorf("kafka sink %s: brokers %v returned no broker in metadata", s.cfg.Name, s.cfg.Brokers)
	}
	for _, t := range resp.Topics {
		if t.Error != nil && !(s.cfg.CreateTopics && errors.Is(t.Error, kafka.UnknownTopicOrPartition)) {
			return fmt.Errorf("kafka sink %s: topic %s: %w", s.cfg.Name, t.Name, t.Error)
		}
	}
	return nil
}

// Close flushes pending writes and releases connections.
func (s *Sink) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	// kafka-go's Close waits for batches still being retried inside the
	// writer; their records were already reported to the caller (OK or
	// Retryable), so waiting longer than one write timeout is pointless.
	done := make(chan error, 1)
	go func() { done <- s.writer.Close() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(s.cfg.WriteTimeout + 5*time.Second):
		err = errors.New("pending writes did not finish within write_timeout; abandoned (their records were reported retryable)")
	}
	s.transport.CloseIdleConnections()
	if err != nil {
		return fmt.Errorf("kafka sink %s: close: %w", s.cfg.Name, err)
	}
	return nil
}

func saslMechanism(c SASLConfig) (saslMech, error) {
	pass, err := sink.ReadSecret("sasl password", c.Password, c.PasswordEnv, c.PasswordFile)
	if err != nil {
		return nil, err
	}
	if c.User == "" {
		return nil, fmt.Errorf("sasl mechanism %s needs a user", c.Mechanism)
	}
	switch strings.ToUpper(c.Mechanism) {
	case "PLAIN":
		return kplain.Mechanism{Username: c.User, Password: pass}, nil
	case "SCRAM-SHA-256", "SCRAM-SHA-512":
		return newScram(strings.ToUpper(c.Mechanism), c.User, pass), nil
	}
	return nil, fmt.Errorf("unknown sasl mechanism %q: use PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", c.Mechanism)
}

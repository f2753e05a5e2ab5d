// Package kafkatest runs a real Kafka wire-protocol broker (franz-go's kfake)
// on a free loopback port for feedcdc's tests, benchmarks and the embedded
// demo, and reads topics back with an independent client (franz-go kgo), so
// that what feedcdc's kafka-go producer wrote is checked by a different
// implementation.
//
// Invariants:
//   - A Cluster is one kfake broker listening on 127.0.0.1 only, on a port
//     chosen free at start and kept for the cluster's life: Stop and Restart
//     bring the broker down and up again on the same address, so clients see
//     a real outage (connection refused) and then the same broker again.
//   - Unless InMemory is given, the broker persists its log in a data
//     directory, so records written before Stop are still there after
//     Restart. A directory created by this package is removed by Close; one
//     given with WithDataDir is kept.
//   - Start (for tests) closes the cluster at the test's cleanup; New (for any
//     code, such as the demo) leaves closing to the caller.
//   - ReadAll returns every record of a topic that exists at the time of the
//     call, in partition then offset order, with keys, values (nil for a
//     tombstone), headers and timestamps exactly as stored.
package kafkatest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// SASL mechanism names accepted by WithSASL.
const (
	SASLPlain       = "PLAIN"
	SASLScramSHA256 = "SCRAM-SHA-256"
	SASLScramSHA512 = "SCRAM-SHA-512"
)

// Option configures a Cluster.
type Option func(*options)

type options struct {
	serverTLS        *tls.Config
	clientTLS        *tls.Config
	saslMech         string
	saslUser         string
	saslPass         string
	brokerConfigs    map[string]string
	autoCreate       bool
	defaultParts     int
	inMemory         bool
	dataDir          string
	port             int
	extraKfakeOption []kfake.Opt
}

// WithTLS makes the broker listen with TLS using server, and makes the
// package's own clients (ReadAll, CreateTopic) connect with client.
func WithTLS(server, client *tls.Config) Option {
	return func(o *options) { o.serverTLS, o.clientTLS = server, client }
}

// WithSASL enables SASL authentication on the broker with one superuser of
// the given mechanism (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512). The package's
// own clients authenticate as that user.
func WithSASL(mechanism, user, password string) Option {
	return func(o *options) { o.saslMech, o.saslUser, o.saslPass = mechanism, user, password }
}

// WithBrokerConfigs sets broker-level configs, e.g. "message.max.bytes".
func WithBrokerConfigs(cfg map[string]string) Option {
	return func(o *options) {
		if o.brokerConfigs == nil {
			o.brokerConfigs = map[string]string{}
		}
		for k, v := range cfg {
			o.brokerConfigs[k] = v
		}
	}
}

// InMemory keeps the broker's log in memory only: faster (benchmarks), but
// Stop and Restart are then unavailable.
func InMemory() Option { return func(o *options) { o.inMemory = true } }

// WithDataDir persists the broker's log in dir, which is kept after Close
// (the demo uses this to survive its own restarts).
func WithDataDir(dir string) Option { return func(o *options) { o.dataDir = dir } }

// WithPort listens on 127.0.0.1:port instead of a free port chosen at start
// (the demo uses a well-known port); starting fails if the port is taken.
func WithPort(port int) Option { return func(o *options) { o.port = port } }

// WithKfakeOptions passes raw kfake options through (escape hatch), e.g.
// control hooks that fail produce requests.
func WithKfakeOptions(opts ...kfake.Opt) Option {
	return func(o *options) { o.extraKfakeOption = append(o.extraKfakeOption, opts...) }
}

// Cluster is a running (or stopped) single-broker kfake cluster.
type Cluster struct {
	o       options
	port    int
	dataDir string
	ownDir  bool

	mu     sync.Mutex
	kf     *kfake.Cluster // nil while stopped
	closed bool
}

// Start starts a cluster for a test and closes it at the test's cleanup. It
// fails the test if the broker cannot start.
func Start(t testing.TB, opts ...Option) *Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := New(ctx, opts...)
	if err != nil {
		t.Fatalf("kafkatest: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("kafkatest: close: %v", err)
		}
	})
	return c
}

// New starts a cluster; the caller must Close it.
func New(ctx context.Context, opts ...Option) (*Cluster, error) {
	c := &Cluster{}
	for _, opt := range opts {
		opt(&c.o)
	}
	if c.o.saslMech != "" {
		switch c.o.saslMech {
		case SASLPlain, SASLScramSHA256, SASLScramSHA512:
		default:
			return nil, fmt.Errorf("unknown SASL mechanism %q: use PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", c.o.saslMech)
		}
	}
	if !c.o.inMemory {
		if c.o.dataDir != "" {
			c.dataDir = c.o.dataDir
		} else {
			dir, err := os.MkdirTemp("", "kafkatest-")
			if err != nil {
				return nil, fmt.Errorf("create broker data directory: %w", err)
			}
			c.dataDir, c.ownDir = dir, true
		}
	}
	// A free port can be taken by someone else between our probe and the
	// broker's bind; try a few.
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port := c.o.port
		if port == 0 {
			p, err := freePort()
			if err != nil {
				lastErr = err
				continue
			}
			port = p
		}
		c.port = port
		kf, err := kfake.NewCluster(c.kfakeOpts()...)
		if err != nil {
			lastErr = err
			if ctx.Err() != nil || c.o.port != 0 {
				break
			}
			continue
		}
		c.kf = kf
		return c, nil
	}
	c.removeDir()
	return nil, fmt.Errorf("start kfake broker on 127.0.0.1: %w", lastErr)
}

func (c *Cluster) kfakeOpts() []kfake.Opt {
	o := []kfake.Opt{kfake.Ports(c.port), kfake.ClusterID("feedcdc-kafkatest")}
	if c.o.serverTLS != nil {
		o = append(o, kfake.TLS(c.o.serverTLS))
	}
	if c.o.saslMech != "" {
		o = append(o, kfake.EnableSASL(), kfake.Superuser(c.o.saslMech, c.o.saslUser, c.o.saslPass))
	}
	if len(c.o.brokerConfigs) > 0 {
		o = append(o, kfake.BrokerConfigs(c.o.brokerConfigs))
	}
	if c.o.autoCreate {
		o = append(o, kfake.AllowAutoTopicCreation())
		if c.o.defaultParts > 0 {
			o = append(o, kfake.DefaultNumPartitions(c.o.defaultParts))
		}
	}
	if c.dataDir != "" {
		o = append(o, kfake.DataDir(c.dataDir))
	}
	return append(o, c.o.extraKfakeOption...)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free loopback port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Addr is the broker's "127.0.0.1:port" (the seed broker for clients).
func (c *Cluster) Addr() string { return fmt.Sprintf("127.0.0.1:%d", c.port) }

// Port is the broker's TCP port.
func (c *Cluster) Port() int { return c.port }

// Kfake returns the running kfake cluster (nil while stopped), for control
// functions such as Compact.
func (c *Cluster) Kfake() *kfake.Cluster {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.kf
}

// Compact runs log compaction on every compacted topic now (kfake otherwise
// compacts only on its hourly ticker). The newest batch of each partition is
// never compacted, like Kafka's active segment.
func (c *Cluster) Compact() {
	if kf := c.Kfake(); kf != nil {
		kf.Compact()
	}
}

// Stop brings the broker down, closing every client connection; new
// connections are refused until Restart. The log is kept. It takes a few
// seconds (kfake flushes its state).
func (c *Cluster) Stop() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return errors.New("kafkatest: cluster is closed")
	}
	if c.dataDir == "" {
		return errors.New("kafkatest: Stop needs a persistent cluster (do not pass InMemory)")
	}
	if c.kf == nil {
		return nil
	}
	c.kf.Close()
	c.kf = nil
	return nil
}

// Restart brings a stopped broker back on the same port with its log.
func (c *Cluster) Restart(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return errors.New("kafkatest: cluster is closed")
	}
	if c.kf != nil {
		return nil
	}
	var lastErr error
	for {
		kf, err := kfake.NewCluster(c.kfakeOpts()...)
		if err == nil {
			c.kf = kf
			return nil
		}
		lastErr = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("restart kfake broker on %s: %w (last error: %v)", c.Addr(), ctx.Err(), lastErr)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Close stops the broker for good and removes a data directory this package
// created. Calling it twice is harmless.
func (c *Cluster) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	if c.kf != nil {
		c.kf.Close()
		c.kf = nil
	}
	return c.removeDir()
}

func (c *Cluster) removeDir() error {
	if c.ownDir && c.dataDir != "" {
		if err := os.RemoveAll(c.dataDir); err != nil {
			return fmt.Errorf("remove broker data directory: %w", err)
		}
	}
	return nil
}

// ClientOptions are the kgo options that reach this broker (seed broker,
// TLS, SASL). Callers may append their own.
func (c *Cluster) ClientOptions() []kgo.Opt {
	o := []kgo.Opt{kgo.SeedBrokers(c.Addr())}
	if c.o.clientTLS != nil {
		o = append(o, kgo.DialTLSConfig(c.o.clientTLS.Clone()))
	}
	if m := c.saslMechanism(); m != nil {
		o = append(o, kgo.SASL(m))
	}
	return o
}

func (c *Cluster) saslMechanism() sasl.Mechanism {
	a := scram.Auth{User: c.o.saslUser, Pass: c.o.saslPass}
	switch c.o.saslMech {
	case SASLPlain:
		return plain.Auth{User: c.o.saslUser, Pass: c.o.saslPass}.AsMechanism()
	case SASLScramSHA256:
		return a.AsSha256Mechanism()
	case SASLScramSHA512:
		return a.AsSha512Mechanism()
	}
	return nil
}

// CreateTopic creates a topic with the given partitions (0 means 1) and
// topic configs (e.g. "cleanup.policy": "compact").
func (c *Cluster) CreateTopic(ctx context.Context, name string, partitions int, configs map[string]string) error {
	if partitions <= 0 {
		partitions = 1
	}
	cl, err := kgo.NewClient(c.ClientOptions()...)
	if err != nil {
		return fmt.Errorf("kafkatest: client: %w", err)
	}
	defer cl.Close()
	cfg := make(map[string]*string, len(configs))
	for k, v := range configs {
		cfg[k] = &v
	}
	resp, err := kadm.NewClient(cl).CreateTopic(ctx, int32(partitions), -1, cfg, name)
	if err != nil {
		return fmt.Errorf("kafkatest: create topic %q: %w", name, err)
	}
	if resp.Err != nil {
		return fmt.Errorf("kafkatest: create topic %q: %w", name, resp.Err)
	}
	return nil
}

// TopicConfig returns a topic's configs as the broker describes them.
func (c *Cluster) TopicConfig(ctx context.Context, topic string) (map[string]string, error) {
	cl, err := kgo.NewClient(c.ClientOptions()...)
	if err != nil {
		return nil, fmt.Errorf("kafkatest: client: %w", err)
	}
	defer cl.Close()
	rcs, err := kadm.NewClient(cl).DescribeTopicConfigs(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("kafkatest: describe topic %q: %w", topic, err)
	}
	rc, err := rcs.On(topic, nil)
	if err != nil {
		return nil, fmt.Errorf("kafkatest: describe topic %q: %w", topic, err)
	}
	if rc.Err != nil {
		return nil, fmt.Errorf("kafkatest: describe topic %q: %w", topic, rc.Err)
	}
	out := make(map[string]string, len(rc.Configs))
	for _, cfg := range rc.Configs {
		out[cfg.Key] = cfg.MaybeValue()
	}
	return out, nil
}

// Partitions returns the number of partitions of a topic.
func (c *Cluster) Partitions(ctx context.Context, topic string) (int, error) {
	cl, err := kgo.NewClient(c.ClientOptions()...)
	if err != nil {
		return 0, fmt.Errorf("kafkatest: client: %w", err)
	}
	defer cl.Close()
	tds, err := kadm.NewClient(cl).ListTopics(ctx, topic)
	if err != nil {
		return 0, fmt.Errorf("kafkatest: list topic %q: %w", topic, err)
	}
	td, ok := tds[topic]
	if !ok {
		return 0, fmt.Errorf("kafkatest: topic %q not found", topic)
	}
	if td.Err != nil {
		return 0, fmt.Errorf("kafkatest: topic %q: %w", topic, td.Err)
	}
	return len(td.Partitions), nil
}

// SetPartitions grows topic to total partitions (Kafka cannot shrink one).
func (c *Cluster) SetPartitions(ctx context.Context, topic string, total int) error {
	cl, err := kgo.NewClient(c.ClientOptions()...)
	if err != nil {
		return fmt.Errorf("kafkatest: client: %w", err)
	}
	defer cl.Close()
	rs, err := kadm.NewClient(cl).UpdatePartitions(ctx, total, topic)
	if err != nil {
		return fmt.Errorf("kafkatest: set partitions of %q to %d: %w", topic, total, err)
	}
	if r, ok := rs[topic]; ok && r.Err != nil {
		return fmt.Errorf("kafkatest: set partitions of %q to %d: %w", topic, total, r.Err)
	}
	return nil
}

// Header is one record header.
type Header struct {
	Key   string
	Value []byte
}

// Record is one stored record as read back by kgo.
type Record struct {
	Topic     string
	Partition int32
	Offset    int64
	Key       []byte
	Value     []byte // nil for a tombstone
	Headers   []Header
	Timestamp time.Time
}

// Header returns the value of the first header named key.
func (r Record) Header(key string) (string, bool) {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value), true
		}
	}
	return "", false
}

// ReadAll reads every record of topic from the start of each partition to
// its end offset at the time of the call.
func (c *Cluster) ReadAll(ctx context.Context, topic string) ([]Record, error) {
	admCl, err := kgo.NewClient(c.ClientOptions()...)
	if err != nil {
		return nil, fmt.Errorf("kafkatest: client: %w", err)
	}
	adm := kadm.NewClient(admCl)
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err != nil {
		admCl.Close()
		return nil, fmt.Errorf("kafkatest: list start offsets of %q: %w", topic, err)
	}
	ends, err := adm.ListEndOffsets(ctx, topic)
	admCl.Close()
	if err != nil {
		return nil, fmt.Errorf("kafkatest: list end offsets of %q: %w", topic, err)
	}
	if err := ends.Error(); err != nil {
		return nil, fmt.Errorf("kafkatest: end offsets of %q: %w", topic, err)
	}
	want := map[int32]int64{} // partition -> last offset to read (end-1)
	from := map[int32]kgo.Offset{}
	ends.Each(func(o kadm.ListedOffset) {
		start := int64(0)
		if s, ok := starts.Lookup(topic, o.Partition); ok && s.Err == nil {
			start = s.Offset
		}
		if o.Offset > start {
			want[o.Partition] = o.Offset - 1
			from[o.Partition] = kgo.NewOffset().At(start)
		}
	})
	if len(want) == 0 {
		return nil, nil
	}
	cl, err := kgo.NewClient(append(c.ClientOptions(),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: from}),
		kgo.FetchMaxWait(100*time.Millisecond),
	)...)
	if err != nil {
		return nil, fmt.Errorf("kafkatest: consumer: %w", err)
	}
	defer cl.Close()
	var out []Record
	for len(want) > 0 {
		fetches := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return out, fmt.Errorf("kafkatest: read %q: %w (%d records so far, partitions left %v)", topic, err, len(out), want)
		}
		var ferr error
		fetches.EachError(func(t string, p int32, err error) {
			if ferr == nil {
				ferr = fmt.Errorf("kafkatest: fetch %s[%d]: %w", t, p, err)
			}
		})
		if ferr != nil {
			return out, ferr
		}
		fetches.EachRecord(func(r *kgo.Record) {
			last, ok := want[r.Partition]
			if !ok || r.Offset > last {
				return
			}
			rec := Record{
				Topic: r.Topic, Partition: r.Partition, Offset: r.Offset,
				Key: r.Key, Value: r.Value, Timestamp: r.Timestamp,
			}
			for _, h := range r.Headers {
				rec.Headers = append(rec.Headers, Header{Key: h.Key, Value: h.Value})
			}
			out = append(out, rec)
			if r.Offset == last {
				delete(want, r.Partition)
			}
		})
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Partition != out[j].Partition {
			return out[i].Partition < out[j].Partition
		}
		return out[i].Offset < out[j].Offset
	})
	return out, nil
}

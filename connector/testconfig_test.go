package connector

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/feedcdc/feedcdc/config"
	"github.com/feedcdc/feedcdc/test/mysqltest"
)

// connectorYAML is the config.yaml of a connector under test: the sections
// every test shares (the private server on loopback as the least-privilege
// user, the state file, the feeds database, no telemetry listener, no
// dashboard) plus what a test sets. Source and Feeds hold further "key:
// value" lines of those sections (a Source key replaces the default of the
// same key); Sections holds further top-level YAML (raw:, resync:, sinks:,
// log:, ...). Without a sinks: section the connector gets one file sink
// writing into a fresh temporary folder (never the default relative
// feedcdc-data/out, which would land in the package directory).
type connectorYAML struct {
	Name      string            // connector name; the password comes from NAME_SOURCE_PASSWORD
	Server    *mysqltest.Server // default: the package's srv
	ServerID  int64             // default: a random replica server_id
	Source    []string
	StatePath string // default: state.db in a fresh temporary folder
	Database  string
	Feeds     []string
	Sections  string
}

var sourceDefaults = []string{"heartbeat: 1s", "read_timeout: 10s", "start_position: current"}

func (c *connectorYAML) server() *mysqltest.Server {
	if c.Server == nil {
		return srv
	}
	return c.Server
}

func (c *connectorYAML) passwordEnv() string {
	return strings.ToUpper(c.Name) + "_SOURCE_PASSWORD"
}

// yaml renders the configuration.
func (c *connectorYAML) yaml(t testing.TB) string {
	s := c.server()
	if c.ServerID == 0 {
		c.ServerID = 5_000_000 + rand.Int64N(4_000_000)
	}
	if c.StatePath == "" {
		c.StatePath = filepath.Join(t.TempDir(), "state.db")
	}
	var b strings.Builder
	fmt.Fprintf(&b, "name: %s\nsource:\n  host: 127.0.0.1\n  port: %d\n  user: %s\n  password_env: %s\n  server_id: %d\n",
		c.Name, s.Port, s.CDCUser, c.passwordEnv(), c.ServerID)
	for _, d := range sourceDefaults {
		key, _, _ := strings.Cut(d, ":")
		overridden := false
		for _, l := range c.Source {
			if k, _, _ := strings.Cut(l, ":"); k == key {
				overridden = true
			}
		}
		if !overridden {
			b.WriteString("  " + d + "\n")
		}
	}
	for _, l := range c.Source {
		b.WriteString("  " + l + "\n")
	}
	fmt.Fprintf(&b, "state:\n  path: %s\nfeeds:\n  database: %s\n", c.StatePath, c.Database)
	for _, l := range c.Feeds {
		b.WriteString("  " + l + "\n")
	}
	b.WriteString("telemetry: {listen: \"\"}\ndashboard: {enabled: false}\n")
	b.WriteString(c.Sections)
	if !strings.HasPrefix(c.Sections, "sinks:") && !strings.Contains(c.Sections, "\nsinks:") {
		fmt.Fprintf(&b, "sinks: {file: {type: file, file: {dir: %q}}}\n", filepath.Join(t.TempDir(), "out"))
	}
	return b.String()
}

// env is the environment the connector reads its source password from,
// plus extra NAME=value pairs.
func (c *connectorYAML) env(extra ...string) []string {
	return append([]string{c.passwordEnv() + "=" + c.server().CDCPassword}, extra...)
}

// load parses the configuration as the connector would.
func (c *connectorYAML) load(t testing.TB, extraEnv ...string) *config.Config {
	t.Helper()
	y := c.yaml(t)
	cfg, err := config.LoadBytes([]byte(y), c.Name, c.env(extraEnv...))
	if err != nil {
		t.Fatalf("config: %v\n%s", err, y)
	}
	return cfg
}

// write stores the configuration as dir/config.yaml (for a connector child
// process), checks that it loads, and returns its path.
func (c *connectorYAML) write(t testing.TB, dir string) string {
	t.Helper()
	y := c.yaml(t)
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := config.Load(path, c.env()); err != nil {
		t.Fatalf("config: %v\n%s", err, y)
	}
	return path
}

// noFeeds disables the four entity feeds (raw-stream tests).
var noFeeds = []string{"products: {enabled: false}", "productAttributes: {enabled: false}",
	"variants: {enabled: false}", "productOverrides: {enabled: false}"}

// unthrottledResync lets full syncs and verifies run at full speed without
// watching replica lag (the test server is no replica).
const unthrottledResync = "resync: {max_replica_lag: 0s, rows_per_second: 0}\nverify: {max_replica_lag: 0s, rows_per_second: 0}\n"

// kafkaSink is a sinks: section with one Kafka sink named kafka (one
// partition), plus further "key: value" lines of its kafka: block.
func kafkaSink(addr, prefix string, more ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "sinks:\n  kafka:\n    type: kafka\n    kafka:\n      brokers: [\"%s\"]\n      topic_prefix: %s\n      partitions: 1\n", addr, prefix)
	for _, l := range more {
		b.WriteString("      " + l + "\n")
	}
	return b.String()
}

// yamlLines splits an indented YAML body into lines without the first
// level's two-space indentation (deeper levels keep the rest of theirs).
func yamlLines(body string) []string {
	var out []string
	for _, l := range strings.Split(strings.TrimRight(body, "\n"), "\n") {
		if strings.TrimSpace(l) == "" {
			continue
		}
		out = append(out, strings.TrimPrefix(l, "  "))
	}
	return out
}

// openConnector opens a connector from cfg; it is closed when the test ends
// (after startRun's stop, which was registered later).
func openConnector(t testing.TB, cfg *config.Config, oo OpenOptions) *Connector {
	t.Helper()
	c, err := Open(context.Background(), cfg, oo)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// startRun runs c until stop is called or the test ends. runErr receives
// Run's error should Run return on its own (a test may select on it).
func startRun(t testing.TB, c *Connector, ro RunOptions) (runErr <-chan error, stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		errc <- c.Run(ctx, ro)
		close(done)
	}()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return errc, stop
}

// waitFullSyncs waits until the full sync of every enabled feed finished
// (a first start syncs them all).
func waitFullSyncs(t testing.TB, c *Connector) {
	t.Helper()
	for _, f := range c.Config.EnabledFeeds() {
		for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
			if pr, ok, _ := c.Store.Progress(context.Background(), f); ok && pr.Finished() {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("full sync of %s not finished", f)
			}
		}
	}
}

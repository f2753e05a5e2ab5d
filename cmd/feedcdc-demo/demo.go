// Command feedcdc-demo runs everything on this machine in one command: a
// private MariaDB with a small Magento catalog, an embedded Kafka-protocol
// broker (kfake), the connector on embedded defaults and a live workload.
//
// It is a separate command because it links the test infrastructure
// (test/mysqltest, test/catalog, test/kafkatest with kfake, and through them
// the testing package) and may run apt-get: the deployable feedcdc binary
// must not. `feedcdc demo` only says how to run this one.
//
// Invariants:
//   - Everything it starts (mariadbd, broker, connector) is stopped when it
//     returns, and what it created is removed unless --keep is given: the
//     whole --dir when the demo created it, else only the entries it added.
//   - A stop request never kills it before that cleanup: SIGINT (Ctrl-C),
//     SIGTERM and SIGHUP cancel its context, and so does its stdout being
//     closed (`feedcdc-demo | head`, a `tee` killed by Ctrl-C): SIGPIPE is
//     caught, a write error on stdout or a pipe whose reader is gone stops
//     the demo, and later output is dropped.
//   - Exit code: 0 when it stopped as asked (--duration elapsed, a signal,
//     stdout closed) and cleaned up; 1 when it failed (the reason on
//     stderr) or could not remove what it created.
package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/feedcdc/feedcdc/change"
	"github.com/feedcdc/feedcdc/config"
	"github.com/feedcdc/feedcdc/connector"
	"github.com/feedcdc/feedcdc/internal/runner"
	"github.com/feedcdc/feedcdc/sink"
	"github.com/feedcdc/feedcdc/sink/kafkasink"
	"github.com/feedcdc/feedcdc/telemetry"
	"github.com/feedcdc/feedcdc/test/catalog"
	"github.com/feedcdc/feedcdc/test/kafkatest"
	"github.com/feedcdc/feedcdc/test/mysqltest"
)

type demoOptions struct {
	dir      string
	profile  string
	rate     float64
	duration time.Duration
	keep     bool
	noApt    bool
}

// errStdoutClosed is the stop cause when nobody reads the demo's output
// any more.
var errStdoutClosed = errors.New("stdout closed")

func main() {
	ctx, stop := context.WithCancelCause(context.Background())
	sigs := make(chan os.Signal, 4)
	// SIGPIPE is caught so that a write to a closed stdout returns EPIPE
	// (seen by stopWriter) instead of killing the process before cleanup.
	// The signal itself is not a stop request: a broken network connection
	// raises it too.
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGPIPE)
	go func() {
		for sig := range sigs {
			if sig != syscall.SIGPIPE {
				stop(fmt.Errorf("%v", sig))
			}
		}
	}()
	stdout := newStopWriter(os.Stdout, func() { stop(errStdoutClosed) })
	go watchStdout(ctx, os.Stdout, func() { stop(errStdoutClosed) })
	code := Main(ctx, os.Args[1:], stdout, os.Stderr)
	signal.Stop(sigs)
	os.Exit(code)
}

// Main runs the demo with the given arguments and streams and returns the
// process exit code (tests call it directly).
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd := newDemo(stdout)
	cmd.SetArgs(args)
	cmd.SetOut(stdout)
	cmd.SetErr(stderr)
	if err := cmd.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(stderr, "feedcdc-demo:", err)
		return 1
	}
	return 0
}

func newDemo(stdout io.Writer) *cobra.Command {
	o := demoOptions{}
	cmd := &cobra.Command{
		Use:   "feedcdc-demo",
		Short: "Run everything on this machine: MariaDB, a catalog, Kafka, the connector and a live workload",
		Long: `One command for a first look. It makes sure MariaDB is installed (Debian's
mariadb-server, installed with apt-get when missing and running as root),
starts a private mariadbd under --dir (binlog on, loopback only), loads the
small Magento catalog profile, starts an embedded Kafka-protocol broker,
runs the connector on embedded defaults (bbolt state; Kafka and JSON Lines
file sinks), performs the full sync, then applies a live workload and shows
what flows: counts per feed, the Kafka topics with a kcat command line,
raw-stream record counts, a sample item, and where the dashboard and
metrics are.

Ctrl-C, SIGTERM, SIGHUP or closing its output (a "| tee" or "| head" that
ended) stop everything it started and remove what it created under --dir.
Exit code: 0 after such a stop or at the end of --duration; 1 on failure.`,
		Example: `  go run ./cmd/feedcdc-demo
  go run ./cmd/feedcdc-demo --rate 200 --profile tiny
  go run ./cmd/feedcdc-demo --duration 60s --keep   # stop a minute into the workload, keep .demo/ to inspect`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDemo(cmd.Context(), stdout, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.dir, "dir", ".demo", "folder for the demo's database, state and output files")
	f.StringVar(&o.profile, "profile", "small", "catalog profile: tiny, small or medium")
	f.Float64Var(&o.rate, "rate", 20, "workload changes per second after the full sync")
	f.DurationVar(&o.duration, "duration", 0, "stop after the live workload ran this long (0: until Ctrl-C)")
	f.BoolVar(&o.keep, "keep", false, "keep the demo folder (state and output files) when stopping")
	f.BoolVar(&o.noApt, "no-install", false, "never run apt-get; fail with instructions when MariaDB is missing")
	return cmd
}

// ensureMariaDB installs Debian's MariaDB server when it is missing.
func ensureMariaDB(ctx context.Context, w io.Writer, noApt bool) error {
	have := func() bool {
		_, err1 := exec.LookPath("mariadb-install-db")
		_, err2 := os.Stat("/usr/sbin/mariadbd")
		return err1 == nil && err2 == nil
	}
	if have() {
		return nil
	}
	if noApt || os.Geteuid() != 0 {
		return errors.New("MariaDB is not installed: run `sudo apt-get install mariadb-server mariadb-client` (the demo starts its own private server; the system service is not used)")
	}
	fmt.Fprintln(w, "demo: installing Debian's mariadb-server (apt-get) ...")
	for _, args := range [][]string{{"update", "-qq"}, {"install", "-y", "-qq", "mariadb-server", "mariadb-client"}} {
		c := exec.CommandContext(ctx, "apt-get", args...)
		c.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, err := c.CombinedOutput(); err != nil {
			return fmt.Errorf("apt-get %s: %w\n%s", strings.Join(args, " "), err, out)
		}
	}
	if !have() {
		return errors.New("mariadb-server installed but mariadbd or mariadb-install-db is still missing")
	}
	return nil
}

// demo is one run: what its steps start, in order, and how to undo it.
type demo struct {
	o     demoOptions
	out   io.Writer
	start time.Time

	profile  catalog.Profile
	dir      string
	keepDir  map[string]bool // entries of --dir before the demo; nil: the demo created it
	cleanups []func() error  // run in reverse order

	srv     *mysqltest.Server
	shop    *sql.DB
	kafka   *kafkatest.Cluster
	admin   *kadm.Client
	cfg     *config.Config
	logFile *os.File
	log     *slog.Logger

	conn    *connector.Connector
	addrs   [2]string // metrics, dashboard
	runErr  chan error
	stopRun context.CancelFunc
}

// step is one named stage of the demo.
type step struct {
	name string
	run  func(context.Context) error
}

// runDemo runs the steps in order and always undoes what they started.
// A stop request (context cancelled) ends it without error.
func runDemo(ctx context.Context, out io.Writer, o demoOptions) (err error) {
	d := &demo{o: o, out: out, start: time.Now()}
	defer func() {
		if cerr := d.cleanup(); cerr != nil && err == nil {
			err = cerr
		}
		if err == nil {
			reason := "done"
			if cause := context.Cause(ctx); cause != nil {
				reason = cause.Error()
			}
			what := "stopped and removed"
			if o.keep {
				what = "stopped; " + d.dir + " kept (--keep)"
			}
			d.say(fmt.Sprintf("demo: stopped (%s); everything it started is %s", reason, what))
		}
	}()
	steps := []step{
		{"check MariaDB", d.checkMariaDB},
		{"prepare the demo folder", d.prepareDir},
		{"start MariaDB", d.startMariaDB},
		{"load the catalog", d.loadCatalog},
		{"start Kafka", d.startKafka},
		{"start the connector", d.startConnector},
		{"full sync", d.waitFullSync},
		{"show what was sent", d.showResults},
		{"live workload", d.runWorkload},
	}
	for _, s := range steps {
		if ctx.Err() != nil {
			return nil
		}
		if err := s.run(ctx); err != nil {
			if ctx.Err() != nil {
				return nil // the step failed because the demo is stopping
			}
			return fmt.Errorf("%s: %w", s.name, err)
		}
	}
	return nil
}

// say prints a line on the demo's output; when that output is gone (a
// closed pipe) it goes to stderr instead, so the last words are not lost.
func (d *demo) say(line string) {
	if _, err := fmt.Fprintln(d.out, line); err != nil {
		fmt.Fprintln(os.Stderr, line)
	}
}

func (d *demo) onCleanup(f func() error) { d.cleanups = append(d.cleanups, f) }

// cleanup undoes every step in reverse order and returns the first error.
func (d *demo) cleanup() error {
	var first error
	for i := len(d.cleanups) - 1; i >= 0; i-- {
		if err := d.cleanups[i](); err != nil && first == nil {
			first = err
		}
	}
	d.cleanups = nil
	return first
}

func (d *demo) checkMariaDB(ctx context.Context) error {
	p, err := catalog.ProfileByName(d.o.profile)
	if err != nil {
		return fmt.Errorf("--profile: %w", err)
	}
	d.profile = p
	return ensureMariaDB(ctx, d.out, d.o.noApt)
}

// prepareDir makes --dir and registers its removal: all of it when the
// demo creates it, else only what the demo adds.
func (d *demo) prepareDir(context.Context) error {
	dir, err := filepath.Abs(d.o.dir)
	if err != nil {
		return err
	}
	d.dir = dir
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("--dir %s: %w", dir, err)
	default:
		d.keepDir = map[string]bool{}
		for _, e := range entries {
			d.keepDir[e.Name()] = true
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("--dir: %w", err)
	}
	if d.o.keep {
		return nil
	}
	d.onCleanup(func() error {
		if d.keepDir == nil {
			if err := os.RemoveAll(dir); err != nil {
				return fmt.Errorf("removing %s: %w", dir, err)
			}
			return nil
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			return fmt.Errorf("cleaning %s: %w", dir, err)
		}
		for _, e := range entries {
			if !d.keepDir[e.Name()] {
				if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
					return fmt.Errorf("cleaning %s: %w", dir, err)
				}
			}
		}
		return nil
	})
	return nil
}

func (d *demo) startMariaDB(ctx context.Context) error {
	fmt.Fprintf(d.out, "demo: starting a private MariaDB under %s ...\n", d.dir)
	srv, err := mysqltest.Start(ctx, mysqltest.Options{BaseDir: d.dir})
	if err != nil {
		return err
	}
	d.srv = srv
	d.onCleanup(srv.Stop)
	admin, err := sql.Open("mysql", srv.AdminDSN(""))
	if err != nil {
		return err
	}
	defer admin.Close()
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE shop CHARACTER SET utf8mb4"); err != nil {
		return err
	}
	shop, err := sql.Open("mysql", srv.AdminDSN("shop"))
	if err != nil {
		return err
	}
	d.shop = shop
	d.onCleanup(shop.Close)
	return nil
}

func (d *demo) loadCatalog(ctx context.Context) error {
	fmt.Fprintf(d.out, "demo: MariaDB %s on %s; loading the %s catalog profile ...\n", d.srv.Version, d.srv.Addr(), d.profile.Name)
	st, err := catalog.Load(ctx, d.shop, d.profile, 1)
	if err != nil {
		return err
	}
	fmt.Fprintf(d.out, "demo: loaded %d products (%d rows) in %s\n", st.Products, st.Rows, st.Duration.Round(time.Millisecond))
	return nil
}

func (d *demo) startKafka(ctx context.Context) error {
	kafka, err := kafkatest.New(ctx, kafkatest.InMemory())
	if err != nil {
		return fmt.Errorf("embedded Kafka broker: %w", err)
	}
	d.kafka = kafka
	d.onCleanup(func() error { kafka.Close(); return nil })
	cl, err := kgo.NewClient(kgo.SeedBrokers(kafka.Addr()))
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	d.admin = kadm.NewClient(cl)
	d.onCleanup(func() error { cl.Close(); return nil })
	return nil
}

func (d *demo) startConnector(ctx context.Context) error {
	cfg, err := demoConfig(d.srv, d.kafka.Addr(), d.dir)
	if err != nil {
		return err
	}
	d.cfg = cfg
	logFile, err := os.Create(filepath.Join(d.dir, "feedcdc.log"))
	if err != nil {
		return err
	}
	d.logFile = logFile
	d.onCleanup(logFile.Close)
	if d.log, err = telemetry.NewLogger(logFile, cfg.Log.Format, cfg.Log.Level); err != nil {
		return err
	}
	fmt.Fprintf(d.out, "demo: embedded Kafka broker on %s; connector logs in %s\n", d.kafka.Addr(), logFile.Name())

	var mu sync.Mutex
	started := make(chan struct{})
	hooks := &runner.Hooks{
		OnReady: func(c *connector.Connector, _ change.Position, _ bool) {
			mu.Lock()
			d.conn = c
			mu.Unlock()
			close(started)
		},
		Addrs: func(m, dash string) { d.addrs = [2]string{m, dash} },
	}
	runCtx, stopRun := context.WithCancel(ctx)
	d.stopRun = stopRun
	d.runErr = make(chan error, 1)
	go func() { d.runErr <- runner.Run(runCtx, cfg, d.log, "demo", hooks) }()
	// Stopping the connector waits for it to return: its state file and
	// listeners are closed before MariaDB and Kafka stop.
	d.onCleanup(func() error {
		stopRun()
		if err := <-d.runErr; err != nil && !errors.Is(err, context.Canceled) {
			d.log.Warn("connector stopped with an error", "err", err)
		}
		return nil
	})
	select {
	case <-started:
	case err := <-d.runErr:
		d.runErr <- err // for the cleanup
		return fmt.Errorf("connector: %w (see %s)", err, logFile.Name())
	case <-ctx.Done():
		return ctx.Err()
	}
	mu.Lock()
	defer mu.Unlock()
	fmt.Fprintf(d.out, "demo: connector running: dashboard http://%s/  metrics http://%s/metrics\n", d.addrs[1], d.addrs[0])
	return nil
}

// waitFullSync waits for the first-start full sync of every feed.
func (d *demo) waitFullSync(ctx context.Context) error {
	fmt.Fprintln(d.out, "demo: full sync of every feed ...")
	for {
		done := true
		for _, f := range d.cfg.EnabledFeeds() {
			p, ok, _ := d.conn.Store.Progress(ctx, f)
			if !ok || !p.Finished() {
				done = false
			}
		}
		if done {
			break
		}
		select {
		case err := <-d.runErr:
			d.runErr <- err
			return fmt.Errorf("connector stopped: %v (see %s)", err, d.logFile.Name())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
	fmt.Fprintf(d.out, "demo: full sync done %s after start\n", time.Since(d.start).Round(100*time.Millisecond))
	return nil
}

// showResults prints the counts, the Kafka topics with a kcat command
// line, and a sample item.
func (d *demo) showResults(ctx context.Context) error {
	fmt.Fprint(d.out, "demo: sent so far: ")
	d.printCounts(ctx)
	d.printTopics(ctx)
	printSample(d.out, filepath.Join(d.dir, "out"))
	return nil
}

// runWorkload applies the live workload until --duration or a stop
// request, printing the counts every 5 seconds.
func (d *demo) runWorkload(ctx context.Context) error {
	fmt.Fprintf(d.out, "demo: applying a live workload at %.0f changes/s (Ctrl-C to stop) ...\n", d.o.rate)
	wctx, stopWorkload := context.WithCancel(ctx)
	wl := catalog.NewWorkload(d.shop, 2, catalog.WorkloadOptions{})
	wlErr := make(chan error, 1)
	var applied atomic.Int64
	go func() {
		for wctx.Err() == nil {
			st, err := wl.Run(wctx, 50, d.o.rate)
			applied.Add(int64(st.Transactions))
			if err != nil && wctx.Err() == nil {
				wlErr <- err
				return
			}
		}
		wlErr <- nil
	}()
	defer func() {
		stopWorkload()
		<-wlErr
	}()
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	rawShown := false
	var stopAfter <-chan time.Time
	if d.o.duration > 0 {
		stopAfter = time.After(d.o.duration)
	}
	for {
		select {
		case <-stopAfter:
			fmt.Fprintf(d.out, "demo: workload ran %s; %d transactions; ", d.o.duration, applied.Load())
			d.printCounts(ctx)
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case err := <-d.runErr:
			d.runErr <- err
			return fmt.Errorf("connector stopped: %v (see %s)", err, d.logFile.Name())
		case err := <-wlErr:
			wlErr <- nil // for the deferred wait
			if err != nil {
				return fmt.Errorf("workload: %w", err)
			}
		case <-tick.C:
			fmt.Fprintf(d.out, "demo: workload %d transactions; ", applied.Load())
			if raw := d.printCounts(ctx); raw > 0 && !rawShown {
				// The raw streams' topics exist once rows change.
				rawShown = true
				d.printTopics(ctx)
			}
		}
	}
}

// printCounts prints one line: per feed sent/failed, the raw streams'
// records in Kafka, and the checkpoint. It returns the raw records.
func (d *demo) printCounts(ctx context.Context) (rawRecords int64) {
	var parts []string
	for _, f := range d.cfg.EnabledFeeds() {
		n, err := d.conn.Store.Counts(ctx, f)
		if err != nil {
			continue
		}
		parts = append(parts, fmt.Sprintf("%s %d sent / %d failed", f, n.Sent, n.Failed))
	}
	if topics, err := d.topics(ctx); err == nil {
		var raw, streams int64
		for _, t := range topics {
			if t.rawStream {
				raw += t.records
				streams++
			}
		}
		parts = append(parts, fmt.Sprintf("raw streams %d records in %d topics", raw, streams))
		rawRecords = raw
	}
	cp := "-"
	if pos, _, ok, _ := d.conn.Store.Checkpoint(ctx); ok {
		cp = pos.String()
	}
	fmt.Fprintf(d.out, "%s; checkpoint %s\n", strings.Join(parts, ", "), cp)
	return rawRecords
}

// topicInfo is one Kafka topic of the demo.
type topicInfo struct {
	name      string
	records   int64  // records in the log now (end - start offsets)
	feed      string // entity feed of the topic, "" for a raw stream
	rawStream bool
}

// topics lists the demo's Kafka topics with their record counts.
func (d *demo) topics(ctx context.Context) ([]topicInfo, error) {
	tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	details, err := d.admin.ListTopics(tctx)
	if err != nil {
		return nil, err
	}
	names := details.Names()
	ends, err := d.admin.ListEndOffsets(tctx, names...)
	if err != nil {
		return nil, err
	}
	starts, err := d.admin.ListStartOffsets(tctx, names...)
	if err != nil {
		return nil, err
	}
	feedOf := map[string]string{}
	if ks, ok := d.conn.Sinks["kafka"].(*kafkasink.Sink); ok {
		for _, f := range d.cfg.EnabledFeeds() {
			topic, _ := ks.TopicFor(&sink.Record{Feed: f})
			feedOf[topic] = f
		}
	}
	var out []topicInfo
	for _, name := range names {
		t := topicInfo{name: name, feed: feedOf[name]}
		t.rawStream = t.feed == ""
		ends.Each(func(o kadm.ListedOffset) {
			if o.Topic == name && o.Err == nil {
				t.records += o.Offset
			}
		})
		starts.Each(func(o kadm.ListedOffset) {
			if o.Topic == name && o.Err == nil {
				t.records -= o.Offset
			}
		})
		out = append(out, t)
	}
	slices.SortFunc(out, func(a, b topicInfo) int {
		if a.rawStream != b.rawStream {
			if a.rawStream {
				return 1
			}
			return -1
		}
		return strings.Compare(a.name, b.name)
	})
	return out, nil
}

// printTopics prints the Kafka topics, their record counts, and a ready
// kcat command line to read one.
func (d *demo) printTopics(ctx context.Context) {
	topics, err := d.topics(ctx)
	if err != nil {
		fmt.Fprintf(d.out, "demo: could not list the Kafka topics: %v\n", err)
		return
	}
	fmt.Fprintf(d.out, "demo: Kafka topics on %s (records now):\n", d.kafka.Addr())
	example, width := "", 0
	for _, t := range topics {
		width = max(width, len(t.name))
	}
	for _, t := range topics {
		what := "raw change stream of one table"
		if !t.rawStream {
			what = "entity feed " + t.feed
		}
		if example == "" || t.feed == "products" {
			example = t.name
		}
		fmt.Fprintf(d.out, "  %-*s %8d  %s\n", width, t.name, t.records, what)
	}
	if example != "" {
		fmt.Fprintf(d.out, "demo: read a topic with kcat (Debian package kcat), while the demo runs:\n  kcat -b %s -C -t %s -o beginning -e -f '%%k\\t%%s\\n'\n", d.kafka.Addr(), example)
	}
}

func printSample(w io.Writer, dir string) {
	b, err := os.ReadFile(filepath.Join(dir, "products.jsonl"))
	if err != nil {
		return
	}
	line, _, _ := strings.Cut(string(b), "\n")
	var v any
	if json.Unmarshal([]byte(line), &v) != nil {
		return
	}
	pretty, err := marshalSample(v)
	if err != nil {
		return
	}
	if len(pretty) > 1500 {
		// Cut at a line end: never inside a multi-byte character.
		cut := bytes.LastIndexByte(pretty[:1500], '\n')
		pretty = append(pretty[:cut+1], []byte("  ...")...)
	}
	fmt.Fprintf(w, "demo: a products item (from %s):\n  %s\n", filepath.Join(dir, "products.jsonl"), pretty)
}

// marshalSample indents v as JSON for the terminal, without escaping HTML
// (descriptions hold <p> and &, which json.Marshal would print as \u003cp\u003e).
func marshalSample(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("  ", "  ")
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

// freePort returns preferred if it is free on 127.0.0.1, else any free port.
func freePort(preferred int) int {
	for _, p := range []int{preferred, 0} {
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err == nil {
			port := l.Addr().(*net.TCPAddr).Port
			l.Close()
			return port
		}
	}
	return preferred
}

// demoConfig is the embedded default configuration of the demo.
func demoConfig(srv *mysqltest.Server, kafkaAddr, dir string) (*config.Config, error) {
	y := fmt.Sprintf(`name: demo
source:
  host: 127.0.0.1
  port: %d
  user: %s
  password_env: FEEDCDC_DEMO_SOURCE_PASSWORD
  server_id: 4000001
  heartbeat: 1s
  read_timeout: 10s
state:
  path: %s
feeds:
  database: shop
raw:
  enabled: true
  sinks: [kafka]
sinks:
  kafka:
    type: kafka
    kafka:
      brokers: ["%s"]
      topic_prefix: demo
      create_topics: true
      partitions: 1
      compact: true
  files:
    type: file
    file:
      dir: %s
telemetry:
  listen: 127.0.0.1:%d
dashboard:
  enabled: true
  listen: 127.0.0.1:%d
  token_env: FEEDCDC_DEMO_DASHBOARD_TOKEN
log:
  format: json
`, srv.Port, srv.CDCUser, filepath.Join(dir, "state.db"), kafkaAddr, filepath.Join(dir, "out"), freePort(9464), freePort(8484))
	env := append(os.Environ(), "FEEDCDC_DEMO_SOURCE_PASSWORD="+srv.CDCPassword, "FEEDCDC_DEMO_DASHBOARD_TOKEN=demo")
	return config.LoadBytes([]byte(y), "demo (embedded)", env)
}

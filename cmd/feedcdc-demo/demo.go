// Command feedcdc-demo runs everything on this machine in one command: a
// private MariaDB with a small Magento catalog, an embedded Kafka-protocol
// broker (kfake), the connector on embedded defaults and a live workload.
//
// It is a separate command because it links the test infrastructure
// (test/mysqltest, test/catalog, test/kafkatest with kfake, and through them
// the testing package) and may run apt-get: the deployable feedcdc binary
// must not. `feedcdc demo` only says how to run this one.
//
// Invariants: everything it starts (mariadbd, broker, connector) is stopped
// when it returns, and its folder is removed unless --keep is given.
package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/feedcdc/feedcdc/change"
	"github.com/feedcdc/feedcdc/config"
	"github.com/feedcdc/feedcdc/connector"
	"github.com/feedcdc/feedcdc/internal/runner"
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

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
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
what flows: counts per feed, a sample item, and where the dashboard and
metrics are. Ctrl-C stops and removes everything it started.`,
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

func runDemo(ctx context.Context, out io.Writer, o demoOptions) error {
	start := time.Now()
	profile, err := catalog.ProfileByName(o.profile)
	if err != nil {
		return fmt.Errorf("--profile: %w", err)
	}
	if err := ensureMariaDB(ctx, out, o.noApt); err != nil {
		return err
	}
	dir, err := filepath.Abs(o.dir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if !o.keep {
		defer os.RemoveAll(dir)
	}
	fmt.Fprintf(out, "demo: starting a private MariaDB under %s ...\n", dir)
	srv, err := mysqltest.Start(ctx, mysqltest.Options{BaseDir: dir})
	if err != nil {
		return err
	}
	defer srv.Stop()
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
	defer shop.Close()
	fmt.Fprintf(out, "demo: MariaDB %s on %s; loading the %s catalog profile ...\n", srv.Version, srv.Addr(), profile.Name)
	st, err := catalog.Load(ctx, shop, profile, 1)
	if err != nil {
		return fmt.Errorf("load catalog: %w", err)
	}
	fmt.Fprintf(out, "demo: loaded %d products (%d rows) in %s\n", st.Products, st.Rows, st.Duration.Round(time.Millisecond))

	kafka, err := kafkatest.New(ctx, kafkatest.InMemory())
	if err != nil {
		return fmt.Errorf("embedded Kafka broker: %w", err)
	}
	defer kafka.Close()

	cfg, err := demoConfig(srv, kafka.Addr(), dir)
	if err != nil {
		return err
	}
	logFile, err := os.Create(filepath.Join(dir, "feedcdc.log"))
	if err != nil {
		return err
	}
	defer logFile.Close()
	log, err := telemetry.NewLogger(logFile, cfg.Log.Format, cfg.Log.Level)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "demo: embedded Kafka broker on %s; connector logs in %s\n", kafka.Addr(), logFile.Name())

	var (
		mu       sync.Mutex
		conn     *connector.Connector
		addrs    [2]string
		started  = make(chan struct{})
		startErr = make(chan error, 1)
	)
	hooks := &runner.Hooks{
		OnReady: func(c *connector.Connector, pos change.Position, first bool) {
			mu.Lock()
			conn = c
			mu.Unlock()
			close(started)
		},
		Addrs: func(m, d string) { addrs = [2]string{m, d} },
	}
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	go func() { startErr <- runner.Run(runCtx, cfg, log, "demo", hooks) }()
	select {
	case <-started:
	case err := <-startErr:
		return fmt.Errorf("connector: %w (see %s)", err, logFile.Name())
	case <-ctx.Done():
		return nil
	}
	fmt.Fprintf(out, "demo: connector running: dashboard http://%s/  metrics http://%s/metrics\n", addrs[1], addrs[0])
	fmt.Fprintln(out, "demo: full sync of every feed ...")

	// Wait for the first-start full sync of every feed.
	for {
		done := true
		for _, f := range cfg.EnabledFeeds() {
			p, ok, _ := conn.Store.Progress(ctx, f)
			if !ok || !p.Finished() {
				done = false
			}
		}
		if done {
			break
		}
		select {
		case err := <-startErr:
			return fmt.Errorf("connector stopped: %v (see %s)", err, logFile.Name())
		case <-ctx.Done():
			return nil
		case <-time.After(250 * time.Millisecond):
		}
	}
	fmt.Fprintf(out, "demo: full sync done %s after start\n", time.Since(start).Round(100*time.Millisecond))
	printDemoCounts(ctx, out, conn, cfg)
	printSample(out, filepath.Join(dir, "out"))

	fmt.Fprintf(out, "demo: applying a live workload at %.0f changes/s (Ctrl-C to stop) ...\n", o.rate)
	wl := catalog.NewWorkload(shop, 2, catalog.WorkloadOptions{})
	wlErr := make(chan error, 1)
	var applied atomic.Int64
	go func() {
		for runCtx.Err() == nil {
			st, err := wl.Run(runCtx, 50, o.rate)
			applied.Add(int64(st.Transactions))
			if err != nil && runCtx.Err() == nil {
				wlErr <- err
				return
			}
		}
		wlErr <- nil
	}()
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	var stopAfter <-chan time.Time
	if o.duration > 0 {
		stopAfter = time.After(o.duration)
	}
	for {
		select {
		case <-stopAfter:
			fmt.Fprintf(out, "demo: workload ran %s; ", o.duration)
			printDemoCounts(ctx, out, conn, cfg)
			stopRun()
			<-startErr
			fmt.Fprintln(out, "demo: stopped; everything it started is stopped and removed")
			return nil
		case <-ctx.Done():
			stopRun()
			<-startErr
			fmt.Fprintln(out, "demo: stopped; everything it started is stopped and removed")
			return nil
		case err := <-startErr:
			return fmt.Errorf("connector stopped: %v (see %s)", err, logFile.Name())
		case err := <-wlErr:
			if err != nil {
				return fmt.Errorf("workload: %w", err)
			}
		case <-tick.C:
			fmt.Fprintf(out, "demo: workload %d transactions; ", applied.Load())
			printDemoCounts(ctx, out, conn, cfg)
		}
	}
}

func printDemoCounts(ctx context.Context, w io.Writer, c *connector.Connector, cfg *config.Config) {
	var parts []string
	for _, f := range cfg.EnabledFeeds() {
		n, err := c.Store.Counts(ctx, f)
		if err != nil {
			continue
		}
		parts = append(parts, fmt.Sprintf("%s %d sent / %d failed", f, n.Sent, n.Failed))
	}
	cp := "-"
	if pos, _, ok, _ := c.Store.Checkpoint(ctx); ok {
		cp = pos.String()
	}
	fmt.Fprintf(w, "%s; checkpoint %s\n", strings.Join(parts, ", "), cp)
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
	pretty, _ := json.MarshalIndent(v, "  ", "  ")
	if len(pretty) > 1500 {
		pretty = append(pretty[:1500], []byte("\n  ...")...)
	}
	fmt.Fprintf(w, "demo: a products item (from %s):\n  %s\n", filepath.Join(dir, "products.jsonl"), pretty)
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

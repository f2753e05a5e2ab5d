// Command firststart measures a first start of `feedcdc run` end to end,
// the way a user runs it, against `mariadb-dump --single-transaction` of the
// same tables on the same server in the same run (issue 19's benchmark):
//
//	go run ./test/cmd/firststart --dsn 'root@tcp(127.0.0.1:23306)/shop' --server-pid PID \
//	    [--sink file|kafka|kafka-memory] [--mem-limit 512MiB] [--resync]
//
// Steps, each timed, with the CPU of every process involved:
//
//  1. The baseline: mariadb-dump of the tables the feeds read, output
//     discarded.
//  2. A first start: a freshly built feedcdc binary runs with a new state
//     directory, all four feeds, the configuration's defaults and one sink
//     (a file sink, or a Kafka broker in this process that keeps its log on
//     disk, or with kafka-memory in memory: kfake through test/kafkatest;
//     a real broker runs on other machines, so the in-memory one shows
//     the connector's own cost of the Kafka sink), until every feed's full sync has
//     finished (GET /api/status of its dashboard). Its resident memory is
//     sampled from /proc (anonymous and file-backed pages apart: the state
//     file is memory-mapped); with --mem-limit it runs in a cgroup (v1
//     memory controller) with that limit, whose peak usage, page cache and
//     mapped-file figures are reported too.
//  3. With --resync: the connector is stopped and `feedcdc resync --feed F`
//     runs for every feed on the unchanged catalog (everything skipped).
//
// It prints a Markdown table row per step for docs/benchmarks.md. Loopback
// servers only; it ends only the processes it started.
package main

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/feedcdc/feedcdc/feeds"
	"github.com/feedcdc/feedcdc/test/kafkatest"
)

type options struct {
	dsn       *mysql.Config
	serverPID int
	sink      string
	kafkaKeys string // more keys of the kafka section (--kafka-keys)
	memLimit  int64
	resync    bool
	bin       string
	workDir   string
	keep      bool
	poll      time.Duration
	profiles  string
}

func main() {
	var o options
	dsn := flag.String("dsn", "", "go-sql-driver DSN of the loopback source server and the catalog database, e.g. 'root@tcp(127.0.0.1:23306)/shop' (required)")
	flag.IntVar(&o.serverPID, "server-pid", 0, "pid of the source mariadbd/mysqld, to measure its CPU (0 = not measured)")
	flag.StringVar(&o.kafkaKeys, "kafka-keys", "", "more keys of the Kafka sink's kafka section, as YAML flow mapping entries (e.g. 'compression: lz4')")
	flag.StringVar(&o.sink, "sink", "file", "sink of the first start: file, kafka (a kfake broker in this process keeping its log on disk) or kafka-memory (the same broker keeping its log in memory)")
	mem := flag.String("mem-limit", "", "run feedcdc in a cgroup v1 memory cgroup with this limit (e.g. 512MiB; needs root)")
	flag.BoolVar(&o.resync, "resync", false, "after the first start, stop the connector and resync every feed of the unchanged catalog")
	flag.StringVar(&o.bin, "feedcdc", "", "feedcdc binary (default: built from ./cmd/feedcdc)")
	flag.StringVar(&o.workDir, "dir", "", "working directory for the state, the output and the broker log (default: a new temporary one)")
	flag.BoolVar(&o.keep, "keep", false, "keep the working directory")
	flag.DurationVar(&o.poll, "poll", 250*time.Millisecond, "how often the connector's status is read")
	flag.StringVar(&o.profiles, "profiles", "", "directory for profiles of the first start (telemetry.pprof): a heap profile at each new peak of RssAnon (at most every 10 s) a 30 s CPU profile after 20 s, a 5 s execution trace after 60 s and the metrics at the end; with --sink kafka also the in-process broker's CPU profile of the whole first start (broker.cpu.pprof)")
	flag.Parse()
	log.SetFlags(log.Ltime)
	if *dsn == "" {
		log.Fatal("firststart: --dsn is required (the loopback server holding a loaded catalog, e.g. from go run ./test/cmd/catalog --profile large)")
	}
	cfg, err := mysql.ParseDSN(*dsn)
	if err != nil {
		log.Fatalf("firststart: --dsn: %v", err)
	}
	o.dsn = cfg
	if *mem != "" {
		if o.memLimit, err = parseSize(*mem); err != nil {
			log.Fatalf("firststart: --mem-limit: %v", err)
		}
	}
	if err := run(context.Background(), o); err != nil {
		log.Fatalf("firststart: %v", err)
	}
}

func run(ctx context.Context, o options) error {
	host, port, err := net.SplitHostPort(o.dsn.Addr)
	if err != nil || !net.ParseIP(host).IsLoopback() {
		return fmt.Errorf("--dsn must name a loopback host:port, got %q", o.dsn.Addr)
	}
	if o.workDir == "" {
		if o.workDir, err = os.MkdirTemp("", "firststart-"); err != nil {
			return err
		}
		if !o.keep {
			defer os.RemoveAll(o.workDir)
		}
	} else if err := os.MkdirAll(o.workDir, 0o755); err != nil {
		return err
	}
	if o.bin == "" {
		o.bin = filepath.Join(o.workDir, "feedcdc")
		build := exec.CommandContext(ctx, "go", "build", "-o", o.bin, "./cmd/feedcdc")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("build feedcdc (run from the repository root): %w", err)
		}
	}
	tables, rows, err := feedTables(o.dsn)
	if err != nil {
		return err
	}
	log.Printf("load average %s", loadAvg())
	dump, err := runDump(ctx, o, host, port, tables)
	if err != nil {
		return err
	}
	log.Printf("mariadb-dump --single-transaction of %d tables, %d rows: %s (client CPU %s, server CPU %s)",
		len(tables), rows, dump.wall.Round(time.Millisecond), dump.cpu.Round(time.Millisecond), dump.server.Round(time.Millisecond))
	conf, err := writeConfig(ctx, o, host, port)
	if err != nil {
		return err
	}
	defer conf.close()
	self0 := procCPU(os.Getpid())
	fs, err := firstStart(ctx, o, conf)
	if err != nil {
		return err
	}
	if conf.broker != nil {
		// The broker runs in this process; its CPU competes with feedcdc's
		// and the server's for the same cores.
		log.Printf("Kafka broker (this process) CPU during the first start: %s", (procCPU(os.Getpid()) - self0).Round(100*time.Millisecond))
	}
	log.Printf("load average %s", loadAvg())
	fmt.Printf("\n| sink | items | first start | items/s | feedcdc CPU (µs/item) | server CPU | dump (server CPU) | time start/dump | server CPU start/dump | peak RssAnon | peak RssFile | state file |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	fmt.Printf("| %s | %d | %s | %.0f | %s (%.1f) | %s | %s (%s) | %.1f | %.1f | %d MiB | %d MiB | %d MiB |\n",
		o.sink, fs.items, fs.wall.Round(100*time.Millisecond), float64(fs.items)/fs.wall.Seconds(),
		fs.cpu.Round(100*time.Millisecond), float64(fs.cpu.Microseconds())/float64(max(fs.items, 1)),
		fs.server.Round(100*time.Millisecond), dump.wall.Round(100*time.Millisecond), dump.server.Round(100*time.Millisecond),
		fs.wall.Seconds()/dump.wall.Seconds(), fs.server.Seconds()/max(dump.server.Seconds(), 0.01),
		fs.mem.peakAnon>>20, fs.mem.peakFile>>20, fs.stateBytes>>20)
	for _, f := range fs.feeds {
		fmt.Printf("  %-18s %9d items, full sync %s\n", f.name, f.items, f.took.Round(100*time.Millisecond))
	}
	if o.memLimit > 0 {
		fmt.Printf("cgroup limit %d MiB: peak usage %d MiB, at the end rss %d MiB, mapped_file %d MiB, cache %d MiB, failcnt %d, oom kills %d\n",
			o.memLimit>>20, fs.mem.cgPeak>>20, fs.mem.cgRSS>>20, fs.mem.cgMapped>>20, fs.mem.cgCache>>20, fs.mem.cgFailcnt, fs.mem.cgOOM)
	}
	if o.resync {
		fmt.Printf("\n| resync of the unchanged catalog | time | feedcdc CPU | server CPU | peak RssAnon | summary |\n|---|---|---|---|---|---|\n")
		var total time.Duration
		for _, f := range fs.feeds {
			r, err := resync(ctx, o, conf, f.name)
			if err != nil {
				return err
			}
			total += r.wall
			fmt.Printf("| %s | %s | %s | %s | %d MiB | %s |\n", f.name, r.wall.Round(100*time.Millisecond), r.cpu.Round(100*time.Millisecond),
				r.server.Round(100*time.Millisecond), r.peakAnon>>20, r.summary)
		}
		fmt.Printf("| all four, one after another | %s | | | | |\n", total.Round(100*time.Millisecond))
		log.Printf("load average %s", loadAvg())
	}
	return nil
}

// feedTables lists the tables the feeds read that the catalog has, and
// their rows.
func feedTables(dsn *mysql.Config) ([]string, int, error) {
	pool, err := sql.Open("mysql", dsn.FormatDSN())
	if err != nil {
		return nil, 0, err
	}
	defer pool.Close()
	reg, err := feeds.NewRegistry(feeds.Config{DB: pool, Database: dsn.DBName})
	if err != nil {
		return nil, 0, err
	}
	var tables []string
	rows := 0
	for _, t := range reg.Tables() {
		var n int
		if err := pool.QueryRow("SELECT COUNT(*) FROM " + t).Scan(&n); err != nil {
			continue // a table this schema does not have
		}
		tables, rows = append(tables, t), rows+n
	}
	if len(tables) == 0 {
		return nil, 0, fmt.Errorf("database %q has none of the feeds' tables: load a catalog first (go run ./test/cmd/catalog --profile large --dsn ...)", dsn.DBName)
	}
	return tables, rows, nil
}

type measured struct{ wall, cpu, server time.Duration }

func runDump(ctx context.Context, o options, host, port string, tables []string) (measured, error) {
	args := []string{"--no-defaults", "--protocol=tcp", "-h", host, "-P", port, "-u", o.dsn.User}
	if o.dsn.Passwd != "" {
		args = append(args, "-p"+o.dsn.Passwd)
	}
	args = append(args, "--single-transaction", "--skip-lock-tables", o.dsn.DBName)
	cmd := exec.CommandContext(ctx, "mariadb-dump", append(args, tables...)...)
	cmd.Stdout, cmd.Stderr = io.Discard, os.Stderr
	srv0, start := procCPU(o.serverPID), time.Now()
	if err := cmd.Run(); err != nil {
		return measured{}, fmt.Errorf("mariadb-dump: %w", err)
	}
	return measured{time.Since(start), cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(), procCPU(o.serverPID) - srv0}, nil
}

// config is the connector's configuration file and what it points at.
type config struct {
	path, state, listen, metrics string
	broker                       *kafkatest.Cluster
}

func (c *config) close() {
	if c.broker != nil {
		c.broker.Close()
	}
}

func writeConfig(ctx context.Context, o options, host, port string) (*config, error) {
	c := &config{path: filepath.Join(o.workDir, "config.yaml"), state: filepath.Join(o.workDir, "state", "state.db")}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	c.listen = l.Addr().String()
	l.Close()
	telemetry := `{listen: ""}`
	if o.profiles != "" {
		if err := os.MkdirAll(o.profiles, 0o755); err != nil {
			return nil, err
		}
		if l, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			return nil, err
		}
		c.metrics = l.Addr().String()
		l.Close()
		telemetry = fmt.Sprintf(`{listen: "%s", pprof: true}`, c.metrics)
	}
	sink := fmt.Sprintf("  files:\n    type: file\n    file: {dir: %s}\n", filepath.Join(o.workDir, "out"))
	if o.sink == "kafka" || o.sink == "kafka-memory" {
		opt := kafkatest.WithDataDir(filepath.Join(o.workDir, "kafka"))
		if o.sink == "kafka-memory" {
			opt = kafkatest.InMemory()
		}
		if c.broker, err = kafkatest.New(ctx, opt); err != nil {
			return nil, fmt.Errorf("start the Kafka broker: %w", err)
		}
		extra := ""
		if o.kafkaKeys != "" {
			extra = ", " + o.kafkaKeys
		}
		sink = fmt.Sprintf("  kafka:\n    type: kafka\n    kafka: {brokers: [%s]%s}\n", c.broker.Addr(), extra)
	} else if o.sink != "file" {
		return nil, fmt.Errorf("--sink %q: use file, kafka or kafka-memory", o.sink)
	} else if o.kafkaKeys != "" {
		return nil, fmt.Errorf("--kafka-keys %q needs --sink kafka or kafka-memory", o.kafkaKeys)
	}
	yaml := fmt.Sprintf(`name: firststart
source: {host: %s, port: %s, user: %s, tls: {mode: disabled}}
feeds: {database: %s}
state: {path: %s}
dashboard: {listen: "%s"}
telemetry: %s
log: {level: warn}
sinks:
%s`, host, port, o.dsn.User, o.dsn.DBName, c.state, c.listen, telemetry, sink)
	if err := os.WriteFile(c.path, []byte(yaml), 0o600); err != nil {
		return nil, err
	}
	return c, nil
}

type feedResult struct {
	name  string
	items int64
	took  time.Duration
}

type firstStartResult struct {
	measured
	items      int64
	feeds      []feedResult
	mem        memory
	stateBytes int64
}

// status is the part of GET /api/status this command reads.
type status struct {
	StateBytes int64 `json:"state_bytes"`
	Feeds      []struct {
		Name   string `json:"name"`
		Counts struct {
			Total int64 `json:"total"`
			Sent  int64 `json:"sent"`
		} `json:"counts"`
		Resync *struct {
			StartedAt  time.Time `json:"started_at"`
			FinishedAt time.Time `json:"finished_at"`
		} `json:"resync"`
	} `json:"feeds"`
}

func firstStart(ctx context.Context, o options, c *config) (firstStartResult, error) {
	var r firstStartResult
	cmd, cg, err := startFeedcdc(ctx, o, nil, "run", "-c", c.path)
	if err != nil {
		return r, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(2 * time.Minute):
			_ = cmd.Process.Kill()
			<-exited
		}
		cg.remove()
	}()
	srv0, start := procCPU(o.serverPID), time.Now()
	pid := cmd.Process.Pid
	if o.profiles != "" && c.broker != nil { // the in-process broker's CPU, for the whole first start
		f, err := os.Create(filepath.Join(o.profiles, "broker.cpu.pprof"))
		if err != nil {
			return r, err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return r, err
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	prof := profiler{o: o, c: c, start: start}
	defer prof.wait()
	done := map[string]time.Duration{}
	var st status
	for {
		select {
		case err := <-exited:
			exited <- err
			return r, fmt.Errorf("feedcdc run ended before the full syncs finished: %v (its log: %s)", err, filepath.Join(o.workDir, "feedcdc.log"))
		case <-time.After(o.poll):
		}
		r.mem.sample(pid, cg)
		prof.maybe(ctx, r.mem.peakAnon)
		if err := getJSON(ctx, c.listen, "/api/status", &st); err != nil {
			continue // not listening yet
		}
		for _, f := range st.Feeds {
			if _, ok := done[f.Name]; !ok && f.Resync != nil && !f.Resync.FinishedAt.IsZero() {
				done[f.Name] = time.Since(start)
			}
		}
		if len(st.Feeds) > 0 && len(done) == len(st.Feeds) {
			break
		}
	}
	r.wall = time.Since(start)
	r.cpu, r.server = procCPU(pid), procCPU(o.serverPID)-srv0
	r.mem.sample(pid, cg)
	r.mem.readCgroup(cg)
	// The counts once every item has been sent (the last chunk's export
	// may still be in flight when its progress record says finished).
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(o.poll) {
		if err := getJSON(ctx, c.listen, "/api/status", &st); err != nil {
			return r, err
		}
		sent := true
		for _, f := range st.Feeds {
			sent = sent && f.Counts.Sent == f.Counts.Total
		}
		if sent || time.Now().After(deadline) {
			break
		}
	}
	if o.profiles != "" {
		prof.fetch(ctx, "/metrics", "metrics.txt")
	}
	r.stateBytes = st.StateBytes
	for _, f := range st.Feeds {
		r.feeds = append(r.feeds, feedResult{f.Name, f.Counts.Total, done[f.Name]})
		r.items += f.Counts.Total
		if f.Counts.Sent != f.Counts.Total {
			return r, fmt.Errorf("%s: %d of %d items sent", f.Name, f.Counts.Sent, f.Counts.Total)
		}
	}
	return r, nil
}

func resync(ctx context.Context, o options, c *config, feed string) (struct {
	measured
	peakAnon int64
	summary  string
}, error) {
	var r struct {
		measured
		peakAnon int64
		summary  string
	}
	var out bytes.Buffer
	cmd, cg, err := startFeedcdc(ctx, o, &out, "resync", "--feed", feed, "-c", c.path)
	if err != nil {
		return r, err
	}
	defer cg.remove()
	srv0, start := procCPU(o.serverPID), time.Now()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var mem memory
	for waiting := true; waiting; {
		select {
		case err = <-exited:
			waiting = false
		case <-time.After(o.poll):
			mem.sample(cmd.Process.Pid, cg)
		}
	}
	r.wall, r.server = time.Since(start), procCPU(o.serverPID)-srv0
	r.cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	r.peakAnon = mem.peakAnon
	if err != nil {
		return r, fmt.Errorf("feedcdc resync --feed %s: %w\n%s", feed, err, out.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	// The summary's counts line: "entities N, items built N, sent N, ...".
	for _, l := range lines {
		if strings.Contains(l, "items built") {
			r.summary = strings.Join(strings.Fields(l), " ")
		}
	}
	return r, nil
}

// startFeedcdc starts the binary with args, its log (and its output unless
// stdout is given) in the working directory, inside a new memory cgroup
// when a limit is given.
func startFeedcdc(ctx context.Context, o options, stdout io.Writer, args ...string) (*exec.Cmd, *cgroup, error) {
	logf, err := os.OpenFile(filepath.Join(o.workDir, "feedcdc.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, nil, err
	}
	defer logf.Close()
	var cg *cgroup
	cmd := exec.CommandContext(ctx, o.bin, args...)
	if o.memLimit > 0 {
		if cg, err = newCgroup(o.memLimit); err != nil {
			return nil, nil, err
		}
		// The shell joins the cgroup, then becomes feedcdc.
		cmd = exec.CommandContext(ctx, "/bin/sh", append([]string{"-c", `echo $$ > "$0/cgroup.procs" && exec "$@"`, cg.dir, o.bin}, args...)...)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if stdout != nil {
		cmd.Stdout = stdout
	}
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	if err := cmd.Start(); err != nil {
		cg.remove()
		return nil, nil, err
	}
	return cmd, cg, nil
}

// cgroup is a v1 memory cgroup this command created.
type cgroup struct{ dir string }

func newCgroup(limit int64) (*cgroup, error) {
	dir := fmt.Sprintf("/sys/fs/cgroup/memory/feedcdc-firststart-%d-%d", os.Getpid(), time.Now().UnixNano())
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create a memory cgroup (needs root and the cgroup v1 memory controller at /sys/fs/cgroup/memory): %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "memory.limit_in_bytes"), []byte(strconv.FormatInt(limit, 10)), 0o644); err != nil {
		os.Remove(dir)
		return nil, fmt.Errorf("set the cgroup's memory limit: %w", err)
	}
	return &cgroup{dir}, nil
}

func (c *cgroup) read(name string) int64 {
	b, _ := os.ReadFile(filepath.Join(c.dir, name))
	n, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return n
}

func (c *cgroup) stat() map[string]int64 {
	m := map[string]int64{}
	b, _ := os.ReadFile(filepath.Join(c.dir, "memory.stat"))
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, " "); ok {
			m[k], _ = strconv.ParseInt(v, 10, 64)
		}
	}
	return m
}

func (c *cgroup) remove() {
	if c == nil {
		return
	}
	// Its processes have exited; pages it still charges move to the parent.
	_ = os.WriteFile(filepath.Join(c.dir, "memory.force_empty"), []byte("0"), 0o644)
	for range 50 {
		if err := os.Remove(c.dir); err == nil || errors.Is(err, os.ErrNotExist) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// memory is what was seen of a process's resident memory.
type memory struct {
	peakAnon, peakFile                                 int64
	cgPeak, cgRSS, cgMapped, cgCache, cgFailcnt, cgOOM int64
}

func (m *memory) sample(pid int, cg *cgroup) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ":")
		kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "RssAnon":
			m.peakAnon = max(m.peakAnon, kb<<10)
		case "RssFile":
			m.peakFile = max(m.peakFile, kb<<10)
		}
	}
}

func (m *memory) readCgroup(cg *cgroup) {
	if cg == nil {
		return
	}
	s := cg.stat()
	m.cgPeak, m.cgFailcnt = cg.read("memory.max_usage_in_bytes"), cg.read("memory.failcnt")
	m.cgRSS, m.cgMapped, m.cgCache = s["total_rss"], s["total_mapped_file"], s["total_cache"]
	b, _ := os.ReadFile(filepath.Join(cg.dir, "memory.oom_control"))
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "oom_kill "); ok {
			m.cgOOM, _ = strconv.ParseInt(v, 10, 64)
		}
	}
}

func getJSON(ctx context.Context, addr, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// procCPU is a process's user+system CPU time (0 for pid 0).
func procCPU(pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

func parseSize(s string) (int64, error) {
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"G", 1 << 30}, {"M", 1 << 20}} {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			v, err := strconv.ParseInt(n, 10, 64)
			return v * u.mult, err
		}
	}
	return strconv.ParseInt(s, 10, 64)
}

// profiler takes the profiles of --profiles from the running connector.
type profiler struct {
	o          options
	c          *config
	start      time.Time
	lastHeap   time.Time
	heapPeak   int64
	cpuStarted bool
	cpuDone    chan struct{}
	traced     bool
}

func (p *profiler) maybe(ctx context.Context, peakAnon int64) {
	if p.o.profiles == "" {
		return
	}
	if !p.cpuStarted && time.Since(p.start) > 20*time.Second {
		p.cpuStarted, p.cpuDone = true, make(chan struct{})
		go func() {
			defer close(p.cpuDone)
			p.fetch(ctx, "/debug/pprof/profile?seconds=30", "cpu.pb.gz")
		}()
	}
	if !p.traced && time.Since(p.start) > 60*time.Second {
		p.traced = true
		go p.fetch(ctx, "/debug/pprof/trace?seconds=5", "trace.out")
	}
	if peakAnon > p.heapPeak && time.Since(p.lastHeap) > 10*time.Second {
		p.heapPeak, p.lastHeap = peakAnon, time.Now()
		p.fetch(ctx, "/debug/pprof/heap", fmt.Sprintf("heap-%03.0fs-%dMiB.pb.gz", time.Since(p.start).Seconds(), peakAnon>>20))
	}
}

func (p *profiler) fetch(ctx context.Context, path, name string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.c.metrics+path, nil)
	if err != nil {
		return
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		log.Printf("profile %s: %v", path, err)
		return
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil {
		err = os.WriteFile(filepath.Join(p.o.profiles, name), b, 0o644)
	}
	if err != nil {
		log.Printf("profile %s: %v", path, err)
	}
}

func (p *profiler) wait() {
	if p.cpuDone != nil {
		<-p.cpuDone
	}
}

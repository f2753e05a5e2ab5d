package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/feedcdc/feedcdc/connector/check"
	"github.com/feedcdc/feedcdc/test/mysqltest"
)

// syncBuffer is a bytes.Buffer safe for a writer and a polling reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// runningCLI is `feedcdc run` in-process.
type runningCLI struct {
	stderr *syncBuffer
	cancel context.CancelFunc
	done   chan int
}

func startRun(t *testing.T, cfg string) *runningCLI {
	t.Helper()
	return startRunWithin(t, cfg, 3*time.Minute)
}

// startRunWithin is startRun for a run stopped after d at the latest.
func startRunWithin(t *testing.T, cfg string, d time.Duration) *runningCLI {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	r := &runningCLI{stderr: &syncBuffer{}, cancel: cancel, done: make(chan int, 1)}
	go func() {
		r.done <- Main(ctx, []string{"run", "--log-format", "text", "-c", cfg}, strings.NewReader(""), io.Discard, r.stderr)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(time.Minute):
		}
	})
	return r
}

// exit waits for run to end by itself and returns its exit code.
func (r *runningCLI) exit(t *testing.T, within time.Duration) int {
	t.Helper()
	select {
	case code := <-r.done:
		r.done <- code
		return code
	case <-time.After(within):
		t.Fatalf("run still running after %s; stderr:\n%s", within, r.stderr.String())
		return -1
	}
}

// stop cancels run and returns its exit code.
func (r *runningCLI) stop(t *testing.T) int {
	t.Helper()
	r.cancel()
	return r.exit(t, time.Minute)
}

// preflightConfig writes a raw-streams-only configuration capturing db.*
// on addr as user.
func preflightConfig(t *testing.T, s *mysqltest.Server, user, password, db, maxLag string) (cfg, outDir string) {
	t.Helper()
	cfg, dir := cliConfig{Name: "pftest", Env: "PF", Server: s, User: user, Password: password, ServerID: 777101, Database: db,
		Source:   []string{fmt.Sprintf("include_tables: [\"%s.*\"]", db), "reconnect_min: 100ms", "reconnect_max: 1s", "tls: {mode: disabled}"},
		Feeds:    noFeeds,
		MaxLag:   maxLag,
		FileSink: []string{"envelope: true"},
		Sections: "raw:\n  enabled: true\n"}.write(t)
	return cfg, filepath.Join(dir, "out")
}

// checkJSON runs `check --json` and returns its exit code and results.
func checkJSON(t *testing.T, cfg string) (int, []check.Result) {
	t.Helper()
	code, out, errOut := run(t, nil, "check", "--json", "-c", cfg)
	var rs []check.Result
	if err := json.Unmarshal([]byte(out), &rs); err != nil {
		t.Fatalf("check --json: %v\n%s\n%s", err, out, errOut)
	}
	// The schema is stable: every object has exactly name, status, message, fix.
	var raw []map[string]any
	if err := json.Unmarshal([]byte(out), &raw); err != nil {
		t.Fatal(err)
	}
	for _, o := range raw {
		for _, k := range []string{"name", "status", "message", "fix"} {
			if _, ok := o[k]; !ok || len(o) != 4 {
				t.Fatalf("check --json object %v lacks %q or has other keys", o, k)
			}
		}
	}
	return code, rs
}

func statusOf(rs []check.Result, name string) check.Status {
	for _, r := range rs {
		if r.Name == name {
			return r.Status
		}
	}
	return ""
}

func jsonlFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, "*.jsonl"))
	return m
}

// agree runs check and run on one configuration and asserts they agree:
// a check FAIL stops run before it reads or writes anything, with check's
// message and fix; without a FAIL run starts and logs check's WARNs.
// It returns check's results and the running run (nil when it failed).
func agree(t *testing.T, cfg, outDir string) ([]check.Result, *runningCLI) {
	t.Helper()
	code, rs := checkJSON(t, cfg)
	var fails, warns []check.Result
	for _, r := range rs {
		switch r.Status {
		case check.Fail:
			fails = append(fails, r)
		case check.Warn:
			warns = append(warns, r)
		}
	}
	if (code != 0) != (len(fails) > 0) {
		t.Fatalf("check exit %d with %d FAILs: %+v", code, len(fails), rs)
	}
	r := startRun(t, cfg)
	if len(fails) > 0 {
		if code := r.exit(t, 2*time.Minute); code == 0 {
			t.Fatalf("check FAILs %+v but run exited 0:\n%s", fails, r.stderr.String())
		}
		errOut := r.stderr.String()
		for _, f := range fails {
			if !strings.Contains(errOut, f.Name+": "+f.Message) || !strings.Contains(errOut, "fix: "+f.Fix) {
				t.Errorf("run's error lacks check's FAIL %q: %q (fix %q):\n%s", f.Name, f.Message, f.Fix, errOut)
			}
		}
		if strings.Contains(errOut, "preflight passed") || strings.Contains(errOut, "first start") || len(jsonlFiles(t, outDir)) > 0 {
			t.Fatalf("run went past the preflight:\n%s", errOut)
		}
		return rs, nil
	}
	waitFor(t, "run's preflight to pass", 2*time.Minute, func() bool {
		return strings.Contains(r.stderr.String(), "preflight passed")
	})
	errOut := r.stderr.String()
	for _, w := range warns {
		if !strings.Contains(errOut, w.Name) || !strings.Contains(errOut, w.Fix) {
			t.Errorf("run did not log check's WARN %q (%s):\n%s", w.Name, w.Fix, errOut)
		}
	}
	return rs, r
}

func TestRunAndCheckAgreeOnBadServers(t *testing.T) {
	cases := []struct {
		name  string
		args  []string
		check string
		skips []string
	}{
		{"statement format", []string{"--binlog-format=STATEMENT"}, "binlog format", nil},
		{"binlog off", []string{"--skip-log-bin"}, "binary log",
			[]string{"binlog format", "binlog row image", "binlog row metadata", "GTID", "binlog retention"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			s, err := mysqltest.Start(ctx, mysqltest.Options{Args: c.args})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Stop()
			db := s.NewDatabase(t, "pf")
			s.Exec(t, db, "CREATE TABLE items (id INT PRIMARY KEY, sku VARCHAR(32))")
			cfg, out := preflightConfig(t, s, s.CDCUser, s.CDCPassword, db, "0s")
			rs, _ := agree(t, cfg, out)
			if st := statusOf(rs, c.check); st != check.Fail {
				t.Fatalf("%s: %s, want FAIL: %+v", c.check, st, rs)
			}
			for _, n := range c.skips {
				if st := statusOf(rs, n); st != check.Skip {
					t.Errorf("%s: %s, want SKIP with the binlog off", n, st)
				}
			}
		})
	}
}

func TestRunAndCheckAgreeOnGrantsAndKeys(t *testing.T) {
	admin := srv.Admin(t, "")
	mkUser := func(name, grants string) {
		for _, h := range []string{"127.0.0.1", "localhost", "%"} {
			u := fmt.Sprintf("'%s'@'%s'", name, h)
			for _, q := range []string{"DROP USER IF EXISTS " + u, "CREATE USER " + u + " IDENTIFIED BY 'pfpw'", "GRANT " + grants + " ON *.* TO " + u} {
				if _, err := admin.Exec(q); err != nil {
					t.Fatal(err)
				}
			}
			t.Cleanup(func() { admin.Exec("DROP USER IF EXISTS " + u) })
		}
	}

	t.Run("user without REPLICATION SLAVE", func(t *testing.T) {
		mkUser("pf_norepl", "REPLICATION CLIENT, SELECT")
		db := srv.NewDatabase(t, "pf")
		srv.Exec(t, db, "CREATE TABLE items (id INT PRIMARY KEY)")
		cfg, out := preflightConfig(t, srv, "pf_norepl", "pfpw", db, "0s")
		rs, _ := agree(t, cfg, out)
		if statusOf(rs, "grants") != check.Fail {
			t.Fatalf("grants: %+v", rs)
		}
	})

	t.Run("table without any key", func(t *testing.T) {
		db := srv.NewDatabase(t, "pf")
		srv.Exec(t, db, "CREATE TABLE items (id INT PRIMARY KEY)",
			"CREATE TABLE nokey_log (msg VARCHAR(32), code INT, UNIQUE KEY code_u (code))") // nullable: no key
		cfg, out := preflightConfig(t, srv, srv.CDCUser, srv.CDCPassword, db, "0s")
		rs, _ := agree(t, cfg, out)
		if statusOf(rs, "captured tables") != check.Fail {
			t.Fatalf("captured tables: %+v", rs)
		}
	})

	t.Run("table keyed by a NOT NULL unique key, lag throttle without SLAVE MONITOR", func(t *testing.T) {
		db := srv.NewDatabase(t, "pf")
		srv.Exec(t, db, "CREATE TABLE items (id INT PRIMARY KEY)",
			"CREATE TABLE uk (sku VARCHAR(32) NOT NULL, name VARCHAR(32), UNIQUE KEY sku_u (sku))")
		cfg, out := preflightConfig(t, srv, srv.CDCUser, srv.CDCPassword, db, "10s")
		rs, r := agree(t, cfg, out)
		var tables check.Result
		for _, x := range rs {
			if x.Name == "captured tables" {
				tables = x
			}
		}
		if tables.Status != check.Pass || !strings.Contains(tables.Message, db+".uk by sku_u (sku)") {
			t.Fatalf("captured tables: %+v", tables)
		}
		if srv.Flavor == "mariadb" && statusOf(rs, "grants") != check.Warn {
			t.Fatalf("grants without SLAVE MONITOR and max_replica_lag 10s: %+v", rs)
		}
		// run keys the table's changes by the key check named.
		// run streams from the position current when it connects, which
		// comes after "preflight passed": write until a change arrives.
		var key string
		n := 0
		defer func() {
			if t.Failed() {
				t.Logf("run's stderr:\n%s", r.stderr.String())
				for _, f := range jsonlFiles(t, out) {
					b, _ := os.ReadFile(f)
					t.Logf("%s:\n%s", f, b)
				}
			}
		}()
		waitFor(t, "the raw change of uk", 2*time.Minute, func() bool {
			if n++; n%10 == 1 {
				srv.Exec(t, db, fmt.Sprintf("INSERT INTO uk VALUES ('A-%d', 'x')", n))
			}
			for _, f := range jsonlFiles(t, out) {
				b, _ := os.ReadFile(f)
				for _, line := range bytes.Split(b, []byte("\n")) {
					var env struct {
						Topic string `json:"topic"`
						Key   string `json:"key"`
					}
					if json.Unmarshal(line, &env) == nil && strings.HasSuffix(env.Topic, ".uk") {
						key = env.Key
						return true
					}
				}
			}
			return false
		})
		if !regexp.MustCompile(`^\{"sku":"A-\d+"\}$`).MatchString(key) {
			t.Logf("stderr:\n%s", r.stderr.String())
			t.Fatalf("raw key of uk is %q, want the unique key", key)
		}
		if code := r.stop(t); code != 0 {
			t.Fatalf("run exit %d:\n%s", code, r.stderr.String())
		}
	})
}

// TestRunWaitsForAnUnreachableSource: a source that refuses connections is
// transient for run (retried with backoff), not a FAIL that ends it.
func TestRunWaitsForAnUnreachableSource(t *testing.T) {
	db := srv.NewDatabase(t, "pf")
	srv.Exec(t, db, "CREATE TABLE items (id INT PRIMARY KEY)")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close() // nothing listens here now: connection refused
	cfg, _ := preflightConfig(t, srv, srv.CDCUser, srv.CDCPassword, db, "0s")
	b, _ := os.ReadFile(cfg)
	os.WriteFile(cfg, bytes.Replace(b, []byte(fmt.Sprintf("port: %d", srv.Port)), []byte(fmt.Sprintf("port: %d", port)), 1), 0o600)

	r := startRun(t, cfg)
	waitFor(t, "two preflight retries", time.Minute, func() bool {
		return strings.Count(r.stderr.String(), "the source cannot be reached; retrying") >= 2
	})
	select {
	case code := <-r.done:
		t.Fatalf("run gave up on a refused connection (exit %d):\n%s", code, r.stderr.String())
	default:
	}
	// The source comes up on that port (a forwarder to the private server).
	ln, err = net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatalf("port %d taken meanwhile: %v", port, err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				u, err := net.Dial("tcp", srv.Addr())
				if err != nil {
					return
				}
				defer u.Close()
				go io.Copy(u, c)
				io.Copy(c, u)
			}()
		}
	}()
	waitFor(t, "the preflight to pass once the source is up", 2*time.Minute, func() bool {
		return strings.Contains(r.stderr.String(), "preflight passed")
	})
	if code := r.stop(t); code != 0 {
		t.Fatalf("run exit %d:\n%s", code, r.stderr.String())
	}
}

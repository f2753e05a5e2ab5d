package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/feedcdc/feedcdc/test/catalog"
	"github.com/feedcdc/feedcdc/test/mysqltest"
)

// positionConfig writes a configuration for server s: raw streams of
// db.rawt to a file sink, the four feeds on db when withFeeds (else
// disabled), plus extra source: lines.
func positionConfig(t *testing.T, s *mysqltest.Server, db string, withFeeds bool) (cfgPath, outDir string) {
	t.Helper()
	c := cliConfig{Name: "pos", Server: s, ServerID: 777002, Database: db,
		Source:   []string{"heartbeat: 1s", "read_timeout: 10s", fmt.Sprintf("include_tables: [\"%s.rawt\"]", db)},
		Sections: "raw:\n  enabled: true\n  tombstones: false\n"}
	if !withFeeds {
		c.Feeds = noFeeds
	}
	cfgPath, dir := c.write(t)
	return cfgPath, filepath.Join(dir, "out")
}

// startCLI runs the CLI in the background (e.g. `run`) until stop, which
// cancels it as SIGTERM does and returns its exit code and stderr.
func startCLI(args ...string) (stop func() (int, string)) {
	ctx, cancel := context.WithCancel(context.Background())
	var out, errb bytes.Buffer
	done := make(chan int, 1)
	go func() { done <- Main(ctx, args, strings.NewReader(""), &out, &errb) }()
	return func() (int, string) {
		cancel()
		code := <-done
		return code, errb.String()
	}
}

type positionJSON struct {
	Checkpoint *struct {
		GTIDSet string `json:"gtid_set"`
		File    string `json:"file"`
		Pos     uint32 `json:"pos"`
	}
	StoredAt   time.Time `json:"stored_at"`
	AgeSeconds float64   `json:"age_seconds"`
	Server     *struct {
		Available bool
		Files     []string
	}
	History []struct {
		Command string
	}
}

func showPosition(t *testing.T, cfg string) positionJSON {
	t.Helper()
	code, out, errOut := run(t, nil, "position", "show", "--json", "-c", cfg)
	if code != 0 {
		t.Fatalf("position show: exit %d\n%s", code, errOut)
	}
	var p positionJSON
	if err := json.Unmarshal([]byte(out), &p); err != nil {
		t.Fatalf("position show --json: %v\n%s", err, out)
	}
	return p
}

// TestPositionCommands: position show/set/reset with --dry-run, bad input,
// the history status shows, refusal while `run` holds the state file, and
// the final checkpoint `run` stores when stopped (as by SIGTERM).
func TestPositionCommands(t *testing.T) {
	db := srv.NewDatabase(t, "poscmd")
	srv.Exec(t, db, "CREATE TABLE rawt (id INT PRIMARY KEY, v INT NOT NULL)")
	cfg, _ := positionConfig(t, srv, db, false)

	code, out, errOut := run(t, nil, "position", "show", "-c", cfg)
	if code != 0 || !strings.Contains(out, "checkpoint   none") {
		t.Fatalf("show without a checkpoint: exit %d\n%s%s", code, out, errOut)
	}
	code, out, _ = run(t, nil, "position", "set", "current", "--dry-run", "-c", cfg)
	if code != 0 || !strings.Contains(out, "dry run: would move the checkpoint from none to ") {
		t.Fatalf("set --dry-run: exit %d\n%s", code, out)
	}
	if p := showPosition(t, cfg); p.Checkpoint != nil {
		t.Fatalf("--dry-run stored a checkpoint: %+v", p.Checkpoint)
	}
	code, out, errOut = run(t, nil, "position", "set", "current", "-c", cfg)
	if code != 0 || !strings.Contains(out, "checkpoint moved from none to ") {
		t.Fatalf("set current: exit %d\n%s%s", code, out, errOut)
	}
	p := showPosition(t, cfg)
	if p.Checkpoint == nil || p.Checkpoint.GTIDSet == "" || p.Server == nil || !p.Server.Available || len(p.History) != 1 || p.History[0].Command != "feedcdc position set current" {
		t.Fatalf("after set current: %+v", p)
	}
	code, out, _ = run(t, nil, "position", "show", "-c", cfg)
	if code != 0 || !strings.Contains(out, "on server    yes") || !strings.Contains(out, "by feedcdc position set current: none -> ") {
		t.Fatalf("show:\n%s", out)
	}

	// Bad input names what is wrong and changes nothing.
	for _, bad := range []struct{ arg, want string }{
		{"somewhere", "<file>:<pos>"},
		{"gtid:", "empty GTID set"},
		{"nosuchfile.000099:4", "nosuchfile.000099 is no longer on the server"},
	} {
		code, _, errOut = run(t, nil, "position", "set", bad.arg, "-c", cfg)
		if code == 0 || !strings.Contains(errOut, bad.want) {
			t.Errorf("set %s: exit %d, want an error naming %q:\n%s", bad.arg, code, bad.want, errOut)
		}
	}
	if q := showPosition(t, cfg); q.Checkpoint == nil || *q.Checkpoint != *p.Checkpoint {
		t.Fatalf("a refused set changed the checkpoint: %+v", q.Checkpoint)
	}

	// file:pos and earliest.
	first := p.Server.Files[0]
	code, _, errOut = run(t, nil, "position", "set", first+":4", "-c", cfg)
	if q := showPosition(t, cfg); code != 0 || q.Checkpoint.File != first || q.Checkpoint.Pos != 4 {
		t.Fatalf("set %s:4: exit %d, checkpoint %+v\n%s", first, code, q.Checkpoint, errOut)
	}
	code, _, errOut = run(t, nil, "position", "set", "earliest", "-c", cfg)
	if q := showPosition(t, cfg); code != 0 || q.Checkpoint.File != first || q.Checkpoint.Pos != 4 || len(q.History) != 3 {
		t.Fatalf("set earliest: exit %d, %+v\n%s", code, q, errOut)
	}

	// reset: --dry-run keeps it; reset removes it, status shows who.
	code, out, _ = run(t, nil, "position", "reset", "--dry-run", "-c", cfg)
	if q := showPosition(t, cfg); code != 0 || !strings.Contains(out, "dry run: would remove") || q.Checkpoint == nil {
		t.Fatalf("reset --dry-run: exit %d\n%s\n%+v", code, out, q)
	}
	code, out, _ = run(t, nil, "position", "reset", "-c", cfg)
	if q := showPosition(t, cfg); code != 0 || !strings.Contains(out, "removed; item state kept") || q.Checkpoint != nil {
		t.Fatalf("reset: exit %d\n%s\n%+v", code, out, q)
	}
	code, out, _ = run(t, nil, "status", "-c", cfg)
	if code != 0 || !strings.Contains(out, "checkpoint none (the next start is a first start)") || !strings.Contains(out, "last position change") || !strings.Contains(out, "by feedcdc position reset") {
		t.Fatalf("status after reset:\n%s", out)
	}

	// While `run` holds the state file the commands refuse, naming the
	// remedy, and change nothing.
	stop := startCLI("run", "-c", cfg)
	deadline := time.Now().Add(time.Minute)
	for {
		code, _, errOut = run(t, nil, "position", "reset", "-c", cfg)
		if code != 0 && strings.Contains(errOut, "stop `feedcdc run` first") {
			break
		}
		if time.Now().After(deadline) {
			c, e := stop()
			t.Fatalf("position reset while run runs: exit %d\n%s\nrun: exit %d\n%s", code, errOut, c, e)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if code, _, errOut := run(t, nil, "position", "set", "current", "-c", cfg); code == 0 || !strings.Contains(errOut, "in use by pid") || !strings.Contains(errOut, "stop `feedcdc run` first") {
		t.Errorf("position set current while run runs: exit %d\n%s", code, errOut)
	}
	// position show goes through the running connector's dashboard, which
	// this configuration disables (TestCLIThroughRunningConnector shows it
	// working).
	if code, _, errOut := run(t, nil, "position", "show", "-c", cfg); code == 0 || !strings.Contains(errOut, "dashboard.enabled: true") || !strings.Contains(errOut, "(pid ") {
		t.Errorf("position show while run runs without a dashboard: exit %d\n%s", code, errOut)
	}
	time.Sleep(1500 * time.Millisecond)
	stopAt := time.Now()
	if code, errOut := stop(); code != 0 {
		t.Fatalf("run: exit %d\n%s", code, errOut)
	}
	// run (a first start after the reset) stored a checkpoint at once, and
	// again when stopped.
	q := showPosition(t, cfg)
	if q.Checkpoint == nil || q.StoredAt.Before(stopAt) {
		t.Fatalf("after run stopped: checkpoint %+v stored %s, stop at %s", q.Checkpoint, q.StoredAt, stopAt)
	}
}

// purgeBinlogs makes server s purge every binlog file before the current
// one (MariaDB may keep a file its binlog checkpoint still needs: retried).
func purgeBinlogs(t *testing.T, s *mysqltest.Server) {
	t.Helper()
	admin := s.Admin(t, "")
	if _, err := admin.Exec("FLUSH BINARY LOGS"); err != nil {
		t.Fatal(err)
	}
	var cur string
	var pos int64
	var a, b any
	if err := admin.QueryRow("SHOW MASTER STATUS").Scan(&cur, &pos, &a, &b); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
		if _, err := admin.Exec(fmt.Sprintf("PURGE BINARY LOGS TO '%s'", cur)); err != nil {
			t.Fatal(err)
		}
		var first string
		var size any
		if err := admin.QueryRow("SHOW BINARY LOGS").Scan(&first, &size); err != nil {
			t.Fatal(err)
		}
		if first == cur {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("binlogs before %s not purged", cur)
		}
	}
}

// TestPurgedPositionRemedyFollowedLiterally: after PURGE BINARY LOGS past
// the checkpoint, `run` fails (source.on_purged_position: fail) and prints
// commands; running them as printed ends with a connector that streams,
// with every feed fully synced.
func TestPurgedPositionRemedyFollowedLiterally(t *testing.T) {
	ctx := context.Background()
	sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	s, err := mysqltest.Start(sctx, mysqltest.Options{})
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop() })
	db := s.NewDatabase(t, "remedy")
	if _, err := catalog.Load(ctx, s.Admin(t, db), catalog.Tiny(), 8); err != nil {
		t.Fatal(err)
	}
	s.Exec(t, db, "CREATE TABLE rawt (id INT PRIMARY KEY, v INT NOT NULL)")
	cfg, out := positionConfig(t, s, db, true)
	if code, _, errOut := run(t, nil, "position", "set", "current", "-c", cfg); code != 0 {
		t.Fatalf("position set current: %s", errOut)
	}
	s.Exec(t, db, "INSERT INTO rawt VALUES (1, 1)")
	purgeBinlogs(t, s)

	code, _, errOut := run(t, nil, "run", "-c", cfg)
	if code == 0 || !strings.Contains(errOut, "no longer available") || !strings.Contains(errOut, "To recover, run these commands in order") {
		t.Fatalf("run after the purge: exit %d\n%s", code, errOut)
	}
	t.Logf("run after the purge:\n%s", errOut)
	var cmds [][]string
	for _, l := range strings.Split(errOut, "\n") {
		if rest, ok := strings.CutPrefix(l, "  feedcdc "); ok {
			cmds = append(cmds, strings.Fields(rest))
		}
	}
	if len(cmds) != 6 || strings.Join(cmds[len(cmds)-1][:1], "") != "run" {
		t.Fatalf("remedy commands %q: want position set, four resyncs, run", cmds)
	}
	for _, c := range cmds[:len(cmds)-1] {
		if code, out, errOut := run(t, nil, c...); code != 0 {
			t.Fatalf("feedcdc %s: exit %d\n%s%s", strings.Join(c, " "), code, out, errOut)
		}
	}
	stop := startCLI(cmds[len(cmds)-1]...)
	s.Exec(t, db, "INSERT INTO rawt VALUES (2, 2)")
	rawFile := filepath.Join(out, "pos."+db+".rawt.jsonl")
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
		b, _ := os.ReadFile(rawFile)
		if bytes.Contains(b, []byte(`"id":2`)) {
			break
		}
		if time.Now().After(deadline) {
			code, errOut := stop()
			t.Fatalf("the connector started by the remedy did not stream (exit %d)\n%s", code, errOut)
		}
	}
	if code, errOut := stop(); code != 0 {
		t.Fatalf("run: exit %d\n%s", code, errOut)
	}
	code, so, _ := run(t, nil, "status", "--json", "-c", cfg)
	var st struct {
		Feeds []struct {
			Name   string
			Counts struct{ Total, Sent int64 }
			Resync *struct {
				FinishedAt time.Time `json:"finished_at"`
			}
		}
	}
	if err := json.Unmarshal([]byte(so), &st); code != 0 || err != nil || len(st.Feeds) != 4 {
		t.Fatalf("status: exit %d %v\n%s", code, err, so)
	}
	for _, f := range st.Feeds {
		if f.Resync == nil || f.Resync.FinishedAt.IsZero() || f.Counts.Total == 0 || f.Counts.Sent != f.Counts.Total {
			t.Errorf("feed %s after the remedy: %+v", f.Name, f)
		}
	}
}

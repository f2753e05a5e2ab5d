package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSnapshotCommand requests raw snapshots with feedcdc snapshot: stored
// for the next run while no connector runs, through the running
// connector's API (with the token) while one does; every row is then in
// the table's raw stream as an op "r" record, and status reports the
// progress. Bad requests name what is wrong.
func TestSnapshotCommand(t *testing.T) {
	db := srv.NewDatabase(t, "snapcli")
	admin := srv.Admin(t, db)
	if _, err := admin.Exec("CREATE TABLE t (id INT PRIMARY KEY, v INT NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec("INSERT INTO t SELECT seq, seq * 10 FROM seq_1_to_50"); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	y := fmt.Sprintf(`name: snapcli
source:
  host: 127.0.0.1
  port: %d
  user: %s
  password_env: CLI_SOURCE_PASSWORD
  server_id: 779301
  heartbeat: 1s
  include_tables: ["%s.t"]
state:
  path: %s
feeds:
  database: %s
  products: {enabled: false}
  productAttributes: {enabled: false}
  variants: {enabled: false}
  productOverrides: {enabled: false}
raw:
  enabled: true
  tombstones: false
  snapshot_chunk_size: 7
resync:
  max_replica_lag: 0s
  rows_per_second: 0
sinks:
  files:
    type: file
    file:
      dir: %s
      fsync: false
telemetry:
  listen: ""
dashboard:
  enabled: true
  listen: 127.0.0.1:%d
`, srv.Port, srv.CDCUser, db, filepath.Join(dir, "state.db"), db, filepath.Join(dir, "out"), freePort(t))
	cfg := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfg, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CLI_SOURCE_PASSWORD", srv.CDCPassword)
	t.Setenv("FEEDCDC_DASHBOARD_TOKEN", "snap-s3cret")

	// No connector runs: the request is stored for the next run.
	code, out, errOut := run(t, nil, "snapshot", "--table", db+".t", "--where", "id <= 20", "-c", cfg)
	if code != 0 || !strings.Contains(out, "the next 'feedcdc run' performs it") {
		t.Fatalf("snapshot while stopped: exit %d\n%s\n%s", code, out, errOut)
	}
	code, out, _ = run(t, nil, "snapshot", "--list", "-c", cfg)
	if code != 0 || !strings.Contains(out, db+".t: running (incremental), read 0") || !strings.Contains(out, "where id <= 20") {
		t.Fatalf("snapshot --list: exit %d\n%s", code, out)
	}
	for _, bad := range []struct {
		args []string
		want string
	}{
		{[]string{"--table", db + ".nope"}, "is not captured"},
		{[]string{"--table", db + ".t"}, "already running"},
		{[]string{"--table", "t"}, "name it as db.table"},
		{[]string{}, "--table db.table is required"},
		{[]string{"--table", db + ".t", "--pause", "--stop"}, "use one of --pause, --resume, --stop"},
	} {
		code, out, errOut := run(t, nil, append([]string{"snapshot", "-c", cfg}, bad.args...)...)
		if code == 0 || !strings.Contains(errOut, bad.want) {
			t.Errorf("snapshot %v: exit %d, want an error saying %q\n%s\n%s", bad.args, code, bad.want, out, errOut)
		}
	}

	startRun(t, cfg)
	rawFile := filepath.Join(dir, "out", "snapcli."+db+".t.jsonl")
	snapshotDone := func(seq float64) func() bool {
		return func() bool {
			code, m, _ := statusJSON(t, cfg)
			if code != 0 {
				return false
			}
			snaps, _ := m["raw_snapshots"].([]any)
			for _, s := range snaps {
				s := s.(map[string]any)
				if s["table"] == db+".t" && s["seq"] == seq && s["state"] == "done" {
					return true
				}
			}
			return false
		}
	}
	waitFor(t, "the stored snapshot", time.Minute, snapshotDone(1))
	if n := countReads(t, rawFile); n != 20 {
		t.Fatalf("%d op r records after the first snapshot, want 20", n)
	}
	// While run runs, the request goes through the API, with the token.
	code, _, errOut = run(t, map[string]string{"FEEDCDC_DASHBOARD_TOKEN": ""}, "snapshot", "--table", db+".t", "-c", cfg)
	if code == 0 || !strings.Contains(errOut, "needs the dashboard token") {
		t.Fatalf("snapshot without the token: exit %d\n%s", code, errOut)
	}
	t.Setenv("FEEDCDC_DASHBOARD_TOKEN", "snap-s3cret")
	code, out, errOut = run(t, nil, "snapshot", "--table", db+".t", "-c", cfg)
	if code != 0 || !strings.Contains(out, "started in the running connector") {
		t.Fatalf("snapshot through the running connector: exit %d\n%s\n%s", code, out, errOut)
	}
	waitFor(t, "the second snapshot", time.Minute, snapshotDone(2))
	if n := countReads(t, rawFile); n != 70 {
		t.Fatalf("%d op r records after both snapshots, want 20 + 50", n)
	}
	code, _, errOut = run(t, nil, "snapshot", "--table", db+".t", "--pause", "-c", cfg)
	if code == 0 || !strings.Contains(errOut, "is done already") {
		t.Fatalf("pause of a finished snapshot: exit %d\n%s", code, errOut)
	}
	code, out, _ = run(t, nil, "status", "-c", cfg)
	if code != 0 || !strings.Contains(out, "raw snapshot of "+db+".t: done (incremental), read 50") {
		t.Fatalf("status: exit %d\n%s", code, out)
	}
}

// countReads counts the op "r" records of a raw stream file.
func countReads(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if strings.Contains(sc.Text(), `"op":"r"`) {
			n++
		}
	}
	return n
}

package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/feedcdc/feedcdc/change"
	"github.com/feedcdc/feedcdc/config"
	"github.com/feedcdc/feedcdc/connector"
	"github.com/feedcdc/feedcdc/internal/runner"
	"github.com/feedcdc/feedcdc/state"
	"github.com/feedcdc/feedcdc/test/catalog"
)

// writeStateFile writes a state file at path with n product items and a
// checkpoint, and returns the bytes its last transaction uses.
func writeStateFile(t *testing.T, path string, n int) int64 {
	t.Helper()
	ctx := context.Background()
	st, err := state.Open(path, state.Options{Command: "feedcdc test", NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i += 500 {
		var items []state.Item
		for j := i; j < min(n, i+500); j++ {
			sku := fmt.Sprintf("sku-%05d", j)
			items = append(items, state.Item{Feed: "products", ID: fmt.Sprintf("%040x", sha256.Sum256([]byte(sku)))[:40],
				EntityKey: fmt.Sprint(j), Identity: map[string]string{"sku": sku, "storeViewCode": "default"},
				Hash: fmt.Sprintf("%040d", j), Status: state.StatusSent})
		}
		err := st.Update(ctx, func(tx *state.Tx) error {
			if err := tx.PutItems(items); err != nil {
				return err
			}
			return tx.SetCheckpoint(change.Position{File: "mariadb-bin.000001", Pos: uint32(4 + i)}, time.Now())
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := state.CheckFile(ctx, path, state.Options{})
	if err != nil || !r.OK() {
		t.Fatalf("fixture does not pass the check: %+v %v", r, err)
	}
	return r.HighWater
}

// stateDamages are the damaged files users met. Truncation is relative to
// the part of the file in use (bbolt grows files in steps of up to 16 MiB of
// unused space).
var stateDamages = []struct {
	name  string
	apply func(t *testing.T, path string, used int64)
}{
	{"truncated to 50%", func(t *testing.T, path string, used int64) { truncate(t, path, used/2) }},
	{"truncated to 20%", func(t *testing.T, path string, used int64) { truncate(t, path, used/5) }},
	{"truncated to 1 page", func(t *testing.T, path string, used int64) { truncate(t, path, 4096) }},
	{"0 bytes", func(t *testing.T, path string, used int64) { truncate(t, path, 0) }},
	{"10 random pages overwritten", func(t *testing.T, path string, used int64) {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		r := rand.New(rand.NewPCG(7, 8))
		for _, p := range r.Perm(int(used / 4096))[:10] {
			for i := p * 4096; i < (p+1)*4096; i++ {
				b[i] = byte(r.Uint32())
			}
		}
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}},
}

func truncate(t *testing.T, path string, size int64) {
	t.Helper()
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
}

// damagedStateCommands are the commands that open the state file: each
// must fail with the file's name and the remedy on a damaged file.
var damagedStateCommands = [][]string{
	{"run"},
	{"status"},
	{"resync", "--feed", "products"},
	{"retry", "--feed", "products"},
	{"state", "check"},
	{"state", "backup", "BACKUP"},
	{"position", "show"},
	{"position", "set", "current", "--dry-run"},
	{"position", "reset", "--dry-run"},
}

// TestDamagedStateFileGivesClearErrorInEveryCommand: before the state
// package validated files, these crashed with SIGBUS (which kills this test
// binary, as the commands run in-process) or "panic: assertion failed:
// Page expected to be", or took a 0-byte file as a new state.
func TestDamagedStateFileGivesClearErrorInEveryCommand(t *testing.T) {
	for _, d := range stateDamages {
		for _, args := range damagedStateCommands {
			t.Run(d.name+"/"+strings.Join(args, " "), func(t *testing.T) {
				cfg := writeConfig(t, "")
				path := filepath.Join(filepath.Dir(cfg), "state.db")
				used := writeStateFile(t, path, 3000)
				d.apply(t, path, used)
				before, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				backup := filepath.Join(t.TempDir(), "backup.db")
				cmd := append([]string{}, args...)
				for i := range cmd {
					if cmd[i] == "BACKUP" {
						cmd[i] = backup
					}
				}
				code, out, errOut := run(t, nil, append(cmd, "-c", cfg)...)
				if code == 0 {
					t.Fatalf("exit 0\n%s\n%s", out, errOut)
				}
				for _, want := range []string{"state file " + path + " ", "left unchanged", "feedcdc state backup", "feedcdc run --new-state", "full sync"} {
					if !strings.Contains(errOut, want) {
						t.Fatalf("stderr lacks %q:\n%s", want, errOut)
					}
				}
				if strings.Contains(errOut, "panic") || strings.Contains(errOut, "goroutine ") {
					t.Fatalf("stderr shows a panic:\n%s", errOut)
				}
				after, err := os.ReadFile(path)
				if err != nil || !bytes.Equal(before, after) {
					t.Fatalf("the damaged file changed (%v)", err)
				}
				if _, err := os.Stat(backup); !os.IsNotExist(err) {
					t.Fatalf("a backup of a damaged file was written: %v", err)
				}
			})
		}
	}
}

func TestStateCheckPassAndFail(t *testing.T) {
	cfg := writeConfig(t, "")
	path := filepath.Join(filepath.Dir(cfg), "state.db")
	used := writeStateFile(t, path, 3000)
	code, out, errOut := run(t, nil, "state", "check", "-c", cfg)
	if code != 0 || !strings.Contains(out, "PASS  state file is consistent") || !strings.Contains(out, "items products: 3000") ||
		!strings.Contains(out, "checkpoint mariadb-bin.000001:") {
		t.Fatalf("good file: exit %d\n%s\n%s", code, out, errOut)
	}
	stateDamages[4].apply(t, path, used) // 10 random pages overwritten
	code, out, errOut = run(t, nil, "state", "check", "-c", cfg)
	if code != 1 || !strings.Contains(out, "FAIL  state file is damaged") || !strings.Contains(out, "FAIL  broken pages in") ||
		!strings.Contains(out, "feeds/products/") || !strings.Contains(errOut, "feedcdc run --new-state") {
		t.Fatalf("damaged file: exit %d\n%s\n%s", code, out, errOut)
	}
}

// runningConnector starts `feedcdc run` in-process (with the dashboard and
// a token) on a fresh catalog database db of the private mariadbd, waits
// for its first full sync, and returns it with its config file. The
// connector's exit error is sent on the returned channel; the test's
// cleanup stops it.
func runningConnector(t *testing.T, db string, serverID int) (*connector.Connector, *config.Config, string, <-chan error) {
	t.Helper()
	ctx := context.Background()
	admin := srv.Admin(t, "")
	if _, err := admin.Exec(fmt.Sprintf("DROP DATABASE IF EXISTS %[1]s; CREATE DATABASE %[1]s CHARACTER SET utf8mb4", db)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Exec("DROP DATABASE IF EXISTS " + db) })
	if _, err := catalog.Load(ctx, srv.Admin(t, db), catalog.Tiny(), 5); err != nil {
		t.Fatal(err)
	}
	cfgPath, _ := cliConfig{Name: "bk", ServerID: serverID, Database: db,
		Dashboard: []string{"enabled: true", fmt.Sprintf("listen: 127.0.0.1:%d", freePort(t)), "token_env: BK_DASHBOARD_TOKEN"}}.write(t)
	t.Setenv("BK_DASHBOARD_TOKEN", "bk-token")
	cfg, err := config.Load(cfgPath, os.Environ())
	if err != nil {
		t.Fatal(err)
	}
	var conn *connector.Connector
	ready := make(chan struct{})
	runCtx, cancel := context.WithCancel(ctx)
	runErr := make(chan error, 1)
	exited := make(chan error, 1)
	go func() {
		err := runner.Run(runCtx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), Version,
			&runner.Hooks{OnReady: func(c *connector.Connector, _ change.Position, _ bool) { conn = c; close(ready) }})
		runErr <- err
		exited <- err
	}()
	t.Cleanup(func() {
		cancel()
		<-exited
	})
	select {
	case <-ready:
	case err := <-runErr:
		t.Fatalf("connector: %v", err)
	}
	waitFor(t, "the first-start full sync", 2*time.Minute, func() bool {
		for _, f := range cfg.EnabledFeeds() {
			if p, ok, _ := conn.Store.Progress(ctx, f); !ok || !p.Finished() {
				return false
			}
		}
		return true
	})
	return conn, cfg, cfgPath, runErr
}

// TestStateBackupAndCheckWhileRunning backs up and checks the state file of
// a connector that runs (and holds the file) against the private mariadbd.
func TestStateBackupAndCheckWhileRunning(t *testing.T) {
	ctx := context.Background()
	conn, cfg, cfgPath, runErr := runningConnector(t, "bkshop", 779001)
	t.Cleanup(func() {
		select {
		case err := <-runErr:
			t.Errorf("connector stopped: %v", err)
		default:
		}
	})
	// A change streamed after the full sync stores a checkpoint.
	if _, err := srv.Admin(t, "bkshop").Exec("UPDATE catalog_product_entity SET updated_at = NOW() ORDER BY entity_id LIMIT 1"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a checkpoint", 2*time.Minute, func() bool {
		_, _, ok, _ := conn.Store.Checkpoint(ctx)
		return ok
	})
	livePos, _, _, err := conn.Store.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	live := map[string]state.Counts{}
	for _, f := range cfg.EnabledFeeds() {
		if live[f], err = conn.Store.Counts(ctx, f); err != nil {
			t.Fatal(err)
		}
	}
	if live["products"].Total == 0 {
		t.Fatalf("the full sync stored no products: %+v", live)
	}

	backup := filepath.Join(t.TempDir(), "backup.db")
	code, out, errOut := run(t, nil, "state", "backup", backup, "-c", cfgPath)
	if code != 0 || !strings.Contains(out, "the copy passed the check") {
		t.Fatalf("state backup: exit %d\n%s\n%s", code, out, errOut)
	}
	cp, err := state.OpenReadOnly(backup, state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	// The connector may store a newer checkpoint meanwhile (heartbeats):
	// the copy holds the one before or the one after the backup.
	livePos2, _, _, _ := conn.Store.Checkpoint(ctx)
	pos, _, ok, err := cp.Checkpoint(ctx)
	if err != nil || !ok || (pos.String() != livePos.String() && pos.String() != livePos2.String()) {
		t.Fatalf("backup checkpoint %v (%v, %v), live %v then %v", pos, ok, err, livePos, livePos2)
	}
	for f, want := range live {
		if got, err := cp.Counts(ctx, f); err != nil || got != want {
			t.Fatalf("feed %s: backup counts %+v (%v), live %+v", f, got, err, want)
		}
	}

	code, out, errOut = run(t, nil, "state", "check", "-c", cfgPath)
	if code != 0 || !strings.Contains(out, "PASS  state file is consistent") || !strings.Contains(out, fmt.Sprintf("items products: %d", live["products"].Total)) {
		t.Fatalf("state check while running: exit %d\n%s\n%s", code, out, errOut)
	}
	// Without the token the running connector refuses both.
	t.Setenv("BK_DASHBOARD_TOKEN", "wrong")
	code, _, errOut = run(t, nil, "state", "backup", backup+".2", "-c", cfgPath)
	if code == 0 || !strings.Contains(errOut, "token is wrong") {
		t.Fatalf("backup with a wrong token: exit %d\n%s", code, errOut)
	}
}

// TestStateDamagedUnderRunningConnectorStopsIt: the state file is
// overwritten under a running connector (another program, a bad restore);
// the next state transaction meets the broken pages and `run` stops with
// the damage error (which Main prints with the remedy) instead of crashing
// the process with SIGBUS or a bbolt panic.
func TestStateDamagedUnderRunningConnectorStopsIt(t *testing.T) {
	conn, cfg, _, runErr := runningConnector(t, "dmgshop", 779101)
	r, err := conn.Store.CheckReport(context.Background())
	if err != nil || !r.OK() {
		t.Fatalf("check before the damage: %+v %v", r, err)
	}
	// Overwrite every page the last transaction uses except the two meta
	// pages: every tree page is then broken.
	f, err := os.OpenFile(cfg.State.Path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	junk := bytes.Repeat([]byte{0xA5}, int(r.HighWater-2*r.PageSize))
	if _, err := f.WriteAt(junk, 2*r.PageSize); err != nil {
		t.Fatal(err)
	}
	f.Close()
	// A change makes the connector read and write its state.
	if _, err := srv.Admin(t, "dmgshop").Exec("UPDATE catalog_product_entity SET updated_at = NOW() ORDER BY entity_id LIMIT 1"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-runErr:
		if !errors.Is(err, state.ErrDamaged) || !strings.Contains(err.Error(), cfg.State.Path) {
			t.Fatalf("run stopped with %v, want the damage error", err)
		}
		var out bytes.Buffer
		fmt.Fprint(&out, damagedRemedy(err))
		if !strings.Contains(out.String(), "feedcdc run --new-state") {
			t.Fatalf("remedy: %s", out.String())
		}
	case <-time.After(3 * time.Minute):
		t.Fatal("the connector kept running on a damaged state file")
	}
}

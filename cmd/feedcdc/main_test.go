package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/feedcdc/feedcdc/state"
	"github.com/feedcdc/feedcdc/test/catalog"
	"github.com/feedcdc/feedcdc/test/mysqltest"
)

var srv *mysqltest.Server

func TestMain(m *testing.M) { os.Exit(mysqltest.Main(m, mysqltest.Options{}, &srv)) }

// run runs the CLI in-process and returns its exit code and output.
func run(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	code := Main(ctx, args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

func fixture(name string) string {
	return filepath.Join("..", "..", "testdata", "binlogs", name)
}

func TestEveryCommandHasHelpWithExamples(t *testing.T) {
	for _, cmd := range [][]string{{}, {"run"}, {"resync"}, {"snapshot"}, {"retry"}, {"status"}, {"feeds"}, {"check"}, {"inspect"}, {"inspect", "binlog"}, {"position"}, {"position", "show"}, {"position", "set"}, {"position", "reset"}, {"state"}, {"state", "check"}, {"state", "backup"}, {"schema"}, {"schema", "reload"}, {"verify"}, {"demo"}, {"version"}} {
		t.Run(strings.Join(append([]string{"feedcdc"}, cmd...), " "), func(t *testing.T) {
			code, out, errOut := run(t, nil, append(cmd, "--help")...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			if !strings.Contains(out, "Usage:") || !strings.Contains(out, "Examples:") {
				t.Fatalf("help lacks usage or examples:\n%s", out)
			}
		})
	}
}

func TestBadFlagsAndArguments(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"run", "--no-such-flag"}, "unknown flag: --no-such-flag"},
		{[]string{"resync"}, `required flag(s) "feed" not set`},
		{[]string{"retry"}, `required flag(s) "feed" not set`},
		{[]string{"schema", "reload"}, `required flag(s) "table" not set`},
		{[]string{"schema", "reload", "--table", "nodb", "-c", writeConfig(t, "")}, "db.table"},
		{[]string{"status", "extra"}, "unknown command"},
		{[]string{"nosuchcommand"}, `unknown command "nosuchcommand"`},
		{[]string{"inspect", "binlog"}, "requires at least 1 arg"},
		{[]string{"inspect", "binlog", "--zero-dates", "zero", fixture("mariadb-bin.000001")}, "--zero-dates"},
		{[]string{"resync", "--feed", "product", "-c", "testdata/none.yaml"}, "no such file"},
		{[]string{"resync", "--feed", "nosuchfeed", "-c", writeConfig(t, "")}, "unknown feed"},
		{[]string{"resync", "--feed", "products", "--id-type", "ean", "-c", writeConfig(t, "")}, "--id-type"},
		{[]string{"resync", "--feed", "products", "--continue-resync", "--by-ids", "A", "-c", writeConfig(t, "")}, "cannot be combined"},
		{[]string{"run", "-c", writeConfig(t, "sourec:\n  host: x\n")}, "source"},
		{[]string{"demo", "--profile", "tiny"}, "go run ./cmd/feedcdc-demo"},
		{[]string{"run", "--log-level", "loud", "-c", writeConfig(t, "")}, "loud"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			code, out, errOut := run(t, nil, c.args...)
			if code == 0 {
				t.Fatalf("exit 0; out:\n%s", out)
			}
			if !strings.Contains(errOut, c.want) {
				t.Fatalf("stderr does not mention %q:\n%s", c.want, errOut)
			}
		})
	}
}

// writeConfig writes a configuration for the shared private server with a
// file sink; extra YAML is appended (a top-level typo, for example).
func writeConfig(t *testing.T, extra string) string {
	t.Helper()
	p, _ := cliConfig{Name: "clitest", Env: "CLI", ServerID: 777001, Database: "clishop", Sections: extra}.write(t)
	return p
}

func TestVersion(t *testing.T) {
	code, out, _ := run(t, nil, "version")
	if code != 0 || !strings.HasPrefix(out, "feedcdc ") || !strings.Contains(out, "go-mysql") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	first, _, _ := strings.Cut(out, "\n")
	code, flagOut, errOut := run(t, nil, "--version")
	if code != 0 || flagOut != first+"\n" {
		t.Fatalf("--version: exit %d, %q (want %q); stderr %s", code, flagOut, first+"\n", errOut)
	}
}

func TestFeedsListsTopics(t *testing.T) {
	cfg := writeConfig(t, "")
	code, out, errOut := run(t, nil, "feeds", "-c", cfg)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	dir := filepath.Join(filepath.Dir(cfg), "out")
	for _, want := range []string{"TOPICS", "files:" + filepath.Join(dir, "products.jsonl"), "files:" + filepath.Join(dir, "variants.jsonl")} {
		if !strings.Contains(out, want) {
			t.Errorf("feeds output lacks %q:\n%s", want, out)
		}
	}
}

func TestInspectFixture(t *testing.T) {
	code, out, errOut := run(t, nil, "inspect", "binlog", "--tx", fixture("mariadb-bin.000001"))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var rows, txs int
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("not JSON: %q", line)
		}
		if rec["type"] == "tx_end" {
			txs++
		} else {
			rows++
		}
	}
	if rows != 2 || txs == 0 {
		t.Fatalf("rows %d tx ends %d:\n%s", rows, txs, out)
	}
	code, _, errOut = run(t, nil, "inspect", "binlog", fixture("binlog_truncated_event.000001"))
	if code == 0 || !strings.Contains(errOut, "binlog_truncated_event.000001") {
		t.Fatalf("truncated file: exit %d, stderr %s", code, errOut)
	}
}

// TestCheckStatusResyncAgainstPrivateServer drives the operator commands
// against a real catalog on the private mariadbd.
func TestCheckStatusResyncAgainstPrivateServer(t *testing.T) {
	admin := srv.Admin(t, "")
	if _, err := admin.Exec("DROP DATABASE IF EXISTS clishop; CREATE DATABASE clishop CHARACTER SET utf8mb4"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Exec("DROP DATABASE IF EXISTS clishop") })
	if _, err := catalog.Load(context.Background(), srv.Admin(t, "clishop"), catalog.Tiny(), 3); err != nil {
		t.Fatal(err)
	}
	cfg := writeConfig(t, "")

	code, out, errOut := run(t, nil, "check", "-c", cfg)
	if code != 0 {
		t.Fatalf("check: exit %d\n%s\n%s", code, out, errOut)
	}
	if !strings.Contains(out, "PASS  binlog format") || strings.Contains(out, "FAIL") {
		t.Fatalf("check output:\n%s", out)
	}

	code, out, errOut = run(t, nil, "resync", "--feed", "products", "--dry-run", "-c", cfg)
	if code != 0 || !strings.Contains(out, "dry run") || !strings.Contains(out, "sample 1:") {
		t.Fatalf("dry run: exit %d\n%s\n%s", code, out, errOut)
	}
	code, out, errOut = run(t, nil, "status", "--json", "-c", cfg)
	if code != 0 {
		t.Fatalf("status: %d %s", code, errOut)
	}
	var st struct {
		Feeds []struct {
			Name   string
			Counts struct{ Total, Sent int64 }
		}
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatal(err)
	}
	for _, f := range st.Feeds {
		if f.Counts.Total != 0 {
			t.Fatalf("dry run persisted items: %+v", st.Feeds)
		}
	}

	code, out, errOut = run(t, nil, "resync", "--feed", "products", "-c", cfg)
	// The state held nothing of the feed: the vanished pass is skipped.
	if code != 0 || !strings.Contains(out, "full re-sync complete") || !strings.Contains(out, "vanished pass: skipped") {
		t.Fatalf("resync: exit %d\n%s\n%s", code, out, errOut)
	}
	if !strings.Contains(errOut, "progress 74/74 entities") {
		t.Fatalf("no progress lines off a terminal:\n%s", errOut)
	}
	code, out, _ = run(t, nil, "status", "-c", cfg)
	if code != 0 || !strings.Contains(out, "products") || !strings.Contains(out, "done") {
		t.Fatalf("status:\n%s", out)
	}
	b, err := os.ReadFile(filepath.Join(filepath.Dir(cfg), "out", "products.jsonl"))
	if err != nil || bytes.Count(b, []byte("\n")) < 60 {
		t.Fatalf("file sink has %d lines (%v)", bytes.Count(b, []byte("\n")), err)
	}
	code, out, _ = run(t, nil, "retry", "--feed", "products", "-c", cfg)
	if code != 0 || !strings.Contains(out, "products_resend_failed_items: 0 entities") {
		t.Fatalf("retry:\n%s", out)
	}
	code, out, errOut = run(t, nil, "schema", "reload", "--table", "clishop.catalog_product_entity_varchar", "-c", cfg)
	if code != 0 || !strings.Contains(out, "schema of clishop.catalog_product_entity_varchar stored in the schema history as of") {
		t.Fatalf("schema reload: exit %d\n%s\n%s", code, out, errOut)
	}
	code, _, errOut = run(t, nil, "schema", "reload", "--table", "clishop.no_such_table", "-c", cfg)
	if code == 0 || !strings.Contains(errOut, "not captured") {
		t.Fatalf("schema reload of a table no feed reads: exit %d\n%s", code, errOut)
	}
	code, out, _ = run(t, nil, "feeds", "-c", cfg)
	if code != 0 || !strings.Contains(out, "catalog_product_entity") {
		t.Fatalf("feeds:\n%s", out)
	}
	for _, secret := range []string{srv.CDCPassword} {
		if strings.Contains(out+errOut, secret) {
			t.Fatal("a secret was printed")
		}
	}
}

// TestCheckFailsWithExitCode1 points check at a port where nothing listens.
func TestCheckFailsWithExitCode1(t *testing.T) {
	cfg := writeConfig(t, "")
	b, _ := os.ReadFile(cfg)
	b = bytes.Replace(b, []byte(fmt.Sprintf("port: %d", srv.Port)), []byte("port: 1"), 1)
	os.WriteFile(cfg, b, 0o600)
	code, out, _ := run(t, nil, "check", "-c", cfg)
	if code != 1 || !strings.Contains(out, "FAIL  connection") || !strings.Contains(out, "fix:") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
}

// TestBinaryLinksNoTestInfrastructure: the deployable binary imports no
// testing package, no kfake and no test/ package of this repository (the
// demo, which needs them, is cmd/feedcdc-demo).
func TestBinaryLinksNoTestInfrastructure(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to list the binary's dependencies: %v", err)
	}
	out, err := exec.Command(goTool, "list", "-deps", "-f", "{{.ImportPath}}", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 50 || !slices.Contains(deps, "github.com/feedcdc/feedcdc/connector") {
		t.Fatalf("go list -deps listed %d packages, not the binary's dependencies:\n%s", len(deps), out)
	}
	for _, d := range deps {
		if d == "testing" || strings.HasPrefix(d, "testing/") || strings.Contains(d, "/kfake") ||
			strings.HasPrefix(d, "github.com/feedcdc/feedcdc/test/") || (strings.HasPrefix(d, "github.com/feedcdc/") && strings.HasSuffix(d, "test")) {
			t.Errorf("cmd/feedcdc links %s", d)
		}
	}
}

// TestProgressBarOnATerminal checks the live bar drawn for resync on a
// terminal (items/s and ETA once the total is known).
func TestProgressBarOnATerminal(t *testing.T) {
	var buf bytes.Buffer
	p := &progress{w: &buf, feed: "products", tty: true, start: time.Now().Add(-2 * time.Second), total: 1000}
	p.update(state.Progress{Chunks: 1, Processed: 250, Synced: 900})
	p.done()
	out := buf.String()
	for _, want := range []string{"\rproducts [", "#######", "250/1000 entities", "900 synced", "/s", "ETA"} {
		if !strings.Contains(out, want) {
			t.Fatalf("bar %q lacks %q", out, want)
		}
	}
}

// TestMemoryLimitFromConfig: a command that loads the configuration sets
// the Go runtime's soft memory limit from backpressure.memory_limit (by
// default 64 MiB plus twice max_inflight_bytes), and leaves it to
// GOMEMLIMIT when that is set.
func TestMemoryLimitFromConfig(t *testing.T) {
	for _, c := range []struct {
		name, extra, gomemlimit string
		want                    int64 // -1: not set
	}{
		{"default", "", "", 64<<20 + 2*64<<20},
		{"from max_inflight_bytes", "backpressure: {max_inflight_bytes: 100MiB}\n", "", 64<<20 + 2*100<<20},
		{"explicit", "backpressure: {memory_limit: 300MiB}\n", "", 300 << 20},
		{"GOMEMLIMIT wins", "backpressure: {memory_limit: 300MiB}\n", "1GiB", -1},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("GOMEMLIMIT", c.gomemlimit)
			cfg := writeConfig(t, c.extra)
			var got int64 = -1
			var out, errb bytes.Buffer
			code := mainWith(context.Background(), []string{"feeds", "-c", cfg}, strings.NewReader(""), &out, &errb,
				func(l int64) int64 { got = l; return 0 })
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errb.String())
			}
			if got != c.want {
				t.Fatalf("memory limit set: %d, want %d", got, c.want)
			}
		})
	}
}

package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// runMainEnv makes the test binary run the demo's main (see TestMain), so
// that tests start the demo as a real process with real signals and pipes.
const runMainEnv = "FEEDCDC_DEMO_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		main() // exits
	}
	os.Exit(m.Run())
}

// TestDemoShowsFeedsFlowing runs the README's demo command for a short
// while and checks that it full-synced and streamed a live workload, and
// showed the topics with a kcat line, raw-stream counts and a sample item
// without HTML escapes.
func TestDemoShowsFeedsFlowing(t *testing.T) {
	dir := filepath.Join(shortTempDir(t), "demo")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var out, errOut bytes.Buffer
	code := Main(ctx, []string{"--dir", dir, "--profile", "tiny", "--duration", "12s", "--rate", "50", "--no-install"}, &out, &errOut)
	if code != 0 {
		t.Fatalf("demo exit %d\n%s\n%s", code, out.String(), errOut.String())
	}
	for _, want := range []string{
		"full sync done", "a products item", "applying a live workload", "dashboard http://127.0.0.1:",
		"Kafka topics on 127.0.0.1:", "demo.products ", "entity feed products",
		"kcat -b 127.0.0.1:", " -C -t demo.products -o beginning -e",
		"raw change stream of one table", "workload ran 12s", "demo: stopped (done)",
	} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("demo output lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "raw streams 0 records") && !strings.Contains(out.String(), "raw streams 0 records in 0 topics") {
		t.Errorf("raw topics exist but have no records:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "raw streams ") || strings.Count(out.String(), "raw streams 0 records") == strings.Count(out.String(), "raw streams ") {
		t.Errorf("no raw-stream records counted during the workload:\n%s", out.String())
	}
	if strings.Contains(out.String(), `\u003c`) || strings.Contains(out.String(), `\u0026`) {
		t.Errorf("demo output has HTML escapes:\n%s", out.String())
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("demo left %s behind", dir)
	}
}

func TestSampleIsNotHTMLEscaped(t *testing.T) {
	got, err := marshalSample(map[string]any{"description": "<p>Tee & shorts</p>"})
	if err != nil || !strings.Contains(string(got), `"description": "<p>Tee & shorts</p>"`) {
		t.Fatalf("sample %s (%v)", got, err)
	}
}

// TestDemoCleansUpWhenStopped starts the demo as a process with its stdout
// a pipe, stops it the ways a user does (closing the pipe as a dead `tee`
// or `head` does, Ctrl-C, SIGTERM) at different stages, and checks that it
// exits 0 having stopped its own mariadbd and removed what it created.
func TestDemoCleansUpWhenStopped(t *testing.T) {
	cases := []struct {
		name    string
		after   string // stop once a stdout line contains this
		stop    func(p *os.Process, stdout *os.File) error
		said    string // the last line, on stdout or (stdout closed) stderr
		ownFile bool   // --dir exists beforehand with a file of the user's
	}{
		{"stdout closed during the live workload", "applying a live workload",
			func(_ *os.Process, stdout *os.File) error { return stdout.Close() }, "demo: stopped (stdout closed)", false},
		{"Ctrl-C while loading the catalog", "loading the tiny catalog",
			func(p *os.Process, _ *os.File) error { return p.Signal(os.Interrupt) }, "demo: stopped (interrupt)", false},
		{"SIGTERM during the full sync, in an existing folder", "full sync of every feed",
			func(p *os.Process, _ *os.File) error { return p.Signal(syscall.SIGTERM) }, "demo: stopped (terminated)", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(shortTempDir(t), "demo")
			mine := filepath.Join(dir, "mine.txt")
			if c.ownFile {
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(mine, []byte("not the demo's"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			cmd := exec.Command(os.Args[0], "--dir", dir, "--profile", "tiny", "--rate", "50", "--no-install")
			cmd.Env = append(os.Environ(), runMainEnv+"=1")
			stdoutR, stdoutW, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			var stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = stdoutW, &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			stdoutW.Close() // the demo holds the only write end
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			t.Cleanup(func() {
				if cmd.ProcessState == nil {
					_ = cmd.Process.Kill() // only the process this test started
					<-exited
				}
			})

			lines := make(chan string, 100)
			go func() {
				sc := bufio.NewScanner(stdoutR)
				for sc.Scan() {
					lines <- sc.Text()
				}
				close(lines)
			}()
			var out strings.Builder
			deadline := time.After(4 * time.Minute) // a guard against a hang, not a measurement
		wait:
			for {
				select {
				case l, ok := <-lines:
					if !ok {
						t.Fatalf("demo stdout ended before %q:\n%s\nstderr:\n%s", c.after, out.String(), stderr.String())
					}
					out.WriteString(l + "\n")
					if strings.Contains(l, c.after) {
						break wait
					}
				case <-deadline:
					t.Fatalf("no %q from the demo:\n%s\nstderr:\n%s", c.after, out.String(), stderr.String())
				}
			}
			if err := c.stop(cmd.Process, stdoutR); err != nil {
				t.Fatal(err)
			}
			// Keep reading (unless the pipe was closed) so the demo can say
			// its last words.
			rest := make(chan string, 1)
			go func() {
				var b strings.Builder
				for l := range lines {
					b.WriteString(l + "\n")
				}
				rest <- b.String()
			}()
			select {
			case err = <-exited:
			case <-time.After(3 * time.Minute):
				t.Fatalf("the demo did not exit after being stopped:\n%s\nstderr:\n%s", out.String(), stderr.String())
			}
			stdoutR.Close()
			out.WriteString(<-rest)
			var ee *exec.ExitError
			if errors.As(err, &ee) || err != nil {
				t.Fatalf("demo exit: %v (want 0)\nstdout:\n%s\nstderr:\n%s", err, out.String(), stderr.String())
			}
			if said := out.String() + stderr.String(); !strings.Contains(said, c.said) || !strings.Contains(said, "everything it started is stopped and removed") {
				t.Errorf("the demo did not say %q:\nstdout:\n%s\nstderr:\n%s", c.said, out.String(), stderr.String())
			}
			if c.ownFile {
				entries, err := os.ReadDir(dir)
				if err != nil || len(entries) != 1 || entries[0].Name() != "mine.txt" {
					t.Errorf("the existing --dir should hold only the user's file after the demo: %v %v", entries, err)
				}
			} else if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Errorf("the demo left %s behind (%v)", dir, err)
			}
			if pids := processesMentioning(t, dir); len(pids) > 0 {
				t.Errorf("processes of the demo still running (its mariadbd?): %v", pids)
			}
		})
	}
}

// shortTempDir is a temporary folder with a short path: t.TempDir() under
// a long test name makes mariadbd's socket path exceed its 107 bytes.
func shortTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "fcdc-demo-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// processesMentioning returns the command lines of running processes whose
// arguments mention dir (the demo's mariadbd has its datadir under it).
func processesMentioning(t *testing.T, dir string) []string {
	t.Helper()
	procs, err := filepath.Glob("/proc/[0-9]*/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // the process ended meanwhile
		}
		if cmdline := strings.ReplaceAll(string(b), "\x00", " "); strings.Contains(cmdline, dir) {
			found = append(found, filepath.Base(filepath.Dir(p))+": "+cmdline)
		}
	}
	return found
}

func TestBadFlags(t *testing.T) {
	for args, want := range map[string]string{"--profile huge": "--profile", "--no-such-flag": "unknown flag", "extra": "unknown command"} {
		var out, errOut bytes.Buffer
		if code := Main(context.Background(), strings.Fields(args), &out, &errOut); code == 0 || !strings.Contains(errOut.String(), want) {
			t.Errorf("%s: exit %d, stderr %q; want an error naming %s", args, code, errOut.String(), want)
		}
	}
}

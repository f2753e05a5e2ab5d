package chaos

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/feedcdc/feedcdc/test/mysqltest"
)

// Env is what every scenario shares: a private mariadbd, the feedcdc
// binary built from this checkout, and a work folder.
type Env struct {
	Server *mysqltest.Server
	Bin    string
	Dir    string
	Log    *slog.Logger
}

// NewEnv builds bin/feedcdc into dir and starts a private mariadbd under
// it. Close stops the server.
func NewEnv(ctx context.Context, dir string, log *slog.Logger) (*Env, error) {
	root, err := moduleRoot(ctx)
	if err != nil {
		return nil, err
	}
	bin := filepath.Join(dir, "feedcdc")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/feedcdc")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build feedcdc: %w: %s", err, out)
	}
	srv, err := mysqltest.Start(ctx, mysqltest.Options{BaseDir: dir})
	if err != nil {
		return nil, fmt.Errorf("start mariadbd: %w", err)
	}
	return &Env{Server: srv, Bin: bin, Dir: dir, Log: log}, nil
}

// Close stops the server.
func (e *Env) Close() error { return e.Server.Stop() }

// DataDir is the server's data folder (its binlog files).
func (e *Env) DataDir() string { return filepath.Join(e.Server.Dir, "data") }

func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("run the chaos suite inside the feedcdc module")
	}
	return filepath.Dir(mod), nil
}

// Child is one feedcdc process.
type Child struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
	log  *os.File
}

// StartChild runs bin with args, logging to logPath; extraEnv is added to
// the environment. fsizeBlocks > 0 limits the size of any file it writes
// (RLIMIT_FSIZE, in 1 KiB blocks), as a full disk would.
func (e *Env) StartChild(args []string, extraEnv []string, logPath string, fsizeBlocks int) (*Child, error) {
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	var cmd *exec.Cmd
	if fsizeBlocks > 0 {
		q := make([]string, len(args))
		for i, a := range args {
			q[i] = strconv.Quote(a)
		}
		cmd = exec.Command("bash", "-c", fmt.Sprintf("ulimit -f %d && exec %s %s", fsizeBlocks, strconv.Quote(e.Bin), strings.Join(q, " ")))
	} else {
		cmd = exec.Command(e.Bin, args...)
	}
	cmd.Env = append(os.Environ(), extraEnv...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("start feedcdc: %w", err)
	}
	c := &Child{cmd: cmd, done: make(chan struct{}), log: lf}
	go func() {
		c.err = cmd.Wait()
		lf.Close()
		close(c.done)
	}()
	return c, nil
}

// PID is the process id.
func (c *Child) PID() int { return c.cmd.Process.Pid }

// Done is closed when the process exited.
func (c *Child) Done() <-chan struct{} { return c.done }

// Kill sends SIGKILL and waits for the exit.
func (c *Child) Kill() {
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	<-c.done
}

// Term sends SIGTERM and waits up to d for a clean exit (status 0).
func (c *Child) Term(d time.Duration) error {
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
		return c.err
	case <-time.After(d):
		c.Kill()
		return fmt.Errorf("feedcdc did not stop within %s of SIGTERM (killed)", d)
	}
}

// RSS samples the resident set size of processes and keeps the peak.
type RSS struct {
	mu   sync.Mutex
	peak int64 // bytes
}

// Watch samples c every interval until it exits.
func (r *RSS) Watch(c *Child, interval time.Duration) {
	go func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-c.done:
				return
			case <-t.C:
				if n := rssOf(c.PID()); n > 0 {
					r.mu.Lock()
					r.peak = max(r.peak, n)
					r.mu.Unlock()
				}
			}
		}
	}()
}

// PeakMiB is the largest sample in MiB.
func (r *RSS) PeakMiB() float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return float64(r.peak) / (1 << 20)
}

func rssOf(pid int) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

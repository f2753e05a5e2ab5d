package state

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/feedcdc/feedcdc/change"
)

// Subprocess helpers: the test binary re-executes itself with
// FEEDCDC_STATE_HELPER set to run one of these instead of the tests, so that
// file locks, stale feed locks and kill -9 are exercised across real
// processes.
const helperEnv = "FEEDCDC_STATE_HELPER"

func TestMain(m *testing.M) {
	if h := os.Getenv(helperEnv); h != "" {
		os.Exit(runHelper(h, os.Getenv("FEEDCDC_STATE_PATH")))
	}
	os.Exit(m.Run())
}

func runHelper(kind, path string) int {
	ctx := context.Background()
	st, err := Open(path, Options{Command: "feedcdc run"})
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper open:", err)
		return 2
	}
	switch kind {
	case "hold":
		fmt.Println("ready")
		io.Copy(io.Discard, os.Stdin) // hold until the parent closes stdin or kills us
		return 0
	case "lockfeed":
		if _, err := st.AcquireFeedLock(ctx, "products", "resync"); err != nil {
			fmt.Fprintln(os.Stderr, "helper lock:", err)
			return 2
		}
		fmt.Println("ready")
		io.Copy(io.Discard, os.Stdin)
		return 0
	case "writer", "writer-merge":
		// Each iteration i rewrites crashItems items with hash "h<i>" and
		// moves the checkpoint to Pos i, in one Update, then reports i.
		// writer-merge merges the staged id index entries every few
		// iterations, in chunks (idindex.go).
		if kind == "writer-merge" {
			st.pendBound, st.mergeChunk = 700, 150
		}
		w := bufio.NewWriter(os.Stdout)
		start := 1
		if pos, _, ok, err := st.Checkpoint(ctx); err == nil && ok {
			start = int(pos.Pos) + 1
		}
		for i := start; ; i++ {
			items := crashBatch(i)
			err := st.Update(ctx, func(tx *Tx) error {
				if err := tx.PutItems(items); err != nil {
					return err
				}
				if i%7 == 0 {
					if err := tx.DeleteItems("products", []string{items[0].ID}); err != nil {
						return err
					}
				}
				if err := tx.PutOutbox("products", []OutboxEntry{{ID: items[1].ID, Payload: []byte(items[1].Hash)}}); err != nil {
					return err
				}
				return tx.SetCheckpoint(change.Position{File: "bin.000001", Pos: uint32(i)}, time.Now())
			})
			if err != nil {
				fmt.Fprintln(os.Stderr, "helper write:", err)
				return 2
			}
			fmt.Fprintln(w, i)
			w.Flush()
		}
	}
	fmt.Fprintln(os.Stderr, "unknown helper", kind)
	return 2
}

const crashItems = 300

// crashBatch is iteration i of the writer: items i*50 ... i*50+crashItems
// (mod 5000), so consecutive iterations overlap and rewrite items.
func crashBatch(i int) []Item {
	items := make([]Item, crashItems)
	for j := range items {
		n := (i*50 + j) % 5000
		st := StatusSent
		if n%10 == 0 {
			st = StatusRetryableFailure
		}
		items[j] = Item{
			Feed:        "products",
			ID:          sha1hex(fmt.Sprintf("sku-%d\x00default", n)),
			EntityKey:   strconv.Itoa(n / 3),
			Identity:    map[string]string{"sku": fmt.Sprintf("sku-%d", n)},
			Hash:        "h" + strconv.Itoa(i),
			Status:      st,
			NextAttempt: time.Unix(int64(1_700_000_000+i), 0),
			ModifiedAt:  time.Unix(int64(1_700_000_000+i), 0),
		}
	}
	return items
}

type helperProc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Scanner
}

// startHelper runs the helper kind against path and waits for its first
// output line.
func startHelper(t *testing.T, kind, path string) (*helperProc, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+kind, "FEEDCDC_STATE_PATH="+path)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &helperProc{cmd: cmd, stdin: stdin, out: bufio.NewScanner(stdout)}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	if !h.out.Scan() {
		cmd.Wait()
		t.Fatalf("helper %s exited before reporting: %s", kind, stderr.String())
	}
	return h, h.out.Text()
}

// kill sends SIGKILL to the helper (by its pid) and reaps it.
func (h *helperProc) kill(t *testing.T) {
	t.Helper()
	if err := h.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	h.cmd.Wait()
}

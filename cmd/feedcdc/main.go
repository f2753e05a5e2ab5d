// Command feedcdc is the CLI of the feedcdc connector. It is deliberately
// thin: it parses flags, loads config.yaml and calls the connector packages.
//
// Invariants: every command validates the configuration before touching a
// server; errors go to stderr with a non-zero exit; secrets are never
// printed.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/feedcdc/feedcdc/state"
)

// Version is set at build time with -ldflags "-X main.Version=...".
var Version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := mainWith(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, debug.SetMemoryLimit)
	stop()
	os.Exit(code)
}

// exitError carries a specific exit code.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit %d", e.code)
	}
	return e.err.Error()
}

// Main runs the CLI with the given arguments and streams and returns the
// process exit code (tests call it directly).
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return mainWith(ctx, args, stdin, stdout, stderr, nil)
}

// mainWith is Main; setMemoryLimit (the process's debug.SetMemoryLimit, nil
// in tests that run commands in their own process) applies
// backpressure.memory_limit once a command loaded its configuration.
func mainWith(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, setMemoryLimit func(int64) int64) int {
	root, g := newRoot(stdout, stderr)
	g.setMemoryLimit = setMemoryLimit
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintln(stderr, "feedcdc:", ee.err)
		}
		return ee.code
	}
	if errors.Is(err, context.Canceled) {
		return 130
	}
	fmt.Fprintln(stderr, "feedcdc:", err)
	if errors.Is(err, state.ErrDamaged) {
		fmt.Fprint(stderr, damagedRemedy(err))
	}
	return 1
}

// damagedRemedy tells the operator how to recover from a damaged state file.
func damagedRemedy(err error) string {
	path := "the state file"
	var de *state.DamagedError
	foreign := false
	if errors.As(err, &de) {
		path, foreign = de.Path, de.Foreign
	}
	var b strings.Builder
	if foreign {
		fmt.Fprintf(&b, "If state.path should not point at %s, correct it. Otherwise stop feedcdc and either\n", path)
	} else {
		b.WriteString("To recover, stop feedcdc and either\n")
	}
	fmt.Fprintf(&b, `  - restore the last backup (made with 'feedcdc state backup FILE'): cp FILE %[1]s, check it with
    'feedcdc state check' and start again; streaming resumes from the backup's checkpoint and
    items changed since then are sent again, or
  - start with a new state: 'feedcdc run --new-state' moves %[1]s aside to
    %[1]s.damaged-<time> (nothing is deleted) and runs a full sync of every feed: every item is
    sent once more, also unchanged ones, and items deleted in the source before now are not sent
    as deleted.
See docs/state.md, "Damage and recovery".
`, path)
	return b.String()
}

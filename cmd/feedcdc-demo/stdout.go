package main

import (
	"context"
	"errors"
	"io"
	"os"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// stopWriter writes to the demo's stdout until a write fails (a closed
// pipe: EPIPE, since SIGPIPE is caught); it then calls stop once and drops
// all later output, so that cleanup goes on and says nothing to nobody.
type stopWriter struct {
	mu     sync.Mutex
	w      io.Writer
	stop   func()
	broken bool
}

func newStopWriter(w io.Writer, stop func()) *stopWriter {
	return &stopWriter{w: w, stop: stop}
}

func (s *stopWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.broken {
		return 0, errStdoutClosed
	}
	n, err := s.w.Write(p)
	if err != nil {
		s.broken = true
		s.stop()
		if errors.Is(err, syscall.EPIPE) {
			return n, errStdoutClosed
		}
	}
	return n, err
}

// watchStdout calls stop as soon as the reader of a stdout pipe is gone,
// even while the demo prints nothing (starting MariaDB, loading the
// catalog): poll reports POLLERR on a pipe with no reader. Other kinds of
// stdout (terminal, file) are left to stopWriter. It returns when ctx ends.
func watchStdout(ctx context.Context, f *os.File, stop func()) {
	st, err := f.Stat()
	if err != nil || st.Mode()&os.ModeNamedPipe == 0 {
		return
	}
	fds := []unix.PollFd{{Fd: int32(f.Fd())}}
	for ctx.Err() == nil {
		n, err := unix.Poll(fds, 500)
		if err != nil && !errors.Is(err, unix.EINTR) {
			return
		}
		if n > 0 && fds[0].Revents&(unix.POLLERR|unix.POLLHUP) != 0 {
			stop()
			return
		}
	}
}

package filesink

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/feedcdc/feedcdc/sink"
)

// ReadFeed reads back what the sink wrote for a feed (feedcdc verify
// --read-back): every line of the feed's rotated files, oldest first, then
// of its current file, handed to fn as (key, value) in write order; key is
// nil without envelope. Lines a deleted rotated file held are gone; a
// last line without its newline (a write in progress) is skipped. Memory
// is one line at a time.
func (s *Sink) ReadFeed(ctx context.Context, feed string, fn func(key, value []byte) error) error {
	name := s.StreamName(&sink.Record{Feed: feed})
	rotated, err := s.rotated(name)
	if err != nil {
		return fmt.Errorf("file sink %s: list files of %s: %w", s.cfg.Name, name, err)
	}
	paths := make([]string, 0, len(rotated)+1)
	for _, r := range rotated {
		paths = append(paths, r.path)
	}
	paths = append(paths, s.Path(name))
	for _, p := range paths {
		if err := s.readFile(ctx, p, fn); err != nil {
			return err
		}
	}
	return nil
}

func (s *Sink) readFile(ctx context.Context, path string, fn func(key, value []byte) error) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("file sink %s: read back: %w", s.cfg.Name, err)
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<20)
	for n := 1; ; n++ {
		if n%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		line, err := r.ReadBytes('\n')
		if errors.Is(err, io.EOF) {
			return nil // an unterminated last line is a write in progress
		}
		if err != nil {
			return fmt.Errorf("file sink %s: read back %s: %w", s.cfg.Name, path, err)
		}
		line = bytes.TrimSuffix(line, []byte("\n"))
		var key, value []byte = nil, line
		if s.cfg.Envelope {
			var env envelope
			if err := json.Unmarshal(line, &env); err != nil {
				return fmt.Errorf("file sink %s: read back %s line %d: not an envelope: %w", s.cfg.Name, path, n, err)
			}
			key, value = []byte(env.Key), env.Value
			if bytes.Equal(value, []byte("null")) {
				value = nil
			}
		}
		if err := fn(key, value); err != nil {
			return err
		}
	}
}

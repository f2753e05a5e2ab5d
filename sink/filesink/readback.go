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
// of its current file, handed to fn as (id, key, value) in write order; id
// and key are empty without envelope. Lines a deleted rotated file held are gone; a
// last line without its newline (a write in progress) is skipped. Memory
// is one line at a time.
func (s *Sink) ReadFeed(ctx context.Context, feed string, fn func(id string, key, value []byte) error) error {
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

func (s *Sink) readFile(ctx context.Context, path string, fn func(id string, key, value []byte) error) error {
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
		var id string
		var key, value []byte = nil, line
		if s.cfg.Envelope {
			var env envelope
			if err := json.Unmarshal(line, &env); err != nil {
				return fmt.Errorf("file sink %s: read back %s line %d: not an envelope: %w", s.cfg.Name, path, n, err)
			}
			id, key, value = env.ID, []byte(env.Key), unescapeHTML(env.Value)
			if bytes.Equal(value, []byte("null")) {
				value = nil
			}
		}
		if err := fn(id, key, value); err != nil {
			return err
		}
	}
}

// unescapeHTML undoes what json.Marshal did to a value embedded in an
// envelope by feedcdc versions before 2026-12 (they escaped <, > and &;
// current ones write the value's bytes as sent): \u003c, \u003e and
// \u0026 escapes back to the characters, so the value is byte for byte
// what was sent (feedcdc's encoders do not escape them; U+2028 and U+2029
// are escaped by both alike). Every backslash in JSON starts an escape, so
// no string tracking is needed.
func unescapeHTML(v []byte) []byte {
	if bytes.IndexByte(v, '\\') < 0 {
		return v
	}
	out := make([]byte, 0, len(v))
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c != '\\' || i+1 >= len(v) {
			out = append(out, c)
			continue
		}
		if v[i+1] == 'u' && i+6 <= len(v) {
			switch string(v[i+2 : i+6]) {
			case "003c":
				out, i = append(out, '<'), i+5
				continue
			case "003e":
				out, i = append(out, '>'), i+5
				continue
			case "0026":
				out, i = append(out, '&'), i+5
				continue
			}
		}
		out = append(out, c, v[i+1])
		i++
	}
	return out
}

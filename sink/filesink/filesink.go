// Package filesink writes feed items as JSON Lines files, one file per feed
// (or per raw topic), for debugging, audits and the embedded demo.
//
// Invariants:
//   - One line per record: the item JSON as given (compacted, and so
//     validated, only if it spans lines), or with envelope on (validated), {"feed","topic","id","key","hash","op","position",
//     "value"}. Tombstones are acknowledged without a line (with envelope on
//     they are written with "value": null).
//   - A record is OK only after its line is written and, with fsync on (the
//     default in config.yaml), fsynced. A failed write is rolled back by
//     truncating the file to its previous size, so a file never holds a
//     partial line, and the records are Retryable.
//   - A file is rotated before a write would make it exceed max_size: it is
//     renamed <name>.<seq>.jsonl (seq increasing, never reused) and at most
//     max_files rotated files are kept per stream, the oldest deleted first
//     (acknowledged output: each deletion is logged at info level).
//   - Lines go to the file through one write buffer per stream, reused
//     across Sends and written out whenever it holds writeBuffer bytes, so
//     a Send of any size holds at most about writeBuffer (plus one line)
//     per stream.
//   - Stream names become file names: anything but letters, digits, '.',
//     '-' and '_' is replaced by '_', so a name can never leave the
//     directory.
package filesink

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/feedcdc/feedcdc/sink"
)

// Config configures a file sink. Field names follow config.yaml's
// sinks.<name>.file section.
type Config struct {
	Name          string // sink name
	Dir           string // dir (required); created if missing
	MaxSize       int64  // max_size in bytes; default 100 MiB
	MaxFiles      int    // max_files: rotated files kept per stream; 0 = keep all
	Fsync         bool   // fsync before acknowledging
	Envelope      bool   // envelope: write metadata around each value
	TopicPrefix   string // value of {prefix} in record topics
	ConnectorName string // value of {name} in record topics
	Logger        *slog.Logger
}

// Sink writes JSON Lines files. It is safe for concurrent use.
type Sink struct {
	cfg Config
	log *slog.Logger

	health sink.Health
	names  sync.Map // nameKey -> stream name

	mu      sync.Mutex
	streams map[string]*stream
	closed  bool
}

type stream struct {
	mu   sync.Mutex
	name string // sanitised base name
	path string
	f    *os.File
	size int64
	seq  int    // last rotated sequence number
	buf  []byte // the write buffer, reused (under mu)
}

// writeBuffer is how many bytes of lines a stream gathers before a write;
// a buffer grown beyond it by one long line is not kept.
const writeBuffer = 1 << 20

var _ sink.Sink = (*Sink)(nil)

// New creates the directory if needed and returns the sink.
func New(cfg Config) (*Sink, error) {
	if cfg.Name == "" {
		cfg.Name = "file"
	}
	if cfg.Dir == "" {
		return nil, fmt.Errorf("file sink %s: dir is empty; set the directory the JSON Lines files go to", cfg.Name)
	}
	if cfg.MaxSize <= 0 {
		cfg.MaxSize = 100 << 20
	}
	if cfg.MaxFiles < 0 {
		return nil, fmt.Errorf("file sink %s: max_files %d is negative; use 0 to keep every rotated file", cfg.Name, cfg.MaxFiles)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("file sink %s: create dir: %w", cfg.Name, err)
	}
	return &Sink{cfg: cfg, log: cfg.Logger.With("sink", cfg.Name), streams: map[string]*stream{}}, nil
}

// Name implements sink.Sink.
func (s *Sink) Name() string { return s.cfg.Name }

// StreamName is the file base name (without .jsonl) a record goes to: its
// topic with placeholders filled in, or else its feed.
func (s *Sink) StreamName(r *sink.Record) string {
	key := nameKey{r.Topic, r.Feed}
	if v, ok := s.names.Load(key); ok {
		return v.(string)
	}
	n := s.topic(r)
	if n == "" {
		n = r.Feed
	}
	n = sanitize(strings.Trim(n, "."))
	s.names.Store(key, n)
	return n
}

type nameKey struct{ topic, feed string }

// topic is r's topic with its placeholders filled in ("" when r has none).
func (s *Sink) topic(r *sink.Record) string {
	if !strings.Contains(r.Topic, "{") {
		return r.Topic
	}
	return strings.NewReplacer("{prefix}", s.cfg.TopicPrefix, "{feed}", r.Feed, "{name}", s.cfg.ConnectorName).Replace(r.Topic)
}

func sanitize(n string) string {
	b := []byte(n)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			b[i] = '_'
		}
	}
	out := string(b)
	if out == "" || strings.HasPrefix(out, ".") {
		out = "_" + out
	}
	return out
}

// Path is the current file of a stream.
func (s *Sink) Path(streamName string) string {
	return filepath.Join(s.cfg.Dir, streamName+".jsonl")
}

type envelope struct {
	Feed     string          `json:"feed"`
	Topic    string          `json:"topic,omitempty"`
	ID       string          `json:"id,omitempty"`
	Key      string          `json:"key,omitempty"`
	Hash     string          `json:"hash,omitempty"`
	Op       string          `json:"op,omitempty"`
	Position string          `json:"position,omitempty"`
	Value    json.RawMessage `json:"value"`
}

// line renders one record without its newline, or returns nil for a
// tombstone without envelope. The value is written as given (it comes from
// feedcdc's JSON encoders); only a value spanning several lines is
// compacted, which also validates it.
func (s *Sink) line(r *sink.Record) ([]byte, error) {
	v := r.Value
	if v != nil && bytes.IndexByte(v, '\n') >= 0 {
		var buf bytes.Buffer
		if err := json.Compact(&buf, v); err != nil {
			return nil, fmt.Errorf("value spans lines and is not valid JSON: %w", err)
		}
		v = buf.Bytes()
	}
	if !s.cfg.Envelope {
		return v, nil
	}
	if v == nil {
		v = json.RawMessage("null")
	}
	// An encoder without HTML escaping: the value's bytes are written as
	// sent (json.Marshal would turn <, > and & into \u003c… escapes).
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(envelope{Feed: r.Feed, Topic: s.topic(r), ID: r.ID, Key: string(r.Key), Hash: r.Hash, Op: r.Op, Position: r.Position, Value: v}); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// Send implements sink.Sink.
func (s *Sink) Send(ctx context.Context, recs []sink.Record) ([]sink.Result, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, errors.New("file sink " + s.cfg.Name + " is closed")
	}
	s.mu.Unlock()
	results := make([]sink.Result, len(recs))
	byStream := map[string][]int{}
	var order []string
	for i := range recs {
		n := s.StreamName(&recs[i])
		if _, ok := byStream[n]; !ok {
			order = append(order, n)
		}
		byStream[n] = append(byStream[n], i)
	}
	for _, n := range order {
		if err := ctx.Err(); err != nil {
			for _, i := range byStream[n] {
				results[i] = sink.Result{Status: sink.StatusRetryable, Err: err, Reason: "CANCELED"}
			}
			continue
		}
		s.writeStream(n, recs, byStream[n], results)
	}
	s.health.Observe(results, time.Now())
	return results, nil
}

func (s *Sink) stream(name string) *stream {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.streams[name]
	if st == nil {
		st = &stream{name: name, path: s.Path(name)}
		s.streams[name] = st
	}
	return st
}

func (s *Sink) writeStream(name string, recs []sink.Record, idx []int, results []sink.Result) {
	st := s.stream(name)
	st.mu.Lock()
	defer st.mu.Unlock()
	fail := func(from int, err error, reason string) {
		for _, i := range idx[from:] {
			if results[i].Status == sink.StatusOK {
				results[i] = sink.Result{Status: sink.StatusRetryable, Err: err, Reason: reason}
			}
		}
		s.log.Warn("file write failed", "file", st.path, "records", len(idx)-from, "error", err)
	}
	if err := s.open(st); err != nil {
		fail(0, err, "OPEN")
		return
	}
	if st.buf == nil {
		st.buf = make([]byte, 0, writeBuffer)
	}
	buf := st.buf[:0]
	defer func() {
		if cap(buf) <= writeBuffer {
			st.buf = buf[:0]
		}
	}()
	flushed := 0 // records of idx whose lines are in the file (not yet synced)
	synced := 0  // records of idx whose lines are in a synced (rotated) file
	// kept is how many records stay OK when a write fails: those in the
	// file, or with fsync on only those synced.
	kept := func() int {
		if s.cfg.Fsync {
			return synced
		}
		return flushed
	}
	write := func(upTo int) error {
		if len(buf) == 0 {
			flushed = upTo
			return nil
		}
		n, err := st.f.Write(buf)
		if err != nil {
			// Roll back the partial write so the file never holds half a line.
			if terr := st.f.Truncate(st.size); terr != nil {
				err = errors.Join(err, fmt.Errorf("truncate after failed write: %w", terr))
			}
			return err
		}
		st.size += int64(n)
		buf = buf[:0]
		flushed = upTo
		return nil
	}
	for j, i := range idx {
		line, err := s.line(&recs[i])
		if err != nil {
			results[i] = sink.Result{Status: sink.StatusRejected, Err: fmt.Errorf("item value: %w", err), Reason: "INVALID_JSON"}
			continue
		}
		if line == nil {
			continue // tombstone
		}
		if st.size+int64(len(buf))+int64(len(line))+1 > s.cfg.MaxSize && st.size+int64(len(buf)) > 0 {
			if err := write(j); err != nil {
				fail(kept(), err, "WRITE")
				return
			}
			if err := s.rotate(st); err != nil {
				fail(0, err, "ROTATE") // earlier lines may not be synced
				return
			}
			synced = j
		} else if len(buf) > 0 && len(buf)+len(line)+1 > writeBuffer {
			if err := write(j); err != nil {
				fail(kept(), err, "WRITE")
				return
			}
		}
		buf = append(append(buf, line...), '\n')
	}
	if err := write(len(idx)); err != nil {
		fail(kept(), err, "WRITE")
		return
	}
	if s.cfg.Fsync {
		if err := st.f.Sync(); err != nil {
			// The lines may or may not be durable: have them sent again.
			fail(0, fmt.Errorf("fsync %s: %w", st.path, err), "FSYNC")
		}
	}
}

// open opens the stream's current file for appending if it is not open.
func (s *Sink) open(st *stream) error {
	if st.f != nil {
		return nil
	}
	f, err := os.OpenFile(st.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err // *os.PathError names the operation and file
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	st.f, st.size = f, fi.Size()
	if s.cfg.Fsync && st.size == 0 {
		// A new file's directory entry must be durable too.
		s.syncDir()
	}
	rotated, err := s.rotated(st.name)
	if err != nil {
		return err
	}
	if len(rotated) > 0 {
		st.seq = rotated[len(rotated)-1].seq
	}
	return nil
}

type rotatedFile struct {
	seq  int
	path string
}

// rotated lists a stream's rotated files, oldest first.
func (s *Sink) rotated(name string) ([]rotatedFile, error) {
	matches, err := filepath.Glob(filepath.Join(s.cfg.Dir, globEscape(name)+".*.jsonl"))
	if err != nil {
		return nil, err
	}
	var out []rotatedFile
	for _, m := range matches {
		mid := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(m), name+"."), ".jsonl")
		seq, err := strconv.Atoi(mid)
		if err != nil || seq <= 0 {
			continue // another stream whose name starts with ours
		}
		out = append(out, rotatedFile{seq, m})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].seq < out[j].seq })
	return out, nil
}

func globEscape(s string) string {
	r := strings.NewReplacer("*", `\*`, "?", `\?`, "[", `\[`, `\`, `\\`)
	return r.Replace(s)
}

// rotate closes the current file, renames it to the next sequence number,
// opens a fresh one and prunes old rotated files.
func (s *Sink) rotate(st *stream) error {
	if s.cfg.Fsync {
		if err := st.f.Sync(); err != nil {
			return fmt.Errorf("fsync %s: %w", st.path, err)
		}
	}
	if err := st.f.Close(); err != nil {
		st.f = nil
		return fmt.Errorf("close %s: %w", st.path, err)
	}
	st.f = nil
	st.seq++
	dst := filepath.Join(s.cfg.Dir, fmt.Sprintf("%s.%06d.jsonl", st.name, st.seq))
	if err := os.Rename(st.path, dst); err != nil {
		return fmt.Errorf("rotate %s: %w", st.path, err)
	}
	if err := s.open(st); err != nil { // syncs the directory (rename + new file)
		return err
	}
	if s.cfg.MaxFiles > 0 {
		rotated, err := s.rotated(st.name)
		if err != nil {
			return err
		}
		for len(rotated) > s.cfg.MaxFiles {
			switch err := os.Remove(rotated[0].path); {
			case err == nil:
				s.log.Info("deleted the oldest rotated file of the stream: max_files rotated files are kept (0 keeps all)",
					"file", rotated[0].path, "max_files", s.cfg.MaxFiles)
			case !errors.Is(err, os.ErrNotExist):
				s.log.Warn("cannot delete old rotated file", "file", rotated[0].path, "error", err)
			}
			rotated = rotated[1:]
		}
	}
	return nil
}

// Health implements sink.HealthReporter.
func (s *Sink) Health() (bool, string) { return s.health.Health() }

// Ping implements sink.Pinger: the directory exists and a file can be
// created, written, synced and removed in it.
func (s *Sink) Ping(context.Context) error {
	f, err := os.CreateTemp(s.cfg.Dir, ".feedcdc-ping-*")
	if err != nil {
		return fmt.Errorf("file sink %s: directory %s is not writable: %w", s.cfg.Name, s.cfg.Dir, err)
	}
	name := f.Name()
	_, werr := f.Write([]byte("ping\n"))
	serr := f.Sync()
	cerr := f.Close()
	rerr := os.Remove(name)
	if err := errors.Join(werr, serr, cerr, rerr); err != nil {
		return fmt.Errorf("file sink %s: directory %s: %w", s.cfg.Name, s.cfg.Dir, err)
	}
	return nil
}

func (s *Sink) syncDir() {
	if d, err := os.Open(s.cfg.Dir); err == nil {
		if err := d.Sync(); err != nil {
			s.log.Warn("fsync of the directory failed", "dir", s.cfg.Dir, "error", err)
		}
		d.Close()
	}
}

// Close syncs and closes every open file.
func (s *Sink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	var errs []error
	for _, st := range s.streams {
		st.mu.Lock()
		if st.f != nil {
			if err := st.f.Sync(); err != nil {
				errs = append(errs, err)
			}
			if err := st.f.Close(); err != nil {
				errs = append(errs, err)
			}
			st.f = nil
		}
		st.mu.Unlock()
	}
	return errors.Join(errs...)
}

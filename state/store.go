package state

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/feedcdc/feedcdc/change"
)

// formatVersion is the layout version stored in meta/format. Opening a file
// with a newer version fails instead of misreading it.
const formatVersion = 1

// Root buckets.
var (
	bMeta       = []byte("meta")
	bCheckpoint = []byte("checkpoint")
	bSchema     = []byte("schema")
	bLocks      = []byte("locks")
	bFeeds      = []byte("feeds")
)

// Keys in meta and checkpoint.
var (
	kFormat  = []byte("format")
	kOwner   = []byte("owner")
	kCreated = []byte("created")
	kPos     = []byte("pos")
)

// DefaultLockTimeout is how long Open waits for the file lock of a state file
// that another process holds.
const DefaultLockTimeout = time.Second

// Options configure Open. The zero value is usable.
type Options struct {
	// LockTimeout bounds the wait for the file lock (default DefaultLockTimeout).
	LockTimeout time.Duration
	// Command names the operation holding the file, shown to a second opener
	// ("feedcdc run", "feedcdc resync --feed products"). Default: the first
	// words of os.Args.
	Command string
	// Logger receives warnings (stale feed locks taken over). Default slog.Default().
	Logger *slog.Logger
	// NoSync skips fsync on commit. Only for tests and benchmarks: a crash of
	// the machine (not of the process) can then lose or corrupt the file.
	NoSync bool
	// InitialMmapSize reserves address space so that readers never block a
	// writer that grows the file (default 1 GiB; it is not memory use).
	InitialMmapSize int
}

// Owner identifies the process that holds a state file.
type Owner struct {
	PID      int       `json:"pid"`
	Host     string    `json:"host"`
	Command  string    `json:"command"`
	Started  time.Time `json:"started"`
	Instance string    `json:"instance"` // random per Open; tells this opening apart from earlier ones
}

func (o Owner) String() string {
	return fmt.Sprintf("pid %d (%s) on host %s, started %s", o.PID, o.Command, o.Host, o.Started.UTC().Format(time.RFC3339))
}

// ErrInUse is matched (errors.Is) by the error Open returns when another
// process holds the state file.
var ErrInUse = errors.New("state file in use")

// InUseError is returned by Open when another process holds the file lock.
// Owner is zero when the owner record could not be read.
type InUseError struct {
	Path  string
	Owner Owner
	// OwnerErr says why the owner record could not be read, if it could not.
	OwnerErr error
}

func (e *InUseError) Error() string {
	if e.Owner.PID == 0 {
		return fmt.Sprintf("state file %s is in use by another process (owner record unreadable: %v); stop that process (see `fuser %s`) or point state.path at another file", e.Path, e.OwnerErr, e.Path)
	}
	o := e.Owner
	return fmt.Sprintf("state file %s is in use by pid %d (%s on host %s, started %s); stop it or point state.path at another file (one state file per connector)",
		e.Path, o.PID, o.Command, o.Host, o.Started.UTC().Format(time.RFC3339))
}

func (e *InUseError) Unwrap() error { return ErrInUse }

// ErrClosed is returned by operations on a closed Store.
var ErrClosed = errors.New("state store is closed")

// Store is one connector's state file. All methods are safe for concurrent
// use; writes are serialised by bbolt (one writer, many readers).
type Store struct {
	db    *bolt.DB
	path  string
	owner Owner
	log   *slog.Logger

	mu     sync.Mutex
	closed bool

	// Cleanup transaction bounds (fields so that tests can shrink them).
	cleanupScan, cleanupBatch int
}

// Open opens (creating if needed) the state file at path and takes its file
// lock. If another process holds the lock, Open fails within
// opts.LockTimeout with an *InUseError naming that process.
func Open(path string, opts Options) (*Store, error) {
	if path == "" {
		return nil, errors.New("state: open: empty path; set state.path to a file such as /var/lib/feedcdc/state.db")
	}
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = DefaultLockTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Command == "" {
		opts.Command = defaultCommand()
	}
	if opts.InitialMmapSize <= 0 {
		opts.InitialMmapSize = 1 << 30
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("state: create directory for %s: %w", path, err)
		}
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:         opts.LockTimeout,
		FreelistType:    bolt.FreelistMapType,
		NoFreelistSync:  true, // as etcd: no freelist write per commit; rebuilt by a scan at Open
		InitialMmapSize: opts.InitialMmapSize,
		NoSync:          opts.NoSync,
	})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			ie := &InUseError{Path: path}
			ie.Owner, ie.OwnerErr = readOwnerFile(ownerPath(path))
			return nil, ie
		}
		if errors.Is(err, berrors.ErrInvalid) || errors.Is(err, berrors.ErrVersionMismatch) || errors.Is(err, berrors.ErrChecksum) {
			return nil, fmt.Errorf("state: %s is not a readable feedcdc state file (%w); move it away to start from scratch, or restore a backup", path, err)
		}
		return nil, fmt.Errorf("state: open %s: %w", path, err)
	}
	host, _ := os.Hostname()
	s := &Store{
		db:           db,
		path:         path,
		log:          opts.Logger,
		cleanupScan:  cleanupScanPerTx,
		cleanupBatch: cleanupDeletePerTx,
		owner: Owner{
			PID:      os.Getpid(),
			Host:     host,
			Command:  opts.Command,
			Started:  time.Now().UTC(),
			Instance: newToken(),
		},
	}
	if err := s.init(); err != nil {
		db.Close()
		return nil, err
	}
	if err := writeOwnerFile(ownerPath(path), s.owner); err != nil {
		db.Close()
		return nil, fmt.Errorf("state: write owner record: %w", err)
	}
	return s, nil
}

func (s *Store) init() error {
	ownerJSON, _ := json.Marshal(s.owner)
	err := s.db.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bMeta, bCheckpoint, bSchema, bLocks, bFeeds} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bMeta)
		if v := meta.Get(kFormat); v != nil {
			if len(v) != 4 {
				return fmt.Errorf("meta/format has %d bytes: %w", len(v), errCorrupt)
			}
			if ver := binary.BigEndian.Uint32(v); ver > formatVersion {
				return fmt.Errorf("state file format %d was written by a newer feedcdc (this one reads up to %d); upgrade feedcdc", ver, formatVersion)
			}
		} else {
			if err := meta.Put(kFormat, binary.BigEndian.AppendUint32(nil, formatVersion)); err != nil {
				return err
			}
			if err := meta.Put(kCreated, []byte(time.Now().UTC().Format(time.RFC3339Nano))); err != nil {
				return err
			}
		}
		return meta.Put(kOwner, ownerJSON)
	})
	if err != nil {
		return fmt.Errorf("state: initialise %s: %w", s.path, err)
	}
	return nil
}

func defaultCommand() string {
	args := os.Args
	if len(args) == 0 {
		return "feedcdc"
	}
	w := append([]string{filepath.Base(args[0])}, args[1:]...)
	if len(w) > 6 {
		w = w[:6]
	}
	return strings.Join(w, " ")
}

func newToken() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func ownerPath(path string) string { return path + ".owner" }

func writeOwnerFile(path string, o Owner) error {
	b, err := json.Marshal(o)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func readOwnerFile(path string) (Owner, error) {
	var o Owner
	b, err := os.ReadFile(path)
	if err != nil {
		return o, err
	}
	if err := json.Unmarshal(b, &o); err != nil {
		return Owner{}, fmt.Errorf("parse %s: %w", path, err)
	}
	return o, nil
}

// Path is the state file's path.
func (s *Store) Path() string { return s.path }

// Owner describes this process's hold on the file.
func (s *Store) Owner() Owner { return s.owner }

// Size is the state file's current size in bytes.
func (s *Store) Size() (int64, error) {
	var n int64
	err := s.db.View(func(tx *bolt.Tx) error { n = tx.Size(); return nil })
	return n, err
}

// Close releases the feed locks this process still holds, removes the owner
// record and closes the file. It is safe to call more than once.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()

	var errs []error
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bLocks)
		var mine [][]byte
		err := b.ForEach(func(k, v []byte) error {
			var l FeedLock
			if json.Unmarshal(v, &l) == nil && l.Instance == s.owner.Instance {
				mine = append(mine, append([]byte(nil), k...))
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range mine {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		errs = append(errs, fmt.Errorf("release feed locks: %w", err))
	}
	if o, err := readOwnerFile(ownerPath(s.path)); err == nil && o.Instance == s.owner.Instance {
		if err := os.Remove(ownerPath(s.path)); err != nil {
			errs = append(errs, err)
		}
	}
	if err := s.db.Close(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("state: close %s: %w", s.path, err)
	}
	return nil
}

func (s *Store) checkOpen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	return nil
}

// Update runs fn in one read-write transaction, committed and synced to disk
// when fn returns nil and rolled back when it returns an error. Use one
// Update per flush: item states, outbox changes and the checkpoint they
// cover all commit together or not at all. fn must not call other Store
// methods (it would deadlock on bbolt's writer lock); use tx's methods.
func (s *Store) Update(ctx context.Context, fn func(tx *Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.checkOpen(); err != nil {
		return err
	}
	return s.db.Update(func(btx *bolt.Tx) error {
		tx := newTx(ctx, s, btx)
		if err := fn(tx); err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		return tx.finish()
	})
}

// View runs fn in a read-only transaction seeing one consistent snapshot.
// Tx write methods fail inside View.
func (s *Store) View(ctx context.Context, fn func(tx *Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.checkOpen(); err != nil {
		return err
	}
	return s.db.View(func(btx *bolt.Tx) error {
		return fn(newTx(ctx, s, btx))
	})
}

// Checkpoint returns the stored checkpoint and when it was written; ok is
// false when none was ever written.
func (s *Store) Checkpoint(ctx context.Context) (pos change.Position, at time.Time, ok bool, err error) {
	err = s.View(ctx, func(tx *Tx) error {
		pos, at, ok, err = tx.Checkpoint()
		return err
	})
	return pos, at, ok, err
}

// checkpointRecord is the stored checkpoint (JSON; written once per flush).
type checkpointRecord struct {
	Position change.Position `json:"position"`
	At       time.Time       `json:"at"`
}

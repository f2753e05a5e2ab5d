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
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/feedcdc/feedcdc/change"
)

// formatVersion is the layout version stored in meta/format. Opening a file
// with a newer version fails instead of misreading it; an older one is
// upgraded in place. 2: the id index may have staged entries (byidnew,
// idindex.go), which a feedcdc reading format 1 would not see.
const formatVersion = 2

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
	// NewState replaces a damaged, empty or foreign state file with a new
	// one: the old file is renamed to "<path>.damaged-<UTC time>", never
	// deleted. Without it Open fails with a *DamagedError. A healthy file is
	// opened as usual.
	NewState bool
	// OnCommit, when set, receives the writes of every committed Update
	// (high availability: the active instance replicates them to its
	// standbys). Updates are then serialised including the hook, so it
	// sees transactions in commit order.
	OnCommit CommitHook
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

	readOnly bool

	// inflight is the number of write-ahead records in the file (see
	// bInflight), maintained by Update on commit.
	inflight atomic.Int64
	onCommit CommitHook
	commitMu sync.Mutex // held across commit and hook when onCommit is set

	mu      sync.Mutex
	closed  bool
	damaged error // the first *DamagedError met; every later call returns it

	// Cleanup transaction bounds (fields so that tests can shrink them).
	cleanupScan, cleanupBatch int

	// pendMu serialises Update and Apply whole (bbolt's writer lock is
	// released before Update has applied the commit to pend); pend holds
	// the committed staged id index entries (idindex.go). pendBound and
	// mergeChunk are the merge bounds (fields so that tests can shrink
	// them).
	pendMu                sync.Mutex
	pend                  pendIndex
	pendBound, mergeChunk int
}

// Open opens (creating if needed) the state file at path and takes its file
// lock. If another process holds the lock, Open fails within
// opts.LockTimeout with an *InUseError naming that process.
//
// An existing file is validated first, read-only (see validate): a
// damaged, empty or foreign file makes Open fail with a *DamagedError
// (errors.Is(err, ErrDamaged)) and stays unchanged, unless opts.NewState
// moves it aside. A missing file is created.
func Open(path string, opts Options) (*Store, error) {
	opts, err := prepare(path, opts)
	if err != nil {
		return nil, err
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("state: create directory for %s: %w", path, err)
		}
	}
	if _, err := os.Stat(path); err == nil {
		_, verr := validate(path, opts.LockTimeout)
		var de *DamagedError
		switch {
		case errors.As(verr, &de) && opts.NewState:
			moved, err := moveAside(path, time.Now())
			if err != nil {
				return nil, err
			}
			opts.Logger.Warn("state: the state file is damaged; moved it aside and starting with a new one (--new-state): a full sync follows and every item is sent once more",
				"path", path, "moved_to", moved, "problem", de.Problem)
		case verr != nil:
			return nil, verr
		case opts.NewState:
			opts.Logger.Info("state: the state file is healthy; keeping it (--new-state only replaces a damaged file)", "path", path)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("state: open %s: %w", path, err)
	}
	var db *bolt.DB
	err = guard(path, "opening the file", func() (err error) {
		db, err = bolt.Open(path, 0o600, &bolt.Options{
			Timeout:      opts.LockTimeout,
			FreelistType: bolt.FreelistMapType,
			// The free list is written with every commit. Without it (as
			// etcd runs bbolt) every rolled-back write transaction rescans
			// the whole file for free pages on a goroutine of bbolt's own,
			// where a damaged page crashes the process instead of becoming
			// a *DamagedError, and a large state pays a full scan per
			// rollback. A file written without it is scanned once at Open
			// (after validate) and has its free list from the first commit.
			NoFreelistSync:  false,
			InitialMmapSize: opts.InitialMmapSize,
			NoSync:          opts.NoSync,
		})
		return err
	})
	if err != nil {
		return nil, openError(path, err)
	}
	s := newStore(db, path, opts)
	s.onCommit = opts.OnCommit
	if err := s.init(); err != nil {
		db.Close()
		return nil, err
	}
	if err := writeOwnerFile(ownerPath(path), s.owner); err != nil {
		db.Close()
		return nil, fmt.Errorf("state: write owner record: %w", err)
	}
	if err := s.openInflight(); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// openInflight applies the write-ahead records an earlier process left
// (it stopped between an export's PutInflight and its final Update).
func (s *Store) openInflight() error {
	var left bool
	err := s.View(context.Background(), func(tx *Tx) error {
		if b := tx.tx.Bucket(bInflight); b != nil {
			k, _ := b.Cursor().First()
			left = k != nil
		}
		return nil
	})
	if err != nil || !left {
		return err
	}
	var n int
	err = s.Update(context.Background(), func(tx *Tx) error {
		n, err = tx.applyInflight()
		return err
	})
	if err != nil {
		return fmt.Errorf("state: apply the write-ahead records of an interrupted export: %w", err)
	}
	s.inflight.Store(0)
	s.log.Info("state: applied the write-ahead records of exports an earlier process did not finish; their items are sent again", "records", n)
	return nil
}

// OpenReadOnly opens an existing state file for reading (state check,
// state backup): it takes a shared lock, so it fails with an *InUseError
// while a connector holds the file, and with a *DamagedError when the file
// does not pass validation. It writes nothing, not even the owner record;
// Update fails.
func OpenReadOnly(path string, opts Options) (*Store, error) {
	opts, err := prepare(path, opts)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("state: open %s: %w", path, err)
	}
	v, err := validate(path, opts.LockTimeout)
	if err != nil {
		return nil, err
	}
	if v.empty {
		return nil, &DamagedError{Path: path, Foreign: true, Problem: "it is a bbolt database without any bucket (never initialised by feedcdc)"}
	}
	var db *bolt.DB
	err = guard(path, "opening the file", func() (err error) {
		db, err = bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: opts.LockTimeout, FreelistType: bolt.FreelistMapType})
		return err
	})
	if err != nil {
		return nil, openError(path, err)
	}
	s := newStore(db, path, opts)
	s.readOnly = true
	return s, nil
}

func prepare(path string, opts Options) (Options, error) {
	if path == "" {
		return opts, errors.New("state: open: empty path; set state.path to a file such as /var/lib/feedcdc/state.db")
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
	return opts, nil
}

func openError(path string, err error) error {
	if errors.Is(err, ErrDamaged) {
		return err
	}
	if errors.Is(err, berrors.ErrTimeout) {
		ie := &InUseError{Path: path}
		ie.Owner, ie.OwnerErr = readOwnerFile(ownerPath(path))
		return ie
	}
	if errors.Is(err, berrors.ErrInvalid) || errors.Is(err, berrors.ErrVersionMismatch) || errors.Is(err, berrors.ErrChecksum) {
		return &DamagedError{Path: path, Problem: fmt.Sprintf("bbolt cannot open it: %v", err)}
	}
	return fmt.Errorf("state: open %s: %w", path, err)
}

func newStore(db *bolt.DB, path string, opts Options) *Store {
	host, _ := os.Hostname()
	return &Store{
		db:           db,
		path:         path,
		log:          opts.Logger,
		cleanupScan:  cleanupScanPerTx,
		cleanupBatch: cleanupDeletePerTx,
		pend:         pendIndex{stale: true},
		pendBound:    defaultPendBound,
		mergeChunk:   defaultMergeChunk,
		owner: Owner{
			PID:      os.Getpid(),
			Host:     host,
			Command:  opts.Command,
			Started:  time.Now().UTC(),
			Instance: newToken(),
		},
	}
}

func (s *Store) init() error {
	ownerJSON, _ := json.Marshal(s.owner)
	err := s.guarded("initialising the file", func() error {
		return s.db.Update(func(tx *bolt.Tx) error {
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
				ver := binary.BigEndian.Uint32(v)
				if ver > formatVersion {
					return fmt.Errorf("state file format %d was written by a newer feedcdc (this one reads up to %d); upgrade feedcdc", ver, formatVersion)
				}
				if ver < formatVersion {
					// Format 1 is format 2 without staged id index
					// entries; from now on the file may have them.
					if err := meta.Put(kFormat, binary.BigEndian.AppendUint32(nil, formatVersion)); err != nil {
						return err
					}
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
	})
	if errors.Is(err, ErrDamaged) {
		return err
	}
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
	err := s.guarded("reading the size", func() error {
		return s.db.View(func(tx *bolt.Tx) error { n = tx.Size(); return nil })
	})
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
	if s.readOnly {
		if err := s.db.Close(); err != nil {
			return fmt.Errorf("state: close %s: %w", s.path, err)
		}
		return nil
	}
	s.mu.Lock()
	damaged := s.damaged
	s.mu.Unlock()
	err := damaged // a damaged file is not written to again
	if err == nil {
		err = s.guarded("releasing feed locks", func() error {
			return s.db.Update(func(tx *bolt.Tx) error {
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
		})
	}
	if err != nil {
		errs = append(errs, fmt.Errorf("release feed locks: %w", err))
	}
	if o, err := readOwnerFile(ownerPath(s.path)); err == nil && o.Instance == s.owner.Instance {
		if err := os.Remove(ownerPath(s.path)); err != nil {
			errs = append(errs, err)
		}
	}
	if err := s.closeDB(damaged != nil); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("state: close %s: %w", s.path, err)
	}
	return nil
}

// closeDB closes bbolt. On a damaged file a write transaction that met
// the damage may have left bbolt's writer lock held (its rollback reads the
// free list, which can be a broken page too), and bbolt's Close would wait
// for it for ever: it is given a moment, then left to the process's exit,
// which releases the file's lock and mapping.
func (s *Store) closeDB(damaged bool) error {
	if !damaged {
		return s.db.Close()
	}
	done := make(chan error, 1)
	go func() { done <- s.db.Close() }()
	select {
	case err := <-done:
		return err
	case <-time.After(2 * time.Second):
		return errors.New("bbolt's writer lock is still held by a transaction that met the damage; the file is released when the process exits")
	}
}

func (s *Store) checkOpen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	return s.damaged
}

// guarded runs fn (a bbolt call) under guard; the first damage it meets
// makes the Store refuse every later call with the same error.
func (s *Store) guarded(op string, fn func() error) error {
	err := guard(s.path, op, fn)
	var de *DamagedError
	if errors.As(err, &de) {
		s.mu.Lock()
		if s.damaged == nil {
			s.damaged = de
		}
		s.mu.Unlock()
		s.log.Error("state: the state file is damaged", "path", s.path, "problem", de.Problem)
	}
	return err
}

// Update runs fn in one read-write transaction, committed and synced to disk
// when fn returns nil and rolled back when it returns an error. Use one
// Update per flush: item states, outbox changes and the checkpoint they
// cover all commit together or not at all. fn must not call other Store
// methods (it would deadlock on bbolt's writer lock); use tx's methods.
//
// When the committed transaction leaves the staged id index entries at
// their bound, Update then merges steps of them into the id index, each in
// a transaction of its own (idindex.go): until they are below the bound
// (usually one step), or all of them when the transaction staged a step's
// worth itself; an error of that merge is returned, the caller's
// transaction stands.
func (s *Store) Update(ctx context.Context, fn func(tx *Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.checkOpen(); err != nil {
		return err
	}
	if s.readOnly {
		return fmt.Errorf("state: %s is open read-only (for check or backup); it cannot be written", s.path)
	}
	s.pendMu.Lock()
	defer s.pendMu.Unlock()
	before := s.pend.n
	if err := s.update(ctx, fn); err != nil {
		return err
	}
	if s.pend.n < s.pendBound {
		return nil
	}
	// A commit that staged a step's worth of new ids or more is a full
	// sync's (a streamed batch stages a few): it merges every staged entry,
	// since keeping them just under the bound made a first start of the
	// large catalog take about a fifth more CPU (and 300 MiB more of the
	// file resident). Otherwise it merges only until they are below the
	// bound again, so that no streamed batch waits for a whole merge.
	floor := s.pendBound
	if s.pend.n-before >= s.mergeChunk {
		floor = 1
	}
	for s.pend.n >= floor {
		if err := s.mergeStep(context.WithoutCancel(ctx)); err != nil {
			return fmt.Errorf("state: the transaction is committed, but %w", err)
		}
	}
	return nil
}

// update is one write transaction of Update; s.pendMu is held.
func (s *Store) update(ctx context.Context, fn func(tx *Tx) error) error {
	var inflight int64
	if s.onCommit != nil {
		s.commitMu.Lock()
		defer s.commitMu.Unlock()
	}
	var ops []Op
	var tx *Tx
	err := s.guarded("a write transaction", func() error {
		return s.db.Update(func(btx *bolt.Tx) error {
			tx = newTx(ctx, s, btx)
			tx.recording = s.onCommit != nil
			if s.pend.stale {
				if err := s.reloadPend(tx); err != nil {
					s.pend.stale = true
					return err
				}
			}
			if err := fn(tx); err != nil {
				return err
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			inflight = tx.inflight
			if err := tx.finish(); err != nil {
				return err
			}
			ops = tx.ops
			return nil
		})
	})
	if err == nil {
		s.commitPend(tx)
	}
	if err == nil && inflight != 0 {
		s.inflight.Add(inflight)
	}
	if err != nil || len(ops) == 0 {
		return err
	}
	if err := s.onCommit(ctx, ops); err != nil {
		return fmt.Errorf("state: the transaction is committed locally but its replication failed: %w", err)
	}
	return nil
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
	return s.guarded("a read transaction", func() error {
		return s.db.View(func(btx *bolt.Tx) error {
			return fn(newTx(ctx, s, btx))
		})
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

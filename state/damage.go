package state

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"hash/fnv"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// ErrDamaged is matched (errors.Is) by every error for a state file that
// cannot be used as it is: truncated, overwritten, empty, or not a feedcdc
// state file at all. The file is left unchanged.
var ErrDamaged = errors.New("state file damaged")

// DamagedError describes what is wrong with a state file. Callers add the
// remedy for their context (the CLI names the commands).
type DamagedError struct {
	Path string
	// Problem says what is wrong, in words for the operator.
	Problem string
	// Foreign is true when the file is not a feedcdc state file at all
	// (empty, not bbolt, or bbolt without feedcdc's records): state.path
	// may point at the wrong file.
	Foreign bool
}

func (e *DamagedError) Error() string {
	if e.Foreign {
		return fmt.Sprintf("state file %s is not a readable feedcdc state file: %s (the file was left unchanged)", e.Path, e.Problem)
	}
	return fmt.Sprintf("state file %s is damaged: %s (the file was left unchanged)", e.Path, e.Problem)
}

// Unwrap makes errors.Is(err, ErrDamaged) true.
func (e *DamagedError) Unwrap() error { return ErrDamaged }

// bbolt's on-disk constants (go.etcd.io/bbolt/internal/common): the meta page
// layout is part of bbolt's stable file format.
const (
	boltMagic      = 0xED0CDAED
	boltVersion    = 2
	pageHeaderSize = 16
	metaSize       = 64
	noFreelist     = ^uint64(0)
)

// metaPage is one of bbolt's two meta pages as read from the file.
type metaPage struct {
	magic, version, pageSize uint32
	root, freelist, pgid     uint64
	txid                     uint64
	err                      error // why it is invalid, nil when valid
}

func parseMeta(b []byte) metaPage {
	var m metaPage
	if len(b) < pageHeaderSize+metaSize {
		m.err = errors.New("cut off")
		return m
	}
	ne := binary.LittleEndian // bbolt writes native byte order; feedcdc builds for little-endian machines
	mb := b[pageHeaderSize : pageHeaderSize+metaSize]
	m.magic = ne.Uint32(mb[0:])
	m.version = ne.Uint32(mb[4:])
	m.pageSize = ne.Uint32(mb[8:])
	m.root = ne.Uint64(mb[16:])
	m.freelist = ne.Uint64(mb[32:])
	m.pgid = ne.Uint64(mb[40:])
	m.txid = ne.Uint64(mb[48:])
	h := fnv.New64a()
	h.Write(mb[:56])
	switch {
	case m.magic != boltMagic:
		m.err = errors.New("no bbolt magic number")
	case m.version != boltVersion:
		m.err = fmt.Errorf("bbolt format version %d, not %d", m.version, boltVersion)
	case ne.Uint64(mb[56:]) != h.Sum64():
		m.err = errors.New("checksum mismatch")
	case m.pageSize < 512 || m.pageSize > 1<<20 || m.pageSize&(m.pageSize-1) != 0:
		m.err = fmt.Errorf("impossible page size %d", m.pageSize)
	case m.root >= m.pgid || (m.freelist != noFreelist && m.freelist >= m.pgid):
		m.err = fmt.Errorf("root page %d or freelist page %d beyond the high-water mark %d", m.root, m.freelist, m.pgid)
	}
	return m
}

// fileHeader is what the two meta pages of a state file say.
type fileHeader struct {
	size      int64
	meta      [2]metaPage
	use       int // index of the meta page bbolt uses (valid, highest txid)
	warnings  []string
	pageSize  int64
	highWater int64 // bytes the last committed transaction uses: pgid * page size
	lastTxID  uint64
	foreign   bool
	problem   string
}

// readHeader reads and checks the meta pages of the file at path without
// bbolt (no mapping, no lock): magic and version, checksums, page size, and
// the file size against the high-water mark of the meta page bbolt would
// use. problem is empty when the file passes.
func readHeader(f *os.File) (fileHeader, error) {
	var h fileHeader
	fi, err := f.Stat()
	if err != nil {
		return h, err
	}
	h.size = fi.Size()
	if h.size == 0 {
		h.problem, h.foreign = "it is empty (0 bytes)", true
		return h, nil
	}
	buf := make([]byte, 4096)
	n, err := f.ReadAt(buf, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return h, err
	}
	h.meta[0] = parseMeta(buf[:n])
	// The second meta page starts one page in; take the page size from the
	// first meta page when it is readable, else try the usual sizes.
	sizes := []int64{4096, 8192, 16384, 65536, 1024, 2048, 32768}
	if h.meta[0].err == nil {
		sizes = []int64{int64(h.meta[0].pageSize)}
	}
	h.meta[1] = metaPage{err: errors.New("cut off")}
	for _, ps := range sizes {
		b := make([]byte, pageHeaderSize+metaSize)
		if n, err := f.ReadAt(b, ps); err != nil && !errors.Is(err, io.EOF) {
			return h, err
		} else if m := parseMeta(b[:n]); m.err == nil || ps == sizes[0] {
			h.meta[1] = m
			if m.err == nil {
				break
			}
		}
	}
	m0, m1 := h.meta[0], h.meta[1]
	switch {
	case m0.err != nil && m1.err != nil:
		if m0.magic != boltMagic && m1.magic != boltMagic {
			h.problem, h.foreign = fmt.Sprintf("it is not a bbolt database (no bbolt magic number in its first %d bytes)", min(h.size, 8192)), true
		} else {
			h.problem = fmt.Sprintf("both bbolt meta pages are invalid (page 0: %v; page 1: %v)", m0.err, m1.err)
		}
		return h, nil
	case m0.err != nil:
		h.use = 1
	case m1.err != nil:
		h.use = 0
	case m1.txid > m0.txid:
		h.use = 1
	}
	for i, m := range h.meta {
		if m.err != nil {
			h.warnings = append(h.warnings, fmt.Sprintf("bbolt meta page %d is invalid (%v); bbolt uses meta page %d (transaction %d) and rewrites the other on the next commit",
				i, m.err, h.use, h.meta[h.use].txid))
		}
	}
	m := h.meta[h.use]
	if m0.err == nil && m1.err == nil && m0.pageSize != m1.pageSize {
		h.problem = fmt.Sprintf("the meta pages disagree on the page size (%d, %d)", m0.pageSize, m1.pageSize)
		return h, nil
	}
	h.pageSize, h.lastTxID = int64(m.pageSize), m.txid
	h.highWater = int64(m.pgid) * h.pageSize
	if h.size < h.highWater {
		h.problem = fmt.Sprintf("it is truncated: the file has %d bytes, but its last committed transaction (%d) uses %d bytes (%d pages of %d bytes); %.0f%% is missing",
			h.size, m.txid, h.highWater, m.pgid, m.pageSize, 100*float64(h.highWater-h.size)/float64(h.highWater))
	}
	return h, nil
}

// guard runs fn, which uses bbolt, with memory faults turned into panics
// (debug.SetPanicOnFault) and turns a fault on the mapped file (a page cut
// off by truncation) or a panic raised inside bbolt (its page assertions on
// overwritten pages) into a *DamagedError. Any other panic is a bug and is
// re-raised. bbolt runs View/Update functions, cursor iteration and Open on
// the calling goroutine, so this covers them; bbolt's own goroutines (the
// free-page scan of Open, Tx.Check) are only started on a file that
// validate has walked.
func guard(path, op string, fn func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		r := recover()
		if r == nil {
			return
		}
		if !isDamagePanic(r) {
			panic(r)
		}
		err = &DamagedError{Path: path, Problem: fmt.Sprintf("%s failed on a broken page: %v", op, r)}
	}()
	return fn()
}

// isDamagePanic tells a panic caused by the file's content from a bug: a
// fault with an address (SetPanicOnFault) happens only on the mapped file,
// and bbolt panics only on pages that are not what they should be.
func isDamagePanic(r any) bool {
	if _, ok := r.(interface{ Addr() uintptr }); ok {
		return true
	}
	pcs := make([]uintptr, 64)
	n := runtime.Callers(3, pcs)
	frames := runtime.CallersFrames(pcs[:n])
	for {
		f, more := frames.Next()
		fn := f.Function
		switch {
		case strings.HasPrefix(fn, "runtime."):
		case strings.HasPrefix(fn, "go.etcd.io/bbolt"):
			return true
		default:
			if fn != "" && !strings.Contains(fn, "state.guard") {
				return false
			}
		}
		if !more {
			return false
		}
	}
}

// feedcdc's root buckets: a file with other root buckets, or without
// meta/format, is not a feedcdc state file.
var rootBuckets = [][]byte{bMeta, bCheckpoint, bSchema, bLocks, bFeeds}

// validation is what validate found.
type validation struct {
	header fileHeader
	empty  bool // a bbolt file without any bucket (created, never initialised): usable as new
}

// validate checks the state file at path before bbolt opens it for writing:
// it opens it read-only (a shared lock: a running connector makes it fail
// with an *InUseError), checks both meta pages and the file size against
// the high-water mark, then walks every page of every bucket under guard,
// and checks feedcdc's own records (root buckets, format, checkpoint). A
// file that fails gives a *DamagedError; the file is never written.
func validate(path string, lockTimeout time.Duration) (v validation, err error) {
	f, err := os.Open(path)
	if err != nil {
		return v, fmt.Errorf("state: open %s: %w", path, err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() == 0 {
		// bbolt would initialise an empty file as a new database. Refuse it,
		// unless a process that holds the lock is creating it right now.
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); errors.Is(err, syscall.EWOULDBLOCK) {
			ie := &InUseError{Path: path}
			ie.Owner, ie.OwnerErr = readOwnerFile(ownerPath(path))
			return v, ie
		}
		return v, &DamagedError{Path: path, Problem: "it is empty (0 bytes)", Foreign: true}
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: lockTimeout})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			ie := &InUseError{Path: path}
			ie.Owner, ie.OwnerErr = readOwnerFile(ownerPath(path))
			return v, ie
		}
		// bbolt failed on the meta pages or the size; readHeader says why.
		if h, herr := readHeader(f); herr == nil && h.problem != "" {
			return v, &DamagedError{Path: path, Problem: h.problem, Foreign: h.foreign}
		}
		return v, &DamagedError{Path: path, Problem: fmt.Sprintf("bbolt cannot open it: %v", err)}
	}
	defer db.Close()
	// Read the header under the shared lock: no writer can be between
	// writing its pages and its meta page.
	if v.header, err = readHeader(f); err != nil {
		return v, fmt.Errorf("state: read %s: %w", path, err)
	}
	if v.header.problem != "" {
		return v, &DamagedError{Path: path, Problem: v.header.problem, Foreign: v.header.foreign}
	}
	err = guard(path, "reading the file", func() error {
		return db.View(func(tx *bolt.Tx) error {
			var roots []string
			if err := tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
				roots = append(roots, string(name))
				return nil
			}); err != nil {
				return err
			}
			if len(roots) == 0 {
				v.empty = true
				return nil
			}
			if err := checkFeedcdcRoots(path, tx, roots); err != nil {
				return err
			}
			var broken []brokenBucket
			walkBuckets(tx.Cursor(), "", &broken)
			if len(broken) > 0 {
				return &DamagedError{Path: path, Problem: brokenProblem(broken)}
			}
			return nil
		})
	})
	return v, err
}

// checkFeedcdcRoots checks that a bbolt file is a feedcdc state file.
func checkFeedcdcRoots(path string, tx *bolt.Tx, roots []string) error {
	meta := tx.Bucket(bMeta)
	if meta == nil || meta.Get(kFormat) == nil {
		return &DamagedError{Path: path, Foreign: true,
			Problem: fmt.Sprintf("it is a bbolt database but not a feedcdc state file (no meta/format record; its buckets: %s)", strings.Join(roots, ", "))}
	}
	for _, name := range rootBuckets {
		if tx.Bucket(name) == nil {
			return &DamagedError{Path: path, Problem: fmt.Sprintf("its %q bucket is missing", name)}
		}
	}
	if v := meta.Get(kFormat); len(v) != 4 {
		return &DamagedError{Path: path, Problem: fmt.Sprintf("meta/format has %d bytes instead of 4", len(v))}
	}
	if v := tx.Bucket(bCheckpoint).Get(kPos); v != nil {
		var r checkpointRecord
		if err := json.Unmarshal(v, &r); err != nil {
			return &DamagedError{Path: path, Problem: fmt.Sprintf("its checkpoint record cannot be decoded (%v)", err)}
		}
	}
	return nil
}

// brokenBucket is a bucket whose walk met a broken page.
type brokenBucket struct {
	path  string
	panic any
}

func (b brokenBucket) String() string { return fmt.Sprintf("%s (%v)", b.path, b.panic) }

// walkBuckets visits every key of the bucket of c and of its nested
// buckets, which reads every branch and leaf page bbolt can reach (bbolt
// checks each page's id and type). A broken page ends the walk of its own
// bucket only, so that one walk lists every damaged bucket. It must run
// under guard (which turns faults into panics on this goroutine).
func walkBuckets(c *bolt.Cursor, path string, broken *[]brokenBucket) {
	defer func() {
		if r := recover(); r != nil {
			if !isDamagePanic(r) {
				panic(r)
			}
			*broken = append(*broken, brokenBucket{path: path, panic: r})
		}
	}()
	b := c.Bucket()
	var prev []byte
	for k, v := c.First(); k != nil; k, v = c.Next() {
		// Read every key and value byte here, under guard: an element whose
		// size runs past the mapping faults now, not later in bbolt's
		// free-page scan (its own goroutine) or in a caller. Keys must
		// ascend, as bbolt's own check requires.
		touch(k)
		touch(v)
		if prev != nil && bytes.Compare(prev, k) >= 0 {
			*broken = append(*broken, brokenBucket{path: path, panic: fmt.Sprintf("keys out of order: %.40x after %.40x", k, prev)})
			return
		}
		prev = append(prev[:0], k...)
		if v != nil {
			continue
		}
		if child := b.Bucket(k); child != nil {
			walkBuckets(child.Cursor(), strings.TrimPrefix(path+"/"+string(k), "/"), broken)
		}
	}
}

// touch reads every byte of b (a checksum the compiler cannot drop).
func touch(b []byte) uint32 { return crc32.ChecksumIEEE(b) }

// brokenProblem describes the broken buckets walkBuckets found.
func brokenProblem(broken []brokenBucket) string {
	var parts []string
	for i, b := range broken {
		if i == 5 {
			parts = append(parts, fmt.Sprintf("and %d more", len(broken)-5))
			break
		}
		if b.path == "" {
			b.path = "(root)"
		}
		parts = append(parts, b.String())
	}
	return fmt.Sprintf("broken pages in %d bucket(s): %s", len(broken), strings.Join(parts, "; "))
}

// moveAside renames a damaged state file to "<path>.damaged-<UTC time>" so
// that a new one can be created, and returns the new name.
func moveAside(path string, now time.Time) (string, error) {
	dst := path + ".damaged-" + now.UTC().Format("20060102T150405Z")
	if _, err := os.Lstat(dst); err == nil {
		dst += fmt.Sprintf("-%d", now.UnixNano())
	}
	if err := os.Rename(path, dst); err != nil {
		return "", fmt.Errorf("state: move damaged %s aside: %w", path, err)
	}
	return dst, nil
}

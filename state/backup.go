package state

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	bolt "go.etcd.io/bbolt"
)

// CheckReport is the result of checking a state file (feedcdc state check).
type CheckReport struct {
	Path string `json:"path"`
	// Size is the file size; HighWater the bytes its last transaction uses.
	Size      int64  `json:"size"`
	HighWater int64  `json:"high_water"`
	PageSize  int64  `json:"page_size"`
	TxID      uint64 `json:"txid"`
	// Checkpoint is the stored checkpoint position ("" when none).
	Checkpoint string `json:"checkpoint,omitempty"`
	// Items counts the items per feed.
	Items map[string]int64 `json:"items,omitempty"`
	// Problems is the damage found; empty means the file passed.
	Problems []string `json:"problems,omitempty"`
	// Warnings do not fail the check (one torn meta page, which bbolt
	// recovers from).
	Warnings []string `json:"warnings,omitempty"`
}

// OK reports whether the check found no damage.
func (r CheckReport) OK() bool { return len(r.Problems) == 0 }

// maxProblems bounds the problems a check reports.
const maxProblems = 50

// CheckFile checks the state file at path while no connector holds it:
// validation (meta pages, size, every page), bbolt's consistency check
// (Tx.Check: page references, free pages, key order) and feedcdc's own
// (root buckets, checkpoint, every feed's indexes and counters). Damage is
// reported in the CheckReport, not as an error; the error is for a file that
// is missing or in use (*InUseError). The file is not written.
func CheckFile(ctx context.Context, path string, opts Options) (CheckReport, error) {
	r := CheckReport{Path: path}
	s, err := OpenReadOnly(path, opts)
	var de *DamagedError
	if errors.As(err, &de) {
		if f, ferr := os.Open(path); ferr == nil {
			if h, herr := readHeader(f); herr == nil {
				r.fillHeader(h)
			}
			f.Close()
		}
		r.Problems = append(r.Problems, de.Problem)
		return r, nil
	}
	if err != nil {
		return r, err
	}
	defer s.Close()
	return s.CheckReport(ctx)
}

func (r *CheckReport) fillHeader(h fileHeader) {
	r.Size, r.HighWater, r.PageSize, r.TxID = h.size, h.highWater, h.pageSize, h.lastTxID
	r.Warnings = append(r.Warnings, h.warnings...)
}

// CheckReport checks the open state file like CheckFile. On a writable
// Store (a running connector) it runs in a write transaction that is rolled
// back, because bbolt's check reads the free-page list that commits change:
// flushes wait for the check (about as long as opening the file takes, see
// docs/state.md).
func (s *Store) CheckReport(ctx context.Context) (CheckReport, error) {
	r := CheckReport{Path: s.path, Items: map[string]int64{}}
	if err := s.checkOpen(); err != nil {
		var de *DamagedError
		if errors.As(err, &de) {
			r.Problems = append(r.Problems, de.Problem)
			return r, nil
		}
		return r, err
	}
	f, err := os.Open(s.path)
	if err != nil {
		return r, fmt.Errorf("state: check %s: %w", s.path, err)
	}
	defer f.Close()
	problem := func(format string, args ...any) {
		if len(r.Problems) < maxProblems {
			r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
		}
	}
	err = s.guarded("checking the file", func() error {
		btx, err := s.db.Begin(!s.readOnly)
		if err != nil {
			return err
		}
		defer btx.Rollback()
		// Header under the transaction's lock: a writer's meta page cannot
		// change under a write transaction (running connector), and nobody
		// writes under a read-only Store's shared lock.
		h, err := readHeader(f)
		if err != nil {
			return err
		}
		r.fillHeader(h)
		if h.problem != "" {
			problem("%s", h.problem)
			return nil
		}
		var roots []string
		if err := btx.ForEach(func(name []byte, _ *bolt.Bucket) error { roots = append(roots, string(name)); return nil }); err != nil {
			return err
		}
		if err := checkFeedcdcRoots(s.path, btx, roots); err != nil {
			var de *DamagedError
			if errors.As(err, &de) {
				problem("%s", de.Problem)
				return nil
			}
			return err
		}
		// Every page is read here, under guard, before bbolt's check reads
		// them on a goroutine of its own (where a fault could not be caught).
		var broken []brokenBucket
		walkBuckets(btx.Cursor(), "", &broken)
		for _, b := range broken {
			problem("broken page in bucket %s", b)
		}
		if len(broken) > 0 {
			return nil // bbolt's check would read the broken pages on its own goroutine
		}
		for cerr := range btx.Check() {
			problem("bbolt: %v", cerr)
		}
		tx := newTx(ctx, s, btx)
		if pos, _, ok, err := tx.Checkpoint(); err != nil {
			problem("%v", err)
		} else if ok {
			r.Checkpoint = pos.String()
		}
		feeds, err := tx.Feeds()
		if err != nil {
			return err
		}
		for _, feed := range feeds {
			if err := tx.checkFeed(feed); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				problem("%v", err)
				continue
			}
			c, err := tx.Counts(feed)
			if err != nil {
				problem("%v", err)
				continue
			}
			r.Items[feed] = c.Total
		}
		return nil
	})
	var de *DamagedError
	if errors.As(err, &de) {
		problem("%s", de.Problem)
		return r, nil
	}
	return r, err
}

// Backup writes a consistent copy of the state file, as of one read
// transaction, to w (bbolt Tx.WriteTo: it reads the file, not the mapping,
// and does not block the connector's flushes). size, if not nil, is called
// with the copy's exact length before the first byte is written. It returns
// the bytes written.
func (s *Store) Backup(ctx context.Context, w io.Writer, size func(int64)) (n int64, err error) {
	if err := s.checkOpen(); err != nil {
		return 0, err
	}
	err = s.guarded("backing up the file", func() error {
		return s.db.View(func(tx *bolt.Tx) error {
			if size != nil {
				size(tx.Size())
			}
			n, err = tx.WriteTo(ctxWriter{ctx, w})
			return err
		})
	})
	if err != nil {
		return n, fmt.Errorf("state: back up %s: %w", s.path, err)
	}
	return n, nil
}

type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}

// WriteBackup writes a backup file safely: copy (which writes the bytes and
// returns their count) writes into "<dst>.tmp", which is synced, checked
// (CheckFile: a copy that does not pass never replaces dst) and renamed to
// dst; then the directory is synced. dst must not be the state file itself
// (statePath). It returns the copy's report.
func WriteBackup(ctx context.Context, dst, statePath string, copy func(w io.Writer) (int64, error)) (CheckReport, error) {
	var r CheckReport
	if same, err := sameFile(dst, statePath); err != nil {
		return r, err
	} else if same {
		return r, fmt.Errorf("state backup: %s is the state file itself; write the backup to another file", dst)
	}
	tmp := dst + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return r, fmt.Errorf("state backup: %w", err)
	}
	fail := func(err error) (CheckReport, error) {
		f.Close()
		os.Remove(tmp)
		return r, err
	}
	if _, err := copy(f); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(fmt.Errorf("state backup: sync %s: %w", tmp, err))
	}
	if err := f.Close(); err != nil {
		return fail(fmt.Errorf("state backup: close %s: %w", tmp, err))
	}
	r, err = CheckFile(ctx, tmp, Options{})
	if err == nil && !r.OK() {
		err = fmt.Errorf("state backup: the copy in %s does not pass the check: %v", tmp, r.Problems)
	}
	if err != nil {
		os.Remove(tmp)
		return r, err
	}
	r.Path = dst
	if err := os.Rename(tmp, dst); err != nil {
		os.Remove(tmp)
		return r, fmt.Errorf("state backup: %w", err)
	}
	if d, err := os.Open(filepath.Dir(dst)); err == nil {
		err = d.Sync()
		d.Close()
		if err != nil {
			return r, fmt.Errorf("state backup: sync directory of %s: %w", dst, err)
		}
	}
	return r, nil
}

func sameFile(a, b string) (bool, error) {
	fa, err := os.Stat(a)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	} else if err != nil {
		return false, fmt.Errorf("state backup: %w", err)
	}
	fb, err := os.Stat(b)
	if err != nil {
		return false, nil
	}
	return os.SameFile(fa, fb), nil
}

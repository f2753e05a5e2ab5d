package state

import (
	"errors"
	"fmt"
	"os"

	bolt "go.etcd.io/bbolt"
)

// Compact writes a compacted copy of the state file src to dst, which must
// not exist yet, and returns both sizes. bbolt never returns free pages to
// the file system; a copy holds only live data, with full pages. src is
// opened like Open does (so a running connector makes it fail with an
// *InUseError); replace src with dst only after Compact returned nil and
// before the connector starts again.
func Compact(src, dst string, opts Options) (srcSize, dstSize int64, err error) {
	if _, err := os.Stat(src); err != nil {
		return 0, 0, fmt.Errorf("state: compact: %w", err)
	}
	if _, err := os.Stat(dst); err == nil {
		return 0, 0, fmt.Errorf("state: compact: %s already exists; choose a new file name", dst)
	} else if !errors.Is(err, os.ErrNotExist) {
		return 0, 0, fmt.Errorf("state: compact: %w", err)
	}
	s, err := Open(src, opts)
	if err != nil {
		return 0, 0, err
	}
	defer s.Close()
	out, err := bolt.Open(dst, 0o600, &bolt.Options{Timeout: DefaultLockTimeout, FreelistType: bolt.FreelistMapType, NoFreelistSync: true})
	if err != nil {
		return 0, 0, fmt.Errorf("state: compact: create %s: %w", dst, err)
	}
	if err := s.guarded("compacting", func() error { return bolt.Compact(out, s.db, 64<<20) }); err != nil {
		out.Close()
		os.Remove(dst)
		return 0, 0, fmt.Errorf("state: compact %s into %s: %w", src, dst, err)
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return 0, 0, fmt.Errorf("state: compact: sync %s: %w", dst, err)
	}
	if err := out.Close(); err != nil {
		return 0, 0, fmt.Errorf("state: compact: close %s: %w", dst, err)
	}
	if srcSize, err = s.Size(); err != nil {
		return 0, 0, err
	}
	fi, err := os.Stat(dst)
	if err != nil {
		return 0, 0, err
	}
	return srcSize, fi.Size(), nil
}

package state

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"
)

// FeedLock is the record of an operation holding a feed (one operation per
// feed at a time: resync, retry, legacy flush, cleanup-feed).
type FeedLock struct {
	Feed     string    `json:"feed"`
	Owner    string    `json:"owner"` // the operation, e.g. "resync"
	PID      int       `json:"pid"`
	Host     string    `json:"host"`
	Command  string    `json:"command"`
	Instance string    `json:"instance"`
	Token    string    `json:"token"`
	Acquired time.Time `json:"acquired"`
	// Stale is set by FeedLocks on locks left by an earlier process; the
	// next AcquireFeedLock of that feed takes them over.
	Stale bool `json:"stale,omitempty"`
}

// ErrFeedLocked is matched (errors.Is) by the error AcquireFeedLock returns
// when another operation holds the feed.
var ErrFeedLocked = errors.New("feed is locked")

// FeedLockedError names the operation that holds a feed.
type FeedLockedError struct{ Holder FeedLock }

func (e *FeedLockedError) Error() string {
	h := e.Holder
	return fmt.Sprintf("feed %q is locked by %s (pid %d, %s on host %s, since %s); wait for it to finish or stop it",
		h.Feed, h.Owner, h.PID, h.Command, h.Host, h.Acquired.UTC().Format(time.RFC3339))
}

func (e *FeedLockedError) Unwrap() error { return ErrFeedLocked }

// AcquireFeedLock takes feed's operation lock for owner (an operation name
// such as "resync"). If another operation of this process holds it, it fails
// at once with a *FeedLockedError naming the holder. A lock recorded by an
// earlier process is stale — the state file's own lock guarantees that no
// other process has the file open — and is taken over with a warning.
// release removes the lock; it is idempotent and also safe after Close.
func (s *Store) AcquireFeedLock(ctx context.Context, feed, owner string) (release func() error, err error) {
	if err := validFeed(feed); err != nil {
		return nil, err
	}
	if owner == "" {
		return nil, errors.New("state: acquire feed lock: empty owner; name the operation (e.g. \"resync\")")
	}
	lock := FeedLock{
		Feed:     feed,
		Owner:    owner,
		PID:      s.owner.PID,
		Host:     s.owner.Host,
		Command:  s.owner.Command,
		Instance: s.owner.Instance,
		Token:    newToken(),
		Acquired: time.Now().UTC(),
	}
	var stale *FeedLock
	err = s.Update(ctx, func(tx *Tx) error {
		b := tx.root(bLocks)
		stale = nil
		if v := b.Get([]byte(feed)); v != nil {
			var cur FeedLock
			if err := json.Unmarshal(v, &cur); err != nil {
				return fmt.Errorf("state: read lock of feed %q: %w", feed, err)
			}
			if cur.Instance == s.owner.Instance {
				return &FeedLockedError{Holder: cur}
			}
			stale = &cur
		}
		val, err := json.Marshal(lock)
		if err != nil {
			return err
		}
		return b.Put([]byte(feed), val)
	})
	if err != nil {
		return nil, err
	}
	if stale != nil {
		s.log.Warn("state: took over a stale feed lock left by an earlier process",
			"feed", feed, "holder", stale.Owner, "pid", stale.PID, "host", stale.Host,
			"since", stale.Acquired, "pid_alive", stale.Host == s.owner.Host && processAlive(stale.PID))
	}
	var once sync.Once
	var relErr error
	release = func() error {
		once.Do(func() {
			err := s.Update(context.Background(), func(tx *Tx) error {
				b := tx.root(bLocks)
				v := b.Get([]byte(feed))
				if v == nil {
					return nil
				}
				var cur FeedLock
				if json.Unmarshal(v, &cur) == nil && cur.Token != lock.Token {
					return nil // taken over since; not ours to remove
				}
				return b.Delete([]byte(feed))
			})
			if err != nil && !errors.Is(err, ErrClosed) {
				relErr = fmt.Errorf("state: release lock of feed %q: %w", feed, err)
			}
		})
		return relErr
	}
	return release, nil
}

// FeedLocks lists the feed locks currently recorded, in feed order, marking
// those left by an earlier process as Stale.
func (s *Store) FeedLocks(ctx context.Context) ([]FeedLock, error) {
	var out []FeedLock
	err := s.View(ctx, func(tx *Tx) error {
		return tx.tx.Bucket(bLocks).ForEach(func(k, v []byte) error {
			var l FeedLock
			if err := json.Unmarshal(v, &l); err != nil {
				return fmt.Errorf("state: read lock of feed %q: %w", k, err)
			}
			l.Stale = l.Instance != s.owner.Instance
			out = append(out, l)
			return nil
		})
	})
	return out, err
}

func processAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM) || pid == os.Getpid()
}

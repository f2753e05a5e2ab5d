package state

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// OpKind is the kind of one replicated write.
type OpKind uint8

// The kinds of replicated writes.
const (
	OpPut          OpKind = 1 // Key = Value in Bucket
	OpDelete       OpKind = 2 // Key removed from Bucket
	OpCreateBucket OpKind = 3 // Bucket exists (empty if new)
	OpDropBucket   OpKind = 4 // Bucket and everything under it removed
	OpSequence     OpKind = 5 // Bucket's sequence set to the uint64 in Value (big endian)
)

// Op is one write of a committed state transaction, in the state file's own
// key space: Bucket is the path of nested buckets from the root. The ops of
// one Update, applied in order by Apply to another state file, give it the
// same content (high availability: a standby's copy of the active's state).
type Op struct {
	Kind   OpKind
	Bucket [][]byte
	Key    []byte
	Value  []byte
}

// CommitHook receives the ops of every Update that committed and wrote
// something, in commit order, after the transaction is durable on disk and
// before Update returns. Its error is returned by Update; the local commit
// stands.
type CommitHook func(ctx context.Context, ops []Op) error

// bucket is a bbolt bucket whose writes are recorded in its transaction's
// op list when the store has a commit hook.
type bucket struct {
	*bolt.Bucket
	path [][]byte
	t    *Tx
}

func (t *Tx) record(kind OpKind, path [][]byte, k, v []byte) {
	if !t.recording {
		return
	}
	op := Op{Kind: kind, Bucket: path}
	if k != nil {
		op.Key = append([]byte(nil), k...)
	}
	if v != nil {
		op.Value = append([]byte{}, v...)
	}
	t.ops = append(t.ops, op)
}

// root returns the root bucket name (always present after Open).
func (t *Tx) root(name []byte) *bucket {
	return &bucket{Bucket: t.tx.Bucket(name), path: [][]byte{name}, t: t}
}

// sub returns b's sub-bucket name, nil when it does not exist.
func (b *bucket) sub(name []byte) *bucket {
	s := b.Bucket.Bucket(name)
	if s == nil {
		return nil
	}
	return &bucket{Bucket: s, path: appendPath(b.path, name), t: b.t}
}

func (b *bucket) createSub(name []byte) (*bucket, error) {
	s, err := b.Bucket.CreateBucketIfNotExists(name)
	if err != nil {
		return nil, err
	}
	path := appendPath(b.path, name)
	b.t.record(OpCreateBucket, path, nil, nil)
	return &bucket{Bucket: s, path: path, t: b.t}, nil
}

func (b *bucket) dropSub(name []byte) error {
	if err := b.Bucket.DeleteBucket(name); err != nil {
		return err
	}
	b.t.record(OpDropBucket, appendPath(b.path, name), nil, nil)
	return nil
}

func appendPath(path [][]byte, name []byte) [][]byte {
	out := make([][]byte, 0, len(path)+1)
	return append(append(out, path...), append([]byte(nil), name...))
}

func (b *bucket) Put(k, v []byte) error {
	if err := b.Bucket.Put(k, v); err != nil {
		return err
	}
	b.t.record(OpPut, b.path, k, v)
	return nil
}

func (b *bucket) Delete(k []byte) error {
	if err := b.Bucket.Delete(k); err != nil {
		return err
	}
	b.t.record(OpDelete, b.path, k, nil)
	return nil
}

func (b *bucket) NextSequence() (uint64, error) {
	n, err := b.Bucket.NextSequence()
	if err != nil {
		return 0, err
	}
	b.t.record(OpSequence, b.path, nil, binary.BigEndian.AppendUint64(nil, n))
	return n, nil
}

func (b *bucket) SetSequence(n uint64) error {
	if err := b.Bucket.SetSequence(n); err != nil {
		return err
	}
	b.t.record(OpSequence, b.path, nil, binary.BigEndian.AppendUint64(nil, n))
	return nil
}

// kReplica (in meta, never replicated) records how far this file follows
// a replicated state: the caller's mark, written by Apply.
var kReplica = []byte("replica")

// Apply writes ops (recorded by another store's CommitHook) in one
// transaction, creating the buckets on their paths as needed, and records
// mark (when not nil) in the same transaction; ReplicaMark returns it. It
// is how a standby keeps its copy of the active instance's state and
// remembers how far it has read; the store's own commit hook is not called
// for it. A malformed op is an error naming it, and nothing of ops is
// written.
func (s *Store) Apply(ctx context.Context, ops []Op, mark []byte) error {
	if len(ops) == 0 && mark == nil {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.checkOpen(); err != nil {
		return err
	}
	if s.readOnly {
		return fmt.Errorf("state: %s is open read-only; it cannot be written", s.path)
	}
	s.pendMu.Lock()
	defer s.pendMu.Unlock()
	for _, op := range ops {
		// Staged id index entries changed under Store.pend: reload it
		// before the next Update (a standby applies far more often than
		// it writes).
		if len(op.Bucket) > 0 && bytes.Equal(op.Bucket[0], bFeeds) && (op.Kind == OpDropBucket || len(op.Bucket) > 2 && bytes.Equal(op.Bucket[2], bStaged)) {
			s.pend.stale = true
			break
		}
	}
	return s.guarded("applying replicated writes", func() error {
		return s.db.Update(func(btx *bolt.Tx) error {
			for i, op := range ops {
				if err := applyOp(btx, op); err != nil {
					return fmt.Errorf("state: replicated write %d (kind %d, bucket %q, key %q): %w", i, op.Kind, op.Bucket, op.Key, err)
				}
			}
			if mark != nil {
				return btx.Bucket(bMeta).Put(kReplica, mark)
			}
			return nil
		})
	})
}

func applyOp(btx *bolt.Tx, op Op) error {
	if len(op.Bucket) == 0 {
		return errors.New("no bucket")
	}
	parentPath, last := op.Bucket[:len(op.Bucket)-1], op.Bucket[len(op.Bucket)-1]
	if op.Kind == OpDropBucket {
		parent, err := walk(btx, parentPath, false)
		if err != nil || parent == nil {
			return err
		}
		if err := parent.DeleteBucket(last); err != nil && !errors.Is(err, berrors.ErrBucketNotFound) {
			return err
		}
		return nil
	}
	b, err := walk(btx, op.Bucket, op.Kind != OpDelete)
	if err != nil || b == nil {
		return err
	}
	switch op.Kind {
	case OpCreateBucket:
		return nil
	case OpPut:
		if len(op.Key) == 0 {
			return errors.New("empty key")
		}
		return b.Put(op.Key, op.Value)
	case OpDelete:
		return b.Delete(op.Key)
	case OpSequence:
		if len(op.Value) != 8 {
			return fmt.Errorf("sequence of %d bytes, want 8", len(op.Value))
		}
		return b.SetSequence(binary.BigEndian.Uint64(op.Value))
	}
	return fmt.Errorf("unknown kind %d", op.Kind)
}

// walk returns the bucket at path, creating missing ones when create is
// true; nil (no error) when one is missing and create is false.
func walk(btx *bolt.Tx, path [][]byte, create bool) (*bolt.Bucket, error) {
	if len(path) == 0 {
		return nil, errors.New("empty bucket path")
	}
	b := btx.Bucket(path[0])
	if b == nil {
		if !create {
			return nil, nil
		}
		var err error
		if b, err = btx.CreateBucket(path[0]); err != nil {
			return nil, err
		}
	}
	for _, name := range path[1:] {
		nb := b.Bucket(name)
		if nb == nil {
			if !create {
				return nil, nil
			}
			var err error
			if nb, err = b.CreateBucket(name); err != nil {
				return nil, err
			}
		}
		b = nb
	}
	return b, nil
}

// createRoot returns the root bucket name, creating it when missing.
func (t *Tx) createRoot(name []byte) (*bucket, error) {
	b, err := t.tx.CreateBucketIfNotExists(name)
	if err != nil {
		return nil, err
	}
	path := [][]byte{name}
	t.record(OpCreateBucket, path, nil, nil)
	return &bucket{Bucket: b, path: path, t: t}, nil
}

// ReplicaMark returns the mark recorded by the last Apply that had one
// (nil when none).
func (s *Store) ReplicaMark(ctx context.Context) (mark []byte, err error) {
	err = s.View(ctx, func(tx *Tx) error {
		if v := tx.tx.Bucket(bMeta).Get(kReplica); v != nil {
			mark = append([]byte(nil), v...)
		}
		return nil
	})
	return mark, err
}

// Lookup returns the op that sets what op wrote to its current value in
// this file: a put of the key's value, or its delete when it is absent;
// for bucket ops a create when the bucket exists, else its drop, and for a
// sequence the bucket's current sequence. It lets a new active instance
// correct writes of an incomplete replicated transaction it did not apply.
func (s *Store) Lookup(ctx context.Context, op Op) (cur Op, err error) {
	err = s.View(ctx, func(tx *Tx) error {
		cur = Op{Kind: op.Kind, Bucket: op.Bucket, Key: op.Key}
		b, err := walk(tx.tx, op.Bucket, false)
		if err != nil {
			return err
		}
		switch op.Kind {
		case OpPut, OpDelete:
			cur.Kind = OpDelete
			if b != nil {
				if v := b.Get(op.Key); v != nil {
					cur.Kind, cur.Value = OpPut, append([]byte{}, v...)
				}
			}
		case OpCreateBucket, OpDropBucket:
			cur.Kind = OpDropBucket
			if b != nil {
				cur.Kind = OpCreateBucket
			}
		case OpSequence:
			var n uint64
			if b != nil {
				n = b.Sequence()
			}
			cur.Value = binary.BigEndian.AppendUint64(nil, n)
		default:
			return fmt.Errorf("state: lookup of an op of unknown kind %d", op.Kind)
		}
		return nil
	})
	return cur, err
}

// Export hands the whole content of the file (but the per-process meta
// bucket) to fn as ops that rebuild it — bucket creations, sequences and
// puts, in key order, the checkpoint bucket last — in slices of at most
// batch ops, from one consistent read transaction. It publishes a state
// that existed before replication began (high availability turned on for
// an existing connector).
func (s *Store) Export(ctx context.Context, batch int, fn func(ops []Op) error) error {
	if batch <= 0 {
		batch = 10_000
	}
	return s.View(ctx, func(tx *Tx) error {
		var ops []Op
		emit := func(op Op) error {
			ops = append(ops, op)
			if len(ops) < batch {
				return nil
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			err := fn(ops)
			ops = nil
			return err
		}
		var walkB func(path [][]byte, b *bolt.Bucket) error
		walkB = func(path [][]byte, b *bolt.Bucket) error {
			if err := emit(Op{Kind: OpCreateBucket, Bucket: path}); err != nil {
				return err
			}
			if seq := b.Sequence(); seq != 0 {
				if err := emit(Op{Kind: OpSequence, Bucket: path, Value: binary.BigEndian.AppendUint64(nil, seq)}); err != nil {
					return err
				}
			}
			return b.ForEach(func(k, v []byte) error {
				if v == nil {
					return walkB(appendPath(path, k), b.Bucket(k))
				}
				return emit(Op{Kind: OpPut, Bucket: path, Key: append([]byte(nil), k...), Value: append([]byte{}, v...)})
			})
		}
		var roots [][]byte
		err := tx.tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
			if !bytes.Equal(name, bMeta) && !bytes.Equal(name, bCheckpoint) {
				roots = append(roots, append([]byte(nil), name...))
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, name := range append(roots, bCheckpoint) {
			if b := tx.tx.Bucket(name); b != nil {
				if err := walkB([][]byte{name}, b); err != nil {
					return err
				}
			}
		}
		if len(ops) > 0 {
			return fn(ops)
		}
		return nil
	})
}

package state

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"
)

// OutboxEntry is one full payload waiting in the legacy outbox for the
// scheduled flush.
type OutboxEntry struct {
	Feed    string
	Seq     uint64 // FIFO position, assigned by PutOutbox
	ID      string // feed id; a newer entry with the same id replaces the older one
	Payload []byte
	Added   time.Time
}

// Outbox entry value: version(1) varint(added µs) bytes(id) bytes(payload).
func encodeOutbox(e *OutboxEntry) []byte {
	b := make([]byte, 0, 1+binary.MaxVarintLen64+2*binary.MaxVarintLen32+len(e.ID)+len(e.Payload))
	b = append(b, 1)
	b = binary.AppendVarint(b, timeToMicro(e.Added))
	b = appendBytes(b, e.ID)
	b = binary.AppendUvarint(b, uint64(len(e.Payload)))
	return append(b, e.Payload...)
}

func decodeOutbox(feed string, k, v []byte) (OutboxEntry, error) {
	if len(k) != 8 {
		return OutboxEntry{}, fmt.Errorf("outbox key of %d bytes: %w", len(k), errCorrupt)
	}
	r := reader{b: v}
	if r.byte1() != 1 && r.err == nil {
		r.err = errCorrupt
	}
	e := OutboxEntry{Feed: feed, Seq: binary.BigEndian.Uint64(k)}
	e.Added = microToTime(r.varint())
	e.ID = r.str()
	p := r.raw()
	if r.err != nil {
		return OutboxEntry{}, fmt.Errorf("decode outbox entry %d: %w", e.Seq, r.err)
	}
	e.Payload = append([]byte(nil), p...)
	return e, nil
}

// PutOutbox appends entries to feed's outbox in order, assigning each its
// Seq (written back into entries). An entry whose ID already waits in the
// outbox replaces it (the older payload is dropped; the new one goes to the
// end). Payloads are copied.
func (t *Tx) PutOutbox(feed string, entries []OutboxEntry) error {
	if err := t.writable(); err != nil {
		return err
	}
	fb, err := t.feed(feed, true)
	if err != nil {
		return err
	}
	for i := range entries {
		e := &entries[i]
		e.Feed = feed
		if e.Added.IsZero() {
			e.Added = time.Now()
		}
		var idk []byte
		if e.ID != "" {
			idk = t.keep(encodeID(t.kbuf[:0], e.ID))
			if old := fb.outbxID.Get(idk); old != nil {
				if err := fb.outbox.Delete(old); err != nil {
					return err
				}
				fb.delta.Outbox--
			}
		}
		seq, err := fb.outbox.NextSequence()
		if err != nil {
			return fmt.Errorf("state: feed %q outbox sequence: %w", feed, err)
		}
		e.Seq = seq
		sk := t.keep(u64key(seq))
		if err := fb.outbox.Put(sk, encodeOutbox(e)); err != nil {
			return fmt.Errorf("state: feed %q outbox put: %w", feed, err)
		}
		if idk != nil {
			if err := fb.outbxID.Put(idk, sk); err != nil {
				return err
			}
		}
		fb.delta.Outbox++
		fb.dirty = true
	}
	return nil
}

// DeleteOutbox removes acknowledged entries; unknown sequences are ignored.
func (t *Tx) DeleteOutbox(feed string, seqs []uint64) error {
	if err := t.writable(); err != nil {
		return err
	}
	fb, err := t.feed(feed, false)
	if err != nil || fb == nil {
		return err
	}
	for _, seq := range seqs {
		k := u64key(seq)
		v := fb.outbox.Get(k)
		if v == nil {
			continue
		}
		e, err := decodeOutbox(feed, k, v)
		if err != nil {
			return fmt.Errorf("state: feed %q: %w", feed, err)
		}
		if e.ID != "" {
			idk := encodeID(t.kbuf[:0], e.ID)
			if cur := fb.outbxID.Get(idk); cur != nil && binary.BigEndian.Uint64(cur) == seq {
				if err := fb.outbxID.Delete(idk); err != nil {
					return err
				}
			}
		}
		if err := fb.outbox.Delete(k); err != nil {
			return err
		}
		fb.delta.Outbox--
		fb.dirty = true
	}
	return nil
}

// OutboxBatch returns the oldest limit entries of feed's outbox (FIFO).
func (t *Tx) OutboxBatch(feed string, limit int) ([]OutboxEntry, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("state: outbox batch of %d entries; the limit must be positive", limit)
	}
	fb, err := t.feed(feed, false)
	if err != nil || fb == nil {
		return nil, err
	}
	var out []OutboxEntry
	c := fb.outbox.Cursor()
	for k, v := c.First(); k != nil && len(out) < limit; k, v = c.Next() {
		e, err := decodeOutbox(feed, k, v)
		if err != nil {
			return nil, fmt.Errorf("state: feed %q: %w", feed, err)
		}
		out = append(out, e)
	}
	return out, nil
}

// OutboxBatch returns the oldest limit entries of feed's outbox (FIFO).
func (s *Store) OutboxBatch(ctx context.Context, feed string, limit int) (out []OutboxEntry, err error) {
	err = s.View(ctx, func(tx *Tx) error {
		out, err = tx.OutboxBatch(feed, limit)
		return err
	})
	return out, err
}

// OutboxLen returns how many entries wait in feed's outbox.
func (s *Store) OutboxLen(ctx context.Context, feed string) (int, error) {
	c, err := s.Counts(ctx, feed)
	return int(c.Outbox), err
}

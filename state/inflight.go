package state

import (
	"context"
	"encoding/binary"
	"fmt"
)

// bInflight is the root bucket of write-ahead records: seq(8, big endian)
// -> record. An export records there, in one value, the states of the
// items it is about to send (PutInflight), and removes the record
// (DeleteInflight) in the Update that stores their final states. A record
// that is still there when nothing is being exported — the process
// stopped, or the export was abandoned — is applied as if its items had
// been written with PutItems right away (ApplyInflight; Open does it), so
// the state ends as it would with a PutItems write-ahead, at the cost of
// one value instead of thousands of index updates. Created on first use,
// so files written before it existed open unchanged.
var bInflight = []byte("inflight")

// inflightVersion is the record format: version byte, uvarint item count,
// then per item feed, id and entity key as bytes and the encodeItem value
// as bytes.
const inflightVersion = 1

// PutInflight records the states of items about to be sent as one
// write-ahead record and returns its token for DeleteInflight. The items
// are checked as PutItems checks them, so applying the record later cannot
// fail on them.
func (t *Tx) PutInflight(items []Item) (uint64, error) {
	if err := t.writable(); err != nil {
		return 0, err
	}
	// Through the recording buckets: with high availability the record is
	// replicated like every other write, so that a standby taking over
	// knows what was in flight.
	b, err := t.createRoot(bInflight)
	if err != nil {
		return 0, fmt.Errorf("state: create the in-flight bucket: %w", err)
	}
	rec := make([]byte, 0, 64+len(items)*256) // a products item takes about 180
	rec = append(rec, inflightVersion)
	rec = binary.AppendUvarint(rec, uint64(len(items)))
	var scratch []byte
	for i := range items {
		it := &items[i]
		if err := validFeed(it.Feed); err != nil {
			return 0, err
		}
		if err := checkItem(it); err != nil {
			return 0, err
		}
		rec = appendBytes(rec, it.Feed)
		rec = appendBytes(rec, it.ID)
		rec = appendBytes(rec, it.EntityKey)
		cp := *it
		if cp.Status != StatusRetryableFailure {
			cp.Attention = false
		}
		scratch = encodeItem(scratch[:0], &cp)
		rec = binary.AppendUvarint(rec, uint64(len(scratch)))
		rec = append(rec, scratch...)
	}
	seq, err := b.NextSequence()
	if err != nil {
		return 0, err
	}
	if err := b.Put(binary.BigEndian.AppendUint64(nil, seq), rec); err != nil {
		return 0, fmt.Errorf("state: write the in-flight record: %w", err)
	}
	t.inflight++
	return seq, nil
}

// DeleteInflight removes the write-ahead record token (PutInflight); call
// it in the Update that stores the final states of its items. An unknown
// token is ignored.
func (t *Tx) DeleteInflight(token uint64) error {
	if err := t.writable(); err != nil {
		return err
	}
	if t.tx.Bucket(bInflight) == nil {
		return nil
	}
	b := t.root(bInflight)
	k := binary.BigEndian.AppendUint64(nil, token)
	if b.Get(k) == nil {
		return nil
	}
	if err := b.Delete(k); err != nil {
		return fmt.Errorf("state: delete the in-flight record: %w", err)
	}
	t.inflight--
	return nil
}

// applyInflight applies every write-ahead record, oldest first, with
// PutItems and deletes it; it returns how many records it applied.
func (t *Tx) applyInflight() (int, error) {
	if err := t.writable(); err != nil {
		return 0, err
	}
	if t.tx.Bucket(bInflight) == nil {
		return 0, nil
	}
	b := t.root(bInflight)
	var keys [][]byte
	n := 0
	c := b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		items, err := decodeInflight(v)
		if err != nil {
			return n, fmt.Errorf("state: in-flight record %x: %w", k, err)
		}
		if err := t.PutItems(items); err != nil {
			return n, err
		}
		keys = append(keys, append([]byte(nil), k...))
		n++
	}
	for _, k := range keys {
		if err := b.Delete(k); err != nil {
			return n, err
		}
		t.inflight--
	}
	return n, nil
}

func decodeInflight(v []byte) ([]Item, error) {
	r := reader{b: v}
	if ver := r.byte1(); r.err == nil && ver != inflightVersion {
		return nil, fmt.Errorf("record version %d: %w", ver, errCorrupt)
	}
	n := r.uvarint()
	if r.err != nil || n > uint64(len(v)) {
		return nil, errCorrupt
	}
	items := make([]Item, 0, n)
	for range n {
		feed, id, ek, val := r.str(), r.str(), r.str(), r.raw()
		if r.err != nil {
			return nil, r.err
		}
		it, err := decodeItem(feed, id, ek, val)
		if err != nil {
			return nil, err
		}
		items = append(items, it)
	}
	return items, nil
}

// InflightRecords is the number of write-ahead records in the file (kept
// in memory; 0 right after Open).
func (s *Store) InflightRecords() int64 { return s.inflight.Load() }

// ApplyInflight applies the write-ahead records left in the file by
// exports that did not store their final states (see bInflight), in one
// Update, and returns how many it applied. Call it only when no export is
// between its PutInflight and its final Update.
func (s *Store) ApplyInflight(ctx context.Context) (n int, err error) {
	if s.inflight.Load() == 0 {
		return 0, nil
	}
	err = s.Update(ctx, func(tx *Tx) error {
		n, err = tx.applyInflight()
		return err
	})
	return n, err
}

package state

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/feedcdc/feedcdc/change"
)

// SchemaRecord is one entry of the schema history kept for sources without
// binlog_row_metadata=FULL: the schema of DB.Table as of Position (Schema is
// the binlog source's own encoding; nil, and also empty, reads back as nil,
// which the source uses for a dropped table), and the DDL that produced it
// if any. Its fields match connector/binlog.SchemaRecord, so the two
// convert into each other.
type SchemaRecord struct {
	Seq      uint64
	Position change.Position
	DB       string
	Table    string
	Schema   []byte
	DDL      string
}

// value: version(1) bytes(flavor) bytes(gtid) bytes(file) uvarint(pos)
// bytes(db) bytes(table) bytes(schema) bytes(ddl)
func encodeSchema(r *SchemaRecord) []byte {
	b := []byte{1}
	b = appendBytes(b, r.Position.Flavor)
	b = appendBytes(b, r.Position.GTIDSet)
	b = appendBytes(b, r.Position.File)
	b = binary.AppendUvarint(b, uint64(r.Position.Pos))
	b = appendBytes(b, r.DB)
	b = appendBytes(b, r.Table)
	b = appendBytes(b, string(r.Schema))
	return appendBytes(b, r.DDL)
}

func decodeSchema(k, v []byte) (SchemaRecord, error) {
	if len(k) != 8 {
		return SchemaRecord{}, fmt.Errorf("schema key of %d bytes: %w", len(k), errCorrupt)
	}
	rec := SchemaRecord{Seq: binary.BigEndian.Uint64(k)}
	r := reader{b: v}
	if r.byte1() != 1 && r.err == nil {
		r.err = errCorrupt
	}
	rec.Position.Flavor = r.str()
	rec.Position.GTIDSet = r.str()
	rec.Position.File = r.str()
	rec.Position.Pos = uint32(r.uvarint())
	rec.DB = r.str()
	rec.Table = r.str()
	if s := r.raw(); len(s) > 0 {
		rec.Schema = append([]byte(nil), s...)
	}
	rec.DDL = r.str()
	if r.err != nil {
		return SchemaRecord{}, fmt.Errorf("decode schema record %d: %w", rec.Seq, r.err)
	}
	return rec, nil
}

// AppendSchema stores rec and returns its Seq. A zero Seq is assigned the
// next sequence number; a given Seq replaces any record with that number.
// Calling it in the same Update as SetCheckpoint keeps the schema history
// and the checkpoint consistent.
func (t *Tx) AppendSchema(rec SchemaRecord) (uint64, error) {
	if err := t.writable(); err != nil {
		return 0, err
	}
	b := t.root(bSchema)
	if rec.Seq == 0 {
		seq, err := b.NextSequence()
		if err != nil {
			return 0, fmt.Errorf("state: schema sequence: %w", err)
		}
		rec.Seq = seq
	} else if rec.Seq > b.Sequence() {
		if err := b.SetSequence(rec.Seq); err != nil {
			return 0, err
		}
	}
	if err := b.Put(u64key(rec.Seq), encodeSchema(&rec)); err != nil {
		return 0, fmt.Errorf("state: write schema record %d: %w", rec.Seq, err)
	}
	return rec.Seq, nil
}

// SchemaRecords returns the whole schema history in Seq order.
func (t *Tx) SchemaRecords() ([]SchemaRecord, error) {
	var out []SchemaRecord
	err := t.tx.Bucket(bSchema).ForEach(func(k, v []byte) error {
		rec, err := decodeSchema(k, v)
		if err != nil {
			return err
		}
		out = append(out, rec)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("state: read schema history: %w", err)
	}
	return out, nil
}

// AppendSchema stores rec in its own transaction (see Tx.AppendSchema).
func (s *Store) AppendSchema(ctx context.Context, rec SchemaRecord) error {
	return s.Update(ctx, func(tx *Tx) error {
		_, err := tx.AppendSchema(rec)
		return err
	})
}

// SchemaRecords returns the whole schema history in Seq order.
func (s *Store) SchemaRecords(ctx context.Context) (recs []SchemaRecord, err error) {
	err = s.View(ctx, func(tx *Tx) error {
		recs, err = tx.SchemaRecords()
		return err
	})
	return recs, err
}

package binlog

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"

	"github.com/go-mysql-org/go-mysql/replication"

	"github.com/feedcdc/feedcdc/change"
	"github.com/feedcdc/feedcdc/connector/raw"
)

// InspectOptions tunes InspectFiles.
type InspectOptions struct {
	// ZeroDates: what zero dates become (default ZeroDatesNull).
	ZeroDates ZeroDates
	// Filter restricts the output to captured tables (default: every
	// non-system table).
	Filter Filter
	// TxEnds adds a {"type":"tx_end",…} record after every transaction.
	TxEnds bool
	// PartialImages accepts row images that lack columns
	// (binlog_row_image=MINIMAL/NOBLOB): the missing columns are left out of
	// the JSON objects. Without it such an image is an error, as it is for
	// the live source.
	PartialImages bool
	// Logger receives warnings (nil: discarded).
	Logger *slog.Logger
}

// ErrTruncated reports a binlog file that ends inside an event.
var ErrTruncated = errors.New("binlog file is truncated")

var binlogMagic = []byte{0xfe, 'b', 'i', 'n'}

// InspectFiles decodes binlog files offline, in the order given, and writes
// one JSON record per line to w: a change record per row image of a captured
// table, a truncate record per TRUNCATE of one, a replace record per
// captured name a rename put another table at and, with opts.TxEnds, a
// tx_end record per transaction:
//
//	{"type":"change","op":"c","db":"shop","table":"t","gtid":"0-1-5","server_id":1,
//	 "file":"binlog.000001","pos":1234,"row":0,"ts":"2024-01-02T03:04:05Z",
//	 "key":{"id":1},"before":null,"after":{"id":1,…}}
//	{"type":"truncate","db":"shop","table":"t","gtid":"0-1-6","server_id":1,"file":"binlog.000001","pos":1401,"ts":…}
//	{"type":"replace","db":"shop","table":"t","from":"shop._t_gho","gtid":"0-1-7",…}
//	{"type":"tx_end","gtid":"0-1-5","file":"binlog.000001","pos":1265,"gtid_set":"0-1-5","ts":…,"rows":1}
//
// Values are rendered as in the raw change streams (docs/types.md). Column
// names come from the binlog's full row metadata; without it columns are
// named @1, @2, …. A decoding failure or a truncated file stops with an error
// naming the file, position and event type; records before it are written.
func InspectFiles(ctx context.Context, paths []string, w io.Writer, opts InspectOptions) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	ih := &inspectHandler{w: bw, txEnds: opts.TxEnds}
	d := newDecoder("", opts.ZeroDates, opts.Filter, nil, ih, opts.Logger)
	d.allowPartial = opts.PartialImages
	for _, p := range paths {
		if err := readFile(ctx, p, d); err != nil {
			_ = bw.Flush()
			return err
		}
	}
	return bw.Flush()
}

type inspectHandler struct {
	w      *bufio.Writer
	txEnds bool
	buf    []byte
}

func (ih *inspectHandler) Change(_ context.Context, c *change.Change) error {
	b := ih.buf[:0]
	b = append(b, `{"type":"change","op":"`...)
	b = append(b, c.Op...)
	b = append(b, `","db":`...)
	b = raw.AppendString(b, c.Table.DB)
	b = append(b, `,"table":`...)
	b = raw.AppendString(b, c.Table.Name)
	b = append(b, `,"gtid":`...)
	b = raw.AppendString(b, c.Source.GTID)
	b = append(b, `,"server_id":`...)
	b = strconv.AppendUint(b, uint64(c.Source.ServerID), 10)
	b = append(b, `,"file":`...)
	b = raw.AppendString(b, c.Source.File)
	b = append(b, `,"pos":`...)
	b = strconv.AppendUint(b, uint64(c.Source.Pos), 10)
	b = append(b, `,"row":`...)
	b = strconv.AppendInt(b, int64(c.Source.Row), 10)
	b = append(b, `,"ts":`...)
	b = raw.AppendValue(b, c.Source.Timestamp)
	b = append(b, `,"key":`...)
	if len(c.Table.PK) > 0 {
		b = raw.AppendKey(b, c)
	} else {
		b = append(b, "null"...)
	}
	b = append(b, `,"before":`...)
	b = appendRow(b, c.Table, c.Before)
	b = append(b, `,"after":`...)
	b = appendRow(b, c.Table, c.After)
	b = append(b, "}\n"...)
	ih.buf = b
	_, err := ih.w.Write(b)
	return err
}

// Truncate implements Truncater: a truncate record.
func (ih *inspectHandler) Truncate(_ context.Context, t *change.Table, src change.Source) error {
	return ih.tableRecord("truncate", t, "", src)
}

// Replace implements Replacer: a replace record.
func (ih *inspectHandler) Replace(_ context.Context, t *change.Table, from string, src change.Source) error {
	return ih.tableRecord("replace", t, from, src)
}

// tableRecord writes a record about a whole table (from: the table's
// former name, replace records only).
func (ih *inspectHandler) tableRecord(typ string, t *change.Table, from string, src change.Source) error {
	b := ih.buf[:0]
	b = append(b, `{"type":"`...)
	b = append(b, typ...)
	b = append(b, `","db":`...)
	b = raw.AppendString(b, t.DB)
	b = append(b, `,"table":`...)
	b = raw.AppendString(b, t.Name)
	if from != "" {
		b = append(b, `,"from":`...)
		b = raw.AppendString(b, from)
	}
	b = append(b, `,"gtid":`...)
	b = raw.AppendString(b, src.GTID)
	b = append(b, `,"server_id":`...)
	b = strconv.AppendUint(b, uint64(src.ServerID), 10)
	b = append(b, `,"file":`...)
	b = raw.AppendString(b, src.File)
	b = append(b, `,"pos":`...)
	b = strconv.AppendUint(b, uint64(src.Pos), 10)
	b = append(b, `,"ts":`...)
	b = raw.AppendValue(b, src.Timestamp)
	b = append(b, "}\n"...)
	ih.buf = b
	_, err := ih.w.Write(b)
	return err
}

func (ih *inspectHandler) TxEnd(_ context.Context, e change.TxEnd) error {
	if !ih.txEnds {
		return nil
	}
	b := ih.buf[:0]
	b = append(b, `{"type":"tx_end","gtid":`...)
	b = raw.AppendString(b, e.GTID)
	b = append(b, `,"file":`...)
	b = raw.AppendString(b, e.Position.File)
	b = append(b, `,"pos":`...)
	b = strconv.AppendUint(b, uint64(e.Position.Pos), 10)
	b = append(b, `,"gtid_set":`...)
	b = raw.AppendString(b, e.Position.GTIDSet)
	b = append(b, `,"ts":`...)
	b = raw.AppendValue(b, e.Timestamp)
	b = append(b, `,"rows":`...)
	b = strconv.AppendInt(b, int64(e.Rows), 10)
	b = append(b, "}\n"...)
	ih.buf = b
	_, err := ih.w.Write(b)
	return err
}

// readFile frames the events of one binlog file itself (so that truncation
// is detected: go-mysql's file parser silently stops at a short read), then
// parses and decodes each one.
func readFile(ctx context.Context, path string, d *decoder) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open binlog file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("stat binlog file: %w", err)
	}
	size := st.Size()
	r := bufio.NewReaderSize(f, 256<<10)
	magic := make([]byte, 4)
	if n, err := io.ReadFull(r, magic); err != nil || !bytes.Equal(magic, binlogMagic) {
		if n < 4 && size < 4 {
			return fmt.Errorf("%s: %w: %d bytes, shorter than the 4-byte binlog magic", path, ErrTruncated, size)
		}
		return fmt.Errorf("%s is not a binlog file (it does not start with the bytes fe 62 69 6e)", path)
	}

	p := replication.NewBinlogParser()
	p.SetVerifyChecksum(true)
	configureParser(p, d)
	d.file = filepath.Base(path)
	d.pos = 4
	d.gset = nil
	d.gsetFromFile = true
	d.flavor = ""
	clear(d.tables)

	off := int64(4)
	header := make([]byte, replication.EventHeaderSize)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, err := io.ReadFull(r, header)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s at position %d: %w: the file ends %d bytes into a %d-byte event header (file size %d)",
				path, off, ErrTruncated, n, replication.EventHeaderSize, size)
		}
		evType := replication.EventType(header[4])
		evSize := int64(binary.LittleEndian.Uint32(header[9:13]))
		if evSize < replication.EventHeaderSize {
			return fmt.Errorf("%s at position %d (%s): corrupt event header: event size %d is smaller than the header", path, off, evType, evSize)
		}
		if off+evSize > size {
			return fmt.Errorf("%s at position %d (%s): %w: the event declares %d bytes but the file has only %d left (file size %d)",
				path, off, evType, ErrTruncated, evSize, size-off, size)
		}
		data := make([]byte, evSize)
		copy(data, header)
		if _, err := io.ReadFull(r, data[replication.EventHeaderSize:]); err != nil {
			return fmt.Errorf("%s at position %d (%s): %w: %v", path, off, evType, ErrTruncated, err)
		}
		if evType == replication.FORMAT_DESCRIPTION_EVENT {
			// The server computes the FDE checksum with LOG_EVENT_BINLOG_IN_USE_F
			// cleared; the flag is still set in a file copied while it was open.
			data[17] &^= 0x01
		}
		ev, err := safeParse(p, data)
		if err != nil {
			return fmt.Errorf("%s at position %d (%s): %w", path, off, evType, err)
		}
		if fde, ok := ev.Event.(*replication.FormatDescriptionEvent); ok && d.flavor == "" {
			d.flavor = flavorOfVersion(fde.ServerVersion)
			p.SetFlavor(d.flavor)
		}
		d.pos = uint32(off)
		if err := d.handle(ctx, ev); err != nil {
			return err
		}
		off += evSize
		if ev.Header.EventType == replication.ROTATE_EVENT {
			// the closing rotate names the next file; later events (none) stay in this one
			d.file = filepath.Base(path)
		}
		d.pos = uint32(off)
	}
}

// safeParse parses one event, turning a panic inside go-mysql into an error.
func safeParse(p *replication.BinlogParser, data []byte) (ev *replication.BinlogEvent, err error) {
	defer func() {
		if r := recover(); r != nil {
			ev, err = nil, fmt.Errorf("the event decoder panicked (corrupt event?): %v", r)
		}
	}()
	return p.Parse(data)
}

// appendRow is raw.AppendRow that leaves out columns absent from the image.
func appendRow(b []byte, t *change.Table, row []any) []byte {
	if row == nil {
		return append(b, "null"...)
	}
	b = append(b, '{')
	first := true
	for i, v := range row {
		if _, ok := v.(absent); ok {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = raw.AppendString(b, t.Columns[i].Name)
		b = append(b, ':')
		b = raw.AppendValue(b, v)
	}
	return append(b, '}')
}

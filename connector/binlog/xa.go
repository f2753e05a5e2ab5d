package binlog

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"

	"github.com/feedcdc/feedcdc/change"
)

// XA transactions reach the binlog in two event groups: the rows between
// XA START and XA END, closed by an XA_PREPARE_LOG_EVENT (the transaction is
// prepared, not committed), and later a separate group holding only the
// statement `XA COMMIT xid` or `XA ROLLBACK xid`. MariaDB 10.5+ marks the
// first group's GTID event with FL_PREPARED_XA (mariadb-binlog prints it as
// "XA START xid"); MySQL writes an `XA START xid` statement. A one-phase
// commit is written by MariaDB as an ordinary transaction, by MySQL as one
// group closed by an XA_PREPARE_LOG_EVENT whose one_phase flag is set.
//
// The decoder holds the rows of a prepared transaction, by XID, until its
// commit delivers them (followed by the commit's TxEnd) or its rollback
// drops them. While any prepared transaction is pending, every TxEnd
// carries the position before the oldest one's prepare group, so that a
// restart or reconnect from a checkpoint reads its rows again.

// mariadbFlPreparedXA is the MariaDB GTID event flag of the event group of
// an XA transaction's rows (go-mysql does not name it).
const mariadbFlPreparedXA = 0x40

// maxHeldXARows bounds the row changes held for prepared XA transactions
// (about 1 KiB each).
const maxHeldXARows = 100_000

// xaState is the decoder's state of XA transactions.
type xaState struct {
	// open holds the rows of the XA transaction whose prepare group is being
	// read (between XA START and its XA_PREPARE_LOG_EVENT); nil outside one.
	open *[]*change.Change
	// prepared holds the rows of prepared transactions by XID.
	prepared map[string][]*change.Change
	held     int             // rows in prepared
	hold     change.Position // resume position before the oldest prepared transaction
	last     change.Position // position of the last transaction end (as if nothing was held)
}

// deliver passes a row change to the handler, or holds it while an XA
// transaction is being prepared.
func (d *decoder) deliver(ctx context.Context, c *change.Change) error {
	if d.xa.open != nil {
		if d.xa.held+len(*d.xa.open) >= maxHeldXARows {
			return fmt.Errorf("XA transaction at %s:%d holds more than %d row changes: feedcdc keeps the rows of a prepared XA transaction in memory until its XA COMMIT; split the XA transaction", d.file, d.pos, maxHeldXARows)
		}
		*d.xa.open = append(*d.xa.open, c)
		return nil
	}
	if err := d.h.Change(ctx, c); err != nil {
		return &handlerError{err}
	}
	return nil
}

// xaQuery handles the XA statements of the binlog.
func (d *decoder) xaQuery(ctx context.Context, q string, endPos uint32) error {
	u := strings.ToUpper(q)
	switch {
	case strings.HasPrefix(u, "XA START"), strings.HasPrefix(u, "XA BEGIN"):
		d.inTx = true
		d.xa.open = &[]*change.Change{}
		return nil
	case strings.HasPrefix(u, "XA END"):
		return nil
	case strings.HasPrefix(u, "XA COMMIT"), strings.HasPrefix(u, "XA ROLLBACK"):
		commit := strings.HasPrefix(u, "XA COMMIT")
		if d.xa.open != nil {
			// one phase, written as a statement: the open transaction ends here
			rows := *d.xa.open
			d.xa.open = nil
			if commit {
				if err := d.release(ctx, rows); err != nil {
					return err
				}
			} else {
				d.txRows = 0
			}
			return d.commit(ctx, endPos)
		}
		verb := "XA COMMIT"
		if !commit {
			verb = "XA ROLLBACK"
		}
		xid, err := parseXAStatementXID(strings.TrimSpace(q[len(verb):]))
		if err != nil {
			return fmt.Errorf("%s: %w", truncateString(q, 200), err)
		}
		rows, ok := d.xa.prepared[xid]
		if !ok {
			d.log.Warn("binlog "+verb+" of an XA transaction prepared before the stream's start position: its rows are not in the stream", "xid", xid, "file", d.file, "pos", endPos)
		}
		delete(d.xa.prepared, xid)
		d.xa.held -= len(rows)
		d.txRows = 0
		if commit {
			if err := d.release(ctx, rows); err != nil {
				return err
			}
		}
		return d.commit(ctx, endPos)
	}
	// XA RECOVER and the like do not reach the binlog; treat anything else
	// as the end of its event group, as before.
	return d.commit(ctx, endPos)
}

// release delivers the held rows of a committed XA transaction.
func (d *decoder) release(ctx context.Context, rows []*change.Change) error {
	for _, c := range rows {
		if err := d.h.Change(ctx, c); err != nil {
			return &handlerError{err}
		}
	}
	d.txRows = len(rows)
	return nil
}

// xaPrepare handles an XA_PREPARE_LOG_EVENT, which closes the event group of
// an XA transaction's rows.
func (d *decoder) xaPrepare(ctx context.Context, data []byte, endPos uint32) error {
	onePhase, xid, err := parseXAPrepareEvent(data)
	if err != nil {
		return fmt.Errorf("XA_PREPARE_LOG_EVENT: %w", err)
	}
	var rows []*change.Change
	if d.xa.open != nil {
		rows = *d.xa.open
	}
	d.xa.open = nil
	if onePhase {
		if err := d.release(ctx, rows); err != nil {
			return err
		}
		return d.commit(ctx, endPos)
	}
	if len(d.xa.prepared) == 0 {
		d.xa.hold = d.xa.last
	}
	if d.xa.prepared == nil {
		d.xa.prepared = map[string][]*change.Change{}
	}
	if old, ok := d.xa.prepared[xid]; ok {
		d.xa.held -= len(old)
	}
	d.xa.prepared[xid] = rows
	d.xa.held += len(rows)
	d.txRows = 0 // nothing of it is committed yet
	return d.commit(ctx, endPos)
}

// resumePosition is the position a TxEnd at p carries: p, or the position
// before the oldest prepared XA transaction while one is pending.
func (d *decoder) resumePosition(p change.Position) change.Position {
	d.xa.last = p
	if len(d.xa.prepared) > 0 && !d.xa.hold.IsZero() {
		return d.xa.hold
	}
	return p
}

// parseXAPrepareEvent decodes an XA_PREPARE_LOG_EVENT body: one_phase (1
// byte), formatID (4), gtrid_length (4), bqual_length (4), gtrid, bqual.
func parseXAPrepareEvent(data []byte) (onePhase bool, xid string, err error) {
	if len(data) < 13 {
		return false, "", fmt.Errorf("%d bytes, want at least 13", len(data))
	}
	format := int32(binary.LittleEndian.Uint32(data[1:]))
	gl, bl := binary.LittleEndian.Uint32(data[5:]), binary.LittleEndian.Uint32(data[9:])
	if gl > 64 || bl > 64 || uint64(13+gl+bl) > uint64(len(data)) {
		return false, "", fmt.Errorf("XID lengths %d+%d do not fit its %d bytes", gl, bl, len(data))
	}
	return data[0] != 0, xidKey(data[13:13+gl], data[13+gl:13+gl+bl], int64(format)), nil
}

// xidKey is the canonical form of an XID: gtrid and bqual in hex and the
// format ID, the way the server writes it in XA COMMIT statements.
func xidKey(gtrid, bqual []byte, format int64) string {
	return "X'" + hex.EncodeToString(gtrid) + "',X'" + hex.EncodeToString(bqual) + "'," + strconv.FormatInt(format, 10)
}

// parseXAStatementXID parses the XID of an XA COMMIT / XA ROLLBACK
// statement: gtrid [, bqual [, formatID]], each string a quoted literal or
// X'hex' (the server writes X'…',X'…',n); formatID defaults to 1.
func parseXAStatementXID(s string) (string, error) {
	var parts [][]byte
	format := int64(1)
	rest := s
	for i := 0; i < 3; i++ {
		rest = strings.TrimSpace(rest)
		if i == 2 {
			end := strings.IndexFunc(rest, func(r rune) bool { return r < '0' || r > '9' })
			if end < 0 {
				end = len(rest)
			}
			n, err := strconv.ParseInt(rest[:end], 10, 64)
			if err != nil {
				return "", fmt.Errorf("XID format ID %q: %w", rest, err)
			}
			format = n
			break
		}
		b, r, err := parseXIDString(rest)
		if err != nil {
			return "", err
		}
		parts = append(parts, b)
		rest = strings.TrimSpace(r)
		if !strings.HasPrefix(rest, ",") {
			break
		}
		rest = rest[1:]
	}
	if len(parts) == 1 {
		parts = append(parts, nil)
	}
	return xidKey(parts[0], parts[1], format), nil
}

// parseXIDString parses one string of an XID at the start of s: 'text',
// "text" or X'hex' / 0xhex; it returns the bytes and what follows.
func parseXIDString(s string) ([]byte, string, error) {
	switch {
	case len(s) >= 2 && (s[0] == 'X' || s[0] == 'x') && s[1] == '\'':
		end := strings.IndexByte(s[2:], '\'')
		if end < 0 {
			return nil, "", fmt.Errorf("unterminated X'…' in XID %q", s)
		}
		b, err := hex.DecodeString(s[2 : 2+end])
		return b, s[3+end:], err
	case strings.HasPrefix(s, "0x") || strings.HasPrefix(s, "0X"):
		end := 2
		for end < len(s) && strings.IndexByte("0123456789abcdefABCDEF", s[end]) >= 0 {
			end++
		}
		b, err := hex.DecodeString(s[2:end])
		return b, s[end:], err
	case len(s) > 0 && (s[0] == '\'' || s[0] == '"'):
		q := s[0]
		var out []byte
		for i := 1; i < len(s); i++ {
			switch c := s[i]; {
			case c == '\\' && i+1 < len(s):
				i++
				out = append(out, s[i])
			case c == q && i+1 < len(s) && s[i+1] == q:
				i++
				out = append(out, q)
			case c == q:
				return out, s[i+1:], nil
			default:
				out = append(out, c)
			}
		}
		return nil, "", fmt.Errorf("unterminated string in XID %q", s)
	}
	return nil, "", fmt.Errorf("XID %q: want a quoted string or X'hex'", s)
}

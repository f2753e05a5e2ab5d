package feeds

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/feedcdc/feedcdc/change"
	"github.com/feedcdc/feedcdc/internal/binpos"
)

// linkSnapMagic starts an encoded link index (version 1).
const linkSnapMagic = "feedcdc-links-1\n"

// linkSnapHeader says what an encoded link index holds and as of when.
type linkSnapHeader struct {
	Database string `json:"database"`
	// Position: the index holds every link change up to it and none after
	// (zero when unknown). At: the source's time when it was encoded, after
	// every change it holds was committed.
	Position change.Position `json:"position"`
	At       time.Time       `json:"at"`
}

// SaveLinks encodes the parent/child link index as of the last change it
// followed, for RestoreLinks in a later process; ok is false when no
// configured feed reads the index or it is not loaded (never, or reset
// since). Call it once the stream has stopped.
func (r *Registry) SaveLinks() (data []byte, ok bool) {
	return r.env.links.save()
}

// RestoreLinks loads the link index from data saved by SaveLinks instead
// of from the source, and reads the source's clock. It is correct only
// when the stream resumes at or before the position the index was saved
// at: the index then holds no link change the stream will not replay, and
// replaying one it holds again leaves it as it was (each link's last
// change wins). A composite product deleted after that position, while no
// process followed the stream, keeps its children; loaded from the source
// instead, they are gone by cascade and every product is rebuilt. Call it
// before LoadLinks and the stream. ok is false when no configured feed
// reads the index. On an error (data not saved by SaveLinks, saved for
// another database, the source's clock unreadable) the index stays
// unloaded.
func (r *Registry) RestoreLinks(ctx context.Context, data []byte) (ok bool, err error) {
	if !r.env.links.enabled {
		return false, nil
	}
	return true, r.env.links.restore(ctx, data)
}

func (l *linkIndexes) save() ([]byte, bool) {
	if !l.enabled {
		return nil, false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.loaded {
		return nil, false
	}
	h := linkSnapHeader{Database: l.e.dbName, Position: l.loadedPos, At: time.Now().Add(l.offset)}
	if a := l.appliedPos; a.File != "" {
		if order, ok := binpos.Compare(a.File, a.Pos, h.Position.File, h.Position.Pos); h.Position.File == "" || (ok && order > 0) {
			h.Position = a
		}
	}
	hj, err := json.Marshal(h)
	if err != nil {
		return nil, false
	}
	buf := append([]byte(linkSnapMagic), hj...)
	buf = append(buf, '\n')
	buf = l.relation.appendTo(buf)
	return l.super.appendTo(buf), true
}

func (l *linkIndexes) restore(ctx context.Context, data []byte) error {
	h, rel, sup, err := decodeLinks(data)
	if err != nil {
		return fmt.Errorf("restore the link index: %w", err)
	}
	if h.Database != l.e.dbName {
		return fmt.Errorf("restore the link index: it was saved for database %q, the feeds read %q", h.Database, l.e.dbName)
	}
	now, err := sourceNow(ctx, l.e.db)
	if err != nil {
		return fmt.Errorf("restore the link index: %w", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.relation, l.super, l.loaded, l.loadedPos, l.loadedAt = rel, sup, true, h.Position, h.At
	l.offset, l.appliedPos = time.Until(now), h.Position
	return nil
}

// appendTo encodes x: the number of parents, then per parent (ascending)
// the gap from the previous parent, its number of children and the gaps
// between its children (ascending), all as uvarints.
func (x *linkIndex) appendTo(buf []byte) []byte {
	buf = binary.AppendUvarint(buf, uint64(len(x.children)))
	var prev uint32
	for _, p := range slices.Sorted(maps.Keys(x.children)) {
		ch := slices.Sorted(slices.Values(x.children[p]))
		buf = binary.AppendUvarint(binary.AppendUvarint(buf, uint64(p-prev)), uint64(len(ch)))
		prev = p
		var pc uint32
		for _, c := range ch {
			buf = binary.AppendUvarint(buf, uint64(c-pc))
			pc = c
		}
	}
	return buf
}

func decodeLinks(data []byte) (h linkSnapHeader, rel, sup *linkIndex, err error) {
	rest, ok := bytes.CutPrefix(data, []byte(linkSnapMagic))
	if !ok {
		return h, nil, nil, errors.New("not a saved link index of this version")
	}
	i := bytes.IndexByte(rest, '\n')
	if i < 0 {
		return h, nil, nil, errors.New("no header")
	}
	if err := json.Unmarshal(rest[:i], &h); err != nil {
		return h, nil, nil, fmt.Errorf("header: %w", err)
	}
	d := linkDecoder{buf: rest[i+1:]}
	rel, sup = d.index(), d.index()
	if d.err == nil && len(d.buf) > 0 {
		d.err = errors.New("trailing bytes")
	}
	return h, rel, sup, d.err
}

// linkDecoder reads what appendTo wrote; its first error sticks.
type linkDecoder struct {
	buf []byte
	err error
}

func (d *linkDecoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.buf)
	if n <= 0 {
		d.err = errors.New("truncated")
		return 0
	}
	d.buf = d.buf[n:]
	return v
}

// id adds a gap to prev, failing past the 32-bit ids the index holds.
func (d *linkDecoder) id(prev uint32) uint32 {
	v := uint64(prev) + d.uvarint()
	if v > 1<<32-1 {
		d.err = errors.New("id out of range")
	}
	return uint32(v)
}

func (d *linkDecoder) index() *linkIndex {
	x := newLinkIndex()
	// Every count is bounded by the bytes left (each entry takes one at
	// least), so damaged data cannot make it allocate beyond its size.
	parents := d.uvarint()
	if parents > uint64(len(d.buf)) {
		d.err = errors.New("damaged parent count")
	}
	var p uint32
	for range parents {
		if d.err != nil {
			return nil
		}
		p = d.id(p)
		n := d.uvarint()
		if n > uint64(len(d.buf)) {
			d.err = errors.New("damaged child count")
			return nil
		}
		var c uint32
		for range n {
			c = d.id(c)
			x.add(p, c)
		}
	}
	return x
}

package state

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Item values are stored in a hand-rolled binary format (version 1):
//
//	byte    version (1)
//	byte    flags: bit0 Deleted, bit1 Attention
//	varint  Status
//	uvarint Attempts
//	varint  ModifiedAt, SentAt, NextAttempt (unix microseconds, 0 = zero time)
//	compact Hash
//	uvarint number of identity pairs, then for each (sorted by key): a key
//	        (byte: 0 = bytes follow, n > 0 = identityNames[n-1]) and the value bytes
//	bytes   LastError
//	compact RequestID
//	optional, added without a version change (older readers ignore it):
//	uvarint number of sinks that accepted this version, then their names as bytes
//
// "bytes" is a uvarint length followed by the bytes; "compact" is a tag byte
// (0 raw bytes, 1 lower-case hex stored decoded, 2 lower-case UUID stored as
// its 16 bytes) followed by bytes. Feed, ID and EntityKey
// live in the bucket path and the key. The head (flags, status, attempts,
// times) comes first so that index maintenance and cleanup can read it
// without decoding the rest.

const itemVersion = 1

// identityNames are the identity field names stored as one byte. Append
// only: the position is part of the file format.
var identityNames = [...]string{
	"sku", "storeViewCode", "storeCode", "websiteCode", "productId",
	"parentSku", "productSku", "attributeCode", "customerGroupCode",
	"websiteId", "storeViewId", "storeId", "categoryId", "entityId", "id",
}

func identityCode(name string) byte {
	for i, n := range identityNames {
		if n == name {
			return byte(i + 1)
		}
	}
	return 0
}

const (
	flagDeleted   = 1 << 0
	flagAttention = 1 << 1
)

var errCorrupt = errors.New("corrupt record")

// encodeID turns a feed id into its key: a 40-character lower-case hex sha1
// (the feed item contract) is stored as 0x01 + its 20 bytes, anything else
// as 0x00 + the raw bytes. Both forms keep a stable order.
func encodeID(dst []byte, id string) []byte {
	if len(id) == 40 {
		if d, ok := appendLowerHex(append(dst, 1), id); ok {
			return d
		}
	}
	dst = append(dst, 0)
	return append(dst, id...)
}

func decodeID(k []byte) (string, error) {
	if len(k) == 0 {
		return "", fmt.Errorf("empty item key: %w", errCorrupt)
	}
	switch k[0] {
	case 0:
		return string(k[1:]), nil
	case 1:
		if len(k) != 21 {
			return "", fmt.Errorf("hex item key of %d bytes: %w", len(k), errCorrupt)
		}
		return hex.EncodeToString(k[1:]), nil
	}
	return "", fmt.Errorf("item key tag %d: %w", k[0], errCorrupt)
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func timeToMicro(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

func microToTime(us int64) time.Time {
	if us == 0 {
		return time.Time{}
	}
	return time.UnixMicro(us).UTC()
}

func appendBytes(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// encodeItem appends the value encoding of it (Feed and ID live in the
// bucket path and the key).
func encodeItem(dst []byte, it *Item) []byte {
	dst = append(dst, itemVersion)
	var flags byte
	if it.Deleted {
		flags |= flagDeleted
	}
	if it.Attention {
		flags |= flagAttention
	}
	dst = append(dst, flags)
	dst = binary.AppendVarint(dst, int64(it.Status))
	dst = binary.AppendUvarint(dst, uint64(max(it.Attempts, 0)))
	dst = binary.AppendVarint(dst, timeToMicro(it.ModifiedAt))
	dst = binary.AppendVarint(dst, timeToMicro(it.SentAt))
	dst = binary.AppendVarint(dst, timeToMicro(it.NextAttempt))
	dst = appendCompact(dst, it.Hash)
	dst = binary.AppendUvarint(dst, uint64(len(it.Identity)))
	if len(it.Identity) > 0 {
		type field struct{ k, v string }
		var arr [8]field
		fields := arr[:0]
		for k, v := range it.Identity {
			fields = append(fields, field{k, v})
		}
		slices.SortFunc(fields, func(a, b field) int { return strings.Compare(a.k, b.k) })
		for _, f := range fields {
			if c := identityCode(f.k); c != 0 {
				dst = append(dst, c)
			} else {
				dst = append(dst, 0)
				dst = appendBytes(dst, f.k)
			}
			dst = appendBytes(dst, f.v)
		}
	}
	dst = appendBytes(dst, it.LastError)
	dst = appendCompact(dst, it.RequestID)
	if len(it.Accepted) > 0 {
		dst = binary.AppendUvarint(dst, uint64(len(it.Accepted)))
		for _, s := range it.Accepted {
			dst = appendBytes(dst, s)
		}
	}
	return dst
}

// appendHex appends the bytes of s, an even-length lower-case hex string
// (checked by the caller).
func appendHex(dst []byte, s string) []byte {
	for i := 0; i+1 < len(s); i += 2 {
		dst = append(dst, unhex(s[i])<<4|unhex(s[i+1]))
	}
	return dst
}

// appendLowerHex appends the bytes of s, an even-length string, if it is
// lower-case hex (checked and decoded in one pass); otherwise it returns
// dst unchanged and false.
func appendLowerHex(dst []byte, s string) ([]byte, bool) {
	n := len(dst)
	dst = slices.Grow(dst, len(s)/2)[:n+len(s)/2]
	out := dst[n:]
	for i := range out {
		hi, lo := lowerNibble(s[2*i]), lowerNibble(s[2*i+1])
		if hi|lo > 0x0f {
			return dst[:n], false
		}
		out[i] = hi<<4 | lo
	}
	return dst, true
}

// lowerNibble is the value of a lower-case hex digit, or 0xff.
func lowerNibble(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	}
	return 0xff
}

func unhex(c byte) byte {
	if c <= '9' {
		return c - '0'
	}
	return c - 'a' + 10
}

func isUUID(s string) bool {
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return false
	}
	return isLowerHex(s[:8]) && isLowerHex(s[9:13]) && isLowerHex(s[14:18]) && isLowerHex(s[19:23]) && isLowerHex(s[24:])
}

// appendCompact stores hex strings (hashes) and UUIDs (request ids) as
// their bytes.
func appendCompact(dst []byte, s string) []byte {
	if len(s) > 0 && len(s)%2 == 0 {
		if d, ok := appendLowerHex(binary.AppendUvarint(append(dst, 1), uint64(len(s)/2)), s); ok {
			return d
		}
	}
	if isUUID(s) {
		dst = append(dst, 2)
		dst = appendHex(dst, s[0:8])
		dst = appendHex(dst, s[9:13])
		dst = appendHex(dst, s[14:18])
		dst = appendHex(dst, s[19:23])
		return appendHex(dst, s[24:36])
	}
	dst = append(dst, 0)
	return appendBytes(dst, s)
}

func (r *reader) compact() string {
	switch tag := r.byte1(); tag {
	case 0:
		return r.str()
	case 1:
		return hex.EncodeToString(r.raw())
	case 2:
		if r.err != nil {
			return ""
		}
		if len(r.b) < 16 {
			r.err = errCorrupt
			return ""
		}
		h := hex.EncodeToString(r.b[:16])
		r.b = r.b[16:]
		return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
	default:
		if r.err == nil {
			r.err = errCorrupt
		}
		return ""
	}
}

// reader decodes the primitives above; the first error sticks.
type reader struct {
	b   []byte
	err error
}

func (r *reader) byte1() byte {
	if r.err != nil {
		return 0
	}
	if len(r.b) < 1 {
		r.err = errCorrupt
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errCorrupt
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = errCorrupt
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) raw() []byte {
	n := r.uvarint()
	if r.err != nil {
		return nil
	}
	if uint64(len(r.b)) < n {
		r.err = errCorrupt
		return nil
	}
	s := r.b[:n]
	r.b = r.b[n:]
	return s
}

func (r *reader) str() string { return string(r.raw()) }

// itemHead is the part of an item that the indexes and counters depend on.
type itemHead struct {
	Status      int
	Attempts    int
	Deleted     bool
	Attention   bool
	ModifiedAt  int64 // unix µs
	SentAt      int64
	NextAttempt int64
}

func decodeHead(v []byte) (itemHead, reader, error) {
	r := reader{b: v}
	var h itemHead
	if ver := r.byte1(); r.err == nil && ver != itemVersion {
		return h, r, fmt.Errorf("item record version %d is newer than this feedcdc supports (%d): %w", ver, itemVersion, errCorrupt)
	}
	flags := r.byte1()
	h.Deleted = flags&flagDeleted != 0
	h.Attention = flags&flagAttention != 0
	h.Status = int(r.varint())
	h.Attempts = int(r.uvarint())
	h.ModifiedAt = r.varint()
	h.SentAt = r.varint()
	h.NextAttempt = r.varint()
	if r.err != nil {
		return h, r, fmt.Errorf("decode item: %w", r.err)
	}
	return h, r, nil
}

func decodeItem(feed, id, entity string, v []byte) (Item, error) {
	h, r, err := decodeHead(v)
	if err != nil {
		return Item{}, err
	}
	it := Item{
		Feed:        feed,
		ID:          id,
		EntityKey:   entity,
		Status:      h.Status,
		Attempts:    h.Attempts,
		Deleted:     h.Deleted,
		Attention:   h.Attention,
		ModifiedAt:  microToTime(h.ModifiedAt),
		SentAt:      microToTime(h.SentAt),
		NextAttempt: microToTime(h.NextAttempt),
	}
	it.Hash = r.compact()
	if n := r.uvarint(); n > 0 && r.err == nil {
		if n > uint64(len(r.b)) {
			return Item{}, fmt.Errorf("decode item %s: identity count %d: %w", id, n, errCorrupt)
		}
		it.Identity = make(map[string]string, n)
		for i := uint64(0); i < n && r.err == nil; i++ {
			var k string
			switch c := r.byte1(); {
			case c == 0:
				k = r.str()
			case int(c) <= len(identityNames):
				k = identityNames[c-1]
			default:
				if r.err == nil {
					r.err = errCorrupt
				}
			}
			it.Identity[k] = r.str()
		}
	}
	it.LastError = r.str()
	it.RequestID = r.compact()
	if r.err == nil && len(r.b) > 0 {
		n := r.uvarint()
		if n > uint64(len(r.b)) {
			return Item{}, fmt.Errorf("decode item %s: accepted-sink count %d: %w", id, n, errCorrupt)
		}
		it.Accepted = make([]string, 0, n)
		for i := uint64(0); i < n && r.err == nil; i++ {
			it.Accepted = append(it.Accepted, r.str())
		}
	}
	if r.err != nil {
		return Item{}, fmt.Errorf("decode item %s: %w", id, r.err)
	}
	return it, nil
}

// Index keys.

// itemKey is the key of an item in feeds/<feed>/items: the entity key
// (length-prefixed, so equal-length numeric keys sort numerically and one
// entity's items are contiguous) followed by the id key.
func itemKey(dst []byte, ek string, idKey []byte) []byte {
	dst = appendBytes(dst, ek)
	return append(dst, idKey...)
}

func entityPrefix(ek string) []byte { return appendBytes(nil, ek) }

// splitItemKey returns the entity key and id key of an item key (aliasing k).
func splitItemKey(k []byte) (ek, idk []byte, err error) {
	n, l := binary.Uvarint(k)
	if l <= 0 || uint64(len(k)-l) < n+1 {
		return nil, nil, fmt.Errorf("item key %x: %w", k, errCorrupt)
	}
	return k[l : l+int(n)], k[l+int(n):], nil
}

func failedKey(dst []byte, nextAttempt int64, idKey []byte) []byte {
	dst = binary.BigEndian.AppendUint64(dst, uint64(max(nextAttempt, 0)))
	return append(dst, idKey...)
}

func statusPrefix(dst []byte, status int) []byte {
	return binary.BigEndian.AppendUint16(dst, uint16(int16(status))^0x8000)
}

func statusKey(dst []byte, status int, idKey []byte) []byte {
	return append(statusPrefix(dst, status), idKey...)
}

func u64key(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

package state

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// TestHexKeysMatchTheTwoPassEncoding checks encodeID and appendCompact (hex
// checked and decoded in one pass) against the two-pass form they replace
// — the stored format — on hex, upper-case, odd, UUID and junk strings, and
// that a failed hex attempt leaves nothing behind in dst's spare capacity
// that shows.
func TestHexKeysMatchTheTwoPassEncoding(t *testing.T) {
	refID := func(dst []byte, id string) []byte {
		if len(id) == 40 && isLowerHex(id) {
			return appendHex(append(dst, 1), id)
		}
		return append(append(dst, 0), id...)
	}
	refCompact := func(dst []byte, s string) []byte {
		switch {
		case len(s) > 0 && len(s)%2 == 0 && isLowerHex(s):
			return appendHex(binary.AppendUvarint(append(dst, 1), uint64(len(s)/2)), s)
		case isUUID(s):
			dst = append(dst, 2)
			for _, p := range []string{s[0:8], s[9:13], s[14:18], s[19:23], s[24:36]} {
				dst = appendHex(dst, p)
			}
			return dst
		}
		return appendBytes(append(dst, 0), s)
	}
	cases := []string{
		"", "0", "ab", "0123456789abcdef0123456789abcdef01234567", "0123456789abcdef0123456789abcdef0123456g",
		"0123456789ABCDEF0123456789abcdef01234567", "0123456789abcdef0123456789abcdef012345678", "abc",
		"123e4567-e89b-12d3-a456-426614174000", "123E4567-e89b-12d3-a456-426614174000", "req-42", "ff/ff", "gg", "a:",
	}
	for _, s := range cases {
		prefix := make([]byte, 3, 64) // spare capacity a failed attempt writes into
		copy(prefix, "pre")
		if got, want := encodeID(prefix, s), refID([]byte("pre"), s); !bytes.Equal(got, want) {
			t.Errorf("encodeID(%q) = %x, want %x", s, got, want)
		}
		if got, want := appendCompact(prefix, s), refCompact([]byte("pre"), s); !bytes.Equal(got, want) {
			t.Errorf("appendCompact(%q) = %x, want %x", s, got, want)
		}
	}
}

// Package jsonw holds the JSON string encoder shared by the feeds (whose
// hashes depend on exact bytes) and the raw change envelopes.
//
// Invariant: AppendString produces exactly what encoding/json produces with
// SetEscapeHTML(false), so hand-encoded and reflected JSON hash the same.
package jsonw

import "unicode/utf8"

const hexDigits = "0123456789abcdef"

// AppendString appends s as encoding/json does with SetEscapeHTML(false):
// `"` and `\` escaped, \b \f \n \r \t short forms, other control characters
// as \u00XX, invalid UTF-8 as \ufffd, U+2028 and U+2029 as \u2028/\u2029.
func AppendString(b []byte, s string) []byte { return appendString(b, s, true) }

// appendString is AppendString; without wordSkip it looks at one byte at a
// time (the benchmark's baseline).
func appendString(b []byte, s string, wordSkip bool) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		// Skip 8 plain ASCII bytes at a time; the byte loop below handles
		// the first word holding anything else.
		for wordSkip && i+8 <= len(s) && !special8(load8(s, i)) {
			i += 8
		}
		if i >= len(s) {
			break
		}
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

const (
	ones = 0x0101010101010101
	high = 0x8080808080808080
)

// load8 reads s[i:i+8] as a little-endian word (the compiler makes this
// one load).
func load8(s string, i int) uint64 {
	_ = s[i+7]
	return uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
		uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
}

// special8 reports whether a byte of w may need more than copying: below
// 0x20, '"', '\\' or non-ASCII. It never misses one (a byte below the
// bound borrows into its own high bit before any byte above it); it may
// flag a plain word after such a byte, which the byte loop then handles.
func special8(w uint64) bool {
	return ((w-ones*0x20)|((w^(ones*'"'))-ones)|((w^(ones*'\\'))-ones)|w)&high != 0
}

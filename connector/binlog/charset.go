package binlog

import (
	"unicode/utf8"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/unicode"
	"golang.org/x/text/encoding/unicode/utf32"
)

// charsetKind says how the bytes of a character column become a Go string.
type charsetKind uint8

const (
	csUTF8   charsetKind = iota // utf8mb3, utf8mb4, ascii and unknown collations: bytes are UTF-8 already
	csBinary                    // collation 63 (binary): the value is []byte
	csOther                     // a single- or multi-byte charset converted with an x/text decoder
)

// charset is the decoding rule of one collation.
type charset struct {
	kind charsetKind
	name string
	enc  encoding.Encoding // for csOther
}

var (
	charsetUTF8   = charset{kind: csUTF8, name: "utf8mb4"}
	charsetBinary = charset{kind: csBinary, name: "binary"}
)

// collationCharsets maps MySQL/MariaDB collation ids of the non-UTF-8
// charsets to their decoders. Collations not listed are UTF-8 (utf8mb3,
// utf8mb4 — including MySQL 8's 255+ and MariaDB 11's 2048+ ids — and
// ascii, which is a subset).
var collationCharsets = func() map[uint64]charset {
	m := map[uint64]charset{63: charsetBinary}
	add := func(name string, enc encoding.Encoding, ids ...uint64) {
		for _, id := range ids {
			m[id] = charset{kind: csOther, name: name, enc: enc}
		}
	}
	// MySQL's latin1 is Windows-1252 (cp1252), not ISO-8859-1.
	add("latin1", charmap.Windows1252, 5, 8, 15, 31, 47, 48, 49, 94)
	add("latin2", charmap.ISO8859_2, 2, 9, 21, 27, 77)
	add("cp1250", charmap.Windows1250, 26, 34, 44, 66, 99)
	add("cp1251", charmap.Windows1251, 14, 23, 50, 51, 52)
	add("cp1256", charmap.Windows1256, 57, 67)
	add("cp1257", charmap.Windows1257, 29, 58, 59)
	add("greek", charmap.ISO8859_7, 25, 70)
	add("hebrew", charmap.ISO8859_8, 16, 71)
	add("latin5", charmap.ISO8859_9, 30, 78)
	add("latin7", charmap.ISO8859_13, 20, 41, 42, 79)
	add("koi8r", charmap.KOI8R, 7, 74)
	add("koi8u", charmap.KOI8U, 22, 75)
	add("cp850", charmap.CodePage850, 4, 80)
	add("cp852", charmap.CodePage852, 40, 81)
	add("cp866", charmap.CodePage866, 36, 68)
	ucs2 := unicode.UTF16(unicode.BigEndian, unicode.IgnoreBOM)
	add("ucs2", ucs2, 35, 90)
	add("utf16", ucs2, 54, 55)
	add("utf16le", unicode.UTF16(unicode.LittleEndian, unicode.IgnoreBOM), 56, 62)
	add("utf32", utf32.UTF32(utf32.BigEndian, utf32.IgnoreBOM), 60, 61)
	for id := uint64(128); id <= 151; id++ {
		add("ucs2", ucs2, id)
	}
	for id := uint64(101); id <= 124; id++ {
		add("utf16", ucs2, id)
	}
	for id := uint64(160); id <= 183; id++ {
		add("utf32", utf32.UTF32(utf32.BigEndian, utf32.IgnoreBOM), id)
	}
	return m
}()

// charsetNames maps charset names (as in DDL and information_schema) to rules.
var charsetNames = func() map[string]charset {
	m := map[string]charset{
		"utf8": charsetUTF8, "utf8mb3": charsetUTF8, "utf8mb4": charsetUTF8, "ascii": charsetUTF8,
		"binary": charsetBinary,
	}
	for _, cs := range collationCharsets {
		if cs.kind == csOther {
			m[cs.name] = cs
		}
	}
	return m
}()

// charsetForCollation returns the decoding rule of a collation id.
func charsetForCollation(id uint64) charset {
	if cs, ok := collationCharsets[id]; ok {
		return cs
	}
	return charsetUTF8
}

// charsetForName returns the decoding rule of a charset name; unknown names
// decode as UTF-8.
func charsetForName(name string) charset {
	if cs, ok := charsetNames[name]; ok {
		return cs
	}
	return charsetUTF8
}

// decodeText converts the stored bytes of a character value to UTF-8.
func (cs charset) decodeText(b []byte) (string, error) {
	if cs.kind == csOther {
		out, err := cs.enc.NewDecoder().Bytes(b)
		if err != nil {
			return "", err
		}
		return string(out), nil
	}
	return string(b), nil
}

// decodeTextString is decodeText for a value go-mysql already returned as a
// string (VARCHAR/CHAR). UTF-8 values are returned unchanged.
func (cs charset) decodeTextString(s string) (string, error) {
	if cs.kind == csOther {
		// ASCII-only latin1 text needs no conversion (the common case).
		ascii := true
		for i := 0; i < len(s); i++ {
			if s[i] >= utf8.RuneSelf {
				ascii = false
				break
			}
		}
		if ascii && cs.name != "ucs2" && cs.name != "utf16" && cs.name != "utf16le" && cs.name != "utf32" {
			return s, nil
		}
		return cs.decodeText([]byte(s))
	}
	return s, nil
}

package jsonw

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// TestMatchesEncodingJSON compares AppendString with encoding/json
// (SetEscapeHTML(false)) on strings with every kind of special character.
func TestMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{"", "plain", `quote " and \ backslash`, "\b\f\n\r\t\x00\x1f\x7f", "<a href='x'>&amp;</a>",
		"emoji 😀 and ünïcödé", "bad utf8 \xff\xfe end", "line\u2028sep\u2029", "€"} {
		var want bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(s); err != nil {
			t.Fatal(err)
		}
		got := AppendString(nil, s)
		if !bytes.Equal(got, bytes.TrimRight(want.Bytes(), "\n")) {
			t.Errorf("%q: got %s want %s", s, got, want.Bytes())
		}
	}
}

// TestWordSkipMatchesEncodingJSON puts every kind of special byte at every
// offset of strings up to 40 bytes long, so each lands in every position of
// the 8-byte words AppendString skips over, and compares with encoding/json.
func TestWordSkipMatchesEncodingJSON(t *testing.T) {
	specials := []string{"\x00", "\x1f", "\x20", "\"", "\\", "\x7f", "\x80", "\xff", "é", "😀", "\u2028", "!", "#", "[", "]", "~"}
	for n := 0; n <= 40; n++ {
		for at := 0; at <= n; at++ {
			for _, sp := range specials {
				s := strings.Repeat("a", at) + sp + strings.Repeat("b", n-at)
				var want bytes.Buffer
				enc := json.NewEncoder(&want)
				enc.SetEscapeHTML(false)
				if err := enc.Encode(s); err != nil {
					t.Fatal(err)
				}
				if got := AppendString(nil, s); !bytes.Equal(got, bytes.TrimRight(want.Bytes(), "\n")) {
					t.Fatalf("%q: got %s want %s", s, got, want.Bytes())
				}
				if got := appendStringBytewise(nil, s); !bytes.Equal(got, bytes.TrimRight(want.Bytes(), "\n")) {
					t.Fatalf("%q (byte loop): got %s want %s", s, got, want.Bytes())
				}
			}
		}
	}
}

// appendStringBytewise is AppendString looking at one byte at a time (the
// implementation before the 8-byte skip), the benchmark's baseline.
func appendStringBytewise(b []byte, s string) []byte { return appendString(b, s, false) }

// BenchmarkAppendString compares AppendString with the byte-at-a-time loop
// on the strings a catalog row holds: SKUs, names, URL keys, descriptions,
// timestamps and a non-ASCII name.
//
//	go test -run '^$' -bench AppendString ./internal/jsonw
func BenchmarkAppendString(b *testing.B) {
	corpus := []string{"MH01-XS-Black", "Chaz Kangeroo Hoodie", "chaz-kangeroo-hoodie.html",
		"2026-11-29 19:48:57", "Ideal for cold-weather training or work outdoors, the Chaz Hoodie promises superior warmth with every wear.",
		"Größe Überzieher – Ärmel", "simple", "1", "catalog_product_entity_varchar"}
	var total int
	for _, s := range corpus {
		total += len(s)
	}
	buf := make([]byte, 0, 4096)
	var base float64
	for _, v := range []struct {
		name string
		fn   func([]byte, string) []byte
	}{{"bytewise", appendStringBytewise}, {"AppendString", AppendString}} {
		b.Run(v.name, func(b *testing.B) {
			b.SetBytes(int64(total))
			for b.Loop() {
				buf = buf[:0]
				for _, s := range corpus {
					buf = v.fn(buf, s)
				}
			}
			ns := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
			if base == 0 {
				base = ns
			}
			b.ReportMetric(base/ns, "speedup")
		})
	}
}

package jsonw

import (
	"bytes"
	"encoding/json"
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

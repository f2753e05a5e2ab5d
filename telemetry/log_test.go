package telemetry

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
)

func TestNewLoggerFormatsAndLevels(t *testing.T) {
	var buf bytes.Buffer
	// auto on a non-terminal writer: JSON, info level by default.
	l, err := NewLogger(&buf, "", "")
	if err != nil {
		t.Fatal(err)
	}
	l.Debug("hidden")
	l.Info("partial sync", "feed", "products", "operation", "partial sync (legacy)")
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatalf("auto format off a terminal is not JSON: %q", buf.String())
	}
	if rec["msg"] != "partial sync" || rec["feed"] != "products" || rec["operation"] != "partial sync (legacy)" {
		t.Fatalf("record = %v", rec)
	}

	buf.Reset()
	l, err = NewLogger(&buf, "TEXT", "Debug")
	if err != nil {
		t.Fatal(err)
	}
	l.Debug("shown", "feed", "variants")
	if out := buf.String(); !strings.Contains(out, "level=DEBUG") || !strings.Contains(out, "msg=shown feed=variants") {
		t.Fatalf("text debug output = %q", out)
	}

	buf.Reset()
	l, _ = NewLogger(&buf, "json", "warn")
	l.Info("hidden")
	l.Warn("shown")
	if strings.Contains(buf.String(), "hidden") || !strings.Contains(buf.String(), `"level":"WARN"`) {
		t.Fatalf("warn level output = %q", buf.String())
	}
}

func TestNewLoggerRejectsBadInput(t *testing.T) {
	if _, err := NewLogger(os.Stderr, "xml", "info"); err == nil || !strings.Contains(err.Error(), `log format "xml" is not supported: use json, text or auto`) {
		t.Fatalf("bad format: %v", err)
	}
	if _, err := NewLogger(os.Stderr, "json", "verbose"); err == nil || !strings.Contains(err.Error(), `log level "verbose" is not supported: use debug, info, warn or error`) {
		t.Fatalf("bad level: %v", err)
	}
}

func TestIsTerminal(t *testing.T) {
	if IsTerminal(&bytes.Buffer{}) {
		t.Fatal("buffer is a terminal")
	}
	f, err := os.CreateTemp(t.TempDir(), "log")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if IsTerminal(f) {
		t.Fatal("regular file is a terminal")
	}
}

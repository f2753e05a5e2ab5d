package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDemoShowsFeedsFlowing runs the README's demo command for a short
// while and checks that it full-synced and streamed a live workload.
func TestDemoShowsFeedsFlowing(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "demo")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var out, errOut bytes.Buffer
	code := Main(ctx, []string{"--dir", dir, "--profile", "tiny", "--duration", "6s", "--rate", "50"}, &out, &errOut)
	if code != 0 {
		t.Fatalf("demo exit %d\n%s\n%s", code, out.String(), errOut.String())
	}
	for _, want := range []string{"full sync done", "a products item", "applying a live workload", "dashboard http://127.0.0.1:", "workload ran 6s", "stopped"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("demo output lacks %q:\n%s", want, out.String())
		}
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("demo left %s behind", dir)
	}
}

func TestBadFlags(t *testing.T) {
	for args, want := range map[string]string{"--profile huge": "--profile", "--no-such-flag": "unknown flag", "extra": "unknown command"} {
		var out, errOut bytes.Buffer
		if code := Main(context.Background(), strings.Fields(args), &out, &errOut); code == 0 || !strings.Contains(errOut.String(), want) {
			t.Errorf("%s: exit %d, stderr %q; want an error naming %s", args, code, errOut.String(), want)
		}
	}
}

package config

import (
	"math/rand"
	"os"
	"strings"
	"testing"
)

// TestMutatedConfigsNeverPanic loads many seeded mutations of config.yaml
// (values replaced by values of other types, lines dropped or re-indented,
// keys renamed): each either loads or returns a *ValidationError, and every
// problem names a key or a line.
func TestMutatedConfigsNeverPanic(t *testing.T) {
	src, err := os.ReadFile(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	base := strings.Split(uncomment(string(src)), "\n")
	values := []string{"", "~", "0", "-1", "99999999999", "true", "[]", "{}", "[a, b]", "{x: 1}", "\"\"", "5s", "zstd", "abc", "1.5", "*/5 * * * *", "0.0.0.0:1", "@", "&a x", "*a"}
	rng := rand.New(rand.NewSource(7))
	for i := 0; i < 250; i++ {
		lines := append([]string(nil), base...)
		for m := 0; m < 1+rng.Intn(4); m++ {
			j := rng.Intn(len(lines))
			line := lines[j]
			switch rng.Intn(4) {
			case 0: // replace the value
				if k, _, ok := strings.Cut(line, ": "); ok {
					lines[j] = k + ": " + values[rng.Intn(len(values))]
				}
			case 1: // drop the line
				lines = append(lines[:j], lines[j+1:]...)
			case 2: // re-indent
				lines[j] = "  " + line
			case 3: // misspell the key
				if k, v, ok := strings.Cut(line, ":"); ok && len(strings.TrimSpace(k)) > 2 {
					lines[j] = k[:len(k)-1] + "x:" + v
				}
			}
		}
		text := strings.Join(lines, "\n")
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Fatalf("panic %v loading:\n%s", r, text)
				}
			}()
			cfg, err := LoadBytes([]byte(text), "config.yaml", []string{"KAFKA_PASSWORD=k", "FEED_API_KEY=a", "MYSQL_PASSWORD=m", "FEEDCDC_TOKEN=t"})
			if err == nil {
				_ = cfg.Redacted()
				return
			}
			ve, ok := err.(*ValidationError)
			if !ok {
				t.Fatalf("error %T: %v", err, err)
			}
			for _, p := range ve.Problems {
				if p.Path == "" && p.Line == 0 && !strings.HasPrefix(p.Message, "not valid YAML") {
					t.Fatalf("problem without key or line: %v\n%s", p, text)
				}
			}
		}()
	}
}

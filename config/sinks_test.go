package config

import (
	"errors"
	"strings"
	"testing"
)

// TestSinkSectionsFromFileAndEnv: a sink's options section is present when
// the file or a FEEDCDC_SINKS_<NAME>_<TYPE>_* variable gives it, and a sink
// that only names its type gets that section at its defaults.
func TestSinkSectionsFromFileAndEnv(t *testing.T) {
	cfg := mustLoad(t, base+"sinks:\n  main: {type: kafka}\n", "FEEDCDC_SINKS_MAIN_KAFKA_BROKERS=k1:9092")
	if k := cfg.Sinks["main"].Kafka; k == nil || len(k.Brokers) != 1 || k.Acks != "all" || cfg.Sinks["main"].File != nil {
		t.Fatalf("type-only sink with brokers from the environment: %s", cfg.Redacted())
	}
	cfg = mustLoad(t, base+"sinks:\n  main: {}\n", "FEEDCDC_SINKS_MAIN_KAFKA_BROKERS=k1:9092")
	if s := cfg.Sinks["main"]; s.Type != "kafka" || s.Kafka == nil || s.HTTP != nil {
		t.Fatalf("type not inferred from an environment section: %s", cfg.Redacted())
	}
	cfg = mustLoad(t, base+"sinks:\n  out: {type: file}\n")
	if f := cfg.Sinks["out"].File; f == nil || f.Dir != "feedcdc-data/out" || !f.Fsync {
		t.Fatalf("file sink without its section: %s", cfg.Redacted())
	}
	_, err := LoadBytes([]byte(base), "config.yaml", []string{"FEEDCDC_SINKS_FILE_HTTP_BASE_URL=https://x.example"})
	if err == nil || !strings.Contains(err.Error(), "$FEEDCDC_SINKS_FILE_HTTP_BASE_URL: sinks.file.http: section http is set but the sink's type is file") {
		t.Fatalf("an http section for the default file sink: %v", err)
	}
}

// TestMapsShareMergeAndDuplicateRules: the sinks map and string maps take
// merge keys and report a key given twice, as sections do.
func TestMapsShareMergeAndDuplicateRules(t *testing.T) {
	cfg := mustLoad(t, base+`sinks:
  a: &sink
    http:
      base_url: "https://x.example"
      headers: &h {X-Client: feedcdc}
  b:
    http:
      base_url: "https://y.example"
      headers: {<<: *h, X-Team: cdc}
  <<: {c: {file: {dir: out-c}}}
`)
	if h := cfg.Sinks["b"].HTTP.Headers; len(h) != 2 || h["X-Client"] != "feedcdc" || cfg.Sinks["c"] == nil || cfg.Sinks["c"].File.Dir != "out-c" {
		t.Fatalf("merge keys in maps: %s", cfg.Redacted())
	}
	_, err := LoadBytes([]byte(base+"sinks:\n  a: {type: file}\n  a: {type: kafka}\n"), "config.yaml", nil)
	var ve *ValidationError
	if !errors.As(err, &ve) || !strings.Contains(err.Error(), `config.yaml:6: sinks.a: key "a" is set twice (also on line 5); keep one`) {
		t.Fatalf("sink defined twice: %v", err)
	}
	_, err = LoadBytes([]byte(base+"raw:\n  key_columns: {shop.t: a, shop.t: b}\n"), "config.yaml", nil)
	if err == nil || !strings.Contains(err.Error(), `config.yaml:5: raw.key_columns.shop.t: key "shop.t" is set twice`) {
		t.Fatalf("map key twice: %v", err)
	}
}

// TestMapEntriesCheckedWhenRawIsOff: mask and key column entries are
// checked whether or not raw streams are enabled, like their keys.
func TestMapEntriesCheckedWhenRawIsOff(t *testing.T) {
	for y, want := range map[string]string{
		"raw:\n  mask_columns: {shop.c.email: sha1}\n": `config.yaml:5: raw.mask_columns.shop.c.email: "sha1" is not a mask`,
		"raw:\n  key_columns: {shop.t: \"a,\"}\n":      `config.yaml:5: raw.key_columns.shop.t: "a," has an empty column name`,
	} {
		if _, err := LoadBytes([]byte(base+y), "config.yaml", nil); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want %q", y, err, want)
		}
	}
}

// TestEnvOverrideIsOneKey: a variable is decoded as a document holding its
// one key, so it adds a routes entry to the file's and keeps the file's
// other keys and lines.
func TestEnvOverrideIsOneKey(t *testing.T) {
	y := base + "sinks:\n  svc:\n    http:\n      base_url: https://x.example\n      routes: {products: p}\n"
	cfg := mustLoad(t, y, "FEEDCDC_SINKS_SVC_HTTP_ROUTES_VARIANTS=v")
	if r := cfg.Sinks["svc"].HTTP.Routes; len(r) != 2 || r["products"] != "p" || r["variants"] != "v" {
		t.Fatalf("routes = %v", r)
	}
	_, err := LoadBytes([]byte(y+"    kafka: {}\n"), "config.yaml", []string{"FEEDCDC_SINKS_SVC_HTTP_TIMEOUT=5s"})
	if err == nil || !strings.Contains(err.Error(), `config.yaml:5: sinks.svc.type: sink "svc" has sections kafka and http but no type`) {
		t.Fatalf("a file problem after an override of its section: %v", err)
	}
}

package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func mustLoad(t *testing.T, y string, env ...string) *Config {
	t.Helper()
	cfg, err := LoadBytes([]byte(y), "config.yaml", env)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	return cfg
}

// TestMinimalConfigIsDefaults: a file with only source host and user gives
// exactly Default() with those two set.
func TestMinimalConfigIsDefaults(t *testing.T) {
	cfg := mustLoad(t, "source:\n  host: db.internal\n  user: cdc\n")
	want := Default()
	want.Source.Host, want.Source.User = "db.internal", "cdc"
	if !reflect.DeepEqual(cfg, want) {
		t.Fatalf("minimal config differs from defaults:\n got: %s\nwant: %s", cfg.Redacted(), want.Redacted())
	}
	if err := want.Validate(); err != nil {
		t.Fatalf("Default() with a user does not validate: %v", err)
	}
	if err := Default().Validate(); err == nil || !strings.Contains(err.Error(), "source.user: is required") {
		t.Fatalf("Default() without user: %v", err)
	}
}

// TestEnvOverrides: FEEDCDC_<PATH> overrides file values of every type,
// including feed names viper lower-cases and sinks defined in the file.
func TestEnvOverrides(t *testing.T) {
	y := "source:\n  host: db\n  user: cdc\n  port: 3306\nsinks:\n  main:\n    kafka:\n      brokers: [x:1]\n"
	cfg := mustLoad(t, y,
		"FEEDCDC_SOURCE_PORT=3307",
		"FEEDCDC_SOURCE_HEARTBEAT=2s",
		"FEEDCDC_SOURCE_INCLUDE_TABLES=magento.catalog_*, magento.store",
		"FEEDCDC_SINKS_MAIN_KAFKA_BROKERS=k1:9092,k2:9092",
		"FEEDCDC_SINKS_MAIN_KAFKA_COMPRESSION=zstd",
		"FEEDCDC_FEEDS_PRODUCTATTRIBUTES_MODE=legacy",
		"FEEDCDC_RAW_ENABLED=true",
		"FEEDCDC_BACKPRESSURE_MAX_INFLIGHT_BYTES=128MiB",
		"FEEDCDC_SOURCE_SERVER_ID=4242",
		"PATH=/usr/bin",
	)
	k := cfg.Sinks["main"].Kafka
	switch {
	case cfg.Source.Port != 3307, cfg.Source.Heartbeat.D() != 2*time.Second,
		!reflect.DeepEqual(cfg.Source.IncludeTables, []string{"magento.catalog_*", "magento.store"}),
		!reflect.DeepEqual(k.Brokers, []string{"k1:9092", "k2:9092"}), k.Compression != "zstd",
		k.Acks != "all", // defaults of the section are kept
		cfg.Feeds.ProductAttributes.Mode != "legacy", cfg.Feeds.Products.Mode != "immediate",
		!cfg.Raw.Enabled, cfg.Backpressure.MaxInflightBytes != 128<<20, cfg.Source.ServerID != 4242:
		t.Fatalf("overrides not applied:\n%s", cfg.Redacted())
	}
	if cfg.Sinks["main"].Type != "kafka" || cfg.Sinks["main"].HTTP != nil || cfg.Sinks["main"].File != nil {
		t.Fatalf("sink type not inferred: %+v", cfg.Sinks["main"])
	}
	if len(cfg.Warnings) != 0 {
		t.Fatalf("warnings: %q", cfg.Warnings)
	}

	// Overriding the default sink when the file has none keeps its defaults.
	cfg = mustLoad(t, "source: {host: db, user: cdc}\n", "FEEDCDC_SINKS_FILE_FILE_DIR=/tmp/feedcdc-out")
	if f := cfg.Sinks["file"]; f == nil || f.File == nil || f.File.Dir != "/tmp/feedcdc-out" || f.File.MaxFiles != 10 || !f.File.Fsync {
		t.Fatalf("default sink override: %s", cfg.Redacted())
	}

	// Map entries of routes can be overridden too.
	cfg = mustLoad(t, "source: {host: db, user: cdc}\nsinks:\n  svc:\n    http: {base_url: \"http://127.0.0.1:1\"}\n",
		"FEEDCDC_SINKS_SVC_HTTP_ROUTES_PRODUCTATTRIBUTES=attrs", "FEEDCDC_SINKS_SVC_HTTP_GZIP=false")
	if h := cfg.Sinks["svc"].HTTP; h.Routes["productAttributes"] != "attrs" || h.Gzip || len(h.Routes) != 1 {
		t.Fatalf("route override: %s", cfg.Redacted())
	}

	// The user can come from the environment alone.
	cfg = mustLoad(t, "", "FEEDCDC_SOURCE_USER=envuser")
	if cfg.Source.User != "envuser" {
		t.Fatalf("user from env: %q", cfg.Source.User)
	}
}

// TestUnknownEnvWarning: a mistyped FEEDCDC_ variable is reported with the
// closest valid name; variables named by *_env keys are not reported.
func TestUnknownEnvWarning(t *testing.T) {
	cfg := mustLoad(t, "source: {host: db, user: cdc, password_env: FEEDCDC_DB_PW}\n",
		"FEEDCDC_SORCE_PORT=1", "FEEDCDC_DB_PW=pw", "FEEDCDC_CONFIG=/etc/feedcdc.yaml", "FEEDCDC_TEST_MYSQL_DSN=x")
	if len(cfg.Warnings) != 1 || !strings.Contains(cfg.Warnings[0], "FEEDCDC_SORCE_PORT matches no configuration key") || !strings.Contains(cfg.Warnings[0], "did you mean FEEDCDC_SOURCE_PORT?") {
		t.Fatalf("warnings: %q", cfg.Warnings)
	}
	if cfg.Source.Password.Value() != "pw" {
		t.Fatalf("password_env not resolved")
	}
}

// TestSecretsResolvedAndNeverPrinted: secrets from every allowed source are
// resolved, and no rendering of the config reveals them.
func TestSecretsResolvedAndNeverPrinted(t *testing.T) {
	dir := t.TempDir()
	saslFile := filepath.Join(dir, "sasl")
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(saslFile, []byte("sasl-Secret-1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tokenFile, []byte("dash-Secret-2"), 0o644); err != nil {
		t.Fatal(err)
	}
	y := fmt.Sprintf(`source:
  host: db
  user: cdc
sinks:
  main:
    kafka:
      brokers: [k:9092]
      sasl: {mechanism: SCRAM-SHA-512, user: u, password_file: %s}
  svc:
    http:
      base_url: https://feeds.example.com
      api_key_env: MY_API_KEY
dashboard:
  listen: 0.0.0.0:8484
  token_file: %s
`, saslFile, tokenFile)
	cfg := mustLoad(t, y, "FEEDCDC_SOURCE_PASSWORD=src-Secret-0", "MY_API_KEY=api-Secret-3")
	secrets := map[string]Secret{
		"src-Secret-0":  cfg.Source.Password,
		"sasl-Secret-1": cfg.Sinks["main"].Kafka.SASL.Password,
		"dash-Secret-2": cfg.Dashboard.Token,
		"api-Secret-3":  cfg.Sinks["svc"].HTTP.APIKey,
	}
	for want, got := range secrets {
		if got.Value() != want {
			t.Fatalf("secret resolved to %q, want %q", got.Value(), want)
		}
	}
	if len(cfg.Warnings) != 1 || !strings.Contains(cfg.Warnings[0], "dashboard.token_file") || !strings.Contains(cfg.Warnings[0], "chmod 600") {
		t.Fatalf("want a world-readable warning for the token file, got %q", cfg.Warnings)
	}

	var renders []string
	renders = append(renders, cfg.Redacted(), cfg.String(),
		fmt.Sprintf("%v|%+v|%#v|%s", cfg, *cfg, *cfg, cfg),
		fmt.Sprintf("%v %+v %#v %s %q %x", cfg.Source, cfg.Source, cfg.Source, cfg.Source.Password, cfg.Source.Password, cfg.Source.Password),
		fmt.Sprintf("%+v %#v", *cfg.Sinks["main"].Kafka, *cfg.Sinks["svc"].HTTP))
	js, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	renders = append(renders, string(js))
	rm := cfg.RedactedMap()
	js, err = json.Marshal(rm)
	if err != nil {
		t.Fatal(err)
	}
	renders = append(renders, string(js))
	if src, _ := rm["source"].(map[string]any); src["password"] != "<redacted>" || src["host"] != "db" {
		t.Fatalf("RedactedMap source = %v", src)
	}
	var logbuf bytes.Buffer
	lg := slog.New(slog.NewJSONHandler(&logbuf, nil))
	lg.Info("config", "cfg", cfg, "source", cfg.Source, "pw", cfg.Source.Password)
	slog.New(slog.NewTextHandler(&logbuf, nil)).Info("config", "cfg", cfg, "pw", cfg.Dashboard.Token)
	renders = append(renders, logbuf.String())
	for _, r := range renders {
		for s := range secrets {
			if strings.Contains(r, s) {
				t.Fatalf("secret %q printed in:\n%s", s, r)
			}
		}
	}
	if !strings.Contains(cfg.Redacted(), "password: <redacted>") || !strings.Contains(cfg.Redacted(), "api_key: <redacted>") {
		t.Fatalf("Redacted does not show masked secrets:\n%s", cfg.Redacted())
	}
}

// TestSecretPrecedence: FEEDCDC_<PATH> wins over *_file / *_env; an
// explicitly empty literal is allowed.
func TestSecretPrecedence(t *testing.T) {
	cfg := mustLoad(t, "source: {host: db, user: cdc, password_env: PW}\n", "PW=from-env-key", "FEEDCDC_SOURCE_PASSWORD=from-override")
	if cfg.Source.Password.Value() != "from-override" {
		t.Fatalf("got %q", cfg.Source.Password.Value())
	}
	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg = mustLoad(t, "source: {host: db, user: cdc}\n", "FEEDCDC_SOURCE_PASSWORD_FILE="+pwFile)
	if cfg.Source.Password.Value() != "from-file" {
		t.Fatalf("password_file from env: %q", cfg.Source.Password.Value())
	}
	cfg = mustLoad(t, "source: {host: db, user: cdc, password: \"\"}\n")
	if cfg.Source.Password.IsSet() {
		t.Fatal("empty password set")
	}
}

// TestCaseInsensitiveViperKeys: viper lower-cases keys; feed names, routes
// and headers still land on the right fields.
func TestCaseInsensitiveViperKeys(t *testing.T) {
	y := `source: {host: db, user: cdc}
feeds:
  productAttributes: {mode: legacy, legacy_schedule: "*/10 * * * *"}
  productOverrides: {enabled: false}
sinks:
  svc:
    http:
      base_url: http://127.0.0.1:8080/feeds
      routes: {productAttributes: attrs, productOverrides: overrides}
      headers: {X-Client: feedcdc}
`
	cfg := mustLoad(t, y)
	h := cfg.Sinks["svc"].HTTP
	switch {
	case cfg.Feeds.ProductAttributes.Mode != "legacy", cfg.Feeds.ProductAttributes.LegacySchedule != "*/10 * * * *",
		cfg.Feeds.ProductOverrides.Enabled, !cfg.Feeds.Products.Enabled,
		h.Routes["productAttributes"] != "attrs", h.Routes["productOverrides"] != "overrides",
		len(h.Headers) != 1, h.APIKeyHeaders[0] != "x-api-key", h.MaxItemsPerRequest != 100:
		t.Fatalf("got:\n%s", cfg.Redacted())
	}
	if got := cfg.SinksFor("productAttributes"); !reflect.DeepEqual(got, []string{"svc"}) {
		t.Fatalf("SinksFor = %v", got)
	}
	if got := cfg.RawSinks(); len(got) != 0 {
		t.Fatalf("RawSinks = %v (http sinks take no raw streams)", got)
	}
}

func TestParsers(t *testing.T) {
	for in, want := range map[string]time.Duration{"250ms": 250 * time.Millisecond, "5m": 5 * time.Minute, "7d": 7 * 24 * time.Hour, "1.5d": 36 * time.Hour, "1h30m": 90 * time.Minute, "0": 0} {
		if d, err := ParseDuration(in); err != nil || d.D() != want {
			t.Errorf("ParseDuration(%q) = %v, %v", in, d, err)
		}
	}
	for _, bad := range []string{"5", "abc", "-1d", ""} {
		if _, err := ParseDuration(bad); err == nil {
			t.Errorf("ParseDuration(%q) accepted", bad)
		}
	}
	for in, want := range map[string]ByteSize{"1048576": 1 << 20, "64MiB": 64 << 20, "1MB": 1000000, "512KiB": 512 << 10, "1.5GiB": 3 << 29, "10 MiB": 10 << 20} {
		if b, err := ParseByteSize(in); err != nil || b != want {
			t.Errorf("ParseByteSize(%q) = %v, %v", in, b, err)
		}
	}
	for _, bad := range []string{"MiB", "-5", "1XB"} {
		if _, err := ParseByteSize(bad); err == nil {
			t.Errorf("ParseByteSize(%q) accepted", bad)
		}
	}
	for _, d := range []Duration{0, Duration(250 * time.Millisecond), Duration(90 * time.Minute), Duration(7 * 24 * time.Hour), Duration(5 * time.Minute)} {
		if back, err := ParseDuration(d.String()); err != nil || back != d {
			t.Errorf("Duration %v does not round-trip: %v %v", d, back, err)
		}
	}
	start := time.Date(2026, 1, 1, 10, 2, 0, 0, time.UTC)
	for sched, next := range map[Schedule]time.Time{
		"5m":           start.Add(5 * time.Minute),
		"*/5 * * * *":  time.Date(2026, 1, 1, 10, 5, 0, 0, time.UTC),
		"@hourly":      time.Date(2026, 1, 1, 11, 0, 0, 0, time.UTC),
		"30 * * * * *": time.Date(2026, 1, 1, 10, 2, 30, 0, time.UTC),
	} {
		s, err := sched.Parse()
		if err != nil || !s.Next(start).Equal(next) {
			t.Errorf("Schedule(%q): next %v, want %v (%v)", sched, s.Next(start), next, err)
		}
	}
}

func TestEffectiveServerID(t *testing.T) {
	a := Default()
	a.State.Path = "/var/lib/feedcdc/a.db"
	b := Default()
	b.State.Path = "/var/lib/feedcdc/b.db"
	ida, idb := a.EffectiveServerID(), b.EffectiveServerID()
	if ida < 1_000_000_000 || idb < 1_000_000_000 || ida == idb || ida != a.EffectiveServerID() {
		t.Fatalf("derived ids %d %d", ida, idb)
	}
	a.Source.ServerID = 7
	if a.EffectiveServerID() != 7 {
		t.Fatal("explicit server_id ignored")
	}
}

// TestLoadFileErrors: a missing file names the path and the remedy; Load
// records the file in the config and in problems.
func TestLoadFileErrors(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"), nil)
	if err == nil || !strings.Contains(err.Error(), "nope.yaml") || !strings.Contains(err.Error(), "--config") {
		t.Fatalf("missing file: %v", err)
	}
	p := filepath.Join(t.TempDir(), "feedcdc.yaml")
	if err := os.WriteFile(p, []byte("source: {host: db, user: cdc, prot: 1}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Load(p, nil)
	var ve *ValidationError
	if !errors.As(err, &ve) || !strings.Contains(err.Error(), p+":1: source.prot: unknown key \"prot\"; did you mean \"port\"") {
		t.Fatalf("got %v", err)
	}
}

// TestMergeKeys: YAML anchors and merge keys share settings between feeds;
// keys inside merged sections are still checked.
func TestMergeKeys(t *testing.T) {
	y := `source: {host: db, user: cdc}
feeds:
  products: &feed
    mode: legacy
    legacy_schedule: 1m
  variants:
    <<: *feed
    batch_size: 50
  productOverrides: {enabled: false}
`
	cfg := mustLoad(t, y)
	v := cfg.Feeds.Variants
	if v.Mode != "legacy" || v.LegacySchedule != "1m" || v.BatchSize != 50 || cfg.Feeds.Products.Mode != "legacy" {
		t.Fatalf("merge not applied:\n%s", cfg.Redacted())
	}
	if got := cfg.EnabledFeeds(); !reflect.DeepEqual(got, []string{"products", "productAttributes", "variants"}) {
		t.Fatalf("EnabledFeeds = %v", got)
	}
	_, err := LoadBytes([]byte(`source: {host: db, user: cdc}
feeds:
  products: &feed
    mdoe: legacy
  variants:
    <<: *feed
`), "config.yaml", nil)
	if err == nil || !strings.Contains(err.Error(), `config.yaml:4: feeds.products.mdoe: unknown key "mdoe"; did you mean "mode"`) {
		t.Fatalf("got %v", err)
	}
}

// TestUnknownEnvOfSectionIsError: a FEEDCDC_<SECTION>_<KEY> variable that
// names no key is an error with the closest key, as the same typo in the
// file is; variables of other tools (FEEDCDC_CHAOS_*, *_TEST_*, *_BENCH_*)
// stay warnings or are ignored.
func TestUnknownEnvOfSectionIsError(t *testing.T) {
	_, err := LoadBytes([]byte(base), "config.yaml", []string{"FEEDCDC_SOURCE_HEARBEAT=5s"})
	var ve *ValidationError
	if !errors.As(err, &ve) || len(ve.Problems) != 1 || ve.Problems[0].Env != "FEEDCDC_SOURCE_HEARBEAT" ||
		!strings.Contains(err.Error(), "did you mean FEEDCDC_SOURCE_HEARTBEAT?") {
		t.Fatalf("got %v", err)
	}
	_, err = LoadBytes([]byte(base), "config.yaml", []string{"FEEDCDC_SINKS_MAIN_KAFKA_BROKERS=k:9092"})
	if !errors.As(err, &ve) || !strings.Contains(err.Error(), "$FEEDCDC_SINKS_MAIN_KAFKA_BROKERS") || !strings.Contains(err.Error(), "sinks defined in the file") {
		t.Fatalf("override of an undefined sink: %v", err)
	}
	cfg := mustLoad(t, base, "FEEDCDC_CHAOS_SEED=1", "FEEDCDC_FEEDS_BENCH_PROFILE=small", "FEEDCDC_STATE_BENCH_LARGE=1",
		"FEEDCDC_DASHBOARD_TOKEN=tok", "FEEDCDC_SOURCE_TEST_X=1", "FEEDCDC_NAME_X=1")
	if len(cfg.Warnings) != 2 || !strings.Contains(cfg.Warnings[0], "FEEDCDC_CHAOS_SEED") || !strings.Contains(cfg.Warnings[1], "FEEDCDC_NAME_X") || cfg.Dashboard.Token.Value() != "tok" {
		t.Fatalf("warnings %q", cfg.Warnings)
	}
}

func TestUnknownEnvOfSinkSuggestsItsKeys(t *testing.T) {
	_, err := LoadBytes([]byte(base+"sinks:\n  main:\n    kafka: {brokers: [k:1]}\n"), "config.yaml", []string{"FEEDCDC_SINKS_MAIN_KAFKA_BROKER=k:9092"})
	if err == nil || !strings.Contains(err.Error(), "did you mean FEEDCDC_SINKS_MAIN_KAFKA_BROKERS?") {
		t.Fatalf("got %v", err)
	}
}

// TestEnvDecodedLikeFile: an override goes through the file's decoder, so
// a value out of the field's range is reported rather than wrapped around.
func TestEnvDecodedLikeFile(t *testing.T) {
	for env, want := range map[string]string{
		"FEEDCDC_SOURCE_SERVER_ID=99999999999": "$FEEDCDC_SOURCE_SERVER_ID: source.server_id: 99999999999 is out of range; allowed: 0..4294967295",
		"FEEDCDC_SOURCE_PORT=":                 "$FEEDCDC_SOURCE_PORT: source.port: must be an integer",
		"FEEDCDC_RAW_ENABLED=maybe":            "$FEEDCDC_RAW_ENABLED: raw.enabled: must be true or false",
	} {
		if _, err := LoadBytes([]byte(base), "config.yaml", []string{env}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want %q", env, err, want)
		}
	}
	if cfg := mustLoad(t, base, "FEEDCDC_RAW_ENABLED=1", "FEEDCDC_DASHBOARD_ENABLED=f"); !cfg.Raw.Enabled || cfg.Dashboard.Enabled {
		t.Fatal("booleans 1 and f from the environment not applied")
	}
}

package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const base = "source:\n  host: db\n  user: cdc\n"

// TestInvalidConfigs: each broken configuration fails to load with one
// problem that names the key (and, where it has one, the line) and says how
// to fix it.
func TestInvalidConfigs(t *testing.T) {
	dir := t.TempDir()
	existing := filepath.Join(dir, "client.pem")
	if err := os.WriteFile(existing, []byte("pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	kafka := "sinks:\n  main:\n    type: kafka\n    kafka:\n      brokers: [127.0.0.1:9092]\n"
	cases := []struct {
		name string
		yaml string
		env  []string
		want []string // all must appear in one problem
	}{
		{"unknown producer setting", kafka + "      producer: {linger.msx: \"5\"}\n" + base,
			nil, []string{"sinks.main.kafka.producer.linger.msx", `unknown producer setting "linger.msx" (did you mean "linger.ms"?)`}},
		{"unsupported producer setting", kafka + "      producer: {enable.idempotence: \"true\"}\n" + base,
			nil, []string{"sinks.main.kafka.producer.enable.idempotence", "not supported", "no idempotent producer"}},
		{"bad producer value", kafka + "      producer: {compression.type: brotli}\n" + base,
			nil, []string{"sinks.main.kafka.producer.compression.type", `"brotli" is not one of none, gzip`}},
		{"unknown raw mask", base + "raw:\n  enabled: true\n  mask_columns: {shop.c.email: sha1}\n",
			nil, []string{"raw.mask_columns.shop.c.email", `"sha1" is not a mask; use hash, mask:N or truncate:N`}},
		{"hash mask without salt", base + "raw:\n  enabled: true\n  mask_columns: {shop.c.email: hash}\n",
			nil, []string{"raw.hash_salt", "FEEDCDC_RAW_HASH_SALT"}},
		{"mask column not db.table.column", base + "raw:\n  enabled: true\n  mask_columns: {email: hash}\n",
			nil, []string{"raw.mask_columns.email", "not a db.table.column pattern"}},
		{"key_columns not db.table", base + "raw:\n  enabled: true\n  key_columns: {log: a}\n",
			nil, []string{"raw.key_columns.log", "not a db.table pattern"}},
		{"exclude column not db.table.column", base + "raw:\n  enabled: true\n  exclude_columns: [shop.c]\n",
			nil, []string{"raw.exclude_columns", "not a db.table.column pattern"}},
		{"typo in key", base + "  heartbeet: 5s\n",
			nil, []string{"config.yaml:4:", "source.heartbeet", `did you mean "heartbeat"`}},
		{"typo in section", base + "sink:\n  main: {type: file}\n",
			nil, []string{"config.yaml:4:", "sink:", `did you mean "sinks"`}},
		{"misplaced key", base + "  brokers: [a:1]\n",
			nil, []string{"source.brokers", "belongs at ha.brokers or sinks.<name>.kafka.brokers"}},
		{"ha without brokers", base + "ha:\n  enabled: true\n",
			nil, []string{"ha.brokers", "ha.enabled is true", "list the Kafka bootstrap brokers"}},
		{"ha broker not host:port", base + "ha:\n  enabled: true\n  brokers: [kafka1]\n",
			nil, []string{"ha.brokers", `"kafka1" is not host:port`}},
		{"wrong case", base + "feeds:\n  productattributes: {mode: legacy}\n",
			nil, []string{"config.yaml:5:", "feeds.productattributes", `case-sensitive; write "productAttributes"`}},
		{"unknown key, nothing close", base + "  colour: blue\n",
			nil, []string{"source.colour", "valid keys under source are: host, port"}},
		{"key set twice", base + "  port: 1\n  port: 2\n",
			nil, []string{"config.yaml:5:", "source.port", "set twice (also on line 4); keep one"}},
		{"integer expected", base + "  port: abc\n",
			nil, []string{"config.yaml:4:", "source.port", "must be an integer", "port: 3306"}},
		{"integer out of range", base + "  port: 70000\n",
			nil, []string{"config.yaml:4:", "source.port", "70000 is out of range; allowed: 1..65535"}},
		{"negative unsigned", base + "  server_id: -1\n",
			nil, []string{"source.server_id", "out of range", "0..4294967295"}},
		{"boolean expected", base + "raw:\n  enabled: yes\n",
			nil, []string{"config.yaml:5:", "raw.enabled", "must be true or false"}},
		{"duration without unit", base + "  heartbeat: 5\n",
			nil, []string{"source.heartbeat", "has no unit; write e.g. 5s"}},
		{"not a duration", base + "  read_timeout: soon\n",
			nil, []string{"source.read_timeout", "not a duration", "5m"}},
		{"duration out of range", base + "  heartbeat: 10ms\n",
			nil, []string{"source.heartbeat", "allowed: 100ms..1h"}},
		{"section expected", "source: [db]\n",
			nil, []string{"config.yaml:1:", "source", "must be a section"}},
		{"list expected", base + "  databases: {a: b}\n",
			nil, []string{"source.databases", "must be a list of strings like [a, b]"}},
		{"compression enum", kafka + "      compression: zsdt\n" + base,
			nil, []string{"config.yaml:6:", `sinks.main.kafka.compression: "zsdt" is not one of none, gzip, snappy, lz4, zstd`, `did you mean "zstd"`}},
		{"acks enum", kafka + "      acks: 2\n" + base,
			nil, []string{"sinks.main.kafka.acks", `"2" is not one of all, one, none`}},
		{"mode enum", base + "feeds:\n  products:\n    mode: legasy\n",
			nil, []string{"config.yaml:6:", "feeds.products.mode", `did you mean "legacy"`}},
		{"disabled feed still checked", base + "feeds:\n  productOverrides:\n    enabled: false\n    mode: legasy\n",
			nil, []string{"config.yaml:7:", "feeds.productOverrides.mode", `did you mean "legacy"`}},
		{"log format enum", base + "log:\n  format: jsno\n",
			nil, []string{"log.format", `did you mean "json"`}},
		{"literal source password", base + "  password: hunter2\n",
			nil, []string{"config.yaml:4:", "source.password", "literal secret", "password_env", "FEEDCDC_SOURCE_PASSWORD"}},
		{"literal sasl password", kafka + "      sasl: {mechanism: PLAIN, user: u, password: p}\n" + base,
			nil, []string{"sinks.main.kafka.sasl.password", "literal secret", "FEEDCDC_SINKS_MAIN_KAFKA_SASL_PASSWORD"}},
		{"literal api key", "sinks:\n  svc:\n    http:\n      base_url: https://x.example\n      api_key: abc\n" + base,
			nil, []string{"config.yaml:5:", "sinks.svc.http.api_key", "literal secret", "api_key_env"}},
		{"literal dashboard token", base + "dashboard:\n  token: t0k3n\n",
			nil, []string{"dashboard.token", "literal secret", "token_file"}},
		{"credential in headers", "sinks:\n  svc:\n    http:\n      base_url: https://x.example\n      headers: {Authorization: Bearer x}\n" + base,
			nil, []string{"sinks.svc.http.headers.Authorization", "api_key_env", "api_key_headers"}},
		{"route to undefined sink", kafka + base + "feeds:\n  products:\n    sinks: [mian]\n",
			nil, []string{"feeds.products.sinks", `sink "mian" is not defined`, `did you mean "main"`}},
		{"raw to http sink", "sinks:\n  svc:\n    http: {base_url: https://x.example}\n" + base + "raw:\n  enabled: true\n  sinks: [svc]\n",
			nil, []string{"raw.sinks", "http sink", "kafka or file sinks"}},
		{"tls cert without key", base + "  tls:\n    mode: verify-ca\n    cert_file: " + existing + "\n",
			nil, []string{"source.tls.key_file", "cert_file is set without key_file", "set key_file"}},
		{"tls file missing", base + "  tls:\n    mode: verify-ca\n    ca_file: /nonexistent/ca.pem\n",
			nil, []string{"config.yaml:6:", "source.tls.ca_file", "no such file", "fix the path"}},
		{"tls files with tls disabled", base + "  tls:\n    mode: disabled\n    ca_file: " + existing + "\n",
			nil, []string{"source.tls.mode", "set mode: verify-identity"}},
		{"dashboard open without token", base + "dashboard:\n  listen: 0.0.0.0:8484\n",
			nil, []string{"config.yaml:5:", "dashboard.listen", "no token", "token_env", "127.0.0.1"}},
		{"items token without token", base + "dashboard:\n  items_token: always\n",
			nil, []string{"dashboard.items_token", "always needs a token", "token_env"}},
		{"dashboard and telemetry clash", base + "dashboard:\n  listen: 127.0.0.1:9464\n",
			nil, []string{"dashboard.listen", "also telemetry.listen", "own port"}},
		{"listen address", base + "telemetry:\n  listen: \"9464\"\n",
			nil, []string{"telemetry.listen", "not a listen address", "127.0.0.1:9464"}},
		{"read_timeout not above heartbeat", base + "  heartbeat: 30s\n  read_timeout: 10s\n",
			nil, []string{"config.yaml:5:", "source.read_timeout", "longer than source.heartbeat", "at least 1m30s"}},
		{"source retry max below initial", base + "  retry:\n    initial: 10s\n    max: 1s\n",
			nil, []string{"source.retry.max", "shorter than source.retry.initial", "at least 10s"}},
		{"source retry unknown key", base + "  retry:\n    max_attempts: 3\n",
			nil, []string{"source.retry.max_attempts"}},
		{"backoff base above max", base + "feeds:\n  variants:\n    backoff_base: 2h\n    backoff_max: 1h\n",
			nil, []string{"config.yaml:6:", "feeds.variants.backoff_base", "lower backoff_base or raise backoff_max"}},
		{"bad schedule", base + "feeds:\n  products:\n    retry_schedule: every five\n",
			nil, []string{"config.yaml:6:", "feeds.products.retry_schedule", `"every five" is not a valid cron expression`, "or a duration like 5m"}},
		{"bad cron", base + "feeds:\n  products:\n    mode: legacy\n    legacy_schedule: \"*/5 * * *\"\n",
			nil, []string{"config.yaml:7:", "feeds.products.legacy_schedule", "not a valid cron expression", "*/5 * * * *"}},
		{"schedule too short", base + "feeds:\n  products:\n    legacy_schedule: 500ms\n",
			nil, []string{"feeds.products.legacy_schedule", "minimum of 1s"}},
		{"start position", base + "  start_position: mysql-bin\n",
			nil, []string{"source.start_position", "<file>:<pos>", "mysql-bin.000003:4"}},
		{"table pattern without db", base + "  include_tables: [catalog_*]\n",
			nil, []string{"source.include_tables", `"catalog_*" must be db.table`}},
		{"table pattern with a class", base + "  exclude_tables: [\"magento.catalog_[ab]\"]\n",
			nil, []string{"source.exclude_tables", "only use the wildcards * and ?"}},
		{"include outside databases", base + "  databases: [magento]\n  include_tables: [shop.*]\n",
			nil, []string{"source.include_tables", "no pattern names a database", "magento.*"}},
		{"topic config cleanup.policy", kafka + "      topic_configs: {cleanup.policy: delete}\n" + base,
			nil, []string{"config.yaml:6:", "sinks.main.kafka.topic_configs.cleanup.policy", "set by compact"}},
		{"topic config name", kafka + "      topic_configs: {Retention: \"1\"}\n" + base,
			nil, []string{"sinks.main.kafka.topic_configs.Retention", "not a Kafka topic config name"}},
		{"broker not host:port", "sinks:\n  main:\n    kafka: {brokers: [kafka1]}\n" + base,
			nil, []string{"sinks.main.kafka.brokers", `"kafka1" is not host:port`}},
		{"brokers missing", "sinks:\n  main:\n    type: kafka\n    kafka: {acks: all}\n" + base,
			nil, []string{"sinks.main.kafka.brokers", "is required", "[kafka-1:9092]"}},
		{"topic placeholder", kafka + "      topic_template: \"{prefix}.{feeed}\"\n" + base,
			nil, []string{"sinks.main.kafka.topic_template", "unknown placeholder {feeed}", "did you mean {feed}"}},
		{"batch bytes below max message", kafka + "      batch_bytes: 64KiB\n" + base,
			nil, []string{"sinks.main.kafka.batch_bytes", "raise batch_bytes to at least"}},
		{"sink without type", "sinks:\n  main: {}\n" + base,
			nil, []string{"config.yaml:2:", "sinks.main.type", "add type: kafka"}},
		{"sink section of another type", kafka + "    http: {base_url: https://x.example}\n" + base,
			nil, []string{"config.yaml:6:", "sinks.main.http", "remove the http section or change type to http"}},
		{"sink type enum", "sinks:\n  main:\n    type: kafak\n    kafka: {brokers: [a:1]}\n" + base,
			nil, []string{"sinks.main.type", `did you mean "kafka"`}},
		{"sink name case", "sinks:\n  Main: {type: file}\n" + base,
			nil, []string{"config.yaml:2:", "sinks.Main", `rename it to "main"`}},
		{"no sinks", "sinks: {}\n" + base,
			nil, []string{"sinks", "no sinks are defined", "remove the empty sinks"}},
		{"sasl without user", kafka + "      sasl: {mechanism: SCRAM-SHA-512, password_env: KPW}\n" + base,
			[]string{"KPW=x"}, []string{"sinks.main.kafka.sasl.user", "is required with sasl.mechanism"}},
		{"sasl credentials without mechanism", kafka + "      sasl: {user: u}\n" + base,
			nil, []string{"sinks.main.kafka.sasl.mechanism", "set mechanism: SCRAM-SHA-512"}},
		{"sasl mechanism enum", kafka + "      sasl: {mechanism: SCRAM-SHA-1, user: u}\n" + base,
			nil, []string{"sinks.main.kafka.sasl.mechanism", `"SCRAM-SHA-1" is not one of "", PLAIN, SCRAM-SHA-256, SCRAM-SHA-512`}},
		{"http base_url", "sinks:\n  svc:\n    http: {base_url: feeds.example.com}\n" + base,
			nil, []string{"sinks.svc.http.base_url", "not an http(s) URL"}},
		{"http route for unknown feed", "sinks:\n  svc:\n    http:\n      base_url: https://x.example\n      routes: {product: p}\n" + base,
			nil, []string{"config.yaml:5:", "sinks.svc.http.routes.product", `did you mean "products"`}},
		{"thread count above pool", base + "resync:\n  thread_count: 8\n",
			nil, []string{"resync.thread_count", "raise source.pool_size to at least 8"}},
		{"build threads above pool", base + "feeds:\n  build_threads: 6\n",
			nil, []string{"feeds.build_threads", "raise source.pool_size to at least 6"}},
		{"build threads zero", base + "feeds:\n  build_threads: 0\n",
			nil, []string{"feeds.build_threads"}},
		{"traces without otlp", base + "telemetry:\n  traces: true\n",
			nil, []string{"telemetry.traces", "set otlp_endpoint"}},
		{"missing user", "source:\n  host: db\n",
			nil, []string{"source.user", "is required", "REPLICATION SLAVE"}},
		{"empty file", "",
			nil, []string{"source.user", "is required"}},
		{"password file and env", base + "  password_file: /x\n  password_env: Y\n",
			nil, []string{"source.password_file", "keep one"}},
		{"password env unset", base + "  password_env: NO_SUCH_VAR_FEEDCDC\n",
			nil, []string{"config.yaml:4:", "source.password_env", "NO_SUCH_VAR_FEEDCDC is not set", "export"}},
		{"password file missing", base + "  password_file: /nonexistent/pw\n",
			nil, []string{"config.yaml:4:", "source.password_file", "cannot read the secret", "create the file or fix the path"}},
		{"env override malformed", base,
			[]string{"FEEDCDC_SOURCE_PORT=x"}, []string{"$FEEDCDC_SOURCE_PORT", "source.port", "must be an integer"}},
		{"env override out of range", base,
			[]string{"FEEDCDC_SOURCE_POOL_SIZE=0"}, []string{"$FEEDCDC_SOURCE_POOL_SIZE", "source.pool_size", "allowed: 1..256"}},
		{"yaml syntax", "source:\n  host: db\n user: x\n",
			nil, []string{"config.yaml:2:", "not valid YAML: did not find expected key", "indent with spaces"}},
		{"nothing enabled", base + "feeds:\n  products: {enabled: false}\n  productAttributes: {enabled: false}\n  variants: {enabled: false}\n  productOverrides: {enabled: false}\n",
			nil, []string{"feeds", "nothing to export", "raw.enabled: true"}},
		{"max inflight below message size", kafka + "      max_message_bytes: 32MiB\n      batch_bytes: 32MiB\n" + base + "backpressure:\n  max_inflight_bytes: 16MiB\n",
			nil, []string{"backpressure.max_inflight_bytes", "raise max_inflight_bytes"}},
		{"connector name", "name: \"my connector\"\n" + base,
			nil, []string{"config.yaml:1:", "name", "magento-prod"}},
	}
	// Cases where a second, independent problem is expected.
	multiOK := map[string]bool{
		"section expected": true, // the dropped source section also lacks the user
	}
	if len(cases) < 30 {
		t.Fatalf("only %d cases", len(cases))
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := LoadBytes([]byte(tc.yaml), "config.yaml", tc.env)
			if err == nil {
				t.Fatalf("loaded without error:\n%s", cfg.Redacted())
			}
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("error is %T, not *ValidationError: %v", err, err)
			}
			if len(ve.Problems) != 1 && !multiOK[tc.name] {
				t.Errorf("want exactly one problem, got %d:\n%v", len(ve.Problems), err)
			}
			for _, p := range ve.Problems {
				s := p.String()
				ok := true
				for _, w := range tc.want {
					if !strings.Contains(s, w) {
						ok = false
						break
					}
				}
				if ok {
					return
				}
			}
			t.Fatalf("no problem contains all of %q; got:\n%v", tc.want, err)
		})
	}
}

// TestAllProblemsAtOnce: one load reports every independent problem, in
// line order, in one error.
func TestAllProblemsAtOnce(t *testing.T) {
	y := `source:
  host: db
  user: cdc
  port: abc
  heartbeet: 5s
  password: secret
sinks:
  main:
    kafka:
      brokers: [k:9092]
      compression: zsdt
feeds:
  products:
    sinks: [mian]
    mode: legasy
dashboard:
  listen: 0.0.0.0:8484
`
	_, err := LoadBytes([]byte(y), "config.yaml", []string{"FEEDCDC_LOG_LEVEL=loud"})
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("want *ValidationError, got %v", err)
	}
	wantLines := []int{4, 5, 6, 11, 14, 15, 17}
	var got []int
	for _, p := range ve.Problems {
		if p.Env == "" {
			got = append(got, p.Line)
		}
	}
	if len(ve.Problems) != len(wantLines)+1 || fmt.Sprint(got) != fmt.Sprint(wantLines) {
		t.Fatalf("want problems on lines %v plus one from $FEEDCDC_LOG_LEVEL, got:\n%v", wantLines, err)
	}
	last := ve.Problems[len(ve.Problems)-1]
	if last.Env != "FEEDCDC_LOG_LEVEL" || !strings.Contains(last.String(), `$FEEDCDC_LOG_LEVEL: log.level: "loud" is not one of debug, info, warn, error`) {
		t.Fatalf("env problem: %v", last)
	}
	if !strings.HasPrefix(err.Error(), "invalid config.yaml: 8 problems:\n  config.yaml:4: source.port:") {
		t.Fatalf("error text:\n%v", err)
	}
}

// TestValidateChecksMapKeys: the keys of routes, headers, topic_configs,
// producer settings and column maps are checked by Validate, so a
// configuration built in code gets the same problems as a loaded one.
func TestValidateChecksMapKeys(t *testing.T) {
	cfg := Default()
	cfg.Source.User = "cdc"
	h := DefaultHTTPSink()
	h.BaseURL, h.Headers, h.Routes = "https://x.example", map[string]string{"Authorization": "Bearer x"}, map[string]string{"product": "p"}
	k := DefaultKafkaSink()
	k.Brokers, k.Producer, k.TopicConfigs = []string{"k:9092"}, map[string]string{"linger.msx": "5"}, map[string]string{"cleanup.policy": "delete"}
	cfg.Sinks = map[string]*Sink{"svc": {Type: "http", HTTP: h}, "main": {Type: "kafka", Kafka: k}}
	cfg.Raw.MaskColumns = map[string]string{"email": "hash"}
	var ve *ValidationError
	if err := cfg.Validate(); !errors.As(err, &ve) {
		t.Fatalf("Validate = %v", err)
	}
	want := []string{
		`raw.mask_columns.email: "email" is not a db.table.column pattern`,
		`sinks.main.kafka.topic_configs.cleanup.policy: cleanup.policy is set by compact`,
		`sinks.main.kafka.producer.linger.msx: unknown producer setting "linger.msx" (did you mean "linger.ms"?)`,
		`sinks.svc.http.routes.product: "product" is not a feed; did you mean "products"?`,
		`sinks.svc.http.headers.Authorization: header "Authorization" carries a credential`,
	}
	if len(ve.Problems) != len(want) {
		t.Errorf("want %d problems, got:\n%v", len(want), ve)
	}
	for _, w := range want {
		if !strings.Contains(ve.Error(), w) {
			t.Errorf("no problem %q in:\n%v", w, ve)
		}
	}
}

package config

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net"
	"net/url"
	"os"
	"path"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/feedcdc/feedcdc/change"
)

// Problem is one thing wrong with a configuration.
type Problem struct {
	Path    string // key path, e.g. "sinks.main.kafka.compression" ("" for the whole file)
	File    string // configuration file name ("" when validating a Config built in code)
	Line    int    // line in File of the offending key, 0 if unknown
	Env     string // the FEEDCDC_* variable that supplied the value, if it came from the environment
	Message string // what is wrong and how to fix it
}

func (p Problem) String() string {
	s := ""
	switch {
	case p.Env != "":
		s = "$" + p.Env + ": "
	case p.File != "" && p.Line > 0:
		s = fmt.Sprintf("%s:%d: ", p.File, p.Line)
	case p.File != "":
		s = p.File + ": "
	}
	if p.Path != "" {
		s += p.Path + ": "
	}
	return s + p.Message
}

// ValidationError lists every problem found in a configuration.
type ValidationError struct {
	File     string
	Problems []Problem
}

func (e *ValidationError) Error() string {
	name := cmp.Or(e.File, "configuration")
	if len(e.Problems) == 1 {
		return fmt.Sprintf("invalid %s: %s", name, e.Problems[0])
	}
	s := fmt.Sprintf("invalid %s: %d problems:", name, len(e.Problems))
	for _, p := range e.Problems {
		s += "\n  " + p.String()
	}
	return s
}

// Validate checks a configuration built in code (e.g. Default() with the
// source user set). Secrets are not resolved: set them directly.
func (c *Config) Validate() error {
	if ps := validate(c); len(ps) > 0 {
		return &ValidationError{Problems: ps}
	}
	return nil
}

type checker struct {
	c  *Config
	ps []Problem
}

func (k *checker) add(path, format string, args ...any) {
	k.ps = append(k.ps, Problem{Path: path, Message: fmt.Sprintf(format, args...)})
}

// when adds the problem if bad holds (its arguments are evaluated anyway).
func (k *checker) when(bad bool, path, format string, args ...any) {
	if bad {
		k.add(path, format, args...)
	}
}

func validate(c *Config) []Problem {
	k := &checker{c: c}
	k.tags()
	k.source()
	k.raw()
	k.sinks()
	k.rest()
	return k.ps
}

// tags applies the required/enum/min/max/pattern/needs/ref tags, the
// schedule syntax and, by the keys tag, the checks of map entries.
func (k *checker) tags() {
	eachKey(reflect.ValueOf(k.c), nil, func(parent reflect.Value, f field, p []string) {
		fv, ps := parent.Field(f.Index), join(p)
		if hint, ok := f.Tag.Lookup("required"); ok && fv.Len() == 0 {
			k.add(ps, "is required; %s", hint)
			return
		}
		if enum, val := f.enum(), fv.String(); enum != nil && !slices.Contains(enum, val) {
			switch c := closest(val, enum); {
			case val == "" && len(p) == 3 && p[0] == "sinks":
				k.add(ps, "sink %q has no type; add type: kafka, type: http or type: file with its section", p[1])
			case c != "":
				k.add(ps, "%q is not %s (did you mean %q?)", val, allowed(f), c)
			default:
				k.add(ps, "%q is not %s", val, allowed(f))
			}
		}
		k.rangeCheck(ps, fv, f)
		switch s := fv.String(); f.Tag.Get("pattern") {
		case "listen":
			_, port, err := net.SplitHostPort(s)
			k.when(s != "" && (err != nil || !validPort(port, true)), ps, "%q is not a listen address; write host:port, e.g. 127.0.0.1:%s", s, map[bool]string{true: "8484", false: "9464"}[strings.HasPrefix(ps, "dashboard")])
		case "name":
			k.when(!nameRE.MatchString(s), ps, "%q must be letters, digits, '.', '_' or '-' (starting with a letter or digit), e.g. magento-prod", s)
		case "file":
			k.file(ps, f.Name, s)
		}
		if g, ok := fieldByName(parent.Type(), f.Tag.Get("needs")); ok && fv.String() != "" && parent.Field(g.Index).String() == "" {
			k.add(join(with(p[:len(p)-1], g.Name)), "%s is set without %s; set %s or remove %s", f.Name, g.Name, g.Name, f.Name)
		}
		if s := fv.String(); f.Kind == kSchedule && (s != "" || f.Tag.Get("default") != "") {
			if _, err := Schedule(s).Parse(); err != nil {
				k.add(ps, "%v%s", err, map[bool]string{true: " (or leave it empty for never)"}[f.Tag.Get("default") == ""])
			}
		}
		if f.Tag.Get("ref") == "sink" {
			for _, name := range fv.Interface().([]string) {
				_, ok := k.c.Sinks[name]
				k.when(!ok, ps, "sink %q is not defined under sinks; %s", name, k.sinkHint(name))
			}
		}
		if check := entryChecks[f.Keys]; check != nil {
			m := fv.Interface().(map[string]string)
			for _, key := range slices.Sorted(maps.Keys(m)) {
				msg := check(key, m[key])
				k.when(msg != "", ps+"."+key, "%s", msg)
			}
		}
	})
}

// file checks that a file key names an existing file.
func (k *checker) file(path, key, name string) {
	if name == "" {
		return
	}
	st, err := os.Stat(name)
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	if err != nil {
		k.add(path, "cannot use %s: %v; fix the path", name, err)
	} else {
		k.when(st.IsDir(), path, "%s is a directory; point %s at a PEM file", name, key)
	}
}

var (
	nameRE        = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)
	headerRE      = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9-]*$`)
	sinkNameRE    = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	topicConfigRE = regexp.MustCompile(`^[a-z][a-z0-9]*(\.[a-z0-9]+)*$`)
	maskRE        = regexp.MustCompile(`^(mask|truncate):[0-9]{1,7}$`)
	placeholderRE = regexp.MustCompile(`\{[^{}]*\}`)
	topicRE       = regexp.MustCompile(`^[A-Za-z0-9._-]*$`)
)

func validPort(p string, allowZero bool) bool {
	n, err := strconv.Atoi(p)
	return err == nil && n <= 65535 && (n > 0 || (allowZero && n == 0))
}

// rangeCheck applies the min and max tags, parsed like values of the field.
func (k *checker) rangeCheck(ps string, fv reflect.Value, f field) {
	num := func(v reflect.Value) float64 {
		if v.Kind() == reflect.Uint32 {
			return float64(v.Uint())
		}
		return float64(v.Int())
	}
	for i, bound := range []string{f.Tag.Get("min"), f.Tag.Get("max")} {
		b := reflect.New(f.Type).Elem()
		if bound != "" && setScalar(scalarNode(bound), b, f) == nil && (i == 0 && num(fv) < num(b) || i == 1 && num(fv) > num(b)) {
			k.add(ps, "%s is out of range; allowed: %s", formatValue(fv), allowed(f))
			return
		}
	}
}

func (k *checker) sinkHint(name string) string {
	names := k.c.sinkNames(func(*Sink) bool { return true })
	switch c := closest(name, names); {
	case c != "":
		return fmt.Sprintf("did you mean %q?", c)
	case len(names) == 0:
		return "define it under sinks"
	}
	return fmt.Sprintf("defined sinks: %s; define %q under sinks or remove it from the list", strings.Join(names, ", "), name)
}

func (k *checker) source() {
	s := &k.c.Source
	k.when(s.Heartbeat > 0 && s.ReadTimeout > 0 && s.ReadTimeout <= s.Heartbeat, "source.read_timeout", "%s must be longer than source.heartbeat (%s), or every quiet period looks like a dead connection; set it to at least %s", s.ReadTimeout, s.Heartbeat, 3*s.Heartbeat)
	k.when(s.Retry.Max > 0 && s.Retry.Initial > s.Retry.Max, "source.retry.max", "%s is shorter than source.retry.initial (%s); set it to at least %s", s.Retry.Max, s.Retry.Initial, s.Retry.Initial)
	k.when(s.Retry.MaxElapsed > 0 && s.Retry.MaxElapsed < s.Retry.Initial, "source.retry.max_elapsed", "%s is shorter than source.retry.initial (%s), so a failing source is never retried; set 0 (retry forever) or at least %s", s.Retry.MaxElapsed, s.Retry.Initial, 10*s.Retry.Initial)
	k.when(s.TLS.Mode == "disabled" && (s.TLS.CAFile != "" || s.TLS.CertFile != ""), "source.tls.mode", "is disabled but ca_file/cert_file are set; set mode: verify-identity (or verify-ca, required) to use them, or remove the files")
	if _, err := change.ParseStartPosition(s.StartPosition); err != nil {
		k.add("source.start_position", "%v", err)
	}
	tables := func(key string, pats []string) {
		for _, pat := range pats {
			db, tbl, _ := strings.Cut(pat, ".")
			if strings.Count(pat, ".") != 1 || db == "" || tbl == "" {
				k.add("source."+key, "pattern %q must be db.table (wildcards * and ? allowed, e.g. magento.catalog_product_*, *.store)", pat)
			} else {
				k.when(strings.ContainsAny(pat, "[]\\ "), "source."+key, "pattern %q may only use the wildcards * and ?, e.g. magento.catalog_*", pat)
			}
		}
	}
	tables("include_tables", s.IncludeTables)
	tables("exclude_tables", s.ExcludeTables)
	if len(s.Databases) > 0 && len(s.IncludeTables) > 0 {
		k.when(!slices.ContainsFunc(s.IncludeTables, func(p string) bool {
			pd, _, _ := strings.Cut(strings.ToLower(p), ".")
			return slices.ContainsFunc(s.Databases, func(d string) bool {
				ok, _ := path.Match(pd, strings.ToLower(d)) // the patterns' * and ?; names hold no '/'
				return ok
			})
		}), "source.include_tables", "no pattern names a database of source.databases %v, so no table would be captured; write patterns like %s.*", s.Databases, s.Databases[0])
	}
	for _, db := range s.Databases {
		k.when(strings.TrimSpace(db) == "" || strings.ContainsAny(db, ".*?"), "source.databases", "%q is not a database name; list plain names like [magento] (use include_tables for patterns)", db)
	}
}

// entryChecks check one entry of a map, by its keys tag: what is wrong with
// the key or its value ("" if nothing).
var entryChecks = map[string]func(key, val string) string{
	"feed": func(feed, route string) string {
		switch c := closest(feed, FeedNames); {
		case !slices.Contains(FeedNames, feed) && c != "":
			return fmt.Sprintf("%q is not a feed; did you mean %q?", feed, c)
		case !slices.Contains(FeedNames, feed):
			return fmt.Sprintf("%q is not a feed; valid feeds: %s", feed, strings.Join(FeedNames, ", "))
		case strings.TrimSpace(route) == "" || strings.ContainsAny(route, " ?#"):
			return fmt.Sprintf("route %q must be a non-empty URL path segment like %q", route, feed)
		}
		return ""
	},
	"header": func(h, _ string) string {
		switch {
		case !headerRE.MatchString(h):
			return fmt.Sprintf("%q is not a valid HTTP header name; use letters, digits and - only", h)
		case slices.ContainsFunc([]string{"authorization", "api-key", "apikey", "token", "secret", "password", "signature", "cookie"}, func(w string) bool { return strings.Contains(strings.ToLower(h), w) }):
			return fmt.Sprintf("header %q carries a credential; literal secrets are not allowed in the file: set api_key_env (or api_key_file) and add %q to api_key_headers", h, strings.ToLower(h))
		}
		return ""
	},
	"config": func(c, _ string) string {
		switch {
		case c == "cleanup.policy":
			return "cleanup.policy is set by compact (true: compact for entity feed topics); remove it from topic_configs"
		case !topicConfigRE.MatchString(c):
			return fmt.Sprintf("%q is not a Kafka topic config name (like retention.ms or min.insync.replicas)", c)
		}
		return ""
	},
	"producer": producerProblem,
	"column": func(col, mask string) string {
		switch mask = strings.TrimSpace(mask); {
		case strings.Count(col, ".") != 2:
			return fmt.Sprintf("%q is not a db.table.column pattern (e.g. shop.customer.email or *.*.email)", col)
		case mask != "hash" && !maskRE.MatchString(mask):
			return fmt.Sprintf("%q is not a mask; use hash, mask:N or truncate:N (e.g. mask:4)", mask)
		}
		return ""
	},
	"table": func(tbl, cols string) string {
		switch {
		case strings.Count(tbl, ".") != 1:
			return fmt.Sprintf("%q is not a db.table pattern (e.g. shop.events or shop.log_*)", tbl)
		case slices.ContainsFunc(strings.Split(cols, ","), func(c string) bool { return strings.TrimSpace(c) == "" }):
			return fmt.Sprintf("%q has an empty column name; write the columns comma-separated, e.g. \"sku,store_id\"", cols)
		}
		return ""
	},
}

// checkTemplate validates a topic template's placeholders and literal
// characters (Kafka topics allow [A-Za-z0-9._-]).
func (k *checker) checkTemplate(p, tmpl string, allowedPH []string, must string) {
	if tmpl == "" {
		return
	}
	unknown := false
	for _, ph := range placeholderRE.FindAllString(tmpl, -1) {
		if !slices.Contains(allowedPH, ph) {
			unknown = true
			hint := ""
			if c := closest(ph, allowedPH); c != "" {
				hint = fmt.Sprintf(" (did you mean %s?)", c)
			}
			k.add(p, "unknown placeholder %s; allowed: %s%s", ph, strings.Join(allowedPH, ", "), hint)
		}
	}
	k.when(!strings.Contains(tmpl, must) && !unknown, p, "%q must contain %s, or every stream would share one topic; e.g. %q", tmpl, must, "{prefix}."+must)
	lit := placeholderRE.ReplaceAllString(tmpl, "")
	k.when(strings.ContainsAny(lit, "{}") || !topicRE.MatchString(lit), p, "%q contains characters Kafka topic names do not allow; use letters, digits, '.', '_' and '-' around the placeholders", tmpl)
}

func (k *checker) raw() {
	r := &k.c.Raw
	if !r.Enabled {
		return
	}
	k.checkTemplate("raw.topic_template", r.TopicTemplate, []string{"{prefix}", "{db}", "{table}", "{name}"}, "{table}")
	k.checkTemplate("raw.schema_changes_topic", r.SchemaChangesTopic, []string{"{prefix}", "{name}"}, "")
	k.checkTemplate("raw.heartbeat_topic", r.HeartbeatTopic, []string{"{prefix}", "{name}"}, "")
	k.checkTemplate("raw.transaction_topic", r.TransactionTopic, []string{"{prefix}", "{name}"}, "")
	for _, pat := range r.IncludeColumns {
		k.when(strings.Count(pat, ".") != 2, "raw.include_columns", "%q is not a db.table.column pattern (e.g. shop.customer.email or *.*.email)", pat)
	}
	for _, pat := range r.ExcludeColumns {
		k.when(strings.Count(pat, ".") != 2, "raw.exclude_columns", "%q is not a db.table.column pattern (e.g. shop.customer.email or *.*.email)", pat)
	}
	hashes := false
	for col, m := range r.MaskColumns {
		hashes = hashes || strings.Count(col, ".") == 2 && strings.TrimSpace(m) == "hash"
	}
	k.when(hashes && !r.HashSalt.IsSet(), "raw.hash_salt", "a mask is hash but no salt is set; set FEEDCDC_RAW_HASH_SALT, raw.hash_salt_env or raw.hash_salt_file (a long random string, kept secret and stable)")
	for _, sn := range r.Sinks {
		s := k.c.Sinks[sn]
		k.when(s != nil && s.Type == "http", "raw.sinks", "sink %q is an http sink; raw change streams go to kafka or file sinks: remove it from raw.sinks", sn)
	}
	k.when(len(r.Sinks) == 0 && len(k.c.RawSinks()) == 0, "raw.sinks", "raw.enabled is true but there is no kafka or file sink; define one under sinks")
}

func (k *checker) sinks() {
	dirs := map[string]string{}
	for _, name := range k.c.sinkNames(func(*Sink) bool { return true }) {
		s, p := k.c.Sinks[name], "sinks."+name
		k.when(!sinkNameRE.MatchString(name), p, "sink name %q must be lower-case letters, digits and _ starting with a letter (it is used in FEEDCDC_SINKS_<NAME>_* variables); rename it to %q", name, suggestSinkName(name))
		if add, ok := map[string]string{"kafka": "{brokers: [host:9092]}", "http": "{base_url: https://...}", "file": "{dir: feedcdc-data/out}"}[s.Type]; ok && sinkSection(s, s.Type).IsNil() {
			k.add(p+"."+s.Type, "type is %s but there is no %[1]s section; add %[1]s: %s", s.Type, add)
			continue
		}
		switch {
		case s.Type == "kafka":
			k.kafka(p+".kafka", s.Kafka)
		case s.Type == "http":
			k.http(p+".http", s.HTTP)
		case s.Type == "file" && s.File.Dir != "":
			abs := resolveAbs(s.File.Dir)
			other, dup := dirs[abs]
			k.when(dup, p+".file.dir", "%s is also the directory of sink %q; give each file sink its own directory", s.File.Dir, other)
			dirs[abs] = name
			st, err := os.Stat(s.File.Dir)
			k.when(err == nil && !st.IsDir(), p+".file.dir", "%s exists and is not a directory; choose a directory path", s.File.Dir)
		}
	}
}

func suggestSinkName(s string) string {
	b := []byte(strings.ToLower(s))
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			b[i] = '_'
		}
	}
	if len(b) == 0 || b[0] < 'a' || b[0] > 'z' {
		return "s" + string(b)
	}
	return string(b)
}

// brokers checks that every entry of a broker list at path is host:port.
func (k *checker) brokers(path string, list []string) {
	for _, b := range list {
		host, port, err := net.SplitHostPort(strings.TrimSpace(b))
		k.when(err != nil || host == "" || !validPort(port, false), path, "%q is not host:port; write e.g. [kafka-1:9092, kafka-2:9092]", b)
	}
}

func (k *checker) kafka(p string, kc *KafkaSink) {
	k.brokers(p+".brokers", kc.Brokers)
	k.checkTemplate(p+".topic_template", kc.TopicTemplate, []string{"{prefix}", "{feed}", "{name}"}, "{feed}")
	k.when(kc.MaxMessageBytes > kc.BatchBytes, p+".batch_bytes", "%s is smaller than max_message_bytes (%s), so the largest allowed record could never be sent; raise batch_bytes to at least %s", kc.BatchBytes, kc.MaxMessageBytes, kc.MaxMessageBytes)
	k.when(kc.MaxMessageBytes > k.c.Backpressure.MaxInflightBytes, "backpressure.max_inflight_bytes", "%s is smaller than %s.max_message_bytes (%s), so one large item could stall the pipeline; raise max_inflight_bytes", k.c.Backpressure.MaxInflightBytes, p, kc.MaxMessageBytes)
	k.when(!kc.TLS.Enabled && (kc.TLS.CAFile != "" || kc.TLS.CertFile != "" || kc.TLS.InsecureSkipVerify), p+".tls.enabled", "is false but TLS options are set; set enabled: true or remove the options")
	switch sa := &kc.SASL; {
	case !slices.Contains([]string{"", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"}, sa.Mechanism): // reported by the enum check
	case sa.Mechanism == "":
		k.when(sa.User != "" || sa.Password.IsSet() || sa.PasswordEnv != "" || sa.PasswordFile != "", p+".sasl.mechanism", "is empty but SASL credentials are set; set mechanism: SCRAM-SHA-512 (or SCRAM-SHA-256, PLAIN) or remove the credentials")
	default:
		k.when(sa.User == "", p+".sasl.user", "is required with sasl.mechanism %s; set the SASL user name", sa.Mechanism)
		k.when(!sa.Password.IsSet(), p+".sasl.password", "is required with sasl.mechanism %s; set sasl.password_env or sasl.password_file (or %s)", sa.Mechanism, envName(p+".sasl.password"))
	}
}

func (k *checker) http(p string, hc *HTTPSink) {
	if u, err := url.Parse(hc.BaseURL); hc.BaseURL != "" && (err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "") {
		k.add(p+".base_url", "%q is not an http(s) URL; write e.g. https://feeds.example.com/api", hc.BaseURL)
	} else if hc.BaseURL != "" && u.User != nil {
		k.add(p+".base_url", "contains credentials (user:password@); remove them and use api_key_env or api_key_file")
	} else if hc.BaseURL != "" {
		k.when(u.Scheme == "http" && (hc.TLS.CAFile != "" || hc.TLS.CertFile != ""), p+".tls", "TLS files are set but base_url is http://; use an https:// URL or remove the tls options")
	}
	k.when(hc.APIKey.IsSet() && len(hc.APIKeyHeaders) == 0, p+".api_key_headers", "is empty but an api_key is set, so the key would never be sent; list the header, e.g. [x-api-key]")
	for _, h := range hc.APIKeyHeaders {
		k.when(!headerRE.MatchString(h), p+".api_key_headers", "%q is not a valid HTTP header name", h)
	}
}

func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	ip := net.ParseIP(host)
	return err == nil && (host == "localhost" || ip != nil && ip.IsLoopback())
}

func (k *checker) rest() {
	c, d := k.c, &k.c.Dashboard
	k.when(c.Resync.ThreadCount > c.Source.PoolSize && c.Source.PoolSize > 0, "resync.thread_count", "%d exceeds source.pool_size (%d), so resync threads would wait for connections; raise source.pool_size to at least %d or lower thread_count", c.Resync.ThreadCount, c.Source.PoolSize, c.Resync.ThreadCount)
	k.when(c.Feeds.BuildThreads > c.Source.PoolSize && c.Source.PoolSize > 0, "feeds.build_threads", "%d exceeds source.pool_size (%d), so builders would wait for connections; raise source.pool_size to at least %d or lower build_threads", c.Feeds.BuildThreads, c.Source.PoolSize, c.Feeds.BuildThreads)
	anyEnabled := c.Raw.Enabled
	for _, name := range FeedNames {
		f, p := c.Feeds.Feed(name), "feeds."+name
		anyEnabled = anyEnabled || f.Enabled
		k.when(f.BackoffBase > f.BackoffMax, p+".backoff_base", "%s is larger than backoff_max (%s); lower backoff_base or raise backoff_max", f.BackoffBase, f.BackoffMax)
	}
	k.when(!anyEnabled, "feeds", "every feed is disabled and raw.enabled is false, so there is nothing to export; enable a feed (feeds.products.enabled: true) or raw streams (raw.enabled: true)")
	st, err := os.Stat(c.State.Path)
	k.when(err == nil && st.IsDir(), "state.path", "%s is a directory; set a file path such as %s", c.State.Path, path.Join(c.State.Path, "state.db"))
	k.when(d.Enabled && d.Listen != "" && !isLoopback(d.Listen) && !d.Token.IsSet(), "dashboard.listen", "%s is reachable from other hosts but no token is set; set dashboard.token_env or dashboard.token_file (or FEEDCDC_DASHBOARD_TOKEN), or listen on 127.0.0.1", d.Listen)
	k.when(d.Enabled && d.ItemsToken == "always" && !d.Token.IsSet(), "dashboard.items_token", "always needs a token, and none is set; set dashboard.token_env or dashboard.token_file (or FEEDCDC_DASHBOARD_TOKEN), or use items_token: auto")
	k.when(d.Enabled && d.Listen != "" && d.Listen == c.Telemetry.Listen, "dashboard.listen", "%s is also telemetry.listen; give the dashboard its own port (e.g. 127.0.0.1:8484)", d.Listen)
	k.brokers("ha.brokers", c.HA.Brokers)
	k.when(c.HA.Enabled && len(c.HA.Brokers) == 0, "ha.brokers", "is empty but ha.enabled is true; list the Kafka bootstrap brokers (e.g. [kafka-1:9092]) that hold the group and the state changelog, or set ha.enabled: false")
	k.when(c.Telemetry.Traces && c.Telemetry.OTLPEndpoint == "", "telemetry.traces", "is true but telemetry.otlp_endpoint is empty, so spans would go nowhere; set otlp_endpoint (e.g. http://127.0.0.1:4318) or traces: false")
	if e := c.Telemetry.OTLPEndpoint; e != "" {
		u, err := url.Parse(e)
		k.when(err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "", "telemetry.otlp_endpoint", "%q is not an http(s) URL; write e.g. http://127.0.0.1:4318", e)
	}
}

// warnings lists settings that are valid but weaken guarantees. (Insecure
// TLS and SASL PLAIN without TLS are warned about by the sinks when they
// start.)
func warnings(c *Config) []string {
	var w []string
	for _, name := range c.sinkNames(func(s *Sink) bool { return s.Type == "kafka" && s.Kafka != nil && s.Kafka.Acks != "all" }) {
		w = append(w, fmt.Sprintf("sinks.%s.kafka.acks is %s: records acknowledged by fewer than all in-sync replicas can be lost, so delivery is no longer at-least-once", name, c.Sinks[name].Kafka.Acks))
	}
	return w
}

func (c *Config) sinkNames(keep func(*Sink) bool) []string {
	var out []string
	for n, s := range c.Sinks {
		if s != nil && keep(s) {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

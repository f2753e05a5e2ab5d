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
	"sort"
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
	ps := validate(c)
	if len(ps) == 0 {
		return nil
	}
	return &ValidationError{Problems: ps}
}

type checker struct {
	c  *Config
	ps []Problem
}

func (k *checker) add(path, format string, args ...any) {
	k.ps = append(k.ps, Problem{Path: path, Message: fmt.Sprintf(format, args...)})
}

func validate(c *Config) []Problem {
	k := &checker{c: c}
	k.generic()
	k.source()
	k.feeds()
	k.raw()
	k.sinks()
	k.rest()
	return k.ps
}

// generic applies the required/enum/min/max/pattern/ref tags.
func (k *checker) generic() {
	eachKey(reflect.ValueOf(k.c), nil, func(parent reflect.Value, f field, p []string) {
		fv, ps := parent.Field(f.Index), join(p)
		if f.Tag.Get("required") == "true" && fv.Len() == 0 {
			k.add(ps, "is required; %s", requiredHint(ps, f))
			return
		}
		if enum, val := f.enum(), fv.String(); enum != nil && !slices.Contains(enum, val) {
			if val == "" && len(p) == 3 && p[0] == "sinks" {
				k.add(ps, "sink %q has no type; add type: kafka, type: http or type: file with its section", p[1])
			} else if c := closest(val, enum); c != "" {
				k.add(ps, "%q is not %s (did you mean %q?)", val, allowed(f), c)
			} else {
				k.add(ps, "%q is not %s", val, allowed(f))
			}
		}
		k.rangeCheck(ps, fv, f)
		switch f.Tag.Get("pattern") {
		case "listen":
			if s := fv.String(); s != "" {
				if _, port, err := net.SplitHostPort(s); err != nil || !validPort(port, true) {
					k.add(ps, "%q is not a listen address; write host:port, e.g. 127.0.0.1:%s", s, map[bool]string{true: "8484", false: "9464"}[strings.HasPrefix(ps, "dashboard")])
				}
			}
		case "name":
			if !nameRE.MatchString(fv.String()) {
				k.add(ps, "%q must be letters, digits, '.', '_' or '-' (starting with a letter or digit), e.g. magento-prod", fv.String())
			}
		case "file":
			k.file(ps, f.Name, fv.String())
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
				if _, ok := k.c.Sinks[name]; !ok {
					k.add(ps, "sink %q is not defined under sinks; %s", name, k.sinkHint(name))
				}
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
	switch {
	case err != nil:
		k.add(path, "cannot use %s: %v; fix the path", name, err)
	case st.IsDir():
		k.add(path, "%s is a directory; point %s at a PEM file", name, key)
	}
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

var examples = map[string]string{"brokers": "kafka-1:9092", "base_url": "https://feeds.example.com/api", "dir": "feedcdc-data/out",
	"path": "feedcdc-data/state.db", "topic_template": "\"{prefix}.{feed}\"", "database": "magento"}

func requiredHint(path string, f field) string {
	switch {
	case path == "source.user":
		return "set the replication user (needs REPLICATION SLAVE, REPLICATION CLIENT and SELECT), e.g. user: feedcdc, or FEEDCDC_SOURCE_USER"
	case path == "source.host":
		return "set the source server's host, e.g. host: db-replica.internal"
	case f.Kind == kStrings:
		return fmt.Sprintf("write at least one entry, e.g. %s: [%s]", f.Name, cmp.Or(examples[f.Name], "..."))
	}
	return fmt.Sprintf("set %s, e.g. %s: %s", f.Name, f.Name, cmp.Or(examples[f.Name], "..."))
}

func validPort(p string, allowZero bool) bool {
	n, err := strconv.Atoi(p)
	return err == nil && n <= 65535 && (n > 0 || (allowZero && n == 0))
}

// rangeCheck applies the min and max tags, parsed like values of the field.
func (k *checker) rangeCheck(ps string, fv reflect.Value, f field) {
	num := func(v reflect.Value) float64 {
		if f.Kind == kUint {
			return float64(v.Uint())
		}
		return float64(v.Int())
	}
	for i, bound := range []string{f.Tag.Get("min"), f.Tag.Get("max")} {
		b := reflect.New(f.Type).Elem()
		if bound == "" || setScalar(scalarNode(bound), b, f, nil) != nil {
			continue
		}
		if (i == 0 && num(fv) < num(b)) || (i == 1 && num(fv) > num(b)) {
			k.add(ps, "%s is out of range; allowed: %s", formatValue(fv), allowed(f))
			return
		}
	}
}

func (k *checker) sinkHint(name string) string {
	var names []string
	for n := range k.c.Sinks {
		names = append(names, n)
	}
	sort.Strings(names)
	if c := closest(name, names); c != "" {
		return fmt.Sprintf("did you mean %q?", c)
	}
	if len(names) == 0 {
		return "define it under sinks"
	}
	return fmt.Sprintf("defined sinks: %s; define %q under sinks or remove it from the list", strings.Join(names, ", "), name)
}

func (k *checker) source() {
	s := &k.c.Source
	if s.Heartbeat > 0 && s.ReadTimeout > 0 && s.ReadTimeout <= s.Heartbeat {
		k.add("source.read_timeout", "%s must be longer than source.heartbeat (%s), or every quiet period looks like a dead connection; set it to at least %s", s.ReadTimeout, s.Heartbeat, Duration(3*s.Heartbeat))
	}
	if s.Retry.Max > 0 && s.Retry.Initial > s.Retry.Max {
		k.add("source.retry.max", "%s is shorter than source.retry.initial (%s); set it to at least %s", s.Retry.Max, s.Retry.Initial, s.Retry.Initial)
	}
	if s.Retry.MaxElapsed > 0 && s.Retry.MaxElapsed < s.Retry.Initial {
		k.add("source.retry.max_elapsed", "%s is shorter than source.retry.initial (%s), so a failing source is never retried; set 0 (retry forever) or at least %s", s.Retry.MaxElapsed, s.Retry.Initial, Duration(10*s.Retry.Initial))
	}
	if s.TLS.Mode == "disabled" && (s.TLS.CAFile != "" || s.TLS.CertFile != "") {
		k.add("source.tls.mode", "is disabled but ca_file/cert_file are set; set mode: verify-identity (or verify-ca, required) to use them, or remove the files")
	}
	if _, err := change.ParseStartPosition(s.StartPosition); err != nil {
		k.add("source.start_position", "%v", err)
	}
	for _, list := range []struct {
		key string
		v   []string
	}{{"include_tables", s.IncludeTables}, {"exclude_tables", s.ExcludeTables}} {
		for _, pat := range list.v {
			db, tbl, _ := strings.Cut(pat, ".")
			if strings.Count(pat, ".") != 1 || db == "" || tbl == "" {
				k.add("source."+list.key, "pattern %q must be db.table (wildcards * and ? allowed, e.g. magento.catalog_product_*, *.store)", pat)
				continue
			}
			if strings.ContainsAny(pat, "[]\\ ") {
				k.add("source."+list.key, "pattern %q may only use the wildcards * and ?, e.g. magento.catalog_*", pat)
			}
		}
	}
	if len(s.Databases) > 0 && len(s.IncludeTables) > 0 {
		if !slices.ContainsFunc(s.IncludeTables, func(p string) bool {
			pd, _, _ := strings.Cut(strings.ToLower(p), ".")
			return slices.ContainsFunc(s.Databases, func(d string) bool {
				ok, _ := path.Match(pd, strings.ToLower(d)) // the patterns' * and ?; names hold no '/'
				return ok
			})
		}) {
			k.add("source.include_tables", "no pattern names a database of source.databases %v, so no table would be captured; write patterns like %s.*", s.Databases, s.Databases[0])
		}
	}
	for _, db := range s.Databases {
		if strings.TrimSpace(db) == "" || strings.ContainsAny(db, ".*?") {
			k.add("source.databases", "%q is not a database name; list plain names like [magento] (use include_tables for patterns)", db)
		}
	}
}

func (k *checker) feeds() {
	anyEnabled := false
	for _, name := range FeedNames {
		f := k.c.Feeds.Feed(name)
		anyEnabled = anyEnabled || f.Enabled
		p := "feeds." + name
		if f.BackoffBase > f.BackoffMax {
			k.add(p+".backoff_base", "%s is larger than backoff_max (%s); lower backoff_base or raise backoff_max", f.BackoffBase, f.BackoffMax)
		}
	}
	if !anyEnabled && !k.c.Raw.Enabled {
		k.add("feeds", "every feed is disabled and raw.enabled is false, so there is nothing to export; enable a feed (feeds.products.enabled: true) or raw streams (raw.enabled: true)")
	}
}

var headerRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9-]*$`)

func validHeaderName(s string) bool { return headerRE.MatchString(s) }

func looksLikeCredentialHeader(h string) bool {
	h = strings.ToLower(h)
	for _, w := range []string{"authorization", "api-key", "apikey", "token", "secret", "password", "signature", "cookie"} {
		if strings.Contains(h, w) {
			return true
		}
	}
	return false
}

var (
	sinkNameRE    = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	topicConfigRE = regexp.MustCompile(`^[a-z][a-z0-9]*(\.[a-z0-9]+)*$`)
)

var maskRE = regexp.MustCompile(`^(mask|truncate):[0-9]{1,7}$`)

var placeholderRE = regexp.MustCompile(`\{[^{}]*\}`)

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
			msg := fmt.Sprintf("unknown placeholder %s; allowed: %s", ph, strings.Join(allowedPH, ", "))
			if c := closest(ph, allowedPH); c != "" {
				msg += fmt.Sprintf(" (did you mean %s?)", c)
			}
			k.add(p, "%s", msg)
		}
	}
	if !strings.Contains(tmpl, must) && !unknown {
		k.add(p, "%q must contain %s, or every stream would share one topic; e.g. %q", tmpl, must, "{prefix}."+must)
	}
	lit := placeholderRE.ReplaceAllString(tmpl, "")
	if strings.ContainsAny(lit, "{}") || !regexp.MustCompile(`^[A-Za-z0-9._-]*$`).MatchString(lit) {
		k.add(p, "%q contains characters Kafka topic names do not allow; use letters, digits, '.', '_' and '-' around the placeholders", tmpl)
	}
}

func (k *checker) raw() {
	r := &k.c.Raw
	badKey := map[string]bool{}
	for _, col := range slices.Sorted(maps.Keys(r.MaskColumns)) {
		if badKey[col] = strings.Count(col, ".") != 2; badKey[col] {
			k.add("raw.mask_columns."+col, "%q is not a db.table.column pattern (e.g. shop.customer.email or *.*.email)", col)
		}
	}
	for _, tbl := range slices.Sorted(maps.Keys(r.KeyColumns)) {
		if badKey[tbl] = strings.Count(tbl, ".") != 1; badKey[tbl] {
			k.add("raw.key_columns."+tbl, "%q is not a db.table pattern (e.g. shop.events or shop.log_*)", tbl)
		}
	}
	if !r.Enabled {
		return
	}
	k.checkTemplate("raw.topic_template", r.TopicTemplate, []string{"{prefix}", "{db}", "{table}", "{name}"}, "{table}")
	k.checkTemplate("raw.schema_changes_topic", r.SchemaChangesTopic, []string{"{prefix}", "{name}"}, "")
	k.checkTemplate("raw.heartbeat_topic", r.HeartbeatTopic, []string{"{prefix}", "{name}"}, "")
	k.checkTemplate("raw.transaction_topic", r.TransactionTopic, []string{"{prefix}", "{name}"}, "")
	for _, l := range []struct {
		key  string
		pats []string
	}{{"raw.include_columns", r.IncludeColumns}, {"raw.exclude_columns", r.ExcludeColumns}} {
		for _, pat := range l.pats {
			if strings.Count(pat, ".") != 2 {
				k.add(l.key, "%q is not a db.table.column pattern (e.g. shop.customer.email or *.*.email)", pat)
			}
		}
	}
	hashes := false
	for _, col := range slices.Sorted(maps.Keys(r.MaskColumns)) {
		m := strings.TrimSpace(r.MaskColumns[col])
		switch {
		case badKey[col]:
		case m == "hash":
			hashes = true
		case maskRE.MatchString(m):
		default:
			k.add("raw.mask_columns."+col, "%q is not a mask; use hash, mask:N or truncate:N (e.g. mask:4)", m)
		}
	}
	if hashes && !r.HashSalt.IsSet() {
		k.add("raw.hash_salt", "a mask is hash but no salt is set; set FEEDCDC_RAW_HASH_SALT, raw.hash_salt_env or raw.hash_salt_file (a long random string, kept secret and stable)")
	}
	for _, tbl := range slices.Sorted(maps.Keys(r.KeyColumns)) {
		for _, c := range strings.Split(r.KeyColumns[tbl], ",") {
			if strings.TrimSpace(c) == "" && !badKey[tbl] {
				k.add("raw.key_columns."+tbl, "%q has an empty column name; write the columns comma-separated, e.g. \"sku,store_id\"", r.KeyColumns[tbl])
				break
			}
		}
	}
	for _, sn := range r.Sinks {
		if s := k.c.Sinks[sn]; s != nil && s.Type == "http" {
			k.add("raw.sinks", "sink %q is an http sink; raw change streams go to kafka or file sinks: remove it from raw.sinks", sn)
		}
	}
	if len(r.Sinks) == 0 && len(k.c.RawSinks()) == 0 {
		k.add("raw.sinks", "raw.enabled is true but there is no kafka or file sink; define one under sinks")
	}
}

func (k *checker) sinks() {
	names := k.c.sinkNames(func(*Sink) bool { return true })
	dirs := map[string]string{}
	for _, name := range names {
		s := k.c.Sinks[name]
		p := "sinks." + name
		if !sinkNameRE.MatchString(name) {
			k.add(p, "sink name %q must be lower-case letters, digits and _ starting with a letter (it is used in FEEDCDC_SINKS_<NAME>_* variables); rename it to %q", name, suggestSinkName(name))
		}
		switch s.Type {
		case "kafka":
			if s.Kafka == nil {
				k.add(p+".kafka", "type is kafka but there is no kafka section; add kafka: {brokers: [host:9092]}")
				continue
			}
			k.kafka(p+".kafka", s.Kafka)
		case "http":
			if s.HTTP == nil {
				k.add(p+".http", "type is http but there is no http section; add http: {base_url: https://...}")
				continue
			}
			k.http(p+".http", s.HTTP)
		case "file":
			if s.File == nil {
				k.add(p+".file", "type is file but there is no file section; add file: {dir: feedcdc-data/out}")
				continue
			}
			if s.File.Dir != "" {
				abs := resolveAbs(s.File.Dir)
				if other, dup := dirs[abs]; dup {
					k.add(p+".file.dir", "%s is also the directory of sink %q; give each file sink its own directory", s.File.Dir, other)
				}
				dirs[abs] = name
				if st, err := os.Stat(s.File.Dir); err == nil && !st.IsDir() {
					k.add(p+".file.dir", "%s exists and is not a directory; choose a directory path", s.File.Dir)
				}
			}
		}
	}
}

func (k *checker) kafka(p string, kc *KafkaSink) {
	for _, b := range kc.Brokers {
		host, port, err := net.SplitHostPort(strings.TrimSpace(b))
		if err != nil || host == "" || !validPort(port, false) {
			k.add(p+".brokers", "%q is not host:port; write e.g. [kafka-1:9092, kafka-2:9092]", b)
		}
	}
	k.checkTemplate(p+".topic_template", kc.TopicTemplate, []string{"{prefix}", "{feed}", "{name}"}, "{feed}")
	for _, c := range slices.Sorted(maps.Keys(kc.TopicConfigs)) {
		if c == "cleanup.policy" {
			k.add(p+".topic_configs."+c, "cleanup.policy is set by compact (true: compact for entity feed topics); remove it from topic_configs")
		} else if !topicConfigRE.MatchString(c) {
			k.add(p+".topic_configs."+c, "%q is not a Kafka topic config name (like retention.ms or min.insync.replicas)", c)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(kc.Producer)) {
		if msg := producerProblem(name, kc.Producer[name]); msg != "" {
			k.add(p+".producer."+name, "%s", msg)
		}
	}
	if kc.MaxMessageBytes > kc.BatchBytes {
		k.add(p+".batch_bytes", "%s is smaller than max_message_bytes (%s), so the largest allowed record could never be sent; raise batch_bytes to at least %s", kc.BatchBytes, kc.MaxMessageBytes, kc.MaxMessageBytes)
	}
	if kc.MaxMessageBytes > k.c.Backpressure.MaxInflightBytes {
		k.add("backpressure.max_inflight_bytes", "%s is smaller than %s.max_message_bytes (%s), so one large item could stall the pipeline; raise max_inflight_bytes", k.c.Backpressure.MaxInflightBytes, p, kc.MaxMessageBytes)
	}
	if !kc.TLS.Enabled && (kc.TLS.CAFile != "" || kc.TLS.CertFile != "" || kc.TLS.InsecureSkipVerify) {
		k.add(p+".tls.enabled", "is false but TLS options are set; set enabled: true or remove the options")
	}
	sa := &kc.SASL
	if !slices.Contains([]string{"", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"}, sa.Mechanism) {
		return // reported by the enum check
	}
	if sa.Mechanism == "" {
		if sa.User != "" || sa.Password.IsSet() || sa.PasswordEnv != "" || sa.PasswordFile != "" {
			k.add(p+".sasl.mechanism", "is empty but SASL credentials are set; set mechanism: SCRAM-SHA-512 (or SCRAM-SHA-256, PLAIN) or remove the credentials")
		}
		return
	}
	if sa.User == "" {
		k.add(p+".sasl.user", "is required with sasl.mechanism %s; set the SASL user name", sa.Mechanism)
	}
	if !sa.Password.IsSet() {
		k.add(p+".sasl.password", "is required with sasl.mechanism %s; set sasl.password_env or sasl.password_file (or %s)", sa.Mechanism, envName(p+".sasl.password"))
	}
}

func (k *checker) http(p string, hc *HTTPSink) {
	if hc.BaseURL != "" {
		u, err := url.Parse(hc.BaseURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			k.add(p+".base_url", "%q is not an http(s) URL; write e.g. https://feeds.example.com/api", hc.BaseURL)
		} else if u.User != nil {
			k.add(p+".base_url", "contains credentials (user:password@); remove them and use api_key_env or api_key_file")
		} else if u.Scheme == "http" && (hc.TLS.CAFile != "" || hc.TLS.CertFile != "") {
			k.add(p+".tls", "TLS files are set but base_url is http://; use an https:// URL or remove the tls options")
		}
	}
	for _, feed := range slices.Sorted(maps.Keys(hc.Routes)) {
		route := hc.Routes[feed]
		if !isFeedName(feed) {
			hint := "valid feeds: " + strings.Join(FeedNames, ", ")
			if c := closest(feed, FeedNames); c != "" {
				hint = fmt.Sprintf("did you mean %q?", c)
			}
			k.add(p+".routes."+feed, "%q is not a feed; %s", feed, hint)
		} else if strings.TrimSpace(route) == "" || strings.ContainsAny(route, " ?#") {
			k.add(p+".routes."+feed, "route %q must be a non-empty URL path segment like %q", route, feed)
		}
	}
	for _, h := range slices.Sorted(maps.Keys(hc.Headers)) {
		if !validHeaderName(h) {
			k.add(p+".headers."+h, "%q is not a valid HTTP header name; use letters, digits and - only", h)
		} else if looksLikeCredentialHeader(h) {
			k.add(p+".headers."+h, "header %q carries a credential; literal secrets are not allowed in the file: set api_key_env (or api_key_file) and add %q to api_key_headers", h, strings.ToLower(h))
		}
	}
	if hc.APIKey.IsSet() && len(hc.APIKeyHeaders) == 0 {
		k.add(p+".api_key_headers", "is empty but an api_key is set, so the key would never be sent; list the header, e.g. [x-api-key]")
	}
	for _, h := range hc.APIKeyHeaders {
		if !validHeaderName(h) {
			k.add(p+".api_key_headers", "%q is not a valid HTTP header name", h)
		}
	}
}

func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (k *checker) rest() {
	c := k.c
	if c.Resync.ThreadCount > c.Source.PoolSize && c.Source.PoolSize > 0 {
		k.add("resync.thread_count", "%d exceeds source.pool_size (%d), so resync threads would wait for connections; raise source.pool_size to at least %d or lower thread_count", c.Resync.ThreadCount, c.Source.PoolSize, c.Resync.ThreadCount)
	}
	if c.Feeds.BuildThreads > c.Source.PoolSize && c.Source.PoolSize > 0 {
		k.add("feeds.build_threads", "%d exceeds source.pool_size (%d), so builders would wait for connections; raise source.pool_size to at least %d or lower build_threads", c.Feeds.BuildThreads, c.Source.PoolSize, c.Feeds.BuildThreads)
	}
	if st, err := os.Stat(c.State.Path); err == nil && st.IsDir() {
		k.add("state.path", "%s is a directory; set a file path such as %s", c.State.Path, path.Join(c.State.Path, "state.db"))
	}
	if c.Dashboard.Enabled && c.Dashboard.Listen != "" && !isLoopback(c.Dashboard.Listen) && !c.Dashboard.Token.IsSet() {
		k.add("dashboard.listen", "%s is reachable from other hosts but no token is set; set dashboard.token_env or dashboard.token_file (or FEEDCDC_DASHBOARD_TOKEN), or listen on 127.0.0.1", c.Dashboard.Listen)
	}
	if c.Dashboard.Enabled && c.Dashboard.ItemsToken == "always" && !c.Dashboard.Token.IsSet() {
		k.add("dashboard.items_token", "always needs a token, and none is set; set dashboard.token_env or dashboard.token_file (or FEEDCDC_DASHBOARD_TOKEN), or use items_token: auto")
	}
	if c.Dashboard.Enabled && c.Dashboard.Listen != "" && c.Dashboard.Listen == c.Telemetry.Listen {
		k.add("dashboard.listen", "%s is also telemetry.listen; give the dashboard its own port (e.g. 127.0.0.1:8484)", c.Dashboard.Listen)
	}
	if c.HA.Enabled && len(c.HA.Brokers) == 0 {
		k.add("ha.brokers", "is empty but ha.enabled is true; list the Kafka bootstrap brokers (e.g. [kafka-1:9092]) that hold the group and the state changelog, or set ha.enabled: false")
	}
	if c.Telemetry.Traces && c.Telemetry.OTLPEndpoint == "" {
		k.add("telemetry.traces", "is true but telemetry.otlp_endpoint is empty, so spans would go nowhere; set otlp_endpoint (e.g. http://127.0.0.1:4318) or traces: false")
	}
	if e := c.Telemetry.OTLPEndpoint; e != "" {
		u, err := url.Parse(e)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			k.add("telemetry.otlp_endpoint", "%q is not an http(s) URL; write e.g. http://127.0.0.1:4318", e)
		}
	}
}

// warnings lists settings that are valid but weaken guarantees.
func warnings(c *Config) []string {
	var w []string
	for _, name := range c.sinkNames(func(s *Sink) bool { return s.Type == "kafka" && s.Kafka != nil }) {
		kc := c.Sinks[name].Kafka
		p := "sinks." + name + ".kafka"
		if kc.Acks != "all" {
			w = append(w, fmt.Sprintf("%s.acks is %s: records acknowledged by fewer than all in-sync replicas can be lost, so delivery is no longer at-least-once", p, kc.Acks))
		}
		if kc.TLS.InsecureSkipVerify {
			w = append(w, p+".tls.insecure_skip_verify is true: broker certificates are not verified")
		}
		if kc.SASL.Mechanism == "PLAIN" && !kc.TLS.Enabled {
			w = append(w, p+".sasl.mechanism PLAIN without tls.enabled sends the password in clear text")
		}
	}
	for _, name := range c.sinkNames(func(s *Sink) bool { return s.Type == "http" && s.HTTP != nil }) {
		if c.Sinks[name].HTTP.TLS.InsecureSkipVerify {
			w = append(w, "sinks."+name+".http.tls.insecure_skip_verify is true: the server certificate is not verified")
		}
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
	sort.Strings(out)
	return out
}

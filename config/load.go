package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"
)

// EnvPrefix starts every environment override: FEEDCDC_ + the key path in
// upper case with dots as underscores (FEEDCDC_SOURCE_PASSWORD,
// FEEDCDC_SINKS_MAIN_KAFKA_BROKERS).
const EnvPrefix = "FEEDCDC_"

// Load reads the YAML file at path, applies the FEEDCDC_* overrides found in
// environ (KEY=VALUE pairs, as from os.Environ(); nil = no environment),
// resolves secrets from the environment or files, and validates the result.
// On any problem it returns a *ValidationError listing all of them.
func Load(path string, environ []string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w (create it from config.yaml in the feedcdc repository, or pass --config PATH)", err)
	}
	cfg, err := LoadBytes(data, path, environ)
	if cfg != nil {
		cfg.File = path
	}
	return cfg, err
}

// LoadBytes is Load for configuration text already in memory; name is used
// in messages (e.g. "config.yaml").
func LoadBytes(data []byte, name string, environ []string) (*Config, error) {
	l := newLoader(name, environ)
	cfg := l.load(data)
	if len(l.problems) > 0 {
		return nil, &ValidationError{File: name, Problems: l.problems}
	}
	cfg.Warnings = l.warnings
	return cfg, nil
}

func newLoader(name string, environ []string) *loader {
	l := &loader{
		file:         name,
		lines:        map[string]int{},
		envSet:       map[string]string{},
		sections:     map[string]map[string]bool{},
		environ:      map[string]string{},
		topicConfigs: map[string]map[string]string{},
	}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			l.environ[k] = v
		}
	}
	return l
}

type loader struct {
	file         string
	problems     []Problem
	warnings     []string
	lines        map[string]int             // concrete key path -> line in the file
	envSet       map[string]string          // concrete key path -> FEEDCDC_* variable that set it
	sections     map[string]map[string]bool // sink name -> sections (kafka/http/file) given
	environ      map[string]string
	topicConfigs map[string]map[string]string // sink name -> kafka.topic_configs (read outside viper)
	fileSink     bool                         // the file (or an override of a default sink) defines the sinks section
	yamlSinks    []string                     // sink names defined in the file
}

func (l *loader) problemAt(line int, path, format string, args ...any) {
	l.problems = append(l.problems, Problem{Path: path, File: l.file, Line: line, Message: fmt.Sprintf(format, args...)})
}

func (l *loader) envProblem(env, path, format string, args ...any) {
	l.problems = append(l.problems, Problem{Path: path, File: l.file, Env: env, Message: fmt.Sprintf(format, args...)})
}

func (l *loader) reportedUnder(prefix string) bool {
	for _, p := range l.problems {
		if strings.HasPrefix(p.Path, prefix) {
			return true
		}
	}
	return false
}

// locate fills File/Line/Env of a problem found on the decoded config.
func (l *loader) locate(p Problem) Problem {
	p.File = l.file
	for path := p.Path; path != ""; {
		if env, ok := l.envSet[path]; ok {
			p.Env = env
			return p
		}
		if line, ok := l.lines[path]; ok {
			p.Line = line
			return p
		}
		i := strings.LastIndexByte(path, '.')
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return p
}

func (l *loader) load(data []byte) *Config {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		msg := err.Error()
		line := 0
		if m := lineRE.FindStringSubmatch(msg); m != nil {
			line, _ = strconv.Atoi(m[1])
			msg = strings.Replace(msg, m[0], "", 1)
		}
		l.problemAt(line, "", "not valid YAML: %s; fix the syntax (indent with spaces, quote values containing ': ' or '#')", strings.TrimPrefix(msg, "yaml: "))
		return nil
	}
	if len(doc.Content) > 0 {
		root := doc.Content[0]
		if root.Kind == yaml.MappingNode {
			l.walkSection(root, reflect.TypeOf(Config{}), nil)
		} else if !isNull(root) {
			l.problemAt(root.Line, "", "the file must be a YAML mapping of sections (source:, sinks:, ...), not a %s", nodeKind(root))
			doc.Content = nil
		}
	}
	clean := []byte{}
	if len(doc.Content) > 0 && doc.Content[0].Kind == yaml.MappingNode {
		var err error
		if clean, err = yaml.Marshal(&doc); err != nil {
			l.problemAt(0, "", "internal error re-encoding the configuration: %v", err)
			return nil
		}
	}

	v := viper.New()
	v.SetConfigType("yaml")
	if err := v.ReadConfig(bytes.NewReader(clean)); err != nil {
		l.problemAt(0, "", "viper could not read the configuration: %v", err)
		return nil
	}
	l.applyEnv(v)

	cfg := Default()
	settings := v.AllSettings()
	rawSinks, hasSinks := settings["sinks"]
	delete(settings, "sinks")
	if err := decodeInto(settings, cfg); err != nil {
		l.decodeError(err, "")
	}
	if hasSinks || l.fileSink {
		m, _ := rawSinks.(map[string]any)
		if m == nil {
			m = map[string]any{}
		}
		for _, n := range l.yamlSinks {
			if _, ok := m[n]; !ok {
				m[n] = nil // an empty section, dropped by viper
			}
		}
		if len(m) == 0 && !l.reportedUnder("sinks.") {
			l.problemAt(l.lines["sinks"], "sinks", "no sinks are defined; define at least one, e.g. sinks: {out: {type: file, file: {dir: feedcdc-data/out}}}, or remove the empty sinks: section to use the default file sink")
		}
		cfg.Sinks = map[string]*Sink{}
		for name, raw := range m {
			s := sinkPrototype()
			if raw == nil {
				raw = map[string]any{}
			}
			if err := decodeInto(raw, s); err != nil {
				l.decodeError(err, "sinks."+name)
			}
			l.finishSink(name, s)
			if s.Kafka != nil {
				for k, v := range l.topicConfigs[name] {
					s.Kafka.TopicConfigs[k] = v
				}
			}
			cfg.Sinks[name] = s
		}
	}
	canonicalizeRoutes(cfg)
	l.resolveSecrets(cfg)
	// One problem per key: a key already reported while reading the file
	// (e.g. a literal secret, dropped) is not reported again as missing.
	reported := map[string]bool{}
	for _, p := range l.problems {
		reported[p.Path] = true
	}
	for _, p := range validate(cfg) {
		if !reported[p.Path] {
			l.problems = append(l.problems, l.locate(p))
		}
	}
	l.warnings = append(l.warnings, warnings(cfg)...)
	sort.SliceStable(l.problems, func(i, j int) bool {
		a, b := l.problems[i], l.problems[j]
		if (a.Env == "") != (b.Env == "") {
			return a.Env == ""
		}
		return a.Line < b.Line
	})
	return cfg
}

func (l *loader) decodeError(err error, prefix string) {
	var de *mapstructure.DecodeError
	msgs := []string{err.Error()}
	if errors.As(err, &de) {
		msgs = []string{de.Error()}
	}
	for _, m := range msgs {
		l.problemAt(0, prefix, "%s", m)
	}
}

// finishSink infers the sink type from its sections and drops the sections
// of other types (their defaults were only prototypes).
func (l *loader) finishSink(name string, s *Sink) {
	given := l.sections[name]
	path := "sinks." + name
	if s.Type == "" {
		var present []string
		for _, t := range []string{"kafka", "http", "file"} {
			if given[t] {
				present = append(present, t)
			}
		}
		switch len(present) {
		case 1:
			s.Type = present[0]
		case 0: // reported by validate
		default:
			l.problemAt(l.lines[path], path+".type", "sink %q has sections %s but no type; add type: with one of them and remove the others", name, strings.Join(present, " and "))
		}
	}
	for _, t := range []string{"kafka", "http", "file"} {
		if given[t] && s.Type != "" && s.Type != t && validEnum(s.Type, "kafka", "http", "file") {
			line := l.lines[path+"."+t]
			l.problemAt(line, path+"."+t, "section %s is set but the sink's type is %s; remove the %s section or change type to %s", t, s.Type, t, t)
		}
	}
	if s.Type != "kafka" {
		s.Kafka = nil
	}
	if s.Type != "http" {
		s.HTTP = nil
	}
	if s.Type != "file" {
		s.File = nil
	}
}

func validEnum(v string, vals ...string) bool {
	for _, x := range vals {
		if x == v {
			return true
		}
	}
	return false
}

func canonicalizeRoutes(cfg *Config) {
	for _, s := range cfg.Sinks {
		if s.HTTP == nil || len(s.HTTP.Routes) == 0 {
			continue
		}
		m := map[string]string{}
		for k, v := range s.HTTP.Routes {
			if c, ok := CanonicalFeedName(k); ok {
				k = c
			}
			m[k] = v
		}
		s.HTTP.Routes = m
	}
}

// decodeInto decodes viper settings (lower-cased keys) into out, which
// already holds defaults.
func decodeInto(in any, out any) error {
	dec, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
		TagName:          "yaml",
		WeaklyTypedInput: true,
		Result:           out,
		DecodeHook: mapstructure.ComposeDecodeHookFunc(
			mapstructure.TextUnmarshallerHookFunc(),
			mapstructure.StringToSliceHookFunc(","),
		),
	})
	if err != nil {
		return err
	}
	return dec.Decode(in)
}

// --- YAML node walk: unknown keys, types, literal secrets ------------------

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

func nodeKind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "section (key: value pairs)"
	case yaml.SequenceNode:
		return "list"
	case yaml.AliasNode:
		return "alias"
	}
	if n.Tag == "!!str" {
		return "string " + strconv.Quote(n.Value)
	}
	return "value " + n.Value
}

func join(path []string) string { return strings.Join(path, ".") }

func with(path []string, name string) []string {
	return append(append([]string(nil), path...), name)
}

// walkSection checks a mapping node against a section type and removes the
// keys it reports, so that decoding sees only well-formed values.
func (l *loader) walkSection(n *yaml.Node, t reflect.Type, path []string) {
	seen := map[string]int{}
	var kept []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if val.Kind == yaml.AliasNode && val.Alias != nil {
			val = val.Alias
		}
		name := k.Value
		p := with(path, name)
		if k.Tag == "!!merge" {
			// "<<: *anchor" (or a list of anchors) merges sections.
			targets := []*yaml.Node{val}
			if val.Kind == yaml.SequenceNode {
				targets = val.Content
			}
			ok := true
			for _, m := range targets {
				if m.Kind == yaml.AliasNode && m.Alias != nil {
					m = m.Alias
				}
				if m.Kind != yaml.MappingNode {
					l.problemAt(k.Line, join(path), "<< must merge a section (<<: *anchor), not a %s", nodeKind(m))
					ok = false
					continue
				}
				l.walkSection(m, t, path)
			}
			if ok {
				kept = append(kept, k, n.Content[i+1])
			}
			continue
		}
		if prev, dup := seen[name]; dup {
			l.problemAt(k.Line, join(p), "key %q is set twice (also on line %d); keep one", name, prev)
			continue
		}
		seen[name] = k.Line
		f, ok := fieldByName(t, name)
		if !ok {
			l.unknownKey(k, t, path)
			continue
		}
		l.lines[join(p)] = k.Line
		if l.walkField(val, f, p) {
			kept = append(kept, k, val)
		}
	}
	n.Content = kept
}

func (l *loader) unknownKey(k *yaml.Node, t reflect.Type, path []string) {
	p := join(with(path, k.Value))
	var names []string
	for _, f := range fieldsOf(t) {
		names = append(names, f.Name)
		if strings.EqualFold(f.Name, k.Value) {
			l.problemAt(k.Line, p, "unknown key %q: keys are case-sensitive; write %q", k.Value, f.Name)
			return
		}
	}
	if c := closest(k.Value, names); c != "" {
		l.problemAt(k.Line, p, "unknown key %q; did you mean %q (%s)?", k.Value, c, join(with(path, c)))
		return
	}
	// A key that exists elsewhere (misplaced rather than misspelt).
	var elsewhere []string
	for _, ap := range allPaths() {
		if ap == k.Value || strings.HasSuffix(ap, "."+k.Value) {
			elsewhere = append(elsewhere, ap)
		}
	}
	if len(elsewhere) > 0 {
		l.problemAt(k.Line, p, "unknown key %q here; it belongs at %s: move it there", k.Value, strings.Join(elsewhere, " or "))
		return
	}
	where := "at the top level"
	if len(path) > 0 {
		where = "under " + generalize(path)
	}
	l.problemAt(k.Line, p, "unknown key %q; valid keys %s are: %s", k.Value, where, strings.Join(names, ", "))
}

var lineRE = regexp.MustCompile(`line (\d+): `)

var topicConfigRE = regexp.MustCompile(`^[a-z][a-z0-9]*(\.[a-z0-9]+)*$`)

var sinkNameRE = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// walkField checks one value; it returns false when the value must be
// dropped (reported, or null meaning "use the default").
func (l *loader) walkField(val *yaml.Node, f field, p []string) bool {
	path := join(p)
	if isNull(val) {
		return false
	}
	switch f.Kind {
	case kStruct:
		if val.Kind != yaml.MappingNode {
			l.problemAt(val.Line, path, "must be a section of key: value pairs, not a %s", nodeKind(val))
			return false
		}
		if len(p) == 3 && p[0] == "sinks" {
			if l.sections[p[1]] == nil {
				l.sections[p[1]] = map[string]bool{}
			}
			l.sections[p[1]][p[2]] = true
		}
		t := f.Type
		if t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		l.walkSection(val, t, p)
		return true
	case kSinkMap:
		if val.Kind != yaml.MappingNode {
			l.problemAt(val.Line, path, "must be a section of named sinks (sinks: {main: {type: kafka, ...}}), not a %s", nodeKind(val))
			return false
		}
		var kept []*yaml.Node
		seen := map[string]int{}
		for i := 0; i+1 < len(val.Content); i += 2 {
			k, sv := val.Content[i], val.Content[i+1]
			sp := with(p, k.Value)
			if prev, dup := seen[k.Value]; dup {
				l.problemAt(k.Line, join(sp), "sink %q is defined twice (also on line %d); rename or remove one", k.Value, prev)
				continue
			}
			seen[k.Value] = k.Line
			if !sinkNameRE.MatchString(k.Value) {
				l.problemAt(k.Line, join(sp), "sink name %q must be lower-case letters, digits and _ starting with a letter (it is used in FEEDCDC_SINKS_<NAME>_* variables); rename it to %q", k.Value, suggestSinkName(k.Value))
				continue
			}
			l.lines[join(sp)] = k.Line
			if sv.Kind != yaml.MappingNode {
				l.problemAt(sv.Line, join(sp), "sink %q must be a section (type: kafka|http|file plus its options), not a %s", k.Value, nodeKind(sv))
				continue
			}
			l.walkSection(sv, reflect.TypeOf(Sink{}), sp)
			l.yamlSinks = append(l.yamlSinks, k.Value)
			kept = append(kept, k, sv)
		}
		val.Content = kept
		l.fileSink = true
		return true
	case kStringMap:
		if val.Kind != yaml.MappingNode {
			l.problemAt(val.Line, path, "must be a map of %s: value pairs, not a %s", f.Keys, nodeKind(val))
			return false
		}
		var kept []*yaml.Node
		for i := 0; i+1 < len(val.Content); i += 2 {
			k, mv := val.Content[i], val.Content[i+1]
			kp := join(with(p, k.Value))
			if f.Keys == "feed" && !isFeedName(k.Value) {
				hint := "valid feeds: " + strings.Join(FeedNames, ", ")
				if c := closest(k.Value, FeedNames); c != "" {
					hint = fmt.Sprintf("did you mean %q?", c)
				}
				l.problemAt(k.Line, kp, "%q is not a feed; %s", k.Value, hint)
				continue
			}
			if f.Keys == "config" && !topicConfigRE.MatchString(k.Value) {
				l.problemAt(k.Line, kp, "%q is not a Kafka topic config name (like retention.ms or min.insync.replicas)", k.Value)
				continue
			}
			if f.Keys == "config" && k.Value == "cleanup.policy" {
				l.problemAt(k.Line, kp, "cleanup.policy is set by compact (true: compact for entity feed topics); remove it from topic_configs")
				continue
			}
			if f.Keys == "header" && !validHeaderName(k.Value) {
				l.problemAt(k.Line, kp, "%q is not a valid HTTP header name; use letters, digits and - only", k.Value)
				continue
			}
			if f.Keys == "header" && looksLikeCredentialHeader(k.Value) {
				l.problemAt(k.Line, kp, "header %q carries a credential; literal secrets are not allowed in the file: set api_key_env (or api_key_file) and add %q to api_key_headers", k.Value, strings.ToLower(k.Value))
				continue
			}
			if mv.Kind != yaml.ScalarNode || isNull(mv) {
				l.problemAt(mv.Line, kp, "must be a string, not a %s", nodeKind(mv))
				continue
			}
			l.lines[kp] = k.Line
			kept = append(kept, k, mv)
			if f.Keys == "config" {
				// Kafka config names contain dots, which viper would split
				// into nested keys: keep them out of viper.
				if l.topicConfigs[p[1]] == nil {
					l.topicConfigs[p[1]] = map[string]string{}
				}
				l.topicConfigs[p[1]][k.Value] = mv.Value
			}
		}
		val.Content = kept
		return f.Keys != "config"
	case kStrings:
		switch val.Kind {
		case yaml.ScalarNode: // "a, b" is accepted as a comma-separated list
			return true
		case yaml.SequenceNode:
			for _, e := range val.Content {
				if e.Kind != yaml.ScalarNode || isNull(e) {
					l.problemAt(e.Line, path, "list entries must be strings, not a %s; write e.g. [a, b]", nodeKind(e))
					return false
				}
			}
			return true
		}
		l.problemAt(val.Line, path, "must be a list of strings like [a, b], not a %s", nodeKind(val))
		return false
	}
	if val.Kind != yaml.ScalarNode {
		l.problemAt(val.Line, path, "must be a single %s, not a %s", f.Kind.typeName(), nodeKind(val))
		return false
	}
	switch f.Kind {
	case kSecret:
		if val.Value != "" {
			l.problemAt(val.Line, path, "a literal secret is not allowed in the configuration file; remove it and set %s_env: VAR_NAME, %s_file: /path/to/file, or the environment variable %s", f.Name, f.Name, envName(path))
			return false
		}
		return false
	case kInt, kUint:
		if val.Tag != "!!int" {
			l.problemAt(val.Line, path, "must be an integer, got %s; write e.g. %s: %s", nodeKind(val), f.Name, exampleInt(f, p))
			return false
		}
		n, err := strconv.ParseInt(strings.ReplaceAll(val.Value, "_", ""), 0, 64)
		if err != nil || (f.Kind == kUint && n < 0) {
			l.problemAt(val.Line, path, "%s is out of range; allowed: %s", val.Value, allowedOr(f, "a non-negative integer"))
			return false
		}
	case kBool:
		if val.Tag != "!!bool" {
			l.problemAt(val.Line, path, "must be true or false, got %s", nodeKind(val))
			return false
		}
	case kDuration:
		if (val.Tag == "!!int" || val.Tag == "!!float") && val.Value != "0" {
			l.problemAt(val.Line, path, "%s has no unit; write e.g. %ss, %sms or %sm", val.Value, val.Value, val.Value, val.Value)
			return false
		}
		if _, err := ParseDuration(val.Value); err != nil {
			l.problemAt(val.Line, path, "%v", err)
			return false
		}
	case kByteSize:
		if val.Tag == "!!int" {
			if n, err := strconv.ParseInt(val.Value, 0, 64); err != nil || n < 0 {
				l.problemAt(val.Line, path, "%s is not a size; write a non-negative byte count or e.g. 64MiB", val.Value)
				return false
			}
		} else if _, err := ParseByteSize(val.Value); err != nil {
			l.problemAt(val.Line, path, "%v", err)
			return false
		}
	}
	return true
}

func exampleInt(f field, path []string) string {
	if d := defaultFor(path); d != "" {
		return d
	}
	if f.Min != "" {
		return f.Min
	}
	return "1"
}

// defaultFor returns the documented default of a concrete key path.
func defaultFor(path []string) string {
	g := generalize(path)
	for _, k := range Keys() {
		if k.Path == g {
			return k.Default
		}
	}
	return ""
}

func allowedOr(f field, def string) string {
	if a := allowed(f); a != "" {
		return a
	}
	return def
}

func suggestSinkName(s string) string {
	b := []byte(strings.ToLower(s))
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			b[i] = '_'
		}
	}
	out := string(b)
	if out == "" || !(out[0] >= 'a' && out[0] <= 'z') {
		out = "s" + out
	}
	return out
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

// --- environment overrides ----------------------------------------------------

type envTarget struct {
	path []string
	f    field
}

// envTargets maps every FEEDCDC_* name to the concrete key it overrides.
func (l *loader) envTargets(sinkNames []string) map[string]envTarget {
	out := map[string]envTarget{}
	var walk func(t reflect.Type, path []string)
	walk = func(t reflect.Type, path []string) {
		if t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		for _, f := range fieldsOf(t) {
			p := with(path, f.Name)
			switch f.Kind {
			case kStruct:
				walk(f.Type, p)
			case kSinkMap:
				for _, n := range sinkNames {
					walk(reflect.TypeOf(Sink{}), with(p, n))
				}
			case kStringMap:
				if f.Keys == "feed" {
					for _, n := range FeedNames {
						out[envName(join(with(p, n)))] = envTarget{with(p, n), field{Name: n, Kind: kString}}
					}
				}
			default:
				out[envName(join(p))] = envTarget{p, f}
			}
		}
	}
	walk(reflect.TypeOf(Config{}), nil)
	return out
}

func (l *loader) applyEnv(v *viper.Viper) {
	var sinkNames []string
	if l.fileSink {
		for n := range v.GetStringMap("sinks") {
			sinkNames = append(sinkNames, n)
		}
	} else {
		for n := range DefaultSinks() {
			sinkNames = append(sinkNames, n)
		}
	}
	targets := l.envTargets(sinkNames)
	referenced := map[string]bool{}
	for _, k := range v.AllKeys() {
		if strings.HasSuffix(k, "_env") {
			referenced[v.GetString(k)] = true
		}
	}
	var names []string
	for k := range l.environ {
		if strings.HasPrefix(k, EnvPrefix) {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	for _, name := range names {
		val := l.environ[name]
		t, ok := targets[name]
		if !ok {
			words := strings.Split(name, "_")
			if !referenced[name] && name != "FEEDCDC_CONFIG" && !slices.Contains(words, "TEST") && !slices.Contains(words, "BENCH") {
				l.unknownEnv(name, targets, sinkNames)
			}
			continue
		}
		path := join(t.path)
		conv, err := convertEnv(val, t.f)
		if err != nil {
			l.envProblem(name, path, "%v", err)
			continue
		}
		if len(t.path) >= 3 && t.path[0] == "sinks" {
			if l.sections[t.path[1]] == nil {
				l.sections[t.path[1]] = map[string]bool{}
			}
			if t.path[2] != "type" {
				l.sections[t.path[1]][t.path[2]] = true
			}
		}
		if !l.fileSink && t.path[0] == "sinks" {
			// Overriding a default sink: seed it so that it is decoded.
			l.fileSink = true
			for n, s := range DefaultSinks() {
				v.Set("sinks."+n+".type", s.Type)
			}
		}
		v.Set(path, conv)
		l.envSet[path] = name
	}
}

// unknownEnv reports a FEEDCDC_* variable that names no key: an error when
// its first word names a section (FEEDCDC_SOURCE_HEARBEAT is a typo of a
// key, as it would be in the file), a warning otherwise (other tools use the
// prefix too). Variables with a TEST or BENCH word (the test suite's) and
// FEEDCDC_CONFIG are not reported at all.
func (l *loader) unknownEnv(name string, targets map[string]envTarget, sinkNames []string) {
	section, _, _ := strings.Cut(strings.TrimPrefix(name, EnvPrefix), "_")
	f, isSection := fieldByName(reflect.TypeOf(Config{}), strings.ToLower(section))
	isSection = isSection && (f.Kind == kStruct || f.Kind == kSinkMap) && strings.Contains(name[len(EnvPrefix):], "_")
	prefix := EnvPrefix + section + "_"
	if isSection && f.Kind == kSinkMap {
		prefix = "-" // suggest only keys of a sink named in the variable
		for _, n := range sinkNames {
			if p := EnvPrefix + "SINKS_" + strings.ToUpper(n) + "_"; strings.HasPrefix(name, p) {
				prefix = p
			}
		}
	}
	var cands []string
	for c := range targets {
		if !isSection || strings.HasPrefix(c, prefix) {
			cands = append(cands, c)
		}
	}
	sort.Strings(cands)
	hint := ""
	if c := closest(name, cands); c != "" {
		hint = fmt.Sprintf("; did you mean %s?", c)
	}
	if !isSection {
		l.warnings = append(l.warnings, fmt.Sprintf("environment variable %s matches no configuration key and is ignored%s", name, hint))
		return
	}
	if hint == "" {
		hint = fmt.Sprintf("; FEEDCDC_%s_<KEY> variables must name a key of %s (docs/configuration.md lists them)", section, strings.ToLower(section))
		if f.Kind == kSinkMap {
			hint = "; FEEDCDC_SINKS_<NAME>_<KEY> variables override keys of sinks defined in the file (or of the default sink \"file\")"
		}
	}
	l.envProblem(name, strings.ToLower(section), "matches no configuration key%s; fix the name or unset it", hint)
}

func convertEnv(val string, f field) (any, error) {
	switch f.Kind {
	case kInt:
		n, err := strconv.ParseInt(strings.TrimSpace(val), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("must be an integer, got %q", val)
		}
		return n, nil
	case kUint:
		n, err := strconv.ParseUint(strings.TrimSpace(val), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("must be a non-negative integer, got %q", val)
		}
		return n, nil
	case kBool:
		b, err := strconv.ParseBool(strings.TrimSpace(val))
		if err != nil {
			return nil, fmt.Errorf("must be true or false, got %q", val)
		}
		return b, nil
	case kDuration:
		d, err := ParseDuration(val)
		if err != nil {
			return nil, err
		}
		return d, nil
	case kByteSize:
		b, err := ParseByteSize(val)
		if err != nil {
			return nil, err
		}
		return b, nil
	case kStrings:
		var out []string
		for _, s := range strings.Split(val, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
		if out == nil {
			out = []string{}
		}
		return out, nil
	}
	return val, nil
}

// --- secrets ------------------------------------------------------------------

// resolveSecrets fills every Secret from its FEEDCDC_* override (already
// decoded), its _file sibling or its _env sibling.
func (l *loader) resolveSecrets(cfg *Config) {
	forEachSecret(cfg, func(path string, sec *Secret, file, env *string) {
		base := path[:strings.LastIndexByte(path, '.')+1]
		name := path[len(base):]
		if *file != "" && *env != "" {
			l.problems = append(l.problems, l.locate(Problem{Path: base + name + "_file", Message: fmt.Sprintf("both %s_file and %s_env are set; keep one", name, name)}))
			return
		}
		if _, overridden := l.envSet[path]; overridden {
			return
		}
		switch {
		case *file != "":
			fp := base + name + "_file"
			data, err := os.ReadFile(*file)
			if err != nil {
				l.problems = append(l.problems, l.locate(Problem{Path: fp, Message: fmt.Sprintf("cannot read the secret: %v; create the file or fix the path", err)}))
				return
			}
			s := strings.TrimRight(string(data), "\r\n")
			if s == "" {
				l.problems = append(l.problems, l.locate(Problem{Path: fp, Message: fmt.Sprintf("secret file %s is empty; write the %s into it", *file, name)}))
				return
			}
			if st, err := os.Stat(*file); err == nil && st.Mode().Perm()&0o077 != 0 {
				l.warnings = append(l.warnings, fmt.Sprintf("%s: secret file %s is readable by group or others (mode %v); run chmod 600 %s", fp, *file, st.Mode().Perm(), *file))
			}
			*sec = Secret(s)
		case *env != "":
			val, ok := l.environ[*env]
			if !ok {
				l.problems = append(l.problems, l.locate(Problem{Path: base + name + "_env", Message: fmt.Sprintf("environment variable %s is not set; export it (export %s=...) or remove %s_env", *env, *env, name)}))
				return
			}
			*sec = Secret(val)
		}
	})
}

// forEachSecret calls fn for every Secret field with its _file and _env
// siblings. Paths are concrete (sinks.main.kafka.sasl.password).
func forEachSecret(cfg *Config, fn func(path string, sec *Secret, file, env *string)) {
	var walk func(v reflect.Value, path []string)
	walk = func(v reflect.Value, path []string) {
		if v.Kind() == reflect.Pointer {
			if v.IsNil() {
				return
			}
			v = v.Elem()
		}
		fields := fieldsOf(v.Type())
		for _, f := range fields {
			fv := v.Field(f.Index)
			p := with(path, f.Name)
			switch f.Kind {
			case kStruct:
				walk(fv, p)
			case kSinkMap:
				keys := fv.MapKeys()
				sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
				for _, k := range keys {
					walk(fv.MapIndex(k), with(p, k.String()))
				}
			case kSecret:
				var file, env *string
				for _, g := range fields {
					switch g.Name {
					case f.Name + "_file":
						file = v.Field(g.Index).Addr().Interface().(*string)
					case f.Name + "_env":
						env = v.Field(g.Index).Addr().Interface().(*string)
					}
				}
				fn(join(p), fv.Addr().Interface().(*Secret), file, env)
			}
		}
	}
	walk(reflect.ValueOf(cfg), nil)
}

// resolveAbs is filepath.Abs that falls back to the input.
func resolveAbs(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

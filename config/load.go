package config

import (
	"cmp"
	"fmt"
	"math"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

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

// loader decodes one configuration: the YAML tree, then the environment,
// into a Config holding the defaults, recording where each key came from.
type loader struct {
	file     string
	environ  map[string]string
	env      string // the FEEDCDC_* variable being applied ("" while reading the file)
	problems []Problem
	warnings []string
	lines    map[string]int    // concrete key path -> line in the file
	envSet   map[string]string // concrete key path -> FEEDCDC_* variable that set it
}

func newLoader(name string, environ []string) *loader {
	l := &loader{file: name, environ: map[string]string{}, lines: map[string]int{}, envSet: map[string]string{}}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			l.environ[k] = v
		}
	}
	return l
}

func (l *loader) problemAt(line int, path, format string, args ...any) {
	if l.env != "" {
		line = 0
	}
	l.problems = append(l.problems, Problem{Path: path, File: l.file, Line: line, Env: l.env, Message: fmt.Sprintf(format, args...)})
}

// locate adds a problem found on the decoded config, with the line or
// variable of its key (or of the nearest section above it).
func (l *loader) locate(p Problem) {
	p.File = l.file
	for path := p.Path; path != "" && p.Env == "" && p.Line == 0; path = path[:max(strings.LastIndexByte(path, '.'), 0)] {
		p.Env, p.Line = l.envSet[path], l.lines[path]
	}
	l.problems = append(l.problems, p)
}

var lineRE = regexp.MustCompile(`line (\d+): `)

func (l *loader) load(data []byte) *Config {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		msg, line := strings.TrimPrefix(err.Error(), "yaml: "), 0
		if m := lineRE.FindStringSubmatch(msg); m != nil {
			line, _ = strconv.Atoi(m[1])
			msg = strings.Replace(msg, m[0], "", 1)
		}
		l.problemAt(line, "", "not valid YAML: %s; fix the syntax (indent with spaces, quote values containing ': ' or '#')", msg)
		return nil
	}
	cfg := Default()
	if len(doc.Content) > 0 {
		if root := doc.Content[0]; root.Kind == yaml.MappingNode {
			l.section(root, reflect.ValueOf(cfg).Elem(), nil)
		} else if !isNull(root) {
			l.problemAt(root.Line, "", "the file must be a YAML mapping of sections (source:, sinks:, ...), not a %s", nodeKind(root))
		}
	}
	l.applyEnv(cfg)
	for _, name := range cfg.sinkNames(func(*Sink) bool { return true }) {
		l.finishSink(name, cfg.Sinks[name])
	}
	l.resolveSecrets(cfg)
	// One problem per key: a key already reported while reading (e.g. a
	// literal secret, dropped) is not reported again as missing.
	reported := map[string]bool{}
	for _, p := range l.problems {
		reported[p.Path] = true
	}
	for _, p := range validate(cfg) {
		if !reported[p.Path] {
			l.locate(p)
		}
	}
	l.warnings = append(l.warnings, warnings(cfg)...)
	envLast := func(p Problem) int { // file problems in line order, then the environment's
		if p.Env != "" {
			return math.MaxInt
		}
		return p.Line
	}
	slices.SortStableFunc(l.problems, func(a, b Problem) int { return cmp.Compare(envLast(a), envLast(b)) })
	return cfg
}

// --- the decoder: one walk over the YAML tree into the typed struct ---------

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.Tag == "!!null" }

func resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func nodeKind(n *yaml.Node) string {
	switch {
	case n.Kind == yaml.MappingNode:
		return "section (key: value pairs)"
	case n.Kind == yaml.SequenceNode:
		return "list"
	case n.Kind == yaml.AliasNode:
		return "alias"
	case n.Tag == "!!str":
		return "string " + strconv.Quote(n.Value)
	}
	return "value " + n.Value
}

// entries calls fn for each key of the mapping n at path: first the keys of
// merged sections (<<: *anchor), so that its own keys win, then its own
// keys. A key given twice is reported, and fn is called for its first.
func (l *loader) entries(n *yaml.Node, path []string, fn func(k, v *yaml.Node)) {
	seen := map[string]int{}
	for _, merging := range []bool{true, false} {
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], resolve(n.Content[i+1])
			switch prev, dup := seen[k.Value]; {
			case (k.Tag == "!!merge") != merging:
			case merging:
				merged := []*yaml.Node{v}
				if v.Kind == yaml.SequenceNode {
					merged = v.Content
				}
				for _, m := range merged {
					if m = resolve(m); m.Kind != yaml.MappingNode {
						l.problemAt(k.Line, join(path), "<< must merge a section (<<: *anchor), not a %s", nodeKind(m))
					} else {
						l.entries(m, path, fn)
					}
				}
			case dup:
				l.problemAt(k.Line, join(with(path, k.Value)), "key %q is set twice (also on line %d); keep one", k.Value, prev)
			default:
				seen[k.Value] = k.Line
				if l.env == "" {
					l.lines[join(with(path, k.Value))] = k.Line
				}
				fn(k, v)
			}
		}
	}
}

// section decodes a mapping node into the struct v.
func (l *loader) section(n *yaml.Node, v reflect.Value, path []string) {
	l.entries(n, path, func(k, val *yaml.Node) {
		if f, ok := fieldByName(v.Type(), k.Value); ok {
			l.value(val, v.Field(f.Index), f, with(path, k.Value))
		} else {
			l.unknownKey(k, v.Type(), path)
		}
	})
}

func (l *loader) unknownKey(k *yaml.Node, t reflect.Type, path []string) {
	p := join(with(path, k.Value))
	var names, elsewhere []string // elsewhere: a key that exists elsewhere is misplaced, not misspelt
	for _, f := range fieldsOf(t) {
		names = append(names, f.Name)
		if strings.EqualFold(f.Name, k.Value) {
			l.problemAt(k.Line, p, "unknown key %q: keys are case-sensitive; write %q", k.Value, f.Name)
			return
		}
	}
	for _, key := range Keys() {
		if key.Path == k.Value || strings.HasSuffix(key.Path, "."+k.Value) {
			elsewhere = append(elsewhere, key.Path)
		}
	}
	slices.Sort(elsewhere)
	where := "at the top level"
	if len(path) > 0 {
		where = "under " + generalize(path)
	}
	switch c := closest(k.Value, names); {
	case c != "":
		l.problemAt(k.Line, p, "unknown key %q; did you mean %q (%s)?", k.Value, c, join(with(path, c)))
	case len(elsewhere) > 0:
		l.problemAt(k.Line, p, "unknown key %q here; it belongs at %s: move it there", k.Value, strings.Join(elsewhere, " or "))
	default:
		l.problemAt(k.Line, p, "unknown key %q; valid keys %s are: %s", k.Value, where, strings.Join(names, ", "))
	}
}

// value decodes one node into v, the field f at path p. A null keeps the
// default; a value that is reported is not stored.
func (l *loader) value(n *yaml.Node, v reflect.Value, f field, p []string) {
	path := join(p)
	if n = resolve(n); isNull(n) {
		return
	}
	if want, ok := map[kind]string{kStruct: "a section of key: value pairs", kSinkMap: "a section of named sinks (sinks: {main: {type: kafka, ...}})",
		kStringMap: "a map of " + f.Keys + ": value pairs"}[f.Kind]; ok && n.Kind != yaml.MappingNode {
		l.problemAt(n.Line, path, "must be %s, not a %s", want, nodeKind(n))
		return
	}
	switch f.Kind {
	case kStruct:
		if v.Kind() == reflect.Pointer && v.IsNil() { // a sink's kafka, http or file section
			v.Set(reflect.New(f.Type.Elem()))
			setDefaults(v)
			if l.env != "" {
				l.envSet[path] = l.env
			}
		}
		l.section(n, reflect.Indirect(v), p)
	case kSinkMap:
		l.sinks(n, v, p)
	case kStringMap:
		if v.IsNil() {
			v.Set(reflect.MakeMap(f.Type))
		}
		l.entries(n, p, func(k, mv *yaml.Node) {
			if mv.Kind != yaml.ScalarNode || isNull(mv) {
				l.problemAt(mv.Line, join(with(p, k.Value)), "must be a string, not a %s", nodeKind(mv))
			} else {
				v.SetMapIndex(reflect.ValueOf(k.Value), reflect.ValueOf(mv.Value))
			}
		})
	case kStrings:
		if n.Kind == yaml.MappingNode {
			l.problemAt(n.Line, path, "must be a list of strings like [a, b], not a %s", nodeKind(n))
			return
		}
		list := splitList(n.Value) // a scalar "a, b" is a comma-separated list; a sequence has no Value
		for _, e := range n.Content {
			if e = resolve(e); e.Kind != yaml.ScalarNode || isNull(e) {
				l.problemAt(e.Line, path, "list entries must be strings, not a %s; write e.g. [a, b]", nodeKind(e))
				return
			}
			list = append(list, e.Value)
		}
		v.Set(reflect.ValueOf(list))
	default:
		switch {
		case n.Kind != yaml.ScalarNode:
			l.problemAt(n.Line, path, "must be a single %s, not a %s", f.Kind, nodeKind(n))
		case f.Kind == kBool && l.env != "" && n.Tag != "!!bool":
			if b, err := strconv.ParseBool(n.Value); err == nil { // FEEDCDC_RAW_ENABLED=1
				v.SetBool(b)
			} else {
				l.problemAt(0, path, "must be true or false, got %q", n.Value)
			}
		case f.Kind == kSecret && l.env == "" && n.Value != "":
			l.problemAt(n.Line, path, "a literal secret is not allowed in the configuration file; remove it and set %s_env: VAR_NAME, %s_file: /path/to/file, or the environment variable %s", f.Name, f.Name, envName(path))
		default:
			if err := setScalar(n, v, f); err != nil {
				l.problemAt(n.Line, path, "%v", err)
			}
		}
	}
}

// sinks decodes the sinks section: the file's replaces the default sink
// set, a variable's sets a key of a sink defined (envKeys names no other).
func (l *loader) sinks(n *yaml.Node, v reflect.Value, p []string) {
	m := v.Interface().(map[string]*Sink)
	if l.env == "" {
		m = map[string]*Sink{}
	}
	l.entries(n, p, func(k, sv *yaml.Node) {
		if sv.Kind != yaml.MappingNode {
			l.problemAt(sv.Line, join(with(p, k.Value)), "sink %q must be a section (type: kafka|http|file plus its options), not a %s", k.Value, nodeKind(sv))
			return
		}
		if m[k.Value] == nil {
			m[k.Value] = &Sink{}
		}
		l.section(sv, reflect.ValueOf(m[k.Value]).Elem(), with(p, k.Value))
	})
	if len(n.Content) == 0 {
		l.problemAt(n.Line, join(p), "no sinks are defined; define at least one, e.g. sinks: {out: {type: file, file: {dir: feedcdc-data/out}}}, or remove the empty sinks: section to use the default file sink")
	}
	v.Set(reflect.ValueOf(m))
}

var sinkTypes = []string{"kafka", "http", "file"}

// sinkSection is the field of s holding its options of type t (kafka, http
// or file); nil when that section is not given.
func sinkSection(s *Sink, t string) reflect.Value {
	f, _ := fieldByName(reflect.TypeOf(*s), t)
	return reflect.ValueOf(s).Elem().Field(f.Index)
}

// finishSink infers the sink type from its sections and gives the sink
// the section of its type, at its defaults, when none was given.
func (l *loader) finishSink(name string, s *Sink) {
	path := "sinks." + name
	present := slices.DeleteFunc(slices.Clone(sinkTypes), func(t string) bool { return sinkSection(s, t).IsNil() })
	if s.Type == "" && len(present) == 1 {
		s.Type = present[0]
	} else if s.Type == "" && len(present) > 1 {
		l.problemAt(l.lines[path], path+".type", "sink %q has sections %s but no type; add type: with one of them and remove the others", name, strings.Join(present, " and "))
	}
	for _, t := range present {
		if s.Type != t && slices.Contains(sinkTypes, s.Type) {
			l.locate(Problem{Path: path + "." + t, Message: fmt.Sprintf("section %s is set but the sink's type is %s; remove the %s section or change type to %s", t, s.Type, t, t)})
		}
	}
	if slices.Contains(sinkTypes, s.Type) && sinkSection(s, s.Type).IsNil() {
		sec := sinkSection(s, s.Type)
		sec.Set(reflect.New(sec.Type().Elem()))
		setDefaults(sec)
	}
}

// --- environment overrides ------------------------------------------------------

// envKeys maps every FEEDCDC_* name to the key path it sets: every leaf key
// of every section of the sinks of cfg, and the routes of each feed. (The
// keys of the other maps, header and Kafka config names, have no spelling
// in a variable name.)
func envKeys(cfg *Config) map[string]string {
	all := Default()
	all.Sinks = map[string]*Sink{}
	for name := range cfg.Sinks {
		all.Sinks[name] = sinkPrototype()
	}
	out := map[string]string{}
	eachKey(reflect.ValueOf(all), nil, func(_ reflect.Value, f field, p []string) {
		switch {
		case f.Kind != kStringMap:
			out[envName(join(p))] = join(p)
		case f.Keys == "feed":
			for _, n := range FeedNames {
				out[envName(join(with(p, n)))] = join(with(p, n))
			}
		}
	})
	return out
}

// applyEnv applies the FEEDCDC_* overrides, in name order, each as a YAML
// document holding its one key, through the decoder of the file (so a list
// is comma-separated, and a sink section a variable names is given).
func (l *loader) applyEnv(cfg *Config) {
	var names []string
	for k := range l.environ {
		if strings.HasPrefix(k, EnvPrefix) {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	keys := envKeys(cfg)
	referenced := map[string]bool{}
	forEachSecret(cfg, func(_ string, _ *Secret, _, env *string) { referenced[*env] = true })
	for _, name := range names {
		path, ok := keys[name]
		words := strings.Split(name, "_")
		switch {
		case ok:
			doc := scalarNode(l.environ[name])
			for _, k := range slices.Backward(strings.Split(path, ".")) {
				doc = &yaml.Node{Kind: yaml.MappingNode, Content: []*yaml.Node{{Kind: yaml.ScalarNode, Value: k}, doc}}
			}
			l.env, l.envSet[path] = name, name
			l.section(doc, reflect.ValueOf(cfg).Elem(), nil)
			l.env = ""
		case !referenced[name] && name != "FEEDCDC_CONFIG" && !slices.Contains(words, "TEST") && !slices.Contains(words, "BENCH"):
			l.unknownEnv(name, keys, cfg)
		}
	}
}

// unknownEnv reports a FEEDCDC_* variable that names no key: an error when
// its first word names a section (FEEDCDC_SOURCE_HEARBEAT is a typo of a
// key, as it would be in the file), a warning otherwise (other tools use the
// prefix too). Variables with a TEST or BENCH word (the test suite's) and
// FEEDCDC_CONFIG are not reported at all.
func (l *loader) unknownEnv(name string, keys map[string]string, cfg *Config) {
	section, _, _ := strings.Cut(strings.TrimPrefix(name, EnvPrefix), "_")
	f, isSection := fieldByName(reflect.TypeOf(Config{}), strings.ToLower(section))
	isSection = isSection && (f.Kind == kStruct || f.Kind == kSinkMap) && strings.Contains(name[len(EnvPrefix):], "_")
	prefix := EnvPrefix + section + "_"
	if isSection && f.Kind == kSinkMap {
		prefix = "-" // suggest only keys of a sink named in the variable
		for n := range cfg.Sinks {
			if p := envName("sinks."+n) + "_"; strings.HasPrefix(name, p) {
				prefix = p
			}
		}
	}
	var cands []string
	for c := range keys {
		if !isSection || strings.HasPrefix(c, prefix) {
			cands = append(cands, c)
		}
	}
	slices.Sort(cands)
	hint := ""
	if c := closest(name, cands); c != "" {
		hint = fmt.Sprintf("; did you mean %s?", c)
	}
	switch {
	case !isSection:
		l.warnings = append(l.warnings, fmt.Sprintf("environment variable %s matches no configuration key and is ignored%s", name, hint))
		return
	case hint == "" && f.Kind == kSinkMap:
		hint = "; FEEDCDC_SINKS_<NAME>_<KEY> variables override keys of sinks defined in the file (or of the default sink \"file\")"
	case hint == "":
		hint = fmt.Sprintf("; FEEDCDC_%s_<KEY> variables must name a key of %s (docs/configuration.md lists them)", section, strings.ToLower(section))
	}
	l.problems = append(l.problems, Problem{Path: strings.ToLower(section), File: l.file, Env: name, Message: "matches no configuration key" + hint + "; fix the name or unset it"})
}

// --- secrets ------------------------------------------------------------------

// resolveSecrets fills every Secret not set by its FEEDCDC_* override from
// its _file or _env sibling.
func (l *loader) resolveSecrets(cfg *Config) {
	forEachSecret(cfg, func(path string, sec *Secret, file, env *string) {
		name := path[strings.LastIndexByte(path, '.')+1:]
		fail := func(key, format string, args ...any) {
			l.locate(Problem{Path: path + key, Message: fmt.Sprintf(format, args...)})
		}
		switch _, overridden := l.envSet[path]; {
		case *file != "" && *env != "":
			fail("_file", "both %s_file and %s_env are set; keep one", name, name)
		case overridden:
		case *file != "":
			data, err := os.ReadFile(*file)
			s := strings.TrimRight(string(data), "\r\n")
			if err != nil {
				fail("_file", "cannot read the secret: %v; create the file or fix the path", err)
			} else if s == "" {
				fail("_file", "secret file %s is empty; write the %s into it", *file, name)
			} else {
				if st, err := os.Stat(*file); err == nil && st.Mode().Perm()&0o077 != 0 {
					l.warnings = append(l.warnings, fmt.Sprintf("%s_file: secret file %s is readable by group or others (mode %v); run chmod 600 %s", path, *file, st.Mode().Perm(), *file))
				}
				*sec = Secret(s)
			}
		case *env != "":
			if val, ok := l.environ[*env]; ok {
				*sec = Secret(val)
			} else {
				fail("_env", "environment variable %s is not set; export it (export %s=...) or remove %s_env", *env, *env, name)
			}
		}
	})
}

// forEachSecret calls fn for every Secret field with its _file and _env
// siblings. Paths are concrete (sinks.main.kafka.sasl.password).
func forEachSecret(cfg *Config, fn func(path string, sec *Secret, file, env *string)) {
	eachKey(reflect.ValueOf(cfg), nil, func(v reflect.Value, f field, p []string) {
		sib := func(suffix string) *string {
			return v.FieldByName(v.Type().Field(f.Index).Name + suffix).Addr().Interface().(*string)
		}
		if f.Kind == kSecret {
			fn(join(p), v.Field(f.Index).Addr().Interface().(*Secret), sib("File"), sib("Env"))
		}
	})
}

package config

import (
	"cmp"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// kind classifies a config field for decoding, validation and docs; it is
// how the field's type is described to users.
type kind string

const (
	kString    kind = "string"
	kSecret    kind = "secret"
	kSchedule  kind = "schedule"
	kInt       kind = "integer" // signed or unsigned
	kBool      kind = "boolean"
	kDuration  kind = "duration"
	kByteSize  kind = "size"
	kStrings   kind = "list of strings"
	kStringMap kind = "map of strings" // map[string]string
	kStruct    kind = "section"
	kSinkMap   kind = "map of sinks" // map[string]*Sink
)

func kindOf(t reflect.Type) kind {
	if k, ok := map[reflect.Type]kind{reflect.TypeFor[Duration](): kDuration, reflect.TypeFor[ByteSize](): kByteSize,
		reflect.TypeFor[Secret](): kSecret, reflect.TypeFor[Schedule](): kSchedule}[t]; ok {
		return k
	}
	switch t.Kind() {
	case reflect.String:
		return kString
	case reflect.Int, reflect.Int64, reflect.Uint32:
		return kInt
	case reflect.Bool:
		return kBool
	case reflect.Slice:
		return kStrings
	case reflect.Map:
		if t.Elem().Kind() == reflect.String {
			return kStringMap
		}
		return kSinkMap
	case reflect.Struct, reflect.Pointer:
		return kStruct
	}
	panic(fmt.Sprintf("config: unsupported field type %s", t))
}

// field is one key of a config section; Tag holds its doc, default, enum,
// min, max, required, pattern, ref and keys tags.
type field struct {
	Name  string // yaml key
	Index int    // struct field index
	Type  reflect.Type
	Kind  kind
	Tag   reflect.StructTag
	Keys  string // what the keys of a map are: its placeholder in docs and its entries' check (entryChecks)
}

// fieldsOf lists the keys of a section type (struct or pointer to struct).
func fieldsOf(t reflect.Type) []field {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var out []field
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		name, _, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
		if name != "-" {
			out = append(out, field{Name: name, Index: i, Type: sf.Type, Kind: kindOf(sf.Type), Tag: sf.Tag, Keys: sf.Tag.Get("keys")})
		}
	}
	return out
}

func fieldByName(t reflect.Type, name string) (field, bool) {
	for _, f := range fieldsOf(t) {
		if f.Name == name {
			return f, true
		}
	}
	return field{}, false
}

func (f field) enum() []string {
	if e, ok := f.Tag.Lookup("enum"); ok {
		return strings.Split(e, ",")
	}
	return nil
}

// withDefaults sets every field of *p (recursively) to its default tag;
// lists and maps become empty, sections behind pointers stay nil.
func withDefaults[T any](p *T) *T {
	setDefaults(reflect.ValueOf(p).Elem())
	return p
}

func setDefaults(v reflect.Value) {
	eachKey(v, nil, func(parent reflect.Value, f field, _ []string) {
		fv := parent.Field(f.Index)
		switch def, ok := f.Tag.Lookup("default"); {
		case f.Kind == kStrings:
			fv.Set(reflect.ValueOf(splitList(def)))
		case f.Kind == kStringMap:
			fv.Set(reflect.MakeMap(f.Type))
		case ok:
			if err := setScalar(scalarNode(def), fv, f); err != nil {
				panic(fmt.Sprintf("config: default of %s: %v", f.Name, err))
			}
		}
	})
}

// eachKey is the one walk over the configuration tree: it calls leaf for
// every key below v (a section, or a pointer to one) that is not itself a
// section, with the struct holding it and its concrete path. It descends
// into sections that are set and into the sinks map in name order.
func eachKey(v reflect.Value, path []string, leaf func(parent reflect.Value, f field, p []string)) {
	if v = reflect.Indirect(v); !v.IsValid() {
		return
	}
	for _, f := range fieldsOf(v.Type()) {
		fv, p := v.Field(f.Index), with(path, f.Name)
		switch f.Kind {
		case kStruct:
			eachKey(fv, p, leaf)
		case kSinkMap:
			keys := fv.MapKeys()
			slices.SortFunc(keys, func(a, b reflect.Value) int { return strings.Compare(a.String(), b.String()) })
			for _, k := range keys {
				eachKey(fv.MapIndex(k), with(p, k.String()), leaf)
			}
		default:
			leaf(v, f, p)
		}
	}
}

// scalarNode is a plain YAML scalar holding s, typed as YAML would type it
// (an empty value is the empty string, not null).
func scalarNode(s string) *yaml.Node {
	n := &yaml.Node{Kind: yaml.ScalarNode, Value: s}
	if n.Tag = n.ShortTag(); n.Tag == "!!null" {
		n.Tag = "!!str"
	}
	return n
}

func splitList(s string) []string {
	out := []string{}
	for _, e := range strings.Split(s, ",") {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	return out
}

// setScalar stores the scalar n in v, the field f, or says what is wrong
// with it. Secrets are handled by the caller.
func setScalar(n *yaml.Node, v reflect.Value, f field) error {
	s := n.Value
	switch f.Kind {
	case kInt:
		if n.Tag != "!!int" {
			return fmt.Errorf("must be an integer, got %s; write e.g. %s: %s", nodeKind(n), f.Name, cmp.Or(f.Tag.Get("default"), f.Tag.Get("min"), "1"))
		}
		i, err := strconv.ParseInt(strings.ReplaceAll(s, "_", ""), 0, 64)
		if unsigned := v.Kind() == reflect.Uint32; err != nil || unsigned && (i < 0 || v.OverflowUint(uint64(i))) || !unsigned && v.OverflowInt(i) {
			return fmt.Errorf("%s is out of range; allowed: %s", s, cmp.Or(allowed(f), "a non-negative integer"))
		} else if unsigned {
			v.SetUint(uint64(i))
		} else {
			v.SetInt(i)
		}
	case kBool:
		if n.Tag != "!!bool" {
			return fmt.Errorf("must be true or false, got %s", nodeKind(n))
		}
		v.SetBool(strings.EqualFold(s, "true"))
	case kDuration:
		if (n.Tag == "!!int" || n.Tag == "!!float") && s != "0" {
			return fmt.Errorf("%s has no unit; write e.g. %ss, %sms or %sm", s, s, s, s)
		}
		d, err := ParseDuration(s)
		if err != nil {
			return err
		}
		v.SetInt(int64(d))
	case kByteSize:
		b, err := ParseByteSize(s)
		if n.Tag == "!!int" && err != nil {
			return fmt.Errorf("%s is not a size; write a non-negative byte count or e.g. 64MiB", s)
		} else if err != nil {
			return err
		}
		v.SetInt(int64(b))
	default:
		v.SetString(s)
	}
	return nil
}

// Key documents one configuration key.
type Key struct {
	// Path is the dotted key path. Map entries use placeholders:
	// sinks.<name>..., feeds.<feed>..., http.routes.<feed>, http.headers.<header>.
	Path    string
	Type    string // string, integer, boolean, duration, size, schedule, secret, list of strings, map of strings
	Default string // formatted default ("" when empty)
	Allowed string // e.g. "one of none, gzip" or "1..65535"
	Doc     string
}

// Keys lists every leaf key of the configuration in file order, with its
// default and documentation. It drives docs/configuration.md and the tests
// that keep config.yaml complete.
func Keys() []Key {
	cfg := Default()
	cfg.Sinks = map[string]*Sink{"<name>": sinkPrototype()}
	var out []Key
	seen := map[string]bool{}
	eachKey(reflect.ValueOf(cfg), nil, func(parent reflect.Value, f field, p []string) {
		path := generalize(p)
		if seen[path] { // the second and later feeds
			return
		}
		seen[path] = true
		k := Key{Path: path, Type: string(f.Kind), Default: formatValue(parent.Field(f.Index)), Allowed: allowed(f), Doc: f.Tag.Get("doc")}
		switch {
		case f.Kind == kStringMap:
			k.Path, k.Type, k.Default = path+".<"+f.Keys+">", "string", ""
			if f.Keys == "feed" {
				k.Default = "the feed name"
			}
		case f.Name == "type" && p[0] == "sinks":
			k.Default = "inferred from the section present"
		}
		out = append(out, k)
	})
	return out
}

// sinkPrototype is a sink with every section at its defaults: the keys a
// sink can have.
func sinkPrototype() *Sink {
	return &Sink{Kafka: DefaultKafkaSink(), HTTP: DefaultHTTPSink(), File: DefaultFileSink()}
}

var envReplacer = strings.NewReplacer(".", "_", "<", "", ">", "")

func envName(path string) string {
	return EnvPrefix + strings.ToUpper(envReplacer.Replace(path))
}

func allowed(f field) string {
	lo, hi := f.Tag.Get("min"), f.Tag.Get("max")
	switch {
	case f.enum() != nil:
		vals := strings.Join(f.enum(), ", ")
		if strings.HasPrefix(vals, ",") {
			vals = `""` + vals
		}
		return "one of " + vals
	case lo != "" && hi != "":
		return lo + ".." + hi
	case hi != "":
		return "0.." + hi
	case f.Kind == kSchedule:
		return "duration or cron expression"
	}
	return ""
}

// formatValue renders a value the way it is written in config.yaml.
func formatValue(v reflect.Value) string {
	if l, ok := v.Interface().([]string); ok {
		return "[" + strings.Join(l, ", ") + "]"
	}
	return fmt.Sprint(v.Interface())
}

// generalize turns a concrete path into its placeholder form
// (sinks.main.kafka.acks -> sinks.<name>.kafka.acks).
func generalize(path []string) string {
	g := append([]string(nil), path...)
	for i := range g {
		switch {
		case i == 1 && g[0] == "sinks":
			g[i] = "<name>"
		case i == 1 && g[0] == "feeds" && isFeedName(g[i]):
			g[i] = "<feed>"
		case i == 2 && g[0] == "raw" && (g[1] == "mask_columns" || g[1] == "key_columns"):
			g[i] = map[string]string{"mask_columns": "<column>", "key_columns": "<table>"}[g[1]]
		case i == 4 && g[0] == "sinks" && (g[3] == "routes" || g[3] == "headers" || g[3] == "topic_configs" || g[3] == "producer"):
			g[i] = map[string]string{"routes": "<feed>", "headers": "<header>", "topic_configs": "<config>", "producer": "<producer>"}[g[3]]
		}
	}
	return join(g)
}

func isFeedName(s string) bool { return slices.Contains(FeedNames, s) }

func join(path []string) string { return strings.Join(path, ".") }

func with(path []string, name string) []string {
	return append(append([]string(nil), path...), name)
}

// ReferenceMarkdown renders Keys() as the Markdown tables of
// docs/configuration.md (one table per top-level section).
func ReferenceMarkdown() string {
	var b strings.Builder
	section := ""
	esc := strings.NewReplacer("|", "\\|", "<", "&lt;", ">", "&gt;")
	for _, k := range Keys() {
		if top, _, _ := strings.Cut(k.Path, "."); top != section {
			section = top
			fmt.Fprintf(&b, "\n### `%s`\n\n| Key | Type | Default | Allowed | Meaning |\n|---|---|---|---|---|\n", top)
		}
		def := k.Default
		if def != "" {
			def = "`" + def + "`"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s |\n", k.Path, k.Type, def, strings.ReplaceAll(k.Allowed, "|", "\\|"), esc.Replace(k.Doc))
	}
	return strings.TrimLeft(b.String(), "\n")
}

// editDistance is the optimal-string-alignment distance (Levenshtein plus
// transposition of adjacent characters), case-insensitive.
func editDistance(a, b string) int {
	ra, rb := []rune(strings.ToLower(a)), []rune(strings.ToLower(b))
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}

// closest returns the candidate nearest to word, if it is near enough to be
// a plausible typo (distance <= max(2, len/3)); "" otherwise. Candidates
// that contain the word or vice versa ("password" for "pass") count as 2.
func closest(word string, candidates []string) string {
	best, bestD := "", 1<<30
	lw := strings.ToLower(word)
	for _, c := range candidates {
		if c == "" {
			continue
		}
		d, lc := editDistance(word, c), strings.ToLower(c)
		if d > 0 && len(lw) >= 3 && (strings.Contains(lc, lw) || strings.Contains(lw, lc)) {
			d = min(d, 2)
		}
		if d < bestD {
			best, bestD = c, d
		}
	}
	if bestD <= max(2, len([]rune(word))/3) {
		return best
	}
	return ""
}

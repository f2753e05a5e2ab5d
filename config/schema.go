package config

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"
)

// kind classifies a config field for parsing, validation and docs.
type kind int

const (
	kString kind = iota
	kSecret
	kSchedule
	kInt
	kUint
	kBool
	kDuration
	kByteSize
	kStrings
	kStringMap // map[string]string
	kStruct
	kSinkMap // map[string]*Sink
)

var (
	tDuration = reflect.TypeOf(Duration(0))
	tByteSize = reflect.TypeOf(ByteSize(0))
	tSecret   = reflect.TypeOf(Secret(""))
	tSchedule = reflect.TypeOf(Schedule(""))
	tFeed     = reflect.TypeOf(Feed{})
)

func kindOf(t reflect.Type) kind {
	switch t {
	case tDuration:
		return kDuration
	case tByteSize:
		return kByteSize
	case tSecret:
		return kSecret
	case tSchedule:
		return kSchedule
	}
	switch t.Kind() {
	case reflect.String:
		return kString
	case reflect.Int, reflect.Int64, reflect.Int32:
		return kInt
	case reflect.Uint32, reflect.Uint, reflect.Uint64:
		return kUint
	case reflect.Bool:
		return kBool
	case reflect.Slice:
		return kStrings
	case reflect.Map:
		if t.Elem().Kind() == reflect.String {
			return kStringMap
		}
		return kSinkMap
	case reflect.Struct:
		return kStruct
	case reflect.Pointer:
		return kStruct
	}
	panic(fmt.Sprintf("config: unsupported field type %s", t))
}

// typeName is how a kind is described to users.
func (k kind) typeName() string {
	switch k {
	case kString:
		return "string"
	case kSecret:
		return "secret"
	case kSchedule:
		return "schedule"
	case kInt, kUint:
		return "integer"
	case kBool:
		return "boolean"
	case kDuration:
		return "duration"
	case kByteSize:
		return "size"
	case kStrings:
		return "list of strings"
	case kStringMap:
		return "map of strings"
	case kStruct:
		return "section"
	case kSinkMap:
		return "map of sinks"
	}
	return "?"
}

// field is one key of a config section.
type field struct {
	Name     string // yaml key
	Index    int    // struct field index
	Type     reflect.Type
	Kind     kind
	Doc      string
	Enum     []string // allowed values (may contain "")
	Min, Max string
	Secret   bool
	Required bool
	Ref      string // "sink": values name sinks
	Keys     string // map key placeholder: "feed", "header"
	Pattern  string // "listen", "name"
}

// fieldCache memoizes fieldsOf: derived from types only, never mutated
// after being stored.
var fieldCache sync.Map // reflect.Type -> []field

// fieldsOf lists the keys of a section type (struct or pointer to struct).
// The result is shared: do not modify it.
func fieldsOf(t reflect.Type) []field {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if f, ok := fieldCache.Load(t); ok {
		return f.([]field)
	}
	f := computeFields(t)
	fieldCache.Store(t, f)
	return f
}

func computeFields(t reflect.Type) []field {
	var out []field
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		name, _, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		f := field{
			Name: name, Index: i, Type: sf.Type, Kind: kindOf(sf.Type),
			Doc: sf.Tag.Get("doc"), Min: sf.Tag.Get("min"), Max: sf.Tag.Get("max"),
			Secret: sf.Tag.Get("secret") == "true", Required: sf.Tag.Get("required") == "true",
			Ref: sf.Tag.Get("ref"), Keys: sf.Tag.Get("keys"), Pattern: sf.Tag.Get("pattern"),
		}
		if e, ok := sf.Tag.Lookup("enum"); ok {
			f.Enum = strings.Split(e, ",")
		}
		out = append(out, f)
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

// Key documents one configuration key.
type Key struct {
	// Path is the dotted key path. Map entries use placeholders:
	// sinks.<name>..., feeds.<feed>..., http.routes.<feed>, http.headers.<header>.
	Path    string
	Type    string // string, integer, boolean, duration, size, schedule, secret, list of strings, map of strings
	Default string // formatted default ("" when empty)
	Allowed string // e.g. "one of none, gzip" or "1..65535"
	Doc     string
	Env     string // FEEDCDC_* override, with placeholders upper-cased
}

// Keys lists every leaf key of the configuration in file order, with its
// default and documentation. It drives docs/configuration.md and the tests
// that keep config.yaml complete.
func Keys() []Key {
	var out []Key
	walkKeys(reflect.ValueOf(Default()).Elem(), nil, &out)
	return out
}

var envReplacer = strings.NewReplacer(".", "_", "<", "", ">", "")

func envName(path string) string {
	return "FEEDCDC_" + strings.ToUpper(envReplacer.Replace(path))
}

func sinkPrototype() *Sink {
	return &Sink{Kafka: DefaultKafkaSink(), HTTP: DefaultHTTPSink(), File: DefaultFileSink()}
}

func walkKeys(v reflect.Value, path []string, out *[]Key) {
	if v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	feedDone := false
	for _, f := range fieldsOf(v.Type()) {
		fv := v.Field(f.Index)
		name := f.Name
		if f.Type == tFeed {
			if feedDone {
				continue
			}
			feedDone, name = true, "<feed>"
		}
		p := append(append([]string(nil), path...), name)
		switch f.Kind {
		case kStruct:
			if fv.Kind() == reflect.Pointer && fv.IsNil() {
				fv = reflect.New(f.Type.Elem())
			}
			walkKeys(fv, p, out)
		case kSinkMap:
			walkKeys(reflect.ValueOf(sinkPrototype()), append(p, "<name>"), out)
		case kStringMap:
			ph := "<" + f.Keys + ">"
			def := ""
			if f.Keys == "feed" {
				def = "the feed name"
			}
			*out = append(*out, Key{Path: strings.Join(append(p, ph), "."), Type: "string", Default: def, Doc: f.Doc, Env: envName(strings.Join(append(p, ph), "."))})
		default:
			k := Key{Path: strings.Join(p, "."), Type: f.Kind.typeName(), Default: formatValue(fv, f), Allowed: allowed(f), Doc: f.Doc, Env: envName(strings.Join(p, "."))}
			if f.Secret {
				k.Default = ""
			}
			if strings.HasSuffix(k.Path, ".type") && len(path) > 0 && path[len(path)-1] == "<name>" {
				k.Default = "inferred from the section present"
			}
			*out = append(*out, k)
		}
	}
}

func allowed(f field) string {
	switch {
	case f.Enum != nil:
		var vals []string
		for _, e := range f.Enum {
			if e == "" {
				e = `""`
			}
			vals = append(vals, e)
		}
		return "one of " + strings.Join(vals, ", ")
	case f.Min != "" && f.Max != "":
		return f.Min + ".." + f.Max
	case f.Max != "":
		return "0.." + f.Max
	case f.Kind == kSchedule:
		return "duration or cron expression"
	}
	return ""
}

// formatValue renders a value the way it is written in config.yaml.
func formatValue(v reflect.Value, f field) string {
	switch f.Kind {
	case kStrings:
		if v.Len() == 0 {
			return "[]"
		}
		var s []string
		for i := 0; i < v.Len(); i++ {
			s = append(s, v.Index(i).String())
		}
		return "[" + strings.Join(s, ", ") + "]"
	case kDuration:
		return Duration(v.Int()).String()
	case kByteSize:
		return ByteSize(v.Int()).String()
	case kBool:
		return fmt.Sprint(v.Bool())
	case kInt:
		return fmt.Sprint(v.Int())
	case kUint:
		return fmt.Sprint(v.Uint())
	}
	return v.String()
}

// allPaths returns every known path in the placeholder form, for
// "did you mean" suggestions of misplaced keys.
func allPaths() []string {
	var out []string
	for _, k := range Keys() {
		out = append(out, k.Path)
	}
	sort.Strings(out)
	return out
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
		case i == 4 && g[0] == "sinks" && g[2] == "http" && g[3] == "routes":
			g[i] = "<feed>"
		case i == 4 && g[0] == "sinks" && g[2] == "http" && g[3] == "headers":
			g[i] = "<header>"
		case i == 4 && g[0] == "sinks" && g[2] == "kafka" && g[3] == "topic_configs":
			g[i] = "<config>"
		}
	}
	return strings.Join(g, ".")
}

func isFeedName(s string) bool {
	for _, n := range FeedNames {
		if n == s {
			return true
		}
	}
	return false
}

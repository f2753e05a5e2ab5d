package config

import (
	"flag"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

var update = flag.Bool("update", false, "rewrite the generated key reference in docs/configuration.md")

const (
	examplePath = "../config.yaml"
	docsPath    = "../docs/configuration.md"
	beginMarker = "<!-- BEGIN GENERATED KEY REFERENCE (go test ./config -run TestDocs -update) -->"
	endMarker   = "<!-- END GENERATED KEY REFERENCE -->"
)

// TestExampleConfigLoads: the documented example loads without problems or
// warnings and with no environment at all.
func TestExampleConfigLoads(t *testing.T) {
	cfg, err := Load(examplePath, nil)
	if err != nil {
		t.Fatalf("config.yaml does not load: %v", err)
	}
	if len(cfg.Warnings) > 0 {
		t.Fatalf("config.yaml loads with warnings: %q", cfg.Warnings)
	}
	if cfg.Source.User != "feedcdc" || cfg.Sinks["file"] == nil || cfg.Sinks["file"].File == nil {
		t.Fatalf("unexpected example config: %s", cfg.Redacted())
	}
}

var commentedKeyRE = regexp.MustCompile(`^(\s*)# ((?:\s*# )*\s*[a-z][A-Za-z0-9_]*:(?:\s|$))`)

// uncomment turns the optional keys shown commented out ("# key: value")
// into real keys, repeatedly (nested examples), skipping the header comment
// block at the top of the file.
func uncomment(src string) string {
	lines := strings.Split(src, "\n")
	inHeader := true
	for i, line := range lines {
		if inHeader {
			if strings.HasPrefix(line, "#") || strings.TrimSpace(line) == "" {
				continue
			}
			inHeader = false
		}
		for {
			m := commentedKeyRE.FindStringSubmatchIndex(line)
			if m == nil {
				break
			}
			line = line[:m[3]] + line[m[4]:]
		}
		lines[i] = line
	}
	return strings.Join(lines, "\n")
}

// leafPaths collects the placeholder form of every leaf key in a YAML tree.
func leafPaths(n *yaml.Node, path []string, out map[string]int) {
	if n.Kind != yaml.MappingNode {
		out[generalize(path)] = n.Line
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		leafPaths(n.Content[i+1], with(path, n.Content[i].Value), out)
	}
}

func exampleTree(t *testing.T, uncommented bool) *yaml.Node {
	t.Helper()
	src, err := os.ReadFile(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	text := string(src)
	if uncommented {
		text = uncomment(text)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(text), &doc); err != nil {
		t.Fatalf("config.yaml with its commented-out keys enabled is not valid YAML: %v", err)
	}
	return doc.Content[0]
}

// TestExampleDocumentsEveryKey: every key of the Config struct appears in
// config.yaml (set, or shown commented out), and every key written there,
// commented or not, is a real key with a value of the right type.
func TestExampleDocumentsEveryKey(t *testing.T) {
	root := exampleTree(t, true)
	l := newLoader("config.yaml(uncommented)", nil)
	l.section(root, reflect.New(reflect.TypeOf(Config{})).Elem(), nil) // decode into a throw-away value
	for _, p := range l.problems {
		t.Errorf("config.yaml documents an invalid key: %s", p)
	}
	root = exampleTree(t, true)
	found := map[string]int{}
	leafPaths(root, nil, found)
	for _, k := range Keys() {
		if _, ok := found[k.Path]; !ok {
			t.Errorf("config.yaml does not document %s (add it, commented out if optional)", k.Path)
		}
	}
}

// TestExampleValuesAreDefaults: a key set in config.yaml shows its default,
// unless its comment says "Default:" to flag an example value.
func TestExampleValuesAreDefaults(t *testing.T) {
	root := exampleTree(t, false)
	defaults := map[string]string{}
	for _, k := range Keys() {
		defaults[k.Path] = k.Default
	}
	var walk func(n *yaml.Node, path []string, comment string)
	walk = func(n *yaml.Node, path []string, comment string) {
		if n.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(n.Content); i += 2 {
				k := n.Content[i]
				walk(n.Content[i+1], with(path, k.Value), k.HeadComment+k.LineComment)
			}
			return
		}
		g := generalize(path)
		if strings.HasPrefix(g, "sinks.") && strings.HasSuffix(g, ".type") {
			return
		}
		got := n.Value
		if n.Kind == yaml.SequenceNode {
			var vals []string
			for _, e := range n.Content {
				vals = append(vals, e.Value)
			}
			got = "[" + strings.Join(vals, ", ") + "]"
		}
		want, ok := defaults[g]
		if !ok {
			t.Errorf("config.yaml:%d: %s is not a key", n.Line, g)
			return
		}
		if got != want && !strings.Contains(comment, "Default:") {
			t.Errorf("config.yaml:%d: %s is %q but its default is %q; write the default or say \"Default: %s\" in its comment", n.Line, g, got, want, want)
		}
	}
	walk(root, nil, "")
}

// TestDocsListEveryKey: docs/configuration.md carries the generated
// reference, up to date with the struct (run with -update to regenerate).
func TestDocsListEveryKey(t *testing.T) {
	src, err := os.ReadFile(docsPath)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(src)
	i, j := strings.Index(doc, beginMarker), strings.Index(doc, endMarker)
	if i < 0 || j < i {
		t.Fatalf("%s lacks the generated reference markers %q ... %q", docsPath, beginMarker, endMarker)
	}
	want := beginMarker + "\n\n" + ReferenceMarkdown() + "\n" + endMarker
	got := doc[i : j+len(endMarker)]
	if got != want {
		if *update {
			if err := os.WriteFile(docsPath, []byte(doc[:i]+want+doc[j+len(endMarker):]), 0o644); err != nil {
				t.Fatal(err)
			}
			t.Logf("rewrote the key reference in %s", docsPath)
			return
		}
		t.Fatalf("the key reference in %s is out of date: run go test ./config -run TestDocs -update", docsPath)
	}
	for _, k := range Keys() {
		if !strings.Contains(doc, "`"+k.Path+"`") {
			t.Errorf("%s does not list %s", docsPath, k.Path)
		}
	}
}

// TestExampleSinksLoad: the kafka and http sinks shown commented out in
// config.yaml are valid when enabled (one level of "# " removed, so nested
// alternatives stay commented), with the secrets they name provided.
func TestExampleSinksLoad(t *testing.T) {
	src, err := os.ReadFile(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(src), "\n")
	in := false
	oneLevel := regexp.MustCompile(`^(\s*)# ((?:\s*# )?\s*[a-z][A-Za-z0-9_]*:(?:\s|$))`)
	for i, line := range lines {
		if strings.HasPrefix(line, "sinks:") {
			in = true
			continue
		}
		if in && len(line) > 0 && line[0] != ' ' && line[0] != '#' {
			break
		}
		if in {
			if m := oneLevel.FindStringSubmatchIndex(line); m != nil && !strings.HasPrefix(strings.TrimSpace(line[m[4]:]), "#") {
				lines[i] = line[:m[3]] + line[m[4]:]
			}
		}
	}
	cfg, err := LoadBytes([]byte(strings.Join(lines, "\n")), "config.yaml(sinks enabled)", []string{"KAFKA_PASSWORD=k", "FEED_API_KEY=a"})
	if err != nil {
		t.Fatalf("the example sinks do not load: %v", err)
	}
	if cfg.Sinks["kafka"] == nil || cfg.Sinks["kafka"].Kafka == nil || cfg.Sinks["http"] == nil || cfg.Sinks["http"].HTTP == nil || len(cfg.Sinks) != 3 {
		t.Fatalf("example sinks not enabled:\n%s", cfg.Redacted())
	}
	if tc := cfg.Sinks["kafka"].Kafka.TopicConfigs; tc["retention.ms"] != "604800000" || tc["min.insync.replicas"] != "2" || len(tc) != 2 {
		t.Fatalf("topic_configs = %v", tc)
	}
	if cfg.Sinks["kafka"].Kafka.SASL.Password.Value() != "k" || cfg.Sinks["http"].HTTP.APIKey.Value() != "a" {
		t.Fatal("example secrets not resolved")
	}
}

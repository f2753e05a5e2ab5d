package config

import (
	"hash/fnv"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Redacted renders the effective configuration as YAML with every secret
// masked as "<redacted>" (unset secrets are ""). Use it for `status`, logs
// and support bundles.
func (c *Config) Redacted() string {
	out, err := yaml.Marshal(c)
	if err != nil {
		return "<config: " + err.Error() + ">"
	}
	return string(out)
}

// RedactedMap is Redacted as a generic map keyed like config.yaml, for JSON
// output (`status --json`, the dashboard).
func (c *Config) RedactedMap() map[string]any {
	var m map[string]any
	if err := yaml.Unmarshal([]byte(c.Redacted()), &m); err != nil {
		return map[string]any{"error": err.Error()}
	}
	return m
}

// Addr is host:port of the source.
func (s *Source) Addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// String is Redacted.
func (c *Config) String() string { return c.Redacted() }

// EffectiveServerID is source.server_id, or when it is 0 a stable id derived
// from the machine's host name and the absolute state.path, in
// 1000000000..4294967295 (above the small ids DBAs usually hand out), so two
// connectors on different hosts or with different state files do not clash.
func (c *Config) EffectiveServerID() uint32 {
	if c.Source.ServerID != 0 {
		return c.Source.ServerID
	}
	host, _ := os.Hostname()
	h := fnv.New32a()
	h.Write([]byte(host + "\x00" + resolveAbs(c.State.Path)))
	const lo = 1_000_000_000
	return lo + h.Sum32()%(4294967295-lo+1)
}

var systemDatabases = map[string]bool{"mysql": true, "sys": true, "information_schema": true, "performance_schema": true}

// Captures reports whether rows of db.table are captured for raw streams:
// db is in databases (or, with none listed, is not a system database), the
// table matches include_tables (or none are listed) and matches no
// exclude_tables pattern. Patterns are "db.table" with * (any run of
// characters) and ? (one character), compared case-insensitively, as in
// connector/binlog's Filter.
func (s *Source) Captures(db, table string) bool {
	if len(s.Databases) > 0 && !slices.ContainsFunc(s.Databases, func(d string) bool { return strings.EqualFold(d, db) }) ||
		len(s.Databases) == 0 && systemDatabases[strings.ToLower(db)] {
		return false
	}
	match := func(p string) bool { return matchTable(p, db, table) }
	return (len(s.IncludeTables) == 0 || slices.ContainsFunc(s.IncludeTables, match)) && !slices.ContainsFunc(s.ExcludeTables, match)
}

// TableFilter returns include/exclude patterns equivalent to Captures for
// a matcher that knows only include and exclude (connector/binlog.Filter):
// databases are folded into the include patterns. An empty include means
// "every non-system table".
func (s *Source) TableFilter() (include, exclude []string) {
	exclude = append([]string(nil), s.ExcludeTables...)
	switch {
	case len(s.Databases) == 0:
		include = append([]string(nil), s.IncludeTables...)
	case len(s.IncludeTables) == 0:
		for _, d := range s.Databases {
			include = append(include, d+".*")
		}
	default:
		seen := map[string]bool{}
		for _, d := range s.Databases {
			for _, p := range s.IncludeTables {
				_, pt, _ := strings.Cut(p, ".")
				if patternNamesDB(p, d) && !seen[d+"."+pt] {
					seen[d+"."+pt] = true
					include = append(include, d+"."+pt)
				}
			}
		}
		if len(include) == 0 {
			// No include pattern reaches a listed database (Validate reports
			// this): capture nothing rather than everything. Identifiers
			// cannot contain NUL, so this pattern matches no table.
			include = []string{s.Databases[0] + ".\x00"}
		}
	}
	return include, exclude
}

// patternNamesDB reports whether a db.table pattern can match tables of db.
func patternNamesDB(pattern, db string) bool {
	pd, _, _ := strings.Cut(pattern, ".")
	return globMatch(strings.ToLower(pd), strings.ToLower(db))
}

func matchTable(pattern, db, table string) bool {
	pd, pt, ok := strings.Cut(pattern, ".")
	if !ok {
		return false
	}
	return globMatch(strings.ToLower(pd), strings.ToLower(db)) && globMatch(strings.ToLower(pt), strings.ToLower(table))
}

// globMatch matches s against a pattern of literal runes, * and ?.
func globMatch(pattern, s string) bool {
	p, r := []rune(pattern), []rune(s)
	pi, ri, star, mark := 0, 0, -1, 0
	for ri < len(r) {
		switch {
		case pi < len(p) && (p[pi] == '?' || p[pi] == r[ri]):
			pi++
			ri++
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, ri
			pi++
		case star >= 0:
			pi, mark = star+1, mark+1
			ri = mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}

// resolveAbs is filepath.Abs that falls back to the input.
func resolveAbs(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

package config

import (
	"hash/fnv"
	"os"
	"path"
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

// Captures reports whether rows of db.table are captured: db is in
// databases (or, with none listed, is not a system database), the table
// matches include_tables (or none are listed) and matches no exclude_tables
// pattern. Patterns are path.Match globs on "db.table"; names compare
// case-sensitively, as MySQL on Linux does.
func (s *Source) Captures(db, table string) bool {
	if len(s.Databases) > 0 {
		found := false
		for _, d := range s.Databases {
			if d == db {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	} else if systemDatabases[strings.ToLower(db)] {
		return false
	}
	full := db + "." + table
	if len(s.IncludeTables) > 0 {
		ok := false
		for _, p := range s.IncludeTables {
			if m, _ := path.Match(p, full); m {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	for _, p := range s.ExcludeTables {
		if m, _ := path.Match(p, full); m {
			return false
		}
	}
	return true
}

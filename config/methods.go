package config

import (
	"hash/fnv"
	"net"
	"os"
	"path/filepath"
	"strconv"

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

// resolveAbs is filepath.Abs that falls back to the input.
func resolveAbs(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/feedcdc/feedcdc/test/mysqltest"
)

// cliConfig is the config.yaml of a CLI test: the private server on
// loopback (as its CDC user unless User is set) with the password from
// <Env>_SOURCE_PASSWORD, a state file and one file sink "files" (no fsync)
// in a fresh temporary folder, resync not watching replica lag, telemetry
// and dashboard off unless set. Source, Feeds, FileSink, Telemetry and
// Dashboard hold further "key: value" lines of those sections; Sections
// further top-level YAML.
type cliConfig struct {
	Name     string
	Env      string            // prefix of the password variable; default: Name in upper case
	Server   *mysqltest.Server // default: the package's srv
	User     string            // default: the server's CDC user
	Password string            // default: the server's CDC password
	ServerID int
	Database string
	Source   []string
	Feeds    []string
	MaxLag   string // resync.max_replica_lag; default 0s
	FileSink []string
	// Telemetry and Dashboard are the sections' lines; empty: listen ""
	// and enabled: false.
	Telemetry, Dashboard []string
	Sections             string
}

// write writes dir/config.yaml into a fresh temporary folder dir, sets the
// password variable for the test, and returns the file's path and dir
// (the state is dir/state.db, the file sink's output dir/out).
func (c cliConfig) write(t *testing.T) (cfgPath, dir string) {
	t.Helper()
	dir = t.TempDir()
	cfgPath = filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfgPath, []byte(c.yaml(dir)), 0o600); err != nil {
		t.Fatal(err)
	}
	s := c.server()
	pw := c.Password
	if pw == "" {
		pw = s.CDCPassword
	}
	t.Setenv(c.passwordEnv(), pw)
	return cfgPath, dir
}

func (c cliConfig) server() *mysqltest.Server {
	if c.Server == nil {
		return srv
	}
	return c.Server
}

func (c cliConfig) passwordEnv() string {
	if c.Env == "" {
		return strings.ToUpper(c.Name) + "_SOURCE_PASSWORD"
	}
	return c.Env + "_SOURCE_PASSWORD"
}

// yaml renders the configuration with its files under dir.
func (c cliConfig) yaml(dir string) string {
	s := c.server()
	user := c.User
	if user == "" {
		user = s.CDCUser
	}
	var b strings.Builder
	b.WriteString("name: " + c.Name + "\n")
	section := func(name string, lines []string, dflt ...string) {
		b.WriteString(name + ":\n")
		if len(lines) == 0 {
			lines = dflt
		}
		for _, l := range lines {
			b.WriteString("  " + l + "\n")
		}
	}
	section("source", append([]string{"host: 127.0.0.1", fmt.Sprintf("port: %d", s.Port), "user: " + user,
		"password_env: " + c.passwordEnv(), fmt.Sprintf("server_id: %d", c.ServerID)}, c.Source...))
	section("state", []string{"path: " + filepath.Join(dir, "state.db")})
	section("feeds", append([]string{"database: " + c.Database}, c.Feeds...))
	maxLag := c.MaxLag
	if maxLag == "" {
		maxLag = "0s"
	}
	section("resync", []string{"max_replica_lag: " + maxLag})
	fmt.Fprintf(&b, "sinks:\n  files:\n    type: file\n    file:\n      dir: %s\n      fsync: false\n", filepath.Join(dir, "out"))
	for _, l := range c.FileSink {
		b.WriteString("      " + l + "\n")
	}
	section("telemetry", c.Telemetry, `listen: ""`)
	section("dashboard", c.Dashboard, "enabled: false")
	b.WriteString(c.Sections)
	return b.String()
}

// noFeeds disables the four entity feeds (raw-stream tests).
var noFeeds = []string{"products: {enabled: false}", "productAttributes: {enabled: false}",
	"variants: {enabled: false}", "productOverrides: {enabled: false}"}

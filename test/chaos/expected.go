package chaos

import (
	"bufio"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// FeedNames are the four entity feeds, in the order the expected side
// builds them.
var FeedNames = []string{"products", "productAttributes", "variants", "productOverrides"}

// feedIdentity is the feed item contract (docs/feeds.md): the fields whose
// values, joined by NUL and hashed with SHA-1, make an item's feed_id.
// The checker keeps its own copy so that it shares no code with the feeds.
var feedIdentity = map[string][]string{
	"products":          {"sku", "storeViewCode"},
	"productAttributes": {"attributeCode", "storeViewCode"},
	"variants":          {"parentSku", "productSku"},
	"productOverrides":  {"sku", "websiteCode", "customerGroupCode"},
}

// feedID is sha1(join("\0", values)) in hex.
func feedID(values ...string) string {
	h := sha1.New()
	h.Write([]byte(strings.Join(values, "\x00")))
	return hex.EncodeToString(h.Sum(nil))
}

// ExpectedFeeds is the expected side of the feed check: a fresh full build
// of every feed by the real binary, into a state and a sink of its own. It
// writes a config with a new state file and a file sink (envelope on) in
// dir, runs `feedcdc resync --feed F` for each feed (each a process of its
// own that exits when the feed is built and written), and reads the files:
// feed -> feed_id -> the last payload written. Payloads with deleted: true
// are left out (an entity that does not build; delivered items of it must
// end deleted, as vanished ones).
func (e *Env) ExpectedFeeds(ctx context.Context, dir, schema string, serverID int64, env []string) (map[string]map[string]json.RawMessage, error) {
	out := filepath.Join(dir, "out")
	cfgPath := filepath.Join(dir, "config.yaml")
	var b strings.Builder
	fmt.Fprintf(&b, `name: chaos-expected
source:
  host: 127.0.0.1
  port: %d
  user: %s
  password_env: CHAOS_SOURCE_PASSWORD
  server_id: %d
  start_position: current
state:
  path: %s
feeds:
  database: %s
`, e.Server.Port, e.Server.CDCUser, serverID, filepath.Join(dir, "state", "state.db"), schema)
	for _, f := range FeedNames {
		fmt.Fprintf(&b, "  %s: {sinks: [files]}\n", f)
	}
	fmt.Fprintf(&b, `raw: {enabled: false}
resync: {max_replica_lag: 0s, rows_per_second: 0}
sinks:
  files:
    type: file
    file:
      dir: %s
      envelope: true
      fsync: false
      max_files: 0
telemetry: {listen: ""}
dashboard: {enabled: false}
log: {format: json, level: warn}
`, out)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if err := os.WriteFile(cfgPath, []byte(b.String()), 0o600); err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, "resync.log")
	for _, f := range FeedNames {
		c, err := e.StartChild([]string{"resync", "-c", cfgPath, "--feed", f}, env, logPath, 0)
		if err != nil {
			return nil, err
		}
		select {
		case <-ctx.Done():
			c.Kill()
			return nil, ctx.Err()
		case <-c.Done():
		}
		if c.err != nil {
			return nil, fmt.Errorf("expected side: feedcdc resync --feed %s: %w (see %s)", f, c.err, logPath)
		}
	}
	return readFileSink(out)
}

// readFileSink reads a file sink's folder written with envelope on: feed
// -> id -> the last value, rotated files first. Deleted payloads are left
// out.
func readFileSink(dir string) (map[string]map[string]json.RawMessage, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.jsonl"))
	if err != nil {
		return nil, err
	}
	sort.Strings(paths) // name.000001.jsonl before name.jsonl
	res := map[string]map[string]json.RawMessage{}
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 64<<20)
		for sc.Scan() {
			var l struct {
				Feed  string
				ID    string
				Value json.RawMessage
			}
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
				f.Close()
				return nil, fmt.Errorf("%s: %w", p, err)
			}
			if res[l.Feed] == nil {
				res[l.Feed] = map[string]json.RawMessage{}
			}
			res[l.Feed][l.ID] = l.Value
		}
		f.Close()
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
	}
	for _, items := range res {
		for id, v := range items {
			if isDeleted(v) {
				delete(items, id)
			}
		}
	}
	return res, nil
}

func isDeleted(v json.RawMessage) bool {
	var d struct {
		Deleted bool `json:"deleted"`
	}
	return json.Unmarshal(v, &d) == nil && d.Deleted
}

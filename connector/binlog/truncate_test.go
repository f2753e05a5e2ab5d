package binlog

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/feedcdc/feedcdc/change"
)

// truncCollector records rows, truncates and transaction ends in order.
type truncCollector struct {
	mu     sync.Mutex
	events []string
}

func (c *truncCollector) add(s string) {
	c.mu.Lock()
	c.events = append(c.events, s)
	c.mu.Unlock()
}

func (c *truncCollector) Change(_ context.Context, ch *change.Change) error {
	v, _ := ch.Get("id")
	c.add(fmt.Sprintf("%s %s %v", ch.Op, ch.Table.Name, v))
	return nil
}

func (c *truncCollector) TxEnd(context.Context, change.TxEnd) error { c.add("end"); return nil }

func (c *truncCollector) Truncate(_ context.Context, t *change.Table, src change.Source) error {
	if src.GTID == "" || src.File == "" || src.Pos == 0 || src.Timestamp.IsZero() {
		return fmt.Errorf("truncate of %s without a full source position: %+v", t.FullName(), src)
	}
	c.add("t " + t.FullName())
	return nil
}

func (c *truncCollector) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(c.events, "; ")
}

// TestLiveTruncate: TRUNCATE of a captured table, in each way it can be
// written, reaches a Truncater before the statement's transaction end, in
// stream order; TRUNCATE of a table not captured does not.
func TestLiveTruncate(t *testing.T) {
	db := srv.NewDatabase(t, "trunc")
	srv.Exec(t, db, "CREATE TABLE t (id INT PRIMARY KEY)", "CREATE TABLE u (id INT PRIMARY KEY)", "CREATE TABLE other (id INT PRIMARY KEY)")
	cfg := sourceConfig(srv, db+".t", db+".u")
	start := changePositionCurrent(t, cfg)
	src, err := New(cfg, testLogger(t), &MemoryHistory{})
	if err != nil {
		t.Fatal(err)
	}
	col := &truncCollector{}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, start, col) }()
	srv.Exec(t, db, "INSERT INTO t VALUES (1)", "TRUNCATE TABLE t", "INSERT INTO t VALUES (2)",
		"TRUNCATE u", "TRUNCATE other", "/* admin */ TRUNCATE TABLE `"+db+"`.`t`", "INSERT INTO u VALUES (3)")
	want := fmt.Sprintf("c t 1; end; t %[1]s.t; end; c t 2; end; t %[1]s.u; end; end; t %[1]s.t; end; c u 3; end", db)
	waitForOr(t, "every statement", func() bool { return strings.Contains(col.String(), "c u 3; end") }, col.String)
	if got := col.String(); !strings.HasSuffix(got, want) {
		t.Fatalf("stream:\n got %s\nwant …%s", got, want)
	}
	cancel()
	<-done

	// The same statements through `feedcdc inspect binlog`.
	if srv.Dir == "" {
		return // an external server's binlog files are not readable here
	}
	recs, text := inspectRecords(t, db, "truncate")
	var tables []string
	for _, r := range recs {
		tables = append(tables, r.Table)
	}
	if fmt.Sprint(tables) != "[t u t]" {
		t.Fatalf("inspect printed truncates of %v, want [t u t]:\n%s", tables, text)
	}
}

// inspectRecord is one line `feedcdc inspect binlog` prints.
type inspectRecord struct{ Type, DB, Table, From, GTID string }

// inspectRecords flushes the binary log and returns the records of type typ
// that `feedcdc inspect binlog` prints for tables t and u of db from the
// file that was current (each must name db and carry a GTID), and all it
// printed.
func inspectRecords(t *testing.T, db, typ string) ([]inspectRecord, string) {
	t.Helper()
	admin := srv.Admin(t, db)
	var file, pos, doDB, ignoreDB string
	if err := admin.QueryRow("SHOW MASTER STATUS").Scan(&file, &pos, &doDB, &ignoreDB); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec("FLUSH BINARY LOGS"); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := InspectFiles(context.Background(), []string{filepath.Join(srv.Dir, "data", file)}, &out,
		InspectOptions{Filter: Filter{Include: []string{db + ".t", db + ".u"}}}); err != nil {
		t.Fatal(err)
	}
	var recs []inspectRecord
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var r inspectRecord
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		if r.Type != typ {
			continue
		}
		if r.DB != db || r.GTID == "" {
			t.Errorf("%s record %s", typ, line)
		}
		recs = append(recs, r)
	}
	return recs, out.String()
}

func TestTruncatedTableNames(t *testing.T) {
	for q, want := range map[string]string{
		"TRUNCATE TABLE t":              "d.t",
		"truncate t":                    "d.t",
		"TRUNCATE `shop`.`t`":           "shop.t",
		"TRUNCATE TABLE shop . t":       "shop.t",
		"/* x */ TRUNCATE TABLE `a``b`": "d.a`b",
	} {
		db, table, ok := truncatedTable(q, "d")
		if !ok || db+"."+table != want {
			t.Errorf("%q: %s.%s %v, want %s", q, db, table, ok, want)
		}
	}
	if _, _, ok := truncatedTable("TRUNCATED_LOG", "d"); ok {
		t.Error("TRUNCATED_LOG parsed as a TRUNCATE")
	}
}

func TestQualifiedName(t *testing.T) {
	for in, want := range map[string][2]string{
		"t": {"d", "t"}, "db.t": {"db", "t"}, "`db`.`t`": {"db", "t"}, "`a.b`": {"d", "a.b"},
		"`a``b` . `c`": {"a`b", "c"}, "db . t": {"db", "t"},
	} {
		if got := qualifiedName(in, "d"); got != want {
			t.Errorf("%q: %v, want %v", in, got, want)
		}
	}
}

package binlog

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/feedcdc/feedcdc/change"
	"github.com/feedcdc/feedcdc/test/mysqltest"
)

// alterSteps runs inserts around ALTER TABLE statements; want lists, per
// resulting change, the column names and the after image rendered with %v.
var alterSteps = []string{
	"INSERT INTO t VALUES (1, 'a1', 4294967295, 'y')",
	"ALTER TABLE t ADD COLUMN c VARCHAR(5) AFTER a",
	"INSERT INTO t VALUES (2, 'a2', 'c2', 7, 'x')",
	"ALTER TABLE t DROP COLUMN b",
	"INSERT INTO t VALUES (3, 'a3', 'c3', 'y')",
	"ALTER TABLE t MODIFY COLUMN e ENUM('x','y','z') NOT NULL, MODIFY COLUMN a TEXT",
	"ALTER TABLE t RENAME COLUMN c TO cc",
	"INSERT INTO t VALUES (4, 'a4', 'c4', 'z')",
	"ALTER TABLE t CHANGE COLUMN cc c2 VARCHAR(20) FIRST",
	"INSERT INTO t (id, a, c2, e) VALUES (5, 'a5', 'x5', 'z')",
	"UPDATE t SET a = 'a1b' WHERE id = 1",
}

var alterWant = []string{
	"c [id a b e] [0 a0 0 x]",
	"c [id a b e] [1 a1 4294967295 y]",
	"c [id a c b e] [2 a2 c2 7 x]",
	"c [id a c e] [3 a3 c3 y]",
	"c [id a cc e] [4 a4 c4 z]",
	"c [c2 id a e] [x5 5 a5 z]",
	"u [c2 id a e] [<nil> 1 a1b y]",
}

func renderChanges(chs []*change.Change) []string {
	var out []string
	for _, c := range chs {
		names := make([]string, len(c.Table.Columns))
		for i, col := range c.Table.Columns {
			names[i] = col.Name
		}
		out = append(out, fmt.Sprintf("%s %v %v", c.Op, names, c.After))
	}
	return out
}

func runAlterScenario(t *testing.T, s *mysqltest.Server) {
	db := s.NewDatabase(t, "alter")
	s.Exec(t, db, "CREATE TABLE t (id INT PRIMARY KEY, a VARCHAR(10), b INT UNSIGNED, e ENUM('x','y'))")
	cfg := sourceConfig(s, db+".*")
	start := changePositionCurrent(t, cfg)
	s.Exec(t, db, "INSERT INTO t VALUES (0, 'a0', 0, 'x')") // between start and the schema snapshot
	hist := &MemoryHistory{}
	src, err := New(cfg, testLogger(t), hist)
	if err != nil {
		t.Fatal(err)
	}
	col := &collector{}
	stop := runSource(t, src, start, col)
	// the first run snapshots information_schema into the history
	waitFor(t, "the schema snapshot", func() bool { r, _ := hist.SchemaRecords(context.Background()); return len(r) > 0 })
	for _, q := range alterSteps {
		s.Exec(t, db, q)
	}
	waitForOr(t, "all changes", func() bool { return len(col.tableChanges(db, "t")) >= len(alterWant) }, func() string {
		return strings.Join(renderChanges(col.tableChanges(db, "t")), "\n")
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	got := renderChanges(col.tableChanges(db, "t"))
	if strings.Join(got, "\n") != strings.Join(alterWant, "\n") {
		t.Fatalf("changes across ALTERs:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(alterWant, "\n"))
	}
	for _, c := range col.tableChanges(db, "t") {
		if pk := c.Table.PK; len(pk) != 1 || c.Table.Columns[pk[0]].Name != "id" {
			t.Errorf("PK of %v is %v", c.Table.Columns, pk)
		}
	}

	// Replaying from the start with the full history decodes the old events
	// with the schema they were written under.
	recs, _ := hist.SchemaRecords(context.Background())
	if len(recs) < 6 {
		t.Fatalf("schema history has %d records, want the bootstrap + 5 ALTERs", len(recs))
	}
	src2, err := New(cfg, testLogger(t), hist)
	if err != nil {
		t.Fatal(err)
	}
	col2 := &collector{}
	stop2 := runSource(t, src2, start, col2)
	waitFor(t, "replayed changes", func() bool { return len(col2.tableChanges(db, "t")) >= len(alterWant) })
	if err := stop2(); err != nil {
		t.Fatal(err)
	}
	if got2 := renderChanges(col2.tableChanges(db, "t")); strings.Join(got2, "\n") != strings.Join(alterWant, "\n") {
		t.Fatalf("replay:\n%s", strings.Join(got2, "\n"))
	}
	recs2, _ := hist.SchemaRecords(context.Background())
	if len(recs2) != len(recs) {
		t.Errorf("replay appended %d duplicate schema records", len(recs2)-len(recs))
	}
}

func TestLiveAlterFullMetadata(t *testing.T) { runAlterScenario(t, srv) }

func TestLiveAlterMinimalMetadata(t *testing.T) {
	s := startPrivate(t, mysqltest.Options{Args: []string{privateTmp(t), "--binlog-row-metadata=MINIMAL"}})
	runAlterScenario(t, s)
}

func TestLiveNoMetadataWithoutHistory(t *testing.T) {
	s := srv
	setGlobal(t, "binlog_row_metadata", "'NO_LOG'", "'FULL'")
	db := s.NewDatabase(t, "nolog")
	s.Exec(t, db, "CREATE TABLE t (id INT PRIMARY KEY)")
	cfg := sourceConfig(s, db+".*")
	start := changePositionCurrent(t, cfg)
	src, err := New(cfg, testLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	s.Exec(t, db, "INSERT INTO t VALUES (1)")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = src.Run(ctx, start, &collector{})
	if err == nil || !strings.Contains(err.Error(), "binlog_row_metadata=FULL") {
		t.Fatalf("got %v", err)
	}
}

func TestLiveUnparseableDDL(t *testing.T) {
	db := srv.NewDatabase(t, "ddl")
	srv.Exec(t, db, "CREATE TABLE t (id INT PRIMARY KEY)", "CREATE TABLE other (id INT PRIMARY KEY)")
	cfg := sourceConfig(srv, db+".t")
	start := changePositionCurrent(t, cfg)
	src, err := New(cfg, testLogger(t), &MemoryHistory{})
	if err != nil {
		t.Fatal(err)
	}
	col := &collector{}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, start, col) }()
	// Not captured: skipped. Captured: an error, never skipped.
	srv.Exec(t, db, "ALTER TABLE other ADD SYSTEM VERSIONING", "INSERT INTO t VALUES (1)", "ALTER TABLE t ADD SYSTEM VERSIONING", "INSERT INTO t VALUES (2)")
	select {
	case err = <-done:
	case <-ctx.Done():
		t.Fatal("no error for unparseable DDL of a captured table")
	}
	if err == nil || !strings.Contains(err.Error(), "cannot parse DDL") || !strings.Contains(err.Error(), "ADD SYSTEM VERSIONING") {
		t.Fatalf("got %v", err)
	}
	var de *decodeError
	if !errors.As(err, &de) {
		t.Errorf("error is not a decode error: %T", err)
	}
	if got := ids(col, db); fmt.Sprint(got) != "[1]" {
		t.Errorf("rows before the DDL: %v", got)
	}
}

// TestLiveStatementDMLRefused: a session that switches to statement logging
// writes DML whose rows are not in the binlog; for a captured table that is
// an error, for other tables it is ignored.
func TestLiveStatementDMLRefused(t *testing.T) {
	db := srv.NewDatabase(t, "stmt")
	srv.Exec(t, db, "CREATE TABLE t (id INT PRIMARY KEY)", "CREATE TABLE other (id INT PRIMARY KEY)")
	cfg := sourceConfig(srv, db+".t")
	start := changePositionCurrent(t, cfg)
	src, err := New(cfg, testLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	srv.Exec(t, db, "SET SESSION binlog_format='STATEMENT'; INSERT INTO other VALUES (1); SET SESSION binlog_format='ROW'",
		"INSERT INTO t VALUES (1)",
		"SET SESSION binlog_format='STATEMENT'; INSERT INTO t VALUES (2); SET SESSION binlog_format='ROW'")
	col := &collector{}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err = src.Run(ctx, start, col)
	if err == nil || !strings.Contains(err.Error(), "statement-logged DML on captured table "+db+".t") {
		t.Fatalf("got %v", err)
	}
	if got := ids(col, db); fmt.Sprint(got) != "[1]" {
		t.Errorf("rows before the statement: %v", got)
	}
}

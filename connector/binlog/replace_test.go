package binlog

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/feedcdc/feedcdc/change"
)

// replaceCollector is a truncCollector that also records replacements.
type replaceCollector struct{ truncCollector }

func (c *replaceCollector) Replace(_ context.Context, t *change.Table, from string, src change.Source) error {
	if src.GTID == "" || src.File == "" || src.Pos == 0 || src.Timestamp.IsZero() {
		return fmt.Errorf("replace of %s without a full source position: %+v", t.FullName(), src)
	}
	c.add("replace " + t.Name + " from " + from[strings.IndexByte(from, '.')+1:])
	return nil
}

// TestLiveReplace: a RENAME (single, chain, ALTER TABLE … RENAME) that puts
// another table at a captured name reaches a Replacer once per captured
// name, before the statement's transaction end; renames to names not
// captured do not. The shadow table is not captured, so the rows written
// after the swap decode with the schema followed from its DDL.
func TestLiveReplace(t *testing.T) {
	db := srv.NewDatabase(t, "repl")
	srv.Exec(t, db, "CREATE TABLE t (id INT PRIMARY KEY, v INT)", "CREATE TABLE u (id INT PRIMARY KEY)")
	cfg := sourceConfig(srv, db+".t", db+".u")
	start := changePositionCurrent(t, cfg)
	src, err := New(cfg, testLogger(t), &MemoryHistory{})
	if err != nil {
		t.Fatal(err)
	}
	col := &replaceCollector{}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, start, col) }()
	srv.Exec(t, db,
		"CREATE TABLE t_new LIKE t", "ALTER TABLE t_new ADD COLUMN w INT FIRST", "INSERT INTO t_new VALUES (9, 1, 1)",
		"RENAME TABLE t TO t_old, t_new TO t",
		"INSERT INTO t VALUES (7, 2, 2)", // w, id, v: decoded with the new table's columns
		"RENAME TABLE t_old TO t_older",  // nothing captured receives a table
		"CREATE TABLE u_stage LIKE u", "RENAME TABLE u TO u_prev", "ALTER TABLE u_stage RENAME TO u",
		"RENAME TABLE t TO tmp, u TO t, tmp TO u", // a chain swapping two captured tables
		"INSERT INTO u VALUES (5, 5, 5)")
	want := "end; replace t from t_new; end; c t 2; end; end; end; end; replace u from u_stage; end; replace t from u; replace u from tmp; end; c u 5; end"
	waitForOr(t, "every statement", func() bool { return strings.Contains(col.String(), "c u 5; end") }, col.String)
	if got := col.String(); !strings.HasSuffix(got, want) {
		t.Fatalf("stream:\n got %s\nwant …%s", got, want)
	}
	cancel()
	<-done

	// The same statements through `feedcdc inspect binlog`.
	if srv.Dir == "" {
		return // an external server's binlog files are not readable here
	}
	recs, text := inspectRecords(t, db, "replace")
	var got []string
	for _, r := range recs {
		got = append(got, r.Table+"<"+r.From)
	}
	if want := fmt.Sprintf("[t<%[1]s.t_new u<%[1]s.u_stage t<%[1]s.u u<%[1]s.tmp]", db); fmt.Sprint(got) != want {
		t.Fatalf("inspect printed replaces %v, want %s:\n%s", got, want, text)
	}
}

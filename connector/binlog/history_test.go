package binlog

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/feedcdc/feedcdc/change"
)

func mpos(seq int) change.Position {
	return change.Position{Flavor: "mariadb", GTIDSet: fmt.Sprintf("0-1-%d", seq), File: "binlog.000001", Pos: uint32(100 * seq)}
}

func colNames(st *storedTable) string {
	if st == nil {
		return "<dropped>"
	}
	var n []string
	for i, c := range st.Columns {
		s := c.Name + ":" + c.Type
		if c.Unsigned {
			s += "+u"
		}
		for _, p := range st.PK {
			if p == i {
				s += "*"
			}
		}
		n = append(n, s)
	}
	return strings.Join(n, " ")
}

func TestSchemaTrackerDDL(t *testing.T) {
	ctx := context.Background()
	hist := &MemoryHistory{}
	tr, err := newSchemaTracker(ctx, hist, Filter{Include: []string{"shop.*"}}, "mariadb", nil)
	if err != nil {
		t.Fatal(err)
	}
	tr.log = testLogger(t)
	steps := []struct {
		db, q string
		check string // table to look up
		want  string
	}{
		{"shop", "CREATE TABLE p (id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT, sku VARCHAR(64), e ENUM('a','b'), PRIMARY KEY (id))", "p", "id:bigint+u* sku:varchar e:enum"},
		{"shop", "ALTER TABLE p ADD COLUMN price DECIMAL(12,4) AFTER id, ADD COLUMN j JSON FIRST", "p", "j:json id:bigint+u* price:decimal sku:varchar e:enum"},
		{"shop", "ALTER TABLE p DROP COLUMN j, MODIFY sku VARBINARY(64), RENAME COLUMN e TO kind", "p", "id:bigint+u* price:decimal sku:varbinary kind:enum"},
		{"shop", "ALTER TABLE p DROP PRIMARY KEY, ADD PRIMARY KEY (sku, id)", "p", "id:bigint+u* price:decimal sku:varbinary* kind:enum"},
		{"other", "CREATE TABLE shop.q LIKE shop.p", "q", "id:bigint+u* price:decimal sku:varbinary* kind:enum"},
		{"shop", "RENAME TABLE q TO r", "r", "id:bigint+u* price:decimal sku:varbinary* kind:enum"},
		{"shop", "RENAME TABLE r TO elsewhere.r", "r", "<dropped>"},
		{"shop", "DROP TABLE IF EXISTS p", "p", "<dropped>"},
		{"shop", "CREATE TABLE t (a TINYTEXT, b MEDIUMBLOB, c CHAR(3) CHARACTER SET latin1, d BINARY(4)) DEFAULT CHARSET=latin1", "t", "a:tinytext b:mediumblob c:char d:binary"},
		{"shop", "ALTER TABLE other.x ADD SYSTEM VERSIONING", "t", "a:tinytext b:mediumblob c:char d:binary"}, // unparseable, not captured
		{"shop", "GRANT SELECT ON shop.* TO 'u'@'%'", "t", "a:tinytext b:mediumblob c:char d:binary"},
		{"shop", "CREATE OR REPLACE TABLE t (a INT)", "t", "a:int"},
		{"shop", "ALTER ONLINE TABLE t ADD COLUMN b INT", "t", "a:int b:int"},
		{"shop", "DROP DATABASE shop", "t", "<dropped>"},
	}
	for i, st := range steps {
		if err := tr.applyQuery(ctx, st.db, st.q, mpos(i+1)); err != nil {
			t.Fatalf("%s: %v", st.q, err)
		}
		got, _ := tr.lookup("shop", st.check)
		if colNames(got) != st.want {
			t.Fatalf("after %q: shop.%s = %s, want %s", st.q, st.check, colNames(got), st.want)
		}
	}
	// charsets and lengths for decoding without metadata
	recs, _ := hist.SchemaRecords(ctx)
	var tRec string
	for _, r := range recs {
		if r.Table == "t" && r.Schema != nil && tRec == "" {
			tRec = string(r.Schema)
		}
	}
	for _, want := range []string{`"Name":"a","Type":"tinytext","Nullable":true,"Charset":"latin1"`, `"Name":"d","Type":"binary","Nullable":true,"Charset":"binary","Length":4`} {
		if !strings.Contains(tRec, want) {
			t.Errorf("schema record of t lacks %s: %s", want, tRec)
		}
	}

	// Replaying from an old position rebuilds the versions in force then.
	tr2, err := newSchemaTracker(ctx, hist, Filter{Include: []string{"shop.*"}}, "mariadb", testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	tr2.rewind(mpos(2))
	got, _ := tr2.lookup("shop", "p")
	if colNames(got) != "j:json id:bigint+u* price:decimal sku:varchar e:enum" {
		t.Errorf("at position 2: %s", colNames(got))
	}
	// re-applying a recorded DDL at its position adds no record
	before := len(recs)
	if err := tr2.applyQuery(ctx, "shop", steps[2].q, mpos(3)); err != nil {
		t.Fatal(err)
	}
	if after, _ := hist.SchemaRecords(ctx); len(after) != before {
		t.Errorf("re-applied DDL added %d records", len(after)-before)
	}
}

// TestSchemaTrackerUnknownTables: a captured table whose schema the history
// cannot know and no server can tell (offline) stays unknown instead of
// stopping the stream (FULL row metadata still decodes it; without it the
// decoder's error names `feedcdc schema reload`). A snapshot stored later
// (what `feedcdc schema reload` appends) is taken when a replay meets the
// table again. DDL that cannot be parsed on a captured table still stops.
func TestSchemaTrackerUnknownTables(t *testing.T) {
	ctx := context.Background()
	hist := &MemoryHistory{}
	tr, _ := newSchemaTracker(ctx, hist, Filter{Include: []string{"shop.*"}}, "mariadb", testLogger(t))
	if err := tr.applyQuery(ctx, "shop", "ALTER TABLE p ADD SYSTEM VERSIONING", mpos(1)); err == nil || !strings.Contains(err.Error(), "cannot parse DDL") {
		t.Errorf("unparseable DDL of a captured table: %v", err)
	}
	for i, q := range []string{"ALTER TABLE p ADD COLUMN x INT", "RENAME TABLE other.x TO shop.y", "CREATE TABLE shop.c LIKE other.uncaptured_t", "ALTER TABLE other.z RENAME TO shop.z"} {
		if err := tr.applyQuery(ctx, "shop", q, mpos(2+i)); err != nil {
			t.Errorf("%s: %v", q, err)
		}
	}
	for _, name := range []string{"p", "y", "c", "z"} {
		if st, _ := tr.lookup("shop", name); st != nil {
			t.Errorf("shop.%s: %s, want unknown", name, colNames(st))
		}
	}
	// `feedcdc schema reload --table shop.y` later, at position 20
	if err := tr.record(ctx, mpos(20), "shop", "y", &storedTable{DB: "shop", Name: "y", Columns: []storedColumn{{Name: "id", Type: "int"}, {Name: "v", Type: "varchar"}}, PK: []int{0}}, ""); err != nil {
		t.Fatal(err)
	}
	// a restart from position 1 replays the rename: the reloaded schema is
	// taken for y there, and a row of y (lookup) finds it
	tr2, _ := newSchemaTracker(ctx, hist, Filter{Include: []string{"shop.*"}}, "mariadb", testLogger(t))
	tr2.rewind(mpos(1))
	if err := tr2.applyQuery(ctx, "shop", "RENAME TABLE other.x TO shop.y", mpos(3)); err != nil {
		t.Fatal(err)
	}
	if st, _ := tr2.lookup("shop", "y"); colNames(st) != "id:int* v:varchar" {
		t.Errorf("shop.y after the replayed rename: %s", colNames(st))
	}
	// a restart after the rename: the first row of y takes the snapshot
	tr3, _ := newSchemaTracker(ctx, hist, Filter{Include: []string{"shop.*"}}, "mariadb", testLogger(t))
	tr3.rewind(mpos(10))
	if st, _ := tr3.lookup("shop", "y"); colNames(st) != "id:int* v:varchar" {
		t.Errorf("shop.y at a row after a restart: %s", colNames(st))
	}
}

// TestSchemaTrackerFollowsShadowTables: with only shop.p captured, the
// shadow tables of online schema changes in shop are followed from their
// DDL, so the cut-over renames give p the new table's columns; tables of
// other databases are not followed.
func TestSchemaTrackerFollowsShadowTables(t *testing.T) {
	ctx := context.Background()
	hist := &MemoryHistory{}
	tr, _ := newSchemaTracker(ctx, hist, Filter{Include: []string{"shop.p"}}, "mariadb", testLogger(t))
	steps := []struct{ q, want string }{
		{"CREATE TABLE p (id INT PRIMARY KEY, a INT, b VARCHAR(10))", "id:int* a:int b:varchar"},
		// gh-ost: ghost LIKE, altered, cut-over
		{"CREATE TABLE `_p_gho` LIKE `p`", "id:int* a:int b:varchar"},
		{"ALTER TABLE `_p_gho` ADD COLUMN c DATETIME AFTER id", "id:int* a:int b:varchar"},
		{"CREATE TABLE `_p_ghc` (id BIGINT AUTO_INCREMENT PRIMARY KEY, hint VARCHAR(64))", "id:int* a:int b:varchar"},
		{"RENAME TABLE `p` TO `_p_del`, `_p_gho` TO `p`", "id:int* c:datetime a:int b:varchar"},
		{"DROP TABLE IF EXISTS `_p_del`, `_p_ghc`", "id:int* c:datetime a:int b:varchar"},
		// pt-osc: full CREATE, altered (drop a column), cut-over
		{"CREATE TABLE `shop`.`_p_new` (id INT NOT NULL, c DATETIME, a INT, b VARCHAR(10), PRIMARY KEY (id))", "id:int* c:datetime a:int b:varchar"},
		{"ALTER TABLE `shop`.`_p_new` DROP COLUMN a", "id:int* c:datetime a:int b:varchar"},
		{"RENAME TABLE `shop`.`p` TO `shop`.`_p_old`, `shop`.`_p_new` TO `shop`.`p`", "id:int* c:datetime b:varchar"},
		// staging swap with LIKE + ALTER … RENAME, column moved first
		{"CREATE TABLE p_stage LIKE p", "id:int* c:datetime b:varchar"},
		{"ALTER TABLE p_stage MODIFY b VARCHAR(10) FIRST", "id:int* c:datetime b:varchar"},
		{"RENAME TABLE p TO p_prev", "<dropped>"},
		{"ALTER TABLE p_stage RENAME TO p", "b:varchar id:int* c:datetime"},
		// an unparseable statement on a followed table makes it unknown
		{"CREATE TABLE p_x LIKE p", "b:varchar id:int* c:datetime"},
		{"ALTER TABLE p_x ADD SYSTEM VERSIONING", "b:varchar id:int* c:datetime"},
		{"CREATE TABLE other.o (id INT)", "b:varchar id:int* c:datetime"},
	}
	for i, st := range steps {
		if err := tr.applyQuery(ctx, "shop", st.q, mpos(i+1)); err != nil {
			t.Fatalf("%s: %v", st.q, err)
		}
		if got, _ := tr.lookup("shop", "p"); colNames(got) != st.want {
			t.Fatalf("after %q: shop.p = %s, want %s", st.q, colNames(got), st.want)
		}
	}
	if st, _ := tr.lookup("shop", "p_x"); st != nil {
		t.Errorf("shop.p_x after unparseable DDL: %s, want unknown", colNames(st))
	}
	if _, ok := tr.current[tableKeyName("other", "o")]; ok {
		t.Error("a table of a database without captured tables is followed")
	}
}

func TestSchemaTrackerCreateSelectForgetsTable(t *testing.T) {
	ctx := context.Background()
	tr, _ := newSchemaTracker(ctx, &MemoryHistory{}, Filter{Include: []string{"shop.*"}}, "mariadb", testLogger(t))
	if err := tr.applyQuery(ctx, "shop", "CREATE TABLE p (id INT)", mpos(1)); err != nil {
		t.Fatal(err)
	}
	if err := tr.applyQuery(ctx, "shop", "CREATE OR REPLACE TABLE p AS SELECT 1 AS x", mpos(2)); err != nil {
		t.Fatal(err)
	}
	if st, _ := tr.lookup("shop", "p"); st != nil {
		t.Errorf("schema after CREATE … SELECT: %s", colNames(st))
	}
}

// TestSchemaTrackerShadowAcrossRestart: a restart in the middle of an
// online schema change (ghost table created and altered, cut-over not yet
// read) rebuilds the followed ghost table from the stored history, so the
// cut-over read after the restart gives the captured table the new columns.
func TestSchemaTrackerShadowAcrossRestart(t *testing.T) {
	ctx := context.Background()
	hist := &MemoryHistory{}
	f := Filter{Include: []string{"shop.p"}}
	tr, _ := newSchemaTracker(ctx, hist, f, "mariadb", testLogger(t))
	for i, q := range []string{"CREATE TABLE p (id INT PRIMARY KEY, a INT)", "CREATE TABLE _p_gho LIKE p", "ALTER TABLE _p_gho ADD COLUMN b INT FIRST"} {
		if err := tr.applyQuery(ctx, "shop", q, mpos(i+1)); err != nil {
			t.Fatal(err)
		}
	}
	// restart: a new tracker from the stored history, resuming at 3
	tr2, _ := newSchemaTracker(ctx, hist, f, "mariadb", testLogger(t))
	tr2.rewind(mpos(3))
	if err := tr2.applyQuery(ctx, "shop", "RENAME TABLE p TO _p_del, _p_gho TO p", mpos(4)); err != nil {
		t.Fatal(err)
	}
	if st, _ := tr2.lookup("shop", "p"); colNames(st) != "b:int id:int* a:int" {
		t.Fatalf("shop.p after the cut-over read after a restart: %s", colNames(st))
	}
	// a restart before the ghost was altered replays the ALTER
	tr3, _ := newSchemaTracker(ctx, hist, f, "mariadb", testLogger(t))
	tr3.rewind(mpos(2))
	if st, _ := tr3.lookup("shop", "_p_gho"); colNames(st) != "id:int* a:int" {
		t.Fatalf("shop._p_gho at position 2: %s", colNames(st))
	}
}

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

func TestSchemaTrackerRefusesUnknown(t *testing.T) {
	ctx := context.Background()
	tr, _ := newSchemaTracker(ctx, &MemoryHistory{}, Filter{Include: []string{"shop.*"}}, "mariadb", nil)
	tr.log = testLogger(t)
	for q, want := range map[string]string{
		"ALTER TABLE p ADD COLUMN x INT":              "previous schema is not in the schema history",
		"ALTER TABLE p ADD SYSTEM VERSIONING":         "cannot parse DDL",
		"RENAME TABLE other.x TO shop.y":              "schema is unknown",
		"CREATE TABLE shop.c LIKE other.uncaptured_t": "not captured",
	} {
		err := tr.applyQuery(ctx, "shop", q, mpos(1))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want %q", q, err, want)
		}
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

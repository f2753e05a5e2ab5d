package chaos

import (
	"context"
	"database/sql"
	"strings"
	"testing"

	"github.com/feedcdc/feedcdc/test/mysqltest"
)

// TestDecodeBinlogSeesTableStatements: the checker's binlog reader must see
// the TRUNCATEs and RENAMEs of the schema, in order between the row
// changes, with the GTID of each, however they are written (TABLE or not,
// qualified or not, a rename chain), and none of another schema.
func TestDecodeBinlogSeesTableStatements(t *testing.T) {
	ctx := context.Background()
	srv, err := mysqltest.Start(ctx, mysqltest.Options{BaseDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	root, err := sql.Open("mysql", srv.AdminDSN(""))
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	for _, q := range []string{"CREATE DATABASE shop", "CREATE DATABASE other", "CREATE TABLE other.t (id INT PRIMARY KEY)"} {
		if _, err := root.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	db, err := sql.Open("mysql", srv.AdminDSN("shop"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	from, err := CurrentBinlog(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		"CREATE TABLE " + CountersTable + " (id INT PRIMARY KEY, v BIGINT NOT NULL)",
		"CREATE TABLE t (id INT PRIMARY KEY)",
		"CREATE TABLE _t_gho LIKE t",
		"INSERT INTO " + CountersTable + " VALUES (1, 10)",
		"INSERT INTO t VALUES (1)",
		"INSERT INTO _t_gho VALUES (2)",
		"TRUNCATE TABLE " + CountersTable,
		"TRUNCATE `shop`.`t`",
		"TRUNCATE other.t",
		"RENAME TABLE t TO _t_del, `_t_gho` TO `shop`.`t`",
		"INSERT INTO t VALUES (3)",
		"/* gh-ost */ RENAME TABLE other.t TO other.u",
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	evs, err := DecodeBinlog(ctx, db, srv.Dir+"/data", "shop", from)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	var seqs []uint64
	for _, e := range evs {
		s := e.Op + " " + e.Table
		switch {
		case e.Op == "rename":
			s += " from " + e.From
		case !e.tableEvent():
			s += " " + e.Key
		}
		got = append(got, s)
		seqs = append(seqs, e.Seq)
	}
	want := []string{"c chaos_counters 1", "c t 1", "c _t_gho 2", "t chaos_counters", "t t",
		"rename _t_del from t", "rename t from _t_gho", "c t 3"}
	if strings.Join(got, "; ") != strings.Join(want, "; ") {
		t.Fatalf("decoded\n  %s\nwant\n  %s", strings.Join(got, "; "), strings.Join(want, "; "))
	}
	for i := 1; i < len(seqs); i++ {
		if seqs[i] < seqs[i-1] || seqs[i] == 0 {
			t.Fatalf("GTID sequences %v: not increasing", seqs)
		}
	}
	if seqs[5] != seqs[6] || seqs[4] == seqs[5] {
		t.Fatalf("GTID sequences %v: the two pairs of one RENAME must share one GTID, and only they", seqs)
	}
}

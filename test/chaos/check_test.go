package chaos

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"

	"github.com/feedcdc/feedcdc/sink/kafkasink"
	"github.com/feedcdc/feedcdc/test/kafkatest"
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

// TestFenceByEpochSkipsLateRecordsOfALowerEpoch: per partition, a record
// whose epoch header is lower than one read before it is skipped; records
// without the header, and other partitions, are not affected.
func TestFenceByEpochSkipsLateRecordsOfALowerEpoch(t *testing.T) {
	rec := func(part int32, off int64, epoch string) kafkatest.Record {
		r := kafkatest.Record{Partition: part, Offset: off}
		if epoch != "" {
			r.Headers = []kafkatest.Header{{Key: kafkasink.EpochHeader, Value: []byte(epoch)}}
		}
		return r
	}
	in := []kafkatest.Record{rec(0, 0, ""), rec(0, 1, "5"), rec(1, 0, "3"), rec(0, 2, "7"), rec(0, 3, "5"), rec(1, 1, "3"), rec(0, 4, "7"), rec(0, 5, "")}
	kept, skipped := fenceByEpoch(in)
	var got []string
	for _, r := range kept {
		got = append(got, fmt.Sprintf("%d/%d", r.Partition, r.Offset))
	}
	if want := "0/0 0/1 0/2 0/4 0/5 1/0 1/1"; strings.Join(got, " ") != want || skipped != 1 {
		t.Errorf("kept %v, skipped %d; want %s and 1", got, skipped, want)
	}
}

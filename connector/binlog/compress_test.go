package binlog

import (
	"bytes"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-mysql-org/go-mysql/replication"
)

// TestLiveMariaDBCompressedEvents streams a server with log_bin_compress:
// compressed rows events (types 166-168) and compressed QUERY events (DDL,
// tracked by the schema history) decode like plain ones.
func TestLiveMariaDBCompressedEvents(t *testing.T) {
	s := srv
	setGlobal(t, "log_bin_compress", "ON", "OFF")
	setGlobal(t, "log_bin_compress_min_len", "10", "256")
	db := s.NewDatabase(t, "compress")
	s.Exec(t, db, "CREATE TABLE t (id INT PRIMARY KEY, doc TEXT)")
	cfg := sourceConfig(s, db+".t")
	start := changePositionCurrent(t, cfg)
	hist := &MemoryHistory{}
	src, err := New(cfg, testLogger(t), hist)
	if err != nil {
		t.Fatal(err)
	}
	col := &collector{}
	stop := runSource(t, src, start, col)
	waitFor(t, "the schema snapshot", func() bool { r, _ := hist.SchemaRecords(t.Context()); return len(r) > 0 })
	long := strings.Repeat("compressible text ", 200)
	s.Exec(t, db, fmt.Sprintf("INSERT INTO t VALUES (1, '%s'), (2, 'short')", long),
		"ALTER TABLE t ADD COLUMN extra VARCHAR(300) DEFAULT 'a default value that is long enough to compress'",
		"UPDATE t SET doc = 'changed' WHERE id = 1", "DELETE FROM t WHERE id = 2")
	waitFor(t, "4 changes", func() bool { return len(col.tableChanges(db, "t")) >= 4 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	got := renderChanges(col.tableChanges(db, "t"))
	want := []string{
		"c [id doc] [1 " + long + "]",
		"c [id doc] [2 short]",
		"u [id doc extra] [1 changed a default value that is long enough to compress]",
		"d [id doc extra] []",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	recs, _ := hist.SchemaRecords(t.Context())
	var sawDDL bool
	for _, r := range recs {
		sawDDL = sawDDL || strings.Contains(r.DDL, "ADD COLUMN extra")
	}
	if !sawDDL {
		t.Error("the compressed ALTER TABLE was not recorded in the schema history")
	}

	// The file really holds compressed events, and inspect decodes them too.
	path := filepath.Join(s.Dir, "data", start.File)
	types := map[replication.EventType]int{}
	p := replication.NewBinlogParser()
	if err := p.ParseFile(path, 0, func(e *replication.BinlogEvent) error { types[e.Header.EventType]++; return nil }); err != nil {
		t.Fatal(err)
	}
	for _, et := range []replication.EventType{replication.MARIADB_WRITE_ROWS_COMPRESSED_EVENT_V1, replication.MARIADB_UPDATE_ROWS_COMPRESSED_EVENT_V1,
		replication.MARIADB_DELETE_ROWS_COMPRESSED_EVENT_V1, replication.MARIADB_QUERY_COMPRESSED_EVENT} {
		if types[et] == 0 {
			t.Errorf("no %s in the binlog (types seen: %v)", et, types)
		}
	}
	var out bytes.Buffer
	if err := InspectFiles(t.Context(), []string{path}, &out, InspectOptions{Filter: Filter{Include: []string{db + ".t"}}}); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(out.String(), `"type":"change"`); n != 4 || !strings.Contains(out.String(), `"doc":"changed"`) {
		t.Errorf("inspect of the compressed binlog: %d changes\n%s", n, out.String())
	}
}

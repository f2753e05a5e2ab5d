package connector

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/feedcdc/feedcdc/change"
	"github.com/feedcdc/feedcdc/test/kafkatest"
)

// rawOnly is a connector with the four feeds off and raw streams of the
// given tables of db on one Kafka sink (prefix db), plus more raw: lines.
func rawOnly(t *testing.T, name, db, kafkaAddr string, tables []string, rawLines string, sinkLines ...string) connectorYAML {
	t.Helper()
	var inc []string
	for _, tb := range tables {
		inc = append(inc, fmt.Sprintf("%q", db+"."+tb))
	}
	return connectorYAML{Name: name, Database: db, Feeds: noFeeds,
		Source:   []string{"include_tables: [" + strings.Join(inc, ", ") + "]"},
		Sections: "raw:\n  enabled: true\n" + rawLines + kafkaSink(kafkaAddr, db, append([]string{"linger: 1ms"}, sinkLines...)...)}
}

// binlogAt orders records by their source position (one binlog file in
// these tests, so file then pos).
type binlogAt struct {
	File string `json:"file"`
	Pos  uint64 `json:"pos"`
}

func (a binlogAt) less(b binlogAt) bool {
	if a.File != b.File {
		return a.File < b.File
	}
	return a.Pos < b.Pos
}

// streamObserver records when the binlog source connected: only then has
// it taken its schema snapshot. A first start's checkpoint covers the
// server's position from the first moment, so waitCaughtUp alone can
// return before the source read its schema; DDL run in between is then
// part of the snapshot and gives no schema-change record (seen under load).
type streamObserver struct{ connected atomic.Bool }

func (*streamObserver) Built(string, int, time.Duration)            {}
func (*streamObserver) Exported(string, ExportStats, time.Duration) {}
func (*streamObserver) RawSent(int, time.Duration)                  {}
func (*streamObserver) Checkpointed(change.Position, time.Time)     {}
func (*streamObserver) Queue(int, int64)                            {}
func (*streamObserver) SourceEvent(time.Time)                       {}
func (*streamObserver) EventRead(uint32, time.Time)                 {}
func (*streamObserver) Heartbeat()                                  {}
func (o *streamObserver) Connected()                                { o.connected.Store(true) }
func (*streamObserver) Disconnected(error)                          {}

// waitStreaming waits until the binlog source connected (its schema
// snapshot taken).
func (o *streamObserver) waitStreaming(t *testing.T, runErr <-chan error) {
	t.Helper()
	for deadline := time.Now().Add(3 * time.Minute); !o.connected.Load(); time.Sleep(20 * time.Millisecond) {
		select {
		case err := <-runErr:
			t.Fatalf("connector stopped: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the binlog source did not connect within 3 minutes")
		}
	}
}

// TestRawSchemaChangeRecordsInBinlogOrder: DDL on a captured table while a
// workload writes to it gives one schema-change record per statement, at
// the statement's binlog position, with the table's columns after it; every
// data record's columns are those of the latest schema change before it in
// the binlog, and data records lie between the DDLs (interleaved).
func TestRawSchemaChangeRecordsInBinlogOrder(t *testing.T) {
	ctx := context.Background()
	db := srv.NewDatabase(t, "rawddl")
	admin := srv.Admin(t, db)
	if _, err := admin.Exec("CREATE TABLE w (id INT PRIMARY KEY, v INT NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec("CREATE TABLE other (id INT PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	kafka := kafkatest.Start(t)
	cc := rawOnly(t, "rawddl", db, kafka.Addr(), []string{"w"}, "  tombstones: false\n")
	obs := &streamObserver{}
	c := openConnector(t, cc.load(t), OpenOptions{Observer: obs})
	runErr, _ := startRun(t, c, RunOptions{NoSchedule: true})
	obs.waitStreaming(t, runErr)
	waitCaughtUp(t, c, admin, runErr)

	var n atomic.Int64
	stop := make(chan struct{})
	wlErr := make(chan error, 1)
	go func() {
		defer close(wlErr)
		for i := 1; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := admin.Exec("INSERT INTO w (id, v) VALUES (?, ?)", i, i); err != nil {
				wlErr <- err
				return
			}
			n.Add(1)
		}
	}()
	waitRows := func() {
		for target := n.Load() + 20; n.Load() < target; {
			select {
			case err := <-wlErr:
				t.Fatalf("workload: %v", err)
			default:
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	ddls := []string{"ALTER TABLE w ADD COLUMN c1 INT", "ALTER TABLE w ADD COLUMN c2 VARCHAR(10) AFTER id",
		"ALTER TABLE other ADD COLUMN x INT", "ALTER TABLE w DROP COLUMN c1"}
	for _, q := range ddls {
		waitRows()
		if _, err := admin.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	waitRows()
	close(stop)
	if err := <-wlErr; err != nil {
		t.Fatalf("workload: %v", err)
	}
	waitCaughtUp(t, c, admin, runErr)
	if err := c.Pipeline.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	type rec struct {
		at   binlogAt
		ddl  string
		cols []string // schema change: columns after it; data: columns of after
	}
	var all []rec
	schema, err := kafka.ReadAll(ctx, db+".schema-changes")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range schema {
		var v struct {
			Source       binlogAt `json:"source"`
			DatabaseName string   `json:"databaseName"`
			DDL          string   `json:"ddl"`
			TableChanges []struct {
				Type  string `json:"type"`
				ID    string `json:"id"`
				Table struct {
					PK      []string `json:"primaryKeyColumnNames"`
					Columns []struct {
						Name     string `json:"name"`
						Position int    `json:"position"`
					} `json:"columns"`
				} `json:"table"`
			} `json:"tableChanges"`
		}
		if err := json.Unmarshal(r.Value, &v); err != nil {
			t.Fatalf("schema-change record %s: %v", r.Value, err)
		}
		if string(r.Key) != fmt.Sprintf(`{"databaseName":%q}`, db) || v.DatabaseName != db || len(v.TableChanges) != 1 {
			t.Fatalf("schema-change record key %s value %s", r.Key, r.Value)
		}
		tc := v.TableChanges[0]
		if tc.Type != "ALTER" || tc.ID != fmt.Sprintf("%q.%q", db, "w") || !slices.Equal(tc.Table.PK, []string{"id"}) {
			t.Fatalf("schema-change record %s", r.Value)
		}
		var cols []string
		for i, col := range tc.Table.Columns {
			if col.Position != i+1 {
				t.Fatalf("column positions in %s", r.Value)
			}
			cols = append(cols, col.Name)
		}
		all = append(all, rec{at: v.Source, ddl: v.DDL, cols: cols})
	}
	// An independent client (kcat, librdkafka) reads the same records.
	kc, err := kafka.KcatReadAll(ctx, db+".schema-changes")
	if err != nil {
		t.Fatal(err)
	}
	if len(kc) != len(schema) {
		t.Fatalf("kcat reads %d schema-change records, kgo %d", len(kc), len(schema))
	}
	for i, r := range kc {
		if r.Key == nil || r.Payload == nil || *r.Key != string(schema[i].Key) || *r.Payload != string(schema[i].Value) {
			t.Fatalf("kcat record %d differs from kgo's: %+v", i, r)
		}
	}
	var got []string
	for _, r := range all {
		got = append(got, r.ddl)
	}
	if want := []string{ddls[0], ddls[1], ddls[3]}; !slices.Equal(got, want) {
		t.Fatalf("schema-change records %q, want one per DDL on the captured table %q", got, want)
	}
	data, err := kafka.ReadAll(ctx, db+"."+db+".w")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range data {
		var v struct {
			Source binlogAt                   `json:"source"`
			After  map[string]json.RawMessage `json:"after"`
		}
		if err := json.Unmarshal(r.Value, &v); err != nil {
			t.Fatal(err)
		}
		var cols []string
		for k := range v.After {
			cols = append(cols, k)
		}
		all = append(all, rec{at: v.Source, cols: cols})
	}
	if len(data) < int(n.Load()) {
		t.Fatalf("%d data records, want %d", len(data), n.Load())
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].at.less(all[j].at) })
	cur := []string{"id", "v"}
	segment, segments := 0, []int{}
	for _, r := range all {
		if r.ddl != "" {
			segments = append(segments, segment)
			cur, segment = r.cols, 0
			continue
		}
		segment++
		a, b := slices.Clone(cur), slices.Clone(r.cols)
		sort.Strings(a)
		sort.Strings(b)
		if !slices.Equal(a, b) {
			t.Fatalf("data record at %v has columns %v, but the latest schema change before it in the binlog says %v", r.at, r.cols, cur)
		}
	}
	segments = append(segments, segment)
	for i, s := range segments {
		if s == 0 {
			t.Fatalf("no data records in segment %d between the schema changes (%v): not interleaved", i, segments)
		}
	}
	if want := []string{"id", "c2", "v"}; !slices.Equal(cur, want) {
		t.Fatalf("last schema change lists %v, want %v", cur, want)
	}
}

// TestRawHeartbeatRecordsOnAnIdleSource: with raw.heartbeat_interval set,
// heartbeat records arrive while nothing is written to the captured table,
// each with the stream's position and the source server's time, and never
// more often than the interval.
func TestRawHeartbeatRecordsOnAnIdleSource(t *testing.T) {
	ctx := context.Background()
	db := srv.NewDatabase(t, "rawhb")
	admin := srv.Admin(t, db)
	if _, err := admin.Exec("CREATE TABLE idle (id INT PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	kafka := kafkatest.Start(t)
	const interval = 200 * time.Millisecond
	cc := rawOnly(t, "rawhb", db, kafka.Addr(), []string{"idle"}, "  heartbeat_interval: 200ms\n")
	c := openConnector(t, cc.load(t), OpenOptions{})
	runErr, _ := startRun(t, c, RunOptions{NoSchedule: true})
	waitCaughtUp(t, c, admin, runErr)
	type hb struct {
		TS       int64  `json:"ts_ms"`
		ServerTS *int64 `json:"server_ts_ms"`
		Source   struct {
			Name    string `json:"name"`
			GTIDSet string `json:"gtid_set"`
			File    string `json:"file"`
			Pos     uint64 `json:"pos"`
		} `json:"source"`
	}
	var beats []hb
	for deadline := time.Now().Add(time.Minute); len(beats) < 8; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d heartbeat records within a minute on an idle source with heartbeat_interval %s", len(beats), interval)
		}
		select {
		case err := <-runErr:
			t.Fatalf("connector stopped: %v", err)
		default:
		}
		recs, err := kafka.ReadAll(ctx, db+".heartbeat")
		if err != nil {
			continue // the topic is created with the first record
		}
		beats = beats[:0]
		for _, r := range recs {
			if string(r.Key) != `{"serverName":"rawhb"}` {
				t.Fatalf("heartbeat key %s", r.Key)
			}
			var v hb
			if err := json.Unmarshal(r.Value, &v); err != nil {
				t.Fatalf("heartbeat %s: %v", r.Value, err)
			}
			beats = append(beats, v)
		}
	}
	if n, err := kafka.ReadAll(ctx, db+"."+db+".idle"); err == nil && len(n) > 0 {
		t.Fatalf("the idle table has %d change records", len(n))
	}
	for i, b := range beats {
		if b.Source.Name != "rawhb" || b.Source.GTIDSet == "" || b.Source.File == "" || b.Source.Pos == 0 {
			t.Fatalf("heartbeat %d carries no position: %+v", i, b)
		}
		if b.ServerTS == nil || *b.ServerTS <= 0 {
			t.Fatalf("heartbeat %d carries no server time: %+v", i, b)
		}
		if i > 0 && b.TS < beats[i-1].TS {
			t.Fatalf("heartbeats out of order: %d after %d", b.TS, beats[i-1].TS)
		}
	}
	// A ticker never fires more often than its period: over the span the
	// records cover, at most span/interval + 1 of them.
	span := time.Duration(beats[len(beats)-1].TS-beats[0].TS) * time.Millisecond
	if max := int(span/interval) + 2; len(beats) > max {
		t.Fatalf("%d heartbeats within %s at an interval of %s", len(beats), span, interval)
	}
}

// TestRawColumnRulesMaskExcludeAndKeyColumns: raw.include_columns,
// exclude_columns, mask_columns (hash with the salt, mask:N, truncate:N)
// and key_columns (a table without a primary key) shape what reaches
// Kafka; the hash is checked against an independent HMAC-SHA-256.
func TestRawColumnRulesMaskExcludeAndKeyColumns(t *testing.T) {
	ctx := context.Background()
	db := srv.NewDatabase(t, "rawcols")
	admin := srv.Admin(t, db)
	for _, q := range []string{
		"CREATE TABLE customer (id INT PRIMARY KEY, email VARCHAR(100), phone VARCHAR(30), note TEXT, secret VARCHAR(30), name VARCHAR(30))",
		"CREATE TABLE audit (table_name VARCHAR(30) NOT NULL, row_id INT NOT NULL, v INT)",
		"CREATE TABLE narrow (id INT PRIMARY KEY, a INT, b INT)",
	} {
		if _, err := admin.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	kafka := kafkatest.Start(t)
	const salt = "pepper-7f3c"
	rules := fmt.Sprintf(`  tombstones: false
  exclude_columns: ["%[1]s.customer.secret"]
  include_columns: ["%[1]s.narrow.id", "%[1]s.NARROW.a"]
  mask_columns: {"%[1]s.customer.email": hash, "%[1]s.customer.phone": "mask:4", "*.customer.note": "truncate:3"}
  key_columns: {"%[1]s.audit": "table_name, row_id"}
`, db)
	cc := rawOnly(t, "rawcols", db, kafka.Addr(), []string{"customer", "audit", "narrow"}, rules)
	c := openConnector(t, cc.load(t, "FEEDCDC_RAW_HASH_SALT="+salt), OpenOptions{})
	runErr, _ := startRun(t, c, RunOptions{NoSchedule: true})
	waitCaughtUp(t, c, admin, runErr)
	for _, q := range []string{
		"INSERT INTO customer VALUES (1, 'ann@example.com', '+49 170 1234567', 'Ünïcode note', 'hunter2', 'Ann')",
		"INSERT INTO customer VALUES (2, NULL, NULL, 'ab', 'x', 'Bob')",
		"UPDATE customer SET email = 'ann@example.org' WHERE id = 1",
		"INSERT INTO audit VALUES ('orders', 5, 1)",
		"INSERT INTO narrow VALUES (1, 2, 3)",
	} {
		if _, err := admin.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	waitCaughtUp(t, c, admin, runErr)
	if err := c.Pipeline.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	hash := func(s string) string {
		m := hmac.New(sha256.New, []byte(salt))
		m.Write([]byte(s))
		return hex.EncodeToString(m.Sum(nil))
	}
	read := func(table string) []kafkatest.Record {
		recs, err := kafka.ReadAll(ctx, db+"."+db+"."+table)
		if err != nil {
			t.Fatal(err)
		}
		return recs
	}
	type env struct {
		Before map[string]any `json:"before"`
		After  map[string]any `json:"after"`
	}
	decode := func(r kafkatest.Record) env {
		var e env
		if err := json.Unmarshal(r.Value, &e); err != nil {
			t.Fatal(err)
		}
		return e
	}
	cust := read("customer")
	if len(cust) != 3 {
		t.Fatalf("%d customer records, want 3", len(cust))
	}
	want := []map[string]any{
		{"id": 1.0, "email": hash("ann@example.com"), "phone": "****", "note": "Ünï", "name": "Ann"},
		{"id": 2.0, "email": nil, "phone": nil, "note": "ab", "name": "Bob"},
		{"id": 1.0, "email": hash("ann@example.org"), "phone": "****", "note": "Ünï", "name": "Ann"},
	}
	for i, r := range cust {
		e := decode(r)
		if fmt.Sprint(e.After) != fmt.Sprint(want[i]) {
			t.Errorf("customer record %d after = %v, want %v", i, e.After, want[i])
		}
		if wk := fmt.Sprintf(`{"id":%v}`, want[i]["id"]); string(r.Key) != wk {
			t.Errorf("customer record %d key %s, want %s", i, r.Key, wk)
		}
	}
	if e := decode(cust[2]); fmt.Sprint(e.Before) != fmt.Sprint(want[0]) {
		t.Errorf("update before = %v, want the masked old row %v", e.Before, want[0])
	}
	if a := read("audit"); len(a) != 1 || string(a[0].Key) != `{"table_name":"orders","row_id":5}` {
		t.Errorf("audit records %v: want one keyed by key_columns", a)
	}
	if n := read("narrow"); len(n) != 1 || fmt.Sprint(decode(n[0]).After) != fmt.Sprint(map[string]any{"id": 1.0, "a": 2.0}) {
		t.Errorf("narrow records: want only the included columns id, a")
	}
}

// TestRawTransactionMetadataCounts: with raw.transaction_metadata, every
// transaction with raw changes gets a BEGIN and an END record whose counts
// per table match its changes, and each envelope's transaction block
// places the change in it; transactions without captured changes get none.
func TestRawTransactionMetadataCounts(t *testing.T) {
	ctx := context.Background()
	db := srv.NewDatabase(t, "rawtx")
	admin := srv.Admin(t, db)
	for _, q := range []string{"CREATE TABLE a (id INT PRIMARY KEY, v INT)", "CREATE TABLE b (id INT PRIMARY KEY, v INT)", "CREATE TABLE untracked (id INT PRIMARY KEY)"} {
		if _, err := admin.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	kafka := kafkatest.Start(t)
	cc := rawOnly(t, "rawtx", db, kafka.Addr(), []string{"a", "b"}, "  tombstones: false\n  transaction_metadata: true\n")
	c := openConnector(t, cc.load(t), OpenOptions{})
	runErr, _ := startRun(t, c, RunOptions{NoSchedule: true})
	waitCaughtUp(t, c, admin, runErr)
	tx, err := admin.Begin()
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"INSERT INTO a VALUES (1, 1)", "INSERT INTO b VALUES (1, 1)", "UPDATE a SET v = 2 WHERE id = 1", "INSERT INTO untracked VALUES (1)"} {
		if _, err := tx.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"INSERT INTO untracked VALUES (2)", "DELETE FROM b WHERE id = 1"} {
		if _, err := admin.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	waitCaughtUp(t, c, admin, runErr)
	if err := c.Pipeline.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	txRecs, err := kafka.ReadAll(ctx, db+".transaction")
	if err != nil {
		t.Fatal(err)
	}
	type txRec struct {
		Status string `json:"status"`
		ID     string `json:"id"`
		Count  *int64 `json:"event_count"`
		Colls  []struct {
			Name  string `json:"data_collection"`
			Count int64  `json:"event_count"`
		} `json:"data_collections"`
	}
	var got []string
	var ids []string
	for _, r := range txRecs {
		var v txRec
		if err := json.Unmarshal(r.Value, &v); err != nil {
			t.Fatal(err)
		}
		if string(r.Key) != fmt.Sprintf(`{"id":%q}`, v.ID) {
			t.Fatalf("transaction record key %s for id %s", r.Key, v.ID)
		}
		s := v.Status
		if v.Count != nil {
			s += fmt.Sprintf(" %d", *v.Count)
			for _, c := range v.Colls {
				s += fmt.Sprintf(" %s=%d", strings.TrimPrefix(c.Name, db+"."), c.Count)
			}
		}
		got = append(got, s)
		if v.Status == "BEGIN" {
			ids = append(ids, v.ID)
		}
	}
	if want := []string{"BEGIN", "END 3 a=2 b=1", "BEGIN", "END 1 b=1"}; !slices.Equal(got, want) {
		t.Fatalf("transaction records %q, want %q", got, want)
	}
	if len(ids) != 2 || ids[0] == ids[1] || !strings.HasPrefix(ids[0], "0-") {
		t.Fatalf("transaction ids %q: want two GTIDs", ids)
	}
	blocks := map[string][]string{}
	for _, table := range []string{"a", "b"} {
		recs, err := kafka.ReadAll(ctx, db+"."+db+"."+table)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			var v struct {
				Tx struct {
					ID    string `json:"id"`
					Total int64  `json:"total_order"`
					Coll  int64  `json:"data_collection_order"`
				} `json:"transaction"`
			}
			if err := json.Unmarshal(r.Value, &v); err != nil {
				t.Fatal(err)
			}
			blocks[table] = append(blocks[table], fmt.Sprintf("%s/%d/%d", v.Tx.ID, v.Tx.Total, v.Tx.Coll))
		}
	}
	if want := []string{ids[0] + "/1/1", ids[0] + "/3/2"}; !slices.Equal(blocks["a"], want) {
		t.Errorf("transaction blocks of a %q, want %q", blocks["a"], want)
	}
	if want := []string{ids[0] + "/2/1", ids[1] + "/1/1"}; !slices.Equal(blocks["b"], want) {
		t.Errorf("transaction blocks of b %q, want %q", blocks["b"], want)
	}
}

// TestRawSourceVersionConnectorQueryThread: envelopes carry feedcdc's
// version, the server flavor, the session id of the writer and, with
// raw.include_query, the statement from MariaDB's annotate events.
func TestRawSourceVersionConnectorQueryThread(t *testing.T) {
	ctx := context.Background()
	db := srv.NewDatabase(t, "rawsrc")
	admin := srv.Admin(t, db)
	if _, err := admin.Exec("CREATE TABLE q (id INT PRIMARY KEY, v VARCHAR(20))"); err != nil {
		t.Fatal(err)
	}
	kafka := kafkatest.Start(t)
	cc := rawOnly(t, "rawsrc", db, kafka.Addr(), []string{"q"}, "  tombstones: false\n  include_query: true\n")
	c := openConnector(t, cc.load(t), OpenOptions{Version: "1.2.3-test"})
	runErr, _ := startRun(t, c, RunOptions{NoSchedule: true})
	waitCaughtUp(t, c, admin, runErr)
	conn, err := admin.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var thread uint64
	if err := conn.QueryRowContext(ctx, "SELECT CONNECTION_ID()").Scan(&thread); err != nil {
		t.Fatal(err)
	}
	const stmt = "INSERT INTO q VALUES (1, 'one'), (2, 'two') /* tagged */"
	if _, err := conn.ExecContext(ctx, stmt); err != nil {
		t.Fatal(err)
	}
	waitCaughtUp(t, c, admin, runErr)
	if err := c.Pipeline.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	recs, err := kafka.ReadAll(ctx, db+"."+db+".q")
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 {
		t.Fatalf("%d records, want 2", len(recs))
	}
	for _, r := range recs {
		var v struct {
			Source struct {
				Version   string `json:"version"`
				Connector string `json:"connector"`
				Thread    uint64 `json:"thread"`
				Query     string `json:"query"`
			} `json:"source"`
		}
		if err := json.Unmarshal(r.Value, &v); err != nil {
			t.Fatal(err)
		}
		s := v.Source
		// MariaDB begins a transaction with a GTID event, not a BEGIN query
		// event, so its session id is not in the binlog: no thread (the
		// MySQL case is TestSourceThreadAndFlavorFromMySQLBinlog).
		if s.Version != "1.2.3-test" || s.Connector != "mariadb" || s.Thread != 0 || s.Query != stmt {
			t.Fatalf("source %+v, want version 1.2.3-test, connector mariadb, no thread (session %d), query %q", s, thread, stmt)
		}
	}
}

// TestRawSchemaChangeKindsOfCreateRenameDrop: CREATE, ALTER, RENAME (both
// forms) and DROP of captured tables give CREATE/ALTER/DROP records, a
// rename as a DROP of the old name and a CREATE of the new one, with the
// columns after each statement (none for a dropped name).
func TestRawSchemaChangeKindsOfCreateRenameDrop(t *testing.T) {
	ctx := context.Background()
	db := srv.NewDatabase(t, "rawkinds")
	admin := srv.Admin(t, db)
	kafka := kafkatest.Start(t)
	cc := rawOnly(t, "rawkinds", db, kafka.Addr(), []string{"t*"}, "")
	obs := &streamObserver{}
	c := openConnector(t, cc.load(t), OpenOptions{Observer: obs})
	runErr, _ := startRun(t, c, RunOptions{NoSchedule: true})
	obs.waitStreaming(t, runErr)
	waitCaughtUp(t, c, admin, runErr)
	for _, q := range []string{"CREATE TABLE t1 (id INT PRIMARY KEY)", "ALTER TABLE t1 ADD COLUMN c INT", "RENAME TABLE t1 TO t2",
		"ALTER TABLE t2 RENAME TO t3", "CREATE TABLE other (id INT PRIMARY KEY)", "DROP TABLE t3"} {
		if _, err := admin.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	waitCaughtUp(t, c, admin, runErr)
	if err := c.Pipeline.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	recs, err := kafka.ReadAll(ctx, db+".schema-changes")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range recs {
		var v struct {
			Source struct {
				Table string `json:"table"`
			} `json:"source"`
			TableChanges []struct {
				Type  string `json:"type"`
				Table *struct {
					Columns []struct {
						Name string `json:"name"`
					} `json:"columns"`
				} `json:"table"`
			} `json:"tableChanges"`
		}
		if err := json.Unmarshal(r.Value, &v); err != nil {
			t.Fatal(err)
		}
		tc := v.TableChanges[0]
		s := v.Source.Table + " " + tc.Type
		if tc.Table != nil {
			for _, col := range tc.Table.Columns {
				s += " " + col.Name
			}
		}
		got = append(got, s)
	}
	want := []string{"t1 CREATE id", "t1 ALTER id c", "t1 DROP", "t2 CREATE id c", "t2 DROP", "t3 CREATE id c", "t3 DROP"}
	if !slices.Equal(got, want) {
		t.Fatalf("schema-change records %q, want %q", got, want)
	}
}

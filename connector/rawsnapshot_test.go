package connector

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/feedcdc/feedcdc/change"
	"github.com/feedcdc/feedcdc/state"
	"github.com/feedcdc/feedcdc/test/kafkatest"
)

// snapRow is a row of the snapshot test's table as the topic and the
// database show it.
type snapRow struct {
	V    int64  `json:"v"`
	Note string `json:"note"`
}

// applyTopic applies raw records in topic order, as a consumer that
// mirrors the table would: r, c and u set the key's row to after, d
// deletes it. It returns the table and the counts of snapshot records by
// source.snapshot.
func applyTopic(t *testing.T, recs []kafkatest.Record) (map[int64]snapRow, map[string]int) {
	t.Helper()
	rows := map[int64]snapRow{}
	kinds := map[string]int{}
	for _, r := range recs {
		if r.Value == nil {
			continue // tombstone
		}
		var e struct {
			Op     string `json:"op"`
			Before *struct {
				ID int64 `json:"id"`
			} `json:"before"`
			After *struct {
				ID int64 `json:"id"`
				snapRow
			} `json:"after"`
			Source struct {
				Snapshot string `json:"snapshot"`
			} `json:"source"`
		}
		if err := json.Unmarshal(r.Value, &e); err != nil {
			t.Fatalf("record %s: %v", r.Value, err)
		}
		switch e.Op {
		case "r", "c", "u":
			if e.Op == "u" && e.Before != nil && e.Before.ID != e.After.ID {
				delete(rows, e.Before.ID)
			}
			rows[e.After.ID] = e.After.snapRow
		case "d":
			delete(rows, e.Before.ID)
		default:
			t.Fatalf("unexpected op %q in %s", e.Op, r.Value)
		}
		if e.Op == "r" {
			kinds[e.Source.Snapshot]++
		}
	}
	return rows, kinds
}

// tableRows reads the test table from the database.
func tableRows(t *testing.T, db *sql.DB, table string) map[int64]snapRow {
	t.Helper()
	rows, err := db.Query("SELECT id, v, note FROM " + table)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[int64]snapRow{}
	for rows.Next() {
		var id int64
		var r snapRow
		if err := rows.Scan(&id, &r.V, &r.Note); err != nil {
			t.Fatal(err)
		}
		out[id] = r
	}
	return out
}

// diffRows describes how got differs from want (at most a few examples).
func diffRows(got, want map[int64]snapRow) (n int, examples []string) {
	for id, w := range want {
		if g, ok := got[id]; !ok || g != w {
			n++
			if len(examples) < 5 {
				examples = append(examples, fmt.Sprintf("id %d: topic %+v (present %v), table %+v", id, g, ok, w))
			}
		}
	}
	for id, g := range got {
		if _, ok := want[id]; !ok {
			n++
			if len(examples) < 5 {
				examples = append(examples, fmt.Sprintf("id %d: topic %+v, not in the table", id, g))
			}
		}
	}
	return n, examples
}

// TestRawSnapshotUnderWorkloadSurvivesSIGKILL snapshots a table (raw.snapshot:
// initial) while a workload of about 500 single-row changes a second
// updates, deletes and inserts rows of the same table, and kills the
// connector process with SIGKILL twice during the snapshot. A consumer that
// applies the topic in order (snapshot reads and changes) must end with
// exactly the table's rows. A snapshot row emitted after a newer change of
// its key would leave that key stale: FEEDCDC_RAWSNAP_NO_RECONCILE=1 runs
// the children without the watermark reconciliation, and the test then
// fails.
//
// The table has FEEDCDC_RAWSNAP_ROWS rows (default 20,000; the issue's
// full run: FEEDCDC_RAWSNAP_ROWS=200000, see docs/sinks.md).
func TestRawSnapshotUnderWorkloadSurvivesSIGKILL(t *testing.T) {
	n := 20000
	if v := os.Getenv("FEEDCDC_RAWSNAP_ROWS"); v != "" {
		n, _ = strconv.Atoi(v)
	}
	ctx := context.Background()
	db := srv.NewDatabase(t, "rawsnap")
	admin := srv.Admin(t, db)
	if _, err := admin.Exec("CREATE TABLE items (id INT PRIMARY KEY, v INT NOT NULL, note VARCHAR(40) NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	for lo := 1; lo <= n; lo += 10000 {
		hi := min(lo+9999, n)
		if _, err := admin.Exec(fmt.Sprintf("INSERT INTO items SELECT seq, 0, CONCAT('row ', seq) FROM seq_%d_to_%d", lo, hi)); err != nil {
			t.Fatal(err)
		}
	}
	// The stream starts after the load: the rows reach the topic only
	// through the snapshot.
	var start string
	if err := admin.QueryRow("SELECT @@gtid_binlog_pos").Scan(&start); err != nil {
		t.Fatal(err)
	}
	kafka := kafkatest.Start(t)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "config.yaml")
	// Paced so that the snapshot spans the two kills (about 12 s).
	rate := max(n/12, 500)
	cc := connectorYAML{Name: "snapcrash", StatePath: filepath.Join(dir, "state.db"), Database: db, Feeds: noFeeds,
		Source: []string{fmt.Sprintf("start_position: \"gtid:%s\"", start), fmt.Sprintf("include_tables: [\"%s.items\"]", db)},
		Sections: "raw:\n  enabled: true\n  tombstones: false\n  snapshot: initial\n  snapshot_chunk_size: 500\n" +
			fmt.Sprintf("resync: {max_replica_lag: 0s, rows_per_second: %d}\n", rate) +
			kafkaSink(kafka.Addr(), "snapcrash", "linger: 2ms") + "log: {format: json, level: warn}\n"}
	cc.write(t, dir)
	startChild := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "FEEDCDC_CRASH_CHILD="+cfgPath, "SNAPCRASH_SOURCE_PASSWORD="+srv.CDCPassword)
		cmd.Stderr = &prefixWriter{t: t}
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}

	// The workload: about 500 single-row transactions a second over the
	// whole key range and beyond it: updates (most), deletes, inserts.
	var changes atomic.Int64
	stopWL := make(chan struct{})
	wlErr := make(chan error, 1)
	go func() {
		rng := rand.New(rand.NewPCG(5, 6))
		t0 := time.Now()
		for i := 0; ; i++ {
			select {
			case <-stopWL:
				wlErr <- nil
				return
			default:
			}
			if d := time.Until(t0.Add(time.Duration(i) * 2 * time.Millisecond)); d > 0 {
				time.Sleep(d)
			}
			id := 1 + rng.IntN(n+n/10)
			var err error
			switch r := rng.IntN(10); {
			case r < 7:
				_, err = admin.Exec("UPDATE items SET v = v + 1, note = CONCAT('upd ', ?) WHERE id = ?", i, id)
			case r < 8:
				_, err = admin.Exec("DELETE FROM items WHERE id = ?", id)
			default:
				_, err = admin.Exec("INSERT INTO items (id, v, note) VALUES (?, 1000, CONCAT('ins ', ?)) ON DUPLICATE KEY UPDATE v = v + 1000, note = CONCAT('dup ', ?)", id, i, i)
			}
			if err != nil {
				wlErr <- err
				return
			}
			changes.Add(1)
		}
	}()
	topic := "snapcrash." + db + ".items"
	rng := rand.New(rand.NewPCG(7, 8))
	for kill := 1; kill <= 2; kill++ {
		child := startChild()
		time.Sleep(time.Duration(2500+rng.IntN(1500)) * time.Millisecond)
		_ = child.Process.Kill() // SIGKILL
		_ = child.Wait()
		recs, _ := kafka.ReadAll(ctx, topic)
		_, kinds := applyTopic(t, recs)
		t.Logf("kill %d: %d changes committed, %d records in Kafka, snapshot reads %v", kill, changes.Load(), len(recs), kinds)
	}
	// A last run finishes the snapshot while the workload goes on for a
	// while, then catches up with the table.
	child := startChild()
	time.Sleep(8 * time.Second)
	close(stopWL)
	if err := <-wlErr; err != nil {
		child.Process.Kill()
		child.Wait()
		t.Fatalf("workload: %v", err)
	}
	want := tableRows(t, admin, "items")
	var got map[int64]snapRow
	var kinds map[string]int
	var recs []kafkatest.Record
	for deadline := time.Now().Add(3 * time.Minute); ; time.Sleep(time.Second) {
		var err error
		recs, err = kafka.ReadAll(ctx, topic)
		if err == nil {
			got, kinds = applyTopic(t, recs)
			if d, _ := diffRows(got, want); d == 0 && kinds["last"] > 0 {
				break
			}
		}
		if time.Now().After(deadline) {
			break
		}
	}
	child.Process.Signal(syscall.SIGTERM)
	if err := child.Wait(); err != nil {
		t.Fatalf("clean stop: %v", err)
	}
	recs, err := kafka.ReadAll(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	got, kinds = applyTopic(t, recs)
	if d, ex := diffRows(got, want); d > 0 {
		t.Fatalf("the topic applied in order differs from the table in %d rows (of %d), e.g.\n%v\nsnapshot reads by source.snapshot: %v",
			d, len(want), ex, kinds)
	}
	st, err := state.OpenReadOnly(cc.StatePath, state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	snaps, err := st.RawSnapshots(ctx)
	if err != nil || len(snaps) != 1 {
		t.Fatalf("raw snapshots in the state: %+v, %v", snaps, err)
	}
	s := snaps[0]
	if s.State != state.RawSnapDone || s.Mode != RawSnapInitial || s.Read < int64(n*9/10) {
		t.Fatalf("snapshot progress: %+v", s)
	}
	if kinds["last"] != 1 || kinds["true"] == 0 {
		t.Fatalf("snapshot reads by source.snapshot: %v (want one \"last\")", kinds)
	}
	t.Logf("%d rows, %d changes, 2 kills: %d records, snapshot reads %v; progress: read %d, sent %d, dropped for newer changes %d, %d chunks",
		n, changes.Load(), len(recs), kinds, s.Read, s.Sent, s.Dropped, s.Chunks)
}

// TestRawSnapshotOnDemandMatchesTheStream snapshots a table of many
// column types on demand while the connector streams it: a snapshot
// record's key and after image equal those of the streamed insert of the
// same row, and the records carry op "r" and source.snapshot
// "incremental". Requests name what is wrong (not captured, no primary
// key, a bad --where, one running already); pause, resume and stop act.
func TestRawSnapshotOnDemandMatchesTheStream(t *testing.T) {
	ctx := context.Background()
	db := srv.NewDatabase(t, "rawsnapdemand")
	admin := srv.Admin(t, db)
	for _, q := range []string{
		`CREATE TABLE typed (id BIGINT UNSIGNED PRIMARY KEY, i INT, s VARCHAR(20), d DECIMAL(10,3), f FLOAT, g DOUBLE,
			dt DATETIME(3), ts TIMESTAMP(6) NULL, dd DATE, tm TIME, y YEAR, b VARBINARY(8), bl BLOB, e ENUM('a','b'), st SET('x','y'),
			bt BIT(10), j JSON, tx TEXT, n INT NULL)`,
		`CREATE TABLE nokey (v INT)`,
		`CREATE TABLE other (id INT PRIMARY KEY)`,
	} {
		if _, err := admin.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	kafka := kafkatest.Start(t)
	cc := connectorYAML{Name: "snapdemand", Database: db, Feeds: noFeeds,
		Source: []string{fmt.Sprintf("include_tables: [\"%s.typed\", \"%s.nokey\"]", db, db)},
		// 2 rows a chunk at 4 rows/s: a chunk every half second.
		Sections: "raw:\n  enabled: true\n  tombstones: false\n  snapshot_chunk_size: 2\n" +
			"resync: {max_replica_lag: 0s, rows_per_second: 4}\n" + kafkaSink(kafka.Addr(), "snapdemand")}
	c := openConnector(t, cc.load(t), OpenOptions{})
	started := make(chan struct{})
	_, stop := startRun(t, c, RunOptions{NoSchedule: true, OnStart: func(change.Position, bool) { close(started) }})
	<-started
	topic := "snapdemand." + db + ".typed"
	insert := `INSERT INTO typed VALUES (?, -5, 'héllo', 12.345, 1.5, 2.25, '2024-01-02 03:04:05.678', '2024-05-06 07:08:09.123456',
		'2024-02-29', '12:34:56', 2024, x'00ff10', x'deadbeef', 'b', 'x,y', b'1010000001', '{"k": [1, 2]}', 'text', NULL)`
	for id := 1; id <= 5; id++ {
		if _, err := admin.Exec(insert, uint64(1)<<63+uint64(id)); err != nil {
			t.Fatal(err)
		}
	}
	streamed := waitRecords(t, kafka, topic, 5)

	for _, bad := range []struct{ table, where, want string }{
		{db + ".other", "", "is not captured"},
		{db + ".nokey", "", "has no primary key"},
		{db + ".typed", "no_such_column > 1", "is not a valid condition"},
		{"typed", "", "name it as db.table"},
	} {
		if _, err := c.RequestRawSnapshot(ctx, RawSnapshotRequest{Table: bad.table, Where: bad.where}); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("request %+v: %v, want an error saying %q", bad, err, bad.want)
		}
	}
	if _, err := c.RequestRawSnapshot(ctx, RawSnapshotRequest{Table: db + ".typed", Where: "i = -5"}); err != nil {
		t.Fatal(err)
	}
	recs := waitRecords(t, kafka, topic, 10)
	// The snapshot record of each row equals its streamed insert but for
	// op, source and ts_ms.
	type env struct {
		After  map[string]any `json:"after"`
		Op     string         `json:"op"`
		Source struct {
			Snapshot string `json:"snapshot"`
		} `json:"source"`
	}
	for i := range 5 {
		var s, r env
		if err := json.Unmarshal(streamed[i].Value, &s); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(recs[5+i].Value, &r); err != nil {
			t.Fatal(err)
		}
		if s.Op != "c" || s.Source.Snapshot != "false" || r.Op != "r" || r.Source.Snapshot != "incremental" {
			t.Fatalf("streamed %s\nsnapshot %s", streamed[i].Value, recs[5+i].Value)
		}
		if string(streamed[i].Key) != string(recs[5+i].Key) {
			t.Fatalf("keys differ: streamed %s, snapshot %s", streamed[i].Key, recs[5+i].Key)
		}
		sa, _ := json.Marshal(s.After)
		ra, _ := json.Marshal(r.After)
		if string(sa) != string(ra) {
			t.Fatalf("after images differ:\nstreamed %s\nsnapshot %s", sa, ra)
		}
	}
	snapDone := func() state.RawSnapshot {
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
			all, err := c.Store.RawSnapshots(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(all) == 1 && all[0].State == state.RawSnapDone {
				return all[0]
			}
			if time.Now().After(deadline) {
				t.Fatalf("snapshot not done: %+v", all)
			}
		}
	}
	if p := snapDone(); p.Read != 5 || p.Sent != 5 || p.Chunks != 3 || p.Mode != RawSnapIncremental {
		t.Fatalf("progress %+v", p)
	}
	if _, err := c.ControlRawSnapshot(ctx, db+".typed", RawSnapPause); err == nil || !strings.Contains(err.Error(), "done already") {
		t.Fatalf("pause of a finished snapshot: %v", err)
	}

	// Pause holds a new snapshot before its first chunk; resume finishes it.
	if _, err := c.ControlRawSnapshot(ctx, db+".typed", "jump"); err == nil {
		t.Fatal("an unknown action was accepted")
	}
	p, err := c.RequestRawSnapshot(ctx, RawSnapshotRequest{Table: db + ".typed"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.ControlRawSnapshot(ctx, db+".typed", RawSnapPause); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RequestRawSnapshot(ctx, RawSnapshotRequest{Table: db + ".typed"}); !errors.Is(err, ErrRawSnapshotBusy) {
		t.Fatalf("second request while paused: %v", err)
	}
	// At most the chunk being read when the pause came is sent.
	time.Sleep(time.Second)
	all, _ := c.Store.RawSnapshots(ctx)
	paused := all[0]
	time.Sleep(time.Second)
	if all, _ = c.Store.RawSnapshots(ctx); all[0].Read != paused.Read || all[0].State != paused.State || paused.State != state.RawSnapPaused || paused.Read > 2 || paused.Seq != p.Seq {
		t.Fatalf("paused snapshot moved on: %+v, then %+v", paused, all[0])
	}
	if _, err := c.ControlRawSnapshot(ctx, db+".typed", RawSnapResume); err != nil {
		t.Fatal(err)
	}
	if p := snapDone(); p.Read != 5 || p.Seq != 2 {
		t.Fatalf("progress after resume %+v", p)
	}
	stop()
}

// waitRecords waits until topic holds at least n records and returns them.
func waitRecords(t *testing.T, kafka *kafkatest.Cluster, topic string, n int) []kafkatest.Record {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		recs, err := kafka.ReadAll(context.Background(), topic)
		if err == nil && len(recs) >= n {
			return recs
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d records, want %d (%v)", topic, len(recs), n, err)
		}
	}
}

// TestRawSnapshotProgressKeepsCommands: progress a batch stores never
// undoes a pause or stop that a command stored meanwhile, and progress of
// an older request never overwrites a newer one.
func TestRawSnapshotProgressKeepsCommands(t *testing.T) {
	ctx := context.Background()
	st, err := state.Open(filepath.Join(t.TempDir(), "state.db"), state.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	put := func(p state.RawSnapshot) {
		t.Helper()
		if err := st.Update(ctx, func(tx *state.Tx) error { return putRawSnaps(tx, []state.RawSnapshot{p}) }); err != nil {
			t.Fatal(err)
		}
	}
	get := func() state.RawSnapshot {
		t.Helper()
		all, err := st.RawSnapshots(ctx)
		if err != nil || len(all) != 1 {
			t.Fatalf("%+v %v", all, err)
		}
		return all[0]
	}
	put(state.RawSnapshot{Table: "d.t", Seq: 2, State: state.RawSnapPaused, Read: 10})
	put(state.RawSnapshot{Table: "d.t", Seq: 2, State: state.RawSnapRunning, Read: 20})
	if p := get(); p.State != state.RawSnapPaused || p.Read != 20 {
		t.Fatalf("a chunk's progress undid the pause: %+v", p)
	}
	put(state.RawSnapshot{Table: "d.t", Seq: 1, State: state.RawSnapRunning, Read: 99})
	if p := get(); p.Seq != 2 || p.Read != 20 {
		t.Fatalf("an older request's progress overwrote the newer one: %+v", p)
	}
	put(state.RawSnapshot{Table: "d.t", Seq: 2, State: state.RawSnapDone, Read: 30})
	if p := get(); p.State != state.RawSnapDone {
		t.Fatalf("the last chunk's progress: %+v", p)
	}
}

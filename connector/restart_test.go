package connector

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/feedcdc/feedcdc/change"
	"github.com/feedcdc/feedcdc/test/catalog"
	"github.com/feedcdc/feedcdc/test/kafkatest"
	"github.com/feedcdc/feedcdc/test/mysqltest"
)

// envInt reads a positive integer test parameter from the environment.
func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// TestSourceRestartsUnderLoadNeverStopRun is issue 11's "done when": a
// private mariadbd is restarted FEEDCDC_RESTARTS times (default 5; SIGTERM
// and SIGKILL alternately, same port and datadir) while a workload writes
// about FEEDCDC_RESTART_RATE changes/s (default 300) and the connector runs
// the four feeds and raw streams into Kafka. Run must never return; after
// the last restart every feed item equals a fresh full build, and every row
// change of the binlog after the start position (read independently with
// mariadb-binlog) reached its raw topic, in binlog order per key.
func TestSourceRestartsUnderLoadNeverStopRun(t *testing.T) {
	restarts := envInt("FEEDCDC_RESTARTS", 5)
	rate := float64(envInt("FEEDCDC_RESTART_RATE", 300))
	interval := time.Duration(envInt("FEEDCDC_RESTART_INTERVAL_MS", 3000)) * time.Millisecond
	ctx := context.Background()
	s, err := mysqltest.Start(ctx, mysqltest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop() })
	db := s.NewDatabase(t, "restart")
	admin := s.Admin(t, db)
	if _, err := catalog.Load(ctx, admin, catalog.Tiny(), 7); err != nil {
		t.Fatal(err)
	}
	kafka := kafkatest.Start(t)
	cy := connectorYAML{Name: "restarts", Server: s, Database: db,
		Source: []string{"databases: [" + db + "]", "reconnect_min: 100ms", "reconnect_max: 1s", "query_timeout: 30s",
			"retry: {initial: 100ms, max: 1s}"},
		Sections: unthrottledResync + kafkaSink(kafka.Addr(), db, "linger: 1ms") +
			"raw:\n  enabled: true\n  topic_template: \"{prefix}.raw.{table}\"\n"}
	cfg := cy.load(t)
	c := openConnector(t, cfg, OpenOptions{})
	started := make(chan change.Position, 1)
	runErr, stop := startRun(t, c, RunOptions{NoSchedule: true, OnStart: func(pos change.Position, _ bool) { started <- pos }})
	var startPos change.Position
	select {
	case startPos = <-started:
	case err := <-runErr:
		t.Fatalf("run stopped before streaming: %v", err)
	}

	// The workload keeps writing through the restarts: a change that meets
	// a stopped server fails (committed or not, the binlog says) and the
	// next one is tried after a short pause.
	wctx, wcancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var applied, failed atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		wl := catalog.NewWorkload(admin, 7, catalog.WorkloadOptions{})
		for wctx.Err() == nil {
			st, err := wl.Run(wctx, 30, rate)
			applied.Add(int64(st.Transactions))
			if err != nil && wctx.Err() == nil {
				failed.Add(1)
				time.Sleep(100 * time.Millisecond)
			}
		}
	}()
	alive := func(when string) {
		t.Helper()
		select {
		case err := <-runErr:
			wcancel()
			wg.Wait()
			t.Fatalf("feedcdc run stopped %s: %v", when, err)
		default:
		}
	}
	retried := 0
	for i := 1; i <= restarts; i++ {
		time.Sleep(interval)
		alive(fmt.Sprintf("before restart %d", i))
		how := "SIGTERM"
		if i%2 == 0 {
			how = "SIGKILL"
			err = s.Kill()
		} else {
			err = s.Shutdown()
		}
		if err != nil {
			t.Fatal(err)
		}
		// Down long enough for builds, lookups and the fence to meet it.
		time.Sleep(interval / 2)
		if w, waiting := c.SourceUnavailable(); waiting {
			retried++
			t.Logf("restart %d (%s): %s", i, how, w)
			// What /readyz and the dashboard (and so feedcdc status) say
			// while the server is still down.
			if r := c.SourceReadiness()(ctx); len(r) != 1 || !strings.HasPrefix(r[0], "source unavailable, retrying (since ") {
				t.Errorf("readiness while the source is down: %q", r)
			}
			ov, err := (&Backend{C: c, Ctx: ctx}).Overview(ctx)
			if err != nil || !strings.Contains(ov.Source.Unavailable, "attempts ") {
				t.Errorf("dashboard source status while the source is down: %+v, %v", ov.Source, err)
			}
		}
		rctx, rcancel := context.WithTimeout(ctx, 2*time.Minute)
		err = s.Restart(rctx, mysqltest.Options{})
		rcancel()
		if err != nil {
			t.Fatalf("restart %d: %v\n%s", i, err, s.ErrorLogTail(20))
		}
		alive(fmt.Sprintf("after restart %d (%s)", i, how))
	}
	time.Sleep(interval)
	wcancel()
	wg.Wait()
	alive("after the workload")
	t.Logf("%d restarts, %d workload transactions, %d workload runs cut by a restart; the source was seen unavailable during %d restarts",
		restarts, applied.Load(), failed.Load(), retried)
	if applied.Load() == 0 || retried == 0 {
		t.Fatal("the workload applied nothing, or no read on the source ever met a stopped server: the test proved nothing")
	}

	waitCaughtUp(t, c, admin, runErr)
	waitFullSyncs(t, c)
	if err := c.Pipeline.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	alive("at the end")
	if w, waiting := c.SourceUnavailable(); waiting {
		t.Errorf("the source is back, but the connector still reports: %s", w)
	}
	feedsEqualFreshBuild(t, c, kafka, db)
	rawEqualsBinlog(t, s, admin, kafka, db, startPos)
	stop()
}

// binlogChange is one row change as mariadb-binlog shows it.
type binlogChange struct {
	gtid, op, key string
}

var (
	reGTID  = regexp.MustCompile(`\bGTID (\d+-\d+-\d+)\b`)
	reRows  = regexp.MustCompile("^### (INSERT INTO|UPDATE|DELETE FROM) `([^`]+)`\\.`([^`]+)`")
	reValue = regexp.MustCompile(`^###   @(\d+)=(.*)$`)
)

// rawEqualsBinlog checks the raw topics of db against the server's binlog
// decoded by mariadb-binlog: per table and primary key, the row changes of
// transactions after start (GTID, op) appear in the topic in binlog order
// (as a subsequence: replays after a restart may repeat some), and the
// topic holds no change the binlog lacks.
func rawEqualsBinlog(t *testing.T, s *mysqltest.Server, admin *sql.DB, kafka *kafkatest.Cluster, db string, start change.Position) {
	t.Helper()
	startSeq := gtidSeq(t, start.GTIDSet)
	pks := primaryKeys(t, admin, db)
	want := binlogChanges(t, s, db, pks, startSeq)
	var total, delivered int
	for table, changes := range want {
		got := topicChanges(t, kafka, db, table, pks[table])
		byKey := map[string][]binlogChange{}
		for _, ch := range changes {
			byKey[ch.key] = append(byKey[ch.key], ch)
		}
		bad := 0
		for k, seq := range byKey {
			total += len(seq)
			delivered += checkKeyChanges(t, table, k, seq, got[k], startSeq, &bad)
		}
	}
	t.Logf("raw: %d row changes in the binlog after %s, %d delivered in order", total, start, delivered)
	if total == 0 {
		t.Fatal("no row change in the binlog after the start position")
	}
}

// pkCol is a primary key column: its 1-based ordinal and name.
type pkCol struct {
	ord  int
	name string
}

// primaryKeys returns the primary key columns of every table of db.
func primaryKeys(t *testing.T, admin *sql.DB, db string) map[string][]pkCol {
	t.Helper()
	pks := map[string][]pkCol{}
	rows, err := admin.QueryContext(context.Background(), `SELECT k.table_name, c.ordinal_position, k.column_name
		FROM information_schema.key_column_usage k JOIN information_schema.columns c
		  ON c.table_schema = k.table_schema AND c.table_name = k.table_name AND c.column_name = k.column_name
		WHERE k.table_schema = ? AND k.constraint_name = 'PRIMARY' ORDER BY k.table_name, k.ordinal_position`, db)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var tbl, col string
		var ord int
		if err := rows.Scan(&tbl, &ord, &col); err != nil {
			t.Fatal(err)
		}
		pks[tbl] = append(pks[tbl], pkCol{ord, col})
	}
	return pks
}

// binlogChanges decodes the server's binlog with its own tool
// (mariadb-binlog) into the row changes of db's tables with a primary key,
// per table in binlog order, of transactions after startSeq.
func binlogChanges(t *testing.T, s *mysqltest.Server, db string, pks map[string][]pkCol, startSeq uint64) map[string][]binlogChange {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(s.Dir, "data", "binlog.[0-9]*"))
	sort.Strings(files)
	if len(files) == 0 {
		t.Fatal("no binlog files")
	}
	out, err := exec.Command("mariadb-binlog", append([]string{"--no-defaults", "-v", "--base64-output=DECODE-ROWS"}, files...)...).Output()
	if err != nil {
		t.Fatalf("mariadb-binlog: %v", err)
	}
	want := map[string][]binlogChange{} // table -> changes in binlog order
	var gtid string
	var cur *binlogChange
	var curTable, section string
	vals := map[int]string{}
	flush := func() {
		if cur == nil {
			return
		}
		var parts []string
		for _, pk := range pks[curTable] {
			parts = append(parts, strings.Trim(vals[pk.ord], "'"))
		}
		cur.key = strings.Join(parts, ",")
		want[curTable] = append(want[curTable], *cur)
		cur, vals = nil, map[int]string{}
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		line := sc.Text()
		if m := reGTID.FindStringSubmatch(line); m != nil && strings.HasPrefix(line, "#") && !strings.HasPrefix(line, "###") {
			flush()
			gtid = m[1]
			continue
		}
		if m := reRows.FindStringSubmatch(line); m != nil {
			flush()
			if m[2] != db || len(pks[m[3]]) == 0 || gtidSeqOf(gtid) <= startSeq {
				continue
			}
			op := map[string]string{"INSERT INTO": "c", "UPDATE": "u", "DELETE FROM": "d"}[m[1]]
			cur, curTable, section = &binlogChange{gtid: gtid, op: op}, m[3], ""
			continue
		}
		if cur == nil {
			continue
		}
		switch {
		case line == "### WHERE":
			section = "where"
		case line == "### SET":
			section = "set"
		default:
			if m := reValue.FindStringSubmatch(line); m != nil {
				// The key of the newest image: SET for inserts and
				// updates, WHERE for deletes.
				if cur.op == "d" || section == "set" {
					n, _ := strconv.Atoi(m[1])
					v := m[2]
					if i := strings.Index(v, " ("); i > 0 && !strings.HasPrefix(v, "'") {
						v = v[:i] // an unsigned value's signed reading
					}
					vals[n] = v
				}
			} else if !strings.HasPrefix(line, "###") {
				flush()
			}
		}
	}
	flush()
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return want
}

// topicChanges reads table's raw topic into changes per key (the key
// columns' values joined by commas), in topic order.
func topicChanges(t *testing.T, kafka *kafkatest.Cluster, db, table string, pk []pkCol) map[string][]binlogChange {
	t.Helper()
	got := map[string][]binlogChange{}
	for _, r := range recordsOrNone(t, kafka, db+".raw."+table) {
		if r.Value == nil {
			continue // tombstone
		}
		var env struct {
			Op     string `json:"op"`
			Source struct {
				GTID string `json:"gtid"`
			} `json:"source"`
		}
		if err := json.Unmarshal(r.Value, &env); err != nil {
			t.Fatalf("%s: %v: %s", table, err, r.Value)
		}
		dec := json.NewDecoder(bytes.NewReader(r.Key))
		dec.UseNumber()
		var key map[string]any
		if err := dec.Decode(&key); err != nil {
			t.Fatalf("%s key %s: %v", table, r.Key, err)
		}
		var parts []string
		for _, c := range pk {
			parts = append(parts, fmt.Sprint(key[c.name]))
		}
		k := strings.Join(parts, ",")
		got[k] = append(got[k], binlogChange{gtid: env.Source.GTID, op: env.Op, key: k})
	}
	return got
}

// checkKeyChanges wants the binlog's changes seq of one key as a
// subsequence of the topic's g, and no change after startSeq in g that the
// binlog lacks; it returns how many were delivered in order. bad counts the
// table's missing changes (the first three are reported).
func checkKeyChanges(t *testing.T, table, k string, seq, g []binlogChange, startSeq uint64, bad *int) (delivered int) {
	t.Helper()
	j := 0
	for _, ch := range seq {
		for j < len(g) && (g[j].gtid != ch.gtid || g[j].op != ch.op) {
			j++
		}
		if j == len(g) {
			if *bad++; *bad <= 3 {
				t.Errorf("raw %s key %s: change %s %s of the binlog is missing or out of order in the topic (topic has %v, binlog %v)", table, k, ch.gtid, ch.op, g, seq)
			}
			break
		}
		j++
		delivered++
	}
	known := map[binlogChange]bool{}
	for _, ch := range seq {
		known[ch] = true
	}
	for _, ch := range g {
		if gtidSeqOf(ch.gtid) > startSeq && !known[ch] {
			t.Errorf("raw %s key %s: the topic has %s %s, which the binlog does not", table, k, ch.gtid, ch.op)
		}
	}
	return delivered
}

// gtidSeq is the sequence number of domain 0 in a MariaDB GTID set.
func gtidSeq(t *testing.T, set string) uint64 {
	t.Helper()
	for _, g := range strings.Split(set, ",") {
		if strings.HasPrefix(strings.TrimSpace(g), "0-") {
			return gtidSeqOf(strings.TrimSpace(g))
		}
	}
	t.Fatalf("no domain-0 GTID in the start position %q", set)
	return 0
}

func gtidSeqOf(g string) uint64 {
	i := strings.LastIndexByte(g, '-')
	n, _ := strconv.ParseUint(g[i+1:], 10, 64)
	return n
}

package chaos

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/feedcdc/feedcdc/sink/kafkasink"
	"github.com/feedcdc/feedcdc/test/kafkatest"
)

// rowEvent is one row change as the binlog decoder saw it.
type rowEvent struct {
	Table string
	Key   string // primary-key values joined by ","
	Op    string // c, u, d
	V     string // the counters table's v after (before for a delete)
	Seq   uint64 // sequence number of the transaction's GTID (domain 0)
	// From is the old name of a rename (Op "rename": a RENAME TABLE put
	// From at Table); Op "t" is a TRUNCATE of Table. Both have no Key.
	From string
}

// tableEvent reports whether e concerns a whole table (TRUNCATE, RENAME).
func (e rowEvent) tableEvent() bool { return e.Op == "t" || e.Op == "rename" }

// BinlogPos is a binlog file and offset.
type BinlogPos struct {
	File string
	Pos  uint64
}

// CurrentBinlog returns the server's current binlog position.
func CurrentBinlog(ctx context.Context, db *sql.DB) (BinlogPos, error) {
	var p BinlogPos
	rows, err := db.QueryContext(ctx, "SHOW MASTER STATUS")
	if err != nil {
		return p, fmt.Errorf("show master status: %w", err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	if !rows.Next() {
		return p, fmt.Errorf("show master status: no row (is the binlog on?)")
	}
	vals := make([]any, len(cols))
	vals[0], vals[1] = &p.File, &p.Pos
	for i := 2; i < len(cols); i++ {
		vals[i] = new(sql.RawBytes)
	}
	return p, rows.Scan(vals...)
}

// pkColumns maps table -> ordinal positions (1-based) of its primary-key
// columns, and the position of column v (counters table), from
// information_schema.
func pkColumns(ctx context.Context, db *sql.DB, schema string) (pk map[string][]int, vcol map[string]int, err error) {
	pk, vcol = map[string][]int{}, map[string]int{}
	rows, err := db.QueryContext(ctx, `SELECT c.TABLE_NAME, c.COLUMN_NAME, c.ORDINAL_POSITION, c.COLUMN_KEY
		FROM information_schema.COLUMNS c WHERE c.TABLE_SCHEMA = ? ORDER BY c.TABLE_NAME, c.ORDINAL_POSITION`, schema)
	if err != nil {
		return nil, nil, fmt.Errorf("columns of %s: %w", schema, err)
	}
	defer rows.Close()
	for rows.Next() {
		var t, c, key string
		var pos int
		if err := rows.Scan(&t, &c, &pos, &key); err != nil {
			return nil, nil, err
		}
		if key == "PRI" {
			pk[t] = append(pk[t], pos)
		}
		if t == CountersTable && c == "v" {
			vcol[t] = pos
		}
	}
	return pk, vcol, rows.Err()
}

// DecodeBinlog runs mariadb-binlog -v --base64-output=DECODE-ROWS over the
// server's binlog files from 'from' on and returns the row changes of
// schema in binlog order.
func DecodeBinlog(ctx context.Context, db *sql.DB, dataDir, schema string, from BinlogPos) ([]rowEvent, error) {
	pk, vcol, err := pkColumns(ctx, db, schema)
	if err != nil {
		return nil, err
	}
	if _, err := db.ExecContext(ctx, "FLUSH BINARY LOGS"); err != nil {
		return nil, fmt.Errorf("flush binary logs: %w", err)
	}
	rows, err := db.QueryContext(ctx, "SHOW BINARY LOGS")
	if err != nil {
		return nil, fmt.Errorf("show binary logs: %w", err)
	}
	var files []string
	for rows.Next() {
		var name string
		var size any
		cols, _ := rows.Columns()
		dst := []any{&name, &size}
		for i := 2; i < len(cols); i++ {
			dst = append(dst, new(sql.RawBytes))
		}
		if err := rows.Scan(dst...); err != nil {
			rows.Close()
			return nil, err
		}
		if name >= from.File {
			files = append(files, filepath.Join(dataDir, name))
		}
	}
	rows.Close()
	if len(files) == 0 {
		return nil, fmt.Errorf("no binlog file from %s on in %s", from.File, dataDir)
	}
	var out []rowEvent
	for i, f := range files {
		args := []string{"--no-defaults", "-v", "--base64-output=DECODE-ROWS"}
		if i == 0 {
			args = append(args, fmt.Sprintf("--start-position=%d", from.Pos))
		}
		cmd := exec.CommandContext(ctx, "mariadb-binlog", append(args, f)...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			return nil, err
		}
		if err := cmd.Start(); err != nil {
			return nil, fmt.Errorf("mariadb-binlog (apt install mariadb-client): %w", err)
		}
		evs, perr := parseDecoded(stdout, schema, pk, vcol)
		werr := cmd.Wait()
		if perr != nil {
			return nil, fmt.Errorf("parse mariadb-binlog output of %s: %w", f, perr)
		}
		if werr != nil {
			return nil, fmt.Errorf("mariadb-binlog %s: %w: %s", f, werr, stderr.String())
		}
		out = append(out, evs...)
	}
	return out, nil
}

// parseDecoded reads mariadb-binlog -v output: "### INSERT INTO `db`.`t`",
// "### UPDATE `db`.`t`", "### DELETE FROM `db`.`t`", then "### WHERE" /
// "### SET" sections of "###   @N=value" lines.
func parseDecoded(r interface{ Read([]byte) (int, error) }, schema string, pk map[string][]int, vcol map[string]int) ([]rowEvent, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	var out []rowEvent
	var cur *rowEvent
	var section string
	var before, after map[int]string
	var seq uint64
	flush := func() {
		if cur == nil {
			return
		}
		vals := after
		if cur.Op == "d" {
			vals = before
		}
		var key []string
		cols, ok := pk[cur.Table]
		if !ok {
			// A table gone by the end of the run (a migration's shadow
			// table): the suite's have their primary key first.
			cols = []int{1}
		}
		for _, p := range cols {
			key = append(key, vals[p])
		}
		cur.Key = strings.Join(key, ",")
		if p, ok := vcol[cur.Table]; ok {
			cur.V = vals[p]
		}
		cur.Seq = seq
		out = append(out, *cur)
		cur = nil
	}
	prefix := "`" + schema + "`.`"
	curDB := ""
	var stmt strings.Builder
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "#") && !strings.HasPrefix(line, "DELIMITER") {
			// Statement text (a query event): lines up to "/*!*/;".
			body, end := strings.CutSuffix(line, "/*!*/;")
			if strings.HasPrefix(body, "/*!") && !end {
				continue
			}
			stmt.WriteString(body)
			stmt.WriteByte('\n')
			if end {
				flush()
				evs := tableStatement(strings.TrimSpace(stmt.String()), &curDB, schema, seq)
				out = append(out, evs...)
				stmt.Reset()
			}
			continue
		}
		if strings.HasPrefix(line, "#") && !strings.HasPrefix(line, "### ") {
			stmt.Reset() // a new event
			// "#261206 6:52:00 server id 1 end_log_pos 1234 CRC32 0x… GTID 0-1-1235 trans"
			if i := strings.Index(line, "GTID 0-"); i > 0 && (line[i-1] == '\t' || line[i-1] == ' ') {
				flush()
				f := strings.Fields(line[i+5:])
				if parts := strings.Split(f[0], "-"); len(parts) == 3 {
					fmt.Sscanf(parts[2], "%d", &seq)
				}
			}
			continue
		}
		if !strings.HasPrefix(line, "### ") {
			continue
		}
		l := line[4:]
		var op, rest string
		switch {
		case strings.HasPrefix(l, "INSERT INTO "):
			op, rest = "c", l[len("INSERT INTO "):]
		case strings.HasPrefix(l, "UPDATE "):
			op, rest = "u", l[len("UPDATE "):]
		case strings.HasPrefix(l, "DELETE FROM "):
			op, rest = "d", l[len("DELETE FROM "):]
		case l == "WHERE":
			section = "where"
			continue
		case l == "SET":
			section = "set"
			continue
		case strings.HasPrefix(l, "  @"):
			if cur == nil {
				continue
			}
			eq := strings.IndexByte(l, '=')
			if eq < 0 {
				continue
			}
			var n int
			fmt.Sscanf(l[3:eq], "%d", &n)
			v := decodedValue(l[eq+1:])
			if section == "where" {
				before[n] = v
			} else {
				after[n] = v
			}
			continue
		default:
			continue
		}
		flush()
		if !strings.HasPrefix(rest, prefix) {
			continue
		}
		t := strings.TrimSuffix(rest[len(prefix):], "`")
		cur = &rowEvent{Table: t, Op: op}
		before, after, section = map[int]string{}, map[int]string{}, ""
	}
	flush()
	return out, sc.Err()
}

var (
	useRe      = regexp.MustCompile("(?is)^use\\s+`?([^`\\s]+)`?$")
	truncateRe = regexp.MustCompile(`(?is)^TRUNCATE\s+(?:TABLE\s+)?(\S+)$`)
	renameRe   = regexp.MustCompile(`(?is)^RENAME\s+TABLES?\s+(.+)$`)
	renamePair = regexp.MustCompile(`(?is)^\s*(\S+)\s+TO\s+(\S+)\s*$`)
)

// tableStatement turns a query event's text into table events of schema:
// a TRUNCATE (Op "t") and each pair of a RENAME TABLE (Op "rename", Table
// the new name, From the old one), in statement order; "use db" sets the
// current database that unqualified names are in.
func tableStatement(q string, curDB *string, schema string, seq uint64) []rowEvent {
	if m := useRe.FindStringSubmatch(q); m != nil {
		*curDB = m[1]
		return nil
	}
	name := func(s string) (string, bool) {
		s = strings.ReplaceAll(s, "`", "")
		db, t, ok := strings.Cut(s, ".")
		if !ok {
			db, t = *curDB, s
		}
		return t, db == schema
	}
	if m := truncateRe.FindStringSubmatch(q); m != nil {
		if t, ok := name(m[1]); ok {
			return []rowEvent{{Table: t, Op: "t", Seq: seq}}
		}
		return nil
	}
	m := renameRe.FindStringSubmatch(q)
	if m == nil {
		return nil
	}
	var out []rowEvent
	for _, pair := range strings.Split(m[1], ",") {
		pm := renamePair.FindStringSubmatch(pair)
		if pm == nil {
			continue
		}
		from, ok1 := name(pm[1])
		to, ok2 := name(pm[2])
		if ok1 && ok2 {
			out = append(out, rowEvent{Table: to, From: from, Op: "rename", Seq: seq})
		}
	}
	return out
}

// decodedValue turns a mariadb-binlog value into the text a JSON value of
// the same column prints as: quotes removed from strings, the unsigned
// reading "-1 (4294967295)" taken for integers.
func decodedValue(s string) string {
	if strings.HasPrefix(s, "'") {
		s = strings.TrimSuffix(s[1:], "'")
		return strings.NewReplacer(`\'`, `'`, `\\`, `\`).Replace(s)
	}
	if i := strings.Index(s, " ("); i > 0 && strings.HasSuffix(s, ")") {
		return s[i+2 : len(s)-1]
	}
	if i := strings.IndexByte(s, ' '); i > 0 {
		return s[:i]
	}
	return s
}

// After keeps the events of transactions after GTID sequence seq (domain
// 0): where the connector's stream started.
func After(evs []rowEvent, seq uint64) []rowEvent {
	var out []rowEvent
	for _, e := range evs {
		if e.Seq > seq {
			out = append(out, e)
		}
	}
	return out
}

// StreamStart reads a connector's JSON log and returns the GTID sequence
// (domain 0) of the last "first start" position: the stream of the run
// that wrote the first checkpoint starts there (a process killed before
// its first checkpoint starts over as a first start, from a new position).
func StreamStart(logPath string) (uint64, bool, error) {
	b, err := os.ReadFile(logPath)
	if err != nil {
		return 0, false, err
	}
	var seq uint64
	found := false
	for _, line := range bytes.Split(b, []byte("\n")) {
		if !bytes.Contains(line, []byte(`"first start`)) {
			continue
		}
		var l struct{ Position string }
		if json.Unmarshal(line, &l) != nil {
			continue
		}
		// gtid:0-1-123[,1-2-5] (binlog.000001:456)
		set := strings.TrimPrefix(strings.Fields(l.Position + " ")[0], "gtid:")
		for _, g := range strings.Split(set, ",") {
			if parts := strings.Split(g, "-"); len(parts) == 3 && parts[0] == "0" {
				if _, err := fmt.Sscanf(parts[2], "%d", &seq); err == nil {
					found = true
				}
			}
		}
		if set == "" || !strings.Contains(l.Position, "gtid:") {
			// no GTID yet on the server: everything counts
			seq, found = 0, true
		}
	}
	return seq, found, nil
}

// fullSyncsDone counts the full syncs the connector's JSON log reports
// complete since its last first start.
func fullSyncsDone(logPath string) int {
	b, err := os.ReadFile(logPath)
	if err != nil {
		return 0
	}
	n := 0
	for _, line := range bytes.Split(b, []byte("\n")) {
		switch {
		case bytes.Contains(line, []byte(`"first start`)):
			n = 0
		case bytes.Contains(line, []byte(`"msg":"complete"`)) && bytes.Contains(line, []byte(`"operation":"full sync"`)):
			n++
		}
	}
	return n
}

// countLines counts the lines of a file that contain s.
func countLines(path, s string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	return bytes.Count(b, []byte(s))
}

// RawResult is the raw-stream check's outcome.
type RawResult struct {
	Checked, Lost, Duplicated, Wrong, OutOfOrder int
	// Fenced counts records skipped by their epoch header (fenceByEpoch).
	Fenced int
	// TableRecords counts the TRUNCATE and RENAME statements of the binlog
	// whose truncate or replace record was checked.
	TableRecords int
	Detail       []string
}

// CheckRaw compares the binlog's row changes with the raw topics in Kafka
// (one topic per table: prefix.schema.table). Besides the per-key checks
// it wants, for each TRUNCATE in want, a truncate record (op "t", no key)
// with the statement's GTID in the table's topic, and for each table a
// RENAME put at a name, a replace record there; and the per-key state a
// consumer ends with (a row's last version, none after a delete or a
// TRUNCATE, moved with its table by a RENAME) must equal the binlog's.
func CheckRaw(ctx context.Context, kafka *kafkatest.Cluster, prefix, schema string, want []rowEvent, startSeq uint64) (RawResult, error) {
	var res RawResult
	exp := map[string][]string{} // table/key -> tokens
	tables := map[string]bool{}
	var tableEvs []rowEvent
	for _, e := range want {
		tables[e.Table] = true
		if e.tableEvent() {
			tableEvs = append(tableEvs, e)
			continue
		}
		k := e.Table + "/" + e.Key
		exp[k] = append(exp[k], e.Op+":"+e.V)
	}
	got := rawGot{keys: map[string][]string{}, tables: map[string]int{}}
	for t := range tables {
		if err := got.read(ctx, kafka, prefix+"."+schema+"."+t, t, startSeq, &res); err != nil {
			return res, err
		}
	}
	res.checkKeys(exp, got.keys)
	res.checkTableRecords(tableEvs, got.tables)
	res.checkFinalState(finalState(want), finalState(mergeBySeq(got.delivered, tableEvs)))
	return res, nil
}

// rawGot is what the raw topics hold.
type rawGot struct {
	keys      map[string][]string // table/key -> tokens (op:v)
	tables    map[string]int      // whole-table records delivered: "t"/"replace" + table + seq
	delivered []rowEvent          // row records with their GTID, for the state model
}

// read adds the records of table t's raw topic. Per partition in offset
// order is the order a consumer sees per key (one key, one partition).
func (g *rawGot) read(ctx context.Context, kafka *kafkatest.Cluster, topic, t string, startSeq uint64, res *RawResult) error {
	recs, err := kafka.ReadAll(ctx, topic)
	if err != nil {
		return fmt.Errorf("read raw topic of %s: %w", t, err)
	}
	recs, fenced := fenceByEpoch(recs)
	res.Fenced += fenced
	for _, r := range recs {
		if r.Value == nil {
			continue // tombstone
		}
		var env struct {
			Op     string
			Before map[string]json.RawMessage
			After  map[string]json.RawMessage
			Source struct{ GTID string }
		}
		if err := json.Unmarshal(r.Value, &env); err != nil {
			return fmt.Errorf("raw record of %s: %w", t, err)
		}
		seq := gtidSeq(env.Source.GTID)
		if env.Op == "t" || env.Op == "replace" {
			if len(r.Key) != 0 {
				res.Wrong++
				res.detail(fmt.Sprintf("%s: %s record with key %s (want none)", t, env.Op, r.Key))
			}
			g.tables[fmt.Sprintf("%s %s %d", env.Op, t, seq)]++
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(r.Key))
		dec.UseNumber()
		var km map[string]any
		if err := dec.Decode(&km); err != nil {
			return fmt.Errorf("raw key %q of %s: %w", r.Key, t, err)
		}
		key := keyString(r.Key)
		v := ""
		if t == CountersTable {
			src := env.After
			if env.Op == "d" {
				src = env.Before
			}
			v = strings.Trim(string(src["v"]), `"`)
		}
		g.keys[t+"/"+key] = append(g.keys[t+"/"+key], env.Op+":"+v)
		if seq > startSeq {
			g.delivered = append(g.delivered, rowEvent{Table: t, Key: key, Op: env.Op, V: v, Seq: seq})
		}
	}
	return nil
}

// checkKeys wants each key's binlog changes as a subsequence of its
// records, in order, ending with the binlog's last; more records are
// duplicates, records of keys the binlog never changed are wrong.
func (res *RawResult) checkKeys(exp, got map[string][]string) {
	for k, e := range exp {
		res.Checked += len(e)
		g := got[k]
		j := 0 // greedy: is e a subsequence of g?
		for _, tok := range g {
			if j < len(e) && tok == e[j] {
				j++
			}
		}
		if j < len(e) {
			if lost := missing(e, g); lost > 0 {
				res.Lost += lost
			} else {
				res.OutOfOrder++
			}
			res.detail(fmt.Sprintf("%s: binlog %v, kafka %v", k, clip(e), clip(g)))
		} else if len(g) > 0 && g[len(g)-1] != e[len(e)-1] {
			res.OutOfOrder++
			res.detail(fmt.Sprintf("%s: ends with %s, binlog's last is %s", k, g[len(g)-1], e[len(e)-1]))
		}
		if len(g) > len(e) {
			res.Duplicated += len(g) - len(e)
		}
	}
	for k, g := range got {
		if _, ok := exp[k]; !ok {
			res.Wrong += len(g)
			res.detail(fmt.Sprintf("%s: %d records in kafka for a key the binlog never changed", k, len(g)))
		}
	}
}

// missing counts the tokens of e that g lacks (as a multiset).
func missing(e, g []string) int {
	have := map[string]int{}
	for _, tok := range g {
		have[tok]++
	}
	lost := 0
	for _, tok := range e {
		if have[tok] == 0 {
			lost++
		} else {
			have[tok]--
		}
	}
	return lost
}

// checkTableRecords wants one whole-table record per TRUNCATE and per
// renamed-in table, with the statement's GTID.
func (res *RawResult) checkTableRecords(tableEvs []rowEvent, gotTable map[string]int) {
	for _, e := range tableEvs {
		res.Checked++
		res.TableRecords++
		op := "t"
		if e.Op == "rename" {
			op = "replace"
		}
		k := fmt.Sprintf("%s %s %d", op, e.Table, e.Seq)
		switch n := gotTable[k]; {
		case n == 0:
			res.Lost++
			res.detail(fmt.Sprintf("%s: no %s record with GTID sequence %d (binlog: %s)", e.Table, op, e.Seq, e.describe()))
		case n > 1:
			res.Duplicated += n - 1
		}
		delete(gotTable, k)
	}
	for k, n := range gotTable {
		res.Wrong += n
		res.detail(fmt.Sprintf("%s: whole-table record(s) for no such statement in the binlog", k))
	}
}

// checkFinalState wants the state a consumer of the raw stream ends with
// to equal the binlog's.
func (res *RawResult) checkFinalState(wantState, gotState map[string]string) {
	for k, w := range wantState {
		res.Checked++
		if g := gotState[k]; g != w {
			res.Wrong++
			res.detail(fmt.Sprintf("%s: a consumer of the raw stream ends with %q, the binlog with %q", k, g, w))
		}
	}
	for k, g := range gotState {
		if _, ok := wantState[k]; !ok {
			res.Wrong++
			res.detail(fmt.Sprintf("%s: a consumer of the raw stream ends with %q, the binlog with no row", k, g))
		}
	}
}

func (r *RawResult) detail(s string) {
	if len(r.Detail) < 5 {
		r.Detail = append(r.Detail, s)
	}
}

func (e rowEvent) describe() string {
	if e.Op == "rename" {
		return "RENAME " + e.From + " TO " + e.Table
	}
	return "TRUNCATE " + e.Table
}

// gtidSeq is the sequence number of a MariaDB GTID "0-1-123" (domain 0).
func gtidSeq(g string) uint64 {
	var seq uint64
	if parts := strings.Split(g, "-"); len(parts) == 3 && parts[0] == "0" {
		fmt.Sscanf(parts[2], "%d", &seq)
	}
	return seq
}

// mergeBySeq orders delivered row records and the binlog's table events by
// GTID sequence (stable: records of one key keep their offset order), as a
// consumer orders a truncate or replace record against the table's rows.
func mergeBySeq(rows, tableEvs []rowEvent) []rowEvent {
	all := append(append([]rowEvent{}, rows...), tableEvs...)
	sort.SliceStable(all, func(i, j int) bool { return all[i].Seq < all[j].Seq })
	return all
}

// finalState replays row and table events: table/key -> the last row
// version ("op:v") of every row that exists at the end; a delete removes
// the row, a TRUNCATE every row of the table, and a RENAME moves the rows
// of From to Table (replacing Table's).
func finalState(evs []rowEvent) map[string]string {
	st := map[string]map[string]string{}
	for _, e := range evs {
		switch e.Op {
		case "t":
			delete(st, e.Table)
		case "rename":
			st[e.Table] = st[e.From]
			delete(st, e.From)
		case "d":
			delete(st[e.Table], e.Key)
		default:
			if st[e.Table] == nil {
				st[e.Table] = map[string]string{}
			}
			st[e.Table][e.Key] = "c:" + e.V // c, u and r all leave the row there
		}
	}
	out := map[string]string{}
	for t, rows := range st {
		for k, v := range rows {
			out[t+"/"+k] = v
		}
	}
	return out
}

// keyString renders a raw key object's values in primary-key column order.
// The key JSON keeps column order, so the values are read in order.
func keyString(raw []byte) string {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var vals []string
	if _, err := dec.Token(); err != nil {
		return ""
	}
	for dec.More() {
		if _, err := dec.Token(); err != nil { // name
			return ""
		}
		var v any
		if err := dec.Decode(&v); err != nil {
			return ""
		}
		vals = append(vals, fmt.Sprint(v))
	}
	return strings.Join(vals, ",")
}

func clip(s []string) []string {
	if len(s) > 8 {
		return append(append([]string{}, s[:4]...), append([]string{"…"}, s[len(s)-4:]...)...)
	}
	return s
}

// FeedResult is the feed check's outcome.
type FeedResult struct {
	Checked, Lost, Wrong, Duplicated int
	Fenced                           int // records skipped by their epoch header (fenceByEpoch)
	Detail                           []string
}

func (r *FeedResult) add(o FeedResult) {
	r.Checked += o.Checked
	r.Fenced += o.Fenced
	r.Lost += o.Lost
	r.Wrong += o.Wrong
	r.Duplicated += o.Duplicated
	for _, d := range o.Detail {
		if len(r.Detail) < 8 {
			r.Detail = append(r.Detail, d)
		}
	}
}

// canonical is the JSON without modifiedAt/updatedAt (at any depth), with
// object keys sorted: two payloads of one version are equal in it.
func canonical(b []byte) string {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return "invalid: " + string(b)
	}
	var strip func(any) any
	strip = func(v any) any {
		switch x := v.(type) {
		case map[string]any:
			delete(x, "modifiedAt")
			delete(x, "updatedAt")
			for k, e := range x {
				x[k] = strip(e)
			}
		case []any:
			for i, e := range x {
				x[i] = strip(e)
			}
		}
		return v
	}
	out, _ := json.Marshal(strip(v))
	return string(out)
}

// compareLast checks the last delivered payload per feed_id (without
// modifiedAt/updatedAt) against a fresh build; vanished ids must end
// deleted.
func compareLast(name string, want, last map[string]json.RawMessage) FeedResult {
	var r FeedResult
	for id, data := range want {
		r.Checked++
		got, ok := last[id]
		switch {
		case !ok:
			r.Lost++
			if len(r.Detail) < 3 {
				r.Detail = append(r.Detail, fmt.Sprintf("%s: item %s never delivered: %.200s", name, id, data))
			}
		case canonical(got) != canonical(data):
			r.Wrong++
			if len(r.Detail) < 3 {
				r.Detail = append(r.Detail, fmt.Sprintf("%s: item %s differs:\n  delivered %.300s\n  database  %.300s", name, id, got, data))
			}
		}
	}
	for id, got := range last {
		if _, ok := want[id]; ok {
			continue
		}
		r.Checked++
		var v struct {
			Deleted bool `json:"deleted"`
		}
		if json.Unmarshal(got, &v) != nil || !v.Deleted {
			r.Wrong++
			if len(r.Detail) < 3 {
				r.Detail = append(r.Detail, fmt.Sprintf("%s: vanished item %s last delivered without deleted:true: %.200s", name, id, got))
			}
		}
	}
	return r
}

// CheckFeedsKafka compares the last record per feed_id of each feed's
// topic (prefix.feed) with the expected side (feed -> id -> payload).
func CheckFeedsKafka(ctx context.Context, kafka *kafkatest.Cluster, prefix string, want map[string]map[string]json.RawMessage) (FeedResult, error) {
	var total FeedResult
	for _, f := range FeedNames {
		recs, err := kafka.ReadAll(ctx, prefix+"."+f)
		if err != nil {
			return total, fmt.Errorf("read %s: %w", f, err)
		}
		recs, fenced := fenceByEpoch(recs)
		last := map[string]json.RawMessage{}
		seen := map[string]int{}
		for _, r := range recs {
			id, _ := r.Header("feed_id")
			h, _ := r.Header("feed_hash")
			last[id] = r.Value
			seen[id+"/"+h]++
		}
		res := compareLast(f, want[f], last)
		res.Fenced = fenced
		for _, n := range seen {
			res.Duplicated += n - 1
		}
		total.add(res)
	}
	return total, nil
}

// CheckFeedsService compares the service's last accepted payloads of the
// given feeds with the expected side.
func CheckFeedsService(svc *Service, want map[string]map[string]json.RawMessage, fs []string) FeedResult {
	var total FeedResult
	for _, f := range fs {
		total.add(compareLast("service "+f, want[f], svc.Accepted(f)))
	}
	return total
}

// fenceByEpoch is what a consumer that fences by the epoch header
// (kafkasink.EpochHeader, docs/operations.md "High availability") reads of
// a topic: per partition, in offset order, it skips a record whose epoch is
// lower than the highest epoch read before it in that partition, a record
// a paused former leader had in flight that landed after its successor's.
// Records without the header (no high availability) are all kept. It
// returns the records kept, by partition and offset, and how many it
// skipped.
func fenceByEpoch(recs []kafkatest.Record) ([]kafkatest.Record, int) {
	recs = slices.Clone(recs)
	slices.SortStableFunc(recs, func(a, b kafkatest.Record) int {
		return cmp.Or(cmp.Compare(a.Partition, b.Partition), cmp.Compare(a.Offset, b.Offset))
	})
	highest := map[int32]int64{}
	kept := recs[:0]
	for _, r := range recs {
		if v, ok := r.Header(kafkasink.EpochHeader); ok {
			e, err := strconv.ParseInt(v, 10, 64)
			if err == nil && e < highest[r.Partition] {
				continue
			}
			highest[r.Partition] = max(highest[r.Partition], e)
		}
		kept = append(kept, r)
	}
	return kept, len(recs) - len(kept)
}

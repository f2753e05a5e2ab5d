package binlog

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	gmysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/pingcap/tidb/pkg/parser"
	"github.com/pingcap/tidb/pkg/parser/ast"
	tmysql "github.com/pingcap/tidb/pkg/parser/mysql"
	"github.com/pingcap/tidb/pkg/parser/types"

	// registers the value-expression driver the parser needs
	_ "github.com/pingcap/tidb/pkg/parser/test_driver"

	"github.com/feedcdc/feedcdc/change"
)

// SchemaRecord is one entry of the schema history: the schema of DB.Table
// from Position on (Schema nil: the table was dropped). Schema is JSON of a
// change.Table extended with the fields decoding needs (a superset of
// change.Table's JSON). DDL is the statement that produced it ("" for a
// snapshot of information_schema).
type SchemaRecord struct {
	Seq       uint64
	Position  change.Position
	DB, Table string
	Schema    []byte
	DDL       string
}

// SchemaHistory persists schema records (the state store implements it).
// SchemaRecords returns every record in Seq order.
type SchemaHistory interface {
	AppendSchema(ctx context.Context, rec SchemaRecord) error
	SchemaRecords(ctx context.Context) ([]SchemaRecord, error)
}

// MemoryHistory is an in-memory SchemaHistory (tests, inspect).
type MemoryHistory struct {
	mu   sync.Mutex
	recs []SchemaRecord
}

// AppendSchema implements SchemaHistory.
func (m *MemoryHistory) AppendSchema(_ context.Context, rec SchemaRecord) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.recs = append(m.recs, rec)
	return nil
}

// SchemaRecords implements SchemaHistory.
func (m *MemoryHistory) SchemaRecords(context.Context) ([]SchemaRecord, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]SchemaRecord(nil), m.recs...), nil
}

// schemaTracker keeps the schema history of the captured tables: the
// versions at the current stream point, and the persisted records.
type schemaTracker struct {
	hist    SchemaHistory
	filter  Filter
	flavor  string
	log     *slog.Logger
	parser  *parser.Parser
	records []SchemaRecord
	seq     uint64
	current map[string]*storedTable // "db.table" (lower case) -> schema; nil = dropped
	// snapAt holds, for tables whose current version comes from an
	// information_schema snapshot, the snapshot's position: DDL at or before
	// it is already reflected and is not applied again.
	snapAt map[string]change.Position
	// pending are snapshot records after the rewind point, applied when the
	// stream passes their position (DDL records are re-derived from the DDL).
	pending []SchemaRecord
	version uint64
	// load reads one table's current schema from the server and the binlog
	// position it is current at (nil: offline, no server to ask). st is nil
	// when the table does not exist.
	load func(ctx context.Context, db, table string) (st *storedTable, at change.Position, err error)
	// changed lists the captured tables the statement being applied
	// changed, with their new versions (taken by takeChanged).
	changed []tableChange
}

// tableChange is a captured table a DDL statement changed, and its schema
// after it (nil: dropped or unknown).
type tableChange struct {
	db, table string
	st        *storedTable
	existed   bool // the history knew a schema of the table before
}

// takeChanged returns the captured tables the statements applied since the
// last call changed, in statement order, and forgets them.
func (t *schemaTracker) takeChanged() []tableChange {
	c := t.changed
	t.changed = nil
	return c
}

// tracks reports whether the history follows db.table: every captured
// table, and every other table of a database with captured tables (shadow
// and staging tables, which a rename may put in a captured table's place).
// Only captured tables are ever errors; the others are followed on a
// best-effort basis and forgotten when their DDL cannot be understood.
func (t *schemaTracker) tracks(db, table string) bool {
	return t.filter.Match(db, table) || t.filter.MatchSchema(db)
}

func tableKeyName(db, table string) string { return strings.ToLower(db) + "." + strings.ToLower(table) }

func newSchemaTracker(ctx context.Context, hist SchemaHistory, filter Filter, flavor string, log *slog.Logger) (*schemaTracker, error) {
	recs, err := hist.SchemaRecords(ctx)
	if err != nil {
		return nil, fmt.Errorf("load schema history: %w", err)
	}
	t := &schemaTracker{hist: hist, filter: filter, flavor: flavor, log: log, parser: parser.New(), records: recs,
		current: map[string]*storedTable{}, snapAt: map[string]change.Position{}}
	for _, r := range recs {
		if r.Seq > t.seq {
			t.seq = r.Seq
		}
	}
	return t, nil
}

// bootstrap builds the versions in force at from: the latest record of
// every table at or before from. With an empty history (first start) it
// snapshots information_schema, recorded at the binlog position the
// snapshot was taken at, which it returns (zero otherwise).
func (t *schemaTracker) bootstrap(ctx context.Context, c *client.Conn, from change.Position) (change.Position, error) {
	if len(t.records) > 0 {
		t.rewind(from)
		return change.Position{}, nil
	}
	// A consistent snapshot: no DDL on a captured table was logged while it
	// was read (the binlog may move: row events and other tables' DDL do not
	// change what was read), so it is the schema at p1.
	var (
		tables map[string]*storedTable
		at     change.Position
	)
	for attempt := 0; ; attempt++ {
		p1, err := currentPosition(c, t.flavor)
		if err != nil {
			return change.Position{}, err
		}
		if tables, err = loadInformationSchema(c, t.filter, t.flavor); err != nil {
			return change.Position{}, err
		}
		p2, err := currentPosition(c, t.flavor)
		if err != nil {
			return change.Position{}, err
		}
		at = p1
		if p1 == p2 {
			break
		}
		ddl, stmt, err := t.capturedDDLBetween(c, p1, p2)
		if err != nil {
			return change.Position{}, fmt.Errorf("schema snapshot: check the binlog between %s and %s for DDL: %w", p1, p2, err)
		}
		if !ddl {
			break
		}
		if attempt == 9 {
			t.log.Warn("DDL on a captured table kept running while the schema snapshot was read; that DDL may be applied twice", "from", p1.String(), "to", p2.String(), "statement", truncateString(stmt, 200))
			break
		}
		if err := sleepCtx(ctx, 50*time.Millisecond); err != nil {
			return change.Position{}, err
		}
	}
	names := make([]string, 0, len(tables))
	for k := range tables {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		st := tables[k]
		if err := t.record(ctx, at, st.DB, st.Name, st, ""); err != nil {
			return change.Position{}, err
		}
		t.snapAt[k] = at
	}
	return at, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// reflected reports whether DDL at pos is already part of db.table's
// current version (taken from an information_schema snapshot after it).
func (t *schemaTracker) reflected(db, table string, pos change.Position) bool {
	if at, ok := t.snapAt[tableKeyName(db, table)]; ok && positionLE(pos, at) {
		return true
	}
	// A snapshot taken after pos (a schema read when the table became
	// captured, `feedcdc schema reload`) holds the DDL's effect: it is the
	// table's version from here on.
	return t.takePending(db, table, pos)
}

// takePending applies the first pending snapshot record of db.table at or
// after pos (zero pos: any) and reports whether there was one.
func (t *schemaTracker) takePending(db, table string, pos change.Position) bool {
	k := tableKeyName(db, table)
	for i, r := range t.pending {
		if tableKeyName(r.DB, r.Table) == k && (pos.IsZero() || positionLE(pos, r.Position)) {
			t.pending = append(t.pending[:i], t.pending[i+1:]...)
			t.apply(r)
			return true
		}
	}
	return false
}

// rewind rebuilds the current versions as of position p.
func (t *schemaTracker) rewind(p change.Position) {
	t.current = map[string]*storedTable{}
	t.snapAt = map[string]change.Position{}
	t.pending = nil
	for _, r := range t.records {
		if !positionLE(r.Position, p) {
			if r.DDL == "" {
				t.pending = append(t.pending, r)
			}
			continue
		}
		t.apply(r)
	}
	// A table first known from a later snapshot decodes earlier events with
	// that snapshot too (as the first run did); DDL before it is skipped as
	// already reflected, and a column-count mismatch is still an error.
	keep := t.pending[:0]
	for _, r := range t.pending {
		if _, known := t.current[tableKeyName(r.DB, r.Table)]; !known {
			t.apply(r)
			continue
		}
		keep = append(keep, r)
	}
	t.pending = keep
	t.version++
}

// apply makes a record the current version of its table.
func (t *schemaTracker) apply(r SchemaRecord) {
	if r.DDL == "" {
		t.snapAt[tableKeyName(r.DB, r.Table)] = r.Position
	} else {
		delete(t.snapAt, tableKeyName(r.DB, r.Table))
	}
	var st *storedTable
	if r.Schema != nil {
		st = &storedTable{}
		if err := json.Unmarshal(r.Schema, st); err != nil {
			t.log.Warn("unreadable schema history record ignored", "db", r.DB, "table", r.Table, "seq", r.Seq, "error", err)
			return
		}
	}
	t.current[tableKeyName(r.DB, r.Table)] = st
	t.version++
}

// advance applies the pending snapshot records at or before p (the stream
// has reached p).
func (t *schemaTracker) advance(p change.Position) {
	if len(t.pending) == 0 {
		return
	}
	keep := t.pending[:0]
	for _, r := range t.pending {
		if positionLE(r.Position, p) {
			t.apply(r)
		} else {
			keep = append(keep, r)
		}
	}
	t.pending = keep
}

// positionLE reports whether a is at or before b in the stream.
func positionLE(a, b change.Position) bool {
	if a.GTIDSet != "" && b.GTIDSet != "" {
		flavor := a.Flavor
		if flavor == "" {
			flavor = b.Flavor
		}
		if flavor == "" {
			flavor = guessFlavor(a.GTIDSet)
		}
		sa, err1 := gmysql.ParseGTIDSet(flavor, a.GTIDSet)
		sb, err2 := gmysql.ParseGTIDSet(flavor, b.GTIDSet)
		if err1 == nil && err2 == nil {
			return sb.Contain(sa)
		}
	}
	if a.File != "" && b.File != "" {
		if a.File != b.File {
			return a.File < b.File
		}
		return a.Pos <= b.Pos
	}
	return a.GTIDSet == "" && a.File == ""
}

var mariaGTIDRe = regexp.MustCompile(`^\d+-\d+-\d+(,\d+-\d+-\d+)*$`)

func guessFlavor(gtid string) string {
	if mariaGTIDRe.MatchString(strings.ReplaceAll(gtid, " ", "")) {
		return gmysql.MariaDBFlavor
	}
	return gmysql.MySQLFlavor
}

func (t *schemaTracker) lookup(db, table string) (*storedTable, uint64) {
	st := t.current[tableKeyName(db, table)]
	if st == nil && len(t.pending) > 0 && t.takePending(db, table, change.Position{}) {
		// rows of a table the history lost (renamed in unknown, or
		// forgotten): a later snapshot is the best knowledge there is
		st = t.current[tableKeyName(db, table)]
	}
	return st, t.version
}

// learn makes the server's current schema of db.name (a captured table the
// history does not know, e.g. the shadow table of a migration that began
// before feedcdc first started, renamed into a captured name) its version
// from the DDL at pos on. The schema read is recorded twice: at pos (with
// the DDL, so that a restart between pos and the read decodes with it) and
// as a snapshot at the position of the read (so that DDL up to there,
// already reflected in it, is not applied twice). A pending snapshot of
// the table (a restart, `feedcdc schema reload`) is used instead when there
// is one. With no server to ask, or when the table is gone from the server,
// the table stays unknown: FULL row metadata still decodes its rows, and a
// row without column names stops with an error naming `feedcdc schema
// reload`.
func (t *schemaTracker) learn(ctx context.Context, db, name string, pos change.Position, ddl, why string) error {
	if t.takePending(db, name, pos) {
		return nil
	}
	if t.load == nil {
		t.log.Warn("the schema of a captured table is unknown: its rows decode only with binlog_row_metadata=FULL", "table", db+"."+name, "reason", why,
			"fix", "feedcdc schema reload --table "+db+"."+name)
		return t.record(ctx, pos, db, name, nil, ddl)
	}
	st, at, err := t.load(ctx, db, name)
	if err != nil {
		return fmt.Errorf("%s: read the table's schema from the server: %w (once the server answers, start again; `feedcdc schema reload --table %s.%s` stores it without a restart of the stream)", why, err, db, name)
	}
	if st == nil {
		t.log.Warn("the schema of a captured table is unknown and the table no longer exists on the server: its rows decode only with binlog_row_metadata=FULL", "table", db+"."+name, "reason", why)
		return t.record(ctx, pos, db, name, nil, ddl)
	}
	t.log.Info("read the schema of a table that became captured from the server", "table", db+"."+name, "reason", why, "as_of", at.String())
	if err := t.record(ctx, pos, db, name, st, ddl); err != nil {
		return err
	}
	if err := t.record(ctx, at, db, name, st, ""); err != nil {
		return err
	}
	t.snapAt[tableKeyName(db, name)] = at
	return nil
}

// record sets a table's version and persists it, unless an identical record
// at the same position exists (a DDL re-read after a restart).
func (t *schemaTracker) record(ctx context.Context, pos change.Position, db, table string, st *storedTable, ddl string) error {
	if ddl != "" && t.filter.Match(db, table) {
		t.changed = append(t.changed, tableChange{db: db, table: table, st: st, existed: t.current[tableKeyName(db, table)] != nil})
	}
	var js []byte
	if st != nil {
		var err error
		if js, err = json.Marshal(st); err != nil {
			return err
		}
	}
	t.current[tableKeyName(db, table)] = st
	if ddl != "" {
		delete(t.snapAt, tableKeyName(db, table))
	}
	t.version++
	for i := len(t.records) - 1; i >= 0; i-- {
		r := t.records[i]
		if r.Position == pos && strings.EqualFold(r.DB, db) && strings.EqualFold(r.Table, table) && r.DDL == ddl && string(r.Schema) == string(js) {
			return nil
		}
	}
	t.seq++
	rec := SchemaRecord{Seq: t.seq, Position: pos, DB: db, Table: table, Schema: js, DDL: ddl}
	if err := t.hist.AppendSchema(ctx, rec); err != nil {
		return fmt.Errorf("store schema history of %s.%s: %w", db, table, err)
	}
	t.records = append(t.records, rec)
	return nil
}

var tableDDLRe = regexp.MustCompile(`(?is)^\s*(/\*.*?\*/\s*)*(CREATE|ALTER|DROP|RENAME|TRUNCATE)\b.*?\bTABLES?\b`)

// applyQuery parses a statement from a QUERY event and records the effect of
// table DDL on captured tables.
func (t *schemaTracker) applyQuery(ctx context.Context, defaultDB, query string, pos change.Position) error {
	stmts, _, err := t.parser.Parse(mariadbToTiDB(query), "", "")
	if err != nil {
		if !tableDDLRe.MatchString(query) {
			return nil // not table DDL (users, grants, routines, …)
		}
		if names := tableNames(ddlNameRe, query, defaultDB); len(names) > 0 && !t.filter.MatchAny(names) {
			// Not captured; a followed table's schema is no longer known.
			for _, n := range names {
				if st, _ := t.lookup(n[0], n[1]); st != nil {
					if err := t.record(ctx, pos, n[0], n[1], nil, query); err != nil {
						return err
					}
				}
			}
			return nil
		}
		return fmt.Errorf("cannot parse DDL that may change a captured table: %v\n  statement: %s\nfeedcdc cannot know the table's new schema; if the statement does not touch captured tables, exclude them with source.exclude_tables, otherwise run `feedcdc resync` after fixing the schema history (docs/binlog.md)", err, truncateString(query, 500))
	}
	for _, st := range stmts {
		if err := t.applyStmt(ctx, defaultDB, st, query, pos); err != nil {
			return err
		}
	}
	return nil
}

var (
	createOrReplaceRe = regexp.MustCompile(`(?is)^(\s*(?:/\*.*?\*/\s*)*)CREATE\s+OR\s+REPLACE\s+((?:TEMPORARY\s+)?TABLE)\b`)
	alterOnlineRe     = regexp.MustCompile(`(?is)^(\s*(?:/\*.*?\*/\s*)*)ALTER\s+ONLINE\s+((?:IGNORE\s+)?TABLE)\b`)
)

// mariadbToTiDB rewrites MariaDB-only DDL forms the TiDB parser rejects into
// equivalents with the same effect on the schema.
func mariadbToTiDB(q string) string {
	q = createOrReplaceRe.ReplaceAllString(q, "${1}CREATE ${2}")
	return alterOnlineRe.ReplaceAllString(q, "${1}ALTER ${2}")
}

func truncateString(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

var ddlNameRe = regexp.MustCompile("(?i)\\bTABLES?\\s+(?:IF\\s+(?:NOT\\s+)?EXISTS\\s+)?((?:`[^`]+`|\\w+)(?:\\.(?:`[^`]+`|\\w+))?)")

// tableNames extracts the table names re captures (group 1, "name" or
// "db.name", backticks allowed) from an unparseable statement, as
// {db, table}.
func tableNames(re *regexp.Regexp, q, defaultDB string) [][2]string {
	var out [][2]string
	for _, m := range re.FindAllStringSubmatch(q, -1) {
		out = append(out, qualifiedName(m[1], defaultDB))
	}
	return out
}

// qualifiedName splits "name", "db.name" or "`d“b` . `t`" into {db, table}
// with the quoting removed; defaultDB stands in for a missing database.
func qualifiedName(s, defaultDB string) [2]string {
	var parts []string
	for s = strings.TrimSpace(s); s != ""; s = strings.TrimLeft(strings.TrimSpace(s), ".") {
		s = strings.TrimSpace(s)
		if strings.HasPrefix(s, "`") {
			var b strings.Builder
			i := 1
			for ; i < len(s); i++ {
				if s[i] == '`' {
					if i+1 < len(s) && s[i+1] == '`' {
						b.WriteByte('`')
						i++
						continue
					}
					break
				}
				b.WriteByte(s[i])
			}
			parts = append(parts, b.String())
			s = s[min(i+1, len(s)):]
			continue
		}
		end := strings.IndexAny(s, ". \t\n")
		if end < 0 {
			end = len(s)
		}
		parts = append(parts, s[:end])
		s = s[end:]
	}
	if len(parts) >= 2 {
		return [2]string{parts[0], parts[1]}
	}
	if len(parts) == 1 {
		return [2]string{defaultDB, parts[0]}
	}
	return [2]string{defaultDB, ""}
}

func dbOf(tn *ast.TableName, defaultDB string) string {
	if tn.Schema.O != "" {
		return tn.Schema.O
	}
	return defaultDB
}

// applyStmt records in the schema history what one DDL statement at pos
// does to the tables the tracker follows.
func (t *schemaTracker) applyStmt(ctx context.Context, defaultDB string, stmt ast.StmtNode, query string, pos change.Position) error {
	switch s := stmt.(type) {
	case *ast.CreateTableStmt:
		return t.createTable(ctx, defaultDB, s, query, pos)
	case *ast.AlterTableStmt:
		return t.alterTableStmt(ctx, defaultDB, s, query, pos)
	case *ast.DropTableStmt:
		return t.dropTables(ctx, defaultDB, s, query, pos)
	case *ast.RenameTableStmt:
		for _, tt := range s.TableToTables {
			if err := t.renameTable(ctx, defaultDB, tt, query, pos); err != nil {
				return err
			}
		}
	case *ast.DropDatabaseStmt:
		return t.dropDatabase(ctx, s, query, pos)
	}
	return nil
}

// createTable records the schema of a new table: copied from its source
// table (LIKE), unknown (… SELECT), or built from its definition.
func (t *schemaTracker) createTable(ctx context.Context, defaultDB string, s *ast.CreateTableStmt, query string, pos change.Position) error {
	if s.TemporaryKeyword != ast.TemporaryNone {
		return nil
	}
	db, name := dbOf(s.Table, defaultDB), s.Table.Name.O
	if !t.tracks(db, name) || t.reflected(db, name, pos) {
		return nil
	}
	captured := t.filter.Match(db, name)
	if s.ReferTable != nil {
		sdb := dbOf(s.ReferTable, defaultDB)
		src, _ := t.lookup(sdb, s.ReferTable.Name.O)
		if src == nil {
			if !captured {
				return t.record(ctx, pos, db, name, nil, query)
			}
			return t.learn(ctx, db, name, pos, query, fmt.Sprintf("CREATE TABLE %s.%s LIKE %s.%s: the source table's schema is unknown", db, name, sdb, s.ReferTable.Name.O))
		}
		cp := cloneTable(src)
		cp.DB, cp.Name = db, name
		return t.record(ctx, pos, db, name, cp, query)
	}
	if s.Select != nil {
		// The column types come from a query: the table's schema is
		// unknown to the history. With FULL row metadata nothing else is
		// needed; otherwise its rows fail with a clear error.
		if captured {
			t.log.Warn("CREATE TABLE … SELECT: the new table's schema is not tracked; its rows need binlog_row_metadata=FULL", "table", db+"."+name)
		}
		return t.record(ctx, pos, db, name, nil, query)
	}
	return t.record(ctx, pos, db, name, tableFromCreate(db, name, s), query)
}

// tableFromCreate builds a table's schema from its CREATE TABLE
// definition: columns, the table's character set, the primary key.
func tableFromCreate(db, name string, s *ast.CreateTableStmt) *storedTable {
	st := &storedTable{DB: db, Name: name}
	tableCharset := ""
	for _, o := range s.Options {
		if o.Tp == ast.TableOptionCharset {
			tableCharset = strings.ToLower(o.StrValue)
		}
	}
	for _, cd := range s.Cols {
		st.Columns = append(st.Columns, columnFromDef(cd, tableCharset))
	}
	for _, cd := range s.Cols {
		for _, o := range cd.Options {
			if o.Tp == ast.ColumnOptionPrimaryKey {
				st.PK = []int{indexOfColumn(st, cd.Name.Name.O)}
			}
		}
	}
	for _, c := range s.Constraints {
		if c.Tp == ast.ConstraintPrimaryKey {
			st.PK = pkFromKeys(st, c.Keys)
		}
	}
	markPKNotNull(st)
	return st
}

// alterTableStmt applies an ALTER TABLE (possibly renaming the table) to
// the table's known schema.
func (t *schemaTracker) alterTableStmt(ctx context.Context, defaultDB string, s *ast.AlterTableStmt, query string, pos change.Position) error {
	db, name := dbOf(s.Table, defaultDB), s.Table.Name.O
	newDB, newName := db, name
	for _, spec := range s.Specs {
		if spec.Tp == ast.AlterTableRenameTable {
			newDB, newName = dbOf(spec.NewTable, db), spec.NewTable.Name.O
		}
	}
	renamed := newDB != db || newName != name
	if !t.tracks(db, name) && !(renamed && t.tracks(newDB, newName)) {
		return nil
	}
	if t.reflected(db, name, pos) || (renamed && t.reflected(newDB, newName, pos)) {
		return nil
	}
	cur, _ := t.lookup(db, name)
	if cur == nil {
		return t.alterUnknownTable(ctx, db, name, newDB, newName, query, pos)
	}
	st := cloneTable(cur)
	for _, spec := range s.Specs {
		if err := alterTable(st, spec); err != nil {
			if !t.filter.Match(db, name) && !t.filter.Match(newDB, newName) {
				// a followed table: forget it rather than stop
				t.log.Debug("schema of a followed table forgotten", "table", db+"."+name, "error", err)
				return t.record(ctx, pos, db, name, nil, query)
			}
			return fmt.Errorf("ALTER TABLE %s.%s: %w", db, name, err)
		}
	}
	markPKNotNull(st)
	if !renamed {
		return t.record(ctx, pos, db, name, st, query)
	}
	if err := t.record(ctx, pos, db, name, nil, query); err != nil {
		return err
	}
	if !t.tracks(newDB, newName) {
		return nil
	}
	st.DB, st.Name = newDB, newName
	return t.record(ctx, pos, newDB, newName, st, query)
}

// alterUnknownTable handles an ALTER TABLE db.name (renaming it to
// newDB.newName, or not) of a table whose schema the history does not
// hold: a captured result is learned from the server.
func (t *schemaTracker) alterUnknownTable(ctx context.Context, db, name, newDB, newName, query string, pos change.Position) error {
	renamed := newDB != db || newName != name
	if renamed && t.filter.Match(db, name) {
		if err := t.record(ctx, pos, db, name, nil, query); err != nil {
			return err
		}
	}
	if !t.filter.Match(newDB, newName) {
		// a followed table we do not know stays unknown (a known
		// one renamed over is forgotten)
		if prev, _ := t.lookup(newDB, newName); renamed && prev != nil {
			return t.record(ctx, pos, newDB, newName, nil, query)
		}
		return nil
	}
	return t.learn(ctx, newDB, newName, pos, query, fmt.Sprintf("ALTER TABLE %s.%s: the table's previous schema is not in the schema history", db, name))
}

// dropTables forgets the dropped tables (views and temporary tables are
// not tracked).
func (t *schemaTracker) dropTables(ctx context.Context, defaultDB string, s *ast.DropTableStmt, query string, pos change.Position) error {
	if s.IsView || s.TemporaryKeyword != ast.TemporaryNone {
		return nil
	}
	for _, tn := range s.Tables {
		db := dbOf(tn, defaultDB)
		if !t.tracks(db, tn.Name.O) || t.reflected(db, tn.Name.O, pos) {
			continue
		}
		if st, _ := t.lookup(db, tn.Name.O); st == nil && !t.filter.Match(db, tn.Name.O) {
			continue // a followed table not known: nothing to forget
		}
		if err := t.record(ctx, pos, db, tn.Name.O, nil, query); err != nil {
			return err
		}
	}
	return nil
}

// renameTable moves one table's schema to its new name (one pair of a
// RENAME TABLE statement).
func (t *schemaTracker) renameTable(ctx context.Context, defaultDB string, tt *ast.TableToTable, query string, pos change.Position) error {
	odb, ndb := dbOf(tt.OldTable, defaultDB), dbOf(tt.NewTable, defaultDB)
	oname, nname := tt.OldTable.Name.O, tt.NewTable.Name.O
	if t.reflected(odb, oname, pos) || t.reflected(ndb, nname, pos) {
		return nil
	}
	cur, _ := t.lookup(odb, oname)
	if t.tracks(odb, oname) && (cur != nil || t.filter.Match(odb, oname)) {
		if err := t.record(ctx, pos, odb, oname, nil, query); err != nil {
			return err
		}
	}
	if !t.tracks(ndb, nname) {
		return nil
	}
	if cur != nil {
		st := cloneTable(cur)
		st.DB, st.Name = ndb, nname
		return t.record(ctx, pos, ndb, nname, st, query)
	}
	if t.filter.Match(ndb, nname) {
		return t.learn(ctx, ndb, nname, pos, query, fmt.Sprintf("RENAME TABLE %s.%s TO %s.%s: the schema of %s.%s is unknown", odb, oname, ndb, nname, odb, oname))
	}
	if prev, _ := t.lookup(ndb, nname); prev != nil {
		return t.record(ctx, pos, ndb, nname, nil, query)
	}
	return nil
}

// dropDatabase forgets every known table of the dropped database, in name
// order.
func (t *schemaTracker) dropDatabase(ctx context.Context, s *ast.DropDatabaseStmt, query string, pos change.Position) error {
	prefix := strings.ToLower(s.Name.O) + "."
	var drop []*storedTable
	for k, st := range t.current {
		if strings.HasPrefix(k, prefix) && st != nil {
			drop = append(drop, st)
		}
	}
	sort.Slice(drop, func(i, j int) bool { return drop[i].Name < drop[j].Name })
	for _, st := range drop {
		if err := t.record(ctx, pos, st.DB, st.Name, nil, query); err != nil {
			return err
		}
	}
	return nil
}

func cloneTable(st *storedTable) *storedTable {
	cp := *st
	cp.Columns = append([]storedColumn(nil), st.Columns...)
	cp.PK = append([]int(nil), st.PK...)
	return &cp
}

func indexOfColumn(st *storedTable, name string) int {
	for i, c := range st.Columns {
		if strings.EqualFold(c.Name, name) {
			return i
		}
	}
	return -1
}

func pkFromKeys(st *storedTable, keys []*ast.IndexPartSpecification) []int {
	var pk []int
	for _, k := range keys {
		if k.Column != nil {
			if i := indexOfColumn(st, k.Column.Name.O); i >= 0 {
				pk = append(pk, i)
			}
		}
	}
	return pk
}

func markPKNotNull(st *storedTable) {
	for _, i := range st.PK {
		if i >= 0 && i < len(st.Columns) {
			st.Columns[i].Nullable = false
		}
	}
}

// alterTable applies one ALTER TABLE clause to st.
func alterTable(st *storedTable, spec *ast.AlterTableSpec) error {
	switch spec.Tp {
	case ast.AlterTableAddColumns:
		return addColumns(st, spec)
	case ast.AlterTableDropColumn:
		return dropColumn(st, spec)
	case ast.AlterTableModifyColumn, ast.AlterTableChangeColumn:
		return modifyColumn(st, spec)
	case ast.AlterTableRenameColumn:
		i := indexOfColumn(st, spec.OldColumnName.Name.O)
		if i < 0 {
			return fmt.Errorf("RENAME COLUMN %s: no such column", spec.OldColumnName.Name.O)
		}
		st.Columns[i].Name = spec.NewColumnName.Name.O
	case ast.AlterTableAddConstraint:
		if spec.Constraint != nil && spec.Constraint.Tp == ast.ConstraintPrimaryKey {
			st.PK = pkFromKeys(st, spec.Constraint.Keys)
		}
	case ast.AlterTableDropPrimaryKey:
		st.PK = nil
	}
	return nil
}

// addColumns applies ADD COLUMN: one column at its position, or several
// appended in order.
func addColumns(st *storedTable, spec *ast.AlterTableSpec) error {
	for i, cd := range spec.NewColumns {
		pos := spec.Position
		if i > 0 {
			pos = nil // ADD COLUMN (a, b): appended in order
		}
		if spec.IfNotExists && indexOfColumn(st, cd.Name.Name.O) >= 0 {
			continue
		}
		if err := insertColumn(st, columnFromDef(cd, ""), pos); err != nil {
			return err
		}
		for _, o := range cd.Options {
			if o.Tp == ast.ColumnOptionPrimaryKey {
				setPK(st, []string{cd.Name.Name.O})
			}
		}
	}
	return nil
}

// dropColumn applies DROP COLUMN; the column leaves the primary key too.
func dropColumn(st *storedTable, spec *ast.AlterTableSpec) error {
	i := indexOfColumn(st, spec.OldColumnName.Name.O)
	if i < 0 {
		if spec.IfExists {
			return nil
		}
		return fmt.Errorf("DROP COLUMN %s: no such column", spec.OldColumnName.Name.O)
	}
	names := pkNames(st)
	st.Columns = append(st.Columns[:i], st.Columns[i+1:]...)
	var keep []string
	for _, n := range names {
		if !strings.EqualFold(n, spec.OldColumnName.Name.O) {
			keep = append(keep, n)
		}
	}
	setPK(st, keep)
	return nil
}

// modifyColumn applies MODIFY or CHANGE COLUMN: the new definition (and
// name) in place, or moved to a new position.
func modifyColumn(st *storedTable, spec *ast.AlterTableSpec) error {
	cd := spec.NewColumns[0]
	old := cd.Name.Name.O
	if spec.Tp == ast.AlterTableChangeColumn {
		old = spec.OldColumnName.Name.O
	}
	i := indexOfColumn(st, old)
	if i < 0 {
		if spec.IfExists {
			return nil
		}
		return fmt.Errorf("%s: no such column", old)
	}
	names := pkNames(st)
	for k, n := range names {
		if strings.EqualFold(n, old) {
			names[k] = cd.Name.Name.O
		}
	}
	col := columnFromDef(cd, "")
	if spec.Position != nil && spec.Position.Tp != ast.ColumnPositionNone {
		st.Columns = append(st.Columns[:i], st.Columns[i+1:]...)
		setPK(st, nil)
		if err := insertColumn(st, col, spec.Position); err != nil {
			return err
		}
	} else {
		st.Columns[i] = col
	}
	setPK(st, names)
	return nil
}

// pkNames lists the names of st's primary key columns.
func pkNames(st *storedTable) []string {
	var n []string
	for _, i := range st.PK {
		n = append(n, st.Columns[i].Name)
	}
	return n
}

// setPK makes the named columns (those that exist) st's primary key.
func setPK(st *storedTable, names []string) {
	st.PK = st.PK[:0]
	for _, n := range names {
		if i := indexOfColumn(st, n); i >= 0 {
			st.PK = append(st.PK, i)
		}
	}
}

// insertColumn inserts col at position p (FIRST, AFTER a column, or last
// when p is nil), keeping the primary key on the same columns.
func insertColumn(st *storedTable, col storedColumn, p *ast.ColumnPosition) error {
	names := pkNames(st)
	idx := len(st.Columns)
	if p != nil {
		switch p.Tp {
		case ast.ColumnPositionFirst:
			idx = 0
		case ast.ColumnPositionAfter:
			i := indexOfColumn(st, p.RelativeColumn.Name.O)
			if i < 0 {
				return fmt.Errorf("AFTER %s: no such column", p.RelativeColumn.Name.O)
			}
			idx = i + 1
		}
	}
	st.Columns = append(st.Columns, storedColumn{})
	copy(st.Columns[idx+1:], st.Columns[idx:])
	st.Columns[idx] = col
	setPK(st, names)
	return nil
}

// columnFromDef converts a parsed column definition.
func columnFromDef(cd *ast.ColumnDef, tableCharset string) storedColumn {
	tp := cd.Tp
	c := storedColumn{Name: cd.Name.Name.O, Nullable: true}
	if tp == nil {
		return c
	}
	c.Unsigned = tmysql.HasUnsignedFlag(tp.GetFlag())
	c.Charset = strings.ToLower(tp.GetCharset())
	if c.Charset == "" && tmysql.HasBinaryFlag(tp.GetFlag()) && isStringType(tp.GetType()) && tp.GetCollate() == "" {
		c.Charset = "binary"
	}
	if c.Charset == "" && isStringType(tp.GetType()) {
		c.Charset = tableCharset
	}
	c.Type = ddlTypeName(tp, c.Charset)
	if c.Type == "binary" || c.Type == "varbinary" || strings.HasSuffix(c.Type, "blob") {
		c.Charset = "binary"
	}
	if c.Type == "enum" || c.Type == "set" {
		c.Values = append([]string(nil), tp.GetElems()...)
	}
	if c.Type == "char" || c.Type == "binary" {
		c.Length = tp.GetFlen()
	}
	for _, o := range cd.Options {
		switch o.Tp {
		case ast.ColumnOptionNotNull, ast.ColumnOptionPrimaryKey:
			c.Nullable = false
		case ast.ColumnOptionNull:
			c.Nullable = true
		}
	}
	return c
}

func isStringType(t byte) bool {
	switch t {
	case tmysql.TypeVarchar, tmysql.TypeVarString, tmysql.TypeString, tmysql.TypeBlob, tmysql.TypeTinyBlob,
		tmysql.TypeMediumBlob, tmysql.TypeLongBlob:
		return true
	}
	return false
}

func ddlTypeName(tp *types.FieldType, charset string) string {
	bin := charset == "binary"
	switch tp.GetType() {
	case tmysql.TypeTinyBlob:
		if bin {
			return "tinyblob"
		}
		return "tinytext"
	case tmysql.TypeBlob:
		if bin {
			return "blob"
		}
		return "text"
	case tmysql.TypeMediumBlob:
		if bin {
			return "mediumblob"
		}
		return "mediumtext"
	case tmysql.TypeLongBlob:
		if bin {
			return "longblob"
		}
		return "longtext"
	case tmysql.TypeDate, tmysql.TypeNewDate:
		return "date"
	}
	cs := charsetUTF8
	if bin {
		cs = charsetBinary
	}
	return binlogTypeName(tp.GetType(), cs, 0)
}

// loadInformationSchema reads the schema of every captured base table.
func loadInformationSchema(c *client.Conn, filter Filter, flavor string) (map[string]*storedTable, error) {
	r, err := c.Execute(`SELECT c.TABLE_SCHEMA, c.TABLE_NAME, c.COLUMN_NAME, c.DATA_TYPE, c.COLUMN_TYPE, c.IS_NULLABLE,
		COALESCE(c.CHARACTER_SET_NAME, ''), COALESCE(c.CHARACTER_MAXIMUM_LENGTH, 0)
		FROM information_schema.COLUMNS c JOIN information_schema.TABLES t
		  ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME
		WHERE t.TABLE_TYPE = 'BASE TABLE' AND c.TABLE_SCHEMA NOT IN ('information_schema','performance_schema')` +
		filter.schemaCondition("c.TABLE_SCHEMA") + `
		ORDER BY c.TABLE_SCHEMA, c.TABLE_NAME, c.ORDINAL_POSITION`)
	if err != nil {
		return nil, fmt.Errorf("read information_schema.COLUMNS (the connector user needs SELECT): %w", err)
	}
	tables := map[string]*storedTable{}
	for i := 0; i < r.RowNumber(); i++ {
		db, _ := r.GetString(i, 0)
		name, _ := r.GetString(i, 1)
		if !filter.Match(db, name) {
			continue
		}
		k := tableKeyName(db, name)
		st := tables[k]
		if st == nil {
			st = &storedTable{DB: db, Name: name}
			tables[k] = st
		}
		col, _ := r.GetString(i, 2)
		dataType, _ := r.GetString(i, 3)
		colType, _ := r.GetString(i, 4)
		nullable, _ := r.GetString(i, 5)
		cs, _ := r.GetString(i, 6)
		maxLen, _ := r.GetInt(i, 7)
		st.Columns = append(st.Columns, infoSchemaColumn(col, dataType, colType, nullable, cs, maxLen))
	}
	pk, err := c.Execute(`SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME FROM information_schema.STATISTICS
		WHERE INDEX_NAME = 'PRIMARY'` + filter.schemaCondition("TABLE_SCHEMA") + ` ORDER BY TABLE_SCHEMA, TABLE_NAME, SEQ_IN_INDEX`)
	if err != nil {
		return nil, fmt.Errorf("read primary keys from information_schema.STATISTICS: %w", err)
	}
	for i := 0; i < pk.RowNumber(); i++ {
		db, _ := pk.GetString(i, 0)
		name, _ := pk.GetString(i, 1)
		col, _ := pk.GetString(i, 2)
		if st := tables[tableKeyName(db, name)]; st != nil {
			if idx := indexOfColumn(st, col); idx >= 0 {
				st.PK = append(st.PK, idx)
			}
		}
	}
	if flavor == gmysql.MariaDBFlavor {
		// MariaDB's JSON is LONGTEXT with a json_valid() check named after the column.
		chk, err := c.Execute(`SELECT CONSTRAINT_SCHEMA, TABLE_NAME, CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS
			WHERE CHECK_CLAUSE LIKE 'json_valid(%'` + filter.schemaCondition("CONSTRAINT_SCHEMA"))
		if err == nil {
			for i := 0; i < chk.RowNumber(); i++ {
				db, _ := chk.GetString(i, 0)
				name, _ := chk.GetString(i, 1)
				clause, _ := chk.GetString(i, 2)
				st := tables[tableKeyName(db, name)]
				if st == nil {
					continue
				}
				col := strings.Trim(strings.TrimSuffix(strings.TrimPrefix(clause, "json_valid("), ")"), "`")
				if idx := indexOfColumn(st, col); idx >= 0 {
					st.Columns[idx].Type = "json"
				}
			}
		}
	}
	return tables, nil
}

// infoSchemaColumn converts one row of information_schema.COLUMNS.
func infoSchemaColumn(col, dataType, colType, nullable, cs string, maxLen int64) storedColumn {
	sc := storedColumn{Name: col, Type: strings.ToLower(dataType), Nullable: nullable == "YES",
		Unsigned: strings.Contains(strings.ToLower(colType), "unsigned"), Charset: strings.ToLower(cs)}
	switch sc.Type {
	case "enum", "set":
		sc.Values = parseEnumValues(colType)
	case "char", "binary":
		sc.Length = int(maxLen)
	}
	if sc.Type == "binary" || sc.Type == "varbinary" || strings.HasSuffix(sc.Type, "blob") {
		sc.Charset = "binary"
	}
	return sc
}

// loadTableSchema reads the current schema of one base table from
// information_schema (nil when there is no such table).
func loadTableSchema(c *client.Conn, db, table, flavor string) (*storedTable, error) {
	r, err := c.Execute(`SELECT c.COLUMN_NAME, c.DATA_TYPE, c.COLUMN_TYPE, c.IS_NULLABLE,
		COALESCE(c.CHARACTER_SET_NAME, ''), COALESCE(c.CHARACTER_MAXIMUM_LENGTH, 0)
		FROM information_schema.COLUMNS c JOIN information_schema.TABLES t
		  ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME
		WHERE t.TABLE_TYPE = 'BASE TABLE' AND c.TABLE_SCHEMA = ? AND c.TABLE_NAME = ?
		ORDER BY c.ORDINAL_POSITION`, db, table)
	if err != nil {
		return nil, fmt.Errorf("read information_schema.COLUMNS of %s.%s (the connector user needs SELECT): %w", db, table, err)
	}
	if r.RowNumber() == 0 {
		return nil, nil
	}
	st := &storedTable{DB: db, Name: table}
	for i := 0; i < r.RowNumber(); i++ {
		col, _ := r.GetString(i, 0)
		dataType, _ := r.GetString(i, 1)
		colType, _ := r.GetString(i, 2)
		nullable, _ := r.GetString(i, 3)
		cs, _ := r.GetString(i, 4)
		maxLen, _ := r.GetInt(i, 5)
		st.Columns = append(st.Columns, infoSchemaColumn(col, dataType, colType, nullable, cs, maxLen))
	}
	pk, err := c.Execute(`SELECT COLUMN_NAME FROM information_schema.STATISTICS
		WHERE INDEX_NAME = 'PRIMARY' AND TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY SEQ_IN_INDEX`, db, table)
	if err != nil {
		return nil, fmt.Errorf("read the primary key of %s.%s from information_schema.STATISTICS: %w", db, table, err)
	}
	for i := 0; i < pk.RowNumber(); i++ {
		col, _ := pk.GetString(i, 0)
		if idx := indexOfColumn(st, col); idx >= 0 {
			st.PK = append(st.PK, idx)
		}
	}
	if flavor == gmysql.MariaDBFlavor {
		// MariaDB's JSON is LONGTEXT with a json_valid() check named after the column.
		chk, err := c.Execute(`SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS
			WHERE CONSTRAINT_SCHEMA = ? AND TABLE_NAME = ? AND CHECK_CLAUSE LIKE 'json_valid(%'`, db, table)
		if err == nil {
			for i := 0; i < chk.RowNumber(); i++ {
				clause, _ := chk.GetString(i, 0)
				col := strings.Trim(strings.TrimSuffix(strings.TrimPrefix(clause, "json_valid("), ")"), "`")
				if idx := indexOfColumn(st, col); idx >= 0 {
					st.Columns[idx].Type = "json"
				}
			}
		}
	}
	markPKNotNull(st)
	return st, nil
}

// readTableSchema reads one table's schema and the binlog position it is
// current at: the binlog must not move while it is read (retried a few
// times, then the last read is taken with a warning, as at bootstrap).
func readTableSchema(ctx context.Context, c *client.Conn, db, table, flavor string, log *slog.Logger) (*storedTable, change.Position, error) {
	for attempt := 0; ; attempt++ {
		p1, err := currentPosition(c, flavor)
		if err != nil {
			return nil, change.Position{}, err
		}
		st, err := loadTableSchema(c, db, table, flavor)
		if err != nil {
			return nil, change.Position{}, err
		}
		p2, err := currentPosition(c, flavor)
		if err != nil {
			return nil, change.Position{}, err
		}
		if p1 == p2 || attempt == 9 {
			if p1 != p2 {
				log.Warn("the binlog kept moving while a table's schema was read; DDL on it right now may be applied twice", "table", db+"."+table, "from", p1.String(), "to", p2.String())
			}
			return st, p1, nil
		}
		if err := sleepCtx(ctx, 50*time.Millisecond); err != nil {
			return nil, change.Position{}, err
		}
	}
}

// parseEnumValues reads the members of an enum(...) or set(...) COLUMN_TYPE
// (quoted strings; a quote inside a member is doubled).
func parseEnumValues(colType string) []string {
	i := strings.IndexByte(colType, '(')
	if i < 0 {
		return nil
	}
	s := colType[i+1:]
	var out []string
	for {
		q := strings.IndexByte(s, '\'')
		if q < 0 {
			break
		}
		s = s[q+1:]
		var b strings.Builder
		for len(s) > 0 {
			if s[0] == '\'' {
				if len(s) > 1 && s[1] == '\'' {
					b.WriteByte('\'')
					s = s[2:]
					continue
				}
				s = s[1:]
				break
			}
			if s[0] == '\\' && len(s) > 1 {
				b.WriteByte(s[1])
				s = s[2:]
				continue
			}
			b.WriteByte(s[0])
			s = s[1:]
		}
		out = append(out, b.String())
	}
	return out
}

package binlog

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"runtime/debug"
	"strings"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
	"github.com/google/uuid"
	"github.com/pingcap/tidb/pkg/parser"

	"github.com/feedcdc/feedcdc/change"
)

// Handler receives decoded changes in binlog order. Change is called for
// every row image of a captured table; TxEnd once after every transaction
// (also those without captured rows, so that checkpoints keep moving). The
// *change.Change is not reused by the decoder; receivers may keep it.
// Returning an error stops decoding and is returned unchanged.
type Handler interface {
	Change(ctx context.Context, c *change.Change) error
	TxEnd(ctx context.Context, e change.TxEnd) error
}

// Truncater is implemented by handlers that want TRUNCATE TABLE of a
// captured table: InnoDB empties the table without row events, so the
// statement is the only trace of the deleted rows. Truncate is called once
// per truncated captured table, before the statement's TxEnd; t names the
// table (its columns are not known here).
type Truncater interface {
	Truncate(ctx context.Context, t *change.Table, src change.Source) error
}

// Replacer is implemented by handlers that want to know when RENAME TABLE
// (or a chain of renames, or ALTER TABLE … RENAME) puts another table in a
// captured table's place — the cut-over of gh-ost and
// pt-online-schema-change, or a staging-table swap: the rows now under the
// name never were row events of it. Replace is called once per captured
// name a rename moves a table to, in statement order, before the
// statement's TxEnd; t names the table (its columns are not known here)
// and from is the "db.table" name the table had before.
type Replacer interface {
	Replace(ctx context.Context, t *change.Table, from string, src change.Source) error
}

// schemaSource is the schema history as the decoder sees it.
type schemaSource interface {
	// lookup returns the history's version of db.table at the current point
	// of the stream (nil if unknown) and a number that changes whenever it
	// changes.
	lookup(db, table string) (*storedTable, uint64)
	// applyQuery records the effect of a non-transactional statement (DDL).
	applyQuery(ctx context.Context, defaultDB, query string, pos change.Position) error
	// advance tells that the stream reached pos (a transaction end).
	advance(pos change.Position)
	// takeChanged returns (and forgets) the captured tables the statements
	// applied since the last call changed.
	takeChanged() []tableChange
}

// SchemaChanger is implemented by handlers that want a record of every DDL
// statement that changed a captured table (schema-change streams).
// SchemaChange is called once per changed captured table, after the
// statement took effect in the schema history and before the statement's
// TxEnd, so it is ordered with the row changes around it.
type SchemaChanger interface {
	SchemaChange(ctx context.Context, sc change.SchemaChange) error
}

// absent marks a column missing from a partial row image (inspect only).
type absent struct{}

// decodeError marks errors already carrying their event context.
type decodeError struct{ err error }

func (e *decodeError) Error() string { return e.err.Error() }
func (e *decodeError) Unwrap() error { return e.err }

// handlerError marks errors returned by the Handler (passed through as is).
type handlerError struct{ err error }

func (e *handlerError) Error() string { return e.err.Error() }
func (e *handlerError) Unwrap() error { return e.err }

// decoder turns go-mysql events into change records. It is not safe for
// concurrent use; events must be fed in stream order.
type decoder struct {
	flavor  string
	zero    ZeroDates
	filter  Filter
	schemas schemaSource // may be nil
	h       Handler
	// named holds one table per db.table named by a TRUNCATE or a rename,
	// handed to Truncater and Replacer (stable pointers: handlers may cache
	// per table).
	named map[[2]string]*change.Table
	obs   Observer // nil unless h implements it
	log   *slog.Logger

	file string
	pos  uint32 // end position of the last event (= start of the next)

	gset         mysql.GTIDSet // nil when the stream has no GTIDs
	gsetFromFile bool          // take the initial set from PREVIOUS_GTIDS / GTID_LIST
	gsetUnknown  bool          // MySQL mid-file start without a set: never start one from single GTIDs

	// current transaction
	inTx       bool
	standalone bool // MariaDB FL_STANDALONE: the next statement ends the group
	txGTID     string
	txRows     int
	txTime     time.Time
	addGTID    func() error // adds the transaction's GTID to gset at commit
	txEnd      uint32       // MySQL: end position of the transaction from its GTID event's transaction length (0: unknown)
	txThread   uint32       // session id from the transaction's BEGIN (0: unknown)
	rowsQuery  string       // statement of the following rows events (ANNOTATE_ROWS / ROWS_QUERY), "" if not logged

	requireNames bool // live: a table without column names and history is an error
	allowPartial bool // mark missing columns with absent{} instead of failing (inspect only)

	sqlParser *parser.Parser // for statement-logged DML checks (lazily created)

	tables map[uint64]*tableInfo // table id -> plan (nil: not captured)
	cache  map[string]*tableInfo
	keyBuf []byte

	xa xaState // XA transactions: rows held from XA START until XA COMMIT
}

func newDecoder(flavor string, zero ZeroDates, filter Filter, schemas schemaSource, h Handler, log *slog.Logger) *decoder {
	if zero == "" {
		zero = ZeroDatesNull
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &decoder{flavor: flavor, zero: zero, filter: filter, schemas: schemas, h: h, obs: observerOf(h), log: log,
		tables: make(map[uint64]*tableInfo), cache: make(map[string]*tableInfo)}
}

// position returns the resume position "just after" endPos.
func (d *decoder) position(endPos uint32) change.Position {
	p := change.Position{Flavor: d.flavor, File: d.file, Pos: endPos}
	if d.gset != nil {
		p.GTIDSet = d.gset.String()
	}
	return p
}

// rowsDecodeFunc is installed with SetRowsEventDecodeFunc: it decodes the
// rows of captured tables only. It runs in the parser's goroutine, so it
// only reads the (immutable) filter.
func (d *decoder) rowsDecodeFunc(re *replication.RowsEvent, data []byte) error {
	pos, err := re.DecodeHeader(data)
	if err != nil {
		return err
	}
	if !d.filter.Match(string(re.Table.Schema), string(re.Table.Table)) {
		return nil
	}
	return re.DecodeData(pos, data)
}

// configureParser applies the value options the normaliser relies on.
func configureParser(p *replication.BinlogParser, d *decoder) {
	p.SetParseTime(true) // time.Time for DATETIME/TIMESTAMP: formatted by formatDatetime without fmt
	p.SetTimestampStringLocation(time.UTC)
	p.SetUseDecimal(false) // exact strings with the column's scale
	p.SetRowsEventDecodeFunc(d.rowsDecodeFunc)
}

// handle processes one event. Errors name the file, position and event type.
func (d *decoder) handle(ctx context.Context, ev *replication.BinlogEvent) (err error) {
	start := d.pos
	defer func() {
		if r := recover(); r != nil {
			stack := debug.Stack()
			if len(stack) > 2048 {
				stack = stack[:2048]
			}
			err = &decodeError{fmt.Errorf("binlog %s at position %d (%s): decoding panicked: %v\n%s", d.file, start, ev.Header.EventType, r, stack)}
		}
		if err != nil {
			var de *decodeError
			var he *handlerError
			if !errors.As(err, &de) && !errors.As(err, &he) {
				err = &decodeError{fmt.Errorf("binlog %s at position %d (%s): %w", d.file, start, ev.Header.EventType, err)}
			}
		}
	}()
	return d.handleEvent(ctx, ev)
}

func (d *decoder) handleEvent(ctx context.Context, ev *replication.BinlogEvent) error {
	h := ev.Header
	endPos := d.endPosition(h)
	switch h.EventType {
	case replication.HEARTBEAT_EVENT, replication.HEARTBEAT_LOG_EVENT_V2:
		if d.obs != nil {
			d.obs.Heartbeat()
		}
		return nil
	}
	if d.obs != nil && h.Flags&replication.LOG_EVENT_ARTIFICIAL_F == 0 && h.Timestamp != 0 {
		d.obs.EventRead(h.EventSize, time.Unix(int64(h.Timestamp), 0))
	}
	d.pos = endPos

	switch e := ev.Event.(type) {
	case *replication.FormatDescriptionEvent:
		if d.flavor == "" {
			d.flavor = flavorOfVersion(e.ServerVersion)
		}
	case *replication.RotateEvent:
		d.file = string(e.NextLogName)
		d.pos = uint32(e.Position)
	case *replication.PreviousGTIDsEvent:
		return d.previousMySQLGTIDs(e)
	case *replication.MariadbGTIDListEvent:
		return d.previousMariaDBGTIDs(e)
	case *replication.GTIDEvent:
		return d.beginMySQL(h, e, nil, endPos)
	case *replication.GtidTaggedLogEvent:
		return d.beginMySQL(h, &e.GTIDEvent, e, endPos)
	case *replication.MariadbGTIDEvent:
		d.beginMariaDB(h, e)
	case *replication.QueryEvent:
		return d.query(ctx, h, e, endPos)
	case *replication.XIDEvent:
		return d.commit(ctx, endPos)
	case *replication.TableMapEvent:
		return d.tableMap(e)
	case *replication.MariadbAnnotateRowsEvent:
		d.rowsQuery = string(e.Query)
	case *replication.RowsQueryEvent:
		d.rowsQuery = string(e.Query)
	case *replication.RowsEvent:
		return d.rows(ctx, h, e, endPos)
	case *replication.TransactionPayloadEvent:
		for _, inner := range e.Events {
			if err := d.handleEvent(ctx, inner); err != nil {
				return err
			}
		}
		d.pos = endPos
	case *replication.GenericEvent:
		if h.EventType == replication.XA_PREPARE_LOG_EVENT {
			return d.xaPrepare(ctx, e.Data, endPos)
		}
		return d.generic(h)
	}
	return nil
}

// endPosition is the position after the event: its end_log_pos, or, for
// a real event without one (MariaDB 11.4+ writes end_log_pos=0 inside
// transactions), the current position plus its size.
func (d *decoder) endPosition(h *replication.EventHeader) uint32 {
	switch {
	case h.LogPos != 0:
		return h.LogPos
	case h.Flags&replication.LOG_EVENT_ARTIFICIAL_F == 0 && h.EventType != replication.ROTATE_EVENT &&
		h.EventType != replication.FORMAT_DESCRIPTION_EVENT && h.EventType != replication.HEARTBEAT_EVENT &&
		h.EventType != replication.HEARTBEAT_LOG_EVENT_V2:
		return d.pos + h.EventSize
	}
	return d.pos
}

// previousMySQLGTIDs takes the GTID set from a file's PREVIOUS_GTIDS when
// the stream starts from a file without one.
func (d *decoder) previousMySQLGTIDs(e *replication.PreviousGTIDsEvent) error {
	if !d.gsetFromFile || d.gset != nil {
		return nil
	}
	s, err := mysql.ParseMysqlGTIDSet(e.GTIDSets)
	if err != nil {
		return fmt.Errorf("PREVIOUS_GTIDS %q: %w", e.GTIDSets, err)
	}
	d.gset = s
	return nil
}

// previousMariaDBGTIDs takes the GTID set from a file's GTID_LIST when the
// stream starts from a file without one.
func (d *decoder) previousMariaDBGTIDs(e *replication.MariadbGTIDListEvent) error {
	if !d.gsetFromFile || d.gset != nil {
		return nil
	}
	s, _ := mysql.ParseMariadbGTIDSet("")
	for i := range e.GTIDs {
		if err := s.(*mysql.MariadbGTIDSet).AddSet(&e.GTIDs[i]); err != nil {
			return err
		}
	}
	d.gset = s
	return nil
}

// beginMariaDB starts a MariaDB event group (transaction, DDL, or the rows
// of an XA transaction up to its XA PREPARE); its GTID joins the set when
// the group ends.
func (d *decoder) beginMariaDB(h *replication.EventHeader, e *replication.MariadbGTIDEvent) {
	d.startTx(h)
	g := e.GTID
	d.txGTID = g.String()
	d.standalone = e.IsStandalone()
	if e.Flags&mariadbFlPreparedXA != 0 {
		// the event group of an XA transaction's rows, up to its XA PREPARE
		d.xa.open = &[]*change.Change{}
	}
	d.addGTID = func() error {
		if d.gset == nil {
			d.gset, _ = mysql.ParseMariadbGTIDSet("")
		}
		ms, ok := d.gset.(*mysql.MariadbGTIDSet)
		if !ok {
			return fmt.Errorf("MariaDB GTID %s in a stream with a MySQL GTID set", g.String())
		}
		return ms.AddSet(&g)
	}
}

// generic rejects event types go-mysql does not know and that may carry rows.
func (d *decoder) generic(h *replication.EventHeader) error {
	t := byte(h.EventType)
	switch {
	case t >= 169 && t <= 172:
		return fmt.Errorf("MariaDB event type %d (compressed v2 rows or partial row data) is not supported by the decoder: set log_bin_compress=OFF and binlog_row_event_fragment_threshold to its maximum on the source", t)
	case t == 164:
		return fmt.Errorf("MariaDB START_ENCRYPTION event: this binlog file is encrypted; read it through the server (live source) instead of offline")
	case h.EventType == replication.INCIDENT_EVENT:
		d.log.Warn("binlog INCIDENT event: the source reports that changes may be missing from its binlog", "file", d.file, "pos", d.pos)
	}
	return nil
}

func flavorOfVersion(v string) string {
	if strings.Contains(strings.ToLower(v), "mariadb") {
		return mysql.MariaDBFlavor
	}
	return mysql.MySQLFlavor
}

func (d *decoder) startTx(h *replication.EventHeader) {
	if d.inTx || d.addGTID != nil {
		d.log.Warn("binlog transaction without an end; its rows were delivered without a TxEnd", "file", d.file, "pos", d.pos, "gtid", d.txGTID)
	}
	d.inTx = false
	d.standalone = false
	d.txGTID = ""
	d.txRows = 0
	d.txTime = time.Unix(int64(h.Timestamp), 0).UTC()
	d.addGTID = nil
	d.txEnd = 0
	d.txThread = 0
	d.rowsQuery = ""
}

func (d *decoder) beginMySQL(h *replication.EventHeader, e *replication.GTIDEvent, tagged *replication.GtidTaggedLogEvent, endPos uint32) error {
	d.startTx(h)
	if e.TransactionLength > 0 && endPos >= h.EventSize {
		// MySQL 8.0.2+: the transaction ends exactly here, whatever its
		// statements look like (CREATE TABLE … SELECT is a DDL query
		// followed by rows and an XID in one transaction).
		d.txEnd = endPos - h.EventSize + uint32(e.TransactionLength)
	}
	anonymous := true
	for _, b := range e.SID {
		if b != 0 {
			anonymous = false
			break
		}
	}
	if anonymous {
		return nil
	}
	u, err := uuid.FromBytes(e.SID)
	if err != nil {
		return err
	}
	gno := e.GNO
	tag := e.Tag
	if tagged != nil && tag.String() != "" {
		d.txGTID = fmt.Sprintf("%s:%s:%d", u, tag, gno)
	} else {
		d.txGTID = fmt.Sprintf("%s:%d", u, gno)
	}
	d.addGTID = func() error {
		if d.gset == nil && d.gsetUnknown {
			return nil
		}
		if d.gset == nil {
			s := mysql.NewMysqlGTIDSet()
			d.gset = &s
		}
		ms, ok := d.gset.(*mysql.MysqlGTIDSet)
		if !ok {
			return fmt.Errorf("MySQL GTID %s in a stream with a MariaDB GTID set", d.txGTID)
		}
		if tag.String() != "" {
			ms.AddGTIDWithTag(u, tag, gno)
		} else {
			ms.AddGTID(u, gno)
		}
		return nil
	}
	return nil
}

func (d *decoder) query(ctx context.Context, h *replication.EventHeader, e *replication.QueryEvent, endPos uint32) error {
	q := strings.TrimSpace(string(e.Query))
	word := firstWord(q)
	switch word {
	case "BEGIN":
		d.txThread = e.SlaveProxyID
		if d.addGTID == nil && !d.inTx {
			// no GTID event (very old servers / anonymous): the transaction starts here
			d.txRows = 0
			d.txTime = time.Unix(int64(h.Timestamp), 0).UTC()
		}
		d.inTx = true
		return nil
	case "COMMIT":
		return d.commit(ctx, endPos)
	case "ROLLBACK":
		if strings.HasPrefix(strings.ToUpper(q), "ROLLBACK TO") {
			return nil
		}
		return d.commit(ctx, endPos)
	case "SAVEPOINT", "RELEASE":
		return nil
	case "XA":
		return d.xaQuery(ctx, q, endPos)
	}
	if err := d.checkStatementDML(string(e.Schema), q); err != nil {
		return err
	}
	if word == "TRUNCATE" {
		if err := d.truncate(ctx, h, q, string(e.Schema), endPos); err != nil {
			return err
		}
	}
	if !d.inTx && d.txEnd != 0 && endPos < d.txEnd {
		// a statement that opens a transaction (MySQL CREATE TABLE … SELECT)
		d.inTx = true
		return d.applyDDL(ctx, h, string(e.Schema), q, d.positionAfterCommit(d.txEnd), endPos)
	}
	if d.inTx && !d.standalone {
		// A statement inside a transaction (statement-based logging of DML
		// under MIXED/STATEMENT, or a CREATE TEMPORARY TABLE).
		return d.applyDDL(ctx, h, string(e.Schema), q, d.position(endPos), endPos)
	}
	if d.txTime.IsZero() {
		d.txTime = time.Unix(int64(h.Timestamp), 0).UTC()
	}
	if err := d.applyDDL(ctx, h, string(e.Schema), q, d.positionAfterCommit(endPos), endPos); err != nil {
		return err
	}
	if word == "RENAME" || word == "ALTER" {
		if err := d.replace(ctx, h, q, string(e.Schema), endPos); err != nil {
			return err
		}
	}
	// A table id may now refer to another table version.
	clear(d.tables)
	return d.commit(ctx, endPos)
}

// applyDDL records a statement's effect in the schema history (at pos) and
// hands every captured table it changed to a SchemaChanger.
func (d *decoder) applyDDL(ctx context.Context, h *replication.EventHeader, defaultDB, q string, pos change.Position, endPos uint32) error {
	if d.schemas == nil {
		return nil
	}
	err := d.schemas.applyQuery(ctx, defaultDB, q, pos)
	changed := d.schemas.takeChanged()
	if err != nil {
		return err
	}
	if len(changed) == 0 {
		return nil
	}
	sc, ok := d.h.(SchemaChanger)
	if !ok || !handlesSchemaChange(d.h) {
		return nil
	}
	src := change.Source{ServerID: h.ServerID, GTID: d.txGTID, File: d.file, Pos: endPos, Timestamp: time.Unix(int64(h.Timestamp), 0).UTC()}
	word := strings.ToUpper(firstWord(q))
	for _, c := range changed {
		t := &change.Table{DB: c.db, Name: c.table}
		kind := "ALTER"
		switch {
		case c.st != nil && !c.existed, word == "CREATE":
			kind = "CREATE" // a new table, or a table renamed to this name
		case c.st == nil && (word == "DROP" || word == "RENAME" || !c.existed):
			kind = "DROP"
		case c.st == nil && word == "ALTER" && c.existed && strings.Contains(strings.ToUpper(q), "RENAME"):
			kind = "DROP" // ALTER TABLE … RENAME: the old name
		}
		if c.st != nil {
			t.PK = append([]int(nil), c.st.PK...)
			t.Columns = make([]change.Column, len(c.st.Columns))
			for i, col := range c.st.Columns {
				t.Columns[i] = change.Column{Name: col.Name, Type: col.Type, Unsigned: col.Unsigned, Nullable: col.Nullable}
			}
		}
		if err := sc.SchemaChange(ctx, change.SchemaChange{Table: t, Kind: kind, DDL: q, Source: src}); err != nil {
			return &handlerError{err}
		}
	}
	return nil
}

// handlesSchemaChange reports whether h, or the handler it wraps, is a
// SchemaChanger.
func handlesSchemaChange(h Handler) bool {
	if w, ok := h.(interface{ inner() Handler }); ok {
		return handlesSchemaChange(w.inner())
	}
	_, ok := h.(SchemaChanger)
	return ok
}

// truncate hands a TRUNCATE of a captured table to the handler (or warns
// that its rows vanish without a trace when the handler cannot take it).
func (d *decoder) truncate(ctx context.Context, h *replication.EventHeader, q, defaultDB string, endPos uint32) error {
	db, name, ok := truncatedTable(q, defaultDB)
	if !ok || !d.filter.Match(db, name) {
		return nil
	}
	tr, ok := d.h.(Truncater)
	if !ok || !handlesTruncate(d.h) {
		d.log.Warn("TRUNCATE in the binlog: the deleted rows have no row events, so no delete changes are emitted for them", "statement", truncateString(q, 200), "file", d.file, "pos", endPos)
		return nil
	}
	src := change.Source{ServerID: h.ServerID, GTID: d.txGTID, File: d.file, Pos: endPos, Timestamp: time.Unix(int64(h.Timestamp), 0).UTC()}
	if err := tr.Truncate(ctx, d.namedTable(db, name), src); err != nil {
		return &handlerError{err}
	}
	return nil
}

// namedTable returns the stable *change.Table naming db.name.
func (d *decoder) namedTable(db, name string) *change.Table {
	key := [2]string{db, name}
	t := d.named[key]
	if t == nil {
		if d.named == nil {
			d.named = map[[2]string]*change.Table{}
		}
		t = &change.Table{DB: db, Name: name}
		d.named[key] = t
	}
	return t
}

// replace hands every captured name a RENAME (or ALTER TABLE … RENAME)
// moves another table to to the handler, or warns that the feeds cannot
// learn of it when the handler cannot take it.
func (d *decoder) replace(ctx context.Context, h *replication.EventHeader, q, defaultDB string, endPos uint32) error {
	if d.sqlParser == nil {
		d.sqlParser = parser.New()
	}
	var hit []renamePair
	for _, r := range renames(d.sqlParser, defaultDB, q) {
		if d.filter.Match(r.to[0], r.to[1]) {
			hit = append(hit, r)
		}
	}
	if len(hit) == 0 {
		return nil
	}
	rp, ok := d.h.(Replacer)
	if !ok || !handlesReplace(d.h) {
		d.log.Warn("a rename put another table in a captured table's place: its rows have no row events", "statement", truncateString(q, 200), "file", d.file, "pos", endPos)
		return nil
	}
	src := change.Source{ServerID: h.ServerID, GTID: d.txGTID, File: d.file, Pos: endPos, Timestamp: time.Unix(int64(h.Timestamp), 0).UTC()}
	for _, r := range hit {
		if err := rp.Replace(ctx, d.namedTable(r.to[0], r.to[1]), r.from[0]+"."+r.from[1], src); err != nil {
			return &handlerError{err}
		}
	}
	return nil
}

// handlesTruncate reports whether h, or the handler it wraps, is a
// Truncater.
func handlesTruncate(h Handler) bool {
	if w, ok := h.(interface{ inner() Handler }); ok {
		return handlesTruncate(w.inner())
	}
	_, ok := h.(Truncater)
	return ok
}

// handlesReplace reports whether h, or the handler it wraps, is a
// Replacer.
func handlesReplace(h Handler) bool {
	if w, ok := h.(interface{ inner() Handler }); ok {
		return handlesReplace(w.inner())
	}
	_, ok := h.(Replacer)
	return ok
}

var truncateRe = regexp.MustCompile("(?is)^\\s*(?:/\\*.*?\\*/\\s*)*TRUNCATE\\s+(?:TABLE\\s+)?((?:`(?:[^`]|``)+`|\\w+)(?:\\s*\\.\\s*(?:`(?:[^`]|``)+`|\\w+))?)")

// truncatedTable returns the table a TRUNCATE [TABLE] statement empties.
func truncatedTable(q, defaultDB string) (db, table string, ok bool) {
	m := truncateRe.FindStringSubmatch(q)
	if m == nil {
		return "", "", false
	}
	n := qualifiedName(m[1], defaultDB)
	return n[0], n[1], true
}

// positionAfterCommit is the position a DDL statement's effect is recorded
// at: the one its TxEnd will carry.
func (d *decoder) positionAfterCommit(endPos uint32) change.Position {
	if d.addGTID == nil {
		return d.position(endPos)
	}
	var clone mysql.GTIDSet
	if d.gset != nil {
		clone = d.gset.Clone()
	}
	saved := d.gset
	d.gset = clone
	err := d.addGTID()
	p := d.position(endPos)
	d.gset = saved
	if err != nil {
		return d.position(endPos)
	}
	return p
}

func firstWord(q string) string {
	// skip leading comments like /* ... */
	for strings.HasPrefix(q, "/*") {
		i := strings.Index(q, "*/")
		if i < 0 {
			break
		}
		q = strings.TrimSpace(q[i+2:])
	}
	end := len(q)
	for i := 0; i < len(q); i++ {
		c := q[i]
		if c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == ';' || c == '(' {
			end = i
			break
		}
	}
	return strings.ToUpper(q[:end])
}

func (d *decoder) commit(ctx context.Context, endPos uint32) error {
	if d.addGTID != nil {
		if err := d.addGTID(); err != nil {
			return err
		}
	}
	te := change.TxEnd{GTID: d.txGTID, Position: d.position(endPos), Timestamp: d.txTime, Rows: d.txRows}
	if d.schemas != nil {
		d.schemas.advance(te.Position)
	}
	te.Position = d.resumePosition(te.Position)
	d.inTx = false
	d.standalone = false
	d.txGTID = ""
	d.txRows = 0
	d.txTime = time.Time{}
	d.txThread = 0
	d.rowsQuery = ""
	d.addGTID = nil
	d.txEnd = 0
	clear(d.tables)
	if err := d.h.TxEnd(ctx, te); err != nil {
		return &handlerError{err}
	}
	return nil
}

func (d *decoder) tableMap(tm *replication.TableMapEvent) error {
	db, name := string(tm.Schema), string(tm.Table)
	if !d.filter.Match(db, name) {
		d.tables[tm.TableID] = nil
		return nil
	}
	var hist *storedTable
	var version uint64
	if d.schemas != nil {
		hist, version = d.schemas.lookup(db, name)
	}
	if d.requireNames && hist == nil && len(tm.ColumnName) != int(tm.ColumnCount) {
		return fmt.Errorf("table %s.%s is logged without column names (binlog_row_metadata is not FULL) and the schema history does not know it: run `feedcdc schema reload --table %s.%s` (reads its schema from the server into the schema history; item states and the checkpoint are kept) and start again, and set binlog_row_metadata=FULL on the source so that this cannot recur", db, name, db, name)
	}
	key := d.tableKey(tm, version)
	if ti, ok := d.cache[string(key)]; ok {
		d.tables[tm.TableID] = ti
		dropSignedness(tm)
		return nil
	}
	ti, err := tableFromMap(tm, hist)
	if err != nil {
		return err
	}
	if len(d.cache) > 4096 {
		clear(d.cache)
	}
	d.cache[string(key)] = ti
	d.tables[tm.TableID] = ti
	dropSignedness(tm)
	return nil
}

// dropSignedness clears the TABLE_MAP's signedness bitmap once its plan is
// built: go-mysql otherwise rebuilds a map from it for every row image
// (about 10% of decoding time); the normaliser reinterprets integers as
// unsigned from the plan instead. The rows events of this table map are
// parsed after this handler ran (the file reader and the synchronous
// syncer handler are sequential; inner events of a compressed transaction
// were parsed already and keep the bitmap, which is harmless).
func dropSignedness(tm *replication.TableMapEvent) {
	tm.SignednessBitmap = nil
}

// tableKey identifies a table version by everything tableFromMap reads.
func (d *decoder) tableKey(tm *replication.TableMapEvent, version uint64) []byte {
	b := d.keyBuf[:0]
	b = binary.LittleEndian.AppendUint64(b, version)
	add := func(p []byte) {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(p)))
		b = append(b, p...)
	}
	addInts := func(v []uint64) {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(v)))
		for _, x := range v {
			b = binary.LittleEndian.AppendUint64(b, x)
		}
	}
	add(tm.Schema)
	add(tm.Table)
	add(tm.ColumnType)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(tm.ColumnMeta)))
	for _, m := range tm.ColumnMeta {
		b = binary.LittleEndian.AppendUint16(b, m)
	}
	add(tm.NullBitmap)
	add(tm.SignednessBitmap)
	addInts(tm.DefaultCharset)
	addInts(tm.ColumnCharset)
	addInts(tm.EnumSetDefaultCharset)
	addInts(tm.EnumSetColumnCharset)
	addInts(tm.PrimaryKey)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(tm.ColumnName)))
	for _, n := range tm.ColumnName {
		add(n)
	}
	for _, group := range [2][][][]byte{tm.EnumStrValue, tm.SetStrValue} {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(group)))
		for _, vals := range group {
			b = binary.LittleEndian.AppendUint32(b, uint32(len(vals)))
			for _, v := range vals {
				add(v)
			}
		}
	}
	d.keyBuf = b
	return b
}

func (d *decoder) rows(ctx context.Context, h *replication.EventHeader, re *replication.RowsEvent, endPos uint32) error {
	ti, ok := d.tables[re.TableID]
	if !ok {
		if re.Table != nil && !d.filter.Match(string(re.Table.Schema), string(re.Table.Table)) {
			return nil
		}
		return fmt.Errorf("rows event for table id %d without a preceding TABLE_MAP event: start from a transaction boundary", re.TableID)
	}
	if ti == nil {
		return nil // not captured; rows were not decoded
	}
	var op change.Op
	switch h.EventType {
	case replication.WRITE_ROWS_EVENTv0, replication.WRITE_ROWS_EVENTv1, replication.WRITE_ROWS_EVENTv2, replication.MARIADB_WRITE_ROWS_COMPRESSED_EVENT_V1:
		op = change.OpCreate
	case replication.DELETE_ROWS_EVENTv0, replication.DELETE_ROWS_EVENTv1, replication.DELETE_ROWS_EVENTv2, replication.MARIADB_DELETE_ROWS_COMPRESSED_EVENT_V1:
		op = change.OpDelete
	default:
		op = change.OpUpdate
	}
	if h.EventType == replication.PARTIAL_UPDATE_ROWS_EVENT {
		for _, row := range re.Rows {
			for _, v := range row {
				if _, ok := v.(*replication.JsonDiff); ok {
					return fmt.Errorf("%s: %w", ti.table.FullName(), errPartialJSON)
				}
			}
		}
	}
	step := 1
	if op == change.OpUpdate {
		step = 2
		if len(re.Rows)%2 != 0 {
			return fmt.Errorf("update rows event of %s has an odd number of row images (%d)", ti.table.FullName(), len(re.Rows))
		}
	}
	ts := time.Unix(int64(h.Timestamp), 0).UTC()
	if d.txTime.IsZero() {
		d.txTime = ts
	}
	for i, k := 0, 0; i < len(re.Rows); i, k = i+step, k+1 {
		c := &change.Change{Table: ti.table, Op: op, Source: change.Source{
			ServerID: h.ServerID, GTID: d.txGTID, File: d.file, Pos: endPos, Row: k, Timestamp: ts,
			Flavor: d.flavor, Query: d.rowsQuery, Thread: d.txThread,
		}}
		img, err := d.image(ti, re, i)
		if err != nil {
			return fmt.Errorf("%s row %d: %w", ti.table.FullName(), k, err)
		}
		switch op {
		case change.OpCreate:
			c.After = img
		case change.OpDelete:
			c.Before = img
		case change.OpUpdate:
			c.Before = img
			if c.After, err = d.image(ti, re, i+1); err != nil {
				return fmt.Errorf("%s row %d (after image): %w", ti.table.FullName(), k, err)
			}
		}
		d.txRows++
		if err := d.deliver(ctx, c); err != nil {
			return err
		}
	}
	return nil
}

// image normalises row image i of a rows event in place and returns it.
func (d *decoder) image(ti *tableInfo, re *replication.RowsEvent, i int) ([]any, error) {
	row := re.Rows[i]
	if len(row) != len(ti.cols) {
		return nil, fmt.Errorf("row image has %d columns, table map %d", len(row), len(ti.cols))
	}
	if i < len(re.SkippedColumns) && len(re.SkippedColumns[i]) > 0 && !d.allowPartial {
		names := make([]string, 0, len(re.SkippedColumns[i]))
		for _, c := range re.SkippedColumns[i] {
			names = append(names, ti.table.Columns[c].Name)
		}
		return nil, fmt.Errorf("row image lacks columns %v (binlog_row_image is not FULL): set binlog_row_image=FULL on the source", names)
	}
	if d.allowPartial && i < len(re.SkippedColumns) {
		for _, c := range re.SkippedColumns[i] {
			row[c] = absent{}
		}
	}
	for j, v := range row {
		if v == nil {
			continue
		}
		if _, ok := v.(absent); ok {
			continue
		}
		nv, err := normalize(v, &ti.cols[j], d.zero)
		if err != nil {
			return nil, fmt.Errorf("column %s: %w", ti.table.Columns[j].Name, err)
		}
		row[j] = nv
	}
	return row, nil
}

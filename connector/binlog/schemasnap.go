package binlog

import (
	"fmt"
	"strings"

	"github.com/go-mysql-org/go-mysql/client"
	"github.com/pingcap/tidb/pkg/parser/ast"

	"github.com/feedcdc/feedcdc/change"
)

// capturedSchemas returns the databases the filter can capture when every
// include pattern names its database literally; nil means "any database"
// (no include patterns, or a wildcard database part).
func (f Filter) capturedSchemas() []string {
	if len(f.Include) == 0 {
		return nil
	}
	seen := map[string]bool{}
	var out []string
	for _, p := range f.Include {
		db, _, _ := strings.Cut(p, ".")
		if strings.ContainsAny(db, "*?") {
			return nil
		}
		if k := strings.ToLower(db); !seen[k] {
			seen[k] = true
			out = append(out, db)
		}
	}
	return out
}

// schemaCondition is the SQL condition restricting column col to the
// captured databases ("" when every database may be captured).
func (f Filter) schemaCondition(col string) string {
	dbs := f.capturedSchemas()
	if dbs == nil {
		return ""
	}
	q := make([]string, len(dbs))
	for i, db := range dbs {
		q[i] = "'" + escapeSQL(db) + "'"
	}
	return " AND " + col + " IN (" + strings.Join(q, ", ") + ")"
}

// dbCaptured reports whether the filter can capture a table of db.
func (f Filter) dbCaptured(db string) bool {
	if systemSchemas[strings.ToLower(db)] && !f.namesSchema(db) {
		return false
	}
	if len(f.Include) == 0 {
		return true
	}
	for _, p := range f.Include {
		d, _, _ := strings.Cut(p, ".")
		if glob(strings.ToLower(d), strings.ToLower(db)) {
			return true
		}
	}
	return false
}

// ddlTouchesCaptured reports whether a QUERY event's statement may change
// the schema of a captured table (conservatively: an unparseable table
// statement without recognisable names does).
func (t *schemaTracker) ddlTouchesCaptured(defaultDB, query string) bool {
	stmts, _, err := t.parser.Parse(mariadbToTiDB(query), "", "")
	if err != nil {
		if !tableDDLRe.MatchString(query) {
			return false
		}
		names := tableNames(ddlNameRe, query, defaultDB)
		return len(names) == 0 || t.filter.MatchAny(names)
	}
	for _, st := range stmts {
		switch s := st.(type) {
		case *ast.DropDatabaseStmt:
			if t.filter.dbCaptured(s.Name.O) {
				return true
			}
		case ast.DDLNode:
			c := &tableCollector{defaultDB: defaultDB}
			st.Accept(c)
			if t.filter.MatchAny(c.out) {
				return true
			}
		}
	}
	return false
}

// capturedDDLBetween reports whether the binlog holds, from p1 up to p2, a
// statement that may change a captured table's schema (read with SHOW
// BINLOG EVENTS, which needs the same privilege as SHOW MASTER STATUS).
// The schema snapshot read between p1 and p2 is valid at p1 when it does
// not.
func (t *schemaTracker) capturedDDLBetween(c *client.Conn, p1, p2 change.Position) (bool, string, error) {
	files := []string{p1.File}
	if p2.File != p1.File {
		r, err := c.Execute("SHOW BINARY LOGS")
		if err != nil {
			return false, "", fmt.Errorf("list binlog files: %w", err)
		}
		files = files[:0]
		for i := 0; i < r.RowNumber(); i++ {
			f, _ := r.GetString(i, 0)
			if f >= p1.File && f <= p2.File {
				files = append(files, f)
			}
		}
	}
	const page = 1000
	for _, f := range files {
		from := uint32(4)
		if f == p1.File {
			from = p1.Pos
		}
		for off := 0; ; off += page {
			r, err := c.Execute(fmt.Sprintf("SHOW BINLOG EVENTS IN '%s' FROM %d LIMIT %d, %d", escapeSQL(f), from, off, page))
			if err != nil {
				return false, "", fmt.Errorf("read binlog events %s:%d: %w", f, from, err)
			}
			for i := 0; i < r.RowNumber(); i++ {
				pos, _ := r.GetUint(i, 1)
				if f == p2.File && uint32(pos) >= p2.Pos {
					return false, "", nil
				}
				typ, _ := r.GetString(i, 2)
				if !strings.EqualFold(typ, "Query") {
					continue
				}
				info, _ := r.GetString(i, 5)
				db, q := splitUse(info)
				if t.ddlTouchesCaptured(db, q) {
					return true, q, nil
				}
			}
			if r.RowNumber() < page {
				break
			}
		}
	}
	return false, "", nil
}

// splitUse splits SHOW BINLOG EVENTS' Info of a Query event, "use `db`;
// statement", into the default database and the statement.
func splitUse(info string) (db, q string) {
	s := strings.TrimSpace(info)
	if !strings.HasPrefix(strings.ToLower(s), "use ") {
		return "", s
	}
	rest := strings.TrimSpace(s[4:])
	if strings.HasPrefix(rest, "`") {
		var b strings.Builder
		i := 1
		for ; i < len(rest); i++ {
			if rest[i] == '`' {
				if i+1 < len(rest) && rest[i+1] == '`' {
					b.WriteByte('`')
					i++
					continue
				}
				break
			}
			b.WriteByte(rest[i])
		}
		rest = rest[min(i+1, len(rest)):]
		db = b.String()
	} else if j := strings.IndexByte(rest, ';'); j >= 0 {
		db, rest = rest[:j], rest[j:]
	}
	rest = strings.TrimSpace(rest)
	rest = strings.TrimPrefix(rest, ";")
	return db, strings.TrimSpace(rest)
}

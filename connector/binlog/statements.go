package binlog

import (
	"fmt"
	"regexp"

	"github.com/pingcap/tidb/pkg/parser"
	"github.com/pingcap/tidb/pkg/parser/ast"
)

// tableCollector gathers the table names of an AST subtree.
type tableCollector struct {
	defaultDB string
	out       [][2]string
}

func (c *tableCollector) Enter(n ast.Node) (ast.Node, bool) {
	if tn, ok := n.(*ast.TableName); ok {
		c.out = append(c.out, [2]string{dbOf(tn, c.defaultDB), tn.Name.O})
	}
	return n, false
}

func (c *tableCollector) Leave(n ast.Node) (ast.Node, bool) { return n, true }

// dmlTargets returns the tables a statement-logged DML statement writes
// (INSERT, REPLACE, UPDATE, DELETE, LOAD DATA); ok is false for other
// statements. UPDATE and DELETE with joins count every joined table.
func dmlTargets(p *parser.Parser, defaultDB, q string) (tables [][2]string, ok bool, err error) {
	stmts, _, err := p.Parse(q, "", "")
	if err != nil {
		return nil, true, err
	}
	c := &tableCollector{defaultDB: defaultDB}
	for _, st := range stmts {
		switch s := st.(type) {
		case *ast.InsertStmt:
			if s.Table != nil {
				s.Table.Accept(c)
			}
		case *ast.UpdateStmt:
			if s.TableRefs != nil {
				s.TableRefs.Accept(c)
			}
		case *ast.DeleteStmt:
			if s.IsMultiTable && s.Tables != nil {
				s.Tables.Accept(c)
			} else if s.TableRefs != nil {
				s.TableRefs.Accept(c)
			}
		case *ast.LoadDataStmt:
			if s.Table != nil {
				c.out = append(c.out, [2]string{dbOf(s.Table, defaultDB), s.Table.Name.O})
			}
		default:
			continue
		}
		ok = true
	}
	return c.out, ok, nil
}

// checkStatementDML refuses statement-logged DML on captured tables: its
// rows are not in the binlog, so they would be lost silently.
func (d *decoder) checkStatementDML(defaultDB, q string) error {
	switch firstWord(q) {
	case "INSERT", "REPLACE", "UPDATE", "DELETE", "LOAD":
	default:
		return nil
	}
	if d.sqlParser == nil {
		d.sqlParser = parser.New()
	}
	tables, _, err := dmlTargets(d.sqlParser, defaultDB, q)
	if err != nil {
		tables = tableNames(dmlNameRe, q, defaultDB)
		if len(tables) == 0 || d.filter.MatchAny(tables) {
			return fmt.Errorf("statement-logged DML that may write a captured table could not be parsed (%v): %s\nits rows are not in the binlog; set binlog_format=ROW globally, keep sessions from changing it, and run `feedcdc resync`", err, truncateString(q, 300))
		}
		return nil
	}
	for _, t := range tables {
		if d.filter.Match(t[0], t[1]) {
			return fmt.Errorf("statement-logged DML on captured table %s.%s (binlog_format is not ROW for this session): its rows are not in the binlog; set binlog_format=ROW globally, keep sessions from changing it (SET SESSION binlog_format), and run `feedcdc resync` for the table\n  statement: %s", t[0], t[1], truncateString(q, 300))
		}
	}
	return nil
}

// renamePair is one table rename: {db, table} from and to.
type renamePair struct{ from, to [2]string }

// renames returns the table renames of a RENAME TABLE or ALTER TABLE
// statement, in statement order (nil for other or unparseable statements;
// the schema tracker reports those that matter).
func renames(p *parser.Parser, defaultDB, q string) []renamePair {
	stmts, _, err := p.Parse(mariadbToTiDB(q), "", "")
	if err != nil {
		return nil
	}
	var out []renamePair
	for _, st := range stmts {
		switch s := st.(type) {
		case *ast.RenameTableStmt:
			for _, tt := range s.TableToTables {
				out = append(out, renamePair{
					from: [2]string{dbOf(tt.OldTable, defaultDB), tt.OldTable.Name.O},
					to:   [2]string{dbOf(tt.NewTable, defaultDB), tt.NewTable.Name.O}})
			}
		case *ast.AlterTableStmt:
			db := dbOf(s.Table, defaultDB)
			for _, spec := range s.Specs {
				if spec.Tp == ast.AlterTableRenameTable {
					out = append(out, renamePair{from: [2]string{db, s.Table.Name.O},
						to: [2]string{dbOf(spec.NewTable, db), spec.NewTable.Name.O}})
				}
			}
		}
	}
	return out
}

var dmlNameRe = regexp.MustCompile("(?i)\\b(?:INTO|UPDATE|FROM|TABLE)\\s+((?:`[^`]+`|\\w+)(?:\\.(?:`[^`]+`|\\w+))?)")

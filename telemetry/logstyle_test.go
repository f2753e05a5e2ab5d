package telemetry

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unicode"
)

// TestLogMessagesHaveOneStyle reads every log call of the module's code
// (slog's Debug/Info/Warn/Error and their Context forms, with a literal
// message) and holds them to one style: a lower-case message ("verify
// complete", not "Complete" or "Export error. API request was not
// successful."), details as key=value attributes rather than sentences,
// and "operation" values from the connector's vocabulary (Adobe's: "full
// sync", "retry failed items", ...), not identifiers such as
// "schedule_resync". A message may start with an upper-case word that is
// all capitals (an SQL keyword or acronym: "TRUNCATE in the binlog").
func TestLogMessagesHaveOneStyle(t *testing.T) {
	root := ".."
	methods := map[string]int{"Debug": 0, "Info": 0, "Warn": 0, "Error": 0,
		"DebugContext": 1, "InfoContext": 1, "WarnContext": 1, "ErrorContext": 1}
	calls := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); path != root && (strings.HasPrefix(n, ".") || n == "testdata" || n == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			at, ok := methods[sel.Sel.Name]
			if !ok || len(call.Args) <= at {
				return true
			}
			lit, ok := call.Args[at].(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			msg, err := strconv.Unquote(lit.Value)
			if err != nil {
				return true
			}
			calls++
			where := fset.Position(lit.Pos()).String()
			if bad := messageStyle(msg); bad != "" {
				t.Errorf("%s: log message %q %s", where, msg, bad)
			}
			for i := at + 1; i+1 < len(call.Args); i += 2 {
				k, ok := call.Args[i].(*ast.BasicLit)
				if !ok || k.Value != `"operation"` {
					continue
				}
				if v, ok := call.Args[i+1].(*ast.BasicLit); ok && v.Kind == token.STRING {
					op, _ := strconv.Unquote(v.Value)
					if strings.ContainsAny(op, "_") || op != strings.ToLower(op) {
						t.Errorf("%s: operation %q is not in the connector's vocabulary (lower-case words: \"full sync\", \"retry failed items\")", where, op)
					}
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if calls < 50 {
		t.Fatalf("found only %d log calls with a literal message; the walk missed the code", calls)
	}
}

// messageStyle says what is wrong with a log message, or "".
func messageStyle(msg string) string {
	if msg == "" {
		return ""
	}
	word, _, _ := strings.Cut(msg, " ")
	first := []rune(word)[0]
	if unicode.IsUpper(first) && strings.ToUpper(word) != word {
		return "starts with a capital letter; write log messages in lower case"
	}
	if strings.HasSuffix(msg, ".") {
		return "ends with a full stop; a log message is a short phrase with details as attributes"
	}
	return ""
}

package binlog

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/feedcdc/feedcdc/change"
)

// sourceRecorder keeps the Source of every change.
type sourceRecorder struct{ src []change.Source }

func (r *sourceRecorder) Change(_ context.Context, c *change.Change) error {
	r.src = append(r.src, c.Source)
	return nil
}
func (r *sourceRecorder) TxEnd(context.Context, change.TxEnd) error { return nil }

// TestSourceThreadAndFlavorFromMySQLBinlog: a MySQL transaction's BEGIN
// query event carries the writer's session id; every change of the
// transaction gets it as Source.Thread, and the flavor of the file.
func TestSourceThreadAndFlavorFromMySQLBinlog(t *testing.T) {
	h := &sourceRecorder{}
	d := newDecoder("", "", Filter{Include: []string{"*.*"}}, nil, h, nil)
	if err := readFile(context.Background(), filepath.Join(fixtureDir(t), "binlog_transaction_with_GTID_TAG.000001"), d); err != nil {
		t.Fatal(err)
	}
	if len(h.src) == 0 {
		t.Fatal("no changes")
	}
	for _, s := range h.src {
		if s.Thread == 0 || s.Flavor != "mysql" {
			t.Fatalf("source %+v: want the BEGIN's thread id and flavor mysql", s)
		}
	}
}

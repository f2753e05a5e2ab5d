package binlog

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"

	"github.com/feedcdc/feedcdc/change"
)

// TestMySQLGTIDSetAtAMidFilePosition: for every transaction boundary of the
// recorded MySQL 8 binlog files, the GTID set resolved for a start at that
// file:pos (PREVIOUS_GTIDS plus the GTIDs before it, as Source.Run does for
// a mid-file start_position) equals the checkpoint a reader of the whole
// file stores there, and resuming from it by GTID continues with exactly the
// next transaction: every earlier GTID is in the set, the next one is not,
// and the next checkpoint is the set plus that GTID. (Before, a mid-file
// start stored only the GTIDs seen after the position.)
func TestMySQLGTIDSetAtAMidFilePosition(t *testing.T) {
	ctx := context.Background()
	checked := 0
	for _, name := range []string{"json.binlog.000001", "mysql-enum-string-set.000001", "mysql_type_bit.000001",
		"minimal_row_metadata.000001", "time_issue.000001", "transaction_compression.000001", "binlog_transaction_with_GTID_TAG.000001"} {
		path := filepath.Join(fixtureDir(t), name)
		var out bytes.Buffer
		if err := InspectFiles(ctx, []string{path}, &out, InspectOptions{TxEnds: true, PartialImages: true}); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		type txEnd struct {
			GTID    string `json:"gtid"`
			Pos     uint32 `json:"pos"`
			GTIDSet string `json:"gtid_set"`
			Type    string `json:"type"`
		}
		var ends []txEnd
		sc := bufio.NewScanner(&out)
		sc.Buffer(nil, 1<<24)
		for sc.Scan() {
			var e txEnd
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				t.Fatal(err)
			}
			if e.Type == "tx_end" {
				ends = append(ends, e)
			}
		}
		var events []*replication.BinlogEvent
		p := replication.NewBinlogParser()
		p.SetFlavor(mysql.MySQLFlavor)
		p.SetRowsEventDecodeFunc(func(*replication.RowsEvent, []byte) error { return nil })
		if err := p.ParseFile(path, 0, func(e *replication.BinlogEvent) error {
			events = append(events, e)
			return nil
		}); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for i, end := range ends {
			if end.GTID == "" {
				continue // gtid_mode OFF: nothing to resolve
			}
			g := newGTIDsAt(end.Pos)
			for _, e := range events {
				if done, err := g.event(e); err != nil {
					t.Fatal(err)
				} else if done {
					break
				}
			}
			got := g.result()
			if !sameGTIDSet(t, got, end.GTIDSet) {
				t.Errorf("%s:%d: resolved GTID set %q, a whole-file reader stores %q", name, end.Pos, got, end.GTIDSet)
				continue
			}
			set, err := mysql.ParseMysqlGTIDSet(got)
			if err != nil {
				t.Fatal(err)
			}
			for _, prev := range ends[:i+1] {
				if !containsGTID(t, set, prev.GTID) {
					t.Errorf("%s:%d: the resolved set lacks %s of an earlier transaction: a GTID resume would replay it", name, end.Pos, prev.GTID)
				}
			}
			if i+1 < len(ends) && ends[i+1].GTID != "" {
				next := ends[i+1]
				if containsGTID(t, set, next.GTID) {
					t.Errorf("%s:%d: the resolved set holds %s of the next transaction: a GTID resume would skip it", name, end.Pos, next.GTID)
				}
				if err := set.Update(next.GTID); err != nil {
					t.Fatal(err)
				}
				if !sameGTIDSet(t, set.String(), next.GTIDSet) {
					t.Errorf("%s:%d: the checkpoint after resuming would be %q, a whole-file reader stores %q", name, next.Pos, set.String(), next.GTIDSet)
				}
				// Without a resolved set (gtid_mode was OFF there) the
				// checkpoints stay file/pos only instead of a partial set.
				if partial := streamFrom(t, path, end.Pos, ""); partial != "" {
					t.Errorf("%s: started at %d without a GTID set, the first checkpoint has the partial set %q", name, end.Pos, partial)
				}
				// The stream itself, started at the position with the
				// resolved set as Source.stream does: its first checkpoint.
				if first := streamFrom(t, path, end.Pos, got); !sameGTIDSet(t, first, next.GTIDSet) {
					t.Errorf("%s: started at %d, the first checkpoint is %q; a whole-file reader stores %q", name, end.Pos, first, next.GTIDSet)
				}
			}
			checked++
		}
	}
	if checked < 8 {
		t.Fatalf("only %d GTID positions checked; the fixtures should offer more", checked)
	}
}

func sameGTIDSet(t *testing.T, a, b string) bool {
	t.Helper()
	sa, err := mysql.ParseMysqlGTIDSet(a)
	if err != nil {
		t.Fatalf("GTID set %q: %v", a, err)
	}
	sb, err := mysql.ParseMysqlGTIDSet(b)
	if err != nil {
		t.Fatalf("GTID set %q: %v", b, err)
	}
	return sa.Equal(sb)
}

func containsGTID(t *testing.T, set mysql.GTIDSet, gtid string) bool {
	t.Helper()
	one, err := mysql.ParseMysqlGTIDSet(gtid)
	if err != nil {
		t.Fatalf("GTID %q: %v", gtid, err)
	}
	return set.Contain(one)
}

type firstTxEnd struct{ set *string }

func (f firstTxEnd) Change(context.Context, *change.Change) error { return nil }
func (f firstTxEnd) TxEnd(_ context.Context, e change.TxEnd) error {
	if *f.set == "" {
		*f.set = e.Position.GTIDSet
	}
	return nil
}

// streamFrom decodes path from pos on with the start GTID set gtids, as a
// stream started at file:pos does (the server sends the format description
// event, then the events from pos), and returns its first checkpoint's set.
func streamFrom(t *testing.T, path string, pos uint32, gtids string) string {
	t.Helper()
	var first string
	d := newDecoder(mysql.MySQLFlavor, ZeroDatesNull, Filter{}, nil, firstTxEnd{&first}, nil)
	d.allowPartial = true
	d.file, d.pos = filepath.Base(path), pos
	if gtids != "" {
		s, err := mysql.ParseMysqlGTIDSet(gtids)
		if err != nil {
			t.Fatal(err)
		}
		d.gset = s
	} else {
		d.gsetUnknown = true
	}
	p := replication.NewBinlogParser()
	p.SetFlavor(mysql.MySQLFlavor)
	configureParser(p, d)
	if err := p.ParseFile(path, 0, func(e *replication.BinlogEvent) error {
		if _, fde := e.Event.(*replication.FormatDescriptionEvent); !fde && e.Header.LogPos <= pos {
			return nil
		}
		return d.handle(context.Background(), e)
	}); err != nil {
		t.Fatal(err)
	}
	return first
}

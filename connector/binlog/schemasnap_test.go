package binlog

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
)

// TestSchemaSnapshotAcceptsAMovingBinlog: the first-start schema snapshot
// on a busy server (row changes on a captured table and DDL on another
// database all the time) is taken without the "may be applied twice"
// warning and holds only the captured database; DDL on a captured table
// between the two positions is what makes it retry. (Before, any binlog
// movement during the scan made it retry ten times and then warn.)
func TestSchemaSnapshotAcceptsAMovingBinlog(t *testing.T) {
	ctx := context.Background()
	db := srv.NewDatabase(t, "snap")
	other := srv.NewDatabase(t, "snapother")
	srv.Exec(t, db, "CREATE TABLE t (id INT PRIMARY KEY AUTO_INCREMENT, v INT)")
	srv.Exec(t, other, "CREATE TABLE o (id INT PRIMARY KEY)")
	admin := srv.Admin(t, db)
	// A server with many tables outside the captured database: reading
	// every schema's columns takes long enough for the binlog to move.
	var cols []string
	for i := range 40 {
		cols = append(cols, fmt.Sprintf("c%d VARCHAR(20)", i))
	}
	for i := range 150 {
		srv.Exec(t, other, fmt.Sprintf("CREATE TABLE big%d (id INT PRIMARY KEY, %s)", i, strings.Join(cols, ", ")))
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var writes, ddls int
	wg.Add(2)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			admin.Exec("INSERT INTO t (v) VALUES (0)")
		}
	}()
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := admin.Exec("INSERT INTO t (v) VALUES (?)", i); err == nil {
				writes++
			}
			if i%5 == 0 {
				if _, err := admin.Exec(fmt.Sprintf("CREATE TABLE `%s`.tmp%d (id INT PRIMARY KEY)", other, i)); err == nil {
					ddls++
				}
				admin.Exec(fmt.Sprintf("DROP TABLE `%s`.tmp%d", other, i))
			}
		}
	}()
	cfg := sourceConfig(srv, db+".*")
	c, err := connect(ctx, cfg.withDefaults(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var logs bytes.Buffer
	moved := 0
	for range 5 {
		tr, err := newSchemaTracker(ctx, &MemoryHistory{}, cfg.Filter, srv.Flavor, slog.New(slog.NewTextHandler(&logs, nil)))
		if err != nil {
			t.Fatal(err)
		}
		at, err := tr.bootstrap(ctx, c, changePositionCurrent(t, cfg))
		if err != nil {
			t.Fatal(err)
		}
		after := changePositionCurrent(t, cfg)
		if after.File != at.File || after.Pos != at.Pos {
			moved++
		}
		if _, ok := tr.current[tableKeyName(db, "t")]; !ok || len(tr.current) != 1 {
			t.Fatalf("snapshot holds %d tables (want only %s.t)", len(tr.current), db)
		}
	}
	close(stop)
	wg.Wait()
	if moved == 0 || writes == 0 || ddls == 0 {
		t.Fatalf("the server was not busy (%d snapshots saw the binlog move, %d writes, %d DDL)", moved, writes, ddls)
	}
	if strings.Contains(logs.String(), "applied twice") {
		t.Fatalf("a snapshot without DDL on captured tables warned:\n%s", logs.String())
	}

	// DDL on a captured table between two positions is found; other DDL is not.
	tr, err := newSchemaTracker(ctx, &MemoryHistory{}, cfg.Filter, srv.Flavor, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c2 := range []struct {
		stmt string
		want bool
	}{
		{"CREATE TABLE `" + other + "`.x (id INT PRIMARY KEY)", false},
		{"ALTER TABLE `" + other + "`.o ADD COLUMN w INT", false},
		{"INSERT INTO `" + db + "`.t (v) VALUES (1)", false},
		{"ALTER TABLE `" + db + "`.t ADD COLUMN w INT", true},
		{"RENAME TABLE `" + other + "`.x TO `" + db + "`.x", true},
		{"DROP DATABASE `" + db + "`", true},
	} {
		p1 := changePositionCurrent(t, cfg)
		if _, err := admin.Exec(c2.stmt); err != nil && err != sql.ErrNoRows {
			t.Fatalf("%s: %v", c2.stmt, err)
		}
		p2 := changePositionCurrent(t, cfg)
		got, _, err := tr.capturedDDLBetween(c, p1, p2)
		if err != nil {
			t.Fatal(err)
		}
		if got != c2.want {
			t.Errorf("%s between %s and %s: captured DDL %v, want %v", c2.stmt, p1, p2, got, c2.want)
		}
	}
}

func TestSplitUse(t *testing.T) {
	for _, c := range [][3]string{
		{"use `shop`; ALTER TABLE t ADD c INT", "shop", "ALTER TABLE t ADD c INT"},
		{"use `a``b`; DROP TABLE x", "a`b", "DROP TABLE x"},
		{"BEGIN", "", "BEGIN"},
		{"use shop; CREATE TABLE y (id INT)", "shop", "CREATE TABLE y (id INT)"},
	} {
		if db, q := splitUse(c[0]); db != c[1] || q != c[2] {
			t.Errorf("splitUse(%q) = %q, %q; want %q, %q", c[0], db, q, c[1], c[2])
		}
	}
}

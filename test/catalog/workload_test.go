package catalog

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
)

// TestWorkloadCoversEveryKindAndStaysConsistent runs enough changes on a
// multi-website catalog that every kind happens, then checks the catalog is
// still consistent the way Magento keeps it.
func TestWorkloadCoversEveryKindAndStaysConsistent(t *testing.T) {
	db, _ := loadProfile(t, Tiny(), 3)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	w := NewWorkload(db, 11, WorkloadOptions{})
	st, err := w.Run(ctx, 400, 0)
	if err != nil {
		t.Fatal(err)
	}
	n, err := w.LargeTransaction(ctx, 150)
	if err != nil || n != 150 {
		t.Fatalf("LargeTransaction: %d, %v", n, err)
	}
	t.Logf("workload:\n%s", w.Stats().Report())
	if missing := st.Missing(); len(missing) > 0 {
		t.Errorf("kinds never applied in 400 changes: %v", missing)
	}
	if got := w.Stats().Kinds[KindLarge]; got != 1 {
		t.Errorf("large transactions counted: %d", got)
	}
	if st.Transactions != 400 || st.Statements < 400 {
		t.Errorf("stats: %+v", st)
	}
	checkConsistency(t, db)
	// New products got their EAV rows, website, stock (checked above) and
	// the configurable ones their super attributes.
	if n := count(t, db, "SELECT COUNT(*) FROM catalog_product_entity WHERE sku LIKE 'workload_configurable_%' AND type_id = 'configurable'"); n == 0 {
		t.Error("no workload configurable products")
	}
	if n := count(t, db, `SELECT COUNT(*) FROM catalog_product_entity e WHERE e.type_id = 'configurable' AND e.sku LIKE 'workload_%'
		AND (SELECT COUNT(*) FROM catalog_product_super_attribute s WHERE s.product_id = e.entity_id) <> 2`); n != 0 {
		t.Errorf("%d workload configurables without two super attributes", n)
	}
}

func TestWorkloadIsSeeded(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	a, _ := loadProfile(t, Tiny(), 5)
	b, _ := loadProfile(t, Tiny(), 5)
	sa, err := NewWorkload(a, 9, WorkloadOptions{}).Run(ctx, 60, 0)
	if err != nil {
		t.Fatal(err)
	}
	sb, err := NewWorkload(b, 9, WorkloadOptions{}).Run(ctx, 60, 0)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(sa.Kinds) != fmt.Sprint(sb.Kinds) || sa.Statements != sb.Statements {
		t.Fatalf("same seed, different workloads:\n%s\n%s", sa.Report(), sb.Report())
	}
	// Timestamps (updated_at, created_at of new rows) differ; the values do not.
	for _, table := range []string{"catalog_product_entity_decimal", "catalog_product_entity_varchar", "catalog_product_entity_int",
		"catalog_product_super_link", "catalog_product_website", "cataloginventory_stock_item", "eav_attribute_option_value"} {
		if checksum(t, a, table) != checksum(t, b, table) {
			t.Errorf("%s differs after the same workload", table)
		}
	}
}

func TestWorkloadRateAndErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	db, _ := loadProfile(t, Tiny(), 1)
	// 10 changes at 50/s are paced: the last one is due at 180 ms, so the
	// run cannot end before that (a lower bound, not a wall-clock race).
	w := NewWorkload(db, 1, WorkloadOptions{Weights: map[Kind]int{KindStock: 1}})
	st, err := w.Run(ctx, 10, 50)
	if err != nil {
		t.Fatal(err)
	}
	if st.Kinds[KindStock] != 10 || st.Duration < 180*time.Millisecond {
		t.Fatalf("paced run: %+v", st)
	}
	if _, err := NewWorkload(db, 1, WorkloadOptions{Weights: map[Kind]int{"nope": 1}}).Run(ctx, 1, 0); err == nil {
		t.Fatal("workload with no valid kind ran")
	}
	// Only multi-statement transactions weighted: their parts fall back to stock changes.
	st, err = NewWorkload(db, 1, WorkloadOptions{Weights: map[Kind]int{KindMulti: 1}}).Run(ctx, 3, 0)
	if err != nil || st.Kinds[KindMulti] != 3 || st.Kinds[KindStock] < 6 {
		t.Fatalf("multi-only workload: %+v, %v", st, err)
	}
	empty := srv.Admin(t, srv.NewDatabase(t, "empty"))
	if err := CreateSchema(ctx, empty); err != nil {
		t.Fatal(err)
	}
	if _, err := empty.ExecContext(ctx, "DELETE FROM store WHERE store_id > 0"); err != nil {
		t.Fatal(err)
	}
	if _, err := NewWorkload(empty, 1, WorkloadOptions{}).Run(ctx, 1, 0); err == nil || !strings.Contains(err.Error(), "no store views") {
		t.Fatalf("workload on an empty catalog: %v", err)
	}
}

// TestWorkloadReadBackFromBinlog is the test bed's first integration test
// (issue 2, item 9): load the small profile into the private server, apply
// 100 workload changes, and read them back as row events with column names
// through go-mysql's BinlogSyncer (flavor mariadb, connector user), with
// GTIDs increasing.
func TestWorkloadReadBackFromBinlog(t *testing.T) {
	dbName := srv.NewDatabase(t, "binlog")
	db := srv.Admin(t, dbName)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if _, err := Load(ctx, db, Small(), 1); err != nil {
		t.Fatal(err)
	}
	// The flavor decides how GTIDs look: MariaDB domain-server-seq, MySQL
	// uuid:n (with FEEDCDC_TEST_MYSQL_DSN pointing at a MySQL 8 server).
	posQuery := "SELECT @@GLOBAL.gtid_binlog_pos"
	if srv.Flavor == mysql.MySQLFlavor {
		posQuery = "SELECT @@GLOBAL.gtid_executed"
	}
	var startPos string
	if err := db.QueryRowContext(ctx, posQuery).Scan(&startPos); err != nil {
		t.Fatal(err)
	}
	w := NewWorkload(db, 2026, WorkloadOptions{})
	st, err := w.Run(ctx, 100, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("workload:\n%s", st.Report())
	start, err := mysql.ParseGTIDSet(srv.Flavor, startPos)
	if err != nil {
		t.Fatal(err)
	}
	wantTx := st.Transactions - st.EmptyTransactions

	// Column order of every captured table, to check the names the binlog carries.
	wantCols := map[string][]string{}
	rows, err := db.QueryContext(ctx, "SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() ORDER BY TABLE_NAME, ORDINAL_POSITION")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var tbl, col string
		if err := rows.Scan(&tbl, &col); err != nil {
			t.Fatal(err)
		}
		wantCols[tbl] = append(wantCols[tbl], col)
	}
	rows.Close()

	syncer := replication.NewBinlogSyncer(replication.BinlogSyncerConfig{
		ServerID: uint32(2_000_000 + os.Getpid()%1_000_000),
		Flavor:   srv.Flavor,
		Host:     srv.Host,
		Port:     uint16(srv.Port),
		User:     srv.CDCUser,
		Password: srv.CDCPassword,
		Logger:   discardLogger(),
	})
	defer syncer.Close()
	streamer, err := syncer.StartSyncGTID(start)
	if err != nil {
		t.Fatal(err)
	}
	var (
		lastSeq                 = map[string]uint64{} // per MariaDB domain-server / MySQL source uuid
		txns, ours, rowsEvents  int
		inOurs                  bool
		inserts, updates, dels  int
		tables                  = map[string]int{}
		sawUpdateWithBothImages bool
	)
	gtid := func(source string, seq uint64) {
		if seq <= lastSeq[source] {
			t.Fatalf("GTID of %s went from %d to %d", source, lastSeq[source], seq)
		}
		lastSeq[source] = seq
		inOurs = false
	}
	for ours < wantTx {
		ev, err := streamer.GetEvent(ctx)
		if err != nil {
			t.Fatalf("binlog: %v after %d transactions (%d of the workload, want %d)", err, txns, ours, wantTx)
		}
		switch e := ev.Event.(type) {
		case *replication.MariadbGTIDEvent:
			gtid(fmt.Sprintf("%d-%d", e.GTID.DomainID, e.GTID.ServerID), e.GTID.SequenceNumber)
		case *replication.GTIDEvent:
			gtid(fmt.Sprintf("%x", e.SID), uint64(e.GNO))
		case *replication.RowsEvent:
			if string(e.Table.Schema) != dbName {
				continue
			}
			rowsEvents++
			inOurs = true
			table := string(e.Table.Table)
			names := e.Table.ColumnNameString()
			if len(names) == 0 || len(names) != int(e.Table.ColumnCount) {
				t.Fatalf("%s: no column names in the table map (%v); is binlog_row_metadata FULL?", table, names)
			}
			if strings.Join(names, ",") != strings.Join(wantCols[table], ",") {
				t.Fatalf("%s: binlog columns %v, schema columns %v", table, names, wantCols[table])
			}
			for _, r := range e.Rows {
				if len(r) != len(names) {
					t.Fatalf("%s: row of %d values for %d columns", table, len(r), len(names))
				}
			}
			switch ev.Header.EventType {
			case replication.WRITE_ROWS_EVENTv0, replication.WRITE_ROWS_EVENTv1, replication.WRITE_ROWS_EVENTv2:
				inserts++
			case replication.UPDATE_ROWS_EVENTv0, replication.UPDATE_ROWS_EVENTv1, replication.UPDATE_ROWS_EVENTv2:
				updates++
				if len(e.Rows) >= 2 && len(e.Rows)%2 == 0 {
					sawUpdateWithBothImages = true
				}
			case replication.DELETE_ROWS_EVENTv0, replication.DELETE_ROWS_EVENTv1, replication.DELETE_ROWS_EVENTv2:
				dels++
			}
			tables[table] += len(e.Rows)
		case *replication.XIDEvent:
			txns++
			if inOurs {
				ours++
			}
		}
	}
	var endPos string
	if err := db.QueryRowContext(ctx, posQuery).Scan(&endPos); err != nil {
		t.Fatal(err)
	}
	if srv.Flavor == mysql.MariaDBFlavor && !srv.External() {
		// Nothing else writes to this private server: the last GTID read
		// is the server's current position.
		for source, seq := range lastSeq {
			if got := fmt.Sprintf("%s-%d", source, seq); got != endPos {
				t.Errorf("last GTID read %s, server position %s", got, endPos)
			}
		}
	}
	t.Logf("read %d transactions (%d of the workload, %d empty ones not logged), %d rows events up to %s; inserts %d, updates %d, deletes %d events; rows per table: %v",
		txns, ours, st.EmptyTransactions, rowsEvents, endPos, inserts, updates, dels, tables)
	if inserts == 0 || updates == 0 || dels == 0 {
		t.Errorf("workload binlog lacks a kind of rows event: %d inserts, %d updates, %d deletes", inserts, updates, dels)
	}
	if !sawUpdateWithBothImages {
		t.Error("no update with before and after images")
	}
	for _, table := range []string{"catalog_product_entity_decimal", "catalog_product_entity_varchar", "catalog_product_entity_int", "cataloginventory_stock_item", "catalog_product_entity"} {
		if tables[table] == 0 {
			t.Errorf("no row changes on %s", table)
		}
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// TestConcurrentWorkloads runs three workloads on one catalog at once
// (ParallelWorkload); lock conflicts are retried, every change is applied
// once, and the catalog stays consistent.
func TestConcurrentWorkloads(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	db, _ := loadProfile(t, Tiny(), 21)
	p := NewParallelWorkload(db, 100, 3, WorkloadOptions{})
	st, err := p.Run(ctx, 241, 0)
	if err != nil {
		t.Fatal(err)
	}
	if st.Transactions != 241 {
		t.Errorf("%d transactions, want 241", st.Transactions)
	}
	for i, w := range p.ws {
		if n := w.Stats().Transactions; n != 80 && n != 81 {
			t.Errorf("connection %d applied %d changes, want 80 or 81 (an even share)", i+1, n)
		}
	}
	if n, err := p.LargeTransaction(ctx, 30); err != nil || n != 30 {
		t.Fatalf("LargeTransaction: %d, %v", n, err)
	}
	if all := p.Stats(); all.Transactions != 242 || all.Kinds[KindLarge] != 1 {
		t.Errorf("Stats: %d transactions, %d large, want 242 and 1", all.Transactions, all.Kinds[KindLarge])
	}
	checkConsistency(t, db)
}

// TestWorkloadLeavesReservedProductsAlone runs every kind of change with
// half of the simple products reserved: their own EAV values, websites and
// stock rows come out unchanged and none is deleted, while the other half
// is changed as usual.
func TestWorkloadLeavesReservedProductsAlone(t *testing.T) {
	db, _ := loadProfile(t, Tiny(), 4)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	ids, err := queryIDs(ctx, db, "SELECT entity_id FROM catalog_product_entity WHERE type_id = 'simple' AND MOD(entity_id, 2) = 0 ORDER BY entity_id LIMIT ?", 1000)
	if err != nil {
		t.Fatal(err)
	}
	in := strings.Trim(strings.Join(strings.Fields(fmt.Sprint(ids)), ","), "[]")
	rows := func(where string) string {
		var parts []string
		for _, q := range []string{
			"SELECT COUNT(*), COALESCE(SUM(CRC32(CONCAT_WS('|', entity_id, attribute_id, store_id, value))), 0) FROM catalog_product_entity_decimal WHERE entity_id %s",
			"SELECT COUNT(*), COALESCE(SUM(CRC32(CONCAT_WS('|', entity_id, attribute_id, store_id, value))), 0) FROM catalog_product_entity_varchar WHERE entity_id %s",
			"SELECT COUNT(*), COALESCE(SUM(CRC32(CONCAT_WS('|', entity_id, attribute_id, store_id, value))), 0) FROM catalog_product_entity_int WHERE entity_id %s",
			"SELECT COUNT(*), COALESCE(SUM(CRC32(CONCAT_WS('|', product_id, website_id))), 0) FROM catalog_product_website WHERE product_id %s",
			"SELECT COUNT(*), COALESCE(SUM(CRC32(CONCAT_WS('|', product_id, qty, is_in_stock))), 0) FROM cataloginventory_stock_item WHERE product_id %s",
			"SELECT COUNT(*), 0 FROM catalog_product_entity WHERE entity_id %s",
		} {
			var n, sum int64
			if err := db.QueryRowContext(ctx, fmt.Sprintf(q, where)).Scan(&n, &sum); err != nil {
				t.Fatal(err)
			}
			parts = append(parts, fmt.Sprintf("%d/%d", n, sum))
		}
		return strings.Join(parts, " ")
	}
	reservedBefore, othersBefore := rows("IN ("+in+")"), rows("NOT IN ("+in+")")
	w := NewWorkload(db, 21, WorkloadOptions{Reserved: ids})
	st, err := w.Run(ctx, 300, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := rows("IN (" + in + ")"); got != reservedBefore {
		t.Errorf("the workload changed reserved products:\nbefore %s\nafter  %s", reservedBefore, got)
	}
	if got := rows("NOT IN (" + in + ")"); got == othersBefore {
		t.Errorf("the workload changed no other product either (%d transactions): the check proves nothing", st.Transactions)
	}
	t.Logf("%d reserved products untouched by %d transactions", len(ids), st.Transactions)
}

package connector

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	mysqldriver "github.com/go-sql-driver/mysql"

	"github.com/feedcdc/feedcdc/test/catalog"
	"github.com/feedcdc/feedcdc/test/kafkatest"
)

// TestOnlineSchemaChangesUnderWorkload runs, under a catalog workload and in
// both binlog_row_metadata modes, the three ways a table is replaced in
// production, each on another captured table and each changing its
// columns:
//
//   - gh-ost on catalog_product_entity_decimal (adds a column): ghost table
//     _t_gho (CREATE … LIKE + ALTER), changelog _t_ghc, chunked row copy,
//     the changes of t applied to the ghost, and the atomic cut-over (sentry
//     table _t_del, LOCK TABLES, RENAME TABLE t TO _t_del, _t_gho TO t
//     waiting for the lock, DROP of the sentry, UNLOCK), then DROP _t_del;
//   - pt-online-schema-change on cataloginventory_stock_item (drops a
//     column): _t_new from SHOW CREATE TABLE, ALTER, AFTER INSERT/UPDATE/
//     DELETE triggers copying rows, chunked copy, RENAME TABLE t TO _t_old,
//     _t_new TO t, DROP of the triggers and _t_old;
//   - a staging swap on catalog_product_entity_varchar (reorders a column):
//     CREATE TABLE … LIKE, ALTER, bulk copy, RENAME TABLE t TO t_prev, ALTER
//     TABLE stage RENAME TO t.
//
// The shadow tables are not captured (source.exclude_tables), and the
// connector is restarted in the middle of the gh-ost migration (ghost table
// created, altered and filled; cut-over not yet run). Afterwards
// the connector still runs, every feed item equals a fresh build, no shadow
// table has a raw record, and each table's raw stream has one replace
// record: before it every image has the old columns, after it the new ones
// (in the new order), and every key whose last record comes after it has
// the database's current row.
//
// FEEDCDC_OSC_PROFILE (tiny, small, …) and FEEDCDC_OSC_RATE (workload
// changes per second, default 40) make a longer run.
func TestOnlineSchemaChangesUnderWorkload(t *testing.T) {
	prof := catalog.Tiny()
	if name := os.Getenv("FEEDCDC_OSC_PROFILE"); name != "" {
		p, err := catalog.ProfileByName(name)
		if err != nil {
			t.Fatal(err)
		}
		prof = p
	}
	rate := 40.0
	if v := os.Getenv("FEEDCDC_OSC_RATE"); v != "" {
		rate, _ = strconv.ParseFloat(v, 64)
	}
	for _, mode := range metadataModes {
		t.Run(mode, func(t *testing.T) {
			ctx := context.Background()
			s := metadataServer(t, mode)
			db := s.NewDatabase(t, "osc")
			admin := s.Admin(t, db)
			if _, err := catalog.Load(ctx, admin, prof, 47); err != nil {
				t.Fatal(err)
			}
			kafka := kafkatest.Start(t)
			cfg := swapConfig(t, s, db, kafka.Addr(), db+"._*", db+".*_stage", db+".*_prev")
			c := openConnector(t, cfg, OpenOptions{})
			runErr, stop := startRun(t, c, RunOptions{NoSchedule: true})
			waitFullSyncs(t, c)
			// restart stops the connector and starts it again from its
			// checkpoint (gh-ost's migration does it before its cut-over).
			restart := func() error {
				stop()
				c.Close()
				c = openConnector(t, cfg, OpenOptions{})
				runErr, stop = startRun(t, c, RunOptions{NoSchedule: true})
				// The start-up check of the feed tables reads
				// information_schema, which can see the middle of a
				// multi-table RENAME: start before the cut-over.
				for deadline := time.Now().Add(time.Minute); !c.Connected(); time.Sleep(20 * time.Millisecond) {
					select {
					case err := <-runErr:
						return fmt.Errorf("restarted connector stopped: %w", err)
					default:
					}
					if time.Now().After(deadline) {
						return errors.New("restarted connector not streaming after a minute")
					}
				}
				return nil
			}

			type migration struct {
				table, pk string
				run       func(ctx context.Context, admin *sql.DB, table, pk string) error
			}
			migrations := []migration{
				{"catalog_product_entity_decimal", "value_id", func(ctx context.Context, a *sql.DB, tb, pk string) error {
					return ghostMigration(ctx, a, tb, pk, "ADD COLUMN note VARCHAR(32) NULL", restart)
				}},
				{"cataloginventory_stock_item", "item_id", func(ctx context.Context, a *sql.DB, tb, pk string) error {
					return ptOSCMigration(ctx, a, tb, pk, "DROP COLUMN is_decimal_divided")
				}},
				{"catalog_product_entity_varchar", "value_id", func(ctx context.Context, a *sql.DB, tb, pk string) error {
					return stagingSwap(ctx, a, tb, "MODIFY value VARCHAR(255) DEFAULT NULL AFTER value_id")
				}},
			}
			oldCols := map[string][]string{}
			for _, m := range migrations {
				oldCols[m.table] = tableColumns(t, admin, db, m.table)
			}

			wlCtx, stopWorkload := context.WithCancel(ctx)
			wl := runWorkload(wlCtx, admin, 47, rate)
			for _, m := range migrations {
				time.Sleep(time.Second) // workload on the old table
				t0 := time.Now()
				if err := m.run(ctx, admin, m.table, m.pk); err != nil {
					stopWorkload()
					t.Fatalf("%s: %v", m.table, err)
				}
				t.Logf("%s migrated in %s", m.table, time.Since(t0).Round(time.Millisecond))
			}
			time.Sleep(time.Second) // workload on the new tables
			stopWorkload()
			st := wl.wait()
			if st.err != nil {
				t.Fatalf("workload: %v", st.err)
			}
			t.Logf("workload: %d changes, %d retried while a table was being swapped", st.changes, st.skipped)
			// Changes of every new table after its cut-over.
			s.Exec(t, db,
				"UPDATE catalog_product_entity_decimal SET note = 'after', value = value + 1 WHERE value_id % 5 = 0",
				"UPDATE cataloginventory_stock_item SET qty = qty + 1 WHERE item_id % 4 = 0",
				"UPDATE catalog_product_entity_varchar SET value = CONCAT(value, '.') WHERE value_id % 6 = 0")

			waitCaughtUp(t, c, admin, runErr)
			if err := c.Pipeline.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			if bad, detail := feedsInKafka(t, kafka, db, c.Registry.Feeds()); bad > 0 {
				t.Errorf("after the migrations the feeds differ from a fresh build: %s", detail)
			}
			for _, m := range migrations {
				checkSwappedRawStream(t, kafka, admin, db, m.table, m.pk, oldCols[m.table], tableColumns(t, admin, db, m.table))
			}
			var shadows []string
			rows, err := admin.Query("SELECT table_name FROM information_schema.tables WHERE table_schema = ? AND (table_name LIKE '\\_%' OR table_name LIKE '%_prev' OR table_name LIKE '%_stage')", db)
			if err != nil {
				t.Fatal(err)
			}
			for rows.Next() {
				var n string
				_ = rows.Scan(&n)
				shadows = append(shadows, n)
			}
			rows.Close()
			for _, n := range append(shadows, "_catalog_product_entity_decimal_gho", "_catalog_product_entity_decimal_ghc", "_cataloginventory_stock_item_new") {
				if recs, _ := kafka.ReadAll(ctx, db+"."+db+"."+n); len(recs) > 0 {
					t.Errorf("shadow table %s (not captured) has %d raw records", n, len(recs))
				}
			}
		})
	}
}

// workloadRun is a catalog workload running in the background.
type workloadRun struct {
	done chan struct{}
	res  workloadResult
}

type workloadResult struct {
	changes, skipped int
	err              error
}

func (w *workloadRun) wait() workloadResult { <-w.done; return w.res }

// runWorkload applies catalog changes at rate per second until ctx ends.
// A change that meets a table in the middle of a swap (no such table, or
// its definition changed under the transaction) is rolled back by the
// workload and counted as skipped; other errors end the run.
func runWorkload(ctx context.Context, admin *sql.DB, seed int64, rate float64) *workloadRun {
	w := &workloadRun{done: make(chan struct{})}
	wl := catalog.NewWorkload(admin, seed, catalog.WorkloadOptions{})
	go func() {
		defer close(w.done)
		tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			_, err := wl.Run(ctx, 1, 0)
			var me *mysqldriver.MySQLError
			switch {
			case err == nil:
				w.res.changes++
			case ctx.Err() != nil:
				return
			case errors.As(err, &me) && (me.Number == 1146 || me.Number == 1412):
				w.res.skipped++
			default:
				w.res.err = err
				return
			}
		}
	}()
	return w
}

// tableColumns returns the column names of db.table in order.
func tableColumns(t *testing.T, admin *sql.DB, db, table string) []string {
	t.Helper()
	rows, err := admin.Query("SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position", db, table)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		out = append(out, n)
	}
	return out
}

// commonColumns lists the columns of table that shadow has too, quoted.
func commonColumns(ctx context.Context, admin *sql.DB, table, shadow string) (string, error) {
	rows, err := admin.QueryContext(ctx, `SELECT c.column_name FROM information_schema.columns c
		JOIN information_schema.columns s ON s.table_schema = c.table_schema AND s.table_name = ? AND s.column_name = c.column_name
		WHERE c.table_schema = DATABASE() AND c.table_name = ? ORDER BY c.ordinal_position`, shadow, table)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	var cols []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return "", err
		}
		cols = append(cols, "`"+n+"`")
	}
	return strings.Join(cols, ", "), rows.Err()
}

// pkRange returns the smallest and largest primary key of table.
func pkRange(ctx context.Context, admin *sql.DB, table, pk string) (lo, hi int64, err error) {
	err = admin.QueryRowContext(ctx, fmt.Sprintf("SELECT COALESCE(MIN(`%s`), 0), COALESCE(MAX(`%s`), 0) FROM `%s`", pk, pk, table)).Scan(&lo, &hi)
	return lo, hi, err
}

// execAll runs statements in order on the pool.
func execAll(ctx context.Context, admin *sql.DB, stmts ...string) error {
	for _, q := range stmts {
		if _, err := admin.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	return nil
}

const oscChunk = 50

// ghostMigration does what gh-ost does to table with its default
// (atomic) cut-over. gh-ost applies the changes of table to the ghost from
// the binlog; here they are applied by re-copying the table into the ghost
// (REPLACE … SELECT and a delete of vanished keys) between chunks and under
// the cut-over lock, which leaves the ghost equal to the table when the
// rename runs.
func ghostMigration(ctx context.Context, admin *sql.DB, table, pk, alter string, beforeCutOver func() error) error {
	gho, ghc, del := "_"+table+"_gho", "_"+table+"_ghc", "_"+table+"_del"
	if err := execAll(ctx, admin,
		"DROP TABLE IF EXISTS `"+gho+"`", "DROP TABLE IF EXISTS `"+ghc+"`",
		"create /* gh-ost */ table `"+ghc+"` (id bigint unsigned auto_increment, last_update timestamp not null DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP, hint varchar(64) charset ascii not null, value varchar(4096) charset ascii not null, primary key(id), unique key hint_uidx(hint)) auto_increment=256",
		"create /* gh-ost */ table `"+gho+"` like `"+table+"`",
		"alter /* gh-ost */ table `"+gho+"` "+alter,
		"insert /* gh-ost */ into `"+ghc+"` (id, hint, value) values (NULLIF(2, 0), 'state', 'GhostTableMigrated') on duplicate key update last_update=NOW(), value=VALUES(value)",
	); err != nil {
		return err
	}
	cols, err := commonColumns(ctx, admin, table, gho)
	if err != nil {
		return err
	}
	applyBacklog := func(ctx context.Context, q interface {
		ExecContext(context.Context, string, ...any) (sql.Result, error)
	}) error {
		for _, s := range []string{
			"replace /* gh-ost */ into `" + gho + "` (" + cols + ") select " + cols + " from `" + table + "`",
			"delete /* gh-ost */ from `" + gho + "` where `" + pk + "` not in (select `" + pk + "` from `" + table + "`)",
		} {
			if _, err := q.ExecContext(ctx, s); err != nil {
				return fmt.Errorf("%s: %w", s, err)
			}
		}
		return nil
	}
	lo, hi, err := pkRange(ctx, admin, table, pk)
	if err != nil {
		return err
	}
	for from := lo; from <= hi; from += oscChunk {
		if _, err := admin.ExecContext(ctx, fmt.Sprintf("insert /* gh-ost */ ignore into `%s` (%s) (select %s from `%s` force index (`PRIMARY`) where `%s` >= ? and `%s` < ? lock in share mode)",
			gho, cols, cols, table, pk, pk), from, from+oscChunk); err != nil {
			return fmt.Errorf("row copy: %w", err)
		}
		if err := applyBacklog(ctx, admin); err != nil {
			return err
		}
	}
	if beforeCutOver != nil {
		if err := beforeCutOver(); err != nil {
			return err
		}
	}
	// Atomic cut-over.
	lock, err := admin.Conn(ctx)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := execAll(ctx, admin, "create /* gh-ost */ table `"+del+"` (id int auto_increment primary key) engine=InnoDB comment='ghost-cut-over-sentry'"); err != nil {
		return err
	}
	if _, err := lock.ExecContext(ctx, "lock /* gh-ost */ tables `"+table+"` write, `"+del+"` write, `"+gho+"` write"); err != nil {
		return err
	}
	unlocked := false
	defer func() {
		if !unlocked {
			_, _ = lock.ExecContext(context.Background(), "unlock tables")
		}
	}()
	if err := applyBacklog(ctx, lock); err != nil {
		return err
	}
	renamed := make(chan error, 1)
	go func() {
		_, err := admin.ExecContext(ctx, "rename /* gh-ost */ table `"+table+"` to `"+del+"`, `"+gho+"` to `"+table+"`")
		renamed <- err
	}()
	// wait until the RENAME waits for the lock
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var n int
		if err := admin.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.processlist WHERE info LIKE 'rename /* gh-ost */%' AND state LIKE '%metadata lock%'").Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			return errors.New("the cut-over RENAME never waited for the lock")
		}
	}
	if _, err := lock.ExecContext(ctx, "drop /* gh-ost */ table if exists `"+del+"`"); err != nil {
		return err
	}
	if _, err := lock.ExecContext(ctx, "unlock tables"); err != nil {
		return err
	}
	unlocked = true
	if err := <-renamed; err != nil {
		return fmt.Errorf("cut-over rename: %w", err)
	}
	return execAll(ctx, admin, "drop /* gh-ost */ table if exists `"+del+"`", "drop /* gh-ost */ table if exists `"+ghc+"`")
}

var constraintRe = regexp.MustCompile("CONSTRAINT `([^`]+)`")

// ptOSCMigration does what pt-online-schema-change does to table: the new
// table from SHOW CREATE TABLE (foreign keys renamed with a leading _),
// altered; triggers copy every change; chunked copy; atomic rename; the
// triggers and the old table dropped.
func ptOSCMigration(ctx context.Context, admin *sql.DB, table, pk, alter string) error {
	nw, old := "_"+table+"_new", "_"+table+"_old"
	var name, create string
	if err := admin.QueryRowContext(ctx, "SHOW CREATE TABLE `"+table+"`").Scan(&name, &create); err != nil {
		return err
	}
	create = strings.Replace(create, "CREATE TABLE `"+table+"`", "CREATE TABLE `"+nw+"`", 1)
	create = constraintRe.ReplaceAllString(create, "CONSTRAINT `_$1`")
	if err := execAll(ctx, admin, create, "ALTER TABLE `"+nw+"` "+alter); err != nil {
		return err
	}
	cols, err := commonColumns(ctx, admin, table, nw)
	if err != nil {
		return err
	}
	newVals := "NEW." + strings.ReplaceAll(cols, ", ", ", NEW.")
	trig := func(ev string) string { return "pt_osc_" + table + "_" + ev }
	if err := execAll(ctx, admin,
		"CREATE TRIGGER `"+trig("del")+"` AFTER DELETE ON `"+table+"` FOR EACH ROW DELETE IGNORE FROM `"+nw+"` WHERE `"+nw+"`.`"+pk+"` <=> OLD.`"+pk+"`",
		"CREATE TRIGGER `"+trig("upd")+"` AFTER UPDATE ON `"+table+"` FOR EACH ROW REPLACE INTO `"+nw+"` ("+cols+") VALUES ("+newVals+")",
		"CREATE TRIGGER `"+trig("ins")+"` AFTER INSERT ON `"+table+"` FOR EACH ROW REPLACE INTO `"+nw+"` ("+cols+") VALUES ("+newVals+")",
	); err != nil {
		return err
	}
	lo, hi, err := pkRange(ctx, admin, table, pk)
	if err != nil {
		return err
	}
	for from := lo; from <= hi; from += oscChunk {
		if _, err := admin.ExecContext(ctx, fmt.Sprintf("INSERT LOW_PRIORITY IGNORE INTO `%s` (%s) SELECT %s FROM `%s` FORCE INDEX(`PRIMARY`) WHERE `%s` >= ? AND `%s` < ? LOCK IN SHARE MODE /*pt-online-schema-change*/",
			nw, cols, cols, table, pk, pk), from, from+oscChunk); err != nil {
			return fmt.Errorf("chunk copy: %w", err)
		}
	}
	return execAll(ctx, admin,
		"RENAME TABLE `"+table+"` TO `"+old+"`, `"+nw+"` TO `"+table+"`",
		"DROP TABLE IF EXISTS `"+old+"`",
		"DROP TRIGGER IF EXISTS `"+trig("del")+"`", "DROP TRIGGER IF EXISTS `"+trig("upd")+"`", "DROP TRIGGER IF EXISTS `"+trig("ins")+"`")
}

// stagingSwap builds a staging copy of table with CREATE TABLE … LIKE and
// ALTER, bulk-copies the rows (changes made meanwhile are not carried over,
// as in a bulk import), and swaps it in with RENAME TABLE then ALTER TABLE
// … RENAME.
func stagingSwap(ctx context.Context, admin *sql.DB, table, alter string) error {
	stage, prev := table+"_stage", table+"_prev"
	if err := execAll(ctx, admin, "CREATE TABLE `"+stage+"` LIKE `"+table+"`", "ALTER TABLE `"+stage+"` "+alter); err != nil {
		return err
	}
	cols, err := commonColumns(ctx, admin, table, stage)
	if err != nil {
		return err
	}
	return execAll(ctx, admin,
		"INSERT INTO `"+stage+"` ("+cols+") SELECT "+cols+" FROM `"+table+"`",
		"RENAME TABLE `"+table+"` TO `"+prev+"`",
		"ALTER TABLE `"+stage+"` RENAME TO `"+table+"`",
		"DROP TABLE `"+prev+"`")
}

// rawImage is one raw record of a table: its op, key, and the image's
// column names in order and values as text (NULL for null).
type rawImage struct {
	op, key string
	cols    []string
	vals    map[string]string
}

// decodeImage reads a JSON object keeping the key order; numbers stay as
// written.
func decodeImage(b json.RawMessage) (cols []string, vals map[string]string, err error) {
	if len(b) == 0 || string(b) == "null" {
		return nil, nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if _, err := dec.Token(); err != nil {
		return nil, nil, err
	}
	vals = map[string]string{}
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return nil, nil, err
		}
		var v any
		if err := dec.Decode(&v); err != nil {
			return nil, nil, err
		}
		name := k.(string)
		cols = append(cols, name)
		switch x := v.(type) {
		case nil:
			vals[name] = "NULL"
		case string:
			vals[name] = x
		case json.Number:
			vals[name] = x.String()
		default:
			vals[name] = fmt.Sprint(x)
		}
	}
	return cols, vals, nil
}

// checkSwappedRawStream checks the raw stream of a table that was replaced
// once: one replace record; images before it have oldCols, after it
// newCols (in order); every key whose last record follows the replace
// has the database's current row (or no row after a delete).
func checkSwappedRawStream(t *testing.T, kafka *kafkatest.Cluster, admin *sql.DB, db, table, pk string, oldCols, newCols []string) {
	t.Helper()
	recs, err := kafka.ReadAll(context.Background(), db+"."+db+"."+table)
	if err != nil {
		t.Fatalf("%s: %v", table, err)
	}
	replaceAt := -1
	var imgs []rawImage
	for i, r := range recs {
		var env struct {
			Op            string
			Before, After json.RawMessage
		}
		if err := json.Unmarshal(r.Value, &env); err != nil {
			t.Fatalf("%s record %d: %v", table, i, err)
		}
		img := json.RawMessage(env.After)
		if env.Op == "d" {
			img = env.Before
		}
		cols, vals, err := decodeImage(img)
		if err != nil {
			t.Fatalf("%s record %d: %v: %s", table, i, err, r.Value)
		}
		if env.Op == "replace" {
			if replaceAt >= 0 {
				t.Errorf("%s: a second replace record at %d", table, i)
			}
			replaceAt = i
		}
		imgs = append(imgs, rawImage{op: env.Op, key: string(r.Key), cols: cols, vals: vals})
	}
	if replaceAt < 0 {
		t.Fatalf("%s: no replace record among %d raw records", table, len(recs))
	}
	last := map[string]int{}
	for i, im := range imgs {
		if im.op == "replace" {
			continue
		}
		want := oldCols
		if i > replaceAt {
			want = newCols
			last[im.key] = i
		} else {
			delete(last, im.key)
		}
		if strings.Join(im.cols, ",") != strings.Join(want, ",") {
			t.Fatalf("%s record %d (%s, %s the replace): columns %v, want %v", table, i, im.op, map[bool]string{true: "after", false: "before"}[i > replaceAt], im.cols, want)
		}
	}
	if len(last) == 0 {
		t.Fatalf("%s: no raw record after the replace record", table)
	}
	quoted := make([]string, len(newCols))
	for i, c := range newCols {
		quoted[i] = "CAST(`" + c + "` AS CHAR)"
	}
	stmt, err := admin.Prepare("SELECT " + strings.Join(quoted, ", ") + " FROM `" + table + "` WHERE `" + pk + "` = ?")
	if err != nil {
		t.Fatal(err)
	}
	defer stmt.Close()
	checked := 0
	for _, i := range last {
		im := imgs[i]
		id := im.vals[pk]
		vals := make([]sql.NullString, len(newCols))
		ptrs := make([]any, len(vals))
		for j := range vals {
			ptrs[j] = &vals[j]
		}
		err := stmt.QueryRow(id).Scan(ptrs...)
		if im.op == "d" {
			if err != sql.ErrNoRows {
				t.Errorf("%s %s=%s: deleted in the raw stream, but the table has it (%v)", table, pk, id, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s %s=%s: %v", table, pk, id, err)
			continue
		}
		for j, c := range newCols {
			want := "NULL"
			if vals[j].Valid {
				want = vals[j].String
			}
			if got := im.vals[c]; got != want && !sameNumber(got, want) {
				t.Errorf("%s %s=%s column %s: raw %q, table %q", table, pk, id, c, got, want)
			}
		}
		checked++
	}
	t.Logf("%s: %d raw records, replace at %d, %d keys checked against the table", table, len(recs), replaceAt, checked)
}

// sameNumber reports whether two decimal strings denote the same number
// (the raw stream writes integers unpadded, CAST AS CHAR keeps a scale).
func sameNumber(a, b string) bool {
	fa, err1 := strconv.ParseFloat(a, 64)
	fb, err2 := strconv.ParseFloat(b, 64)
	return err1 == nil && err2 == nil && fa == fb
}

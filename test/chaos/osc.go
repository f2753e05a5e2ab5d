package chaos

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"sync"
	"time"
)

// ghostMigration runs an online schema change of table the way gh-ost
// does, without triggers: a ghost table _t_gho (CREATE TABLE … LIKE, then
// ALTER: a column added, column value narrowed to one decimal), the rows copied in primary-key chunks of chunk
// rows while the workload keeps writing to t, then the cut-over with the
// workload paused (gate): the changes made to t since each chunk was
// copied are applied to the ghost (gh-ost applies them from the binlog;
// here a REPLACE … SELECT and a DELETE of the rows gone from t do it), and
// the atomic RENAME TABLE t TO _t_del, _t_gho TO t. It returns once the
// RENAME committed; the caller drops _t_del.
func ghostMigration(ctx context.Context, db *sql.DB, table string, chunk int, pause time.Duration, gate *sync.Mutex) error {
	ghost, del := "_"+table+"_gho", "_"+table+"_del"
	cols, pk, err := tableColumns(ctx, db, table)
	if err != nil {
		return err
	}
	list := "`" + strings.Join(cols, "`, `") + "`"
	for _, q := range []string{
		"DROP TABLE IF EXISTS `" + ghost + "`",
		"DROP TABLE IF EXISTS `" + del + "`",
		"CREATE TABLE `" + ghost + "` LIKE `" + table + "`",
		// The migration adds a column and narrows the values' precision:
		// every value with cents changes in the ghost table, so the feeds
		// are right after the cut-over only if the connector rebuilds them.
		"ALTER TABLE `" + ghost + "` ADD COLUMN chaos_note VARCHAR(32) NULL, MODIFY `value` DECIMAL(20,1) NULL",
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("online schema change of %s: %s: %w", table, q, err)
		}
	}
	var maxID sql.NullInt64
	if err := db.QueryRowContext(ctx, "SELECT MAX(`"+pk+"`) FROM `"+table+"`").Scan(&maxID); err != nil {
		return fmt.Errorf("online schema change of %s: %w", table, err)
	}
	for from := int64(0); from <= maxID.Int64; from += int64(chunk) {
		q := fmt.Sprintf("INSERT IGNORE INTO `%s` (%s) SELECT %s FROM `%s` WHERE `%s` >= ? AND `%s` < ? LOCK IN SHARE MODE", ghost, list, list, table, pk, pk)
		if _, err := db.ExecContext(ctx, q, from, from+int64(chunk)); err != nil {
			return fmt.Errorf("online schema change of %s: copy chunk from %d: %w", table, from, err)
		}
		if err := sleepCtx(ctx, pause); err != nil {
			return err
		}
	}
	gate.Lock()
	defer gate.Unlock()
	for _, q := range []string{
		fmt.Sprintf("REPLACE INTO `%s` (%s) SELECT %s FROM `%s`", ghost, list, list, table),
		fmt.Sprintf("DELETE g FROM `%s` g LEFT JOIN `%s` t ON t.`%s` = g.`%s` WHERE t.`%s` IS NULL", ghost, table, pk, pk, pk),
		fmt.Sprintf("RENAME TABLE `%s` TO `%s`, `%s` TO `%s`", table, del, ghost, table),
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("online schema change of %s: %s: %w", table, q, err)
		}
	}
	return nil
}

// tableColumns returns table's columns in order and its (single-column)
// primary key.
func tableColumns(ctx context.Context, db *sql.DB, table string) (cols []string, pk string, err error) {
	rows, err := db.QueryContext(ctx, `SELECT COLUMN_NAME, COLUMN_KEY FROM information_schema.COLUMNS
		WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION`, table)
	if err != nil {
		return nil, "", fmt.Errorf("columns of %s: %w", table, err)
	}
	defer rows.Close()
	for rows.Next() {
		var c, key string
		if err := rows.Scan(&c, &key); err != nil {
			return nil, "", err
		}
		cols = append(cols, c)
		if key == "PRI" {
			if pk != "" {
				return nil, "", fmt.Errorf("%s: the migration copies tables with a one-column primary key only", table)
			}
			pk = c
		}
	}
	if err := rows.Err(); err != nil {
		return nil, "", err
	}
	if pk == "" {
		return nil, "", fmt.Errorf("%s: no primary key", table)
	}
	return cols, pk, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

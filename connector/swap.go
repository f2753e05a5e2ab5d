package connector

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	mysqldriver "github.com/go-sql-driver/mysql"

	"github.com/feedcdc/feedcdc/change"
	"github.com/feedcdc/feedcdc/sink"
)

// MissingTableWait bounds how long a stream batch waits for a table a feed
// reads to exist again. A table swap written as two statements (RENAME
// TABLE t TO t_old; ALTER TABLE t_new RENAME TO t, the staging-table
// pattern) leaves no table t between them; a build in that window fails
// with "table doesn't exist" although the next statement puts one back.
// PipelineOptions.MissingTableWait overrides it.
const MissingTableWait = 2 * time.Minute

// exportBatchWaitingForTables exports b like exportBatch; when the export
// fails because a table a feed reads does not exist, it exports the batch
// again (whole; raw records already delivered are not resent) with
// backoff, for at most MissingTableWait, then stops with a remedy.
func (p *Pipeline) exportBatchWaitingForTables(ctx context.Context, b *batch) error {
	var start time.Time
	delay := 50 * time.Millisecond
	for {
		err := p.exportBatch(ctx, b)
		table, missing := p.missingFeedTable(err)
		if !missing {
			return err
		}
		now := p.o.Now()
		if start.IsZero() {
			start = now
			p.o.Logger.Warn("a table the feeds read does not exist (a table swap in progress?): the batch waits for it", "table", table, "wait_at_most", p.o.MissingTableWait)
		}
		if now.Sub(start) >= p.o.MissingTableWait {
			return fmt.Errorf("%w\nthe table %s, which the feeds read, has not existed for %s: restore it (or finish the swap that renamed it away), then start feedcdc again; the batch and its checkpoint were kept", err, table, p.o.MissingTableWait)
		}
		if err := sink.Sleep(ctx, delay); err != nil {
			return err
		}
		delay = min(2*delay, 5*time.Second)
	}
}

// missingFeedTable reports whether err is the server's "table doesn't
// exist" (1146) for a table a feed reads, and names it.
func (p *Pipeline) missingFeedTable(err error) (string, bool) {
	var me *mysqldriver.MySQLError
	if err == nil || p.o.Registry == nil || !errors.As(err, &me) || me.Number != 1146 {
		return "", false
	}
	// Table 'db.t' doesn't exist
	_, rest, ok := strings.Cut(me.Message, "'")
	name, _, ok2 := strings.Cut(rest, "'")
	if !ok || !ok2 {
		return "", false
	}
	db, tbl, ok := strings.Cut(name, ".")
	if !ok {
		return "", false
	}
	if len(p.o.Registry.FeedsReading(&change.Table{DB: db, Name: tbl})) == 0 {
		return "", false
	}
	return name, true
}

package connector

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/feedcdc/feedcdc/change"
	"github.com/feedcdc/feedcdc/connector/binlog"
	"github.com/feedcdc/feedcdc/dashboard"
	"github.com/feedcdc/feedcdc/state"
)

// maxJobs bounds the jobs a Backend remembers: the oldest finished ones
// are forgotten first.
const maxJobs = 100

// jobTable holds the jobs the CLI started on the running connector.
type jobTable struct {
	mu    sync.Mutex
	seq   int
	jobs  map[string]*dashboard.Job
	order []string
}

// RetryResult summarises a retry of failed items (feedcdc retry).
type RetryResult struct {
	Feed  string      `json:"feed"`
	Stats ExportStats `json:"stats"`
	// FailedNow is the feed's failed items (status 2) after the retry.
	FailedNow int64 `json:"failed_now"`
}

var (
	_ dashboard.JobBackend      = (*Backend)(nil)
	_ dashboard.StatusBackend   = (*Backend)(nil)
	_ dashboard.PositionBackend = (*Backend)(nil)
)

// Status implements dashboard.StatusBackend: the Status of `feedcdc status`.
func (b *Backend) Status(ctx context.Context) (any, error) {
	st, err := b.C.Status(ctx)
	st.Running = true
	st.PID = os.Getpid()
	t := &b.jobs
	t.mu.Lock()
	for _, id := range t.order {
		st.Jobs = append(st.Jobs, *t.jobs[id])
	}
	t.mu.Unlock()
	for i := range st.Jobs {
		st.Jobs[i].Result = nil // summaries stay with GET /api/jobs/{id}
	}
	return st, err
}

// PositionReport is what `feedcdc position show --json` prints: the
// checkpoint, whether the server still has its binlog, and the position
// history.
type PositionReport struct {
	Checkpoint  *change.Position       `json:"checkpoint,omitempty"`
	StoredAt    time.Time              `json:"stored_at,omitzero"`
	AgeSeconds  float64                `json:"age_seconds,omitempty"`
	Server      *binlog.Availability   `json:"server,omitempty"`
	ServerError string                 `json:"server_error,omitempty"`
	History     []state.PositionChange `json:"history,omitempty"`
}

// PositionReport reads the checkpoint and its history and asks the source
// whether it still has the checkpoint's binlog.
func (c *Connector) PositionReport(ctx context.Context) (PositionReport, error) {
	var r PositionReport
	pos, at, ok, err := c.Store.Checkpoint(ctx)
	if err != nil {
		return r, err
	}
	if r.History, err = c.Store.PositionHistory(ctx); err != nil {
		return r, err
	}
	if ok {
		r.Checkpoint, r.StoredAt, r.AgeSeconds = &pos, at, time.Since(at).Seconds()
		scfg, err := c.ResolvedSourceConfig(ctx)
		var a binlog.Availability
		if err == nil {
			a, err = binlog.CheckPosition(ctx, scfg, pos)
		}
		if err != nil {
			r.ServerError = err.Error()
		} else {
			r.Server = &a
		}
	}
	return r, nil
}

// Position implements dashboard.PositionBackend.
func (b *Backend) Position(ctx context.Context) (any, error) { return b.C.PositionReport(ctx) }

// Job implements dashboard.JobBackend.
func (b *Backend) Job(id string) (dashboard.Job, error) {
	t := &b.jobs
	t.mu.Lock()
	defer t.mu.Unlock()
	j, ok := t.jobs[id]
	if !ok {
		return dashboard.Job{}, fmt.Errorf("job %s (jobs are forgotten when the connector restarts): %w", id, dashboard.ErrNotFound)
	}
	return *j, nil
}

// lockHolder names who holds a feed lock and since when, for a 409.
func lockHolder(l state.FeedLock) string {
	who := l.Owner
	if !strings.Contains(who, "pid") {
		who = fmt.Sprintf("%s (pid %d)", who, l.PID)
	}
	if l.Command != "" && !strings.Contains(who, l.Command) {
		who += ", command " + strconv.Quote(l.Command)
	}
	return "locked by " + who + " since " + l.Acquired.UTC().Format(time.RFC3339)
}

// resyncHolder is the resync job running on a feed (named in a 409).
type resyncHolder struct {
	job   string
	op    string
	since time.Time
}

// forget drops a job that could not start.
func (t *jobTable) forget(j *dashboard.Job) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.jobs, j.ID)
	for i, id := range t.order {
		if id == j.ID {
			t.order = append(t.order[:i], t.order[i+1:]...)
			break
		}
	}
}

// update changes a job under the table's lock.
func (t *jobTable) update(j *dashboard.Job, f func(j *dashboard.Job)) {
	t.mu.Lock()
	f(j)
	t.mu.Unlock()
}

// add registers a new running job and forgets the oldest finished ones
// beyond maxJobs.
func (t *jobTable) add(kind, feed string) *dashboard.Job {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.jobs == nil {
		t.jobs = map[string]*dashboard.Job{}
	}
	t.seq++
	j := &dashboard.Job{ID: strconv.Itoa(t.seq), Kind: kind, Feed: feed, State: dashboard.JobRunning, PID: os.Getpid(), StartedAt: time.Now()}
	t.jobs[j.ID] = j
	t.order = append(t.order, j.ID)
	for i := 0; len(t.jobs) > maxJobs && i < len(t.order); {
		if old := t.jobs[t.order[i]]; old.State != dashboard.JobRunning {
			delete(t.jobs, t.order[i])
			t.order = append(t.order[:i], t.order[i+1:]...)
			continue
		}
		i++
	}
	return j
}

// finish records a job's end.
func (t *jobTable) finish(j *dashboard.Job, result any, err error) {
	raw, merr := json.Marshal(result)
	t.update(j, func(j *dashboard.Job) {
		j.FinishedAt = time.Now()
		j.State = dashboard.JobDone
		if merr == nil {
			j.Result = raw
		}
		if err != nil {
			j.State, j.Error = dashboard.JobFailed, err.Error()
		}
	})
}

// StartJob implements dashboard.JobBackend: resync and retry run in the
// background on the pipeline, between stream batches, exactly as the
// commands run them on a stopped connector.
func (b *Backend) StartJob(r dashboard.JobRequest) (dashboard.Job, error) {
	if b.C.Registry == nil {
		return dashboard.Job{}, fmt.Errorf("feed %s: no feed is enabled: %w", r.Feed, dashboard.ErrNotFound)
	}
	if _, ok := b.C.Registry.Feed(r.Feed); !ok {
		return dashboard.Job{}, fmt.Errorf("feed %s is not enabled: %w", r.Feed, dashboard.ErrNotFound)
	}
	switch r.Kind {
	case dashboard.JobResync:
		return b.startResync(r)
	case dashboard.JobRetry:
		return b.startRetry(r)
	}
	return dashboard.Job{}, fmt.Errorf("job kind %q: %w", r.Kind, dashboard.ErrInvalid)
}

func (b *Backend) startResync(r dashboard.JobRequest) (dashboard.Job, error) {
	if r.IDType != "" && r.IDType != "productId" {
		return dashboard.Job{}, fmt.Errorf("id type %q: use sku (default) or productId: %w", r.IDType, dashboard.ErrInvalid)
	}
	if r.Continue && len(r.IDs) > 0 {
		return dashboard.Job{}, fmt.Errorf("--continue-resync resumes a full sync; it cannot be combined with --by-ids: %w", dashboard.ErrInvalid)
	}
	locks, err := b.C.Store.FeedLocks(b.Ctx)
	if err != nil {
		return dashboard.Job{}, err
	}
	for _, l := range locks {
		if l.Feed == r.Feed {
			return dashboard.Job{}, fmt.Errorf("feed %s is busy: %s: %w", r.Feed, lockHolder(l), dashboard.ErrBusy)
		}
	}
	b.mu.Lock()
	if b.running == nil {
		b.running = map[string]resyncHolder{}
	}
	if h, ok := b.running[r.Feed]; ok {
		b.mu.Unlock()
		return dashboard.Job{}, fmt.Errorf("feed %s is busy: resync job %s (%s, pid %d) running since %s; follow it with GET /api/jobs/%s or `feedcdc status`: %w",
			r.Feed, h.job, h.op, os.Getpid(), h.since.UTC().Format(time.RFC3339), h.job, dashboard.ErrBusy)
	}
	j := b.jobs.add(dashboard.JobResync, r.Feed)
	ro := ResyncOptions{Feed: r.Feed, ByIDs: r.IDs, IDType: r.IDType, DryRun: r.DryRun, CleanupFeed: r.CleanupFeed, Continue: r.Continue,
		BatchSize: r.BatchSize, ThreadCount: r.ThreadCount, Owner: fmt.Sprintf("feedcdc resync job %s (pid %d)", j.ID, os.Getpid())}
	b.running[r.Feed] = resyncHolder{job: j.ID, op: opOf(ro), since: j.StartedAt}
	b.mu.Unlock()
	if r.DryRun {
		ro.SampleSize = 3
	}
	ro.Progress = func(p state.Progress) {
		b.jobs.update(j, func(j *dashboard.Job) { j.Done, j.Total = p.Processed, p.Total })
	}
	go func() {
		defer func() {
			b.mu.Lock()
			delete(b.running, r.Feed)
			b.mu.Unlock()
		}()
		res, err := b.C.Resync(b.Ctx, ro)
		if err != nil && b.Ctx.Err() != nil {
			err = fmt.Errorf("the connector stopped before the resync ended: %w", err)
		}
		if err != nil {
			b.C.Logger.Error("resync failed", "feed", r.Feed, "operation", opOf(ro), "job", j.ID, "error", err)
		}
		b.jobs.finish(j, res, err)
	}()
	return b.Job(j.ID)
}

func (b *Backend) startRetry(r dashboard.JobRequest) (dashboard.Job, error) {
	j := b.jobs.add(dashboard.JobRetry, r.Feed)
	release, err := b.C.Pipeline.ClaimRetry(r.Feed, fmt.Sprintf("retry job %s (pid %d)", j.ID, os.Getpid()))
	if err != nil {
		b.jobs.forget(j)
		return dashboard.Job{}, fmt.Errorf("feed %s is busy: %w (%w)", r.Feed, err, dashboard.ErrBusy)
	}
	go func() {
		defer release()
		now := time.Now()
		if r.All {
			now = now.Add(100 * 365 * 24 * time.Hour)
		}
		res := RetryResult{Feed: r.Feed}
		var err error
		res.Stats, err = b.C.Pipeline.RetryFailedClaimed(b.Ctx, r.Feed, now)
		if err != nil {
			b.C.Logger.Error("retry failed", "feed", r.Feed, "operation", OpRetryFailed, "job", j.ID, "error", err)
		}
		if counts, cerr := b.C.Store.Counts(b.Ctx, r.Feed); cerr == nil {
			res.FailedNow = counts.Failed
		}
		b.jobs.update(j, func(j *dashboard.Job) { j.Done, j.Total = int64(res.Stats.Keys), int64(res.Stats.Keys) })
		b.jobs.finish(j, res, err)
	}()
	return b.Job(j.ID)
}

// estimateTotal is the total a sync's progress shows until its scan has
// counted the entity keys (no extra pass over the source): the ids given;
// else the total of the feed's last sync in the state (exact when it
// finished); else the source's row estimate of the feed's first table
// (information_schema.TABLES.TABLE_ROWS: catalog_product_entity for
// products, variants; eav_attribute for productAttributes, the
// permissions index for productOverrides). 0 when none is known.
func (c *Connector) estimateTotal(ctx context.Context, ro ResyncOptions) int64 {
	if len(ro.ByIDs) > 0 {
		return int64(len(ro.ByIDs))
	}
	if old, ok, err := c.Store.Progress(ctx, ro.Feed); err == nil && ok && !old.DryRun {
		if old.Total > 0 {
			return old.Total
		}
		if old.Finished() {
			return old.Processed
		}
	}
	if c.Registry == nil || c.SourceDB == nil {
		return 0
	}
	f, ok := c.Registry.Feed(ro.Feed)
	if !ok || len(f.Tables()) == 0 {
		return 0
	}
	var n sql.NullInt64
	err := c.SourceDB.QueryRowContext(ctx, "SELECT TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
		c.Config.Feeds.Database, f.Tables()[0]).Scan(&n)
	if err != nil {
		c.Logger.Debug("no estimate of the entities to sync", "feed", ro.Feed, "error", err)
		return 0
	}
	return n.Int64
}

// opOf is the operation name of a resync.
func opOf(ro ResyncOptions) string {
	if len(ro.ByIDs) > 0 {
		return OpResyncByIDs
	}
	return OpFullSync
}

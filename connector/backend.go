package connector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"

	"github.com/feedcdc/feedcdc/config"
	"github.com/feedcdc/feedcdc/connector/check"
	"github.com/feedcdc/feedcdc/dashboard"
	"github.com/feedcdc/feedcdc/feeds"
	"github.com/feedcdc/feedcdc/state"
)

// Backend implements the dashboard's Backend over a running connector.
type Backend struct {
	C *Connector
	// Ctx bounds background jobs started from the dashboard (the run's
	// context).
	Ctx context.Context
	// Lag reads the source lag (ms, state) when telemetry runs.
	Lag func() (int64, string)

	mu        sync.Mutex
	checks    []check.Result
	checkedAt time.Time
	running   map[string]resyncHolder // feeds with a resync job running
	jobs      jobTable                // jobs started by the CLI (apijobs.go)
}

var (
	_ dashboard.Backend      = (*Backend)(nil)
	_ dashboard.StateBackend = (*Backend)(nil)
)

// CheckState implements dashboard.StateBackend: state.Store.CheckReport on
// the open state file (flushes wait while it runs).
func (b *Backend) CheckState(ctx context.Context) (any, bool, error) {
	r, err := b.C.Store.CheckReport(ctx)
	if err != nil {
		return nil, false, err
	}
	return r, r.OK(), nil
}

// BackupState implements dashboard.StateBackend with state.Store.Backup.
func (b *Backend) BackupState(ctx context.Context, w io.Writer, size func(int64)) (int64, error) {
	return b.C.Store.Backup(ctx, w, size)
}

// Overview implements dashboard.Backend.
func (b *Backend) Overview(ctx context.Context) (dashboard.Overview, error) {
	st, err := b.C.Status(ctx)
	if err != nil {
		return dashboard.Overview{}, err
	}
	ov := dashboard.Overview{GeneratedAt: time.Now(), Source: b.source()}
	if h := st.HA; h != nil {
		ov.HA = &dashboard.HAStatus{Instance: h.Instance, Role: string(h.Role), Epoch: h.Epoch, ChangelogLag: h.Lag,
			LastTakeover: h.LastTakeover, TakeoverMillis: h.TakeoverMillis}
	}
	if st.Checkpoint != nil {
		ov.Checkpoint = dashboard.Checkpoint{Position: st.Checkpoint.String(), GTIDSet: st.Checkpoint.GTIDSet, File: st.Checkpoint.File,
			Pos: st.Checkpoint.Pos, StoredAt: st.CheckpointAt, AgeSeconds: st.CheckpointAgeSec}
	}
	for _, f := range st.Feeds {
		fs := dashboard.FeedStatus{Name: f.Name, Mode: f.Mode, SourceRecords: f.Counts.Total - f.Counts.Deleted, Sent: f.Counts.Sent,
			Failed: f.Counts.Failed, Rejected: f.Counts.Rejected, Pending: f.Counts.Pending + f.Counts.Outbox, LastSync: f.LastSync}
		if f.Resync != nil {
			fs.Resync = dashboard.ResyncProgress{Running: !f.Resync.Finished(), Done: f.Resync.Processed, Total: f.Resync.Total,
				StartedAt: f.Resync.StartedAt, UpdatedAt: f.Resync.UpdatedAt}
			if f.Resync.Finished() && fs.Resync.Total == 0 {
				fs.Resync.Total = f.Resync.Processed
			}
		}
		fs.LastVerify = lastVerify(f.Verify)
		ov.Feeds = append(ov.Feeds, fs)
	}
	return ov, nil
}

func (b *Backend) source() dashboard.SourceStatus {
	s := dashboard.SourceStatus{Connected: b.C.Connected(), Address: b.C.Config.Source.Addr(), Flavor: b.C.SourceConfig().Flavor}
	if b.Lag != nil {
		s.LagMS, s.LagState = b.Lag()
	}
	if w, waiting := b.C.SourceUnavailable(); waiting {
		s.Unavailable = w.String()
	}
	return s
}

// Items implements dashboard.Backend.
func (b *Backend) Items(ctx context.Context, q dashboard.ItemQuery) (dashboard.ItemPage, error) {
	page := dashboard.ItemPage{Offset: q.Offset, Limit: q.Limit}
	if page.Limit <= 0 {
		page.Limit = 50
	}
	feedNames := b.C.Config.EnabledFeeds()
	if q.Feed != "" {
		feedNames = []string{q.Feed}
	}
	statuses := map[string][]int{
		"": {state.StatusRetryableFailure, state.StatusRejected, state.StatusRejectedByService}, dashboard.FilterFailed: {state.StatusRetryableFailure, state.StatusRejected, state.StatusRejectedByService},
		dashboard.FilterRetryable: {state.StatusRetryableFailure}, dashboard.FilterRejected: {state.StatusRejected, state.StatusRejectedByService},
		dashboard.FilterPending: {state.StatusPending}, dashboard.FilterSent: {state.StatusSent}, dashboard.FilterAll: nil,
	}[q.Status]
	page.Items = []dashboard.ItemRow{}
	skip := q.Offset
	for _, feed := range feedNames {
		after := ""
		for {
			items, next, err := b.C.Store.ListItems(ctx, state.ListQuery{Feed: feed, Statuses: statuses, Search: q.SKU, After: after, Limit: 1000})
			if err != nil {
				return page, err
			}
			for _, it := range items {
				if !q.MatchStatus(it.Status) {
					continue
				}
				page.Total++
				if skip > 0 {
					skip--
					continue
				}
				if len(page.Items) < page.Limit {
					last := it.SentAt
					if last.IsZero() {
						last = it.ModifiedAt
					}
					page.Items = append(page.Items, dashboard.ItemRow{Feed: feed, FeedID: it.ID, EntityID: it.EntityKey, Identifiers: it.Identity,
						Status: it.Status, Attempts: it.Attempts, Deleted: it.Deleted, LastSync: last, Error: it.LastError, RequestID: it.RequestID})
				}
			}
			if next == "" {
				break
			}
			after = next
		}
	}
	return page, nil
}

// Item implements dashboard.Backend: the item as the source builds it now,
// or its deleted payload when its entity vanished.
func (b *Backend) Item(ctx context.Context, feed, id string) (json.RawMessage, error) {
	if b.C.Registry == nil {
		return nil, fmt.Errorf("feed %s: %w", feed, dashboard.ErrNotFound)
	}
	f, ok := b.C.Registry.Feed(feed)
	if !ok {
		return nil, fmt.Errorf("feed %s: %w", feed, dashboard.ErrNotFound)
	}
	it, ok, err := b.C.Store.Item(ctx, feed, id)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("item %s: %w", id, dashboard.ErrNotFound)
	}
	built, err := f.Build(ctx, []string{it.EntityKey})
	if err != nil {
		return nil, err
	}
	for _, bi := range built {
		if bi.ID == id {
			return bi.Data, nil
		}
	}
	prev := loadPrevItem(it)
	return f.DeletedPayload(prev).Data, nil
}

// ScheduleResync implements dashboard.Backend: the resync runs as a job
// (GET /api/jobs/{id}), exactly like one the CLI starts.
func (b *Backend) ScheduleResync(_ context.Context, feed string, ids []string) error {
	_, err := b.StartJob(dashboard.JobRequest{Kind: dashboard.JobResync, Feed: feed, IDs: ids})
	return err
}

// RetryFailed implements dashboard.Backend.
func (b *Backend) RetryFailed(ctx context.Context, feed string) error {
	if b.C.Registry == nil {
		return fmt.Errorf("feed %s: %w", feed, dashboard.ErrNotFound)
	}
	if _, ok := b.C.Registry.Feed(feed); !ok {
		return fmt.Errorf("feed %s: %w", feed, dashboard.ErrNotFound)
	}
	// One retry per feed at a time: a second POST while one runs is
	// answered 409 "already running" instead of queueing another.
	release, err := b.C.Pipeline.ClaimRetry(feed, "a retry started from the dashboard")
	if err != nil {
		return fmt.Errorf("feed %s: %w (%w)", feed, err, dashboard.ErrBusy)
	}
	go func() {
		defer release()
		// "Now" retries every failed item, due or not.
		if _, err := b.C.Pipeline.RetryFailedClaimed(b.Ctx, feed, time.Now().Add(100*365*24*time.Hour)); err != nil && b.Ctx.Err() == nil {
			b.C.Logger.Error("retry failed items", "feed", feed, "operation", OpRetryFailed, "error", err)
		}
	}()
	return nil
}

// Health implements dashboard.Backend. The preflight checks are cached for
// a minute: they query the source.
func (b *Backend) Health(ctx context.Context) (dashboard.Health, error) {
	h := dashboard.Health{CheckedAt: time.Now(), Source: b.source()}
	for name, s := range b.C.Sinks {
		kind, target := "sink", ""
		if cs := b.C.Config.Sinks[name]; cs != nil {
			kind, target = cs.Type, sinkTarget(cs)
		}
		ss := dashboard.SinkStatus{Name: name, Kind: kind, Target: target, Connected: true}
		if p, ok := s.(check.Pinger); ok {
			pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			if err := p.Ping(pctx); err != nil {
				ss.Connected, ss.Error = false, err.Error()
			}
			cancel()
		}
		h.Sinks = append(h.Sinks, ss)
	}
	b.mu.Lock()
	stale := time.Since(b.checkedAt) > time.Minute
	b.mu.Unlock()
	if stale {
		rs := b.C.Check(ctx)
		b.mu.Lock()
		b.checks, b.checkedAt = rs, time.Now()
		b.mu.Unlock()
	}
	b.mu.Lock()
	for _, r := range b.checks {
		h.Checks = append(h.Checks, dashboard.CheckResult{Name: r.Name, Status: string(r.Status), Message: r.Message, Fix: r.Fix})
	}
	b.mu.Unlock()
	if _, at, ok, err := b.C.Store.Checkpoint(ctx); err == nil && ok {
		h.CheckpointAgeSeconds = time.Since(at).Seconds()
	}
	if ret, err := b.C.BinlogRetention(ctx); err == nil {
		h.BinlogRetentionSeconds = ret.Seconds()
	}
	return h, nil
}

// BinlogRetention reads the source's binlog retention (0 = never expires).
func (c *Connector) BinlogRetention(ctx context.Context) (time.Duration, error) {
	var secs float64
	err := c.SourceDB.QueryRowContext(ctx, "SELECT @@binlog_expire_logs_seconds").Scan(&secs)
	if err != nil {
		var days float64
		if err2 := c.SourceDB.QueryRowContext(ctx, "SELECT @@expire_logs_days").Scan(&days); err2 != nil {
			return 0, errors.Join(err, err2)
		}
		secs = days * 86400
	}
	return time.Duration(secs * float64(time.Second)), nil
}

// checkTarget describes this connector's source for the checks. The
// checkpoint is included for `feedcdc check` only: a purged resume position
// is the binlog source's to report when run resumes (ErrPositionPurged).
func (c *Connector) checkTarget(ctx context.Context, withCheckpoint bool) check.Target {
	cfg := c.Config
	inc, exc := c.CapturedTables()
	t := check.Target{DB: c.SourceDB, Addr: cfg.Source.Addr(), User: cfg.Source.User, ServerID: cfg.EffectiveServerID(),
		Tables: inc, Exclude: exc, MaxReplicaLag: cfg.Resync.MaxReplicaLag.D()}
	if c.Registry != nil && cfg.Feeds.VisibilityFence {
		t.FenceTable = cfg.Feeds.Database + ".catalog_product_entity"
	}
	if cfg.Raw.Enabled {
		t.KeyedTables = rawFilter(cfg).Include
		if len(t.KeyedTables) == 0 {
			t.KeyedTables = []string{"*.*"}
		}
		for p := range cfg.Raw.KeyColumns {
			t.KeyColumnTables = append(t.KeyColumnTables, p)
		}
	}
	if withCheckpoint && c.Store != nil {
		if pos, at, ok, err := c.Store.Checkpoint(ctx); err == nil && ok {
			t.Checkpoint, t.CheckpointAt = &pos, at
		}
	}
	return t
}

// Preflight runs the source checks of `feedcdc check` (check.Preflight) as
// `feedcdc run` does before it reads or writes anything: every WARN is
// logged, and any FAIL is returned as a *check.Error with check's messages
// and fixes. While the source cannot be reached at all (a transient state,
// check.ErrUnreachable) it retries with backoff from source.reconnect_min to
// source.reconnect_max until ctx ends; only definite answers of the server
// stop it.
func (c *Connector) Preflight(ctx context.Context) ([]check.Result, error) {
	t := c.checkTarget(ctx, false)
	bo := backoff.NewExponentialBackOff()
	if d := c.Config.Source.ReconnectMin.D(); d > 0 {
		bo.InitialInterval = d
	}
	if d := c.Config.Source.ReconnectMax.D(); d >= bo.InitialInterval {
		bo.MaxInterval = d
	}
	rs, err := backoff.Retry(ctx, func() ([]check.Result, error) {
		rs, err := check.Preflight(ctx, t)
		if err != nil && !errors.Is(err, check.ErrUnreachable) {
			err = backoff.Permanent(err)
		}
		return rs, err
	}, backoff.WithBackOff(bo), backoff.WithMaxElapsedTime(0), backoff.WithNotify(func(err error, next time.Duration) {
		c.Logger.Warn("preflight: the source cannot be reached; retrying", "operation", "preflight", "retry_in", next, "error", err)
		if c.retry.OnRetry != nil {
			c.retry.OnRetry("connection") // feedcdc_source_retries_total: the source is down from the start
		}
	}))
	if err != nil {
		if ctx.Err() != nil {
			return rs, fmt.Errorf("preflight: %w", ctx.Err())
		}
		return rs, fmt.Errorf("preflight: %w", err)
	}
	for _, r := range rs {
		if r.Status == check.Warn {
			c.Logger.Warn("preflight: "+r.Name+": "+r.Message, "operation", "preflight", "check", r.Name, "fix", r.Fix)
		}
	}
	if err := check.Hard(rs); err != nil {
		return rs, err
	}
	c.Logger.Info("preflight passed", "operation", "preflight", "checks", len(rs))
	return rs, nil
}

// Check runs the preflight against this connector's source, sinks and
// state file.
func (c *Connector) Check(ctx context.Context) []check.Result {
	t := c.checkTarget(ctx, true)
	for name, s := range c.Sinks {
		if p, ok := s.(interface {
			Ping(ctx context.Context) error
		}); ok {
			t.Sinks = append(t.Sinks, namedPinger{name, p.Ping})
		}
	}
	rs := check.Run(ctx, t)
	if c.Registry != nil {
		if err := c.Registry.Check(ctx); err != nil {
			rs = append(rs, check.Result{Name: "feed tables", Status: check.Fail, Message: err.Error(),
				Fix: "create the missing tables, grant SELECT on them, or disable the feed in config.yaml (feeds.<feed>.enabled: false)"})
		} else {
			rs = append(rs, check.Result{Name: "feed tables", Status: check.Pass, Message: "every enabled feed's tables exist and are readable"})
		}
	}
	// The state file is open (and so writable) when we get here.
	if c.Store != nil {
		rs = append(rs, check.Result{Name: "state file", Status: check.Pass, Message: c.Store.Path() + " is open for writing"})
	}
	return rs
}

type namedPinger struct {
	name string
	ping func(ctx context.Context) error
}

func (n namedPinger) Name() string                   { return n.name }
func (n namedPinger) Ping(ctx context.Context) error { return n.ping(ctx) }

func loadPrevItem(it state.Item) feeds.PrevItem {
	return feeds.PrevItem{ID: it.ID, EntityKey: it.EntityKey, Identity: it.Identity, Hash: it.Hash, Status: it.Status, Deleted: it.Deleted}
}

// sinkTarget is where a sink sends to, for the dashboard's sink labels:
// the Kafka brokers, the HTTP base URL without credentials or query, the
// file sink's directory.
func sinkTarget(cs *config.Sink) string {
	switch {
	case cs.Kafka != nil:
		return strings.Join(cs.Kafka.Brokers, ",")
	case cs.HTTP != nil:
		u, err := url.Parse(cs.HTTP.BaseURL)
		if err != nil {
			return ""
		}
		u.User, u.RawQuery, u.Fragment = nil, "", ""
		return u.String()
	case cs.File != nil:
		return cs.File.Dir
	}
	return ""
}

package dashboard_test

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/feedcdc/feedcdc/dashboard"
)

// memBackend is an in-memory dashboard.Backend: the test double standing in
// for the connector at this seam. Counts are derived from its items, the
// same way the connector derives them from the state store.
type memBackend struct {
	mu       sync.Mutex
	feeds    []memFeed
	items    []memItem
	resyncs  []resyncCall
	retries  []string
	health   dashboard.Health
	busy     map[string]bool
	failWith error // returned by Overview when set
	// sourceUnavailable is the overview's source.unavailable sentence.
	sourceUnavailable string
	// ha is the overview's high-availability block (nil: HA off).
	ha  *dashboard.HAStatus
	now time.Time
	// snaps are the raw snapshots started through the API, with the
	// actions received for them ("pause", ...).
	snaps map[string]*memSnap
}

type memSnap struct {
	Table   string   `json:"table"`
	Where   string   `json:"where,omitempty"`
	State   string   `json:"state"`
	Mode    string   `json:"mode"`
	Read    int64    `json:"read"`
	Sent    int64    `json:"sent"`
	Dropped int64    `json:"dropped"`
	Total   int64    `json:"total"`
	actions []string // not in the JSON
}

func (b *memBackend) RawSnapshots(ctx context.Context) (any, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := struct {
		Snapshots []memSnap `json:"snapshots"`
	}{Snapshots: []memSnap{}}
	for _, s := range b.snaps {
		out.Snapshots = append(out.Snapshots, *s)
	}
	return out, nil
}

func (b *memBackend) StartRawSnapshot(ctx context.Context, r dashboard.RawSnapshotRequest) (any, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !strings.Contains(r.Table, ".") {
		return nil, fmt.Errorf("table %q: name it as db.table: %w", r.Table, dashboard.ErrInvalid)
	}
	if b.snaps == nil {
		b.snaps = map[string]*memSnap{}
	}
	s := &memSnap{Table: r.Table, Where: r.Where, State: "running", Mode: "incremental", Read: 40, Sent: 39, Dropped: 1, Total: 100}
	b.snaps[r.Table] = s
	return *s, nil
}

func (b *memBackend) ControlRawSnapshot(ctx context.Context, table, action string) (any, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s, ok := b.snaps[table]
	if !ok {
		return nil, fmt.Errorf("no snapshot of %s: %w", table, dashboard.ErrNotFound)
	}
	s.actions = append(s.actions, action)
	s.State = map[string]string{"pause": "paused", "resume": "running", "stop": "stopped"}[action]
	return *s, nil
}

// snapshot returns a copy of the raw snapshot of table and the actions
// received for it.
func (b *memBackend) snapshot(table string) (memSnap, []string, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s, ok := b.snaps[table]
	if !ok {
		return memSnap{}, nil, false
	}
	return *s, append([]string(nil), s.actions...), true
}

type memFeed struct {
	name, mode string
	lagMS      int64
	resync     dashboard.ResyncProgress
	lastVerify *dashboard.LastVerify
}

type memItem struct {
	row     dashboard.ItemRow
	payload json.RawMessage
}

type resyncCall struct {
	Feed string
	IDs  []string
}

func feedID(parts ...string) string {
	h := sha1.Sum([]byte(strings.Join(parts, "\x00")))
	return hex.EncodeToString(h[:])
}

// newMemBackend builds a small catalog: products in two store views,
// variants, attributes, with a mix of statuses.
func newMemBackend() *memBackend {
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	b := &memBackend{now: now, busy: map[string]bool{}}
	b.feeds = []memFeed{
		{name: "products", mode: dashboard.ModeImmediate, lagMS: 120,
			resync: dashboard.ResyncProgress{Running: true, Done: 30, Total: 120, StartedAt: now.Add(-time.Minute), UpdatedAt: now}},
		{name: "productAttributes", mode: dashboard.ModeImmediate,
			lastVerify: &dashboard.LastVerify{FinishedAt: now.Add(-time.Hour), Elapsed: "1.2s", Checked: 40, Drift: 3, Repaired: 2}},
		{name: "variants", mode: dashboard.ModeLegacy, lagMS: 2500},
	}
	statuses := []int{200, 200, 200, 2, 400, 200, 1, 0, 200, 2}
	for i := range 30 {
		sku := fmt.Sprintf("MH%02d-XS-Blue", i)
		for _, sv := range []string{"default", "french"} {
			st := statuses[(i+len(sv))%len(statuses)]
			row := dashboard.ItemRow{
				Feed: "products", FeedID: feedID(sku, sv), EntityID: fmt.Sprint(1000 + i),
				Identifiers: map[string]string{"sku": sku, "storeViewCode": sv},
				Status:      st, Attempts: 1, LastSync: now.Add(-time.Duration(i) * time.Minute),
			}
			switch st {
			case 2:
				row.Error, row.RequestID, row.Attempts = "HTTP 503 from feed service", fmt.Sprintf("req-%d-%s", i, sv), 3
			case 400:
				row.Error, row.RequestID = "invalid value for attribute color", fmt.Sprintf("req-%d-%s", i, sv)
			case 1:
				row.Error = "item rejected: name is required"
			}
			payload, _ := json.Marshal(map[string]any{"sku": sku, "storeViewCode": sv, "name": "Item " + sku, "productId": 1000 + i, "deleted": false})
			b.items = append(b.items, memItem{row: row, payload: payload})
		}
	}
	for i := range 8 {
		parent, child := fmt.Sprintf("MH%02d", i), fmt.Sprintf("MH%02d-XS-Blue", i)
		st := []int{200, 2, 200, 0}[i%4]
		row := dashboard.ItemRow{Feed: "variants", FeedID: feedID(parent, child), EntityID: fmt.Sprint(1000 + i),
			Identifiers: map[string]string{"parentSku": parent, "productSku": child}, Status: st, Attempts: 1, LastSync: now}
		if st == 2 {
			row.Error = "timeout"
		}
		payload, _ := json.Marshal(map[string]any{"parentSku": parent, "productSku": child})
		b.items = append(b.items, memItem{row: row, payload: payload})
	}
	for _, code := range []string{"color", "size", "material"} {
		row := dashboard.ItemRow{Feed: "productAttributes", FeedID: feedID(code, "default"), EntityID: code,
			Identifiers: map[string]string{"attributeCode": code, "storeViewCode": "default"}, Status: 200, LastSync: now}
		b.items = append(b.items, memItem{row: row, payload: json.RawMessage(`{"attributeCode":"` + code + `"}`)})
	}
	// one deleted item: not a source record any more
	b.items[len(b.items)-1].row.Deleted = true

	b.health = dashboard.Health{
		CheckedAt: now,
		Source:    dashboard.SourceStatus{Connected: true, Address: "127.0.0.1:3307", Flavor: "mariadb", Version: "10.11.6"},
		Sinks:     []dashboard.SinkStatus{{Name: "main", Kind: "kafka", Connected: true}},
		Checks: []dashboard.CheckResult{
			{Name: "binlog_format", Status: dashboard.CheckPass, Message: "binlog_format=ROW"},
			{Name: "binlog_row_metadata", Status: dashboard.CheckWarn, Message: "binlog_row_metadata=MINIMAL", Fix: "SET GLOBAL binlog_row_metadata=FULL"},
		},
		CheckpointAgeSeconds:   4 * 3600,
		BinlogRetentionSeconds: 24 * 3600,
	}
	return b
}

func (b *memBackend) feed(name string) (*memFeed, error) {
	for i := range b.feeds {
		if b.feeds[i].name == name {
			return &b.feeds[i], nil
		}
	}
	return nil, fmt.Errorf("feed %q: %w", name, dashboard.ErrNotFound)
}

// counts returns what the overview should show for feed.
func (b *memBackend) counts(feed string) dashboard.FeedStatus {
	var f dashboard.FeedStatus
	for _, it := range b.items {
		if it.row.Feed != feed {
			continue
		}
		if !it.row.Deleted {
			f.SourceRecords++
		}
		switch it.row.Status {
		case 200:
			f.Sent++
		case 2:
			f.Failed++
		case 400, 1:
			f.Rejected++
		case 0:
			f.Pending++
		}
		if it.row.LastSync.After(f.LastSync) {
			f.LastSync = it.row.LastSync
		}
	}
	return f
}

func (b *memBackend) Overview(ctx context.Context) (dashboard.Overview, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.failWith != nil {
		return dashboard.Overview{}, b.failWith
	}
	ov := dashboard.Overview{
		GeneratedAt: b.now,
		Source: dashboard.SourceStatus{Connected: b.health.Source.Connected, Address: "127.0.0.1:3307", Flavor: "mariadb", LagMS: 120, LagState: "streaming",
			Unavailable: b.sourceUnavailable},
		Checkpoint: dashboard.Checkpoint{Position: "gtid:0-1-1234 (mariadb-bin.000003:4567)", GTIDSet: "0-1-1234", File: "mariadb-bin.000003", Pos: 4567, StoredAt: b.now.Add(-2 * time.Second), AgeSeconds: 2},
	}
	for _, f := range b.feeds {
		st := b.counts(f.name)
		st.Name, st.Mode, st.LagMS, st.Resync, st.LastVerify = f.name, f.mode, f.lagMS, f.resync, f.lastVerify
		ov.Feeds = append(ov.Feeds, st)
	}
	ov.HA = b.ha
	return ov, nil
}

func (b *memBackend) Items(ctx context.Context, q dashboard.ItemQuery) (dashboard.ItemPage, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if q.Feed != "" {
		if _, err := b.feed(q.Feed); err != nil {
			return dashboard.ItemPage{}, err
		}
	}
	var rows []dashboard.ItemRow
	for _, it := range b.items {
		if (q.Feed == "" || it.row.Feed == q.Feed) && q.MatchStatus(it.row.Status) && q.MatchSKU(it.row.Identifiers) {
			rows = append(rows, it.row)
		}
	}
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].LastSync.After(rows[j].LastSync) })
	page := dashboard.ItemPage{Total: len(rows)}
	if q.Offset < len(rows) {
		page.Items = rows[q.Offset:min(len(rows), q.Offset+q.Limit)]
	}
	return page, nil
}

func (b *memBackend) Item(ctx context.Context, feed, id string) (json.RawMessage, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, it := range b.items {
		if it.row.Feed == feed && it.row.FeedID == id {
			return it.payload, nil
		}
	}
	return nil, fmt.Errorf("item %s of feed %s: %w", id, feed, dashboard.ErrNotFound)
}

func (b *memBackend) ScheduleResync(ctx context.Context, feed string, ids []string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, err := b.feed(feed); err != nil {
		return err
	}
	if b.busy[feed] {
		return fmt.Errorf("feed %s is locked by resync(4242): %w", feed, dashboard.ErrBusy)
	}
	b.resyncs = append(b.resyncs, resyncCall{Feed: feed, IDs: append([]string(nil), ids...)})
	// Scheduled items await submission, as in the connector.
	for i := range b.items {
		it := &b.items[i].row
		if it.Feed != feed {
			continue
		}
		if len(ids) == 0 {
			it.Status = 0
			continue
		}
		for _, id := range ids {
			if it.Identifiers["sku"] == id || it.Identifiers["productSku"] == id {
				it.Status = 0
			}
		}
	}
	return nil
}

func (b *memBackend) RetryFailed(ctx context.Context, feed string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, err := b.feed(feed); err != nil {
		return err
	}
	b.retries = append(b.retries, feed)
	return nil
}

func (b *memBackend) Health(ctx context.Context) (dashboard.Health, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.health, nil
}

func (b *memBackend) calls() ([]resyncCall, []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]resyncCall(nil), b.resyncs...), append([]string(nil), b.retries...)
}

// jobMemBackend is memBackend that runs resyncs as jobs, as the
// connector's backend does: a job advances one entity per poll (GET
// /api/jobs/{id}) until its total of 3, then reports a summary.
type jobMemBackend struct {
	*memBackend
	jmu   sync.Mutex
	jobs  map[string]*dashboard.Job
	polls int
	// requests are the jobs asked for, in order.
	requests []dashboard.JobRequest
}

func (b *jobMemBackend) StartJob(r dashboard.JobRequest) (dashboard.Job, error) {
	var err error
	switch r.Kind {
	case dashboard.JobResync:
		err = b.ScheduleResync(context.Background(), r.Feed, r.IDs)
	case dashboard.JobRetry:
		err = b.RetryFailed(context.Background(), r.Feed)
	default:
		err = fmt.Errorf("kind %s: %w", r.Kind, dashboard.ErrInvalid)
	}
	if err != nil {
		return dashboard.Job{}, err
	}
	b.jmu.Lock()
	defer b.jmu.Unlock()
	b.requests = append(b.requests, r)
	if b.jobs == nil {
		b.jobs = map[string]*dashboard.Job{}
	}
	j := &dashboard.Job{ID: fmt.Sprint(len(b.jobs) + 1), Kind: r.Kind, Feed: r.Feed, State: dashboard.JobRunning, Total: 3, StartedAt: b.now}
	b.jobs[j.ID] = j
	return *j, nil
}

func (b *jobMemBackend) Job(id string) (dashboard.Job, error) {
	b.jmu.Lock()
	defer b.jmu.Unlock()
	j, ok := b.jobs[id]
	if !ok {
		return dashboard.Job{}, fmt.Errorf("job %s: %w", id, dashboard.ErrNotFound)
	}
	b.polls++
	if j.State == dashboard.JobRunning {
		if j.Done++; j.Done == j.Total {
			j.State = dashboard.JobDone
			j.Result = json.RawMessage(`{"feed":"` + j.Feed + `","stats":{"keys":3,"built":3,"sent":3,"skipped":0,"failed":0,"rejected":0}}`)
			if j.Kind == dashboard.JobRetry {
				j.Result = json.RawMessage(`{"feed":"` + j.Feed + `","stats":{"keys":3,"built":3,"sent":2,"skipped":0,"failed":1,"rejected":0,"attention":0},"failed_now":1}`)
			}
		}
	}
	return *j, nil
}

// jobRequests returns the jobs asked for.
func (b *jobMemBackend) jobRequests() []dashboard.JobRequest {
	b.jmu.Lock()
	defer b.jmu.Unlock()
	return append([]dashboard.JobRequest(nil), b.requests...)
}

// pollCount is how many times the page asked for a job.
func (b *jobMemBackend) pollCount() int {
	b.jmu.Lock()
	defer b.jmu.Unlock()
	return b.polls
}

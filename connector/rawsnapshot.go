package connector

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/feedcdc/feedcdc/change"
	"github.com/feedcdc/feedcdc/connector/raw"
	"github.com/feedcdc/feedcdc/connector/rawsnap"
	"github.com/feedcdc/feedcdc/connector/snapshot"
	"github.com/feedcdc/feedcdc/dashboard"
	"github.com/feedcdc/feedcdc/internal/binpos"
	"github.com/feedcdc/feedcdc/state"
)

// Raw snapshots (DBLog / Flink CDC style, with binlog positions as
// watermarks). A chunk of a table is registered with the pipeline before it
// is read; from then on the binlog reader records every key of the table it
// reads. The chunk is read at a watermark (rawsnap.Reader); its rows are
// held until the reader has read every transaction up to the watermark,
// and every row whose key the reader saw change since the registration is
// dropped, because the streamed change is newer than (or as new as) the
// row. The remaining rows are then added to the current batch as op "r"
// records while the reader is held (snapWatch.mu), so that no streamed
// change of their keys can come between: in the topic, a snapshot row is
// always followed by every later change of its key, never preceded.

// Modes of a raw snapshot (its records' source.snapshot).
const (
	RawSnapInitial     = "initial"     // raw.snapshot: initial on a first start
	RawSnapIncremental = "incremental" // asked for later (CLI, dashboard, API)
)

// snapWatch is the pipeline's side of raw snapshots.
type snapWatch struct {
	// mu is held by the binlog reader through every Change, TxEnd,
	// Truncate and Replace, and by a snapshot while it adds a chunk's rows.
	mu sync.Mutex
	// pos is the position of the last transaction end read (at first the
	// stream's start position).
	pos change.Position
	// wake is closed at the next transaction end (nil: nobody waits).
	wake    chan struct{}
	pending *snapChunk
	// noReconcile (tests only) emits every row of a chunk, ignoring the
	// changes read between its registration and its watermark: it shows
	// that the reconciliation is what keeps snapshot rows from
	// overwriting newer changes.
	noReconcile bool
}

// snapChunk is the chunk being reconciled.
type snapChunk struct {
	db, table string
	// changedKeys are the keys changed since the registration, while the
	// chunk is read; rows (key -> index in the chunk) once it is held.
	changedKeys map[string]struct{}
	rows        map[string]int
	dropped     []bool
	// all: a TRUNCATE or a swap replaced the table; every row is dropped.
	all bool
}

// setStart records where the stream starts: a snapshot whose watermark is
// not after it needs no transaction end to be emitted.
func (w *snapWatch) setStart(pos change.Position) {
	w.mu.Lock()
	w.pos = pos
	w.mu.Unlock()
}

// read records a transaction end. Call with mu held.
func (w *snapWatch) read(pos change.Position) {
	w.pos = pos
	if w.wake != nil {
		close(w.wake)
		w.wake = nil
	}
}

// changed records the keys of a streamed change. Call with mu held.
func (w *snapWatch) changed(c *change.Change) {
	ch := w.pending
	if ch == nil || c.Table.Name != ch.table || c.Table.DB != ch.db || len(c.Table.PK) == 0 {
		return
	}
	mark := func(row []any) {
		if row == nil {
			return
		}
		k := string(raw.AppendKey(nil, &change.Change{Table: c.Table, After: row}))
		if ch.rows != nil {
			if i, ok := ch.rows[k]; ok {
				ch.dropped[i] = true
			}
			return
		}
		ch.changedKeys[k] = struct{}{}
	}
	// An update may change the key: both images' keys are newer.
	mark(c.Before)
	mark(c.After)
}

// replaced drops the pending chunk's rows when its table was truncated or
// replaced. Call with mu held.
func (w *snapWatch) replaced(t *change.Table) {
	if ch := w.pending; ch != nil && t.DB == ch.db && t.Name == ch.table {
		ch.all = true
	}
}

// snapBegin registers a chunk of t: the reader records its keys from now on.
func (p *Pipeline) snapBegin(t *rawsnap.Table) {
	p.snap.mu.Lock()
	p.snap.pending = &snapChunk{db: t.DB, table: t.Name, changedKeys: map[string]struct{}{}}
	p.snap.mu.Unlock()
}

// snapAbort forgets the registered chunk.
func (p *Pipeline) snapAbort() {
	p.snap.mu.Lock()
	p.snap.pending = nil
	p.snap.mu.Unlock()
}

// snapEmit holds the rows of the chunk registered by snapBegin until the
// reader has read up to its watermark, then adds the rows no streamed
// change made stale to the current batch as op "r" records (the last one
// with source.snapshot "last" when last is set), and prog — updated with
// the chunk's counts — to the batch that holds the last of them, so that
// it is stored with the checkpoint that covers them.
func (p *Pipeline) snapEmit(ctx context.Context, t *rawsnap.Table, ch rawsnap.Chunk, mode string, last bool, prog *state.RawSnapshot) (sent, dropped int, err error) {
	defer p.snapAbort()
	w := &p.snap
	w.mu.Lock()
	pc := w.pending
	pc.rows = make(map[string]int, len(ch.Rows))
	pc.dropped = make([]bool, len(ch.Rows))
	for i, row := range ch.Rows {
		k := string(raw.AppendKey(nil, &change.Change{Table: t.Table, After: row}))
		pc.rows[k] = i
		if _, ok := pc.changedKeys[k]; ok {
			pc.dropped[i] = true
		}
	}
	pc.changedKeys = nil
	for !binpos.Reached(w.pos, ch.Watermark) {
		if w.wake == nil {
			w.wake = make(chan struct{})
		}
		wake := w.wake
		w.mu.Unlock()
		select {
		case <-ctx.Done():
			return 0, 0, ctx.Err()
		case <-wake:
		}
		w.mu.Lock()
	}
	defer w.mu.Unlock()
	// The reader is held: nothing it reads next can come before these rows.
	source := "true"
	if mode == RawSnapIncremental {
		source = RawSnapIncremental
	}
	lastIdx := -1
	for i := range ch.Rows {
		if w.noReconcile || (!pc.all && !pc.dropped[i]) {
			lastIdx = i
		}
	}
	// the stream's topic and column rules (masks, key_columns) apply to
	// snapshot rows alike (the reader is held: its cache is ours now)
	rt := p.rawTableOf(t.Table)
	now := p.o.Now()
	for i, row := range ch.Rows {
		if !w.noReconcile && (pc.all || pc.dropped[i]) {
			dropped++
			continue
		}
		c := &change.Change{Table: t.Table, Op: change.OpRead, After: row,
			Source: change.Source{File: ch.Watermark.File, Pos: ch.Watermark.Pos, Row: i, Timestamp: now, Snapshot: source}}
		if last && i == lastIdx && mode == RawSnapInitial {
			c.Source.Snapshot = "last"
		}
		if err := p.addRaw(ctx, c, rt); err != nil {
			return sent, dropped, err
		}
		sent++
	}
	prog.Sent += int64(sent)
	prog.Dropped += int64(dropped)
	p.mu.Lock()
	p.cur.rawSnaps = append(p.cur.rawSnaps, *prog)
	p.mu.Unlock()
	return sent, dropped, nil
}

// putRawSnaps stores the progress a batch carries. A record a command
// paused or stopped meanwhile keeps that state; one replaced by a newer
// request (another Seq) is left alone.
func putRawSnaps(tx *state.Tx, snaps []state.RawSnapshot) error {
	for _, s := range snaps {
		stored, ok, err := tx.RawSnapshot(s.Table)
		if err != nil {
			return err
		}
		if ok {
			if stored.Seq != s.Seq {
				continue
			}
			if s.State == state.RawSnapRunning && (stored.State == state.RawSnapPaused || stored.State == state.RawSnapStopped) {
				s.State = stored.State
			}
		}
		if err := tx.PutRawSnapshot(s); err != nil {
			return err
		}
	}
	return nil
}

// RawSnapshotObserver receives the progress of raw snapshots (telemetry).
type RawSnapshotObserver interface {
	RawSnapshotProgress(table string, read, sent, dropped, total int64)
}

// Refusals of RequestRawSnapshot and ControlRawSnapshot that are the
// request's fault: a bad request, a snapshot of the table already running,
// no snapshot of the table.
var (
	ErrRawSnapshot        = errors.New("raw snapshot")
	ErrRawSnapshotBusy    = errors.New("raw snapshot running")
	ErrRawSnapshotUnknown = errors.New("no such raw snapshot")
)

// RawSnapshotRequest asks for the snapshot of one table.
type RawSnapshotRequest struct {
	Table string // "db.table"
	Where string // optional SQL condition
	Mode  string // RawSnapIncremental (default) or RawSnapInitial
	Last  bool   // the last table of an initial snapshot
}

// RequestRawSnapshot checks a request (raw streams on, the table captured,
// a primary key, a valid condition) and stores it; the running connector
// starts it after the snapshots queued before it, a stopped one on its
// next start.
func (c *Connector) RequestRawSnapshot(ctx context.Context, r RawSnapshotRequest) (state.RawSnapshot, error) {
	if !c.Config.Raw.Enabled {
		return state.RawSnapshot{}, fmt.Errorf("%w: raw streams are off: set raw.enabled: true", ErrRawSnapshot)
	}
	db, name, ok := strings.Cut(r.Table, ".")
	if !ok || db == "" || name == "" {
		return state.RawSnapshot{}, fmt.Errorf("%w: table %q: name it as db.table", ErrRawSnapshot, r.Table)
	}
	if !rawFilter(c.Config).Match(db, name) {
		return state.RawSnapshot{}, fmt.Errorf("%w: table %s is not captured (source.include_tables / exclude_tables): its raw stream would get no changes", ErrRawSnapshot, r.Table)
	}
	t, err := rawsnap.LoadTable(ctx, c.SourceDB, db, name)
	if err != nil {
		return state.RawSnapshot{}, fmt.Errorf("%w: %w", ErrRawSnapshot, err)
	}
	if strings.TrimSpace(r.Where) != "" {
		q := fmt.Sprintf("SELECT 1 FROM `%s`.`%s` WHERE (%s) LIMIT 0", strings.ReplaceAll(db, "`", "``"), strings.ReplaceAll(name, "`", "``"), r.Where)
		rows, err := c.SourceDB.QueryContext(ctx, q)
		if err != nil {
			return state.RawSnapshot{}, fmt.Errorf("%w: --where %q is not a valid condition on %s: %w", ErrRawSnapshot, r.Where, r.Table, err)
		}
		rows.Close()
	}
	if r.Mode == "" {
		r.Mode = RawSnapIncremental
	}
	var total int64
	if strings.TrimSpace(r.Where) == "" {
		_ = c.SourceDB.QueryRowContext(ctx, "SELECT COALESCE(TABLE_ROWS, 0) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?", db, name).Scan(&total)
	}
	var p state.RawSnapshot
	err = c.Store.Update(ctx, func(tx *state.Tx) error {
		all, err := tx.RawSnapshots()
		if err != nil {
			return err
		}
		var seq int64
		for _, s := range all {
			seq = max(seq, s.Seq)
			if s.Table == t.FullName() && (s.State == state.RawSnapRunning || s.State == state.RawSnapPaused) {
				return fmt.Errorf("%w: a snapshot of %s is already %s (%d rows read): stop it first (feedcdc snapshot --stop --table %s)", ErrRawSnapshotBusy, s.Table, s.State, s.Read, s.Table)
			}
		}
		now := time.Now().UTC()
		p = state.RawSnapshot{Table: t.FullName(), Where: r.Where, Mode: r.Mode, Last: r.Last, Seq: seq + 1, Total: total,
			State: state.RawSnapRunning, StartedAt: now, UpdatedAt: now}
		return tx.PutRawSnapshot(p)
	})
	if err != nil {
		return state.RawSnapshot{}, err
	}
	c.Logger.Info("raw snapshot requested", "table", p.Table, "mode", p.Mode, "where", p.Where, "estimated_rows", total)
	c.wakeRawSnapshots()
	return p, nil
}

// Actions of ControlRawSnapshot.
const (
	RawSnapPause  = "pause"
	RawSnapResume = "resume"
	RawSnapStop   = "stop"
)

// ControlRawSnapshot pauses, resumes or stops the snapshot of a table. A
// paused snapshot keeps its progress and resumes after its last chunk; a
// stopped one cannot be resumed (request a new one).
func (c *Connector) ControlRawSnapshot(ctx context.Context, table, action string) (state.RawSnapshot, error) {
	var p state.RawSnapshot
	err := c.Store.Update(ctx, func(tx *state.Tx) error {
		var ok bool
		var err error
		p, ok, err = tx.RawSnapshot(table)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("%w: there is no snapshot of %s", ErrRawSnapshotUnknown, table)
		}
		if p.State == state.RawSnapDone || p.State == state.RawSnapStopped {
			return fmt.Errorf("%w: the snapshot of %s is %s already", ErrRawSnapshot, table, p.State)
		}
		switch action {
		case RawSnapPause:
			p.State = state.RawSnapPaused
		case RawSnapResume:
			p.State = state.RawSnapRunning
		case RawSnapStop:
			p.State = state.RawSnapStopped
			p.FinishedAt = time.Now().UTC()
		default:
			return fmt.Errorf("%w: action %q: use pause, resume or stop", ErrRawSnapshot, action)
		}
		p.UpdatedAt = time.Now().UTC()
		return tx.PutRawSnapshot(p)
	})
	if err == nil {
		c.Logger.Info("raw snapshot "+p.State, "table", table)
		c.wakeRawSnapshots()
	}
	return p, err
}

// wakeRawSnapshots tells the snapshot runner to look for work.
func (c *Connector) wakeRawSnapshots() {
	select {
	case c.rawSnapWake() <- struct{}{}:
	default:
	}
}

func (c *Connector) rawSnapWake() chan struct{} {
	c.rawWakeOnce.Do(func() { c.rawWake = make(chan struct{}, 1) })
	return c.rawWake
}

// initialRawSnapshots requests the snapshot of every captured table (in
// name order) on a first start with raw.snapshot: initial.
func (c *Connector) initialRawSnapshots(ctx context.Context) error {
	rf := rawFilter(c.Config)
	rows, err := c.SourceDB.QueryContext(ctx, `SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES
		WHERE TABLE_TYPE = 'BASE TABLE' AND TABLE_SCHEMA NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys')
		ORDER BY TABLE_SCHEMA, TABLE_NAME`)
	if err != nil {
		return fmt.Errorf("raw.snapshot: initial: list the captured tables: %w", err)
	}
	var tables []string
	for rows.Next() {
		var db, name string
		if err := rows.Scan(&db, &name); err != nil {
			rows.Close()
			return err
		}
		if rf.Match(db, name) {
			tables = append(tables, db+"."+name)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for i, tn := range tables {
		if _, err := c.RequestRawSnapshot(ctx, RawSnapshotRequest{Table: tn, Mode: RawSnapInitial, Last: i == len(tables)-1}); err != nil {
			if errors.Is(err, ErrRawSnapshot) || errors.Is(err, ErrRawSnapshotBusy) {
				c.Logger.Warn("raw.snapshot: initial skips a table", "table", tn, "error", err)
				continue
			}
			return err
		}
	}
	return nil
}

// runRawSnapshots runs the stored snapshots that are running, one table at
// a time in request order, until ctx ends. A snapshot that fails is
// stopped with its error; streaming goes on.
func (c *Connector) runRawSnapshots(ctx context.Context) {
	// finished holds the snapshots (by Seq) that ended in this process:
	// their last progress may still wait in the exporter's queue.
	finished := map[int64]bool{}
	for {
		all, err := c.Store.RawSnapshots(ctx)
		if err != nil && ctx.Err() == nil {
			c.Logger.Error("raw snapshots: read their progress", "error", err)
		}
		var next *state.RawSnapshot
		for i := range all {
			if all[i].State == state.RawSnapRunning && !finished[all[i].Seq] && (next == nil || all[i].Seq < next.Seq) {
				next = &all[i]
			}
		}
		if next == nil {
			select {
			case <-ctx.Done():
				return
			case <-c.rawSnapWake():
				continue
			}
		}
		done, err := c.rawSnapshotTable(ctx, *next)
		if ctx.Err() != nil {
			return
		}
		if done {
			finished[next.Seq] = true
		}
		if err != nil {
			c.Logger.Error("raw snapshot failed; it is stopped (request it again once the cause is fixed)", "table", next.Table, "error", err)
			finished[next.Seq] = true
			fail, msg := *next, err.Error()
			if err := c.Store.Update(ctx, func(tx *state.Tx) error {
				cur, ok, err := tx.RawSnapshot(fail.Table)
				if err != nil || !ok || cur.Seq != fail.Seq {
					return err
				}
				cur.State, cur.Error, cur.FinishedAt = state.RawSnapStopped, msg, time.Now().UTC()
				return tx.PutRawSnapshot(cur)
			}); err != nil && ctx.Err() == nil {
				c.Logger.Error("raw snapshots: store a failure", "table", fail.Table, "error", err)
			}
		}
	}
}

// rawSnapshotTable runs one table's snapshot from its stored progress
// until it is done, paused, stopped or ctx ends; done reports the first.
func (c *Connector) rawSnapshotTable(ctx context.Context, prog state.RawSnapshot) (done bool, err error) {
	db, name, _ := strings.Cut(prog.Table, ".")
	rc := c.Config.Resync
	th := &snapshot.Throttle{RowsPerSecond: float64(rc.RowsPerSecond), MaxLag: rc.MaxReplicaLag.D(), Lag: c.replicaLag,
		Logger: c.Logger, Name: "raw snapshot of " + prog.Table}
	size := max(c.Config.Raw.SnapshotChunk, 1)
	reader := &rawsnap.Reader{DB: c.SourceDB, Flavor: c.sourceCfg.Flavor}
	defer reader.Close()
	obs, _ := c.observer.(RawSnapshotObserver)
	c.Logger.Info("raw snapshot running", "table", prog.Table, "mode", prog.Mode, "after_key", prog.LastKey, "read", prog.Read)
	for {
		// Paced first, so that a pause or stop that arrives meanwhile is
		// seen before the next chunk is read.
		if err := th.Wait(ctx, size); err != nil {
			return false, err
		}
		var stored state.RawSnapshot
		var ok bool
		if err := c.Store.View(ctx, func(tx *state.Tx) (err error) {
			stored, ok, err = tx.RawSnapshot(prog.Table)
			return err
		}); err != nil {
			return false, err
		}
		if !ok || stored.Seq != prog.Seq || stored.State != state.RawSnapRunning {
			return false, nil // paused, stopped or replaced
		}
		// The columns are read again for every chunk: a DDL on the table
		// during its snapshot changes the next chunk's rows as it changes
		// the stream's.
		var t *rawsnap.Table
		var ch rawsnap.Chunk
		err := c.retry.Do(ctx, "raw snapshot chunk of "+prog.Table, func(ctx context.Context) (err error) {
			if t, err = rawsnap.LoadTable(ctx, c.SourceDB, db, name); err != nil {
				return err
			}
			c.Pipeline.snapBegin(t)
			ch, err = reader.ReadChunk(ctx, t, prog.Where, prog.LastKey, size)
			return err
		})
		if err != nil {
			c.Pipeline.snapAbort()
			return false, err
		}
		next := prog
		next.Chunks++
		next.Read += int64(len(ch.Rows))
		if len(ch.LastKey) > 0 {
			next.LastKey = slices.Clone(ch.LastKey)
		}
		next.UpdatedAt = time.Now().UTC()
		if !ch.More {
			next.State = state.RawSnapDone
			next.FinishedAt = next.UpdatedAt
		}
		if _, _, err := c.Pipeline.snapEmit(ctx, t, ch, prog.Mode, prog.Last && !ch.More, &next); err != nil {
			return false, err
		}
		prog = next
		if obs != nil {
			obs.RawSnapshotProgress(prog.Table, prog.Read, prog.Sent, prog.Dropped, prog.Total)
		}
		if !ch.More {
			c.Logger.Info("raw snapshot done", "table", prog.Table, "read", prog.Read, "sent", prog.Sent, "dropped_for_newer_changes", prog.Dropped)
			return true, nil
		}
	}
}

// RawSnapshotsStatus is what status and GET /api/raw-snapshots report.
type RawSnapshotsStatus struct {
	Snapshots []state.RawSnapshot `json:"snapshots"`
}

var _ dashboard.RawSnapshotBackend = (*Backend)(nil)

// RawSnapshots implements dashboard.RawSnapshotBackend.
func (b *Backend) RawSnapshots(ctx context.Context) (any, error) {
	all, err := b.C.Store.RawSnapshots(ctx)
	return RawSnapshotsStatus{Snapshots: all}, err
}

// StartRawSnapshot implements dashboard.RawSnapshotBackend.
func (b *Backend) StartRawSnapshot(ctx context.Context, r dashboard.RawSnapshotRequest) (any, error) {
	p, err := b.C.RequestRawSnapshot(ctx, RawSnapshotRequest{Table: r.Table, Where: r.Where})
	return p, dashboardError(err)
}

// ControlRawSnapshot implements dashboard.RawSnapshotBackend.
func (b *Backend) ControlRawSnapshot(ctx context.Context, table, action string) (any, error) {
	p, err := b.C.ControlRawSnapshot(ctx, table, action)
	return p, dashboardError(err)
}

// dashboardError maps the refusals of raw snapshot requests to the API's.
func dashboardError(err error) error {
	switch {
	case errors.Is(err, ErrRawSnapshotBusy):
		return fmt.Errorf("%w (%w)", err, dashboard.ErrBusy)
	case errors.Is(err, ErrRawSnapshotUnknown):
		return fmt.Errorf("%w (%w)", err, dashboard.ErrNotFound)
	case errors.Is(err, ErrRawSnapshot):
		return fmt.Errorf("%w (%w)", err, dashboard.ErrInvalid)
	}
	return err
}

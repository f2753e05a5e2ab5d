package chaos

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/feedcdc/feedcdc/test/catalog"
	"github.com/feedcdc/feedcdc/test/kafkatest"
	"github.com/feedcdc/feedcdc/test/mysqltest"
)

// CountersTable is the table whose every change writes a new, globally
// unique value v, so that the raw checker can compare values, not only
// operations.
const CountersTable = "chaos_counters"

// Plan is what a scenario does. Faults happen while the workload runs.
type Plan struct {
	Scenario string
	Seed     int64
	Profile  catalog.Profile
	// Changes catalog changes at Rate per second (0: as fast as possible),
	// plus one counters change per CounterEvery catalog changes.
	Changes      int
	Rate         float64
	CounterEvery int
	// Kills SIGKILLs the connector this many times at random moments
	// (KillMin..KillMax after each start); the first kills fall into the
	// first full sync.
	Kills            int
	KillMin, KillMax time.Duration
	// Terms stops it with SIGTERM this many times (it must exit 0).
	Terms int
	// HTTPFailRate fails that fraction of the feed service's requests while
	// the workload runs.
	HTTPFailRate float64
	// Outage takes the feed service and the Kafka broker down for this
	// long, starting OutageAfter into the workload.
	Outage, OutageAfter time.Duration
	// KafkaPartial fails that fraction of produce requests of partitions
	// 0 and 1 (partition 2 is never failed) while the workload runs.
	KafkaPartial float64
	// KafkaBatchSize is the sink's batch_size (0: default): small values
	// split one send into several produce requests per partition.
	KafkaBatchSize int
	// SourceRestarts stops mariadbd (alternately SIGTERM and SIGKILL) and
	// starts it again this many times; the workload pauses while it is
	// down. KillReplicationEvery KILLs the connector's binlog connection
	// that often while the workload runs.
	SourceRestarts       int
	KillReplicationEvery time.Duration
	// Resyncs asks the running connector for this many whole-feed resyncs
	// of products (dashboard API), spread over the kills.
	Resyncs int
	// Legacy puts productOverrides in legacy mode (outbox flushed every 2 s).
	Legacy bool
	// DiskFullBlocks > 0 runs the connector with RLIMIT_FSIZE of that many
	// KiB (file sink and state file cannot grow past it) during the
	// workload; then it is restarted without the limit.
	DiskFullBlocks int
	// OSCTable, when set, is migrated gh-ost style (a ghost table filled
	// in chunks under load, then RENAME TABLE t TO _t_del, _t_gho TO t)
	// OSCAfter into the workload, and the connector is SIGKILLed right
	// after the RENAME; then each of TruncateTables is truncated under load,
	// each followed at once by a SIGKILL.
	OSCTable       string
	OSCAfter       time.Duration
	TruncateTables []string
	// NoProductDeletes leaves product deletions out of the workload: a
	// restart whose replay holds a deleted configurable product rebuilds
	// every products item, which would hide a missed rebuild after a swap.
	NoProductDeletes bool
	// CatchUp bounds the wait for the outputs to equal the database after
	// the faults (default 4 min).
	CatchUp time.Duration
}

// Summary is a scenario's outcome.
type Summary struct {
	Scenario       string
	Seed           int64
	Kills, Terms   int
	Resyncs        int // resyncs the dashboard accepted
	SourceRestarts int
	// Swaps counts online schema changes (RENAME cut-overs), Truncates
	// TRUNCATE TABLE statements, both under load.
	Swaps, Truncates int
	// TableRecords counts the truncate and replace records checked.
	TableRecords int
	// ReplicationKills counts KILLs of the connector's binlog connection.
	ReplicationKills int
	Changes          int // row changes checked in the raw streams
	Items            int // feed items checked
	Lost, Wrong      int
	OutOfOrder       int
	RawDuplicates    int
	FeedDuplicates   int
	RSSPeakMiB       float64
	CatchUpSeconds   float64
	// ExpectedBuildSeconds is the time the expected side's four resync
	// runs took (part of the catch-up: no check passes before it).
	ExpectedBuildSeconds float64
	Elapsed              time.Duration
	ServiceRequests      map[string]int
	// ProduceFailures counts produce requests the broker was made to fail.
	ProduceFailures int64
	// UnexpectedExits counts connector exits the suite did not cause
	// (allowed only while the disk is full).
	UnexpectedExits int
	// DiskFullErrors counts "file too large" errors in the connector log.
	DiskFullErrors int
	Detail         []string
}

// OK reports whether nothing was lost, wrong or out of order.
func (s Summary) OK() bool {
	return s.Lost == 0 && s.Wrong == 0 && s.OutOfOrder == 0 && s.UnexpectedExits == 0
}

func (s Summary) String() string {
	return fmt.Sprintf("scenario=%s seed=%d kills=%d terms=%d resyncs=%d source_restarts=%d replication_kills=%d swaps=%d truncates=%d table_records=%d changes_checked=%d items_checked=%d lost=%d wrong=%d out_of_order=%d duplicated=%d (raw %d, feeds %d) rss_peak_mib=%.0f catch_up_s=%.1f expected_build_s=%.1f produce_failures=%d disk_full_errors=%d unexpected_exits=%d elapsed=%s",
		s.Scenario, s.Seed, s.Kills, s.Terms, s.Resyncs, s.SourceRestarts, s.ReplicationKills, s.Swaps, s.Truncates, s.TableRecords, s.Changes, s.Items, s.Lost, s.Wrong, s.OutOfOrder, s.RawDuplicates+s.FeedDuplicates,
		s.RawDuplicates, s.FeedDuplicates, s.RSSPeakMiB, s.CatchUpSeconds, s.ExpectedBuildSeconds, s.ProduceFailures, s.DiskFullErrors, s.UnexpectedExits, s.Elapsed.Round(time.Second))
}

// Run runs one plan end to end: fresh database, broker, service and state.
// Its steps: set up, start the workload, inject the plan's faults, wait for
// the workload and end the faults, catch up (poll until the outputs equal
// the database), and sum up.
func (e *Env) Run(ctx context.Context, p Plan) (Summary, error) {
	r := &run{e: e, p: p.withDefaults(), start: time.Now(), sum: Summary{Scenario: p.Scenario, Seed: p.Seed}}
	r.rng = rand.New(rand.NewPCG(uint64(p.Seed), 13))
	defer r.close()
	if err := r.setUp(ctx); err != nil {
		return r.sum, err
	}
	wctx, wcancel := context.WithCancel(ctx)
	r.stopWorkload = wcancel
	r.startWorkload(wctx)
	if err := r.faults(ctx); err != nil {
		return r.sum, err
	}
	if err := r.endFaults(ctx); err != nil {
		return r.sum, err
	}
	raw, fr, err := r.catchUp(ctx)
	if err != nil {
		return r.sum, err
	}
	r.sumUp(raw, fr)
	return r.sum, nil
}

func (p Plan) withDefaults() Plan {
	if p.CatchUp <= 0 {
		p.CatchUp = 4 * time.Minute
	}
	if p.CounterEvery <= 0 {
		p.CounterEvery = 4
	}
	if p.KillMax <= 0 {
		p.KillMin, p.KillMax = 300*time.Millisecond, 2500*time.Millisecond
	}
	return p
}

// run is one Env.Run in progress: the plan, what it set up, the connector
// process of the moment and the summary so far.
type run struct {
	e     *Env
	p     Plan
	start time.Time
	sum   Summary
	rng   *rand.Rand

	dir, schema, cfgPath, dashAddr string
	admin                          *sql.DB
	svc                            *Service
	hs                             *httptest.Server
	kafka                          *kafkatest.Cluster
	from                           BinlogPos
	env                            []string
	rss                            *RSS
	starts                         int
	child                          *Child

	// The workload goroutine and what the faults share with it.
	stopWorkload    context.CancelFunc
	wg              sync.WaitGroup
	wlErr           error
	wlDone, oscDone atomic.Bool
	gate            sync.Mutex // a source restart waits for a workload chunk, and the chunk for it
	partial         atomic.Bool
	injected        atomic.Int64
	replKills       atomic.Int64
	killerDone      chan struct{}
	faultsEnd       time.Time
}

func (r *run) logPath() string { return filepath.Join(r.dir, "feedcdc.log") }

// close ends what setUp started, newest first.
func (r *run) close() {
	if r.stopWorkload != nil {
		r.stopWorkload()
	}
	if r.child != nil {
		r.child.Kill()
	}
	if r.kafka != nil {
		r.kafka.Close()
	}
	if r.hs != nil {
		r.hs.Close()
	}
	if r.admin != nil {
		r.admin.Close()
	}
}

// setUp creates the database (catalog and counters), the feed service,
// the broker and the connector's config, and starts the connector.
func (r *run) setUp(ctx context.Context) error {
	var err error
	if r.dir, err = os.MkdirTemp(r.e.Dir, r.p.Scenario+"-"); err != nil {
		return err
	}
	r.schema = fmt.Sprintf("chaos_%s_%d", strings.ReplaceAll(r.p.Scenario, "-", "_"), r.p.Seed)
	if r.admin, err = r.e.database(ctx, r.schema); err != nil {
		return err
	}
	if err := loadDatabase(ctx, r.admin, r.p); err != nil {
		return err
	}
	r.svc = NewService(feedIdentity, r.p.Seed)
	r.hs = httptest.NewServer(r.svc)
	if r.kafka, err = kafkatest.New(ctx, kafkatest.WithDataDir(filepath.Join(r.dir, "kafka"))); err != nil {
		return err
	}
	if r.from, err = CurrentBinlog(ctx, r.admin); err != nil {
		return err
	}
	if r.dashAddr, err = freeAddr(); err != nil {
		return err
	}
	r.cfgPath = filepath.Join(r.dir, "config.yaml")
	if err := os.WriteFile(r.cfgPath, []byte(r.e.config(r.p, r.schema, r.dir, r.kafka.Addr(), r.hs.URL, r.dashAddr, r.rng)), 0o600); err != nil {
		return err
	}
	r.env = []string{"CHAOS_SOURCE_PASSWORD=" + r.e.Server.CDCPassword, "FEEDCDC_DASHBOARD_TOKEN=" + dashToken}
	r.rss = &RSS{}
	return r.startChild(0)
}

// loadDatabase creates the catalog of the plan's profile and the counters
// table with 50 rows.
func loadDatabase(ctx context.Context, admin *sql.DB, p Plan) error {
	if err := catalog.CreateSchema(ctx, admin); err != nil {
		return fmt.Errorf("catalog schema: %w", err)
	}
	if _, err := catalog.Load(ctx, admin, p.Profile, p.Seed); err != nil {
		return fmt.Errorf("catalog load: %w", err)
	}
	if _, err := admin.ExecContext(ctx, "CREATE TABLE "+CountersTable+" (id INT PRIMARY KEY, v BIGINT NOT NULL)"); err != nil {
		return err
	}
	for i := 0; i < 50; i++ {
		if _, err := admin.ExecContext(ctx, "INSERT INTO "+CountersTable+" VALUES (?, ?)", i, i); err != nil {
			return err
		}
	}
	return nil
}

// startChild starts a connector process (with every file limited to fsize
// KiB when fsize > 0) as the current child.
func (r *run) startChild(fsize int) error {
	r.starts++
	c, err := r.e.StartChild([]string{"run", "-c", r.cfgPath}, r.env, r.logPath(), fsize)
	if err != nil {
		return err
	}
	r.rss.Watch(c, 200*time.Millisecond)
	r.child = c
	return nil
}

// killAndRestart SIGKILLs the current child and starts a new one.
func (r *run) killAndRestart() error {
	r.child.Kill()
	r.sum.Kills++
	return r.startChild(0)
}

func (r *run) sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// between is a random pause between two faults.
func (r *run) between() time.Duration {
	return r.p.KillMin + time.Duration(r.rng.Int64N(int64(r.p.KillMax-r.p.KillMin)+1))
}

// startWorkload runs the catalog and counters changes in one goroutine.
// An online schema change's steps wait for the connector, which takes
// longer on a loaded machine: the workload runs on until they are done.
func (r *run) startWorkload(ctx context.Context) {
	p := r.p
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer r.wlDone.Store(true)
		var wo catalog.WorkloadOptions
		if p.NoProductDeletes {
			wo.Weights = catalog.DefaultWeights()
			delete(wo.Weights, catalog.KindDeleteProduct)
		}
		wl := catalog.NewWorkload(r.admin, p.Seed, wo)
		counters := &counterChanges{admin: r.admin, v: 1000, rng: rand.New(rand.NewPCG(uint64(p.Seed), 14))}
		step := max(p.Changes/50, 1)
		for done := 0; done < p.Changes || (p.OSCTable != "" && !r.oscDone.Load() && ctx.Err() == nil); done += step {
			n := step
			if done < p.Changes {
				n = min(step, p.Changes-done)
			}
			if err := r.workloadChunk(ctx, wl, counters, n); err != nil {
				r.wlErr = err
				return
			}
		}
	}()
}

// workloadChunk runs n catalog changes and their share of counters
// changes while holding the gate.
func (r *run) workloadChunk(ctx context.Context, wl *catalog.Workload, counters *counterChanges, n int) error {
	r.gate.Lock()
	defer r.gate.Unlock()
	if _, err := wl.Run(ctx, n, r.p.Rate); err != nil {
		return fmt.Errorf("workload: %w", err)
	}
	for i := 0; i < max(n/r.p.CounterEvery, 1); i++ {
		if err := counters.next(ctx); err != nil {
			return fmt.Errorf("counters: %w", err)
		}
	}
	return nil
}

// counterChanges writes a new, globally unique value per change of the
// counters table: updates of rows 0..49, inserts and deletes of 50..59.
type counterChanges struct {
	admin *sql.DB
	v     int64
	rng   *rand.Rand
}

func (c *counterChanges) next(ctx context.Context) error {
	c.v++
	id := c.rng.IntN(60)
	var err error
	switch {
	case id >= 50 && c.rng.IntN(2) == 0:
		_, err = c.admin.ExecContext(ctx, "DELETE FROM "+CountersTable+" WHERE id = ?", id)
	case id >= 50:
		_, err = c.admin.ExecContext(ctx, "INSERT INTO "+CountersTable+" VALUES (?, ?) ON DUPLICATE KEY UPDATE v = VALUES(v)", id, c.v)
	default:
		_, err = c.admin.ExecContext(ctx, "UPDATE "+CountersTable+" SET v = ? WHERE id = ?", c.v, id)
	}
	return err
}

// faults injects the plan's faults, in this order, while the workload
// runs: a disk-full restart, HTTP and Kafka failures, kills (with
// resyncs), SIGTERMs, the online schema change and truncates, binlog
// connection kills, source restarts, and the outage.
func (r *run) faults(ctx context.Context) error {
	if r.p.DiskFullBlocks > 0 {
		if err := r.diskFull(); err != nil {
			return err
		}
	}
	if r.p.HTTPFailRate > 0 {
		r.svc.SetFailRate(r.p.HTTPFailRate)
	}
	if r.p.KafkaPartial > 0 {
		r.partial.Store(true)
		failPartitions(r.kafka, r.p.KafkaPartial, r.p.Seed, &r.partial, &r.injected)
	}
	steps := []func(context.Context) error{r.kills, r.terms, r.onlineSchemaChange}
	for _, step := range steps {
		if err := step(ctx); err != nil {
			return err
		}
	}
	if r.p.KillReplicationEvery > 0 {
		r.killReplication(ctx)
	}
	for _, step := range []func(context.Context) error{r.sourceRestarts, r.outage} {
		if err := step(ctx); err != nil {
			return err
		}
	}
	return nil
}

// diskFull lets the first start write its state, then restarts with every
// file limited to what the file sink's products.jsonl has now plus
// DiskFullBlocks KiB: the file sink runs out of "disk" soon, and the state
// file (bigger) as soon as it grows or writes past it.
func (r *run) diskFull() error {
	time.Sleep(4 * time.Second)
	if err := r.child.Term(2 * time.Minute); err != nil {
		return fmt.Errorf("stop before the disk-full run: %w", err)
	}
	r.sum.Terms++
	fi, err := os.Stat(filepath.Join(r.dir, "out", "products.jsonl"))
	if err != nil {
		return fmt.Errorf("the file sink wrote nothing before the disk-full run: %w", err)
	}
	limit := int(fi.Size()>>10) + r.p.DiskFullBlocks
	if err := r.startChild(limit); err != nil {
		return err
	}
	r.e.Log.Info("disk full: every file limited", "scenario", r.p.Scenario, "kib", limit)
	return nil
}

// kills SIGKILLs the connector Plan.Kills times, asking for the plan's
// resyncs spread over them.
func (r *run) kills(ctx context.Context) error {
	resyncAt := map[int]bool{}
	for i := 1; i <= r.p.Resyncs; i++ {
		resyncAt[i*r.p.Kills/(r.p.Resyncs+1)] = true
	}
	for i := 0; i < r.p.Kills; i++ {
		if resyncAt[i] {
			if err := requestResync(ctx, r.dashAddr); err != nil {
				r.sum.Detail = append(r.sum.Detail, "resync request: "+err.Error())
			} else {
				r.sum.Resyncs++
			}
		}
		if err := r.sleep(ctx, r.between()); err != nil {
			return err
		}
		if err := r.killAndRestart(); err != nil {
			return err
		}
	}
	return nil
}

// terms stops the connector with SIGTERM Plan.Terms times; it must exit 0.
func (r *run) terms(ctx context.Context) error {
	for i := 0; i < r.p.Terms; i++ {
		if err := r.sleep(ctx, r.between()); err != nil {
			return err
		}
		if err := r.child.Term(2 * time.Minute); err != nil {
			r.sum.Detail = append(r.sum.Detail, fmt.Sprintf("SIGTERM %d: %v (see %s)", i+1, err, r.logPath()))
			r.sum.Wrong++
		}
		r.sum.Terms++
		if err := r.startChild(0); err != nil {
			return err
		}
	}
	return nil
}

// onlineSchemaChange migrates Plan.OSCTable gh-ost style and SIGKILLs the
// connector right after the RENAME, then truncates each of
// Plan.TruncateTables, each followed at once by a SIGKILL.
func (r *run) onlineSchemaChange(ctx context.Context) error {
	if r.p.OSCTable == "" {
		return nil
	}
	// The statements must fall after the first start's full syncs: one
	// still running (or resumed after the kill) would rebuild every item
	// anyway and hide a missed rebuild.
	for waited := time.Duration(0); fullSyncsDone(r.logPath()) < len(FeedNames) && waited <= 2*time.Minute; waited += 100 * time.Millisecond {
		if err := r.sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
	if err := r.sleep(ctx, r.p.OSCAfter); err != nil {
		return err
	}
	if err := ghostMigration(ctx, r.admin, r.p.OSCTable, 400, 50*time.Millisecond, &r.gate); err != nil {
		return err
	}
	r.sum.Swaps++
	if err := r.killAndRestart(); err != nil { // right after the RENAME
		return err
	}
	if _, err := r.admin.ExecContext(ctx, "DROP TABLE `_"+r.p.OSCTable+"_del`"); err != nil {
		return fmt.Errorf("drop the old table after the cut-over: %w", err)
	}
	for _, t := range r.p.TruncateTables {
		if err := r.streaming(ctx); err != nil {
			return err
		}
		if _, err := r.admin.ExecContext(ctx, "TRUNCATE TABLE `"+t+"`"); err != nil {
			return fmt.Errorf("truncate %s: %w", t, err)
		}
		r.sum.Truncates++
		if err := r.killAndRestart(); err != nil { // right after the TRUNCATE
			return err
		}
	}
	r.oscDone.Store(true)
	return nil
}

// streaming waits until the current process has passed its preflight, then
// a second, so that a SIGKILL hits a connector that streams.
func (r *run) streaming(ctx context.Context) error {
	for waited := time.Duration(0); countLines(r.logPath(), `"msg":"preflight passed"`) < r.starts && waited < 2*time.Minute; waited += 100 * time.Millisecond {
		if err := r.sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
	return r.sleep(ctx, time.Second)
}

// killReplication KILLs the connector's binlog connection every
// Plan.KillReplicationEvery until the workload is done (in a goroutine
// that closes killerDone).
func (r *run) killReplication(ctx context.Context) {
	r.killerDone = make(chan struct{})
	go func() {
		defer close(r.killerDone)
		for !r.wlDone.Load() && ctx.Err() == nil {
			time.Sleep(r.p.KillReplicationEvery)
			var id int64
			err := r.admin.QueryRowContext(ctx, "SELECT ID FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%' AND USER = ? LIMIT 1", r.e.Server.CDCUser).Scan(&id)
			if err == nil {
				if _, err := r.admin.ExecContext(ctx, fmt.Sprintf("KILL CONNECTION %d", id)); err == nil {
					r.replKills.Add(1)
				}
			}
		}
	}()
}

// sourceRestarts stops mariadbd (alternately SIGTERM and SIGKILL) and
// starts it again Plan.SourceRestarts times, between workload chunks.
func (r *run) sourceRestarts(ctx context.Context) error {
	for i := 0; i < r.p.SourceRestarts; i++ {
		if err := r.sleep(ctx, r.between()); err != nil {
			return err
		}
		if err := r.restartSource(ctx, i%2 == 0); err != nil {
			return fmt.Errorf("source restart %d: %w", i+1, err)
		}
		r.sum.SourceRestarts++
	}
	return nil
}

func (r *run) restartSource(ctx context.Context, graceful bool) error {
	r.gate.Lock()
	defer r.gate.Unlock()
	stop := r.e.Server.Kill
	if graceful {
		stop = r.e.Server.Shutdown
	}
	if err := stop(); err != nil {
		return err
	}
	time.Sleep(time.Duration(1+r.rng.IntN(3)) * time.Second)
	return r.e.Server.Restart(ctx, mysqltest.Options{BaseDir: r.e.Dir})
}

// outage takes the feed service and the broker down for Plan.Outage,
// starting Plan.OutageAfter into the workload. The feed service goes down
// first and the broker once the service has refused a request (or after
// half the outage): with both down at once the exporter may block on the
// raw records' in-place retries before it ever reaches the service, and
// the outage would prove nothing about the feed side.
func (r *run) outage(ctx context.Context) error {
	if r.p.Outage <= 0 {
		return nil
	}
	if err := r.sleep(ctx, r.p.OutageAfter); err != nil {
		return err
	}
	r.svc.SetDown(true)
	downAt := time.Now()
	for r.svc.Stats()["503 (down)"] == 0 && time.Since(downAt) < r.p.Outage/2 {
		if err := r.sleep(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
	if err := r.kafka.Stop(); err != nil {
		return err
	}
	r.e.Log.Info("outage: feed service and Kafka broker down", "scenario", r.p.Scenario, "for", r.p.Outage)
	if err := r.sleep(ctx, r.p.Outage-time.Since(downAt)); err != nil {
		return err
	}
	if err := r.kafka.Restart(ctx); err != nil {
		return err
	}
	r.svc.SetDown(false)
	return nil
}

// endFaults waits for the workload (and the binlog connection killer),
// turns the injected failures off, restarts a disk-full connector without
// the limit, and restarts one that exited on its own (counted).
func (r *run) endFaults(ctx context.Context) error {
	r.wg.Wait()
	if r.killerDone != nil {
		<-r.killerDone
	}
	r.sum.ReplicationKills = int(r.replKills.Load())
	if r.wlErr != nil {
		return r.wlErr
	}
	r.svc.SetFailRate(0)
	r.partial.Store(false)
	if r.p.DiskFullBlocks > 0 {
		// Space freed: a restart without the limit. The process may have
		// exited on its own (EFBIG on the state file), which is allowed.
		select {
		case <-r.child.Done():
			r.sum.Detail = append(r.sum.Detail, "the connector exited while the disk was full (allowed; restarted)")
		default:
			r.child.Kill()
			r.sum.Kills++
		}
		if err := r.startChild(0); err != nil {
			return err
		}
		logText, _ := os.ReadFile(r.logPath())
		r.sum.DiskFullErrors = strings.Count(string(logText), "file too large")
	}
	select {
	case <-r.child.Done():
		if r.p.DiskFullBlocks == 0 {
			r.sum.UnexpectedExits++
			r.sum.Detail = append(r.sum.Detail, "the connector exited on its own during the faults (see its log); restarted")
			if err := r.startChild(0); err != nil {
				return err
			}
		}
	default:
	}
	r.faultsEnd = time.Now()
	return nil
}

// catchUp decodes the binlog into the expected raw changes, builds the
// expected feeds, and polls until the outputs equal them or Plan.CatchUp
// has passed since the faults ended.
func (r *run) catchUp(ctx context.Context) (RawResult, FeedResult, error) {
	want, seq, err := r.expectedRaw(ctx)
	if err != nil {
		return RawResult{}, FeedResult{}, err
	}
	// The expected feeds: a fresh full build by the binary into a state
	// and a file sink of its own (the database no longer changes).
	buildStart := time.Now()
	wantFeeds, err := r.e.ExpectedFeeds(ctx, filepath.Join(r.dir, "expected"), r.schema, 6_000_000+r.rng.Int64N(1_000_000), r.env)
	if err != nil {
		return RawResult{}, FeedResult{}, err
	}
	r.sum.ExpectedBuildSeconds = time.Since(buildStart).Seconds()
	check := func() (RawResult, FeedResult, error) {
		raw, err := CheckRaw(ctx, r.kafka, "chaos", r.schema, want, seq)
		if err != nil {
			return raw, FeedResult{}, err
		}
		fk, err := CheckFeedsKafka(ctx, r.kafka, "chaos", wantFeeds)
		if err != nil {
			return raw, fk, err
		}
		fk.add(CheckFeedsService(r.svc, wantFeeds, []string{"products", "productOverrides"}))
		return raw, fk, nil
	}
	deadline := r.faultsEnd.Add(r.p.CatchUp)
	for {
		raw, fr, cerr := check()
		if cerr == nil && raw.Lost+raw.Wrong+raw.OutOfOrder+fr.Lost+fr.Wrong == 0 {
			r.sum.CatchUpSeconds = time.Since(r.faultsEnd).Seconds()
			return raw, fr, nil
		}
		if err := r.restartIfExited(); err != nil {
			return raw, fr, err
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			if cerr != nil {
				r.sum.Detail = append(r.sum.Detail, "check: "+cerr.Error())
				r.sum.Lost++
			}
			r.sum.CatchUpSeconds = -1
			return raw, fr, nil
		}
		if err := r.sleep(ctx, 3*time.Second); err != nil {
			return raw, fr, err
		}
	}
}

// expectedRaw decodes the binlog since the scenario began and keeps the
// row changes after the connector's first stream start (seq).
func (r *run) expectedRaw(ctx context.Context) (want []rowEvent, seq uint64, err error) {
	all, err := DecodeBinlog(ctx, r.admin, r.e.DataDir(), r.schema, r.from)
	if err != nil {
		return nil, 0, err
	}
	seq, found, err := StreamStart(r.logPath())
	if err != nil || !found {
		return nil, 0, fmt.Errorf("no first-start position in the connector log %s (%v)", r.logPath(), err)
	}
	want = After(all, seq)
	var stmts []string
	for _, ev := range all {
		if ev.tableEvent() {
			stmts = append(stmts, fmt.Sprintf("%s@%d", ev.describe(), ev.Seq))
		}
	}
	r.e.Log.Info("binlog decoded", "scenario", r.p.Scenario, "row_changes", len(all), "stream_start_seq", seq, "checked", len(want), "table_statements", stmts)
	return want, seq, nil
}

// restartIfExited restarts a connector that exited on its own during the
// catch-up (counted unless the disk was full), at most 100 starts in all.
func (r *run) restartIfExited() error {
	select {
	case <-r.child.Done():
		if r.starts >= 100 {
			return nil
		}
		if r.p.DiskFullBlocks == 0 {
			r.sum.UnexpectedExits++
		}
		r.sum.Detail = append(r.sum.Detail, "the connector exited on its own (see its log); restarted")
		return r.startChild(0)
	default:
		return nil
	}
}

// sumUp stops the connector, fills the summary from the last check, and
// removes the scenario's files and database when it passed.
func (r *run) sumUp(raw RawResult, fr FeedResult) {
	sum := &r.sum
	if err := r.child.Term(2 * time.Minute); err != nil {
		sum.Detail = append(sum.Detail, "final SIGTERM: "+err.Error())
		sum.Wrong++
	}
	sum.Changes, sum.Items = raw.Checked, fr.Checked
	sum.TableRecords = raw.TableRecords
	sum.Lost += raw.Lost + fr.Lost
	sum.Wrong += raw.Wrong + fr.Wrong
	sum.OutOfOrder = raw.OutOfOrder
	sum.RawDuplicates, sum.FeedDuplicates = raw.Duplicated, fr.Duplicated
	sum.Detail = append(sum.Detail, raw.Detail...)
	sum.Detail = append(sum.Detail, fr.Detail...)
	sum.RSSPeakMiB = r.rss.PeakMiB()
	sum.ServiceRequests = r.svc.Stats()
	sum.ProduceFailures = r.injected.Load()
	sum.Elapsed = time.Since(r.start)
	if !sum.OK() {
		sum.Detail = append(sum.Detail, "connector log: "+r.logPath())
	} else {
		_ = os.RemoveAll(r.dir)
		_, _ = r.admin.ExecContext(context.Background(), "DROP DATABASE `"+r.schema+"`")
	}
}

// database creates schema and returns an admin pool on it.
func (e *Env) database(ctx context.Context, schema string) (*sql.DB, error) {
	root, err := sql.Open("mysql", e.Server.AdminDSN(""))
	if err != nil {
		return nil, err
	}
	defer root.Close()
	if _, err := root.ExecContext(ctx, "DROP DATABASE IF EXISTS `"+schema+"`"); err != nil {
		return nil, err
	}
	if _, err := root.ExecContext(ctx, "CREATE DATABASE `"+schema+"` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci"); err != nil {
		return nil, fmt.Errorf("create database %s: %w", schema, err)
	}
	db, err := sql.Open("mysql", e.Server.AdminDSN(schema))
	if err != nil {
		return nil, err
	}
	return db, nil
}

// config renders the connector's config.yaml: raw streams of every table
// and the four feeds to Kafka; products and productOverrides also to the
// HTTP feed service; fast retry schedules so that the catch-up is quick.
func (e *Env) config(p Plan, schema, dir, broker, svcURL, dashAddr string, rng *rand.Rand) string {
	var b strings.Builder
	fmt.Fprintf(&b, `name: chaos
source:
  host: 127.0.0.1
  port: %d
  user: %s
  password_env: CHAOS_SOURCE_PASSWORD
  server_id: %d
  heartbeat: 1s
  read_timeout: 10s
  start_position: current
state:
  path: %s
feeds:
  database: %s
`, e.Server.Port, e.Server.CDCUser, 7_000_000+rng.Int64N(1_000_000), filepath.Join(dir, "state", "state.db"), schema)
	retry := "retry_schedule: 1s, backoff_base: 1s, backoff_max: 2s"
	if p.DiskFullBlocks > 0 {
		fmt.Fprintf(&b, "  products: {sinks: [kafka, service, files], %s}\n", retry)
	} else {
		fmt.Fprintf(&b, "  products: {sinks: [kafka, service], %s}\n", retry)
	}
	fmt.Fprintf(&b, "  productAttributes: {sinks: [kafka], %s}\n", retry)
	fmt.Fprintf(&b, "  variants: {sinks: [kafka], %s}\n", retry)
	if p.Legacy {
		fmt.Fprintf(&b, "  productOverrides: {sinks: [kafka, service], mode: legacy, legacy_schedule: 2s, %s}\n", retry)
	} else {
		fmt.Fprintf(&b, "  productOverrides: {sinks: [kafka, service], %s}\n", retry)
	}
	batchSize := ""
	if p.KafkaBatchSize > 0 {
		batchSize = fmt.Sprintf("      batch_size: %d\n", p.KafkaBatchSize)
	}
	fmt.Fprintf(&b, `raw:
  enabled: true
  tombstones: false
  sinks: [kafka]
resync: {max_replica_lag: 0s, rows_per_second: 0}
sinks:
  kafka:
    type: kafka
    kafka:
      brokers: ["%s"]
      topic_prefix: chaos
      create_topics: true
      compact: false
      partitions: 3
      linger: 2ms
      write_timeout: 5s
%s  service:
    type: http
    http:
      base_url: %s
      timeout: 5s
      max_items_per_request: 50
  files:
    type: file
    file:
      dir: %s
telemetry: {listen: ""}
dashboard: {enabled: true, listen: "%s"}
log: {format: json, level: info}
`, broker, batchSize, svcURL, filepath.Join(dir, "out"), dashAddr)
	return b.String()
}

// failPartitions makes the broker fail a fraction of the produce requests
// of partitions 0 and 1 while on is set: some with a retriable error
// (kafka-go retries it itself), some with a non-retriable one (the batch
// fails; the sink reports it retryable), while other partitions of the same
// send succeed.
func failPartitions(kafka *kafkatest.Cluster, rate float64, seed int64, on *atomic.Bool, injected *atomic.Int64) {
	kc := kafka.Kfake()
	var mu sync.Mutex
	rng := rand.New(rand.NewPCG(uint64(seed), 15))
	kc.ControlKey(int16(kmsg.Produce), func(kr kmsg.Request) (kmsg.Response, error, bool) {
		kc.KeepControl()
		if !on.Load() {
			return nil, nil, false
		}
		req := kr.(*kmsg.ProduceRequest)
		fail := true
		for _, t := range req.Topics {
			for _, pt := range t.Partitions {
				if pt.Partition == 2 {
					fail = false
				}
			}
		}
		mu.Lock()
		if fail && rng.Float64() >= rate {
			fail = false
		}
		code := kerr.NotEnoughReplicas.Code
		if rng.IntN(2) == 0 {
			code = kerr.PolicyViolation.Code
		}
		mu.Unlock()
		if !fail {
			return nil, nil, false
		}
		injected.Add(1)
		resp := req.ResponseKind().(*kmsg.ProduceResponse)
		for _, rt := range req.Topics {
			st := kmsg.NewProduceResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				sp := kmsg.NewProduceResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
}

const dashToken = "chaos-dashboard-token"

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// requestResync asks the connector's dashboard for a whole-feed resync of
// products, retrying while the (just restarted) process is not listening
// yet or the feed is busy.
func requestResync(ctx context.Context, addr string) error {
	var last error
	// 409 while another operation holds the feed: after kills, the first
	// start's full syncs resume and hold their feeds until they finish,
	// which takes longer while all four run at once. Up to 90 s (the kills
	// wait meanwhile, so the sync can finish).
	for i := 0; i < 360; i++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/api/feeds/products/resync", strings.NewReader(`{"whole_feed":true}`))
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+dashToken)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusAccepted {
				return nil
			}
			err = fmt.Errorf("dashboard answered %s", resp.Status)
		}
		last = err
		time.Sleep(250 * time.Millisecond)
	}
	return last
}

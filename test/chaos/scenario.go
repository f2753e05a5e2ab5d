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
func (e *Env) Run(ctx context.Context, p Plan) (Summary, error) {
	start := time.Now()
	sum := Summary{Scenario: p.Scenario, Seed: p.Seed}
	if p.CatchUp <= 0 {
		p.CatchUp = 4 * time.Minute
	}
	if p.CounterEvery <= 0 {
		p.CounterEvery = 4
	}
	if p.KillMax <= 0 {
		p.KillMin, p.KillMax = 300*time.Millisecond, 2500*time.Millisecond
	}
	rng := rand.New(rand.NewPCG(uint64(p.Seed), 13))
	dir, err := os.MkdirTemp(e.Dir, p.Scenario+"-")
	if err != nil {
		return sum, err
	}
	schema := fmt.Sprintf("chaos_%s_%d", strings.ReplaceAll(p.Scenario, "-", "_"), p.Seed)
	admin, err := e.database(ctx, schema)
	if err != nil {
		return sum, err
	}
	defer admin.Close()
	if err := catalog.CreateSchema(ctx, admin); err != nil {
		return sum, fmt.Errorf("catalog schema: %w", err)
	}
	if _, err := catalog.Load(ctx, admin, p.Profile, p.Seed); err != nil {
		return sum, fmt.Errorf("catalog load: %w", err)
	}
	if _, err := admin.ExecContext(ctx, "CREATE TABLE "+CountersTable+" (id INT PRIMARY KEY, v BIGINT NOT NULL)"); err != nil {
		return sum, err
	}
	for i := 0; i < 50; i++ {
		if _, err := admin.ExecContext(ctx, "INSERT INTO "+CountersTable+" VALUES (?, ?)", i, i); err != nil {
			return sum, err
		}
	}
	svc := NewService(feedIdentity, p.Seed)
	hs := httptest.NewServer(svc)
	defer hs.Close()
	kafka, err := kafkatest.New(ctx, kafkatest.WithDataDir(filepath.Join(dir, "kafka")))
	if err != nil {
		return sum, err
	}
	defer kafka.Close()

	from, err := CurrentBinlog(ctx, admin)
	if err != nil {
		return sum, err
	}
	dashAddr, err := freeAddr()
	if err != nil {
		return sum, err
	}
	cfgPath := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfgPath, []byte(e.config(p, schema, dir, kafka.Addr(), hs.URL, dashAddr, rng)), 0o600); err != nil {
		return sum, err
	}
	env := []string{"CHAOS_SOURCE_PASSWORD=" + e.Server.CDCPassword, "FEEDCDC_DASHBOARD_TOKEN=" + dashToken}
	rss := &RSS{}
	starts := 0
	startChild := func(fsize int) (*Child, error) {
		starts++
		c, err := e.StartChild([]string{"run", "-c", cfgPath}, env, filepath.Join(dir, "feedcdc.log"), fsize)
		if err == nil {
			rss.Watch(c, 200*time.Millisecond)
		}
		return c, err
	}
	child, err := startChild(0)
	if err != nil {
		return sum, err
	}
	defer func() { child.Kill() }()

	// The workload: catalog changes and counters changes, in one goroutine.
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	var wlErr error
	var wlDone, oscDone atomic.Bool
	var gate sync.Mutex
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer wlDone.Store(true)
		var wo catalog.WorkloadOptions
		if p.NoProductDeletes {
			wo.Weights = catalog.DefaultWeights()
			delete(wo.Weights, catalog.KindDeleteProduct)
		}
		wl := catalog.NewWorkload(admin, p.Seed, wo)
		var v int64 = 1000
		crng := rand.New(rand.NewPCG(uint64(p.Seed), 14))
		step := max(p.Changes/50, 1)
		// An online schema change's steps wait for the connector, which
		// takes longer on a loaded machine: the workload runs on until
		// they are done.
		for done := 0; done < p.Changes || (p.OSCTable != "" && !oscDone.Load() && wctx.Err() == nil); done += step {
			n := step
			if done < p.Changes {
				n = min(step, p.Changes-done)
			}
			gate.Lock() // a source restart waits for the chunk, and the chunk for it
			_, err := wl.Run(wctx, n, p.Rate)
			if err != nil {
				gate.Unlock()
				wlErr = fmt.Errorf("workload: %w", err)
				return
			}
			for i := 0; i < max(n/p.CounterEvery, 1); i++ {
				v++
				id := crng.IntN(60) // 50..59: inserts of new rows and their deletes
				var err error
				switch {
				case id >= 50 && crng.IntN(2) == 0:
					_, err = admin.ExecContext(wctx, "DELETE FROM "+CountersTable+" WHERE id = ?", id)
				case id >= 50:
					_, err = admin.ExecContext(wctx, "INSERT INTO "+CountersTable+" VALUES (?, ?) ON DUPLICATE KEY UPDATE v = VALUES(v)", id, v)
				default:
					_, err = admin.ExecContext(wctx, "UPDATE "+CountersTable+" SET v = ? WHERE id = ?", v, id)
				}
				if err != nil {
					gate.Unlock()
					wlErr = fmt.Errorf("counters: %w", err)
					return
				}
			}
			gate.Unlock()
		}
	}()

	// Faults.
	if p.DiskFullBlocks > 0 {
		// Let the first start write its state, then restart with every
		// file limited to what the file sink's products.jsonl has now plus
		// DiskFullBlocks KiB: the file sink runs out of "disk" soon, and
		// the state file (bigger) as soon as it grows or writes past it.
		time.Sleep(4 * time.Second)
		if err := child.Term(2 * time.Minute); err != nil {
			return sum, fmt.Errorf("stop before the disk-full run: %w", err)
		}
		sum.Terms++
		fi, err := os.Stat(filepath.Join(dir, "out", "products.jsonl"))
		if err != nil {
			return sum, fmt.Errorf("the file sink wrote nothing before the disk-full run: %w", err)
		}
		limit := int(fi.Size()>>10) + p.DiskFullBlocks
		if child, err = startChild(limit); err != nil {
			return sum, err
		}
		e.Log.Info("disk full: every file limited", "scenario", p.Scenario, "kib", limit)
	}
	if p.HTTPFailRate > 0 {
		svc.SetFailRate(p.HTTPFailRate)
	}
	var partial atomic.Bool
	var injected, replKills atomic.Int64
	if p.KafkaPartial > 0 {
		partial.Store(true)
		failPartitions(kafka, p.KafkaPartial, p.Seed, &partial, &injected)
	}
	sleep := func(d time.Duration) error {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(d):
			return nil
		}
	}
	between := func() time.Duration {
		return p.KillMin + time.Duration(rng.Int64N(int64(p.KillMax-p.KillMin)+1))
	}
	resyncAt := map[int]bool{}
	for r := 1; r <= p.Resyncs; r++ {
		resyncAt[r*p.Kills/(p.Resyncs+1)] = true
	}
	for i := 0; i < p.Kills; i++ {
		if resyncAt[i] {
			if err := requestResync(ctx, dashAddr); err != nil {
				sum.Detail = append(sum.Detail, "resync request: "+err.Error())
			} else {
				sum.Resyncs++
			}
		}
		if err := sleep(between()); err != nil {
			return sum, err
		}
		child.Kill()
		sum.Kills++
		if child, err = startChild(0); err != nil {
			return sum, err
		}
	}
	for i := 0; i < p.Terms; i++ {
		if err := sleep(between()); err != nil {
			return sum, err
		}
		if err := child.Term(2 * time.Minute); err != nil {
			sum.Detail = append(sum.Detail, fmt.Sprintf("SIGTERM %d: %v (see %s)", i+1, err, filepath.Join(dir, "feedcdc.log")))
			sum.Wrong++
		}
		sum.Terms++
		if child, err = startChild(0); err != nil {
			return sum, err
		}
	}
	if p.OSCTable != "" {
		// The statements must fall after the first start's full syncs:
		// one still running (or resumed after the kill) would rebuild
		// every item anyway and hide a missed rebuild.
		for waited := time.Duration(0); ; waited += 100 * time.Millisecond {
			if fullSyncsDone(filepath.Join(dir, "feedcdc.log")) >= len(FeedNames) || waited > 2*time.Minute {
				break
			}
			if err := sleep(100 * time.Millisecond); err != nil {
				return sum, err
			}
		}
		if err := sleep(p.OSCAfter); err != nil {
			return sum, err
		}
		// Each SIGKILL is to hit a connector that streams: wait for the
		// current process's preflight, then a second.
		streaming := func() error {
			for waited := time.Duration(0); countLines(filepath.Join(dir, "feedcdc.log"), `"msg":"preflight passed"`) < starts && waited < 2*time.Minute; waited += 100 * time.Millisecond {
				if err := sleep(100 * time.Millisecond); err != nil {
					return err
				}
			}
			return sleep(time.Second)
		}
		if err := ghostMigration(ctx, admin, p.OSCTable, 400, 50*time.Millisecond, &gate); err != nil {
			return sum, err
		}
		sum.Swaps++
		child.Kill() // right after the RENAME
		sum.Kills++
		if child, err = startChild(0); err != nil {
			return sum, err
		}
		if _, err := admin.ExecContext(ctx, "DROP TABLE `_"+p.OSCTable+"_del`"); err != nil {
			return sum, fmt.Errorf("drop the old table after the cut-over: %w", err)
		}
		for _, t := range p.TruncateTables {
			if err := streaming(); err != nil {
				return sum, err
			}
			if _, err := admin.ExecContext(ctx, "TRUNCATE TABLE `"+t+"`"); err != nil {
				return sum, fmt.Errorf("truncate %s: %w", t, err)
			}
			sum.Truncates++
			child.Kill() // right after the TRUNCATE
			sum.Kills++
			if child, err = startChild(0); err != nil {
				return sum, err
			}
		}
		oscDone.Store(true)
	}
	var killerDone chan struct{}
	if p.KillReplicationEvery > 0 {
		killerDone = make(chan struct{})
		go func() {
			defer close(killerDone)
			for !wlDone.Load() && ctx.Err() == nil {
				time.Sleep(p.KillReplicationEvery)
				var id int64
				err := admin.QueryRowContext(ctx, "SELECT ID FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%' AND USER = ? LIMIT 1", e.Server.CDCUser).Scan(&id)
				if err == nil {
					if _, err := admin.ExecContext(ctx, fmt.Sprintf("KILL CONNECTION %d", id)); err == nil {
						replKills.Add(1)
					}
				}
			}
		}()
	}
	for i := 0; i < p.SourceRestarts; i++ {
		if err := sleep(between()); err != nil {
			return sum, err
		}
		gate.Lock()
		if i%2 == 0 {
			err = e.Server.Shutdown()
		} else {
			err = e.Server.Kill()
		}
		if err == nil {
			time.Sleep(time.Duration(1+rng.IntN(3)) * time.Second)
			err = e.Server.Restart(ctx, mysqltest.Options{BaseDir: e.Dir})
		}
		gate.Unlock()
		if err != nil {
			return sum, fmt.Errorf("source restart %d: %w", i+1, err)
		}
		sum.SourceRestarts++
	}
	if p.Outage > 0 {
		if err := sleep(p.OutageAfter); err != nil {
			return sum, err
		}
		// The feed service goes down first and the broker once the service
		// has refused a request (or after half the outage): with both down
		// at once the exporter may block on the raw records' in-place
		// retries before it ever reaches the service, and the outage would
		// prove nothing about the feed side.
		svc.SetDown(true)
		downAt := time.Now()
		for svc.Stats()["503 (down)"] == 0 && time.Since(downAt) < p.Outage/2 {
			if err := sleep(50 * time.Millisecond); err != nil {
				return sum, err
			}
		}
		if err := kafka.Stop(); err != nil {
			return sum, err
		}
		e.Log.Info("outage: feed service and Kafka broker down", "scenario", p.Scenario, "for", p.Outage)
		if err := sleep(p.Outage - time.Since(downAt)); err != nil {
			return sum, err
		}
		if err := kafka.Restart(ctx); err != nil {
			return sum, err
		}
		svc.SetDown(false)
	}
	wg.Wait()
	if killerDone != nil {
		<-killerDone
	}
	sum.ReplicationKills = int(replKills.Load())
	if wlErr != nil {
		return sum, wlErr
	}
	svc.SetFailRate(0)
	partial.Store(false)
	if p.DiskFullBlocks > 0 {
		// Space freed: a restart without the limit. The process may have
		// exited on its own (EFBIG on the state file), which is allowed.
		select {
		case <-child.Done():
			sum.Detail = append(sum.Detail, "the connector exited while the disk was full (allowed; restarted)")
		default:
			child.Kill()
			sum.Kills++
		}
		if child, err = startChild(0); err != nil {
			return sum, err
		}
		logText, _ := os.ReadFile(filepath.Join(dir, "feedcdc.log"))
		sum.DiskFullErrors = strings.Count(string(logText), "file too large")
	}
	select {
	case <-child.Done():
		if p.DiskFullBlocks == 0 {
			sum.UnexpectedExits++
			sum.Detail = append(sum.Detail, "the connector exited on its own during the faults (see its log); restarted")
			if child, err = startChild(0); err != nil {
				return sum, err
			}
		}
	default:
	}
	faultsEnd := time.Now()

	// Catch up: poll until the outputs equal the database.
	all, err := DecodeBinlog(ctx, admin, e.DataDir(), schema, from)
	if err != nil {
		return sum, err
	}
	seq, found, err := StreamStart(filepath.Join(dir, "feedcdc.log"))
	if err != nil || !found {
		return sum, fmt.Errorf("no first-start position in the connector log %s (%v)", filepath.Join(dir, "feedcdc.log"), err)
	}
	want := After(all, seq)
	var stmts []string
	for _, ev := range all {
		if ev.tableEvent() {
			stmts = append(stmts, fmt.Sprintf("%s@%d", ev.describe(), ev.Seq))
		}
	}
	e.Log.Info("binlog decoded", "scenario", p.Scenario, "row_changes", len(all), "stream_start_seq", seq, "checked", len(want), "table_statements", stmts)
	// The expected feeds: a fresh full build by the binary into a state
	// and a file sink of its own (the database no longer changes).
	buildStart := time.Now()
	wantFeeds, err := e.ExpectedFeeds(ctx, filepath.Join(dir, "expected"), schema, 6_000_000+rng.Int64N(1_000_000), env)
	if err != nil {
		return sum, err
	}
	sum.ExpectedBuildSeconds = time.Since(buildStart).Seconds()
	check := func() (RawResult, FeedResult, error) {
		raw, err := CheckRaw(ctx, kafka, "chaos", schema, want, seq)
		if err != nil {
			return raw, FeedResult{}, err
		}
		fk, err := CheckFeedsKafka(ctx, kafka, "chaos", wantFeeds)
		if err != nil {
			return raw, fk, err
		}
		fk.add(CheckFeedsService(svc, wantFeeds, []string{"products", "productOverrides"}))
		return raw, fk, nil
	}
	var raw RawResult
	var fr FeedResult
	deadline := faultsEnd.Add(p.CatchUp)
	for {
		var cerr error
		cctx, ccancel := context.WithTimeout(ctx, time.Minute)
		raw, fr, cerr = func() (RawResult, FeedResult, error) { defer ccancel(); _ = cctx; return check() }()
		if cerr == nil && raw.Lost+raw.Wrong+raw.OutOfOrder+fr.Lost+fr.Wrong == 0 {
			sum.CatchUpSeconds = time.Since(faultsEnd).Seconds()
			break
		}
		select {
		case <-child.Done():
			if starts < 100 {
				if p.DiskFullBlocks == 0 {
					sum.UnexpectedExits++
				}
				sum.Detail = append(sum.Detail, "the connector exited on its own (see its log); restarted")
				if child, err = startChild(0); err != nil {
					return sum, err
				}
			}
		default:
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			if cerr != nil {
				sum.Detail = append(sum.Detail, "check: "+cerr.Error())
				sum.Lost++
			}
			sum.CatchUpSeconds = -1
			break
		}
		if err := sleep(3 * time.Second); err != nil {
			return sum, err
		}
	}
	if err := child.Term(2 * time.Minute); err != nil {
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
	sum.RSSPeakMiB = rss.PeakMiB()
	sum.ServiceRequests = svc.Stats()
	sum.ProduceFailures = injected.Load()
	sum.Elapsed = time.Since(start)
	if !sum.OK() {
		sum.Detail = append(sum.Detail, "connector log: "+filepath.Join(dir, "feedcdc.log"))
	} else {
		_ = os.RemoveAll(dir)
		_, _ = admin.ExecContext(context.Background(), "DROP DATABASE `"+schema+"`")
	}
	return sum, nil
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

package connector

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/feedcdc/feedcdc/change"
	"github.com/feedcdc/feedcdc/feeds"
	"github.com/feedcdc/feedcdc/sink"
	"github.com/feedcdc/feedcdc/sink/kafkasink"
	"github.com/feedcdc/feedcdc/state"
	"github.com/feedcdc/feedcdc/test/catalog"
	"github.com/feedcdc/feedcdc/test/kafkatest"
	"github.com/feedcdc/feedcdc/test/mysqltest"
	_ "github.com/go-sql-driver/mysql"
)

var srv *mysqltest.Server

func TestMain(m *testing.M) {
	if os.Getenv("FEEDCDC_SYNC_CHILD") != "" {
		os.Exit(syncChild())
	}
	if os.Getenv("FEEDCDC_CRASH_CHILD") != "" {
		os.Exit(crashChild())
	}
	_, statErr := os.Stat("feedcdc-data")
	code := mysqltest.Main(m, mysqltest.Options{}, &srv)
	if _, err := os.Stat("feedcdc-data"); err == nil && statErr != nil {
		// The default file sink (feedcdc-data/out) wrote into the package
		// directory: a test's connector has no sinks: section of its own
		// outside connectorYAML. Give it one under t.TempDir().
		fmt.Fprintln(os.Stderr, "FAIL: a test wrote connector/feedcdc-data (the default file sink's relative directory); give its connector a file sink under t.TempDir() and delete the folder")
		code = 1
	}
	os.Exit(code)
}

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type testEnv struct {
	db     string
	admin  *sql.DB
	src    *sql.DB
	reg    *feeds.Registry
	store  *state.Store
	kafka  *kafkatest.Cluster
	sink   sink.Sink
	p      *Pipeline
	logs   *syncBuffer
	cancel context.CancelFunc
	runErr chan error
}

func newEnv(t *testing.T, policies map[string]FeedPolicy, wrap func(sink.Sink) sink.Sink, opts ...func(*PipelineOptions)) *testEnv {
	t.Helper()
	ctx := context.Background()
	e := &testEnv{db: srv.NewDatabase(t, "pipe"), logs: &syncBuffer{}}
	e.admin = srv.Admin(t, e.db)
	if err := catalog.CreateSchema(ctx, e.admin); err != nil {
		t.Fatal(err)
	}
	if _, err := catalog.Load(ctx, e.admin, catalog.Tiny(), 7); err != nil {
		t.Fatal(err)
	}
	var err error
	e.src, err = sql.Open("mysql", srv.CDCDSN(e.db))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.src.Close() })
	e.reg, err = feeds.NewRegistry(feeds.Config{DB: e.src, Database: e.db})
	if err != nil {
		t.Fatal(err)
	}
	e.store, err = state.Open(filepath.Join(t.TempDir(), "state.db"), state.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.store.Close() })
	e.kafka = kafkatest.Start(t)
	ks, err := kafkasink.New(kafkasink.Config{Name: "kafka", Brokers: []string{e.kafka.Addr()}, TopicPrefix: "shop",
		CreateTopics: true, Partitions: 1, Compact: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ks.Close() })
	e.sink = ks
	if wrap != nil {
		e.sink = wrap(ks)
	}
	logger := slog.New(slog.NewJSONHandler(e.logs, nil))
	po := PipelineOptions{Logger: logger, Store: e.store, Registry: e.reg, Sink: e.sink, Policies: policies,
		Window: 50 * time.Millisecond, SendBackoff: sink.Backoff{Initial: time.Millisecond, Max: 5 * time.Millisecond, MaxAttempts: 3}}
	for _, o := range opts {
		o(&po)
	}
	e.p, err = NewPipeline(po)
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	e.cancel = cancel
	e.runErr = make(chan error, 1)
	go func() { e.runErr <- e.p.Run(rctx) }()
	t.Cleanup(func() {
		cancel()
		<-e.runErr
	})
	return e
}

func (e *testEnv) records(t *testing.T, feed string) map[string]kafkatest.Record {
	t.Helper()
	recs, err := e.kafka.ReadAll(context.Background(), "shop."+feed)
	if err != nil {
		if strings.Contains(err.Error(), "UNKNOWN_TOPIC") || strings.Contains(err.Error(), "Unknown Topic") {
			return map[string]kafkatest.Record{}
		}
		t.Fatal(err)
	}
	latest := map[string]kafkatest.Record{}
	for _, r := range recs {
		latest[string(r.Key)] = r
	}
	return latest
}

func productTable(db string) *change.Table {
	return &change.Table{DB: db, Name: "catalog_product_entity", Columns: []change.Column{
		{Name: "entity_id", Type: "int", Unsigned: true}, {Name: "attribute_set_id"}, {Name: "type_id"}, {Name: "sku"}}, PK: []int{0}}
}

func TestResyncThenStreamChangeThenDedup(t *testing.T) {
	e := newEnv(t, nil, nil)
	ctx := context.Background()
	res, err := e.p.Resync(ctx, ResyncOptions{Feed: "products", BatchSize: 50, ThreadCount: 2})
	if err != nil {
		t.Fatal(err)
	}
	counts, _ := e.store.Counts(ctx, "products")
	recs := e.records(t, "products")
	if res.Stats.Sent == 0 || int64(res.Stats.Sent) != counts.Sent || len(recs) != res.Stats.Sent {
		t.Fatalf("resync sent %d, state has %d sent, topic has %d keys", res.Stats.Sent, counts.Sent, len(recs))
	}
	prog, ok, _ := e.store.Progress(ctx, "products")
	if !ok || !prog.Finished() || prog.Processed == 0 {
		t.Fatalf("progress %+v", prog)
	}

	// A second full sync finds nothing changed.
	res2, err := e.p.Resync(ctx, ResyncOptions{Feed: "products", BatchSize: 50})
	if err != nil {
		t.Fatal(err)
	}
	if res2.Stats.Sent != 0 || res2.Stats.Skipped != res.Stats.Sent {
		t.Fatalf("second resync: %+v, want 0 sent and %d skipped", res2.Stats, res.Stats.Sent)
	}

	// Change a product's name at the default scope and stream the change.
	var id int64
	var sku string
	if err := e.admin.QueryRow("SELECT entity_id, sku FROM catalog_product_entity WHERE type_id='simple' ORDER BY entity_id LIMIT 1").Scan(&id, &sku); err != nil {
		t.Fatal(err)
	}
	if _, err := e.admin.Exec("UPDATE catalog_product_entity SET sku = CONCAT(sku, '-renamed') WHERE entity_id = ?", id); err != nil {
		t.Fatal(err)
	}
	tbl := productTable(e.db)
	c := &change.Change{Table: tbl, Op: change.OpUpdate, Before: []any{id, int64(4), "simple", sku}, After: []any{id, int64(4), "simple", sku + "-renamed"}}
	if err := e.p.Change(ctx, c); err != nil {
		t.Fatal(err)
	}
	pos := change.Position{Flavor: "mariadb", GTIDSet: "0-1-77", File: "binlog.000001", Pos: 4242}
	if err := e.p.TxEnd(ctx, change.TxEnd{Position: pos, Timestamp: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := e.p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	cp, _, ok, err := e.store.Checkpoint(ctx)
	if err != nil || !ok || cp != pos {
		t.Fatalf("checkpoint %v %v %v, want %v", cp, ok, err, pos)
	}
	recs = e.records(t, "products")
	var renamed, deleted int
	for _, r := range recs {
		var item map[string]any
		if err := json.Unmarshal(r.Value, &item); err != nil {
			t.Fatal(err)
		}
		if item["sku"] == sku+"-renamed" {
			renamed++
		}
		if item["sku"] == sku && item["deleted"] == true {
			deleted++
		}
	}
	// The SKU is part of the identity: the old identity is deleted once and
	// the new one appears for each store view of the product's website.
	if renamed == 0 || deleted != renamed {
		t.Fatalf("renamed items %d, deleted old-identity items %d", renamed, deleted)
	}
}

func TestLegacyModeSendsOnlyOnFlush(t *testing.T) {
	e := newEnv(t, map[string]FeedPolicy{"productAttributes": {Mode: ModeLegacy}}, nil)
	ctx := context.Background()
	res, err := e.p.Resync(ctx, ResyncOptions{Feed: "productAttributes", BatchSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	if res.Stats.Sent == 0 {
		t.Fatal("nothing built")
	}
	if n := len(e.records(t, "productAttributes")); n != 0 {
		t.Fatalf("%d records in Kafka before the legacy flush", n)
	}
	if n, _ := e.store.OutboxLen(ctx, "productAttributes"); n != res.Stats.Sent {
		t.Fatalf("outbox %d, want %d", n, res.Stats.Sent)
	}
	st, err := e.p.FlushOutbox(ctx, "productAttributes", 40)
	if err != nil {
		t.Fatal(err)
	}
	if st.Sent != res.Stats.Sent {
		t.Fatalf("flush sent %d, want %d", st.Sent, res.Stats.Sent)
	}
	if n := len(e.records(t, "productAttributes")); n != res.Stats.Sent {
		t.Fatalf("%d records after flush, want %d", n, res.Stats.Sent)
	}
	if n, _ := e.store.OutboxLen(ctx, "productAttributes"); n != 0 {
		t.Fatalf("outbox not emptied: %d", n)
	}
	if !strings.Contains(e.logs.String(), "(legacy)") {
		t.Fatalf("legacy operations not labelled in logs:\n%s", e.logs.String())
	}
}

// flaky fails a deterministic share of items with retryable or final
// errors, as a destination under load would.
type flaky struct {
	sink.Sink
	mu       sync.Mutex
	failRate map[string]int // item id -> remaining retryable failures
	reject   map[string]bool
	refuse   map[string]bool // item id -> its request is refused (HTTP 422)
}

func (f *flaky) Send(ctx context.Context, recs []sink.Record) ([]sink.Result, error) {
	f.mu.Lock()
	var pass []sink.Record
	var idx []int
	out := make([]sink.Result, len(recs))
	for i, r := range recs {
		switch {
		case f.reject[r.ID]:
			out[i] = sink.Result{Status: sink.StatusRejected, Reason: "invalid: /0/sku: rejected by test", ItemRejected: true}
		case f.refuse[r.ID]:
			out[i] = sink.Result{Status: sink.StatusRejected, Reason: "HTTP 422: invalid api key"}
		case f.failRate[r.ID] > 0:
			f.failRate[r.ID]--
			out[i] = sink.Result{Status: sink.StatusRetryable, Reason: "HTTP 503"}
		default:
			pass = append(pass, r)
			idx = append(idx, i)
		}
	}
	f.mu.Unlock()
	if len(pass) > 0 {
		res, err := f.Sink.Send(ctx, pass)
		if err != nil {
			return nil, err
		}
		for j, i := range idx {
			out[i] = res[j]
		}
	}
	return out, nil
}

// TestRejectionStatusComesFromTheSink: an item the service rejects on its
// own gets status 1, an item whose whole request is refused gets 400, even
// when the refusal's text says "invalid" (status 1 used to be guessed from
// the reason text).
func TestRejectionStatusComesFromTheSink(t *testing.T) {
	fl := &flaky{failRate: map[string]int{}, reject: map[string]bool{}, refuse: map[string]bool{}}
	e := newEnv(t, nil, func(s sink.Sink) sink.Sink { fl.Sink = s; return fl })
	ctx := context.Background()
	dry, err := e.p.Resync(ctx, ResyncOptions{Feed: "products", DryRun: true, SampleSize: 100000})
	if err != nil {
		t.Fatal(err)
	}
	for i, it := range dry.Sample {
		switch i % 4 {
		case 0:
			fl.reject[it.ID] = true
		case 1:
			fl.refuse[it.ID] = true
		}
	}
	if _, err := e.p.Resync(ctx, ResyncOptions{Feed: "products", BatchSize: 30}); err != nil {
		t.Fatal(err)
	}
	for status, want := range map[int]map[string]bool{state.StatusRejectedByService: fl.reject, state.StatusRejected: fl.refuse} {
		items, _, err := e.store.ListItems(ctx, state.ListQuery{Feed: "products", Statuses: []int{status}, Limit: 100000})
		if err != nil {
			t.Fatal(err)
		}
		if len(items) != len(want) || len(want) == 0 {
			t.Fatalf("%d items with status %d, want %d", len(items), status, len(want))
		}
		for _, it := range items {
			if !want[it.ID] {
				t.Fatalf("item %s has status %d (%s)", it.ID, status, it.LastError)
			}
		}
	}
}

func TestFailedItemsAreRetriedAndRejectedOnesRecorded(t *testing.T) {
	fl := &flaky{failRate: map[string]int{}, reject: map[string]bool{}}
	e := newEnv(t, map[string]FeedPolicy{"products": {BackoffBase: time.Millisecond, BackoffMax: time.Millisecond}},
		func(s sink.Sink) sink.Sink { fl.Sink = s; return fl })
	ctx := context.Background()
	// Dry run first, to learn the item ids and pick who fails.
	dry, err := e.p.Resync(ctx, ResyncOptions{Feed: "products", DryRun: true, SampleSize: 100000})
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := e.store.Counts(ctx, "products"); n.Total != 0 {
		t.Fatalf("dry run persisted %d items", n.Total)
	}
	for i, it := range dry.Sample {
		switch {
		case i%20 == 0:
			fl.reject[it.ID] = true
		case i%3 == 0:
			fl.failRate[it.ID] = 4 // more than the 3 in-place attempts
		}
	}
	res, err := e.p.Resync(ctx, ResyncOptions{Feed: "products", BatchSize: 30})
	if err != nil {
		t.Fatal(err)
	}
	counts, _ := e.store.Counts(ctx, "products")
	if counts.Failed == 0 || counts.Rejected != int64(len(fl.reject)) || int64(res.Stats.Failed) != counts.Failed {
		t.Fatalf("after sync: %+v (stats %+v, %d rejects planned)", counts, res.Stats, len(fl.reject))
	}
	time.Sleep(5 * time.Millisecond)
	if _, err := e.p.RetryFailed(ctx, "products", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	counts, _ = e.store.Counts(ctx, "products")
	if counts.Failed != 0 || counts.Rejected != int64(len(fl.reject)) || counts.Sent != counts.Total-counts.Rejected {
		t.Fatalf("after retry: %+v", counts)
	}
	items, _, err := e.store.ListItems(ctx, state.ListQuery{Feed: "products", Statuses: []int{state.StatusRejectedByService}, Limit: 1000})
	if err != nil || len(items) != len(fl.reject) || !strings.Contains(items[0].LastError, "rejected by test") {
		t.Fatalf("rejected items %d (%v): %+v", len(items), err, items[:min(1, len(items))])
	}
	if n := len(e.records(t, "products")); int64(n) != counts.Sent {
		t.Fatalf("topic has %d keys, state says %d sent", n, counts.Sent)
	}
}

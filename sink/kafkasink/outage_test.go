package kafkasink

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/feedcdc/feedcdc/sink"
	"github.com/feedcdc/feedcdc/test/kafkatest"
)

// sendBounded runs Send and fails the test if it does not return at all
// (a hung kafka-go writer), long after its write_timeout.
func sendBounded(t *testing.T, s *Sink, recs []sink.Record) []sink.Result {
	t.Helper()
	type out struct {
		res []sink.Result
		err error
	}
	ch := make(chan out, 1)
	go func() {
		res, err := s.Send(context.Background(), recs)
		ch <- out{res, err}
	}()
	select {
	case o := <-ch:
		if o.err != nil {
			t.Fatalf("Send: %v", o.err)
		}
		return o.res
	case <-time.After(2 * time.Minute):
		t.Fatal("Send did not return: the writer hangs past write_timeout")
		return nil
	}
}

// The broker goes down mid-stream and comes back on the same address with its
// log: while it is down every record is reported Retryable (and Send
// returns); after it returns, retrying delivers everything, and nothing sent
// before, during or after the outage is missing.
func TestBrokerOutageRetryableThenDelivered(t *testing.T) {
	ctx := ctxT(t, 3*time.Minute)
	c := kafkatest.Start(t)
	s := newSink(t, Config{Name: "outage", Brokers: []string{c.Addr()}, TopicPrefix: "out", CreateTopics: true,
		Partitions: 2, Linger: 5 * time.Millisecond, WriteTimeout: 2 * time.Second, MetadataTTL: 300 * time.Millisecond})

	next := 0
	batch := func(n int) []sink.Record {
		var recs []sink.Record
		for i := 0; i < n; i++ {
			recs = append(recs, item("products", fmt.Sprintf("sku-%05d", next), 1))
			next++
		}
		return recs
	}
	for i := 0; i < 5; i++ {
		wantAllOK(t, sendBounded(t, s, batch(100)), nil, 100)
	}

	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	// Keep sending while down for several metadata refresh periods, so the
	// writer's cached metadata has expired and failed too.
	if err := s.Ping(ctxT(t, 5*time.Second)); err == nil {
		t.Fatal("Ping succeeded while the broker is down")
	}
	var pending [][]sink.Record
	down := time.Now()
	for i := 0; i < 3 || time.Since(down) < 2*time.Second; i++ {
		recs := batch(100)
		res := sendBounded(t, s, recs)
		for j, r := range res {
			if r.Status != sink.StatusRetryable {
				t.Fatalf("during the outage record %d: %v %s, want retryable", j, r.Status, r.Reason)
			}
		}
		pending = append(pending, recs)
	}

	if ok, detail := s.Health(); ok || !strings.Contains(detail, "NETWORK") {
		t.Fatalf("Health during the outage: %v %q", ok, detail)
	}
	if err := c.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	pending = append(pending, batch(100))
	for _, recs := range pending {
		res, err := sink.SendWithRetry(ctx, s, recs, sink.Backoff{Initial: 100 * time.Millisecond, Max: time.Second, MaxAttempts: 100})
		wantAllOK(t, res, err, len(recs))
	}

	if ok, detail := s.Health(); !ok {
		t.Fatalf("Health after recovery: %q", detail)
	}
	if err := s.PingTopics(ctx, "out.products"); err != nil {
		t.Fatalf("Ping after recovery: %v", err)
	}
	got, err := c.ReadAll(ctx, "out.products")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, r := range got {
		seen[string(r.Key)] = true
	}
	for i := 0; i < next; i++ {
		if k := fmt.Sprintf("sku-%05d\x00default", i); !seen[k] {
			t.Fatalf("record %d lost (read %d records, %d distinct keys of %d)", i, len(got), len(seen), next)
		}
	}
	t.Logf("%d records sent, %d stored (%d duplicates from retries)", next, len(got), len(got)-next)
}

// Backpressure end to end at the sink seam: a reader acquires each record's
// size from a Limiter before queueing it, an exporter sends batches with
// retry and releases the bytes once the batch is final. While the broker is
// down the reader blocks at the limit (bytes in flight never exceed it);
// once the broker returns everything drains and every record is stored.
func TestBackpressureBoundsInFlightDuringOutage(t *testing.T) {
	ctx := ctxT(t, 3*time.Minute)
	c := kafkatest.Start(t)
	s := newSink(t, Config{Name: "bp", Brokers: []string{c.Addr()}, TopicPrefix: "bp", CreateTopics: true,
		Partitions: 1, Linger: time.Millisecond, WriteTimeout: time.Second, MetadataTTL: 300 * time.Millisecond})
	const total, limit = 3000, 64 << 10
	lim := sink.NewLimiter(limit)
	queue := make(chan sink.Record, total) // unbounded by count: only the limiter bounds it
	var peak int64
	readerDone := make(chan error, 1)
	brokerDown := make(chan struct{})
	go func() { // the "binlog reader"
		for i := 0; i < total; i++ {
			if i == 500 {
				<-brokerDown // the rest of the binlog arrives during the outage
			}
			r := item("products", fmt.Sprintf("sku-%05d", i), 1)
			if err := lim.Acquire(ctx, r.Size()); err != nil {
				readerDone <- err
				return
			}
			if in := lim.InFlight(); in > peak {
				peak = in
			}
			queue <- r
		}
		close(queue)
		readerDone <- nil
	}()
	exporterDone := make(chan error, 1)
	go func() { // the exporter
		var batch []sink.Record
		flush := func() error {
			if len(batch) == 0 {
				return nil
			}
			res, err := sink.SendWithRetry(ctx, s, batch, sink.Backoff{Initial: 50 * time.Millisecond, Max: 300 * time.Millisecond})
			if err != nil {
				return err
			}
			for i, r := range res {
				if r.Status != sink.StatusOK {
					return fmt.Errorf("record %d: %v %s", i, r.Status, r.Reason)
				}
				lim.Release(batch[i].Size())
			}
			batch = batch[:0]
			return nil
		}
		for r := range queue {
			batch = append(batch, r)
			if len(batch) == 100 || len(queue) == 0 {
				if err := flush(); err != nil {
					exporterDone <- err
					return
				}
			}
		}
		exporterDone <- flush()
	}()

	// Let some records through, then take the broker down.
	waitUntil(t, func() bool { return lim.InFlight() > 0 })
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	close(brokerDown)
	// The reader ends up blocked on the limiter: paused, not buffering.
	waitUntil(t, func() bool { return lim.Waiting() == 1 })
	if in := lim.InFlight(); in > limit {
		t.Fatalf("in flight %d > limit %d", in, limit)
	}
	time.Sleep(500 * time.Millisecond) // stay down a little while the exporter retries
	if lim.Waiting() != 1 {
		t.Fatal("the reader resumed while the broker was down")
	}
	if err := c.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-readerDone; err != nil {
		t.Fatal(err)
	}
	if err := <-exporterDone; err != nil {
		t.Fatal(err)
	}
	if peak > limit || lim.InFlight() != 0 {
		t.Fatalf("peak in flight %d (limit %d), %d left at the end", peak, limit, lim.InFlight())
	}
	got, err := c.ReadAll(ctx, "bp.products")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, r := range got {
		seen[string(r.Key)] = true
	}
	if len(seen) != total {
		t.Fatalf("%d distinct records stored, want %d", len(seen), total)
	}
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached within a minute")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestLongOutageCatchUp is the sink-level version of the 60 s outage: a
// sender keeps sending (with retry) while the broker is down for
// FEEDCDC_TEST_KAFKA_OUTAGE (e.g. 60s; unset: 2 s, to keep the default run
// short), then reports how long after the broker's return the first batch
// was delivered. Acknowledged records must all be stored.
func TestLongOutageCatchUp(t *testing.T) {
	outage := 2 * time.Second
	if v := os.Getenv("FEEDCDC_TEST_KAFKA_OUTAGE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("FEEDCDC_TEST_KAFKA_OUTAGE=%q: %v", v, err)
		}
		outage = d
	}
	ctx := ctxT(t, outage+3*time.Minute)
	c := kafkatest.Start(t)
	s := newSink(t, Config{Name: "long", Brokers: []string{c.Addr()}, TopicPrefix: "long", CreateTopics: true,
		Partitions: 1, Linger: time.Millisecond, WriteTimeout: 2 * time.Second})
	var sent atomic.Int64
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			var recs []sink.Record
			for j := 0; j < 100; j++ {
				recs = append(recs, item("products", fmt.Sprintf("sku-%07d", i*100+j), 1))
			}
			res, err := sink.SendWithRetry(ctx, s, recs, sink.Backoff{Initial: 100 * time.Millisecond, Max: time.Second})
			if err != nil {
				done <- err
				return
			}
			for _, r := range res {
				if r.Status != sink.StatusOK {
					done <- fmt.Errorf("%v %s", r.Status, r.Reason)
					return
				}
			}
			sent.Add(100)
		}
	}()
	waitUntil(t, func() bool { return sent.Load() >= 1000 })
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	atStop := sent.Load()
	time.Sleep(outage)
	if err := c.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	waitUntil(t, func() bool { return sent.Load() > atStop+100 })
	t.Logf("outage %v: first batch after the broker's return delivered in %v", outage, time.Since(back).Round(time.Millisecond))
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	got, err := c.ReadAll(ctx, "long.products")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, r := range got {
		seen[string(r.Key)] = true
	}
	if int64(len(seen)) != sent.Load() {
		t.Fatalf("%d distinct records stored, %d acknowledged", len(seen), sent.Load())
	}
}

// A "broker" that accepts connections and never answers (a hung broker or a
// black-holing firewall): Send returns at write_timeout with every record
// retryable, and Close does not hang either.
func TestBlackholeBrokerTimesOut(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var conns []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c) // hold it open, never reply
			mu.Unlock()
		}
	}()
	defer func() {
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	}()
	s, err := New(Config{Name: "blackhole", Brokers: []string{ln.Addr().String()}, TopicPrefix: "bh", WriteTimeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	res := sendBounded(t, s, []sink.Record{item("products", "a", 1), item("products", "b", 1)})
	for i, r := range res {
		// Which deadline fires first (the write bound or the connection's
		// read deadline) depends on scheduling; both are timeouts.
		if r.Status != sink.StatusRetryable || !strings.Contains(strings.ToLower(r.Reason), "timeout") {
			t.Fatalf("record %d: %v %q, want retryable TIMEOUT", i, r.Status, r.Reason)
		}
	}
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	select {
	case <-closed:
	case <-time.After(time.Minute):
		t.Fatal("Close hangs on a black-holed broker")
	}
}

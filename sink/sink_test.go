package sink

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// scripted is a Sink whose answers the test decides per record value; it is
// the unit under the router and retry logic, not a stand-in for a real
// destination (those are tested in their own packages).
type scripted struct {
	name   string
	mu     sync.Mutex
	calls  int
	got    []string
	answer func(call int, r Record) Result
	closed int
}

func (s *scripted) Name() string { return s.name }
func (s *scripted) Send(_ context.Context, recs []Record) ([]Result, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	out := make([]Result, len(recs))
	for i, r := range recs {
		s.got = append(s.got, string(r.Value))
		if s.answer != nil {
			out[i] = s.answer(s.calls, r)
		}
	}
	return out, nil
}
func (s *scripted) Close() error { s.mu.Lock(); s.closed++; s.mu.Unlock(); return nil }

func rec(feed, v string) Record { return Record{Feed: feed, Value: []byte(v), ID: v} }

func TestCombine(t *testing.T) {
	ok := Result{RequestID: "r1"}
	retry := Result{Status: StatusRetryable, Reason: "HTTP 503", RetryAfter: 2 * time.Second}
	rej := Result{Status: StatusRejected, Reason: "too large", Err: errors.New("too large")}
	for _, tc := range []struct {
		rs     []Result
		want   Status
		reason string
	}{
		{[]Result{ok, ok}, StatusOK, ""},
		{[]Result{ok, retry}, StatusRetryable, "b: HTTP 503"},
		{[]Result{rej, ok}, StatusRejected, "a: too large"},
		{[]Result{rej, retry}, StatusRetryable, "a: too large; b: HTTP 503"},
	} {
		got := Combine([]string{"a", "b"}, tc.rs)
		if got.Status != tc.want || got.Reason != tc.reason {
			t.Errorf("Combine(%v) = %v %q, want %v %q", tc.rs, got.Status, got.Reason, tc.want, tc.reason)
		}
		if tc.want != StatusOK && got.Err == nil {
			t.Errorf("Combine(%v): no error on a failure", tc.rs)
		}
		if tc.want == StatusRetryable && got.RetryAfter != 2*time.Second {
			t.Errorf("RetryAfter = %v", got.RetryAfter)
		}
	}
	// The service's rejection of the item survives combining, unless
	// another sink still has to retry it.
	itemRej := Result{Status: StatusRejected, Reason: "invalid: sku", ItemRejected: true}
	if got := Combine([]string{"a", "b"}, []Result{ok, itemRej}); !got.ItemRejected || got.Status != StatusRejected {
		t.Errorf("Combine(ok, item rejected) = %+v", got)
	}
	if got := Combine([]string{"a", "b"}, []Result{itemRej, retry}); got.ItemRejected {
		t.Errorf("Combine(item rejected, retryable) = %+v, want retryable without ItemRejected", got)
	}
}

func TestRouterDeliveredOnlyWhenEverySinkHasIt(t *testing.T) {
	kafka := &scripted{name: "kafka"}
	http := &scripted{name: "http", answer: func(_ int, r Record) Result {
		switch string(r.Value) {
		case "p2":
			return Result{Status: StatusRetryable, Reason: "HTTP 429", RetryAfter: time.Second}
		case "p3":
			return Result{Status: StatusRejected, Reason: "invalid"}
		}
		return Result{RequestID: "req-1"}
	}}
	files := &scripted{name: "files"}
	r, err := NewRouter(map[string][]Sink{
		"products": {kafka, http},
		"variants": {kafka},
	}, []Sink{files})
	if err != nil {
		t.Fatal(err)
	}
	recs := []Record{rec("products", "p1"), rec("variants", "v1"), rec("products", "p2"), rec("products", "p3"), rec("raw", "r1")}
	res, err := r.Send(context.Background(), recs)
	if err != nil {
		t.Fatal(err)
	}
	want := []Status{StatusOK, StatusOK, StatusRetryable, StatusRejected, StatusOK}
	for i := range recs {
		if res[i].Status != want[i] {
			t.Errorf("%s: %v (%s), want %v", recs[i].Value, res[i].Status, res[i].Reason, want[i])
		}
	}
	if !strings.Contains(res[2].Reason, "http: HTTP 429") || res[2].RetryAfter != time.Second {
		t.Errorf("p2: %+v", res[2])
	}
	if !strings.Contains(res[0].RequestID, "req-1") {
		t.Errorf("p1 request id %q", res[0].RequestID)
	}
	if fmt.Sprint(kafka.got) != "[p1 v1 p2 p3]" || fmt.Sprint(http.got) != "[p1 p2 p3]" || fmt.Sprint(files.got) != "[r1]" {
		t.Errorf("routing: kafka %v http %v files %v", kafka.got, http.got, files.got)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if kafka.closed != 1 || http.closed != 1 || files.closed != 1 {
		t.Errorf("close counts %d %d %d, want each closed once", kafka.closed, http.closed, files.closed)
	}

	// No fallback: unrouted feeds are rejected with a reason naming them.
	r2, err := NewRouter(map[string][]Sink{"products": {kafka}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, _ = r2.Send(context.Background(), []Record{rec("variants", "x")})
	if res[0].Status != StatusRejected || !strings.Contains(res[0].Reason, `"variants"`) {
		t.Errorf("unrouted: %+v", res[0])
	}
	if _, err := NewRouter(map[string][]Sink{"products": {}}, nil); err == nil {
		t.Error("a route with no sinks was accepted")
	}
	if _, err := NewRouter(map[string][]Sink{"products": {kafka, kafka}}, nil); err == nil {
		t.Error("a route listing a sink twice was accepted")
	}
}

func TestSendWithRetryResendsOnlyRetryable(t *testing.T) {
	// p2 fails twice, asking for a delay; p3 is rejected; p1 passes at once.
	s := &scripted{name: "s", answer: func(call int, r Record) Result {
		switch string(r.Value) {
		case "p2":
			if call <= 2 {
				return Result{Status: StatusRetryable, Reason: "HTTP 429", RetryAfter: 20 * time.Millisecond}
			}
		case "p3":
			return Result{Status: StatusRejected, Reason: "invalid"}
		}
		return Result{}
	}}
	res, err := SendWithRetry(context.Background(), s, []Record{rec("f", "p1"), rec("f", "p2"), rec("f", "p3")}, Backoff{Initial: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Status != StatusOK || res[1].Status != StatusOK || res[2].Status != StatusRejected {
		t.Fatalf("results %+v", res)
	}
	if fmt.Sprint(s.got) != "[p1 p2 p3 p2 p2]" {
		t.Fatalf("sent %v, want only p2 resent", s.got)
	}

	// Attempts run out: the last retryable result is kept and an error says so.
	always := &scripted{name: "down", answer: func(int, Record) Result { return Result{Status: StatusRetryable, Reason: "down"} }}
	res, err = SendWithRetry(context.Background(), always, []Record{rec("f", "x")}, Backoff{Initial: time.Millisecond, MaxAttempts: 3})
	if err == nil || res[0].Status != StatusRetryable || always.calls != 3 {
		t.Fatalf("exhausted: %+v %v after %d calls", res, err, always.calls)
	}
	// ctx ends while waiting: returns promptly with ctx's error.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = SendWithRetry(ctx, always, []Record{rec("f", "x")}, Backoff{Initial: time.Hour})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("ctx end: %v", err)
	}
}

func TestBackoffDelayGrowsAndCaps(t *testing.T) {
	b := Backoff{Initial: 100 * time.Millisecond, Max: time.Second, Multiplier: 2, Jitter: 0.1}
	for attempt, want := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 3: 400 * time.Millisecond, 10: time.Second} {
		d := b.Delay(attempt)
		if d < want*9/10 || d > want*11/10 {
			t.Errorf("Delay(%d) = %v, want %v ±10%%", attempt, d, want)
		}
	}
}

func TestLimiterBoundsAndFIFO(t *testing.T) {
	l := NewLimiter(100)
	ctx := context.Background()
	if err := l.Acquire(ctx, 60); err != nil {
		t.Fatal(err)
	}
	if l.TryAcquire(50) {
		t.Fatal("TryAcquire over the limit succeeded")
	}
	// A waiter for 50 blocks; a later small TryAcquire must not overtake it.
	got := make(chan int, 3)
	go func() {
		if err := l.Acquire(ctx, 50); err == nil {
			got <- 50
		}
	}()
	waitFor(t, func() bool { return l.Waiting() == 1 })
	if l.TryAcquire(10) {
		t.Fatal("TryAcquire overtook a queued waiter")
	}
	l.Release(60)
	if v := <-got; v != 50 || l.InFlight() != 50 {
		t.Fatalf("after release: got %d, in flight %d", v, l.InFlight())
	}

	// An item larger than the limit is admitted alone.
	go func() {
		if err := l.Acquire(ctx, 1000); err == nil {
			got <- 1000
		}
	}()
	waitFor(t, func() bool { return l.Waiting() == 1 })
	l.Release(50)
	if v := <-got; v != 1000 || l.InFlight() != 100 {
		t.Fatalf("oversized: got %d, in flight %d", v, l.InFlight())
	}
	// ctx ends while waiting: error, nothing held, queue cleaned.
	cctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if err := l.Acquire(cctx, 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Acquire with expired ctx: %v", err)
	}
	if l.Waiting() != 0 || l.InFlight() != 100 {
		t.Fatalf("after cancelled acquire: waiting %d in flight %d", l.Waiting(), l.InFlight())
	}
	l.Release(1000)
	if l.InFlight() != 0 {
		t.Fatalf("in flight %d after releasing everything", l.InFlight())
	}
}

// Many producers and a slow consumer: the bytes in flight never exceed the
// limit and everything acquired is eventually released.
func TestLimiterConcurrentNeverExceeds(t *testing.T) {
	l := NewLimiter(1000)
	var peak atomic.Int64
	var wg sync.WaitGroup
	ch := make(chan int, 1000)
	for p := 0; p < 8; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				n := 1 + (i*37+p)%300
				if err := l.Acquire(context.Background(), n); err != nil {
					t.Error(err)
					return
				}
				if cur := l.InFlight(); cur > peak.Load() {
					peak.Store(cur)
				}
				ch <- n
			}
		}()
	}
	done := make(chan struct{})
	go func() {
		for n := range ch {
			l.Release(n)
		}
		close(done)
	}()
	wg.Wait()
	close(ch)
	<-done
	if peak.Load() > 1000 {
		t.Fatalf("peak in flight %d > limit 1000", peak.Load())
	}
	if l.InFlight() != 0 {
		t.Fatalf("in flight %d at the end", l.InFlight())
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestHealth(t *testing.T) {
	var h Health
	if ok, _ := h.Health(); !ok {
		t.Fatal("zero Health is unhealthy")
	}
	t0 := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	h.Observe([]Result{{Status: StatusRejected, Reason: "too large"}}, t0)
	if ok, _ := h.Health(); !ok {
		t.Fatal("a rejected item made the sink unhealthy")
	}
	h.Observe([]Result{{Status: StatusRetryable, Reason: "NETWORK: refused"}, {Status: StatusRetryable, Reason: "x"}}, t0)
	h.Observe([]Result{{Status: StatusRetryable, Reason: "TIMEOUT"}}, t0.Add(time.Minute))
	ok, detail := h.Health()
	if ok || !strings.Contains(detail, "TIMEOUT") || !strings.Contains(detail, "2026-11-29T12:00:00Z") {
		t.Fatalf("down: %v %q (want the latest reason and the first failure time)", ok, detail)
	}
	h.Observe([]Result{{Status: StatusRetryable}, {Status: StatusOK}}, t0.Add(2*time.Minute))
	if ok, _ := h.Health(); !ok {
		t.Fatal("a partly successful send did not restore health")
	}
}

// Through a router, SendWithRetry resends a record only to the sink that
// has not accepted it yet.
func TestRouterRetriesPerSink(t *testing.T) {
	steady := &scripted{name: "steady"}
	flaky := &scripted{name: "flaky", answer: func(call int, r Record) Result {
		if call <= 2 {
			return Result{Status: StatusRetryable, Reason: "HTTP 503"}
		}
		return Result{RequestID: fmt.Sprintf("req-%d", call)}
	}}
	r, err := NewRouter(map[string][]Sink{"products": {steady, flaky}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := SendWithRetry(context.Background(), r, []Record{rec("products", "p1"), rec("products", "p2")}, Backoff{Initial: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for i, x := range res {
		if x.Status != StatusOK || x.RequestID != "flaky=req-3" {
			t.Errorf("record %d: %+v", i, x)
		}
	}
	if fmt.Sprint(steady.got) != "[p1 p2]" || steady.calls != 1 {
		t.Errorf("steady sink got %v in %d calls, want each record once", steady.got, steady.calls)
	}
	if flaky.calls != 3 {
		t.Errorf("flaky sink called %d times, want 3", flaky.calls)
	}
	// Attempts exhausted on one sink: its records stay retryable, the error names it.
	down := &scripted{name: "down", answer: func(int, Record) Result { return Result{Status: StatusRetryable, Reason: "NETWORK"} }}
	r2, _ := NewRouter(map[string][]Sink{"products": {steady, down}}, nil)
	res, err = SendWithRetry(context.Background(), r2, []Record{rec("products", "p3")}, Backoff{Initial: time.Millisecond, MaxAttempts: 2})
	if err == nil || !strings.Contains(err.Error(), "down") || res[0].Status != StatusRetryable || !strings.Contains(res[0].Reason, "down: NETWORK") {
		t.Fatalf("exhausted: %+v %v", res, err)
	}
}

// TestLimiterChargeOverTheLimit: bytes charged after the fact may exceed
// the limit without waiting; a later Acquire waits until they are
// discharged, and discharging more than was charged is a bug.
func TestLimiterChargeOverTheLimit(t *testing.T) {
	l := NewLimiter(100)
	if err := l.Acquire(context.Background(), 60); err != nil {
		t.Fatal(err)
	}
	l.Charge(90) // the build turned out larger than its estimate
	if got := l.InFlight(); got != 150 {
		t.Fatalf("in flight after the charge: %d, want 150", got)
	}
	if l.TryAcquire(1) {
		t.Fatal("acquired over the limit")
	}
	got := make(chan error, 1)
	go func() { got <- l.Acquire(context.Background(), 50) }()
	l.Release(60)
	select {
	case <-got:
		t.Fatal("acquired while charged bytes kept the limiter full")
	case <-time.After(50 * time.Millisecond):
	}
	l.Discharge(90)
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	if n := l.InFlight(); n != 50 {
		t.Fatalf("in flight: %d, want 50", n)
	}
	defer func() {
		if recover() == nil {
			t.Error("discharging more than charged did not panic")
		}
	}()
	l.Discharge(51)
}

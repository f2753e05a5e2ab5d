package snapshot

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/feedcdc/feedcdc/test/mysqltest"
	_ "github.com/go-sql-driver/mysql"
)

var srv *mysqltest.Server

func TestMain(m *testing.M) { os.Exit(mysqltest.Main(m, mysqltest.Options{}, &srv)) }

func TestThrottlePausesWhileLagIsHigh(t *testing.T) {
	var calls atomic.Int32
	th := &Throttle{MaxLag: 5 * time.Second, LagPoll: 10 * time.Millisecond, Name: "products",
		Lag: func(ctx context.Context) (time.Duration, error) {
			// Lag is high for the first 5 polls, then the replica catches up.
			if calls.Add(1) <= 5 {
				return time.Minute, nil
			}
			return 0, nil
		}}
	if err := th.Wait(context.Background(), 100); err != nil {
		t.Fatal(err)
	}
	if n := calls.Load(); n != 6 {
		t.Fatalf("Wait returned after %d lag polls; want it to wait until the 6th poll reports the lag below the limit", n)
	}
	// Lag stays low: the next chunk is not held back.
	if err := th.Wait(context.Background(), 100); err != nil || calls.Load() != 7 {
		t.Fatalf("second Wait: err %v, lag polls %d", err, calls.Load())
	}
	// Stats count both chunks and only the first as paused.
	if st := th.Stats(); st != (ThrottleStats{Chunks: 2, Rows: 200, Paused: 1}) {
		t.Errorf("stats %+v, want 2 chunks of 200 rows, 1 paused", st)
	}
}

func TestThrottleLagErrorStopsTheSync(t *testing.T) {
	th := &Throttle{MaxLag: time.Second, Lag: func(context.Context) (time.Duration, error) {
		return 0, errors.New("replica lag is unknown")
	}}
	if err := th.Wait(context.Background(), 1); err == nil || !strings.Contains(err.Error(), "read replication lag") {
		t.Fatalf("err %v", err)
	}
}

func TestThrottleHonoursContext(t *testing.T) {
	th := &Throttle{RowsPerSecond: 10} // 100 rows per chunk → 10 s per chunk
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := th.Wait(ctx, 100); err != nil {
		t.Fatalf("first chunk: %v; want no wait before anything was read", err)
	}
	if err := th.Wait(ctx, 100); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second chunk: %v; want the throttle to wait until ctx ends", err)
	}
}

func TestReplicaLagOnPrimaryIsZero(t *testing.T) {
	lag, err := ReplicaLag(context.Background(), srv.Admin(t, ""))
	if err != nil || lag != 0 {
		t.Fatalf("lag %v err %v", lag, err)
	}
}

package snapshot

import (
	"context"
	"errors"
	"fmt"
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

func fill(t *testing.T, n int) (string, *Scanner) {
	t.Helper()
	db := srv.NewDatabase(t, "snap")
	admin := srv.Admin(t, db)
	if _, err := admin.Exec("CREATE TABLE items (id BIGINT UNSIGNED PRIMARY KEY, v INT)"); err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	for i := 1; i <= n; i++ {
		if sb.Len() == 0 {
			sb.WriteString("INSERT INTO items VALUES ")
		} else {
			sb.WriteByte(',')
		}
		// Gaps in the key space: ids 3, 6, 9 ...
		fmt.Fprintf(&sb, "(%d,%d)", i*3, i)
		if i%500 == 0 || i == n {
			if _, err := admin.Exec(sb.String()); err != nil {
				t.Fatal(err)
			}
			sb.Reset()
		}
	}
	return db, &Scanner{DB: srv.Admin(t, db), Table: "items", KeyColumn: "id", ChunkSize: 100}
}

func TestScanVisitsEveryKeyOnceInOrder(t *testing.T) {
	_, s := fill(t, 1050)
	var got []int64
	var chunks int
	err := s.Scan(context.Background(), 0, func(ctx context.Context, c Chunk) error {
		chunks++
		if c.Index != chunks || c.Last != c.Keys[len(c.Keys)-1] {
			t.Fatalf("chunk %d: index %d last %d", chunks, c.Index, c.Last)
		}
		got = append(got, c.Keys...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1050 || chunks != 11 {
		t.Fatalf("got %d keys in %d chunks, want 1050 in 11", len(got), chunks)
	}
	for i, k := range got {
		if k != int64(i+1)*3 {
			t.Fatalf("key %d = %d, want %d", i, k, (i+1)*3)
		}
	}
	n, err := s.Count(context.Background(), 0)
	if err != nil || n != 1050 {
		t.Fatalf("count %d %v", n, err)
	}
}

func TestScanResumesAfterLastCompletedChunk(t *testing.T) {
	_, s := fill(t, 500)
	stop := errors.New("crash")
	var last int64
	err := s.Scan(context.Background(), 0, func(ctx context.Context, c Chunk) error {
		if c.Index == 3 {
			return stop
		}
		last = c.Last
		return nil
	})
	if !errors.Is(err, stop) {
		t.Fatalf("err %v", err)
	}
	var resumed []int64
	if err := s.Scan(context.Background(), last, func(ctx context.Context, c Chunk) error {
		resumed = append(resumed, c.Keys...)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(resumed) != 300 || resumed[0] != last+3 {
		t.Fatalf("resumed %d keys from %v, want 300 from %d", len(resumed), resumed[:1], last+3)
	}
}

func TestScanPausesWhileLagIsHigh(t *testing.T) {
	_, s := fill(t, 200)
	var calls atomic.Int32
	s.MaxLag = 5 * time.Second
	s.LagPoll = 10 * time.Millisecond
	s.Lag = func(ctx context.Context) (time.Duration, error) {
		// Lag is high for the first 5 polls, then the replica catches up.
		if calls.Add(1) <= 5 {
			return time.Minute, nil
		}
		return 0, nil
	}
	var keys int
	if err := s.Scan(context.Background(), 0, func(ctx context.Context, c Chunk) error {
		if calls.Load() < 6 {
			t.Fatalf("chunk read while lag was above the limit (lag polls %d)", calls.Load())
		}
		keys += len(c.Keys)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if keys != 200 {
		t.Fatalf("keys %d", keys)
	}
}

func TestScanThrottleHonoursContext(t *testing.T) {
	_, s := fill(t, 300)
	s.RowsPerSecond = 10 // 100 keys per chunk → 10 s per chunk
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	var chunks int
	err := s.Scan(ctx, 0, func(ctx context.Context, c Chunk) error { chunks++; return nil })
	if !errors.Is(err, context.DeadlineExceeded) || chunks != 1 {
		t.Fatalf("err %v after %d chunks; want the throttle to wait after chunk 1 until ctx ends", err, chunks)
	}
}

func TestBadIdentifierIsRejected(t *testing.T) {
	s := &Scanner{DB: srv.Admin(t, ""), Table: "items; DROP TABLE x", KeyColumn: "id"}
	err := s.Scan(context.Background(), 0, func(context.Context, Chunk) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "not a plain table") {
		t.Fatalf("err %v", err)
	}
}

func TestReplicaLagOnPrimaryIsZero(t *testing.T) {
	lag, err := ReplicaLag(context.Background(), srv.Admin(t, ""))
	if err != nil || lag != 0 {
		t.Fatalf("lag %v err %v", lag, err)
	}
}

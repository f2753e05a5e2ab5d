package telemetry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"

	"github.com/feedcdc/feedcdc/test/mysqltest"
)

var srv *mysqltest.Server

func TestMain(m *testing.M) { os.Exit(mysqltest.Main(m, mysqltest.Options{}, &srv)) }

// TestSourceLagWithRealBinlogHeartbeats reads the binlog of a private
// mariadbd as a replica (go-mysql, heartbeat period 500 ms), feeds the
// events and heartbeats into the metrics the way the binlog reader does,
// and scrapes /metrics: during a workload the event counters move and the
// lag is measured from event timestamps; once the workload stops, the first
// heartbeat the server sends brings the lag to 0 — it does not stay frozen.
func TestSourceLagWithRealBinlogHeartbeats(t *testing.T) {
	const period = 500 * time.Millisecond
	db := srv.NewDatabase(t, "lag")
	admin := srv.Admin(t, db)
	if _, err := admin.Exec("CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(20))"); err != nil {
		t.Fatal(err)
	}
	var file string
	var pos uint32
	var ignore1, ignore2 any
	if err := admin.QueryRow("SHOW MASTER STATUS").Scan(&file, &pos, &ignore1, &ignore2); err != nil {
		t.Fatalf("SHOW MASTER STATUS: %v", err)
	}

	tel := newTestTelemetry(t, Options{Lag: LagOptions{HeartbeatPeriod: period}})
	m := tel.Metrics
	hsrv := httptest.NewServer(tel.Handler(nil))
	defer hsrv.Close()

	syncer := replication.NewBinlogSyncer(replication.BinlogSyncerConfig{
		ServerID: 4_000_000 + uint32(os.Getpid()%100_000), Flavor: srv.Flavor,
		Host: srv.Host, Port: uint16(srv.Port), User: srv.CDCUser, Password: srv.CDCPassword,
		HeartbeatPeriod: period, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	defer syncer.Close()
	streamer, err := syncer.StartSync(mysql.Position{Name: file, Pos: pos})
	if err != nil {
		t.Fatalf("StartSync: %v", err)
	}
	m.SourceConnected()

	var heartbeats, rowsEvents atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	readerDone := make(chan error, 1)
	go func() {
		for {
			ev, err := streamer.GetEvent(ctx)
			if err != nil {
				readerDone <- err
				return
			}
			switch e := ev.Event.(type) {
			case *replication.HeartbeatEvent:
				m.Heartbeat()
				heartbeats.Add(1)
			case *replication.RowsEvent:
				m.EventsRead(1)
				m.BytesRead(int64(len(ev.RawData)))
				m.RowsRead(int64(len(e.Rows)))
				m.SourceEvent(time.Unix(int64(ev.Header.Timestamp), 0))
				rowsEvents.Add(1)
			default:
				m.EventsRead(1)
				m.BytesRead(int64(len(ev.RawData)))
				if ev.Header.Timestamp != 0 {
					m.SourceEvent(time.Unix(int64(ev.Header.Timestamp), 0))
				}
			}
		}
	}()
	defer func() {
		cancel()
		if err := <-readerDone; !errors.Is(err, context.Canceled) {
			t.Errorf("binlog reader: %v", err)
		}
	}()

	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second) // a hang guard, not a latency assertion
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	// Workload: 40 single-row transactions spread over about a second.
	for i := range 40 {
		if _, err := admin.Exec("INSERT INTO t (v) VALUES (?)", fmt.Sprint("row", i)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(25 * time.Millisecond)
	}
	waitFor("the 40 rows events", func() bool { return rowsEvents.Load() >= 40 })
	fams := scrape(t, hsrv.URL)
	if got := value(sample(t, fams, "feedcdc_binlog_rows_total", nil)); got != 40 {
		t.Errorf("rows read = %v, want 40", got)
	}
	if got := value(sample(t, fams, "feedcdc_binlog_events_total", nil)); got < 40*3 {
		t.Errorf("events read = %v, want at least 120 (GTID, table map, rows, xid per transaction)", got)
	}
	if got := value(sample(t, fams, "feedcdc_binlog_bytes_total", nil)); got < 40*50 {
		t.Errorf("bytes read = %v", got)
	}
	r := m.Lag().Read()
	t.Logf("lag after the workload's last event: %s (%s); heartbeats so far %d", r.Lag, r.State, heartbeats.Load())

	// Idle: the server sends a heartbeat only when it has nothing to send.
	// The first one after the workload drops the lag to exactly 0.
	stoppedAt := time.Now()
	hbBefore := heartbeats.Load()
	waitFor("a heartbeat after the workload", func() bool { return heartbeats.Load() > hbBefore })
	fams = scrape(t, hsrv.URL)
	if got := value(sample(t, fams, "feedcdc_source_lag_milliseconds", nil)); got != 0 {
		t.Fatalf("lag after an idle heartbeat = %v ms, want 0", got)
	}
	if r := m.Lag().Read(); r.State != LagCaughtUp {
		t.Fatalf("lag state after heartbeat = %s", r.State)
	}
	t.Logf("lag returned to 0 %s after the workload stopped (heartbeat period %s)", time.Since(stoppedAt).Round(time.Millisecond), period)

	// It stays 0 while idle: more heartbeats keep arriving and keep it there.
	hb := heartbeats.Load()
	waitFor("two more heartbeats", func() bool { return heartbeats.Load() >= hb+2 })
	if got := value(sample(t, scrape(t, hsrv.URL), "feedcdc_source_lag_milliseconds", nil)); got != 0 {
		t.Fatalf("lag while idle = %v ms, want 0", got)
	}
	if got := value(sample(t, scrape(t, hsrv.URL), "feedcdc_source_heartbeats_total", nil)); got < 3 {
		t.Fatalf("heartbeats counted = %v", got)
	}
}

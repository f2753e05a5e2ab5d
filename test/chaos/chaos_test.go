package chaos

import (
	"context"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestReduced runs the reduced suite (make test): >= 10 SIGKILLs over a
// first full sync and streaming, source restarts (SIGTERM and SIGKILL of
// mariadbd, KILL of the replication connection), a sink outage (feed
// service and Kafka broker down), partial Kafka produce failures, and an
// online schema change with two TRUNCATEs under load. FEEDCDC_CHAOS_SCENARIOS
// (comma-separated) picks others; FEEDCDC_CHAOS_SEED sets the seed.
func TestReduced(t *testing.T) {
	seed := int64(1)
	if v := os.Getenv("FEEDCDC_CHAOS_SEED"); v != "" {
		seed, _ = strconv.ParseInt(v, 10, 64)
	}
	names := []string{"kill9", "source-restarts", "outage", "kafka-partial", "osc"}
	if v := os.Getenv("FEEDCDC_CHAOS_SCENARIOS"); v != "" {
		names = strings.Split(v, ",")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	env, err := NewEnv(ctx, t.TempDir(), slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			p, err := PlanFor(name, seed, true)
			if err != nil {
				t.Fatal(err)
			}
			sum, err := env.Run(ctx, p)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			t.Log(sum.String())
			t.Logf("feed service: %v", sum.ServiceRequests)
			for _, d := range sum.Detail {
				t.Log(d)
			}
			if !sum.OK() {
				t.Errorf("%s", sum.String())
			}
			if p.KafkaPartial > 0 && sum.ProduceFailures == 0 {
				t.Errorf("no produce request was failed: the scenario proves nothing")
			}
			if p.DiskFullBlocks > 0 && sum.DiskFullErrors == 0 {
				t.Errorf("no write failed with \"file too large\": the disk-full run proves nothing")
			}
			if p.OSCTable != "" && (sum.Swaps != 1 || sum.Truncates != len(p.TruncateTables)) {
				t.Errorf("%d cut-overs and %d TRUNCATEs ran, want 1 and %d", sum.Swaps, sum.Truncates, len(p.TruncateTables))
			}
			if p.OSCTable != "" && sum.TableRecords < 1+len(p.TruncateTables) {
				t.Errorf("the checker saw %d TRUNCATE/RENAME statements in the binlog, want at least %d", sum.TableRecords, 1+len(p.TruncateTables))
			}
			if sum.Resyncs < p.Resyncs {
				t.Errorf("%d of %d resyncs were requested", sum.Resyncs, p.Resyncs)
			}
			if p.Outage > 0 && sum.ServiceRequests["503 (down)"] == 0 {
				t.Errorf("the feed service saw no request while down: the outage proves nothing")
			}
			if sum.Kills < p.Kills || sum.Changes == 0 || sum.Items == 0 {
				t.Errorf("the scenario did not run as planned: %d kills of %d, %d changes and %d items checked", sum.Kills, p.Kills, sum.Changes, sum.Items)
			}
		})
	}
}

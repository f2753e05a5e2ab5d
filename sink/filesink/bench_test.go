package filesink

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/feedcdc/feedcdc/sink"
)

// BenchmarkFileSinkVsRaw compares the file sink (JSON validation, one write
// and one fsync per send) with a bare os.File baseline doing the same
// appends and fsyncs, interleaved, for ~1 KB items in batches of 1,000, with
// and without fsync. Run it with
//
//	go test -run '^$' -bench FileSinkVsRaw -benchtime 1x ./sink/filesink/
func BenchmarkFileSinkVsRaw(b *testing.B) {
	const n, batch, rounds = 100_000, 1000, 6
	desc := strings.Repeat("Soft organic cotton, regular fit. ", 25)
	recs := make([]sink.Record, n)
	for i := range recs {
		recs[i] = sink.Record{Feed: "products", Value: []byte(fmt.Sprintf(`{"sku":"MH%07d","storeViewCode":"default","name":"Shirt %d","description":%q,"deleted":false}`, i, i, desc))}
	}
	for _, fsync := range []bool{false, true} {
		b.Run(fmt.Sprintf("fsync=%v", fsync), func(b *testing.B) {
			var rawRates, sinkRates []float64
			for it := 0; it < b.N; it++ {
				for round := 0; round <= rounds; round++ {
					dir := b.TempDir()
					runRaw := func() time.Duration {
						f, err := os.OpenFile(filepath.Join(dir, "raw.jsonl"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
						if err != nil {
							b.Fatal(err)
						}
						defer f.Close()
						start := time.Now()
						var buf []byte
						for i := 0; i < n; i += batch {
							buf = buf[:0]
							for j := i; j < i+batch; j++ {
								buf = append(append(buf, recs[j].Value...), '\n')
							}
							if _, err := f.Write(buf); err != nil {
								b.Fatal(err)
							}
							if fsync {
								if err := f.Sync(); err != nil {
									b.Fatal(err)
								}
							}
						}
						return time.Since(start)
					}
					runSink := func() time.Duration {
						s, err := New(Config{Dir: filepath.Join(dir, "sink"), Fsync: fsync, MaxSize: 1 << 40})
						if err != nil {
							b.Fatal(err)
						}
						defer s.Close()
						start := time.Now()
						for i := 0; i < n; i += batch {
							res, err := s.Send(context.Background(), recs[i:i+batch])
							if err != nil || res[0].Status != sink.StatusOK {
								b.Fatalf("%v %+v", err, res[0])
							}
						}
						return time.Since(start)
					}
					// Alternate who goes first: the second writer of a round
					// meets the first one's dirty pages being written back.
					var raw, snk time.Duration
					if round%2 == 0 {
						raw, snk = runRaw(), runSink()
					} else {
						snk, raw = runSink(), runRaw()
					}
					if round > 0 {
						rawRates = append(rawRates, float64(n)/raw.Seconds())
						sinkRates = append(sinkRates, float64(n)/snk.Seconds())
					}
				}
			}
			raw, snk := med(rawRates), med(sinkRates)
			b.ReportMetric(raw, "raw_rec/s")
			b.ReportMetric(snk, "sink_rec/s")
			b.ReportMetric(snk/raw, "sink/raw")
			b.Logf("fsync=%v: raw append %.0f rec/s, sink %.0f rec/s, ratio %.2f (medians of %d interleaved rounds of %d records of %d B)",
				fsync, raw, snk, snk/raw, len(rawRates), n, len(recs[0].Value))
		})
	}
}

func med(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}

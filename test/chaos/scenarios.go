package chaos

import (
	"fmt"
	"sort"
	"time"

	"github.com/feedcdc/feedcdc/test/catalog"
)

// Scenarios returns the plans of the suite by name, for a seed. reduced
// makes them small enough for go test on a loaded 2-core machine.
//
// Numbers follow issue 13: 1 kill -9, 2 source restarts, 3 HTTP error
// storm, 4 sink outage, 5 partial Kafka failure, 6 online schema change
// and TRUNCATE under load, 7 SIGTERM, 8 disk full.
func Scenarios(seed int64, reduced bool) map[string]Plan {
	scale := func(full, small int) int {
		if reduced {
			return small
		}
		return full
	}
	dur := func(full, small time.Duration) time.Duration {
		if reduced {
			return small
		}
		return full
	}
	profile := catalog.Small()
	if reduced {
		profile = catalog.Tiny()
	}
	return map[string]Plan{
		// The workload outlasts the kills, so that most kills hit streaming
		// and the raw streams have changes to check after the last first
		// start.
		"kill9": {Scenario: "kill9", Seed: seed, Profile: profile, Changes: scale(20000, 3000), Rate: 150,
			Kills: scale(50, 10), KillMin: 300 * time.Millisecond, KillMax: dur(4*time.Second, 2500*time.Millisecond),
			HTTPFailRate: 0.05, Legacy: true, Resyncs: scale(3, 1)},
		// Needs the source retries of issue 11 (merged): in the reduced set.
		"source-restarts": {Scenario: "source-restarts", Seed: seed, Profile: profile, Changes: scale(20000, 3000), Rate: 150,
			SourceRestarts: 5, KillMin: 2 * time.Second, KillMax: dur(20*time.Second, 5*time.Second),
			KillReplicationEvery: dur(10*time.Second, 3*time.Second)},
		"http-errors": {Scenario: "http-errors", Seed: seed, Profile: profile, Changes: scale(45000, 1500), Rate: 250,
			HTTPFailRate: 0.3},
		"outage": {Scenario: "outage", Seed: seed, Profile: profile, Changes: scale(30000, 2500), Rate: 250,
			Outage: dur(60*time.Second, 8*time.Second), OutageAfter: dur(20*time.Second, 2*time.Second)},
		"kafka-partial": {Scenario: "kafka-partial", Seed: seed, Profile: profile, Changes: scale(20000, 1500), Rate: 250,
			KafkaPartial: 0.3, KafkaBatchSize: 8},
		"sigterm": {Scenario: "sigterm", Seed: seed, Profile: profile, Changes: scale(10000, 1500), Rate: 250,
			Terms: scale(6, 3), KillMin: 500 * time.Millisecond, KillMax: 3 * time.Second, HTTPFailRate: 0.1, Legacy: true},
		// The workload outlasts the migration (the ghost copy paces itself)
		// and both TRUNCATEs. The migrated table is read by products only;
		// the permissions index by productOverrides only (a TRUNCATE of a
		// table products reads would rebuild products anyway and hide a
		// missed rebuild after the RENAME), and so would product deletions
		// replayed after a kill; the counters table checks values in its
		// raw stream.
		"osc": {Scenario: "osc", Seed: seed, Profile: profile, Changes: scale(20000, 3000), Rate: 200,
			OSCTable: "catalog_product_entity_decimal", OSCAfter: dur(10*time.Second, 2*time.Second),
			TruncateTables: []string{"magento_catalogpermissions_index_product", CountersTable}, NoProductDeletes: true,
			KillMin: 500 * time.Millisecond, KillMax: dur(4*time.Second, 2*time.Second)},
		"disk-full": {Scenario: "disk-full", Seed: seed, Profile: profile, Changes: scale(10000, 3000), Rate: 250,
			DiskFullBlocks: 256},
	}
}

// Names lists the scenario names in run order.
func Names() []string {
	order := map[string]int{"kill9": 1, "source-restarts": 2, "http-errors": 3, "outage": 4, "kafka-partial": 5, "osc": 6, "sigterm": 7, "disk-full": 8}
	names := make([]string, 0, len(order))
	for n := range order {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool { return order[names[i]] < order[names[j]] })
	return names
}

// Plan returns one scenario's plan.
func PlanFor(name string, seed int64, reduced bool) (Plan, error) {
	p, ok := Scenarios(seed, reduced)[name]
	if !ok {
		return p, fmt.Errorf("unknown scenario %q; known: %v", name, Names())
	}
	return p, nil
}

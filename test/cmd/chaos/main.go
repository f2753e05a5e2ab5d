// Command chaos runs feedcdc's fault-injection suite (package test/chaos)
// against the feedcdc binary built from this checkout, a private mariadbd
// and a kfake broker, and prints one summary line per scenario.
//
//	go run ./test/cmd/chaos -scenario all -seed 1
//	go run ./test/cmd/chaos -scenario kill9,outage -seed 7 -reduced
//
// It exits 1 when a scenario lost, corrupted or reordered anything.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/feedcdc/feedcdc/test/chaos"
)

func main() {
	scenario := flag.String("scenario", "all", "comma-separated scenarios, or all: "+strings.Join(chaos.Names(), ", "))
	seed := flag.Int64("seed", 1, "seed of the workload and the fault times")
	reduced := flag.Bool("reduced", false, "the reduced sizes that go test runs")
	dir := flag.String("dir", "", "work folder (default: a new temporary folder, removed at the end)")
	flag.Parse()
	os.Exit(run(*scenario, *seed, *reduced, *dir))
}

func run(scenario string, seed int64, reduced bool, dir string) int {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	names := chaos.Names()
	if scenario != "all" {
		names = strings.Split(scenario, ",")
	}
	var plans []chaos.Plan
	for _, n := range names {
		p, err := chaos.PlanFor(strings.TrimSpace(n), seed, reduced)
		if err != nil {
			fmt.Fprintln(os.Stderr, "chaos:", err)
			return 2
		}
		plans = append(plans, p)
	}
	if dir == "" {
		d, err := os.MkdirTemp("", "feedcdc-chaos-")
		if err != nil {
			fmt.Fprintln(os.Stderr, "chaos:", err)
			return 2
		}
		defer os.RemoveAll(d)
		dir = d
	}
	env, err := chaos.NewEnv(ctx, dir, log)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		return 2
	}
	defer env.Close()
	code := 0
	for _, p := range plans {
		log.Info("scenario starts", "scenario", p.Scenario, "seed", seed)
		sum, err := env.Run(ctx, p)
		if err != nil {
			fmt.Fprintf(os.Stderr, "chaos: scenario %s: %v\n", p.Scenario, err)
			code = 1
			continue
		}
		fmt.Println(sum.String())
		fmt.Printf("  feed service: %v\n", sum.ServiceRequests)
		for _, d := range sum.Detail {
			fmt.Println("  " + d)
		}
		if !sum.OK() {
			code = 1
		}
	}
	return code
}

package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/feedcdc/feedcdc/config"
	"github.com/feedcdc/feedcdc/telemetry"
)

type globals struct {
	configPath string
	logLevel   string
	logFormat  string
	stdout     io.Writer
	stderr     io.Writer
	// setMemoryLimit is debug.SetMemoryLimit in the feedcdc process (nil
	// when commands run inside a test's process).
	setMemoryLimit func(int64) int64
}

// newRoot builds the command tree and the globals its commands share.
func newRoot(stdout, stderr io.Writer) (*cobra.Command, *globals) {
	g := &globals{stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:   "feedcdc",
		Short: "Change-data-capture connector for commerce catalogs",
		Long: `feedcdc reads a MySQL or MariaDB binlog as a replica and turns catalog row
changes into entity feeds (products, productAttributes, variants,
productOverrides) and raw per-table change streams, exported to Kafka, an HTTP
feed service or files, with checkpointed binlog positions.`,
		Example: `  go run ./cmd/feedcdc-demo              # everything on this machine, in one command (from the repository)
  feedcdc check -c config.yaml           # preflight of the source, sinks and state
  feedcdc run -c config.yaml             # stream (and full sync on first start)
  feedcdc resync --feed products --dry-run
  feedcdc status --json
  feedcdc state backup /backup/feedcdc-state.db`,
		SilenceUsage:  true,
		SilenceErrors: true,
		// --version prints the first line of `feedcdc version`.
		Version: Version,
	}
	root.SetVersionTemplate(versionLine() + "\n")
	def := os.Getenv("FEEDCDC_CONFIG")
	if def == "" {
		def = "config.yaml"
	}
	root.PersistentFlags().StringVarP(&g.configPath, "config", "c", def, "configuration file (env FEEDCDC_CONFIG)")
	root.PersistentFlags().StringVar(&g.logLevel, "log-level", "", "override log.level: debug, info, warn, error")
	root.PersistentFlags().StringVar(&g.logFormat, "log-format", "", "override log.format: json, text, auto")
	root.AddCommand(newRun(g), newResync(g), newSnapshot(g), newRetry(g), newStatus(g), newFeeds(g), newCheck(g), newInspect(g), newPosition(g), newState(g), newSchema(g), newVerify(g), newDemo(g), newVersion(g))
	return root, g
}

// loadConfig loads and validates the configuration file with the process
// environment's FEEDCDC_* overrides.
func (g *globals) loadConfig() (*config.Config, error) {
	cfg, err := config.Load(g.configPath, os.Environ())
	if err != nil {
		if os.IsNotExist(err) || strings.Contains(err.Error(), "no such file") {
			return nil, fmt.Errorf("%w\nfeedcdc needs a configuration file: copy the documented config.yaml from the repository, or pass --config PATH (or set FEEDCDC_CONFIG); the demo (go run ./cmd/feedcdc-demo) runs without one", err)
		}
		return nil, err
	}
	if g.logLevel != "" {
		cfg.Log.Level = g.logLevel
	}
	if g.logFormat != "" {
		cfg.Log.Format = g.logFormat
	}
	if g.setMemoryLimit != nil {
		if limit, ok := memoryLimit(cfg, os.Getenv("GOMEMLIMIT")); ok {
			g.setMemoryLimit(limit)
		}
	}
	return cfg, nil
}

// memoryLimit is the Go runtime's soft memory limit backpressure.memory_limit
// asks for (0: 64 MiB plus the two max_inflight_bytes budgets, the
// stream's and the full syncs'); none when GOMEMLIMIT is set (the runtime
// read it at start).
func memoryLimit(cfg *config.Config, gomemlimit string) (int64, bool) {
	if gomemlimit != "" {
		return 0, false
	}
	if l := int64(cfg.Backpressure.MemoryLimit); l > 0 {
		return l, true
	}
	return 64<<20 + 2*int64(cfg.Backpressure.MaxInflightBytes), true
}

// configAndLogger loads the config file and builds the logger it asks for.
func (g *globals) configAndLogger() (*config.Config, *slog.Logger, error) {
	cfg, err := g.loadConfig()
	if err != nil {
		return nil, nil, err
	}
	log, err := g.logger(cfg)
	if err != nil {
		return nil, nil, err
	}
	return cfg, log, nil
}

// canonicalFeed checks a --feed value and returns the feed's own spelling.
func canonicalFeed(flag string) (string, error) {
	feed, ok := config.CanonicalFeedName(flag)
	if !ok {
		return "", fmt.Errorf("--feed %q: unknown feed; feeds are %s", flag, strings.Join(config.FeedNames, ", "))
	}
	return feed, nil
}

func (g *globals) logger(cfg *config.Config) (*slog.Logger, error) {
	level, format := "info", "auto"
	if cfg != nil {
		level, format = cfg.Log.Level, cfg.Log.Format
	}
	if g.logLevel != "" {
		level = g.logLevel
	}
	if g.logFormat != "" {
		format = g.logFormat
	}
	log, err := telemetry.NewLogger(g.stderr, format, level)
	if err != nil {
		return nil, err
	}
	if cfg != nil {
		for _, w := range cfg.Warnings {
			log.Warn("config: " + w)
		}
	}
	return log, nil
}

// Package runner runs one configured connector the way `feedcdc run` does:
// telemetry, the /metrics and dashboard listeners, and the connector's
// stream and jobs until the context ends. It is shared by the feedcdc
// command and the feedcdc-demo command.
//
// Invariants: every listener and the connector are closed when Run
// returns; nothing here imports test infrastructure (the deployable binary
// links it).
package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/feedcdc/feedcdc/change"
	"github.com/feedcdc/feedcdc/config"
	"github.com/feedcdc/feedcdc/connector"
	"github.com/feedcdc/feedcdc/dashboard"
	"github.com/feedcdc/feedcdc/ha"
	"github.com/feedcdc/feedcdc/telemetry"
)

// Hooks let a caller (the demo, tests) observe a running connector.
type Hooks struct {
	// OnReady is called once the connector streams (after a first-start
	// capture of the position).
	OnReady func(c *connector.Connector, pos change.Position, first bool)
	// Addrs is called with the listening addresses of /metrics and of the
	// dashboard ("" when not served) before the connector starts.
	Addrs func(metrics, dashboard string)
	// NewState is run's --new-state: a damaged, empty or foreign state file
	// is moved aside and a new state started.
	NewState bool
}

// Run opens and runs a connector with its telemetry and dashboard listeners
// until ctx ends; version is reported to telemetry as the service version.
// A context cancellation is a clean stop (nil). With ha.enabled the
// instance is one of a highly available group (see runHA).
func Run(ctx context.Context, cfg *config.Config, log *slog.Logger, version string, hooks *Hooks) error {
	if cfg.HA.Enabled {
		return runHA(ctx, cfg, log, version, hooks)
	}
	return runActive(ctx, cfg, log, version, hooks, nil)
}

// runActive runs the connector; node is this instance's HA membership (nil
// without HA): its commit hook replicates the state, its guard fences the
// sinks, and /readyz and /ha report its role.
func runActive(ctx context.Context, cfg *config.Config, log *slog.Logger, version string, hooks *Hooks, node *ha.Node) error {
	tel, err := telemetry.New(ctx, telemetry.Options{ServiceName: orDefault(cfg.Telemetry.ServiceName, cfg.Name), ServiceVersion: version,
		OTLPEndpoint: cfg.Telemetry.OTLPEndpoint, MetricInterval: cfg.Telemetry.MetricInterval.D(), TracesEnabled: cfg.Telemetry.Traces && cfg.Telemetry.OTLPEndpoint != "",
		Lag: telemetry.LagOptions{HeartbeatPeriod: cfg.Source.Heartbeat.D()}, Logger: log})
	if err != nil {
		return fmt.Errorf("telemetry: %w", err)
	}
	defer tel.Shutdown(context.Background())
	if hooks == nil {
		hooks = &Hooks{}
	}
	oo := connector.OpenOptions{Logger: log, Command: "feedcdc run",
		Observer: connector.MetricsObserver{M: tel.Metrics}, Tracing: tel.Tracing, NewState: hooks.NewState, Version: version}
	if node != nil {
		oo.OnCommit, oo.GuardSink, oo.HA = node.Commit, node.GuardSink, node.Status
	}
	c, err := connector.Open(ctx, cfg, oo)
	if err != nil {
		return err
	}
	defer c.Close()
	tel.Metrics.Queue("export").Capacity(int64(c.Pipeline.QueueLen()), int64(c.Pipeline.MaxInflightBytes()))
	tel.Metrics.ItemCounts(c.ItemCounts)
	// The feeds' counters exist (at 0) before the preflight waits for an
	// unreachable source, so that alerts comparing them (Source
	// unavailable: retries while nothing is built) work from the start.
	for _, f := range cfg.EnabledFeeds() {
		tel.Metrics.Feed(f)
	}
	if node != nil {
		tel.Metrics.HA(func() telemetry.HAStatus { return haMetrics(node) })
	}
	lag := func() (int64, string) {
		r := tel.Metrics.Lag().Read()
		return r.Lag.Milliseconds(), r.State.String()
	}
	var metricsAddr, dashAddr string
	var servers []*http.Server
	serve := func(name, addr string, h http.Handler) (string, error) {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return "", fmt.Errorf("%s: listen on %s: %w", name, addr, err)
		}
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
		servers = append(servers, srv)
		go srv.Serve(ln)
		return ln.Addr().String(), nil
	}
	if cfg.Telemetry.Listen != "" {
		checks := []telemetry.Readiness{
			telemetry.Connected("source", tel.Metrics.SourceState),
			telemetry.LagBelow(tel.Metrics.Lag(), cfg.Telemetry.ReadyMaxLag.D()),
			c.FenceReadiness(),
		}
		var h http.Handler
		if node != nil {
			checks = append(checks, haReadiness(node))
			h = haHandler(node, tel.Handler(telemetry.AllReady(append(checks, c.SinkReadiness()...)...)))
		} else {
			h = tel.Handler(telemetry.AllReady(append(checks, c.SinkReadiness()...)...))
		}
		if cfg.Telemetry.Pprof {
			h = withPprof(h)
		}
		if metricsAddr, err = serve("telemetry.listen", cfg.Telemetry.Listen, h); err != nil {
			return err
		}
		log.Info("serving metrics", "url", "http://"+metricsAddr+"/metrics")
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	if cfg.Dashboard.Enabled {
		b := &connector.Backend{C: c, Ctx: runCtx, Lag: lag}
		h := dashboard.New(b, dashboard.Options{Token: cfg.Dashboard.Token.Value(), Logger: log, RefreshInterval: cfg.Dashboard.RefreshInterval.D(),
			Listen: cfg.Dashboard.Listen, ItemsToken: cfg.Dashboard.ItemsToken})
		if dashAddr, err = serve("dashboard.listen", cfg.Dashboard.Listen, h); err != nil {
			return err
		}
		log.Info("serving dashboard", "url", "http://"+dashAddr+"/")
	}
	if hooks != nil && hooks.Addrs != nil {
		hooks.Addrs(metricsAddr, dashAddr)
	}
	defer func() {
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		for _, s := range servers {
			s.Shutdown(sctx)
		}
	}()
	// The same source checks as `feedcdc check`, before the first-start
	// position capture and any full sync: a FAIL stops here with check's
	// message and fix; an unreachable source is waited for.
	if _, err := c.Preflight(runCtx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	if node != nil {
		// The previous active instance's lease must be over before this
		// one sends anything (docs/operations.md, Fencing).
		if err := node.WaitFence(runCtx); err != nil {
			return nil
		}
	}
	ro := connector.RunOptions{}
	ro.OnStart = func(pos change.Position, first bool) {
		if node != nil {
			log.Info("ha: streaming; takeover complete", "epoch", node.Epoch(), "takeover_ms", node.Streaming().Milliseconds())
		}
		if hooks != nil && hooks.OnReady != nil {
			hooks.OnReady(c, pos, first)
		}
	}
	err = c.Run(runCtx, ro)
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// withPprof adds Go's runtime profiles under /debug/pprof/ to h
// (telemetry.pprof).
func withPprof(h http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/", h)
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

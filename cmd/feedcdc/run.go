package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/feedcdc/feedcdc/change"
	"github.com/feedcdc/feedcdc/config"
	"github.com/feedcdc/feedcdc/connector"
	"github.com/feedcdc/feedcdc/dashboard"
	"github.com/feedcdc/feedcdc/telemetry"
)

func newRun(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "run",
		Short: "Stream the binlog into the feeds and run the scheduled jobs",
		Long: `Streams from the stored checkpoint (on a first start: captures the current
position, runs a full sync of every enabled feed, then streams from that
position), exports feed items and raw changes, runs the retry of failed items
and the legacy flushes on their schedules, and serves /metrics, /healthz,
/readyz and the dashboard when configured. SIGTERM or SIGINT stops it
gracefully with a final checkpoint.`,
		Example: `  feedcdc run -c /etc/feedcdc/config.yaml
  FEEDCDC_SOURCE_PASSWORD=secret feedcdc run --log-format text`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, log, err := g.configAndLogger()
			if err != nil {
				return err
			}
			return runConnector(cmd.Context(), cfg, log, nil)
		},
	}
}

// runHooks lets the demo observe a running connector.
type runHooks struct {
	onReady func(c *connector.Connector, pos change.Position, first bool)
	addrs   func(metrics, dashboard string)
}

// runConnector opens and runs a connector with its telemetry and dashboard
// listeners until ctx ends.
func runConnector(ctx context.Context, cfg *config.Config, log *slog.Logger, hooks *runHooks) error {
	tel, err := telemetry.New(ctx, telemetry.Options{ServiceName: orDefault(cfg.Telemetry.ServiceName, cfg.Name), ServiceVersion: Version,
		OTLPEndpoint: cfg.Telemetry.OTLPEndpoint, MetricInterval: cfg.Telemetry.MetricInterval.D(), TracesEnabled: cfg.Telemetry.Traces && cfg.Telemetry.OTLPEndpoint != "",
		Lag: telemetry.LagOptions{HeartbeatPeriod: cfg.Source.Heartbeat.D()}, Logger: log})
	if err != nil {
		return fmt.Errorf("telemetry: %w", err)
	}
	defer tel.Shutdown(context.Background())
	c, err := connector.Open(ctx, cfg, connector.OpenOptions{Logger: log, Command: "feedcdc run",
		Observer: connector.MetricsObserver{M: tel.Metrics}, Tracing: tel.Tracing})
	if err != nil {
		return err
	}
	defer c.Close()
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
		ready := telemetry.AllReady(append(checks, c.SinkReadiness()...)...)
		if metricsAddr, err = serve("telemetry.listen", cfg.Telemetry.Listen, tel.Handler(ready)); err != nil {
			return err
		}
		log.Info("serving metrics", "url", "http://"+metricsAddr+"/metrics")
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	if cfg.Dashboard.Enabled {
		b := &connector.Backend{C: c, Ctx: runCtx, Lag: lag}
		h := dashboard.New(b, dashboard.Options{Token: cfg.Dashboard.Token.Value(), Logger: log, RefreshInterval: cfg.Dashboard.RefreshInterval.D()})
		if dashAddr, err = serve("dashboard.listen", cfg.Dashboard.Listen, h); err != nil {
			return err
		}
		log.Info("serving dashboard", "url", "http://"+dashAddr+"/")
	}
	if hooks != nil && hooks.addrs != nil {
		hooks.addrs(metricsAddr, dashAddr)
	}
	defer func() {
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		for _, s := range servers {
			s.Shutdown(sctx)
		}
	}()
	ro := connector.RunOptions{}
	if hooks != nil && hooks.onReady != nil {
		ro.OnStart = func(pos change.Position, first bool) { hooks.onReady(c, pos, first) }
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

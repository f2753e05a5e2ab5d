package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/feedcdc/feedcdc/config"
	"github.com/feedcdc/feedcdc/ha"
	"github.com/feedcdc/feedcdc/state"
	"github.com/feedcdc/feedcdc/telemetry"
)

// runHA runs one instance of a highly available connector (ha.enabled):
// as a standby it applies the state changelog to its local state file and
// serves /healthz (live), /readyz (not ready: standby), /ha and the HA
// gauges on /metrics; elected, it
// takes over (catch-up; the fencing wait overlaps the connector's open and
// preflight, which send nothing) and runs the connector with its
// state replicated, until ctx ends or it loses its membership, when it
// discards its local file (it may hold writes the changelog does not) and
// becomes a standby again.
func runHA(ctx context.Context, cfg *config.Config, log *slog.Logger, version string, hooks *Hooks) error {
	node, err := ha.Start(ctx, ha.Options{Brokers: cfg.HA.Brokers, Name: cfg.Name, TopicPrefix: cfg.HA.TopicPrefix,
		Instance: cfg.HA.Instance, SessionTimeout: cfg.HA.SessionTimeout.D(), Replication: cfg.HA.Replication, Logger: log})
	if err != nil {
		return err
	}
	defer node.Close()
	o := node.Options()
	log = log.With("ha_instance", o.Instance)
	for {
		select { // a loss signalled before this standby phase is stale
		case <-node.Lost():
		default:
		}
		activeNow, err := standby(ctx, cfg, log, version, node)
		if err != nil || !activeNow {
			return err
		}
		actx, acancel := context.WithCancel(ctx)
		go func() {
			select {
			case <-node.Lost():
				acancel()
			case <-actx.Done():
			}
		}()
		err = runActive(actx, cfg, log, version, hooks, node)
		lost := ctx.Err() == nil && actx.Err() != nil
		acancel()
		if ctx.Err() != nil {
			return nil
		}
		if !lost {
			return err
		}
		log.Warn("ha: lost the active role; discarding the local state file and following the changelog again", "path", cfg.State.Path)
		if err := removeState(cfg.State.Path); err != nil {
			return err
		}
	}
}

// standby follows the changelog until this instance is elected and has
// taken over (true), or ctx ends (false, nil).
func standby(ctx context.Context, cfg *config.Config, log *slog.Logger, version string, node *ha.Node) (bool, error) {
	st, err := openReplica(ctx, cfg, log, node)
	if err != nil {
		return false, err
	}
	defer func() {
		if st != nil {
			st.Close()
		}
	}()
	stopServing, err := serveStandby(ctx, cfg, log, version, node)
	if err != nil {
		return false, err
	}
	defer func() {
		if stopServing != nil {
			stopServing()
		}
	}()
	for {
		f, err := node.Follow(ctx, st)
		if err != nil {
			return false, err
		}
		log.Info("ha: standby; following the state changelog", "topic", node.Options().StateTopic(), "from_offset", f.Offset())
		fctx, fcancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- f.Run(fctx) }()
		var elected bool
		select {
		case <-ctx.Done():
		case err = <-done:
		case <-node.Elected():
			elected = true
		}
		fcancel()
		if e := <-done; err == nil {
			err = e
		}
		if !elected || err != nil {
			f.Close()
			return false, err
		}
		err = f.Takeover(ctx)
		if errors.Is(err, ha.ErrFenced) {
			// The takeover may have marked the file as active or written
			// to it what the changelog lacks: restore it afresh.
			log.Warn("ha: lost the election before the takeover finished; staying standby", "error", err)
			if err := st.Close(); err != nil {
				return false, err
			}
			if err := removeState(cfg.State.Path); err != nil {
				return false, err
			}
			if st, err = openReplica(ctx, cfg, log, node); err != nil {
				return false, err
			}
			continue
		}
		if err != nil {
			return false, err
		}
		log.Info("ha: active; resuming from the replicated checkpoint", "epoch", node.Epoch())
		if err := st.Close(); err != nil {
			return false, err
		}
		stopServing()
		stopServing = nil
		return true, nil
	}
}

// openReplica opens the local state file as a standby's copy: a file that
// is not one (written by an active instance, or by a single process) is
// replaced by a restore from the changelog when the changelog holds
// anything; a damaged one is moved aside.
func openReplica(ctx context.Context, cfg *config.Config, log *slog.Logger, node *ha.Node) (*state.Store, error) {
	open := func() (*state.Store, error) {
		return state.Open(cfg.State.Path, state.Options{Command: "feedcdc run (ha standby)", Logger: log, NewState: true})
	}
	st, err := open()
	if err != nil {
		return nil, err
	}
	_, ok, err := ha.ReadMark(ctx, st)
	if err != nil || ok {
		return st, err
	}
	end, err := node.End(ctx)
	if err != nil {
		st.Close()
		return nil, err
	}
	if end == 0 {
		return st, nil // a new group: this file (if any) is where the state starts
	}
	log.Info("ha: the local state file is not a standby's copy; restoring it from the changelog", "path", cfg.State.Path, "changelog_records", end)
	if err := st.Close(); err != nil {
		return nil, err
	}
	if err := removeState(cfg.State.Path); err != nil {
		return nil, err
	}
	return open()
}

func removeState(path string) error {
	for _, p := range []string{path, path + ".owner"} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("ha: remove the local state file: %w", err)
		}
	}
	return nil
}

// haReadiness is ready only on the active instance with a valid lease.
func haReadiness(node *ha.Node) telemetry.Readiness {
	return func(context.Context) []string {
		if err := node.Writable(); err != nil {
			return []string{"ha: " + string(node.Status().Role) + ": " + err.Error()}
		}
		return nil
	}
}

// haHandler adds GET /ha (the instance's role, epoch, changelog lag and
// last takeover, JSON) to h.
func haHandler(node *ha.Node, h http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/", h)
	mux.HandleFunc("GET /ha", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(node.Status())
	})
	return mux
}

// serveStandby serves /healthz (live), /readyz (503: standby), /ha and
// /metrics (only the feedcdc_ha_* gauges: role, epoch followed, changelog
// lag) on telemetry.listen while this instance is a standby; with an OTLP
// endpoint the same gauges are pushed. stop closes the listener and the
// telemetry.
func serveStandby(ctx context.Context, cfg *config.Config, log *slog.Logger, version string, node *ha.Node) (stop func(), err error) {
	if cfg.Telemetry.Listen == "" && cfg.Telemetry.OTLPEndpoint == "" {
		return func() {}, nil
	}
	tel, err := telemetry.New(ctx, telemetry.Options{ServiceName: orDefault(cfg.Telemetry.ServiceName, cfg.Name), ServiceVersion: version,
		OTLPEndpoint: cfg.Telemetry.OTLPEndpoint, MetricInterval: cfg.Telemetry.MetricInterval.D(), Logger: log})
	if err != nil {
		return nil, fmt.Errorf("telemetry: %w", err)
	}
	tel.Metrics.Standby(func() telemetry.HAStatus { return haMetrics(node) })
	// The last OTLP push must not delay a takeover (an unreachable
	// endpoint would hold Shutdown for the exporter's timeout): it runs in
	// the background, bounded.
	closeTel := func() {
		go func() {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			tel.Shutdown(sctx)
		}()
	}
	if cfg.Telemetry.Listen == "" {
		return closeTel, nil
	}
	ln, err := net.Listen("tcp", cfg.Telemetry.Listen)
	if err != nil {
		closeTel()
		return nil, fmt.Errorf("telemetry.listen: listen on %s: %w", cfg.Telemetry.Listen, err)
	}
	srv := &http.Server{Handler: haHandler(node, tel.Handler(haReadiness(node))), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	return func() {
		srv.Close()
		closeTel()
	}, nil
}

// haMetrics is what the feedcdc_ha_* gauges show of node.
func haMetrics(node *ha.Node) telemetry.HAStatus {
	s := node.Status()
	return telemetry.HAStatus{Active: node.Writable() == nil, Epoch: s.Epoch, TakeoverMillis: s.TakeoverMillis, ChangelogLag: s.Lag}
}

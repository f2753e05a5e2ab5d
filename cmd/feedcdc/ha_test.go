package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/feedcdc/feedcdc/dashboard"
	"github.com/feedcdc/feedcdc/ha"
	"github.com/feedcdc/feedcdc/state"
	"github.com/feedcdc/feedcdc/test/kafkatest"
)

// haGet reads GET /ha of the instance serving telemetry on port.
func haGet(port int) (ha.Status, bool) {
	var s ha.Status
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/ha", port))
	if err != nil {
		return s, false
	}
	defer resp.Body.Close()
	return s, resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(&s) == nil
}

// TestStatusShowsHA: with ha.enabled, `feedcdc status` (text and --json)
// shows the instance's role, epoch, changelog lag and last takeover: on the
// active instance through its dashboard API, on a standby (which holds its
// state file and runs no dashboard) from its GET /ha, and on a stopped
// instance from its state file (role stopped, the epoch it last followed).
func TestStatusShowsHA(t *testing.T) {
	loadShop(t, "hashop", 11)
	c := kafkatest.Start(t, kafkatest.WithBrokerConfigs(map[string]string{"group.min.session.timeout.ms": "500"}))
	instance := func(name string) (cfg string, metricsPort, dashPort int) {
		metricsPort, dashPort = freePort(t), freePort(t)
		cfg, _ = cliConfig{Name: "hashop", Env: "CLI", ServerID: 779301, Database: "hashop", Source: []string{"heartbeat: 1s"},
			Telemetry: []string{fmt.Sprintf("listen: 127.0.0.1:%d", metricsPort)},
			Dashboard: []string{"enabled: true", fmt.Sprintf("listen: 127.0.0.1:%d", dashPort)},
			Sections:  fmt.Sprintf("ha: {enabled: true, brokers: [%q], instance: %s, session_timeout: 2s}\n", c.Addr(), name)}.write(t)
		return cfg, metricsPort, dashPort
	}
	// A first, empty leadership, so that instance a's epoch is not 0.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	z, err := ha.Start(ctx, ha.Options{Brokers: []string{c.Addr()}, Name: "hashop", TopicPrefix: "feedcdc", Instance: "z",
		SessionTimeout: 2 * time.Second, Replication: -1})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-z.Elected():
	case <-time.After(30 * time.Second):
		t.Fatal("the first node was not elected within 30s")
	}
	stZ, err := state.Open(filepath.Join(t.TempDir(), "z.db"), state.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	f, err := z.Follow(ctx, stZ)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Takeover(ctx); err != nil {
		t.Fatal(err)
	}
	stZ.Close()
	z.Close()
	cfgA, portA, dashA := instance("a")
	startRun(t, cfgA)
	var active ha.Status
	waitFor(t, "instance a to stream as the active one", 2*time.Minute, func() bool {
		s, ok := haGet(portA)
		active = s
		return ok && s.Role == ha.RoleActive && !s.LastTakeover.IsZero()
	})
	if active.Epoch == 0 {
		t.Fatal("instance a's epoch is 0 after an earlier leadership")
	}
	cfgB, portB, _ := instance("b")
	rb := startRunWithin(t, cfgB, 3*time.Minute)
	waitFor(t, "instance b to follow the changelog as a standby", 2*time.Minute, func() bool {
		s, ok := haGet(portB)
		return ok && s.Role == ha.RoleStandby && s.Epoch == active.Epoch && s.Lag == 0
	})

	type haJSON struct {
		Running bool      `json:"running"`
		HA      ha.Status `json:"ha"`
	}
	status := func(cfg string) (haJSON, string) {
		t.Helper()
		code, out, errOut := run(t, nil, "status", "--json", "-c", cfg)
		if code != 0 {
			t.Fatalf("status --json -c %s: exit %d\n%s\n%s", cfg, code, out, errOut)
		}
		var st haJSON
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			t.Fatalf("status --json: %v\n%s", err, out)
		}
		code, text, errOut := run(t, nil, "status", "-c", cfg)
		if code != 0 {
			t.Fatalf("status -c %s: exit %d\n%s\n%s", cfg, code, text, errOut)
		}
		return st, text
	}

	// The active instance, through its dashboard API.
	st, text := status(cfgA)
	if !st.Running || st.HA.Role != ha.RoleActive || st.HA.Instance != "a" || st.HA.Epoch != active.Epoch ||
		!st.HA.LastTakeover.Equal(active.LastTakeover) || st.HA.TakeoverMillis <= 0 {
		t.Errorf("status of the active instance: %+v, want running, active, instance a, epoch %d, last takeover %s with its duration",
			st, active.Epoch, active.LastTakeover)
	}
	wantA := fmt.Sprintf("ha: active, instance a, epoch %d, last takeover %s (took ", active.Epoch, active.LastTakeover.UTC().Format(time.RFC3339))
	if !strings.Contains(text, wantA) || !strings.Contains(text, "FEED") {
		t.Errorf("status text of the active instance lacks %q or its feeds:\n%s", wantA, text)
	}

	// The active instance's dashboard overview carries the same block.
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/api/overview", dashA))
	if err != nil {
		t.Fatal(err)
	}
	var ov struct {
		HA *dashboard.HAStatus `json:"ha"`
	}
	err = json.NewDecoder(resp.Body).Decode(&ov)
	resp.Body.Close()
	if err != nil || ov.HA == nil || ov.HA.Role != "active" || ov.HA.Instance != "a" || ov.HA.Epoch != active.Epoch ||
		!ov.HA.LastTakeover.Equal(active.LastTakeover) || ov.HA.TakeoverMillis != active.TakeoverMillis {
		t.Errorf("dashboard overview of the active instance: ha %+v (%v), want active, a, epoch %d, last takeover %s", ov.HA, err, active.Epoch, active.LastTakeover)
	}

	// The standby, from its /ha.
	st, text = status(cfgB)
	if !st.Running || st.HA.Role != ha.RoleStandby || st.HA.Instance != "b" || st.HA.Epoch != active.Epoch || st.HA.Lag != 0 {
		t.Errorf("status of the standby: %+v, want running, standby, instance b, epoch %d, lag 0", st, active.Epoch)
	}
	wantB := fmt.Sprintf("ha: standby, instance b, following epoch %d, changelog lag 0 records", active.Epoch)
	if !strings.Contains(text, "as a high-availability standby") || !strings.Contains(text, wantB) {
		t.Errorf("status text of the standby lacks the standby line or %q:\n%s", wantB, text)
	}

	// A standby without telemetry.listen: status cannot ask it and says
	// how to make it answer.
	cfgC, _ := cliConfig{Name: "hashop", Env: "CLI", ServerID: 779301, Database: "hashop", Source: []string{"heartbeat: 1s"},
		Dashboard: []string{"enabled: true", fmt.Sprintf("listen: 127.0.0.1:%d", freePort(t))},
		Sections:  fmt.Sprintf("ha: {enabled: true, brokers: [%q], instance: c, session_timeout: 2s}\n", c.Addr())}.write(t)
	startRunWithin(t, cfgC, 3*time.Minute)
	var errC string
	waitFor(t, "status of the standby without telemetry.listen to explain itself", time.Minute, func() bool {
		var code int
		code, _, errC = run(t, nil, "status", "-c", cfgC)
		return code != 0 && strings.Contains(errC, "holds the state file")
	})
	if !strings.Contains(errC, "status asks a standby through GET /ha on telemetry.listen, which is not set; set telemetry.listen") {
		t.Errorf("status of a standby without telemetry.listen: %s", errC)
	}

	// The standby stopped: from its state file.
	rb.cancel()
	rb.exit(t, time.Minute)
	st, text = status(cfgB)
	if st.Running || st.HA.Role != ha.RoleStopped || st.HA.Instance != "b" || st.HA.Epoch != active.Epoch {
		t.Errorf("status of the stopped standby: %+v, want stopped, instance b, epoch %d", st, active.Epoch)
	}
	wantStopped := fmt.Sprintf("ha: stopped, instance b, epoch %d (from the state file)", active.Epoch)
	if !strings.Contains(text, wantStopped) {
		t.Errorf("status text of the stopped standby lacks %q:\n%s", wantStopped, text)
	}
}

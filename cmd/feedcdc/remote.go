package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/feedcdc/feedcdc/config"
	"github.com/feedcdc/feedcdc/dashboard"
	"github.com/feedcdc/feedcdc/state"
)

// remote is the running connector's dashboard API, which CLI commands use
// while `feedcdc run` holds the state file.
type remote struct {
	base  string
	token string
	pid   int
}

// tokenSource names where the CLI reads the dashboard token from, for
// error messages.
func tokenSource(cfg *config.Config) string {
	switch {
	case cfg.Dashboard.TokenFile != "":
		return "the file " + cfg.Dashboard.TokenFile + " (dashboard.token_file)"
	case cfg.Dashboard.TokenEnv != "":
		return "the environment variable " + cfg.Dashboard.TokenEnv + " (dashboard.token_env)"
	}
	return "the environment variable FEEDCDC_DASHBOARD_TOKEN"
}

// remoteFor returns the running connector's API for command, or an error
// that says why the command cannot go through it; inUse is the error of
// opening the state file. needToken is false for read-only endpoints.
func (g *globals) remoteFor(cfg *config.Config, command string, inUse error, needToken bool) (*remote, error) {
	var iu *state.InUseError
	pid := 0
	if errors.As(inUse, &iu) {
		pid = iu.Owner.PID
		if pid != 0 && !strings.Contains(iu.Owner.Command, " run") {
			return nil, fmt.Errorf("%w\nanother feedcdc command holds the state file (%s, pid %d); wait for it to finish and run %s again", inUse, iu.Owner.Command, pid, command)
		}
	}
	who := "the running connector"
	if pid != 0 {
		who = fmt.Sprintf("the running connector (pid %d)", pid)
	}
	if !cfg.Dashboard.Enabled {
		return nil, fmt.Errorf("%s holds the state file %s; %s goes through its dashboard API, which is disabled: set dashboard.enabled: true (with a token) and restart it, or stop it and run %s again", who, cfg.State.Path, command, command)
	}
	if needToken && cfg.Dashboard.Token.Value() == "" {
		return nil, fmt.Errorf("%s holds the state file %s; %s goes through its dashboard API at %s, which needs the dashboard token: set %s in this shell to the token the connector runs with", who, cfg.State.Path, command, cfg.Dashboard.Listen, tokenSource(cfg))
	}
	return &remote{base: "http://" + cfg.Dashboard.Listen, token: cfg.Dashboard.Token.Value(), pid: pid}, nil
}

// who names the running connector in messages.
func (r *remote) who() string {
	if r.pid != 0 {
		return fmt.Sprintf("the running connector (pid %d)", r.pid)
	}
	return "the running connector"
}

// do sends a request with the token and decodes a 2xx JSON answer into
// out; other answers become an error carrying the API's message.
func (r *remote) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, r.base+path, rd)
	if err != nil {
		return err
	}
	if r.token != "" {
		req.Header.Set("Authorization", "Bearer "+r.token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("%s holds the state file, and its dashboard at %s did not answer: %w", r.who(), strings.TrimPrefix(r.base, "http://"), err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("%s: read the answer: %w", r.who(), err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		msg := strings.TrimSpace(string(raw))
		if json.Unmarshal(raw, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		if resp.StatusCode == http.StatusUnauthorized {
			msg += " (the token in this shell differs from the connector's)"
		}
		return fmt.Errorf("%s refused: %s (%s)", r.who(), msg, resp.Status)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("%s answered %s with unexpected content: %w", r.who(), path, err)
		}
	}
	return nil
}

// startJob starts a job and, with wait, polls it until it ends, calling
// progress with every new state. A failed job is an error.
func (r *remote) startJob(ctx context.Context, req dashboard.JobRequest, wait bool, progress func(dashboard.Job)) (dashboard.Job, error) {
	var job dashboard.Job
	if err := r.do(ctx, http.MethodPost, "/api/jobs", req, &job); err != nil {
		return job, err
	}
	if job.PID != 0 {
		r.pid = job.PID
	}
	if !wait {
		return job, nil
	}
	tick := time.NewTicker(300 * time.Millisecond)
	defer tick.Stop()
	for job.State == dashboard.JobRunning {
		if progress != nil {
			progress(job)
		}
		select {
		case <-ctx.Done():
			return job, fmt.Errorf("stopped waiting; job %s goes on in %s (see feedcdc status): %w", job.ID, r.who(), ctx.Err())
		case <-tick.C:
		}
		if err := r.do(ctx, http.MethodGet, "/api/jobs/"+job.ID, nil, &job); err != nil {
			return job, err
		}
	}
	if progress != nil {
		progress(job)
	}
	if job.State == dashboard.JobFailed {
		return job, fmt.Errorf("%s of %s failed in %s (job %s): %s", job.Kind, job.Feed, r.who(), job.ID, job.Error)
	}
	return job, nil
}

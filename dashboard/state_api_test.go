package dashboard_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/feedcdc/feedcdc/dashboard"
)

// stateBackend adds the state file endpoints to the in-memory backend:
// the backup is the given bytes, cut off after cutAfter bytes when >= 0.
type stateBackend struct {
	*memBackend
	copy     string
	cutAfter int
	passed   bool
}

func (b *stateBackend) CheckState(ctx context.Context) (any, bool, error) {
	return map[string]any{"path": "state.db", "problems": []string{}}, b.passed, nil
}

func (b *stateBackend) BackupState(ctx context.Context, w io.Writer, size func(int64)) (int64, error) {
	size(int64(len(b.copy)))
	data := b.copy
	if b.cutAfter >= 0 {
		data = data[:b.cutAfter]
	}
	n, err := io.WriteString(w, data)
	if err == nil && b.cutAfter >= 0 {
		err = errors.New("disk read error")
	}
	return int64(n), err
}

func TestStateEndpointsNeedTokenAndStateBackend(t *testing.T) {
	plain := newServer(t, newMemBackend(), dashboard.Options{Token: testToken})
	for _, path := range []string{"/api/state/check", "/api/state/backup"} {
		if r := do(t, "GET", plain.URL+path, "", nil); r.code != http.StatusUnauthorized {
			t.Fatalf("%s without token: %d", path, r.code)
		}
		if r := do(t, "GET", plain.URL+path, testToken, nil); r.code != http.StatusNotImplemented {
			t.Fatalf("%s on a backend without state endpoints: %d %s", path, r.code, r.body)
		}
	}

	sb := &stateBackend{memBackend: newMemBackend(), copy: strings.Repeat("page", 4096), cutAfter: -1, passed: true}
	srv := newServer(t, sb, dashboard.Options{Token: testToken})
	if r := do(t, "GET", srv.URL+"/api/state/backup", "wrong", nil); r.code != http.StatusUnauthorized {
		t.Fatalf("backup with a wrong token: %d", r.code)
	}
	r := do(t, "GET", srv.URL+"/api/state/backup", testToken, nil)
	if r.code != http.StatusOK || string(r.body) != sb.copy || r.header.Get("Content-Length") != "16384" {
		t.Fatalf("backup: %d, %d bytes, length %q", r.code, len(r.body), r.header.Get("Content-Length"))
	}
	if r := do(t, "GET", srv.URL+"/api/state/check", testToken, nil); r.code != http.StatusOK {
		t.Fatalf("check of a good file: %d", r.code)
	}
	sb.passed = false
	if r := do(t, "GET", srv.URL+"/api/state/check", testToken, nil); r.code != http.StatusInternalServerError || !strings.Contains(string(r.body), "state.db") {
		t.Fatalf("check of a damaged file: %d %s", r.code, r.body)
	}

	// A copy that fails midway reaches the client short of its
	// Content-Length: the client sees the cut.
	sb.cutAfter = 1000
	req, _ := http.NewRequest("GET", srv.URL+"/api/state/backup", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	if err == nil || n != 1000 {
		t.Fatalf("cut-off backup read %d bytes, err %v", n, err)
	}
}

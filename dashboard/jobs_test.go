package dashboard_test

import (
	"strings"
	"testing"

	"github.com/feedcdc/feedcdc/dashboard"
)

// TestJobEndpointsNeedTokenAndValidate: the CLI's job endpoints act only
// with the token, check the request before the backend sees it, and
// answer 501 on a backend that runs no jobs; status and position read
// without a token (501 when the backend cannot report them).
func TestJobEndpointsNeedTokenAndValidate(t *testing.T) {
	srv := newServer(t, newMemBackend(), dashboard.Options{Token: testToken})
	job := map[string]any{"kind": "resync", "feed": "products"}
	if r := do(t, "POST", srv.URL+"/api/jobs", "", job); r.code != 401 {
		t.Errorf("POST /api/jobs without token: %d %s", r.code, r.body)
	}
	if r := do(t, "GET", srv.URL+"/api/jobs/1", "wrong", nil); r.code != 401 {
		t.Errorf("GET /api/jobs/1 with a wrong token: %d %s", r.code, r.body)
	}
	if r := do(t, "POST", srv.URL+"/api/jobs", testToken, map[string]any{"kind": "reindex", "feed": "products"}); r.code != 400 || !strings.Contains(r.errorText(t), `"resync" or "retry"`) {
		t.Errorf("unknown kind: %d %s", r.code, r.body)
	}
	if r := do(t, "POST", srv.URL+"/api/jobs", testToken, `{"kind":"resync","feed":"products","ids_typo":["A"]}`); r.code != 400 || !strings.Contains(r.errorText(t), "ids_typo") {
		t.Errorf("unknown field: %d %s", r.code, r.body)
	}
	if r := do(t, "POST", srv.URL+"/api/jobs", testToken, job); r.code != 501 {
		t.Errorf("backend without jobs: %d %s", r.code, r.body)
	}
	for _, path := range []string{"/api/status", "/api/position"} {
		if r := do(t, "GET", srv.URL+path, "", nil); r.code != 501 {
			t.Errorf("GET %s on a backend that cannot report it: %d %s", path, r.code, r.body)
		}
	}
}

package connector

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// TestPreferredTLSFallsBackOnlyOnADefiniteNo: a source without TLS answers
// @@have_ssl NO/DISABLED (plaintext, as preferred allows); a source that
// cannot be asked is an error naming the setting, never a silent fallback
// to plaintext.
func TestPreferredTLSFallsBackOnlyOnADefiniteNo(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	offered, err := sourceOffersTLS(ctx, srv.Admin(t, ""))
	if err != nil || offered {
		t.Fatalf("server without TLS: offered %v, err %v; want plaintext without error", offered, err)
	}

	// Nothing listens on a port that was just free.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	db, err := sql.Open("mysql", fmt.Sprintf("%s:%s@tcp(127.0.0.1:%d)/?timeout=2s", srv.CDCUser, srv.CDCPassword, port))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	offered, err = sourceOffersTLS(ctx, db)
	if err == nil || offered || !strings.Contains(err.Error(), "source.tls.mode preferred") || !strings.Contains(err.Error(), "have_ssl") {
		t.Fatalf("unreachable source: offered %v, err %v; want an error naming source.tls.mode preferred", offered, err)
	}
}

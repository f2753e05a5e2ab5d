package connector

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/feedcdc/feedcdc/connector/binlog"
	"github.com/feedcdc/feedcdc/state"
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

// TestSchemaReloadPreferredTLSDoesNotGuess: `feedcdc schema reload` with
// source.tls.mode preferred asks the source the same way Run does. When the
// question fails (here the connector's pool is closed), the reload stops
// with an error naming source.tls.mode preferred instead of reading the
// schema over plaintext as if the source had said it has no TLS.
func TestSchemaReloadPreferredTLSDoesNotGuess(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db := srv.NewDatabase(t, "prefreload")
	srv.Exec(t, db, "CREATE TABLE t (id INT PRIMARY KEY)")
	cy := connectorYAML{Name: "prefreload", Database: db, Feeds: noFeeds,
		Source:   []string{"tls: {mode: preferred}", fmt.Sprintf("include_tables: [\"%s.t\"]", db)},
		Sections: "raw:\n  enabled: true\n"}
	c := openConnector(t, cy.load(t), OpenOptions{NoSinks: true})
	if _, err := c.ReloadSchema(ctx, db+".t"); err != nil {
		t.Fatalf("reload with the source reachable (no TLS, plaintext as preferred allows): %v", err)
	}
	c.SourceDB.Close()
	_, err := c.ReloadSchema(ctx, db+".t")
	if err == nil || !strings.Contains(err.Error(), "source.tls.mode preferred") {
		t.Fatalf("reload when the source cannot be asked about TLS: err %v; want an error naming source.tls.mode preferred", err)
	}
}

// TestPositionPreferredTLSDoesNotGuess: the position commands (show, set)
// open their own binlog connections; with source.tls.mode preferred they
// ask the source about TLS as Run does (ResolvedSourceConfig), so when the
// question fails the report names source.tls.mode preferred instead of
// checking the position over plaintext as if the source had no TLS.
func TestPositionPreferredTLSDoesNotGuess(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db := srv.NewDatabase(t, "prefposition")
	srv.Exec(t, db, "CREATE TABLE t (id INT PRIMARY KEY)")
	cy := connectorYAML{Name: "prefposition", Database: db, Feeds: noFeeds,
		Source:   []string{"tls: {mode: preferred}", fmt.Sprintf("include_tables: [\"%s.t\"]", db)},
		Sections: "raw:\n  enabled: true\n"}
	c := openConnector(t, cy.load(t), OpenOptions{NoSinks: true})
	pos, err := binlog.CurrentPosition(ctx, c.SourceConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Store.Update(ctx, func(tx *state.Tx) error { return tx.SetCheckpoint(pos, time.Now()) }); err != nil {
		t.Fatal(err)
	}
	r, err := c.PositionReport(ctx)
	if err != nil || r.ServerError != "" || r.Server == nil || !r.Server.Available {
		t.Fatalf("position report with the source reachable (no TLS, plaintext as preferred allows): %+v, err %v", r, err)
	}
	c.SourceDB.Close()
	r, err = c.PositionReport(ctx)
	if err != nil || !strings.Contains(r.ServerError, "source.tls.mode preferred") {
		t.Fatalf("position report when the source cannot be asked about TLS: server error %q (err %v); want one naming source.tls.mode preferred", r.ServerError, err)
	}
	if _, err := c.ResolvedSourceConfig(ctx); err == nil || !strings.Contains(err.Error(), "source.tls.mode preferred") {
		t.Fatalf("ResolvedSourceConfig when the source cannot be asked: %v", err)
	}
}

// TestSourceConfigReadableWhileRunStarts: Run resolves source.tls.mode
// preferred into the source configuration while the dashboard's and the
// API's handlers read it (SourceConfig); under -race an unguarded write
// is reported here.
func TestSourceConfigReadableWhileRunStarts(t *testing.T) {
	db := srv.NewDatabase(t, "prefrace")
	srv.Exec(t, db, "CREATE TABLE t (id INT PRIMARY KEY)")
	cy := connectorYAML{Name: "prefrace", Database: db, Feeds: noFeeds,
		Source:   []string{"tls: {mode: preferred}", fmt.Sprintf("include_tables: [\"%s.t\"]", db)},
		Sections: "raw: {enabled: true, sinks: [files]}\nsinks:\n  files:\n    type: file\n    file: {dir: " + t.TempDir() + "}\n"}
	c := openConnector(t, cy.load(t), OpenOptions{})
	readerDone := make(chan struct{})
	stopReader := make(chan struct{})
	reads := 0
	go func() {
		defer close(readerDone)
		for {
			select {
			case <-stopReader:
				return
			default:
			}
			_ = c.SourceConfig().TLS.Enabled
			reads++
		}
	}()
	runErr, stop := startRun(t, c, RunOptions{})
	for deadline := time.Now().Add(time.Minute); !c.Connected(); time.Sleep(20 * time.Millisecond) {
		select {
		case err := <-runErr:
			t.Fatalf("run ended: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("connector did not connect to the source")
		}
	}
	close(stopReader)
	<-readerDone
	stop()
	if reads == 0 {
		t.Fatal("SourceConfig was never read while Run started")
	}
	if c.SourceConfig().TLS.Enabled {
		t.Fatal("source without TLS: preferred resolved to TLS")
	}
}

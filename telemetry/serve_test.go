package telemetry

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestServeAndGracefulShutdown(t *testing.T) {
	tel := newTestTelemetry(t, Options{})
	ln, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Serve(ctx, ln, "metrics", tel.Handler(nil), slog.New(slog.NewTextHandler(io.Discard, nil)))
	}()
	url := "http://" + ln.Addr().String()
	resp, err := http.Get(url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("healthz %d", resp.StatusCode)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve after cancel: %v", err)
		}
	case <-time.After(30 * time.Second): // hang guard
		t.Fatal("Serve did not return after cancel")
	}
	if _, err := http.Get(url + "/healthz"); err == nil {
		t.Fatal("still serving after shutdown")
	}
}

func TestListenErrorNamesAddress(t *testing.T) {
	ln, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, err = Listen(ln.Addr().String())
	if err == nil || !strings.Contains(err.Error(), "listening on "+ln.Addr().String()) || !strings.Contains(err.Error(), "choose a free host:port") {
		t.Fatalf("second Listen: %v", err)
	}
	// Serve on a closed listener reports the error with the server's name.
	ln2, _ := Listen("127.0.0.1:0")
	ln2.Close()
	err = Serve(context.Background(), ln2, "dashboard", http.NotFoundHandler(), nil)
	if err == nil || !strings.Contains(err.Error(), "dashboard server on") || errors.Is(err, http.ErrServerClosed) {
		t.Fatalf("Serve on closed listener: %v", err)
	}
}

package binlog

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestLiveServerIDClash(t *testing.T) {
	db := srv.NewDatabase(t, "clash")
	srv.Exec(t, db, "CREATE TABLE t (id BIGINT PRIMARY KEY)")
	cfg := sourceConfig(srv, db+".t")
	a, err := New(cfg, testLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	errA := make(chan error, 1)
	go func() { errA <- a.Run(ctx, changePositionCurrent(t, cfg), &collector{}) }()
	time.Sleep(500 * time.Millisecond)
	b, err := New(cfg, testLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	errB := make(chan error, 1)
	go func() { errB <- b.Run(ctx, changePositionCurrent(t, cfg), &collector{}) }()
	var got error
	select {
	case got = <-errA:
	case got = <-errB:
	case <-ctx.Done():
		t.Fatal("no source reported the server_id clash")
	}
	cancel()
	if !errors.Is(got, ErrServerIDClash) {
		t.Fatalf("got %v, want ErrServerIDClash", got)
	}
	t.Log(got)
}

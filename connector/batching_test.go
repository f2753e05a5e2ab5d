package connector

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/feedcdc/feedcdc/change"
	"github.com/feedcdc/feedcdc/sink"
)

// sendCounter counts the Sends that carry records of one feed.
type sendCounter struct {
	sink.Sink
	feed  string
	sends atomic.Int32
}

func (s *sendCounter) Send(ctx context.Context, recs []sink.Record) ([]sink.Result, error) {
	for _, r := range recs {
		if r.Feed == s.feed {
			s.sends.Add(1)
			break
		}
	}
	return s.Sink.Send(ctx, recs)
}

// TestBatchesGrowWhileTheExporterIsBusy: while the exporter is busy with a
// batch (its sink does not answer), the changes that arrive over many
// windows are collected into one more waiting batch and one growing batch,
// not into a batch per window queued behind each other: once the sink
// answers, ten changes a window apart take three exports, not eleven. So
// under load the exporter's costs per batch are shared by every change
// that arrived meanwhile instead of each window's batch waiting for all
// those before it.
func TestBatchesGrowWhileTheExporterIsBusy(t *testing.T) {
	g := newGatedSink()
	counter := &sendCounter{feed: "products"}
	e := newEnv(t, nil, func(s sink.Sink) sink.Sink { counter.Sink = s; g.Sink = counter; return g })
	ctx := context.Background()
	rows, err := e.admin.Query("SELECT entity_id, sku FROM catalog_product_entity WHERE type_id = 'simple' ORDER BY entity_id LIMIT 11")
	if err != nil {
		t.Fatal(err)
	}
	type product struct {
		id  int64
		sku string
	}
	var products []product
	for rows.Next() {
		var p product
		if err := rows.Scan(&p.id, &p.sku); err != nil {
			t.Fatal(err)
		}
		products = append(products, p)
	}
	rows.Close()
	if len(products) != 11 {
		t.Fatalf("%d simple products, want 11", len(products))
	}
	pos := 100
	change1 := func(p product) {
		if _, err := e.admin.Exec("UPDATE catalog_product_entity SET sku = CONCAT(sku, '-b') WHERE entity_id = ?", p.id); err != nil {
			t.Error(err)
		}
		c := &change.Change{Table: productTable(e.db), Op: change.OpUpdate, Before: []any{p.id, int64(4), "simple", p.sku}, After: []any{p.id, int64(4), "simple", p.sku + "-b"}}
		if err := e.p.Change(ctx, c); err != nil {
			t.Error(err)
		}
		pos++
		if err := e.p.TxEnd(ctx, change.TxEnd{Position: change.Position{Flavor: "mariadb", File: "binlog.000001", Pos: uint32(pos)}, Timestamp: time.Now()}); err != nil {
			t.Error(err)
		}
	}
	change1(products[0])
	<-g.entered // the first batch is being sent, and the sink does not answer
	fed := make(chan struct{})
	go func() {
		defer close(fed)
		for _, p := range products[1:] {
			time.Sleep(75 * time.Millisecond) // longer than the 50 ms window
			change1(p)
		}
	}()
	select {
	case <-fed:
	case <-time.After(10 * time.Second): // a full queue blocks the reader: let the sink answer
	}
	g.open()
	<-fed
	if err := e.p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if n := counter.sends.Load(); n != 3 {
		t.Fatalf("ten changes a window apart behind a busy exporter took %d exports of products, want 3 (the busy one, one waiting, one grown)", n)
	}
}

package sinks

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/feedcdc/feedcdc/config"
	"github.com/feedcdc/feedcdc/sink"
	"github.com/feedcdc/feedcdc/test/kafkatest"
)

// A config.yaml with a Kafka, an HTTP and a file sink builds real sinks and
// a router: products go to all three, variants to Kafka only, raw streams
// to Kafka and files, each with its own {prefix}.
func TestBuildFromConfigAndRoute(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := kafkatest.Start(t, kafkatest.InMemory())
	var mu sync.Mutex
	var posted []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("x-api-key") != "k-123" {
			http.Error(w, "no key", 401)
			return
		}
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		var items []map[string]any
		json.NewDecoder(zr).Decode(&items)
		mu.Lock()
		for _, it := range items {
			posted = append(posted, r.URL.Path+" "+it["sku"].(string))
		}
		mu.Unlock()
		w.Header().Set("x-request-id", "r-1")
		w.WriteHeader(200)
	}))
	defer srv.Close()
	dir := t.TempDir()
	yaml := fmt.Sprintf(`
name: shop1
source: {host: 127.0.0.1, user: feedcdc}
feeds:
  database: magento
  variants: {sinks: [bus]}
raw: {enabled: true, sinks: [bus, files]}
sinks:
  bus:
    kafka: {brokers: [%q], topic_prefix: cat, partitions: 1, linger: 1ms}
  saas:
    http: {base_url: %q, data_space: ds, api_key_env: TEST_SAAS_KEY, routes: {products: catalog/products}}
  files:
    file: {dir: %q}
`, c.Addr(), srv.URL, dir)
	cfg, err := config.LoadBytes([]byte(yaml), "test.yaml", []string{"TEST_SAAS_KEY=k-123"})
	if err != nil {
		t.Fatal(err)
	}
	built, err := Build(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewRouter(cfg, built)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()

	recs := []sink.Record{
		{Feed: "products", Key: []byte("p1"), Value: []byte(`{"sku":"p1"}`), ID: "id1", Op: "u"},
		{Feed: "variants", Key: []byte("v1"), Value: []byte(`{"sku":"v1"}`), ID: "id2", Op: "u"},
		{Feed: RawFeed, Topic: RawTopic(cfg, "magento", "catalog_product_entity"), Key: []byte(`{"entity_id":1}`), Value: []byte(`{"op":"c"}`), Op: "c"},
	}
	res, err := r.Send(ctx, recs)
	if err != nil {
		t.Fatal(err)
	}
	for i, x := range res {
		if x.Status != sink.StatusOK {
			t.Fatalf("record %d: %v %s", i, x.Status, x.Reason)
		}
	}
	if res[0].RequestID != "saas=r-1" {
		t.Errorf("products request id %q, want the HTTP sink's", res[0].RequestID)
	}
	for topic, n := range map[string]int{"cat.products": 1, "cat.variants": 1, "cat.magento.catalog_product_entity": 1} {
		got, err := c.ReadAll(ctx, topic)
		if err != nil || len(got) != n {
			t.Errorf("topic %s: %d records (%v), want %d", topic, len(got), err, n)
		}
	}
	if cfgs, err := c.TopicConfig(ctx, "cat.products"); err != nil || cfgs["cleanup.policy"] != "compact" {
		t.Errorf("cat.products cleanup.policy %q (%v)", cfgs["cleanup.policy"], err)
	}
	if strings.Join(posted, ",") != "/catalog/products/ds p1" {
		t.Errorf("HTTP service got %v", posted)
	}
	for file, n := range map[string]int{"products.jsonl": 1, "shop1.magento.catalog_product_entity.jsonl": 1} {
		f, err := os.Open(filepath.Join(dir, file))
		if err != nil {
			t.Errorf("%s: %v", file, err)
			continue
		}
		lines := 0
		for sc := bufio.NewScanner(f); sc.Scan(); {
			lines++
		}
		f.Close()
		if lines != n {
			t.Errorf("%s: %d lines, want %d", file, lines, n)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "variants.jsonl")); err == nil {
		t.Error("variants were written to the file sink although routed to bus only")
	}
}

func TestBuildErrorsNameTheSink(t *testing.T) {
	yaml := `
source: {host: 127.0.0.1, user: feedcdc}
feeds: {database: magento}
sinks:
  a: {file: {dir: /proc/feedcdc-cannot-create}}
`
	cfg, err := config.LoadBytes([]byte(yaml), "t.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Build(cfg, nil); err == nil || !strings.Contains(err.Error(), "sinks.a") {
		t.Fatalf("Build: %v, want an error naming sinks.a", err)
	}
}

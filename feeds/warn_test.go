package feeds

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestDataWarningsLoggedOncePerProduct: a duplicate sku is rebuilt with
// every change of either product; the warning naming it is logged once, and
// only the lower entity_id's items are built each time.
func TestDataWarningsLoggedOncePerProduct(t *testing.T) {
	f := newFixture(t, baseCatalog...)
	f.exec(`INSERT INTO catalog_product_entity (entity_id, attribute_set_id, type_id, sku, created_at, updated_at) VALUES (50, 4, 'simple', 'S1', NOW(), NOW())`,
		`INSERT INTO catalog_product_website (product_id, website_id) VALUES (50, 1)`)
	var logs syncBuf
	reg, err := NewRegistry(Config{DB: f.reg.env.db, Database: f.db, ChunkSize: 3, Now: func() time.Time { return fixedNow },
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	fd, _ := reg.Feed("products")
	for range 3 {
		items, err := fd.Build(context.Background(), []string{"1", "50"})
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range items {
			if it.EntityKey != "1" {
				t.Fatalf("built an item of entity %s for the duplicate sku S1", it.EntityKey)
			}
		}
	}
	if n := strings.Count(logs.String(), "duplicate sku"); n != 1 {
		t.Fatalf("duplicate sku logged %d times in 3 builds, want once:\n%s", n, logs.String())
	}
}

// syncBuf is a log buffer safe for concurrent writes.
type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

package feeds

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
)

// ResolveIDs maps `resync --by-ids` values to entity keys. idType "" (or
// "sku") means SKUs; "productId"/"entityId" means entity ids, returned as
// given once checked to be integers. Unknown SKUs are dropped.
func (p *products) ResolveIDs(ctx context.Context, ids []string, idType string) ([]string, error) {
	return resolveProducts(ctx, p.e, p.Name(), ids, idType, false)
}

// ResolveIDs for productOverrides: SKUs or product ids, as for products.
func (o *productOverrides) ResolveIDs(ctx context.Context, ids []string, idType string) ([]string, error) {
	return resolveProducts(ctx, o.e, o.Name(), ids, idType, false)
}

// ResolveIDs for variants: a child SKU (or id) is its own key; a parent's
// SKU (or id) also selects its children.
func (v *variants) ResolveIDs(ctx context.Context, ids []string, idType string) ([]string, error) {
	return resolveProducts(ctx, v.e, v.Name(), ids, idType, true)
}

// ResolveIDs for productAttributes: attribute codes by default, attribute
// ids with idType "productId"/"entityId"/"attributeId".
func (p *productAttributes) ResolveIDs(ctx context.Context, ids []string, idType string) ([]string, error) {
	switch idType {
	case "productId", "entityId", "attributeId":
		return checkInts(p.Name(), ids)
	case "", "sku", "attributeCode":
	default:
		return nil, fmt.Errorf("%s: unknown id type %q (use attribute codes, or attributeId)", p.Name(), idType)
	}
	ph, args := placeholders(ids)
	var out []string
	err := query(ctx, p.e.db, `SELECT a.attribute_id FROM eav_attribute a
		JOIN eav_entity_type t ON t.entity_type_id = a.entity_type_id AND t.entity_type_code = 'catalog_product'
		WHERE a.attribute_code IN (`+ph+`) ORDER BY a.attribute_id`, args, func(r *sql.Rows) error {
		var id uint64
		if err := r.Scan(&id); err != nil {
			return err
		}
		out = append(out, strconv.FormatUint(id, 10))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s: resolve attribute codes: %w", p.Name(), err)
	}
	return out, nil
}

func resolveProducts(ctx context.Context, e *env, feed string, ids []string, idType string, withChildren bool) ([]string, error) {
	var keys []string
	switch idType {
	case "productId", "entityId":
		var err error
		if keys, err = checkInts(feed, ids); err != nil {
			return nil, err
		}
	case "", "sku":
		ph, args := placeholders(ids)
		err := query(ctx, e.db, `SELECT entity_id FROM catalog_product_entity WHERE sku IN (`+ph+`) ORDER BY entity_id`, args, func(r *sql.Rows) error {
			var id uint64
			if err := r.Scan(&id); err != nil {
				return err
			}
			keys = append(keys, strconv.FormatUint(id, 10))
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("%s: resolve skus: %w", feed, err)
		}
	default:
		return nil, fmt.Errorf("%s: unknown id type %q (use sku or productId)", feed, idType)
	}
	if !withChildren || len(keys) == 0 {
		return keys, nil
	}
	nums, err := parseKeys(feed, keys)
	if err != nil {
		return nil, err
	}
	in, _ := inList(nums)
	seen := map[string]bool{}
	for _, k := range keys {
		seen[k] = true
	}
	err = query(ctx, e.db, `SELECT product_id FROM catalog_product_super_link WHERE parent_id IN (`+in+`) ORDER BY product_id`, nil, func(r *sql.Rows) error {
		var id uint64
		if err := r.Scan(&id); err != nil {
			return err
		}
		if k := strconv.FormatUint(id, 10); !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s: resolve children: %w", feed, err)
	}
	return keys, nil
}

func checkInts(feed string, ids []string) ([]string, error) {
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		id = strings.TrimSpace(id)
		if _, err := strconv.ParseUint(id, 10, 64); err != nil {
			return nil, fmt.Errorf("%s: id %q is not an entity id (an unsigned integer)", feed, id)
		}
		out = append(out, id)
	}
	return out, nil
}

// placeholders renders "?,?" and the args for user-supplied strings.
func placeholders(vals []string) (string, []any) {
	args := make([]any, len(vals))
	for i, v := range vals {
		args[i] = strings.TrimSpace(v)
	}
	return strings.TrimSuffix(strings.Repeat("?,", len(vals)), ","), args
}

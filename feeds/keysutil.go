package feeds

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/feedcdc/feedcdc/change"
)

// allProducts emits every product id.
func allProducts(ctx context.Context, e *env, emit func([]string) error) error {
	return scanIDs(ctx, e.db, e.chunk, `SELECT entity_id FROM catalog_product_entity WHERE entity_id > ? ORDER BY entity_id LIMIT ?`, nil, emit)
}

// productsInWebsites emits the products assigned to any of the websites.
func productsInWebsites(ctx context.Context, e *env, websites []uint64, emit func([]string) error) error {
	for _, w := range websites {
		if err := scanIDs(ctx, e.db, e.chunk, `SELECT product_id FROM catalog_product_website WHERE website_id = ? AND product_id > ? ORDER BY product_id LIMIT ?`, []any{w}, emit); err != nil {
			return err
		}
	}
	return nil
}

// productsWithAttribute emits the products that have a value row of the
// attribute in the value table of the backend type.
func productsWithAttribute(ctx context.Context, e *env, attrID uint64, backendType string, emit func([]string) error) error {
	t, ok := valueTables[backendType]
	if !ok {
		return nil // static attributes live in catalog_product_entity
	}
	return scanValueRows(ctx, e.db, e.chunk, `SELECT value_id, entity_id FROM `+t+` WHERE attribute_id = ? AND value_id > ? ORDER BY value_id LIMIT ?`, []any{attrID}, emit)
}

// productsUsingOption emits the products whose value of the attribute is (or,
// for multiselect lists, contains) the option id. Int values are read per
// store through the (attribute_id, store_id, value) index.
func productsUsingOption(ctx context.Context, e *env, attrID, optionID uint64, backendType string, emit func([]string) error) error {
	switch backendType {
	case "int":
		stores := []uint64{0}
		err := query(ctx, e.db, `SELECT store_id FROM store WHERE store_id <> 0 ORDER BY store_id`, nil, func(r *sql.Rows) error {
			var s uint64
			if err := r.Scan(&s); err != nil {
				return err
			}
			stores = append(stores, s)
			return nil
		})
		if err != nil {
			return fmt.Errorf("read stores: %w", err)
		}
		for _, s := range stores {
			if err := scanValueRows(ctx, e.db, e.chunk, `SELECT value_id, entity_id FROM catalog_product_entity_int
				WHERE attribute_id = ? AND store_id = ? AND value = ? AND value_id > ? ORDER BY value_id LIMIT ?`, []any{attrID, s, optionID}, emit); err != nil {
				return err
			}
		}
		return nil
	case "varchar", "text":
		return scanValueRows(ctx, e.db, e.chunk, `SELECT value_id, entity_id FROM `+valueTables[backendType]+
			` WHERE attribute_id = ? AND FIND_IN_SET(?, value) AND value_id > ? ORDER BY value_id LIMIT ?`, []any{attrID, optionID}, emit)
	}
	return nil
}

// optionAttribute looks up the attribute (id, backend type) of an option;
// ok is false when the option no longer exists.
func optionAttribute(ctx context.Context, e *env, optionID uint64) (attrID uint64, backendType string, ok bool, err error) {
	err = e.db.QueryRowContext(ctx, `SELECT a.attribute_id, a.backend_type FROM eav_attribute_option o
		JOIN eav_attribute a ON a.attribute_id = o.attribute_id WHERE o.option_id = ?`, optionID).Scan(&attrID, &backendType)
	if err != nil {
		if isNoRows(err) {
			return 0, "", false, nil
		}
		return 0, "", false, err
	}
	return attrID, backendType, true, nil
}

// attributeBackend returns the backend type of an attribute ("" if gone).
func attributeBackend(ctx context.Context, e *env, attrID uint64) (string, error) {
	var bt string
	err := e.db.QueryRowContext(ctx, `SELECT backend_type FROM eav_attribute WHERE attribute_id = ?`, attrID).Scan(&bt)
	if isNoRows(err) {
		return "", nil
	}
	return bt, err
}

// isValueTable reports whether a table is one of the product EAV value
// tables.
func isValueTable(name string) bool {
	return strings.HasPrefix(name, "catalog_product_entity_") && valueTables[strings.TrimPrefix(name, "catalog_product_entity_")] == name
}

// websitesOf returns the distinct website_id values of the change's images.
func websitesOf(c *change.Change) []uint64 { return ids(c, "website_id") }

package feeds

import (
	"context"
	"crypto/sha1"
	"database/sql"
	"encoding/hex"
	"fmt"
	"strconv"

	"github.com/feedcdc/feedcdc/change"
)

func init() { register("productOverrides", func(e *env) Feed { return &productOverrides{e: e} }) }

// productOverrides: one item per (product, website, customer group) of the
// catalog permissions product index. See docs/feeds.md#productoverrides.
type productOverrides struct{ e *env }

func (o *productOverrides) Name() string { return "productOverrides" }
func (o *productOverrides) IdentityFields() []string {
	return []string{"sku", "websiteCode", "customerGroupCode"}
}

func (o *productOverrides) Tables() []string {
	return []string{tPermissionsIndex, tProductEntity, tStore, tStoreGroup, tStoreWebsite, tCustomerGroup}
}

var overrideMinimal = []string{"productId", "sku", "websiteCode", "customerGroupCode"}

func (o *productOverrides) DeletedPayload(prev PrevItem) Item {
	return deletedItem(o.Name(), prev, overrideMinimal, map[string]bool{"productId": true}, o.e.modifiedAt())
}

func (o *productOverrides) Scan(ctx context.Context, emit func([]string) error) error {
	return scanIDs(ctx, o.e.db, o.e.chunk, `SELECT DISTINCT product_id FROM `+tPermissionsIndex+` WHERE product_id > ? ORDER BY product_id LIMIT ?`, nil, emit)
}

func (o *productOverrides) Keys(ctx context.Context, c *change.Change, emit func([]string) error) error {
	e := o.e
	switch c.Table.Name {
	case tPermissionsIndex:
		return emitIDs(ids(c, "product_id"), e.chunk, emit)
	case tProductEntity:
		if c.Before != nil && c.After != nil && !changed(c, "sku") {
			return nil
		}
		return emitIDs(ids(c, "entity_id"), e.chunk, emit)
	case tStore:
		if c.Before != nil && c.After != nil && !changed(c, "website_id") {
			return nil
		}
		for _, s := range ids(c, "store_id") {
			if err := scanIDs(ctx, e.db, e.chunk, `SELECT DISTINCT product_id FROM `+tPermissionsIndex+` WHERE store_id = ? AND product_id > ? ORDER BY product_id LIMIT ?`, []any{s}, emit); err != nil {
				return err
			}
		}
		return nil
	case tStoreGroup:
		if c.After == nil {
			// Its stores cascaded away unseen: every product with permissions.
			return o.Scan(ctx, emit)
		}
		return nil
	case tStoreWebsite:
		switch {
		case c.Before == nil:
			return nil
		case c.After == nil:
			// Its stores cascaded away unseen: every product with permissions.
			return o.Scan(ctx, emit)
		case changed(c, "code"):
			for _, w := range websitesOf(c) {
				if err := scanIDs(ctx, e.db, e.chunk, `SELECT DISTINCT i.product_id FROM `+tPermissionsIndex+` i
					JOIN store s ON s.store_id = i.store_id WHERE s.website_id = ? AND i.product_id > ? ORDER BY i.product_id LIMIT ?`, []any{w}, emit); err != nil {
					return err
				}
			}
		}
		return nil
	case tCustomerGroup:
		if c.Before != nil && c.After != nil {
			return nil // the code is sha1(id): updates change nothing
		}
		for _, g := range ids(c, "customer_group_id") {
			if err := scanIDs(ctx, e.db, e.chunk, `SELECT DISTINCT product_id FROM `+tPermissionsIndex+` WHERE customer_group_id = ? AND product_id > ? ORDER BY product_id LIMIT ?`, []any{g}, emit); err != nil {
				return err
			}
		}
	}
	return nil
}

type overridePayload struct {
	SKU               string `json:"sku"`
	ProductID         uint64 `json:"productId"`
	WebsiteCode       string `json:"websiteCode"`
	CustomerGroupCode string `json:"customerGroupCode"`
	Displayable       bool   `json:"displayable"`
	PriceDisplayable  bool   `json:"priceDisplayable"`
	AddToCartAllowed  bool   `json:"addToCartAllowed"`
	Deleted           bool   `json:"deleted"`
}

// customerGroupCode is Adobe's customerGroupCode: sha1 of the decimal
// customer_group_id.
func customerGroupCode(id uint64) string {
	s := sha1.Sum([]byte(strconv.FormatUint(id, 10)))
	return hex.EncodeToString(s[:])
}

// granted maps a permission grant to a flag: -2 (deny) is false; -1
// (allow), 0 and NULL (use the configuration default, which allows) are true.
func granted(v sql.NullInt64) bool { return !(v.Valid && v.Int64 == -2) }

func (o *productOverrides) Build(ctx context.Context, entityKeys []string) ([]Item, error) {
	idList, err := parseKeys(o.Name(), entityKeys)
	if err != nil || len(idList) == 0 {
		return nil, err
	}
	modifiedAt := o.e.modifiedAt()
	var out []Item
	seen := map[string]bool{}
	for _, part := range chunks(idList, o.e.chunk) {
		ids := matchIDs(part)
		err := query(ctx, o.e.db, `SELECT i.product_id, p.sku, w.code, i.customer_group_id,
			i.grant_catalog_category_view, i.grant_catalog_product_price, i.grant_checkout_items
			FROM `+tPermissionsIndex+` i
			JOIN catalog_product_entity p ON p.entity_id = i.product_id
			JOIN store s ON s.store_id = i.store_id
			JOIN store_website w ON w.website_id = s.website_id
			JOIN customer_group g ON g.customer_group_id = i.customer_group_id
			WHERE `+ids.On("i.product_id")+` AND s.store_id <> 0 AND w.website_id <> 0 AND p.sku <> ''
			ORDER BY i.product_id, w.website_id, i.customer_group_id, i.store_id`, nil, func(r *sql.Rows) error {
			var pl overridePayload
			var gid uint64
			var view, price, cart sql.NullInt64
			if err := r.Scan(&pl.ProductID, &pl.SKU, &pl.WebsiteCode, &gid, &view, &price, &cart); err != nil {
				return err
			}
			if !ids.Has(pl.ProductID) {
				return nil
			}
			pl.CustomerGroupCode = customerGroupCode(gid)
			pl.Displayable, pl.PriceDisplayable, pl.AddToCartAllowed = granted(view), granted(price), granted(cart)
			ident := map[string]string{
				"sku": pl.SKU, "websiteCode": pl.WebsiteCode, "customerGroupCode": pl.CustomerGroupCode,
				"productId": strconv.FormatUint(pl.ProductID, 10),
			}
			it, err := newItem(o.Name(), ident["productId"], o.IdentityFields(), ident, pl, "", modifiedAt)
			if err != nil {
				return err
			}
			// The website's lowest store view with a row decides (rows are
			// ordered by store_id); duplicate skus keep the lower entity_id.
			if seen[it.ID] {
				return nil
			}
			seen[it.ID] = true
			out = append(out, it)
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("productOverrides: read permissions: %w", err)
		}
	}
	return out, nil
}

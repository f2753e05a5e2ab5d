package feeds

import (
	"cmp"
	"context"
	"crypto/sha1"
	"database/sql"
	"encoding/hex"
	"fmt"
	"slices"
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
		if err := emitIDs(ids(c, "entity_id"), e.chunk, emit); err != nil {
			return err
		}
		if err := skuSiblings(ctx, e, c, emit); err != nil {
			return fmt.Errorf("%s: %w", o.Name(), err)
		}
		return nil
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

// Build reads the index rows of the products with their skus, and takes
// store views and customer groups from the registry's metadata cache, so
// that the server does not join three small tables for every index row
// (about 60 % of the rows the statement examined on the large catalog).
// Rows come in the index's order (product, store view, customer group);
// the website's lowest store view with a row decides, and the items are
// returned ordered by product, website and customer group.
func (o *productOverrides) Build(ctx context.Context, entityKeys []string) ([]Item, error) {
	idList, err := parseKeys(o.Name(), entityKeys)
	if err != nil || len(idList) == 0 {
		return nil, err
	}
	stores, err := o.e.storeViews(ctx)
	if err != nil {
		return nil, fmt.Errorf("productOverrides: %w", err)
	}
	groups, err := o.e.customerGroups(ctx)
	if err != nil {
		return nil, fmt.Errorf("productOverrides: %w", err)
	}
	byStore := make(map[uint64]*storeView, len(stores))
	for i := range stores {
		byStore[stores[i].ID] = &stores[i]
	}
	modifiedAt := o.e.modifiedAt()
	type sorted struct {
		pid, website, group uint64
		it                  Item
	}
	var out []Item
	for _, part := range chunks(idList, o.e.chunk) {
		ids := matchIDs(part)
		var items []sorted
		decided := map[[3]uint64]bool{}
		owners, err := shadowed(ctx, o.e.db, ids)
		if err != nil {
			return nil, fmt.Errorf("productOverrides: %w", err)
		}
		err = query(ctx, o.e.db, `SELECT i.product_id, p.sku, i.store_id, i.customer_group_id,
			i.grant_catalog_category_view, i.grant_catalog_product_price, i.grant_checkout_items
			FROM `+tPermissionsIndex+` i
			JOIN catalog_product_entity p ON p.entity_id = i.product_id
			WHERE `+ids.On("i.product_id")+` AND p.sku <> ''
			ORDER BY i.product_id, i.store_id, i.customer_group_id`, nil, func(r *sql.Rows) error {
			var pl overridePayload
			var sid, gid uint64
			var view, price, cart sql.NullInt64
			if err := r.Scan(&pl.ProductID, &pl.SKU, &sid, &gid, &view, &price, &cart); err != nil {
				return err
			}
			sv := byStore[sid] // store views of a website, not the admin store
			if !ids.Has(pl.ProductID) || sv == nil || !groups[gid] {
				return nil
			}
			if owner, ok := owners[pl.ProductID]; ok { // a lower entity_id has the sku (skus.go)
				o.e.warnShadowed(o.Name(), pl.ProductID, pl.SKU, owner)
				return nil
			}
			// The website's lowest store view with a row decides.
			k := [3]uint64{pl.ProductID, sv.WebsiteID, gid}
			if decided[k] {
				return nil
			}
			decided[k] = true
			pl.WebsiteCode = sv.WebsiteCode
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
			items = append(items, sorted{pl.ProductID, sv.WebsiteID, gid, it})
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("productOverrides: read permissions: %w", err)
		}
		slices.SortStableFunc(items, func(a, b sorted) int {
			return cmp.Or(cmp.Compare(a.pid, b.pid), cmp.Compare(a.website, b.website), cmp.Compare(a.group, b.group))
		})
		for _, s := range items {
			out = append(out, s.it)
		}
	}
	return out, nil
}

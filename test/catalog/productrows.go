package catalog

import (
	"context"
	"fmt"
)

// The rows each per-product table gets for one product (productJobs).

// strValue, intValue and centsValue write an EAV value column.
func strValue(v string) func(*batcher)  { return func(b *batcher) { b.s(v) } }
func intValue(v int64) func(*batcher)   { return func(b *batcher) { b.i(v) } }
func centsValue(v int64) func(*batcher) { return func(b *batcher) { b.cents(v) } }

// varcharRows writes a product's varchar EAV values: name, URL key, meta title, images, multiselect values of its set, and per-store names.
func (l *layout) varcharRows(ctx context.Context, b *batcher, pr product) error {
	vals := []attrString{{AttrName, l.name(pr)}, {AttrURLKey, l.urlKey(pr)}, {AttrMetaTitle, l.name(pr)}, {AttrOptionsContainer, "container2"}}
	if pr.kind != kindVariant {
		img := l.imagePath(pr)
		vals = append(vals, attrString{AttrImage, img}, attrString{AttrSmallImage, img}, attrString{AttrThumbnail, img})
	}
	for _, v := range vals {
		if err := eav(ctx, b, v.attr, 0, pr.id, strValue(v.v)); err != nil {
			return err
		}
	}
	if pr.setIdx >= 0 {
		from, to := l.setAttrs(pr.setIdx)
		for j := from; j < to; j++ {
			if !l.isMultiselect(j) {
				continue
			}
			o := l.genValue(pr, j)
			if o < 0 {
				continue
			}
			o2 := (o + 1) % l.p.OptionsPerAttribute
			v := fmt.Sprintf("%d,%d", l.genOption(j, o), l.genOption(j, o2))
			if err := eav(ctx, b, l.genAttrs[j].ID, 0, pr.id, strValue(v)); err != nil {
				return err
			}
		}
	}
	for _, s := range l.stores {
		if l.overrides(pr.id, s.id, saltName, l.p.NameOverrideFraction) {
			if err := eav(ctx, b, AttrName, s.id, pr.id, strValue(l.storeName(pr, s))); err != nil {
				return err
			}
		}
	}
	return nil
}

// intRows writes a product's int EAV values: status, visibility, tax class, stock status, a variant's color and size, select values of its set, and website-scope status overrides.
func (l *layout) intRows(ctx context.Context, b *batcher, pr product) error {
	vis := int64(VisibilityCatalogSearch)
	if pr.kind == kindVariant {
		vis = VisibilityNotVisible
	}
	for _, v := range []struct {
		attr uint16
		v    int64
	}{{AttrStatus, StatusEnabled}, {AttrVisibility, vis}, {AttrTaxClassID, 2}, {AttrQuantityAndStockStatus, 1}} {
		if err := eav(ctx, b, v.attr, 0, pr.id, intValue(v.v)); err != nil {
			return err
		}
	}
	if pr.kind == kindVariant {
		if err := eav(ctx, b, AttrColor, 0, pr.id, intValue(int64(l.colorOption(pr.color)))); err != nil {
			return err
		}
		if err := eav(ctx, b, AttrSize, 0, pr.id, intValue(int64(l.sizeOption(pr.size)))); err != nil {
			return err
		}
	}
	if pr.setIdx >= 0 {
		from, to := l.setAttrs(pr.setIdx)
		for j := from; j < to; j++ {
			if l.isMultiselect(j) {
				continue
			}
			if o := l.genValue(pr, j); o >= 0 {
				if err := eav(ctx, b, l.genAttrs[j].ID, 0, pr.id, intValue(int64(l.genOption(j, o)))); err != nil {
					return err
				}
			}
		}
	}
	// Website-scope status: a row for every store view of the website.
	for _, w := range l.websitesOf(pr) {
		if !l.overrides(pr.id, w.id, saltStatus, l.p.StatusOverrideFraction) {
			continue
		}
		for _, s := range w.stores {
			if err := eav(ctx, b, AttrStatus, s, pr.id, intValue(StatusDisabled)); err != nil {
				return err
			}
		}
	}
	return nil
}

// textRows writes a product's descriptions, with per-store overrides.
func (l *layout) textRows(ctx context.Context, b *batcher, pr product) error {
	if err := eav(ctx, b, AttrDescription, 0, pr.id, strValue(l.description(pr))); err != nil {
		return err
	}
	if pr.kind == kindVariant {
		return nil
	}
	if err := eav(ctx, b, AttrShortDescription, 0, pr.id, strValue(l.shortDescription(pr))); err != nil {
		return err
	}
	for _, s := range l.stores {
		if l.overrides(pr.id, s.id, saltDesc, l.p.DescriptionOverrideFraction) {
			if err := eav(ctx, b, AttrDescription, s.id, pr.id, strValue(l.storeDescription(pr, s))); err != nil {
				return err
			}
		}
	}
	return nil
}

// decimalRows writes a product's price, weight and special price, with website-scope price overrides (a configurable's price comes from its children).
func (l *layout) decimalRows(ctx context.Context, b *batcher, pr product) error {
	if pr.kind == kindConfigurable {
		return nil // a configurable's price comes from its children
	}
	if err := eav(ctx, b, AttrPrice, 0, pr.id, centsValue(pr.price)); err != nil {
		return err
	}
	if err := eav(ctx, b, AttrWeight, 0, pr.id, centsValue(pr.weight)); err != nil {
		return err
	}
	if pr.special {
		if err := eav(ctx, b, AttrSpecialPrice, 0, pr.id, centsValue(pr.price*8/10)); err != nil {
			return err
		}
	}
	if l.p.PriceScope == ScopeWebsite {
		for _, w := range l.websitesOf(pr) {
			if !l.overrides(pr.id, w.id, saltPriceOverride, l.p.PriceOverrideFraction) {
				continue
			}
			for _, s := range w.stores {
				if err := eav(ctx, b, AttrPrice, s, pr.id, centsValue(pr.price*9/10)); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// urlRewriteRows writes a visible product's URL rewrites per store view: the product page, and the page under its first category.
func (l *layout) urlRewriteRows(ctx context.Context, b *batcher, pr product) error {
	if pr.kind == kindVariant {
		return nil
	}
	key := l.urlKey(pr)
	cats := l.categoriesOf(pr)
	for _, w := range l.websitesOf(pr) {
		for _, s := range w.stores {
			b.begin()
			b.s("product").u(uint64(pr.id)).s(key + ".html").s(fmt.Sprintf("catalog/product/view/id/%d", pr.id)).u(0).u(uint64(s)).u(1).null()
			if err := b.end(ctx); err != nil {
				return err
			}
			if len(cats) > 0 {
				c := &l.categories[cats[0]]
				b.begin()
				b.s("product").u(uint64(pr.id)).s(c.urlPath + "/" + key + ".html").
					s(fmt.Sprintf("catalog/product/view/id/%d/category/%d", pr.id, c.id)).u(0).u(uint64(s)).u(1).
					s(fmt.Sprintf(`{"category_id":"%d"}`, c.id))
				if err := b.end(ctx); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// entityRow writes the product's catalog_product_entity row.
func (l *layout) entityRow(ctx context.Context, b *batcher, pr product) error {
	opts := uint64(0)
	if pr.kind == kindConfigurable {
		opts = 1
	}
	ts := l.timestamp(pr.id)
	b.begin()
	b.u(uint64(pr.id)).u(uint64(l.attributeSetID(pr))).s(pr.kind.typeID()).s(l.sku(pr)).u(opts).u(opts).s(ts).s(ts)
	return b.end(ctx)
}

// stockItemRow writes the product's stock item.
func (l *layout) stockItemRow(ctx context.Context, b *batcher, pr product) error {
	qty, inStock := pr.qty, pr.qty > 0
	if pr.kind == kindConfigurable {
		qty, inStock = 0, true
	}
	b.begin()
	b.u(uint64(pr.id)).u(uint64(pr.id)).u(1).cents(qty * 100).u(uint64(b2i(inStock))).u(0)
	return b.end(ctx)
}

// categoryProductRows assigns the product to its categories.
func (l *layout) categoryProductRows(ctx context.Context, b *batcher, pr product) error {
	for i, c := range l.categoriesOf(pr) {
		b.begin()
		b.u(uint64(l.categories[c].id)).u(uint64(pr.id)).i(int64(i))
		if err := b.end(ctx); err != nil {
			return err
		}
	}
	return nil
}

// websiteRows assigns the product to its websites.
func (l *layout) websiteRows(ctx context.Context, b *batcher, pr product) error {
	for _, w := range l.websitesOf(pr) {
		b.begin()
		b.u(uint64(pr.id)).u(uint64(w.id))
		if err := b.end(ctx); err != nil {
			return err
		}
	}
	return nil
}

// permissionRows writes the catalog permissions of a product that has any, per store view and customer group.
func (l *layout) permissionRows(ctx context.Context, b *batcher, pr product) error {
	if !l.overrides(pr.id, 0, saltPermission, l.p.PermissionFraction) {
		return nil
	}
	for _, w := range l.websitesOf(pr) {
		for _, s := range w.stores {
			for g := 0; g < 4+l.p.ExtraCustomerGroups; g++ {
				view, price, checkout := int64(GrantAllow), int64(GrantAllow), int64(GrantAllow)
				h := hash3(l.seed, uint64(pr.id), saltGrant, uint64(s)<<32|uint64(g))
				switch {
				case g == 0 && frac(h) < 0.5: // guests see the product but not its price
					price, checkout = GrantDeny, GrantDeny
				case frac(h) < 0.1:
					view, price, checkout = GrantDeny, GrantDeny, GrantDeny
				}
				b.begin()
				b.u(uint64(pr.id)).u(uint64(s)).u(uint64(g)).i(view).i(price).i(checkout)
				if err := b.end(ctx); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// datetimeRows writes a product's news-from and special-from dates.
func (l *layout) datetimeRows(ctx context.Context, b *batcher, pr product) error {
	if pr.newFrom {
		if err := eav(ctx, b, AttrNewsFromDate, 0, pr.id, strValue("2025-06-01 00:00:00")); err != nil {
			return err
		}
	}
	if pr.special && pr.kind != kindConfigurable {
		if err := eav(ctx, b, AttrSpecialFromDate, 0, pr.id, strValue("2025-03-01 00:00:00")); err != nil {
			return err
		}
	}
	return nil
}

// superLinkRow links a variant to its configurable parent.
func (l *layout) superLinkRow(ctx context.Context, b *batcher, pr product) error {
	if pr.kind != kindVariant {
		return nil
	}
	b.begin()
	b.u(uint64(pr.id)).u(uint64(pr.parent))
	return b.end(ctx)
}

// relationRow relates a configurable parent to a variant.
func (l *layout) relationRow(ctx context.Context, b *batcher, pr product) error {
	if pr.kind != kindVariant {
		return nil
	}
	b.begin()
	b.u(uint64(pr.parent)).u(uint64(pr.id))
	return b.end(ctx)
}

// superAttributeRows writes a configurable's super attributes (color, size).
func (l *layout) superAttributeRows(ctx context.Context, b *batcher, pr product) error {
	if pr.kind != kindConfigurable {
		return nil
	}
	for i, a := range []uint16{AttrColor, AttrSize} {
		b.begin()
		b.u(uint64(2*pr.cfg + i + 1)).u(uint64(pr.id)).u(uint64(a)).u(uint64(i))
		if err := b.end(ctx); err != nil {
			return err
		}
	}
	return nil
}

// superAttributeLabelRows writes the labels of a configurable's super attributes, with per-store translations.
func (l *layout) superAttributeLabelRows(ctx context.Context, b *batcher, pr product) error {
	if pr.kind != kindConfigurable {
		return nil
	}
	for i, label := range []string{"Color", "Size"} {
		psa := uint64(2*pr.cfg + i + 1)
		b.begin()
		b.u(psa).u(0).u(0).s(label)
		if err := b.end(ctx); err != nil {
			return err
		}
		for _, s := range l.stores {
			if !l.overrides(pr.id, s.id, saltSuperLabel+uint64(i)<<8, l.p.OptionLabelFraction) {
				continue
			}
			b.begin()
			b.u(psa).u(uint64(s.id)).u(0).s(label + " " + translations[int(s.id)%len(translations)])
			if err := b.end(ctx); err != nil {
				return err
			}
		}
	}
	return nil
}

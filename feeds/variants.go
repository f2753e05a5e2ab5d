package feeds

import (
	"context"
	"crypto/md5"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"sort"
	"strconv"

	"github.com/feedcdc/feedcdc/change"
)

func init() { register("variants", func(e *env) Feed { return &variants{e: e} }) }

// variants: one item per (configurable parent, child) link of
// catalog_product_super_link; the entity key is the child's entity_id. See
// docs/feeds.md#variants.
type variants struct{ e *env }

func (v *variants) usesLinks() {}

func (v *variants) Name() string             { return "variants" }
func (v *variants) IdentityFields() []string { return []string{"parentSku", "productSku"} }

func (v *variants) Tables() []string {
	return []string{tProductEntity, "catalog_product_entity_int", tSuperLink, tSuperAttribute, tEavAttribute, tAttributeOption, tOptionValue}
}

var variantMinimal = []string{"id", "parentId", "productId", "parentSku", "productSku"}

func (v *variants) DeletedPayload(prev PrevItem) Item {
	return deletedItem(v.Name(), prev, variantMinimal, map[string]bool{"parentId": true, "productId": true}, v.e.modifiedAt())
}

func (v *variants) Scan(ctx context.Context, emit func([]string) error) error {
	return scanIDs(ctx, v.e.db, v.e.chunk, `SELECT DISTINCT product_id FROM catalog_product_super_link WHERE product_id > ? ORDER BY product_id LIMIT ?`, nil, emit)
}

func (v *variants) Keys(ctx context.Context, c *change.Change, emit func([]string) error) error {
	e := v.e
	switch c.Table.Name {
	case tProductEntity:
		return v.productKeys(ctx, c, emit)
	case "catalog_product_entity_int":
		return emitIDs(ids(c, "entity_id"), e.chunk, v.onlyChildren(ctx, emit))
	case tSuperLink:
		return emitIDs(ids(c, "product_id"), e.chunk, emit)
	case tSuperAttribute:
		return emitChildren(ctx, e, true, ids(c, "product_id"), emit)
	case tEavAttribute:
		// An axis attribute renamed or deleted: children of the parents
		// that vary on it.
		if c.Before == nil || (c.After != nil && !changed(c, "attribute_code")) {
			return nil
		}
		for _, aid := range ids(c, "attribute_id") {
			if err := v.childrenOfAxis(ctx, aid, emit); err != nil {
				return err
			}
		}
		return nil
	case tAttributeOption:
		return v.optionKeys(ctx, c, emit)
	case tOptionValue:
		return v.optionValueKeys(ctx, c, emit)
	}
	return nil
}

// onlyChildren is emit for the keys of products that are a variant child
// only (any other product's Build would return nothing and it has no
// items to delete: a child losing its last link is keyed by the
// super_link change itself).
func (v *variants) onlyChildren(ctx context.Context, emit func([]string) error) func([]string) error {
	return func(keys []string) error {
		ch, err := v.e.links.filterChildren(ctx, keys)
		if err != nil || len(ch) == 0 {
			return err
		}
		return emit(ch)
	}
}

// productKeys keys a product change: a deleted product as a child (its
// items vanish) and its children as a parent (their links cascaded away
// unseen); a changed SKU the same way.
func (v *variants) productKeys(ctx context.Context, c *change.Change, emit func([]string) error) error {
	e := v.e
	if c.After == nil {
		if err := emitIDs(ids(c, "entity_id"), e.chunk, emit); err != nil {
			return err
		}
	} else {
		if !changed(c, "sku", "entity_id") {
			return nil
		}
		if err := emitIDs(ids(c, "entity_id"), e.chunk, v.onlyChildren(ctx, emit)); err != nil {
			return err
		}
	}
	if err := childrenKeys(ctx, e, c, true, emit); err != nil {
		return err
	}
	// Products of the sku that gain or lose it: as children and as parents.
	err := skuSiblings(ctx, e, c, func(keys []string) error {
		if err := v.onlyChildren(ctx, emit)(keys); err != nil {
			return err
		}
		parents, err := parseKeys(v.Name(), keys)
		if err != nil {
			return err
		}
		return emitChildren(ctx, e, true, parents, emit)
	})
	if err != nil {
		return fmt.Errorf("%s: %w", v.Name(), err)
	}
	return nil
}

// optionKeys keys the children using a changed or deleted option (before
// and after image).
func (v *variants) optionKeys(ctx context.Context, c *change.Change, emit func([]string) error) error {
	if c.Before == nil {
		return nil
	}
	for _, row := range [][]any{c.Before, c.After} {
		oid, ok1 := imageUint(c.Table, row, "option_id")
		aid, ok2 := imageUint(c.Table, row, "attribute_id")
		if ok1 && ok2 {
			if err := productsUsingOption(ctx, v.e, aid, oid, "int", v.onlyChildren(ctx, emit)); err != nil {
				return err
			}
		}
	}
	return nil
}

// optionValueKeys keys the children using an option whose admin (store 0)
// label changed: variant labels are the admin labels.
func (v *variants) optionValueKeys(ctx context.Context, c *change.Change, emit func([]string) error) error {
	if !v.storeZero(c) {
		return nil
	}
	for _, oid := range ids(c, "option_id") {
		if !firstLookup(ctx, v.Name(), "option", oid) {
			continue
		}
		aid, bt, ok, err := optionAttribute(ctx, v.e, oid)
		if err != nil {
			return err
		}
		if ok && bt == "int" {
			if err := productsUsingOption(ctx, v.e, aid, oid, "int", v.onlyChildren(ctx, emit)); err != nil {
				return err
			}
		}
	}
	return nil
}

func (v *variants) storeZero(c *change.Change) bool {
	for _, s := range ids(c, "store_id") {
		if s == 0 {
			return true
		}
	}
	return false
}

// childrenOfAxis emits the children of every parent that has the attribute
// as a super attribute.
func (v *variants) childrenOfAxis(ctx context.Context, attrID uint64, emit func([]string) error) error {
	var parents []uint64
	err := query(ctx, v.e.db, `SELECT DISTINCT product_id FROM catalog_product_super_attribute WHERE attribute_id = ? ORDER BY product_id`, []any{attrID}, func(r *sql.Rows) error {
		var id uint64
		if err := r.Scan(&id); err != nil {
			return err
		}
		parents = append(parents, id)
		return nil
	})
	if err != nil {
		return fmt.Errorf("read parents varying on attribute %d: %w", attrID, err)
	}
	return emitChildren(ctx, v.e, true, parents, emit)
}

type optionValue struct {
	AttributeCode string `json:"attributeCode"`
	UID           string `json:"uid"`
	Label         string `json:"label"`
	ValueIndex    uint64 `json:"valueIndex"`
}

type variantPayload struct {
	ID           string        `json:"id"`
	ParentID     uint64        `json:"parentId"`
	ProductID    uint64        `json:"productId"`
	ParentSKU    string        `json:"parentSku"`
	ProductSKU   string        `json:"productSku"`
	OptionValues []optionValue `json:"optionValues"`
	Deleted      bool          `json:"deleted"`
}

// variantID is Adobe's id: md5("configurable/<parentSku>/<childSku>").
func variantID(parentSKU, childSKU string) string {
	s := md5.Sum([]byte("configurable/" + parentSKU + "/" + childSKU))
	return hex.EncodeToString(s[:])
}

// optionUID is Magento's uid of a configurable option value:
// base64("configurable/<attribute_id>/<option_id>").
func optionUID(attrID, optionID uint64) string {
	return base64.StdEncoding.EncodeToString([]byte("configurable/" + strconv.FormatUint(attrID, 10) + "/" + strconv.FormatUint(optionID, 10)))
}

func (v *variants) Build(ctx context.Context, entityKeys []string) ([]Item, error) {
	idList, err := parseKeys(v.Name(), entityKeys)
	if err != nil || len(idList) == 0 {
		return nil, err
	}
	e := v.e
	modifiedAt := e.modifiedAt()
	var out []Item
	for _, part := range chunks(idList, e.chunk) {
		items, err := v.build(ctx, part, modifiedAt)
		if err != nil {
			return nil, err
		}
		out = append(out, items...)
	}
	return out, nil
}

func (v *variants) build(ctx context.Context, part []uint64, modifiedAt string) ([]Item, error) {
	db := v.e.db
	links, err := readVariantLinks(ctx, v.e, part)
	if err != nil || len(links) == 0 {
		return nil, err
	}
	parentSet := map[uint64]bool{}
	for _, l := range links {
		parentSet[l.parent] = true
	}
	axes, err := readVariantAxes(ctx, db, sortedIDs(parentSet))
	if err != nil {
		return nil, err
	}
	axisSet := map[uint64]bool{}
	for _, as := range axes {
		for _, ax := range as {
			axisSet[ax.attr] = true
		}
	}
	values, err := readAxisValues(ctx, db, part, sortedIDs(axisSet))
	if err != nil {
		return nil, err
	}
	optSet := map[uint64]bool{}
	for _, o := range values {
		optSet[o] = true
	}
	labels, err := v.e.optionLabels(ctx, sortedIDs(optSet))
	if err != nil {
		return nil, fmt.Errorf("variants: %w", err)
	}
	return v.items(links, axes, values, labels, modifiedAt)
}

// variantLink is a child product linked to its configurable parent.
type variantLink struct {
	child, parent       uint64
	childSKU, parentSKU string
}

// variantAxis is one super attribute of a configurable (color, size, ...).
type variantAxis struct {
	attr uint64
	code string
}

// sortedIDs lists the keys of set in increasing order.
func sortedIDs(set map[uint64]bool) []uint64 {
	ids := make([]uint64, 0, len(set))
	for id := range set {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}

// readVariantLinks reads the parent links of the children, in child and
// parent id order.
func readVariantLinks(ctx context.Context, e *env, children []uint64) ([]variantLink, error) {
	ids := matchIDs(children)
	var links []variantLink
	err := query(ctx, e.db, `SELECT l.product_id, l.parent_id, c.sku, p.sku FROM catalog_product_super_link l
		JOIN catalog_product_entity c ON c.entity_id = l.product_id
		JOIN catalog_product_entity p ON p.entity_id = l.parent_id
		WHERE `+ids.On("l.product_id")+` ORDER BY l.product_id, l.parent_id`, nil, func(r *sql.Rows) error {
		var l variantLink
		if err := r.Scan(&l.child, &l.parent, &l.childSKU, &l.parentSKU); err != nil {
			return err
		}
		if ids.Has(l.child) {
			links = append(links, l)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("variants: read links: %w", err)
	}
	if len(links) == 0 {
		return nil, nil
	}
	links, err = ownedLinks(ctx, e, links)
	if err != nil {
		return nil, fmt.Errorf("variants: %w", err)
	}
	return links, nil
}

// ownedLinks drops the links whose child or parent has a sku that a lower
// entity_id owns (skus.go): they have no item. One query asks for the
// children and parents together.
func ownedLinks(ctx context.Context, e *env, links []variantLink) ([]variantLink, error) {
	products := map[uint64]bool{}
	for _, l := range links {
		products[l.child], products[l.parent] = true, true
	}
	owners, err := shadowed(ctx, e.db, matchIDs(sortedIDs(products)))
	if err != nil || len(owners) == 0 {
		return links, err
	}
	kept := links[:0]
	for _, l := range links {
		if owner, ok := owners[l.child]; ok {
			e.warnShadowed("variants", l.child, l.childSKU, owner)
		} else if owner, ok := owners[l.parent]; ok {
			e.warnShadowed("variants", l.parent, l.parentSKU, owner)
		} else {
			kept = append(kept, l)
		}
	}
	return kept, nil
}

// readVariantAxes reads the super attributes of the parents, in position
// order.
func readVariantAxes(ctx context.Context, db *sql.DB, parents []uint64) (map[uint64][]variantAxis, error) {
	axes := map[uint64][]variantAxis{}
	pin, pargs := inList(parents)
	err := query(ctx, db, `SELECT sa.product_id, sa.attribute_id, a.attribute_code FROM catalog_product_super_attribute sa
		JOIN eav_attribute a ON a.attribute_id = sa.attribute_id
		WHERE sa.product_id IN (`+pin+`) ORDER BY sa.product_id, sa.position, sa.attribute_id`, pargs, func(r *sql.Rows) error {
		var p uint64
		var ax variantAxis
		if err := r.Scan(&p, &ax.attr, &ax.code); err != nil {
			return err
		}
		axes[p] = append(axes[p], ax)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("variants: read super attributes: %w", err)
	}
	return axes, nil
}

// readAxisValues reads the children's option ids of the axis attributes
// (default store), by (child, attribute).
func readAxisValues(ctx context.Context, db *sql.DB, children, axisIDs []uint64) (map[[2]uint64]uint64, error) {
	values := map[[2]uint64]uint64{}
	if len(axisIDs) == 0 {
		return values, nil
	}
	ids := matchIDs(children)
	ain, _ := inList(axisIDs)
	err := query(ctx, db, `SELECT entity_id, attribute_id, value FROM catalog_product_entity_int
		WHERE store_id = 0 AND value IS NOT NULL AND `+ids.On("entity_id")+` AND attribute_id IN (`+ain+`)`, nil, func(r *sql.Rows) error {
		var c, a uint64
		var val int64
		if err := r.Scan(&c, &a, &val); err != nil {
			return err
		}
		if !ids.Has(c) {
			return nil
		}
		if val >= 0 {
			values[[2]uint64{c, a}] = uint64(val)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("variants: read axis values: %w", err)
	}
	return values, nil
}

// items builds one item per link with the child's option values.
func (v *variants) items(links []variantLink, axes map[uint64][]variantAxis, values map[[2]uint64]uint64, labels map[uint64]storeLabels, modifiedAt string) ([]Item, error) {
	var out []Item
	for _, l := range links {
		pl := variantPayload{
			ID: variantID(l.parentSKU, l.childSKU), ParentID: l.parent, ProductID: l.child,
			ParentSKU: l.parentSKU, ProductSKU: l.childSKU, OptionValues: []optionValue{},
		}
		for _, ax := range axes[l.parent] {
			oid, ok := values[[2]uint64{l.child, ax.attr}]
			if !ok {
				continue
			}
			lbl, _ := labels[oid].label(0)
			pl.OptionValues = append(pl.OptionValues, optionValue{AttributeCode: ax.code, UID: optionUID(ax.attr, oid), Label: lbl, ValueIndex: oid})
		}
		ident := map[string]string{
			"parentSku": l.parentSKU, "productSku": l.childSKU, "id": pl.ID,
			"parentId": strconv.FormatUint(l.parent, 10), "productId": strconv.FormatUint(l.child, 10),
		}
		it, err := newItem(v.Name(), strconv.FormatUint(l.child, 10), v.IdentityFields(), ident, pl, "", modifiedAt)
		if err != nil {
			return nil, err
		}
		out = append(out, it)
	}
	return out, nil
}

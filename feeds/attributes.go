package feeds

import (
	"context"
	"database/sql"
	"fmt"
	"sort"
	"strconv"

	"github.com/feedcdc/feedcdc/change"
)

func init() { register("productAttributes", func(e *env) Feed { return &productAttributes{e: e} }) }

// productAttributes: one item per (product attribute, store view). See
// docs/feeds.md#productattributes.
type productAttributes struct{ e *env }

func (p *productAttributes) Name() string { return "productAttributes" }
func (p *productAttributes) IdentityFields() []string {
	return []string{"attributeCode", "storeViewCode"}
}

func (p *productAttributes) Tables() []string {
	return []string{tEavAttribute, tCatalogEav, tAttributeLabel, tAttributeOption, tOptionValue, tStore, tStoreGroup, tStoreWebsite}
}

var attributeMinimal = []string{"id", "websiteCode", "storeCode", "storeViewCode", "attributeCode", "attributeType"}

func (p *productAttributes) DeletedPayload(prev PrevItem) Item {
	return deletedItem(p.Name(), prev, attributeMinimal, nil, p.e.modifiedAt())
}

func (p *productAttributes) Scan(ctx context.Context, emit func([]string) error) error {
	return scanIDs(ctx, p.e.db, p.e.chunk, `SELECT a.attribute_id FROM eav_attribute a
		JOIN eav_entity_type t ON t.entity_type_id = a.entity_type_id AND t.entity_type_code = 'catalog_product'
		WHERE a.attribute_id > ? ORDER BY a.attribute_id LIMIT ?`, nil, emit)
}

func (p *productAttributes) Keys(ctx context.Context, c *change.Change, emit func([]string) error) error {
	e := p.e
	switch c.Table.Name {
	case tEavAttribute, tCatalogEav, tAttributeLabel, tAttributeOption:
		return emitIDs(ids(c, "attribute_id"), e.chunk, emit)
	case tOptionValue:
		for _, oid := range ids(c, "option_id") {
			if !firstLookup(ctx, p.Name(), "option", oid) {
				continue
			}
			attr, _, ok, err := optionAttribute(ctx, e, oid)
			if err != nil {
				return err
			}
			if ok {
				if err := emit([]string{strconv.FormatUint(attr, 10)}); err != nil {
					return err
				}
			}
		}
		return nil
	case tStore:
		if c.Before != nil && c.After != nil && !changed(c, "code", "website_id", "group_id") {
			return nil
		}
		return p.Scan(ctx, emit)
	case tStoreGroup:
		if c.Before == nil || (c.After != nil && !changed(c, "code", "website_id")) {
			return nil
		}
		return p.Scan(ctx, emit)
	case tStoreWebsite:
		if c.Before == nil || (c.After != nil && !changed(c, "code")) {
			return nil
		}
		return p.Scan(ctx, emit)
	}
	return nil
}

type attributeOption struct {
	ID        string `json:"id"`
	Label     string `json:"label"`
	SortOrder int64  `json:"sortOrder"`
}

type attributePayload struct {
	ID                   string            `json:"id"`
	StoreCode            string            `json:"storeCode"`
	WebsiteCode          string            `json:"websiteCode"`
	StoreViewCode        string            `json:"storeViewCode"`
	AttributeCode        string            `json:"attributeCode"`
	AttributeType        string            `json:"attributeType"`
	DataType             string            `json:"dataType"`
	Multi                bool              `json:"multi"`
	Label                string            `json:"label"`
	FrontendInput        string            `json:"frontendInput"`
	Required             bool              `json:"required"`
	Unique               bool              `json:"unique"`
	Global               bool              `json:"global"`
	Scope                string            `json:"scope"`
	Visible              bool              `json:"visible"`
	Searchable           bool              `json:"searchable"`
	Filterable           bool              `json:"filterable"`
	VisibleInCompareList bool              `json:"visibleInCompareList"`
	VisibleInListing     bool              `json:"visibleInListing"`
	Sortable             bool              `json:"sortable"`
	VisibleInSearch      bool              `json:"visibleInSearch"`
	FilterableInSearch   bool              `json:"filterableInSearch"`
	SearchWeight         float64           `json:"searchWeight"`
	UsedForRules         bool              `json:"usedForRules"`
	Boolean              bool              `json:"boolean"`
	SystemAttribute      bool              `json:"systemAttribute"`
	Numeric              bool              `json:"numeric"`
	Options              []attributeOption `json:"options"`
	Deleted              bool              `json:"deleted"`
}

func scopeName(isGlobal int) string {
	switch isGlobal {
	case 0:
		return "store"
	case 1:
		return "global"
	case 2:
		return "website"
	}
	return strconv.Itoa(isGlobal)
}

func (p *productAttributes) Build(ctx context.Context, entityKeys []string) ([]Item, error) {
	idList, err := parseKeys(p.Name(), entityKeys)
	if err != nil || len(idList) == 0 {
		return nil, err
	}
	e := p.e
	stores, err := e.storeViews(ctx)
	if err != nil {
		return nil, err
	}
	modifiedAt := e.modifiedAt()
	var out []Item
	for _, part := range chunks(idList, e.chunk) {
		items, err := p.buildChunk(ctx, part, stores, modifiedAt)
		if err != nil {
			return nil, err
		}
		out = append(out, items...)
	}
	return out, nil
}

// attributeOptionRow is one option of an attribute.
type attributeOptionRow struct {
	id, sort uint64
}

// buildChunk builds the items of the attributes ids (one per store view)
// with their labels and options.
func (p *productAttributes) buildChunk(ctx context.Context, ids []uint64, stores []storeView, modifiedAt string) ([]Item, error) {
	e := p.e
	attrs, err := loadAttributes(ctx, e.db, ids)
	if err != nil || len(attrs) == 0 {
		return nil, err
	}
	present := make([]uint64, 0, len(attrs))
	for id := range attrs {
		present = append(present, id)
	}
	sort.Slice(present, func(i, j int) bool { return present[i] < present[j] })
	labels, err := attributeLabels(ctx, e.db, present)
	if err != nil {
		return nil, err
	}
	opts, optIDs, err := attributeOptions(ctx, e.db, present)
	if err != nil {
		return nil, err
	}
	optLabels, err := e.optionLabels(ctx, optIDs)
	if err != nil {
		return nil, fmt.Errorf("productAttributes: %w", err)
	}
	var out []Item
	for _, id := range present {
		for _, s := range stores {
			pl := attributeItemPayload(id, attrs[id], s, labels[id], opts[id], optLabels)
			ident := map[string]string{
				"attributeCode": pl.AttributeCode, "storeViewCode": s.Code, "id": pl.ID, "websiteCode": s.WebsiteCode,
				"storeCode": s.GroupCode, "attributeType": productEntityTypeC,
			}
			it, err := newItem(p.Name(), pl.ID, p.IdentityFields(), ident, pl, "", modifiedAt)
			if err != nil {
				return nil, err
			}
			out = append(out, it)
		}
	}
	return out, nil
}

// attributeLabels reads the attributes' store labels, by attribute and
// store.
func attributeLabels(ctx context.Context, db *sql.DB, ids []uint64) (map[uint64]map[uint64]string, error) {
	in, args := inList(ids)
	labels := map[uint64]map[uint64]string{}
	err := query(ctx, db, `SELECT attribute_id, store_id, value FROM eav_attribute_label
		WHERE value IS NOT NULL AND attribute_id IN (`+in+`) ORDER BY attribute_label_id`, args, func(r *sql.Rows) error {
		var aid, sid uint64
		var v string
		if err := r.Scan(&aid, &sid, &v); err != nil {
			return err
		}
		if labels[aid] == nil {
			labels[aid] = map[uint64]string{}
		}
		labels[aid][sid] = v
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("productAttributes: read labels: %w", err)
	}
	return labels, nil
}

// attributeOptions reads the attributes' options in sort order, by
// attribute, and lists every option id.
func attributeOptions(ctx context.Context, db *sql.DB, ids []uint64) (map[uint64][]attributeOptionRow, []uint64, error) {
	in, args := inList(ids)
	opts := map[uint64][]attributeOptionRow{}
	var optIDs []uint64
	err := query(ctx, db, `SELECT attribute_id, option_id, sort_order FROM eav_attribute_option
		WHERE attribute_id IN (`+in+`) ORDER BY attribute_id, sort_order, option_id`, args, func(r *sql.Rows) error {
		var aid uint64
		var o attributeOptionRow
		if err := r.Scan(&aid, &o.id, &o.sort); err != nil {
			return err
		}
		opts[aid] = append(opts[aid], o)
		optIDs = append(optIDs, o.id)
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("productAttributes: read options: %w", err)
	}
	return opts, optIDs, nil
}

// attributeItemPayload is attribute a (id) as seen in store view s: its
// store label (labels by store) or frontend label, and its options with
// their labels in s.
func attributeItemPayload(id uint64, a *attrMeta, s storeView, labels map[uint64]string, opts []attributeOptionRow, optLabels map[uint64]storeLabels) attributePayload {
	lbl := a.FrontendLabel
	if l, ok := labels[s.ID]; ok {
		lbl = l
	}
	pl := attributePayload{
		ID: strconv.FormatUint(id, 10), StoreCode: s.GroupCode, WebsiteCode: s.WebsiteCode, StoreViewCode: s.Code,
		AttributeCode: a.Code, AttributeType: productEntityTypeC, DataType: a.BackendType,
		Multi: a.FrontendInput == "multiselect" || a.FrontendInput == "multiline", Label: lbl,
		FrontendInput: a.FrontendInput, Required: a.Required, Unique: a.Unique, Global: a.IsGlobal == 1,
		Scope: scopeName(a.IsGlobal), Visible: a.Visible, Searchable: a.Searchable, Filterable: a.Filterable,
		VisibleInCompareList: a.Comparable, VisibleInListing: a.UsedInListing, Sortable: a.UsedForSortBy,
		VisibleInSearch: a.VisibleOnFront, FilterableInSearch: a.FilterableSearch, SearchWeight: a.SearchWeight,
		UsedForRules: a.UsedForPromoRules, Boolean: a.FrontendInput == "boolean", SystemAttribute: !a.UserDefined,
		Numeric: a.BackendType == "decimal" || (a.BackendType == "int" && !a.usesOptions() && a.FrontendInput != "boolean"),
		Options: []attributeOption{},
	}
	for _, o := range opts {
		l, ok := optLabels[o.id].label(s.ID)
		if !ok {
			l = ""
		}
		pl.Options = append(pl.Options, attributeOption{ID: strconv.FormatUint(o.id, 10), Label: l, SortOrder: int64(o.sort)})
	}
	return pl
}

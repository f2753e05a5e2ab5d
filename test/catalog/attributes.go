package catalog

import (
	"context"
	"database/sql"
	"fmt"
)

// Entity type ids pinned by Magento's CategorySetup (magento-schema.md §1.5).
const (
	EntityTypeCustomer        uint16 = 1
	EntityTypeCustomerAddress uint16 = 2
	EntityTypeCategory        uint16 = 3
	EntityTypeProduct         uint16 = 4
)

// Default attribute sets of a fresh install.
const (
	AttributeSetCategoryDefault uint16 = 3
	AttributeSetProductDefault  uint16 = 4
)

// Scope is catalog_eav_attribute.is_global.
type Scope uint8

const (
	ScopeStore   Scope = 0 // store view
	ScopeGlobal  Scope = 1
	ScopeWebsite Scope = 2
)

func (s Scope) String() string {
	switch s {
	case ScopeStore:
		return "store"
	case ScopeGlobal:
		return "global"
	case ScopeWebsite:
		return "website"
	}
	return fmt.Sprintf("scope(%d)", uint8(s))
}

// Backend types (eav_attribute.backend_type).
const (
	BackendStatic   = "static"
	BackendVarchar  = "varchar"
	BackendInt      = "int"
	BackendDecimal  = "decimal"
	BackendText     = "text"
	BackendDatetime = "datetime"
)

// Product status and visibility codes (Status.php, Visibility.php).
const (
	StatusEnabled  = 1
	StatusDisabled = 2

	VisibilityNotVisible    = 1
	VisibilityCatalog       = 2
	VisibilitySearch        = 3
	VisibilityCatalogSearch = 4
)

// Permission grants of magento_catalogpermissions_index_product.
const (
	GrantAllow = -1
	GrantDeny  = -2
)

// Attribute describes one EAV attribute as seeded by CreateSchema or created
// by the generator. ID is the seeded attribute_id; real installs differ, so
// consumers that read a foreign database should resolve ids by code with
// ReadAttributes.
type Attribute struct {
	ID             uint16
	EntityTypeID   uint16
	Code           string
	BackendType    string // static, varchar, int, decimal, text, datetime
	FrontendInput  string // text, textarea, price, select, multiselect, date, ...
	Label          string
	Scope          Scope
	Required       bool
	UserDefined    bool
	Unique         bool
	DefaultValue   string // "" = NULL
	SourceModel    string
	BackendModel   string
	Searchable     bool
	Filterable     bool
	Comparable     bool
	VisibleOnFront bool
	UsedInListing  bool
	UsedForSortBy  bool
	Wysiwyg        bool
}

// ValueTable is the table holding the attribute's values ("" for static
// attributes, whose value is a column of the entity table).
func (a Attribute) ValueTable() string {
	if a.BackendType == BackendStatic {
		return ""
	}
	switch a.EntityTypeID {
	case EntityTypeCategory:
		return "catalog_category_entity_" + a.BackendType
	default:
		return "catalog_product_entity_" + a.BackendType
	}
}

// Seeded product attribute ids (the fresh Adobe Commerce 2.4.8 install's ids,
// magento-schema.md §3). Look them up by code in foreign databases.
const (
	AttrName                   uint16 = 73
	AttrSKU                    uint16 = 74
	AttrDescription            uint16 = 75
	AttrShortDescription       uint16 = 76
	AttrPrice                  uint16 = 77
	AttrSpecialPrice           uint16 = 78
	AttrSpecialFromDate        uint16 = 79
	AttrSpecialToDate          uint16 = 80
	AttrCost                   uint16 = 81
	AttrWeight                 uint16 = 82
	AttrManufacturer           uint16 = 83
	AttrMetaTitle              uint16 = 84
	AttrMetaKeyword            uint16 = 85
	AttrMetaDescription        uint16 = 86
	AttrImage                  uint16 = 87
	AttrSmallImage             uint16 = 88
	AttrThumbnail              uint16 = 89
	AttrMediaGallery           uint16 = 90
	AttrTierPrice              uint16 = 92
	AttrColor                  uint16 = 93
	AttrNewsFromDate           uint16 = 94
	AttrNewsToDate             uint16 = 95
	AttrStatus                 uint16 = 97
	AttrVisibility             uint16 = 99
	AttrPageLayout             uint16 = 104
	AttrCategoryIDs            uint16 = 105
	AttrOptionsContainer       uint16 = 106
	AttrRequiredOptions        uint16 = 107
	AttrHasOptions             uint16 = 108
	AttrImageLabel             uint16 = 109
	AttrSmallImageLabel        uint16 = 110
	AttrThumbnailLabel         uint16 = 111
	AttrCreatedAt              uint16 = 112
	AttrUpdatedAt              uint16 = 113
	AttrCountryOfManufacture   uint16 = 114
	AttrQuantityAndStockStatus uint16 = 115
	AttrURLKey                 uint16 = 121
	AttrURLPath                uint16 = 122
	AttrMsrp                   uint16 = 128
	AttrTaxClassID             uint16 = 151
	AttrGiftMessageAvailable   uint16 = 152
	AttrSwatchImage            uint16 = 178

	// Category attributes.
	AttrCategoryName     uint16 = 45
	AttrCategoryIsActive uint16 = 46
	AttrCategoryURLKey   uint16 = 119

	// AttrSize is the merchant-defined "size" select attribute the seed adds
	// (size is not a core attribute); it and color are the configurable axes.
	AttrSize uint16 = 200

	// FirstGeneratedAttributeID is where generated (profile) attributes start.
	FirstGeneratedAttributeID uint16 = 300
)

// StandardAttributes returns the attributes CreateSchema seeds: the standard
// product attributes with their real codes, backend types, inputs and scopes
// (magento-schema.md §3), three category attributes, and "size". Each call
// returns a fresh slice.
func StandardAttributes() []Attribute {
	p := func(id uint16, code, bt, input, label string, scope Scope) Attribute {
		return Attribute{ID: id, EntityTypeID: EntityTypeProduct, Code: code, BackendType: bt, FrontendInput: input, Label: label, Scope: scope}
	}
	c := func(id uint16, code, bt, input, label string, scope Scope) Attribute {
		return Attribute{ID: id, EntityTypeID: EntityTypeCategory, Code: code, BackendType: bt, FrontendInput: input, Label: label, Scope: scope}
	}
	attrs := []Attribute{
		c(AttrCategoryName, "name", BackendVarchar, "text", "Name", ScopeStore),
		c(AttrCategoryIsActive, "is_active", BackendInt, "select", "Is Active", ScopeStore),
		c(AttrCategoryURLKey, "url_key", BackendVarchar, "text", "URL Key", ScopeStore),

		p(AttrName, "name", BackendVarchar, "text", "Product Name", ScopeStore),
		p(AttrSKU, "sku", BackendStatic, "text", "SKU", ScopeGlobal),
		p(AttrDescription, "description", BackendText, "textarea", "Description", ScopeStore),
		p(AttrShortDescription, "short_description", BackendText, "textarea", "Short Description", ScopeStore),
		p(AttrPrice, "price", BackendDecimal, "price", "Price", ScopeGlobal),
		p(AttrSpecialPrice, "special_price", BackendDecimal, "price", "Special Price", ScopeGlobal),
		p(AttrSpecialFromDate, "special_from_date", BackendDatetime, "date", "Special Price From Date", ScopeWebsite),
		p(AttrSpecialToDate, "special_to_date", BackendDatetime, "date", "Special Price To Date", ScopeWebsite),
		p(AttrCost, "cost", BackendDecimal, "price", "Cost", ScopeGlobal),
		p(AttrWeight, "weight", BackendDecimal, "weight", "Weight", ScopeGlobal),
		p(AttrManufacturer, "manufacturer", BackendInt, "select", "Manufacturer", ScopeGlobal),
		p(AttrMetaTitle, "meta_title", BackendVarchar, "text", "Meta Title", ScopeStore),
		p(AttrMetaKeyword, "meta_keyword", BackendText, "textarea", "Meta Keywords", ScopeStore),
		p(AttrMetaDescription, "meta_description", BackendVarchar, "textarea", "Meta Description", ScopeStore),
		p(AttrImage, "image", BackendVarchar, "media_image", "Base", ScopeStore),
		p(AttrSmallImage, "small_image", BackendVarchar, "media_image", "Small", ScopeStore),
		p(AttrThumbnail, "thumbnail", BackendVarchar, "media_image", "Thumbnail", ScopeStore),
		p(AttrMediaGallery, "media_gallery", BackendStatic, "gallery", "Media Gallery", ScopeGlobal),
		p(AttrTierPrice, "tier_price", BackendDecimal, "text", "Tier Price", ScopeWebsite),
		p(AttrColor, "color", BackendInt, "select", "Color", ScopeGlobal),
		p(AttrNewsFromDate, "news_from_date", BackendDatetime, "date", "Set Product as New from Date", ScopeWebsite),
		p(AttrNewsToDate, "news_to_date", BackendDatetime, "date", "Set Product as New to Date", ScopeWebsite),
		p(AttrStatus, "status", BackendInt, "select", "Enable Product", ScopeWebsite),
		p(AttrVisibility, "visibility", BackendInt, "select", "Visibility", ScopeStore),
		p(AttrPageLayout, "page_layout", BackendVarchar, "select", "Layout", ScopeStore),
		p(AttrCategoryIDs, "category_ids", BackendStatic, "text", "Categories", ScopeGlobal),
		p(AttrOptionsContainer, "options_container", BackendVarchar, "select", "Display Product Options In", ScopeStore),
		p(AttrRequiredOptions, "required_options", BackendStatic, "text", "", ScopeGlobal),
		p(AttrHasOptions, "has_options", BackendStatic, "text", "", ScopeGlobal),
		p(AttrImageLabel, "image_label", BackendVarchar, "text", "Image Label", ScopeStore),
		p(AttrSmallImageLabel, "small_image_label", BackendVarchar, "text", "Small Image Label", ScopeStore),
		p(AttrThumbnailLabel, "thumbnail_label", BackendVarchar, "text", "Thumbnail Label", ScopeStore),
		p(AttrCreatedAt, "created_at", BackendStatic, "date", "", ScopeGlobal),
		p(AttrUpdatedAt, "updated_at", BackendStatic, "date", "", ScopeGlobal),
		p(AttrCountryOfManufacture, "country_of_manufacture", BackendVarchar, "select", "Country of Manufacture", ScopeWebsite),
		p(AttrQuantityAndStockStatus, "quantity_and_stock_status", BackendInt, "select", "Quantity", ScopeGlobal),
		p(AttrURLKey, "url_key", BackendVarchar, "text", "URL Key", ScopeStore),
		p(AttrURLPath, "url_path", BackendVarchar, "text", "", ScopeStore),
		p(AttrMsrp, "msrp", BackendDecimal, "price", "Minimum Advertised Price", ScopeGlobal),
		p(AttrTaxClassID, "tax_class_id", BackendInt, "select", "Tax Class", ScopeWebsite),
		p(AttrGiftMessageAvailable, "gift_message_available", BackendVarchar, "select", "Allow Gift Message", ScopeGlobal),
		p(AttrSwatchImage, "swatch_image", BackendVarchar, "media_image", "Swatch", ScopeStore),
		p(AttrSize, "size", BackendInt, "select", "Size", ScopeGlobal),
	}
	for i := range attrs {
		a := &attrs[i]
		switch a.Code {
		case "name":
			a.Required, a.Searchable, a.VisibleOnFront, a.UsedInListing, a.UsedForSortBy = true, true, a.EntityTypeID == EntityTypeProduct, true, a.EntityTypeID == EntityTypeProduct
		case "sku":
			a.Required, a.Unique, a.Searchable, a.BackendModel = true, true, true, `Magento\Catalog\Model\Product\Attribute\Backend\Sku`
		case "description", "short_description":
			a.Searchable, a.Comparable, a.Wysiwyg = true, true, true
		case "price":
			a.Required, a.Searchable, a.Filterable, a.UsedInListing, a.UsedForSortBy = true, true, true, true, true
			a.BackendModel = `Magento\Catalog\Model\Product\Attribute\Backend\Price`
		case "cost", "manufacturer":
			a.UserDefined = true
		case "color":
			a.UserDefined, a.Filterable, a.Searchable, a.Comparable, a.VisibleOnFront = true, true, true, true, true
			a.SourceModel = `Magento\Eav\Model\Entity\Attribute\Source\Table`
		case "size":
			a.UserDefined, a.Filterable, a.Searchable, a.Comparable, a.VisibleOnFront = true, true, true, true, true
			a.SourceModel = `Magento\Eav\Model\Entity\Attribute\Source\Table`
		case "status":
			a.Required, a.UsedInListing, a.DefaultValue = true, true, "1"
			a.SourceModel = `Magento\Catalog\Model\Product\Attribute\Source\Status`
		case "visibility":
			a.Required, a.DefaultValue = true, "4"
			a.SourceModel = `Magento\Catalog\Model\Product\Visibility`
		case "options_container":
			a.DefaultValue = "container2"
		case "quantity_and_stock_status":
			a.DefaultValue = "1"
		case "tax_class_id":
			a.DefaultValue, a.UsedInListing = "2", true
			a.SourceModel = `Magento\Tax\Model\TaxClass\Source\Product`
		case "is_active":
			a.Required, a.DefaultValue = true, "1"
		}
	}
	return attrs
}

// ReadAttributes reads the attributes of one entity type from a database
// (eav_attribute joined with catalog_eav_attribute), keyed by attribute_code.
// Use it to resolve ids by code on any Magento database.
func ReadAttributes(ctx context.Context, db *sql.DB, entityTypeID uint16) (map[string]Attribute, error) {
	rows, err := db.QueryContext(ctx, `SELECT a.attribute_id, a.entity_type_id, a.attribute_code, a.backend_type,
		COALESCE(a.frontend_input,''), COALESCE(a.frontend_label,''), COALESCE(c.is_global,1),
		a.is_required, a.is_user_defined, a.is_unique, COALESCE(a.default_value,''),
		COALESCE(a.source_model,''), COALESCE(a.backend_model,''),
		COALESCE(c.is_searchable,0), COALESCE(c.is_filterable,0), COALESCE(c.is_comparable,0),
		COALESCE(c.is_visible_on_front,0), COALESCE(c.used_in_product_listing,0),
		COALESCE(c.used_for_sort_by,0), COALESCE(c.is_wysiwyg_enabled,0)
		FROM eav_attribute a LEFT JOIN catalog_eav_attribute c ON c.attribute_id = a.attribute_id
		WHERE a.entity_type_id = ? ORDER BY a.attribute_id`, entityTypeID)
	if err != nil {
		return nil, fmt.Errorf("read attributes of entity type %d: %w", entityTypeID, err)
	}
	defer rows.Close()
	out := make(map[string]Attribute)
	for rows.Next() {
		var a Attribute
		var scope uint8
		if err := rows.Scan(&a.ID, &a.EntityTypeID, &a.Code, &a.BackendType, &a.FrontendInput, &a.Label, &scope,
			&a.Required, &a.UserDefined, &a.Unique, &a.DefaultValue, &a.SourceModel, &a.BackendModel,
			&a.Searchable, &a.Filterable, &a.Comparable, &a.VisibleOnFront, &a.UsedInListing, &a.UsedForSortBy, &a.Wysiwyg); err != nil {
			return nil, fmt.Errorf("scan attribute: %w", err)
		}
		a.Scope = Scope(scope)
		out[a.Code] = a
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read attributes of entity type %d: %w", entityTypeID, err)
	}
	return out, nil
}

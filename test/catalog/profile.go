package catalog

import (
	"fmt"
	"sort"
	"strings"
)

// Profile sizes a generated catalog. The built-in profiles follow the
// Magento performance toolkit (setup/performance-toolkit/profiles/ce,
// magento-schema.md §6); every field may be changed before Load.
type Profile struct {
	Name string

	// Scope layout: websites (each with one store group) and store views,
	// spread round-robin over the websites. StoreViews >= Websites.
	Websites   int
	StoreViews int
	// ExtraStoreViews adds store views on top of StoreViews (round-robin
	// over the websites), for store-fan-out tests.
	ExtraStoreViews int

	// Products: SimpleProducts standalone simples, ConfigurableProducts
	// parents each with Colors × Sizes variant children (color and size are
	// the two super attributes; the toolkit uses 3 × 8 = 24).
	SimpleProducts       int
	ConfigurableProducts int
	Colors               int
	Sizes                int

	// Categories under "Default Category", nested about CategoryNesting deep.
	Categories      int
	CategoryNesting int

	// Generated attribute sets, each with AttributesPerSet user-defined
	// select attributes (every fifth one multiselect) of OptionsPerAttribute
	// options. Simple products are spread over these sets.
	AttributeSets       int
	AttributesPerSet    int
	OptionsPerAttribute int

	// ExtraCustomerGroups adds groups after the four default ones.
	ExtraCustomerGroups int

	// AssignAllWebsites puts every product in every website; otherwise a
	// product (and its variants) goes to one website, round-robin.
	AssignAllWebsites bool

	// PriceScope is catalog_eav_attribute.is_global of price: ScopeGlobal
	// (Magento's default) or ScopeWebsite (Admin "catalog price scope =
	// website"); only website scope allows per-store price overrides.
	PriceScope Scope

	// Fractions of products with store-level overrides: name and
	// description per store view; status and price per website (a row for
	// every store view of the website, as Magento writes website-scope
	// values). Option labels: fraction of options relabelled per store view.
	NameOverrideFraction        float64
	DescriptionOverrideFraction float64
	StatusOverrideFraction      float64
	PriceOverrideFraction       float64
	OptionLabelFraction         float64
	// PermissionFraction of products get permission-index rows for every
	// store view × customer group.
	PermissionFraction float64

	// Loader knobs: parallel table writers (connections) and rows per
	// multi-row INSERT (also capped at about 1 MiB per statement). None of
	// them changes the generated rows.
	Workers   int
	BatchRows int
	// ChunkProducts is the smallest product range one writer loads of a
	// large table; tables are split into at most Workers ranges.
	ChunkProducts int
}

func baseProfile() Profile {
	return Profile{
		Colors: 3, Sizes: 8,
		CategoryNesting:             3,
		AssignAllWebsites:           true,
		PriceScope:                  ScopeWebsite,
		NameOverrideFraction:        0.10,
		DescriptionOverrideFraction: 0.05,
		StatusOverrideFraction:      0.03,
		PriceOverrideFraction:       0.05,
		OptionLabelFraction:         0.30,
		PermissionFraction:          0.10,
		Workers:                     4,
		BatchRows:                   2000,
		ChunkProducts:               10000,
	}
}

// Small is the toolkit's small profile: 1 website / 1 store view, 800 simple
// + 16 configurable × 24 variants (1,200 products), 30 categories, 10
// attribute sets × 5 attributes × 5 options.
func Small() Profile {
	p := baseProfile()
	p.Name = "small"
	p.Websites, p.StoreViews = 1, 1
	p.SimpleProducts, p.ConfigurableProducts = 800, 16
	p.Categories = 30
	p.AttributeSets, p.AttributesPerSet, p.OptionsPerAttribute = 10, 5, 5
	p.AssignAllWebsites = false
	return p
}

// Medium is the toolkit's medium profile: 3 websites / 3 store views, 24,000
// simple + 640 configurable × 24 (40,000 products), 300 categories, 30 sets
// × 10 attributes × 8 options.
func Medium() Profile {
	p := baseProfile()
	p.Name = "medium"
	p.Websites, p.StoreViews = 3, 3
	p.SimpleProducts, p.ConfigurableProducts = 24000, 640
	p.Categories = 300
	p.AttributeSets, p.AttributesPerSet, p.OptionsPerAttribute = 30, 10, 8
	return p
}

// Large is the toolkit's large profile: 5 websites / 5 store views, 300,000
// simple + 8,000 configurable × 24 (500,000 products), 3,000 categories
// nested 5 deep, 50 sets × 20 attributes × 15 options.
func Large() Profile {
	p := baseProfile()
	p.Name = "large"
	p.Websites, p.StoreViews = 5, 5
	p.SimpleProducts, p.ConfigurableProducts = 300000, 8000
	p.Categories, p.CategoryNesting = 3000, 5
	p.AttributeSets, p.AttributesPerSet, p.OptionsPerAttribute = 50, 20, 15
	return p
}

// Tiny is a test-only profile: 2 websites / 3 store views, 60 simple + 2
// configurable × 6 variants, for fast unit tests of multi-store behaviour.
func Tiny() Profile {
	p := baseProfile()
	p.Name = "tiny"
	p.Websites, p.StoreViews = 2, 3
	p.SimpleProducts, p.ConfigurableProducts = 60, 2
	p.Colors, p.Sizes = 2, 3
	p.Categories = 8
	p.AttributeSets, p.AttributesPerSet, p.OptionsPerAttribute = 2, 5, 4
	p.ExtraCustomerGroups = 1
	p.NameOverrideFraction, p.DescriptionOverrideFraction = 0.3, 0.2
	p.StatusOverrideFraction, p.PriceOverrideFraction = 0.2, 0.2
	p.PermissionFraction = 0.3
	return p
}

var profiles = map[string]func() Profile{"tiny": Tiny, "small": Small, "medium": Medium, "large": Large}

// ProfileNames lists the built-in profile names.
func ProfileNames() []string {
	var out []string
	for n := range profiles {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// ProfileByName returns a built-in profile.
func ProfileByName(name string) (Profile, error) {
	f, ok := profiles[strings.ToLower(name)]
	if !ok {
		return Profile{}, fmt.Errorf("catalog: unknown profile %q (use one of %s)", name, strings.Join(ProfileNames(), ", "))
	}
	return f(), nil
}

// TotalStoreViews is StoreViews + ExtraStoreViews.
func (p Profile) TotalStoreViews() int { return p.StoreViews + p.ExtraStoreViews }

// Variants is the number of children per configurable product.
func (p Profile) Variants() int { return p.Colors * p.Sizes }

// TotalProducts counts simple, configurable and variant products.
func (p Profile) TotalProducts() int {
	return p.SimpleProducts + p.ConfigurableProducts*(1+p.Variants())
}

// Validate reports the first field that is out of range.
func (p Profile) Validate() error {
	bad := func(field string, v any, want string) error {
		return fmt.Errorf("catalog: profile %q: %s = %v, want %s", p.Name, field, v, want)
	}
	switch {
	case p.Websites < 1 || p.Websites > 1000:
		return bad("Websites", p.Websites, "1..1000")
	case p.StoreViews < p.Websites:
		return bad("StoreViews", p.StoreViews, fmt.Sprintf(">= Websites (%d)", p.Websites))
	case p.ExtraStoreViews < 0 || p.TotalStoreViews() > 10000:
		return bad("ExtraStoreViews", p.ExtraStoreViews, "0.. with StoreViews+ExtraStoreViews <= 10000")
	case p.SimpleProducts < 0:
		return bad("SimpleProducts", p.SimpleProducts, ">= 0")
	case p.ConfigurableProducts < 0:
		return bad("ConfigurableProducts", p.ConfigurableProducts, ">= 0")
	case p.ConfigurableProducts > 0 && (p.Colors < 1 || p.Sizes < 1):
		return bad("Colors x Sizes", fmt.Sprintf("%d x %d", p.Colors, p.Sizes), "both >= 1 when there are configurable products")
	case p.Colors > 1000 || p.Sizes > 1000:
		return bad("Colors x Sizes", fmt.Sprintf("%d x %d", p.Colors, p.Sizes), "at most 1000 each")
	case p.TotalProducts() > 50_000_000:
		return bad("total products", p.TotalProducts(), "<= 50,000,000")
	case p.Categories < 0 || p.Categories > 100000:
		return bad("Categories", p.Categories, "0..100000")
	case p.Categories > 0 && p.CategoryNesting < 1:
		return bad("CategoryNesting", p.CategoryNesting, ">= 1")
	case p.AttributeSets < 0 || p.AttributesPerSet < 0 || p.OptionsPerAttribute < 0:
		return bad("AttributeSets/AttributesPerSet/OptionsPerAttribute", fmt.Sprintf("%d/%d/%d", p.AttributeSets, p.AttributesPerSet, p.OptionsPerAttribute), "all >= 0")
	case p.AttributeSets*p.AttributesPerSet > 60000-int(FirstGeneratedAttributeID):
		return bad("AttributeSets*AttributesPerSet", p.AttributeSets*p.AttributesPerSet, "<= 59700 (attribute_id is a smallint)")
	case p.AttributeSets*p.AttributesPerSet > 0 && p.OptionsPerAttribute < 2:
		return bad("OptionsPerAttribute", p.OptionsPerAttribute, ">= 2 when attributes are generated")
	case p.ExtraCustomerGroups < 0 || p.ExtraCustomerGroups > 10000:
		return bad("ExtraCustomerGroups", p.ExtraCustomerGroups, "0..10000")
	case p.PriceScope != ScopeGlobal && p.PriceScope != ScopeWebsite:
		return bad("PriceScope", p.PriceScope, "ScopeGlobal or ScopeWebsite")
	case p.Workers < 1 || p.Workers > 64:
		return bad("Workers", p.Workers, "1..64")
	case p.BatchRows < 1 || p.BatchRows > 100000:
		return bad("BatchRows", p.BatchRows, "1..100000")
	case p.ChunkProducts < 1:
		return bad("ChunkProducts", p.ChunkProducts, ">= 1")
	}
	for name, f := range map[string]float64{
		"NameOverrideFraction": p.NameOverrideFraction, "DescriptionOverrideFraction": p.DescriptionOverrideFraction,
		"StatusOverrideFraction": p.StatusOverrideFraction, "PriceOverrideFraction": p.PriceOverrideFraction,
		"OptionLabelFraction": p.OptionLabelFraction, "PermissionFraction": p.PermissionFraction,
	} {
		if f < 0 || f > 1 {
			return bad(name, f, "0..1")
		}
	}
	return nil
}

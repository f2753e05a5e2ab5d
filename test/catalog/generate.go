package catalog

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// Deterministic values: every generated value is a function of (seed, entity
// id, salt), so any table writer can recompute a product's properties on its
// own, in any order, without shared state.

func mix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

func hash3(seed uint64, a, b, c uint64) uint64 {
	return mix64(mix64(mix64(seed^a)^b*0x9e3779b97f4a7c15) ^ c*0xc2b2ae3d27d4eb4f)
}

// frac maps a hash to [0,1).
func frac(h uint64) float64 { return float64(h>>11) / (1 << 53) }

const (
	saltPrice uint64 = iota + 1
	saltWeight
	saltQty
	saltSpecial
	saltNew
	saltImage
	saltName
	saltDesc
	saltStatus
	saltPriceOverride
	saltOptionLabel
	saltAttrLabel
	saltSuperLabel
	saltPermission
	saltGrant
	saltCategory
	saltAttrValue
	saltWords
	saltCategoryName
)

type kind uint8

const (
	kindSimple kind = iota
	kindConfigurable
	kindVariant
)

func (k kind) typeID() string {
	if k == kindConfigurable {
		return "configurable"
	}
	return "simple"
}

type website struct {
	id      uint16
	code    string
	name    string
	groupID uint16
	stores  []uint16
}

type storeView struct {
	id        uint16
	code      string
	name      string
	websiteID uint16
	groupID   uint16
}

type category struct {
	id       uint32
	parent   uint32
	path     string
	level    int
	position int
	children int
	name     string
	urlKey   string
	urlPath  string
}

// layout is everything about a generated catalog that is not per-product:
// scopes, generated attributes, the category tree. It is small.
type layout struct {
	p          Profile
	seed       uint64
	websites   []website   // without admin 0
	stores     []storeView // without admin 0
	categories []category
	genAttrs   []Attribute
	base       time.Time
}

func firstGeneratedSetID() uint16 { return 10 }

var colorNames = []string{"Red", "Blue", "Green", "Black", "White", "Yellow", "Purple", "Orange", "Gray", "Brown", "Pink", "Navy"}
var sizeNames = []string{"XS", "S", "M", "L", "XL", "XXL", "3XL", "4XL", "5XL", "6XL"}

// Store-view label prefixes, with non-ASCII text on purpose.
var translations = []string{"Édition", "Ausgabe", "Edizione", "版", "Edición", "Издание", "Utgåva", "Wydanie"}

func newLayout(p Profile, seed int64) *layout {
	l := &layout{p: p, seed: uint64(seed), base: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	for w := 1; w <= p.Websites; w++ {
		ws := website{id: uint16(w), groupID: uint16(w)}
		if w == 1 {
			ws.code, ws.name = "base", "Main Website"
		} else {
			ws.code, ws.name = fmt.Sprintf("website_%d", w), fmt.Sprintf("Website %d", w)
		}
		l.websites = append(l.websites, ws)
	}
	for s := 1; s <= p.TotalStoreViews(); s++ {
		w := (s-1)%p.Websites + 1
		sv := storeView{id: uint16(s), websiteID: uint16(w), groupID: uint16(w)}
		if s == 1 {
			sv.code, sv.name = "default", "Default Store View"
		} else {
			sv.code, sv.name = fmt.Sprintf("store_view_%d", s), fmt.Sprintf("Store View %d", s)
		}
		l.stores = append(l.stores, sv)
		l.websites[w-1].stores = append(l.websites[w-1].stores, sv.id)
	}
	n := p.AttributeSets * p.AttributesPerSet
	for j := 0; j < n; j++ {
		a := Attribute{
			ID: FirstGeneratedAttributeID + uint16(j), EntityTypeID: EntityTypeProduct,
			Code:        fmt.Sprintf("attribute_set%d_%d", j/p.AttributesPerSet+1, j%p.AttributesPerSet+1),
			BackendType: BackendInt, FrontendInput: "select",
			Label: fmt.Sprintf("Attribute %d of Set %d", j%p.AttributesPerSet+1, j/p.AttributesPerSet+1),
			Scope: ScopeGlobal, UserDefined: true, Searchable: true, Filterable: true, Comparable: true, VisibleOnFront: true,
			SourceModel: `Magento\Eav\Model\Entity\Attribute\Source\Table`,
		}
		if l.isMultiselect(j) {
			a.BackendType, a.FrontendInput, a.Filterable = BackendVarchar, "multiselect", false
			a.BackendModel = `Magento\Eav\Model\Entity\Attribute\Backend\ArrayBackend`
		}
		l.genAttrs = append(l.genAttrs, a)
	}
	l.buildCategories()
	return l
}

func (l *layout) isMultiselect(j int) bool { return j%5 == 4 }

func (l *layout) buildCategories() {
	n := l.p.Categories
	if n == 0 {
		return
	}
	f := int(math.Ceil(math.Pow(float64(n), 1/float64(l.p.CategoryNesting))))
	if f < 2 {
		f = 2
	}
	l.categories = make([]category, n)
	for i := 0; i < n; i++ {
		c := &l.categories[i]
		c.id = uint32(3 + i)
		c.name = fmt.Sprintf("Category %d", i+1)
		c.urlKey = fmt.Sprintf("category-%d", i+1)
		if i < f {
			c.parent, c.path, c.level, c.position, c.urlPath = 2, fmt.Sprintf("1/2/%d", c.id), 2, i+1, c.urlKey
		} else {
			pi := (i - f) / f
			par := &l.categories[pi]
			c.parent, c.path, c.level = par.id, fmt.Sprintf("%s/%d", par.path, c.id), par.level+1
			c.position, c.urlPath = (i-f)%f+1, par.urlPath+"/"+c.urlKey
			for a := pi; ; a = (a - f) / f {
				l.categories[a].children++
				if a < f {
					break
				}
			}
		}
	}
}

func (l *layout) totalProducts() uint32 { return uint32(l.p.TotalProducts()) }

// product is the computed description of one generated product.
type product struct {
	id      uint32
	kind    kind
	seq     int // 1-based number within its kind (simple, configurable)
	cfg     int // configurable index (configurable and variant)
	parent  uint32
	color   int // option indexes (variants)
	size    int
	setIdx  int // generated attribute set index, -1 = Default set
	price   int64
	weight  int64
	qty     int64
	special bool
	newFrom bool
	image   int
}

func (l *layout) product(id uint32) product {
	p := product{id: id, setIdx: -1}
	nSimple := uint32(l.p.SimpleProducts)
	if id <= nSimple {
		p.kind, p.seq = kindSimple, int(id)
		if l.p.AttributeSets > 0 {
			p.setIdx = int(id-1) % l.p.AttributeSets
		}
	} else {
		per := uint32(1 + l.p.Variants())
		off := id - nSimple - 1
		p.cfg = int(off / per)
		p.seq = p.cfg + 1
		if k := off % per; k == 0 {
			p.kind = kindConfigurable
		} else {
			p.kind, p.parent = kindVariant, id-k
			p.color, p.size = int(k-1)/l.p.Sizes, int(k-1)%l.p.Sizes
		}
	}
	priceKey := id
	if p.kind == kindVariant {
		priceKey = p.parent
	}
	p.price = 500 + int64(hash3(l.seed, uint64(priceKey), saltPrice, 0)%49500)
	if p.kind == kindVariant {
		p.price += int64(p.size) * 100
	}
	p.weight = 10 + int64(hash3(l.seed, uint64(id), saltWeight, 0)%1990)
	if h := hash3(l.seed, uint64(id), saltQty, 0); frac(h) >= 0.05 {
		p.qty = 1 + int64(h>>32)%1000
	}
	p.special = frac(hash3(l.seed, uint64(id), saltSpecial, 0)) < 0.10
	p.newFrom = frac(hash3(l.seed, uint64(id), saltNew, 0)) < 0.05
	p.image = int(hash3(l.seed, uint64(id), saltImage, 0) % 100)
	return p
}

func (l *layout) attributeSetID(p product) uint16 {
	if p.setIdx < 0 {
		return AttributeSetProductDefault
	}
	return firstGeneratedSetID() + uint16(p.setIdx)
}

func (l *layout) colorName(i int) string {
	if i < len(colorNames) {
		return colorNames[i]
	}
	return fmt.Sprintf("Color %d", i+1)
}

func (l *layout) sizeName(i int) string {
	if i < len(sizeNames) {
		return sizeNames[i]
	}
	return fmt.Sprintf("Size %d", i+1)
}

func (l *layout) sku(p product) string {
	switch p.kind {
	case kindSimple:
		return fmt.Sprintf("product_dynamic_%d", p.seq)
	case kindConfigurable:
		return fmt.Sprintf("configurable_%d", p.seq)
	}
	return fmt.Sprintf("configurable_%d-%s-%s", p.seq, strings.ToLower(l.colorName(p.color)), strings.ToLower(l.sizeName(p.size)))
}

func (l *layout) name(p product) string {
	switch p.kind {
	case kindSimple:
		return fmt.Sprintf("Simple Product %d", p.seq)
	case kindConfigurable:
		return fmt.Sprintf("Configurable Product %d", p.seq)
	}
	return fmt.Sprintf("Configurable Product %d-%s-%s", p.seq, l.colorName(p.color), l.sizeName(p.size))
}

func (l *layout) urlKey(p product) string {
	return strings.ReplaceAll(strings.ToLower(l.name(p)), " ", "-")
}

func (l *layout) storeName(p product, s storeView) string {
	return fmt.Sprintf("%s %s (%s)", l.name(p), translations[int(s.id)%len(translations)], s.code)
}

var words = strings.Fields(`lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor
incididunt ut labore et dolore magna aliqua enim ad minim veniam quis nostrud exercitation ullamco laboris
nisi aliquip ex ea commodo consequat duis aute irure in reprehenderit voluptate velit esse cillum fugiat
nulla pariatur excepteur sint occaecat cupidatat non proident sunt culpa qui officia deserunt mollit anim`)

// text returns n deterministic words.
func (l *layout) text(id uint32, salt uint64, n int) string {
	var b strings.Builder
	h := hash3(l.seed, uint64(id), saltWords, salt)
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(' ')
		}
		h = mix64(h)
		b.WriteString(words[h%uint64(len(words))])
	}
	return b.String()
}

func (l *layout) description(p product) string {
	return "<p>" + l.name(p) + ": " + l.text(p.id, 1, 60) + ".</p>"
}

func (l *layout) shortDescription(p product) string {
	return "<p>" + l.text(p.id, 2, 15) + "</p>"
}

func (l *layout) storeDescription(p product, s storeView) string {
	return "<p>" + l.storeName(p, s) + ": " + l.text(p.id, 3+uint64(s.id), 40) + ".</p>"
}

func (l *layout) imagePath(p product) string {
	return fmt.Sprintf("/%c/%c/product_%d.jpg", 'a'+rune(p.image%26), 'a'+rune(p.image/26%26), p.image)
}

func (l *layout) timestamp(id uint32) string {
	return l.base.Add(time.Duration(id) * time.Second).Format(time.DateTime)
}

// Option ids are explicit so product rows can name them without a lookup.
func (l *layout) colorOption(i int) uint32 { return uint32(1 + i) }
func (l *layout) sizeOption(i int) uint32  { return uint32(1 + l.p.Colors + i) }
func (l *layout) genOption(j, o int) uint32 {
	return uint32(1 + l.p.Colors + l.p.Sizes + j*l.p.OptionsPerAttribute + o)
}

// genValue is product p's value of generated attribute j: an option index,
// or -1 when the product has no value (20% of the time).
func (l *layout) genValue(p product, j int) int {
	h := hash3(l.seed, uint64(p.id), saltAttrValue, uint64(j))
	if frac(h) < 0.2 {
		return -1
	}
	return int((h >> 32) % uint64(l.p.OptionsPerAttribute))
}

// setAttrs returns the generated attribute indexes of set s.
func (l *layout) setAttrs(s int) (from, to int) {
	return s * l.p.AttributesPerSet, (s + 1) * l.p.AttributesPerSet
}

// websitesOf returns the websites a product is assigned to.
func (l *layout) websitesOf(p product) []website {
	if l.p.AssignAllWebsites {
		return l.websites
	}
	root := p.id
	if p.kind == kindVariant {
		root = p.parent
	}
	w := int(root) % len(l.websites)
	return l.websites[w : w+1]
}

// categoriesOf returns up to two distinct category indexes for a visible
// product (variants have none).
func (l *layout) categoriesOf(p product) []int {
	n := len(l.categories)
	if p.kind == kindVariant || n == 0 {
		return nil
	}
	h := hash3(l.seed, uint64(p.id), saltCategory, 0)
	a := int(h % uint64(n))
	b := int((h >> 32) % uint64(n))
	if a == b || n == 1 {
		return []int{a}
	}
	return []int{a, b}
}

func (l *layout) overrides(id uint32, storeOrWebsite uint16, salt uint64, fraction float64) bool {
	return fraction > 0 && frac(hash3(l.seed, uint64(id), salt, uint64(storeOrWebsite))) < fraction
}

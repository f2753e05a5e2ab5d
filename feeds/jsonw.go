package feeds

import (
	"encoding/json"
	"github.com/feedcdc/feedcdc/internal/jsonw"
	"strconv"
)

// jsonAppender is implemented by payloads with a hand-written encoder. It
// must produce exactly what canonical() (encoding/json, no HTML escaping)
// produces for the same value; TestHandEncoderMatchesEncodingJSON checks it.
type jsonAppender interface {
	appendJSON(b []byte) []byte
}

// jw is a tiny JSON object writer.
type jw struct {
	b     []byte
	first bool
}

func (w *jw) key(k string) {
	if !w.first {
		w.b = append(w.b, ',')
	}
	w.first = false
	w.b = append(w.b, '"')
	w.b = append(w.b, k...)
	w.b = append(w.b, '"', ':')
}

func (w *jw) open()  { w.b = append(w.b, '{'); w.first = true }
func (w *jw) close() { w.b = append(w.b, '}'); w.first = false }

func (w *jw) str(k, v string) { w.key(k); w.b = appendJSONString(w.b, v) }

func (w *jw) strPtr(k string, v *string) {
	w.key(k)
	if v == nil {
		w.b = append(w.b, "null"...)
		return
	}
	w.b = appendJSONString(w.b, *v)
}

func (w *jw) num(k string, v *json.Number) {
	w.key(k)
	if v == nil {
		w.b = append(w.b, "null"...)
		return
	}
	w.b = append(w.b, *v...)
}

func (w *jw) uint(k string, v uint64) { w.key(k); w.b = strconv.AppendUint(w.b, v, 10) }
func (w *jw) int(k string, v int64)   { w.key(k); w.b = strconv.AppendInt(w.b, v, 10) }
func (w *jw) bool(k string, v bool)   { w.key(k); w.b = strconv.AppendBool(w.b, v) }

func (w *jw) strList(k string, vs []string) {
	w.key(k)
	if vs == nil {
		w.b = append(w.b, "null"...)
		return
	}
	w.b = append(w.b, '[')
	for i, v := range vs {
		if i > 0 {
			w.b = append(w.b, ',')
		}
		w.b = appendJSONString(w.b, v)
	}
	w.b = append(w.b, ']')
}

// appendJSONString writes s as encoding/json does with SetEscapeHTML(false).
func appendJSONString(b []byte, s string) []byte { return jsonw.AppendString(b, s) }

func (w *jw) image(k string, v *imageRef) {
	w.key(k)
	if v == nil {
		w.b = append(w.b, "null"...)
		return
	}
	w.open()
	w.str("url", v.URL)
	w.strPtr("label", v.Label)
	w.close()
}

// appendJSON is productPayload's hand-written encoder (the products feed is
// the hot path of a full sync).
func (pl *productPayload) appendJSON(b []byte) []byte {
	w := &jw{b: b}
	w.open()
	w.str("sku", pl.SKU)
	w.str("storeViewCode", pl.StoreViewCode)
	w.str("storeCode", pl.StoreCode)
	w.str("websiteCode", pl.WebsiteCode)
	w.uint("productId", pl.ProductID)
	w.str("type", pl.Type)
	w.strPtr("name", pl.Name)
	w.strPtr("status", pl.Status)
	w.strPtr("visibility", pl.Visibility)
	w.bool("displayable", pl.Displayable)
	w.bool("buyable", pl.Buyable)
	w.bool("inStock", pl.InStock)
	w.strPtr("urlKey", pl.URLKey)
	w.strPtr("description", pl.Description)
	w.strPtr("shortDescription", pl.ShortDescription)
	w.strPtr("metaTitle", pl.MetaTitle)
	w.strPtr("metaKeyword", pl.MetaKeyword)
	w.strPtr("metaDescription", pl.MetaDescription)
	w.strPtr("taxClassId", pl.TaxClassID)
	w.num("weight", pl.Weight)
	w.key("prices")
	w.open()
	w.num("regularPrice", pl.Prices.RegularPrice)
	w.num("specialPrice", pl.Prices.SpecialPrice)
	w.strPtr("specialFromDate", pl.Prices.SpecialFromDate)
	w.strPtr("specialToDate", pl.Prices.SpecialToDate)
	w.close()
	w.image("image", pl.Image)
	w.image("smallImage", pl.SmallImage)
	w.image("thumbnail", pl.Thumbnail)
	w.image("swatchImage", pl.SwatchImage)
	w.key("inventory")
	if inv := pl.Inventory; inv == nil {
		w.b = append(w.b, "null"...)
	} else {
		w.open()
		w.num("qty", inv.Qty)
		w.bool("isInStock", inv.IsInStock)
		w.bool("manageStock", inv.ManageStock)
		w.close()
	}
	w.key("categoryData")
	w.list(len(pl.CategoryData), pl.CategoryData == nil, func(i int) {
		c := &pl.CategoryData[i]
		w.open()
		w.str("categoryId", c.CategoryID)
		w.str("categoryPath", c.CategoryPath)
		w.int("productPosition", c.ProductPosition)
		w.close()
	})
	w.key("parents")
	w.list(len(pl.Parents), pl.Parents == nil, func(i int) {
		w.open()
		w.str("sku", pl.Parents[i].SKU)
		w.str("productType", pl.Parents[i].ProductType)
		w.close()
	})
	w.key("attributes")
	w.list(len(pl.Attributes), pl.Attributes == nil, func(i int) {
		a := &pl.Attributes[i]
		w.open()
		w.str("attributeCode", a.AttributeCode)
		w.strList("value", a.Value)
		if len(a.ValueID) > 0 {
			w.strList("valueId", a.ValueID)
		}
		w.close()
	})
	w.str("createdAt", pl.CreatedAt)
	w.bool("deleted", pl.Deleted)
	w.close()
	return w.b
}

func (w *jw) list(n int, isNil bool, item func(i int)) {
	if isNil {
		w.b = append(w.b, "null"...)
		return
	}
	w.b = append(w.b, '[')
	for i := 0; i < n; i++ {
		if i > 0 {
			w.b = append(w.b, ',')
		}
		item(i)
	}
	w.b = append(w.b, ']')
	w.first = false
}

package catalog

// StoreView describes one generated store view (store row) with its website
// and store group.
type StoreView struct {
	ID          uint16
	Code        string
	Name        string
	WebsiteID   uint16
	WebsiteCode string
	GroupID     uint16
}

// Website describes one generated website and its store views.
type Website struct {
	ID         uint16
	Code       string
	Name       string
	GroupID    uint16
	StoreViews []uint16
}

// StoreViews lists the store views Load creates for p (admin store 0
// excluded), so tests can predict per-store feed items without a query.
func StoreViews(p Profile) []StoreView {
	l := newLayout(p, 0)
	out := make([]StoreView, 0, len(l.stores))
	for _, s := range l.stores {
		out = append(out, StoreView{ID: s.id, Code: s.code, Name: s.name, WebsiteID: s.websiteID,
			WebsiteCode: l.websites[s.websiteID-1].code, GroupID: s.groupID})
	}
	return out
}

// Websites lists the websites Load creates for p (admin website 0 excluded).
func Websites(p Profile) []Website {
	l := newLayout(p, 0)
	out := make([]Website, 0, len(l.websites))
	for _, w := range l.websites {
		out = append(out, Website{ID: w.id, Code: w.code, Name: w.name, GroupID: w.groupID, StoreViews: append([]uint16(nil), w.stores...)})
	}
	return out
}

// GeneratedAttributes lists the user-defined attributes Load creates for p
// (ids from FirstGeneratedAttributeID; every fifth is a varchar multiselect).
func GeneratedAttributes(p Profile) []Attribute {
	return append([]Attribute(nil), newLayout(p, 0).genAttrs...)
}

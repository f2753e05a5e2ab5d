package catalog

import "testing"

// TestLayoutArithmetic checks the product-id layout of every built-in
// profile without a database: kinds, parents and variant axes.
func TestLayoutArithmetic(t *testing.T) {
	for _, name := range ProfileNames() {
		p, err := ProfileByName(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		l := newLayout(p, 1)
		n := l.totalProducts()
		if int(n) != p.SimpleProducts+p.ConfigurableProducts*(1+p.Colors*p.Sizes) {
			t.Fatalf("%s: %d products", name, n)
		}
		last := l.product(n)
		if last.kind != kindVariant || l.product(last.parent).kind != kindConfigurable || last.cfg != p.ConfigurableProducts-1 {
			t.Errorf("%s: last product %+v", name, last)
		}
		if last.color != p.Colors-1 || last.size != p.Sizes-1 {
			t.Errorf("%s: last variant axes %d/%d", name, last.color, last.size)
		}
		first := l.product(uint32(p.SimpleProducts + 1))
		if first.kind != kindConfigurable || first.seq != 1 {
			t.Errorf("%s: first configurable %+v", name, first)
		}
		if s := l.product(uint32(p.SimpleProducts)); s.kind != kindSimple || s.setIdx < 0 {
			t.Errorf("%s: last simple %+v", name, s)
		}
		// Every EAV table of the profile gets explicit, parallel-loadable ids.
		for _, j := range l.productJobs() {
			if _, ok := primaryKey[j.table]; ok && j.idsPerProduct == 0 {
				t.Errorf("%s: %s has no explicit ids", name, j.table)
			}
		}
		if len(l.categories) != p.Categories {
			t.Errorf("%s: %d categories", name, len(l.categories))
		}
		for _, c := range l.categories {
			if c.level < 2 || c.level > p.CategoryNesting+1 {
				t.Errorf("%s: category %d at level %d (nesting %d)", name, c.id, c.level, p.CategoryNesting)
				break
			}
		}
		if got := len(StoreViews(p)); got != p.StoreViews {
			t.Errorf("%s: %d store views", name, got)
		}
	}
	if sv := StoreViews(Medium()); sv[0].Code != "default" || sv[1].WebsiteCode != "website_2" {
		t.Errorf("medium store views: %+v", sv)
	}
}

func TestQuoting(t *testing.T) {
	got := string(appendQuoted(nil, "a'b\\c\x00d\n\"é"))
	if want := `'a\'b\\c\0d\n\"é'`; got != want {
		t.Fatalf("quoted %s, want %s", got, want)
	}
	if got := string(appendCents(nil, -1205)); got != "-12.05" {
		t.Fatalf("cents %s", got)
	}
	// The server reads every byte back unchanged.
	tricky := "x'y\\z\x00\r\n\x1a\"版 — ü"
	var back string
	if err := srv.Admin(t, "").QueryRow("SELECT " + string(appendQuoted(nil, tricky))).Scan(&back); err != nil || back != tricky {
		t.Fatalf("round trip: %q, %v", back, err)
	}
}

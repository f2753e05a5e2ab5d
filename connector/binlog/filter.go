package binlog

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Filter chooses the captured tables with "db.table" patterns where '*'
// matches any run of characters and '?' one character (case-insensitive).
// A table is captured when it matches an Include pattern (or Include is
// empty) and matches no Exclude pattern. The system schemas mysql,
// information_schema, performance_schema and sys are never captured unless
// an Include pattern names them without a wildcard in the schema part.
type Filter struct {
	Include []string
	Exclude []string
}

// Validate checks that every pattern has the form db.table.
func (f Filter) Validate() error {
	for _, list := range [][]string{f.Include, f.Exclude} {
		for _, p := range list {
			if strings.Count(p, ".") != 1 || strings.HasPrefix(p, ".") || strings.HasSuffix(p, ".") {
				return fmt.Errorf("table pattern %q must have the form db.table (use * as a wildcard, e.g. shop.* or *.catalog_product_entity)", p)
			}
		}
	}
	return nil
}

var systemSchemas = map[string]bool{"mysql": true, "information_schema": true, "performance_schema": true, "sys": true}

// SourceFilter is the Filter of raw capture as config.yaml's source section
// states it: a table is captured when its database is one of databases (or,
// with none listed, is not a system schema), it matches an include pattern
// (or there is none) and no exclude pattern. The databases are folded into
// the include patterns; with none listed, the system schemas are excluded
// even where an include pattern names them.
func SourceFilter(databases, include, exclude []string) Filter {
	f := Filter{Exclude: slices.Clone(exclude)}
	switch {
	case len(databases) == 0:
		f.Include = slices.Clone(include)
		for _, s := range slices.Sorted(maps.Keys(systemSchemas)) {
			f.Exclude = append(f.Exclude, s+".*")
		}
	case len(include) == 0:
		for _, d := range databases {
			f.Include = append(f.Include, d+".*")
		}
	default:
		for _, d := range databases {
			for _, p := range include {
				pd, pt, _ := strings.Cut(p, ".")
				if q := d + "." + pt; glob(strings.ToLower(pd), strings.ToLower(d)) && !slices.Contains(f.Include, q) {
					f.Include = append(f.Include, q)
				}
			}
		}
		if len(f.Include) == 0 {
			// No include pattern reaches a listed database (config.Validate
			// reports this): capture nothing rather than everything.
			// Identifiers cannot contain NUL, so this pattern matches no table.
			f.Include = []string{databases[0] + ".\x00"}
		}
	}
	return f
}

// MatchAny reports whether any of the {db, table} names is captured.
func (f Filter) MatchAny(names [][2]string) bool {
	for _, n := range names {
		if f.Match(n[0], n[1]) {
			return true
		}
	}
	return false
}

// Match reports whether db.table is captured.
func (f Filter) Match(db, table string) bool {
	if systemSchemas[strings.ToLower(db)] && !f.namesSchema(db) {
		return false
	}
	if len(f.Include) > 0 {
		ok := false
		for _, p := range f.Include {
			if matchPattern(p, db, table) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	for _, p := range f.Exclude {
		if matchPattern(p, db, table) {
			return false
		}
	}
	return true
}

// MatchSchema reports whether some table of database db can be captured
// (an Include pattern's database part matches it, or Include is empty).
// The schema tracker follows every table of such a database, so that a
// table renamed into a captured name (an online schema change's shadow
// table) has a known schema.
func (f Filter) MatchSchema(db string) bool {
	if systemSchemas[strings.ToLower(db)] && !f.namesSchema(db) {
		return false
	}
	if len(f.Include) == 0 {
		return true
	}
	for _, p := range f.Include {
		if i := strings.IndexByte(p, '.'); i >= 0 && glob(strings.ToLower(p[:i]), strings.ToLower(db)) {
			return true
		}
	}
	return false
}

func (f Filter) namesSchema(db string) bool {
	for _, p := range f.Include {
		if i := strings.IndexByte(p, '.'); i >= 0 && strings.EqualFold(p[:i], db) {
			return true
		}
	}
	return false
}

func matchPattern(p, db, table string) bool {
	i := strings.IndexByte(p, '.')
	if i < 0 {
		return false
	}
	return glob(strings.ToLower(p[:i]), strings.ToLower(db)) && glob(strings.ToLower(p[i+1:]), strings.ToLower(table))
}

// glob matches s against a pattern of literals, '*' and '?'.
func glob(p, s string) bool {
	px, sx := 0, 0
	star, mark := -1, 0
	for sx < len(s) {
		switch {
		case px < len(p) && (p[px] == '?' || p[px] == s[sx]):
			px++
			sx++
		case px < len(p) && p[px] == '*':
			star, mark = px, sx
			px++
		case star >= 0:
			px = star + 1
			mark++
			sx = mark
		default:
			return false
		}
	}
	for px < len(p) && p[px] == '*' {
		px++
	}
	return px == len(p)
}

package binlog

import (
	"slices"
	"strings"
	"testing"
)

// TestSourceFilterCaptures: databases, include and exclude patterns choose
// the raw streams' tables, case-insensitively, never the system schemas by
// default (moved from config's TestCaptures with Source.Captures).
func TestSourceFilterCaptures(t *testing.T) {
	f := SourceFilter([]string{"magento"}, []string{"magento.catalog_*", "magento.store"}, []string{"magento.catalog_*_tmp"})
	for tbl, want := range map[string]bool{"catalog_product_entity": true, "store": true, "catalog_x_tmp": false, "sales_order": false} {
		if got := f.Match("magento", tbl); got != want {
			t.Errorf("Match(magento.%s) = %v", tbl, got)
		}
	}
	if f.Match("other", "store") {
		t.Error("other database captured")
	}
	if !f.Match("Magento", "CATALOG_product_entity") {
		t.Error("patterns must compare case-insensitively")
	}
	all := SourceFilter(nil, nil, nil)
	if !all.Match("shop", "x") || all.Match("mysql", "user") || all.Match("performance_schema", "x") {
		t.Error("default capture set wrong")
	}
	if SourceFilter(nil, []string{"mysql.user"}, nil).Match("mysql", "user") {
		t.Error("a system schema was captured with source.databases empty")
	}
}

// TestSourceFilterAsDocumented: the Filter that SourceFilter folds the
// databases into captures exactly what the source section states (the
// former config.Source.Captures, written out here as the reference): the
// database is listed (or, with none listed, is not a system schema), an
// include pattern matches (or there is none) and no exclude pattern does.
func TestSourceFilterAsDocumented(t *testing.T) {
	system := []string{"mysql", "sys", "information_schema", "performance_schema"}
	captures := func(databases, include, exclude []string, db, table string) bool {
		if len(databases) > 0 && !slices.ContainsFunc(databases, func(d string) bool { return strings.EqualFold(d, db) }) ||
			len(databases) == 0 && slices.Contains(system, strings.ToLower(db)) {
			return false
		}
		match := func(p string) bool { return matchPattern(p, db, table) }
		return (len(include) == 0 || slices.ContainsFunc(include, match)) && !slices.ContainsFunc(exclude, match)
	}
	sources := []struct{ databases, include, exclude []string }{
		{},
		{databases: []string{"magento"}},
		{databases: []string{"magento", "shop"}, include: []string{"*.catalog_*", "shop.orders"}, exclude: []string{"*.catalog_*_tmp"}},
		{include: []string{"mag*.store*"}, exclude: []string{"magento.store_website"}},
		{databases: []string{"mysql"}},
		{include: []string{"mysql.user", "shop.*"}},
		{databases: []string{"magento"}, include: []string{"shop.*"}},
	}
	dbs := []string{"magento", "shop", "other", "mysql", "magento2"}
	tables := []string{"store", "store_website", "catalog_product_entity", "catalog_x_tmp", "orders", "user"}
	for i, s := range sources {
		f := SourceFilter(s.databases, s.include, s.exclude)
		for _, db := range dbs {
			for _, tbl := range tables {
				if got, want := f.Match(db, tbl), captures(s.databases, s.include, s.exclude, db, tbl); got != want {
					t.Errorf("source %d: %s.%s: filter(%v, %v) = %v, documented = %v", i, db, tbl, f.Include, f.Exclude, got, want)
				}
			}
		}
	}
}

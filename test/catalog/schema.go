package catalog

import (
	"context"
	"database/sql"
	_ "embed"
	"fmt"
	"regexp"
	"strings"
)

//go:embed schema.sql
var schemaSQL string

// SchemaSQL returns the DDL of every table the fixture creates, as one
// string of semicolon-terminated statements.
func SchemaSQL() string { return schemaSQL }

// Tables lists the tables CreateSchema creates, in creation order.
func Tables() []string {
	var out []string
	for _, m := range createTableRe.FindAllStringSubmatch(schemaSQL, -1) {
		out = append(out, m[1])
	}
	return out
}

var (
	createTableRe = regexp.MustCompile(`(?m)^CREATE TABLE (\w+) \(`)
	stmtEndRe     = regexp.MustCompile(`;[ \t]*\n`)
)

// schemaStatements splits schema.sql into statements, dropping comment lines.
func schemaStatements() []string {
	var b strings.Builder
	for _, line := range strings.Split(schemaSQL, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "--") {
			continue
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	var out []string
	for _, s := range stmtEndRe.Split(b.String(), -1) {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, strings.TrimSuffix(s, ";"))
		}
	}
	return out
}

// CreateSchema creates the catalog tables in db's current database and seeds
// the rows of a fresh Magento install: the admin website/group/store 0 and
// the default website/group/store 1, entity types, default attribute sets and
// groups, the standard attributes (StandardAttributes), the root and default
// categories, the default customer groups and the default stock. It fails if
// a table already exists.
func CreateSchema(ctx context.Context, db *sql.DB) error {
	if err := createTables(ctx, db); err != nil {
		return err
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("catalog: connect: %w", err)
	}
	defer endSession(conn) // the seed changes sql_mode
	if err := seed(ctx, conn); err != nil {
		return fmt.Errorf("catalog: seed: %w", err)
	}
	return nil
}

// createTables runs the CREATE TABLE statements in dependency order on one
// connection. (Running them on several connections with foreign_key_checks
// off halved the time, but a private mariadbd crashed once in a test run
// while that was in use, cause not established, so the fixture keeps the
// plain, sequential DDL.)
func createTables(ctx context.Context, db *sql.DB) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("catalog: connect: %w", err)
	}
	defer conn.Close()
	for _, stmt := range schemaStatements() {
		if _, err := conn.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("catalog: create schema: %s: %w", firstLine(stmt), err)
		}
	}
	return nil
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// seed writes the fresh-install rows in one transaction. Ids 0 need
// NO_AUTO_VALUE_ON_ZERO, which is set for this session only.
func seed(ctx context.Context, conn *sql.Conn) error {
	if _, err := conn.ExecContext(ctx, "SET SESSION sql_mode = CONCAT(@@SESSION.sql_mode, ',NO_AUTO_VALUE_ON_ZERO')"); err != nil {
		return err
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck
	stmts := []string{
		`INSERT INTO store_website (website_id, code, name, sort_order, default_group_id, is_default) VALUES
			(0, 'admin', 'Admin', 0, 0, 0), (1, 'base', 'Main Website', 0, 1, 1)`,
		`INSERT INTO store_group (group_id, website_id, name, root_category_id, default_store_id, code) VALUES
			(0, 0, 'Default', 0, 0, 'default'), (1, 1, 'Main Website Store', 2, 1, 'main_website_store')`,
		`INSERT INTO store (store_id, code, website_id, group_id, name, sort_order, is_active) VALUES
			(0, 'admin', 0, 0, 'Admin', 0, 1), (1, 'default', 1, 1, 'Default Store View', 0, 1)`,
		`INSERT INTO eav_entity_type (entity_type_id, entity_type_code, entity_model, attribute_model, entity_table,
			entity_id_field, default_attribute_set_id, additional_attribute_table, entity_attribute_collection) VALUES
			(1, 'customer', 'Magento\\Customer\\Model\\ResourceModel\\Customer', 'Magento\\Customer\\Model\\Attribute', 'customer_entity', NULL, 1, 'customer_eav_attribute', 'Magento\\Customer\\Model\\ResourceModel\\Attribute\\Collection'),
			(2, 'customer_address', 'Magento\\Customer\\Model\\ResourceModel\\Address', 'Magento\\Customer\\Model\\Attribute', 'customer_address_entity', NULL, 2, 'customer_eav_attribute', 'Magento\\Customer\\Model\\ResourceModel\\Address\\Attribute\\Collection'),
			(3, 'catalog_category', 'Magento\\Catalog\\Model\\ResourceModel\\Category', 'Magento\\Catalog\\Model\\ResourceModel\\Eav\\Attribute', 'catalog_category_entity', NULL, 3, 'catalog_eav_attribute', 'Magento\\Catalog\\Model\\ResourceModel\\Category\\Attribute\\Collection'),
			(4, 'catalog_product', 'Magento\\Catalog\\Model\\ResourceModel\\Product', 'Magento\\Catalog\\Model\\ResourceModel\\Eav\\Attribute', 'catalog_product_entity', NULL, 4, 'catalog_eav_attribute', 'Magento\\Catalog\\Model\\ResourceModel\\Product\\Attribute\\Collection')`,
		`INSERT INTO eav_attribute_set (attribute_set_id, entity_type_id, attribute_set_name, sort_order) VALUES
			(1, 1, 'Default', 2), (2, 2, 'Default', 2), (3, 3, 'Default', 1), (4, 4, 'Default', 1)`,
		`INSERT INTO eav_attribute_group (attribute_group_id, attribute_set_id, attribute_group_name, sort_order, default_id, attribute_group_code, tab_group_code) VALUES
			(1, 1, 'General', 1, 1, 'general', NULL), (2, 2, 'General', 1, 1, 'general', NULL),
			(3, 3, 'General Information', 1, 1, 'general-information', NULL),
			(7, 4, 'Product Details', 1, 1, 'product-details', 'basic'),
			(13, 4, 'Content', 2, 0, 'content', 'basic')`,
		`INSERT INTO customer_group (customer_group_id, customer_group_code, tax_class_id) VALUES
			(0, 'NOT LOGGED IN', 3), (1, 'General', 3), (2, 'Wholesale', 3), (3, 'Retailer', 3)`,
		`INSERT INTO cataloginventory_stock (stock_id, website_id, stock_name) VALUES (1, 0, 'Default')`,
		`INSERT INTO catalog_category_entity (entity_id, attribute_set_id, parent_id, path, position, level, children_count, created_at, updated_at) VALUES
			(1, 3, 0, '1', 0, 0, 1, '2025-01-01 00:00:00', '2025-01-01 00:00:00'), (2, 3, 1, '1/2', 1, 1, 0, '2025-01-01 00:00:00', '2025-01-01 00:00:00')`,
	}
	for _, s := range stmts {
		if _, err := tx.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", firstLine(strings.TrimSpace(s)), err)
		}
	}
	if err := insertAttributes(ctx, tx, StandardAttributes()); err != nil {
		return err
	}
	// Standard product attributes join the default set's "Product Details"
	// group (descriptions go to "Content"); category ones the category set.
	for i, a := range StandardAttributes() {
		set, group := AttributeSetProductDefault, uint16(7)
		if a.EntityTypeID == EntityTypeCategory {
			set, group = AttributeSetCategoryDefault, 3
		} else if a.BackendType == BackendText {
			group = 13
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO eav_entity_attribute (entity_type_id, attribute_set_id, attribute_group_id, attribute_id, sort_order) VALUES (?, ?, ?, ?, ?)`,
			a.EntityTypeID, set, group, a.ID, i); err != nil {
			return fmt.Errorf("eav_entity_attribute %s: %w", a.Code, err)
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO catalog_category_entity_varchar (attribute_id, store_id, entity_id, value) VALUES
		(?, 0, 1, 'Root Catalog'), (?, 0, 2, 'Default Category'), (?, 0, 2, 'default-category')`,
		AttrCategoryName, AttrCategoryName, AttrCategoryURLKey); err != nil {
		return fmt.Errorf("category names: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO catalog_category_entity_int (attribute_id, store_id, entity_id, value) VALUES (?, 0, 2, 1)`, AttrCategoryIsActive); err != nil {
		return fmt.Errorf("category is_active: %w", err)
	}
	return tx.Commit()
}

type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func nullStr(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// insertAttributes writes eav_attribute and catalog_eav_attribute rows.
func insertAttributes(ctx context.Context, ex execer, attrs []Attribute) error {
	for _, a := range attrs {
		if _, err := ex.ExecContext(ctx, `INSERT INTO eav_attribute (attribute_id, entity_type_id, attribute_code, backend_model, backend_type,
			frontend_input, frontend_label, source_model, is_required, is_user_defined, default_value, is_unique)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			a.ID, a.EntityTypeID, a.Code, nullStr(a.BackendModel), a.BackendType, nullStr(a.FrontendInput), nullStr(a.Label),
			nullStr(a.SourceModel), b2i(a.Required), b2i(a.UserDefined), nullStr(a.DefaultValue), b2i(a.Unique)); err != nil {
			return fmt.Errorf("eav_attribute %s: %w", a.Code, err)
		}
		var applyTo any
		if a.EntityTypeID == EntityTypeProduct && (a.Code == "color" || a.Code == "size" || a.Code == "weight") {
			applyTo = "simple,virtual,configurable"
		}
		if _, err := ex.ExecContext(ctx, `INSERT INTO catalog_eav_attribute (attribute_id, is_global, is_visible, is_searchable,
			is_filterable, is_comparable, is_visible_on_front, is_html_allowed_on_front, is_filterable_in_search,
			used_in_product_listing, used_for_sort_by, apply_to, is_wysiwyg_enabled, is_used_in_grid, is_visible_in_grid)
			VALUES (?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			a.ID, uint8(a.Scope), b2i(a.Searchable), b2i(a.Filterable), b2i(a.Comparable), b2i(a.VisibleOnFront),
			b2i(a.Wysiwyg), b2i(a.Filterable), b2i(a.UsedInListing), b2i(a.UsedForSortBy), applyTo, b2i(a.Wysiwyg),
			b2i(a.UserDefined), b2i(a.UserDefined)); err != nil {
			return fmt.Errorf("catalog_eav_attribute %s: %w", a.Code, err)
		}
	}
	return nil
}

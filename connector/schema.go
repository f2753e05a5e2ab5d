package connector

import (
	"context"
	"fmt"
	"strings"

	"github.com/feedcdc/feedcdc/connector/binlog"
)

// ReloadSchema reads the current schema of db.table from the source and
// appends it to the schema history as a snapshot at the server's current
// binlog position (`feedcdc schema reload`). It is the remedy for a table
// whose schema the history cannot know (a table renamed into a captured
// name, created before feedcdc first started, on a server without
// binlog_row_metadata=FULL): the next run decodes the table with it. Item
// states and the checkpoint are untouched. The connector must be stopped
// (Open fails while another process holds the state file).
func (c *Connector) ReloadSchema(ctx context.Context, table string) (binlog.SchemaRecord, error) {
	db, name, ok := strings.Cut(table, ".")
	if !ok || db == "" || name == "" || strings.Contains(name, ".") {
		return binlog.SchemaRecord{}, fmt.Errorf("--table %q: name the table as db.table (e.g. shop.catalog_product_entity)", table)
	}
	if !c.SourceConfig().Filter.Match(db, name) {
		return binlog.SchemaRecord{}, fmt.Errorf("table %s is not captured by this connector (no feed reads it and source.include_tables/exclude_tables leave it out): its schema is not needed", table)
	}
	scfg, err := c.ResolvedSourceConfig(ctx)
	if err != nil {
		return binlog.SchemaRecord{}, err
	}
	src, err := binlog.New(scfg, c.Logger, schemaHistory{c.Store})
	if err != nil {
		return binlog.SchemaRecord{}, err
	}
	rec, err := src.ReloadSchema(ctx, schemaHistory{c.Store}, db, name)
	if err != nil {
		return binlog.SchemaRecord{}, fmt.Errorf("schema reload %s: %w", table, err)
	}
	return rec, nil
}

package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/feedcdc/feedcdc/connector"
	"github.com/feedcdc/feedcdc/state"
)

func newSchema(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "schema",
		Short: "Maintain the schema history the binlog decoder uses",
		Long: `The schema history holds the columns of every captured table per binlog
position, so that events decode with the schema they were written under when
the server logs binlog_row_metadata=MINIMAL (docs/binlog.md, "Schema").`,
		Example: `  feedcdc schema reload --table shop.catalog_product_entity_varchar`,
	}
	var table string
	reload := &cobra.Command{
		Use:   "reload",
		Short: "Read a table's current schema from the source into the schema history",
		Long: `Reads the current columns and primary key of one captured table from the
source's information_schema and stores them in the schema history as a
snapshot at the source's current binlog position. The next run decodes the
table with this schema where the history does not know it (for example a
table renamed into a captured name that was created before feedcdc first
started, on a server without binlog_row_metadata=FULL), and at DDL on it
before that position. Item states, failed items and the checkpoint are kept:
nothing is resent. Stop the connector first (the state file is locked while
it runs).`,
		Example: `  feedcdc schema reload --table shop.catalog_product_entity_varchar`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, log, err := g.configAndLogger()
			if err != nil {
				return err
			}
			c, err := connector.Open(cmd.Context(), cfg, connector.OpenOptions{Logger: log, Command: "feedcdc schema reload --table " + table})
			if errors.Is(err, state.ErrInUse) {
				return fmt.Errorf("%w\nstop the connector, run `feedcdc schema reload` and start it again", err)
			}
			if err != nil {
				return err
			}
			defer c.Close()
			rec, err := c.ReloadSchema(cmd.Context(), table)
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "schema of %s.%s stored in the schema history as of %s (record %d)\n", rec.DB, rec.Table, rec.Position.String(), rec.Seq)
			return nil
		},
	}
	reload.Flags().StringVar(&table, "table", "", "captured table to reload, as db.table (required)")
	_ = reload.MarkFlagRequired("table")
	cmd.AddCommand(reload)
	return cmd
}

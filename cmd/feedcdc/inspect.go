package main

import (
	"bufio"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/feedcdc/feedcdc/connector/binlog"
)

func newInspect(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "inspect",
		Short: "Inspect binlog files offline",
		Example: `  feedcdc inspect binlog /var/lib/mysql/binlog.000042
  feedcdc inspect binlog --tables 'shop.catalog_*' --tx binlog.000042 | jq .`,
	}
	var tables, exclude []string
	var txEnds, partial bool
	var zero string
	b := &cobra.Command{
		Use:   "binlog FILE...",
		Short: "Decode binlog files into JSON change records (one per line)",
		Long: `Decodes MySQL 8 / MariaDB binlog files without a server, like
mysqlbinlog -v but as JSON Lines: one record per row change with db, table,
op, before and after images by column name, GTID and position. Values are
rendered as docs/types.md documents. A truncated or corrupt file is reported
with the file, position and event type; nothing is skipped silently.`,
		Example: `  feedcdc inspect binlog binlog.000001
  feedcdc inspect binlog --tx --tables 'shop.*' --exclude 'shop.log_*' binlog.0000*`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if zero != "null" && zero != "string" {
				return fmt.Errorf("--zero-dates %q: use null or string", zero)
			}
			f := binlog.Filter{Include: tables, Exclude: exclude}
			if err := f.Validate(); err != nil {
				return fmt.Errorf("--tables/--exclude: %w", err)
			}
			w := bufio.NewWriterSize(g.stdout, 1<<16)
			err := binlog.InspectFiles(cmd.Context(), args, w, binlog.InspectOptions{ZeroDates: binlog.ZeroDates(zero), Filter: f, TxEnds: txEnds, PartialImages: partial})
			if ferr := w.Flush(); err == nil {
				err = ferr
			}
			return err
		},
	}
	b.Flags().StringSliceVar(&tables, "tables", nil, "only these tables (db.table globs, comma-separated)")
	b.Flags().StringSliceVar(&exclude, "exclude", nil, "skip these tables (db.table globs)")
	b.Flags().BoolVar(&txEnds, "tx", false, "also print a tx_end record after every transaction")
	b.Flags().BoolVar(&partial, "partial-images", false, "accept row images without every column (binlog_row_image=MINIMAL)")
	b.Flags().StringVar(&zero, "zero-dates", "null", "zero dates as null or string")
	cmd.AddCommand(b)
	return cmd
}

package main

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/go-sql-driver/mysql"
	"github.com/spf13/cobra"

	"github.com/feedcdc/feedcdc/config"
	"github.com/feedcdc/feedcdc/connector"
	"github.com/feedcdc/feedcdc/connector/binlog"
	"github.com/feedcdc/feedcdc/connector/check"
	"github.com/feedcdc/feedcdc/feeds"
	"github.com/feedcdc/feedcdc/state"
)

func newCheck(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Preflight: verify the source, the sinks and the state file before attaching",
		Long: `Checks, as the connector's own user and without changing anything:
connectivity; flavor and version; binlog on; binlog_format=ROW (the global
value); binlog_row_image=FULL; binlog_row_metadata (WARN unless FULL);
binlog_row_value_options (FAIL on PARTIAL_JSON); GTID mode; server_id
unique among the source's replicas; grants: REPLICATION SLAVE, REPLICATION
CLIENT (MariaDB: BINLOG MONITOR) and SELECT, and, with
resync.max_replica_lag set, the lag query's SLAVE MONITOR (MariaDB) /
REPLICATION CLIENT (MySQL) (WARN: the lag throttle is off without it); the
feeds' visibility fence may take a shared row lock (WARN with the GRANT on
MySQL 8.0.22+ without LOCK TABLES); binlog retention against the stored
checkpoint; captured tables exist, and every raw-stream table has a key (its
primary key, the NOT NULL unique key the server uses instead, named in
the message, or raw.key_columns); sinks reachable and authenticated; state file writable.

Each line is PASS, WARN, FAIL or SKIP, with the exact SQL or config change
that fixes a WARN or FAIL. SKIP is a check not run because an earlier one
failed (the binlog settings, GTID and retention when the binlog is off).
"feedcdc run" runs the same source checks before it starts and refuses to
start on the same FAILs with the same messages. Exits 1 when anything FAILs.

--json prints an array of {"name", "status", "message", "fix"} objects in
the order above; status is PASS, WARN, FAIL or SKIP and fix is "" for PASS
and SKIP (docs/operations.md).`,
		Example: `  feedcdc check -c config.yaml
  feedcdc check --json | jq '.[] | select(.status != "PASS")'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, log, err := g.configAndLogger()
			if err != nil {
				return err
			}
			var rs []check.Result
			c, err := connector.Open(cmd.Context(), cfg, connector.OpenOptions{Logger: log, Command: "feedcdc check"})
			switch {
			case err == nil:
				rs = c.Check(cmd.Context())
				c.Close()
			case errors.Is(err, state.ErrInUse):
				// The running connector holds the state file: it is
				// writable; check the rest without it.
				rs = checkWithoutState(cmd, cfg, "in use by the running connector (so writable)")
			default:
				rs = checkWithoutState(cmd, cfg, "")
				rs = append(rs, check.Result{Name: "open", Status: check.Fail, Message: err.Error(), Fix: "fix the error above in config.yaml"})
			}
			if asJSON {
				enc := json.NewEncoder(g.stdout)
				enc.SetIndent("", "  ")
				if err := enc.Encode(rs); err != nil {
					return err
				}
			} else {
				printChecks(g.stdout, rs)
			}
			if check.Failed(rs) {
				return &exitError{code: 1}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func checkWithoutState(cmd *cobra.Command, cfg *config.Config, stateNote string) []check.Result {
	t := check.Target{Addr: cfg.Source.Addr(), User: cfg.Source.User, ServerID: cfg.EffectiveServerID(),
		MaxReplicaLag: cfg.Resync.MaxReplicaLag.D()}
	if mc, err := connector.MySQLConfig(cfg, ""); err != nil {
		t.ConnectError = err
	} else if conn, err := mysql.NewConnector(mc); err != nil {
		t.ConnectError = err
	} else {
		t.DB = sql.OpenDB(conn)
		defer t.DB.Close()
	}
	for t2 := range feedTablesList(cfg) {
		t.Tables = append(t.Tables, t2)
	}
	if len(cfg.EnabledFeeds()) > 0 && cfg.Feeds.VisibilityFence {
		t.FenceTable = cfg.Feeds.Database + ".catalog_product_entity"
	}
	if cfg.Raw.Enabled {
		rf := binlog.SourceFilter(cfg.Source.Databases, cfg.Source.IncludeTables, cfg.Source.ExcludeTables)
		t.KeyedTables, t.Exclude = rf.Include, rf.Exclude
		if len(t.KeyedTables) == 0 {
			t.KeyedTables = []string{"*.*"}
		}
		for p := range cfg.Raw.KeyColumns {
			t.KeyColumnTables = append(t.KeyColumnTables, p)
		}
	}
	if stateNote == "" {
		t.StatePath = cfg.State.Path
	}
	rs := check.Run(cmd.Context(), t)
	if stateNote != "" {
		rs = append(rs, check.Result{Name: "state file", Status: check.Pass, Message: cfg.State.Path + " " + stateNote})
	}
	return rs
}

func printChecks(w io.Writer, rs []check.Result) {
	for _, r := range rs {
		fmt.Fprintf(w, "%-4s  %-26s %s\n", r.Status, r.Name, r.Message)
		if r.Fix != "" && r.Status != check.Pass {
			fmt.Fprintf(w, "      %-26s fix: %s\n", "", r.Fix)
		}
	}
	var fails, warns int
	for _, r := range rs {
		switch r.Status {
		case check.Fail:
			fails++
		case check.Warn:
			warns++
		}
	}
	fmt.Fprintf(w, "%d checks: %d failed, %d warnings\n", len(rs), fails, warns)
}

// feedTables lists each enabled feed's watched tables without connecting
// (a registry's pool connects lazily).
func feedTables(cfg *config.Config) map[string][]string {
	out := map[string][]string{}
	db, err := sql.Open("mysql", "feedcdc@tcp(127.0.0.1:1)/x")
	if err != nil {
		return out
	}
	defer db.Close()
	reg, err := feeds.NewRegistry(feeds.Config{DB: db, Database: cfg.Feeds.Database})
	if err != nil {
		return out
	}
	for _, f := range reg.Feeds() {
		out[f.Name()] = f.Tables()
	}
	return out
}

func feedTablesList(cfg *config.Config) map[string]bool {
	set := map[string]bool{}
	all := feedTables(cfg)
	for _, name := range cfg.EnabledFeeds() {
		for _, t := range all[name] {
			set[cfg.Feeds.Database+"."+t] = true
		}
	}
	if cfg.Raw.Enabled {
		// The same patterns as the connector's CapturedTables.
		inc := binlog.SourceFilter(cfg.Source.Databases, cfg.Source.IncludeTables, cfg.Source.ExcludeTables).Include
		if len(inc) == 0 {
			inc = []string{"*.*"}
		}
		for _, p := range inc {
			set[p] = true
		}
	}
	return set
}

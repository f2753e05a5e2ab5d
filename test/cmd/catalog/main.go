// Command catalog loads a generated Magento catalog (test/catalog profiles)
// into a MySQL/MariaDB database and/or applies a workload of catalog changes
// to it, printing rows/s and the time taken. It only talks to servers on
// this machine (loopback or a unix socket).
//
//	go run ./test/cmd/catalog --profile medium --dsn 'root@tcp(127.0.0.1:3306)/shop'
//	go run ./test/cmd/catalog --dsn 'root@tcp(127.0.0.1:3306)/shop' --workload 1000 --rate 200
//	go run ./test/cmd/catalog --dsn 'root@tcp(127.0.0.1:3306)/shop' --workload 20000 --connections 8
//
// The workload runs on --connections connections at once (default 4), each
// with its own seed; one connection is limited by its commits' log flush.
package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/feedcdc/feedcdc/test/catalog"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "catalog:", err)
		os.Exit(1)
	}
}

// options are the command's flags.
type options struct {
	profile, dsn              string
	seed                      int64
	extra, workers, batchRows int
	workload, conns, largeTx  int
	rate                      float64
	createDB                  bool
	explicitProfile           bool
}

func run(ctx context.Context, args []string, out io.Writer) error {
	o, err := parseFlags(args, out)
	if err != nil {
		return err
	}
	cfg, err := sourceConfig(o.dsn)
	if err != nil {
		return err
	}
	if o.rate < 0 || o.workload < 0 || o.largeTx < 0 || o.extra < 0 {
		return errors.New("--workload, --rate, --large-tx and --extra-store-views must not be negative")
	}
	if o.conns < 1 || o.conns > 64 {
		return fmt.Errorf("--connections %d: want 1..64", o.conns)
	}
	load := o.workload == 0 && o.largeTx == 0 || o.explicitProfile
	if o.createDB && load {
		if err := createDatabase(ctx, cfg); err != nil {
			return err
		}
	}
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxIdleConns(16)
	if load {
		if err := loadProfile(ctx, db, cfg, o, out); err != nil {
			return err
		}
	}
	if o.workload > 0 || o.largeTx > 0 {
		return applyWorkload(ctx, db, o, out)
	}
	return nil
}

func parseFlags(args []string, out io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("catalog", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&o.profile, "profile", "small", "profile to load: "+strings.Join(catalog.ProfileNames(), ", "))
	fs.StringVar(&o.dsn, "dsn", "", "go-sql-driver DSN of a loopback server, with a database, e.g. 'root@tcp(127.0.0.1:3306)/shop' (required)")
	fs.Int64Var(&o.seed, "seed", 1, "generator and workload seed")
	fs.IntVar(&o.extra, "extra-store-views", 0, "store views to add on top of the profile's")
	fs.IntVar(&o.workers, "workers", 0, "parallel table writers (0 = profile default)")
	fs.IntVar(&o.batchRows, "batch-rows", 0, "rows per multi-row INSERT (0 = profile default)")
	fs.IntVar(&o.workload, "workload", 0, "apply N workload changes; without an explicit --profile the catalog must already be loaded")
	fs.Float64Var(&o.rate, "rate", 0, "workload changes per second (0 = as fast as possible)")
	fs.IntVar(&o.conns, "connections", 4, "workload connections applying changes at once (seeds seed, seed+1, ...)")
	fs.IntVar(&o.largeTx, "large-tx", 0, "after the workload, one transaction changing N prices")
	fs.BoolVar(&o.createDB, "create-db", true, "create the DSN's database if it does not exist")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	fs.Visit(func(f *flag.Flag) { o.explicitProfile = o.explicitProfile || f.Name == "profile" })
	return o, nil
}

// sourceConfig parses --dsn: a loopback server and a database are
// required; statements are interpolated, the charset is utf8mb4.
func sourceConfig(dsn string) (*mysql.Config, error) {
	if dsn == "" {
		return nil, errors.New("--dsn is required, e.g. --dsn 'root@tcp(127.0.0.1:3306)/shop'")
	}
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("--dsn: %w", err)
	}
	if err := requireLocal(cfg); err != nil {
		return nil, err
	}
	if cfg.DBName == "" {
		return nil, errors.New("--dsn names no database; add one, e.g. tcp(127.0.0.1:3306)/shop")
	}
	cfg.MultiStatements = false
	cfg.InterpolateParams = true
	if cfg.Params == nil {
		cfg.Params = map[string]string{}
	}
	if _, ok := cfg.Params["charset"]; !ok {
		cfg.Params["charset"] = "utf8mb4"
	}
	return cfg, nil
}

// loadProfile loads the catalog of --profile and prints its figures.
func loadProfile(ctx context.Context, db *sql.DB, cfg *mysql.Config, o options, out io.Writer) error {
	p, err := catalog.ProfileByName(o.profile)
	if err != nil {
		return err
	}
	p.ExtraStoreViews = o.extra
	if o.workers > 0 {
		p.Workers = o.workers
	}
	if o.batchRows > 0 {
		p.BatchRows = o.batchRows
	}
	fmt.Fprintf(out, "loading profile %s (%d products, %d store views) seed %d into %s/%s\n",
		p.Name, p.TotalProducts(), p.TotalStoreViews(), o.seed, cfg.Addr, cfg.DBName)
	st, err := catalog.Load(ctx, db, p, o.seed)
	if err != nil {
		return err
	}
	fmt.Fprint(out, st.String())
	fmt.Fprintf(out, "total %s, data %s, %.0f rows/s\n", st.Duration.Round(time.Millisecond),
		(st.Duration - st.SchemaDuration).Round(time.Millisecond), st.RowsPerSecond())
	return nil
}

// applyWorkload runs --workload changes, then the --large-tx transaction,
// and prints their figures.
func applyWorkload(ctx context.Context, db *sql.DB, o options, out io.Writer) error {
	db.SetMaxIdleConns(max(16, o.conns))
	w := catalog.NewParallelWorkload(db, o.seed, o.conns, catalog.WorkloadOptions{})
	if o.workload > 0 {
		fmt.Fprintf(out, "workload: %d changes at %s on %d connections\n", o.workload, rateString(o.rate), o.conns)
		st, err := w.Run(ctx, o.workload, o.rate)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "%.0f changes/s\n", float64(st.Transactions)/st.Duration.Seconds())
	}
	if o.largeTx > 0 {
		start := time.Now()
		if _, err := w.LargeTransaction(ctx, o.largeTx); err != nil {
			return err
		}
		fmt.Fprintf(out, "large transaction: %d prices in %s\n", o.largeTx, time.Since(start).Round(time.Millisecond))
	}
	st := w.Stats()
	fmt.Fprint(out, st.Report())
	if st.Duration > 0 {
		fmt.Fprintf(out, "%.0f transactions/s, %.0f rows/s\n", float64(st.Transactions)/st.Duration.Seconds(), float64(st.RowsAffected)/st.Duration.Seconds())
	}
	return nil
}

func rateString(r float64) string {
	if r <= 0 {
		return "full speed"
	}
	return fmt.Sprintf("%g/s", r)
}

// requireLocal refuses any server that is not on this machine.
func requireLocal(cfg *mysql.Config) error {
	switch cfg.Net {
	case "unix":
		return nil
	case "tcp", "tcp4", "tcp6":
	default:
		return fmt.Errorf("--dsn: protocol %q is not allowed; use tcp to a loopback address or unix", cfg.Net)
	}
	host, _, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		host = cfg.Addr
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("--dsn: host %q is not a loopback address; this command only writes to servers on this machine (127.0.0.1, ::1, localhost or a unix socket)", host)
	}
	return nil
}

func createDatabase(ctx context.Context, cfg *mysql.Config) error {
	c := cfg.Clone()
	name := c.DBName
	c.DBName = ""
	db, err := sql.Open("mysql", c.FormatDSN())
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "CREATE DATABASE IF NOT EXISTS `"+strings.ReplaceAll(name, "`", "``")+"` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci"); err != nil {
		return fmt.Errorf("create database %s: %w", name, err)
	}
	return nil
}

package main

import (
	"bytes"
	"context"
	"database/sql"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/feedcdc/feedcdc/test/mysqltest"
)

var srv *mysqltest.Server

func TestMain(m *testing.M) { os.Exit(mysqltest.Main(m, mysqltest.Options{}, &srv)) }

func TestLoadThenWorkload(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cfg, err := mysql.ParseDSN(srv.AdminDSN(""))
	if err != nil {
		t.Fatal(err)
	}
	cfg.DBName = "cmd_catalog_" + strings.ReplaceAll(time.Now().Format("150405.000"), ".", "")
	t.Cleanup(func() {
		db, err := sql.Open("mysql", srv.AdminDSN(""))
		if err == nil {
			_, _ = db.Exec("DROP DATABASE IF EXISTS " + cfg.DBName)
			db.Close()
		}
	})
	dsn := cfg.FormatDSN()
	var out bytes.Buffer
	if err := run(ctx, []string{"--profile", "tiny", "--dsn", dsn, "--seed", "4", "--extra-store-views", "1"}, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	t.Log(out.String())
	if !strings.Contains(out.String(), "rows/s") || !strings.Contains(out.String(), "catalog_product_entity ") {
		t.Fatalf("load output lacks rows/s or tables:\n%s", out.String())
	}
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var stores int
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM store WHERE store_id > 0").Scan(&stores); err != nil || stores != 4 {
		t.Fatalf("store views: %d, %v", stores, err)
	}
	out.Reset()
	if err := run(ctx, []string{"--dsn", dsn, "--workload", "30", "--large-tx", "20"}, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	t.Log(out.String())
	if !strings.Contains(out.String(), "31 transactions") || !strings.Contains(out.String(), "large_transaction") || !strings.Contains(out.String(), "on 4 connections") {
		t.Fatalf("workload output:\n%s", out.String())
	}
	// Loading the same database again is refused.
	if err := run(ctx, []string{"--profile", "tiny", "--dsn", dsn}, &out); err == nil {
		t.Fatal("second load succeeded")
	}
}

func TestRefusesRemoteAndBadFlags(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--dsn", "root@tcp(10.1.2.3:3306)/shop"}, "not a loopback"},
		{[]string{"--dsn", "root@tcp(db.example.com:3306)/shop"}, "not a loopback"},
		{[]string{"--dsn", "root@tcp(127.0.0.1:3306)/"}, "names no database"},
		{[]string{}, "--dsn is required"},
		{[]string{"--dsn", "root@tcp(127.0.0.1:1)/x", "--profile", "huge"}, "unknown profile"},
		{[]string{"--dsn", "root@tcp(127.0.0.1:1)/x", "--rate", "-1", "--workload", "1"}, "must not be negative"},
		{[]string{"--dsn", "root@tcp(127.0.0.1:1)/x", "--connections", "0", "--workload", "1"}, "--connections 0"},
	} {
		var out bytes.Buffer
		err := run(ctx, append(tc.args, "--create-db=false"), &out)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: got %v, want error containing %q", tc.args, err, tc.want)
		}
	}
	if err := requireLocal(&mysql.Config{Net: "tcp", Addr: "[::1]:3306"}); err != nil {
		t.Errorf("::1 refused: %v", err)
	}
	if err := requireLocal(&mysql.Config{Net: "unix", Addr: "/tmp/my.sock"}); err != nil {
		t.Errorf("unix socket refused: %v", err)
	}
}

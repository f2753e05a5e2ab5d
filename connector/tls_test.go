package connector

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/feedcdc/feedcdc/change"
	"github.com/feedcdc/feedcdc/config"
	"github.com/feedcdc/feedcdc/sink"
	"github.com/feedcdc/feedcdc/test/catalog"
	"github.com/feedcdc/feedcdc/test/kafkatest"
	"github.com/feedcdc/feedcdc/test/mysqltest"
)

// tlsSourceConfig is a connector configuration for server s with the given
// source.tls section, streaming the catalog feeds of db and the raw changes
// of db.tls_rows to kafkaAddr.
func tlsSourceConfig(t *testing.T, s *mysqltest.Server, db, kafkaAddr, tlsYAML string) *config.Config {
	t.Helper()
	c := connectorYAML{Name: "tls", Server: s, Database: db,
		Source:   append([]string{"connect_timeout: 5s", fmt.Sprintf("include_tables: [\"%s.tls_rows\"]", db), "tls:"}, yamlLines(tlsYAML)...),
		Sections: "raw:\n  enabled: true\n" + unthrottledResync + kafkaSink(kafkaAddr, "tls", "linger: 1ms") + "log: {level: warn}\n"}
	return c.load(t)
}

// TestSourceTLS starts a private mariadbd with a server certificate signed
// by a CA the test generates, makes the connector user REQUIRE SSL (so any
// plaintext connection, pool or binlog, is refused by the server), and runs
// the connector with source.tls verify-identity and verify-ca: the first
// start's full sync (pool) and the raw stream (binlog connection) both work
// and the pool's session reports a cipher. A CA that did not sign the
// server's certificate, and a server_name the certificate does not hold
// (verify-identity), fail with an error naming the certificate problem.
func TestSourceTLS(t *testing.T) {
	ctx := context.Background()
	certs, err := kafkatest.NewCerts(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s, err := mysqltest.Start(ctx, mysqltest.Options{Args: []string{
		"--ssl-ca=" + certs.CAFile, "--ssl-cert=" + certs.ServerCertFile, "--ssl-key=" + certs.ServerKeyFile}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop() })
	var haveSSL string
	if err := s.Admin(t, "").QueryRow("SELECT @@have_ssl").Scan(&haveSSL); err != nil || haveSSL != "YES" {
		t.Fatalf("have_ssl %q (%v); server log:\n%s", haveSSL, err, s.ErrorLogTail(20))
	}
	db := s.NewDatabase(t, "tls")
	admin := s.Admin(t, db)
	if err := catalog.CreateSchema(ctx, admin); err != nil {
		t.Fatal(err)
	}
	if _, err := catalog.Load(ctx, admin, catalog.Tiny(), 5); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec("CREATE TABLE tls_rows (id INT PRIMARY KEY, v VARCHAR(20))"); err != nil {
		t.Fatal(err)
	}
	for _, host := range []string{"127.0.0.1", "localhost", "%"} {
		if _, err := admin.Exec(fmt.Sprintf("ALTER USER '%s'@'%s' REQUIRE SSL", s.CDCUser, host)); err != nil {
			t.Fatal(err)
		}
	}
	// The server enforces it: a plaintext connection of the connector user
	// is refused, so everything below that works went over TLS.
	plain, err := sql.Open("mysql", s.CDCDSN(db))
	if err != nil {
		t.Fatal(err)
	}
	var me *mysql.MySQLError
	if err := plain.Ping(); !errors.As(err, &me) || me.Number != 1045 {
		t.Fatalf("plaintext connection of a REQUIRE SSL user: %v, want access denied (1045)", err)
	}
	plain.Close()

	for i, mode := range []string{"verify-identity", "verify-ca", "verify-ca with another server_name"} {
		t.Run(mode, func(t *testing.T) {
			kafka := kafkatest.Start(t)
			tlsYAML := fmt.Sprintf("    mode: %s\n    ca_file: %s", mode, certs.CAFile)
			if strings.HasPrefix(mode, "verify-ca with") {
				// verify-ca checks the chain, not the name: both the pool and
				// the binlog connection accept a certificate for another host.
				tlsYAML = fmt.Sprintf("    mode: verify-ca\n    ca_file: %s\n    server_name: db.example.com", certs.CAFile)
			}
			cfg := tlsSourceConfig(t, s, db, kafka.Addr(), tlsYAML)
			c, err := Open(ctx, cfg, OpenOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			var name, cipher string
			if err := c.SourceDB.QueryRowContext(ctx, "SHOW SESSION STATUS LIKE 'Ssl_cipher'").Scan(&name, &cipher); err != nil {
				t.Fatal(err)
			}
			if cipher == "" {
				t.Fatal("the pool's connection is not encrypted (Ssl_cipher empty)")
			}
			runCtx, cancel := context.WithCancel(ctx)
			runErr := make(chan error, 1)
			started := make(chan struct{})
			go func() {
				runErr <- c.Run(runCtx, RunOptions{NoSchedule: true, OnStart: func(change.Position, bool) { close(started) }})
			}()
			defer func() {
				cancel()
				if err := <-runErr; err != nil {
					t.Errorf("run: %v", err)
				}
			}()
			// The first start captures the position before OnStart: rows
			// written from now on are streamed.
			select {
			case <-started:
			case err := <-runErr:
				t.Fatalf("run: %v", err)
			}
			// The binlog connection: rows written now reach the raw topic.
			const rows = 50
			for r := 0; r < rows; r++ {
				if _, err := admin.Exec("REPLACE INTO tls_rows (id, v) VALUES (?, ?)", i*rows+r, mode[:min(len(mode), 15)]); err != nil {
					t.Fatal(err)
				}
			}
			waitCaughtUp(t, c, admin, runErr)
			for _, f := range cfg.EnabledFeeds() {
				for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
					pr, ok, _ := c.Store.Progress(ctx, f)
					if ok && pr.Finished() {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("full sync of %s not finished", f)
					}
				}
			}
			if err := c.Pipeline.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			recs, err := kafka.ReadAll(ctx, "tls."+db+".tls_rows")
			if err != nil || len(recs) != rows {
				t.Fatalf("raw topic: %d records (%v), want %d", len(recs), err, rows)
			}
			feed, _ := c.Registry.Feed("products")
			want := freshBuild(t, feed)
			got, err := kafka.ReadAll(ctx, "tls.products")
			if err != nil || len(want) == 0 || len(got) != len(want) {
				t.Fatalf("products topic: %d records (%v), want %d", len(got), err, len(want))
			}
			t.Logf("%s: pool cipher %s; %d raw records streamed, %d products synced over TLS", mode, cipher, len(recs), len(got))
		})
	}

	// Certificates that must be refused, with the reason in the error.
	other, err := kafkatest.NewCerts(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, tls, want string
	}{
		{"wrong CA verify-identity", "    mode: verify-identity\n    ca_file: " + other.CAFile, "certificate signed by unknown authority"},
		{"wrong CA verify-ca", "    mode: verify-ca\n    ca_file: " + other.CAFile, "certificate signed by unknown authority"},
		{"wrong name verify-identity", "    mode: verify-identity\n    ca_file: " + certs.CAFile + "\n    server_name: db.example.com", "db.example.com"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kafka := kafkatest.Start(t, kafkatest.InMemory())
			cfg := tlsSourceConfig(t, s, db, kafka.Addr(), tc.tls)
			c, err := Open(ctx, cfg, OpenOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if err := c.SourceDB.PingContext(ctx); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("pool: %v, want an error containing %q", err, tc.want)
			}
			rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			err = c.Run(rctx, RunOptions{NoSchedule: true})
			if err == nil || rctx.Err() != nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("run: %v, want an error containing %q", err, tc.want)
			}
			t.Logf("refused: %v", err)
		})
	}
}

// TestKafkaSinkTLSAndSCRAMFromConfig runs the connector with a kafka sink
// configured in config.yaml with tls.enabled, ca_file and SASL
// SCRAM-SHA-512 against a kfake broker that only speaks TLS and requires
// SCRAM: raw changes are delivered; a wrong SASL password fails the start
// with an authentication error.
func TestKafkaSinkTLSAndSCRAMFromConfig(t *testing.T) {
	ctx := context.Background()
	certs, err := kafkatest.NewCerts(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	kafka := kafkatest.Start(t, kafkatest.InMemory(), kafkatest.WithTLS(certs.ServerTLS(false), certs.ClientTLS()),
		kafkatest.WithSASL(kafkatest.SASLScramSHA512, "feeder", "s3cret-pass"))
	db := srv.NewDatabase(t, "ksec")
	admin := srv.Admin(t, db)
	if _, err := admin.Exec("CREATE TABLE sec_rows (id INT PRIMARY KEY, v INT)"); err != nil {
		t.Fatal(err)
	}
	var start string
	if err := admin.QueryRow("SELECT @@gtid_binlog_pos").Scan(&start); err != nil {
		t.Fatal(err)
	}
	mkConfig := func(password string) *config.Config {
		cc := connectorYAML{Name: "ksec", Database: db, Feeds: noFeeds,
			Source: []string{fmt.Sprintf("start_position: \"gtid:%s\"", start), fmt.Sprintf("include_tables: [\"%s.sec_rows\"]", db)},
			Sections: "raw:\n  enabled: true\n" + kafkaSink(kafka.Addr(), "ksec", "linger: 1ms", "write_timeout: 5s", "create_topics: true",
				"tls:", "  enabled: true", "  ca_file: "+certs.CAFile, "sasl:", "  mechanism: SCRAM-SHA-512", "  user: feeder", "  password_env: KSEC_KAFKA_PASSWORD") +
				"log: {level: warn}\n"}
		cfg := cc.load(t, "KSEC_KAFKA_PASSWORD="+password)
		return cfg
	}

	cfg := mkConfig("s3cret-pass")
	c, err := Open(ctx, cfg, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	runCtx, cancel := context.WithCancel(ctx)
	runErr := make(chan error, 1)
	started := make(chan struct{})
	go func() {
		runErr <- c.Run(runCtx, RunOptions{NoSchedule: true, OnStart: func(change.Position, bool) { close(started) }})
	}()
	select {
	case <-started:
	case err := <-runErr:
		t.Fatalf("run: %v", err)
	}
	const rows = 100
	for r := 0; r < rows; r++ {
		if _, err := admin.Exec("INSERT INTO sec_rows VALUES (?, ?)", r, r); err != nil {
			t.Fatal(err)
		}
	}
	waitCaughtUp(t, c, admin, runErr)
	cancel()
	if err := <-runErr; err != nil {
		t.Fatalf("run: %v", err)
	}
	recs, err := kafka.ReadAll(ctx, "ksec."+db+".sec_rows")
	if err != nil || len(recs) != rows {
		t.Fatalf("read back over TLS+SCRAM: %d records (%v), want %d", len(recs), err, rows)
	}

	// A wrong password: the broker refuses the connection; Ping (what
	// feedcdc check and /readyz use) reports it.
	bad := mkConfig("wrong-pass")
	c2, err := Open(ctx, bad, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	perr := c2.Sinks["kafka"].(sink.Pinger).Ping(ctx)
	if perr == nil {
		t.Fatal("ping with a wrong SASL password succeeded")
	}
	t.Logf("wrong password refused: %v", perr)
}

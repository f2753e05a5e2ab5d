package connector

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/go-sql-driver/mysql"

	"github.com/feedcdc/feedcdc/config"
	"github.com/feedcdc/feedcdc/sink"
	"github.com/feedcdc/feedcdc/sink/kafkasink"
)

// sourceTLSConfig builds the client TLS configuration for the source with MySQL
// ssl-mode semantics. It returns nil for mode disabled. For preferred and
// required the server certificate is not verified (as in MySQL); verify-ca
// verifies the chain against ca_file (or system roots) but not the host
// name; verify-identity verifies both (server_name, else source.host).
// Whether preferred may fall back to plaintext is up to the caller
// (MySQLConfig sets AllowFallbackToPlaintext).
func sourceTLSConfig(s *config.Source) (*tls.Config, error) {
	t := &s.TLS
	if t.Mode == "disabled" || t.Mode == "" {
		return nil, nil
	}
	name := t.ServerName
	if name == "" {
		name = s.Host
	}
	c, err := sink.TLSFiles{CAFile: t.CAFile, CertFile: t.CertFile, KeyFile: t.KeyFile, ServerName: name}.Build()
	if err != nil {
		return nil, fmt.Errorf("source.%w", err)
	}
	roots := c.RootCAs
	switch t.Mode {
	case "preferred", "required":
		c.InsecureSkipVerify = true
	case "verify-ca":
		c.InsecureSkipVerify = true // the chain is verified below, the name is not
		c.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("source.tls verify-ca: the server sent no certificate")
			}
			opts := x509.VerifyOptions{Roots: roots, Intermediates: x509.NewCertPool()}
			for _, ic := range cs.PeerCertificates[1:] {
				opts.Intermediates.AddCert(ic)
			}
			if _, err := cs.PeerCertificates[0].Verify(opts); err != nil {
				return fmt.Errorf("source.tls verify-ca: %w", err)
			}
			return nil
		}
	case "verify-identity":
	default:
		return nil, fmt.Errorf("source.tls.mode %q is not one of disabled, preferred, required, verify-ca, verify-identity", t.Mode)
	}
	return c, nil
}

// sourceSessionParams are the session variables every pooled source
// connection gets when it connects (go-sql-driver sends them as SET right
// after the handshake, so they override the server's globals and
// init_connect): autocommit=1, because every read of feedcdc is one
// statement (or an explicit transaction) and must hold no lock or read view
// after it, whatever the server's autocommit default; a 1 s row-lock wait
// (innodb_lock_wait_timeout), which only the visibility fence's shared-lock
// read can meet — the fence keeps trying within
// feeds.visibility_fence_timeout; and a 60 s metadata-lock wait
// (lock_wait_timeout), so that a query queued behind DDL fails with an error
// instead of hanging for the server's default of a year.
func sourceSessionParams() map[string]string {
	return map[string]string{
		"autocommit":               "1",
		"innodb_lock_wait_timeout": "1",
		"lock_wait_timeout":        "60",
	}
}

// MySQLConfig returns a go-sql-driver configuration for connecting to the
// source of cfg (feed builders, resync scans, check) with database db (may be "").
// Dial timeout is source.connect_timeout; TLS follows source.tls; session
// variables are sourceSessionParams. Arguments are interpolated into the
// statement text by the driver (escaped for the session's character set and
// sql_mode), so a query with arguments is one round trip and one text
// statement on the server instead of a prepare, an execute and a close: the
// fan-out lookups made on the binlog reader's path (a product delete's sku
// siblings, a website's products) wait half as long, and DBAs see them in
// the statement digests like every other query.
func MySQLConfig(cfg *config.Config, db string) (*mysql.Config, error) {
	s := &cfg.Source
	m := mysql.NewConfig()
	m.User = s.User
	m.Passwd = s.Password.Value()
	m.Net = "tcp"
	m.Addr = s.Addr()
	m.DBName = db
	m.Timeout = s.ConnectTimeout.D()
	t, err := sourceTLSConfig(s)
	if err != nil {
		return nil, err
	}
	m.TLS = t
	m.AllowFallbackToPlaintext = s.TLS.Mode == "preferred"
	m.Params = sourceSessionParams()
	m.InterpolateParams = true
	return m, nil
}

// kafkaTLS is the Kafka sink's tls section as kafkasink builds it (only
// when enabled; an empty server_name leaves each broker's host name).
func kafkaTLS(t config.KafkaTLS) kafkasink.TLSConfig {
	return kafkasink.TLSConfig{Enabled: t.Enabled, TLSFiles: sink.TLSFiles{CAFile: t.CAFile, CertFile: t.CertFile,
		KeyFile: t.KeyFile, ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify}}
}

// httpTLS is the HTTP sink's tls section as httpsink builds it for an https
// base_url.
func httpTLS(t config.HTTPTLS) sink.TLSFiles {
	return sink.TLSFiles{CAFile: t.CAFile, CertFile: t.CertFile, KeyFile: t.KeyFile, InsecureSkipVerify: t.InsecureSkipVerify}
}

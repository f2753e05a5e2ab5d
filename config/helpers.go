package config

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/go-sql-driver/mysql"
)

// Addr is host:port of the source.
func (s *Source) Addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// TLSConfig builds the client TLS configuration for the source with MySQL
// ssl-mode semantics. It returns nil for mode disabled. For preferred and
// required the server certificate is not verified (as in MySQL); verify-ca
// verifies the chain against ca_file (or system roots) but not the host
// name; verify-identity verifies both (server_name, else source.host).
// Whether preferred may fall back to plaintext is up to the caller
// (MySQLConfig sets AllowFallbackToPlaintext).
func (s *Source) TLSConfig() (*tls.Config, error) {
	t := &s.TLS
	if t.Mode == "disabled" || t.Mode == "" {
		return nil, nil
	}
	roots, certs, err := loadTLSFiles("source.tls", t.CAFile, t.CertFile, t.KeyFile)
	if err != nil {
		return nil, err
	}
	name := t.ServerName
	if name == "" {
		name = s.Host
	}
	c := &tls.Config{ServerName: name, Certificates: certs, RootCAs: roots, MinVersion: tls.VersionTLS12}
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

// SourceSessionParams are the session variables every pooled source
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
func SourceSessionParams() map[string]string {
	return map[string]string{
		"autocommit":               "1",
		"innodb_lock_wait_timeout": "1",
		"lock_wait_timeout":        "60",
	}
}

// MySQLConfig returns a go-sql-driver configuration for connecting to the
// source (feed builders, resync scans, check) with database db (may be "").
// Dial timeout is source.connect_timeout; TLS follows source.tls; session
// variables are SourceSessionParams.
func (c *Config) MySQLConfig(db string) (*mysql.Config, error) {
	s := &c.Source
	m := mysql.NewConfig()
	m.User = s.User
	m.Passwd = s.Password.Value()
	m.Net = "tcp"
	m.Addr = s.Addr()
	m.DBName = db
	m.Timeout = s.ConnectTimeout.D()
	t, err := s.TLSConfig()
	if err != nil {
		return nil, err
	}
	m.TLS = t
	m.AllowFallbackToPlaintext = s.TLS.Mode == "preferred"
	m.Params = SourceSessionParams()
	return m, nil
}

// TLSConfig builds the TLS configuration for Kafka brokers; nil when
// tls.enabled is false. An empty server_name leaves ServerName empty so that
// the client uses each broker's host name.
func (k *KafkaSink) TLSConfig(path string) (*tls.Config, error) {
	t := &k.TLS
	if !t.Enabled {
		return nil, nil
	}
	roots, certs, err := loadTLSFiles(path+".tls", t.CAFile, t.CertFile, t.KeyFile)
	if err != nil {
		return nil, err
	}
	return &tls.Config{RootCAs: roots, Certificates: certs, ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify, MinVersion: tls.VersionTLS12}, nil
}

// TLSConfig builds the TLS configuration for an https base_url; nil when
// no TLS option is set (Go's defaults apply).
func (h *HTTPSink) TLSConfig(path string) (*tls.Config, error) {
	t := &h.TLS
	if t.CAFile == "" && t.CertFile == "" && !t.InsecureSkipVerify {
		return nil, nil
	}
	roots, certs, err := loadTLSFiles(path+".tls", t.CAFile, t.CertFile, t.KeyFile)
	if err != nil {
		return nil, err
	}
	return &tls.Config{RootCAs: roots, Certificates: certs, InsecureSkipVerify: t.InsecureSkipVerify, MinVersion: tls.VersionTLS12}, nil
}

func loadTLSFiles(path, ca, cert, key string) (*x509.CertPool, []tls.Certificate, error) {
	var roots *x509.CertPool
	if ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return nil, nil, fmt.Errorf("%s.ca_file: %w", path, err)
		}
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return nil, nil, fmt.Errorf("%s.ca_file: %s holds no PEM certificate", path, ca)
		}
	}
	var certs []tls.Certificate
	if cert != "" || key != "" {
		c, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return nil, nil, fmt.Errorf("%s.cert_file/key_file: %w", path, err)
		}
		certs = []tls.Certificate{c}
	}
	return roots, certs, nil
}

// ExpandTemplate replaces {placeholder}s in a topic template with vars
// (keys without braces); unknown placeholders are left as they are.
func ExpandTemplate(tmpl string, vars map[string]string) string {
	return placeholderRE.ReplaceAllStringFunc(tmpl, func(ph string) string {
		if v, ok := vars[strings.Trim(ph, "{}")]; ok {
			return v
		}
		return ph
	})
}

// FeedTopic is the topic (Kafka) or file stem (file sink) of an entity feed
// on the named sink: the Kafka sink's topic_template, or the feed name for
// file sinks.
func (c *Config) FeedTopic(sink, feed string) string {
	s := c.Sinks[sink]
	if s == nil || s.Kafka == nil {
		return feed
	}
	return ExpandTemplate(s.Kafka.TopicTemplate, map[string]string{"prefix": s.Kafka.TopicPrefix, "feed": feed, "name": c.Name})
}

// RawTopic is the topic (Kafka) or file stem (file sink) of a table's raw
// stream on the named sink, from raw.topic_template. {prefix} is the Kafka
// sink's topic_prefix, or the connector name for file sinks.
func (c *Config) RawTopic(sink, db, table string) string {
	prefix := c.Name
	if s := c.Sinks[sink]; s != nil && s.Kafka != nil {
		prefix = s.Kafka.TopicPrefix
	}
	return ExpandTemplate(c.Raw.TopicTemplate, map[string]string{"prefix": prefix, "db": db, "table": table, "name": c.Name})
}

// Route is the URL path segment of a feed: routes[feed], else the feed name.
func (h *HTTPSink) Route(feed string) string {
	if r, ok := h.Routes[feed]; ok && r != "" {
		return r
	}
	return feed
}

// URL is where a feed's batches are POSTed: {base_url}/{route}[/{data_space}].
func (h *HTTPSink) URL(feed string) string {
	u := strings.TrimRight(h.BaseURL, "/") + "/" + strings.Trim(h.Route(feed), "/")
	if h.DataSpace != "" {
		u += "/" + h.DataSpace
	}
	return u
}

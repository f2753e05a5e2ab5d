package connector

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/feedcdc/feedcdc/change"
	"github.com/feedcdc/feedcdc/config"
	"github.com/feedcdc/feedcdc/connector/raw"
	"github.com/feedcdc/feedcdc/sink"
	"github.com/feedcdc/feedcdc/sink/filesink"
	"github.com/feedcdc/feedcdc/sink/httpsink"
	"github.com/feedcdc/feedcdc/sink/kafkasink"
)

type testPKI struct {
	caFile, otherCAFile     string
	serverCert              tls.Certificate
	clientCert, clientKey   string
	caPool                  *x509.CertPool
	serverName, wrongServer string
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func newCA(t *testing.T, cn string) (*x509.Certificate, *ecdsa.PrivateKey, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return cert, key, der
}

func leaf(t *testing.T, ca *x509.Certificate, caKey *ecdsa.PrivateKey, serial int64, usage x509.ExtKeyUsage, dns []string) ([]byte, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "leaf"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		DNSNames: dns, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return der, key
}

func makePKI(t *testing.T) *testPKI {
	dir := t.TempDir()
	ca, caKey, caDER := newCA(t, "feedcdc test CA")
	_, _, otherDER := newCA(t, "other CA")
	p := &testPKI{caFile: filepath.Join(dir, "ca.pem"), otherCAFile: filepath.Join(dir, "other.pem"),
		clientCert: filepath.Join(dir, "client.pem"), clientKey: filepath.Join(dir, "client.key"),
		serverName: "db.feedcdc.test", wrongServer: "evil.example"}
	writePEM(t, p.caFile, "CERTIFICATE", caDER)
	writePEM(t, p.otherCAFile, "CERTIFICATE", otherDER)
	p.caPool = x509.NewCertPool()
	p.caPool.AddCert(ca)
	sDER, sKey := leaf(t, ca, caKey, 2, x509.ExtKeyUsageServerAuth, []string{p.serverName})
	p.serverCert = tls.Certificate{Certificate: [][]byte{sDER}, PrivateKey: sKey}
	cDER, cKey := leaf(t, ca, caKey, 3, x509.ExtKeyUsageClientAuth, nil)
	writePEM(t, p.clientCert, "CERTIFICATE", cDER)
	kb, err := x509.MarshalECPrivateKey(cKey)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, p.clientKey, "EC PRIVATE KEY", kb)
	return p
}

// serveTLS runs a real TLS listener on loopback that writes "ok" after a
// successful handshake; requireClient makes it demand a client certificate
// signed by the test CA.
func serveTLS(t *testing.T, p *testPKI, requireClient bool) string {
	t.Helper()
	cfg := &tls.Config{Certificates: []tls.Certificate{p.serverCert}}
	if requireClient {
		cfg.ClientAuth, cfg.ClientCAs = tls.RequireAndVerifyClientCert, p.caPool
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				if c.(*tls.Conn).Handshake() == nil {
					c.Write([]byte("ok"))
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func dialTLS(addr string, c *tls.Config) error {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, c)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 2)
	_, err = io.ReadFull(conn, buf)
	return err
}

// TestSourceTLSModes: each ssl-mode verifies what MySQL's does, proven by
// handshakes with a real TLS listener and generated certificates.
func TestSourceTLSModes(t *testing.T) {
	p := makePKI(t)
	addr := serveTLS(t, p, false)
	mtlsAddr := serveTLS(t, p, true)
	cases := []struct {
		name   string
		tls    config.SourceTLS
		addr   string
		wantOK bool
	}{
		{"required skips verification", config.SourceTLS{Mode: "required"}, addr, true},
		{"verify-ca with the CA", config.SourceTLS{Mode: "verify-ca", CAFile: p.caFile, ServerName: p.wrongServer}, addr, true},
		{"verify-ca with another CA", config.SourceTLS{Mode: "verify-ca", CAFile: p.otherCAFile}, addr, false},
		{"verify-identity right name", config.SourceTLS{Mode: "verify-identity", CAFile: p.caFile, ServerName: p.serverName}, addr, true},
		{"verify-identity wrong name", config.SourceTLS{Mode: "verify-identity", CAFile: p.caFile, ServerName: p.wrongServer}, addr, false},
		{"verify-identity system roots", config.SourceTLS{Mode: "verify-identity", ServerName: p.serverName}, addr, false},
		{"client certificate", config.SourceTLS{Mode: "verify-identity", CAFile: p.caFile, ServerName: p.serverName, CertFile: p.clientCert, KeyFile: p.clientKey}, mtlsAddr, true},
		{"missing client certificate", config.SourceTLS{Mode: "verify-identity", CAFile: p.caFile, ServerName: p.serverName}, mtlsAddr, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := config.Source{Host: "127.0.0.1", TLS: tc.tls}
			c, err := sourceTLSConfig(&s)
			if err != nil {
				t.Fatal(err)
			}
			err = dialTLS(tc.addr, c)
			if (err == nil) != tc.wantOK {
				t.Fatalf("handshake error = %v, want ok=%v", err, tc.wantOK)
			}
		})
	}
	if c, err := sourceTLSConfig(&config.Source{TLS: config.SourceTLS{Mode: "disabled"}}); c != nil || err != nil {
		t.Fatalf("disabled: %v %v", c, err)
	}
	if _, err := sourceTLSConfig(&config.Source{TLS: config.SourceTLS{Mode: "verify-ca", CAFile: p.clientKey}}); err == nil {
		t.Fatal("a key file as CA was accepted")
	}
}

// TestKafkaAndHTTPTLS: the sinks' tls sections, as openSink hands them to
// kafkasink and httpsink, make real mutual-TLS handshakes.
func TestKafkaAndHTTPTLS(t *testing.T) {
	p := makePKI(t)
	mtlsAddr := serveTLS(t, p, true)
	k := config.DefaultKafkaSink()
	k.TLS = config.KafkaTLS{Enabled: true, CAFile: p.caFile, CertFile: p.clientCert, KeyFile: p.clientKey, ServerName: p.serverName}
	c, err := kafkaTLS(k.TLS).Build()
	if err != nil || dialTLS(mtlsAddr, c) != nil {
		t.Fatalf("kafka mTLS: %v", err)
	}
	k.TLS.ServerName = p.wrongServer
	c, _ = kafkaTLS(k.TLS).Build()
	if dialTLS(mtlsAddr, c) == nil {
		t.Fatal("kafka TLS accepted a wrong server name")
	}
	k.TLS.Enabled = false
	if kafkaTLS(k.TLS).Enabled {
		t.Fatal("disabled kafka TLS is enabled for the sink")
	}
	h := config.DefaultHTTPSink()
	h.TLS = config.HTTPTLS{CAFile: p.caFile, CertFile: p.clientCert, KeyFile: p.clientKey}
	c, err = httpTLS(h.TLS).Build()
	if err != nil {
		t.Fatal(err)
	}
	c.ServerName = p.serverName
	if err := dialTLS(mtlsAddr, c); err != nil {
		t.Fatalf("http mTLS: %v", err)
	}
	h.TLS.CertFile = "/nonexistent.pem"
	if _, err := httpTLS(h.TLS).Build(); err == nil {
		t.Fatal("missing cert accepted")
	}
}

func TestMySQLConfig(t *testing.T) {
	cfg, err := config.LoadBytes([]byte("source: {host: db.internal, port: 3307, user: cdc, tls: {mode: preferred}}\n"), "config.yaml", []string{"FEEDCDC_SOURCE_PASSWORD=pw"})
	if err != nil {
		t.Fatal(err)
	}
	m, err := MySQLConfig(cfg, "magento")
	if err != nil {
		t.Fatal(err)
	}
	if m.User != "cdc" || m.Passwd != "pw" || m.Addr != "db.internal:3307" || m.DBName != "magento" || m.TLS == nil || !m.AllowFallbackToPlaintext || m.Timeout != 10*time.Second {
		t.Fatalf("%+v", m)
	}
	cfg.Source.TLS.Mode = "disabled"
	m, _ = MySQLConfig(cfg, "")
	if m.TLS != nil || m.AllowFallbackToPlaintext {
		t.Fatalf("disabled: %+v", m)
	}
}

// TestTopicsAndURLs: the topics, file names and URLs the sinks opened from
// a configuration use for entity feeds and raw streams.
func TestTopicsAndURLs(t *testing.T) {
	y := `source: {host: db, user: cdc}
name: shop1
raw: {enabled: true}
sinks:
  k:
    kafka: {brokers: ["127.0.0.1:9092"], topic_prefix: cat}
  f:
    file: {dir: ` + t.TempDir() + `}
  svc:
    http: {base_url: "https://feeds.example.com/api/", data_space: ds-1, routes: {products: catalog/products}}
`
	cfg, err := config.LoadBytes([]byte(y), "config.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &Connector{Config: cfg, Logger: slog.New(slog.DiscardHandler)}
	open := func(name string) sink.Sink {
		s, err := c.openSink(name, cfg.Sinks[name])
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	k, f, svc := open("k").(*kafkasink.Sink), open("f").(*filesink.Sink), open("svc").(*httpsink.Sink)
	kafkaTopic := func(r *sink.Record) string { topic, _ := k.TopicFor(r); return topic }
	rawTopic := (&raw.Encoder{Prefix: "{prefix}", TopicTemplate: cfg.Raw.TopicTemplate}).Topic(&change.Table{DB: "magento", Name: "store"})
	checks := [][2]string{
		{kafkaTopic(&sink.Record{Feed: "products"}), "cat.products"},
		{f.StreamName(&sink.Record{Feed: "variants"}), "variants"},
		{kafkaTopic(&sink.Record{Topic: rawTopic}), "cat.magento.store"},
		{f.StreamName(&sink.Record{Topic: rawTopic}), "shop1.magento.store"},
		{svc.URL("products"), "https://feeds.example.com/api/catalog/products/ds-1"},
		{svc.URL("variants"), "https://feeds.example.com/api/variants/ds-1"},
		{kafkaTopic(&sink.Record{Topic: "{prefix}-{b}"}), "cat-{b}"}, // unknown placeholders stay
	}
	for _, c := range checks {
		if c[0] != c[1] {
			t.Errorf("got %q, want %q", c[0], c[1])
		}
	}
	if got := cfg.RawSinks(); len(got) != 2 || got[0] != "f" || got[1] != "k" {
		t.Errorf("RawSinks = %v", got)
	}
}

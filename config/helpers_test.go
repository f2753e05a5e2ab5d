package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
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
		tls    SourceTLS
		addr   string
		wantOK bool
	}{
		{"required skips verification", SourceTLS{Mode: "required"}, addr, true},
		{"verify-ca with the CA", SourceTLS{Mode: "verify-ca", CAFile: p.caFile, ServerName: p.wrongServer}, addr, true},
		{"verify-ca with another CA", SourceTLS{Mode: "verify-ca", CAFile: p.otherCAFile}, addr, false},
		{"verify-identity right name", SourceTLS{Mode: "verify-identity", CAFile: p.caFile, ServerName: p.serverName}, addr, true},
		{"verify-identity wrong name", SourceTLS{Mode: "verify-identity", CAFile: p.caFile, ServerName: p.wrongServer}, addr, false},
		{"verify-identity system roots", SourceTLS{Mode: "verify-identity", ServerName: p.serverName}, addr, false},
		{"client certificate", SourceTLS{Mode: "verify-identity", CAFile: p.caFile, ServerName: p.serverName, CertFile: p.clientCert, KeyFile: p.clientKey}, mtlsAddr, true},
		{"missing client certificate", SourceTLS{Mode: "verify-identity", CAFile: p.caFile, ServerName: p.serverName}, mtlsAddr, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := Source{Host: "127.0.0.1", TLS: tc.tls}
			c, err := s.TLSConfig()
			if err != nil {
				t.Fatal(err)
			}
			err = dialTLS(tc.addr, c)
			if (err == nil) != tc.wantOK {
				t.Fatalf("handshake error = %v, want ok=%v", err, tc.wantOK)
			}
		})
	}
	if c, err := (&Source{TLS: SourceTLS{Mode: "disabled"}}).TLSConfig(); c != nil || err != nil {
		t.Fatalf("disabled: %v %v", c, err)
	}
	if _, err := (&Source{TLS: SourceTLS{Mode: "verify-ca", CAFile: p.clientKey}}).TLSConfig(); err == nil {
		t.Fatal("a key file as CA was accepted")
	}
}

func TestKafkaAndHTTPTLS(t *testing.T) {
	p := makePKI(t)
	mtlsAddr := serveTLS(t, p, true)
	k := DefaultKafkaSink()
	k.TLS = KafkaTLS{Enabled: true, CAFile: p.caFile, CertFile: p.clientCert, KeyFile: p.clientKey, ServerName: p.serverName}
	c, err := k.TLSConfig("sinks.main.kafka")
	if err != nil || dialTLS(mtlsAddr, c) != nil {
		t.Fatalf("kafka mTLS: %v", err)
	}
	k.TLS.ServerName = p.wrongServer
	c, _ = k.TLSConfig("sinks.main.kafka")
	if dialTLS(mtlsAddr, c) == nil {
		t.Fatal("kafka TLS accepted a wrong server name")
	}
	k.TLS.Enabled = false
	if c, _ := k.TLSConfig("x"); c != nil {
		t.Fatal("disabled kafka TLS returned a config")
	}
	h := DefaultHTTPSink()
	h.TLS = HTTPTLS{CAFile: p.caFile, CertFile: p.clientCert, KeyFile: p.clientKey}
	c, err = h.TLSConfig("sinks.svc.http")
	if err != nil {
		t.Fatal(err)
	}
	c.ServerName = p.serverName
	if err := dialTLS(mtlsAddr, c); err != nil {
		t.Fatalf("http mTLS: %v", err)
	}
	h.TLS.CertFile = "/nonexistent.pem"
	if _, err := h.TLSConfig("sinks.svc.http"); err == nil {
		t.Fatal("missing cert accepted")
	}
}

func TestMySQLConfig(t *testing.T) {
	cfg := mustLoad(t, "source: {host: db.internal, port: 3307, user: cdc, tls: {mode: preferred}}\n", "FEEDCDC_SOURCE_PASSWORD=pw")
	m, err := cfg.MySQLConfig("magento")
	if err != nil {
		t.Fatal(err)
	}
	if m.User != "cdc" || m.Passwd != "pw" || m.Addr != "db.internal:3307" || m.DBName != "magento" || m.TLS == nil || !m.AllowFallbackToPlaintext || m.Timeout != 10*time.Second {
		t.Fatalf("%+v", m)
	}
	cfg.Source.TLS.Mode = "disabled"
	m, _ = cfg.MySQLConfig("")
	if m.TLS != nil || m.AllowFallbackToPlaintext {
		t.Fatalf("disabled: %+v", m)
	}
}

func TestTopicsAndURLs(t *testing.T) {
	y := `source: {host: db, user: cdc}
name: shop1
raw: {enabled: true}
sinks:
  k:
    kafka: {brokers: [k:9092], topic_prefix: cat}
  f:
    file: {dir: out}
  svc:
    http: {base_url: "https://feeds.example.com/api/", data_space: ds-1, routes: {products: catalog/products}}
`
	cfg := mustLoad(t, y)
	checks := [][2]string{
		{cfg.FeedTopic("k", "products"), "cat.products"},
		{cfg.FeedTopic("f", "variants"), "variants"},
		{cfg.RawTopic("k", "magento", "store"), "cat.magento.store"},
		{cfg.RawTopic("f", "magento", "store"), "shop1.magento.store"},
		{cfg.Sinks["svc"].HTTP.URL("products"), "https://feeds.example.com/api/catalog/products/ds-1"},
		{cfg.Sinks["svc"].HTTP.URL("variants"), "https://feeds.example.com/api/variants/ds-1"},
		{ExpandTemplate("{a}-{b}", map[string]string{"a": "x"}), "x-{b}"},
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

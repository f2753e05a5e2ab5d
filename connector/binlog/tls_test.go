package binlog

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/feedcdc/feedcdc/test/mysqltest"
)

// writeCA creates a CA and a server certificate for 127.0.0.1 in dir.
func writeCA(t *testing.T, dir, name string) (caFile, certFile, keyFile string) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name + " CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature, BasicConstraintsValid: true}
	caDER, err := x509.CreateCertificate(rand.Reader, caTpl, caTpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	write := func(file, typ string, b []byte) string {
		p := filepath.Join(dir, file)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	return write(name+"-ca.pem", "CERTIFICATE", caDER), write(name+"-cert.pem", "CERTIFICATE", der), write(name+"-key.pem", "EC PRIVATE KEY", keyDER)
}

func TestLiveTLS(t *testing.T) {
	dir := t.TempDir()
	ca, cert, key := writeCA(t, dir, "server")
	otherCA, _, _ := writeCA(t, dir, "other")
	s := startPrivate(t, mysqltest.Options{Args: []string{privateTmp(t), "--ssl-ca=" + ca, "--ssl-cert=" + cert, "--ssl-key=" + key}})
	db := s.NewDatabase(t, "tls")
	s.Exec(t, db, "CREATE TABLE t (id INT PRIMARY KEY)",
		fmt.Sprintf("ALTER USER '%s'@'%%' REQUIRE SSL", s.CDCUser))
	s.Exec(t, db, fmt.Sprintf("ALTER USER '%s'@'localhost' REQUIRE SSL", s.CDCUser))
	base := sourceConfig(s, db+".t")

	// without TLS the connector user is refused
	if _, err := CurrentPosition(context.Background(), base); err == nil || !strings.Contains(err.Error(), "Access denied") {
		t.Fatalf("plain connection: %v", err)
	}
	// a CA that did not sign the server certificate fails verification
	bad := base
	bad.TLS = TLSConfig{Enabled: true, CAFile: otherCA}
	if _, err := CurrentPosition(context.Background(), bad); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("wrong CA: %v", err)
	}
	for name, tc := range map[string]TLSConfig{
		"verified":    {Enabled: true, CAFile: ca},
		"skip-verify": {Enabled: true, SkipVerify: true},
	} {
		cfg := base
		cfg.TLS = tc
		start, err := CurrentPosition(context.Background(), cfg)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		src, err := New(cfg, testLogger(t), nil)
		if err != nil {
			t.Fatal(err)
		}
		col := &collector{}
		stop := runSource(t, src, start, col)
		id := len(name)
		s.Exec(t, db, fmt.Sprintf("INSERT INTO t VALUES (%d)", id))
		waitFor(t, name+" row", func() bool { return len(col.tableChanges(db, "t")) == 1 })
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		if v, _ := col.tableChanges(db, "t")[0].Get("id"); v != int64(id) {
			t.Errorf("%s: got %v", name, v)
		}
	}
}

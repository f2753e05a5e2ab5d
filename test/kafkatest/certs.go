package kafkatest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Certs is a throw-away PKI for TLS tests: a CA, a server certificate valid
// for 127.0.0.1, ::1 and localhost, and a client certificate, all signed by
// the CA and written as PEM files into Dir.
type Certs struct {
	Dir string

	CAFile, ServerCertFile, ServerKeyFile, ClientCertFile, ClientKeyFile string

	CAPool *x509.CertPool
	Server tls.Certificate
	Client tls.Certificate
}

// NewCerts generates a CA, a server and a client certificate into dir.
func NewCerts(dir string) (*Certs, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "feedcdc test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("create CA certificate: %w", err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	c := &Certs{Dir: dir, CAPool: x509.NewCertPool()}
	c.CAPool.AddCert(caCert)

	leaf := func(serial int64, cn string, usage x509.ExtKeyUsage, server bool) ([]byte, *ecdsa.PrivateKey, error) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, nil, err
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: cn},
			NotBefore:    now.Add(-time.Hour),
			NotAfter:     now.Add(24 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		}
		if server {
			tmpl.DNSNames = []string{"localhost"}
			tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1"), net.IPv6loopback}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		return der, key, err
	}
	write := func(name, typ string, der []byte) (string, error) {
		p := filepath.Join(dir, name)
		return p, os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600)
	}
	if c.CAFile, err = write("ca.pem", "CERTIFICATE", caDER); err != nil {
		return nil, err
	}
	for _, l := range []struct {
		serial         int64
		cn             string
		usage          x509.ExtKeyUsage
		server         bool
		cert, key      *string
		tlsCert        *tls.Certificate
		certName, kNam string
	}{
		{2, "127.0.0.1", x509.ExtKeyUsageServerAuth, true, &c.ServerCertFile, &c.ServerKeyFile, &c.Server, "server.pem", "server-key.pem"},
		{3, "feedcdc-client", x509.ExtKeyUsageClientAuth, false, &c.ClientCertFile, &c.ClientKeyFile, &c.Client, "client.pem", "client-key.pem"},
	} {
		der, key, err := leaf(l.serial, l.cn, l.usage, l.server)
		if err != nil {
			return nil, fmt.Errorf("create %s certificate: %w", l.cn, err)
		}
		keyDER, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			return nil, err
		}
		if *l.cert, err = write(l.certName, "CERTIFICATE", der); err != nil {
			return nil, err
		}
		if *l.key, err = write(l.kNam, "EC PRIVATE KEY", keyDER); err != nil {
			return nil, err
		}
		if *l.tlsCert, err = tls.LoadX509KeyPair(*l.cert, *l.key); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// ServerTLS is a server config presenting the server certificate; with
// requireClientCert it demands a client certificate signed by the CA.
func (c *Certs) ServerTLS(requireClientCert bool) *tls.Config {
	cfg := &tls.Config{Certificates: []tls.Certificate{c.Server}, MinVersion: tls.VersionTLS12}
	if requireClientCert {
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
		cfg.ClientCAs = c.CAPool
	}
	return cfg
}

// ClientTLS is a client config trusting the CA and presenting the client
// certificate.
func (c *Certs) ClientTLS() *tls.Config {
	return &tls.Config{RootCAs: c.CAPool, Certificates: []tls.Certificate{c.Client}, MinVersion: tls.VersionTLS12}
}

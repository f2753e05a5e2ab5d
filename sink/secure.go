package sink

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
)

// TLSFiles describes a TLS client configuration from PEM files, as given in
// config.yaml. Building it never falls back to plaintext: a TLS sink whose
// files are wrong fails to start with an error naming the file.
type TLSFiles struct {
	CAFile             string // PEM CA bundle; empty = system roots
	CertFile           string // PEM client certificate (mutual TLS); needs KeyFile
	KeyFile            string // PEM client key; needs CertFile
	ServerName         string // expected host name in server certificates; empty = the dialled host
	InsecureSkipVerify bool   // do not verify server certificates (testing only)
}

// Build returns the tls.Config the files describe (minimum TLS 1.2).
func (f TLSFiles) Build() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: f.ServerName, InsecureSkipVerify: f.InsecureSkipVerify}
	if f.CAFile != "" {
		pem, err := os.ReadFile(f.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls ca_file %s: no PEM certificate found in it", f.CAFile)
		}
		cfg.RootCAs = pool
	}
	switch {
	case f.CertFile != "" && f.KeyFile != "":
		cert, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls cert_file/key_file: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	case f.CertFile != "" || f.KeyFile != "":
		return nil, errors.New("tls: cert_file and key_file must be given together (mutual TLS needs both)")
	}
	return cfg, nil
}

// ReadSecret returns a secret given inline, in an environment variable
// (named by env) or in a file (whose trailing newline is dropped), in that
// order of preference. what names the secret in errors; the secret itself
// never appears in an error.
func ReadSecret(what, value, env, file string) (string, error) {
	if value != "" {
		return value, nil
	}
	if env != "" {
		v, ok := os.LookupEnv(env)
		if !ok || v == "" {
			return "", fmt.Errorf("%s: environment variable %s is not set or empty", what, env)
		}
		return v, nil
	}
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("%s: %w", what, err)
		}
		v := strings.TrimRight(string(b), "\r\n")
		if v == "" {
			return "", fmt.Errorf("%s: file %s is empty", what, file)
		}
		return v, nil
	}
	return "", nil
}

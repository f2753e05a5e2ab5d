package connector

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/feedcdc/feedcdc/connector/binlog"
)

// sourceOffersTLS answers source.tls.mode preferred: whether the source
// offers TLS (@@have_ssl YES). Only a definite answer that it does not (NO
// or DISABLED) means plaintext; when the question cannot be asked, or the
// answer is unknown, it fails instead of falling back to plaintext
// silently.
func sourceOffersTLS(ctx context.Context, db *sql.DB) (bool, error) {
	var have string
	if err := db.QueryRowContext(ctx, "SELECT @@have_ssl").Scan(&have); err != nil {
		return false, fmt.Errorf("source.tls.mode preferred: cannot ask the source whether it offers TLS (SELECT @@have_ssl): %w; feedcdc does not fall back to plaintext on an error: make the source reachable, or set source.tls.mode to required (always TLS) or disabled (never)", err)
	}
	switch strings.ToUpper(have) {
	case "YES":
		return true, nil
	case "NO", "DISABLED":
		return false, nil
	}
	return false, fmt.Errorf("source.tls.mode preferred: the source answered @@have_ssl = %q (want YES, NO or DISABLED); set source.tls.mode to required or disabled", have)
}

// preferredTLS resolves source.tls.mode preferred for a binlog
// connection: TLS when the source offers it, plaintext with a warning when
// the source says it has none, an error when it cannot tell. (Every other
// mode is resolved by binlogConfig.)
func (c *Connector) preferredTLS(ctx context.Context) (binlog.TLSConfig, error) {
	offered, err := sourceOffersTLS(ctx, c.SourceDB)
	if err != nil {
		return binlog.TLSConfig{}, err
	}
	if !offered {
		c.Logger.Warn("source offers no TLS (@@have_ssl is NO or DISABLED); the binlog connection is not encrypted (source.tls.mode: preferred)")
		return binlog.TLSConfig{}, nil
	}
	tc, err := sourceTLSConfig(&c.Config.Source)
	if err != nil {
		return binlog.TLSConfig{}, err
	}
	return binlog.TLSConfig{Enabled: true, Config: tc}, nil
}

// ResolvedSourceConfig is SourceConfig with source.tls.mode preferred
// resolved by asking the source (as Run and ReloadSchema do), for commands
// that open their own binlog connections (position show/set): with
// preferred, SourceConfig alone says plaintext until Run has resolved it.
// It fails, naming the setting, when the source cannot be asked.
func (c *Connector) ResolvedSourceConfig(ctx context.Context) (binlog.Config, error) {
	scfg := c.SourceConfig()
	if c.Config.Source.TLS.Mode == "preferred" {
		var err error
		if scfg.TLS, err = c.preferredTLS(ctx); err != nil {
			return binlog.Config{}, err
		}
	}
	return scfg, nil
}

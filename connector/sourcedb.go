package connector

import (
	"context"
	"database/sql/driver"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// statementTimeout is the source pool's driver.Connector: every new
// connection gets a server-side statement deadline, so a query the server
// cannot finish (a lock it waits for, a plan gone wrong) ends with an error
// the retry classifies as transient instead of holding the exporter:
// MariaDB's max_statement_time (seconds, every statement) or MySQL's
// max_execution_time (milliseconds, read-only SELECTs). The flavor comes
// from the configuration, or from the server's version string when it is
// "auto" (asked once, on the first connection).
type statementTimeout struct {
	driver.Connector
	Timeout time.Duration
	Flavor  string // "mysql", "mariadb" or "auto"/""

	mu     sync.Mutex
	flavor string // resolved
}

// Connect implements driver.Connector.
func (s *statementTimeout) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := s.Connector.Connect(ctx)
	if err != nil || s.Timeout <= 0 {
		return conn, err
	}
	flavor, err := s.resolve(ctx, conn)
	if err == nil {
		stmt := fmt.Sprintf("SET SESSION max_execution_time = %d", s.Timeout.Milliseconds())
		if flavor == "mariadb" {
			stmt = fmt.Sprintf("SET SESSION max_statement_time = %g", s.Timeout.Seconds())
		}
		if ex, ok := conn.(driver.ExecerContext); ok {
			_, err = ex.ExecContext(ctx, stmt, nil)
		}
	}
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("source: set the statement deadline (source.query_timeout): %w", err)
	}
	return conn, nil
}

func (s *statementTimeout) resolve(ctx context.Context, conn driver.Conn) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.flavor != "" {
		return s.flavor, nil
	}
	if s.Flavor == "mysql" || s.Flavor == "mariadb" {
		s.flavor = s.Flavor
		return s.flavor, nil
	}
	q, ok := conn.(driver.QueryerContext)
	if !ok {
		return "", fmt.Errorf("the driver cannot query")
	}
	rows, err := q.QueryContext(ctx, "SELECT VERSION()", nil)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	v := make([]driver.Value, 1)
	if err := rows.Next(v); err != nil && err != io.EOF {
		return "", err
	}
	version := fmt.Sprint(v[0])
	if b, ok := v[0].([]byte); ok {
		version = string(b)
	}
	s.flavor = "mysql"
	if strings.Contains(strings.ToLower(version), "mariadb") {
		s.flavor = "mariadb"
	}
	return s.flavor, nil
}

// Driver implements driver.Connector.
func (s *statementTimeout) Driver() driver.Driver { return s.Connector.Driver() }

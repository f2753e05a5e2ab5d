package binlog

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/go-mysql-org/go-mysql/client"
	"github.com/go-mysql-org/go-mysql/mysql"

	"github.com/feedcdc/feedcdc/change"
)

// PositionPurgedError is the error Run returns when the server no longer has
// the binlog the stream should resume from (server error 1236).
// errors.Is(err, ErrPositionPurged) matches it.
type PositionPurgedError struct {
	// Position is the resume position the server refused.
	Position change.Position
	// Server is the server's message.
	Server string
}

func (e *PositionPurgedError) Error() string {
	return fmt.Sprintf("%s: resume position %s: the server says: %s. Remedies: `feedcdc position set current` then `feedcdc resync --feed F` for every enabled feed (raw streams skip what was purged), "+
		"or `feedcdc position set earliest` (continue from the oldest binlog still on the server, skipping what was purged), or source.on_purged_position: resync",
		ErrPositionPurged, e.Position, e.Server)
}

func (e *PositionPurgedError) Unwrap() error { return ErrPositionPurged }

// ResolveStart resolves Config.StartPosition ("current", "earliest",
// "gtid:<set>", "<file>:<pos>") to a position on the server, with the GTID
// state at a file/pos filled in on MariaDB: the position Run would start
// from when given none.
func ResolveStart(ctx context.Context, cfg Config) (change.Position, error) {
	return withConn(ctx, cfg, func(c *client.Conn, flavor string) (change.Position, error) {
		src := &Source{cfg: cfg.withDefaults()}
		p, err := src.resolveStart(c, flavor)
		if err != nil {
			return p, err
		}
		p.Flavor = flavor
		if flavor == mysql.MariaDBFlavor && p.GTIDSet == "" && p.File != "" {
			g, err := queryString(c, fmt.Sprintf("SELECT BINLOG_GTID_POS('%s', %d)", escapeSQL(p.File), p.Pos))
			if err != nil {
				return p, fmt.Errorf("start position %s: %w", p, err)
			}
			p.GTIDSet = g
		}
		return p, nil
	})
}

// Availability says whether the server can still stream from a position.
type Availability struct {
	// Available is false when the binlog the position needs was purged.
	Available bool `json:"available"`
	// Reason explains a position that is not available.
	Reason string `json:"reason,omitempty"`
	// Files are the binlog files the server has (SHOW BINARY LOGS).
	Files []string `json:"files"`
	// Earliest is the start of the oldest file; Current the end of binlog.
	Earliest change.Position `json:"earliest"`
	Current  change.Position `json:"current"`
	// Purged is the GTID set the server no longer has (MySQL gtid_purged;
	// MariaDB: the GTID list at the start of the oldest file).
	Purged string `json:"purged,omitempty"`
}

// CheckPosition asks the server whether it still has the binlog from pos
// on: with a GTID set, every GTID purged (MySQL gtid_purged, MariaDB the
// oldest file's GTID list) must be in pos's set; with file/pos only, the
// file must still be listed by SHOW BINARY LOGS.
func CheckPosition(ctx context.Context, cfg Config, pos change.Position) (Availability, error) {
	var a Availability
	_, err := withConn(ctx, cfg, func(c *client.Conn, flavor string) (change.Position, error) {
		r, err := c.Execute("SHOW BINARY LOGS")
		if err != nil {
			return change.Position{}, fmt.Errorf("list binlog files (SHOW BINARY LOGS needs REPLICATION CLIENT / BINLOG MONITOR): %w", err)
		}
		for i := 0; i < r.RowNumber(); i++ {
			f, _ := r.GetString(i, 0)
			a.Files = append(a.Files, f)
		}
		if len(a.Files) == 0 {
			return change.Position{}, errors.New("the source has no binary log: start it with log_bin (see docs/binlog.md)")
		}
		if a.Earliest, err = earliestPosition(c, flavor); err != nil {
			return change.Position{}, err
		}
		if a.Current, err = currentPosition(c, flavor); err != nil {
			return change.Position{}, err
		}
		if flavor == mysql.MariaDBFlavor {
			a.Purged = a.Earliest.GTIDSet
		} else if mode, _ := queryString(c, "SELECT @@GLOBAL.gtid_mode"); strings.EqualFold(mode, "ON") {
			g, err := queryString(c, "SELECT @@GLOBAL.gtid_purged")
			if err != nil {
				return change.Position{}, err
			}
			a.Purged = strings.ReplaceAll(g, "\n", "")
		}
		if pos.GTIDSet != "" && (a.Purged != "" || flavor == mysql.MariaDBFlavor) {
			have, err := mysql.ParseGTIDSet(flavor, pos.GTIDSet)
			if err != nil {
				return change.Position{}, fmt.Errorf("position %s: bad %s GTID set: %w", pos, flavor, err)
			}
			purged, err := mysql.ParseGTIDSet(flavor, a.Purged)
			if err != nil {
				return change.Position{}, fmt.Errorf("server's purged GTIDs %q: %w", a.Purged, err)
			}
			a.Available = have.Contain(purged)
			if !a.Available {
				a.Reason = fmt.Sprintf("the server purged GTIDs %s, which position %s does not include", a.Purged, pos.GTIDSet)
			}
			return change.Position{}, nil
		}
		if pos.File == "" {
			a.Available = true // an empty GTID set on a server that purged none
			return change.Position{}, nil
		}
		for _, f := range a.Files {
			if f == pos.File {
				a.Available = true
			}
		}
		if !a.Available {
			a.Reason = fmt.Sprintf("binlog file %s is no longer on the server (oldest: %s)", pos.File, a.Files[0])
		}
		return change.Position{}, nil
	})
	return a, err
}

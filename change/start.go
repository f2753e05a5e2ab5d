package change

import (
	"fmt"
	"strconv"
	"strings"
)

// StartKind says where streaming starts when there is no checkpoint.
type StartKind string

const (
	StartCurrent  StartKind = "current"  // the server's current binlog position
	StartEarliest StartKind = "earliest" // the oldest binlog the server still has
	StartGTID     StartKind = "gtid"     // an explicit GTID set
	StartFile     StartKind = "file"     // an explicit file:pos
)

// StartPosition is a parsed start position: source.start_position in
// config.yaml, the argument of feedcdc position set.
type StartPosition struct {
	Kind     StartKind
	Position Position // GTIDSet for StartGTID; File and Pos for StartFile
}

// ParseStartPosition parses "current" (or ""), "earliest" (both in any
// letter case), "gtid:<set>" or "[file:]<file>:<pos>" (e.g.
// "mysql-bin.000003:157"). It is the one parser of that syntax: config
// validates source.start_position with it, connector/binlog resolves it.
func ParseStartPosition(s string) (StartPosition, error) {
	s = strings.TrimSpace(s)
	switch strings.ToLower(s) {
	case "current", "":
		return StartPosition{Kind: StartCurrent}, nil
	case "earliest":
		return StartPosition{Kind: StartEarliest}, nil
	}
	if g, ok := strings.CutPrefix(s, "gtid:"); ok {
		if strings.TrimSpace(g) == "" {
			return StartPosition{}, fmt.Errorf("%q has an empty GTID set (write gtid:0-1-100 for MariaDB or gtid:<uuid>:1-100 for MySQL)", s)
		}
		return StartPosition{Kind: StartGTID, Position: Position{GTIDSet: strings.TrimSpace(g)}}, nil
	}
	i := strings.LastIndexByte(s, ':')
	if i <= 0 || i == len(s)-1 {
		return StartPosition{}, fmt.Errorf("%q is not one of current, earliest, gtid:<set>, <file>:<pos> (e.g. mysql-bin.000003:4)", s)
	}
	file, posStr := strings.TrimPrefix(s[:i], "file:"), s[i+1:]
	pos, err := strconv.ParseUint(posStr, 10, 32)
	if err != nil || strings.ContainsAny(file, " :/") || file == "" {
		return StartPosition{}, fmt.Errorf("%q is not one of current, earliest, gtid:<set>, <file>:<pos> (e.g. mysql-bin.000003:4)", s)
	}
	if pos < 4 {
		return StartPosition{}, fmt.Errorf("%q: binlog positions start at 4 (the first event after the magic header)", s)
	}
	return StartPosition{Kind: StartFile, Position: Position{File: file, Pos: uint32(pos)}}, nil
}

package change

import "testing"

// TestParseStartPosition: the start position syntax of source.start_position
// and feedcdc position set (moved from config's TestParsers and
// connector/binlog's TestParseStart, which each tested their own parser).
func TestParseStartPosition(t *testing.T) {
	sp, err := ParseStartPosition("mysql-bin.000003:157")
	if err != nil || sp.Kind != StartFile || sp.Position.File != "mysql-bin.000003" || sp.Position.Pos != 157 {
		t.Errorf("file:pos: %+v %v", sp, err)
	}
	sp, err = ParseStartPosition("gtid:0-1-100,1-2-5")
	if err != nil || sp.Kind != StartGTID || sp.Position.GTIDSet != "0-1-100,1-2-5" {
		t.Errorf("gtid: %+v %v", sp, err)
	}
	sp, err = ParseStartPosition("gtid:3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5")
	if err != nil || sp.Kind != StartGTID {
		t.Errorf("mysql gtid: %+v %v", sp, err)
	}
	for _, s := range []string{"earliest", "current"} {
		if sp, err := ParseStartPosition(s); err != nil || string(sp.Kind) != s {
			t.Errorf("%s: %+v %v", s, sp, err)
		}
	}
	for _, bad := range []string{"gtid:", "mysql-bin", "mysql-bin.000001:x", "mysql-bin.000001:2", "latest"} {
		if _, err := ParseStartPosition(bad); err == nil {
			t.Errorf("ParseStartPosition(%q) accepted", bad)
		}
	}
	for in, want := range map[string]StartPosition{
		"":                    {Kind: StartCurrent},
		"CURRENT":             {Kind: StartCurrent},
		"earliest":            {Kind: StartEarliest},
		"gtid:0-1-5,1-2-7":    {Kind: StartGTID, Position: Position{GTIDSet: "0-1-5,1-2-7"}},
		"binlog.000003:4":     {Kind: StartFile, Position: Position{File: "binlog.000003", Pos: 4}},
		"mysql-bin.000010:99": {Kind: StartFile, Position: Position{File: "mysql-bin.000010", Pos: 99}},
	} {
		if got, err := ParseStartPosition(in); err != nil || got != want {
			t.Errorf("ParseStartPosition(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"binlog.000003", "yesterday", "file:x"} {
		if _, err := ParseStartPosition(bad); err == nil {
			t.Errorf("ParseStartPosition(%q) accepted", bad)
		}
	}
}

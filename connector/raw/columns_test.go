package raw

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/feedcdc/feedcdc/change"
)

func TestParseMaskRefusesUnknownMasks(t *testing.T) {
	for _, ok := range []string{"hash", "mask:0", "mask:4", "truncate:10"} {
		if _, _, err := ParseMask(ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{"sha1", "mask", "mask:-1", "truncate:x", "hash:3", ""} {
		if _, _, err := ParseMask(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestRawPlanKeyColumnMissingNamesTheEntry(t *testing.T) {
	tbl := &change.Table{DB: "shop", Name: "log", Columns: []change.Column{{Name: "a"}, {Name: "b"}}}
	cs := &Columns{Keys: map[string]string{"shop.log": "a,c"}}
	_, err := cs.Plan(tbl)
	if err == nil || !strings.Contains(err.Error(), "raw.key_columns.shop.log") || !strings.Contains(err.Error(), `"c"`) {
		t.Fatalf("err = %v, want one naming raw.key_columns.shop.log and column c", err)
	}
	if p, err := (&Columns{Keys: map[string]string{"other.*": "x"}}).Plan(tbl); p != nil || err != nil {
		t.Fatalf("rules of other tables gave plan %v, %v", p, err)
	}
}

func TestRawPlanEncodesMaskedFilteredEnvelope(t *testing.T) {
	tbl := &change.Table{DB: "shop", Name: "c", PK: []int{0},
		Columns: []change.Column{{Name: "id"}, {Name: "mail"}, {Name: "pw"}, {Name: "bin"}}}
	cs := &Columns{Exclude: []string{"shop.c.pw"}, Masks: map[string]string{"shop.c.bin": "truncate:2", "shop.c.id": "mask:1"}}
	p, err := cs.Plan(tbl)
	if err != nil || p == nil {
		t.Fatal(p, err)
	}
	c := &change.Change{Table: tbl, Op: change.OpCreate, After: []any{int64(7), "m@x", "secret", []byte{1, 2, 3}}}
	v, k := p.Apply(c)
	e := &Encoder{}
	got := string(e.AppendEnvelope(nil, v))
	if !strings.HasPrefix(got, `{"before":null,"after":{"id":"*","mail":"m@x","bin":"AQI="}`) || strings.Contains(got, "secret") {
		t.Fatalf("envelope %s", got)
	}
	if key := string(AppendKey(nil, k)); key != `{"id":"*"}` {
		t.Fatalf("key %s", key)
	}
	if c.After[0] != int64(7) || c.After[2] != "secret" {
		t.Fatalf("Apply changed the original change: %v", c.After)
	}
}

func TestRawEnvelopeSourceQueryOnlyWhenIncluded(t *testing.T) {
	tbl := &change.Table{DB: "d", Name: "t", PK: []int{0}, Columns: []change.Column{{Name: "id"}}}
	c := &change.Change{Table: tbl, Op: change.OpCreate, After: []any{int64(1)},
		Source: change.Source{Flavor: "mariadb", Query: "INSERT INTO t VALUES (1)", Thread: 7}}
	off := string((&Encoder{Version: "v1"}).AppendEnvelope(nil, c))
	on := string((&Encoder{Version: "v1", IncludeQuery: true}).AppendEnvelope(nil, c))
	if strings.Contains(off, "query") || !strings.Contains(off, `"source":{"version":"v1","connector":"mariadb","name":""`) || !strings.Contains(off, `"thread":7`) {
		t.Fatalf("without include_query: %s", off)
	}
	if !strings.Contains(on, `"query":"INSERT INTO t VALUES (1)"`) {
		t.Fatalf("with include_query: %s", on)
	}
}

func TestRawHashMaskIsHMACSHA256WithTheSalt(t *testing.T) {
	tbl := &change.Table{DB: "d", Name: "t", PK: []int{0}, Columns: []change.Column{{Name: "id"}, {Name: "mail"}}}
	p, err := (&Columns{Masks: map[string]string{"d.t.mail": "hash"}, Salt: []byte("salt")}).Plan(tbl)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ { // pooled MAC states give the same result every time
		v, _ := p.Apply(&change.Change{Table: tbl, Op: change.OpCreate, After: []any{int64(1), "a@b"}})
		m := hmac.New(sha256.New, []byte("salt"))
		m.Write([]byte("a@b"))
		if want := hex.EncodeToString(m.Sum(nil)); v.After[1] != want {
			t.Fatalf("hash %v, want %s", v.After[1], want)
		}
	}
}

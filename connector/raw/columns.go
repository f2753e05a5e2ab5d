package raw

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/feedcdc/feedcdc/change"
)

// Columns are the column rules of the raw streams: which columns an
// envelope shows, which values it masks, and which columns key a table's
// records. Patterns are matched case-insensitively with * (any run of
// characters) and ? (one character): "db.table.column" for Include,
// Exclude and Masks, "db.table" for Keys.
type Columns struct {
	// Include, when one of its patterns names a table, keeps only the
	// matching columns of that table; other tables keep every column.
	Include []string
	// Exclude drops matching columns (after Include).
	Exclude []string
	// Masks maps a column pattern to a mask: "hash" (hex HMAC-SHA-256 of
	// the value with Salt), "mask:N" (N asterisks) or "truncate:N" (the
	// first N characters of a string, N bytes of a binary value). The
	// first pattern in sorted order that matches wins.
	Masks map[string]string
	Salt  []byte
	// Keys maps a table pattern to the comma-separated columns that key
	// its records instead of (or, without one, as) the primary key.
	Keys map[string]string
}

// ParseMask checks a mask specification (hash, mask:N, truncate:N).
func ParseMask(spec string) (kind string, n int, err error) {
	kind, arg, has := strings.Cut(strings.TrimSpace(spec), ":")
	switch kind {
	case "hash":
		if has {
			return "", 0, fmt.Errorf("%q: hash takes no length (the salt is raw.hash_salt)", spec)
		}
		return kind, 0, nil
	case "mask", "truncate":
		n, err := strconv.Atoi(arg)
		if !has || err != nil || n < 0 || n > 1<<20 {
			return "", 0, fmt.Errorf("%q: write %s:N with N a number of characters, e.g. %s:8", spec, kind, kind)
		}
		return kind, n, nil
	}
	return "", 0, fmt.Errorf("%q is not a mask; use hash, mask:N or truncate:N", spec)
}

// MatchPattern reports whether name ("db.table" or "db.table.column")
// matches a pattern of Columns, case-insensitively.
func MatchPattern(pattern, name string) bool {
	ok, err := path.Match(strings.ToLower(pattern), strings.ToLower(name))
	return err == nil && ok
}

// TablePlan applies the column rules to the changes of one table version.
type TablePlan struct {
	value *change.Table // the columns shown, PK mapped onto them
	key   *change.Table // the full table with the key columns as PK
	keep  []int         // indexes of the shown columns
	masks []func(any) any
}

// Plan compiles the rules for t. It returns nil when no rule concerns t
// (its records are encoded as they are), and an error naming the rule
// when a key column is not a column of t.
func (cs *Columns) Plan(t *change.Table) (*TablePlan, error) {
	if cs == nil || len(t.Columns) == 0 {
		return nil, nil
	}
	tname := t.DB + "." + t.Name
	p := &TablePlan{masks: make([]func(any) any, len(t.Columns))}
	applies := false
	include := false
	for _, pat := range cs.Include {
		if i := strings.LastIndexByte(pat, '.'); i > 0 && MatchPattern(pat[:i], tname) {
			include = true
		}
	}
	for i, c := range t.Columns {
		full := tname + "." + c.Name
		keep := !include || matchAny(cs.Include, full)
		if keep && matchAny(cs.Exclude, full) {
			keep = false
		}
		if keep {
			p.keep = append(p.keep, i)
		}
		if m := cs.maskFor(full); m != nil {
			p.masks[i], applies = m, true
		}
	}
	if len(p.keep) != len(t.Columns) {
		applies = true
	}
	key := t.PK
	var pats []string
	for pat := range cs.Keys {
		pats = append(pats, pat)
	}
	slices.Sort(pats)
	for _, pat := range pats {
		if !MatchPattern(pat, tname) {
			continue
		}
		key = nil
		for _, col := range strings.Split(cs.Keys[pat], ",") {
			col = strings.TrimSpace(col)
			i := t.ColumnIndex(col)
			if i < 0 {
				names := make([]string, len(t.Columns))
				for j := range t.Columns {
					names[j] = t.Columns[j].Name
				}
				return nil, fmt.Errorf("raw.key_columns.%s: %s has no column %q (its columns: %s); fix the column list", pat, tname, col, strings.Join(names, ", "))
			}
			key = append(key, i)
		}
		applies = true
		break
	}
	if !applies {
		return nil, nil
	}
	kt := *t
	kt.PK = key
	p.key = &kt
	vt := &change.Table{DB: t.DB, Name: t.Name}
	for _, i := range p.keep {
		vt.Columns = append(vt.Columns, t.Columns[i])
	}
	for _, pk := range t.PK {
		for j, i := range p.keep {
			if i == pk {
				vt.PK = append(vt.PK, j)
			}
		}
	}
	p.value = vt
	return p, nil
}

func matchAny(pats []string, name string) bool {
	for _, p := range pats {
		if MatchPattern(p, name) {
			return true
		}
	}
	return false
}

// maskFor returns the mask of a column, or nil.
func (cs *Columns) maskFor(full string) func(any) any {
	var pats []string
	for pat := range cs.Masks {
		if MatchPattern(pat, full) {
			pats = append(pats, pat)
		}
	}
	if len(pats) == 0 {
		return nil
	}
	slices.Sort(pats)
	kind, n, err := ParseMask(cs.Masks[pats[0]])
	if err != nil {
		return nil // refused by the configuration check
	}
	salt := cs.Salt
	switch kind {
	case "hash":
		// HMAC states are reused (keyed once): hmac.New per value costs
		// more than the rest of the envelope.
		macs := &sync.Pool{New: func() any { return hmac.New(sha256.New, salt) }}
		return func(v any) any {
			if v == nil {
				return nil
			}
			h := macs.Get().(hash.Hash)
			h.Reset()
			switch x := v.(type) {
			case string:
				io.WriteString(h, x)
			case []byte:
				h.Write(x)
			default:
				h.Write(AppendValue(nil, v))
			}
			var sum [sha256.Size]byte
			var out [2 * sha256.Size]byte
			hex.Encode(out[:], h.Sum(sum[:0]))
			macs.Put(h)
			return string(out[:])
		}
	case "mask":
		stars := strings.Repeat("*", n)
		return func(v any) any {
			if v == nil {
				return nil
			}
			return stars
		}
	}
	return func(v any) any {
		switch x := v.(type) {
		case string:
			k := 0
			for i := range x {
				if k == n {
					return x[:i]
				}
				k++
			}
			return x
		case []byte:
			if len(x) > n {
				return x[:n]
			}
		}
		return v
	}
}

// Apply returns the change to encode as the envelope (shown columns,
// masked values) and the change whose primary key is the record's key
// (the key columns, masked like the envelope).
func (p *TablePlan) Apply(c *change.Change) (value, key *change.Change) {
	full := func(row []any) []any {
		if row == nil {
			return nil
		}
		out := make([]any, len(row))
		for i, v := range row {
			if i < len(p.masks) && p.masks[i] != nil {
				v = p.masks[i](v)
			}
			out[i] = v
		}
		return out
	}
	before, after := full(c.Before), full(c.After)
	pick := func(row []any) []any {
		if row == nil {
			return nil
		}
		out := make([]any, 0, len(p.keep))
		for _, i := range p.keep {
			if i < len(row) {
				out = append(out, row[i])
			}
		}
		return out
	}
	value = &change.Change{Table: p.value, Op: c.Op, Before: pick(before), After: pick(after), Source: c.Source}
	key = &change.Change{Table: p.key, Op: c.Op, Before: before, After: after, Source: c.Source}
	return value, key
}

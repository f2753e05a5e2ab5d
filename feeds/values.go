package feeds

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/feedcdc/feedcdc/change"
)

// toUint converts a decoded column value (int64/uint64 and friends, or a
// decimal string/bytes) to an unsigned integer.
func toUint(v any) (uint64, bool) {
	switch x := v.(type) {
	case int64:
		return uint64(x), x >= 0
	case uint64:
		return x, true
	case int:
		return uint64(x), x >= 0
	case int32:
		return uint64(x), x >= 0
	case uint32:
		return uint64(x), true
	case int16:
		return uint64(x), x >= 0
	case uint16:
		return uint64(x), true
	case int8:
		return uint64(x), x >= 0
	case uint8:
		return uint64(x), true
	case string:
		n, err := strconv.ParseUint(strings.TrimSpace(x), 10, 64)
		return n, err == nil
	case []byte:
		n, err := strconv.ParseUint(strings.TrimSpace(string(x)), 10, 64)
		return n, err == nil
	}
	return 0, false
}

// toString converts a decoded column value to its text form ("" for NULL).
func toString(v any) (string, bool) {
	switch x := v.(type) {
	case nil:
		return "", false
	case string:
		return x, true
	case []byte:
		return string(x), true
	case int64:
		return strconv.FormatInt(x, 10), true
	case uint64:
		return strconv.FormatUint(x, 10), true
	}
	return fmt.Sprint(v), true
}

// imageUint reads an unsigned column of one row image.
func imageUint(t *change.Table, row []any, col string) (uint64, bool) {
	if row == nil {
		return 0, false
	}
	i := t.ColumnIndex(col)
	if i < 0 || i >= len(row) {
		return 0, false
	}
	return toUint(row[i])
}

// imageString reads a column of one row image as text.
func imageString(t *change.Table, row []any, col string) (string, bool) {
	if row == nil {
		return "", false
	}
	i := t.ColumnIndex(col)
	if i < 0 || i >= len(row) {
		return "", false
	}
	return toString(row[i])
}

// ids returns the distinct values of an unsigned column in the before and
// after images (before first).
func ids(c *change.Change, col string) []uint64 {
	var out []uint64
	for _, row := range [][]any{c.Before, c.After} {
		if v, ok := imageUint(c.Table, row, col); ok {
			dup := false
			for _, o := range out {
				dup = dup || o == v
			}
			if !dup {
				out = append(out, v)
			}
		}
	}
	return out
}

// changed reports whether any of the named columns differs between the
// before and after images (true for inserts and deletes).
func changed(c *change.Change, cols ...string) bool {
	if c.Before == nil || c.After == nil {
		return true
	}
	for _, col := range cols {
		a, _ := imageString(c.Table, c.Before, col)
		b, _ := imageString(c.Table, c.After, col)
		an := isNull(c.Table, c.Before, col)
		bn := isNull(c.Table, c.After, col)
		if a != b || an != bn {
			return true
		}
	}
	return false
}

func isNull(t *change.Table, row []any, col string) bool {
	i := t.ColumnIndex(col)
	return i < 0 || i >= len(row) || row[i] == nil
}

func keyStrings(vals []uint64) []string {
	out := make([]string, len(vals))
	for i, v := range vals {
		out[i] = strconv.FormatUint(v, 10)
	}
	return out
}

// emitIDs hands ids to emit in chunks of at most chunk keys.
func emitIDs(vals []uint64, chunk int, emit func([]string) error) error {
	for len(vals) > 0 {
		n := min(len(vals), chunk)
		if err := emit(keyStrings(vals[:n])); err != nil {
			return err
		}
		vals = vals[n:]
	}
	return nil
}

// parseKeys turns entity keys into unsigned ids, rejecting malformed keys.
func parseKeys(feed string, keys []string) ([]uint64, error) {
	out := make([]uint64, 0, len(keys))
	seen := make(map[uint64]bool, len(keys))
	for _, k := range keys {
		n, err := strconv.ParseUint(k, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s: entity key %q is not an unsigned integer id", feed, k)
		}
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out, nil
}

// inList renders an IN list of unsigned ids as literals ("1,2,3"). Ids are
// integers we parsed ourselves, so literals are safe, and they spare the
// server a prepare/execute/close round trip per batched query. The second
// result is always nil (kept so call sites read like placeholder lists).
func inList(vals []uint64) (string, []any) {
	b := make([]byte, 0, len(vals)*7)
	for i, v := range vals {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendUint(b, v, 10)
	}
	return string(b), nil
}

// idMatch selects rows by an id column for one chunk of ids: On gives the
// SQL condition and Has says which of the rows it selects were asked for.
//
// A dense chunk (a full sync's chunks are consecutive primary keys) reads
// the range "col BETWEEN lo AND hi": one range scan of the index. An IN
// list of the same ids costs the server more: MariaDB turns an IN list of
// in_predicate_conversion_threshold (1000) or more values into a
// materialised table-value constructor that it joins with the table, and
// below that it probes each value as its own range. A range may also
// return ids between lo and hi that the chunk does not hold (at most as
// many as it holds); callers skip the rows Has rejects. A sparse chunk (a
// stream batch) keeps the IN list.
type idMatch struct {
	lo, hi uint64
	in     string              // the IN list; "" for a range
	set    map[uint64]struct{} // a range's ids
}

// minRangeIDs is the smallest chunk read as a range; smaller lists are
// cheap as IN lists.
const minRangeIDs = 64

// matchIDs returns the match of ids (distinct values).
func matchIDs(ids []uint64) idMatch {
	if len(ids) >= minRangeIDs {
		lo, hi := slices.Min(ids), slices.Max(ids)
		if hi-lo < 2*uint64(len(ids)) { // dense: at most as many other ids as asked
			set := make(map[uint64]struct{}, len(ids))
			for _, id := range ids {
				set[id] = struct{}{}
			}
			return idMatch{lo: lo, hi: hi, set: set}
		}
	}
	in, _ := inList(ids)
	return idMatch{in: in}
}

// On is the SQL condition selecting the ids in column col.
func (m idMatch) On(col string) string {
	if m.set == nil {
		return col + " IN (" + m.in + ")"
	}
	return col + " BETWEEN " + strconv.FormatUint(m.lo, 10) + " AND " + strconv.FormatUint(m.hi, 10)
}

// isRange reports whether the match reads a range of ids.
func (m idMatch) isRange() bool { return m.set != nil }

// Has reports whether id was asked for.
func (m idMatch) Has(id uint64) bool {
	if m.set == nil {
		return true
	}
	_, ok := m.set[id]
	return ok
}

// scanIDs runs a keyset-paginated id query and emits the ids page by page.
// query must select one unsigned id column, end with
// "AND <id> > ? ORDER BY <id> LIMIT ?" (or the equivalent), and take args
// followed by the last id and the page size.
func scanIDs(ctx context.Context, db *sql.DB, chunk int, query string, args []any, emit func([]string) error) error {
	var last uint64
	for {
		a := append(append([]any(nil), args...), last, chunk)
		rows, err := db.QueryContext(ctx, query, a...)
		if err != nil {
			return fmt.Errorf("fan-out query: %w", err)
		}
		page := make([]uint64, 0, chunk)
		for rows.Next() {
			var id uint64
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return fmt.Errorf("fan-out scan: %w", err)
			}
			page = append(page, id)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return fmt.Errorf("fan-out query: %w", err)
		}
		if len(page) > 0 {
			if err := emit(keyStrings(page)); err != nil {
				return err
			}
			last = page[len(page)-1]
		}
		if len(page) < chunk {
			return nil
		}
	}
}

// scanValueRows is scanIDs for EAV value tables: the query selects
// (value_id, entity_id), ends with "AND value_id > ? ORDER BY value_id
// LIMIT ?", and is paginated on value_id — the primary key, which every
// secondary index ends with, so a page reads only its own rows (paginating
// on entity_id would re-sort all matching rows for every page). Entity ids
// may repeat across pages.
func scanValueRows(ctx context.Context, db *sql.DB, chunk int, query string, args []any, emit func([]string) error) error {
	last := int64(-1 << 62)
	for {
		a := append(append([]any(nil), args...), last, chunk)
		rows, err := db.QueryContext(ctx, query, a...)
		if err != nil {
			return fmt.Errorf("fan-out query: %w", err)
		}
		page := make([]uint64, 0, chunk)
		seen := make(map[uint64]bool, chunk)
		n := 0
		for rows.Next() {
			var vid int64
			var id uint64
			if err := rows.Scan(&vid, &id); err != nil {
				rows.Close()
				return fmt.Errorf("fan-out scan: %w", err)
			}
			n++
			last = vid
			if !seen[id] {
				seen[id] = true
				page = append(page, id)
			}
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return fmt.Errorf("fan-out query: %w", err)
		}
		if len(page) > 0 {
			if err := emit(keyStrings(page)); err != nil {
				return err
			}
		}
		if n < chunk {
			return nil
		}
	}
}

// chunks splits ids into slices of at most n.
func chunks(vals []uint64, n int) [][]uint64 {
	var out [][]uint64
	for len(vals) > 0 {
		k := min(len(vals), n)
		out = append(out, vals[:k])
		vals = vals[k:]
	}
	return out
}

func isNoRows(err error) bool { return errors.Is(err, sql.ErrNoRows) }

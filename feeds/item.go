package feeds

import (
	"bytes"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Item is one built feed item.
type Item struct {
	Feed      string
	ID        string // feed_id: sha1(join("\0", identity values)), lower-case hex
	EntityKey string // source entity key, e.g. a product's entity_id ("42")
	// Identity holds the identity fields and the minimal-payload fields the
	// deleted payload is made of (e.g. sku, storeViewCode, productId).
	Identity map[string]string
	// Data is the canonical JSON of the whole item. The items of one Build
	// may share the memory behind their Data (read only): copy it to keep
	// one item's Data well beyond its batch.
	Data    json.RawMessage
	Hash    string // feed_hash: sha1 of Data without modifiedAt/updatedAt
	Deleted bool
}

// PrevItem is what the state store remembers of an exported item.
type PrevItem struct {
	ID        string
	EntityKey string
	Identity  map[string]string
	Hash      string
	Status    int // last export status (200, 400, 1 are final until the hash changes)
	Deleted   bool
}

// FeedID is sha1(join("\0", values)) in lower-case hex.
func FeedID(values ...string) string {
	var in [256]byte // identities are short: joined on the stack
	b := in[:0]
	for i, v := range values {
		if i > 0 {
			b = append(b, 0)
		}
		b = append(b, v...)
	}
	return hexSum(sha1.Sum(b))
}

// HashJSON is the feed_hash of an item's canonical JSON with modifiedAt and
// updatedAt already removed.
func HashJSON(b []byte) string { return hexSum(sha1.Sum(b)) }

// hexSum is a sha1 sum in lower-case hex (one allocation: the string).
func hexSum(s [sha1.Size]byte) string {
	var h [2 * sha1.Size]byte
	hex.Encode(h[:], s[:])
	return string(h[:])
}

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// timesRoom is the spare capacity canonical leaves for appendTimes.
const timesRoom = 80

// canonical marshals v (a struct with a fixed field order) without HTML
// escaping and without the trailing newline json.Encoder adds. The result
// has room for appendTimes.
func canonical(v any) ([]byte, error) {
	buf := bufPool.Get().(*bytes.Buffer)
	defer bufPool.Put(buf)
	buf.Reset()
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	b := bytes.TrimRight(buf.Bytes(), "\n")
	out := make([]byte, len(b), len(b)+timesRoom)
	copy(out, b)
	return out, nil
}

// timeFormat is how feeds format timestamps: UTC, "2006-01-02 15:04:05"
// (Magento's own format).
const timeFormat = "2006-01-02 15:04:05"

func formatTime(t time.Time) string { return t.UTC().Format(timeFormat) }

// newItem builds an Item from a payload struct whose JSON form must not
// contain updatedAt or modifiedAt: the hash is taken over that JSON, then
// updatedAt (if non-empty) and modifiedAt are appended as the last fields.
func newItem(feed, entityKey string, identityFields []string, identity map[string]string, payload any, updatedAt, modifiedAt string) (Item, error) {
	body, err := canonical(payload)
	if err != nil {
		return Item{}, fmt.Errorf("%s: encode item of entity %s: %w", feed, entityKey, err)
	}
	vals := make([]string, len(identityFields))
	for i, f := range identityFields {
		vals[i] = identity[f]
	}
	it := Item{Feed: feed, ID: FeedID(vals...), EntityKey: entityKey, Identity: identity, Hash: HashJSON(body)}
	it.Data = appendTimes(body, updatedAt, modifiedAt)
	return it, nil
}

// itemArena hands out the Data of one Build's items from shared slabs
// instead of a buffer per item: a payload is encoded into a scratch buffer
// reused for every item, hashed there, and copied with its timestamps into
// the current slab at its exact size (its capacity capped, so an append to
// one item's Data cannot reach the next). The items of one Build are diffed,
// sent and recorded together, so a slab lives about as long as its items;
// the arena holds at most one partly used slab and the scratch buffer (the
// largest item) beyond them. Not safe for concurrent use: one per Build.
type itemArena struct {
	scratch []byte
	slab    []byte
}

const (
	slabSize = 256 << 10
	// ownBuffer: an item at least this large gets a buffer of its own.
	ownBuffer = slabSize / 16
	// timesFixed is what appendTimes adds besides the two timestamps:
	// `,"updatedAt":""` and `,"modifiedAt":""`.
	timesFixed = 31
)

// newItem is the package's newItem for a payload with a hand-written
// encoder and its feed id already computed, its Data in the arena.
func (a *itemArena) newItem(feed, id, entityKey string, identity map[string]string, payload jsonAppender, updatedAt, modifiedAt string) Item {
	a.scratch = payload.appendJSON(a.scratch[:0])
	body := a.scratch
	n := len(body) + len(updatedAt) + len(modifiedAt) + timesFixed
	var data []byte
	if n >= ownBuffer {
		data = make([]byte, 0, n)
	} else {
		if cap(a.slab)-len(a.slab) < n {
			a.slab = make([]byte, 0, slabSize)
		}
		at := len(a.slab)
		data = a.slab[at : at : at+n]
	}
	data = appendTimes(append(data, body...), updatedAt, modifiedAt)
	if n < ownBuffer {
		a.slab = a.slab[:len(a.slab)+min(len(data), n)]
	}
	return Item{Feed: feed, ID: id, EntityKey: entityKey, Identity: identity, Hash: HashJSON(body), Data: data[:len(data):len(data)]}
}

// appendTimes appends updatedAt (if non-empty) and modifiedAt as the last
// fields of a JSON object; it reuses body's spare capacity (body must not be
// used afterwards). Timestamps are formatTime output: no escaping needed.
func appendTimes(body []byte, updatedAt, modifiedAt string) []byte {
	out := body[:len(body)-1] // drop the closing brace
	open := len(out) == 1
	add := func(name, v string) {
		if !open {
			out = append(out, ',')
		}
		open = false
		out = append(out, '"')
		out = append(out, name...)
		out = append(out, `":"`...)
		out = append(out, v...)
		out = append(out, '"')
	}
	if updatedAt != "" {
		add("updatedAt", updatedAt)
	}
	if modifiedAt != "" {
		add("modifiedAt", modifiedAt)
	}
	return append(out, '}')
}

// deletedItem builds the minimal payload of a vanished item: the fields of
// prev.Identity named in fields (in that order, strings as stored, "Id"
// fields named in intFields as numbers), then "deleted": true and modifiedAt.
func deletedItem(feed string, prev PrevItem, fields []string, intFields map[string]bool, modifiedAt string) Item {
	var b strings.Builder
	b.WriteByte('{')
	first := true
	for _, f := range fields {
		v, ok := prev.Identity[f]
		if !ok {
			continue
		}
		if !first {
			b.WriteByte(',')
		}
		first = false
		b.WriteString(strconv.Quote(f))
		b.WriteByte(':')
		if intFields[f] {
			if _, err := strconv.ParseInt(v, 10, 64); err == nil {
				b.WriteString(v)
				continue
			}
		}
		b.WriteString(jsonString(v))
	}
	if !first {
		b.WriteByte(',')
	}
	b.WriteString(`"deleted":true}`)
	body := []byte(b.String())
	ident := make(map[string]string, len(prev.Identity))
	for k, v := range prev.Identity {
		ident[k] = v
	}
	return Item{
		Feed: feed, ID: prev.ID, EntityKey: prev.EntityKey, Identity: ident,
		Hash: HashJSON(body), Data: appendTimes(body, "", modifiedAt), Deleted: true,
	}
}

func jsonString(s string) string {
	b, _ := canonical(s) // strings always encode
	return string(b)
}

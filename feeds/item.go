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
	Data     json.RawMessage // canonical JSON of the whole item
	Hash     string          // feed_hash: sha1 of Data without modifiedAt/updatedAt
	Deleted  bool
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
	h := sha1.New()
	for i, v := range values {
		if i > 0 {
			h.Write([]byte{0})
		}
		h.Write([]byte(v))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// HashJSON is the feed_hash of an item's canonical JSON with modifiedAt and
// updatedAt already removed.
func HashJSON(b []byte) string {
	s := sha1.Sum(b)
	return hex.EncodeToString(s[:])
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
	var body []byte
	if a, ok := payload.(jsonAppender); ok {
		body = a.appendJSON(make([]byte, 0, 2048))
	} else {
		var err error
		if body, err = canonical(payload); err != nil {
			return Item{}, fmt.Errorf("%s: encode item of entity %s: %w", feed, entityKey, err)
		}
	}
	vals := make([]string, len(identityFields))
	for i, f := range identityFields {
		vals[i] = identity[f]
	}
	it := Item{Feed: feed, ID: FeedID(vals...), EntityKey: entityKey, Identity: identity, Hash: HashJSON(body)}
	it.Data = appendTimes(body, updatedAt, modifiedAt)
	return it, nil
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

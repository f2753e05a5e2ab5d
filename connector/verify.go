package connector

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/feedcdc/feedcdc/connector/snapshot"
	"github.com/feedcdc/feedcdc/feeds"
	"github.com/feedcdc/feedcdc/state"
)

// OpVerify names feedcdc verify in logs.
const OpVerify = "verify"

// Results of feedcdc verify, per item. The first six compare the source
// with the state store; the *AtDestination ones compare it with what a
// sink holds (read-back).
const (
	VerifyEqual     = "equal"     // built item equals what the state records as delivered
	VerifyStale     = "stale"     // delivered, but its feed_hash differs from the built item's
	VerifyMissing   = "missing"   // built, but never delivered or recorded as deleted
	VerifyOrphaned  = "orphaned"  // recorded as live, but the source no longer builds it
	VerifyUnsettled = "unsettled" // pending, failed, rejected or deferred (big transaction): in flight, not drift
	// VerifyMissingAtDest: the sink has no record of a built item, or its
	// last record is a deleted payload or a tombstone.
	VerifyMissingAtDest = "missing_at_destination"
	// VerifyDiffersAtDest: the sink's last record differs from the built
	// item: its bytes without modifiedAt/updatedAt do not hash to the
	// item's feed_hash.
	VerifyDiffersAtDest = "differs_at_destination"
	// VerifyOrphanedAtDest: the sink's last record is live but the source
	// builds no such item.
	VerifyOrphanedAtDest = "orphaned_at_destination"
)

// VerifyResults lists the results in report order.
var VerifyResults = []string{VerifyEqual, VerifyStale, VerifyMissing, VerifyOrphaned, VerifyUnsettled,
	VerifyMissingAtDest, VerifyDiffersAtDest, VerifyOrphanedAtDest}

// isDrift reports whether a result is drift (what --repair sends).
func isDrift(result string) bool {
	return result != VerifyEqual && result != VerifyUnsettled
}

// Destination is a sink whose output verify can read back.
type Destination interface {
	Name() string
	// ReadFeed hands every record the sink holds for the feed to fn, in
	// write order: its feed_id when the sink stored it ("" otherwise), key
	// (may be nil) and value (nil: a tombstone).
	ReadFeed(ctx context.Context, feed string, fn func(id string, key, value []byte) error) error
}

// VerifyOptions are the options of feedcdc verify.
type VerifyOptions struct {
	Feed string
	// ByIDs limits the check to these entities (as ResyncOptions.ByIDs).
	ByIDs  []string
	IDType string
	// Repair exports exactly the differing items (deleted payloads for
	// orphans) through the normal export path; without it nothing is sent
	// or written except the report.
	Repair bool
	// Destinations are read back and compared with the built items.
	Destinations []Destination
	// Examples is how many examples of each drift result are kept
	// (default 10).
	Examples int
	// BatchSize keys per chunk, ThreadCount chunks built in parallel.
	BatchSize   int
	ThreadCount int
	// Throttle paces the chunks of keys read, as for a resync.
	Throttle *snapshot.Throttle
	// Owner names who runs it (for the feed lock).
	Owner string
}

// VerifyExample is one differing item.
type VerifyExample struct {
	Result    string            `json:"result"`
	FeedID    string            `json:"feed_id"`
	EntityKey string            `json:"entity_key"`
	Identity  map[string]string `json:"identity"`
	Status    int               `json:"status,omitempty"` // stored status (unsettled)
	Sink      string            `json:"sink,omitempty"`   // destination results
	// Fields are the top-level fields that differ, when the last delivered
	// payload is known (read back from the destination).
	Fields []string `json:"fields,omitempty"`

	built json.RawMessage
}

// VerifyResult is what a verify found (and repaired).
type VerifyResult struct {
	Feed string `json:"feed"`
	// Checked counts the items compared with the state: built items plus
	// live recorded items the source no longer builds.
	Checked int64 `json:"checked"`
	// Counts by result (VerifyResults).
	Counts   map[string]int64 `json:"counts"`
	Drift    int64            `json:"drift"`
	Examples []VerifyExample  `json:"examples"`
	// ReadBack names the sinks read back; DestinationRecords how many
	// distinct items they held for the feed.
	ReadBack           []string `json:"read_back,omitempty"`
	DestinationRecords int64    `json:"destination_records,omitempty"`
	// Repaired are the export statistics of --repair.
	Repair *ExportStats `json:"repair,omitempty"`
	// Throttle is what the throttle did: chunks of keys paced and how
	// many of them waited (rows_per_second, max_replica_lag).
	Throttle  *snapshot.ThrottleStats `json:"throttle,omitempty"`
	StartedAt time.Time               `json:"started_at"`
	Elapsed   time.Duration           `json:"elapsed_ns"`
}

// Report is the summary kept in the state store.
func (r *VerifyResult) Report() state.VerifyReport {
	rep := state.VerifyReport{Feed: r.Feed, StartedAt: r.StartedAt, FinishedAt: r.StartedAt.Add(r.Elapsed), Drift: r.Drift,
		Counts: map[string]int64{"checked": r.Checked}}
	for k, v := range r.Counts {
		rep.Counts[k] = v
	}
	if r.Repair != nil {
		rep.Repaired = int64(r.Repair.Sent)
	}
	for _, e := range r.Examples {
		rep.Sample = append(rep.Sample, e.Result+" "+e.FeedID+" "+identityString(e.Identity))
	}
	return rep
}

func identityString(id map[string]string) string {
	keys := make([]string, 0, len(id))
	for k := range id {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(k + "=" + id[k])
	}
	return b.String()
}

// destRecord is the last record a destination holds for a feed_id.
type destRecord struct {
	sum     [sha1.Size]byte // sha1 of the payload without its times (stripTimes)
	deleted bool            // deleted payload or tombstone
	seen    bool            // matched with a built item
}

type destIndex struct {
	name string
	recs map[string]*destRecord
	// loaded is when the read began: items sent after it may be
	// missing from what was read and are not compared.
	loaded time.Time
}

// verifyRun is the state of one verify.
type verifyRun struct {
	p     *Pipeline
	f     feeds.Feed
	vo    VerifyOptions
	pol   FeedPolicy
	res   *VerifyResult
	dests []*destIndex
	// prevHi is the last entity key (state order) already compared.
	prevHi  string
	perKind map[string]int
	fetch   map[string]*VerifyExample // destination examples whose payload to fetch
	repair  ExportStats
}

// Verify compares what the source builds now with what the state store
// records as delivered (and, with Destinations, with what the sinks hold),
// enumerating the feed's entities in primary-key chunks like a resync and
// walking the state's entity keys of the feed once alongside (merged in
// entity order), so that each entity is built once. Each chunk is compared
// on the exporter goroutine, between stream batches, so the state it reads
// is consistent with what was exported. With Repair the differing items are
// exported there and then.
func (p *Pipeline) Verify(ctx context.Context, vo VerifyOptions) (VerifyResult, error) {
	start := p.o.Now()
	res := VerifyResult{Feed: vo.Feed, Counts: map[string]int64{}, StartedAt: start, Examples: []VerifyExample{}}
	if p.o.Registry == nil {
		return res, errors.New("connector: no feeds are enabled")
	}
	f, ok := p.o.Registry.Feed(vo.Feed)
	if !ok {
		return res, fmt.Errorf("connector: unknown or disabled feed %q; enabled feeds: %s", vo.Feed, strings.Join(p.FeedNames(), ", "))
	}
	if vo.BatchSize <= 0 {
		vo.BatchSize = 500
	}
	if vo.ThreadCount <= 0 {
		vo.ThreadCount = 1
	}
	if vo.Examples <= 0 {
		vo.Examples = 10
	}
	owner := vo.Owner
	if owner == "" {
		owner = fmt.Sprintf("verify(pid %d)", os.Getpid())
	}
	release, err := p.o.Store.AcquireFeedLock(ctx, vo.Feed, owner)
	if err != nil {
		return res, fmt.Errorf("connector: verify %s: %w", vo.Feed, err)
	}
	defer release()
	for _, k := range VerifyResults {
		res.Counts[k] = 0
	}
	v := &verifyRun{p: p, f: f, vo: vo, pol: p.o.policy(vo.Feed), res: &res, perKind: map[string]int{}, fetch: map[string]*VerifyExample{}}
	log := p.o.Logger.With("feed", vo.Feed, "operation", OpVerify)
	log.Info("start processing", "batch_size", vo.BatchSize, "threads", vo.ThreadCount, "repair", vo.Repair, "read_back", len(vo.Destinations))
	for _, d := range vo.Destinations {
		idx, err := v.readDestination(ctx, d)
		if err != nil {
			return res, err
		}
		v.dests = append(v.dests, idx)
		res.ReadBack = append(res.ReadBack, d.Name())
		res.DestinationRecords += int64(len(idx.recs))
	}

	// The keys go through the full sync's pacedChunks (the throttle holds
	// from the first chunk of batch_size keys); thread_count chunks make
	// one exporter job, whose builds run in parallel.
	var group []string
	chunks := 0
	flush := func(upTo string) error {
		keys := group
		group, chunks = nil, 0
		return p.Do(ctx, func(ctx context.Context) error { return v.chunk(ctx, keys, upTo) })
	}
	collect := func(keys []string) error {
		group = append(group, keys...)
		if chunks++; chunks < vo.ThreadCount {
			return nil
		}
		upTo := ""
		if len(vo.ByIDs) == 0 {
			upTo = maxEntity(group)
		}
		return flush(upTo)
	}
	var enumerate func(context.Context, func([]string) error) error
	if len(vo.ByIDs) > 0 {
		keys, err := p.resolveIDs(ctx, f, vo.ByIDs, vo.IDType)
		if err != nil {
			return res, err
		}
		enumerate = func(_ context.Context, emit func([]string) error) error { return emit(keys) }
	} else {
		enumerate = f.Scan
	}
	err = pacedChunks(ctx, enumerate, func() int { return vo.BatchSize }, vo.Throttle, collect)
	if err == nil && (len(group) > 0 || len(vo.ByIDs) == 0) {
		// For a full verify the last job also takes every entity the
		// state knows after the last scanned key.
		err = flush("")
	}
	if err == nil && len(vo.ByIDs) == 0 {
		err = p.Do(ctx, v.destOrphans)
	}
	if err != nil {
		return res, fmt.Errorf("connector: verify %s: %w", vo.Feed, err)
	}
	if vo.Throttle != nil {
		ts := vo.Throttle.Stats()
		res.Throttle = &ts
	}
	if err := v.fetchExamples(ctx); err != nil {
		return res, err
	}
	if vo.Repair {
		rs := v.repair
		res.Repair = &rs
	}
	for k, n := range res.Counts {
		if isDrift(k) {
			res.Drift += n
		}
	}
	res.Elapsed = p.o.Now().Sub(start)
	log.Info("verify complete", "checked", res.Checked, "equal", res.Counts[VerifyEqual], "stale", res.Counts[VerifyStale],
		"missing", res.Counts[VerifyMissing], "orphaned", res.Counts[VerifyOrphaned], "unsettled", res.Counts[VerifyUnsettled],
		"missing_at_destination", res.Counts[VerifyMissingAtDest], "differs_at_destination", res.Counts[VerifyDiffersAtDest],
		"orphaned_at_destination", res.Counts[VerifyOrphanedAtDest], "drift", res.Drift, "repaired", v.repair.Sent,
		"elapsed", res.Elapsed.Round(time.Millisecond).String())
	return res, nil
}

// maxEntity is the greatest key in entity order.
func maxEntity(keys []string) string {
	m := keys[0]
	for _, k := range keys[1:] {
		if state.EntityLess(m, k) {
			m = k
		}
	}
	return m
}

// note counts one item's result and keeps it as an example if there is
// room for its kind.
func (v *verifyRun) note(result string, it feeds.Item, status int, sink string) *VerifyExample {
	v.res.Counts[result]++
	if !isDrift(result) && result != VerifyUnsettled {
		return nil
	}
	if v.perKind[result] >= v.vo.Examples {
		return nil
	}
	v.perKind[result]++
	v.res.Examples = append(v.res.Examples, VerifyExample{Result: result, FeedID: it.ID, EntityKey: it.EntityKey, Identity: it.Identity,
		Status: status, Sink: sink, built: bytes.Clone(it.Data)}) // kept to the end: not the Build's shared buffer
	return &v.res.Examples[len(v.res.Examples)-1]
}

// chunk compares the items of some scanned entity keys (and, for a full
// verify, of the entities the state knows in (prevHi, upTo], upTo "" = to
// the end) and repairs what differs. It runs on the exporter goroutine.
func (v *verifyRun) chunk(ctx context.Context, keys []string, upTo string) error {
	p, feed := v.p, v.vo.Feed
	seen := make(map[string]bool, len(keys))
	uniq := keys[:0:0]
	for _, k := range keys {
		if !seen[k] {
			seen[k] = true
			uniq = append(uniq, k)
		}
	}
	keys = uniq
	if len(v.vo.ByIDs) == 0 {
		// Entities the state knows in this range that the scan did not
		// list: their recorded live items are orphans (unless they build
		// after all).
		for after := v.prevHi; ; {
			sk, more, err := p.o.Store.EntitiesBetween(ctx, feed, after, upTo, 1000)
			if err != nil {
				return err
			}
			for _, k := range sk {
				if !seen[k] {
					seen[k] = true
					keys = append(keys, k)
				}
			}
			if !more {
				break
			}
			after = sk[len(sk)-1]
		}
		if upTo != "" {
			v.prevHi = upTo
		}
	}
	if len(keys) == 0 {
		return nil
	}
	sort.Slice(keys, func(i, j int) bool { return state.EntityLess(keys[i], keys[j]) })
	built, err := v.build(ctx, keys)
	if err != nil {
		return err
	}
	if len(v.pol.Stores) > 0 || len(v.pol.Websites) > 0 {
		kept := built[:0:0]
		for _, it := range built {
			if v.pol.keep(it) {
				kept = append(kept, it)
			}
		}
		built = kept
	}
	_, prevByID, err := loadPrev(ctx, p.o.Store, feed, keys)
	if err != nil {
		return fmt.Errorf("read state of %s: %w", feed, err)
	}
	// Keys of a big transaction waiting in the deferred set are in
	// flight, not drift: the exporter builds them later (docs/verify.md).
	// The exporter runs this, so none is built while it compares.
	deferred, err := p.o.Store.DeferredAmong(ctx, feed, keys)
	if err != nil {
		return fmt.Errorf("read deferred keys of %s: %w", feed, err)
	}
	var send []feeds.Item
	builtIDs := make(map[string]bool, len(built))
	for _, it := range built {
		if builtIDs[it.ID] {
			continue
		}
		builtIDs[it.ID] = true
		v.markSeen(it.ID)
		v.res.Checked++
		pv, known := prevByID[it.ID]
		switch {
		case deferred[it.EntityKey]:
			v.note(VerifyUnsettled, it, pv.Status, "")
			continue
		case !known || pv.Deleted:
			v.note(VerifyMissing, it, pv.Status, "")
			send = append(send, it)
			continue
		case pv.Status != state.StatusSent:
			v.note(VerifyUnsettled, it, pv.Status, "")
			continue
		case pv.Hash != it.Hash:
			v.note(VerifyStale, it, pv.Status, "")
			send = append(send, it)
			continue
		}
		if result, sink := v.compareDest(it, pv); result != "" {
			if e := v.note(result, it, pv.Status, sink); e != nil && result == VerifyDiffersAtDest {
				v.fetch[it.ID] = e
			}
			send = append(send, it)
			continue
		}
		v.res.Counts[VerifyEqual]++
	}
	// Recorded items of these entities that the source no longer builds.
	for _, pv := range prevByID {
		if builtIDs[pv.ID] {
			continue
		}
		v.markSeen(pv.ID)
		if deferred[pv.EntityKey] {
			v.res.Checked++
			v.note(VerifyUnsettled, feeds.Item{ID: pv.ID, EntityKey: pv.EntityKey, Identity: pv.Identity}, pv.Status, "")
			continue
		}
		if pv.Deleted {
			if !state.IsFinal(pv.Status) {
				v.res.Checked++
				v.note(VerifyUnsettled, feeds.Item{ID: pv.ID, EntityKey: pv.EntityKey, Identity: pv.Identity}, pv.Status, "")
			}
			continue
		}
		v.res.Checked++
		del := v.f.DeletedPayload(loadPrevItem(pv))
		v.note(VerifyOrphaned, del, pv.Status, "")
		send = append(send, del)
	}
	if !v.vo.Repair || len(send) == 0 {
		return nil
	}
	return v.send(ctx, send, prevByID)
}

// send exports items through the normal export path and records their
// states.
func (v *verifyRun) send(ctx context.Context, items []feeds.Item, prev map[string]state.Item) error {
	var w writeSet
	var st ExportStats
	st.Keys = len(items)
	if err := v.p.exportItems(ctx, v.vo.Feed, v.pol, items, prev, &w, &st); err != nil {
		return fmt.Errorf("repair: %w", err)
	}
	if err := v.p.o.Store.Update(ctx, w.apply); err != nil {
		return fmt.Errorf("repair: persist items: %w", err)
	}
	if st.Sent > 0 {
		v.p.synced(v.vo.Feed, v.p.o.Now())
	}
	v.repair.add(st)
	return nil
}

// build builds keys in chunks of BatchSize, ThreadCount chunks at a time,
// and returns the items in key order.
func (v *verifyRun) build(ctx context.Context, keys []string) ([]feeds.Item, error) {
	size := v.vo.BatchSize
	n := (len(keys) + size - 1) / size
	out := make([][]feeds.Item, n)
	errs := make([]error, n)
	sem := make(chan struct{}, v.vo.ThreadCount)
	var wg sync.WaitGroup
	for i := range n {
		c := keys[i*size : min((i+1)*size, len(keys))]
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			t0 := v.p.o.Now()
			out[i], errs[i] = v.f.Build(ctx, c)
			if errs[i] != nil {
				errs[i] = fmt.Errorf("build %s for %d keys (%s..%s): %w", v.vo.Feed, len(c), c[0], c[len(c)-1], errs[i])
			} else if v.p.o.Observer != nil {
				v.p.o.Observer.Built(v.vo.Feed, len(out[i]), v.p.o.Now().Sub(t0))
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return slices.Concat(out...), nil
}

// readDestination reads a destination's records of the feed into an index
// of the last record per feed_id.
func (v *verifyRun) readDestination(ctx context.Context, d Destination) (*destIndex, error) {
	idx := &destIndex{name: d.Name(), recs: map[string]*destRecord{}, loaded: v.p.o.Now()}
	fields := v.f.IdentityFields()
	err := d.ReadFeed(ctx, v.vo.Feed, func(id string, key, value []byte) error {
		var rec destRecord
		src := value
		if len(value) == 0 || bytes.Equal(value, []byte("null")) {
			src, rec.deleted = key, true
		}
		if id == "" {
			// No stored feed_id: decode the identity fields.
			var m map[string]json.RawMessage
			if err := json.Unmarshal(src, &m); err != nil || m == nil {
				return fmt.Errorf("record %.200s (key %.200s) is not a JSON object: %v", value, key, err)
			}
			if id = rawFeedID(m, fields); id == "" {
				return nil
			}
		}
		if !rec.deleted {
			body := stripTimes(value)
			// feedcdc's deleted payloads end with "deleted":true.
			rec.deleted = bytes.HasSuffix(body, []byte(`"deleted":true}`))
			rec.sum = sha1.Sum(body)
		}
		idx.recs[id] = &rec
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("connector: verify %s: read back sink %s: %w", v.vo.Feed, d.Name(), err)
	}
	return idx, nil
}

// decodeObject parses a JSON object, keeping numbers exact.
func decodeObject(b []byte) (map[string]any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		return nil, err
	}
	if m == nil {
		return nil, errors.New("not a JSON object")
	}
	return m, nil
}

// feedIDOf is the feed_id of a payload (or record key) holding the feed's
// identity fields; "" when one is missing.
func feedIDOf(m map[string]any, fields []string) string {
	vals := make([]string, len(fields))
	for i, f := range fields {
		switch x := m[f].(type) {
		case string:
			vals[i] = x
		case json.Number:
			vals[i] = x.String()
		default:
			return ""
		}
	}
	return feeds.FeedID(vals...)
}

// rawFeedID is feedIDOf for a payload decoded one level deep.
func rawFeedID(m map[string]json.RawMessage, fields []string) string {
	vals := make([]string, len(fields))
	for i, f := range fields {
		raw, ok := m[f]
		if !ok {
			return ""
		}
		if err := json.Unmarshal(raw, &vals[i]); err != nil {
			vals[i] = string(raw) // a number
		}
	}
	return feeds.FeedID(vals...)
}

// stripTimes removes the trailing modifiedAt and updatedAt fields feedcdc
// appends to every payload, leaving the bytes its feed_hash is taken over
// (feeds.Item.Hash): a record feedcdc wrote has sha1(stripTimes(value)) ==
// the hash of the item it was built from.
func stripTimes(v []byte) []byte {
	b := bytes.TrimRight(v, " \r\n")
	for _, f := range []string{`,"modifiedAt":"`, `,"updatedAt":"`} {
		i := bytes.LastIndex(b, []byte(f))
		if i < 0 {
			continue
		}
		rest := b[i+len(f):]
		if j := bytes.IndexByte(rest, '"'); j < 0 || string(rest[j:]) != `"}` {
			continue // not the last field
		}
		b = append(b[:i:i], '}')
	}
	return b
}

// compareDest compares a built item whose state is equal with every
// destination read back; it returns the first difference found.
func (v *verifyRun) compareDest(it feeds.Item, pv state.Item) (result, sink string) {
	if len(v.dests) == 0 {
		return "", ""
	}
	var sum [sha1.Size]byte
	if _, err := hex.Decode(sum[:], []byte(it.Hash)); err != nil {
		return "", ""
	}
	for _, d := range v.dests {
		r := d.recs[it.ID]
		if result != "" || pv.SentAt.After(d.loaded) || pv.ModifiedAt.After(d.loaded) {
			continue // sent after the destination was read
		}
		if r == nil || r.deleted {
			result, sink = VerifyMissingAtDest, d.name
			continue
		}
		if r.sum != sum {
			result, sink = VerifyDiffersAtDest, d.name
		}
	}
	return result, sink
}

// markSeen marks a feed_id as accounted for in every destination index.
func (v *verifyRun) markSeen(id string) {
	for _, d := range v.dests {
		if r := d.recs[id]; r != nil {
			r.seen = true
		}
	}
}

// destOrphans reports the live records the destinations hold for items
// the source did not build, and with Repair sends their deleted payloads:
// from the state's record of the item when it knows it, otherwise from the
// destination's own record (orphansUnknown). It runs on the exporter
// goroutine after the last chunk.
func (v *verifyRun) destOrphans(ctx context.Context) error {
	var ids []string
	sinkOf := map[string]string{}
	for _, d := range v.dests {
		for id, r := range d.recs {
			if r.seen || r.deleted {
				continue
			}
			if _, dup := sinkOf[id]; !dup {
				ids = append(ids, id)
				sinkOf[id] = d.name
			}
		}
	}
	if len(ids) == 0 {
		return nil
	}
	sort.Strings(ids)
	var send []feeds.Item
	prev := map[string]state.Item{}
	unknown := map[string]bool{}
	for len(ids) > 0 {
		page := ids[:min(len(ids), 1000)]
		ids = ids[len(page):]
		known, err := v.p.o.Store.Items(ctx, v.vo.Feed, page)
		if err != nil {
			return err
		}
		for _, id := range page {
			it, ok := known[id]
			if !ok {
				unknown[id] = true
				continue
			}
			if it.ModifiedAt.After(v.dests[0].loaded) {
				continue // recorded after the destination was read
			}
			item := v.f.DeletedPayload(loadPrevItem(it))
			prev[id] = it
			send = append(send, item)
			v.note(VerifyOrphanedAtDest, item, it.Status, sinkOf[id])
		}
	}
	if len(unknown) > 0 {
		items, err := v.orphansUnknown(ctx, unknown)
		if err != nil {
			return err
		}
		for _, id := range sortedIDs(unknown) {
			item, ok := items[id]
			if !ok {
				// A record without the fields of a deleted payload
				// (not written by feedcdc): reported, not repaired.
				item = feeds.Item{ID: id}
			} else {
				send = append(send, item)
			}
			v.note(VerifyOrphanedAtDest, item, 0, sinkOf[id])
		}
	}
	if !v.vo.Repair || len(send) == 0 {
		return nil
	}
	return v.send(ctx, send, prev)
}

func sortedIDs(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for id := range m {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

// orphansUnknown makes the deleted payloads of live destination records the
// state has no item for (written under another state file, or kept by a
// destination restored from a backup after the state forgot the item): it
// reads the destinations again for those feed_ids and takes the identity
// and entity key from the last record of each — its top-level strings and
// numbers, the entity key being its productId (products, variants,
// productOverrides) or id (productAttributes), as the feeds build them.
// Records without one are left out.
func (v *verifyRun) orphansUnknown(ctx context.Context, ids map[string]bool) (map[string]feeds.Item, error) {
	fields := v.f.IdentityFields()
	last := map[string]map[string]string{}
	for _, d := range v.vo.Destinations {
		err := d.ReadFeed(ctx, v.vo.Feed, func(id string, _, value []byte) error {
			if len(value) == 0 || (id != "" && !ids[id]) {
				return nil
			}
			m, err := decodeObject(value)
			if err != nil {
				return nil
			}
			if id == "" {
				id = feedIDOf(m, fields)
			}
			if !ids[id] {
				return nil
			}
			ident := map[string]string{}
			for k, x := range m {
				switch x := x.(type) {
				case string:
					ident[k] = x
				case json.Number:
					ident[k] = x.String()
				}
			}
			last[id] = ident
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("connector: verify %s: read back sink %s: %w", v.vo.Feed, d.Name(), err)
		}
	}
	out := make(map[string]feeds.Item, len(last))
	for id, ident := range last {
		key := ident["productId"]
		if key == "" {
			key = ident["id"]
		}
		if key == "" {
			continue
		}
		item := v.f.DeletedPayload(feeds.PrevItem{ID: id, EntityKey: key, Identity: ident})
		// Keep in the state only the identity the deleted payload and the
		// record key use, not every field of the old record.
		body, err := decodeObject(item.Data)
		if err != nil {
			return nil, fmt.Errorf("connector: verify %s: deleted payload of %s: %w", v.vo.Feed, id, err)
		}
		kept := map[string]string{}
		for k, val := range item.Identity {
			if _, inBody := body[k]; inBody || slices.Contains(fields, k) {
				kept[k] = val
			}
		}
		item.Identity = kept
		out[id] = item
	}
	return out, nil
}

// fetchExamples reads the destinations again for the payloads of the
// differs_at_destination examples (at most Examples of them) and names the
// fields that differ from the built item.
func (v *verifyRun) fetchExamples(ctx context.Context) error {
	if len(v.fetch) == 0 {
		return nil
	}
	fields := v.f.IdentityFields()
	for _, d := range v.vo.Destinations {
		err := d.ReadFeed(ctx, v.vo.Feed, func(_ string, _, value []byte) error {
			if len(value) == 0 {
				return nil
			}
			m, err := decodeObject(value)
			if err != nil {
				return nil
			}
			e := v.fetch[feedIDOf(m, fields)]
			if e == nil || e.Sink != d.Name() {
				return nil
			}
			b, err := decodeObject(e.built)
			if err != nil {
				return nil
			}
			e.Fields = diffFields(b, m)
			return nil
		})
		if err != nil {
			return fmt.Errorf("connector: verify %s: read back sink %s: %w", v.vo.Feed, d.Name(), err)
		}
	}
	return nil
}

// diffFields names the top-level fields whose values differ (modifiedAt
// and updatedAt aside).
func diffFields(a, b map[string]any) []string {
	var out []string
	for k, av := range a {
		if k == "modifiedAt" || k == "updatedAt" {
			continue
		}
		ab, _ := json.Marshal(av)
		bb, _ := json.Marshal(b[k])
		if _, ok := b[k]; !ok || !bytes.Equal(ab, bb) {
			out = append(out, k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok && k != "modifiedAt" && k != "updatedAt" {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// Verify runs a verify of one feed, for the options left zero with the
// configured chunks (resync.batch_size, resync.thread_count) and its own
// throttle (verify.rows_per_second, verify.max_replica_lag), and keeps its
// report in the state store. The exporter must be running.
func (c *Connector) Verify(ctx context.Context, vo VerifyOptions) (VerifyResult, error) {
	rc := c.Config.Resync
	if vo.BatchSize <= 0 {
		vo.BatchSize = rc.BatchSize
	}
	if vo.ThreadCount <= 0 {
		vo.ThreadCount = rc.ThreadCount
	}
	if vc := c.Config.Verify; vo.Throttle == nil && (vc.RowsPerSecond > 0 || vc.MaxReplicaLag > 0) {
		vo.Throttle = &snapshot.Throttle{RowsPerSecond: float64(vc.RowsPerSecond), MaxLag: vc.MaxReplicaLag.D(),
			Lag: c.replicaLag, Logger: c.Logger, Name: vo.Feed}
	}
	var res VerifyResult
	err := c.retry.Do(ctx, "verify of "+vo.Feed, func(ctx context.Context) (err error) {
		res, err = c.Pipeline.Verify(ctx, vo)
		return err
	})
	rep := res.Report()
	if err != nil {
		rep.Error = err.Error()
		rep.FinishedAt = time.Now()
	}
	if perr := c.Store.PutVerifyReport(context.WithoutCancel(ctx), rep); perr != nil && err == nil {
		err = perr
	}
	if o, ok := c.observer.(interface {
		Verified(feed string, counts map[string]int64, drift int64)
	}); ok && err == nil {
		o.Verified(vo.Feed, res.Counts, res.Drift)
	}
	return res, err
}

// Destinations returns the sinks of a feed that verify can read back, and
// the names of those it cannot.
func (c *Connector) Destinations(feed string) (readable []Destination, unreadable []string) {
	if c.Router == nil {
		return nil, nil
	}
	for _, s := range c.Router.SinksFor(feed) {
		if d, ok := s.(Destination); ok {
			readable = append(readable, d)
		} else {
			unreadable = append(unreadable, s.Name())
		}
	}
	return readable, unreadable
}

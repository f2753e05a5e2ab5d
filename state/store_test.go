package state

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/feedcdc/feedcdc/change"
)

func sha1hex(s string) string {
	h := sha1.Sum([]byte(s))
	return hex.EncodeToString(h[:])
}

func openTemp(t *testing.T) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "state.db")
	st, err := Open(path, Options{Command: "feedcdc test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st, path
}

func mustCheck(t *testing.T, st *Store) {
	t.Helper()
	if err := st.Check(context.Background()); err != nil {
		t.Fatalf("state check: %v", err)
	}
}

func product(sku, view string, entity int, status int) Item {
	return Item{
		Feed:      "products",
		ID:        sha1hex(sku + "\x00" + view),
		EntityKey: strconv.Itoa(entity),
		Identity:  map[string]string{"sku": sku, "storeViewCode": view},
		Hash:      sha1hex("payload of " + sku + view),
		Status:    status,
	}
}

func put(t *testing.T, st *Store, items ...Item) {
	t.Helper()
	if err := st.Update(context.Background(), func(tx *Tx) error { return tx.PutItems(items) }); err != nil {
		t.Fatal(err)
	}
}

func TestOpenSecondOpenerNamesHolder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "state.db")
	h, line := startHelper(t, "hold", path)
	if line != "ready" {
		t.Fatalf("helper said %q", line)
	}
	_, err := Open(path, Options{LockTimeout: 200 * time.Millisecond})
	var ie *InUseError
	if !errors.As(err, &ie) || !errors.Is(err, ErrInUse) {
		t.Fatalf("second Open: got %v, want *InUseError", err)
	}
	if ie.Owner.PID != h.cmd.Process.Pid {
		t.Fatalf("owner pid %d, helper pid %d", ie.Owner.PID, h.cmd.Process.Pid)
	}
	want := fmt.Sprintf("state file %s is in use by pid %d (feedcdc run on host ", path, h.cmd.Process.Pid)
	if !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "stop it") {
		t.Fatalf("error %q does not contain %q", err, want)
	}
	// Once the holder is gone (even by SIGKILL) the file opens again and
	// the owner record becomes ours.
	h.kill(t)
	st, err := Open(path, Options{LockTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatalf("open after holder died: %v", err)
	}
	o, err := readOwnerFile(ownerPath(path))
	if err != nil || o.PID != os.Getpid() || o.Instance != st.Owner().Instance {
		t.Fatalf("owner record %+v, %v", o, err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(ownerPath(path)); !os.IsNotExist(err) {
		t.Fatalf("owner record left after Close: %v", err)
	}
	if err := st.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, _, _, err := st.Checkpoint(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("read after Close: %v", err)
	}
}

func TestOpenRejectsForeignFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	if err := os.WriteFile(path, []byte(strings.Repeat("not a bbolt file\n", 1000)), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Open(path, Options{})
	if err == nil || !strings.Contains(err.Error(), "not a readable feedcdc state file") {
		t.Fatalf("Open of a foreign file: %v", err)
	}
	if _, err := Open("", Options{}); err == nil || !strings.Contains(err.Error(), "empty path") {
		t.Fatalf("Open(\"\"): %v", err)
	}
}

func TestCheckpointWrittenOnlyWithItsItems(t *testing.T) {
	ctx := context.Background()
	st, path := openTemp(t)
	if _, _, ok, err := st.Checkpoint(ctx); err != nil || ok {
		t.Fatalf("fresh store checkpoint ok=%v err=%v", ok, err)
	}
	pos1 := change.Position{Flavor: "mariadb", GTIDSet: "0-1-100", File: "mariadb-bin.000003", Pos: 4711}
	at := time.Date(2026, 11, 29, 10, 0, 0, 123456000, time.UTC)
	err := st.Update(ctx, func(tx *Tx) error {
		if err := tx.PutItems([]Item{product("A", "default", 1, StatusSent)}); err != nil {
			return err
		}
		return tx.SetCheckpoint(pos1, at)
	})
	if err != nil {
		t.Fatal(err)
	}
	// A failing flush rolls back its items and its checkpoint together.
	boom := errors.New("sink said no")
	err = st.Update(ctx, func(tx *Tx) error {
		if err := tx.PutItems([]Item{product("B", "default", 2, StatusSent)}); err != nil {
			return err
		}
		if err := tx.SetCheckpoint(change.Position{GTIDSet: "0-1-200"}, time.Now()); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update error %v", err)
	}
	if err := st.Update(ctx, func(tx *Tx) error { return tx.SetCheckpoint(change.Position{}, time.Now()) }); err == nil {
		t.Fatal("empty checkpoint accepted")
	}
	st.Close()
	st, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	pos, gotAt, ok, err := st.Checkpoint(ctx)
	if err != nil || !ok || pos != pos1 || !gotAt.Equal(at) {
		t.Fatalf("checkpoint %v at %v ok=%v err=%v; want %v at %v", pos, gotAt, ok, err, pos1, at)
	}
	m, err := st.Items(ctx, "products", []string{sha1hex("A\x00default"), sha1hex("B\x00default")})
	if err != nil || len(m) != 1 {
		t.Fatalf("items after rollback: %v %v", m, err)
	}
	// Writes in a read transaction are refused.
	err = st.View(ctx, func(tx *Tx) error { return tx.SetCheckpoint(pos1, at) })
	if !errors.Is(err, ErrReadOnly) {
		t.Fatalf("write in View: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := st.Update(cctx, func(tx *Tx) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("Update with cancelled context: %v", err)
	}
}

func TestItemRoundTripAndEncoding(t *testing.T) {
	ctx := context.Background()
	st, _ := openTemp(t)
	ts := time.Date(2026, 1, 2, 3, 4, 5, 678901000, time.UTC)
	full := Item{
		Feed:        "products",
		ID:          sha1hex("sku-1\x00default"),
		EntityKey:   "42",
		Identity:    map[string]string{"sku": "sku-1 ünïcode 🚀", "storeViewCode": "default", "websiteCode": "base"},
		Hash:        sha1hex("x"),
		Status:      StatusRetryableFailure,
		Attempts:    3,
		LastError:   "HTTP 503: upstream unavailable",
		RequestID:   "8f14e45f-ceea-467a-9575-7f1c1b0e0b8a",
		ModifiedAt:  ts,
		SentAt:      ts.Add(time.Second),
		NextAttempt: ts.Add(time.Minute),
		Deleted:     true,
		Attention:   true,
	}
	odd := Item{Feed: "raw.feed", ID: "not-a-sha1 id/with:stuff", EntityKey: "", Hash: "NOT-HEX", Status: -1,
		Identity: map[string]string{"customField": "v", "": "empty key", "sku": ""}, RequestID: "8F14E45F-CEEA-467A-9575-7F1C1B0E0B8A"}
	upperHex := Item{Feed: "products", ID: strings.ToUpper(sha1hex("u")), EntityKey: "7", Hash: "abc", Status: 400, RequestID: "req-42"}
	put(t, st, full, odd, upperHex)
	for _, want := range []Item{full, odd, upperHex} {
		got, ok, err := st.Item(ctx, want.Feed, want.ID)
		if err != nil || !ok {
			t.Fatalf("item %s: ok=%v err=%v", want.ID, ok, err)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, want)
		}
	}
	if _, ok, err := st.Item(ctx, "products", "missing"); ok || err != nil {
		t.Fatalf("missing item ok=%v err=%v", ok, err)
	}
	if _, ok, err := st.Item(ctx, "nofeed", "x"); ok || err != nil {
		t.Fatalf("missing feed ok=%v err=%v", ok, err)
	}
	// Attention is dropped when the status is not 2.
	sent := full
	sent.Status = StatusSent
	put(t, st, sent)
	got, _, _ := st.Item(ctx, "products", full.ID)
	if got.Attention {
		t.Fatal("Attention kept on a sent item")
	}
	// Bad input is refused with a clear error.
	if err := st.Update(ctx, func(tx *Tx) error { return tx.PutItems([]Item{{Feed: "products"}}) }); err == nil || !strings.Contains(err.Error(), "empty feed id") {
		t.Fatalf("empty id: %v", err)
	}
	if err := st.Update(ctx, func(tx *Tx) error { return tx.PutItems([]Item{{ID: "x"}}) }); err == nil || !strings.Contains(err.Error(), "empty feed name") {
		t.Fatalf("empty feed: %v", err)
	}
	if err := st.Update(ctx, func(tx *Tx) error { return tx.PutItems([]Item{{Feed: "f", ID: "x", Status: 70000}}) }); err == nil {
		t.Fatal("status 70000 accepted")
	}
	// A corrupt value is reported, not misread.
	if _, err := decodeItem("f", "x", "", []byte{1, 0, 2}); !errors.Is(err, errCorrupt) {
		t.Fatalf("decode of truncated item: %v", err)
	}
	if _, err := decodeItem("f", "x", "", []byte{9}); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("decode of future version: %v", err)
	}
	mustCheck(t, st)
}

func TestEntityIndexFollowsPutsAndDeletes(t *testing.T) {
	ctx := context.Background()
	st, _ := openTemp(t)
	a1 := product("A", "default", 1, StatusSent)
	a2 := product("A", "fr", 1, StatusSent)
	a3 := product("A", "de", 1, StatusRetryableFailure)
	b1 := product("B", "default", 2, StatusSent)
	put(t, st, a1, a2, a3, b1)
	m, err := st.ItemsByEntity(ctx, "products", []string{"1", "2", "3", "1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(m["1"]) != 3 || len(m["2"]) != 1 || len(m) != 2 {
		t.Fatalf("ItemsByEntity: %v", m)
	}
	// "1" must not match entity "10"'s items by prefix.
	put(t, st, product("C", "default", 10, StatusSent))
	m, _ = st.ItemsByEntity(ctx, "products", []string{"1"})
	if len(m["1"]) != 3 {
		t.Fatalf("entity 1 has %d items", len(m["1"]))
	}
	// Re-keying an item to another entity moves its index entry.
	a2.EntityKey = "2"
	put(t, st, a2)
	m, _ = st.ItemsByEntity(ctx, "products", []string{"1", "2"})
	if len(m["1"]) != 2 || len(m["2"]) != 2 {
		t.Fatalf("after move: 1=%d 2=%d", len(m["1"]), len(m["2"]))
	}
	if err := st.Update(ctx, func(tx *Tx) error { return tx.DeleteItems("products", []string{a1.ID, a3.ID, "unknown"}) }); err != nil {
		t.Fatal(err)
	}
	m, _ = st.ItemsByEntity(ctx, "products", []string{"1"})
	if len(m) != 0 {
		t.Fatalf("entity 1 after deletes: %v", m)
	}
	c, _ := st.Counts(ctx, "products")
	if c != (Counts{Total: 3, Sent: 3}) {
		t.Fatalf("counts %+v", c)
	}
	mustCheck(t, st)
}

func TestCountsFollowStatusTransitions(t *testing.T) {
	ctx := context.Background()
	st, _ := openTemp(t)
	it := product("A", "default", 1, StatusPending)
	put(t, st, it)
	steps := []struct {
		mut  func(*Item)
		want Counts
	}{
		{func(i *Item) {}, Counts{Total: 1, Pending: 1}},
		{func(i *Item) { i.Status = StatusRetryableFailure; i.Attempts = 1 }, Counts{Total: 1, Failed: 1}},
		{func(i *Item) { i.Attention = true }, Counts{Total: 1, Failed: 1, Attention: 1}},
		{func(i *Item) { i.Status = StatusRejectedByService }, Counts{Total: 1, Rejected: 1}},
		{func(i *Item) { i.Status = StatusRejected; i.Deleted = true }, Counts{Total: 1, Rejected: 1, Deleted: 1}},
		{func(i *Item) { i.Status = StatusSent }, Counts{Total: 1, Sent: 1, Deleted: 1}},
		{func(i *Item) { i.Status = StatusDryRun; i.Deleted = false }, Counts{Total: 1, Pending: 1}},
	}
	for n, s := range steps {
		s.mut(&it)
		// Several puts of the same item in one transaction count once.
		err := st.Update(ctx, func(tx *Tx) error {
			if err := tx.PutItems([]Item{it, it}); err != nil {
				return err
			}
			c, err := tx.Counts("products")
			if err != nil || c != s.want {
				return fmt.Errorf("in-transaction counts %+v (%v), want %+v", c, err, s.want)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("step %d: %v", n, err)
		}
		if c, err := st.Counts(ctx, "products"); err != nil || c != s.want {
			t.Fatalf("step %d: counts %+v (%v), want %+v", n, c, err, s.want)
		}
		mustCheck(t, st)
	}
	if c, err := st.Counts(ctx, "nofeed"); err != nil || c != (Counts{}) {
		t.Fatalf("unknown feed counts %+v %v", c, err)
	}
}

func TestDueFailedUsesRetryOrder(t *testing.T) {
	ctx := context.Background()
	st, _ := openTemp(t)
	base := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	var items []Item
	for i := range 20 {
		it := product("S"+strconv.Itoa(i), "default", i, StatusRetryableFailure)
		it.NextAttempt = base.Add(time.Duration(19-i) * time.Minute) // reverse of id order
		it.Attempts = 1
		items = append(items, it)
	}
	items[0].Attention = true    // never due
	items[1].Status = StatusSent // not failed
	put(t, st, items...)
	due, err := st.DueFailed(ctx, "products", base.Add(10*time.Minute), 100)
	if err != nil {
		t.Fatal(err)
	}
	// Items 9..19 have NextAttempt <= base+10m; earliest first.
	if len(due) != 11 {
		t.Fatalf("%d due, want 11", len(due))
	}
	for i, it := range due {
		if want := items[19-i].ID; it.ID != want {
			t.Fatalf("due[%d] = %s, want %s", i, it.Identity["sku"], items[19-i].Identity["sku"])
		}
	}
	due, _ = st.DueFailed(ctx, "products", base.Add(time.Hour), 5)
	if len(due) != 5 || due[0].ID != items[19].ID {
		t.Fatalf("limited due: %d", len(due))
	}
	// Rescheduling moves the entry; success removes it.
	resched := items[19]
	resched.NextAttempt = base.Add(2 * time.Hour)
	resched.Attempts = 2
	ok := items[18]
	ok.Status = StatusSent
	put(t, st, resched, ok)
	due, _ = st.DueFailed(ctx, "products", base.Add(time.Hour), 100)
	if len(due) != 16 { // 20 - attention - sent - rescheduled - now sent
		t.Fatalf("%d due after reschedule, want 16", len(due))
	}
	for _, it := range due {
		if it.ID == resched.ID || it.ID == ok.ID || it.ID == items[0].ID {
			t.Fatalf("%s should not be due", it.Identity["sku"])
		}
	}
	mustCheck(t, st)
}

func TestNextBackoff(t *testing.T) {
	base, maxD := time.Second, time.Minute
	for attempts := 0; attempts < 70; attempts++ {
		want := base
		for i := 1; i < attempts && want < maxD; i++ {
			want *= 2
		}
		want = min(want, maxD)
		for range 50 {
			d := NextBackoff(attempts, base, maxD)
			if d < want/2 || d > want {
				t.Fatalf("NextBackoff(%d) = %v, want in [%v, %v]", attempts, d, want/2, want)
			}
		}
	}
	seen := map[time.Duration]bool{}
	for range 100 {
		seen[NextBackoff(5, base, maxD)] = true
	}
	if len(seen) < 10 {
		t.Fatalf("no jitter: %d distinct values", len(seen))
	}
	if d := NextBackoff(1, 0, 0); d < DefaultBackoffBase/2 || d > DefaultBackoffBase {
		t.Fatalf("default base: %v", d)
	}
	// The feed item contract: 200, 400 and 1 are final until the hash
	// changes; everything else is sent again (feeds.Diff decides with
	// IsFinal).
	for status, want := range map[int]bool{200: true, 400: true, 1: true, 2: false, -1: false, 0: false, 500: false} {
		if IsFinal(status) != want {
			t.Errorf("IsFinal(%d) = %v, want %v", status, !want, want)
		}
	}
}

func TestListItemsPagesFiltersAndSearches(t *testing.T) {
	ctx := context.Background()
	st, _ := openTemp(t)
	var items []Item
	statuses := []int{StatusSent, StatusRetryableFailure, StatusRejected, StatusRejectedByService, StatusSent}
	for i := range 100 {
		it := product(fmt.Sprintf("MB-%03d", i), "default", i, statuses[i%5])
		if i == 6 {
			it.Attention = true // status 2
		}
		items = append(items, it)
	}
	put(t, st, items...)

	collect := func(q ListQuery) []Item {
		t.Helper()
		var all []Item
		for pages := 0; ; pages++ {
			page, next, err := st.ListItems(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			if len(page) > q.Limit && q.Limit > 0 {
				t.Fatalf("page of %d > limit %d", len(page), q.Limit)
			}
			all = append(all, page...)
			if next == "" {
				return all
			}
			if pages > 200 {
				t.Fatal("paging does not end")
			}
			q.After = next
		}
	}
	ids := func(its []Item) []string {
		var s []string
		for _, it := range its {
			s = append(s, it.ID)
		}
		return s
	}
	// A full listing comes in entity order (numeric for same-length keys).
	all := collect(ListQuery{Feed: "products", Limit: 7})
	for i, it := range all {
		if it.EntityKey != strconv.Itoa(i) {
			t.Fatalf("full listing: item %d has entity %s", i, it.EntityKey)
		}
	}
	if len(all) != 100 {
		t.Fatalf("full listing: %d items", len(all))
	}
	if _, _, err := st.ListItems(ctx, ListQuery{Feed: "products", Statuses: []int{2}, After: "i00"}); err == nil || !strings.Contains(err.Error(), "does not belong") {
		t.Fatalf("cursor of another query: %v", err)
	}
	failed := collect(ListQuery{Feed: "products", Statuses: []int{StatusRetryableFailure, StatusRejected, StatusRejectedByService}, Limit: 9})
	if len(failed) != 60 || !slices.IsSorted(ids(failed)) {
		t.Fatalf("failed listing: %d items, sorted=%v", len(failed), slices.IsSorted(ids(failed)))
	}
	for _, it := range failed {
		if it.Status == StatusSent {
			t.Fatal("sent item in failed listing")
		}
	}
	sent := collect(ListQuery{Feed: "products", Statuses: []int{StatusSent}, Limit: 50})
	if len(sent) != 40 {
		t.Fatalf("sent listing: %d", len(sent))
	}
	att := collect(ListQuery{Feed: "products", Attention: true})
	if len(att) != 1 || att[0].Identity["sku"] != "MB-006" {
		t.Fatalf("attention listing: %v", att)
	}
	found := collect(ListQuery{Feed: "products", Search: "mb-04", Statuses: []int{StatusRetryableFailure}})
	if len(found) != 2 { // MB-041, MB-046
		t.Fatalf("search: %v", found)
	}
	for _, it := range found {
		if !strings.HasPrefix(it.Identity["sku"], "MB-04") {
			t.Fatalf("search found %s", it.Identity["sku"])
		}
	}
	if got := collect(ListQuery{Feed: "nofeed"}); len(got) != 0 {
		t.Fatal("unknown feed listed items")
	}
}

func TestOutboxFIFOReplaceAndAck(t *testing.T) {
	ctx := context.Background()
	st, _ := openTemp(t)
	entries := make([]OutboxEntry, 10)
	for i := range entries {
		entries[i] = OutboxEntry{ID: sha1hex(strconv.Itoa(i)), Payload: []byte(fmt.Sprintf(`{"n":%d}`, i))}
	}
	if err := st.Update(ctx, func(tx *Tx) error { return tx.PutOutbox("scopesWebsite", entries) }); err != nil {
		t.Fatal(err)
	}
	for i := range entries {
		if entries[i].Seq != uint64(i+1) {
			t.Fatalf("entry %d got seq %d", i, entries[i].Seq)
		}
	}
	// A newer payload for id 3 replaces the waiting one and goes last;
	// entries without an id are never merged.
	buf := []byte(`{"n":"3 again"}`)
	more := []OutboxEntry{{ID: sha1hex("3"), Payload: buf}, {Payload: []byte("anon")}, {Payload: []byte("anon")}}
	if err := st.Update(ctx, func(tx *Tx) error { return tx.PutOutbox("scopesWebsite", more) }); err != nil {
		t.Fatal(err)
	}
	copy(buf, "XXXXXXXX") // the store copied the payload
	if n, err := st.OutboxLen(ctx, "scopesWebsite"); err != nil || n != 12 {
		t.Fatalf("OutboxLen %d %v", n, err)
	}
	batch, err := st.OutboxBatch(ctx, "scopesWebsite", 100)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range batch {
		got = append(got, string(e.Payload))
	}
	want := []string{`{"n":0}`, `{"n":1}`, `{"n":2}`, `{"n":4}`, `{"n":5}`, `{"n":6}`, `{"n":7}`, `{"n":8}`, `{"n":9}`, `{"n":"3 again"}`, "anon", "anon"}
	if !slices.Equal(got, want) {
		t.Fatalf("outbox order\n got %q\nwant %q", got, want)
	}
	first, _ := st.OutboxBatch(ctx, "scopesWebsite", 4)
	if len(first) != 4 || first[3].Seq != batch[3].Seq {
		t.Fatalf("bounded batch: %d", len(first))
	}
	var seqs []uint64
	for _, e := range first {
		seqs = append(seqs, e.Seq)
	}
	seqs = append(seqs, 9999)
	if err := st.Update(ctx, func(tx *Tx) error { return tx.DeleteOutbox("scopesWebsite", seqs) }); err != nil {
		t.Fatal(err)
	}
	if n, _ := st.OutboxLen(ctx, "scopesWebsite"); n != 8 {
		t.Fatalf("after ack: %d", n)
	}
	rest, _ := st.OutboxBatch(ctx, "scopesWebsite", 100)
	if string(rest[0].Payload) != `{"n":5}` {
		t.Fatalf("head after ack: %s", rest[0].Payload)
	}
	// Re-queueing an acknowledged id appends a fresh entry.
	if err := st.Update(ctx, func(tx *Tx) error {
		return tx.PutOutbox("scopesWebsite", []OutboxEntry{{ID: sha1hex("0"), Payload: []byte("zero again")}})
	}); err != nil {
		t.Fatal(err)
	}
	if n, _ := st.OutboxLen(ctx, "scopesWebsite"); n != 9 {
		t.Fatalf("after requeue: %d", n)
	}
	if _, err := st.OutboxBatch(ctx, "scopesWebsite", 0); err == nil {
		t.Fatal("zero limit accepted")
	}
	mustCheck(t, st)
}

func TestProgressAndSchemaHistory(t *testing.T) {
	ctx := context.Background()
	st, path := openTemp(t)
	p := Progress{Feed: "products", LastKey: "12000", Chunks: 24, Processed: 12000, Synced: 36000, Total: 24640,
		Position:  change.Position{Flavor: "mariadb", GTIDSet: "0-1-5"},
		StartedAt: time.Date(2026, 11, 29, 9, 0, 0, 0, time.UTC), UpdatedAt: time.Date(2026, 11, 29, 9, 5, 0, 0, time.UTC), DryRun: true}
	if err := st.Update(ctx, func(tx *Tx) error { return tx.PutProgress(p) }); err != nil {
		t.Fatal(err)
	}
	recs := []SchemaRecord{
		{Position: change.Position{File: "bin.1", Pos: 4}, DB: "shop", Table: "catalog_product_entity", Schema: []byte(`{"cols":["entity_id","sku"]}`)},
		{Position: change.Position{GTIDSet: "0-1-9", File: "bin.1", Pos: 900}, DB: "shop", Table: "catalog_product_entity", Schema: []byte(`{"cols":["entity_id","sku","x"]}`), DDL: "ALTER TABLE catalog_product_entity ADD COLUMN x INT"},
	}
	for _, r := range recs {
		if err := st.AppendSchema(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.AppendSchema(ctx, SchemaRecord{Seq: 10, DB: "shop", Table: "t", DDL: "DROP TABLE t"}); err != nil {
		t.Fatal(err)
	}
	if err := st.AppendSchema(ctx, SchemaRecord{DB: "shop", Table: "u"}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	st, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	got, ok, err := st.Progress(ctx, "products")
	if err != nil || !ok || !got.StartedAt.Equal(p.StartedAt) || got.LastKey != p.LastKey || got.Synced != p.Synced || !got.DryRun || got.Position != p.Position || got.Finished() {
		t.Fatalf("progress %+v ok=%v err=%v", got, ok, err)
	}
	if _, ok, _ := st.Progress(ctx, "variants"); ok {
		t.Fatal("progress for a feed never synced")
	}
	history, err := st.SchemaRecords(ctx)
	if err != nil || len(history) != 4 {
		t.Fatalf("schema history %v %v", history, err)
	}
	for i, seq := range []uint64{1, 2, 10, 11} {
		if history[i].Seq != seq {
			t.Fatalf("record %d has seq %d, want %d", i, history[i].Seq, seq)
		}
	}
	if history[2].Schema != nil || history[2].DDL != "DROP TABLE t" {
		t.Fatalf("dropped-table record %+v", history[2])
	}
	if history[1].DDL != recs[1].DDL || history[1].Position != recs[1].Position || string(history[1].Schema) != string(recs[1].Schema) {
		t.Fatalf("schema record %+v", history[1])
	}
	if err := st.Update(ctx, func(tx *Tx) error { return tx.DeleteProgress("products") }); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := st.Progress(ctx, "products"); ok {
		t.Fatal("progress survived DeleteProgress")
	}
}

func TestCleanupRemovesOldDeletedSentItems(t *testing.T) {
	ctx := context.Background()
	st, _ := openTemp(t)
	st.cleanupScan, st.cleanupBatch = 37, 5 // many small transactions
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	old := now.Add(-8 * 24 * time.Hour)
	recent := now.Add(-6 * 24 * time.Hour)
	var items []Item
	wantGone := map[string]bool{}
	for i := range 300 {
		it := product("C"+strconv.Itoa(i), "default", i, StatusSent)
		it.ModifiedAt, it.SentAt = old, old
		switch i % 6 {
		case 0: // deleted, sent, old: removed
			it.Deleted = true
			wantGone[it.ID] = true
		case 1: // deleted but failed: kept
			it.Deleted, it.Status = true, StatusRetryableFailure
		case 2: // deleted, sent recently: kept
			it.Deleted, it.SentAt = true, recent
		case 3: // deleted, sent long ago but modified recently: kept
			it.Deleted, it.ModifiedAt = true, recent
		case 4: // live: kept
		case 5: // deleted, rejected: kept
			it.Deleted, it.Status = true, StatusRejected
		}
		items = append(items, it)
	}
	put(t, st, items...)
	other := product("X", "default", 1, StatusSent)
	other.Feed, other.Deleted, other.SentAt = "variants", true, old
	put(t, st, other)
	removed, err := st.Cleanup(ctx, now, 0)
	if err != nil {
		t.Fatal(err)
	}
	if removed != len(wantGone)+1 {
		t.Fatalf("removed %d, want %d", removed, len(wantGone)+1)
	}
	for _, it := range items {
		_, ok, _ := st.Item(ctx, "products", it.ID)
		if ok == wantGone[it.ID] {
			t.Fatalf("item %s (case %s) present=%v", it.ID, it.Identity["sku"], ok)
		}
	}
	if removed, _ := st.Cleanup(ctx, now, 0); removed != 0 {
		t.Fatalf("second cleanup removed %d", removed)
	}
	// A shorter retention reaches the recent ones.
	if removed, _ := st.Cleanup(ctx, now, 24*time.Hour); removed != 100 {
		t.Fatalf("cleanup with 1 day retention removed %d, want 100", removed)
	}
	mustCheck(t, st)
}

func TestForgetFeed(t *testing.T) {
	ctx := context.Background()
	st, _ := openTemp(t)
	put(t, st, product("A", "default", 1, StatusSent), product("B", "default", 2, StatusRetryableFailure))
	v := product("A", "child", 1, StatusSent)
	v.Feed = "variants"
	put(t, st, v)
	if err := st.Update(ctx, func(tx *Tx) error {
		if err := tx.PutOutbox("products", []OutboxEntry{{ID: "x", Payload: []byte("p")}}); err != nil {
			return err
		}
		return tx.PutProgress(Progress{Feed: "products", LastKey: "9"})
	}); err != nil {
		t.Fatal(err)
	}
	release, err := st.AcquireFeedLock(ctx, "products", "resync --cleanup-feed")
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	if err := st.ForgetFeed(ctx, "products"); err != nil {
		t.Fatal(err)
	}
	if err := st.ForgetFeed(ctx, "never-existed"); err != nil {
		t.Fatal(err)
	}
	c, _ := st.Counts(ctx, "products")
	n, _ := st.OutboxLen(ctx, "products")
	_, ok, _ := st.Progress(ctx, "products")
	if c != (Counts{}) || n != 0 || ok {
		t.Fatalf("after forget: counts %+v outbox %d progress %v", c, n, ok)
	}
	if c, _ := st.Counts(ctx, "variants"); c.Total != 1 {
		t.Fatal("other feed touched")
	}
	if feeds, _ := st.Feeds(ctx); !slices.Equal(feeds, []string{"variants"}) {
		t.Fatalf("feeds %v", feeds)
	}
	locks, _ := st.FeedLocks(ctx)
	if len(locks) != 1 || locks[0].Feed != "products" {
		t.Fatalf("lock lost by ForgetFeed: %v", locks)
	}
	// The feed comes back on the next write.
	put(t, st, product("A", "default", 1, StatusSent))
	mustCheck(t, st)
}

func TestFeedLockOneOperationPerFeed(t *testing.T) {
	ctx := context.Background()
	st, _ := openTemp(t)
	release, err := st.AcquireFeedLock(ctx, "products", "resync")
	if err != nil {
		t.Fatal(err)
	}
	_, err = st.AcquireFeedLock(ctx, "products", "retry")
	var le *FeedLockedError
	if !errors.As(err, &le) || !errors.Is(err, ErrFeedLocked) {
		t.Fatalf("second acquire: %v", err)
	}
	if le.Holder.Owner != "resync" || le.Holder.PID != os.Getpid() ||
		!strings.Contains(err.Error(), fmt.Sprintf(`feed "products" is locked by resync (pid %d, feedcdc test`, os.Getpid())) {
		t.Fatalf("error %q / holder %+v", err, le.Holder)
	}
	// Another feed is independent.
	relV, err := st.AcquireFeedLock(ctx, "variants", "retry")
	if err != nil {
		t.Fatal(err)
	}
	if err := release(); err != nil {
		t.Fatal(err)
	}
	if err := release(); err != nil {
		t.Fatalf("second release: %v", err)
	}
	release2, err := st.AcquireFeedLock(ctx, "products", "retry")
	if err != nil {
		t.Fatalf("acquire after release: %v", err)
	}
	if err := release2(); err != nil {
		t.Fatal(err)
	}
	if _, err := st.AcquireFeedLock(ctx, "products", ""); err == nil {
		t.Fatal("empty owner accepted")
	}
	// Close releases what is still held; release afterwards is harmless.
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if err := relV(); err != nil {
		t.Fatalf("release after Close: %v", err)
	}
}

func TestFeedLockOfKilledProcessIsTakenOver(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	h, _ := startHelper(t, "lockfeed", path)
	pid := h.cmd.Process.Pid
	h.kill(t)
	st, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	locks, err := st.FeedLocks(ctx)
	if err != nil || len(locks) != 1 || locks[0].PID != pid || locks[0].Owner != "resync" || !locks[0].Stale {
		t.Fatalf("locks left by the killed process: %+v %v", locks, err)
	}
	release, err := st.AcquireFeedLock(ctx, "products", "resync")
	if err != nil {
		t.Fatalf("stale lock not taken over: %v", err)
	}
	locks, _ = st.FeedLocks(ctx)
	if len(locks) != 1 || locks[0].PID != os.Getpid() || locks[0].Stale {
		t.Fatalf("lock after takeover: %+v", locks)
	}
	if err := release(); err != nil {
		t.Fatal(err)
	}
	if locks, _ := st.FeedLocks(ctx); len(locks) != 0 {
		t.Fatalf("lock after release: %+v", locks)
	}
}

func TestItemEncodingRoundTripsRandomItems(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	pick := func(opts ...string) string { return opts[rng.IntN(len(opts))] }
	for n := range 400 {
		it := Item{
			Feed:      "f",
			ID:        pick(sha1hex(strconv.Itoa(n)), "id-"+strconv.Itoa(n), strings.ToUpper(sha1hex(strconv.Itoa(n)))),
			EntityKey: pick("", "1", strconv.Itoa(n), "a\x00b"),
			Hash:      pick("", sha1hex("h"), "abc", "0", "ABCD", "8f14e45f-ceea-467a-9575-7f1c1b0e0b8a"),
			Status:    rng.IntN(1000) - 500,
			Attempts:  rng.IntN(100),
			LastError: pick("", "boom", strings.Repeat("x", 300)),
			RequestID: pick("", "8f14e45f-ceea-467a-9575-7f1c1b0e0b8a", "8f14e45f-ceea-467a-9575-7f1c1b0e0b8", "ab", "r-1"),
			Deleted:   rng.IntN(2) == 0,
			Attention: rng.IntN(2) == 0,
		}
		if rng.IntN(2) == 0 {
			it.ModifiedAt = time.UnixMicro(rng.Int64N(1 << 52)).UTC()
			it.NextAttempt = time.UnixMicro(rng.Int64N(1 << 52)).UTC()
		}
		if k := rng.IntN(12); k > 0 {
			it.Identity = map[string]string{}
			for j := range k {
				it.Identity[pick("sku", "storeViewCode", "x"+strconv.Itoa(j), "id", "")] = pick("", "v", strconv.Itoa(j))
			}
		}
		if rng.IntN(3) == 0 {
			it.Accepted = []string{pick("files", "kafka", "")}
			if rng.IntN(2) == 0 {
				it.Accepted = append(it.Accepted, "service")
			}
		}
		mandatory := len(encodeItem(nil, &Item{Feed: it.Feed, ID: it.ID, EntityKey: it.EntityKey, Status: it.Status, Hash: it.Hash,
			Attempts: it.Attempts, LastError: it.LastError, RequestID: it.RequestID, Deleted: it.Deleted, Attention: it.Attention,
			ModifiedAt: it.ModifiedAt, NextAttempt: it.NextAttempt, Identity: it.Identity}))
		v := encodeItem(nil, &it)
		idk := encodeID(nil, it.ID)
		id, err := decodeID(idk)
		if err != nil || id != it.ID {
			t.Fatalf("id %q -> %q (%v)", it.ID, id, err)
		}
		got, err := decodeItem(it.Feed, it.ID, it.EntityKey, v)
		if err != nil {
			t.Fatalf("item %d: %v", n, err)
		}
		if fmt.Sprint(got) != fmt.Sprint(it) {
			t.Fatalf("item %d:\n got %+v\nwant %+v", n, got, it)
		}
		for cut := range len(v) {
			if _, err := decodeItem("f", "x", "", v[:cut]); err == nil && cut < len(v) && cut != mandatory {
				// A truncated record must not decode silently unless the
				// cut falls where the optional trailing field (Accepted,
				// absent in records of older versions) starts.
				t.Fatalf("item %d: truncated at %d of %d decoded without error", n, cut, len(v))
			}
		}
	}
}

// TestConcurrentWritersAndReaders runs flushes from several goroutines
// while others read, list and count; every snapshot a reader sees must be
// self-consistent (the counters match the listed items).
func TestConcurrentWritersAndReaders(t *testing.T) {
	ctx := context.Background()
	st, _ := openTemp(t)
	const writers, rounds, perRound = 3, 30, 50
	errc := make(chan error, writers+2)
	done := make(chan struct{})
	for w := range writers {
		go func() {
			for r := range rounds {
				items := make([]Item, perRound)
				for i := range items {
					n := (w*7919 + r*31 + i) % 400
					items[i] = product("K"+strconv.Itoa(n), "default", n/2, []int{StatusSent, StatusRetryableFailure, StatusRejected}[(r+i)%3])
					items[i].NextAttempt = time.Unix(int64(r), 0)
				}
				err := st.Update(ctx, func(tx *Tx) error {
					if err := tx.PutItems(items); err != nil {
						return err
					}
					if r%5 == 0 {
						if err := tx.DeleteItems("products", []string{items[0].ID}); err != nil {
							return err
						}
					}
					return tx.SetCheckpoint(change.Position{File: "b", Pos: uint32(w*1000 + r)}, time.Now())
				})
				if err != nil {
					errc <- err
					return
				}
			}
			errc <- nil
		}()
	}
	for range 2 {
		go func() {
			for {
				select {
				case <-done:
					errc <- nil
					return
				default:
				}
				err := st.View(ctx, func(tx *Tx) error {
					c, err := tx.Counts("products")
					if err != nil {
						return err
					}
					all, _, err := tx.ListItems(ListQuery{Feed: "products", Limit: 1000})
					if err != nil {
						return err
					}
					failed, _, err := tx.ListItems(ListQuery{Feed: "products", Statuses: []int{StatusRetryableFailure}, Limit: 1000})
					if err != nil {
						return err
					}
					if int64(len(all)) != c.Total || int64(len(failed)) != c.Failed {
						return fmt.Errorf("snapshot: counts %+v, listed %d items, %d failed", c, len(all), len(failed))
					}
					_, err = tx.DueFailed("products", time.Unix(1<<40, 0), 1000)
					return err
				})
				if err != nil {
					errc <- err
					return
				}
			}
		}()
	}
	for range writers {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	close(done)
	for range 2 {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	mustCheck(t, st)
}

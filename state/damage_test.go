package state

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/feedcdc/feedcdc/change"
)

// writeStateFixture writes a state file with n product items, an outbox
// entry and a checkpoint, and closes it.
func writeStateFixture(t *testing.T, path string, n int) {
	t.Helper()
	st, err := Open(path, Options{Command: "feedcdc test", NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i += 500 {
		var items []Item
		for j := i; j < min(n, i+500); j++ {
			items = append(items, product(fmt.Sprintf("sku-%05d", j), "default", j, StatusSent))
		}
		err := st.Update(context.Background(), func(tx *Tx) error {
			if err := tx.PutItems(items); err != nil {
				return err
			}
			if err := tx.PutOutbox("products", []OutboxEntry{{ID: items[0].ID, Payload: []byte(`{"sku":"x"}`)}}); err != nil {
				return err
			}
			return tx.SetCheckpoint(change.Position{File: "bin.000003", Pos: uint32(1000 + i)}, time.Now())
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
}

func fileSum(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// damage applies one kind of damage to the file at path.
type damage struct {
	name  string
	apply func(t *testing.T, path string)
}

// usedSize is the part of the file bbolt's last transaction uses; bbolt
// grows files in steps of up to 16 MiB, so the rest is unused space.
func usedSize(t *testing.T, path string) int64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h, err := readHeader(f)
	if err != nil || h.problem != "" {
		t.Fatalf("fixture header: %+v, %v", h, err)
	}
	return h.highWater
}

// truncateTo cuts the file to frac of its used size.
func truncateTo(frac float64) func(t *testing.T, path string) {
	return func(t *testing.T, path string) {
		if err := os.Truncate(path, int64(float64(usedSize(t, path))*frac)); err != nil {
			t.Fatal(err)
		}
	}
}

// overwritePages overwrites n of the used pages, chosen at random (fixed
// seed), with random bytes.
func overwritePages(n int) func(t *testing.T, path string) {
	return func(t *testing.T, path string) {
		used := usedSize(t, path)
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		const ps = 4096
		pages := int(used / ps)
		r := rand.New(rand.NewPCG(12, 34))
		for _, p := range r.Perm(pages)[:n] {
			for i := p * ps; i < (p+1)*ps; i++ {
				b[i] = byte(r.Uint32())
			}
		}
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// Damages are the damaged files users met (and the cmd tests reuse).
var damages = []damage{
	{"truncated to 50%", truncateTo(0.5)},
	{"truncated to 20%", truncateTo(0.2)},
	{"truncated to 1 page", func(t *testing.T, path string) {
		if err := os.Truncate(path, 4096); err != nil {
			t.Fatal(err)
		}
	}},
	{"0 bytes", func(t *testing.T, path string) {
		if err := os.Truncate(path, 0); err != nil {
			t.Fatal(err)
		}
	}},
	{"10 random pages overwritten", overwritePages(10)},
}

// TestDamagedFileGivesErrorNotCrash: before validation, bbolt crashed the
// process on these files (SIGBUS in FastCheck, "assertion failed: Page
// expected to be", or a 0-byte file taken as new).
func TestDamagedFileGivesErrorNotCrash(t *testing.T) {
	ctx := context.Background()
	for _, d := range damages {
		t.Run(d.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "state.db")
			writeStateFixture(t, path, 3000)
			d.apply(t, path)
			sum := fileSum(t, path)

			_, err := Open(path, Options{})
			var de *DamagedError
			if !errors.Is(err, ErrDamaged) || !errors.As(err, &de) {
				t.Fatalf("Open: %v, want a *DamagedError", err)
			}
			if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "left unchanged") {
				t.Fatalf("error does not name the file: %v", err)
			}
			if _, err := OpenReadOnly(path, Options{}); !errors.Is(err, ErrDamaged) {
				t.Fatalf("OpenReadOnly: %v", err)
			}
			r, err := CheckFile(ctx, path, Options{})
			if err != nil || r.OK() {
				t.Fatalf("CheckFile: %+v, %v", r, err)
			}
			if fileSum(t, path) != sum {
				t.Fatal("the damaged file was changed")
			}
			if _, err := os.Stat(ownerPath(path)); !os.IsNotExist(err) {
				t.Fatalf("owner record written for a damaged file: %v", err)
			}

			// --new-state moves it aside, byte for byte, and starts anew.
			st, err := Open(path, Options{NewState: true})
			if err != nil {
				t.Fatalf("Open with NewState: %v", err)
			}
			defer st.Close()
			if _, _, ok, err := st.Checkpoint(ctx); ok || err != nil {
				t.Fatalf("new state has a checkpoint (%v) or fails: %v", ok, err)
			}
			moved, _ := filepath.Glob(path + ".damaged-*")
			if len(moved) != 1 || fileSum(t, moved[0]) != sum {
				t.Fatalf("damaged file not moved aside intact: %v", moved)
			}
		})
	}
}

func TestForeignAndEmptyBboltFiles(t *testing.T) {
	dir := t.TempDir()
	foreign := filepath.Join(dir, "other.db")
	db, err := bolt.Open(foreign, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("members")); return err }); err != nil {
		t.Fatal(err)
	}
	db.Close()
	_, err = Open(foreign, Options{})
	var de *DamagedError
	if !errors.As(err, &de) || !de.Foreign || !strings.Contains(err.Error(), "members") {
		t.Fatalf("Open of another application's bbolt file: %v", err)
	}

	// A bbolt file without buckets is one that Open created and a crash
	// interrupted before the first commit: nothing to lose, used as new.
	fresh := filepath.Join(dir, "fresh.db")
	db, err = bolt.Open(fresh, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	st, err := Open(fresh, Options{})
	if err != nil {
		t.Fatalf("Open of a never initialised bbolt file: %v", err)
	}
	st.Close()
}

// TestOneTornMetaPageIsAWarning: bbolt keeps two meta pages so that a torn
// meta write (power loss) falls back to the previous transaction.
func TestOneTornMetaPageIsAWarning(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	writeStateFixture(t, path, 200)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt(bytes.Repeat([]byte{0xff}, 64), 4096+16+56) // meta page 1's checksum
	f.Close()
	r, err := CheckFile(context.Background(), path, Options{})
	if err != nil || !r.OK() || len(r.Warnings) != 1 || !strings.Contains(r.Warnings[0], "meta page 1 is invalid") {
		t.Fatalf("CheckFile: %+v, %v", r, err)
	}
	st, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
}

// TestDamageWhileOpenIsAnError: the file is damaged under an open Store
// (another program truncates or overwrites it): reads fail with a
// *DamagedError instead of SIGBUS or a bbolt panic, and the Store refuses
// further work.
func TestDamageWhileOpenIsAnError(t *testing.T) {
	ctx := context.Background()
	for _, d := range []damage{{"truncated", func(t *testing.T, path string) {
		if err := os.Truncate(path, 3*4096); err != nil {
			t.Fatal(err)
		}
	}}, {"overwritten", overwritePages(40)}} {
		t.Run(d.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "state.db")
			writeStateFixture(t, path, 3000)
			st, err := Open(path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			d.apply(t, path)
			err = st.View(ctx, func(tx *Tx) error {
				_, _, err := tx.ListItems(ListQuery{Feed: "products", Limit: 100000})
				return err
			})
			if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), path) {
				t.Fatalf("reading a damaged open file: %v", err)
			}
			if _, err := st.Counts(ctx, "products"); !errors.Is(err, ErrDamaged) {
				t.Fatalf("a later read: %v", err)
			}
			if err := st.Close(); !errors.Is(err, ErrDamaged) {
				t.Fatalf("Close: %v", err)
			}
		})
	}
}

func TestBackupIsAConsistentCopy(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "state.db")
	writeStateFixture(t, path, 2000)
	st, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	dst := filepath.Join(dir, "backup.db")
	if _, err := WriteBackup(ctx, path, path, func(w io.Writer) (int64, error) { return st.Backup(ctx, w, nil) }); err == nil {
		t.Fatal("a backup over the state file itself was accepted")
	}
	var size int64
	r, err := WriteBackup(ctx, dst, path, func(w io.Writer) (int64, error) {
		return st.Backup(ctx, w, func(n int64) { size = n })
	})
	if err != nil || !r.OK() {
		t.Fatalf("WriteBackup: %+v, %v", r, err)
	}
	if fi, err := os.Stat(dst); err != nil || fi.Size() != size {
		t.Fatalf("backup size %v, announced %d: %v", fi, size, err)
	}
	if _, err := os.Stat(dst + ".tmp"); !os.IsNotExist(err) {
		t.Fatalf("temporary file left: %v", err)
	}
	live, _ := st.Counts(ctx, "products")
	livePos, _, _, _ := st.Checkpoint(ctx)
	cp, err := OpenReadOnly(dst, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	got, _ := cp.Counts(ctx, "products")
	gotPos, _, ok, err := cp.Checkpoint(ctx)
	if got != live || !ok || err != nil || gotPos != livePos {
		t.Fatalf("copy has %+v at %v, live %+v at %v", got, gotPos, live, livePos)
	}
	if r.Items["products"] != 2000 || r.Checkpoint != livePos.String() {
		t.Fatalf("report %+v", r)
	}
	if err := cp.Update(ctx, func(*Tx) error { return nil }); err == nil {
		t.Fatal("a read-only store accepted a write")
	}
}

// oversizeLeafKeys sets, on every used leaf page, the key size of the last
// plain (non-bucket) element to 1 GiB: the key then runs past the end of
// the file. Page and element layout as bbolt writes them: page header
// id(8) flags(2) count(2) overflow(4); leaf element flags(4) pos(4)
// ksize(4) vsize(4).
func oversizeLeafKeys(t *testing.T, path string) {
	used := usedSize(t, path)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	const ps, leaf = 4096, 0x02
	var n int
	for off := int64(2 * ps); off+ps <= used; off += ps {
		p := b[off : off+ps]
		if binary.LittleEndian.Uint16(p[8:]) != leaf {
			continue
		}
		count := int(binary.LittleEndian.Uint16(p[10:]))
		for i := count - 1; i >= 0; i-- {
			e := p[16+16*i:]
			if binary.LittleEndian.Uint32(e) == 0 { // not a bucket entry
				binary.LittleEndian.PutUint32(e[8:], 1<<30)
				n++
				break
			}
		}
	}
	if n == 0 {
		t.Fatal("no leaf page to damage")
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestKeyPastTheEndOfTheFileIsDamageNotCrash: a leaf element whose key
// size runs past the mapping passed validation (the page walk read no key
// bytes), so the file opened as healthy and the first read of that key, or
// bbolt's free-page scan comparing it on a goroutine of its own where no
// fault can be caught, would fault later.
func TestKeyPastTheEndOfTheFileIsDamageNotCrash(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	writeStateFixture(t, path, 3000)
	oversizeLeafKeys(t, path)
	sum := fileSum(t, path)
	if _, err := Open(path, Options{}); !errors.Is(err, ErrDamaged) {
		t.Fatalf("Open: %v, want a *DamagedError", err)
	}
	if r, err := CheckFile(context.Background(), path, Options{}); err != nil || r.OK() {
		t.Fatalf("CheckFile: %+v, %v", r, err)
	}
	if fileSum(t, path) != sum {
		t.Fatal("the damaged file was changed")
	}
}

// TestDamageMetInAWriteIsAnErrorNotCrash: a write transaction that meets a
// damaged page is rolled back; with the free list not synced (as feedcdc
// opened files before), bbolt's rollback rescanned the whole file for free
// pages on a goroutine of its own, where the broken pages crashed the
// process (seen as a flaky crash of a connector whose file was overwritten
// while it ran).
func TestDamageMetInAWriteIsAnErrorNotCrash(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	writeStateFixture(t, path, 3000)
	st, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// every page but the two meta pages
	used := usedSize(t, path)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(bytes.Repeat([]byte{0xA5}, int(used-2*4096)), 2*4096); err != nil {
		t.Fatal(err)
	}
	f.Close()
	for i := 0; i < 3; i++ {
		err = st.Update(ctx, func(tx *Tx) error {
			_, _, err := tx.ListItems(ListQuery{Feed: "products", Limit: 100000})
			return err
		})
		if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), path) {
			t.Fatalf("a write on a damaged open file: %v", err)
		}
	}
	if err := st.Close(); !errors.Is(err, ErrDamaged) {
		t.Fatalf("Close: %v", err)
	}
}

package filesink

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/feedcdc/feedcdc/sink"
)

func readLines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 4<<20)
	for sc.Scan() {
		if !json.Valid(sc.Bytes()) {
			t.Fatalf("%s: line %q is not JSON", path, sc.Text())
		}
		out = append(out, sc.Text())
	}
	return out
}

func rec(feed, sku string) sink.Record {
	return sink.Record{Feed: feed, Value: []byte(fmt.Sprintf(`{"sku":%q}`, sku)), ID: "id-" + sku, Key: []byte(sku), Op: "u", Position: "0-1-5"}
}

func TestWritesLinesPerFeedAndTopic(t *testing.T) {
	dir := t.TempDir()
	s, err := New(Config{Dir: filepath.Join(dir, "out"), Fsync: true, TopicPrefix: "shop"})
	if err != nil {
		t.Fatal(err)
	}
	recs := []sink.Record{
		rec("products", "a"),
		{Feed: "products", Value: []byte("{\n  \"sku\": \"pretty\"\n}")},
		rec("variants", "v"),
		{Feed: "raw", Topic: "{prefix}.raw.db.catalog_product_entity", Value: []byte(`{"op":"c"}`)},
		{Feed: "products", Value: nil},                   // tombstone: no line
		{Feed: "products", Value: []byte("{\"sku\":\n")}, // spans lines and is not JSON
		{Feed: "../../etc/passwd", Value: []byte(`{}`)},
	}
	res, err := s.Send(context.Background(), recs)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		want := sink.StatusOK
		if i == 5 {
			want = sink.StatusRejected
		}
		if r.Status != want {
			t.Errorf("record %d: %v %s", i, r.Status, r.Reason)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	got := readLines(t, filepath.Join(dir, "out", "products.jsonl"))
	if strings.Join(got, "|") != `{"sku":"a"}|{"sku":"pretty"}` {
		t.Errorf("products.jsonl: %q", got)
	}
	if got := readLines(t, filepath.Join(dir, "out", "shop.raw.db.catalog_product_entity.jsonl")); len(got) != 1 {
		t.Errorf("raw file: %q", got)
	}
	if n := s.StreamName(&recs[6]); strings.ContainsAny(n, "/\\") {
		t.Errorf("stream name %q contains a path separator", n)
	} else if _, err := os.Stat(filepath.Join(dir, "out", n+".jsonl")); err != nil {
		t.Errorf("a hostile feed name was not kept inside dir: %v", err)
	}
	if _, err := s.Send(context.Background(), recs[:1]); err == nil {
		t.Error("Send after Close succeeded")
	}
}

func TestEnvelope(t *testing.T) {
	dir := t.TempDir()
	s, err := New(Config{Dir: dir, Envelope: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	res, _ := s.Send(context.Background(), []sink.Record{rec("products", "a"), {Feed: "products", Key: []byte("gone"), Op: "d"}})
	if res[0].Status != sink.StatusOK || res[1].Status != sink.StatusOK {
		t.Fatal(res)
	}
	got := readLines(t, filepath.Join(dir, "products.jsonl"))
	var e []map[string]any
	for _, l := range got {
		var m map[string]any
		json.Unmarshal([]byte(l), &m)
		e = append(e, m)
	}
	if len(e) != 2 || e[0]["id"] != "id-a" || e[0]["op"] != "u" || e[0]["position"] != "0-1-5" || e[0]["value"].(map[string]any)["sku"] != "a" ||
		e[1]["key"] != "gone" || e[1]["value"] != nil {
		t.Fatalf("envelopes: %v", e)
	}
	// the value's bytes are written as sent, without HTML escapes
	val := `{"sku":"<b>a & b</b>"}`
	if _, err := s.Send(context.Background(), []sink.Record{{Feed: "products", ID: "x", Key: []byte("x"), Value: []byte(val)}}); err != nil {
		t.Fatal(err)
	}
	got = readLines(t, filepath.Join(dir, "products.jsonl"))
	if last := got[len(got)-1]; !strings.Contains(last, `"value":`+val) {
		t.Fatalf("value not written as sent: %s", last)
	}
}

// TestEnvelopeTopicIsFilledIn: a raw record's topic comes with the
// {prefix} placeholder the sink fills in; the envelope carries the topic
// as named (file name and "topic" field), never the literal template.
func TestEnvelopeTopicIsFilledIn(t *testing.T) {
	dir := t.TempDir()
	s, err := New(Config{Dir: dir, Envelope: true, TopicPrefix: "shop", ConnectorName: "shop"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	res, _ := s.Send(context.Background(), []sink.Record{{Feed: "raw", Topic: "{prefix}.magento.catalog_product_entity", Key: []byte("1"), Value: []byte(`{"op":"c"}`)}})
	if res[0].Status != sink.StatusOK {
		t.Fatal(res)
	}
	got := readLines(t, filepath.Join(dir, "shop.magento.catalog_product_entity.jsonl"))
	var e map[string]any
	if len(got) != 1 || json.Unmarshal([]byte(got[0]), &e) != nil || e["topic"] != "shop.magento.catalog_product_entity" {
		t.Fatalf("envelope: %v; want topic shop.magento.catalog_product_entity", got)
	}
}

func TestRotationKeepsNFilesAndSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{Dir: dir, MaxSize: 100, MaxFiles: 2, Fsync: true}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var all []string
	for i := 0; i < 30; i++ { // each line is 18 bytes: 5 per file
		r := rec("products", fmt.Sprintf("sku-%03d", i))
		all = append(all, string(r.Value))
		res, _ := s.Send(context.Background(), []sink.Record{r})
		if res[0].Status != sink.StatusOK {
			t.Fatal(res[0])
		}
	}
	s.Close()
	// Reopen: appends to the current file and continues the sequence.
	s, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i := 30; i < 40; i++ {
		r := rec("products", fmt.Sprintf("sku-%03d", i))
		all = append(all, string(r.Value))
		if res, _ := s.Send(context.Background(), []sink.Record{r}); res[0].Status != sink.StatusOK {
			t.Fatal(res[0])
		}
	}
	s.Close()
	files, _ := filepath.Glob(filepath.Join(dir, "products*.jsonl"))
	sort.Strings(files)
	var names []string
	var lines []string
	for _, f := range files {
		names = append(names, filepath.Base(f))
		fi, _ := os.Stat(f)
		if fi.Size() > cfg.MaxSize {
			t.Errorf("%s is %d bytes > max_size %d", f, fi.Size(), cfg.MaxSize)
		}
	}
	if len(files) != 3 || names[2] != "products.jsonl" {
		t.Fatalf("files %v, want 2 rotated + current", names)
	}
	for _, f := range files {
		lines = append(lines, readLines(t, f)...)
	}
	// The kept files hold the newest lines, in order, without gaps.
	tail := all[len(all)-len(lines):]
	if strings.Join(lines, "") != strings.Join(tail, "") {
		t.Fatalf("kept lines %v, want the newest %v", lines, tail)
	}
	if names[0] != "products.000006.jsonl" || names[1] != "products.000007.jsonl" {
		t.Fatalf("rotated names %v, want sequence continued across reopen", names)
	}
}

// TestRotationLogsEachDeletion: max_files deletes acknowledged output, so
// every deleted file is named in the log.
func TestRotationLogsEachDeletion(t *testing.T) {
	dir := t.TempDir()
	var logs bytes.Buffer
	s, err := New(Config{Dir: dir, MaxSize: 100, MaxFiles: 1, Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ { // 18-byte lines, 5 per file: 3 rotations
		if res, _ := s.Send(context.Background(), []sink.Record{rec("products", fmt.Sprintf("sku-%03d", i))}); res[0].Status != sink.StatusOK {
			t.Fatal(res[0])
		}
	}
	s.Close()
	var deleted []string
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var e struct {
			Msg      string `json:"msg"`
			File     string `json:"file"`
			MaxFiles int    `json:"max_files"`
		}
		if json.Unmarshal([]byte(line), &e) == nil && strings.HasPrefix(e.Msg, "deleted the oldest rotated file") {
			if e.MaxFiles != 1 {
				t.Errorf("log line without max_files: %s", line)
			}
			deleted = append(deleted, filepath.Base(e.File))
			if _, err := os.Stat(e.File); !os.IsNotExist(err) {
				t.Errorf("logged as deleted but present: %s", e.File)
			}
		}
	}
	if fmt.Sprint(deleted) != "[products.000001.jsonl products.000002.jsonl]" {
		t.Fatalf("deletions logged %v, want the two oldest rotated files; log:\n%s", deleted, logs.String())
	}
}

func TestOpenFailureIsRetryable(t *testing.T) {
	dir := t.TempDir()
	// A directory where the file should be: open fails.
	if err := os.Mkdir(filepath.Join(dir, "products.jsonl"), 0o755); err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	res, _ := s.Send(context.Background(), []sink.Record{rec("products", "a"), rec("variants", "b")})
	if res[0].Status != sink.StatusRetryable || res[1].Status != sink.StatusOK {
		t.Fatalf("results %+v", res)
	}
	if ok, detail := s.Health(); !ok {
		t.Fatalf("one stream failing and one working is healthy; got %q", detail)
	}
	if res, _ = s.Send(context.Background(), []sink.Record{rec("products", "a")}); res[0].OK() {
		t.Fatalf("a send to the failing stream succeeded: %+v", res[0])
	}
	if ok, detail := s.Health(); ok || !strings.Contains(detail, "OPEN") {
		t.Fatalf("Health after a fully failed send: %v %q", ok, detail)
	}
	if err := s.Ping(context.Background()); err != nil {
		t.Fatalf("Ping of a writable dir: %v", err)
	}
	// Fixed: the next send works.
	os.Remove(filepath.Join(dir, "products.jsonl"))
	if res, _ := s.Send(context.Background(), []sink.Record{rec("products", "a")}); res[0].Status != sink.StatusOK {
		t.Fatalf("after fix: %+v", res[0])
	}
	if ok, _ := s.Health(); !ok {
		t.Fatal("still unhealthy after a successful send")
	}
	gone := filepath.Join(t.TempDir(), "gone")
	s2, err := New(Config{Dir: gone})
	if err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(gone)
	if err := s2.Ping(context.Background()); err == nil {
		t.Error("Ping of a removed directory succeeded")
	}
	if _, err := New(Config{}); err == nil {
		t.Error("empty dir accepted")
	}
}

// TestLargeSendWritesThroughABoundedBuffer sends several write buffers'
// worth of lines (and one line longer than a buffer) in one Send: every
// line arrives in order, and the stream keeps a buffer of at most
// writeBuffer bytes for the next Send, not one the size of the Send.
func TestLargeSendWritesThroughABoundedBuffer(t *testing.T) {
	dir := t.TempDir()
	s, err := New(Config{Dir: dir, Fsync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var recs []sink.Record
	var want []string
	pad := strings.Repeat("x", 2000)
	for i := range 3 * writeBuffer / 2000 {
		sku := fmt.Sprintf("%s-%d", pad, i)
		if i == 700 {
			sku = strings.Repeat("y", writeBuffer+10)
		}
		recs = append(recs, rec("products", sku))
		want = append(want, fmt.Sprintf(`{"sku":%q}`, sku))
	}
	for round := range 2 {
		res, err := s.Send(context.Background(), recs)
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range res {
			if r.Status != sink.StatusOK {
				t.Fatalf("round %d record %d: %v %s", round, i, r.Status, r.Reason)
			}
		}
		if c := cap(s.stream("products").buf); c > writeBuffer {
			t.Errorf("round %d: the stream keeps a buffer of %d bytes (> %d)", round, c, writeBuffer)
		}
	}
	got := readLines(t, filepath.Join(dir, "products.jsonl"))
	if len(got) != 2*len(want) {
		t.Fatalf("%d lines, want %d", len(got), 2*len(want))
	}
	for i, l := range got {
		if l != want[i%len(want)] {
			t.Fatalf("line %d differs (%d bytes, want %d)", i, len(l), len(want[i%len(want)]))
		}
	}
}

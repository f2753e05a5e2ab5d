package connector

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/feedcdc/feedcdc/config"
	"github.com/feedcdc/feedcdc/sink"
)

// TestOpenSinksIsAllOrNone: when a later sink fails to open, the sinks
// already opened are closed (none is left holding files or connections)
// and the error names the failing sink.
func TestOpenSinksIsAllOrNone(t *testing.T) {
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	cc := connectorYAML{Name: "allornone", Database: "shop", Feeds: noFeeds, Sections: "raw: {enabled: true, sinks: [a_files, b_kafka]}\n" +
		"sinks:\n  a_files:\n    type: file\n    file: {dir: " + filepath.Join(dir, "out") + "}\n" +
		"  b_kafka:\n    type: kafka\n    kafka:\n      brokers: [\"127.0.0.1:1\"]\n      tls: {enabled: true, ca_file: " + ca + "}\n"}
	c := &Connector{Config: cc.load(t), Logger: slog.New(slog.DiscardHandler), Sinks: map[string]sink.Sink{}}
	var opened []sink.Sink
	err := c.openSinksWith(func(name string, s *config.Sink) (sink.Sink, error) {
		sk, err := c.openSink(name, s)
		if err == nil {
			opened = append(opened, sk)
		}
		return sk, err
	})
	if err == nil || !strings.Contains(err.Error(), "sinks.b_kafka") {
		t.Fatalf("err %v; want the error of sinks.b_kafka", err)
	}
	if len(opened) != 1 || opened[0].Name() != "a_files" {
		t.Fatalf("opened %v; want a_files opened before b_kafka failed", opened)
	}
	if _, serr := opened[0].Send(context.Background(), []sink.Record{{Feed: "raw", Topic: "t", ID: "1", Value: []byte(`{}`)}}); serr == nil || !strings.Contains(serr.Error(), "closed") {
		t.Fatalf("a_files still open after b_kafka failed (Send: %v)", serr)
	}
	if len(c.Sinks) != 0 || c.Router != nil {
		t.Fatalf("connector keeps sinks %v, router %v after a failed open", c.Sinks, c.Router)
	}
}

// TestOpenCreatesThePrivateStateDirectory: a missing state directory is
// created 0750 (it holds item payload hashes and positions), as state.Open
// would create it, not 0755.
func TestOpenCreatesThePrivateStateDirectory(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	base := t.TempDir()
	dir := filepath.Join(base, "var", "feedcdc")
	cc := connectorYAML{Name: "statedir", Database: "shop", Feeds: noFeeds, StatePath: filepath.Join(dir, "state.db"),
		Sections: "raw: {enabled: true, sinks: [files]}\nsinks:\n  files:\n    type: file\n    file: {dir: " + filepath.Join(base, "out") + "}\n"}
	c, err := Open(context.Background(), cc.load(t), OpenOptions{Logger: slog.New(slog.DiscardHandler), NoSinks: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, d := range []string{filepath.Join(base, "var"), dir} {
		fi, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if perm := fi.Mode().Perm(); perm != 0o750 {
			t.Errorf("%s created %v, want 0750", d, perm)
		}
	}
}

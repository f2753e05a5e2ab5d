package connector

import (
	"testing"

	"github.com/feedcdc/feedcdc/config"
)

// TestSinkTarget: the dashboard labels a sink with where it sends to, and
// never shows credentials or query strings of an HTTP service URL.
func TestSinkTarget(t *testing.T) {
	for _, c := range []struct {
		sink config.Sink
		want string
	}{
		{config.Sink{Type: "kafka", Kafka: &config.KafkaSink{Brokers: []string{"127.0.0.1:9092", "127.0.0.2:9092"}}}, "127.0.0.1:9092,127.0.0.2:9092"},
		{config.Sink{Type: "http", HTTP: &config.HTTPSink{BaseURL: "https://user:pw@feeds.example.com/api?key=secret#x"}}, "https://feeds.example.com/api"},
		{config.Sink{Type: "file", File: &config.FileSink{Dir: "/var/lib/feedcdc/out"}}, "/var/lib/feedcdc/out"},
		{config.Sink{Type: "file"}, ""},
	} {
		if got := sinkTarget(&c.sink); got != c.want {
			t.Errorf("sinkTarget(%s) = %q, want %q", c.sink.Type, got, c.want)
		}
	}
}

package connector

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/feedcdc/feedcdc/test/kafkatest"
)

// TestRawRejectionNamesTheRealTopic: a raw change larger than the Kafka
// sink's max_message_bytes stops the connector (skipping it would lose a
// change); the error names the topic as the sink writes it, with its
// topic_prefix filled in, never a literal "{prefix}", and the limit that
// was hit.
func TestRawRejectionNamesTheRealTopic(t *testing.T) {
	db := srv.NewDatabase(t, "rawreject")
	srv.Exec(t, db, "CREATE TABLE big (id INT PRIMARY KEY, body LONGTEXT)")
	kafka := kafkatest.Start(t)
	cy := connectorYAML{Name: "rawreject", Database: db, Feeds: noFeeds,
		Source:   []string{fmt.Sprintf("include_tables: [\"%s.big\"]", db)},
		Sections: "raw: {enabled: true}\n" + kafkaSink(kafka.Addr(), "shop", "max_message_bytes: 1KiB")}
	c := openConnector(t, cy.load(t), OpenOptions{})
	runErr, _ := startRun(t, c, RunOptions{NoSchedule: true})
	for deadline := time.Now().Add(time.Minute); !c.Connected(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("connector did not connect to the source")
		}
	}
	srv.Exec(t, db, "INSERT INTO big VALUES (1, REPEAT('x', 4096))")
	var err error
	select {
	case err = <-runErr:
	case <-time.After(2 * time.Minute):
		t.Fatal("run did not stop on a raw change the sink rejects")
	}
	want := "raw change on shop." + db + ".big at "
	if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "{prefix}") ||
		!strings.Contains(err.Error(), "sinks.kafka.kafka.max_message_bytes") {
		t.Fatalf("run error: %v\nwant one naming %q and sinks.kafka.kafka.max_message_bytes, without {prefix}", err, want)
	}
}

// Package sinks builds feedcdc's configured sinks (config.yaml's sinks:
// section) and the Router that sends each feed to its sinks.
//
// Invariants:
//   - Every configured sink is built or none is: on any error the sinks
//     already built are closed and the error names the sink.
//   - Entity feed records are routed by their feed name (products,
//     productAttributes, variants, productOverrides) to config's
//     SinksFor(feed); raw stream records carry Feed == RawFeed and go to
//     RawSinks(). Nothing else is routed (an unknown feed is Rejected).
//   - A raw record's Topic is raw.topic_template with {db}, {table} and
//     {name} filled by the caller (see RawTopic) and {prefix} left for each
//     sink: a Kafka sink's topic_prefix, or the connector name for file
//     sinks, exactly as config.RawTopic defines.
package sinks

import (
	"errors"
	"fmt"
	"log/slog"
	"sort"

	"github.com/feedcdc/feedcdc/config"
	"github.com/feedcdc/feedcdc/sink"
	"github.com/feedcdc/feedcdc/sink/filesink"
	"github.com/feedcdc/feedcdc/sink/httpsink"
	"github.com/feedcdc/feedcdc/sink/kafkasink"
)

// RawFeed is the Feed of raw per-table change stream records.
const RawFeed = "raw"

// RawTopic is the Topic to put on a raw record of db.table: the raw
// topic_template with {db}, {table} and {name} filled in and {prefix} left
// for each sink.
func RawTopic(cfg *config.Config, db, table string) string {
	return config.ExpandTemplate(cfg.Raw.TopicTemplate, map[string]string{"db": db, "table": table, "name": cfg.Name})
}

// Build constructs every sink of cfg.Sinks, keyed by name.
func Build(cfg *config.Config, log *slog.Logger) (map[string]sink.Sink, error) {
	if log == nil {
		log = slog.Default()
	}
	names := make([]string, 0, len(cfg.Sinks))
	for n := range cfg.Sinks {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make(map[string]sink.Sink, len(names))
	for _, name := range names {
		s, err := buildOne(cfg, name, cfg.Sinks[name], log)
		if err != nil {
			var errs []error
			for _, b := range out {
				if cerr := b.Close(); cerr != nil {
					errs = append(errs, cerr)
				}
			}
			return nil, errors.Join(append([]error{fmt.Errorf("sinks.%s: %w", name, err)}, errs...)...)
		}
		out[name] = s
	}
	return out, nil
}

func buildOne(cfg *config.Config, name string, sc *config.Sink, log *slog.Logger) (sink.Sink, error) {
	path := "sinks." + name
	switch {
	case sc == nil:
		return nil, errors.New("empty sink section")
	case sc.Type == "kafka" && sc.Kafka != nil:
		k := sc.Kafka
		tc, err := k.TLSConfig(path + ".kafka")
		if err != nil {
			return nil, err
		}
		return kafkasink.New(kafkasink.Config{
			Name: name, Brokers: k.Brokers, ClientID: k.ClientID, TopicPrefix: k.TopicPrefix, TopicTemplate: k.TopicTemplate,
			ConnectorName: cfg.Name, Compression: k.Compression, Acks: k.Acks, BatchSize: k.BatchSize, BatchBytes: int64(k.BatchBytes),
			Linger: k.Linger.D(), WriteTimeout: k.WriteTimeout.D(), CreateTopics: k.CreateTopics, Partitions: k.Partitions,
			ReplicationFactor: k.ReplicationFactor, Compact: k.Compact, TopicConfigs: k.TopicConfigs, MaxMessageBytes: int64(k.MaxMessageBytes),
			TLS:    kafkasink.TLSConfig{Enabled: tc != nil, Config: tc},
			SASL:   kafkasink.SASLConfig{Mechanism: k.SASL.Mechanism, User: k.SASL.User, Password: k.SASL.Password.Value()},
			Logger: log,
		})
	case sc.Type == "http" && sc.HTTP != nil:
		h := sc.HTTP
		tc, err := h.TLSConfig(path + ".http")
		if err != nil {
			return nil, err
		}
		return httpsink.New(httpsink.Config{
			Name: name, BaseURL: h.BaseURL, Routes: h.Routes, DataSpace: h.DataSpace, Headers: h.Headers,
			APIKey: h.APIKey.Value(), APIKeyHeaders: h.APIKeyHeaders, Timeout: h.Timeout.D(), Gzip: h.Gzip,
			MaxItemsPerRequest: h.MaxItemsPerRequest, ErrorItemsField: h.ErrorItemsField, RequestIDHeader: h.RequestIDHeader,
			TLSConfig: tc, Logger: log,
		})
	case sc.Type == "file" && sc.File != nil:
		f := sc.File
		return filesink.New(filesink.Config{
			Name: name, Dir: f.Dir, MaxSize: int64(f.MaxSize), MaxFiles: f.MaxFiles, Fsync: f.Fsync, Envelope: f.Envelope,
			TopicPrefix: cfg.Name, ConnectorName: cfg.Name, Logger: log,
		})
	}
	return nil, fmt.Errorf("type %q has no matching kafka/http/file section", sc.Type)
}

// NewRouter routes every entity feed to config's SinksFor(feed) and raw
// records (Feed == RawFeed) to RawSinks(), over the sinks Build returned.
func NewRouter(cfg *config.Config, built map[string]sink.Sink) (*sink.Router, error) {
	pick := func(what string, names []string) ([]sink.Sink, error) {
		var ss []sink.Sink
		for _, n := range names {
			s, ok := built[n]
			if !ok {
				return nil, fmt.Errorf("%s is routed to sink %q, which is not configured under sinks:", what, n)
			}
			ss = append(ss, s)
		}
		return ss, nil
	}
	routes := map[string][]sink.Sink{}
	for _, f := range config.FeedNames {
		ss, err := pick("feed "+f, cfg.SinksFor(f))
		if err != nil {
			return nil, err
		}
		if len(ss) > 0 {
			routes[f] = ss
		}
	}
	ss, err := pick("raw", cfg.RawSinks())
	if err != nil {
		return nil, err
	}
	if len(ss) > 0 {
		routes[RawFeed] = ss
	}
	return sink.NewRouter(routes, nil)
}

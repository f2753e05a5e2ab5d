package kafkasink

import (
	"context"

	ksasl "github.com/segmentio/kafka-go/sasl"
	fsasl "github.com/twmb/franz-go/pkg/sasl"
	fscram "github.com/twmb/franz-go/pkg/sasl/scram"
)

type saslMech = ksasl.Mechanism

// scramMech adapts franz-go's SCRAM client (already a dependency, RFC 5802
// with SHA-256/512) to kafka-go's sasl.Mechanism, so feedcdc needs no extra
// SCRAM module. The two interfaces are the same state machine: a first
// message, then challenge/response rounds until done.
type scramMech struct {
	name string
	m    fsasl.Mechanism
}

func newScram(name, user, pass string) scramMech {
	a := fscram.Auth{User: user, Pass: pass}
	if name == "SCRAM-SHA-512" {
		return scramMech{name: name, m: a.AsSha512Mechanism()}
	}
	return scramMech{name: name, m: a.AsSha256Mechanism()}
}

func (s scramMech) Name() string { return s.name }

func (s scramMech) Start(ctx context.Context) (ksasl.StateMachine, []byte, error) {
	host := ""
	if md := ksasl.MetadataFromContext(ctx); md != nil {
		host = md.Host
	}
	sess, first, err := s.m.Authenticate(ctx, host)
	if err != nil {
		return nil, nil, err
	}
	return scramSession{sess}, first, nil
}

type scramSession struct{ s fsasl.Session }

func (s scramSession) Next(_ context.Context, challenge []byte) (bool, []byte, error) {
	return s.s.Challenge(challenge)
}

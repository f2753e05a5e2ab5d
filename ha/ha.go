package ha

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// ErrFenced is matched (errors.Is) by the errors of writes an instance
// attempts while it is not the active one, or after its lease expired.
var ErrFenced = errors.New("ha: this instance is not the active one (fenced)")

// Options configure a Node.
type Options struct {
	Brokers        []string
	Name           string // connector name
	TopicPrefix    string
	Instance       string // this instance's name; default host:pid
	SessionTimeout time.Duration
	Replication    int // replication factor of created topics; -1 = broker default
	Logger         *slog.Logger
}

// Group is the consumer group the instances join.
func (o Options) Group() string { return "feedcdc." + o.Name }

// LeaderTopic is the single-partition coordination topic.
func (o Options) LeaderTopic() string { return o.TopicPrefix + "." + o.Name + ".leader" }

// StateTopic is the compacted state changelog.
func (o Options) StateTopic() string { return o.TopicPrefix + "." + o.Name + ".state" }

func (o Options) lease() time.Duration { return o.SessionTimeout / 2 }

// Role is an instance's role.
type Role string

// Roles.
const (
	RoleStandby Role = "standby"
	RoleActive  Role = "active"
	// RoleStopped is shown by `feedcdc status` for an instance that does
	// not run (read from its state file).
	RoleStopped Role = "stopped"
)

// Status is what status pages and metrics show of an instance.
type Status struct {
	Instance string `json:"instance"`
	Role     Role   `json:"role"`
	// Epoch is the active instance's epoch (the changelog offset of its
	// epoch marker); on a standby, the newest epoch it read.
	Epoch int64 `json:"epoch"`
	// Generation is the group generation of this instance's last election.
	Generation int64 `json:"generation,omitempty"`
	// Lag is, on a standby, the changelog records not applied yet.
	Lag int64 `json:"changelog_lag"`
	// LastTakeover is when this instance last became active (zero: never).
	LastTakeover time.Time `json:"last_takeover,omitzero"`
	// TakeoverMillis is how long its last takeover took from the election
	// to the connector streaming (catch-up, fencing wait, preflight).
	TakeoverMillis int64 `json:"takeover_ms,omitempty"`
}

// Node is this instance's membership in the group.
type Node struct {
	opts  Options
	log   *slog.Logger
	group *kgo.Client
	admin *kadm.Client
	plain *kgo.Client // admin and changelog producer

	elected chan int64
	lost    chan struct{}

	txMu    sync.Mutex // serialises Commit; guards tx, txEpoch
	tx      uint64
	txEpoch uint64

	mu         sync.Mutex
	active     bool
	epoch      int64
	electedAt  time.Time
	leaseUntil time.Time
	status     Status
}

// Start creates the topics when missing and joins the group. The node
// reports its elections on Elected and losses on Lost until ctx ends or
// Close.
func Start(ctx context.Context, o Options) (*Node, error) {
	if len(o.Brokers) == 0 {
		return nil, errors.New("ha: no brokers; set ha.brokers")
	}
	if o.SessionTimeout <= 0 {
		o.SessionTimeout = 6 * time.Second
	}
	if o.Instance == "" {
		host, _ := os.Hostname()
		o.Instance = fmt.Sprintf("%s:%d", host, os.Getpid())
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	n := &Node{opts: o, log: o.Logger.With("ha_instance", o.Instance), elected: make(chan int64, 1), lost: make(chan struct{}, 1)}
	n.status = Status{Instance: o.Instance, Role: RoleStandby}
	var err error
	// A state transaction's records go out in batches of up to
	// maxBatchBytes (followers gather a transaction by its record count,
	// not by batch); the state topic accepts batches that large
	// (ensureTopics).
	n.plain, err = kgo.NewClient(kgo.SeedBrokers(o.Brokers...), kgo.DefaultProduceTopic(o.StateTopic()),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0), kgo.ProducerBatchMaxBytes(maxBatchBytes),
		kgo.RequiredAcks(kgo.AllISRAcks()))
	if err != nil {
		return nil, fmt.Errorf("ha: kafka client for %v: %w", o.Brokers, err)
	}
	n.admin = kadm.NewClient(n.plain)
	if err := n.ensureTopics(ctx); err != nil {
		n.plain.Close()
		return nil, err
	}
	n.group, err = kgo.NewClient(kgo.SeedBrokers(o.Brokers...), kgo.ConsumerGroup(o.Group()), kgo.ConsumeTopics(o.LeaderTopic()),
		kgo.SessionTimeout(o.SessionTimeout), kgo.HeartbeatInterval(max(o.SessionTimeout/6, 100*time.Millisecond)),
		kgo.RebalanceTimeout(o.SessionTimeout), kgo.DisableAutoCommit(),
		kgo.OnPartitionsAssigned(n.assigned), kgo.OnPartitionsRevoked(n.revoked), kgo.OnPartitionsLost(n.revoked))
	if err != nil {
		n.plain.Close()
		return nil, fmt.Errorf("ha: join group %s: %w", o.Group(), err)
	}
	go n.poll(ctx)
	go n.renew(ctx)
	return n, nil
}

// maxBatchBytes is the largest changelog batch, and the state topic's
// max.message.bytes. A broker's default (1 MiB) is too small: one state
// transaction (a takeover's first batch rebuilding every product: 21,553
// records, 1.08 MB compressed) filled a batch the broker refused with
// MESSAGE_TOO_LARGE, and the active instance stopped. One write-ahead
// record of an export holds all its items' states, so smaller batches
// are no answer either.
const maxBatchBytes = 16 << 20

func (n *Node) ensureTopics(ctx context.Context) error {
	rf := int16(n.opts.Replication)
	compact, maxBytes := "compact", strconv.Itoa(maxBatchBytes)
	for _, t := range []struct {
		name string
		cfg  map[string]*string
	}{{n.opts.LeaderTopic(), nil}, {n.opts.StateTopic(), map[string]*string{"cleanup.policy": &compact, "max.message.bytes": &maxBytes}}} {
		r, err := n.admin.CreateTopic(ctx, 1, rf, t.cfg, t.name)
		if err == nil {
			err = r.Err
		}
		if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("ha: create topic %s: %w", t.name, err)
		}
	}
	return nil
}

func (n *Node) poll(ctx context.Context) {
	for ctx.Err() == nil {
		f := n.group.PollFetches(ctx)
		if f.IsClientClosed() {
			return
		}
	}
}

func holdsLeader(o Options, m map[string][]int32) bool {
	for _, p := range m[o.LeaderTopic()] {
		if p == 0 {
			return true
		}
	}
	return false
}

func (n *Node) assigned(_ context.Context, cl *kgo.Client, m map[string][]int32) {
	if !holdsLeader(n.opts, m) {
		return
	}
	_, gen := cl.GroupMetadata()
	now := time.Now()
	n.mu.Lock()
	n.active, n.electedAt = true, now
	n.status.Generation = int64(gen)
	n.leaseUntil = now.Add(n.opts.lease())
	n.mu.Unlock()
	n.log.Info("ha: elected active", "generation", gen)
	select {
	case n.elected <- int64(gen):
	default:
	}
}

func (n *Node) revoked(_ context.Context, _ *kgo.Client, m map[string][]int32) {
	if !holdsLeader(n.opts, m) {
		return
	}
	n.fence("the coordination partition was revoked or lost")
}

// fence ends this instance's leadership at once.
func (n *Node) fence(why string) {
	n.mu.Lock()
	was := n.active
	n.active, n.leaseUntil = false, time.Time{}
	n.mu.Unlock()
	if !was {
		return
	}
	n.log.Warn("ha: no longer active; writes are fenced", "reason", why)
	select {
	case n.lost <- struct{}{}:
	default:
	}
}

// renew extends the lease while the coordinator lists this member.
func (n *Node) renew(ctx context.Context) {
	t := time.NewTicker(max(n.opts.SessionTimeout/6, 50*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n.mu.Lock()
		active := n.active
		n.mu.Unlock()
		if !active {
			continue
		}
		sent := time.Now()
		member, _ := n.group.GroupMetadata()
		dctx, cancel := context.WithTimeout(ctx, n.opts.lease())
		gs, err := n.admin.DescribeGroups(dctx, n.opts.Group())
		cancel()
		if err != nil {
			continue
		}
		listed := false
		for _, g := range gs {
			for _, m := range g.Members {
				listed = listed || (m.MemberID == member && member != "")
			}
		}
		n.mu.Lock()
		if listed && n.active {
			n.leaseUntil = sent.Add(n.opts.lease())
		}
		expired := n.active && time.Now().After(n.leaseUntil)
		n.mu.Unlock()
		if expired {
			n.fence("the lease expired: the group coordinator did not list this member in time")
		}
	}
}

// Writable is nil while this instance is active and its lease holds, else
// an error matching ErrFenced. Check it right before every write.
func (n *Node) Writable() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.active {
		return ErrFenced
	}
	if time.Now().After(n.leaseUntil) {
		return fmt.Errorf("%w: its lease expired %s ago (paused, partitioned or slow)", ErrFenced, time.Since(n.leaseUntil).Round(time.Millisecond))
	}
	return nil
}

// Elected receives this instance's group generation each time it becomes
// active.
func (n *Node) Elected() <-chan int64 { return n.elected }

// Lost receives once each time this instance stops being active.
func (n *Node) Lost() <-chan struct{} { return n.lost }

// WaitFence waits until one lease length has passed since the election, so
// that a previous active instance, whose lease was renewed at the latest
// when it was last a member, has stopped writing.
func (n *Node) WaitFence(ctx context.Context) error {
	n.mu.Lock()
	until := n.electedAt.Add(n.opts.lease())
	n.mu.Unlock()
	t := time.NewTimer(time.Until(until))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Status returns this instance's role, epoch, changelog lag and last
// takeover.
func (n *Node) Status() Status {
	n.mu.Lock()
	defer n.mu.Unlock()
	s := n.status
	if n.active {
		s.Role, s.Epoch = RoleActive, n.epoch
	}
	return s
}

func (n *Node) setStatus(f func(s *Status)) {
	n.mu.Lock()
	f(&n.status)
	n.mu.Unlock()
}

// Streaming records that the connector of this leadership streams: the
// takeover is over (status: last takeover, and its duration from the
// election).
func (n *Node) Streaming() time.Duration {
	n.mu.Lock()
	d := time.Since(n.electedAt)
	n.mu.Unlock()
	n.setStatus(func(s *Status) { s.LastTakeover, s.TakeoverMillis, s.Lag = time.Now().UTC(), d.Milliseconds(), 0 })
	return d
}

// setEpoch records the epoch of this leadership (its marker's offset).
func (n *Node) setEpoch(e int64) {
	n.mu.Lock()
	n.epoch = e
	n.mu.Unlock()
}

// Epoch is the epoch of this instance's current (or last) leadership: the
// changelog offset of the epoch marker its takeover wrote.
func (n *Node) Epoch() int64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.epoch
}

// Options returns the node's options (defaults applied).
func (n *Node) Options() Options { return n.opts }

// Close leaves the group (a standby takes over at once) and closes the
// clients.
func (n *Node) Close() {
	n.fence("closing")
	n.group.Close()
	n.plain.Close()
}

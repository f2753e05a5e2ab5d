package ha

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/feedcdc/feedcdc/state"
)

// Record keys start with the class of what they name, so that a delete
// (tombstone) supersedes the puts of its key under compaction, and a bucket
// drop never supersedes a later creation of the same bucket.
const (
	classKey      = 'K' // a key in a bucket (put, delete)
	classCreate   = 'C' // a bucket's creation
	classDrop     = 'D' // a bucket's removal
	classSequence = 'S' // a bucket's sequence
	classEpoch    = 'E' // an epoch marker
)

// Header names.
const (
	hEpoch = "e" // uint64: epoch of the writer
	hTx    = "t" // uint64: transaction number within the epoch
	hCount = "n" // uint32: records of the transaction
	hKind  = "k" // byte: state.OpKind, or 0 for an epoch marker
)

func recordKey(op state.Op) []byte {
	var class byte
	switch op.Kind {
	case state.OpPut, state.OpDelete:
		class = classKey
	case state.OpCreateBucket:
		class = classCreate
	case state.OpDropBucket:
		class = classDrop
	case state.OpSequence:
		class = classSequence
	}
	k := []byte{class}
	k = binary.AppendUvarint(k, uint64(len(op.Bucket)))
	for _, b := range op.Bucket {
		k = binary.AppendUvarint(k, uint64(len(b)))
		k = append(k, b...)
	}
	return append(k, op.Key...)
}

func parseKey(k []byte) (path [][]byte, key []byte, err error) {
	if len(k) < 2 {
		return nil, nil, errors.New("key too short")
	}
	rest := k[1:]
	n, w := binary.Uvarint(rest)
	if w <= 0 || n > 64 {
		return nil, nil, errors.New("bad path length")
	}
	rest = rest[w:]
	for range n {
		l, w := binary.Uvarint(rest)
		if w <= 0 || uint64(len(rest)-w) < l {
			return nil, nil, errors.New("bad path element")
		}
		path = append(path, rest[w:w+int(l)])
		rest = rest[w+int(l):]
	}
	return path, rest, nil
}

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func encodeTx(topic string, ops []state.Op, epoch, tx uint64) []*kgo.Record {
	recs := make([]*kgo.Record, len(ops))
	count := binary.BigEndian.AppendUint32(nil, uint32(len(ops)))
	for i, op := range ops {
		r := &kgo.Record{Topic: topic, Partition: 0, Key: recordKey(op), Headers: []kgo.RecordHeader{
			{Key: hEpoch, Value: u64(epoch)}, {Key: hTx, Value: u64(tx)}, {Key: hCount, Value: count}, {Key: hKind, Value: []byte{byte(op.Kind)}}}}
		switch op.Kind {
		case state.OpDelete:
			// nil: a tombstone, removed by compaction in time
		case state.OpPut, state.OpSequence:
			r.Value = op.Value
			if r.Value == nil {
				r.Value = []byte{}
			}
		default:
			r.Value = []byte{}
		}
		recs[i] = r
	}
	return recs
}

// header is the decoded replication header of one record.
type header struct {
	epoch, tx uint64
	count     uint32
	kind      byte
}

func parseHeader(r *kgo.Record) (h header, err error) {
	seen := 0
	for _, x := range r.Headers {
		switch x.Key {
		case hEpoch:
			if len(x.Value) == 8 {
				h.epoch, seen = binary.BigEndian.Uint64(x.Value), seen|1
			}
		case hTx:
			if len(x.Value) == 8 {
				h.tx, seen = binary.BigEndian.Uint64(x.Value), seen|2
			}
		case hCount:
			if len(x.Value) == 4 {
				h.count, seen = binary.BigEndian.Uint32(x.Value), seen|4
			}
		case hKind:
			if len(x.Value) == 1 {
				h.kind, seen = x.Value[0], seen|8
			}
		}
	}
	if seen != 15 {
		return h, fmt.Errorf("record at offset %d of %s lacks replication headers (written by something else than feedcdc?)", r.Offset, r.Topic)
	}
	return h, nil
}

// Commit writes the ops of one committed state transaction to the
// changelog, tagged with this leadership's epoch, and returns once the
// broker acknowledged them; it is the active instance's state commit hook.
// A fenced instance writes nothing.
func (n *Node) Commit(ctx context.Context, ops []state.Op) error {
	n.txMu.Lock()
	defer n.txMu.Unlock()
	if err := n.Writable(); err != nil {
		return err
	}
	epoch := uint64(n.Epoch())
	if epoch != n.txEpoch {
		n.txEpoch, n.tx = epoch, 0
	}
	n.tx++
	recs := encodeTx(n.opts.StateTopic(), ops, epoch, n.tx)
	if err := n.plain.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return fmt.Errorf("ha: write %d records to the changelog %s: %w", len(recs), n.opts.StateTopic(), err)
	}
	return nil
}

// mark is what a standby's state file records of how far it read.
type mark struct {
	Role   Role   `json:"role"`
	Offset int64  `json:"offset"` // next changelog offset to read
	Epoch  uint64 `json:"epoch"`  // newest epoch marker read
}

// ReadMark returns the store's replica mark; ok is false when the file is
// not a standby's copy (none, or it was written as active).
func ReadMark(ctx context.Context, st *state.Store) (m mark, ok bool, err error) {
	b, err := st.ReplicaMark(ctx)
	if err != nil || b == nil {
		return m, false, err
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, false, nil
	}
	return m, m.Role == RoleStandby, nil
}

// StoppedStatus is the status of an instance that does not run, from its
// state file st: role stopped and, for a standby's copy, the newest epoch
// it read (0 for a file last written as active, whose epoch is not
// recorded). The changelog lag is not measured (0).
func StoppedStatus(ctx context.Context, st *state.Store, instance string) (Status, error) {
	m, ok, err := ReadMark(ctx, st)
	if err != nil {
		return Status{}, fmt.Errorf("ha: read the replica mark of %s: %w", st.Path(), err)
	}
	s := Status{Instance: instance, Role: RoleStopped}
	if ok {
		s.Epoch = int64(m.Epoch)
	}
	return s, nil
}

// Follower applies the changelog to a standby's state file.
type Follower struct {
	n       *Node
	st      *state.Store
	cl      *kgo.Client
	m       mark
	pending []state.Op
	ph      header     // header of the pending transaction
	fetched int64      // offset after the last record the consumer handed out
	mu      sync.Mutex // guards m for the lag watcher
}

// Follow starts reading the changelog into st from its mark (from the
// beginning for a file without one).
func (n *Node) Follow(ctx context.Context, st *state.Store) (*Follower, error) {
	m, ok, err := ReadMark(ctx, st)
	if err != nil {
		return nil, err
	}
	if !ok {
		m = mark{Role: RoleStandby}
	}
	cl, err := n.consumer(m.Offset)
	if err != nil {
		return nil, err
	}
	return &Follower{n: n, st: st, cl: cl, m: m}, nil
}

// consumer reads the changelog from offset on.
func (n *Node) consumer(offset int64) (*kgo.Client, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(n.opts.Brokers...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{n.opts.StateTopic(): {0: kgo.NewOffset().At(offset)}}),
		kgo.FetchMaxWait(200*time.Millisecond), kgo.FetchMaxBytes(64<<20))
	if err != nil {
		return nil, fmt.Errorf("ha: changelog consumer: %w", err)
	}
	return cl, nil
}

// resume makes the follower read on from what its file holds: the file's
// mark (the offset after the last record applied, the newest epoch read),
// with no transaction pending. The consumer may have handed out records
// that were never applied (a Run ended by its context drops the rest of
// the fetch it was applying), so the consumer's position is not where
// the file's content ends; the mark is, since it is written in the
// transaction of each apply.
func (f *Follower) resume(ctx context.Context) error {
	m, ok, err := ReadMark(ctx, f.st)
	if err != nil {
		return err
	}
	if !ok {
		m = mark{Role: RoleStandby}
	}
	if f.fetched > m.Offset {
		f.n.log.Info("ha: the follow ended with changelog records fetched but not applied; reading them again from the state file's mark",
			"mark", m.Offset, "fetched_up_to", f.fetched)
	}
	cl, err := f.n.consumer(m.Offset)
	if err != nil {
		return err
	}
	f.cl.Close()
	f.mu.Lock()
	f.cl, f.m, f.pending = cl, m, nil
	f.mu.Unlock()
	return nil
}

// Close stops reading.
func (f *Follower) Close() { f.cl.Close() }

// Offset is the next changelog offset the follower reads.
func (f *Follower) Offset() int64 { return f.m.Offset }

// Run applies the changelog until ctx ends (nil) or an error.
func (f *Follower) Run(ctx context.Context) error {
	go f.watchLag(ctx)
	for {
		if err := f.pollOnce(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
}

func (f *Follower) watchLag(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		end, err := f.n.End(ctx)
		if err == nil {
			f.n.setStatus(func(s *Status) { s.Lag = max(0, end-f.offset()) })
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (f *Follower) offset() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.m.Offset
}

// End is the changelog's end offset (the number of records written to it).
func (n *Node) End(ctx context.Context) (int64, error) {
	ends, err := n.admin.ListEndOffsets(ctx, n.opts.StateTopic())
	if err != nil {
		return 0, fmt.Errorf("ha: end offset of %s: %w", n.opts.StateTopic(), err)
	}
	o, ok := ends.Lookup(n.opts.StateTopic(), 0)
	if !ok || o.Err != nil {
		return 0, fmt.Errorf("ha: end offset of %s: %v", n.opts.StateTopic(), o.Err)
	}
	return o.Offset, nil
}

func (f *Follower) pollOnce(ctx context.Context) error {
	fs := f.cl.PollFetches(ctx)
	if err := ctx.Err(); err != nil {
		return err
	}
	var ferr error
	fs.EachError(func(t string, p int32, err error) { ferr = errors.Join(ferr, fmt.Errorf("ha: read %s: %w", t, err)) })
	if ferr != nil {
		return ferr
	}
	var recs []*kgo.Record
	fs.EachRecord(func(r *kgo.Record) { recs = append(recs, r) })
	if len(recs) > 0 {
		f.fetched = recs[len(recs)-1].Offset + 1
	}
	for _, r := range recs {
		if err := f.handle(ctx, r); err != nil {
			return err
		}
	}
	return nil
}

// handle applies one changelog record (see the package invariants).
func (f *Follower) handle(ctx context.Context, r *kgo.Record) error {
	h, err := parseHeader(r)
	if err != nil {
		return err
	}
	next := r.Offset + 1
	if h.kind == 0 { // epoch marker: its offset is the new epoch
		if len(f.pending) > 0 {
			if err := f.flush(ctx, r.Offset); err != nil {
				return err
			}
		}
		if e := uint64(r.Offset); e > f.m.Epoch {
			f.m.Epoch = e
		}
		f.n.setStatus(func(s *Status) { s.Epoch = int64(f.m.Epoch) })
		return f.save(ctx, nil, next)
	}
	if h.epoch < f.m.Epoch { // a fenced writer's late record
		if len(f.pending) == 0 { // read; recorded with the next apply
			f.mu.Lock()
			f.m.Offset = next
			f.mu.Unlock()
		}
		return nil
	}
	if len(f.pending) > 0 && (f.ph.epoch != h.epoch || f.ph.tx != h.tx) {
		if err := f.flush(ctx, r.Offset); err != nil { // incomplete: compacted, or corrected later
			return err
		}
	}
	path, key, err := parseKey(r.Key)
	if err != nil {
		return fmt.Errorf("ha: record at offset %d of %s: %w", r.Offset, r.Topic, err)
	}
	op := state.Op{Kind: state.OpKind(h.kind), Bucket: path, Key: key, Value: r.Value}
	if op.Kind == state.OpPut && op.Value == nil {
		op.Value = []byte{}
	}
	if len(op.Key) == 0 {
		op.Key = nil
	}
	f.pending, f.ph = append(f.pending, op), h
	if len(f.pending) >= int(h.count) {
		return f.flush(ctx, next)
	}
	return nil
}

// flush applies the pending transaction; the file then records next as
// the offset to read from.
func (f *Follower) flush(ctx context.Context, next int64) error {
	err := f.save(ctx, f.pending, next)
	f.pending = f.pending[:0]
	return err
}

func (f *Follower) save(ctx context.Context, ops []state.Op, next int64) error {
	m := f.m
	m.Offset = next
	b, _ := json.Marshal(m)
	if err := f.st.Apply(ctx, ops, b); err != nil {
		return fmt.Errorf("ha: apply changelog up to offset %d: %w", next, err)
	}
	f.mu.Lock()
	f.m = m
	f.mu.Unlock()
	return nil
}

// Takeover makes the follower's file the active instance's: it writes an
// epoch marker, applies the changelog from the file's mark up to it (what
// Run had fetched but not applied when its context ended is read again),
// corrects an incomplete
// last transaction, and marks the file as written by an active instance
// (a restart then restores from the changelog). The follower is closed.
func (f *Follower) Takeover(ctx context.Context) error {
	defer func() { f.cl.Close() }()
	if err := f.n.Writable(); err != nil {
		return err
	}
	// The election ends Run wherever it was, also in the middle of a
	// fetch: catch up from the file's mark, not from the consumer's
	// position, so that no record between them is skipped.
	if err := f.resume(ctx); err != nil {
		return err
	}
	gen := uint64(f.n.Status().Generation)
	end, err := f.n.End(ctx)
	if err != nil {
		return err
	}
	// The marker's offset is the epoch: offsets only grow, while group
	// generations restart when Kafka deletes an empty group (every
	// instance down at once). Its value is the generation, for people.
	marker := &kgo.Record{Topic: f.n.opts.StateTopic(), Partition: 0, Key: []byte{classEpoch}, Value: u64(gen), Headers: []kgo.RecordHeader{
		{Key: hEpoch, Value: u64(gen)}, {Key: hTx, Value: u64(0)}, {Key: hCount, Value: binary.BigEndian.AppendUint32(nil, 1)}, {Key: hKind, Value: []byte{0}}}}
	if err := f.n.plain.ProduceSync(ctx, marker).FirstErr(); err != nil {
		return fmt.Errorf("ha: write the epoch marker to %s: %w", f.n.opts.StateTopic(), err)
	}
	at := marker.Offset
	epoch := uint64(at)
	f.n.setEpoch(int64(at))
	// Read up to (excluding) the marker; records of older epochs after it
	// are ignored by every follower, so they are not applied here either.
	for read := f.m.Offset; read < at; {
		fs := f.cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return err
		}
		var ferr error
		fs.EachError(func(t string, p int32, err error) { ferr = errors.Join(ferr, err) })
		if ferr != nil {
			return fmt.Errorf("ha: catch up on %s: %w", f.n.opts.StateTopic(), ferr)
		}
		var recs []*kgo.Record
		fs.EachRecord(func(r *kgo.Record) { recs = append(recs, r) })
		for _, r := range recs {
			if r.Offset >= at {
				break
			}
			if err := f.handle(ctx, r); err != nil {
				return err
			}
			read = r.Offset + 1
		}
	}
	var fix []state.Op
	for _, op := range f.pending {
		cur, err := f.st.Lookup(ctx, op)
		if err != nil {
			return err
		}
		fix = append(fix, cur)
	}
	f.pending = nil
	b, _ := json.Marshal(mark{Role: RoleActive, Offset: at + 1, Epoch: epoch})
	if err := f.st.Apply(ctx, nil, b); err != nil {
		return err
	}
	if end == 0 {
		// A new group: the local file (a single-process connector's, when
		// HA is turned on for it) is where the state starts; publish it.
		n := 0
		err := f.st.Export(ctx, 10_000, func(ops []state.Op) error {
			n += len(ops)
			return f.n.Commit(ctx, ops)
		})
		if err != nil {
			return fmt.Errorf("ha: publish the local state to the empty changelog: %w", err)
		}
		if n > 0 {
			f.n.log.Info("ha: published the local state file to the empty changelog", "records", n)
		}
	}
	if len(fix) > 0 {
		f.n.log.Warn("ha: the previous active instance's last transaction is incomplete in the changelog; writing corrections", "records", len(fix))
		if err := f.n.Commit(ctx, fix); err != nil {
			return err
		}
	}
	return nil
}

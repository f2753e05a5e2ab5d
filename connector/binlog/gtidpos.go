package binlog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
	"github.com/google/uuid"

	"github.com/feedcdc/feedcdc/change"
)

// gtidsAt accumulates the MySQL GTID set in force at a position of one
// binlog file from that file's events, read from its start: the file's
// PREVIOUS_GTIDS plus the GTID of every transaction that ends at or before
// the position. A MySQL checkpoint taken in the middle of a file (a
// start_position file:pos) is thus complete, so that a later GTID resume
// asks the server only for what follows it.
type gtidsAt struct {
	pos  uint32
	set  *mysql.MysqlGTIDSet
	seen bool // a PREVIOUS_GTIDS with GTIDs, or a GTID, was read
	// pending is the GTID of the open transaction (nil: none or anonymous)
	// and pendingEnd its end position when the GTID event says it (MySQL
	// 8.0.2+), else 0.
	pending    func()
	pendingEnd uint32
	done       bool
}

func newGTIDsAt(pos uint32) *gtidsAt {
	s := mysql.NewMysqlGTIDSet()
	return &gtidsAt{pos: pos, set: &s}
}

// event takes the file's next event; after it returns done, the set is
// final.
func (g *gtidsAt) event(e *replication.BinlogEvent) (done bool, err error) {
	h := e.Header
	if g.done {
		return true, nil
	}
	if h.LogPos == 0 || h.Flags&replication.LOG_EVENT_ARTIFICIAL_F != 0 {
		return false, nil // the dump's fake rotate, heartbeats
	}
	if h.LogPos > g.pos {
		g.done = true
		return true, nil
	}
	switch ev := e.Event.(type) {
	case *replication.PreviousGTIDsEvent:
		s, err := mysql.ParseMysqlGTIDSet(ev.GTIDSets)
		if err != nil {
			return false, fmt.Errorf("PREVIOUS_GTIDS %q: %w", ev.GTIDSets, err)
		}
		g.set = s.(*mysql.MysqlGTIDSet)
		g.seen = g.seen || strings.TrimSpace(ev.GTIDSets) != ""
	case *replication.GTIDEvent:
		g.begin(h, ev, nil)
	case *replication.GtidTaggedLogEvent:
		g.begin(h, &ev.GTIDEvent, ev)
	case *replication.XIDEvent, *replication.TransactionPayloadEvent:
		g.commit()
	case *replication.QueryEvent:
		if g.pendingEnd == 0 && !strings.EqualFold(strings.TrimSpace(string(ev.Query)), "BEGIN") {
			g.commit() // COMMIT, or a DDL (its own transaction)
		}
	case *replication.RotateEvent:
		g.done = true // the file ended before the position
	}
	if g.pendingEnd != 0 && g.pendingEnd <= h.LogPos {
		g.commit()
	}
	if h.LogPos == g.pos {
		g.done = true
	}
	return g.done, nil
}

func (g *gtidsAt) begin(h *replication.EventHeader, e *replication.GTIDEvent, tagged *replication.GtidTaggedLogEvent) {
	g.pending, g.pendingEnd = nil, 0
	if e.TransactionLength > 0 && h.LogPos >= h.EventSize {
		g.pendingEnd = h.LogPos - h.EventSize + uint32(e.TransactionLength)
	}
	u, err := uuid.FromBytes(e.SID)
	if err != nil || u == uuid.Nil {
		return // anonymous (gtid_mode OFF)
	}
	gno, set := e.GNO, g.set
	if tagged != nil && tagged.Tag.String() != "" {
		tag := tagged.Tag
		g.pending = func() { set.AddGTIDWithTag(u, tag, gno) }
	} else {
		g.pending = func() { set.AddGTID(u, gno) }
	}
}

func (g *gtidsAt) commit() {
	if g.pending != nil {
		g.pending()
		g.seen = true
	}
	g.pending, g.pendingEnd = nil, 0
}

// result is the GTID set at the position, "" when the file carries no
// GTIDs (gtid_mode OFF: positions stay file/pos only).
func (g *gtidsAt) result() string {
	if !g.seen {
		return ""
	}
	return g.set.String()
}

// mysqlGTIDsAt resolves the GTID set at from (a MySQL file/pos in the middle
// of a file) by reading the file from its start up to from.Pos over a
// replication connection.
func (s *Source) mysqlGTIDsAt(ctx context.Context, from change.Position) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	syncer := replication.NewBinlogSyncer(replication.BinlogSyncerConfig{
		ServerID: s.cfg.ServerID, Flavor: mysql.MySQLFlavor, Host: s.cfg.Host, Port: uint16(s.cfg.Port),
		User: s.cfg.User, Password: s.cfg.Password, TLSConfig: s.tls, HeartbeatPeriod: s.cfg.HeartbeatPeriod,
		ReadTimeout: s.cfg.ReadTimeout, DisableRetrySync: true, VerifyChecksum: true,
		Logger: slog.New(capLevel{s.log.Handler()}).With("component", "go-mysql"),
		// only GTID and commit events matter: leave row events undecoded
		RowsEventDecodeFunc: func(*replication.RowsEvent, []byte) error { return nil },
	})
	defer syncer.Close()
	streamer, err := syncer.StartSync(mysql.Position{Name: from.File, Pos: 4})
	if err != nil {
		return "", fmt.Errorf("start position %s: read %s from its start for the GTID set at the position: %w", from, from.File, s.classify(err, from))
	}
	g := newGTIDsAt(from.Pos)
	for {
		e, err := streamer.GetEvent(ctx)
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				err = fmt.Errorf("the file has no event ending at %d yet: %w", from.Pos, err)
			}
			return "", fmt.Errorf("start position %s: GTID set at the position: %w", from, err)
		}
		done, err := g.event(e)
		if err != nil {
			return "", fmt.Errorf("start position %s: %w", from, err)
		}
		if done {
			return g.result(), nil
		}
	}
}

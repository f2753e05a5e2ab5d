package connector

import (
	"context"
	"fmt"
	"time"

	"github.com/feedcdc/feedcdc/change"
	"github.com/feedcdc/feedcdc/connector/raw"
	"github.com/feedcdc/feedcdc/sink"
)

// txMeta counts the raw events of the transaction being read
// (raw.transaction_metadata), in Debezium's terms.
type txMeta struct {
	id     string
	total  int64
	colls  []raw.CollectionCount // in order of first appearance
	index  map[*change.Table]int // table version -> colls index
	byName map[string]int        // "db.table" -> colls index
}

// txEvent counts c in the transaction being read, starting it (a BEGIN
// record) at its first raw event, and returns c's place in it.
func (p *Pipeline) txEvent(ctx context.Context, c *change.Change) (raw.TxOrder, error) {
	if p.tx == nil {
		id := c.Source.GTID
		if id == "" {
			id = fmt.Sprintf("%s:%d", c.Source.File, c.Source.Pos)
		}
		p.tx = &txMeta{id: id, index: map[*change.Table]int{}, byName: map[string]int{}}
		if err := p.addTxRecord(ctx, "BEGIN", c.Source.Timestamp); err != nil {
			return raw.TxOrder{}, err
		}
	}
	tx := p.tx
	i, ok := tx.index[c.Table]
	if !ok {
		name := c.Table.FullName()
		if i, ok = tx.byName[name]; !ok {
			i = len(tx.colls)
			tx.colls = append(tx.colls, raw.CollectionCount{DataCollection: name})
			tx.byName[name] = i
		}
		tx.index[c.Table] = i
	}
	tx.total++
	tx.colls[i].EventCount++
	return raw.TxOrder{ID: tx.id, TotalOrder: tx.total, DataCollectionOrder: tx.colls[i].EventCount}, nil
}

// txEnd adds the END record of the transaction being read.
func (p *Pipeline) txEnd(ctx context.Context, e change.TxEnd) error {
	err := p.addTxRecord(ctx, "END", e.Timestamp)
	p.tx = nil
	return err
}

// TxAbort implements binlog.TxAborter: the connection was lost inside a
// transaction, which is read again from its start; its BEGIN is sent again
// and its counts start over.
func (p *Pipeline) TxAbort(context.Context) error {
	p.tx = nil
	return nil
}

// addTxRecord adds a BEGIN or END record of the transaction being read.
func (p *Pipeline) addTxRecord(ctx context.Context, status string, ts time.Time) error {
	enc, tx := p.o.Raw, p.tx
	rec := sink.Record{Feed: "raw", Topic: enc.TransactionTopicName(), Key: raw.AppendTransactionKey(nil, tx.id),
		Value: enc.AppendTransaction(nil, status, tx.id, tx.total, tx.colls, ts), Op: status, Position: tx.id}
	return p.addRawRecords(ctx, []sink.Record{rec}, false)
}

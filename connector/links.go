package connector

import (
	"context"

	"github.com/feedcdc/feedcdc/state"
)

// restoreLinks loads the parent/child link index the last run saved when
// it stopped, if the checkpoint is still the one stored then: the stream
// then resumes at or before the index's position, as RestoreLinks needs.
// Loaded from the source instead, the index lacks the links of composite
// products deleted while no process followed the stream (they go by
// cascade, which the binlog does not show), and each such deletion the
// stream replays rebuilds every product. Any failure leaves the index to
// LoadLinks.
func (c *Connector) restoreLinks(ctx context.Context) {
	var saved state.LinkIndex
	var fresh bool
	err := c.Store.View(ctx, func(tx *state.Tx) error {
		x, ok, err := tx.LinkIndex()
		if err != nil || !ok {
			return err
		}
		cp, _, ok, err := tx.Checkpoint()
		saved, fresh = x, ok && cp == x.Checkpoint
		return err
	})
	switch {
	case err != nil:
		c.Logger.Warn("the link index saved at the last stop is unreadable; loading it from the source", "error", err)
	case saved.Data == nil:
	case !fresh:
		c.Logger.Info("the link index saved at the last stop is older than the checkpoint; loading it from the source", "saved_at_checkpoint", saved.Checkpoint.String())
	default:
		var ok bool
		// Retried while the source is unreachable (restoring reads its
		// clock); damaged data fails at once.
		err := c.retry.Do(ctx, "restore the link index", func(ctx context.Context) (err error) {
			ok, err = c.Registry.RestoreLinks(ctx, saved.Data)
			return err
		})
		if err != nil {
			c.Logger.Warn("the link index saved at the last stop was not restored; loading it from the source", "error", err)
		}
		if !ok || err != nil {
			return
		}
		c.Logger.Info("link index restored as saved at the last stop", "checkpoint", saved.Checkpoint.String(), "bytes", len(saved.Data))
	}
}

// saveLinks saves the link index with the checkpoint for the next run's
// restoreLinks; call it once the stream and the exporter have stopped.
// Without an index to save it removes the one saved before.
func (c *Connector) saveLinks(ctx context.Context) {
	data, ok := c.Registry.SaveLinks()
	err := c.Store.Update(ctx, func(tx *state.Tx) error {
		cp, _, cpok, err := tx.Checkpoint()
		if err != nil {
			return err
		}
		if !ok || !cpok {
			return tx.DeleteLinkIndex()
		}
		return tx.PutLinkIndex(state.LinkIndex{Checkpoint: cp, Data: data})
	})
	if err != nil {
		c.Logger.Warn("link index not saved; the next start loads it from the source", "error", err)
	}
}

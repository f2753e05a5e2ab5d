package connector

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/feedcdc/feedcdc/dashboard"
	"github.com/feedcdc/feedcdc/state"
)

var _ dashboard.VerifyBackend = (*Backend)(nil)

// Verify implements dashboard.VerifyBackend: feedcdc verify run by the
// running connector, between its stream batches.
func (b *Backend) Verify(ctx context.Context, feed string, req dashboard.VerifyRequest) (any, error) {
	if b.C.Registry == nil {
		return nil, fmt.Errorf("feed %s: %w", feed, dashboard.ErrNotFound)
	}
	if _, ok := b.C.Registry.Feed(feed); !ok {
		return nil, fmt.Errorf("feed %s: %w", feed, dashboard.ErrNotFound)
	}
	vo := VerifyOptions{Feed: feed, ByIDs: req.IDs, IDType: req.IDType, Repair: req.Repair, Examples: req.Examples,
		Owner: fmt.Sprintf("dashboard verify(pid %d)", os.Getpid())}
	if req.ReadBack {
		vo.Destinations, _ = b.C.Destinations(feed)
	}
	res, err := b.C.Verify(ctx, vo)
	if errors.Is(err, state.ErrFeedLocked) {
		return nil, fmt.Errorf("%w (%w)", err, dashboard.ErrBusy)
	}
	if err != nil {
		return nil, err
	}
	return res, nil
}

package aggregates

import (
	"context"
	"fmt"
)

// PendingBefore counts the dirty days whose latest change was marked at or
// before ns (Unix nanoseconds, the writers' clock) and is not recomputed yet.
// Once it is 0, every change marked by then is in the daily aggregates,
// whatever other writers marked since: `uvr replay` waits on it while a live
// projector keeps marking days (Pending would then never reach 0 under a
// steady stream). A day changed again after ns is left to whichever
// aggregator recomputes that later change.
func (a *Aggregator) PendingBefore(ctx context.Context, ns int64) (int, error) {
	var n uint64
	if err := a.conn.QueryRow(ctx, pendingBeforeSQL, uint64(ns)).Scan(&n); err != nil {
		return 0, fmt.Errorf("count dirty days changed before %d: %w", ns, err)
	}
	return int(n), nil
}

const pendingBeforeSQL = `SELECT count() FROM dirty_days FINAL WHERE done = 0 AND changed_ns <= ?`

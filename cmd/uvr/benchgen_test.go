package main

import (
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/pipeline/event"
)

// The ledger of the bench generator is what the stream it emits adds up to
// once each identity counts its highest version, voids excluded.
func TestBenchStreamLedger(t *testing.T) {
	s := newBenchStream(42, 100, 30, time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	type key struct{ source, id string }
	final := map[key]event.Event{}
	var n, dups, second int
	for {
		ev, ok := s.Next(5000)
		if !ok {
			break
		}
		n++
		k := key{ev.Source, ev.ID}
		prev, seen := final[k]
		switch {
		case !seen:
		case prev.Data.Version == ev.Data.Version && prev.Data.Void == ev.Data.Void:
			dups++
		default:
			second++
		}
		if !seen || ev.Data.Version > prev.Data.Version || (ev.Data.Version == prev.Data.Version && ev.Data.Void) {
			final[k] = ev
		}
	}
	var cost, cash decimal.Decimal
	for _, ev := range final {
		if ev.Data.Void {
			continue
		}
		if ev.Data.Cost != nil {
			cost = cost.Add(*ev.Data.Cost)
		}
		if ev.Type == event.TypeRevenue && ev.Data.Amount != nil {
			cash = cash.Add(*ev.Data.Amount)
		}
		require.NoError(t, ev.Validate(), ev.ID)
	}
	require.Len(t, final, 5000)
	require.InDelta(t, 250, dups, 60, "about 5 %% exact duplicates")
	require.InDelta(t, 100, second, 40, "about 2 %% corrections and voids")
	require.True(t, cost.Equal(s.ledger.cost), "cost %s, ledger %s", cost, s.ledger.cost)
	require.True(t, cash.Equal(s.ledger.cash), "cash %s, ledger %s", cash, s.ledger.cash)
	require.Equal(t, n, 5000+dups+second)
}

package main

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/pipeline/event"
)

// A generator keeping its own ledger posts about 20,000 events: random
// duplicates, late events (up to 60 days old), corrections (same id, higher
// version, sometimes moving the day or the amount), voids, all in random
// order, so an older version often arrives after a newer one. Every day's
// cost and revenue and every total of /api/dashboard, read from the daily
// aggregates, equals the ledger to the last digit; `uvr reconcile` of a few
// days finds no difference; a drifted day is reported (non-zero with
// --check) and repaired.
func TestLedgerExactUnderDuplicatesLateCorrectionsVoids(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	m := startMain(t, cfg, Roles{API: true, Projector: true})

	end := time.Now().UTC()
	posted, final := ledgerEvents(7, 12_000, end)
	l := newLedger()
	for _, ev := range final {
		l.add(ev)
	}
	t.Logf("posting %d events for %d identities (%d counted at the end)", len(posted), 12_000, len(final))
	require.GreaterOrEqual(t, len(posted), 19_000)

	start, stop := end.AddDate(0, 0, -61).Format(time.DateOnly), end.Format(time.DateOnly)
	postAll(t, m.URL(), posted, 1000)
	requireDashboardEquals(t, m.URL(), l, start, stop, 3*time.Minute)
	waitCaughtUp(t, cfg.KafkaBrokers, cfg.ConsumerGroup, cfg.EventsTopic, projectionWait)
	waitAggregated(t, m.ch, projectionWait)
	d := getDashboard(t, m.URL(), start, stop)
	require.Empty(t, l.mismatch(d), "once every event was projected and aggregated")
	require.Len(t, d.TimeSeries, 62)
	t.Logf("ledger matched: total cost %s, total revenue %s over %s..%s", l.cost, l.revenue, start, stop)

	env := map[string]string{"UVR_CLICKHOUSE_ADDR": cfg.ClickHouseAddr, "UVR_CLICKHOUSE_DATABASE": cfg.ClickHouseDatabase}
	for _, back := range []int{0, 1, 17, 45, 59} {
		day := end.AddDate(0, 0, -back).Format(time.DateOnly)
		out, err := runCLI(t, env, "reconcile", "--day", day, "--check")
		require.NoError(t, err, out)
		assert.Contains(t, out, day+": the stored aggregates match")
	}

	// A drifted aggregate (written by hand, above any recompute's version):
	// reported, --check fails, and the day is repaired.
	day := end.AddDate(0, 0, -17).Format(time.DateOnly)
	require.NoError(t, m.ch.Exec(t.Context(), fmt.Sprintf(`INSERT INTO daily_usage (day, customer_source, customer_external_id, feature, currency, quantity, events, cost, computed_at)
SELECT toDate('%s'), 'test', 'cus_drift', 'api.calls', 'USD', toDecimal128(1, 9), toUInt64(1), toDecimal128(1, 9), toUInt64(4000000000000000000)`, day)))
	require.NotEmpty(t, l.mismatch(getDashboard(t, m.URL(), start, stop)))
	out, err := runCLI(t, env, "reconcile", "--day", day, "--check")
	require.Error(t, err)
	assert.Contains(t, out, "customer_external_id=cus_drift")
	out, err = runCLI(t, env, "reconcile", "--day", day, "--check")
	require.NoError(t, err, out)
	assert.Empty(t, l.mismatch(getDashboard(t, m.URL(), start, stop)), "after the repair")
}

// ledgerEvents makes identities events with their corrections and voids over
// the 60 days before end, and returns every version posted (with duplicates,
// shuffled) and the final, counted version of each identity that is not
// voided. Versions of one identity keep its customer, so they share a Kafka
// partition (a correction changing the customer is the design's known limit,
// left to reconcile).
func ledgerEvents(seed uint64, identities int, end time.Time) (posted, final []event.Event) {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	features := []string{"gpt-4o.input_tokens", "gpt-4o.output_tokens", "api.calls", "storage.gb_days"}
	at := func() time.Time {
		return end.Add(-time.Duration(rng.Int64N(int64(60 * 24 * time.Hour)))).Truncate(time.Second)
	}
	money := func(ev *event.Event) {
		switch ev.Type {
		case event.TypeUsage:
			qty := decimal.NewFromInt(rng.Int64N(1_000_000))
			cost := decimal.New(rng.Int64N(50_000_000_000), -9) // up to $50, to the nano-dollar
			ev.Data.Quantity, ev.Data.Cost = &qty, &cost
		case event.TypeRevenue:
			amount := decimal.New(rng.Int64N(100_000), -2)
			if ev.Data.Kind == event.KindRefund || ev.Data.Kind == event.KindCreditNote {
				amount = amount.Neg()
			}
			ev.Data.Amount = &amount
		}
	}
	for i := range identities {
		cust := event.Customer{Source: "test", ExternalID: fmt.Sprintf("cus_%03d", rng.IntN(150))}
		ev := event.Event{SpecVersion: event.SpecVersion, ID: fmt.Sprintf("ledger-%d", i), Source: "e2e", Time: at()}
		if rng.IntN(10) < 7 {
			ev.Type = event.TypeUsage
			ev.Data = event.Data{Customer: cust, Version: 1, Feature: features[rng.IntN(len(features))], Unit: "units", Currency: "USD"}
		} else {
			kinds := []string{event.KindInvoicePaid, event.KindInvoicePaid, event.KindCharge, event.KindRefund, event.KindCreditNote}
			ev.Type = event.TypeRevenue
			ev.Data = event.Data{Customer: cust, Version: 1, Kind: kinds[rng.IntN(len(kinds))], Currency: "USD"}
		}
		money(&ev)
		versions := []event.Event{ev}
		// Corrections: a higher version changing the amount, the day, or both.
		for rng.IntN(100) < 25 && len(versions) < 4 {
			next := versions[len(versions)-1]
			next.Data.Version++
			switch rng.IntN(3) {
			case 0:
				money(&next)
			case 1:
				next.Time = at()
			default:
				money(&next)
				next.Time = at()
			}
			versions = append(versions, next)
		}
		// Voids: of the last version itself, or as one more version.
		if rng.IntN(100) < 10 {
			v := versions[len(versions)-1]
			v.Data.Void = true
			if rng.IntN(2) == 0 {
				v.Data.Version++
			}
			versions = append(versions, v)
		}
		last := versions[len(versions)-1]
		if !last.Data.Void {
			final = append(final, last)
		}
		posted = append(posted, versions...)
	}
	// Duplicates: the same identity and version sent again.
	for _, ev := range posted { // the range reads the slice once: appends are not revisited
		if rng.IntN(100) < 15 {
			posted = append(posted, ev)
		}
	}
	rng.Shuffle(len(posted), func(i, j int) { posted[i], posted[j] = posted[j], posted[i] })
	return posted, final
}

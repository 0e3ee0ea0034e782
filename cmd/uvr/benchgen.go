package main

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/shopspring/decimal"

	"github.com/uvrhq/uvr/pipeline/event"
)

// benchStream generates the mixed stream of `uvr bench ingest` one event at a
// time, in memory independent of its length: every identity k is a pure
// function of (seed, k), so a duplicate or a correction of an earlier event
// is made again from its index instead of being kept.
//
// The mix, per identity: 70 % usage with a cost, 14 % usage without a cost
// (features no rate card prices), 12 % revenue of every kind (invoice lines
// with a 30-day service period, charges, refunds, credit notes, disputes,
// subscription events without money), 4 % customer events. On top of the
// identities: about 5 % exact duplicates of a recent event, and 2 % of the
// identities get a second version later in the stream, half a correction
// (another amount and day), half a void.
//
// The ledger holds what the dashboard must show once every event counted:
// the final version of each identity, voids excluded.
type benchStream struct {
	seed      uint64
	customers int
	days      int
	end       time.Time // the stream's last instant; events lie in the days before
	rng       *rand.Rand

	next    int   // next identity to emit
	pending []int // identities whose second version is due
	ledger  benchLedger
}

// benchLedger is the generator's own account of the expected aggregates.
type benchLedger struct {
	cost, cash, accrual decimal.Decimal
	qtyByFeature        map[string]decimal.Decimal
	// first and last day any event or service period touches.
	first, last time.Time
}

const (
	benchCorrectionLag = 997 // identities between a version and its correction
	benchPeriod        = 30 * 24 * time.Hour
)

var (
	benchCostFeatures     = []string{"gpt-4o.input_tokens", "gpt-4o.output_tokens", "claude.input_tokens", "claude.output_tokens", "embeddings.tokens"}
	benchUnpricedFeatures = []string{"bench.api_calls", "bench.storage_gb_days", "bench.seats"}
)

func newBenchStream(seed uint64, customers, days int, end time.Time) *benchStream {
	return &benchStream{
		seed: seed, customers: customers, days: days, end: end.UTC().Truncate(time.Second),
		rng:    rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		ledger: benchLedger{qtyByFeature: map[string]decimal.Decimal{}},
	}
}

// identity is the per-identity random source.
func (s *benchStream) identity(k int) *rand.Rand {
	return rand.New(rand.NewPCG(s.seed^uint64(k)*0x9e3779b97f4a7c15, uint64(k)))
}

// fate of identity k's second version: 0 none, 1 correction, 2 void.
func (s *benchStream) fate(k int) int {
	switch r := s.identity(k).Uint64() % 100; {
	case r == 0:
		return 1
	case r == 1:
		return 2
	}
	return 0
}

// version returns version v (1 or 2) of identity k.
func (s *benchStream) version(k, v int) event.Event {
	rng := s.identity(k)
	rng.Uint64() // the draw of fate
	ev := event.Event{
		SpecVersion: event.SpecVersion,
		ID:          fmt.Sprintf("%016x%08x", rng.Uint64(), k),
		Source:      "bench",
	}
	cust := event.Customer{Source: "bench", ExternalID: fmt.Sprintf("cus_%05d", rng.IntN(s.customers))}
	at := func() time.Time {
		return s.end.Add(-time.Duration(rng.Int64N(int64(s.days) * int64(24*time.Hour)))).Truncate(time.Second)
	}
	ev.Time = at()
	kind := rng.IntN(100)
	money := func() {} // sets the amounts from rng; called again for a correction
	switch {
	case kind < 84:
		ev.Type = event.TypeUsage
		ev.Data = event.Data{Customer: cust, Version: 1, Unit: "units"}
		withCost := kind < 70
		if withCost {
			ev.Data.Feature = benchCostFeatures[rng.IntN(len(benchCostFeatures))]
			ev.Data.Currency = "USD"
		} else {
			ev.Data.Feature = benchUnpricedFeatures[rng.IntN(len(benchUnpricedFeatures))]
		}
		money = func() {
			qty := decimal.NewFromInt(rng.Int64N(100_000) + 1)
			ev.Data.Quantity = &qty
			if withCost {
				cost := decimal.New(rng.Int64N(5_000_000_000), -9) // up to $5, to the nano-dollar
				ev.Data.Cost = &cost
			}
		}
	case kind < 96:
		ev.Type = event.TypeRevenue
		kinds := []string{event.KindInvoicePaid, event.KindInvoicePaid, event.KindInvoicePaid, event.KindCharge, event.KindCharge,
			event.KindRefund, event.KindCreditNote, event.KindDispute,
			event.KindSubscriptionStarted, event.KindSubscriptionChanged, event.KindSubscriptionCanceled}
		ev.Data = event.Data{Customer: cust, Version: 1, Kind: kinds[rng.IntN(len(kinds))], Plan: fmt.Sprintf("plan_%d", rng.IntN(3))}
		if ev.Data.Kind == event.KindInvoicePaid {
			ev.Data.InvoiceID = "in_" + ev.ID
		}
		money = func() {
			if ev.Data.Kind == event.KindSubscriptionStarted || ev.Data.Kind == event.KindSubscriptionChanged || ev.Data.Kind == event.KindSubscriptionCanceled {
				return
			}
			amount := decimal.New(rng.Int64N(100_000)+1, -2)
			if ev.Data.Kind == event.KindRefund || ev.Data.Kind == event.KindCreditNote {
				amount = amount.Neg()
			}
			ev.Data.Amount, ev.Data.Currency = &amount, "USD"
			if ev.Data.Kind == event.KindInvoicePaid {
				start := ev.Time
				end := start.Add(benchPeriod)
				ev.Data.PeriodStart, ev.Data.PeriodEnd = &start, &end
			}
		}
	default:
		ev.Type = event.TypeCustomer
		ev.Data = event.Data{Customer: cust, Version: 1, Plan: fmt.Sprintf("plan_%d", rng.IntN(3)), Environment: "production"}
		ev.Data.Customer.Name = "Customer " + cust.ExternalID
	}
	money()
	if v == 2 {
		ev.Data.Version = 2
		if s.fate(k) == 1 { // a correction: another day and other amounts
			ev.Time = at()
			money()
		} else {
			ev.Data.Void = true
		}
	}
	return ev
}

// Next returns the next event to post, or false once every identity below n
// and every due correction was emitted.
func (s *benchStream) Next(n int) (event.Event, bool) {
	if len(s.pending) > 0 && (s.next >= n || s.pending[0]+benchCorrectionLag <= s.next) {
		k := s.pending[0]
		s.pending = s.pending[1:]
		return s.version(k, 2), true
	}
	if s.next >= n {
		return event.Event{}, false
	}
	if s.next > 0 && s.rng.IntN(100) < 5 {
		back := s.rng.IntN(min(s.next, 5000))
		k := s.next - 1 - back
		return s.version(k, 1), true
	}
	k := s.next
	s.next++
	final := 1
	switch s.fate(k) {
	case 1:
		s.pending = append(s.pending, k)
		final = 2
	case 2:
		s.pending = append(s.pending, k)
		final = 0
	}
	if final > 0 {
		s.ledger.add(s.version(k, final))
	}
	return s.version(k, 1), true
}

func (l *benchLedger) add(ev event.Event) {
	day := ev.Time.UTC().Truncate(24 * time.Hour)
	l.touch(day)
	switch ev.Type {
	case event.TypeUsage:
		if ev.Data.Cost != nil {
			l.cost = l.cost.Add(*ev.Data.Cost)
		}
		l.qtyByFeature[ev.Data.Feature] = l.qtyByFeature[ev.Data.Feature].Add(*ev.Data.Quantity)
	case event.TypeRevenue:
		if ev.Data.Amount == nil {
			return
		}
		l.cash = l.cash.Add(*ev.Data.Amount)
		// Accrual over a range covering every service period sums to the
		// same amounts (the spread is exact).
		l.accrual = l.accrual.Add(*ev.Data.Amount)
		if ev.Data.PeriodEnd != nil {
			l.touch(ev.Data.PeriodEnd.UTC().Truncate(24 * time.Hour))
		}
	}
}

func (l *benchLedger) touch(day time.Time) {
	if l.first.IsZero() || day.Before(l.first) {
		l.first = day
	}
	if day.After(l.last) {
		l.last = day
	}
}

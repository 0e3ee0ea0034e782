package revenue

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"github.com/uvrhq/uvr/pipeline/event"
)

// Month is a calendar month (UTC).
type Month struct {
	Year  int
	Month time.Month
}

// MonthOf is the UTC month of t.
func MonthOf(t time.Time) Month {
	y, m, _ := t.UTC().Date()
	return Month{Year: y, Month: m}
}

// Start is 00:00 UTC of the month's first day.
func (m Month) Start() time.Time { return time.Date(m.Year, m.Month, 1, 0, 0, 0, 0, time.UTC) }

// Next is the following month.
func (m Month) Next() Month { return MonthOf(m.Start().AddDate(0, 1, 0)) }

// Prev is the preceding month.
func (m Month) Prev() Month { return MonthOf(m.Start().AddDate(0, -1, 0)) }

// Before reports whether m is earlier than o.
func (m Month) Before(o Month) bool { return m.Start().Before(o.Start()) }

// String is YYYY-MM.
func (m Month) String() string { return m.Start().Format("2006-01") }

var (
	weeksPerYear  = decimal.NewFromInt(52)
	monthsPerYear = decimal.NewFromInt(12)
	oneDay        = 24 * time.Hour
	week          = 7 * oneDay
)

// MonthlyAmount normalises amount, billed for the service period [start,
// end), to a monthly recurring amount (its contribution to MRR):
//
//   - a period of N whole calendar months (start + N months = end; a period
//     from a month's last day to a later month's last day counts as whole
//     months, as Stripe bills anchors on the 29th–31st): amount / N, so a
//     monthly plan counts as is, a quarterly one / 3 and a yearly one / 12;
//   - else a period of k whole weeks: amount × 52 / 12 / k (a weekly plan is
//     4.33… times its price);
//   - else a partial period (a proration line): its amount per unit of time
//     times the length of the month that ends where it ends. A Stripe
//     mid-cycle change on a monthly plan is prorated over that same billing
//     month, so the "unused time" and "remaining time" lines normalise back
//     to the old and new plan's full monthly prices (to the cent Stripe
//     rounded them).
//
// The result is rounded once, half to even, to 9 decimal places.
func MonthlyAmount(amount decimal.Decimal, start, end time.Time) (decimal.Decimal, error) {
	start, end = start.UTC(), end.UTC()
	if !end.After(start) {
		return decimal.Decimal{}, fmt.Errorf("normalise [%s, %s): end must be after start: %w", start.Format(time.RFC3339), end.Format(time.RFC3339), ErrPeriod)
	}
	if end.Sub(start) > maxPeriod {
		return decimal.Decimal{}, fmt.Errorf("normalise [%s, %s): longer than 100 years: %w", start.Format(time.RFC3339), end.Format(time.RFC3339), ErrPeriod)
	}
	if n := wholeMonths(start, end); n > 0 {
		return divRound(amount, decimal.NewFromInt(int64(n)), MaxScale), nil
	}
	d := end.Sub(start)
	if d%week == 0 {
		k := decimal.NewFromInt(int64(d / week))
		return divRound(amount.Mul(weeksPerYear), monthsPerYear.Mul(k), MaxScale), nil
	}
	month := end.Sub(addMonths(end, -1))
	return divRound(amount.Mul(decimal.NewFromInt(int64(month))), decimal.NewFromInt(int64(d)), MaxScale), nil
}

// wholeMonths returns N when [start, end) is N whole calendar months, else 0.
func wholeMonths(start, end time.Time) int {
	if lastDay(start) && lastDay(end) && clock(start) == clock(end) {
		if n := monthsBetween(start, end); n > 0 {
			return n
		}
	}
	for n := 1; ; n++ {
		switch t := addMonths(start, n); {
		case t.Equal(end):
			return n
		case t.After(end):
			return 0
		}
	}
}

// addMonths adds n months to t, keeping its day of month or, when the
// target month is shorter, taking its last day (Jan 31 + 1 month = Feb 28),
// as billing systems do; time.AddDate would overflow into March.
func addMonths(t time.Time, n int) time.Time {
	y, m, d := t.Date()
	first := time.Date(y, m+time.Month(n), 1, 0, 0, 0, 0, time.UTC)
	if last := daysIn(first); d > last {
		d = last
	}
	h, mi, s := t.Clock()
	return time.Date(first.Year(), first.Month(), d, h, mi, s, t.Nanosecond(), time.UTC)
}

func daysIn(t time.Time) int {
	return time.Date(t.Year(), t.Month()+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

func lastDay(t time.Time) bool { return t.Day() == daysIn(t) }

func clock(t time.Time) time.Duration { return t.Sub(Day(t)) }

func monthsBetween(a, b time.Time) int {
	return (b.Year()-a.Year())*12 + int(b.Month()) - int(a.Month())
}

// State is a span of time during which a subscription line adds MRR to a
// customer: MRR (monthly normalised, in the reporting currency) from From
// until To, half-open; a zero To means it has no end yet. A customer's MRR
// at an instant is the sum of its states covering that instant, so a
// proration credit over [change, period end) offsets the line it replaces.
type State struct {
	Customer     string
	Subscription string // informational; "" when the source gives none
	From, To     time.Time
	MRR          decimal.Decimal
}

// Converter converts money between currencies at a day's rate;
// *pricing.FX implements it.
type Converter interface {
	Convert(amount decimal.Decimal, from, to string, day time.Time) (decimal.Decimal, error)
}

// LineState returns the MRR state of a recurring revenue line: an
// invoice_paid, charge or credit_note event with an amount and a service
// period. ok is false for every other event: one-off charges and credits
// (no period), refunds and disputes (cash movements, not the plan's price)
// and the subscription_* lifecycle events (markers, whose price the invoice
// lines carry).
//
// The customer is the event's customer reference (source/external_id); the
// subscription is the attribute subscription_id when present. The amount is
// converted to currency at the rate of the period's first day when it is in
// another currency (fx may be nil when every line is already in currency),
// then normalised with MonthlyAmount.
func LineState(ev event.Event, currency string, fx Converter) (s State, ok bool, err error) {
	d := ev.Data
	if ev.Type != event.TypeRevenue || d.Amount == nil || d.PeriodStart == nil || d.PeriodEnd == nil {
		return State{}, false, nil
	}
	switch d.Kind {
	case event.KindInvoicePaid, event.KindCharge, event.KindCreditNote:
	default:
		return State{}, false, nil
	}
	amount := *d.Amount
	if d.Currency != currency {
		if fx == nil {
			return State{}, false, fmt.Errorf("MRR of %s/%s: amount in %s, reporting currency %s, and no FX table", ev.Source, ev.ID, d.Currency, currency)
		}
		amount, err = fx.Convert(amount, d.Currency, currency, *d.PeriodStart)
		if err != nil {
			return State{}, false, fmt.Errorf("MRR of %s/%s: %w", ev.Source, ev.ID, err)
		}
	}
	mrr, err := MonthlyAmount(amount, *d.PeriodStart, *d.PeriodEnd)
	if err != nil {
		return State{}, false, fmt.Errorf("MRR of %s/%s: %w", ev.Source, ev.ID, err)
	}
	return State{
		Customer:     ev.PartitionKey(),
		Subscription: d.Attributes["subscription_id"],
		From:         d.PeriodStart.UTC(),
		To:           d.PeriodEnd.UTC(),
		MRR:          mrr,
	}, true, nil
}

// CustomerMonth is a customer's MRR at the end of a month.
type CustomerMonth struct {
	Customer string
	Month    Month
	MRR      decimal.Decimal
}

// Movement kinds (ChartMogul's definitions; see docs/analytics/pricing.md).
const (
	MovementNew          = "new"
	MovementExpansion    = "expansion"
	MovementContraction  = "contraction"
	MovementChurn        = "churn"
	MovementReactivation = "reactivation"
)

// CustomerMovement is the change of one customer's MRR over a month, from
// the end of the previous month to the end of this one. Amount is signed:
// contraction and churn are negative.
type CustomerMovement struct {
	Customer string
	Month    Month
	Kind     string
	Amount   decimal.Decimal
}

// MonthMovements is the total MRR at the end of a month and the movements
// that led to it from the end of the previous month:
//
//	MRR(previous) + New + Expansion + Contraction + Churn + Reactivation = MRR
//
// (Contraction and Churn are negative.) The counts are of customers.
type MonthMovements struct {
	Month                                            Month
	MRR                                              decimal.Decimal
	Customers                                        int // with MRR > 0 at the end of the month
	New, Expansion, Contraction, Churn, Reactivation decimal.Decimal
	NewCustomers, ExpansionCustomers                 int
	ContractionCustomers, ChurnedCustomers           int
	ReactivatedCustomers                             int
}

// snapshots returns every customer's MRR at the end of each month from the
// first month of any state through to (inclusive), oldest first. A
// customer's MRR is the sum of its states covering the month's last
// instant, floored at zero: credits that outweigh the lines they credit
// leave no recurring revenue, not a negative one.
func snapshots(states []State, to Month) (months []Month, mrr []map[string]decimal.Decimal) {
	if len(states) == 0 {
		return nil, nil
	}
	first := MonthOf(states[0].From)
	for _, s := range states[1:] {
		if m := MonthOf(s.From); m.Before(first) {
			first = m
		}
	}
	for m := first; !to.Before(m); m = m.Next() {
		end := m.Next().Start()
		sums := map[string]decimal.Decimal{}
		for _, s := range states {
			if s.From.Before(end) && (s.To.IsZero() || !s.To.Before(end)) {
				sums[s.Customer] = sums[s.Customer].Add(s.MRR)
			}
		}
		for c, v := range sums {
			if !v.IsPositive() {
				delete(sums, c)
			}
		}
		months = append(months, m)
		mrr = append(mrr, sums)
	}
	return months, mrr
}

// CustomerMRR returns each customer's MRR at the end of every month from
// from to to (inclusive), sorted by month then customer; customers without
// MRR in a month are left out of it.
func CustomerMRR(states []State, from, to Month) []CustomerMonth {
	months, mrr := snapshots(states, to)
	var out []CustomerMonth
	for i, m := range months {
		if m.Before(from) {
			continue
		}
		for _, c := range sortedCustomers(mrr[i]) {
			out = append(out, CustomerMonth{Customer: c, Month: m, MRR: mrr[i][c]})
		}
	}
	return out
}

// CustomerMovements classifies each customer's MRR change over every month
// from from to to, comparing the end of the month with the end of the
// previous one (so changes that cancel out within a month do not show):
//
//   - new: from 0 to > 0, never having had MRR before;
//   - reactivation: from 0 to > 0, having had MRR at an earlier month end;
//   - expansion: from > 0 to more;
//   - contraction: from > 0 to less but > 0;
//   - churn: from > 0 to 0.
//
// The history of "had MRR before" starts at the first state, not at from.
// Sorted by month, then customer.
func CustomerMovements(states []State, from, to Month) []CustomerMovement {
	months, mrr := snapshots(states, to)
	seen := map[string]bool{}
	prev := map[string]decimal.Decimal{}
	var out []CustomerMovement
	for i, m := range months {
		cur := mrr[i]
		if !m.Before(from) {
			for _, c := range sortedCustomers(prev, cur) {
				p, was := prev[c]
				n, is := cur[c]
				mv := CustomerMovement{Customer: c, Month: m, Amount: n.Sub(p)}
				switch {
				case !was && is && seen[c]:
					mv.Kind = MovementReactivation
				case !was && is:
					mv.Kind = MovementNew
				case was && !is:
					mv.Kind = MovementChurn
				case n.GreaterThan(p):
					mv.Kind = MovementExpansion
				case n.LessThan(p):
					mv.Kind = MovementContraction
				default:
					continue
				}
				out = append(out, mv)
			}
		}
		for c := range cur {
			seen[c] = true
		}
		prev = cur
	}
	return out
}

// Movements sums CustomerMovements per month: the total MRR at the end of
// every month from from to to and its new, expansion, contraction, churn
// and reactivation MRR, one entry per month even when nothing moved.
func Movements(states []State, from, to Month) []MonthMovements {
	if to.Before(from) {
		return nil
	}
	months, mrr := snapshots(states, to)
	byMonth := map[Month]*MonthMovements{}
	var out []MonthMovements
	for m := from; !to.Before(m); m = m.Next() {
		out = append(out, MonthMovements{Month: m})
	}
	for i := range out {
		byMonth[out[i].Month] = &out[i]
	}
	for i, m := range months {
		if mm := byMonth[m]; mm != nil {
			for _, v := range mrr[i] {
				mm.MRR = mm.MRR.Add(v)
			}
			mm.Customers = len(mrr[i])
		}
	}
	for _, mv := range CustomerMovements(states, from, to) {
		mm := byMonth[mv.Month]
		switch mv.Kind {
		case MovementNew:
			mm.New, mm.NewCustomers = mm.New.Add(mv.Amount), mm.NewCustomers+1
		case MovementExpansion:
			mm.Expansion, mm.ExpansionCustomers = mm.Expansion.Add(mv.Amount), mm.ExpansionCustomers+1
		case MovementContraction:
			mm.Contraction, mm.ContractionCustomers = mm.Contraction.Add(mv.Amount), mm.ContractionCustomers+1
		case MovementChurn:
			mm.Churn, mm.ChurnedCustomers = mm.Churn.Add(mv.Amount), mm.ChurnedCustomers+1
		case MovementReactivation:
			mm.Reactivation, mm.ReactivatedCustomers = mm.Reactivation.Add(mv.Amount), mm.ReactivatedCustomers+1
		}
	}
	return out
}

func sortedCustomers(ms ...map[string]decimal.Decimal) []string {
	var cs []string
	for _, m := range ms {
		for c := range m {
			cs = append(cs, c)
		}
	}
	slices.SortFunc(cs, strings.Compare)
	return slices.Compact(cs)
}

package demo

import (
	"fmt"
	"slices"
	"time"

	"github.com/shopspring/decimal"

	"github.com/uvrhq/uvr/pipeline/event"
)

// Probabilities of one-off revenue per customer and billing month.
const (
	// Refunds are drawn for 4 % of invoices; those falling after the window
	// wait for a later run, so about 3 % of the emitted invoices have one.
	refundRate       = 0.04
	creditsRate      = 0.06 // credits purchase, customers not unprofitable
	overageRate      = 0.40 // overage charge, upsell customers
	creditNoteRate   = 0.50 // customers with Profile.CreditNotes
	fullRefundRate   = 0.40 // of refunds; the others return 10–50 %
	maxRefundLagDays = 12
)

var (
	refundReasons     = []string{"requested_by_customer", "duplicate", "service_issue"}
	creditNoteReasons = []string{"sla_credit", "goodwill"}
	// One-off charges per plan, in USD.
	creditPacks = map[string][]string{
		PlanStarter:    {"20.00", "50.00"},
		PlanPro:        {"100.00", "250.00"},
		PlanEnterprise: {"500.00", "1000.00", "2500.00"},
	}
	overagePacks = map[string][]string{
		PlanStarter: {"25.00", "50.00"},
		PlanPro:     {"250.00", "500.00"},
	}
)

// revenueWindow holds the lifecycle and revenue events generated but not yet
// emitted. Each customer's billing months are generated only when the day
// being emitted reaches them, so memory holds about one billing month of
// revenue whatever the number of days.
type revenueWindow struct {
	g      *generator
	months []int              // per customer: the next billing month to generate
	byDay  map[int][]revEvent // day index in the window → its events, generation order
}

// revEvent is an event with the index of its customer, to restore the
// customer order within a day.
type revEvent struct {
	customer int
	ev       event.Event
}

func (g *generator) newRevenueWindow() *revenueWindow {
	return &revenueWindow{g: g, months: make([]int, len(g.profiles)), byDay: make(map[int][]revEvent)}
}

// before returns the events before the window, sorted by time: each
// customer's lifecycle and the invoice of the billing month containing the
// window's first day.
func (w *revenueWindow) before() []event.Event {
	var before []event.Event
	for i := range w.g.profiles {
		for _, ev := range w.g.lifecycle(&w.g.profiles[i]) {
			before = w.place(before, i, ev)
		}
		before = w.generate(before, i, w.g.start)
	}
	slices.SortStableFunc(before, func(a, b event.Event) int { return a.Time.Compare(b.Time) })
	return before
}

// day appends the events of day d of the window to dst, in customer order,
// generating every billing month that starts before the day ends. Every
// event of a billing month lies at or after its start, so the day is then
// complete.
func (w *revenueWindow) day(dst []event.Event, d int) []event.Event {
	until := w.g.start.AddDate(0, 0, d+1)
	for i := range w.g.profiles {
		w.generate(nil, i, until)
	}
	evs := w.byDay[d]
	delete(w.byDay, d)
	slices.SortStableFunc(evs, func(a, b revEvent) int { return a.customer - b.customer })
	for _, e := range evs {
		dst = append(dst, e.ev)
	}
	return dst
}

// generate generates customer i's billing months starting before until;
// events before the window are appended to before.
func (w *revenueWindow) generate(before []event.Event, i int, until time.Time) []event.Event {
	g := w.g
	p := &g.profiles[i]
	for ; ; w.months[i]++ {
		ps := g.billingStart(p, w.months[i])
		if !ps.Before(until) || !ps.Before(g.end) {
			return before
		}
		for _, ev := range g.revenueMonth(p, w.months[i]) {
			before = w.place(before, i, ev)
		}
	}
}

// place files ev under its day of the window, appends it to before when it
// precedes the window, and drops it when it falls after (a later run emits it).
func (w *revenueWindow) place(before []event.Event, customer int, ev event.Event) []event.Event {
	g := w.g
	switch {
	case ev.Time.Before(g.start):
		return append(before, ev)
	case !ev.Time.Before(g.end):
		return before
	}
	d := int(ev.Time.Sub(g.start) / (24 * time.Hour))
	w.byDay[d] = append(w.byDay[d], revEvent{customer: customer, ev: ev})
	return before
}

// billingStart is the start of p's billing month k; month 0 contains the
// window's first day.
func (g *generator) billingStart(p *Profile, k int) time.Time {
	first := time.Date(g.start.Year(), g.start.Month(), p.BillingAnchor, 0, 0, 0, 0, time.UTC)
	if first.After(g.start) {
		first = first.AddDate(0, -1, 0)
	}
	return first.AddDate(0, k, 0)
}

func demoNumber(p *Profile) string { return fmt.Sprintf("%04d", p.Index+1) }

// lifecycle returns p's customer and its subscription_started at signup,
// tenure months before billing month 0.
func (g *generator) lifecycle(p *Profile) []event.Event {
	subID := "sub_demo_" + demoNumber(p)
	signup := g.billingStart(p, -p.tenureMonths).Add(p.timeOfDay)
	return []event.Event{
		{
			SpecVersion: event.SpecVersion, ID: "demo-c-" + p.ID, Source: g.cfg.Source,
			Type: event.TypeCustomer, Time: signup, DataContentType: "application/json",
			Data: event.Data{
				Customer:    event.Customer{Source: g.cfg.Source, ExternalID: p.ID, Email: p.Email, Name: p.Name},
				Version:     1,
				Plan:        p.Plan,
				Environment: "production",
				Metadata:    map[string]string{"segment": p.Segment, "region": p.Region, "industry": p.Industry},
			},
		},
		g.revenueEvent(p, "demo-r-"+subID+"-started", signup.Add(30*time.Second), event.KindSubscriptionStarted, nil,
			map[string]string{"subscription_id": subID}, func(d *event.Data) { d.Plan = p.Plan }),
	}
}

// revenueMonth returns p's events of billing month k: its invoice_paid
// (kept even before the window) and the one-offs drawn for the month —
// refunds, charges and credit notes — kept only inside the window. Every draw
// is keyed by the customer and the billing month, so a billing month's
// one-offs do not depend on the window nor on when they are generated.
func (g *generator) revenueMonth(p *Profile, k int) []event.Event {
	plan, _ := PlanByName(p.Plan)
	num := demoNumber(p)
	subID := "sub_demo_" + num
	inWindow := func(t time.Time) bool { return !t.Before(g.start) && t.Before(g.end) }

	ps, pe := g.billingStart(p, k), g.billingStart(p, k+1)
	ymd := ps.Format("20060102")
	r := g.reseed(streamRevenue, int64(p.Index), epochDay(ps))

	invoiceID := "in_demo_" + num + "_" + ymd
	paid := ps.Add(p.timeOfDay).Add(2 * time.Minute)
	evs := []event.Event{g.revenueEvent(p, "demo-r-"+invoiceID, paid, event.KindInvoicePaid, &plan.MonthlyPrice,
		map[string]string{"billing_reason": "subscription_cycle", "subscription_id": subID},
		func(d *event.Data) {
			start, end := ps, pe
			d.PeriodStart, d.PeriodEnd, d.Plan, d.InvoiceID = &start, &end, p.Plan, invoiceID
		})}

	// Refund of this invoice, 2–12 days later.
	if r.Float64() < refundRate {
		at := paid.AddDate(0, 0, 2+r.IntN(maxRefundLagDays-1)).Add(time.Duration(r.IntN(8*60)) * time.Minute)
		amount := plan.MonthlyPrice
		if r.Float64() >= fullRefundRate {
			amount = amount.Mul(decimal.NewFromInt(int64(10 + r.IntN(41)))).Div(decimal.NewFromInt(100)).Round(2)
		}
		amount = amount.Neg()
		why := pick(r, refundReasons)
		if inWindow(at) {
			refundID := "re_demo_" + num + "_" + ymd
			evs = append(evs, g.revenueEvent(p, "demo-r-"+refundID, at, event.KindRefund, &amount,
				map[string]string{"reason": why, "refund_id": refundID},
				func(d *event.Data) { d.Plan, d.InvoiceID = p.Plan, invoiceID }))
		}
	}

	// One-off charge: overage for upsell customers, credit packs for the
	// others; never for unprofitable ones (their usage is not billed).
	at := ps.AddDate(0, 0, r.IntN(daysBetween(ps, pe))).Add(time.Duration(9*60+r.IntN(10*60)) * time.Minute)
	u := r.Float64()
	var packs []string
	why := ""
	switch {
	case p.Scenario == ScenarioUpsell && u < overageRate:
		packs, why = overagePacks[p.Plan], "overage"
	case p.Scenario != ScenarioUnprofitable && p.Scenario != ScenarioUpsell && u < creditsRate:
		packs, why = creditPacks[p.Plan], "credits_purchase"
	}
	if packs != nil {
		amount := decimal.RequireFromString(pick(r, packs))
		if inWindow(at) {
			chargeID := "ch_demo_" + num + "_" + ymd
			evs = append(evs, g.revenueEvent(p, "demo-r-"+chargeID, at, event.KindCharge, &amount,
				map[string]string{"reason": why, "charge_id": chargeID},
				func(d *event.Data) { d.Plan = p.Plan }))
		}
	}

	// Credit note against this month's invoice: 10 or 20 % of the plan.
	if p.CreditNotes && r.Float64() < creditNoteRate {
		at := ps.AddDate(0, 0, 3+r.IntN(18)).Add(time.Duration(9*60+r.IntN(8*60)) * time.Minute)
		pct := int64(10 * (1 + r.IntN(2)))
		amount := plan.MonthlyPrice.Mul(decimal.NewFromInt(pct)).Div(decimal.NewFromInt(100)).Round(2).Neg()
		why := pick(r, creditNoteReasons)
		if inWindow(at) {
			noteID := "cn_demo_" + num + "_" + ymd
			evs = append(evs, g.revenueEvent(p, "demo-r-"+noteID, at, event.KindCreditNote, &amount,
				map[string]string{"reason": why, "credit_note_id": noteID},
				func(d *event.Data) { d.Plan, d.InvoiceID = p.Plan, invoiceID }))
		}
	}
	return evs
}

func (g *generator) revenueEvent(p *Profile, id string, at time.Time, kind string, amount *decimal.Decimal,
	attrs map[string]string, set func(*event.Data)) event.Event {
	ev := event.Event{
		SpecVersion:     event.SpecVersion,
		ID:              id,
		Source:          g.cfg.Source,
		Type:            event.TypeRevenue,
		Time:            at,
		DataContentType: "application/json",
		Data: event.Data{
			Customer:   event.Customer{Source: g.cfg.Source, ExternalID: p.ID},
			Version:    1,
			Attributes: attrs,
			Kind:       kind,
		},
	}
	if amount != nil {
		a := *amount
		ev.Data.Amount = &a
		ev.Data.Currency = Currency
	}
	if set != nil {
		set(&ev.Data)
	}
	return ev
}

func daysBetween(a, b time.Time) int { return int(b.Sub(a) / (24 * time.Hour)) }

// Package stripe reads a Stripe account into uvr's v1 events: revenue from
// paid invoices (one event per line), standalone charges, refunds, credit
// notes and lost disputes; customers; and subscription state.
//
// One Mapper holds the rules and serves both the native Source (stripe-go)
// and the Airbyte import of source-stripe, whose records are the same API
// objects. The rules, with the reason each money movement is counted exactly
// once, are in docs/connectors/stripe.md.
package stripe

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"github.com/uvrhq/uvr/connectors/source"
	"github.com/uvrhq/uvr/pipeline/event"
)

// Service is the event source and customer source of everything this
// package emits.
const Service = "stripe"

// Streams, named as Airbyte's source-stripe names them; the native Source
// uses the same names.
const (
	StreamCustomers     = "customers"
	StreamInvoices      = "invoices"
	StreamCharges       = "charges"
	StreamRefunds       = "refunds"
	StreamCreditNotes   = "credit_notes"
	StreamDisputes      = "disputes"
	StreamSubscriptions = "subscriptions"
)

// ErrNoInvoiceLink is returned for a succeeded charge in the API form of
// 2025-03-31.basil or later, which no longer says whether the charge pays an
// invoice. Counting it would double an invoice; dropping it would lose a
// standalone sale, so the record is refused by name. The native Source adds
// the link (from /v1/invoice_payments) before mapping.
var ErrNoInvoiceLink = errors.New("charge has no invoice field (API 2025-03-31.basil or later): resolve its invoice through /v1/invoice_payments before mapping")

// Mapper maps Stripe API objects to v1 events. It is stateless and safe for
// concurrent use.
type Mapper struct{}

var _ source.Mapper = Mapper{}

// Map implements source.Mapper. Streams that carry no money of their own
// (balance_transactions, events, invoice_line_items, payment_intents, …) and
// unknown streams give no events and no error.
func (m Mapper) Map(stream string, record json.RawMessage) ([]event.Event, error) {
	var (
		events []event.Event
		err    error
	)
	switch stream {
	case StreamCustomers:
		events, err = mapCustomer(record)
	case StreamInvoices:
		events, err = mapInvoice(record)
	case StreamCharges:
		events, err = mapCharge(record)
	case StreamRefunds:
		events, err = mapRefund(record)
	case StreamCreditNotes:
		events, err = mapCreditNote(record)
	case StreamDisputes:
		events, err = mapDispute(record)
	case StreamSubscriptions:
		events, err = mapSubscription(record)
	default:
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("stripe %s record %s: %w", stream, recordID(record), err)
	}
	// The contract promises valid events; a rule that built an invalid one
	// fails the record by name rather than the whole batch downstream.
	for _, ev := range events {
		if err := ev.Validate(); err != nil {
			return nil, fmt.Errorf("stripe %s record %s: event %s: %w", stream, recordID(record), ev.ID, err)
		}
	}
	return events, nil
}

// recordID names a record in errors: its id, else a note that it has none.
func recordID(record json.RawMessage) string {
	var o struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(record, &o) == nil && o.ID != "" {
		return o.ID
	}
	return "(no id)"
}

// decode unmarshals a record and requires an id.
func decode(record json.RawMessage, v any, id func() string) error {
	if err := json.Unmarshal(record, v); err != nil {
		return fmt.Errorf("malformed record: %w", err)
	}
	if id() == "" {
		return errors.New("record has no id")
	}
	return nil
}

// customerRef is the event's customer: the Stripe customer id, else the
// unmapped customer (revenue without a customer is kept, never dropped).
func customerRef(id, email, name string) event.Customer {
	if id == "" {
		return event.Customer{Source: Service, ExternalID: source.UnmappedCustomer}
	}
	c := event.Customer{Source: Service, ExternalID: id, Name: clip(name)}
	if strings.Contains(email, "@") && len(email) <= 512 {
		c.Email = email
	}
	return c
}

// clip keeps a string within the contract's 512 bytes without splitting a
// UTF-8 sequence.
func clip(s string) string {
	if len(s) > 512 {
		return strings.ToValidUTF8(s[:512], "")
	}
	return s
}

func revenue(id string, at time.Time, cust event.Customer, kind string, amount decimal.Decimal, currency string) event.Event {
	return event.Event{
		SpecVersion: event.SpecVersion,
		ID:          id,
		Source:      Service,
		Type:        event.TypeRevenue,
		Time:        at,
		Data: event.Data{
			Customer: cust,
			Version:  1,
			Kind:     kind,
			Amount:   &amount,
			Currency: currency,
		},
	}
}

func setAttr(ev *event.Event, key, value string) {
	if value == "" {
		return
	}
	if ev.Data.Attributes == nil {
		ev.Data.Attributes = map[string]string{}
	}
	ev.Data.Attributes[key] = clip(value)
}

func livemode(ev *event.Event, live *bool) {
	if live != nil {
		setAttr(ev, "livemode", strconv.FormatBool(*live))
	}
}

// version turns a unix time into a data.version: Stripe objects carry no
// revision number, but a later state of an object is observed at a later
// time, and seconds fit uint32 until 2106.
func version(secs ...num) uint32 {
	var v int64 = 1
	for _, s := range secs {
		if s.Set && s.V > v {
			v = s.V
		}
	}
	if v > 1<<32-1 {
		v = 1<<32 - 1
	}
	return uint32(v)
}

func mapCustomer(record json.RawMessage) ([]event.Event, error) {
	var c customerObj
	if err := decode(record, &c, func() string { return c.ID }); err != nil {
		return nil, err
	}
	at := c.Created
	if !at.Set {
		at = c.Updated
	}
	if !at.Set {
		// A deleted customer as the API returns it ({id, deleted}) has no
		// time to place an event on; there is nothing to record.
		return nil, nil
	}
	ev := event.Event{
		SpecVersion: event.SpecVersion,
		ID:          c.ID,
		Source:      Service,
		Type:        event.TypeCustomer,
		Time:        unix(at),
		Data: event.Data{
			Customer: customerRef(c.ID, c.Email, c.Name),
			Version:  version(c.Created, c.Updated),
			Void:     c.Deleted,
		},
	}
	if c.Livemode != nil {
		ev.Data.Environment = map[bool]string{true: "live", false: "test"}[*c.Livemode]
	}
	// Stripe metadata values are strings; uvr_customer_id, when the account
	// sets it, travels here to link the Stripe customer to uvr's own id.
	for k, raw := range c.Metadata {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			continue
		}
		if ev.Data.Metadata == nil {
			ev.Data.Metadata = map[string]string{}
		}
		ev.Data.Metadata[k] = clip(s)
	}
	return []event.Event{ev}, nil
}

func mapCharge(record json.RawMessage) ([]event.Event, error) {
	var c chargeObj
	if err := decode(record, &c, func() string { return c.ID }); err != nil {
		return nil, err
	}
	// Failed and pending charges moved no money; an uncaptured one is only
	// an authorization.
	if c.Status != "succeeded" || (c.Captured != nil && !*c.Captured) {
		return nil, nil
	}
	if c.Invoice == nil {
		return nil, ErrNoInvoiceLink
	}
	if !isNull(c.Invoice) {
		return nil, nil // the payment of an invoice: the invoice's lines carry it
	}
	amount := c.Amount
	if c.AmountCaptured.Set {
		amount = c.AmountCaptured // a partial capture released the rest
	}
	if amount.V == 0 {
		return nil, nil
	}
	cur, err := currencyOf(c.Currency)
	if err != nil {
		return nil, err
	}
	if !c.Created.Set {
		return nil, errors.New("charge has no created time")
	}
	ev := revenue(c.ID, unix(c.Created), customerRef(c.Customer.ID, "", ""), event.KindCharge, source.FromMinor(amount.V, cur), cur)
	setAttr(&ev, "payment_intent", c.PaymentIntent.ID)
	livemode(&ev, c.Livemode)
	return []event.Event{ev}, nil
}

func mapRefund(record json.RawMessage) ([]event.Event, error) {
	var r refundObj
	if err := decode(record, &r, func() string { return r.ID }); err != nil {
		return nil, err
	}
	var void bool
	switch r.Status {
	case "succeeded", "pending":
		// A pending refund has already left the balance.
	case "failed", "canceled":
		// Removes the event of an earlier read that saw it pending.
		void = true
	default:
		return nil, nil // requires_action: nothing has moved yet
	}
	if r.Charge.Obj != nil {
		var ch struct {
			Captured *bool `json:"captured"`
		}
		if json.Unmarshal(r.Charge.Obj, &ch) == nil && ch.Captured != nil && !*ch.Captured {
			return nil, nil // releasing an authorization returns no money
		}
	}
	cur, err := currencyOf(r.Currency)
	if err != nil {
		return nil, err
	}
	if !r.Created.Set {
		return nil, errors.New("refund has no created time")
	}
	cust := r.Customer.ID
	if cust == "" {
		cust = r.Charge.customerOf().ID
	}
	ev := revenue(r.ID, unix(r.Created), customerRef(cust, "", ""), event.KindRefund, source.FromMinor(-r.Amount.V, cur), cur)
	ev.Data.Void = void
	setAttr(&ev, "charge", r.Charge.ID)
	return []event.Event{ev}, nil
}

func mapCreditNote(record json.RawMessage) ([]event.Event, error) {
	var n creditNoteObj
	if err := decode(record, &n, func() string { return n.ID }); err != nil {
		return nil, err
	}
	var void bool
	switch n.Status {
	case "issued":
	case "void":
		void = true
	default:
		return nil, nil
	}
	cur, err := currencyOf(n.Currency)
	if err != nil {
		return nil, err
	}
	credited, err := creditNoteNonCash(n, cur)
	if err != nil {
		return nil, err
	}
	if credited.IsZero() {
		return nil, nil // wholly refunded: the refund carries it
	}
	at := n.EffectiveAt
	if !at.Set {
		at = n.Created
	}
	if !at.Set {
		return nil, errors.New("credit note has no effective_at or created time")
	}
	ev := revenue(n.ID, unix(at), customerRef(n.Customer.ID, "", ""), event.KindCreditNote, credited.Neg(), cur)
	ev.Data.Void = void
	ev.Data.InvoiceID = n.Invoice.ID
	setAttr(&ev, "credit_note_type", n.Type)
	livemode(&ev, n.Livemode)
	return []event.Event{ev}, nil
}

// creditNoteNonCash is the part of a credit note, excluding tax, that no
// refund carries: what it took off an unpaid invoice (pre_payment), put on
// the customer's balance or settled out of band. Cash given back is a refund
// object of its own, counted by the refunds stream.
func creditNoteNonCash(n creditNoteObj, cur string) (decimal.Decimal, error) {
	base := n.TotalExcludingTax
	if !base.Set {
		base = n.Total
	}
	if !n.Total.Set || !base.Set {
		return decimal.Zero, errors.New("credit note has no total")
	}
	var refunded int64
	switch {
	case n.Refunds != nil:
		for _, r := range *n.Refunds {
			refunded += r.AmountRefunded.V
		}
	case n.Refund.ID != "":
		var r amountObj
		if n.Refund.Obj != nil && json.Unmarshal(n.Refund.Obj, &r) == nil && r.Amount.Set {
			refunded = r.Amount.V
		} else if n.CustomerBalanceTransaction.ID == "" && n.OutOfBandAmount.V == 0 {
			refunded = n.Total.V // nothing else took a part: the refund is the whole note
		} else {
			return decimal.Zero, fmt.Errorf("credit note is partly refunded (%s) and partly credited; the refunded amount is not in the record (expand refund)", n.Refund.ID)
		}
	}
	switch {
	case refunded <= 0:
		return source.FromMinor(base.V, cur), nil
	case refunded >= n.Total.V:
		return decimal.Zero, nil
	}
	// Partly refunded: the non-cash share of the amount excluding tax,
	// rounded to the currency's minor unit (Stripe does not split tax
	// between the refunded and the credited part).
	share := decimal.NewFromInt(base.V).Mul(decimal.NewFromInt(n.Total.V - refunded)).Div(decimal.NewFromInt(n.Total.V)).Round(0)
	return source.FromMinor(share.IntPart(), cur), nil
}

func mapDispute(record json.RawMessage) ([]event.Event, error) {
	var d disputeObj
	if err := decode(record, &d, func() string { return d.ID }); err != nil {
		return nil, err
	}
	// Only a lost dispute takes revenue away for good; the funds withdrawn
	// while it is open come back if it is won.
	if d.Status != "lost" {
		return nil, nil
	}
	cur, err := currencyOf(d.Currency)
	if err != nil {
		return nil, err
	}
	if !d.Created.Set {
		return nil, errors.New("dispute has no created time")
	}
	ev := revenue(d.ID, unix(d.Created), customerRef(d.Charge.customerOf().ID, "", ""), event.KindDispute, source.FromMinor(-d.Amount.V, cur), cur)
	setAttr(&ev, "charge", d.Charge.ID)
	livemode(&ev, d.Livemode)
	return []event.Event{ev}, nil
}

func mapSubscription(record json.RawMessage) ([]event.Event, error) {
	var s subscriptionObj
	if err := decode(record, &s, func() string { return s.ID }); err != nil {
		return nil, err
	}
	var items []subscriptionItemObj
	if s.Items != nil {
		items = s.Items.Data
	}
	start := s.StartDate
	if !start.Set {
		start = s.Created
	}
	if !start.Set {
		return nil, errors.New("subscription has no start_date or created time")
	}
	kind, at := event.KindSubscriptionStarted, start
	var lastItem num
	for _, it := range items {
		if it.Created.Set && it.Created.V > lastItem.V {
			lastItem = it.Created
		}
	}
	switch s.Status {
	case "incomplete":
		return nil, nil // the first payment never succeeded: it never started
	case "canceled", "incomplete_expired":
		kind = event.KindSubscriptionCanceled
		for _, t := range []num{s.EndedAt, s.CanceledAt, s.Updated} {
			if t.Set {
				at = t
				break
			}
		}
	default:
		// An item added more than a minute after the start is a change of
		// plan or price (items of a new subscription are created with it).
		if lastItem.Set && lastItem.V > start.V+60 {
			kind, at = event.KindSubscriptionChanged, lastItem
		}
	}
	ev := event.Event{
		SpecVersion: event.SpecVersion,
		ID:          s.ID,
		Source:      Service,
		Type:        event.TypeRevenue,
		Time:        unix(at),
		Data: event.Data{
			Customer: customerRef(s.Customer.ID, "", ""),
			// One identity per subscription: each later state replaces the
			// earlier one.
			Version: version(s.Created, s.StartDate, s.CanceledAt, s.EndedAt, s.Updated, s.CurrentPeriodStart, lastItem),
			Kind:    kind,
		},
	}
	var prices []string
	periodStart, periodEnd := s.CurrentPeriodStart, s.CurrentPeriodEnd
	for i, it := range items {
		p := it.Price
		if p.ID == "" {
			p = it.Plan
		}
		if p.ID != "" {
			prices = append(prices, p.ID)
		}
		if i == 0 {
			product, interval := priceOf(p)
			setAttr(&ev, "product", product)
			setAttr(&ev, "interval", interval)
			if !periodStart.Set {
				periodStart, periodEnd = it.CurrentPeriodStart, it.CurrentPeriodEnd
			}
		}
	}
	if len(prices) == 0 && s.Plan.ID != "" {
		prices = append(prices, s.Plan.ID)
	}
	if len(prices) > 0 {
		ev.Data.Plan = prices[0]
		setAttr(&ev, "prices", strings.Join(prices, ","))
	}
	setPeriod(&ev, periodStart, periodEnd)
	setAttr(&ev, "status", s.Status)
	livemode(&ev, s.Livemode)
	return []event.Event{ev}, nil
}

// setPeriod sets the service period when it is a real interval (a one-off
// invoice item has start == end, which the contract does not accept).
func setPeriod(ev *event.Event, start, end num) {
	if !start.Set || !end.Set || end.V <= start.V {
		return
	}
	s, e := unix(start), unix(end)
	ev.Data.PeriodStart, ev.Data.PeriodEnd = &s, &e
}

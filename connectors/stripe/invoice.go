package stripe

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/uvrhq/uvr/connectors/source"
	"github.com/uvrhq/uvr/pipeline/event"
)

// restLine names the event that carries the part of an invoice's total its
// listed lines do not: lines the record does not hold (lines.has_more) or an
// amount charged outside the lines (shipping). With it an invoice's events
// always sum to its total excluding tax.
const restLine = "rest"

// mapInvoice turns a paid invoice into one revenue event per line. The lines
// sum to the invoice's total excluding tax, after discounts: what the
// customer paid for this invoice's goods. Money that moved through the
// customer balance (starting_balance) was counted on the invoice that
// created it, and credit notes are events of their own.
func mapInvoice(record json.RawMessage) ([]event.Event, error) {
	var inv invoiceObj
	if err := decode(record, &inv, func() string { return inv.ID }); err != nil {
		return nil, err
	}
	// Draft, open, void and uncollectible invoices have moved no money.
	if inv.Status != "paid" {
		return nil, nil
	}
	cur, err := currencyOf(inv.Currency)
	if err != nil {
		return nil, err
	}
	at := num{}
	if inv.StatusTransitions != nil {
		at = inv.StatusTransitions.PaidAt
	}
	for _, t := range []num{inv.EffectiveAt, inv.Created} {
		if !at.Set {
			at = t
		}
	}
	if !at.Set {
		return nil, errors.New("paid invoice has no paid_at, effective_at or created time")
	}
	cust := customerRef(inv.Customer.ID, inv.CustomerEmail, inv.CustomerName)
	subscription := inv.Subscription.ID
	if subscription == "" && inv.Parent != nil && inv.Parent.SubscriptionDetails != nil {
		subscription = inv.Parent.SubscriptionDetails.Subscription.ID
	}

	var (
		events []event.Event
		sum    int64
	)
	complete := true
	if inv.Lines != nil {
		complete = !inv.Lines.HasMore
		for i, raw := range inv.Lines.Data {
			ev, net, err := mapLine(inv, raw, at, cust, cur)
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", i, err)
			}
			if ev.Data.Attributes["subscription"] == "" {
				setAttr(&ev, "subscription", subscription)
			}
			events = append(events, ev)
			sum += net
		}
	}

	// The invoice's own figure: total excluding tax (after discounts), or,
	// in API versions that lack it, total minus tax.
	total, known := inv.TotalExcludingTax, true
	if !total.Set {
		total = num{V: inv.Total.V - inv.Tax.V, Set: inv.Total.Set}
	}
	if !total.Set {
		known = false
	}
	if known && total.V != sum {
		rest := total.V - sum
		ev := invoiceEvent(inv.ID+"/"+restLine, inv, at, cust, rest, cur)
		reason := "amount outside the listed lines"
		if !complete {
			reason = "lines not in the record"
		}
		setAttr(&ev, "reason", reason)
		setAttr(&ev, "subscription", subscription)
		events = append(events, ev)
	} else if !known && !complete {
		return nil, errors.New("invoice lines are incomplete (has_more) and the invoice has no total")
	}
	return events, nil
}

// invoiceEvent is one part of a paid invoice. A negative part (the credit
// for unused time of a proration, a line discounted below zero) is carried
// as a credit_note, the one invoice-linked kind that may be negative, so the
// invoice's events still sum to its total.
func invoiceEvent(id string, inv invoiceObj, at num, cust event.Customer, minor int64, cur string) event.Event {
	kind := event.KindInvoicePaid
	if minor < 0 {
		kind = event.KindCreditNote
	}
	ev := revenue(id, unix(at), cust, kind, source.FromMinor(minor, cur), cur)
	ev.Data.InvoiceID = inv.ID
	setAttr(&ev, "invoice_number", inv.Number)
	livemode(&ev, inv.Livemode)
	return ev
}

// mapLine maps one invoice line, in either API form, and returns its net
// amount in minor units: amount − discounts (and, from basil, applied credit
// grants) − tax included in the amount. Exclusive tax is not in the amount.
func mapLine(inv invoiceObj, raw json.RawMessage, at num, cust event.Customer, cur string) (event.Event, int64, error) {
	var l lineObj
	if err := json.Unmarshal(raw, &l); err != nil {
		return event.Event{}, 0, fmt.Errorf("malformed line: %w", err)
	}
	if l.ID == "" {
		return event.Event{}, 0, errors.New("line has no id")
	}
	if !l.Amount.Set {
		return event.Event{}, 0, fmt.Errorf("line %s has no amount", l.ID)
	}
	if l.Currency != "" {
		if c, err := currencyOf(l.Currency); err != nil || c != cur {
			return event.Event{}, 0, fmt.Errorf("line %s currency %q differs from the invoice's %s", l.ID, l.Currency, cur)
		}
	}
	net := l.Amount.V
	if l.PretaxCreditAmounts != nil {
		for _, c := range *l.PretaxCreditAmounts {
			net -= c.Amount.V
		}
	} else {
		for _, d := range l.DiscountAmounts {
			net -= d.Amount.V
		}
	}
	for _, t := range l.TaxAmounts {
		if t.Inclusive {
			net -= t.Amount.V
		}
	}
	for _, t := range l.Taxes {
		if t.TaxBehavior == "inclusive" {
			net -= t.Amount.V
		}
	}

	ev := invoiceEvent(inv.ID+"/"+l.ID, inv, at, cust, net, cur)
	if l.Period != nil {
		setPeriod(&ev, l.Period.Start, l.Period.End)
	}
	var (
		price, product, lineType, subscription string
		proration                              bool
	)
	switch {
	case l.Pricing != nil && l.Pricing.PriceDetails != nil: // basil
		price, product = l.Pricing.PriceDetails.Price.ID, l.Pricing.PriceDetails.Product
	case l.Price.ID != "":
		price = l.Price.ID
		product, _ = priceOf(l.Price)
	case l.Plan.ID != "":
		price = l.Plan.ID
		product, _ = priceOf(l.Plan)
	}
	if l.Parent != nil { // basil
		lineType = l.Parent.Type
		for _, p := range []*lineParent{l.Parent.SubscriptionItemDetails, l.Parent.InvoiceItemDetails} {
			if p != nil {
				proration = proration || p.Proration
				if subscription == "" {
					subscription = p.Subscription
				}
			}
		}
	} else {
		lineType = l.Type
		proration = l.Proration != nil && *l.Proration
		subscription = l.Subscription.ID
	}
	ev.Data.Plan = price
	setAttr(&ev, "product", product)
	setAttr(&ev, "line_type", lineType)
	setAttr(&ev, "subscription", subscription)
	if proration {
		setAttr(&ev, "proration", "true")
	}
	if l.Quantity.Set {
		setAttr(&ev, "quantity", strconv.FormatInt(l.Quantity.V, 10))
	}
	return ev, net, nil
}

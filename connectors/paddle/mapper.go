// Package paddle reads Paddle Billing into uvr's v1 events: a Mapper over
// Paddle Billing API entities (transactions, adjustments, customers,
// subscriptions — the objects the native Source lists and webhooks carry)
// and a native Source on https://api.paddle.com.
//
// Counting rules (docs/connectors/paddle.md): a completed or paid
// transaction is revenue, per line item; an approved adjustment is the one
// source of truth for money given back (refund, credit, chargeback).
package paddle

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"github.com/uvrhq/uvr/connectors/source"
	"github.com/uvrhq/uvr/pipeline/event"
)

// ServiceType is the CloudEvents source of every event and the customer
// reference's source.
const ServiceType = "paddle"

// Mapper maps Paddle Billing entities to v1 events. The zero value is ready
// to use and safe for concurrent use.
type Mapper struct{}

var _ source.Mapper = Mapper{}

// Map implements source.Mapper. Streams (plural or singular): transactions,
// adjustments, customers, subscriptions; others map to nothing.
func (Mapper) Map(stream string, record json.RawMessage) ([]event.Event, error) {
	return streams.Map(stream, record)
}

// streams maps Paddle's streams; products, prices, discounts, addresses…
// move no money.
var streams = source.Streams{
	"transaction":  mapTransaction,
	"adjustment":   mapAdjustment,
	"customer":     mapCustomer,
	"subscription": mapSubscription,
}

type period struct {
	StartsAt string `json:"starts_at"`
	EndsAt   string `json:"ends_at"`
}

type transaction struct {
	ID             string  `json:"id"`
	Status         string  `json:"status"`
	CustomerID     string  `json:"customer_id"`
	SubscriptionID string  `json:"subscription_id"`
	InvoiceID      string  `json:"invoice_id"`
	InvoiceNumber  string  `json:"invoice_number"`
	Origin         string  `json:"origin"`
	CurrencyCode   string  `json:"currency_code"`
	BillingPeriod  *period `json:"billing_period"`
	CreatedAt      string  `json:"created_at"`
	UpdatedAt      string  `json:"updated_at"`
	BilledAt       string  `json:"billed_at"`
	Details        *struct {
		Totals *struct {
			Total string `json:"total"`
		} `json:"totals"`
		LineItems []struct {
			ID        string                 `json:"id"`
			PriceID   string                 `json:"price_id"`
			Totals    struct{ Total string } `json:"totals"`
			Proration *struct {
				BillingPeriod *period `json:"billing_period"`
			} `json:"proration"`
			Product *struct {
				ID string `json:"id"`
			} `json:"product"`
		} `json:"line_items"`
	} `json:"details"`
	Payments []struct {
		Status     string `json:"status"`
		CapturedAt string `json:"captured_at"`
	} `json:"payments"`
}

// mapTransaction books a completed or paid transaction: one invoice_paid per
// line item (its totals.total, tax included, before any balance credit — the
// credit was counted as a credit_note adjustment when issued) and a
// "/remainder" event for what details.totals.total does not explain by its
// lines. Any other status voids those ids.
func mapTransaction(raw json.RawMessage) ([]event.Event, error) {
	var t transaction
	if err := json.Unmarshal(raw, &t); err != nil {
		return nil, fmt.Errorf("transaction: %w", err)
	}
	if t.ID == "" {
		return nil, errors.New("transaction: id is missing")
	}
	name := "transaction " + t.ID
	cur, err := currency(t.CurrencyCode)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	version, err := versionOf(t.UpdatedAt)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if t.Details == nil {
		return nil, fmt.Errorf("%s: details are missing", name)
	}
	paid := t.Status == "completed" || t.Status == "paid"
	// The money moved when a payment was captured; billed_at (or the
	// creation) stands in for a transaction paid without a payment record.
	var at time.Time
	for _, p := range t.Payments {
		if p.Status != "captured" || p.CapturedAt == "" {
			continue
		}
		c, err := parseTime(p.CapturedAt)
		if err != nil {
			return nil, fmt.Errorf("%s: payments.captured_at: %w", name, err)
		}
		if at.IsZero() || c.Before(at) {
			at = c
		}
	}
	if at.IsZero() {
		if at, err = parseTime(first(t.BilledAt, t.CreatedAt, t.UpdatedAt)); err != nil {
			return nil, fmt.Errorf("%s: billed_at/created_at: %w", name, err)
		}
	}
	base := func(id string) event.Event {
		return event.Event{
			SpecVersion: event.SpecVersion, ID: id, Source: ServiceType, Type: event.TypeRevenue,
			Time: at, DataContentType: "application/json",
			Data: event.Data{Customer: customerRef(t.CustomerID), Version: version, Currency: cur,
				InvoiceID: first(t.InvoiceNumber, t.InvoiceID, t.ID)},
		}
	}
	restID := "transaction/" + t.ID + "/remainder"
	if !paid {
		zero := decimal.Zero
		var evs []event.Event
		for _, li := range t.Details.LineItems {
			ev := base("transaction/" + t.ID + "/" + li.ID)
			ev.Data.Kind, ev.Data.Amount, ev.Data.Void = event.KindInvoicePaid, &zero, true
			evs = append(evs, ev)
		}
		ev := base(restID)
		ev.Data.Kind, ev.Data.Amount, ev.Data.Void = event.KindInvoicePaid, &zero, true
		return append(evs, ev), nil
	}
	if t.Details.Totals == nil {
		return nil, fmt.Errorf("%s: details.totals is missing", name)
	}
	total, err := minor(t.Details.Totals.Total)
	if err != nil {
		return nil, fmt.Errorf("%s: details.totals.total: %w", name, err)
	}
	var lines int64
	evs := make([]event.Event, 0, len(t.Details.LineItems)+1)
	for i, li := range t.Details.LineItems {
		amt, err := minor(li.Totals.Total)
		if err != nil || li.ID == "" {
			return nil, fmt.Errorf("%s: details.line_items[%d]: id and totals.total are required: %v", name, i, err)
		}
		lines += amt
		ev := base("transaction/" + t.ID + "/" + li.ID)
		a := source.FromMinor(amt, cur)
		ev.Data.Kind, ev.Data.Amount = signedKind(amt, event.KindInvoicePaid), &a
		p := t.BillingPeriod
		if li.Proration != nil && li.Proration.BillingPeriod != nil {
			p = li.Proration.BillingPeriod
		}
		if p != nil {
			from, err1 := parseTime(p.StartsAt)
			to, err2 := parseTime(p.EndsAt)
			if err1 == nil && err2 == nil && to.After(from) {
				ev.Data.PeriodStart, ev.Data.PeriodEnd = &from, &to
			}
		}
		ev.Data.Plan = li.PriceID
		product := ""
		if li.Product != nil {
			product = li.Product.ID
		}
		ev.Data.Attributes = attrs("line_item_id", li.ID, "price_id", li.PriceID, "product_id", product,
			"subscription_id", t.SubscriptionID, "origin", t.Origin, "transaction_id", t.ID)
		evs = append(evs, ev)
	}
	if rest := total - lines; rest != 0 {
		ev := base(restID)
		a := source.FromMinor(rest, cur)
		ev.Data.Kind, ev.Data.Amount = signedKind(rest, event.KindInvoicePaid), &a
		ev.Data.Attributes = attrs("transaction_id", t.ID, "subscription_id", t.SubscriptionID)
		evs = append(evs, ev)
	}
	return evs, nil
}

type adjustment struct {
	ID             string `json:"id"`
	Action         string `json:"action"`
	Status         string `json:"status"`
	TransactionID  string `json:"transaction_id"`
	SubscriptionID string `json:"subscription_id"`
	CustomerID     string `json:"customer_id"`
	Reason         string `json:"reason"`
	CurrencyCode   string `json:"currency_code"`
	CreatedAt      string `json:"created_at"`
	UpdatedAt      string `json:"updated_at"`
	Items          []struct {
		ID     string `json:"id"`
		Totals struct {
			Total string `json:"total"`
		} `json:"totals"`
	} `json:"items"`
	Totals *struct {
		Total        string `json:"total"`
		CurrencyCode string `json:"currency_code"`
	} `json:"totals"`
}

// adjustmentKinds maps an adjustment's action to the event kind and the sign
// of its money for the merchant.
var adjustmentKinds = map[string]struct {
	kind string
	sign int64
}{
	"refund":             {event.KindRefund, -1},
	"credit":             {event.KindCreditNote, -1},
	"chargeback":         {event.KindDispute, -1},
	"chargeback_reverse": {event.KindDispute, +1},
	"credit_reverse":     {event.KindCharge, +1},
}

// mapAdjustment books an approved adjustment. Its amount is totals.total, and
// only when it equals the sum of its items' totals: Paddle derives one from
// the other, so a record where they disagree (as in the hand-edited SDK
// fixture) cannot say which amount moved and is rejected by name rather than
// guessed. tax_rates_used is not read.
func mapAdjustment(raw json.RawMessage) ([]event.Event, error) {
	var a adjustment
	if err := json.Unmarshal(raw, &a); err != nil {
		return nil, fmt.Errorf("adjustment: %w", err)
	}
	if a.ID == "" {
		return nil, errors.New("adjustment: id is missing")
	}
	name := "adjustment " + a.ID
	rule, ok := adjustmentKinds[a.Action]
	if !ok {
		return nil, nil // chargeback_warning: no money moved
	}
	switch a.Status {
	case "approved", "rejected", "reversed":
	default:
		return nil, nil // pending_approval: not decided, nothing counted yet
	}
	cur, err := currency(a.CurrencyCode)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	version, err := versionOf(a.UpdatedAt)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	at, err := parseTime(a.CreatedAt)
	if err != nil {
		return nil, fmt.Errorf("%s: created_at: %w", name, err)
	}
	if a.Totals == nil {
		return nil, fmt.Errorf("%s: totals are missing", name)
	}
	total, err := minor(a.Totals.Total)
	if err != nil {
		return nil, fmt.Errorf("%s: totals.total: %w", name, err)
	}
	var items int64
	for i, it := range a.Items {
		v, err := minor(it.Totals.Total)
		if err != nil {
			return nil, fmt.Errorf("%s: items[%d].totals.total: %w", name, i, err)
		}
		items += v
	}
	if len(a.Items) > 0 && items != total {
		return nil, fmt.Errorf("%s: totals.total %d disagrees with the sum of its items' totals %d", name, total, items)
	}
	void := a.Status != "approved"
	amount := source.FromMinor(rule.sign*total, cur)
	if void {
		amount = decimal.Zero
	}
	return []event.Event{{
		SpecVersion: event.SpecVersion, ID: "adjustment/" + a.ID, Source: ServiceType, Type: event.TypeRevenue,
		Time: at, DataContentType: "application/json",
		Data: event.Data{
			Customer: customerRef(a.CustomerID), Version: version, Void: void, Kind: rule.kind, Amount: &amount,
			Currency: cur, InvoiceID: a.TransactionID,
			Attributes: attrs("action", a.Action, "reason", a.Reason, "status", a.Status,
				"transaction_id", a.TransactionID, "subscription_id", a.SubscriptionID),
		},
	}}, nil
}

type customer struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	Email     string `json:"email"`
	Status    string `json:"status"`
	Locale    string `json:"locale"`
	CreatedAt string `json:"created_at"`
	UpdatedAt string `json:"updated_at"`
}

func mapCustomer(raw json.RawMessage) ([]event.Event, error) {
	var c customer
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, fmt.Errorf("customer: %w", err)
	}
	if c.ID == "" {
		return nil, errors.New("customer: id is missing")
	}
	name := "customer " + c.ID
	version, err := versionOf(c.UpdatedAt)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	at, err := parseTime(c.CreatedAt)
	if err != nil {
		return nil, fmt.Errorf("%s: created_at: %w", name, err)
	}
	ref := event.Customer{Source: ServiceType, ExternalID: c.ID, Name: c.Name}
	if strings.Contains(c.Email, "@") {
		ref.Email = c.Email
	}
	return []event.Event{{
		SpecVersion: event.SpecVersion, ID: "customer/" + c.ID, Source: ServiceType, Type: event.TypeCustomer,
		Time: at, DataContentType: "application/json",
		Data: event.Data{Customer: ref, Version: version, Metadata: attrs("status", c.Status, "locale", c.Locale)},
	}}, nil
}

type subscription struct {
	ID           string `json:"id"`
	Status       string `json:"status"`
	CustomerID   string `json:"customer_id"`
	CurrencyCode string `json:"currency_code"`
	CreatedAt    string `json:"created_at"`
	UpdatedAt    string `json:"updated_at"`
	StartedAt    string `json:"started_at"`
	CanceledAt   string `json:"canceled_at"`
	BillingCycle *struct {
		Frequency int    `json:"frequency"`
		Interval  string `json:"interval"`
	} `json:"billing_cycle"`
	Items []struct {
		Recurring bool `json:"recurring"`
		Price     struct {
			ID        string `json:"id"`
			ProductID string `json:"product_id"`
		} `json:"price"`
	} `json:"items"`
}

// mapSubscription emits "<id>/started" once it has started and
// "<id>/canceled" while it is canceled (voided while it is live), each with
// its latest state (version = updated_at). No money moves here.
func mapSubscription(raw json.RawMessage) ([]event.Event, error) {
	var s subscription
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, fmt.Errorf("subscription: %w", err)
	}
	if s.ID == "" {
		return nil, errors.New("subscription: id is missing")
	}
	name := "subscription " + s.ID
	version, err := versionOf(s.UpdatedAt)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	plan := ""
	for _, it := range s.Items {
		if it.Recurring {
			plan = it.Price.ID
			break
		}
	}
	a := attrs("subscription_id", s.ID, "status", s.Status)
	if s.BillingCycle != nil {
		a["billing_interval"] = fmt.Sprintf("%d %s", s.BillingCycle.Frequency, s.BillingCycle.Interval)
	}
	mk := func(suffix, kind, when string) (event.Event, error) {
		at, err := parseTime(when)
		if err != nil {
			return event.Event{}, fmt.Errorf("%s: %s time: %w", name, suffix, err)
		}
		return event.Event{
			SpecVersion: event.SpecVersion, ID: "subscription/" + s.ID + "/" + suffix, Source: ServiceType,
			Type: event.TypeRevenue, Time: at, DataContentType: "application/json",
			Data: event.Data{Customer: customerRef(s.CustomerID), Version: version, Kind: kind, Plan: plan, Attributes: a},
		}, nil
	}
	var evs []event.Event
	if s.StartedAt != "" {
		ev, err := mk("started", event.KindSubscriptionStarted, s.StartedAt)
		if err != nil {
			return nil, err
		}
		evs = append(evs, ev)
	}
	if s.Status == "canceled" {
		ev, err := mk("canceled", event.KindSubscriptionCanceled, first(s.CanceledAt, s.UpdatedAt))
		if err != nil {
			return nil, err
		}
		return append(evs, ev), nil
	}
	ev, err := mk("canceled", event.KindSubscriptionCanceled, first(s.UpdatedAt, s.CreatedAt))
	if err != nil {
		return nil, err
	}
	ev.Data.Void = true // live again (or never canceled): no cancellation stands
	return append(evs, ev), nil
}

func customerRef(id string) event.Customer {
	if id == "" {
		id = source.UnmappedCustomer
	}
	return event.Customer{Source: ServiceType, ExternalID: id}
}

// minor parses Paddle's amounts: integer strings in the currency's minor
// unit ("40000" is 400.00 USD).
func minor(s string) (int64, error) {
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not an amount in minor units", s)
	}
	return v, nil
}

func currency(code string) (string, error) {
	c := strings.ToUpper(code)
	if len(c) != 3 {
		return "", fmt.Errorf("currency_code %q is not an ISO 4217 code", code)
	}
	return c, nil
}

func signedKind(minor int64, positive string) string {
	if minor < 0 {
		return event.KindCreditNote
	}
	return positive
}

func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not an RFC 3339 time", s)
	}
	return t.UTC(), nil
}

// versionOf uses updated_at, in seconds, as the revision (it fits
// data.version's uint32 until 2106); absent or unset means version 1.
func versionOf(updatedAt string) (uint32, error) {
	if updatedAt == "" {
		return 1, nil
	}
	t, err := parseTime(updatedAt)
	if err != nil {
		return 0, fmt.Errorf("updated_at: %w", err)
	}
	if t.IsZero() {
		// 0001-01-01T00:00:00Z is Go's zero time, how Paddle's own SDK
		// fixtures write an unset time: no revision known.
		return 1, nil
	}
	if s := t.Unix(); s < 1 || s > math.MaxUint32 {
		return 0, fmt.Errorf("updated_at %s is not a usable revision", updatedAt)
	}
	return uint32(t.Unix()), nil
}

func first(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

func attrs(kv ...string) map[string]string {
	m := make(map[string]string, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			m[kv[i]] = kv[i+1]
		}
	}
	return m
}

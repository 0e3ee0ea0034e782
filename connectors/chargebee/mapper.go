// Package chargebee reads Chargebee (API v2) into uvr's v1 events: a Mapper
// over Chargebee's API objects (the records the native Source fetches and the
// records Airbyte's source-chargebee emits), and a native Source.
//
// The counting rules (docs/connectors/chargebee.md) make every money movement
// count once: a paid invoice is revenue, per line item; refundable credit
// notes are the one source of truth for money given back; payment and refund
// transactions only mirror those documents and map to nothing.
package chargebee

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"github.com/uvrhq/uvr/connectors/source"
	"github.com/uvrhq/uvr/pipeline/event"
)

// ServiceType is the CloudEvents source of every event and the customer
// reference's source.
const ServiceType = "chargebee"

// Mapper maps Chargebee records to v1 events. The zero value is ready to use
// and safe for concurrent use.
type Mapper struct{}

var _ source.Mapper = Mapper{}

// Map implements source.Mapper. stream is the Chargebee object type, singular
// (Airbyte's stream names: invoice, credit_note, …) or plural (the API list
// paths: invoices, credit_notes, …). Other streams map to nothing.
func (Mapper) Map(stream string, record json.RawMessage) ([]event.Event, error) {
	return streams.Map(stream, record)
}

// streams maps Chargebee's streams. transaction: a payment pays an invoice
// (counted on the invoice), a refund pays out a refundable credit note
// (counted on the note), and a payment_reversal re-opens its invoice (whose
// lines are then voided). Every other stream (items, coupons, quotes…) moves
// no money.
var streams = source.Streams{
	"invoice":      mapInvoice,
	"credit_note":  mapCreditNote,
	"subscription": mapSubscription,
	"customer":     mapCustomer,
}

type lineItem struct {
	ID             string `json:"id"`
	DateFrom       *int64 `json:"date_from"`
	DateTo         *int64 `json:"date_to"`
	Amount         *int64 `json:"amount"`
	DiscountAmount int64  `json:"discount_amount"`
	TaxAmount      int64  `json:"tax_amount"`
	EntityType     string `json:"entity_type"`
	EntityID       string `json:"entity_id"`
	SubscriptionID string `json:"subscription_id"`
}

type invoice struct {
	ID             string     `json:"id"`
	CustomerID     string     `json:"customer_id"`
	SubscriptionID string     `json:"subscription_id"`
	Status         string     `json:"status"`
	PriceType      string     `json:"price_type"`
	Date           *int64     `json:"date"`
	PaidAt         *int64     `json:"paid_at"`
	UpdatedAt      *int64     `json:"updated_at"`
	Total          *int64     `json:"total"`
	AmountAdjusted int64      `json:"amount_adjusted"`
	WriteOffAmount int64      `json:"write_off_amount"`
	CurrencyCode   string     `json:"currency_code"`
	Deleted        bool       `json:"deleted"`
	LineItems      []lineItem `json:"line_items"`
}

// mapInvoice books a paid invoice: one invoice_paid per line item (what the
// customer paid for it: amount − discounts, + tax when prices exclude tax),
// and one "/adjustments" event for what the invoice total does not explain by
// its lines (round-off) less what was never collected (adjustment credit
// notes, write-offs). Any other state voids those ids, so an invoice that
// stops being paid (a payment reversal re-opens it) stops counting.
func mapInvoice(raw json.RawMessage) ([]event.Event, error) {
	var inv invoice
	if err := json.Unmarshal(raw, &inv); err != nil {
		return nil, fmt.Errorf("invoice: %w", err)
	}
	if inv.ID == "" {
		return nil, errors.New("invoice: id is missing")
	}
	name := "invoice " + inv.ID
	cur, err := currency(inv.CurrencyCode)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	version, err := versionOf(inv.UpdatedAt)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	paid := inv.Status == "paid" && !inv.Deleted
	var at time.Time
	switch {
	case paid && inv.PaidAt != nil:
		at = unix(*inv.PaidAt)
	case inv.Date != nil:
		at = unix(*inv.Date)
	case paid:
		return nil, fmt.Errorf("%s: paid_at and date are missing", name)
	default:
		at = unix(0)
	}
	cust := customerRef(inv.CustomerID)
	base := func(id string) event.Event {
		return event.Event{
			SpecVersion: event.SpecVersion, ID: id, Source: ServiceType, Type: event.TypeRevenue,
			Time: at, DataContentType: "application/json",
			Data: event.Data{Customer: cust, Version: version, Currency: cur, InvoiceID: inv.ID},
		}
	}
	adjID := "invoice/" + inv.ID + "/adjustments"

	if !paid {
		// No money; void whatever an earlier, paid version of this invoice
		// emitted (harmless when it never was paid).
		zero := decimal.Zero
		evs := make([]event.Event, 0, len(inv.LineItems)+1)
		for _, li := range inv.LineItems {
			ev := base("invoice/" + inv.ID + "/" + li.ID)
			ev.Data.Kind, ev.Data.Amount, ev.Data.Void = event.KindInvoicePaid, &zero, true
			evs = append(evs, ev)
		}
		ev := base(adjID)
		ev.Data.Kind, ev.Data.Amount, ev.Data.Void = event.KindInvoicePaid, &zero, true
		return append(evs, ev), nil
	}

	if inv.Total == nil {
		return nil, fmt.Errorf("%s: total is missing", name)
	}
	var lines int64
	evs := make([]event.Event, 0, len(inv.LineItems)+1)
	for i, li := range inv.LineItems {
		if li.ID == "" || li.Amount == nil {
			return nil, fmt.Errorf("%s: line_items[%d]: id and amount are required", name, i)
		}
		net := *li.Amount - li.DiscountAmount
		if inv.PriceType != "tax_inclusive" {
			net += li.TaxAmount
		}
		lines += net
		ev := base("invoice/" + inv.ID + "/" + li.ID)
		amount := source.FromMinor(net, cur)
		ev.Data.Kind, ev.Data.Amount = signedKind(net, event.KindInvoicePaid), &amount
		if li.DateFrom != nil && li.DateTo != nil && *li.DateTo > *li.DateFrom {
			from, to := unix(*li.DateFrom), unix(*li.DateTo)
			ev.Data.PeriodStart, ev.Data.PeriodEnd = &from, &to
		}
		if strings.HasPrefix(li.EntityType, "plan") {
			ev.Data.Plan = li.EntityID
		}
		ev.Data.Attributes = attrs("line_item_id", li.ID, "entity_type", li.EntityType, "entity_id", li.EntityID,
			"subscription_id", first(li.SubscriptionID, inv.SubscriptionID))
		evs = append(evs, ev)
	}
	rest := *inv.Total - lines - inv.AmountAdjusted - inv.WriteOffAmount
	if rest != 0 {
		ev := base(adjID)
		amount := source.FromMinor(rest, cur)
		ev.Data.Kind, ev.Data.Amount = signedKind(rest, event.KindInvoicePaid), &amount
		ev.Data.Attributes = attrs("amount_adjusted", fmt.Sprint(inv.AmountAdjusted),
			"write_off_amount", fmt.Sprint(inv.WriteOffAmount), "subscription_id", inv.SubscriptionID)
		evs = append(evs, ev)
	}
	return evs, nil
}

type creditNote struct {
	ID                 string `json:"id"`
	CustomerID         string `json:"customer_id"`
	SubscriptionID     string `json:"subscription_id"`
	ReferenceInvoiceID string `json:"reference_invoice_id"`
	Type               string `json:"type"`
	Status             string `json:"status"`
	ReasonCode         string `json:"reason_code"`
	Date               *int64 `json:"date"`
	UpdatedAt          *int64 `json:"updated_at"`
	Total              *int64 `json:"total"`
	CurrencyCode       string `json:"currency_code"`
	Deleted            bool   `json:"deleted"`
}

// mapCreditNote books a refundable credit note as money given back, whether
// it was refunded in cash or allocated to later invoices (which are counted
// in full when paid). Adjustment credit notes only lower an unpaid invoice,
// which counts net of them (amount_adjusted), so they map to nothing.
func mapCreditNote(raw json.RawMessage) ([]event.Event, error) {
	var cn creditNote
	if err := json.Unmarshal(raw, &cn); err != nil {
		return nil, fmt.Errorf("credit_note: %w", err)
	}
	if cn.ID == "" {
		return nil, errors.New("credit_note: id is missing")
	}
	name := "credit_note " + cn.ID
	if cn.Type != "refundable" {
		return nil, nil
	}
	cur, err := currency(cn.CurrencyCode)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	version, err := versionOf(cn.UpdatedAt)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if cn.Date == nil || cn.Total == nil {
		return nil, fmt.Errorf("%s: date and total are required", name)
	}
	amount := source.FromMinor(-*cn.Total, cur)
	void := cn.Deleted || cn.Status == "voided"
	if void {
		amount = decimal.Zero
	}
	return []event.Event{{
		SpecVersion: event.SpecVersion, ID: "credit_note/" + cn.ID, Source: ServiceType, Type: event.TypeRevenue,
		Time: unix(*cn.Date), DataContentType: "application/json",
		Data: event.Data{
			Customer: customerRef(cn.CustomerID), Version: version, Void: void,
			Kind: event.KindCreditNote, Amount: &amount, Currency: cur, InvoiceID: cn.ReferenceInvoiceID,
			Attributes: attrs("status", cn.Status, "reason_code", cn.ReasonCode, "subscription_id", cn.SubscriptionID),
		},
	}}, nil
}

type subscription struct {
	ID                string `json:"id"`
	CustomerID        string `json:"customer_id"`
	Status            string `json:"status"`
	PlanID            string `json:"plan_id"` // product catalog 1.0
	CreatedAt         *int64 `json:"created_at"`
	StartedAt         *int64 `json:"started_at"`
	ActivatedAt       *int64 `json:"activated_at"`
	CancelledAt       *int64 `json:"cancelled_at"`
	UpdatedAt         *int64 `json:"updated_at"`
	CurrencyCode      string `json:"currency_code"`
	MRR               *int64 `json:"mrr"`
	BillingPeriod     *int64 `json:"billing_period"`
	BillingPeriodUnit string `json:"billing_period_unit"`
	Deleted           bool   `json:"deleted"`
	SubscriptionItems []struct {
		ItemPriceID string `json:"item_price_id"`
		ItemType    string `json:"item_type"`
	} `json:"subscription_items"`
}

// mapSubscription emits two identities per subscription, each carrying its
// latest state (version = updated_at): "<id>/started" once it has started and
// "<id>/canceled" while it is cancelled (voided when it is live again, so a
// reactivation removes the cancellation). No money moves here.
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
	plan := s.PlanID
	for _, it := range s.SubscriptionItems {
		if it.ItemType == "plan" {
			plan = it.ItemPriceID
			break
		}
	}
	a := attrs("subscription_id", s.ID, "status", s.Status, "billing_period_unit", s.BillingPeriodUnit)
	if s.BillingPeriod != nil {
		a["billing_period"] = fmt.Sprint(*s.BillingPeriod)
	}
	if s.MRR != nil && s.CurrencyCode != "" {
		a["mrr"] = source.FromMinor(*s.MRR, s.CurrencyCode).String()
		a["mrr_currency"] = strings.ToUpper(s.CurrencyCode)
	}
	mk := func(suffix, kind string, at time.Time) event.Event {
		return event.Event{
			SpecVersion: event.SpecVersion, ID: "subscription/" + s.ID + "/" + suffix, Source: ServiceType,
			Type: event.TypeRevenue, Time: at, DataContentType: "application/json",
			Data: event.Data{Customer: customerRef(s.CustomerID), Version: version, Kind: kind, Plan: plan, Attributes: a},
		}
	}
	var evs []event.Event
	if started := firstTime(s.StartedAt, s.ActivatedAt); started != nil {
		ev := mk("started", event.KindSubscriptionStarted, *started)
		ev.Data.Void = s.Deleted
		evs = append(evs, ev)
	}
	switch {
	case s.Status == "cancelled" || s.Deleted:
		at := firstTime(s.CancelledAt, s.UpdatedAt)
		if at == nil {
			return nil, fmt.Errorf("%s: cancelled_at is missing", name)
		}
		ev := mk("canceled", event.KindSubscriptionCanceled, *at)
		ev.Data.Void = s.Deleted
		evs = append(evs, ev)
	case s.Status != "future":
		at := firstTime(s.UpdatedAt, s.CreatedAt)
		if at == nil {
			return nil, fmt.Errorf("%s: updated_at is missing", name)
		}
		ev := mk("canceled", event.KindSubscriptionCanceled, *at)
		ev.Data.Void = true
		evs = append(evs, ev)
	}
	return evs, nil
}

type customer struct {
	ID                    string `json:"id"`
	FirstName             string `json:"first_name"`
	LastName              string `json:"last_name"`
	Email                 string `json:"email"`
	Company               string `json:"company"`
	CreatedAt             *int64 `json:"created_at"`
	UpdatedAt             *int64 `json:"updated_at"`
	PreferredCurrencyCode string `json:"preferred_currency_code"`
	Deleted               bool   `json:"deleted"`
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
	at := firstTime(c.CreatedAt, c.UpdatedAt)
	if at == nil {
		return nil, fmt.Errorf("%s: created_at is missing", name)
	}
	ref := event.Customer{Source: ServiceType, ExternalID: c.ID, Name: strings.TrimSpace(c.FirstName + " " + c.LastName)}
	if ref.Name == "" {
		ref.Name = c.Company
	}
	if strings.Contains(c.Email, "@") {
		ref.Email = c.Email
	}
	return []event.Event{{
		SpecVersion: event.SpecVersion, ID: "customer/" + c.ID, Source: ServiceType, Type: event.TypeCustomer,
		Time: *at, DataContentType: "application/json",
		Data: event.Data{
			Customer: ref, Version: version, Void: c.Deleted,
			Metadata: attrs("company", c.Company, "preferred_currency", c.PreferredCurrencyCode),
		},
	}}, nil
}

// customerRef is the reference revenue is booked to; records without a
// customer go to source.UnmappedCustomer rather than being dropped.
func customerRef(id string) event.Customer {
	if id == "" {
		id = source.UnmappedCustomer
	}
	return event.Customer{Source: ServiceType, ExternalID: id}
}

// versionOf uses updated_at (seconds) as the revision: Chargebee bumps it on
// every change, and it fits data.version's uint32 until 2106. Two changes
// within one second share a version; the first one read is kept.
func versionOf(updatedAt *int64) (uint32, error) {
	if updatedAt == nil {
		return 1, nil
	}
	if *updatedAt < 1 || *updatedAt > math.MaxUint32 {
		return 0, fmt.Errorf("updated_at %d is not a usable revision", *updatedAt)
	}
	return uint32(*updatedAt), nil
}

func currency(code string) (string, error) {
	c := strings.ToUpper(code)
	if len(c) != 3 {
		return "", fmt.Errorf("currency_code %q is not an ISO 4217 code", code)
	}
	return c, nil
}

// signedKind keeps the contract's signs: a negative line (a credit on the
// invoice) is booked as a credit_note rather than a negative invoice_paid.
func signedKind(minor int64, positive string) string {
	if minor < 0 {
		return event.KindCreditNote
	}
	return positive
}

func unix(s int64) time.Time { return time.Unix(s, 0).UTC() }

func firstTime(ts ...*int64) *time.Time {
	for _, t := range ts {
		if t != nil && *t > 0 {
			u := unix(*t)
			return &u
		}
	}
	return nil
}

func first(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// attrs builds a string map from key/value pairs, leaving out empty values.
func attrs(kv ...string) map[string]string {
	m := make(map[string]string, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			m[kv[i]] = kv[i+1]
		}
	}
	return m
}

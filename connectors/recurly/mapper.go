// Package recurly reads Recurly (API v3) into uvr's v1 events: a Mapper over
// Recurly v3 objects (transactions, accounts, subscriptions; invoices, line
// items and credit payments map to nothing) and a native Source on
// https://v3.recurly.com.
//
// Recurly is counted on a cash basis, from transactions (the one record of
// money moving through the gateway): see docs/connectors/recurly.md for why
// invoices and credit payments would count the same money twice.
package recurly

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
const ServiceType = "recurly"

// Mapper maps Recurly v3 objects to v1 events. The zero value is ready to
// use and safe for concurrent use.
type Mapper struct{}

var _ source.Mapper = Mapper{}

// Map implements source.Mapper. Streams (plural or singular): transactions,
// accounts, subscriptions; invoices, line_items, credit_payments and any other
// stream map to nothing.
func (Mapper) Map(stream string, record json.RawMessage) ([]event.Event, error) {
	return streams.Map(stream, record)
}

// streams maps Recurly's streams. invoice, line_item: documents of what is
// owed, paid by transactions (counted) or credit payments (credit moving
// between invoices, no money); credit_payment: no money moves.
var streams = source.Streams{
	"transaction":  mapTransaction,
	"account":      mapAccount,
	"subscription": mapSubscription,
}

type accountMini struct {
	ID        string `json:"id"`
	Code      string `json:"code"`
	Email     string `json:"email"`
	FirstName string `json:"first_name"`
	LastName  string `json:"last_name"`
	Company   string `json:"company"`
}

type transaction struct {
	ID                    string          `json:"id"`
	Type                  string          `json:"type"`
	Status                string          `json:"status"`
	Origin                string          `json:"origin"`
	Amount                json.RawMessage `json:"amount"`
	Currency              string          `json:"currency"`
	Account               *accountMini    `json:"account"`
	Invoice               *struct{ ID, Number string }
	OriginalTransactionID string   `json:"original_transaction_id"`
	SubscriptionIDs       []string `json:"subscription_ids"`
	CreatedAt             string   `json:"created_at"`
	UpdatedAt             string   `json:"updated_at"`
	CollectedAt           string   `json:"collected_at"`
	VoidedAt              string   `json:"voided_at"`
}

// mapTransaction: a successful purchase or capture is a charge, a successful
// refund a refund; void removes an earlier success; a charged-back purchase
// keeps its charge and adds a dispute that takes it back. Declined, error,
// pending, processing and scheduled transactions, authorizations and
// verifications move no money.
func mapTransaction(raw json.RawMessage) ([]event.Event, error) {
	var t transaction
	if err := json.Unmarshal(raw, &t); err != nil {
		return nil, fmt.Errorf("transaction: %w", err)
	}
	if t.ID == "" {
		return nil, errors.New("transaction: id is missing")
	}
	name := "transaction " + t.ID
	var kind string
	switch t.Type {
	case "purchase", "capture":
		kind = event.KindCharge
	case "refund":
		kind = event.KindRefund
	default:
		return nil, nil // authorization, verify
	}
	switch t.Status {
	case "success", "void", "chargeback":
	default:
		return nil, nil
	}
	cur := strings.ToUpper(t.Currency)
	if len(cur) != 3 {
		return nil, fmt.Errorf("%s: currency %q is not an ISO 4217 code", name, t.Currency)
	}
	amount, err := decimalOf(t.Amount)
	if err != nil {
		return nil, fmt.Errorf("%s: amount: %w", name, err)
	}
	at, err := parseTime(first(t.CollectedAt, t.CreatedAt))
	if err != nil {
		return nil, fmt.Errorf("%s: collected_at/created_at: %w", name, err)
	}
	version, err := versionOf(t.UpdatedAt)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if kind == event.KindRefund {
		amount = amount.Abs().Neg()
	} else {
		amount = amount.Abs()
	}
	void := t.Status == "void"
	if void {
		amount = decimal.Zero
	}
	invoice := ""
	if t.Invoice != nil {
		invoice = first(t.Invoice.Number, t.Invoice.ID)
	}
	a := attrs("status", t.Status, "origin", t.Origin, "original_transaction_id", t.OriginalTransactionID)
	if len(t.SubscriptionIDs) > 0 {
		a["subscription_ids"] = strings.Join(t.SubscriptionIDs, ",")
	}
	cust := customerRef(t.Account)
	evs := []event.Event{{
		SpecVersion: event.SpecVersion, ID: "transaction/" + t.ID, Source: ServiceType, Type: event.TypeRevenue,
		Time: at, DataContentType: "application/json",
		Data: event.Data{Customer: cust, Version: version, Void: void, Kind: kind, Amount: &amount, Currency: cur,
			InvoiceID: invoice, Attributes: a},
	}}
	if t.Status == "chargeback" && kind == event.KindCharge {
		when, err := parseTime(first(t.UpdatedAt, t.CollectedAt, t.CreatedAt))
		if err != nil {
			return nil, fmt.Errorf("%s: updated_at: %w", name, err)
		}
		back := amount.Neg()
		evs = append(evs, event.Event{
			SpecVersion: event.SpecVersion, ID: "transaction/" + t.ID + "/chargeback", Source: ServiceType,
			Type: event.TypeRevenue, Time: when, DataContentType: "application/json",
			Data: event.Data{Customer: cust, Version: version, Kind: event.KindDispute, Amount: &back, Currency: cur,
				InvoiceID: invoice, Attributes: attrs("transaction_id", t.ID)},
		})
	}
	return evs, nil
}

type account struct {
	accountMini
	State     string `json:"state"`
	CreatedAt string `json:"created_at"`
	UpdatedAt string `json:"updated_at"`
	DeletedAt string `json:"deleted_at"`
}

func mapAccount(raw json.RawMessage) ([]event.Event, error) {
	var a account
	if err := json.Unmarshal(raw, &a); err != nil {
		return nil, fmt.Errorf("account: %w", err)
	}
	if a.ID == "" {
		return nil, errors.New("account: id is missing")
	}
	name := "account " + a.ID
	at, err := parseTime(a.CreatedAt)
	if err != nil {
		return nil, fmt.Errorf("%s: created_at: %w", name, err)
	}
	version, err := versionOf(a.UpdatedAt)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return []event.Event{{
		SpecVersion: event.SpecVersion, ID: "account/" + a.ID, Source: ServiceType, Type: event.TypeCustomer,
		Time: at, DataContentType: "application/json",
		Data: event.Data{Customer: customerRef(&a.accountMini), Version: version, Void: a.DeletedAt != "",
			Metadata: attrs("code", a.Code, "company", a.Company, "state", a.State)},
	}}, nil
}

type subscription struct {
	ID      string       `json:"id"`
	State   string       `json:"state"`
	Account *accountMini `json:"account"`
	Plan    *struct {
		ID   string `json:"id"`
		Code string `json:"code"`
	} `json:"plan"`
	Currency    string `json:"currency"`
	ActivatedAt string `json:"activated_at"`
	CanceledAt  string `json:"canceled_at"`
	ExpiresAt   string `json:"expires_at"`
	CreatedAt   string `json:"created_at"`
	UpdatedAt   string `json:"updated_at"`
}

// mapSubscription emits "<id>/started" once activated and "<id>/canceled"
// while canceled or expired (voided while live: a reactivation removes it).
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
	if s.Plan != nil {
		plan = first(s.Plan.Code, s.Plan.ID)
	}
	mk := func(suffix, kind, when string) (event.Event, error) {
		at, err := parseTime(when)
		if err != nil {
			return event.Event{}, fmt.Errorf("%s: %s time: %w", name, suffix, err)
		}
		return event.Event{
			SpecVersion: event.SpecVersion, ID: "subscription/" + s.ID + "/" + suffix, Source: ServiceType,
			Type: event.TypeRevenue, Time: at, DataContentType: "application/json",
			Data: event.Data{Customer: customerRef(s.Account), Version: version, Kind: kind, Plan: plan,
				Attributes: attrs("subscription_id", s.ID, "state", s.State)},
		}, nil
	}
	var evs []event.Event
	if s.ActivatedAt != "" {
		ev, err := mk("started", event.KindSubscriptionStarted, s.ActivatedAt)
		if err != nil {
			return nil, err
		}
		evs = append(evs, ev)
	}
	switch s.State {
	case "canceled", "expired":
		ev, err := mk("canceled", event.KindSubscriptionCanceled, first(s.CanceledAt, s.ExpiresAt, s.UpdatedAt))
		if err != nil {
			return nil, err
		}
		evs = append(evs, ev)
	case "future":
	default:
		ev, err := mk("canceled", event.KindSubscriptionCanceled, first(s.UpdatedAt, s.CreatedAt))
		if err != nil {
			return nil, err
		}
		ev.Data.Void = true
		evs = append(evs, ev)
	}
	return evs, nil
}

// customerRef books to the Recurly account id; no account ⇒ unmapped.
func customerRef(a *accountMini) event.Customer {
	if a == nil || a.ID == "" {
		return event.Customer{Source: ServiceType, ExternalID: source.UnmappedCustomer}
	}
	c := event.Customer{Source: ServiceType, ExternalID: a.ID,
		Name: first(strings.TrimSpace(a.FirstName+" "+a.LastName), a.Company)}
	if strings.Contains(a.Email, "@") {
		c.Email = a.Email
	}
	return c
}

// decimalOf reads a Recurly amount — a JSON number in major units (10.9) —
// from its text, never through a float64; a decimal string is accepted too.
func decimalOf(raw json.RawMessage) (decimal.Decimal, error) {
	s := strings.TrimSpace(string(raw))
	if s == "" || s == "null" {
		return decimal.Zero, errors.New("is missing")
	}
	if strings.HasPrefix(s, `"`) {
		if err := json.Unmarshal(raw, &s); err != nil {
			return decimal.Zero, err
		}
	}
	d, err := decimal.NewFromString(s)
	if err != nil {
		return decimal.Zero, fmt.Errorf("%q is not a decimal", s)
	}
	if !d.Equal(d.Truncate(event.MaxScale)) {
		return decimal.Zero, fmt.Errorf("%s has more than %d decimal places", s, event.MaxScale)
	}
	return d, nil
}

func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not an RFC 3339 time", s)
	}
	return t.UTC(), nil
}

// versionOf uses updated_at, in seconds, as the revision; absent means 1.
func versionOf(updatedAt string) (uint32, error) {
	if updatedAt == "" {
		return 1, nil
	}
	t, err := parseTime(updatedAt)
	if err != nil {
		return 0, fmt.Errorf("updated_at: %w", err)
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

// Package braintree reads Braintree into uvr's v1 events: a Mapper over
// Braintree's objects — the SDK/Airbyte form (transaction_stream,
// customer_stream, dispute_stream of airbyte source-braintree) and the
// GraphQL Payment nodes the native Source fetches — and a native Source on
// Braintree's GraphQL API.
//
// The counting rules are in docs/connectors/braintree.md: a captured sale is
// a charge, a captured credit (refund) is a refund, a chargeback is a
// dispute, each once, under one id whichever path it came through.
package braintree

import (
	"bytes"
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
const ServiceType = "braintree"

// Mapper maps Braintree records to v1 events. The zero value is ready to use
// and safe for concurrent use.
type Mapper struct{}

var _ source.Mapper = Mapper{}

// Map implements source.Mapper. Streams: transactions (Airbyte's
// transaction_stream, SDK field names), customers (customer_stream), disputes
// (dispute_stream: no events, see below) and payments (GraphQL Payment nodes,
// the native Source's stream). Other streams map to nothing.
func (Mapper) Map(stream string, record json.RawMessage) ([]event.Event, error) {
	return streams.Map(stream, record)
}

// streams maps Braintree's streams. dispute: every dispute is also embedded
// in its transaction's "disputes", which knows the customer; Airbyte's
// dispute records carry neither transaction nor customer, so the disputes are
// counted from the transaction and the dispute stream maps to nothing. Plans,
// discounts, merchant accounts move no money.
var streams = source.Streams{
	"transaction": mapTransaction,
	"payment":     mapPayment,
	"customer":    mapCustomer,
}

// Statuses (lower case, as the SDK spells them; GraphQL's are upper case).
var (
	// captured: the money is moving or moved.
	captured = map[string]bool{"submitted_for_settlement": true, "settling": true, "settlement_pending": true,
		"settled": true, "settlement_confirmed": true}
	// undone: a state that can follow a captured one without money moving.
	undone = map[string]bool{"voided": true, "settlement_declined": true}
)

type statusEvent struct {
	Status    string `json:"status"`
	Timestamp string `json:"timestamp"`
}

type dispute struct {
	ID             string          `json:"id"`
	Kind           string          `json:"kind"`
	Status         string          `json:"status"`
	AmountDisputed json.RawMessage `json:"amount_disputed"`
	AmountWon      json.RawMessage `json:"amount_won"`
	Currency       string          `json:"currency_iso_code"`
	CreatedAt      string          `json:"created_at"`
	UpdatedAt      string          `json:"updated_at"`
	Reason         string          `json:"reason"`
}

type transaction struct {
	ID                    string          `json:"id"`
	Type                  string          `json:"type"`
	Status                string          `json:"status"`
	Amount                json.RawMessage `json:"amount"`
	Currency              string          `json:"currency_iso_code"`
	CreatedAt             string          `json:"created_at"`
	UpdatedAt             string          `json:"updated_at"`
	OrderID               string          `json:"order_id"`
	PlanID                string          `json:"plan_id"`
	SubscriptionID        string          `json:"subscription_id"`
	RefundedTransactionID string          `json:"refunded_transaction_id"`
	MerchantAccountID     string          `json:"merchant_account_id"`
	StatusHistory         []statusEvent   `json:"status_history"`
	Disputes              []dispute       `json:"disputes"`
	CustomerDetails       struct {
		ID        *string `json:"id"`
		Email     string  `json:"email"`
		FirstName string  `json:"first_name"`
		LastName  string  `json:"last_name"`
		Company   string  `json:"company"`
	} `json:"customer_details"`
}

// money is what one Braintree payment (sale or refund) decides, whichever
// API it came from.
type money struct {
	id, typ, status string // typ: sale or credit; status lower case
	amount          json.RawMessage
	currency        string
	created, update string
	history         []statusEvent
	cust            event.Customer
	attrs           map[string]string
}

func mapTransaction(raw json.RawMessage) ([]event.Event, error) {
	var t transaction
	if err := json.Unmarshal(raw, &t); err != nil {
		return nil, fmt.Errorf("transaction: %w", err)
	}
	if t.ID == "" {
		return nil, errors.New("transaction: id is missing")
	}
	// A transaction without a vaulted customer (customer_details.id null)
	// is booked to unmapped, without the one-off details typed at checkout.
	cust := customerRef("", "", "", "", "")
	if cd := t.CustomerDetails; cd.ID != nil && *cd.ID != "" {
		cust = customerRef(*cd.ID, cd.Email, cd.FirstName, cd.LastName, cd.Company)
	}
	evs, err := mapMoney(money{
		id: t.ID, typ: t.Type, status: t.Status, amount: t.Amount, currency: t.Currency,
		created: t.CreatedAt, update: t.UpdatedAt, history: t.StatusHistory, cust: cust,
		attrs: attrs("order_id", t.OrderID, "plan_id", t.PlanID, "subscription_id", t.SubscriptionID,
			"refunded_transaction_id", t.RefundedTransactionID, "merchant_account_id", t.MerchantAccountID),
	})
	if err != nil {
		return nil, err
	}
	for _, d := range t.Disputes {
		ev, err := mapDispute(d, cust, t.ID)
		if err != nil {
			return nil, fmt.Errorf("transaction %s: %w", t.ID, err)
		}
		if ev != nil {
			evs = append(evs, *ev)
		}
	}
	return evs, nil
}

// payment is a GraphQL Payment node (a Transaction or a Refund) as the native
// Source queries it (see query in source.go).
type payment struct {
	Typename  string `json:"__typename"`
	LegacyID  string `json:"legacyId"`
	CreatedAt string `json:"createdAt"`
	OrderID   string `json:"orderId"`
	Status    string `json:"status"`
	Amount    *struct {
		Value        json.RawMessage `json:"value"`
		CurrencyCode string          `json:"currencyCode"`
	} `json:"amount"`
	StatusHistory       []statusEvent `json:"statusHistory"`
	MerchantAccountID   string        `json:"merchantAccountId"`
	Customer            *gqlCustomer  `json:"customer"`
	RefundedTransaction *struct {
		LegacyID string       `json:"legacyId"`
		Customer *gqlCustomer `json:"customer"`
	} `json:"refundedTransaction"`
}

type gqlCustomer struct {
	LegacyID  string `json:"legacyId"`
	Email     string `json:"email"`
	FirstName string `json:"firstName"`
	LastName  string `json:"lastName"`
	Company   string `json:"company"`
}

func mapPayment(raw json.RawMessage) ([]event.Event, error) {
	var p payment
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, fmt.Errorf("payment: %w", err)
	}
	if p.LegacyID == "" {
		return nil, errors.New("payment: legacyId is missing")
	}
	m := money{id: p.LegacyID, status: strings.ToLower(p.Status), created: p.CreatedAt, history: p.StatusHistory,
		attrs: attrs("order_id", p.OrderID, "merchant_account_id", p.MerchantAccountID)}
	switch p.Typename {
	case "Transaction":
		m.typ = "sale"
	case "Refund":
		m.typ = "credit"
		if p.RefundedTransaction != nil {
			m.attrs["refunded_transaction_id"] = p.RefundedTransaction.LegacyID
			if p.Customer == nil {
				p.Customer = p.RefundedTransaction.Customer
			}
		}
	default:
		return nil, fmt.Errorf("payment %s: unknown __typename %q", p.LegacyID, p.Typename)
	}
	if p.Amount != nil {
		m.amount, m.currency = p.Amount.Value, p.Amount.CurrencyCode
	}
	m.cust = customerRef("", "", "", "", "")
	if c := p.Customer; c != nil {
		m.cust = customerRef(c.LegacyID, c.Email, c.FirstName, c.LastName, c.Company)
	}
	return mapMoney(m)
}

// mapMoney applies the status rules to one sale or credit. The event id is
// "transaction/<legacy id>" from both APIs, so a payment read through Airbyte
// and natively counts once.
func mapMoney(m money) ([]event.Event, error) {
	name := "transaction " + m.id
	status := strings.ToLower(m.status)
	if !captured[status] && !undone[status] {
		// authorized, authorizing, authorization_expired, failed,
		// gateway_rejected, processor_declined: no money moved, and none
		// was counted before (only captured states are).
		return nil, nil
	}
	var kind string
	switch m.typ {
	case "sale":
		kind = event.KindCharge
	case "credit":
		kind = event.KindRefund
	default:
		return nil, fmt.Errorf("%s: unknown type %q", name, m.typ)
	}
	cur := strings.ToUpper(m.currency)
	if len(cur) != 3 {
		return nil, fmt.Errorf("%s: currency %q is not an ISO 4217 code", name, m.currency)
	}
	amount, err := decimalOf(m.amount)
	if err != nil {
		return nil, fmt.Errorf("%s: amount: %w", name, err)
	}
	created, err := parseTime(m.created)
	if err != nil {
		return nil, fmt.Errorf("%s: created_at: %w", name, err)
	}
	// The money moves when the payment is captured (submitted for
	// settlement), which is also when it was created for the usual
	// submit-on-sale; a later capture of an authorization moves the day.
	at := created
	var latest time.Time
	for _, h := range m.history {
		ts, err := parseTime(h.Timestamp)
		if err != nil {
			return nil, fmt.Errorf("%s: status_history: %w", name, err)
		}
		if strings.EqualFold(h.Status, "submitted_for_settlement") {
			at = ts
		}
		if ts.After(latest) {
			latest = ts
		}
	}
	if m.update != "" {
		if latest, err = parseTime(m.update); err != nil {
			return nil, fmt.Errorf("%s: updated_at: %w", name, err)
		}
	}
	version, err := versionOf(latest)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	void := undone[status]
	switch {
	case void:
		amount = decimal.Zero
	case kind == event.KindRefund:
		amount = amount.Abs().Neg()
	default:
		amount = amount.Abs()
	}
	m.attrs["status"] = status
	return []event.Event{{
		SpecVersion: event.SpecVersion, ID: "transaction/" + m.id, Source: ServiceType, Type: event.TypeRevenue,
		Time: at, DataContentType: "application/json",
		Data: event.Data{Customer: m.cust, Version: version, Void: void, Kind: kind, Amount: &amount, Currency: cur,
			Attributes: m.attrs},
	}}, nil
}

// mapDispute books a chargeback as money taken back when it was opened, less
// what was won back; retrievals (requests for information) and
// pre-arbitrations (a later stage of a chargeback already debited) move
// nothing of their own.
func mapDispute(d dispute, cust event.Customer, txID string) (*event.Event, error) {
	if d.ID == "" {
		return nil, errors.New("dispute: id is missing")
	}
	if !strings.EqualFold(d.Kind, "chargeback") {
		return nil, nil
	}
	name := "dispute " + d.ID
	cur := strings.ToUpper(d.Currency)
	if len(cur) != 3 {
		return nil, fmt.Errorf("%s: currency %q is not an ISO 4217 code", name, d.Currency)
	}
	disputed, err := decimalOf(d.AmountDisputed)
	if err != nil {
		return nil, fmt.Errorf("%s: amount_disputed: %w", name, err)
	}
	won := decimal.Zero
	if len(d.AmountWon) > 0 && !bytes.Equal(d.AmountWon, []byte("null")) {
		if won, err = decimalOf(d.AmountWon); err != nil {
			return nil, fmt.Errorf("%s: amount_won: %w", name, err)
		}
	}
	at, err := parseTime(d.CreatedAt)
	if err != nil {
		return nil, fmt.Errorf("%s: created_at: %w", name, err)
	}
	var version uint32 = 1
	if d.UpdatedAt != "" {
		u, err := parseTime(d.UpdatedAt)
		if err != nil {
			return nil, fmt.Errorf("%s: updated_at: %w", name, err)
		}
		if version, err = versionOf(u); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	amount := won.Sub(disputed)
	return &event.Event{
		SpecVersion: event.SpecVersion, ID: "dispute/" + d.ID, Source: ServiceType, Type: event.TypeRevenue,
		Time: at, DataContentType: "application/json",
		Data: event.Data{Customer: cust, Version: version, Kind: event.KindDispute, Amount: &amount, Currency: cur,
			Attributes: attrs("status", strings.ToLower(d.Status), "reason", d.Reason, "transaction_id", txID)},
	}, nil
}

type customer struct {
	ID        string `json:"id"`
	Email     string `json:"email"`
	FirstName string `json:"first_name"`
	LastName  string `json:"last_name"`
	Company   string `json:"company"`
	Website   string `json:"website"`
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
	at, err := parseTime(c.CreatedAt)
	if err != nil {
		return nil, fmt.Errorf("%s: created_at: %w", name, err)
	}
	var version uint32 = 1
	if c.UpdatedAt != "" {
		u, err := parseTime(c.UpdatedAt)
		if err != nil {
			return nil, fmt.Errorf("%s: updated_at: %w", name, err)
		}
		if version, err = versionOf(u); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	return []event.Event{{
		SpecVersion: event.SpecVersion, ID: "customer/" + c.ID, Source: ServiceType, Type: event.TypeCustomer,
		Time: at, DataContentType: "application/json",
		Data: event.Data{
			Customer: customerRef(c.ID, c.Email, c.FirstName, c.LastName, c.Company), Version: version,
			Metadata: attrs("company", c.Company, "website", c.Website),
		},
	}}, nil
}

func customerRef(id, email, firstName, lastName, company string) event.Customer {
	c := event.Customer{Source: ServiceType, ExternalID: first(id, source.UnmappedCustomer),
		Name: first(strings.TrimSpace(firstName+" "+lastName), company)}
	if strings.Contains(email, "@") {
		c.Email = email
	}
	return c
}

// decimalOf parses an amount given as a decimal string ("9.00", the SDK and
// GraphQL form) or a JSON number (666.0 in Airbyte's nested disputes), from
// its text, never through a float.
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
	return d, nil
}

// parseTime reads Braintree timestamps: RFC 3339 (GraphQL, disputes) or the
// SDK's zone-less form, which Braintree documents as UTC.
func parseTime(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a timestamp", s)
}

// versionOf is the revision: the last update, in seconds (it fits
// data.version's uint32 until 2106). Zero time means version 1.
func versionOf(t time.Time) (uint32, error) {
	if t.IsZero() {
		return 1, nil
	}
	s := t.Unix()
	if s < 1 || s > math.MaxUint32 {
		return 0, fmt.Errorf("update time %s is not a usable revision", t)
	}
	return uint32(s), nil
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

// Package event defines uvr's public ingest contract: version 1 of the
// canonical events, carried in a CloudEvents 1.0 JSON envelope.
//
// Three types exist: usage (something a customer consumed, with its cost),
// revenue (money a customer paid or got back) and customer (an identity
// observation). The identity of an event is (Source, ID); a later Data.Version
// of the same identity replaces the earlier one, Data.Void removes it, and an
// equal version is a duplicate that counts once.
//
// Money and quantities are shopspring decimals parsed from the wire text, so
// nothing is ever rounded through a float.
package event

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/shopspring/decimal"
)

// Event types of version 1.
const (
	TypeUsage    = "uvr.usage.v1"
	TypeRevenue  = "uvr.revenue.v1"
	TypeCustomer = "uvr.customer.v1"
)

// SpecVersion is the only CloudEvents version accepted.
const SpecVersion = "1.0"

// Revenue kinds. Refunds and credit notes carry negative amounts.
const (
	KindCharge               = "charge"
	KindInvoicePaid          = "invoice_paid"
	KindRefund               = "refund"
	KindCreditNote           = "credit_note"
	KindDispute              = "dispute"
	KindSubscriptionStarted  = "subscription_started"
	KindSubscriptionChanged  = "subscription_changed"
	KindSubscriptionCanceled = "subscription_canceled"
)

// RevenueKinds lists every accepted revenue kind, in documentation order.
var RevenueKinds = []string{
	KindCharge, KindInvoicePaid, KindRefund, KindCreditNote, KindDispute,
	KindSubscriptionStarted, KindSubscriptionChanged, KindSubscriptionCanceled,
}

// Limits of the exact representations the projections store: money is
// Decimal(18,9) per event and quantities Decimal(38,9) in ClickHouse. A value
// outside them is rejected at ingest rather than rounded later.
const (
	MaxScale = 9
	// MoneyDigits and QuantityDigits are the integer digits of Decimal(18,9)
	// and Decimal(38,9): the bounds ParseDecimal callers pass for money and
	// quantities.
	MoneyDigits    = 18 - MaxScale
	QuantityDigits = 38 - MaxScale
)

// Event is one validated v1 event. Construct it with Parse or ParseBatch (or
// fill it and call Validate); Marshal gives its canonical JSON.
type Event struct {
	SpecVersion     string    `json:"specversion"`
	ID              string    `json:"id"`
	Source          string    `json:"source"`
	Type            string    `json:"type"`
	Time            time.Time `json:"time"`
	Subject         string    `json:"subject,omitempty"`
	DataContentType string    `json:"datacontenttype,omitempty"`
	Data            Data      `json:"data"`
}

// Customer is a source's reference to a customer. Source defaults to the
// event's source when absent.
type Customer struct {
	Source     string `json:"source"`
	ExternalID string `json:"external_id"`
	Email      string `json:"email,omitempty"`
	Name       string `json:"name,omitempty"`
}

// Data is the payload of all three types; Validate checks which fields each
// type requires and allows.
type Data struct {
	Customer   Customer          `json:"customer"`
	Version    uint32            `json:"version"`
	Void       bool              `json:"void,omitempty"`
	Attributes map[string]string `json:"attributes,omitempty"`

	// uvr.usage.v1
	Feature   string           `json:"feature,omitempty"`
	Quantity  *decimal.Decimal `json:"quantity,omitempty"`
	Unit      string           `json:"unit,omitempty"`
	Cost      *decimal.Decimal `json:"cost,omitempty"`
	WindowEnd *time.Time       `json:"window_end,omitempty"`

	// uvr.usage.v1 (with cost) and uvr.revenue.v1
	Currency string `json:"currency,omitempty"`

	// uvr.revenue.v1
	Kind        string           `json:"kind,omitempty"`
	Amount      *decimal.Decimal `json:"amount,omitempty"`
	PeriodStart *time.Time       `json:"period_start,omitempty"`
	PeriodEnd   *time.Time       `json:"period_end,omitempty"`
	Plan        string           `json:"plan,omitempty"`
	InvoiceID   string           `json:"invoice_id,omitempty"`

	// uvr.customer.v1 (Plan is shared with revenue)
	Environment string            `json:"environment,omitempty"`
	Metadata    map[string]string `json:"metadata,omitempty"`
}

// PartitionKey is the Kafka key of the event: its customer reference, so that
// one customer's events stay in one partition and in order.
func (e Event) PartitionKey() string {
	return e.Data.Customer.Source + "/" + e.Data.Customer.ExternalID
}

// Marshal returns the canonical JSON of a validated event: decimals as
// strings, times in UTC RFC 3339 with nanoseconds when present.
func (e Event) Marshal() ([]byte, error) {
	e.Time = e.Time.UTC()
	return json.Marshal(e)
}

// MarshalBatch returns the events as a JSON array, the body of a batched
// POST /api/events (application/cloudevents-batch+json).
func MarshalBatch(events []Event) ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte('[')
	for i, ev := range events {
		if i > 0 {
			buf.WriteByte(',')
		}
		b, err := ev.Marshal()
		if err != nil {
			return nil, fmt.Errorf("marshal event %d (%s/%s): %w", i, ev.Source, ev.ID, err)
		}
		buf.Write(b)
	}
	buf.WriteByte(']')
	return buf.Bytes(), nil
}

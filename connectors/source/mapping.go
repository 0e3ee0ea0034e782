package source

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/shopspring/decimal"

	"github.com/uvrhq/uvr/pipeline/event"
)

// Mapper turns one record of a source stream into v1 events. The record is
// the service's API object as JSON — the form a native connector fetches and
// the form Airbyte RECORD messages carry — so the native connector and the
// Airbyte import of a service share one Mapper and one set of rules.
//
// A record that moves no money and describes no customer (a draft invoice, a
// failed charge) returns no events and a nil error. A malformed record
// returns an error naming the field at fault; the caller skips it by name.
// Event ids must be deterministic in the record (the object id), so that the
// same record read twice, or through two streams, counts once.
type Mapper interface {
	Map(stream string, record json.RawMessage) ([]event.Event, error)
}

// UnmappedCustomer is the external id of the customer that revenue or usage
// with no customer reference is booked to: kept and listed, never dropped.
const UnmappedCustomer = "unmapped"

// minorUnitExponent lists the ISO 4217 currencies whose minor unit is not
// 1/100 (the rest have two decimals). Stripe, Chargebee, Paddle and Recurly
// send integer amounts in minor units.
var minorUnitExponent = map[string]int32{
	// zero-decimal
	"BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0, "PYG": 0,
	"RWF": 0, "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0,
	// three-decimal
	"BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
}

// MinorUnits is the number of decimals of currency's minor unit (2 unless
// listed otherwise). currency is case-insensitive.
func MinorUnits(currency string) int32 {
	if e, ok := minorUnitExponent[strings.ToUpper(currency)]; ok {
		return e
	}
	return 2
}

// FromMinor converts an integer amount in currency's minor units (e.g.
// Stripe's 4900 USD cents) to the exact decimal in major units (49.00).
func FromMinor(amount int64, currency string) decimal.Decimal {
	return decimal.New(amount, -MinorUnits(currency))
}

// ValidateEvents checks a mapper's output against the event contract, so a
// record that would make an invalid event fails by name here rather than
// failing a whole batch downstream.
func ValidateEvents(stream string, evs []event.Event) error {
	for i := range evs {
		if err := evs[i].Validate(); err != nil {
			return fmt.Errorf("%s %s: %w", stream, evs[i].ID, err)
		}
	}
	return nil
}

// RequireCredentials names every one of fields missing from creds.
func RequireCredentials(service string, creds map[string]string, fields ...string) error {
	var missing []error
	for _, k := range fields {
		if strings.TrimSpace(creds[k]) == "" {
			missing = append(missing, fmt.Errorf("%s: credential %q is required", service, k))
		}
	}
	return errors.Join(missing...)
}

// Streams is a Mapper built from one record mapper per stream. A stream's
// name matches its key singular or plural ("invoice" and "invoices", and
// Airbyte's "<name>_stream" variants); a stream not in the table moves no
// money and maps to nothing. Every event is checked against the contract.
type Streams map[string]func(record json.RawMessage) ([]event.Event, error)

// Map implements Mapper.
func (s Streams) Map(stream string, record json.RawMessage) ([]event.Event, error) {
	name := strings.TrimSuffix(strings.TrimSuffix(stream, "_stream"), "s")
	mapRecord, ok := s[name]
	if !ok {
		return nil, nil
	}
	evs, err := mapRecord(record)
	if err != nil {
		return nil, err
	}
	if err := ValidateEvents(stream, evs); err != nil {
		return nil, err
	}
	return evs, nil
}

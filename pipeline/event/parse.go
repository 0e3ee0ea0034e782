package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/shopspring/decimal"
)

// Problem is one reason an event is invalid. Index is the position in a batch
// (-1 for a single event); Field is a dotted path such as "data.quantity".
type Problem struct {
	Index  int    `json:"index"`
	Field  string `json:"field"`
	Reason string `json:"reason"`
}

func (p Problem) String() string {
	if p.Index >= 0 {
		return fmt.Sprintf("[%d] %s: %s", p.Index, p.Field, p.Reason)
	}
	return p.Field + ": " + p.Reason
}

// ValidationError lists every problem found, not just the first, so a client
// can fix a whole batch in one round trip.
type ValidationError struct {
	Problems []Problem
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.String()
	}
	return "invalid event: " + strings.Join(parts, "; ")
}

// TooLargeError reports a batch with more events than allowed.
type TooLargeError struct {
	Count, Max int
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("batch has %d events, more than the maximum of %d", e.Count, e.Max)
}

// Parse decodes and validates one event coming in (ingest, a connector's
// output). The error is a *ValidationError naming every problem.
func Parse(b []byte) (Event, error) {
	return parseOne(b, time.Now())
}

// Decode reads an event already accepted, from the log: the rules of Parse
// but the upper end of the time window, which moves with the clock. An
// event accepted by the API's clock is never refused by a consumer whose
// clock runs behind, and a replay years later reads what was accepted.
func Decode(b []byte) (Event, error) {
	return parseOne(b, time.Time{})
}

func parseOne(b []byte, now time.Time) (Event, error) {
	p := parser{index: -1, now: now}
	ev := p.event(b)
	if len(p.problems) > 0 {
		return Event{}, &ValidationError{Problems: p.problems}
	}
	return ev, nil
}

// ParseBatch decodes and validates a JSON array of events: all or nothing.
// max <= 0 means no limit. Errors: *TooLargeError, *ValidationError.
func ParseBatch(b []byte, max int) ([]Event, error) {
	var raws []json.RawMessage
	if err := json.Unmarshal(b, &raws); err != nil {
		return nil, &ValidationError{Problems: []Problem{{Index: -1, Field: "(body)", Reason: "must be a JSON array of events: " + jsonReason(err)}}}
	}
	if len(raws) == 0 {
		return nil, &ValidationError{Problems: []Problem{{Index: -1, Field: "(body)", Reason: "batch is empty"}}}
	}
	if max > 0 && len(raws) > max {
		return nil, &TooLargeError{Count: len(raws), Max: max}
	}
	events := make([]Event, len(raws))
	p := parser{now: time.Now()}
	for i, raw := range raws {
		p.index = i
		events[i] = p.event(raw)
	}
	if len(p.problems) > 0 {
		return nil, &ValidationError{Problems: p.problems}
	}
	return events, nil
}

// Validate checks an event built in code (a connector's output) against the
// same rules as Parse, by round-tripping it through the wire form.
func (e Event) Validate() error {
	b, err := e.Marshal()
	if err != nil {
		return fmt.Errorf("marshal event: %w", err)
	}
	_, err = Parse(b)
	return err
}

type parser struct {
	index    int
	problems []Problem
	now      time.Time // the time window ends a year after now; zero: no upper end (Decode)
}

func (p *parser) add(field, reason string, args ...any) {
	if len(args) > 0 {
		reason = fmt.Sprintf(reason, args...)
	}
	p.problems = append(p.problems, Problem{Index: p.index, Field: field, Reason: reason})
}

// envelopeFields are the CloudEvents context attributes we read; other
// lowercase alphanumeric names are CloudEvents extensions and are ignored.
var envelopeFields = []string{"specversion", "id", "source", "type", "time", "subject", "datacontenttype", "dataschema", "data"}

var extensionName = regexp.MustCompile(`^[a-z0-9]{1,20}$`)

var currencyCode = regexp.MustCompile(`^[A-Z]{3}$`)

func (p *parser) event(b []byte) Event {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(b, &obj); err != nil || obj == nil {
		reason := "must be a JSON object"
		if err != nil {
			reason += ": " + jsonReason(err)
		}
		p.add("(event)", reason)
		return Event{}
	}
	for _, k := range sortedKeys(obj) {
		switch {
		case k == "":
			// A 400 must name its field: an empty name is shown quoted.
			p.add(`""`, "an attribute name must not be empty")
		case !slices.Contains(envelopeFields, k) && !extensionName.MatchString(k):
			p.add(k, "unknown attribute (CloudEvents extension names are 1-20 lowercase letters or digits)")
		}
	}

	var ev Event
	ev.SpecVersion = p.requiredString(obj, "specversion", "specversion")
	if ev.SpecVersion != "" && ev.SpecVersion != SpecVersion {
		p.add("specversion", "must be %q, got %q", SpecVersion, ev.SpecVersion)
	}
	ev.ID = p.requiredString(obj, "id", "id")
	ev.Source = p.requiredString(obj, "source", "source")
	ev.Type = p.requiredString(obj, "type", "type")
	ev.Subject = p.optionalString(obj, "subject", "subject")
	ev.DataContentType = p.optionalString(obj, "datacontenttype", "datacontenttype")
	if ev.DataContentType != "" && !strings.HasPrefix(ev.DataContentType, "application/json") {
		p.add("datacontenttype", "must be application/json when given, got %q", ev.DataContentType)
	}
	if raw, ok := obj["time"]; !ok || isNull(raw) {
		p.add("time", "is required (RFC 3339); it decides the event's day")
	} else if t := p.optionalTime(obj, "time", "time", maxAhead); t != nil {
		ev.Time = *t
	}

	switch ev.Type {
	case "", TypeUsage, TypeRevenue, TypeCustomer:
	default:
		p.add("type", "unknown event type %q (want %s, %s or %s)", ev.Type, TypeUsage, TypeRevenue, TypeCustomer)
		return ev
	}

	rawData, ok := obj["data"]
	if !ok || isNull(rawData) {
		p.add("data", "is required")
		return ev
	}
	var data map[string]json.RawMessage
	if err := json.Unmarshal(rawData, &data); err != nil || data == nil {
		p.add("data", "must be a JSON object")
		return ev
	}
	ev.Data = p.data(ev, data)
	return ev
}

// dataFields lists the data fields each type accepts.
var dataFields = map[string][]string{
	TypeUsage:    {"customer", "version", "void", "attributes", "feature", "quantity", "unit", "cost", "currency", "window_end"},
	TypeRevenue:  {"customer", "version", "void", "attributes", "kind", "amount", "currency", "period_start", "period_end", "plan", "invoice_id"},
	TypeCustomer: {"customer", "version", "void", "attributes", "plan", "environment", "metadata"},
}

func (p *parser) data(ev Event, obj map[string]json.RawMessage) Data {
	var d Data
	if allowed, ok := dataFields[ev.Type]; ok {
		for _, k := range sortedKeys(obj) {
			if !slices.Contains(allowed, k) {
				p.add("data."+k, "unknown field for %s (put extra values in data.attributes)", ev.Type)
			}
		}
	}
	d.Customer = p.customer(obj, ev.Source)
	d.Version = 1
	if raw, ok := obj["version"]; ok && !isNull(raw) {
		var v json.Number
		if bytes.HasPrefix(bytes.TrimSpace(raw), []byte(`"`)) || json.Unmarshal(raw, &v) != nil {
			p.add("data.version", "must be a positive integer")
		} else if n, err := strconv.ParseUint(v.String(), 10, 32); err != nil || n == 0 {
			p.add("data.version", "must be a positive integer below 2^32, got %s", v)
		} else {
			d.Version = uint32(n)
		}
	}
	if raw, ok := obj["void"]; ok && !isNull(raw) {
		if err := json.Unmarshal(raw, &d.Void); err != nil {
			p.add("data.void", "must be true or false")
		}
	}
	d.Attributes = p.stringMap(obj, "attributes", "data.attributes")

	switch ev.Type {
	case TypeUsage:
		d.Feature = p.requiredString(obj, "feature", "data.feature")
		d.Unit = p.optionalString(obj, "unit", "data.unit")
		d.Quantity = p.decimal(obj, "quantity", "data.quantity", QuantityDigits, true)
		if d.Quantity != nil && d.Quantity.IsNegative() {
			p.add("data.quantity", "must not be negative (correct an event by sending it again with a higher data.version)")
		}
		d.Cost = p.decimal(obj, "cost", "data.cost", MoneyDigits, false)
		d.Currency = p.currency(obj, d.Cost != nil)
		d.WindowEnd = p.optionalTime(obj, "window_end", "data.window_end", maxAhead)
		if d.WindowEnd != nil && !ev.Time.IsZero() && d.WindowEnd.Before(ev.Time) {
			p.add("data.window_end", "must not be before time")
		}
	case TypeRevenue:
		d.Kind = p.requiredString(obj, "kind", "data.kind")
		if d.Kind != "" && !slices.Contains(RevenueKinds, d.Kind) {
			p.add("data.kind", "must be one of %s, got %q", strings.Join(RevenueKinds, ", "), d.Kind)
		}
		subscription := strings.HasPrefix(d.Kind, "subscription_")
		d.Amount = p.decimal(obj, "amount", "data.amount", MoneyDigits, !subscription)
		if d.Amount != nil {
			switch d.Kind {
			case KindRefund, KindCreditNote:
				if d.Amount.IsPositive() {
					p.add("data.amount", "must be negative or zero for a %s (it reduces revenue)", d.Kind)
				}
			case KindCharge, KindInvoicePaid:
				if d.Amount.IsNegative() {
					p.add("data.amount", "must not be negative for a %s (send money going back as a refund or credit_note)", d.Kind)
				}
			}
		}
		d.Currency = p.currency(obj, d.Amount != nil)
		d.PeriodStart = p.optionalTime(obj, "period_start", "data.period_start", maxAhead)
		d.PeriodEnd = p.optionalTime(obj, "period_end", "data.period_end", maxPeriodAhead)
		if (d.PeriodStart == nil) != (d.PeriodEnd == nil) {
			p.add("data.period_end", "period_start and period_end go together")
		} else if d.PeriodStart != nil && !d.PeriodEnd.After(*d.PeriodStart) {
			p.add("data.period_end", "must be after period_start")
		}
		d.Plan = p.optionalString(obj, "plan", "data.plan")
		d.InvoiceID = p.optionalString(obj, "invoice_id", "data.invoice_id")
	case TypeCustomer:
		d.Plan = p.optionalString(obj, "plan", "data.plan")
		d.Environment = p.optionalString(obj, "environment", "data.environment")
		d.Metadata = p.stringMap(obj, "metadata", "data.metadata")
	}
	return d
}

func (p *parser) customer(obj map[string]json.RawMessage, eventSource string) Customer {
	raw, ok := obj["customer"]
	if !ok || isNull(raw) {
		p.add("data.customer", "is required")
		return Customer{}
	}
	var c map[string]json.RawMessage
	if err := json.Unmarshal(raw, &c); err != nil || c == nil {
		p.add("data.customer", "must be a JSON object")
		return Customer{}
	}
	for _, k := range sortedKeys(c) {
		switch k {
		case "source", "external_id", "email", "name":
		default:
			p.add("data.customer."+k, "unknown field (want source, external_id, email, name)")
		}
	}
	cust := Customer{
		Source:     p.optionalString(c, "source", "data.customer.source"),
		ExternalID: p.requiredString(c, "external_id", "data.customer.external_id"),
		Email:      p.optionalString(c, "email", "data.customer.email"),
		Name:       p.optionalString(c, "name", "data.customer.name"),
	}
	if cust.Source == "" {
		cust.Source = eventSource
	}
	if cust.Email != "" && !strings.Contains(cust.Email, "@") {
		p.add("data.customer.email", "is not an email address")
	}
	return cust
}

func (p *parser) currency(obj map[string]json.RawMessage, required bool) string {
	c := p.optionalString(obj, "currency", "data.currency")
	switch {
	case c == "" && required:
		p.add("data.currency", "is required with a money amount (ISO 4217 code such as USD)")
	case c != "" && !currencyCode.MatchString(c):
		p.add("data.currency", "must be an ISO 4217 code of three capital letters, got %q", c)
	}
	return c
}

const maxStringLen = 512

func (p *parser) optionalString(obj map[string]json.RawMessage, key, field string) string {
	raw, ok := obj[key]
	if !ok || isNull(raw) {
		return ""
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		p.add(field, "must be a string")
		return ""
	}
	if len(s) > maxStringLen {
		p.add(field, "is longer than %d bytes", maxStringLen)
	}
	return s
}

func (p *parser) requiredString(obj map[string]json.RawMessage, key, field string) string {
	if raw, ok := obj[key]; !ok || isNull(raw) {
		p.add(field, "is required")
		return ""
	}
	s := p.optionalString(obj, key, field)
	if s == "" {
		if raw := obj[key]; bytes.HasPrefix(bytes.TrimSpace(raw), []byte(`"`)) {
			p.add(field, "must not be empty")
		}
	}
	return s
}

func (p *parser) optionalTime(obj map[string]json.RawMessage, key, field string, ahead time.Duration) *time.Time {
	raw, ok := obj[key]
	if !ok || isNull(raw) {
		return nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		p.add(field, "must be an RFC 3339 timestamp string")
		return nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		p.add(field, "must be an RFC 3339 timestamp such as 2026-11-01T10:00:00Z, got %q", s)
		return nil
	}
	if err := checkTime(t, p.now, ahead); err != nil {
		p.add(field, "%v", err)
		return nil
	}
	t = t.UTC()
	return &t
}

// minTime and maxAhead bound every timestamp of an event (time,
// data.window_end, data.period_start): from the Unix epoch to one year after
// now. Storage holds more (ClickHouse's DateTime ends in 2106), but an event
// that far out is a unit or format mistake (milliseconds read as seconds, a
// placeholder date) that would otherwise be accepted and then sit in the
// future of every report. data.period_end may reach maxPeriodAhead: a
// multi-year contract paid today ends years from now.
var minTime = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)

const (
	maxAhead       = 366 * 24 * time.Hour
	maxPeriodAhead = 10 * 366 * 24 * time.Hour
)

// checkTime reports a timestamp outside [minTime, now+ahead], naming the
// value and the range; nil when it is inside. A zero now checks minTime
// only (Decode).
func checkTime(t, now time.Time, ahead time.Duration) error {
	if now.IsZero() {
		if t.Before(minTime) {
			return fmt.Errorf("%s is before %s", t.UTC().Format(time.RFC3339Nano), minTime.Format(time.RFC3339))
		}
		return nil
	}
	maxT := now.Add(ahead).UTC().Truncate(time.Second)
	if t.Before(minTime) || t.After(maxT) {
		return fmt.Errorf("%s is outside the accepted range %s to %s (the Unix epoch to %s from now)",
			t.UTC().Format(time.RFC3339Nano), minTime.Format(time.RFC3339), maxT.Format(time.RFC3339), aheadText(ahead))
	}
	return nil
}

func aheadText(ahead time.Duration) string {
	if years := int(ahead / (366 * 24 * time.Hour)); years > 1 {
		return fmt.Sprintf("%d years", years)
	}
	return "one year"
}

// decimal reads a decimal given as a JSON string or number, keeping its exact
// text (a JSON number is never converted through float64).
func (p *parser) decimal(obj map[string]json.RawMessage, key, field string, intDigits int, required bool) *decimal.Decimal {
	raw, ok := obj[key]
	if !ok || isNull(raw) {
		if required {
			p.add(field, "is required")
		}
		return nil
	}
	var text string
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) > 0 && trimmed[0] == '"' {
		if err := json.Unmarshal(trimmed, &text); err != nil {
			p.add(field, "must be a decimal string or number")
			return nil
		}
	} else {
		var n json.Number
		dec := json.NewDecoder(bytes.NewReader(trimmed))
		dec.UseNumber()
		if err := dec.Decode(&n); err != nil {
			p.add(field, "must be a decimal string or number")
			return nil
		}
		text = n.String()
	}
	d, err := ParseDecimal(text, intDigits, MaxScale)
	if err != nil {
		p.add(field, "%v", err)
		return nil
	}
	return &d
}

func (p *parser) stringMap(obj map[string]json.RawMessage, key, field string) map[string]string {
	raw, ok := obj[key]
	if !ok || isNull(raw) {
		return nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		p.add(field, "must be a JSON object")
		return nil
	}
	out := make(map[string]string, len(m))
	for _, k := range sortedKeys(m) {
		v := bytes.TrimSpace(m[k])
		switch {
		case isNull(v):
			continue
		case len(v) > 0 && v[0] == '"':
			var s string
			_ = json.Unmarshal(v, &s)
			out[k] = s
		case len(v) > 0 && (v[0] == '{' || v[0] == '['):
			p.add(field+"."+k, "must be a string, number or boolean")
		default:
			// Numbers and booleans keep their JSON text exactly.
			out[k] = string(v)
		}
	}
	return out
}

func isNull(raw json.RawMessage) bool {
	return bytes.Equal(bytes.TrimSpace(raw), []byte("null"))
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// jsonReason turns encoding/json's errors into a short reason with a position.
func jsonReason(err error) string {
	var syntax *json.SyntaxError
	if errors.As(err, &syntax) {
		return fmt.Sprintf("malformed JSON at byte %d: %s", syntax.Offset, syntax.Error())
	}
	var typ *json.UnmarshalTypeError
	if errors.As(err, &typ) {
		return fmt.Sprintf("got a JSON %s", typ.Value)
	}
	return err.Error()
}

package mapping

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/shopspring/decimal"
	"github.com/tidwall/gjson"

	"github.com/uvrhq/uvr/connectors/source"
	"github.com/uvrhq/uvr/pipeline/event"
)

// Map turns one record of stream into the events of every rule whose filter
// matches it. An unknown stream, or a record no rule matches, gives no events
// and nil. A record that breaks a rule (a missing required path, a value that
// is not a number, an event that fails validation) gives an error naming the
// rule and field, and no events: the caller skips the whole record.
func (m *Mapping) Map(stream string, record json.RawMessage) ([]event.Event, error) {
	rules := m.rules[stream]
	if len(rules) == 0 {
		return nil, nil
	}
	if !gjson.ValidBytes(record) || !gjson.ParseBytes(record).IsObject() {
		return nil, fmt.Errorf("stream %s: record is not a JSON object", stream)
	}
	var out []event.Event
	for _, r := range rules {
		if !r.matches(record) {
			continue
		}
		ev, err := m.build(r, record)
		if err != nil {
			return nil, err
		}
		if err := ev.Validate(); err != nil {
			return nil, fmt.Errorf("%s: event %s: %w", r.where, ev.ID, err)
		}
		out = append(out, ev)
	}
	return out, nil
}

// value is a compiled Value.
type value struct {
	v   Value
	mul *decimal.Decimal
	div *decimal.Decimal
}

// fieldError names the rule's field at fault.
type fieldError struct {
	where string
	err   error
}

func (e *fieldError) Error() string { return e.where + ": " + e.err.Error() }
func (e *fieldError) Unwrap() error { return e.err }

var errMissing = errors.New("missing")

func (m *Mapping) build(r *rule, rec []byte) (event.Event, error) {
	ev := event.Event{SpecVersion: event.SpecVersion, Source: r.source, Type: r.eventTyp}
	var err error
	// fail records the first error of a field, prefixed with its location.
	fail := func(field string, e error) {
		if err == nil && e != nil {
			err = &fieldError{where: r.where + "." + field, err: e}
		}
	}
	str := func(field string, v *value, required bool) string {
		if v == nil {
			return ""
		}
		s, ok, e := m.text(v, rec)
		if e == nil && !ok && required {
			e = missing(v)
		}
		fail(field, e)
		return s
	}
	tim := func(field string, v *value, required bool) *time.Time {
		s := str(field, v, required)
		if v == nil || s == "" {
			return nil
		}
		t, e := parseTime(v.v, s)
		fail(field, e)
		if e != nil {
			return nil
		}
		return &t
	}
	dec := func(field string, v *value, currency string, required bool) *decimal.Decimal {
		s := str(field, v, required)
		if v == nil || s == "" {
			return nil
		}
		d, e := v.decimal(s, currency)
		fail(field, e)
		if e != nil {
			return nil
		}
		return &d
	}

	ev.ID = str("id", r.id, true)
	if t := tim("time", r.time, true); t != nil {
		ev.Time = *t
	}
	d := &ev.Data
	d.Customer = event.Customer{
		Source:     str("customer.source", r.custSrc, false),
		ExternalID: str("customer.external_id", r.custID, true),
		Email:      str("customer.email", r.email, false),
		Name:       str("customer.name", r.name, false),
	}
	if d.Customer.Source == "" {
		d.Customer.Source = ev.Source
	}
	d.Version = 1
	if r.version != nil {
		if s := str("version", r.version, false); s != "" {
			n, e := parseVersion(r.version.v, s)
			fail("version", e)
			d.Version = n
		}
	}
	if r.void != nil {
		s := str("void", r.void, false)
		switch s {
		case "", "false":
		case "true":
			d.Void = true
		default:
			fail("void", fmt.Errorf("must be true or false, got %q", s))
		}
	}
	d.Attributes = m.strings(r.attrs, rec, "attributes", fail)

	f := r.fields
	// Currency is read first: minor units depend on it. It is required
	// only with a money value, and only travels with one.
	currency := strings.ToUpper(strings.TrimSpace(str("currency", f["currency"], false)))
	var money *decimal.Decimal
	switch r.r.Type {
	case TypeUsage:
		d.Feature = str("feature", f["feature"], true)
		d.Quantity = dec("quantity", f["quantity"], "", true)
		d.Unit = str("unit", f["unit"], false)
		d.Cost = dec("cost", f["cost"], currency, false)
		d.WindowEnd = tim("window_end", f["window_end"], false)
		money = d.Cost
	case TypeRevenue:
		d.Kind = str("kind", f["kind"], true)
		amountRequired := !strings.HasPrefix(d.Kind, "subscription_")
		d.Amount = dec("amount", f["amount"], currency, amountRequired)
		money = d.Amount
		d.PeriodStart = tim("period_start", f["period_start"], false)
		d.PeriodEnd = tim("period_end", f["period_end"], false)
		d.Plan = str("plan", f["plan"], false)
		d.InvoiceID = str("invoice_id", f["invoice_id"], false)
	case TypeCustomer:
		d.Plan = str("plan", f["plan"], false)
		d.Environment = str("environment", f["environment"], false)
		d.Metadata = m.strings(r.metadata, rec, "metadata", fail)
	}
	if money != nil {
		if currency == "" {
			fail("currency", missing(f["currency"]))
		}
		d.Currency = currency
	}
	return ev, err
}

func (m *Mapping) strings(vals map[string]*value, rec []byte, field string, fail func(string, error)) map[string]string {
	if len(vals) == 0 {
		return nil
	}
	out := make(map[string]string, len(vals))
	for _, k := range sortedKeys(vals) {
		s, ok, err := m.text(vals[k], rec)
		fail(field+"."+k, err)
		if ok && s != "" {
			out[k] = s
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

func missing(v *value) error {
	switch {
	case v == nil:
		return fmt.Errorf("is required")
	case v.v.Path != "":
		return fmt.Errorf("path %q is %w or null in the record (set default to supply one)", v.v.Path, errMissing)
	default:
		return fmt.Errorf("value is %w", errMissing)
	}
}

// text evaluates v against the record: its text and whether it is present
// (not missing, null or empty after the default).
func (m *Mapping) text(v *value, rec []byte) (string, bool, error) {
	var s string
	var ok bool
	switch {
	case v.v.Const != nil:
		s, ok = *v.v.Const, true
	case v.v.Path != "":
		var err error
		s, ok, err = scalar(gjson.GetBytes(rec, v.v.Path), v.v.Path)
		if err != nil {
			return "", false, err
		}
	case v.v.Template != "":
		var err error
		s = placeholder.ReplaceAllStringFunc(v.v.Template, func(ph string) string {
			path := placeholder.FindStringSubmatch(ph)[1]
			t, present, e := scalar(gjson.GetBytes(rec, path), path)
			if e == nil && (!present || t == "") {
				e = fmt.Errorf("template placeholder {{%s}} is %w or empty in the record", path, errMissing)
			}
			if err == nil {
				err = e
			}
			return t
		})
		if err != nil {
			return "", false, err
		}
		ok = true
	}
	if ok && s == "" {
		ok = false
	}
	if !ok && v.v.Default != nil {
		s, ok = *v.v.Default, *v.v.Default != ""
	}
	if ok && v.v.Lookup != "" {
		mapped, found := m.file.Lookups[v.v.Lookup][s]
		if !found {
			return "", false, fmt.Errorf("value %q is not in lookup %q", s, v.v.Lookup)
		}
		s = mapped
	}
	return s, ok, nil
}

// scalar is the text of a JSON scalar: a string's content, a number's or a
// boolean's literal (never through a float). Missing and null are absent.
func scalar(r gjson.Result, path string) (string, bool, error) {
	switch r.Type {
	case gjson.Null:
		return "", false, nil
	case gjson.String:
		return r.Str, true, nil
	case gjson.Number, gjson.True, gjson.False:
		return r.Raw, true, nil
	default:
		return "", false, fmt.Errorf("path %q is a JSON object or array, not a value", path)
	}
}

// decimal parses the text exactly and applies the unit, factor, sign and
// rounding rules, in that order.
func (v *value) decimal(s, currency string) (decimal.Decimal, error) {
	// Bounded on the text (event.ParseDecimal): a record's 1e-30000000 is
	// refused before the arithmetic below builds millions of digits. The
	// bounds leave room for minor units, multiply and divide; the event's
	// own bounds apply after them.
	d, err := event.ParseDecimal(s, event.QuantityDigits+event.MaxScale, 2*event.MaxScale)
	if err != nil {
		return d, fmt.Errorf("%q is not a decimal number: %w", s, err)
	}
	if v.v.Units == UnitsMinor {
		if !d.IsInteger() {
			return d, fmt.Errorf("%s is not an integer amount of minor units", s)
		}
		d = d.Shift(-source.MinorUnits(currency))
	}
	if v.mul != nil {
		d = d.Mul(*v.mul)
	}
	if v.div != nil {
		scale := int32(event.MaxScale)
		if v.v.Round != nil {
			scale = *v.v.Round
		}
		q, r := d.QuoRem(*v.div, scale)
		if !r.IsZero() {
			if v.v.Round == nil {
				return d, fmt.Errorf("%s / %s has more than %d decimals (set round to round it)", d, v.div, event.MaxScale)
			}
			q = roundHalfEven(q, r, *v.div, scale)
		}
		d = q
	}
	switch v.v.Sign {
	case SignNegate:
		d = d.Neg()
	case SignAbs:
		d = d.Abs()
	case SignNegative:
		d = d.Abs().Neg()
	}
	if v.v.Round != nil {
		d = d.RoundBank(*v.v.Round)
	}
	if !d.Equal(d.Truncate(event.MaxScale)) {
		return d, fmt.Errorf("%s has more than %d decimals (set round to round it)", d, event.MaxScale)
	}
	return d, nil
}

// roundHalfEven rounds the truncated quotient q (d = q·div + r, |r| <
// |div|·10^-scale) half to even, exactly.
func roundHalfEven(q, r, div decimal.Decimal, scale int32) decimal.Decimal {
	unit := decimal.New(1, -scale)
	twice := r.Abs().Mul(decimal.NewFromInt(2))
	step := div.Abs().Mul(unit)
	away := false
	switch twice.Cmp(step) {
	case 1:
		away = true
	case 0:
		away = !q.Shift(scale).Mod(decimal.NewFromInt(2)).IsZero()
	}
	if !away {
		return q
	}
	// The exact quotient's sign is r's sign times div's.
	if r.Sign()*div.Sign() < 0 {
		return q.Sub(unit)
	}
	return q.Add(unit)
}

func parseTime(v Value, s string) (time.Time, error) {
	var t time.Time
	var err error
	switch v.Format {
	case "", FormatRFC3339:
		t, err = time.Parse(time.RFC3339Nano, s)
	case FormatUnix, FormatUnixMS:
		d, e := event.ParseDecimal(s, 16, 9) // milliseconds until year 318857, nanoseconds
		if e != nil {
			return t, fmt.Errorf("%q is not a %s timestamp: %w", s, v.Format, e)
		}
		if v.Format == FormatUnixMS {
			d = d.Shift(-3)
		}
		sec := d.Floor()
		t = time.Unix(sec.IntPart(), d.Sub(sec).Shift(9).IntPart()).UTC()
	case FormatDate:
		t, err = time.Parse(time.DateOnly, s)
	case FormatLayout:
		t, err = time.Parse(v.Layout, s)
	}
	if err != nil {
		return t, fmt.Errorf("%q is not a time in format %s", s, formatName(v))
	}
	if t.Year() < 1970 || t.Year() > 2999 {
		return t, fmt.Errorf("%q is outside the years 1970-2999 (wrong format? it is %s)", s, formatName(v))
	}
	return t.UTC(), nil
}

func formatName(v Value) string {
	switch v.Format {
	case "":
		return FormatRFC3339
	case FormatLayout:
		return "layout " + strconv.Quote(v.Layout)
	}
	return v.Format
}

// parseVersion reads a positive integer, or with a format a time whose unix
// seconds serve as a monotonic version (an updated_at).
func parseVersion(v Value, s string) (uint32, error) {
	if v.Format != "" {
		t, err := parseTime(v, s)
		if err != nil {
			return 1, err
		}
		if sec := t.Unix(); sec < 1 || sec > math.MaxUint32 {
			return 1, fmt.Errorf("%q as unix seconds does not fit a version (1 to 2^32-1)", s)
		}
		return uint32(t.Unix()), nil
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n == 0 {
		return 1, fmt.Errorf("%q is not a positive integer below 2^32", s)
	}
	return uint32(n), nil
}

// matches reports whether every filter holds for the record.
func (r *rule) matches(rec []byte) bool {
	for _, f := range r.filter {
		res := gjson.GetBytes(rec, f.Path)
		present := res.Exists() && res.Type != gjson.Null
		text := res.Raw
		if res.Type == gjson.String {
			text = res.Str
		}
		var ok bool
		switch {
		case f.Equals != nil:
			ok = present && text == *f.Equals
		case f.NotEquals != nil:
			ok = !present || text != *f.NotEquals
		case f.In != nil:
			ok = present && slices.Contains(f.In, text)
		case f.NotIn != nil:
			ok = !present || !slices.Contains(f.NotIn, text)
		case f.Exists != nil:
			ok = present == *f.Exists
		}
		if !ok {
			return false
		}
	}
	return true
}

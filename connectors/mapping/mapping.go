// Package mapping turns records of named streams (JSON objects: an API's
// objects, Airbyte RECORD data, a user's own API) into v1 events, following a
// declarative file instead of code.
//
// A file lists, per stream, one or more rules; each rule that matches a record
// (its filter) produces one event of its type (usage, revenue or customer).
// Every event field is a JSON path into the record (tidwall/gjson syntax), a
// constant or a template, with unit, sign, lookup and time-format modifiers.
// Money and quantities are read from the record's JSON text, never through a
// float. See docs/connectors/mapping.md for the format.
//
// A *Mapping is immutable after Load and safe for concurrent use; it
// implements source.Mapper.
package mapping

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/shopspring/decimal"
	"gopkg.in/yaml.v3"

	"github.com/uvrhq/uvr/connectors/source"
	"github.com/uvrhq/uvr/pipeline/event"
)

// FormatVersion is the only version of the file format.
const FormatVersion = 1

// Event types as written in a mapping file.
const (
	TypeUsage    = "usage"
	TypeRevenue  = "revenue"
	TypeCustomer = "customer"
)

var eventTypes = map[string]string{
	TypeUsage:    event.TypeUsage,
	TypeRevenue:  event.TypeRevenue,
	TypeCustomer: event.TypeCustomer,
}

// Time formats of a Value read as a time.
const (
	FormatRFC3339 = "rfc3339" // 2026-11-01T10:00:00Z (the default)
	FormatUnix    = "unix"    // seconds since 1970, integer or decimal
	FormatUnixMS  = "unix_ms" // milliseconds since 1970
	FormatDate    = "date"    // 2026-11-01, midnight UTC
	FormatLayout  = "layout"  // a Go time layout given in layout; UTC unless it has a zone
)

// Sign rules of a decimal Value.
const (
	SignNegate   = "negate"   // -x
	SignAbs      = "abs"      // |x|
	SignNegative = "negative" // -|x|: refunds and credit notes whatever the source's sign
)

// Unit rules of a money Value.
const (
	UnitsMajor = "major" // the value is in major units already (the default)
	UnitsMinor = "minor" // an integer in the currency's minor units (cents): divided by 10^exponent
)

// File is the decoded mapping file.
type File struct {
	// Version of the format; must be 1.
	Version int `yaml:"version"`
	// Source is the CloudEvents source of the events (e.g. "faker",
	// "billing-api"); a rule may override it.
	Source string `yaml:"source"`
	// Lookups are named tables from a record's value to another value, e.g.
	// product id → price.
	Lookups map[string]map[string]string `yaml:"lookups"`
	// Streams maps a stream name to its rules, applied in order.
	Streams map[string][]Rule `yaml:"streams"`
}

// Rule turns one record of a stream into at most one event.
type Rule struct {
	Name   string   `yaml:"name"`   // names the rule in errors; defaults to its index
	Type   string   `yaml:"type"`   // usage, revenue or customer
	Source string   `yaml:"source"` // overrides File.Source
	Filter []Filter `yaml:"filter"` // all must hold; none means every record

	ID       Value            `yaml:"id"`   // deterministic in the record, e.g. template "{{id}}"
	Time     Value            `yaml:"time"` // with format
	Customer CustomerRef      `yaml:"customer"`
	Version  *Value           `yaml:"version"` // positive integer (or a time: its unix seconds); default 1
	Void     *Value           `yaml:"void"`    // true/false
	Attrs    map[string]Value `yaml:"attributes"`

	// usage
	Feature   *Value `yaml:"feature"`
	Quantity  *Value `yaml:"quantity"`
	Unit      *Value `yaml:"unit"`
	Cost      *Value `yaml:"cost"`
	WindowEnd *Value `yaml:"window_end"`

	// usage (with cost) and revenue
	Currency *Value `yaml:"currency"`

	// revenue
	Kind        *Value `yaml:"kind"`
	Amount      *Value `yaml:"amount"`
	PeriodStart *Value `yaml:"period_start"`
	PeriodEnd   *Value `yaml:"period_end"`
	Plan        *Value `yaml:"plan"` // revenue and customer
	InvoiceID   *Value `yaml:"invoice_id"`

	// customer
	Environment *Value           `yaml:"environment"`
	Metadata    map[string]Value `yaml:"metadata"`
}

// CustomerRef maps the event's customer reference.
type CustomerRef struct {
	Source     *Value `yaml:"source"` // defaults to the event's source
	ExternalID Value  `yaml:"external_id"`
	Email      *Value `yaml:"email"`
	Name       *Value `yaml:"name"`
}

// Filter keeps a record only when the value at Path satisfies exactly one
// test. Values compare as text: a JSON string's content, a number's literal,
// true/false.
type Filter struct {
	Path      string   `yaml:"path"`
	Equals    *string  `yaml:"equals"`
	NotEquals *string  `yaml:"not_equals"`
	In        []string `yaml:"in"`
	NotIn     []string `yaml:"not_in"`
	Exists    *bool    `yaml:"exists"` // present and not null
}

// Value says where an event field comes from: exactly one of Path, Const
// and Template, then the modifiers that apply to the field's kind.
type Value struct {
	Path     string  `yaml:"path"`     // gjson path into the record
	Const    *string `yaml:"const"`    // a constant (YAML scalars keep their text: 0.10 stays "0.10")
	Template string  `yaml:"template"` // text with {{path}} placeholders
	Default  *string `yaml:"default"`  // used when the path is missing, null or ""
	Lookup   string  `yaml:"lookup"`   // name of a table in File.Lookups; a value missing from it is an error

	// Decimals (quantity, cost, amount), applied in this order.
	Units    string `yaml:"units"`    // major (default) or minor (needs the rule's currency)
	Multiply string `yaml:"multiply"` // exact decimal factor
	Divide   string `yaml:"divide"`   // exact decimal divisor; a result beyond 9 decimals is an error unless round is set
	Sign     string `yaml:"sign"`     // negate, abs or negative
	Round    *int32 `yaml:"round"`    // round half-even to this many decimals (0-9), for sources more precise than uvr

	// Times (time, window_end, period_start, period_end; version).
	Format string `yaml:"format"` // rfc3339 (default), unix, unix_ms, date, layout
	Layout string `yaml:"layout"` // Go layout when format is layout
}

// Mapping is a validated mapping file. It implements source.Mapper.
type Mapping struct {
	file  File
	rules map[string][]*rule
}

var _ source.Mapper = (*Mapping)(nil)

// Problem is one thing wrong with a mapping file, at a location such as
// "streams.purchases[1].amount.sign".
type Problem struct {
	Where  string
	Reason string
}

func (p Problem) String() string { return p.Where + ": " + p.Reason }

// LoadError lists every problem of a mapping file.
type LoadError struct {
	File     string // path of the file, "" when parsed from bytes
	Problems []Problem
}

func (e *LoadError) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.String()
	}
	name := e.File
	if name == "" {
		name = "mapping"
	}
	return fmt.Sprintf("%s: %d problem(s): %s", name, len(parts), strings.Join(parts, "; "))
}

// Load reads and validates the mapping file at path (YAML, or JSON, which
// is YAML too). Errors: *LoadError naming every problem, or the read error.
func Load(path string) (*Mapping, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read mapping file: %w", err)
	}
	m, err := Parse(b)
	var le *LoadError
	if errors.As(err, &le) {
		le.File = path
	}
	return m, err
}

// ErrOutsideDir is wrapped by LoadIn for a name that leaves its directory.
var ErrOutsideDir = errors.New("must name a file inside the mapping directory")

// maxFileBytes bounds a mapping file read by LoadIn.
const maxFileBytes = 1 << 20

// LoadIn loads the mapping file name from inside dir only: a name relative
// to dir, or an absolute path under it. An absolute path elsewhere, a ".."
// that climbs out, or a symbolic link whose target lies outside dir is
// ErrOutsideDir (the file is opened through os.Root, which resolves every
// component within dir; an absolute link target counts as outside). For names that come from outside the operator
// (a service configured through the API).
func LoadIn(dir, name string) (*Mapping, error) {
	if dir == "" {
		return nil, fmt.Errorf("%w: no mapping directory is configured", ErrOutsideDir)
	}
	rel := name
	if filepath.IsAbs(name) {
		absDir, err := filepath.Abs(dir)
		if err != nil {
			return nil, fmt.Errorf("mapping directory: %w", err)
		}
		if rel, err = filepath.Rel(absDir, filepath.Clean(name)); err != nil {
			return nil, fmt.Errorf("%w (%s)", ErrOutsideDir, dir)
		}
	}
	if rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) || filepath.IsAbs(rel) {
		return nil, fmt.Errorf("%w (%s)", ErrOutsideDir, dir)
	}
	f, err := os.OpenInRoot(dir, rel)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) && strings.Contains(pe.Err.Error(), "escapes") {
			return nil, fmt.Errorf("%w (%s): a link on the way leads outside (links must be relative and stay inside)", ErrOutsideDir, dir)
		}
		return nil, fmt.Errorf("read mapping file %s: %w", rel, errors.Unwrap(err))
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read mapping file %s: %w", rel, err)
	}
	if len(b) > maxFileBytes {
		return nil, fmt.Errorf("mapping file %s is larger than %d bytes", rel, maxFileBytes)
	}
	m, err := Parse(b)
	var le *LoadError
	if errors.As(err, &le) {
		le.File = rel
	}
	return m, err
}

// Parse validates a mapping given as YAML or JSON bytes.
func Parse(b []byte) (*Mapping, error) {
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, &LoadError{Problems: []Problem{{Where: "(file)", Reason: yamlReason(err)}}}
	}
	return Compile(f)
}

// Compile validates an already decoded File (for configurations that embed
// a mapping).
func Compile(f File) (*Mapping, error) {
	v := validator{file: f}
	m := &Mapping{file: f, rules: make(map[string][]*rule, len(f.Streams))}
	if f.Version != FormatVersion {
		v.add("version", "must be %d, got %d", FormatVersion, f.Version)
	}
	if len(f.Streams) == 0 {
		v.add("streams", "at least one stream is required")
	}
	for _, name := range sortedKeys(f.Lookups) {
		if len(f.Lookups[name]) == 0 {
			v.add("lookups."+name, "is empty")
		}
	}
	for _, stream := range sortedKeys(f.Streams) {
		rules := f.Streams[stream]
		if stream == "" {
			v.add("streams", "a stream name is empty")
		}
		if len(rules) == 0 {
			v.add("streams."+stream, "has no rules")
		}
		for i := range rules {
			if r := v.rule(stream, i, &rules[i]); r != nil {
				m.rules[stream] = append(m.rules[stream], r)
			}
		}
	}
	if len(v.problems) > 0 {
		return nil, &LoadError{Problems: v.problems}
	}
	return m, nil
}

// Source is the file's default event source.
func (m *Mapping) Source() string { return m.file.Source }

// Streams lists the mapped streams, sorted.
func (m *Mapping) Streams() []string { return sortedKeys(m.file.Streams) }

func yamlReason(err error) string {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		return strings.Join(te.Errors, "; ")
	}
	return err.Error()
}

// validator collects problems while compiling the rules.
type validator struct {
	file     File
	problems []Problem
}

func (v *validator) add(where, reason string, args ...any) {
	if len(args) > 0 {
		reason = fmt.Sprintf(reason, args...)
	}
	v.problems = append(v.problems, Problem{Where: where, Reason: reason})
}

// field kinds decide which modifiers apply.
type kind int

const (
	kindString kind = iota
	kindDecimal
	kindTime
	kindInteger // version: an integer, or a time read as unix seconds
	kindBool
)

// fieldsByType lists the event fields each type accepts (beyond id, time,
// customer, version, void, attributes).
var fieldsByType = map[string][]string{
	TypeUsage:    {"feature", "quantity", "unit", "cost", "currency", "window_end"},
	TypeRevenue:  {"kind", "amount", "currency", "period_start", "period_end", "plan", "invoice_id"},
	TypeCustomer: {"plan", "environment", "metadata"},
}

// rule is a compiled Rule.
type rule struct {
	where    string
	eventTyp string
	source   string
	r        *Rule
	id       *value
	time     *value
	custSrc  *value
	custID   *value
	email    *value
	name     *value
	version  *value
	void     *value
	attrs    map[string]*value
	fields   map[string]*value // type-specific fields by their event name
	metadata map[string]*value
	filter   []Filter
}

func (v *validator) rule(stream string, i int, r *Rule) *rule {
	where := fmt.Sprintf("streams.%s[%d]", stream, i)
	if r.Name != "" {
		where = fmt.Sprintf("streams.%s[%s]", stream, r.Name)
	}
	before := len(v.problems)
	c := &rule{where: where, r: r, source: r.Source, fields: map[string]*value{}}
	if c.source == "" {
		c.source = v.file.Source
	}
	if c.source == "" {
		v.add(where+".source", "is required (set source at the top of the file or on the rule)")
	}
	typ, ok := eventTypes[r.Type]
	if !ok {
		v.add(where+".type", "must be usage, revenue or customer, got %q", r.Type)
	}
	c.eventTyp = typ

	for j, f := range r.Filter {
		fw := fmt.Sprintf("%s.filter[%d]", where, j)
		if f.Path == "" {
			v.add(fw+".path", "is required")
		}
		tests := 0
		for _, set := range []bool{f.Equals != nil, f.NotEquals != nil, f.In != nil, f.NotIn != nil, f.Exists != nil} {
			if set {
				tests++
			}
		}
		if tests != 1 {
			v.add(fw, "needs exactly one of equals, not_equals, in, not_in, exists (has %d)", tests)
		}
	}
	c.filter = r.Filter

	c.id = v.value(where+".id", &r.ID, kindString, true)
	c.time = v.value(where+".time", &r.Time, kindTime, true)
	c.custID = v.value(where+".customer.external_id", &r.Customer.ExternalID, kindString, true)
	c.custSrc = v.optional(where+".customer.source", r.Customer.Source, kindString)
	c.email = v.optional(where+".customer.email", r.Customer.Email, kindString)
	c.name = v.optional(where+".customer.name", r.Customer.Name, kindString)
	c.version = v.optional(where+".version", r.Version, kindInteger)
	c.void = v.optional(where+".void", r.Void, kindBool)
	c.attrs = v.valueMap(where+".attributes", r.Attrs)

	given := map[string]*Value{
		"feature": r.Feature, "quantity": r.Quantity, "unit": r.Unit, "cost": r.Cost,
		"window_end": r.WindowEnd, "currency": r.Currency, "kind": r.Kind, "amount": r.Amount,
		"period_start": r.PeriodStart, "period_end": r.PeriodEnd, "plan": r.Plan,
		"invoice_id": r.InvoiceID, "environment": r.Environment,
	}
	kinds := map[string]kind{
		"quantity": kindDecimal, "cost": kindDecimal, "amount": kindDecimal,
		"window_end": kindTime, "period_start": kindTime, "period_end": kindTime,
	}
	allowed := fieldsByType[r.Type]
	for _, name := range sortedKeys(given) {
		val := given[name]
		if val == nil {
			continue
		}
		if typ != "" && !slices.Contains(allowed, name) {
			v.add(where+"."+name, "is not a field of %s events", r.Type)
			continue
		}
		if cv := v.value(where+"."+name, val, kinds[name], true); cv != nil {
			c.fields[name] = cv
		}
	}
	if r.Metadata != nil {
		if typ != "" && r.Type != TypeCustomer {
			v.add(where+".metadata", "is not a field of %s events", r.Type)
		} else {
			c.metadata = v.valueMap(where+".metadata", r.Metadata)
		}
	}

	switch r.Type {
	case TypeUsage:
		v.require(where, given, "feature", "quantity")
		if r.Cost != nil && r.Currency == nil {
			v.add(where+".currency", "is required with cost")
		}
	case TypeRevenue:
		v.require(where, given, "kind", "currency")
		subscription := false
		if r.Kind != nil && r.Kind.Const != nil {
			k := *r.Kind.Const
			if !slices.Contains(event.RevenueKinds, k) {
				v.add(where+".kind.const", "must be one of %s, got %q", strings.Join(event.RevenueKinds, ", "), k)
			}
			subscription = strings.HasPrefix(k, "subscription_")
		}
		if r.Amount == nil && !subscription {
			v.add(where+".amount", "is required (except for a constant subscription_* kind)")
		}
		if (r.PeriodStart == nil) != (r.PeriodEnd == nil) {
			v.add(where+".period_end", "period_start and period_end go together")
		}
	}
	for _, name := range []string{"cost", "amount", "quantity"} {
		if val := given[name]; val != nil && val.Units == UnitsMinor {
			if name == "quantity" {
				v.add(where+".quantity.units", "minor units apply to money (cost, amount), not to a quantity")
			} else if r.Currency == nil {
				v.add(where+"."+name+".units", "minor units need the rule's currency")
			}
		}
	}
	if len(v.problems) > before {
		return nil
	}
	return c
}

func (v *validator) require(where string, given map[string]*Value, names ...string) {
	for _, n := range names {
		if given[n] == nil {
			v.add(where+"."+n, "is required")
		}
	}
}

func (v *validator) optional(where string, val *Value, k kind) *value {
	if val == nil {
		return nil
	}
	return v.value(where, val, k, true)
}

func (v *validator) valueMap(where string, m map[string]Value) map[string]*value {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]*value, len(m))
	for _, k := range sortedKeys(m) {
		val := m[k]
		if k == "" {
			v.add(where, "has an empty key")
			continue
		}
		out[k] = v.value(where+"."+k, &val, kindString, true)
	}
	return out
}

var placeholder = regexp.MustCompile(`\{\{\s*(.*?)\s*\}\}`)

var validRound = func(n int32) bool { return n >= 0 && n <= event.MaxScale }

// value checks one Value against the kind of its field and compiles it.
func (v *validator) value(where string, val *Value, k kind, required bool) *value {
	before := len(v.problems)
	sources := 0
	if val.Path != "" {
		sources++
	}
	if val.Const != nil {
		sources++
	}
	if val.Template != "" {
		sources++
	}
	switch {
	case sources == 0 && required:
		v.add(where, "is required: give one of path, const, template")
	case sources > 1:
		v.add(where, "give only one of path, const, template")
	}
	c := &value{v: *val}
	if val.Template != "" {
		matches := placeholder.FindAllStringSubmatch(val.Template, -1)
		if len(matches) == 0 {
			v.add(where+".template", "has no {{path}} placeholder (use const for a fixed text)")
		}
		for _, m := range matches {
			if m[1] == "" {
				v.add(where+".template", "has an empty placeholder {{}}")
			}
		}
	}
	if val.Lookup != "" {
		if _, ok := v.file.Lookups[val.Lookup]; !ok {
			v.add(where+".lookup", "unknown lookup %q (define it under lookups)", val.Lookup)
		}
	}

	decimalOnly := map[string]bool{"units": val.Units != "", "multiply": val.Multiply != "", "divide": val.Divide != "", "sign": val.Sign != "", "round": val.Round != nil}
	timeOnly := map[string]bool{"format": val.Format != "", "layout": val.Layout != ""}
	if k != kindDecimal {
		for _, opt := range sortedKeys(decimalOnly) {
			if decimalOnly[opt] {
				v.add(where+"."+opt, "applies only to decimal fields (quantity, cost, amount)")
			}
		}
	}
	if k != kindTime && k != kindInteger {
		for _, opt := range sortedKeys(timeOnly) {
			if timeOnly[opt] {
				v.add(where+"."+opt, "applies only to time fields (time, window_end, period_start, period_end, version)")
			}
		}
	}
	switch k {
	case kindDecimal:
		switch val.Units {
		case "", UnitsMajor, UnitsMinor:
		default:
			v.add(where+".units", "must be major or minor, got %q", val.Units)
		}
		if val.Multiply != "" {
			d, err := decimal.NewFromString(val.Multiply)
			if err != nil {
				v.add(where+".multiply", "must be a decimal number, got %q", val.Multiply)
			}
			c.mul = &d
		}
		if val.Divide != "" {
			d, err := decimal.NewFromString(val.Divide)
			switch {
			case err != nil:
				v.add(where+".divide", "must be a decimal number, got %q", val.Divide)
			case d.IsZero():
				v.add(where+".divide", "must not be zero")
			}
			c.div = &d
		}
		switch val.Sign {
		case "", SignNegate, SignAbs, SignNegative:
		default:
			v.add(where+".sign", "must be negate, abs or negative, got %q", val.Sign)
		}
		if val.Round != nil && !validRound(*val.Round) {
			v.add(where+".round", "must be between 0 and %d decimals, got %d", event.MaxScale, *val.Round)
		}
		if val.Const != nil {
			if _, err := decimal.NewFromString(*val.Const); err != nil {
				v.add(where+".const", "must be a decimal number, got %q", *val.Const)
			}
		}
	case kindTime, kindInteger:
		switch val.Format {
		case "", FormatRFC3339, FormatUnix, FormatUnixMS, FormatDate:
			if val.Layout != "" {
				v.add(where+".layout", "needs format: layout")
			}
		case FormatLayout:
			if val.Layout == "" {
				v.add(where+".layout", "is required with format: layout")
			}
		default:
			v.add(where+".format", "must be rfc3339, unix, unix_ms, date or layout, got %q", val.Format)
		}
		if k == kindInteger && val.Const != nil && val.Format == "" {
			if n, err := strconv.ParseUint(*val.Const, 10, 32); err != nil || n == 0 {
				v.add(where+".const", "must be a positive integer, got %q", *val.Const)
			}
		}
	case kindBool:
		if val.Const != nil && *val.Const != "true" && *val.Const != "false" {
			v.add(where+".const", "must be true or false, got %q", *val.Const)
		}
	}
	if len(v.problems) > before {
		return nil
	}
	return c
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

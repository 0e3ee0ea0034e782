package openai

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"github.com/uvrhq/uvr/connectors/source"
	"github.com/uvrhq/uvr/pipeline/event"
)

// Service is the event source of everything this connector emits.
const Service = "openai"

// StreamCosts is the stream name of the Costs API; the usage streams are
// named after their endpoint (completions, embeddings, …).
const StreamCosts = "costs"

// CostReportedBy is the attribute set on usage events whose money comes from
// the Costs API (as separate openai.cost.* events). The rate-card stage must
// not price an event that carries it, or the cost would count twice.
const CostReportedBy = "cost_reported_by"

// Mapper maps one bucket of a usage or costs page ({start_time, end_time,
// results}) to events. It is shared by the native connector and any import of
// the same API objects. A zero Mapper treats every bucket as complete.
type Mapper struct {
	// Now and Settle decide whether a bucket is complete: a bucket whose end
	// is less than Settle before Now may still grow, so its events get a
	// version that a later read supersedes.
	Now    func() time.Time
	Settle time.Duration
	// CostsSeparate marks usage events with CostReportedBy: set when the
	// Costs API is read too.
	CostsSeparate bool
}

var _ source.Mapper = Mapper{}

// bucket is one time bucket of a usage or costs page.
type bucket struct {
	Object    string            `json:"object"`
	StartTime int64             `json:"start_time"`
	EndTime   int64             `json:"end_time"`
	Results   []json.RawMessage `json:"results"`
}

// Map maps a bucket of stream (an endpoint name or "costs"). A result that
// cannot be mapped makes the whole bucket an error here; the native
// connector, which reads buckets itself, skips results one by one instead.
func (m Mapper) Map(stream string, record json.RawMessage) ([]event.Event, error) {
	var b bucket
	if err := json.Unmarshal(record, &b); err != nil {
		return nil, fmt.Errorf("%s bucket: %w", stream, err)
	}
	evs, bad := m.mapBucket(stream, b)
	if len(bad) > 0 {
		errs := make([]error, len(bad))
		for i, r := range bad {
			errs[i] = fmt.Errorf("%s: %w", r.name, r.err)
		}
		return nil, errors.Join(errs...)
	}
	return evs, nil
}

// badResult is a result row that could not be mapped.
type badResult struct {
	name string
	err  error
}

// complete reports whether the bucket can no longer change, and the version
// its events carry: the bucket's end plus Settle once complete (the same on
// every re-read, so a re-read is a duplicate), else the read time in unix
// seconds, which is lower than that and grows with every read.
func (m Mapper) complete(b bucket) (bool, uint32) {
	final := b.EndTime + int64(m.Settle/time.Second)
	if m.Now == nil {
		return true, uint32(final)
	}
	now := m.Now().Unix()
	if now >= final {
		return true, uint32(final)
	}
	return false, uint32(now)
}

func (m Mapper) mapBucket(stream string, b bucket) ([]event.Event, []badResult) {
	var evs []event.Event
	var bad []badResult
	_, version := m.complete(b)
	start, end := time.Unix(b.StartTime, 0).UTC(), time.Unix(b.EndTime, 0).UTC()
	for i, raw := range b.Results {
		name := fmt.Sprintf("%s bucket %d result %d", stream, b.StartTime, i)
		var res []event.Event
		var err error
		if stream == StreamCosts {
			res, err = m.costResult(b, raw, start, end, version)
		} else {
			res, err = m.usageResult(stream, b, raw, start, end, version)
		}
		if err == nil {
			for _, ev := range res {
				if err = ev.Validate(); err != nil {
					break
				}
			}
		}
		if err != nil {
			bad = append(bad, badResult{name: name, err: err})
			continue
		}
		evs = append(evs, res...)
	}
	return evs, bad
}

// result is one result row: numbers are counters, everything else a
// grouping dimension (project_id, model, api_key_id, batch, size, …).
type result struct {
	counters map[string]decimal.Decimal
	dims     map[string]string
}

func parseResult(raw json.RawMessage) (result, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil || obj == nil {
		return result{}, fmt.Errorf("result is not a JSON object")
	}
	r := result{counters: map[string]decimal.Decimal{}, dims: map[string]string{}}
	for k, v := range obj {
		switch v := v.(type) {
		case nil:
		case json.Number:
			d, err := decimal.NewFromString(v.String())
			if err != nil {
				return r, fmt.Errorf("%s: %q is not a number", k, v)
			}
			r.counters[k] = d
		case string:
			if isCounter(k) {
				return r, fmt.Errorf("%s: %q is not a number", k, v)
			}
			if k != "object" {
				r.dims[k] = v
			}
		case bool:
			r.dims[k] = strconv.FormatBool(v)
		case map[string]any:
			if k != "amount" {
				return r, fmt.Errorf("%s: unexpected object", k)
			}
		default:
			return r, fmt.Errorf("%s: unexpected %T", k, v)
		}
	}
	return r, nil
}

// isCounter reports whether a result field is a count by OpenAI's naming,
// so that a count sent as text is an error rather than a dimension.
func isCounter(field string) bool {
	switch field {
	case "characters", "seconds", "images", "usage_bytes", "quantity":
		return true
	}
	return strings.HasPrefix(field, "num_") || strings.HasSuffix(field, "_tokens")
}

// dimKey is the deterministic text of a row's dimensions, for ids.
func dimKey(dims map[string]string) string {
	keys := make([]string, 0, len(dims))
	for k := range dims {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + dims[k]
	}
	return strings.Join(parts, ",")
}

// counterName turns OpenAI's field name into the feature's class:
// input_cached_tokens → cached_input_tokens, num_model_requests → requests.
func counterName(field string) string {
	for _, p := range []struct{ from, to string }{
		{"input_cached_", "cached_input_"},
		{"input_uncached_", "uncached_input_"},
		{"input_cache_write_", "cache_write_input_"},
	} {
		if rest, ok := strings.CutPrefix(field, p.from); ok {
			return p.to + rest
		}
	}
	switch field {
	case "num_model_requests":
		return "requests"
	case "num_requests":
		return "calls"
	case "num_sessions":
		return "sessions"
	}
	return field
}

func unitOf(field string) string {
	switch {
	case strings.HasSuffix(field, "_tokens"):
		return "tokens"
	case field == "num_model_requests" || field == "num_requests":
		return "requests"
	case field == "num_sessions":
		return "sessions"
	case field == "usage_bytes":
		return "bytes"
	}
	return field // characters, seconds, images
}

// featurePrefix is the model when grouped by model, else the endpoint.
func featurePrefix(stream string, dims map[string]string) string {
	if m := dims["model"]; m != "" {
		return m
	}
	if stream == "code_interpreter_sessions" {
		return "code_interpreter"
	}
	return stream
}

func customerOf(dims map[string]string) event.Customer {
	id := dims["project_id"]
	if id == "" {
		id = source.UnmappedCustomer
	}
	return event.Customer{Source: Service, ExternalID: id}
}

// usageResult gives one event per non-zero counter of the row: feature
// <model or endpoint>.<class>, quantity as reported. Counters overlap the
// way OpenAI defines them (input_tokens includes cached_input_tokens); see
// docs/connectors/openai.md.
func (m Mapper) usageResult(stream string, b bucket, raw json.RawMessage, start, end time.Time, version uint32) ([]event.Event, error) {
	r, err := parseResult(raw)
	if err != nil {
		return nil, err
	}
	prefix := featurePrefix(stream, r.dims)
	dims := dimKey(r.dims)
	fields := make([]string, 0, len(r.counters))
	for f := range r.counters {
		fields = append(fields, f)
	}
	sort.Strings(fields)
	var evs []event.Event
	for _, f := range fields {
		q := r.counters[f]
		if q.IsZero() {
			continue
		}
		if q.IsNegative() {
			return nil, fmt.Errorf("%s: negative count %s", f, q)
		}
		attrs := map[string]string{"endpoint": stream, "counter": f}
		for k, v := range r.dims {
			if k != "project_id" {
				attrs[k] = v
			}
		}
		if m.CostsSeparate {
			attrs[CostReportedBy] = "openai.costs"
		}
		we := end
		evs = append(evs, event.Event{
			SpecVersion: event.SpecVersion,
			ID:          fmt.Sprintf("%s/%d/%s/%s", stream, b.StartTime, dims, f),
			Source:      Service,
			Type:        event.TypeUsage,
			Time:        start,
			Data: event.Data{
				Customer:   customerOf(r.dims),
				Version:    version,
				Feature:    prefix + "." + counterName(f),
				Quantity:   &q,
				Unit:       unitOf(f),
				WindowEnd:  &we,
				Attributes: attrs,
			},
		})
	}
	return evs, nil
}

// costResult gives one event carrying the row's cost: feature
// openai.cost.<line_item>, quantity the row's quantity when the API gives
// one, else 0 (the event carries money only).
func (m Mapper) costResult(b bucket, raw json.RawMessage, start, end time.Time, version uint32) ([]event.Event, error) {
	r, err := parseResult(raw)
	if err != nil {
		return nil, err
	}
	var row struct {
		Amount *struct {
			Value    json.Number `json:"value"`
			Currency string      `json:"currency"`
		} `json:"amount"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&row); err != nil {
		return nil, fmt.Errorf("amount: %w", err)
	}
	if row.Amount == nil || row.Amount.Value == "" {
		return nil, errors.New("amount.value is missing")
	}
	cost, err := decimal.NewFromString(row.Amount.Value.String())
	if err != nil {
		return nil, fmt.Errorf("amount.value %q is not a number", row.Amount.Value)
	}
	// The Costs API sends a JSON float (0.06); its text is exact, but a
	// float-formatted value can carry more than uvr's 9 decimals (e.g.
	// 0.060000000000000005): round those, half to even, to 9.
	cost = cost.RoundBank(event.MaxScale)
	currency := strings.ToUpper(row.Amount.Currency)
	item := r.dims["line_item"]
	if item == "" {
		item = "total"
	}
	qty := decimal.Zero
	if q, ok := r.counters["quantity"]; ok {
		qty = q
	}
	attrs := map[string]string{"endpoint": StreamCosts}
	for k, v := range r.dims {
		if k != "project_id" && k != "quantity_unit" {
			attrs[k] = v
		}
	}
	we := end
	return []event.Event{{
		SpecVersion: event.SpecVersion,
		ID:          fmt.Sprintf("%s/%d/%s", StreamCosts, b.StartTime, dimKey(r.dims)),
		Source:      Service,
		Type:        event.TypeUsage,
		Time:        start,
		Data: event.Data{
			Customer:   customerOf(r.dims),
			Version:    version,
			Feature:    "openai.cost." + item,
			Quantity:   &qty,
			Unit:       r.dims["quantity_unit"],
			Cost:       &cost,
			Currency:   currency,
			WindowEnd:  &we,
			Attributes: attrs,
		},
	}}, nil
}

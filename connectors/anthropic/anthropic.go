// Package anthropic reads an Anthropic organization's Admin API usage
// report (tokens per workspace, API key and model, with cache classes) and
// cost report (money per workspace and line item) as uvr.usage.v1 events.
//
// It follows the OpenAI connector's rules: ids from the bucket start and the
// row's dimensions, partial buckets re-read with a higher version, a cursor
// that never passes an incomplete bucket. See docs/connectors/anthropic.md.
package anthropic

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"github.com/uvrhq/uvr/connectors/source"
	"github.com/uvrhq/uvr/pipeline/event"
)

// Service is the event source of everything this connector emits.
const Service = "anthropic"

// DefaultBaseURL is Anthropic's API; APIVersion the version header sent.
const (
	DefaultBaseURL = "https://api.anthropic.com"
	APIVersion     = "2023-06-01"
)

// Streams.
const (
	StreamUsage = "usage"
	StreamCosts = "costs"
)

// CostReportedBy marks usage events whose money arrives as anthropic.cost.*
// events: the rate-card stage must not price them (see the OpenAI
// connector, which uses the same attribute).
const CostReportedBy = "cost_reported_by"

// Default groupings.
var (
	UsageGroupBy = []string{"workspace_id", "api_key_id", "model", "service_tier", "context_window"}
	CostGroupBy  = []string{"workspace_id", "description"}
)

// Config configures one organization.
type Config struct {
	APIKey  string // admin key (sk-ant-admin…), required
	BaseURL string // default DefaultBaseURL

	SkipCosts   bool
	BucketWidth string   // usage buckets: 1d (default) or 1h; costs are daily
	GroupBy     []string // usage grouping, default UsageGroupBy
	// Settle is how long after its end a bucket may still change; default 1h.
	Settle time.Duration
	// Start is where a sync without cursor begins; default 30 days before
	// Now, at midnight UTC.
	Start time.Time
	Now   func() time.Time

	RequestsPerSecond          float64
	RetryWaitMin, RetryWaitMax time.Duration
	Logger                     *slog.Logger
	// Egress bounds the addresses called; nil: any (tests, an operator's
	// own address). FromCredentials always sets the service policy.
	Egress *source.Egress
}

// Source reads one organization. It implements source.Source.
type Source struct {
	cfg  Config
	http *source.HTTP
	log  *slog.Logger
}

var _ source.Source = (*Source)(nil)

// New checks cfg and builds the source.
func New(cfg Config) (*Source, error) {
	var errs []error
	if cfg.APIKey == "" {
		errs = append(errs, errors.New("anthropic: api_key is required"))
	}
	switch cfg.BucketWidth {
	case "":
		cfg.BucketWidth = "1d"
	case "1d", "1h":
	default:
		errs = append(errs, fmt.Errorf("anthropic: bucket width must be 1d or 1h, got %q", cfg.BucketWidth))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultBaseURL
	}
	if cfg.GroupBy == nil {
		cfg.GroupBy = UsageGroupBy
	}
	if cfg.Settle == 0 {
		cfg.Settle = time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.RequestsPerSecond == 0 {
		cfg.RequestsPerSecond = 1 // the usage API asks for at most one poll a minute sustained
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	log := cfg.Logger.With("component", "connector", "service", Service)
	key := cfg.APIKey
	h, err := source.NewHTTP(source.HTTPConfig{
		Egress:  cfg.Egress,
		Service: Service, BaseURL: cfg.BaseURL, Secrets: []string{key},
		Authorize: func(r *http.Request) {
			r.Header.Set("x-api-key", key)
			r.Header.Set("anthropic-version", APIVersion)
		},
		RequestsPerSecond: cfg.RequestsPerSecond,
		RetryWaitMin:      cfg.RetryWaitMin, RetryWaitMax: cfg.RetryWaitMax,
		Logger: log,
	})
	if err != nil {
		return nil, err
	}
	return &Source{cfg: cfg, http: h, log: log}, nil
}

// FromCredentials builds a source from stored credentials: api_key
// (required) and base_url (optional).
func FromCredentials(creds map[string]string, env source.Env) (*Source, error) {
	if creds["api_key"] == "" {
		return nil, errors.New("anthropic credentials: missing api_key")
	}
	return New(Config{APIKey: creds["api_key"], BaseURL: creds["base_url"], Logger: env.Logger, Egress: &env.Egress})
}

// Check reads one day of the usage report: it needs an admin key.
func (s *Source) Check(ctx context.Context) error {
	q := url.Values{"starting_at": {s.cfg.Now().UTC().Truncate(24 * time.Hour).Add(-24 * time.Hour).Format(time.RFC3339)}, "limit": {"1"}}
	if err := s.http.GetJSON(ctx, "/v1/organizations/usage_report/messages", q, nil); err != nil {
		return fmt.Errorf("check anthropic: %w", err)
	}
	return nil
}

type page struct {
	Data     []bucket `json:"data"`
	HasMore  bool     `json:"has_more"`
	NextPage *string  `json:"next_page"`
}

type bucket struct {
	StartingAt time.Time         `json:"starting_at"`
	EndingAt   time.Time         `json:"ending_at"`
	Results    []json.RawMessage `json:"results"`
}

// cursor: per stream, the start (RFC 3339) of the first incomplete bucket.
type cursor map[string]string

// Read reads the usage report, then the cost report. An *AuthError stops
// the sync; a stream that fails otherwise is reported with Skip and keeps
// its cursor, and Read returns the failures at the end; a malformed result
// row is skipped by name.
func (s *Source) Read(ctx context.Context, cur source.Cursor, out source.Emitter) error {
	c := cursor{}
	if len(cur) > 0 {
		if err := json.Unmarshal(cur, &c); err != nil {
			return fmt.Errorf("anthropic: cursor: %w", err)
		}
	}
	streams := []string{StreamUsage}
	if !s.cfg.SkipCosts {
		streams = append(streams, StreamCosts)
	}
	var failed []error
	for _, stream := range streams {
		err := s.readStream(ctx, stream, c, out)
		switch {
		case err == nil:
		case source.IsAuth(err) || ctx.Err() != nil:
			return err
		default:
			out.Skip("anthropic "+stream, err)
			failed = append(failed, err)
		}
	}
	return errors.Join(failed...)
}

// version: end + Settle once complete (stable across re-reads), else now.
func (s *Source) version(end time.Time) (bool, uint32) {
	final := end.Add(s.cfg.Settle)
	if now := s.cfg.Now(); now.Before(final) {
		return false, uint32(now.Unix())
	}
	return true, uint32(final.Unix())
}

func (s *Source) readStream(ctx context.Context, stream string, c cursor, out source.Emitter) error {
	path, width, groupBy := "/v1/organizations/usage_report/messages", s.cfg.BucketWidth, s.cfg.GroupBy
	if stream == StreamCosts {
		path, width, groupBy = "/v1/organizations/cost_report", "1d", CostGroupBy
	}
	limit := "31"
	if width == "1h" {
		limit = "168"
	}
	start := s.cfg.Start
	if start.IsZero() {
		start = s.cfg.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -30)
	}
	if v, ok := c[stream]; ok {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return fmt.Errorf("cursor %s: %w", stream, err)
		}
		start = t
	}
	q := url.Values{"starting_at": {start.UTC().Format(time.RFC3339)}, "bucket_width": {width}, "limit": {limit}}
	for _, g := range groupBy {
		q.Add("group_by[]", g)
	}
	frontier, partialSeen := start.UTC(), false
	for n := 1; ; n++ {
		var pg page
		if err := s.http.GetJSON(ctx, path, q, &pg); err != nil {
			return fmt.Errorf("%s page %d: %w", stream, n, err)
		}
		var batch []event.Event
		for _, b := range pg.Data {
			complete, version := s.version(b.EndingAt)
			evs, bad := s.mapBucket(stream, b, version)
			for _, r := range bad {
				out.Skip("anthropic "+r.name, r.err)
			}
			batch = append(batch, evs...)
			if !complete {
				partialSeen = true
			} else if !partialSeen && b.EndingAt.After(frontier) {
				frontier = b.EndingAt.UTC()
			}
		}
		next := cursor{}
		for k, v := range c {
			next[k] = v
		}
		next[stream] = frontier.Format(time.RFC3339)
		nb, err := json.Marshal(next)
		if err != nil {
			return err
		}
		if err := out.Emit(ctx, batch, nb); err != nil {
			return fmt.Errorf("%s page %d: emit: %w", stream, n, err)
		}
		c[stream] = next[stream]
		if !pg.HasMore || pg.NextPage == nil || *pg.NextPage == "" {
			return nil
		}
		if q.Get("page") == *pg.NextPage {
			return fmt.Errorf("%s page %d: next_page repeats", stream, n)
		}
		q.Set("page", *pg.NextPage)
	}
}

type badResult struct {
	name string
	err  error
}

func (s *Source) mapBucket(stream string, b bucket, version uint32) ([]event.Event, []badResult) {
	var evs []event.Event
	var bad []badResult
	// Cost rows with the same dimensions are summed under one id.
	type costAcc struct {
		r    row
		cost decimal.Decimal
	}
	var costOrder []string
	costs := map[string]*costAcc{}
	for i, raw := range b.Results {
		name := fmt.Sprintf("%s bucket %s result %d", stream, b.StartingAt.UTC().Format(time.RFC3339), i)
		r, err := parseRow(raw)
		if err == nil && stream == StreamCosts {
			var cost decimal.Decimal
			if cost, err = r.cost(); err == nil {
				k := dimKey(r.dims)
				if acc, ok := costs[k]; ok {
					acc.cost = acc.cost.Add(cost)
				} else {
					costs[k] = &costAcc{r: r, cost: cost}
					costOrder = append(costOrder, k)
				}
				continue
			}
		}
		if err != nil {
			bad = append(bad, badResult{name, err})
			continue
		}
		got, err := s.usageEvents(b, r, version)
		if err != nil {
			bad = append(bad, badResult{name, err})
			continue
		}
		evs = append(evs, got...)
	}
	for _, k := range costOrder {
		ev := s.costEvent(b, costs[k].r, costs[k].cost, version)
		if err := ev.Validate(); err != nil {
			bad = append(bad, badResult{fmt.Sprintf("%s bucket %s %s", stream, b.StartingAt.UTC().Format(time.RFC3339), k), err})
			continue
		}
		evs = append(evs, ev)
	}
	return evs, bad
}

// row is one result: numbers are counters (nested objects flattened:
// cache_creation.ephemeral_5m_input_tokens → cache_creation_5m_input_tokens,
// server_tool_use.web_search_requests → web_search_requests), strings are
// dimensions.
type row struct {
	counters map[string]decimal.Decimal
	dims     map[string]string
	amount   string
	currency string
}

func parseRow(raw json.RawMessage) (row, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil || obj == nil {
		return row{}, errors.New("result is not a JSON object")
	}
	r := row{counters: map[string]decimal.Decimal{}, dims: map[string]string{}}
	var walk func(prefix string, m map[string]any) error
	walk = func(prefix string, m map[string]any) error {
		for k, v := range m {
			name := counterName(prefix, k)
			switch v := v.(type) {
			case nil:
			case json.Number:
				d, err := decimal.NewFromString(v.String())
				if err != nil {
					return fmt.Errorf("%s: %q is not a number", k, v)
				}
				r.counters[name] = d
			case string:
				switch {
				case prefix == "" && k == "amount":
					r.amount = v
				case prefix == "" && k == "currency":
					r.currency = v
				case strings.HasSuffix(k, "_tokens") || strings.HasSuffix(k, "_requests"):
					return fmt.Errorf("%s: %q is not a number", name, v)
				case prefix == "":
					r.dims[k] = v
				default:
					return fmt.Errorf("%s.%s: unexpected text", prefix, k)
				}
			case map[string]any:
				if prefix != "" {
					return fmt.Errorf("%s.%s: nested too deep", prefix, k)
				}
				if err := walk(k, v); err != nil {
					return err
				}
			default:
				return fmt.Errorf("%s: unexpected %T", k, v)
			}
		}
		return nil
	}
	return r, walk("", obj)
}

func counterName(prefix, field string) string {
	if prefix == "cache_creation" {
		// ephemeral_5m_input_tokens → cache_creation_5m_input_tokens
		return "cache_creation_" + strings.TrimPrefix(field, "ephemeral_")
	}
	return field
}

// cost is the row's amount, given as a decimal string in the currency's
// lowest units ("123.78912" USD cents = $1.2378912), in major units; more
// than 9 decimals are rounded half to even.
func (r row) cost() (decimal.Decimal, error) {
	if r.amount == "" {
		return decimal.Zero, errors.New("amount is missing")
	}
	d, err := decimal.NewFromString(r.amount)
	if err != nil {
		return d, fmt.Errorf("amount %q is not a decimal", r.amount)
	}
	return d.Shift(-source.MinorUnits(r.currencyCode())).RoundBank(event.MaxScale), nil
}

func (r row) currencyCode() string {
	if r.currency == "" {
		return "USD" // documented as always USD
	}
	return strings.ToUpper(r.currency)
}

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

func customerOf(dims map[string]string) event.Customer {
	id := dims["workspace_id"]
	if id == "" {
		// The default workspace has no id.
		id = source.UnmappedCustomer
	}
	return event.Customer{Source: Service, ExternalID: id}
}

func (s *Source) attrs(stream string, dims map[string]string) map[string]string {
	a := map[string]string{"stream": stream}
	for k, v := range dims {
		if k != "workspace_id" {
			a[k] = v
		}
	}
	return a
}

// usageEvents: one event per non-zero counter; the classes are disjoint
// (uncached input, cache reads, 5m and 1h cache writes, output, web
// searches), so they add up.
func (s *Source) usageEvents(b bucket, r row, version uint32) ([]event.Event, error) {
	prefix := r.dims["model"]
	if prefix == "" {
		prefix = "anthropic"
	}
	names := make([]string, 0, len(r.counters))
	for k := range r.counters {
		names = append(names, k)
	}
	sort.Strings(names)
	var evs []event.Event
	start, end := b.StartingAt.UTC(), b.EndingAt.UTC()
	for _, name := range names {
		q := r.counters[name]
		if q.IsZero() {
			continue
		}
		if q.IsNegative() {
			return nil, fmt.Errorf("%s: negative count %s", name, q)
		}
		unit := "tokens"
		if !strings.HasSuffix(name, "_tokens") {
			unit = "requests"
		}
		a := s.attrs(StreamUsage, r.dims)
		a["counter"] = name
		if !s.cfg.SkipCosts {
			a[CostReportedBy] = "anthropic.costs"
		}
		ev := event.Event{
			SpecVersion: event.SpecVersion,
			ID:          fmt.Sprintf("usage/%s/%s/%s", start.Format(time.RFC3339), dimKey(r.dims), name),
			Source:      Service, Type: event.TypeUsage, Time: start,
			Data: event.Data{
				Customer: customerOf(r.dims), Version: version,
				Feature: prefix + "." + name, Quantity: &q, Unit: unit,
				WindowEnd: &end, Attributes: a,
			},
		}
		if err := ev.Validate(); err != nil {
			return nil, err
		}
		evs = append(evs, ev)
	}
	return evs, nil
}

// costEvent carries a row's cost: feature anthropic.cost.<model>.<token
// type> for token costs, else anthropic.cost.<cost type or description>.
func (s *Source) costEvent(b bucket, r row, cost decimal.Decimal, version uint32) event.Event {
	var parts []string
	for _, k := range []string{"model", "token_type"} {
		if v := r.dims[k]; v != "" {
			parts = append(parts, v)
		}
	}
	if len(parts) == 0 {
		switch {
		case r.dims["cost_type"] != "":
			parts = append(parts, r.dims["cost_type"])
		case r.dims["description"] != "":
			parts = append(parts, r.dims["description"])
		default:
			parts = append(parts, "total")
		}
	}
	start, end := b.StartingAt.UTC(), b.EndingAt.UTC()
	zero := decimal.Zero
	return event.Event{
		SpecVersion: event.SpecVersion,
		ID:          fmt.Sprintf("cost/%s/%s", start.Format(time.RFC3339), dimKey(r.dims)),
		Source:      Service, Type: event.TypeUsage, Time: start,
		Data: event.Data{
			Customer: customerOf(r.dims), Version: version,
			Feature: "anthropic.cost." + strings.Join(parts, "."), Quantity: &zero,
			Cost: &cost, Currency: r.currencyCode(), WindowEnd: &end,
			Attributes: s.attrs(StreamCosts, r.dims),
		},
	}
}

// Package datadog reads Datadog usage metering as uvr.usage.v1 events:
// hourly usage by product family per organization, hourly usage attribution
// per tag value (your customer), and the billed and estimated cost per
// organization and product. See docs/connectors/datadog.md.
package datadog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/uvrhq/uvr/connectors/source"
	"github.com/uvrhq/uvr/pipeline/event"
)

// Service is the event source of everything this connector emits.
const Service = "datadog"

// DefaultSite is Datadog's US1 site; the API lives at https://api.<site>.
const DefaultSite = "datadoghq.com"

// Streams.
const (
	StreamHourlyUsage = "hourly_usage"
	StreamAttribution = "hourly_attribution"
	StreamCosts       = "costs"
)

// DefaultAttributionTypes are the usage types attributed to tags by default.
var DefaultAttributionTypes = []string{"infra_host_usage", "apm_host_usage", "custom_timeseries_usage"}

// Config configures one Datadog (parent) organization.
type Config struct {
	APIKey, AppKey string // required
	Site           string // default DefaultSite
	BaseURL        string // overrides https://api.<site> (tests)

	// Streams to read; nil means all three.
	Streams []string
	// ProductFamilies for hourly usage; default "all".
	ProductFamilies []string
	// AttributionTag is the tag key whose value names the customer in
	// usage attribution (e.g. "customer"); rows without it go to
	// source.UnmappedCustomer.
	AttributionTag string
	// AttributionTypes are the usage types read from hourly attribution;
	// default DefaultAttributionTypes.
	AttributionTypes []string
	// Settle is how long Datadog may still revise usage and cost after a
	// period ended; default 72h (its documented delay).
	Settle time.Duration
	// Start is where a sync without cursor begins; default 7 days before
	// Now, on the hour.
	Start time.Time
	Now   func() time.Time

	RequestsPerSecond          float64
	RetryWaitMin, RetryWaitMax time.Duration
	Logger                     *slog.Logger
	// Egress bounds the addresses called; nil: any (tests, an operator's
	// own address). FromCredentials always sets the service policy.
	Egress *source.Egress
}

// Validate reports every problem of the configuration.
func (c Config) Validate() error {
	var errs []error
	if c.APIKey == "" {
		errs = append(errs, errors.New("datadog: api_key is required"))
	}
	if c.AppKey == "" {
		errs = append(errs, errors.New("datadog: app_key is required"))
	}
	for _, s := range c.Streams {
		switch s {
		case StreamHourlyUsage, StreamAttribution, StreamCosts:
		default:
			errs = append(errs, fmt.Errorf("datadog: unknown stream %q", s))
		}
	}
	return errors.Join(errs...)
}

// Source reads one Datadog account. It implements source.Source.
type Source struct {
	cfg  Config
	http *source.HTTP
	log  *slog.Logger
}

var _ source.Source = (*Source)(nil)

// New checks cfg and builds the source.
func New(cfg Config) (*Source, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Site == "" {
		cfg.Site = DefaultSite
	}
	if cfg.BaseURL == "" {
		cfg.BaseURL = "https://api." + cfg.Site
	}
	if cfg.Streams == nil {
		cfg.Streams = []string{StreamHourlyUsage, StreamAttribution, StreamCosts}
	}
	if len(cfg.ProductFamilies) == 0 {
		cfg.ProductFamilies = []string{"all"}
	}
	if len(cfg.AttributionTypes) == 0 {
		cfg.AttributionTypes = DefaultAttributionTypes
	}
	if cfg.Settle == 0 {
		cfg.Settle = 72 * time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.RequestsPerSecond == 0 {
		cfg.RequestsPerSecond = 2 // usage metering is rate limited per org
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	log := cfg.Logger.With("component", "connector", "service", Service)
	apiKey, appKey := cfg.APIKey, cfg.AppKey
	h, err := source.NewHTTP(source.HTTPConfig{
		Egress:  cfg.Egress,
		Service: Service, BaseURL: cfg.BaseURL, Secrets: []string{apiKey, appKey},
		Authorize: func(r *http.Request) {
			r.Header.Set("DD-API-KEY", apiKey)
			r.Header.Set("DD-APPLICATION-KEY", appKey)
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

// BaseURL is the address the source calls: base_url, else the API of the
// site (https://api.<site>).
func (s *Source) BaseURL() string { return s.cfg.BaseURL }

// FromCredentials builds a source from stored credentials: api_key and
// app_key (required); site, attribution_tag and base_url (optional).
func FromCredentials(creds map[string]string, env source.Env) (*Source, error) {
	var missing []string
	for _, k := range []string{"api_key", "app_key"} {
		if creds[k] == "" {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("datadog credentials: missing %s", strings.Join(missing, ", "))
	}
	return New(Config{APIKey: creds["api_key"], AppKey: creds["app_key"], Site: creds["site"],
		BaseURL: creds["base_url"], AttributionTag: creds["attribution_tag"], Logger: env.Logger, Egress: &env.Egress})
}

// Check reads one hour of hourly usage: it needs both keys and the
// usage_read permission.
func (s *Source) Check(ctx context.Context) error {
	start := s.cfg.Now().UTC().Add(-2 * time.Hour).Truncate(time.Hour)
	q := url.Values{"filter[timestamp][start]": {start.Format(time.RFC3339)}, "filter[timestamp][end]": {start.Add(time.Hour).Format(time.RFC3339)},
		"filter[product_families]": {"infra_hosts"}}
	if err := s.http.GetJSON(ctx, "/api/v2/usage/hourly_usage", q, nil); err != nil {
		return fmt.Errorf("check datadog: %w", err)
	}
	return nil
}

// cursor holds, per stream (per attribution usage type), the first hour
// (or, for costs, month) that may still change: RFC 3339.
type cursor map[string]string

// Read reads every stream. An *AuthError stops the sync; a stream that
// fails otherwise is reported with Skip and keeps its cursor, the others go
// on, and Read returns the failures at the end.
func (s *Source) Read(ctx context.Context, cur source.Cursor, out source.Emitter) error {
	c := cursor{}
	if len(cur) > 0 {
		if err := json.Unmarshal(cur, &c); err != nil {
			return fmt.Errorf("datadog: cursor: %w", err)
		}
	}
	var failed []error
	run := func(name string, err error) error {
		switch {
		case err == nil:
			return nil
		case source.IsAuth(err) || ctx.Err() != nil:
			return err
		}
		out.Skip("datadog "+name, err)
		failed = append(failed, err)
		return nil
	}
	for _, stream := range s.cfg.Streams {
		switch stream {
		case StreamHourlyUsage:
			if err := run(stream, s.readHourlyUsage(ctx, c, out)); err != nil {
				return err
			}
		case StreamAttribution:
			for _, typ := range s.cfg.AttributionTypes {
				if err := run(stream+" "+typ, s.readAttribution(ctx, typ, c, out)); err != nil {
					return err
				}
			}
		case StreamCosts:
			if err := run(stream, s.readCosts(ctx, c, out)); err != nil {
				return err
			}
		}
	}
	return errors.Join(failed...)
}

// window is where a stream's read starts, where it ends, and where its
// cursor moves once read: everything older than Settle is final.
func (s *Source) window(c cursor, key string) (from, to, next time.Time, err error) {
	now := s.cfg.Now().UTC()
	to = now.Truncate(time.Hour).Add(time.Hour)
	from = s.cfg.Start
	if from.IsZero() {
		from = now.Truncate(time.Hour).Add(-7 * 24 * time.Hour)
	}
	if v, ok := c[key]; ok {
		if from, err = time.Parse(time.RFC3339, v); err != nil {
			return from, to, next, fmt.Errorf("cursor %s: %w", key, err)
		}
	}
	from = from.UTC().Truncate(time.Hour)
	next = now.Add(-s.cfg.Settle).Truncate(time.Hour)
	if next.Before(from) {
		next = from
	}
	return from, to, next, nil
}

// version of a period ending at end: end + Settle once that has passed (the
// same on every re-read), else the read time, lower, which a later read
// supersedes.
func (s *Source) version(end time.Time) uint32 {
	final := end.Add(s.cfg.Settle)
	if now := s.cfg.Now(); now.Before(final) {
		return uint32(now.Unix())
	}
	return uint32(final.Unix())
}

// emit validates the page's events (skipping invalid ones by id) and emits
// them with the cursor.
func (s *Source) emit(ctx context.Context, out source.Emitter, evs []event.Event, c cursor) error {
	valid := evs[:0]
	for _, ev := range evs {
		if err := ev.Validate(); err != nil {
			out.Skip("datadog "+ev.ID, err)
			continue
		}
		valid = append(valid, ev)
	}
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	return out.Emit(ctx, valid, b)
}

func copyCursor(c cursor) cursor {
	n := make(cursor, len(c))
	for k, v := range c {
		n[k] = v
	}
	return n
}

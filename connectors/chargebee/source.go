package chargebee

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/uvrhq/uvr/connectors/source"
	"github.com/uvrhq/uvr/pipeline/event"
)

// Resources are the Chargebee list endpoints the Source reads, in order:
// customers and subscriptions first so that revenue finds its customer known.
// Transactions are not read: they map to nothing (see Mapper).
var Resources = []string{"customers", "subscriptions", "invoices", "credit_notes"}

// DefaultPageSize is Chargebee's maximum list limit.
const DefaultPageSize = 100

// Config configures a Source for one Chargebee site.
type Config struct {
	Site   string // the site name: acme for acme.chargebee.com
	APIKey string // a read-only API key is enough
	// BaseURL overrides https://{Site}.chargebee.com (tests).
	BaseURL  string
	PageSize int // 1–100; 0 means DefaultPageSize
	// RequestsPerSecond, RetryWaitMin/Max tune the HTTP client (see
	// source.HTTPConfig); zero values take its defaults.
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
		errs = append(errs, errors.New("chargebee: api_key is required"))
	}
	if c.Site == "" && c.BaseURL == "" {
		errs = append(errs, errors.New("chargebee: site is required"))
	}
	if c.Site != "" && strings.ContainsAny(c.Site, "./:@ ") {
		errs = append(errs, fmt.Errorf("chargebee: site %q must be the bare site name (acme for acme.chargebee.com)", c.Site))
	}
	if c.PageSize < 0 || c.PageSize > 100 {
		errs = append(errs, fmt.Errorf("chargebee: page size must be between 1 and 100, got %d", c.PageSize))
	}
	return errors.Join(errs...)
}

// Source reads a Chargebee site incrementally through API v2.
type Source struct {
	cfg    Config
	http   *source.HTTP
	mapper Mapper
	log    *slog.Logger
}

var _ source.Source = (*Source)(nil)

// New checks cfg and builds the Source.
func New(cfg Config) (*Source, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.PageSize == 0 {
		cfg.PageSize = DefaultPageSize
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	log := cfg.Logger.With("component", "connector", "service", ServiceType)
	if cfg.BaseURL == "" {
		cfg.BaseURL = "https://" + cfg.Site + ".chargebee.com"
	}
	key := cfg.APIKey
	h, err := source.NewHTTP(source.HTTPConfig{
		Egress:  cfg.Egress,
		Service: ServiceType, BaseURL: cfg.BaseURL, Secrets: []string{key},
		// Chargebee takes the API key as the basic-auth user name, no password.
		Authorize:         func(r *http.Request) { r.SetBasicAuth(key, "") },
		RequestsPerSecond: cfg.RequestsPerSecond, RetryWaitMin: cfg.RetryWaitMin, RetryWaitMax: cfg.RetryWaitMax,
		Logger: log,
	})
	if err != nil {
		return nil, err
	}
	return &Source{cfg: cfg, http: h, log: log}, nil
}

// BaseURL is the address the source calls: base_url, else the site's own
// (https://<site>.chargebee.com).
func (s *Source) BaseURL() string { return s.cfg.BaseURL }

// FromCredentials builds a Source from the service catalog's credentials:
// api_key and site are required; base_url is optional (tests, proxies).
func FromCredentials(creds map[string]string, env source.Env) (*Source, error) {
	if err := source.RequireCredentials(ServiceType, creds, "api_key", "site"); err != nil {
		return nil, err
	}
	return New(Config{APIKey: creds["api_key"], Site: creds["site"], BaseURL: creds["base_url"], Logger: env.Logger, Egress: &env.Egress})
}

// Check lists one customer: the cheapest call that needs a valid key.
func (s *Source) Check(ctx context.Context) error {
	var page listPage
	if err := s.http.GetJSON(ctx, "/api/v2/customers", url.Values{"limit": {"1"}}, &page); err != nil {
		return fmt.Errorf("chargebee check: %w", err)
	}
	return nil
}

// cursor is the Source's saved state. After holds, per resource, the highest
// updated_at of a completed pass; a pass in progress is Resource + Offset
// (Chargebee's opaque next_offset) + Max, the highest updated_at it saw yet.
type cursor struct {
	After    map[string]int64 `json:"after,omitempty"`
	Resource string           `json:"resource,omitempty"`
	Offset   string           `json:"offset,omitempty"`
	Max      int64            `json:"max,omitempty"`
}

// listPage is a Chargebee list answer: {"list":[{"invoice":{…}}],"next_offset":"…"}.
type listPage struct {
	List       []map[string]json.RawMessage `json:"list"`
	NextOffset string                       `json:"next_offset"`
}

// Read implements source.Source: each resource is listed with
// updated_at[after] = (its last high-water mark − 1 s), so records changed in
// the same second as the mark are read again (deduplicated downstream) rather
// than missed, and include_deleted so deletions arrive as voids.
func (s *Source) Read(ctx context.Context, raw source.Cursor, out source.Emitter) error {
	var cur cursor
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &cur); err != nil {
			return fmt.Errorf("chargebee: cursor: %w", err)
		}
	}
	if cur.After == nil {
		cur.After = map[string]int64{}
	}
	for _, res := range Resources {
		if cur.Resource != "" && cur.Resource != res {
			continue // resume: skip to the resource in progress
		}
		if err := s.readResource(ctx, res, &cur, out); err != nil {
			return err
		}
	}
	return nil
}

func (s *Source) readResource(ctx context.Context, res string, cur *cursor, out source.Emitter) error {
	object := strings.TrimSuffix(res, "s")
	since := cur.After[res]
	offset, high := "", since
	if cur.Resource == res {
		offset, high = cur.Offset, max(cur.Max, since)
	}
	for page := 1; ; page++ {
		q := url.Values{"limit": {strconv.Itoa(s.cfg.PageSize)}, "include_deleted": {"true"}}
		if since > 0 {
			q.Set("updated_at[after]", strconv.FormatInt(since-1, 10))
		}
		if offset != "" {
			q.Set("offset", offset)
		}
		var p listPage
		if err := s.http.GetJSON(ctx, "/api/v2/"+res, q, &p); err != nil {
			return fmt.Errorf("chargebee: list %s page %d: %w", res, page, err)
		}
		var evs []event.Event
		for i, item := range p.List {
			rec, ok := item[object]
			if !ok {
				out.Skip(fmt.Sprintf("%s page %d item %d", res, page, i), fmt.Errorf("no %q object in the list entry", object))
				continue
			}
			var meta struct {
				ID        string `json:"id"`
				UpdatedAt int64  `json:"updated_at"`
			}
			_ = json.Unmarshal(rec, &meta) // a malformed record is reported by the mapper below
			mapped, err := s.mapper.Map(object, rec)
			if err != nil {
				out.Skip(fmt.Sprintf("%s %s (page %d item %d)", object, meta.ID, page, i), err)
				continue
			}
			high = max(high, meta.UpdatedAt)
			evs = append(evs, mapped...)
		}
		next := cursor{After: cur.After, Resource: res, Offset: p.NextOffset, Max: high}
		done := p.NextOffset == ""
		if done {
			after := make(map[string]int64, len(cur.After)+1)
			for k, v := range cur.After {
				after[k] = v
			}
			after[res] = high
			next = cursor{After: after}
		}
		b, err := json.Marshal(next)
		if err != nil {
			return fmt.Errorf("chargebee: encode cursor: %w", err)
		}
		if err := out.Emit(ctx, evs, b); err != nil {
			return fmt.Errorf("chargebee: emit %s page %d: %w", res, page, err)
		}
		s.log.Debug("page read", "resource", res, "page", page, "records", len(p.List), "events", len(evs))
		*cur = next
		if done {
			return nil
		}
		offset = p.NextOffset
	}
}

package recurly

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

// Resources are the Recurly v3 list endpoints the Source reads, in order.
// Invoices, line items and credit payments are not read: they map to nothing.
var Resources = []string{"accounts", "subscriptions", "transactions"}

// Defaults of Config.
const (
	DefaultBaseURL  = "https://v3.recurly.com"
	DefaultPageSize = 200
	// Accept selects the API version the mapping is written for.
	Accept = "application/vnd.recurly.v2021-02-25"
)

// Config configures a Source for one Recurly site.
type Config struct {
	APIKey    string
	Subdomain string // names the site in logs; the key selects it
	// BaseURL overrides DefaultBaseURL (the EU data center, tests).
	BaseURL  string
	PageSize int // 1–200; 0 means DefaultPageSize
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
		errs = append(errs, errors.New("recurly: api_key is required"))
	}
	if c.Subdomain == "" {
		errs = append(errs, errors.New("recurly: subdomain is required"))
	}
	if c.PageSize < 0 || c.PageSize > 200 {
		errs = append(errs, fmt.Errorf("recurly: page size must be between 1 and 200, got %d", c.PageSize))
	}
	return errors.Join(errs...)
}

// Source reads a Recurly site through API v3.
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
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultBaseURL
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	log := cfg.Logger.With("component", "connector", "service", ServiceType, "subdomain", cfg.Subdomain)
	key := cfg.APIKey
	h, err := source.NewHTTP(source.HTTPConfig{
		Egress:  cfg.Egress,
		Service: ServiceType, BaseURL: cfg.BaseURL, Secrets: []string{key},
		Authorize: func(r *http.Request) {
			r.SetBasicAuth(key, "")
			r.Header.Set("Accept", Accept) // overrides source.HTTP's application/json
		},
		RequestsPerSecond: cfg.RequestsPerSecond, RetryWaitMin: cfg.RetryWaitMin, RetryWaitMax: cfg.RetryWaitMax,
		Logger: log,
	})
	if err != nil {
		return nil, err
	}
	return &Source{cfg: cfg, http: h, log: log}, nil
}

// FromCredentials builds a Source from the service catalog's credentials:
// api_key and subdomain are required; base_url is optional.
func FromCredentials(creds map[string]string, env source.Env) (*Source, error) {
	if err := source.RequireCredentials(ServiceType, creds, "api_key", "subdomain"); err != nil {
		return nil, err
	}
	return New(Config{APIKey: creds["api_key"], Subdomain: creds["subdomain"], BaseURL: creds["base_url"], Logger: env.Logger, Egress: &env.Egress})
}

// Check lists one account.
func (s *Source) Check(ctx context.Context) error {
	var p listPage
	if err := s.http.GetJSON(ctx, "/accounts", url.Values{"limit": {"1"}}, &p); err != nil {
		return fmt.Errorf("recurly check: %w", err)
	}
	return nil
}

// listPage is a Recurly v3 list answer: {"object":"list","has_more":…,"next":"/…?cursor=…","data":[…]}.
type listPage struct {
	HasMore bool              `json:"has_more"`
	Next    string            `json:"next"`
	Data    []json.RawMessage `json:"data"`
}

// cursor is the Source's saved state: per resource the highest updated_at of
// a completed pass (Marks); a pass in progress is Resource + Next (Recurly's
// next path, which carries its own cursor and filters) + Max.
type cursor struct {
	Marks    map[string]string `json:"marks,omitempty"`
	Resource string            `json:"resource,omitempty"`
	Next     string            `json:"next,omitempty"`
	Max      string            `json:"max,omitempty"`
}

// Read implements source.Source: each resource is listed sorted by
// updated_at ascending from begin_time = its mark (inclusive: records of the
// mark's instant are read again, deduplicated downstream).
func (s *Source) Read(ctx context.Context, raw source.Cursor, out source.Emitter) error {
	var cur cursor
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &cur); err != nil {
			return fmt.Errorf("recurly: cursor: %w", err)
		}
	}
	for _, res := range Resources {
		if cur.Resource != "" && cur.Resource != res {
			continue
		}
		if err := s.readResource(ctx, res, &cur, out); err != nil {
			return err
		}
	}
	return nil
}

func (s *Source) readResource(ctx context.Context, res string, cur *cursor, out source.Emitter) error {
	stream := strings.TrimSuffix(res, "s")
	path, high := "", cur.Marks[res]
	if cur.Resource == res {
		path, high = cur.Next, maxTime(high, cur.Max)
	}
	for page := 1; ; page++ {
		var (
			p   listPage
			err error
		)
		if path == "" {
			q := url.Values{"limit": {strconv.Itoa(s.cfg.PageSize)}, "sort": {"updated_at"}, "order": {"asc"}}
			if mark := cur.Marks[res]; mark != "" {
				q.Set("begin_time", mark)
			}
			err = s.http.GetJSON(ctx, "/"+res, q, &p)
		} else {
			err = s.http.GetJSON(ctx, path, nil, &p)
		}
		if err != nil {
			return fmt.Errorf("recurly: list %s page %d: %w", res, page, err)
		}
		var evs []event.Event
		for i, rec := range p.Data {
			var meta struct {
				ID        string `json:"id"`
				UpdatedAt string `json:"updated_at"`
			}
			_ = json.Unmarshal(rec, &meta) // a malformed record is reported by the mapper
			mapped, err := s.mapper.Map(res, rec)
			if err != nil {
				out.Skip(fmt.Sprintf("%s %s (page %d item %d)", stream, meta.ID, page, i), err)
				continue
			}
			high = maxTime(high, meta.UpdatedAt)
			evs = append(evs, mapped...)
		}
		next := ""
		if p.HasMore {
			// next is a path with its cursor ("/accounts?cursor=…"). An
			// absolute link must name the configured host itself: the key
			// goes with the request, so a link elsewhere is an error, never
			// followed (nor cut to its path, which would trust the rest).
			u, err := url.Parse(p.Next)
			if err != nil || p.Next == "" {
				return fmt.Errorf("recurly: list %s page %d: has_more without a usable next %q", res, page, p.Next)
			}
			if u.Scheme != "" || u.Host != "" {
				base, _ := url.Parse(s.cfg.BaseURL) // checked by source.NewHTTP
				if !source.SameOrigin(base, u) {
					return fmt.Errorf("recurly: list %s page %d: next link on %s leaves the configured host %s", res, page, u.Host, base.Host)
				}
			}
			next = u.EscapedPath()
			if u.RawQuery != "" {
				next += "?" + u.RawQuery
			}
		}
		nc := cursor{Marks: cur.Marks, Resource: res, Next: next, Max: high}
		done := next == ""
		if done {
			marks := make(map[string]string, len(cur.Marks)+1)
			for k, v := range cur.Marks {
				marks[k] = v
			}
			if high != "" {
				marks[res] = high
			}
			nc = cursor{Marks: marks}
		}
		b, err := json.Marshal(nc)
		if err != nil {
			return fmt.Errorf("recurly: encode cursor: %w", err)
		}
		if err := out.Emit(ctx, evs, b); err != nil {
			return fmt.Errorf("recurly: emit %s page %d: %w", res, page, err)
		}
		s.log.Debug("page read", "resource", res, "page", page, "records", len(p.Data), "events", len(evs))
		*cur = nc
		if done {
			return nil
		}
		path = next
	}
}

// maxTime returns the later of two RFC 3339 times; an empty or unparsable
// one loses.
func maxTime(a, b string) string {
	ta, ea := time.Parse(time.RFC3339Nano, a)
	tb, eb := time.Parse(time.RFC3339Nano, b)
	switch {
	case eb != nil:
		if ea != nil {
			return ""
		}
		return a
	case ea != nil || tb.After(ta):
		return b
	}
	return a
}

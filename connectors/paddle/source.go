package paddle

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

// Resources are the Paddle Billing list endpoints the Source reads, in order.
var Resources = []string{"customers", "subscriptions", "transactions", "adjustments"}

// incremental lists the resources whose list endpoint filters by
// updated_at[GTE]; the others are read whole on every sync (deduplicated
// downstream), since a change (a cancellation, an approval) does not move
// them past an id cursor.
var incremental = map[string]bool{"transactions": true}

// Defaults of Config.
const (
	DefaultBaseURL  = "https://api.paddle.com"
	DefaultPageSize = 50
)

// Config configures a Source for one Paddle Billing account.
type Config struct {
	APIKey   string
	VendorID string // names the account in logs; the API key selects it
	// BaseURL overrides DefaultBaseURL (sandbox-api.paddle.com, tests).
	BaseURL  string
	PageSize int // 1–50; 0 means DefaultPageSize
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
		errs = append(errs, errors.New("paddle: api_key is required"))
	}
	if c.VendorID == "" {
		errs = append(errs, errors.New("paddle: vendor_id is required"))
	}
	if c.PageSize < 0 || c.PageSize > 50 {
		errs = append(errs, fmt.Errorf("paddle: page size must be between 1 and 50, got %d", c.PageSize))
	}
	return errors.Join(errs...)
}

// Source reads a Paddle Billing account.
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
	log := cfg.Logger.With("component", "connector", "service", ServiceType, "vendor_id", cfg.VendorID)
	key := cfg.APIKey
	h, err := source.NewHTTP(source.HTTPConfig{
		Egress:  cfg.Egress,
		Service: ServiceType, BaseURL: cfg.BaseURL, Secrets: []string{key},
		Authorize:         func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+key) },
		RequestsPerSecond: cfg.RequestsPerSecond, RetryWaitMin: cfg.RetryWaitMin, RetryWaitMax: cfg.RetryWaitMax,
		Logger: log,
	})
	if err != nil {
		return nil, err
	}
	return &Source{cfg: cfg, http: h, log: log}, nil
}

// FromCredentials builds a Source from the service catalog's credentials:
// api_key and vendor_id are required; base_url is optional.
func FromCredentials(creds map[string]string, env source.Env) (*Source, error) {
	if err := source.RequireCredentials(ServiceType, creds, "api_key", "vendor_id"); err != nil {
		return nil, err
	}
	return New(Config{APIKey: creds["api_key"], VendorID: creds["vendor_id"], BaseURL: creds["base_url"], Logger: env.Logger, Egress: &env.Egress})
}

// Check lists one customer.
func (s *Source) Check(ctx context.Context) error {
	var p listPage
	if err := s.http.GetJSON(ctx, "/customers", url.Values{"per_page": {"1"}}, &p); err != nil {
		return fmt.Errorf("paddle check: %w", err)
	}
	return nil
}

// listPage is a Paddle list answer: {"data":[…],"meta":{"pagination":{"next","has_more"}}}.
type listPage struct {
	Data []json.RawMessage `json:"data"`
	Meta struct {
		Pagination struct {
			Next    string `json:"next"`
			HasMore bool   `json:"has_more"`
		} `json:"pagination"`
	} `json:"meta"`
}

// cursor is the Source's saved state: per incremental resource the highest
// updated_at of a completed pass (Marks); a pass in progress is Resource +
// After (the "after" of Paddle's next link) + Max.
type cursor struct {
	Marks    map[string]string `json:"marks,omitempty"`
	Resource string            `json:"resource,omitempty"`
	After    string            `json:"after,omitempty"`
	Max      string            `json:"max,omitempty"`
}

// Read implements source.Source.
func (s *Source) Read(ctx context.Context, raw source.Cursor, out source.Emitter) error {
	var cur cursor
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &cur); err != nil {
			return fmt.Errorf("paddle: cursor: %w", err)
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
	after, high := "", cur.Marks[res]
	if cur.Resource == res {
		after, high = cur.After, maxTime(high, cur.Max)
	}
	for page := 1; ; page++ {
		q := url.Values{"per_page": {strconv.Itoa(s.cfg.PageSize)}}
		if mark := cur.Marks[res]; incremental[res] && mark != "" {
			// GTE: what changed in the mark's own instant is read again
			// (deduplicated) rather than missed.
			q.Set("updated_at[GTE]", mark)
		}
		if after != "" {
			q.Set("after", after)
		}
		var p listPage
		if err := s.http.GetJSON(ctx, "/"+res, q, &p); err != nil {
			return fmt.Errorf("paddle: list %s page %d: %w", res, page, err)
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
		nextAfter := ""
		if p.Meta.Pagination.HasMore {
			// Paddle's next is an absolute link to api.paddle.com; only its
			// "after" is kept so the configured base URL stays in charge.
			u, err := url.Parse(p.Meta.Pagination.Next)
			if err != nil || u.Query().Get("after") == "" {
				return fmt.Errorf("paddle: list %s page %d: has_more without a usable next link %q", res, page, p.Meta.Pagination.Next)
			}
			nextAfter = u.Query().Get("after")
		}
		next := cursor{Marks: cur.Marks, Resource: res, After: nextAfter, Max: high}
		done := nextAfter == ""
		if done {
			marks := make(map[string]string, len(cur.Marks)+1)
			for k, v := range cur.Marks {
				marks[k] = v
			}
			if incremental[res] && high != "" {
				marks[res] = high
			}
			next = cursor{Marks: marks}
		}
		b, err := json.Marshal(next)
		if err != nil {
			return fmt.Errorf("paddle: encode cursor: %w", err)
		}
		if err := out.Emit(ctx, evs, b); err != nil {
			return fmt.Errorf("paddle: emit %s page %d: %w", res, page, err)
		}
		s.log.Debug("page read", "resource", res, "page", page, "records", len(p.Data), "events", len(evs))
		*cur = next
		if done {
			return nil
		}
		after = nextAfter
	}
}

// maxTime returns the later of two RFC 3339 times (either may be empty or,
// for a malformed record's, unparsable: then the other wins).
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

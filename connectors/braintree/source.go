package braintree

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/uvrhq/uvr/connectors/source"
	"github.com/uvrhq/uvr/pipeline/event"
)

// Defaults of Config.
const (
	DefaultBaseURL  = "https://payments.braintree-api.com"
	DefaultPageSize = 50
	// DefaultLookback re-reads the payments created in the last three days of
	// the previous pass: a payment's status changes after its creation
	// (submitted → settled, or voided before settlement), and the search
	// can only ask by creation time.
	DefaultLookback = 72 * time.Hour
	// APIVersion is the Braintree-Version header the query is written for.
	APIVersion = "2019-01-01"
)

// Config configures a Source for one Braintree merchant.
type Config struct {
	MerchantID string // names the merchant in logs; the keys select it in the API
	PublicKey  string
	PrivateKey string
	// BaseURL overrides DefaultBaseURL (the sandbox, tests).
	BaseURL  string
	PageSize int           // 1–50; 0 means DefaultPageSize
	Lookback time.Duration // 0 means DefaultLookback
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
	if c.MerchantID == "" {
		errs = append(errs, errors.New("braintree: merchant_id is required"))
	}
	if c.PublicKey == "" {
		errs = append(errs, errors.New("braintree: public_key is required"))
	}
	if c.PrivateKey == "" {
		errs = append(errs, errors.New("braintree: private_key is required"))
	}
	if c.PageSize < 0 || c.PageSize > 50 {
		errs = append(errs, fmt.Errorf("braintree: page size must be between 1 and 50, got %d", c.PageSize))
	}
	if c.Lookback < 0 {
		errs = append(errs, errors.New("braintree: lookback must not be negative"))
	}
	return errors.Join(errs...)
}

// Source reads a Braintree merchant's payments (sales and refunds) through
// the GraphQL API. GraphQL rather than the XML API: it is JSON (so it runs on
// source.HTTP), one search returns sales and refunds together, and it pages
// with plain cursors instead of the XML API's two-step id search.
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
	if cfg.Lookback == 0 {
		cfg.Lookback = DefaultLookback
	}
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultBaseURL
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	log := cfg.Logger.With("component", "connector", "service", ServiceType, "merchant_id", cfg.MerchantID)
	pub, priv := cfg.PublicKey, cfg.PrivateKey
	h, err := source.NewHTTP(source.HTTPConfig{
		Egress:  cfg.Egress,
		Service: ServiceType, BaseURL: cfg.BaseURL, Secrets: []string{priv, pub},
		Authorize: func(r *http.Request) {
			r.SetBasicAuth(pub, priv)
			r.Header.Set("Braintree-Version", APIVersion)
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
// merchant_id, public_key and private_key are required; base_url is optional.
func FromCredentials(creds map[string]string, env source.Env) (*Source, error) {
	if err := source.RequireCredentials(ServiceType, creds, "merchant_id", "public_key", "private_key"); err != nil {
		return nil, err
	}
	return New(Config{MerchantID: creds["merchant_id"], PublicKey: creds["public_key"], PrivateKey: creds["private_key"],
		BaseURL: creds["base_url"], Logger: env.Logger, Egress: &env.Egress})
}

// paymentsQuery searches sales and refunds by creation time. Field names are
// the GraphQL API's (Payment interface, Transaction.customer,
// Refund.refundedTransaction).
const paymentsQuery = `query Payments($input: PaymentSearchInput!, $first: Int, $after: String) {
  search {
    payments(input: $input, first: $first, after: $after) {
      pageInfo { hasNextPage endCursor }
      edges { node {
        __typename id legacyId createdAt orderId status merchantAccountId
        amount { value currencyCode }
        statusHistory { status timestamp }
        ... on Transaction { customer { legacyId email firstName lastName company } }
        ... on Refund { refundedTransaction { legacyId customer { legacyId email firstName lastName company } } }
      } }
    }
  }
}`

type gqlRequest struct {
	Query     string         `json:"query"`
	Variables map[string]any `json:"variables,omitempty"`
}

type gqlError struct {
	Message    string `json:"message"`
	Extensions struct {
		ErrorClass string `json:"errorClass"`
	} `json:"extensions"`
}

type paymentsAnswer struct {
	Data *struct {
		Search struct {
			Payments struct {
				PageInfo struct {
					HasNextPage bool   `json:"hasNextPage"`
					EndCursor   string `json:"endCursor"`
				} `json:"pageInfo"`
				Edges []struct {
					Node json.RawMessage `json:"node"`
				} `json:"edges"`
			} `json:"payments"`
		} `json:"search"`
	} `json:"data"`
	Errors []gqlError `json:"errors"`
}

// post sends one GraphQL request. GraphQL reports some failures in a 200
// answer's "errors"; an authentication or authorization class there is an
// *source.AuthError like an HTTP 401/403.
func (s *Source) post(ctx context.Context, req gqlRequest, out any, errs func() []gqlError) error {
	if err := s.http.Do(ctx, http.MethodPost, "/graphql", nil, req, out); err != nil {
		return err
	}
	var msgs []string
	for _, e := range errs() {
		switch e.Extensions.ErrorClass {
		case "AUTHENTICATION", "AUTHORIZATION":
			return &source.AuthError{Service: ServiceType, Status: http.StatusOK, Detail: e.Message}
		}
		msgs = append(msgs, e.Message)
	}
	if len(msgs) > 0 {
		return fmt.Errorf("braintree graphql: %s", strings.Join(msgs, "; "))
	}
	return nil
}

// Check runs the API's ping query, which needs valid keys.
func (s *Source) Check(ctx context.Context) error {
	var out struct {
		Data *struct {
			Ping string `json:"ping"`
		} `json:"data"`
		Errors []gqlError `json:"errors"`
	}
	if err := s.post(ctx, gqlRequest{Query: "query { ping }"}, &out, func() []gqlError { return out.Errors }); err != nil {
		return fmt.Errorf("braintree check: %w", err)
	}
	return nil
}

// cursor is the Source's saved state: the pass's lower creation bound
// (Since, empty for everything), the GraphQL page cursor inside the pass
// (After) and the latest creation time seen (Max).
type cursor struct {
	Since string `json:"since,omitempty"`
	After string `json:"after,omitempty"`
	Max   string `json:"max,omitempty"`
}

// Read implements source.Source.
func (s *Source) Read(ctx context.Context, raw source.Cursor, out source.Emitter) error {
	var cur cursor
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &cur); err != nil {
			return fmt.Errorf("braintree: cursor: %w", err)
		}
	}
	var high time.Time
	if cur.Max != "" {
		t, err := parseTime(cur.Max)
		if err != nil {
			return fmt.Errorf("braintree: cursor max: %w", err)
		}
		high = t
	}
	for page := 1; ; page++ {
		input := map[string]any{}
		if cur.Since != "" {
			input["createdAt"] = map[string]string{"greaterThanOrEqualTo": cur.Since}
		}
		vars := map[string]any{"input": input, "first": s.cfg.PageSize}
		if cur.After != "" {
			vars["after"] = cur.After
		}
		var ans paymentsAnswer
		if err := s.post(ctx, gqlRequest{Query: paymentsQuery, Variables: vars}, &ans, func() []gqlError { return ans.Errors }); err != nil {
			return fmt.Errorf("braintree: search payments page %d: %w", page, err)
		}
		if ans.Data == nil {
			return fmt.Errorf("braintree: search payments page %d: answer has no data", page)
		}
		conn := ans.Data.Search.Payments
		var evs []event.Event
		for i, edge := range conn.Edges {
			var meta struct {
				LegacyID  string `json:"legacyId"`
				CreatedAt string `json:"createdAt"`
			}
			_ = json.Unmarshal(edge.Node, &meta) // a malformed node is reported by the mapper
			mapped, err := s.mapper.Map("payments", edge.Node)
			if err != nil {
				out.Skip(fmt.Sprintf("payment %s (page %d item %d)", meta.LegacyID, page, i), err)
				continue
			}
			if t, err := parseTime(meta.CreatedAt); err == nil && t.After(high) {
				high = t
			}
			evs = append(evs, mapped...)
		}
		next := cursor{Since: cur.Since, After: conn.PageInfo.EndCursor, Max: formatTime(high)}
		done := !conn.PageInfo.HasNextPage
		if done {
			// The next pass starts Lookback before the newest payment seen.
			next = cursor{Since: cur.Since, Max: formatTime(high)}
			if !high.IsZero() {
				next.Since = formatTime(high.Add(-s.cfg.Lookback))
			}
		}
		b, err := json.Marshal(next)
		if err != nil {
			return fmt.Errorf("braintree: encode cursor: %w", err)
		}
		if err := out.Emit(ctx, evs, b); err != nil {
			return fmt.Errorf("braintree: emit page %d: %w", page, err)
		}
		s.log.Debug("page read", "page", page, "records", len(conn.Edges), "events", len(evs))
		cur = next
		if done {
			return nil
		}
	}
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

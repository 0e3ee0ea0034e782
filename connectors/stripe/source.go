package stripe

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	stripego "github.com/stripe/stripe-go/v82"
	"golang.org/x/time/rate"

	"github.com/uvrhq/uvr/connectors/source"
	"github.com/uvrhq/uvr/pipeline/event"
)

// Config configures the native Stripe source.
type Config struct {
	// APIKey is a secret (sk_…) or restricted (rk_…) key with read access.
	// It never appears in an error or a log line.
	APIKey string
	// BaseURL overrides https://api.stripe.com (stripe-mock, tests).
	BaseURL string
	// Account (acct_…) is a connected account to read, sent as the
	// Stripe-Account header with the platform's key (Stripe Connect).
	// Empty: the key's own account.
	Account string
	// Start is where a sync with no cursor begins (objects created at or
	// after it); zero means the whole account history.
	Start time.Time
	// Lookback bounds how far back an unsettled object (an open invoice, a
	// pending charge or refund, an open dispute) holds the watermark so that
	// the next sync sees it settle; default 90 days.
	Lookback time.Duration
	// PageSize of list calls, 1-100; default 100.
	PageSize int
	// RequestsPerSecond caps this source's calls; default 20, below Stripe's
	// read limits (100/s live, 25/s test mode).
	RequestsPerSecond float64
	// NetworkRetries is stripe-go's MaxNetworkRetries (connection errors,
	// 409, 5xx, 429 lock timeouts; 0.5-5 s backoff); default 3, negative none.
	NetworkRetries int
	// Retries are this source's own retries of what stripe-go does not
	// retry: a 429 rate_limit and a 5xx that carries Stripe's error object
	// (stripe-go retries only network errors, 409, non-JSON 5xx and 429 lock
	// timeouts). It waits Retry-After when the answer has one, else a
	// jittered exponential backoff from RetryWait up to 30 s; default 6.
	Retries   int
	RetryWait time.Duration // default 1 s
	// Timeout of one HTTP attempt; default 60 s.
	Timeout time.Duration
	Logger  *slog.Logger
	// Egress bounds the addresses called; nil: any (tests, an operator's
	// own address). FromCredentials always sets the service policy.
	Egress *source.Egress
}

// Validate reports every problem of cfg.
func (c Config) Validate() error {
	var errs []error
	if strings.TrimSpace(c.APIKey) == "" {
		errs = append(errs, errors.New("api_key is required"))
	}
	if c.BaseURL != "" {
		u, err := url.Parse(c.BaseURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("base URL %q must be an absolute http(s) URL", c.BaseURL))
		} else if c.Egress != nil {
			if err := c.Egress.CheckURL("base_url", c.BaseURL); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if c.PageSize < 0 || c.PageSize > 100 {
		errs = append(errs, fmt.Errorf("page size %d must be between 1 and 100", c.PageSize))
	}
	if c.Lookback < 0 {
		errs = append(errs, errors.New("lookback must not be negative"))
	}
	return errors.Join(errs...)
}

// Source is the native Stripe connector: it lists each object type through
// stripe-go, page by page, and maps every object with Mapper.
type Source struct {
	cfg     Config
	backend stripego.Backend
	limiter *rate.Limiter
	log     *slog.Logger
	now     func() time.Time
}

var _ source.Source = (*Source)(nil)

// New checks cfg and builds the source. No call is made until Check or Read.
func New(cfg Config) (*Source, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("stripe source: %w", err)
	}
	if cfg.BaseURL == "" {
		cfg.BaseURL = stripego.APIURL
	}
	if cfg.Lookback == 0 {
		cfg.Lookback = 90 * 24 * time.Hour
	}
	if cfg.PageSize == 0 {
		cfg.PageSize = 100
	}
	if cfg.RequestsPerSecond <= 0 {
		cfg.RequestsPerSecond = 20
	}
	switch {
	case cfg.NetworkRetries == 0:
		cfg.NetworkRetries = 3
	case cfg.NetworkRetries < 0:
		cfg.NetworkRetries = 0
	}
	switch {
	case cfg.Retries == 0:
		cfg.Retries = 6
	case cfg.Retries < 0:
		cfg.Retries = 0
	}
	if cfg.RetryWait <= 0 {
		cfg.RetryWait = time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 60 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	backend := stripego.GetBackendWithConfig(stripego.APIBackend, &stripego.BackendConfig{
		URL:               stripego.String(strings.TrimRight(cfg.BaseURL, "/")),
		HTTPClient:        cfg.Egress.Client(cfg.Timeout),
		MaxNetworkRetries: stripego.Int64(int64(cfg.NetworkRetries)),
		// stripe-go's logger writes request lines and raw error bodies to
		// stderr; this source logs through slog itself.
		LeveledLogger:   &stripego.LeveledLogger{Level: stripego.LevelNull},
		EnableTelemetry: stripego.Bool(false),
	})
	return &Source{
		cfg:     cfg,
		backend: backend,
		limiter: rate.NewLimiter(rate.Limit(cfg.RequestsPerSecond), 1),
		log:     cfg.Logger.With("component", "stripe-source"),
		now:     time.Now,
	}, nil
}

// FromCredentials builds a source from a credential map as the service
// catalog stores it: api_key (required), account_id (optional: the
// Stripe-Account header), base_url (optional).
func FromCredentials(creds map[string]string, env source.Env) (*Source, error) {
	key := strings.TrimSpace(creds["api_key"])
	if key == "" {
		return nil, errors.New("stripe credentials: api_key is missing")
	}
	return New(Config{APIKey: key, Account: strings.TrimSpace(creds["account_id"]), BaseURL: creds["base_url"], Logger: env.Logger, Egress: &env.Egress})
}

// Check lists one customer: cheap, and it proves the key can read.
func (s *Source) Check(ctx context.Context) error {
	var page rawList
	params := newListParams(ctx, 1)
	if err := s.call(ctx, "/v1/customers", params, &page); err != nil {
		return fmt.Errorf("stripe check: %w", err)
	}
	return nil
}

// listParams are the parameters of a list call. stripe-go's Backend.Call
// reflects on the Metadata and Expand fields every generated params struct
// has, so this one has them too.
type listParams struct {
	stripego.ListParams `form:"*"`
	Expand              []*string         `form:"expand"`
	Metadata            map[string]string `form:"-"`
}

func newListParams(ctx context.Context, limit int) *listParams {
	return &listParams{ListParams: stripego.ListParams{Context: ctx, Limit: stripego.Int64(int64(limit))}}
}

// rawList is a page of a list call with each object kept as raw JSON, so
// the Mapper sees exactly what Stripe (or Airbyte) sends.
type rawList struct {
	stripego.APIResource
	stripego.ListMeta
	Data []json.RawMessage `json:"data"`
}

// stream is how one object type is listed.
type stream struct {
	name, path string
	expand     []string
	// byCreated: list incrementally with created[gte]; else every Read lists
	// all (subscriptions change state long after they are created).
	byCreated bool
	filters   [][3]string
	// unsettled: the object may still change in a way that moves money, so
	// the watermark must not pass it.
	unsettled func(status string, captured *bool) bool
}

var streams = []stream{
	{name: StreamCustomers, path: "/v1/customers", byCreated: true},
	{name: StreamInvoices, path: "/v1/invoices", byCreated: true, unsettled: func(st string, _ *bool) bool {
		return st == "draft" || st == "open" || st == "uncollectible"
	}},
	{name: StreamCharges, path: "/v1/charges", byCreated: true, unsettled: func(st string, captured *bool) bool {
		return st == "pending" || (st == "succeeded" && captured != nil && !*captured)
	}},
	// The expanded charge gives a refund or dispute its customer.
	{name: StreamRefunds, path: "/v1/refunds", byCreated: true, expand: []string{"data.charge"}, unsettled: func(st string, _ *bool) bool {
		return st == "pending" || st == "requires_action"
	}},
	{name: StreamCreditNotes, path: "/v1/credit_notes", byCreated: true},
	{name: StreamDisputes, path: "/v1/disputes", byCreated: true, expand: []string{"data.charge"}, unsettled: func(st string, _ *bool) bool {
		return st != "won" && st != "lost" && st != "warning_closed"
	}},
	{name: StreamSubscriptions, path: "/v1/subscriptions", filters: [][3]string{{"status", "", "all"}}},
}

// Cursor is the Source's JSON cursor: one entry per stream.
type Cursor map[string]*StreamCursor

// StreamCursor is one stream's position. Since is the created[gte] lower
// bound of the listing; After, High and Hold describe a listing in progress
// (Stripe lists newest first, so the watermark may only move once a listing
// has reached its end).
type StreamCursor struct {
	Since int64  `json:"since,omitempty"` // unix seconds
	After string `json:"after,omitempty"` // starting_after: the last object read
	High  int64  `json:"high,omitempty"`  // newest created seen in this listing
	Hold  int64  `json:"hold,omitempty"`  // oldest created of an unsettled object seen
}

// Read lists every stream from cursor and emits each page's events with the
// cursor after that page. It returns nil once every stream is caught up; an
// *source.AuthError (or any error after retries) stops it.
func (s *Source) Read(ctx context.Context, cursor source.Cursor, out source.Emitter) error {
	cur := Cursor{}
	if len(cursor) > 0 && string(cursor) != "null" {
		if err := json.Unmarshal(cursor, &cur); err != nil {
			return fmt.Errorf("stripe: malformed cursor: %w", err)
		}
	}
	for _, st := range streams {
		if err := s.readStream(ctx, st, cur, out); err != nil {
			return err
		}
	}
	return nil
}

func (s *Source) readStream(ctx context.Context, st stream, cur Cursor, out source.Emitter) error {
	pos := cur[st.name]
	if pos == nil {
		pos = &StreamCursor{}
		if st.byCreated && !s.cfg.Start.IsZero() {
			pos.Since = s.cfg.Start.Unix()
		}
		cur[st.name] = pos
	}
	start := time.Now()
	var pages, objects, events int
	for {
		params := newListParams(ctx, s.cfg.PageSize)
		if st.byCreated && pos.Since > 0 {
			params.Filters.AddFilter("created", "gte", strconv.FormatInt(pos.Since, 10))
		}
		for _, f := range st.filters {
			params.Filters.AddFilter(f[0], f[1], f[2])
		}
		for _, e := range st.expand {
			params.Expand = append(params.Expand, stripego.String(e))
		}
		if pos.After != "" {
			params.StartingAfter = stripego.String(pos.After)
		}
		var page rawList
		err := s.call(ctx, st.path, params, &page)
		var se *stripego.Error
		if err != nil && pos.After != "" && errors.As(err, &se) && se.Code == stripego.ErrorCodeResourceMissing && se.Param == "starting_after" {
			// The object we stopped after was deleted: list again from the
			// watermark; ids are deterministic, so repeats count once.
			s.log.Warn("resume point gone; relisting", "stream", st.name, "after", pos.After)
			*pos = StreamCursor{Since: pos.Since}
			continue
		}
		if err != nil {
			return fmt.Errorf("stripe list %s: %w", st.name, err)
		}
		pages++
		var batch []event.Event
		resumable := len(page.Data) == 0
		for i, raw := range page.Data {
			var meta struct {
				ID       string `json:"id"`
				Created  num    `json:"created"`
				Status   string `json:"status"`
				Captured *bool  `json:"captured"`
			}
			if err := json.Unmarshal(raw, &meta); err != nil || meta.ID == "" {
				out.Skip(fmt.Sprintf("%s page %d item %d", st.name, pages, i), fmt.Errorf("not a Stripe object: %.80s", raw))
				continue
			}
			objects++
			pos.After, resumable = meta.ID, true
			if meta.Created.V > pos.High {
				pos.High = meta.Created.V
			}
			if st.unsettled != nil && st.unsettled(meta.Status, meta.Captured) && meta.Created.Set && (pos.Hold == 0 || meta.Created.V < pos.Hold) {
				pos.Hold = meta.Created.V
			}
			raw, err = s.complete(ctx, st.name, raw)
			if err != nil {
				if source.IsAuth(err) || ctx.Err() != nil {
					return err
				}
				return fmt.Errorf("stripe %s %s: %w", st.name, meta.ID, err)
			}
			evs, err := Mapper{}.Map(st.name, raw)
			if err != nil {
				out.Skip(st.name+" "+meta.ID, err)
				continue
			}
			batch = append(batch, evs...)
		}
		done := !page.HasMore || len(page.Data) == 0
		if !done && !resumable {
			return fmt.Errorf("stripe list %s: page %d has no object with an id to continue after", st.name, pages)
		}
		if done {
			*pos = StreamCursor{Since: s.nextSince(st, pos)}
		}
		next, err := json.Marshal(cur)
		if err != nil {
			return fmt.Errorf("stripe: encode cursor: %w", err)
		}
		if err := out.Emit(ctx, batch, next); err != nil {
			return fmt.Errorf("stripe emit %s: %w", st.name, err)
		}
		events += len(batch)
		if done {
			break
		}
	}
	s.log.Info("stream read", "stream", st.name, "pages", pages, "objects", objects, "events", events,
		"since", pos.Since, "duration_ms", time.Since(start).Milliseconds())
	return nil
}

// nextSince is the watermark after a complete listing: the newest object
// seen (a later sync relists that second; ids make the repeats count once),
// held back to the oldest unsettled object within Lookback.
func (s *Source) nextSince(st stream, pos *StreamCursor) int64 {
	if !st.byCreated {
		return 0
	}
	next := max(pos.Since, pos.High)
	if pos.Hold > 0 && pos.Hold < next {
		floor := s.now().Add(-s.cfg.Lookback).Unix()
		next = min(max(pos.Hold, floor, pos.Since), next)
	}
	return next
}

// complete adds what a listed object lacks for the Mapper: an invoice's
// lines beyond the first page, and a charge's invoice link in API versions
// that dropped it.
func (s *Source) complete(ctx context.Context, stream string, raw json.RawMessage) (json.RawMessage, error) {
	switch stream {
	case StreamInvoices:
		return s.completeInvoice(ctx, raw)
	case StreamCharges:
		return s.linkCharge(ctx, raw)
	}
	return raw, nil
}

func (s *Source) completeInvoice(ctx context.Context, raw json.RawMessage) (json.RawMessage, error) {
	var inv struct {
		ID     string `json:"id"`
		Status string `json:"status"`
		Lines  *struct {
			HasMore bool `json:"has_more"`
		} `json:"lines"`
	}
	if err := json.Unmarshal(raw, &inv); err != nil || inv.Status != "paid" || inv.Lines == nil || !inv.Lines.HasMore {
		return raw, nil // the Mapper reports a malformed record
	}
	var lines []json.RawMessage
	var after string
	for {
		params := newListParams(ctx, 100)
		if after != "" {
			params.StartingAfter = stripego.String(after)
		}
		var page rawList
		if err := s.call(ctx, "/v1/invoices/"+url.PathEscape(inv.ID)+"/lines", params, &page); err != nil {
			return nil, fmt.Errorf("list lines: %w", err)
		}
		lines = append(lines, page.Data...)
		if !page.HasMore || len(page.Data) == 0 {
			break
		}
		after = recordID(page.Data[len(page.Data)-1])
	}
	return withField(raw, "lines", map[string]any{"object": "list", "data": lines, "has_more": false})
}

// linkCharge sets "invoice" on a succeeded, captured charge that lacks it
// (API 2025-03-31.basil and later), from the invoice payment that names the
// charge's payment intent, or null when none does.
func (s *Source) linkCharge(ctx context.Context, raw json.RawMessage) (json.RawMessage, error) {
	var ch struct {
		ID            string          `json:"id"`
		Status        string          `json:"status"`
		Captured      *bool           `json:"captured"`
		Invoice       json.RawMessage `json:"invoice"`
		PaymentIntent ref             `json:"payment_intent"`
	}
	if err := json.Unmarshal(raw, &ch); err != nil || ch.Invoice != nil || ch.Status != "succeeded" || (ch.Captured != nil && !*ch.Captured) {
		return raw, nil
	}
	var invoice any // null: a standalone charge
	if ch.PaymentIntent.ID != "" {
		params := newListParams(ctx, 1)
		params.Filters.AddFilter("payment", "type", "payment_intent")
		params.Filters.AddFilter("payment", "payment_intent", ch.PaymentIntent.ID)
		var page rawList
		if err := s.call(ctx, "/v1/invoice_payments", params, &page); err != nil {
			return nil, fmt.Errorf("find invoice payment: %w", err)
		}
		if len(page.Data) > 0 {
			var p struct {
				Invoice ref `json:"invoice"`
			}
			if err := json.Unmarshal(page.Data[0], &p); err != nil || p.Invoice.ID == "" {
				return nil, fmt.Errorf("invoice payment without an invoice: %.80s", page.Data[0])
			}
			invoice = p.Invoice.ID
		}
	}
	return withField(raw, "invoice", invoice)
}

// withField returns the object raw with key set to value.
func withField(raw json.RawMessage, key string, value any) (json.RawMessage, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, fmt.Errorf("malformed object: %w", err)
	}
	b, err := json.Marshal(value)
	if err != nil {
		return nil, err
	}
	obj[key] = b
	return json.Marshal(obj)
}

// call makes one GET through stripe-go, paced by the rate limiter, retrying
// a 429 or a 5xx after Retry-After or a backoff (stripe-go retries network
// errors itself). Errors:
// *source.AuthError for 401/403, else an error naming the path; the key is
// never in either.
func (s *Source) call(ctx context.Context, path string, params *listParams, out *rawList) error {
	if s.cfg.Account != "" {
		params.SetStripeAccount(s.cfg.Account)
	}
	for attempt := 0; ; attempt++ {
		if err := s.limiter.Wait(ctx); err != nil {
			return err
		}
		err := s.backend.Call(http.MethodGet, path, s.cfg.APIKey, params, out)
		if err == nil {
			return nil
		}
		var se *stripego.Error
		if !errors.As(err, &se) {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("GET %s: %s", path, s.redact(err.Error()))
		}
		switch {
		case se.HTTPStatusCode == http.StatusUnauthorized || se.HTTPStatusCode == http.StatusForbidden:
			return &source.AuthError{Service: Service, Status: se.HTTPStatusCode, Detail: s.redact(se.Msg)}
		case (se.HTTPStatusCode == http.StatusTooManyRequests || se.HTTPStatusCode >= 500) && attempt < s.cfg.Retries:
			wait := s.backoff(attempt, se)
			msg := "stripe answered with an error; retrying"
			if se.HTTPStatusCode == http.StatusTooManyRequests {
				msg = "rate limited; retrying"
			}
			s.log.Warn(msg, "path", path, "status", se.HTTPStatusCode, "attempt", attempt+1, "wait_ms", wait.Milliseconds())
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-t.C:
			}
			continue
		}
		// Keep the *stripe.Error reachable (errors.As), its texts redacted.
		red := *se
		red.Msg, red.DeveloperMsg = s.redact(se.Msg), s.redact(se.DeveloperMsg)
		red.Err = nil
		return &apiError{path: path, err: &red}
	}
}

// apiError is a refusal by Stripe other than a credential one.
type apiError struct {
	path string
	err  *stripego.Error
}

func (e *apiError) Error() string {
	return fmt.Sprintf("GET %s: HTTP %d %s: %s", e.path, e.err.HTTPStatusCode, e.err.Code, e.err.Msg)
}

func (e *apiError) Unwrap() error { return e.err }

// backoff is Retry-After when Stripe sent it, else a full-jitter exponential
// wait from RetryWait, capped at 30 s.
func (s *Source) backoff(attempt int, se *stripego.Error) time.Duration {
	if se.LastResponse != nil {
		if ra := se.LastResponse.Header.Get("Retry-After"); ra != "" {
			if secs, err := strconv.Atoi(strings.TrimSpace(ra)); err == nil && secs >= 0 {
				return min(time.Duration(secs)*time.Second, 5*time.Minute)
			}
			if t, err := http.ParseTime(ra); err == nil {
				return min(max(time.Until(t), 0), 5*time.Minute)
			}
		}
	}
	ceiling := min(s.cfg.RetryWait<<attempt, 30*time.Second)
	return s.cfg.RetryWait/2 + time.Duration(rand.Int64N(int64(ceiling)))/2
}

func (s *Source) redact(msg string) string {
	if k := s.cfg.APIKey; len(k) >= 4 {
		msg = strings.ReplaceAll(msg, k, "[redacted]")
	}
	return msg
}

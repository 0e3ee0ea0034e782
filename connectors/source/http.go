package source

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/hashicorp/go-retryablehttp"
	"golang.org/x/time/rate"
)

// HTTPConfig configures an HTTP client for one service.
type HTTPConfig struct {
	Service string // names the service in errors, e.g. "openai"
	BaseURL string // e.g. https://api.openai.com; tests point it at a local server
	// Authorize adds the credential to a request (header, basic auth). Its
	// values are redacted from every error and log line.
	Authorize func(*http.Request)
	// Secrets are redacted from error messages (the credential values).
	Secrets []string
	// RequestsPerSecond limits this client's calls; 0 means 10. Burst 1.
	RequestsPerSecond float64
	// Retries after a 429, a 5xx or a network error; 0 means 5, negative none.
	Retries int
	// RetryWaitMin/Max bound the exponential backoff (with full jitter)
	// between attempts; a Retry-After header overrides it. Defaults 500ms/30s.
	RetryWaitMin, RetryWaitMax time.Duration
	Timeout                    time.Duration // per attempt; default 60s
	Logger                     *slog.Logger
	// Egress, when set, bounds the addresses called (BaseURL when built, every
	// address dialled after): a connector built from a service's credentials
	// sets it. nil: any address (one the operator configured, tests).
	Egress *Egress
}

// HTTP is a JSON client with retries, Retry-After, a rate limit and
// redacted errors. Safe for concurrent use.
type HTTP struct {
	cfg     HTTPConfig
	client  *retryablehttp.Client
	limiter *rate.Limiter
	base    *url.URL
}

// NewHTTP checks cfg and builds the client.
func NewHTTP(cfg HTTPConfig) (*HTTP, error) {
	base, err := url.Parse(cfg.BaseURL)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("%s: base URL %q must be an absolute http(s) URL", cfg.Service, cfg.BaseURL)
	}
	if cfg.Egress != nil {
		if err := cfg.Egress.CheckURL("base_url", cfg.BaseURL); err != nil {
			return nil, fmt.Errorf("%s: %w", cfg.Service, err)
		}
	}
	if cfg.RequestsPerSecond <= 0 {
		cfg.RequestsPerSecond = 10
	}
	switch {
	case cfg.Retries == 0:
		cfg.Retries = 5
	case cfg.Retries < 0:
		cfg.Retries = 0
	}
	if cfg.RetryWaitMin <= 0 {
		cfg.RetryWaitMin = 500 * time.Millisecond
	}
	if cfg.RetryWaitMax <= 0 {
		cfg.RetryWaitMax = 30 * time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 60 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	c := retryablehttp.NewClient()
	c.HTTPClient = cfg.Egress.Client(cfg.Timeout)
	c.RetryMax = cfg.Retries
	c.RetryWaitMin, c.RetryWaitMax = cfg.RetryWaitMin, cfg.RetryWaitMax
	c.Backoff = jitterBackoff
	c.Logger = nil // retries are logged below, without URLs that could carry secrets
	c.RequestLogHook = func(_ retryablehttp.Logger, req *http.Request, attempt int) {
		if attempt > 0 {
			cfg.Logger.Warn("retrying request", "service", cfg.Service, "path", req.URL.Path, "attempt", attempt)
		}
	}
	// After the last attempt, hand back the response (or error) itself so the
	// caller maps it, instead of retryablehttp's generic "giving up" error.
	c.ErrorHandler = retryablehttp.PassthroughErrorHandler
	return &HTTP{cfg: cfg, client: c, limiter: rate.NewLimiter(rate.Limit(cfg.RequestsPerSecond), 1), base: base}, nil
}

// jitterBackoff honours Retry-After (429/503), else waits a random time up to
// min·2^attempt, capped at max ("full jitter"), so clients retrying together
// spread out.
func jitterBackoff(min, max time.Duration, attempt int, resp *http.Response) time.Duration {
	if resp != nil && (resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable) {
		if d := retryablehttp.DefaultBackoff(min, max, attempt, resp); resp.Header.Get("Retry-After") != "" {
			return d
		}
	}
	ceiling := min << attempt
	if ceiling <= 0 || ceiling > max {
		ceiling = max
	}
	return min/2 + time.Duration(rand.Int64N(int64(ceiling-min/2)+1))
}

// StatusError is a response the service refused for a reason other than
// credentials, after retries.
type StatusError struct {
	Service string
	Status  int
	Path    string
	Detail  string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("%s %s: HTTP %d: %s", e.Service, e.Path, e.Status, e.Detail)
}

// GetJSON fetches path (relative to BaseURL) with query and decodes the JSON
// body into out. Errors: *AuthError (401/403), *StatusError (other non-2xx
// after retries), or a wrapped network/decoding error — none holds a secret.
func (h *HTTP) GetJSON(ctx context.Context, path string, query url.Values, out any) error {
	return h.Do(ctx, http.MethodGet, path, query, nil, out)
}

// Do sends a request with an optional JSON body and decodes a JSON answer.
func (h *HTTP) Do(ctx context.Context, method, path string, query url.Values, body, out any) error {
	data, _, err := h.Fetch(ctx, method, path, query, body)
	if err != nil || out == nil {
		return err
	}
	if err := json.Unmarshal(data, out); err != nil {
		where := strings.SplitN(path, "?", 2)[0]
		if u, rerr := h.resolve(path); rerr == nil {
			where = u.Path // the path as requested, base path included
		}
		return fmt.Errorf("%s %s: malformed JSON answer: %w", h.cfg.Service, where, err)
	}
	return nil
}

// Fetch sends a request with an optional JSON body and returns the raw body
// of a 2xx answer with its headers (for Link pagination and the like). path
// is relative to BaseURL, or a full "next page" URL on the same base. Errors
// as GetJSON's.
func (h *HTTP) Fetch(ctx context.Context, method, path string, query url.Values, body any) ([]byte, http.Header, error) {
	u, err := h.resolve(path)
	if err != nil {
		return nil, nil, err
	}
	if len(query) > 0 {
		q := u.Query()
		for k, vs := range query {
			for _, v := range vs {
				q.Add(k, v)
			}
		}
		u.RawQuery = q.Encode()
	}
	var raw any
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: encode request: %w", h.cfg.Service, err)
		}
		raw = b
	}
	if err := h.limiter.Wait(ctx); err != nil {
		return nil, nil, err
	}
	req, err := retryablehttp.NewRequestWithContext(ctx, method, u.String(), raw)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: build request: %w", h.cfg.Service, err)
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if h.cfg.Authorize != nil {
		h.cfg.Authorize(req.Request)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		var refused *EgressError
		if errors.As(err, &refused) { // holds no secret: kept whole, for callers to tell it apart
			return nil, nil, fmt.Errorf("%s %s: %w", h.cfg.Service, u.Path, refused)
		}
		return nil, nil, fmt.Errorf("%s %s: %s", h.cfg.Service, u.Path, h.redact(err.Error()))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s: read body: %w", h.cfg.Service, u.Path, err)
	}
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return nil, nil, &AuthError{Service: h.cfg.Service, Status: resp.StatusCode, Detail: h.redact(snippet(data))}
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		return nil, nil, &StatusError{Service: h.cfg.Service, Status: resp.StatusCode, Path: u.Path, Detail: h.redact(snippet(data))}
	}
	return data, resp.Header, nil
}

// resolve makes the request URL of path: relative to BaseURL, or a full
// next-page URL the service handed back. Such a URL must stay on BaseURL's
// scheme and host: the credential is sent with it, and a server (or whoever
// controls its answers) must not be able to send it elsewhere.
func (h *HTTP) resolve(path string) (*url.URL, error) {
	if strings.Contains(path, "?") || strings.HasPrefix(path, "http") || strings.HasPrefix(path, "//") {
		if parsed, err := h.base.Parse(path); err == nil {
			if !SameOrigin(h.base, parsed) {
				return nil, fmt.Errorf("%s: a next-page URL on %s is not followed: it leaves the configured host %s", h.cfg.Service, parsed.Host, h.base.Host)
			}
			return parsed, nil
		}
	}
	u := h.base.JoinPath(path)
	if !strings.HasPrefix(u.Path, "/") {
		u.Path = "/" + u.Path // JoinPath on a host-only base leaves it relative
	}
	return u, nil
}

// SameOrigin reports whether next (a URL a service handed back) has base's
// scheme and host, so that following it sends the credential nowhere else.
func SameOrigin(base, next *url.URL) bool {
	return strings.EqualFold(base.Scheme, next.Scheme) && strings.EqualFold(base.Host, next.Host)
}

// redact removes every configured secret from s.
func (h *HTTP) redact(s string) string {
	for _, secret := range h.cfg.Secrets {
		if len(secret) >= 4 {
			s = strings.ReplaceAll(s, secret, "[redacted]")
		}
	}
	return s
}

func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// Package custom pulls usage or revenue from a customer's own HTTP API
// (the custom-usage and custom-revenue sources): an authenticated GET,
// records found at a JSON path, one of the common pagination styles, and a
// declarative mapping (connectors/mapping) from each record to events.
//
// See docs/connectors/custom.md.
package custom

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/tidwall/gjson"

	"github.com/uvrhq/uvr/connectors/mapping"
	"github.com/uvrhq/uvr/connectors/source"
	"github.com/uvrhq/uvr/pipeline/event"
)

// Kinds of custom source (their service type).
const (
	KindUsage   = "custom-usage"
	KindRevenue = "custom-revenue"
)

// Pagination styles.
const (
	PageNone   = "none"   // one request
	PageCursor = "cursor" // ?cursor=<token from NextCursorPath> until it is empty
	PagePage   = "page"   // ?page=1,2,… until a page has fewer than PageSize records
	PageOffset = "offset" // ?offset=0,N,2N… likewise
	PageLink   = "link"   // the next URL from the Link header (rel="next") or NextURLPath
)

// Config configures one custom source.
type Config struct {
	Kind    string // KindUsage (default) or KindRevenue
	BaseURL string // required, e.g. https://billing.example.com
	APIKey  string // required
	// AuthHeader carries the key: "Authorization" (default) sends
	// "Bearer <key>"; any other header name sends the key as is.
	AuthHeader string
	// AccountID, when set, is sent as the query parameter AccountParam
	// (default "account_id").
	AccountID, AccountParam string

	Path        string            // e.g. /v1/usage (default "/")
	Query       map[string]string // extra query parameters
	RecordsPath string            // gjson path to the records array; "" means the body is the array
	Stream      string            // the mapping's stream for these records; default Kind
	Mapping     *mapping.Mapping  // required

	Pagination     string // PageNone (default), PageCursor, PagePage, PageOffset, PageLink
	CursorParam    string // default "cursor"
	NextCursorPath string // gjson path, default "next_cursor"
	HasMorePath    string // optional gjson path of a boolean; false stops
	PageParam      string // default "page"
	FirstPage      int    // default 1
	OffsetParam    string // default "offset"
	LimitParam     string // page size parameter: default "per_page" (page) or "limit" (offset)
	PageSize       int    // default 100
	NextURLPath    string // link style: a gjson path to the next URL instead of the Link header

	// SinceParam, when set, asks only for records after the cursor's time:
	// ?<SinceParam>=<RFC 3339>, the latest event time of the previous sync.
	SinceParam string
	// MaxPages bounds one sync (a guard against a server that never ends);
	// default 10000.
	MaxPages int

	RequestsPerSecond          float64       // default 10
	Retries                    int           // default 5
	RetryWaitMin, RetryWaitMax time.Duration // defaults 500ms / 30s
	Timeout                    time.Duration // default 60s
	Logger                     *slog.Logger
	// Egress bounds the addresses called; nil: any (tests, an operator's
	// own address). FromCredentials always sets the service policy.
	Egress *source.Egress
}

// Validate reports every problem of the configuration.
func (c Config) Validate() error {
	var errs []error
	if c.Kind != "" && c.Kind != KindUsage && c.Kind != KindRevenue {
		errs = append(errs, fmt.Errorf("custom: kind must be %s or %s, got %q", KindUsage, KindRevenue, c.Kind))
	}
	if u, err := url.Parse(c.BaseURL); c.BaseURL == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("custom: base_url must be an absolute http(s) URL"))
	}
	if c.APIKey == "" {
		errs = append(errs, errors.New("custom: api_key is required"))
	}
	if c.Mapping == nil {
		errs = append(errs, errors.New("custom: a mapping is required"))
	}
	switch c.Pagination {
	case "", PageNone, PageCursor, PagePage, PageOffset, PageLink:
	default:
		errs = append(errs, fmt.Errorf("custom: pagination must be none, cursor, page, offset or link, got %q", c.Pagination))
	}
	if c.PageSize < 0 {
		errs = append(errs, errors.New("custom: page size must be positive"))
	}
	return errors.Join(errs...)
}

// Source reads one custom API. It implements source.Source.
type Source struct {
	cfg  Config
	base *url.URL
	http *source.HTTP
	log  *slog.Logger
}

var _ source.Source = (*Source)(nil)

// New checks cfg and builds the source on source.HTTP (retries on
// 429/5xx/network with jittered backoff honouring Retry-After,
// *source.AuthError on 401/403, the key redacted); Fetch hands back the
// headers the Link pagination style needs.
func New(cfg Config) (*Source, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&cfg.Kind, KindUsage)
	def(&cfg.AuthHeader, "Authorization")
	def(&cfg.AccountParam, "account_id")
	def(&cfg.Path, "/")
	def(&cfg.Stream, cfg.Kind)
	def(&cfg.Pagination, PageNone)
	def(&cfg.CursorParam, "cursor")
	def(&cfg.NextCursorPath, "next_cursor")
	def(&cfg.PageParam, "page")
	def(&cfg.OffsetParam, "offset")
	if cfg.Pagination == PageOffset {
		def(&cfg.LimitParam, "limit")
	}
	def(&cfg.LimitParam, "per_page")
	if cfg.FirstPage == 0 {
		cfg.FirstPage = 1
	}
	if cfg.PageSize == 0 {
		cfg.PageSize = 100
	}
	if cfg.MaxPages == 0 {
		cfg.MaxPages = 10000
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	base, _ := url.Parse(cfg.BaseURL) // checked by Validate
	log := cfg.Logger.With("component", "connector", "service", cfg.Kind)
	key, header := cfg.APIKey, cfg.AuthHeader
	h, err := source.NewHTTP(source.HTTPConfig{
		Egress:  cfg.Egress,
		Service: cfg.Kind, BaseURL: cfg.BaseURL, Secrets: []string{key},
		Authorize: func(r *http.Request) {
			if strings.EqualFold(header, "Authorization") {
				r.Header.Set("Authorization", "Bearer "+key)
			} else {
				r.Header.Set(header, key)
			}
		},
		RequestsPerSecond: cfg.RequestsPerSecond, Retries: cfg.Retries,
		RetryWaitMin: cfg.RetryWaitMin, RetryWaitMax: cfg.RetryWaitMax, Timeout: cfg.Timeout, Logger: log,
	})
	if err != nil {
		return nil, err
	}
	return &Source{cfg: cfg, base: base, http: h, log: log}, nil
}

// FromCredentials builds a source from stored settings: api_key and
// base_url (required), a mapping (mapping: inline YAML, or mapping_file: a
// file inside env.MappingDir; required), and optionally account_id, kind, auth_header, path,
// records_path, stream, pagination, cursor_param, next_cursor_path,
// has_more_path, page_param, offset_param, limit_param, page_size,
// next_url_path, since_param.
func FromCredentials(creds map[string]string, env source.Env) (*Source, error) {
	var missing []string
	for _, k := range []string{"api_key", "base_url"} {
		if creds[k] == "" {
			missing = append(missing, k)
		}
	}
	if creds["mapping"] == "" && creds["mapping_file"] == "" {
		missing = append(missing, "mapping (or mapping_file)")
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("custom credentials: missing %s", strings.Join(missing, ", "))
	}
	var m *mapping.Mapping
	var err error
	if creds["mapping"] != "" {
		m, err = mapping.Parse([]byte(creds["mapping"]))
	} else {
		m, err = mapping.LoadIn(env.MappingDir, creds["mapping_file"])
		if errors.Is(err, mapping.ErrOutsideDir) {
			return nil, fmt.Errorf("custom credentials: mapping_file: %w", err)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("custom credentials: %w", err)
	}
	size := 0
	if v := creds["page_size"]; v != "" {
		if size, err = strconv.Atoi(v); err != nil || size <= 0 {
			return nil, fmt.Errorf("custom credentials: page_size must be a positive integer, got %q", v)
		}
	}
	return New(Config{
		Kind: creds["kind"], BaseURL: creds["base_url"], APIKey: creds["api_key"], AccountID: creds["account_id"],
		AuthHeader: creds["auth_header"], Path: creds["path"], RecordsPath: creds["records_path"],
		Stream: creds["stream"], Mapping: m, Pagination: creds["pagination"],
		CursorParam: creds["cursor_param"], NextCursorPath: creds["next_cursor_path"], HasMorePath: creds["has_more_path"],
		PageParam: creds["page_param"], OffsetParam: creds["offset_param"], LimitParam: creds["limit_param"],
		PageSize: size, NextURLPath: creds["next_url_path"], SinceParam: creds["since_param"], Logger: env.Logger, Egress: &env.Egress,
	})
}

// cursor: the time after which records are asked for (SinceParam), and,
// while a sync is under way, where its next page starts.
type cursor struct {
	Since string `json:"since,omitempty"`
	Next  string `json:"next,omitempty"`
}

// Check fetches the first page.
func (s *Source) Check(ctx context.Context) error {
	if _, _, err := s.fetch(ctx, s.firstURL(cursor{})); err != nil {
		return fmt.Errorf("check %s: %w", s.cfg.Kind, err)
	}
	return nil
}

func (s *Source) firstURL(c cursor) *url.URL {
	u := s.base.JoinPath(s.cfg.Path)
	q := u.Query()
	for k, v := range s.cfg.Query {
		q.Set(k, v)
	}
	if s.cfg.AccountID != "" {
		q.Set(s.cfg.AccountParam, s.cfg.AccountID)
	}
	if s.cfg.SinceParam != "" && c.Since != "" {
		q.Set(s.cfg.SinceParam, c.Since)
	}
	switch s.cfg.Pagination {
	case PagePage:
		q.Set(s.cfg.PageParam, strconv.Itoa(s.cfg.FirstPage))
		q.Set(s.cfg.LimitParam, strconv.Itoa(s.cfg.PageSize))
	case PageOffset:
		q.Set(s.cfg.OffsetParam, "0")
		q.Set(s.cfg.LimitParam, strconv.Itoa(s.cfg.PageSize))
	}
	u.RawQuery = q.Encode()
	return u
}

// resume turns a saved Next into the URL of that page.
func (s *Source) resume(c cursor) (*url.URL, error) {
	u := s.firstURL(c)
	if c.Next == "" {
		return u, nil
	}
	q := u.Query()
	switch s.cfg.Pagination {
	case PageCursor:
		q.Set(s.cfg.CursorParam, c.Next)
	case PagePage:
		q.Set(s.cfg.PageParam, c.Next)
	case PageOffset:
		q.Set(s.cfg.OffsetParam, c.Next)
	case PageLink:
		return s.resolve(c.Next)
	}
	u.RawQuery = q.Encode()
	return u, nil
}

func (s *Source) resolve(next string) (*url.URL, error) {
	u, err := s.base.Parse(next)
	if err != nil {
		return nil, fmt.Errorf("next page URL: %w", err)
	}
	if u.Host != s.base.Host {
		// The key is only ever sent to the configured host.
		return nil, fmt.Errorf("next page URL points to another host (%s)", u.Host)
	}
	return u, nil
}

// Read pages through the API from the cursor, maps every record and emits
// each page with the cursor of the next one; after the last page the cursor
// keeps only the latest event time (for SinceParam). An *AuthError or a page
// that cannot be read stops the sync with an error (the cursor stays at that
// page, so the next sync retries it); a record the mapping refuses is
// skipped by name.
func (s *Source) Read(ctx context.Context, cur source.Cursor, out source.Emitter) error {
	var c cursor
	if len(cur) > 0 {
		if err := json.Unmarshal(cur, &c); err != nil {
			return fmt.Errorf("%s: cursor: %w", s.cfg.Kind, err)
		}
	}
	u, err := s.resume(c)
	if err != nil {
		return fmt.Errorf("%s: %w", s.cfg.Kind, err)
	}
	latest := c.Since
	page, _ := strconv.Atoi(c.Next)
	if page == 0 {
		page = s.cfg.FirstPage
	}
	offset, _ := strconv.Atoi(c.Next)
	for n := 1; ; n++ {
		if n > s.cfg.MaxPages {
			return fmt.Errorf("%s: more than %d pages in one sync", s.cfg.Kind, s.cfg.MaxPages)
		}
		body, header, err := s.fetch(ctx, u)
		if err != nil {
			return fmt.Errorf("%s page %d: %w", s.cfg.Kind, n, err)
		}
		records, err := s.records(body)
		if err != nil {
			out.Skip(fmt.Sprintf("%s page %d", s.cfg.Kind, n), err)
			return fmt.Errorf("%s page %d: %w", s.cfg.Kind, n, err)
		}
		var batch []event.Event
		for i, rec := range records {
			evs, err := s.cfg.Mapping.Map(s.cfg.Stream, json.RawMessage(rec.Raw))
			if err != nil {
				out.Skip(recordName(s.cfg.Kind, n, i, rec), err)
				continue
			}
			for _, ev := range evs {
				if t := ev.Time.UTC().Format(time.RFC3339Nano); latest == "" || laterThan(ev.Time, latest) {
					latest = t
				}
			}
			batch = append(batch, evs...)
		}
		// Where the next page is, if there is one.
		next, nextURL := "", (*url.URL)(nil)
		switch s.cfg.Pagination {
		case PageCursor:
			tok := gjson.GetBytes(body, s.cfg.NextCursorPath)
			more := tok.Exists() && tok.Type != gjson.Null && tok.String() != ""
			if hm := s.cfg.HasMorePath; hm != "" && !gjson.GetBytes(body, hm).Bool() {
				more = false
			}
			if more {
				next = tok.String()
				q := u.Query()
				if q.Get(s.cfg.CursorParam) == next {
					return fmt.Errorf("%s page %d: the next cursor repeats the current one", s.cfg.Kind, n)
				}
				q.Set(s.cfg.CursorParam, next)
				nextURL = cloneWithQuery(u, q)
			}
		case PagePage:
			if len(records) >= s.cfg.PageSize {
				page++
				next = strconv.Itoa(page)
				q := u.Query()
				q.Set(s.cfg.PageParam, next)
				nextURL = cloneWithQuery(u, q)
			}
		case PageOffset:
			if len(records) >= s.cfg.PageSize {
				offset += len(records)
				next = strconv.Itoa(offset)
				q := u.Query()
				q.Set(s.cfg.OffsetParam, next)
				nextURL = cloneWithQuery(u, q)
			}
		case PageLink:
			link := nextLink(header.Values("Link"))
			if s.cfg.NextURLPath != "" {
				if v := gjson.GetBytes(body, s.cfg.NextURLPath); v.Type == gjson.String {
					link = v.Str
				}
			}
			if link != "" {
				if nextURL, err = s.resolve(link); err != nil {
					return fmt.Errorf("%s page %d: %w", s.cfg.Kind, n, err)
				}
				next = nextURL.String()
				if next == u.String() {
					return fmt.Errorf("%s page %d: the next link repeats the current page", s.cfg.Kind, n)
				}
			}
		}
		saved := cursor{Since: c.Since, Next: next}
		if next == "" {
			saved = cursor{Since: latest}
		}
		b, _ := json.Marshal(saved) // two strings: cannot fail
		if err := out.Emit(ctx, batch, b); err != nil {
			return fmt.Errorf("%s page %d: emit: %w", s.cfg.Kind, n, err)
		}
		s.log.Debug("page read", "page", n, "records", len(records), "events", len(batch))
		if nextURL == nil {
			return nil
		}
		u = nextURL
	}
}

func laterThan(t time.Time, s string) bool {
	prev, err := time.Parse(time.RFC3339Nano, s)
	return err != nil || t.After(prev)
}

func cloneWithQuery(u *url.URL, q url.Values) *url.URL {
	n := *u
	n.RawQuery = q.Encode()
	return &n
}

// recordName names a record for Skip: its id when it has one.
func recordName(kind string, page, i int, rec gjson.Result) string {
	if id := rec.Get("id"); id.Exists() && id.Type != gjson.JSON {
		return fmt.Sprintf("%s record %s (page %d item %d)", kind, id.String(), page, i)
	}
	return fmt.Sprintf("%s page %d item %d", kind, page, i)
}

func (s *Source) records(body []byte) ([]gjson.Result, error) {
	if !gjson.ValidBytes(body) {
		return nil, errors.New("the answer is not valid JSON")
	}
	arr := gjson.ParseBytes(body)
	if s.cfg.RecordsPath != "" {
		arr = arr.Get(s.cfg.RecordsPath)
	}
	if !arr.IsArray() {
		if !arr.Exists() || arr.Type == gjson.Null {
			return nil, nil // no records: an empty page
		}
		return nil, fmt.Errorf("records path %q is not an array", s.cfg.RecordsPath)
	}
	return arr.Array(), nil
}

var linkNext = regexp.MustCompile(`<([^>]*)>\s*;[^,]*\brel="?next"?`)

// nextLink finds rel="next" in RFC 8288 (5988) Link headers.
func nextLink(values []string) string {
	for _, v := range values {
		for _, part := range strings.Split(v, ",") {
			if m := linkNext.FindStringSubmatch(part); m != nil {
				return m[1]
			}
		}
	}
	return ""
}

// fetch GETs u (on the configured host) with the credential.
func (s *Source) fetch(ctx context.Context, u *url.URL) ([]byte, http.Header, error) {
	return s.http.Fetch(ctx, http.MethodGet, u.String(), nil, nil)
}

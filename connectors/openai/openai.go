// Package openai reads an OpenAI organization's Usage API (tokens, requests,
// images, audio, storage per project, API key and model) and Costs API
// (money per project and line item) as uvr.usage.v1 events.
//
// Every bucket × result row × counter is one event whose id is built from the
// bucket start and the row's dimensions, so a repeated page counts once. The
// current bucket (and any that ended less than Settle ago) is partial: its
// events carry a lower version that the next read supersedes, and the cursor
// never moves past it. See docs/connectors/openai.md.
package openai

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/uvrhq/uvr/connectors/source"
	"github.com/uvrhq/uvr/pipeline/event"
)

// DefaultBaseURL is OpenAI's API.
const DefaultBaseURL = "https://api.openai.com"

// Bucket widths the connector reads.
const (
	BucketDay  = "1d"
	BucketHour = "1h"
)

// Endpoints lists the usage endpoints read by default, with the dimensions
// each is grouped by (every value OpenAI documents for it that identifies a
// customer, a key or a price).
var Endpoints = map[string][]string{
	"completions":               {"project_id", "api_key_id", "model", "batch"},
	"embeddings":                {"project_id", "api_key_id", "model"},
	"moderations":               {"project_id", "api_key_id", "model"},
	"images":                    {"project_id", "api_key_id", "model", "size", "source"},
	"audio_speeches":            {"project_id", "api_key_id", "model"},
	"audio_transcriptions":      {"project_id", "api_key_id", "model"},
	"vector_stores":             {"project_id"},
	"code_interpreter_sessions": {"project_id"},
	"file_search_calls":         {"project_id", "api_key_id"},
	"web_search_calls":          {"project_id", "api_key_id", "model"},
}

// costsGroupBy groups costs per project and line item (e.g. "gpt-4o, input").
var costsGroupBy = []string{"project_id", "line_item"}

// Config configures one OpenAI organization.
type Config struct {
	APIKey  string // admin key (sk-admin-…), required
	BaseURL string // default DefaultBaseURL
	// Organization (org-…), sent as the OpenAI-Organization header: a key
	// that belongs to several organizations reads this one. Empty: the key's
	// default organization.
	Organization string

	// Endpoints to read; nil means every key of Endpoints, sorted.
	Endpoints []string
	// GroupBy overrides an endpoint's grouping (key: endpoint or "costs").
	GroupBy map[string][]string
	// SkipCosts leaves out the Costs API.
	SkipCosts bool
	// BucketWidth of usage buckets: 1d (default) or 1h. Costs are daily.
	BucketWidth string
	// Start is where a sync without cursor begins; default 30 days before
	// Now, at midnight UTC.
	Start time.Time
	// Settle is how long after its end a bucket may still change; default 1h.
	Settle time.Duration
	Now    func() time.Time // default time.Now

	RequestsPerSecond          float64       // default 5
	RetryWaitMin, RetryWaitMax time.Duration // backoff bounds, defaults of source.HTTP
	Logger                     *slog.Logger
	// Egress bounds the addresses called; nil: any (tests, an operator's
	// own address). FromCredentials always sets the service policy.
	Egress *source.Egress
}

// Validate reports every problem of the configuration.
func (c Config) Validate() error {
	var errs []error
	if c.APIKey == "" {
		errs = append(errs, errors.New("openai: api_key is required"))
	}
	switch c.BucketWidth {
	case "", BucketDay, BucketHour:
	default:
		errs = append(errs, fmt.Errorf("openai: bucket width must be 1d or 1h, got %q", c.BucketWidth))
	}
	for _, e := range c.Endpoints {
		if _, ok := Endpoints[e]; !ok {
			errs = append(errs, fmt.Errorf("openai: unknown usage endpoint %q", e))
		}
	}
	if c.Settle < 0 {
		errs = append(errs, errors.New("openai: settle must not be negative"))
	}
	return errors.Join(errs...)
}

// Source reads one organization. It implements source.Source.
type Source struct {
	cfg    Config
	http   *source.HTTP
	mapper Mapper
	log    *slog.Logger
}

var _ source.Source = (*Source)(nil)

// New checks cfg and builds the source.
func New(cfg Config) (*Source, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultBaseURL
	}
	if cfg.Endpoints == nil {
		for e := range Endpoints {
			cfg.Endpoints = append(cfg.Endpoints, e)
		}
		slices.Sort(cfg.Endpoints)
	}
	if cfg.BucketWidth == "" {
		cfg.BucketWidth = BucketDay
	}
	if cfg.Settle == 0 {
		cfg.Settle = time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.RequestsPerSecond == 0 {
		cfg.RequestsPerSecond = 5
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	log := cfg.Logger.With("component", "connector", "service", Service)
	key, org := cfg.APIKey, strings.TrimSpace(cfg.Organization)
	h, err := source.NewHTTP(source.HTTPConfig{
		Egress:  cfg.Egress,
		Service: Service, BaseURL: cfg.BaseURL, Secrets: []string{key},
		Authorize: func(r *http.Request) {
			r.Header.Set("Authorization", "Bearer "+key)
			if org != "" {
				r.Header.Set("OpenAI-Organization", org)
			}
		},
		RequestsPerSecond: cfg.RequestsPerSecond,
		RetryWaitMin:      cfg.RetryWaitMin, RetryWaitMax: cfg.RetryWaitMax,
		Logger: log,
	})
	if err != nil {
		return nil, err
	}
	return &Source{cfg: cfg, http: h, log: log,
		mapper: Mapper{Now: cfg.Now, Settle: cfg.Settle, CostsSeparate: !cfg.SkipCosts}}, nil
}

// FromCredentials builds a source from stored credentials: api_key
// (required), org_id (optional: the OpenAI-Organization header) and base_url
// (optional, for tests and proxies).
func FromCredentials(creds map[string]string, env source.Env) (*Source, error) {
	if creds["api_key"] == "" {
		return nil, errors.New("openai credentials: missing api_key")
	}
	return New(Config{APIKey: creds["api_key"], Organization: creds["org_id"], BaseURL: creds["base_url"], Logger: env.Logger, Egress: &env.Egress})
}

// Check reads one day of completions usage: an admin key is required.
func (s *Source) Check(ctx context.Context) error {
	q := url.Values{"start_time": {strconv.FormatInt(s.cfg.Now().Add(-24*time.Hour).Unix(), 10)}, "limit": {"1"}}
	var pg page
	if err := s.http.GetJSON(ctx, "/v1/organization/usage/completions", q, &pg); err != nil {
		return fmt.Errorf("check openai: %w", err)
	}
	return nil
}

// cursor is the start of the first bucket not yet complete, per stream, in
// unix seconds.
type cursor map[string]int64

type page struct {
	Object   string   `json:"object"`
	Data     []bucket `json:"data"`
	HasMore  bool     `json:"has_more"`
	NextPage *string  `json:"next_page"`
}

// Read reads every stream from its cursor. An *AuthError stops the sync. A
// stream whose page cannot be read or decoded is reported with Skip and
// left at its cursor, the other streams go on, and Read returns the joined
// failures at the end. A result row that cannot be mapped is skipped.
func (s *Source) Read(ctx context.Context, cur source.Cursor, out source.Emitter) error {
	c := cursor{}
	if len(cur) > 0 {
		if err := json.Unmarshal(cur, &c); err != nil {
			return fmt.Errorf("openai: cursor: %w", err)
		}
	}
	streams := slices.Clone(s.cfg.Endpoints)
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
			out.Skip(fmt.Sprintf("openai %s", stream), err)
			failed = append(failed, err)
		}
	}
	return errors.Join(failed...)
}

func (s *Source) start() time.Time {
	if !s.cfg.Start.IsZero() {
		return s.cfg.Start
	}
	return s.cfg.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -30)
}

func (s *Source) readStream(ctx context.Context, stream string, c cursor, out source.Emitter) error {
	path, width, limit := "/v1/organization/usage/"+stream, s.cfg.BucketWidth, "31"
	groupBy := Endpoints[stream]
	if stream == StreamCosts {
		path, width, limit, groupBy = "/v1/organization/costs", BucketDay, "31", costsGroupBy
	} else if width == BucketHour {
		limit = "168"
	}
	if g, ok := s.cfg.GroupBy[stream]; ok {
		groupBy = g
	}
	start, ok := c[stream]
	if !ok {
		start = s.start().Unix()
	}
	q := url.Values{"start_time": {strconv.FormatInt(start, 10)}, "bucket_width": {width}, "limit": {limit}}
	for _, g := range groupBy {
		q.Add("group_by", g)
	}
	frontier, partialSeen := start, false
	for n := 1; ; n++ {
		var pg page
		if err := s.http.GetJSON(ctx, path, q, &pg); err != nil {
			return fmt.Errorf("%s page %d: %w", stream, n, err)
		}
		var batch []event.Event
		for _, b := range pg.Data {
			got, bad := s.mapper.mapBucket(stream, b)
			for _, r := range bad {
				out.Skip("openai "+r.name, r.err)
			}
			batch = append(batch, got...)
			if complete, _ := s.mapper.complete(b); complete && !partialSeen && b.StartTime >= frontier {
				frontier = b.EndTime
			} else if !complete {
				partialSeen = true
			}
		}
		next := cursor{}
		for k, v := range c {
			next[k] = v
		}
		next[stream] = frontier
		nb, err := json.Marshal(next)
		if err != nil {
			return err
		}
		if err := out.Emit(ctx, batch, nb); err != nil {
			return fmt.Errorf("%s page %d: emit: %w", stream, n, err)
		}
		c[stream] = frontier
		s.log.Debug("page read", "stream", stream, "page", n, "events", len(batch), "cursor", frontier)
		if !pg.HasMore || pg.NextPage == nil || *pg.NextPage == "" {
			return nil
		}
		if q.Get("page") == *pg.NextPage {
			return fmt.Errorf("%s page %d: next_page repeats the current page", stream, n)
		}
		q.Set("page", *pg.NextPage)
	}
}

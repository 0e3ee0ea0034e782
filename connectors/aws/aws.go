// Package aws reads AWS infrastructure cost and usage as uvr.usage.v1
// events: Cost Explorer's GetCostAndUsage (daily cost per service and per
// value of a customer cost-allocation tag) and CloudWatch's GetMetricData
// (configured metric queries as usage quantities), through aws-sdk-go-v2.
//
// As with the other usage sources, a period that may still change (Cost
// Explorer's Estimated days, anything that ended less than a settle time
// ago) is emitted with a lower version that a later read replaces, and the
// cursor never moves past it. See docs/connectors/aws.md.
package aws

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/costexplorer"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/uvrhq/uvr/connectors/source"
)

// Service is the event source of everything this connector emits.
const Service = "aws"

// Cost Explorer cost metrics a Config may choose.
var CostMetrics = []string{"UnblendedCost", "AmortizedCost", "BlendedCost", "NetUnblendedCost", "NetAmortizedCost"}

// MetricQuery is one CloudWatch metric read as usage of one customer.
type MetricQuery struct {
	ID         string            // GetMetricData query id: starts with a lower-case letter
	Feature    string            // uvr feature, e.g. "api.requests"
	Unit       string            // uvr unit, e.g. "requests"
	Customer   string            // external id of the customer; "" means source.UnmappedCustomer
	Namespace  string            // e.g. "AWS/ApiGateway"
	MetricName string            // e.g. "Count"
	Dimensions map[string]string // e.g. {"ApiName": "acme-prod"}
	Stat       string            // Sum (default), Average, Maximum, …
	Expression string            // a metric math expression instead of Namespace/MetricName
	// Hidden queries are inputs of an expression (ReturnData false): read
	// by CloudWatch, not emitted, and need no feature.
	Hidden bool
}

// Config configures one AWS account.
type Config struct {
	AccessKeyID, SecretAccessKey, SessionToken string
	Region                                     string // required, e.g. us-east-1

	// Endpoint overrides (BaseEndpoint), e.g. a local server in tests.
	CostExplorerEndpoint, CloudWatchEndpoint string

	// CostTag is the cost-allocation tag whose value names the customer;
	// "" reads costs per service only (all to source.UnmappedCustomer).
	CostTag string
	// CostMetric is one of CostMetrics; default UnblendedCost.
	CostMetric string
	// SkipCosts leaves Cost Explorer out (it costs $0.01 per request).
	SkipCosts bool
	// CostSettle: a non-estimated day is final this long after it ended;
	// default 24h (Cost Explorer still restates the previous day).
	CostSettle time.Duration

	// Metrics are the CloudWatch queries; none means no CloudWatch reads.
	Metrics []MetricQuery
	// MetricPeriod of every query; default 1h. A multiple of 60s.
	MetricPeriod time.Duration
	// MetricSettle: a period is final this long after it ended; default 15m.
	MetricSettle time.Duration

	// Start is where a sync without cursor begins; default 30 days before
	// Now, at midnight UTC.
	Start time.Time
	Now   func() time.Time

	// MaxAttempts per call (default 5) and the backoff ceiling (default
	// 20s); a Retry-After header overrides the backoff.
	MaxAttempts  int
	RetryWaitMax time.Duration
	HTTPClient   *http.Client
	Logger       *slog.Logger
	// Egress bounds the addresses called; nil: any (tests, an operator's
	// own address). FromCredentials always sets the service policy.
	Egress *source.Egress
}

var queryID = regexp.MustCompile(`^[a-z][a-zA-Z0-9_]*$`)

// Validate reports every problem of the configuration.
func (c Config) Validate() error {
	var errs []error
	for name, v := range map[string]string{"access_key_id": c.AccessKeyID, "secret_access_key": c.SecretAccessKey, "region": c.Region} {
		if v == "" {
			errs = append(errs, fmt.Errorf("aws: %s is required", name))
		}
	}
	if c.CostMetric != "" && !contains(CostMetrics, c.CostMetric) {
		errs = append(errs, fmt.Errorf("aws: cost metric must be one of %s, got %q", strings.Join(CostMetrics, ", "), c.CostMetric))
	}
	if c.MetricPeriod != 0 && (c.MetricPeriod < time.Minute || c.MetricPeriod%time.Minute != 0) {
		errs = append(errs, fmt.Errorf("aws: metric period must be a multiple of 60s, got %s", c.MetricPeriod))
	}
	seen := map[string]bool{}
	for i, q := range c.Metrics {
		switch {
		case !queryID.MatchString(q.ID):
			errs = append(errs, fmt.Errorf("aws: metrics[%d]: id %q must start with a lower-case letter, then letters, digits, _", i, q.ID))
		case seen[q.ID]:
			errs = append(errs, fmt.Errorf("aws: metrics[%d]: id %q is used twice", i, q.ID))
		}
		seen[q.ID] = true
		if q.Feature == "" && !q.Hidden {
			errs = append(errs, fmt.Errorf("aws: metrics[%d]: feature is required", i))
		}
		if (q.Expression == "") == (q.Namespace == "" || q.MetricName == "") {
			errs = append(errs, fmt.Errorf("aws: metrics[%d]: give either expression or namespace and metric name", i))
		}
	}
	return errors.Join(errs...)
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// Source reads one AWS account. It implements source.Source.
type Source struct {
	cfg     Config
	ce      *costexplorer.Client
	cw      *cloudwatch.Client
	secrets []string
	log     *slog.Logger
}

var _ source.Source = (*Source)(nil)

// New checks cfg and builds the SDK clients with static credentials (no
// environment or shared-file lookup: the credentials are the ones given).
func New(cfg Config) (*Source, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.CostMetric == "" {
		cfg.CostMetric = "UnblendedCost"
	}
	if cfg.CostSettle == 0 {
		cfg.CostSettle = 24 * time.Hour
	}
	if cfg.MetricPeriod == 0 {
		cfg.MetricPeriod = time.Hour
	}
	if cfg.MetricSettle == 0 {
		cfg.MetricSettle = 15 * time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxAttempts == 0 {
		cfg.MaxAttempts = 5
	}
	if cfg.RetryWaitMax == 0 {
		cfg.RetryWaitMax = 20 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	awsCfg := sdkaws.Config{
		Region:      cfg.Region,
		Credentials: credentials.NewStaticCredentialsProvider(cfg.AccessKeyID, cfg.SecretAccessKey, cfg.SessionToken),
		Retryer: func() sdkaws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = cfg.MaxAttempts
				o.MaxBackoff = cfg.RetryWaitMax
				o.Backoff = backoff{max: cfg.RetryWaitMax}
				// The SDK's client-side retry quota would fail calls after a
				// burst of throttling; the backoff already spaces them.
				o.RateLimiter = ratelimit.None
			})
		},
	}
	switch {
	case cfg.HTTPClient != nil:
		awsCfg.HTTPClient = cfg.HTTPClient
	case cfg.Egress != nil:
		awsCfg.HTTPClient = cfg.Egress.Client(0) // the SDK bounds each attempt itself
	}
	s := &Source{cfg: cfg, secrets: []string{cfg.AccessKeyID, cfg.SecretAccessKey, cfg.SessionToken},
		log: cfg.Logger.With("component", "connector", "service", Service)}
	s.ce = costexplorer.NewFromConfig(awsCfg, func(o *costexplorer.Options) {
		if cfg.CostExplorerEndpoint != "" {
			o.BaseEndpoint = sdkaws.String(cfg.CostExplorerEndpoint)
		}
	})
	s.cw = cloudwatch.NewFromConfig(awsCfg, func(o *cloudwatch.Options) {
		if cfg.CloudWatchEndpoint != "" {
			o.BaseEndpoint = sdkaws.String(cfg.CloudWatchEndpoint)
		}
	})
	return s, nil
}

// FromCredentials builds a source from stored credentials: access_key_id,
// secret_access_key, region (required); session_token, cost_tag,
// cost_metric, and the endpoint overrides ce_endpoint / cloudwatch_endpoint
// (optional, for tests).
func FromCredentials(creds map[string]string, env source.Env) (*Source, error) {
	var missing []string
	for _, k := range []string{"access_key_id", "secret_access_key", "region"} {
		if creds[k] == "" {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("aws credentials: missing %s", strings.Join(missing, ", "))
	}
	return New(Config{
		AccessKeyID: creds["access_key_id"], SecretAccessKey: creds["secret_access_key"],
		SessionToken: creds["session_token"], Region: creds["region"],
		CostTag: creds["cost_tag"], CostMetric: creds["cost_metric"],
		CostExplorerEndpoint: creds["ce_endpoint"], CloudWatchEndpoint: creds["cloudwatch_endpoint"],
		Logger: env.Logger, Egress: &env.Egress,
	})
}

// backoff is exponential with full jitter, capped at max, and honours a
// Retry-After header (seconds) on the throttled response.
type backoff struct{ max time.Duration }

func (b backoff) BackoffDelay(attempt int, err error) (time.Duration, error) {
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) && re.Response != nil {
		if s, e := strconv.Atoi(re.Response.Header.Get("Retry-After")); e == nil && s >= 0 {
			return time.Duration(s) * time.Second, nil
		}
	}
	ceiling := 100 * time.Millisecond << attempt
	if ceiling <= 0 || ceiling > b.max {
		ceiling = b.max
	}
	return time.Duration(rand.Int64N(int64(ceiling) + 1)), nil
}

// wrap turns an SDK error into ours: 401/403 become *source.AuthError, and no
// credential is left in the text.
func (s *Source) wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) && (re.HTTPStatusCode() == http.StatusUnauthorized || re.HTTPStatusCode() == http.StatusForbidden) {
		detail := "access denied"
		var api smithy.APIError
		if errors.As(err, &api) {
			detail = api.ErrorCode() + ": " + api.ErrorMessage()
		}
		return &source.AuthError{Service: Service, Status: re.HTTPStatusCode(), Detail: s.redact(detail)}
	}
	return fmt.Errorf("aws %s: %s", op, s.redact(err.Error()))
}

func (s *Source) redact(text string) string {
	for _, secret := range s.secrets {
		if len(secret) >= 4 {
			text = strings.ReplaceAll(text, secret, "[redacted]")
		}
	}
	return text
}

// Check makes one signed, free call (CloudWatch ListMetrics) to verify the
// credentials. Cost Explorer is not called: each of its requests costs $0.01.
func (s *Source) Check(ctx context.Context) error {
	_, err := s.cw.ListMetrics(ctx, &cloudwatch.ListMetricsInput{})
	if err != nil {
		return fmt.Errorf("check aws: %w", s.wrap("ListMetrics", err))
	}
	return nil
}

// cursor: the first day (YYYY-MM-DD) Cost Explorer has not finalised, and
// the first CloudWatch period not yet final (unix seconds).
type cursor struct {
	Costs   string `json:"costs,omitempty"`
	Metrics int64  `json:"metrics,omitempty"`
}

func (c cursor) marshal() source.Cursor {
	b, _ := json.Marshal(c) // two plain fields: cannot fail
	return b
}

// Read reads costs, then metrics. An *AuthError stops the sync; a failure of
// one part is reported with Skip, the other part goes on, and Read returns
// the failures at the end.
func (s *Source) Read(ctx context.Context, cur source.Cursor, out source.Emitter) error {
	var c cursor
	if len(cur) > 0 {
		if err := json.Unmarshal(cur, &c); err != nil {
			return fmt.Errorf("aws: cursor: %w", err)
		}
	}
	var failed []error
	parts := []struct {
		name string
		run  func(context.Context, *cursor, source.Emitter) error
		on   bool
	}{
		{"aws cost explorer", s.readCosts, !s.cfg.SkipCosts},
		{"aws cloudwatch", s.readMetrics, len(s.cfg.Metrics) > 0},
	}
	for _, p := range parts {
		if !p.on {
			continue
		}
		err := p.run(ctx, &c, out)
		switch {
		case err == nil:
		case source.IsAuth(err) || ctx.Err() != nil:
			return err
		default:
			out.Skip(p.name, err)
			failed = append(failed, err)
		}
	}
	return errors.Join(failed...)
}

func (s *Source) start() time.Time {
	if !s.cfg.Start.IsZero() {
		return s.cfg.Start.UTC()
	}
	return s.cfg.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -30)
}

package aws_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uvrhq/uvr/connectors/source/sourcetest"

	"github.com/aws/smithy-go/encoding/cbor"
	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/connectors/aws"
	"github.com/uvrhq/uvr/connectors/source"
	"github.com/uvrhq/uvr/pipeline/event"
)

const (
	accessKey = "AKIAPLANTEDKEY0001"
	secretKey = "planted/secret+key/9f8e7d6c5b4a39281706"
)

func sample(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(sourcetest.Samples(t, "aws", name))
	require.NoError(t, err)
	return b
}

// ceServer answers Cost Explorer's AWS JSON 1.1 protocol (POST /, the
// operation in X-Amz-Target) with the recorded output, page by page.
type ceServer struct {
	t        *testing.T
	mu       sync.Mutex
	pages    [][]byte
	bodies   []map[string]any
	headers  []http.Header
	throttle int // requests to refuse with 400 ThrottlingException + Retry-After
	deny     bool
}

func (s *ceServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	body, _ := io.ReadAll(r.Body)
	var in map[string]any
	require.NoError(s.t, json.Unmarshal(body, &in))
	s.bodies = append(s.bodies, in)
	s.headers = append(s.headers, r.Header.Clone())
	assert.Equal(s.t, "AWSInsightsIndexService.GetCostAndUsage", r.Header.Get("X-Amz-Target"))
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	if s.deny {
		w.WriteHeader(http.StatusForbidden)
		_, _ = w.Write([]byte(`{"__type":"UnrecognizedClientException","message":"The security token included in the request is invalid: ` + accessKey + `"}`))
		return
	}
	if s.throttle > 0 {
		s.throttle--
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"__type":"ThrottlingException","message":"Rate exceeded"}`))
		return
	}
	page := 0
	if tok, ok := in["NextPageToken"].(string); ok {
		page = int(tok[len(tok)-1] - '0')
	}
	_, _ = w.Write(s.pages[page])
}

// cePages: the recorded output, then the same groups as an estimated day of
// the next month, reached through a NextPageToken.
func cePages(t *testing.T) [][]byte {
	var first map[string]any
	require.NoError(t, json.Unmarshal(sample(t, "ce_get-cost-and-usage.output1.json"), &first))
	first["NextPageToken"] = "page1"
	p1, err := json.Marshal(first)
	require.NoError(t, err)
	var second map[string]any
	require.NoError(t, json.Unmarshal(sample(t, "ce_get-cost-and-usage.output1.json"), &second))
	r := second["ResultsByTime"].([]any)[0].(map[string]any)
	r["TimePeriod"] = map[string]any{"Start": "2017-10-01", "End": "2017-10-02"}
	r["Estimated"] = true
	p2, err := json.Marshal(second)
	require.NoError(t, err)
	return [][]byte{p1, p2}
}

func newCostSource(t *testing.T, ce *ceServer, now time.Time, logger *slog.Logger) *aws.Source {
	srv := httptest.NewServer(ce)
	t.Cleanup(srv.Close)
	src, err := aws.New(aws.Config{
		AccessKeyID: accessKey, SecretAccessKey: secretKey, Region: "us-east-1",
		CostExplorerEndpoint: srv.URL, CostTag: "Environment",
		Start: time.Date(2017, 9, 1, 0, 0, 0, 0, time.UTC), Now: func() time.Time { return now },
		RetryWaitMax: 5 * time.Millisecond, Logger: logger,
	})
	require.NoError(t, err)
	return src
}

func TestCostExplorer(t *testing.T) {
	var logs bytes.Buffer
	ce := &ceServer{t: t, pages: cePages(t)}
	now := time.Date(2017, 10, 2, 12, 0, 0, 0, time.UTC)
	src := newCostSource(t, ce, now, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	out := &sourcetest.Collector{}
	require.NoError(t, src.Read(context.Background(), nil, out))
	assert.Empty(t, out.Skipped)

	// The request: daily, the chosen metric, grouped by service and tag.
	require.Len(t, ce.bodies, 2)
	in := ce.bodies[0]
	assert.Equal(t, map[string]any{"Start": "2017-09-01", "End": "2017-10-03"}, in["TimePeriod"])
	assert.Equal(t, "DAILY", in["Granularity"])
	assert.Equal(t, []any{"UnblendedCost", "UsageQuantity"}, in["Metrics"])
	assert.Equal(t, []any{map[string]any{"Type": "DIMENSION", "Key": "SERVICE"}, map[string]any{"Type": "TAG", "Key": "Environment"}}, in["GroupBy"])
	assert.Equal(t, "page1", ce.bodies[1]["NextPageToken"])
	assert.Contains(t, ce.headers[0].Get("Authorization"), "AWS4-HMAC-SHA256 Credential="+accessKey+"/")

	require.Len(t, out.Events, 4)
	total := decimal.Zero
	byID := map[string]event.Event{}
	for _, ev := range out.Events {
		require.NoError(t, ev.Validate(), ev.ID)
		byID[ev.ID] = ev
		total = total.Add(*ev.Data.Cost)
		assert.Equal(t, "aws.Amazon Simple Storage Service", ev.Data.Feature)
		assert.Equal(t, "USD", ev.Data.Currency)
	}
	// Independent sum of the recorded UnblendedCost (two groups, two pages),
	// each rounded from CE's 10 decimals to 9.
	want := decimal.RequireFromString("40.354377313").Add(decimal.RequireFromString("0.2682364644").RoundBank(9)).Mul(decimal.NewFromInt(2))
	assert.True(t, want.Equal(total), "total %s, want %s", total, want)

	untagged := byID["ce/UnblendedCost/2017-09-01/Amazon Simple Storage Service/Environment="]
	assert.Equal(t, source.UnmappedCustomer, untagged.Data.Customer.ExternalID, "empty tag value")
	assert.Equal(t, "40.354377313", untagged.Data.Cost.String())
	assert.Equal(t, "9312771.098461578", untagged.Data.Quantity.String())
	assert.Equal(t, "", untagged.Data.Unit, "N/A is no unit")
	assert.Equal(t, uint32(time.Date(2017, 10, 2, 0, 0, 0, 0, time.UTC).Unix()), untagged.Data.Version, "final: end + 24h")
	dev := byID["ce/UnblendedCost/2017-09-01/Amazon Simple Storage Service/Environment=Dev"]
	assert.Equal(t, event.Customer{Source: "aws", ExternalID: "Dev"}, dev.Data.Customer)

	// The estimated day is partial: version now, cursor stays on it.
	est := byID["ce/UnblendedCost/2017-10-01/Amazon Simple Storage Service/Environment=Dev"]
	assert.Equal(t, uint32(now.Unix()), est.Data.Version)
	assert.Equal(t, "true", est.Data.Attributes["estimated"])
	assert.Equal(t, "2017-10-01", sourcetest.DecodeCursor[map[string]any](t, out.LastCursor())["costs"])
	assert.NotContains(t, logs.String(), secretKey)
}

func TestCostExplorerRetryAfter(t *testing.T) {
	ce := &ceServer{t: t, pages: cePages(t), throttle: 1}
	src := newCostSource(t, ce, time.Date(2017, 10, 20, 0, 0, 0, 0, time.UTC), nil)
	out := &sourcetest.Collector{}
	begin := time.Now()
	require.NoError(t, src.Read(context.Background(), nil, out))
	// The backoff is capped at 5ms: only Retry-After makes it wait a second.
	assert.GreaterOrEqual(t, time.Since(begin), 900*time.Millisecond)
	assert.Len(t, ce.bodies, 3, "throttled, retried, second page")
	assert.Len(t, out.Events, 4)
}

func TestCostExplorerAuthFailure(t *testing.T) {
	ce := &ceServer{t: t, pages: cePages(t), deny: true}
	var logs bytes.Buffer
	src := newCostSource(t, ce, time.Date(2017, 10, 20, 0, 0, 0, 0, time.UTC), slog.New(slog.NewTextHandler(&logs, nil)))
	out := &sourcetest.Collector{}
	err := src.Read(context.Background(), nil, out)
	var auth *source.AuthError
	require.True(t, errors.As(err, &auth), "%v", err)
	assert.Equal(t, http.StatusForbidden, auth.Status)
	assert.Contains(t, err.Error(), "UnrecognizedClientException")
	assert.NotContains(t, err.Error(), accessKey)
	assert.NotContains(t, err.Error(), secretKey)
	assert.Len(t, ce.bodies, 1, "not retried, nothing after it")
	assert.Empty(t, out.Events)
	assert.Empty(t, out.Cursors)
	assert.NotContains(t, logs.String(), secretKey)
}

func TestCostExplorerMalformedPeriodIsSkipped(t *testing.T) {
	var pg map[string]any
	require.NoError(t, json.Unmarshal(sample(t, "ce_get-cost-and-usage.output1.json"), &pg))
	good := pg["ResultsByTime"].([]any)[0].(map[string]any)
	bad := map[string]any{"TimePeriod": map[string]any{"Start": "2017-08-01", "End": "2017-09-01"}, "Estimated": false,
		"Groups": []any{map[string]any{"Keys": []any{"AWS Lambda", "Environment$Prod"}, "Metrics": map[string]any{"UnblendedCost": map[string]any{"Amount": "twelve", "Unit": "USD"}}}}}
	pg["ResultsByTime"] = []any{bad, good}
	body, _ := json.Marshal(pg)
	ce := &ceServer{t: t, pages: [][]byte{body}}
	src := newCostSource(t, ce, time.Date(2017, 10, 20, 0, 0, 0, 0, time.UTC), nil)
	out := &sourcetest.Collector{}
	require.NoError(t, src.Read(context.Background(), nil, out))
	require.Contains(t, out.Skipped, "aws cost explorer page 1 period 2017-08-01")
	assert.ErrorContains(t, out.Skipped["aws cost explorer page 1 period 2017-08-01"], `amount "twelve" is not a decimal`)
	assert.Len(t, out.Events, 2, "the good period is kept")
	assert.Equal(t, "2017-09-01", sourcetest.DecodeCursor[map[string]any](t, out.LastCursor())["costs"], "the cursor stays before the skipped period")
}

// cwServer answers CloudWatch's Smithy RPC v2 CBOR protocol (POST
// /service/GraniteServiceVersion20100801/operation/<Op>) with the recorded
// outputs re-encoded as CBOR.
type cwServer struct {
	t       *testing.T
	mu      sync.Mutex
	pages   []cbor.Map
	queries []cbor.Map
	deny    bool
}

func (s *cwServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	assert.Equal(s.t, "rpc-v2-cbor", r.Header.Get("Smithy-Protocol"))
	body, _ := io.ReadAll(r.Body)
	w.Header().Set("Smithy-Protocol", "rpc-v2-cbor")
	w.Header().Set("Content-Type", "application/cbor")
	if s.deny {
		w.WriteHeader(http.StatusForbidden)
		_, _ = w.Write(cbor.Encode(cbor.Map{"__type": cbor.String("com.amazonaws.cloudwatch#AccessDeniedException"), "message": cbor.String("denied for " + accessKey)}))
		return
	}
	switch r.URL.Path {
	case "/service/GraniteServiceVersion20100801/operation/ListMetrics":
		_, _ = w.Write(cbor.Encode(cbor.Map{"Metrics": cbor.List{}}))
		return
	case "/service/GraniteServiceVersion20100801/operation/GetMetricData":
	default:
		s.t.Errorf("unexpected path %s", r.URL.Path)
		return
	}
	in, err := cbor.Decode(body)
	require.NoError(s.t, err)
	m := in.(cbor.Map)
	s.queries = append(s.queries, m)
	page := 0
	if tok, ok := m["NextToken"].(cbor.String); ok {
		page = int(tok[len(tok)-1] - '0')
	}
	_, _ = w.Write(cbor.Encode(s.pages[page]))
}

// cwOutput re-encodes a recorded get-metric-data output as the CBOR the
// service sends: timestamps as tag 1 (epoch seconds), values as doubles.
func cwOutput(t *testing.T, name string, shift time.Duration, next string) cbor.Map {
	var out struct {
		MetricDataResults []struct {
			ID         string      `json:"Id"`
			Label      string      `json:"Label"`
			Timestamps []time.Time `json:"Timestamps"`
			Values     []float64   `json:"Values"`
			StatusCode string      `json:"StatusCode"`
		}
	}
	require.NoError(t, json.Unmarshal(sample(t, name), &out))
	var results cbor.List
	for _, r := range out.MetricDataResults {
		var ts, vs cbor.List
		for i, tm := range r.Timestamps {
			ts = append(ts, &cbor.Tag{ID: 1, Value: cbor.Float64(float64(tm.Add(shift).Unix()))})
			vs = append(vs, cbor.Float64(r.Values[i]))
		}
		results = append(results, cbor.Map{"Id": cbor.String(r.ID), "Label": cbor.String(r.Label),
			"Timestamps": ts, "Values": vs, "StatusCode": cbor.String(r.StatusCode)})
	}
	m := cbor.Map{"MetricDataResults": results, "Messages": cbor.List{}}
	if next != "" {
		m["NextToken"] = cbor.String(next)
	}
	return m
}

func newMetricSource(t *testing.T, cw *cwServer, now time.Time, period, settle time.Duration, queries []aws.MetricQuery) *aws.Source {
	srv := httptest.NewServer(cw)
	t.Cleanup(srv.Close)
	src, err := aws.New(aws.Config{
		AccessKeyID: accessKey, SecretAccessKey: secretKey, Region: "us-east-1",
		CloudWatchEndpoint: srv.URL, SkipCosts: true, Metrics: queries,
		MetricPeriod: period, MetricSettle: settle,
		Start: time.Date(2024, 9, 29, 22, 10, 0, 0, time.UTC), Now: func() time.Time { return now },
		RetryWaitMax: 5 * time.Millisecond,
	})
	require.NoError(t, err)
	return src
}

// iopsQueries are the queries of the recorded example 1: two hidden inputs
// and the expression (m1+m2)/300 that returns data.
var iopsQueries = []aws.MetricQuery{
	{ID: "m1", Hidden: true, Namespace: "AWS/EC2", MetricName: "EBSReadOps", Dimensions: map[string]string{"InstanceId": "i-abcdef"}},
	{ID: "m2", Hidden: true, Namespace: "AWS/EC2", MetricName: "EBSWriteOps", Dimensions: map[string]string{"InstanceId": "i-abcdef"}},
	{ID: "m3", Expression: "(m1+m2)/300", Feature: "ebs.iops", Unit: "iops", Customer: "acme"},
}

func TestCloudWatchPagesAndPartialPeriod(t *testing.T) {
	// Page 1: the recorded point (22:10); page 2: the same point shape 10
	// minutes later (22:20), which has not settled yet at 22:25.
	cw := &cwServer{t: t, pages: []cbor.Map{
		cwOutput(t, "cloudwatch_get-metric-data.output1.json", 0, "page1"),
		cwOutput(t, "cloudwatch_get-metric-data.output1.json", 10*time.Minute, ""),
	}}
	now := time.Date(2024, 9, 29, 22, 25, 0, 0, time.UTC)
	src := newMetricSource(t, cw, now, 5*time.Minute, 5*time.Minute, iopsQueries)
	require.NoError(t, src.Check(context.Background()))
	out := &sourcetest.Collector{}
	require.NoError(t, src.Read(context.Background(), nil, out))
	assert.Empty(t, out.Skipped)

	require.Len(t, cw.queries, 2)
	q := cw.queries[0]
	assert.Equal(t, "TimestampAscending", string(q["ScanBy"].(cbor.String)))
	qs := q["MetricDataQueries"].(cbor.List)
	require.Len(t, qs, 3)
	assert.Equal(t, cbor.Bool(false), qs[0].(cbor.Map)["ReturnData"])
	assert.Equal(t, cbor.String("(m1+m2)/300"), qs[2].(cbor.Map)["Expression"])

	require.Len(t, out.Events, 2)
	for _, ev := range out.Events {
		require.NoError(t, ev.Validate())
		assert.Equal(t, "96.85", ev.Data.Quantity.String(), "the recorded double, exactly as printed")
		assert.Equal(t, "ebs.iops", ev.Data.Feature)
		assert.Equal(t, event.Customer{Source: "aws", ExternalID: "acme"}, ev.Data.Customer)
	}
	final, open := out.Events[0], out.Events[1]
	assert.Equal(t, "cw/m3/1727647800", final.ID)
	assert.Equal(t, uint32(time.Date(2024, 9, 29, 22, 20, 0, 0, time.UTC).Unix()), final.Data.Version, "period end + settle")
	assert.Equal(t, uint32(now.Unix()), open.Data.Version, "not settled: version now")
	// The cursor stops at the unsettled period; the first page kept the old one.
	assert.Nil(t, sourcetest.DecodeCursor[map[string]any](t, out.LastCursor())["costs"])
	assert.Equal(t, float64(time.Date(2024, 9, 29, 22, 20, 0, 0, time.UTC).Unix()), sourcetest.DecodeCursor[map[string]any](t, out.LastCursor())["metrics"])
	var first map[string]any
	require.NoError(t, json.Unmarshal(out.Cursors[0], &first))
	assert.Nil(t, first["metrics"])
}

func TestCloudWatchBillingSampleAndEmptyPage(t *testing.T) {
	cw := &cwServer{t: t, pages: []cbor.Map{cwOutput(t, "cloudwatch_get-metric-data.output2.json", 0, "")}}
	now := time.Date(2024, 9, 27, 0, 0, 0, 0, time.UTC)
	src := newMetricSource(t, cw, now, 6*time.Hour, time.Hour, []aws.MetricQuery{
		{ID: "m1", Namespace: "AWS/Billing", MetricName: "EstimatedCharges", Dimensions: map[string]string{"Currency": "USD"}, Stat: "Maximum", Feature: "aws.estimated_charges", Unit: "USD"},
	})
	out := &sourcetest.Collector{}
	require.NoError(t, src.Read(context.Background(), nil, out))
	require.Len(t, out.Events, 1)
	ev := out.Events[0]
	require.NoError(t, ev.Validate())
	assert.Equal(t, "542.38", ev.Data.Quantity.String())
	assert.Equal(t, source.UnmappedCustomer, ev.Data.Customer.ExternalID)
	assert.Equal(t, time.Date(2024, 9, 26, 12, 0, 0, 0, time.UTC), ev.Time)

	// Nothing new: an empty result, no events, the cursor holds.
	cw.pages = []cbor.Map{{"MetricDataResults": cbor.List{cbor.Map{"Id": cbor.String("m1"), "Label": cbor.String("EstimatedCharges"),
		"Timestamps": cbor.List{}, "Values": cbor.List{}, "StatusCode": cbor.String("Complete")}}, "Messages": cbor.List{}}}
	out2 := &sourcetest.Collector{}
	require.NoError(t, src.Read(context.Background(), out.Cursors[len(out.Cursors)-1], out2))
	assert.Empty(t, out2.Events)
	assert.Equal(t, sourcetest.DecodeCursor[map[string]any](t, out.LastCursor())["metrics"], sourcetest.DecodeCursor[map[string]any](t, out2.LastCursor())["metrics"])
}

func TestCloudWatchAuthFailureAndBadPoint(t *testing.T) {
	cw := &cwServer{t: t, deny: true}
	src := newMetricSource(t, cw, time.Date(2024, 9, 30, 0, 0, 0, 0, time.UTC), 5*time.Minute, 5*time.Minute, iopsQueries)
	out := &sourcetest.Collector{}
	err := src.Read(context.Background(), nil, out)
	require.True(t, source.IsAuth(err), "%v", err)
	assert.NotContains(t, err.Error(), accessKey)
	assert.Empty(t, out.Cursors)
	assert.True(t, source.IsAuth(src.Check(context.Background())))

	// A negative point is skipped by name; the others are kept.
	pg := cwOutput(t, "cloudwatch_get-metric-data.output1.json", 0, "")
	r := pg["MetricDataResults"].(cbor.List)[0].(cbor.Map)
	r["Timestamps"] = append(r["Timestamps"].(cbor.List), &cbor.Tag{ID: 1, Value: cbor.Float64(1727648100)})
	r["Values"] = append(r["Values"].(cbor.List), cbor.Float64(-1))
	cw2 := &cwServer{t: t, pages: []cbor.Map{pg}}
	src2 := newMetricSource(t, cw2, time.Date(2024, 9, 30, 0, 0, 0, 0, time.UTC), 5*time.Minute, 5*time.Minute, iopsQueries)
	out2 := &sourcetest.Collector{}
	require.NoError(t, src2.Read(context.Background(), nil, out2))
	assert.Len(t, out2.Events, 1)
	require.Contains(t, out2.Skipped, "aws cloudwatch m3 2024-09-29T22:15:00Z")
	assert.ErrorContains(t, out2.Skipped["aws cloudwatch m3 2024-09-29T22:15:00Z"], "-1 is not a usage quantity")
}

func TestCredentials(t *testing.T) {
	_, err := aws.FromCredentials(map[string]string{"access_key_id": accessKey}, source.Env{})
	assert.EqualError(t, err, "aws credentials: missing secret_access_key, region")
	_, err = aws.New(aws.Config{AccessKeyID: "a", SecretAccessKey: "b", Region: "r", CostMetric: "Cheapest",
		Metrics: []aws.MetricQuery{{ID: "M1"}, {ID: "m2", Feature: "f", Namespace: "n"}}})
	for _, want := range []string{`cost metric must be one of`, `id "M1" must start with a lower-case letter`, "metrics[0]: feature is required", "metrics[1]: give either expression or namespace and metric name"} {
		assert.ErrorContains(t, err, want)
	}
	src, err := aws.FromCredentials(map[string]string{"access_key_id": accessKey, "secret_access_key": secretKey, "region": "eu-west-1"}, source.Env{})
	require.NoError(t, err)
	assert.NotNil(t, src)
	assert.False(t, strings.Contains(err2str(err), secretKey))
}

func err2str(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

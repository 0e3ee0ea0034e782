package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/deploy/servicetest"
	"github.com/uvrhq/uvr/pipeline/event"
	"github.com/uvrhq/uvr/pipeline/kafka"
	"github.com/uvrhq/uvr/projections/aggregates"
)

// testConfig is a Config on the real Kafka and ClickHouse with a topic set,
// consumer group and database of its own.
func testConfig(t *testing.T) Config {
	t.Helper()
	addr, db := servicetest.ClickHouseDatabase(t)
	cfg := defaultConfig()
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.MetricsAddr = "127.0.0.1:0"
	cfg.KafkaBrokers = servicetest.KafkaBrokers(t)
	cfg.ClickHouseAddr = addr
	cfg.ClickHouseDatabase = db
	cfg.EventsTopic = servicetest.Topic("uvr.test.events")
	cfg.PoisonTopic = cfg.EventsTopic + ".poison"
	cfg.ConsumerGroup = "uvr-test-" + servicetest.Suffix()
	cfg.ConnectorPrefix = "uvr-test-" + servicetest.Suffix()
	cfg.TopicPartitions = 4
	cfg.FlushInterval = 100 * time.Millisecond
	cfg.DataDir = t.TempDir()
	// An admin, as UVR_ADMIN_EMAIL/PASSWORD would: the default HTTP client
	// of these tests logs in as it (auth_helpers_test.go).
	cfg.AdminEmail, cfg.AdminPassword = testAdminEmail, testAdminPassword
	return cfg
}

func testLogger(t *testing.T) *slog.Logger {
	if os.Getenv("UVR_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// startMain opens a Main in-process and closes it when the test ends.
func startMain(t *testing.T, cfg Config, roles Roles) *Main {
	t.Helper()
	m := NewMain(cfg, roles, testLogger(t).With("test", t.Name()))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	require.NoError(t, m.Open(ctx))
	t.Cleanup(func() { require.NoError(t, m.Close()) })
	return m
}

// ledger is what the test itself computes from the events it sends.
type ledger struct {
	cost, revenue decimal.Decimal
	costByDay     map[string]decimal.Decimal
	revenueByDay  map[string]decimal.Decimal
	qtyByFeature  map[string]decimal.Decimal
	costByFeature map[string]decimal.Decimal
}

func newLedger() *ledger {
	return &ledger{
		costByDay: map[string]decimal.Decimal{}, revenueByDay: map[string]decimal.Decimal{},
		qtyByFeature: map[string]decimal.Decimal{}, costByFeature: map[string]decimal.Decimal{},
	}
}

func (l *ledger) add(ev event.Event) {
	day := ev.Time.UTC().Format(time.DateOnly)
	switch ev.Type {
	case event.TypeUsage:
		l.cost = l.cost.Add(*ev.Data.Cost)
		l.costByDay[day] = l.costByDay[day].Add(*ev.Data.Cost)
		l.qtyByFeature[ev.Data.Feature] = l.qtyByFeature[ev.Data.Feature].Add(*ev.Data.Quantity)
		l.costByFeature[ev.Data.Feature] = l.costByFeature[ev.Data.Feature].Add(*ev.Data.Cost)
	case event.TypeRevenue:
		l.revenue = l.revenue.Add(*ev.Data.Amount)
		l.revenueByDay[day] = l.revenueByDay[day].Add(*ev.Data.Amount)
	}
}

// mixedEvents makes n distinct usage and revenue events (about 70/30) over
// the 30 days before end, with costs to the micro-dollar and amounts to the
// cent, including refunds and credit notes.
func mixedEvents(seed uint64, n int, end time.Time, idPrefix string) []event.Event {
	rng := rand.New(rand.NewPCG(seed, seed))
	features := []string{"gpt-4o.input_tokens", "gpt-4o.output_tokens", "api.calls", "storage.gb_days"}
	events := make([]event.Event, n)
	for i := range events {
		at := end.Add(-time.Duration(rng.Int64N(int64(30 * 24 * time.Hour)))).Truncate(time.Second)
		cust := event.Customer{Source: "test", ExternalID: fmt.Sprintf("cus_%03d", rng.IntN(150))}
		ev := event.Event{SpecVersion: event.SpecVersion, ID: fmt.Sprintf("%s-%d", idPrefix, i), Source: "e2e", Time: at}
		if rng.IntN(10) < 7 {
			qty := decimal.NewFromInt(rng.Int64N(1_000_000))
			cost := decimal.New(rng.Int64N(50_000_000), -6) // up to $50, micro-dollars
			ev.Type = event.TypeUsage
			ev.Data = event.Data{Customer: cust, Version: 1, Feature: features[rng.IntN(len(features))],
				Quantity: &qty, Unit: "units", Cost: &cost, Currency: "USD"}
		} else {
			amount := decimal.New(rng.Int64N(100_000), -2) // up to $1000, cents
			kind := event.KindInvoicePaid
			switch rng.IntN(10) {
			case 0:
				kind, amount = event.KindRefund, amount.Neg()
			case 1:
				kind, amount = event.KindCreditNote, amount.Neg()
			case 2, 3:
				kind = event.KindCharge
			}
			ev.Type = event.TypeRevenue
			ev.Data = event.Data{Customer: cust, Version: 1, Kind: kind, Amount: &amount, Currency: "USD"}
		}
		events[i] = ev
	}
	return events
}

func batchBody(t testing.TB, events []event.Event) []byte {
	t.Helper()
	body, err := event.MarshalBatch(events)
	require.NoError(t, err)
	return body
}

func post(t testing.TB, url, contentType string, body []byte) (int, string) {
	t.Helper()
	resp, err := http.Post(url, contentType, bytes.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// postAll posts events in batches and requires 202 for each.
func postAll(t testing.TB, baseURL string, events []event.Event, batch int) {
	t.Helper()
	for start := 0; start < len(events); start += batch {
		status, body := post(t, baseURL+"/api/events", "application/cloudevents-batch+json", batchBody(t, events[start:min(start+batch, len(events))]))
		require.Equal(t, http.StatusAccepted, status, body)
	}
}

// dashboardResponse is /api/dashboard with every number kept exact.
type dashboardResponse struct {
	Summary struct {
		TotalUsageCost decimal.Decimal  `json:"total_usage_cost"`
		TotalRevenue   decimal.Decimal  `json:"total_revenue"`
		TotalProfit    decimal.Decimal  `json:"total_profit"`
		Margin         *decimal.Decimal `json:"profit_margin_percentage"`
		DateRange      struct {
			Start string `json:"start"`
			End   string `json:"end"`
		} `json:"date_range"`
	} `json:"summary"`
	TimeSeries []struct {
		Date      string          `json:"date"`
		UsageCost decimal.Decimal `json:"usage_cost"`
		Revenue   decimal.Decimal `json:"revenue"`
		Profit    decimal.Decimal `json:"profit"`
	} `json:"time_series"`
	FeatureMetrics []struct {
		FeatureName  string           `json:"feature_name"`
		UsageCount   decimal.Decimal  `json:"usage_count"`
		TotalCost    decimal.Decimal  `json:"total_cost"`
		Revenue      decimal.Decimal  `json:"revenue"`
		ProfitMargin *decimal.Decimal `json:"profit_margin"`
	} `json:"feature_metrics"`
}

func getDashboard(t testing.TB, baseURL, start, end string) dashboardResponse {
	t.Helper()
	// Cash basis: the ledgers of these tests count revenue on the event's
	// day (the dashboard's default is accrual, docs/analytics/revenue.md).
	resp, err := http.Get(fmt.Sprintf("%s/api/dashboard?start_date=%s&end_date=%s&basis=cash", baseURL, start, end))
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	var d dashboardResponse
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber() // decimal.Decimal parses the number's text: no float on the way
	require.NoError(t, dec.Decode(&d))
	return d
}

// mismatch compares the dashboard to the ledger and describes the first
// difference, or returns "" when every total, day and feature is exact.
func (l *ledger) mismatch(d dashboardResponse) string {
	if !d.Summary.TotalUsageCost.Equal(l.cost) {
		return fmt.Sprintf("total_usage_cost %s, want %s", d.Summary.TotalUsageCost, l.cost)
	}
	if !d.Summary.TotalRevenue.Equal(l.revenue) {
		return fmt.Sprintf("total_revenue %s, want %s", d.Summary.TotalRevenue, l.revenue)
	}
	if want := l.revenue.Sub(l.cost); !d.Summary.TotalProfit.Equal(want) {
		return fmt.Sprintf("total_profit %s, want %s", d.Summary.TotalProfit, want)
	}
	for _, p := range d.TimeSeries {
		if !p.UsageCost.Equal(l.costByDay[p.Date]) || !p.Revenue.Equal(l.revenueByDay[p.Date]) {
			return fmt.Sprintf("day %s: cost %s revenue %s, want %s and %s", p.Date, p.UsageCost, p.Revenue, l.costByDay[p.Date], l.revenueByDay[p.Date])
		}
	}
	seen := map[string]bool{}
	for _, f := range d.FeatureMetrics {
		if f.FeatureName == "(unattributed)" {
			continue
		}
		seen[f.FeatureName] = true
		if !f.UsageCount.Equal(l.qtyByFeature[f.FeatureName]) || !f.TotalCost.Equal(l.costByFeature[f.FeatureName]) {
			return fmt.Sprintf("feature %s: quantity %s cost %s, want %s and %s", f.FeatureName, f.UsageCount, f.TotalCost,
				l.qtyByFeature[f.FeatureName], l.costByFeature[f.FeatureName])
		}
	}
	for f := range l.qtyByFeature {
		if !seen[f] {
			return "feature " + f + " missing"
		}
	}
	return ""
}

// projectionWait bounds a wait for the projector or the aggregator to catch up
// with a test's few thousand events: seconds on an idle machine, minutes on a
// loaded 2-core runner where two end-to-end tests and their services share it.
// Only a failing test waits it out.
const projectionWait = 3 * time.Minute

// requireDashboardEquals polls the API until it shows exactly the ledger.
func requireDashboardEquals(t testing.TB, baseURL string, l *ledger, start, end string, within time.Duration) {
	t.Helper()
	var last string
	waitUntil(t, within, 100*time.Millisecond, func() bool {
		last = l.mismatch(getDashboard(t, baseURL, start, end))
		return last == ""
	}, func() string { return fmt.Sprintf("dashboard never matched the ledger: %s", last) })
}

// waitCaughtUp waits until the group has committed every record of the
// topic: offsets are committed only after ClickHouse stored the rows, so the
// projection then holds everything published so far.
func waitCaughtUp(t testing.TB, brokers []string, group, topic string, within time.Duration) {
	t.Helper()
	var lag int64 = -1
	waitUntil(t, within, 100*time.Millisecond, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		lags, err := kafka.GroupLag(ctx, brokers, kafka.Security{}, group, topic)
		if err != nil {
			return false
		}
		lag = kafka.TotalLag(lags)
		return lag == 0
	}, func() string { return fmt.Sprintf("group %s never caught up on %s (lag %d)", group, topic, lag) })
}

// waitAggregated waits until no dirty day awaits a recompute. After
// waitCaughtUp it means the daily aggregates (what the dashboard reads) hold
// everything published so far: each flush marks its days dirty before its
// offsets can be committed, and a day is marked done only once its recompute
// was written.
func waitAggregated(t testing.TB, conn driver.Conn, within time.Duration) {
	t.Helper()
	agg, err := aggregates.New(aggregates.Config{Conn: conn})
	require.NoError(t, err)
	pending := -1
	waitUntil(t, within, 100*time.Millisecond, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		n, err := agg.Pending(ctx)
		if err != nil {
			return false
		}
		pending = n
		return n == 0
	}, func() string { return fmt.Sprintf("the aggregates never caught up (%d dirty days pending)", pending) })
}

// topicEnd sums the end offsets of a topic: how many records it ever held.
func topicEnd(t testing.TB, brokers []string, topic string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	lags, err := kafka.GroupLag(ctx, brokers, kafka.Security{}, "uvr-test-probe-"+servicetest.Suffix(), topic)
	require.NoError(t, err)
	var n int64
	for _, l := range lags {
		n += l.End
	}
	return n
}

func dateRange(end time.Time) (string, string) {
	return end.AddDate(0, 0, -31).Format(time.DateOnly), end.Format(time.DateOnly)
}

// waitUntil polls cond until it holds, or fails the test after within with describe's
// account of what the last poll saw. (require.Eventually formats its message before it polls,
// so it cannot show the last value.) The first polls come every tick; the interval then grows
// to at most a second, so a long wait does not load the services it waits for (a dashboard
// poll every 100 ms costs ClickHouse more than the projector it is waiting for).
func waitUntil(t testing.TB, within, tick time.Duration, cond func() bool, describe func() string) {
	t.Helper()
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	for !cond() {
		next := time.NewTimer(tick)
		select {
		case <-deadline.C:
			next.Stop()
			if cond() {
				return
			}
			t.Fatalf("%s (waited %s)", describe(), within)
		case <-next.C:
		}
		tick = min(tick*3/2, max(tick, time.Second))
	}
}

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/deploy/servicetest"
)

// The real Prometheus scrapes a running uvr and sees the metrics of every
// stage: ingest, Kafka publish and consume (with lag), projector inserts,
// HTTP, build info.
func TestPrometheusScrapesEveryStage(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	m := startMain(t, cfg, Roles{API: true, Projector: true})
	events := mixedEvents(5, 100, time.Now().UTC(), "metrics")
	postAll(t, m.URL(), events, 100)
	waitCaughtUp(t, cfg.KafkaBrokers, cfg.ConsumerGroup, cfg.EventsTopic, projectionWait)
	waitAggregated(t, m.ch, projectionWait)

	name := "metrics-" + servicetest.Suffix()
	servicetest.ScrapeTarget(t, name, m.Addr)
	prom := servicetest.PrometheusURL(t)

	want := map[string]float64{
		`sum(uvr_ingest_events_accepted_total{test="%s"})`:                                          100,
		`sum(uvr_kafka_published_messages_total{test="%s"})`:                                        100,
		`sum(uvr_kafka_consumer_messages_acked_total{test="%s",group="` + cfg.ConsumerGroup + `"})`: 100,
		`sum(uvr_projector_rows_inserted_total{test="%s"})`:                                         100,
		`sum(uvr_kafka_consumer_lag_messages{test="%s"})`:                                           0,
		`count(uvr_http_requests_total{test="%s",route="/api/events",status="202"})`:                1,
		`sum(uvr_build_info{test="%s"})`:                                                            1,
		`sum(uvr_aggregates_dirty_days_pending{test="%s"})`:                                         0,
		`count(uvr_aggregates_recompute_duration_seconds_count{test="%s"} > 0)`:                     3, // usage, revenue and revenue_lines days recomputed
		`up{job="uvr",test="%s"}`:                                                                   1,
	}
	for q, v := range want {
		query := fmt.Sprintf(q, name)
		var got string
		waitUntil(t, 45*time.Second, 250*time.Millisecond, func() bool {
			got = promQuery(t, prom, query)
			f, err := strconv.ParseFloat(got, 64)
			return err == nil && f == v
		}, func() string { return fmt.Sprintf("%s = %q, want %v", query, got, v) })
	}
}

// promQuery runs an instant query and returns the first sample's value, or
// "" when the result is empty.
func promQuery(t *testing.T, base, query string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/v1/query?query="+url.QueryEscape(query), nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	require.Equal(t, "success", body.Status, body.Error)
	if len(body.Data.Result) == 0 {
		return ""
	}
	s, _ := body.Data.Result[0].Value[1].(string)
	return s
}

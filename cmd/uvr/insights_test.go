package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/connectors/demo"
	"github.com/uvrhq/uvr/pipeline/event"
	"github.com/uvrhq/uvr/projections/insights"
)

type insightJSON struct {
	ID       string `json:"id"`
	Type     string `json:"type"`
	Category string `json:"category"`
	Title    string `json:"title"`
	Status   string `json:"status"`
	Metric   struct {
		Name  string `json:"name"`
		Value string `json:"value"`
	} `json:"metric"`
	Customer *struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	} `json:"customer"`
	Evidence map[string]string `json:"evidence"`
}

type runJSON struct {
	InsightsGenerated int `json:"insights_generated"`
	AlertsSent        int `json:"alerts_sent"`
	Created           int `json:"created"`
	Updated           int `json:"updated"`
	Resolved          int `json:"resolved"`
}

func listInsights(t *testing.T, url string) []insightJSON {
	t.Helper()
	code, body := getBody(t, url)
	require.Equal(t, http.StatusOK, code, body)
	var out struct {
		Insights []insightJSON `json:"insights"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &out))
	return out.Insights
}

func runInsights(t *testing.T, base string) runJSON {
	t.Helper()
	code, body := post(t, base+"/api/insights/run", "application/json", nil)
	require.Equal(t, http.StatusOK, code, body)
	var r runJSON
	require.NoError(t, json.Unmarshal([]byte(body), &r))
	return r
}

// The demo data set (40 customers, 45 days) through the API and the
// projector, then the insights: the designated unprofitable customers are
// flagged and nearly no normal one is; a flag can be acknowledged; a second
// run duplicates nothing.
func TestInsightsEndToEnd(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	// A webhook receiving the alerts: each verified, counted by delivery id.
	const secret = "an-alert-secret-of-32-bytes-long"
	var (
		mu         sync.Mutex
		deliveries = map[string]int{}
	)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err == nil {
			err = insights.VerifySignature([]byte(secret), r.Header.Get(insights.HeaderTimestamp), r.Header.Get(insights.HeaderSignature), body, time.Now(), insights.DefaultSignatureTolerance)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		mu.Lock()
		deliveries[r.Header.Get(insights.HeaderDelivery)]++
		mu.Unlock()
	}))
	t.Cleanup(hook.Close)
	cfg.AlertWebhookURL, cfg.AlertWebhookSecret, cfg.AlertMinSeverity = hook.URL, secret, "warning"
	m := startMain(t, cfg, Roles{API: true, Projector: true})

	dcfg := demo.Config{Seed: 1, Customers: 40, Days: 45, Now: time.Now().UTC()}
	var events []event.Event
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	require.NoError(t, demo.Generate(ctx, dcfg, func(ev event.Event) error { events = append(events, ev); return nil }))
	profiles, err := demo.Profiles(dcfg)
	require.NoError(t, err)
	postAll(t, m.URL(), events, 2000)
	waitCaughtUp(t, m.Brokers, cfg.ConsumerGroup, cfg.EventsTopic, projectionWait)
	waitCaughtUp(t, m.Brokers, cfg.ConsumerGroup+"-customers", cfg.EventsTopic, projectionWait)
	waitAggregated(t, m.ch, projectionWait)

	first := runInsights(t, m.URL())
	require.Positive(t, first.Created)
	assert.Equal(t, first.Created, first.InsightsGenerated)

	flags := listInsights(t, m.URL()+"/api/insights?kind=unprofitable_customer")
	flagged := map[string]insightJSON{}
	for _, f := range flags {
		assert.Equal(t, "unprofitable_customer", f.Category)
		assert.Equal(t, "open", f.Status)
		assert.Equal(t, "loss", f.Metric.Name)
		require.NotNil(t, f.Customer)
		flagged[f.Customer.Name] = f
	}
	var unprofitable, normal, normalFlagged int
	for _, p := range profiles {
		switch p.Scenario {
		case demo.ScenarioUnprofitable:
			unprofitable++
			assert.Contains(t, flagged, p.Name, "unprofitable customer %s is flagged", p.ID)
		case demo.ScenarioNormal:
			normal++
			if _, ok := flagged[p.Name]; ok {
				normalFlagged++
			}
		}
	}
	require.Positive(t, unprofitable, "the data set has unprofitable customers")
	t.Logf("run: %+v; %d unprofitable customers, %d flagged; %d of %d normal customers flagged", first, unprofitable, len(flagged), normalFlagged, normal)
	assert.LessOrEqual(t, normalFlagged*10, normal, "%d of %d normal customers flagged unprofitable", normalFlagged, normal)

	// Every active flag of warning or more was alerted once.
	var alertable int
	for _, f := range listInsights(t, m.URL()+"/api/insights") {
		if f.Type != "info" {
			alertable++
		}
	}
	assert.Equal(t, alertable, first.AlertsSent)
	mu.Lock()
	assert.Len(t, deliveries, alertable)
	mu.Unlock()

	// Filters: a bad value is named; a good one filters.
	code, body := getBody(t, m.URL()+"/api/insights?severity=urgent")
	assert.Equal(t, http.StatusBadRequest, code)
	assert.Contains(t, body, `urgent`)
	for _, f := range listInsights(t, m.URL()+"/api/insights?severity=critical") {
		assert.Equal(t, "critical", f.Type)
	}

	// Acknowledge one: its status shows, and stays through a run.
	var target insightJSON
	for _, p := range profiles {
		if f, ok := flagged[p.Name]; ok && p.Scenario == demo.ScenarioUnprofitable {
			target = f
			break
		}
	}
	require.NotEmpty(t, target.ID)
	code, body = post(t, m.URL()+"/api/insights/"+target.ID+"/acknowledge", "application/json", nil)
	require.Equal(t, http.StatusOK, code, body)
	assert.Contains(t, body, `"status":"acknowledged"`)
	code, _ = post(t, m.URL()+"/api/insights/flg_unknown/acknowledge", "application/json", nil)
	assert.Equal(t, http.StatusNotFound, code)
	code, _ = post(t, m.URL()+"/api/insights/flg_unknown/resolve", "application/json", nil)
	assert.Equal(t, http.StatusNotFound, code)
	acked := listInsights(t, m.URL()+"/api/insights?status=acknowledged")
	require.Len(t, acked, 1)
	assert.Equal(t, target.ID, acked[0].ID)

	// A second run on the same data: nothing new, nothing duplicated.
	all := listInsights(t, m.URL()+"/api/insights")
	second := runInsights(t, m.URL())
	assert.Zero(t, second.Created)
	assert.Zero(t, second.Resolved)
	assert.Equal(t, first.InsightsGenerated, second.InsightsGenerated)
	again := listInsights(t, m.URL()+"/api/insights")
	require.Len(t, again, len(all))
	seen := map[string]bool{}
	for _, f := range again {
		assert.False(t, seen[f.ID], "flag %s listed twice", f.ID)
		seen[f.ID] = true
		if f.ID == target.ID {
			assert.Equal(t, "acknowledged", f.Status)
		}
	}
	assert.True(t, strings.HasPrefix(target.ID, "flg_"))
	assert.Zero(t, second.AlertsSent, "no flag is alerted twice")
	mu.Lock()
	defer mu.Unlock()
	for id, n := range deliveries {
		assert.Equal(t, 1, n, "delivery %s", id)
	}
}

// The alert settings come from UVR_ALERT_*; a bad severity or a webhook
// without a long enough secret is refused, and no message shows a URL or the
// secret.
func TestAlertConfig(t *testing.T) {
	cfg := defaultConfig()
	fs := pflag.NewFlagSet("uvr", pflag.ContinueOnError)
	cfg.bind(fs)
	require.NoError(t, fs.Parse(nil))
	env := map[string]string{
		"UVR_ALERT_WEBHOOK_URL": "https://hooks.example/t0ken", "UVR_ALERT_WEBHOOK_SECRET": "short-s3cret",
		"UVR_ALERT_SLACK_URL": "https://slack.example/services/T/B/x", "UVR_ALERT_MIN_SEVERITY": "urgent",
	}
	require.NoError(t, applyEnv(fs, func(k string) (string, bool) { v, ok := env[k]; return v, ok }))
	assert.Equal(t, "https://hooks.example/t0ken", cfg.AlertWebhookURL)
	assert.Equal(t, "https://slack.example/services/T/B/x", cfg.AlertSlackURL)
	err := cfg.Validate()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "--alert-min-severity")
	assert.Contains(t, err.Error(), "--alert-webhook-secret")
	for _, secret := range []string{"t0ken", "short-s3cret", "services/T/B"} {
		assert.NotContains(t, err.Error(), secret)
	}
	assert.Equal(t, "warning", defaultConfig().AlertMinSeverity)
}

package insights_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/projections/insights"
	"github.com/uvrhq/uvr/projections/insights/insightstest"
)

const secret = "whsec-test-0123456789abcdef"

// receiver is an alert endpoint: it records each request and answers the
// statuses given in order, then 200.
type receiver struct {
	*httptest.Server
	mu       sync.Mutex
	requests []request
	statuses []int
}

type request struct {
	header http.Header
	path   string
	body   []byte
}

func newReceiver(t *testing.T, statuses ...int) *receiver {
	t.Helper()
	r := &receiver{statuses: statuses}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.requests = append(r.requests, request{header: req.Header.Clone(), path: req.URL.Path, body: body})
		status := http.StatusOK
		if len(r.statuses) > 0 {
			status, r.statuses = r.statuses[0], r.statuses[1:]
		}
		r.mu.Unlock()
		w.WriteHeader(status)
		_, _ = fmt.Fprint(w, http.StatusText(status))
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) got() []request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]request(nil), r.requests...)
}

type alertSetup struct {
	webhooks []insights.WebhookConfig
	slack    []insights.SlackConfig
	log      insights.DeliveryLog
	logger   *slog.Logger
	reg      prometheus.Registerer
}

func newAlerter(t *testing.T, s alertSetup) *insights.Alerter {
	t.Helper()
	var m *insights.Metrics
	if s.reg != nil {
		var err error
		m, err = insights.NewMetrics(s.reg)
		require.NoError(t, err)
	}
	a, err := insights.NewAlerter(insights.AlerterConfig{
		Webhooks: s.webhooks, Slack: s.slack, Log: s.log, Logger: s.logger, Metrics: m,
		InitialBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond,
		LinkBase: "https://uvr.example.com/insights/",
	})
	require.NoError(t, err)
	return a
}

// openFlag is the flag of a new unprofitable-customer finding.
func openFlag(customer, name string, sev insights.Severity) insights.Flag {
	fd := insights.Finding{
		Kind: insights.KindUnprofitableCustomer, Severity: sev, CustomerID: customer, CustomerName: name,
		Window: insights.LastDays(runAt, 30), Period: "30d",
		Evidence: map[string]string{"cost": "1504.5", "revenue": "300", "loss": "1204.5"},
		Title:    name + " cost $1,204.50 more than it paid over the last 30 days", Description: "A loss.",
	}
	return insights.Reconcile(nil, []insights.Finding{fd}, runAt)[0]
}

func TestWebhookSignedAndVerified(t *testing.T) {
	rcv := newReceiver(t)
	store := &insightstest.Store{}
	a := newAlerter(t, alertSetup{log: store, webhooks: []insights.WebhookConfig{{Name: "ops", URL: rcv.URL + "/hooks/uvr", Secret: secret}}})
	flag := openFlag("cus_1", "Acme Corp", insights.SeverityCritical)

	rep, err := a.Notify(context.Background(), []insights.Flag{flag})
	require.NoError(t, err)
	assert.Equal(t, insights.DeliveryReport{Sent: 1}, rep)
	reqs := rcv.got()
	require.Len(t, reqs, 1)
	r := reqs[0]

	// What a receiver does: recompute the HMAC of timestamp + "." + raw
	// body and compare in constant time, and refuse old timestamps.
	ts, sig := r.header.Get(insights.HeaderTimestamp), r.header.Get(insights.HeaderSignature)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts + "." + string(r.body)))
	assert.Equal(t, "sha256="+hex.EncodeToString(mac.Sum(nil)), sig)
	require.NoError(t, insights.VerifySignature([]byte(secret), ts, sig, r.body, time.Now(), 0))
	sec, err := strconv.ParseInt(ts, 10, 64)
	require.NoError(t, err)
	assert.WithinDuration(t, time.Now(), time.Unix(sec, 0), time.Minute)

	assert.Equal(t, "application/json", r.header.Get("Content-Type"))
	assert.Equal(t, insights.EventOpened, r.header.Get(insights.HeaderEvent))
	assert.Equal(t, flag.ID+".critical", r.header.Get(insights.HeaderDelivery))
	var p insights.WebhookPayload
	require.NoError(t, json.Unmarshal(r.body, &p))
	assert.Equal(t, insights.EventOpened, p.Event)
	assert.Equal(t, flag.ID+".critical", p.DeliveryID)
	assert.Equal(t, flag, p.Flag)
	assert.Equal(t, "https://uvr.example.com/insights/"+flag.ID, p.URL)
	assert.JSONEq(t, `{"start":"2026-10-28","end":"2026-11-26"}`, mustJSON(t, p.Flag.Window))
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}

func TestVerifySignature(t *testing.T) {
	body := []byte(`{"event":"insight.opened"}`)
	now := time.Unix(1_800_000_000, 0)
	ts := strconv.FormatInt(now.Unix(), 10)
	sig := insights.Sign([]byte(secret), ts, body)
	tests := []struct {
		name          string
		key           string
		ts, sig, body string
		at            time.Time
		want          error
	}{
		{name: "valid", key: secret, ts: ts, sig: sig, body: string(body), at: now.Add(time.Minute)},
		{name: "other key", key: secret + "x", ts: ts, sig: sig, body: string(body), at: now, want: insights.ErrBadSignature},
		{name: "body changed", key: secret, ts: ts, sig: sig, body: string(body) + " ", at: now, want: insights.ErrBadSignature},
		{name: "timestamp changed", key: secret, ts: strconv.FormatInt(now.Unix()+1, 10), sig: sig, body: string(body), at: now, want: insights.ErrBadSignature},
		{name: "replayed ten minutes later", key: secret, ts: ts, sig: sig, body: string(body), at: now.Add(10 * time.Minute), want: insights.ErrStale},
		{name: "from the future", key: secret, ts: ts, sig: sig, body: string(body), at: now.Add(-10 * time.Minute), want: insights.ErrStale},
		{name: "no timestamp", key: secret, ts: "", sig: sig, body: string(body), at: now, want: insights.ErrStale},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := insights.VerifySignature([]byte(tt.key), tt.ts, tt.sig, []byte(tt.body), tt.at, 0)
			if tt.want == nil {
				assert.NoError(t, err)
			} else {
				assert.ErrorIs(t, err, tt.want)
			}
		})
	}
}

func TestSlackBody(t *testing.T) {
	rcv := newReceiver(t)
	a := newAlerter(t, alertSetup{log: &insightstest.Store{}, slack: []insights.SlackConfig{{Name: "slack", URL: rcv.URL + "/services/T0/B0/tok", MinSeverity: insights.SeverityInfo}}})
	flag := openFlag("cus_2", "Smith & <Sons>", insights.SeverityWarning)
	_, err := a.Notify(context.Background(), []insights.Flag{flag})
	require.NoError(t, err)
	reqs := rcv.got()
	require.Len(t, reqs, 1)
	assert.Empty(t, reqs[0].header.Get(insights.HeaderSignature), "Slack is not signed: its URL is the credential")

	var msg struct {
		Text   string `json:"text"`
		Blocks []struct {
			Type string `json:"type"`
			Text *struct {
				Type string `json:"type"`
				Text string `json:"text"`
			} `json:"text"`
			Fields []struct {
				Type string `json:"type"`
				Text string `json:"text"`
			} `json:"fields"`
			Elements []struct {
				Type string `json:"type"`
				Text string `json:"text"`
			} `json:"elements"`
		} `json:"blocks"`
	}
	require.NoError(t, json.Unmarshal(reqs[0].body, &msg))
	assert.Equal(t, "[warning] Smith &amp; &lt;Sons&gt; cost $1,204.50 more than it paid over the last 30 days", msg.Text)
	require.Len(t, msg.Blocks, 4)
	assert.Equal(t, []string{"header", "section", "section", "context"},
		[]string{msg.Blocks[0].Type, msg.Blocks[1].Type, msg.Blocks[2].Type, msg.Blocks[3].Type})
	assert.Equal(t, "plain_text", msg.Blocks[0].Text.Type)
	assert.Equal(t, ":warning: Warning: Unprofitable customer", msg.Blocks[0].Text.Text)
	assert.Equal(t, "mrkdwn", msg.Blocks[1].Text.Type)
	assert.Equal(t, "*Smith &amp; &lt;Sons&gt; cost $1,204.50 more than it paid over the last 30 days*\nA loss.", msg.Blocks[1].Text.Text)
	var fields []string
	for _, f := range msg.Blocks[2].Fields {
		fields = append(fields, f.Text)
	}
	assert.Equal(t, []string{"*Customer*\nSmith &amp; &lt;Sons&gt; (cus_2)", "*Window*\n2026-10-28 to 2026-11-26", "*Severity*\nwarning"}, fields)
	require.Len(t, msg.Blocks[3].Elements, 1)
	assert.Contains(t, msg.Blocks[3].Elements[0].Text, "<https://uvr.example.com/insights/"+flag.ID+"|open in uvr>")
}

func TestAlertRetriedAfter500(t *testing.T) {
	rcv := newReceiver(t, http.StatusInternalServerError, http.StatusServiceUnavailable)
	reg := prometheus.NewRegistry()
	store := &insightstest.Store{}
	a := newAlerter(t, alertSetup{log: store, reg: reg, webhooks: []insights.WebhookConfig{{Name: "ops", URL: rcv.URL, Secret: secret}}})
	flag := openFlag("cus_1", "Acme Corp", insights.SeverityCritical)

	rep, err := a.Notify(context.Background(), []insights.Flag{flag})
	require.NoError(t, err)
	assert.Equal(t, insights.DeliveryReport{Sent: 1}, rep)
	reqs := rcv.got()
	require.Len(t, reqs, 3, "500, 503, then 200")
	for _, r := range reqs {
		assert.Equal(t, flag.ID+".critical", r.header.Get(insights.HeaderDelivery), "one delivery id across retries")
		require.NoError(t, insights.VerifySignature([]byte(secret), r.header.Get(insights.HeaderTimestamp), r.header.Get(insights.HeaderSignature), r.body, time.Now(), 0),
			"each attempt is signed afresh")
	}
	assert.Equal(t, 2.0, value(t, reg, "uvr_insights_alert_retries_total", "channel", "ops", "type", "webhook"))
	assert.Equal(t, 1.0, value(t, reg, "uvr_insights_alert_deliveries_total", "channel", "ops", "type", "webhook"))
	assert.Equal(t, 0.0, value(t, reg, "uvr_insights_alert_failures_total", "channel", "ops", "type", "webhook"))
	delivered, err := store.Delivered(context.Background(), "ops", []string{flag.ID})
	require.NoError(t, err)
	assert.Equal(t, map[string]insights.Severity{flag.ID: insights.SeverityCritical}, delivered)
}

func TestAlertFailuresAreRetriedByTheNextRun(t *testing.T) {
	// Five 502s exhaust the attempts; a 400 is not retried at all.
	for _, statuses := range [][]int{{502, 502, 502, 502, 502}, {400}} {
		t.Run(fmt.Sprint(statuses[0]), func(t *testing.T) {
			rcv := newReceiver(t, statuses...)
			reg := prometheus.NewRegistry()
			a := newAlerter(t, alertSetup{log: &insightstest.Store{}, reg: reg, webhooks: []insights.WebhookConfig{{Name: "ops", URL: rcv.URL, Secret: secret}}})
			flag := openFlag("cus_1", "Acme Corp", insights.SeverityCritical)

			rep, err := a.Notify(context.Background(), []insights.Flag{flag})
			assert.Equal(t, insights.DeliveryReport{Failed: 1}, rep)
			var de *insights.DeliveryError
			require.ErrorAs(t, err, &de)
			assert.Equal(t, statuses[0], de.Status)
			assert.Equal(t, len(statuses), de.Attempts)
			assert.Len(t, rcv.got(), len(statuses))
			assert.Equal(t, 1.0, value(t, reg, "uvr_insights_alert_failures_total", "channel", "ops", "type", "webhook"))

			// Not recorded as delivered: the next run sends it.
			rep, err = a.Notify(context.Background(), []insights.Flag{flag})
			require.NoError(t, err)
			assert.Equal(t, insights.DeliveryReport{Sent: 1}, rep)
		})
	}
}

func TestAlertChannelDownDefersTheRest(t *testing.T) {
	down := newReceiver(t, 500, 500, 500, 500, 500)
	bad := newReceiver(t, 400, 400)
	a := newAlerter(t, alertSetup{log: &insightstest.Store{}, webhooks: []insights.WebhookConfig{
		{Name: "down", URL: down.URL, Secret: secret},
		{Name: "bad", URL: bad.URL, Secret: secret},
	}})
	flags := []insights.Flag{
		openFlag("a", "A", insights.SeverityCritical), openFlag("b", "B", insights.SeverityCritical), openFlag("c", "C", insights.SeverityCritical),
	}
	rep, err := a.Notify(context.Background(), flags)
	require.Error(t, err)
	// down: the first alert's five attempts, then the channel waits for the
	// next run; bad: a 400 concerns one alert, the others go on.
	assert.Equal(t, insights.DeliveryReport{Sent: 1, Failed: 3, Deferred: 2}, rep)
	assert.Len(t, down.got(), 5)
	assert.Len(t, bad.got(), 3)

	rep, err = a.Notify(context.Background(), flags)
	require.NoError(t, err)
	assert.Equal(t, insights.DeliveryReport{Sent: 5}, rep, "the next run delivers what was left")
}

func TestAlertsDeliveredOnceAcrossRuns(t *testing.T) {
	hook, slack := newReceiver(t), newReceiver(t)
	store := &insightstest.Store{}
	a := newAlerter(t, alertSetup{
		log: store,
		webhooks: []insights.WebhookConfig{{
			Name: "ops", URL: hook.URL, Secret: secret, MinSeverity: insights.SeverityWarning, Escalations: true,
		}},
		slack: []insights.SlackConfig{{Name: "slack", URL: slack.URL, MinSeverity: insights.SeverityCritical}},
	})
	// a loses 30 % of its revenue (warning); b is profitable.
	source := &insightstest.Source{Customers: []insights.CustomerSeries{customer("a", "10", "13", runAt), customer("b", "10", "1", runAt)}}
	ev, err := insights.NewEvaluator(insights.EvaluatorConfig{Rules: insights.DefaultConfig(), Source: source, Store: store, Notifier: a})
	require.NoError(t, err)

	run := func(at time.Time) insights.RunResult {
		res, err := ev.Run(context.Background(), at)
		require.NoError(t, err)
		return res
	}
	res := run(runAt)
	assert.Equal(t, 1, res.AlertsSent)
	require.Len(t, hook.got(), 1, "warning: to the webhook")
	assert.Empty(t, slack.got(), "below Slack's minimum")

	res = run(runAt.Add(6 * time.Hour))
	assert.Zero(t, res.AlertsSent)
	assert.Len(t, hook.got(), 1, "delivered once across runs")

	// a gets worse (critical): the webhook, which takes escalations, gets it
	// again; Slack gets it for the first time.
	source.Customers[0] = customer("a", "10", "40", runAt)
	res = run(runAt.Add(12 * time.Hour))
	assert.Equal(t, 2, res.AlertsSent)
	reqs := hook.got()
	require.Len(t, reqs, 2)
	assert.Equal(t, insights.EventEscalated, reqs[1].header.Get(insights.HeaderEvent))
	require.Len(t, slack.got(), 1)
	assert.Contains(t, string(slack.got()[0].body), "Critical: Unprofitable customer")

	// Once more: nothing new anywhere. An acknowledged flag is never sent.
	res = run(runAt.Add(18 * time.Hour))
	assert.Zero(t, res.AlertsSent)
	source.Customers[1] = customer("b", "10", "100", runAt) // b now loses money too
	id := insights.Finding{Kind: insights.KindUnprofitableCustomer, CustomerID: "b", Period: "30d"}.ID()
	res = run(runAt.Add(24 * time.Hour))
	assert.Equal(t, 2, res.AlertsSent, "b, new and critical: webhook and Slack")
	_, err = store.Update(id, func(f *insights.Flag) error { return f.Acknowledge(runAt) })
	require.NoError(t, err)
	res = run(runAt.Add(30 * time.Hour))
	assert.Zero(t, res.AlertsSent)
	assert.Len(t, hook.got(), 3)
	assert.Len(t, slack.got(), 2)
}

func TestAlertBookkeepingFailures(t *testing.T) {
	rcv := newReceiver(t)
	store := &insightstest.Store{DeliveredErr: errors.New("log down")}
	a := newAlerter(t, alertSetup{log: store, webhooks: []insights.WebhookConfig{{Name: "ops", URL: rcv.URL, Secret: secret}}})
	flag := openFlag("cus_1", "Acme Corp", insights.SeverityCritical)
	_, err := a.Notify(context.Background(), []insights.Flag{flag})
	assert.ErrorContains(t, err, "read deliveries of ops: log down")
	assert.Empty(t, rcv.got(), "nothing sent when the log cannot say what was")

	// Sent, but not recorded: reported, and sent again (same delivery id)
	// by the next run.
	store.DeliveredErr, store.MarkErr = nil, errors.New("log down")
	rep, err := a.Notify(context.Background(), []insights.Flag{flag})
	assert.Equal(t, 1, rep.Sent)
	assert.ErrorContains(t, err, "record delivery of "+flag.ID+" to ops: log down")
	store.MarkErr = nil
	_, err = a.Notify(context.Background(), []insights.Flag{flag})
	require.NoError(t, err)
	reqs := rcv.got()
	require.Len(t, reqs, 2)
	assert.Equal(t, reqs[0].header.Get(insights.HeaderDelivery), reqs[1].header.Get(insights.HeaderDelivery))
}

func TestAlertSecretsNeverLogged(t *testing.T) {
	const token = "SLACKTOKEN0123456789"
	const hookToken = "hooktoken=SECRETQUERY42"
	failing := newReceiver(t, 500, 500, 500, 500, 500)
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close() // connection refused

	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	webhooks := []insights.WebhookConfig{
		{Name: "hook-down", URL: closed.URL + "/hook?" + hookToken, Secret: secret},
		{Name: "hook-500", URL: failing.URL + "/hook?" + hookToken, Secret: secret},
	}
	slack := []insights.SlackConfig{{Name: "slack-down", URL: closed.URL + "/services/T000/B000/" + token}}
	a := newAlerter(t, alertSetup{log: &insightstest.Store{}, logger: logger, webhooks: webhooks, slack: slack})

	rep, err := a.Notify(context.Background(), []insights.Flag{openFlag("cus_1", "Acme Corp", insights.SeverityCritical)})
	require.Error(t, err)
	assert.Equal(t, 3, rep.Failed)
	assert.Contains(t, err.Error(), "to slack-down")
	assert.Contains(t, err.Error(), "connection refused")
	assert.Contains(t, err.Error(), "HTTP 500")

	logger.Info("config", "webhook", webhooks[0], "slack", slack[0])
	printed := fmt.Sprintf("%v %+v %#v %s %v", webhooks[0], webhooks[0], slack[0], slack[0], []insights.WebhookConfig{webhooks[1]})
	for _, text := range []string{err.Error(), logs.String(), printed} {
		for _, s := range []string{token, "SECRETQUERY42", secret, "/services/T000"} {
			assert.NotContains(t, text, s)
		}
	}
	assert.Contains(t, logs.String(), "retrying alert", "retries are logged, without secrets")
}

func TestNewAlerterValidates(t *testing.T) {
	const tokenURL = "https://hooks.slack.com/services/T0/B0/SECRET"
	_, err := insights.NewAlerter(insights.AlerterConfig{
		Webhooks: []insights.WebhookConfig{
			{Name: "Ops", URL: "https://example.com/a", Secret: secret},
			{Name: "ops", URL: "ftp://example.com/" + "SECRET", Secret: "short"},
			{Name: "ops", URL: "https://example.com/b", Secret: secret, MinSeverity: "high"},
		},
		Slack: []insights.SlackConfig{{Name: "slack", URL: "hooks.slack.com/services/SECRET"}, {Name: "slack2", URL: tokenURL}},
	})
	require.Error(t, err)
	for _, w := range []string{
		`webhook channel "Ops": name must be`,
		`webhook channel "ops": url must be an absolute http(s) URL`,
		`webhook channel "ops": secret must be at least 16 bytes`,
		`webhook channel "ops": name used twice`,
		`min severity must be info, warning or critical, got "high"`,
		`slack channel "slack": url must be`,
		"delivery log is required",
	} {
		assert.Contains(t, err.Error(), w)
	}
	assert.NotContains(t, err.Error(), "SECRET")

	// No channel: a valid Alerter that sends nothing.
	a, err := insights.NewAlerter(insights.AlerterConfig{})
	require.NoError(t, err)
	rep, err := a.Notify(context.Background(), []insights.Flag{openFlag("a", "A", insights.SeverityCritical)})
	require.NoError(t, err)
	assert.Zero(t, rep)
}

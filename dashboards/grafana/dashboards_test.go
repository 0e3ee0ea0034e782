package grafana_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/connectors/demo"
	"github.com/uvrhq/uvr/deploy/servicetest"
	"github.com/uvrhq/uvr/pipeline/event"
	"github.com/uvrhq/uvr/projections/aggregates"
	"github.com/uvrhq/uvr/projections/chstore"
	"github.com/uvrhq/uvr/projections/insights"
	"github.com/uvrhq/uvr/projections/insights/chinsights"
	"github.com/uvrhq/uvr/projections/rawevents"
)

// The dashboard JSON, as much of it as the test reads.
type dashboard struct {
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []variable `json:"list"`
	} `json:"templating"`
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type panel struct {
	ID         int        `json:"id"`
	Title      string     `json:"title"`
	Type       string     `json:"type"`
	Datasource datasource `json:"datasource"`
	Targets    []target   `json:"targets"`
}

type target struct {
	RefID      string     `json:"refId"`
	Datasource datasource `json:"datasource"`
	RawSQL     string     `json:"rawSql"`
	Expr       string     `json:"expr"`
}

type variable struct {
	Name       string     `json:"name"`
	Type       string     `json:"type"`
	Datasource datasource `json:"datasource"`
	Query      string     `json:"query"`
	IncludeAll bool       `json:"includeAll"`
	AllValue   string     `json:"allValue"`
}

const (
	clickhouseUID  = "clickhouse"
	clickhouseType = "grafana-clickhouse-datasource"
	prometheusUID  = "prometheus"
	prometheusType = "prometheus"
)

func loadDashboards(t *testing.T) map[string]dashboard {
	t.Helper()
	files, err := filepath.Glob("dashboards/*.json")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	out := map[string]dashboard{}
	uids := map[string]string{}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		require.NoError(t, err)
		var d dashboard
		require.NoError(t, json.Unmarshal(raw, &d), f)
		require.NotEmpty(t, d.UID, f)
		require.NotContains(t, uids, d.UID, "%s: uid %s also in %s", f, d.UID, uids[d.UID])
		uids[d.UID] = f
		assert.GreaterOrEqual(t, d.SchemaVersion, 39, f)
		require.NotEmpty(t, d.Panels, f)
		ids := map[int]bool{}
		for _, p := range d.Panels {
			assert.False(t, ids[p.ID], "%s: panel id %d twice", f, p.ID)
			ids[p.ID] = true
			require.NotEmpty(t, p.Targets, "%s: panel %q has no target", f, p.Title)
			assertDatasource(t, p.Datasource, f+": panel "+p.Title)
			for _, tg := range p.Targets {
				assertDatasource(t, tg.Datasource, f+": panel "+p.Title)
				assert.Equal(t, p.Datasource, tg.Datasource, "%s: panel %q mixes datasources", f, p.Title)
				switch tg.Datasource.UID {
				case clickhouseUID:
					assert.NotEmpty(t, tg.RawSQL, "%s: panel %q", f, p.Title)
				case prometheusUID:
					assert.NotEmpty(t, tg.Expr, "%s: panel %q", f, p.Title)
				}
			}
		}
		out[filepath.Base(f)] = d
	}
	require.Contains(t, out, "unit-economics.json")
	require.Contains(t, out, "pipeline-health.json")
	return out
}

func assertDatasource(t *testing.T, ds datasource, where string) {
	t.Helper()
	switch ds.UID {
	case clickhouseUID:
		assert.Equal(t, clickhouseType, ds.Type, where)
	case prometheusUID:
		assert.Equal(t, prometheusType, ds.Type, where)
	default:
		t.Errorf("%s: unknown datasource uid %q", where, ds.UID)
	}
}

// TestProvisioning checks the provisioning files name the datasource uids
// and the dashboards path the JSON references.
func TestProvisioning(t *testing.T) {
	ds, err := os.ReadFile("provisioning/datasources/datasources.yaml")
	require.NoError(t, err)
	for _, s := range []string{"uid: clickhouse", "type: grafana-clickhouse-datasource", "port: 9000", "protocol: native",
		"uid: prometheus", "type: prometheus", "${PROMETHEUS_URL}"} {
		assert.Contains(t, string(ds), s)
	}
	db, err := os.ReadFile("provisioning/dashboards/dashboards.yaml")
	require.NoError(t, err)
	assert.Contains(t, string(db), "path: /var/lib/grafana/dashboards")
	assert.Contains(t, string(db), "type: file")
	loadDashboards(t)
}

// --- ClickHouse -----------------------------------------------------------

// chMacros substitutes the grafana-clickhouse-datasource macros and the
// dashboard variables the way Grafana does for a time range [from, to].
func chMacros(t *testing.T, sql string, from, to time.Time, vars map[string]string) string {
	t.Helper()
	fromS := fmt.Sprintf("toDateTime(%d)", from.Unix())
	toS := fmt.Sprintf("toDateTime(%d)", to.Unix())
	sql = regexp.MustCompile(`\$__timeFilter\(([^)]+)\)`).ReplaceAllString(sql,
		"$1 >= "+fromS+" AND $1 <= "+toS)
	sql = strings.NewReplacer("$__fromTime", fromS, "$__toTime", toS).Replace(sql)
	names := make([]string, 0, len(vars))
	for n := range vars {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool { return len(names[i]) > len(names[j]) })
	for _, n := range names {
		sql = strings.ReplaceAll(sql, "${"+n+"}", vars[n])
		sql = strings.ReplaceAll(sql, "$"+n, vars[n])
	}
	require.NotContains(t, sql, "$", "unsubstituted macro or variable in:\n%s", sql)
	return sql
}

// query runs sql and returns its rows' first columns as strings and the row count.
func query(ctx context.Context, conn driver.Conn, sql string) (n int, first []string, err error) {
	rows, err := conn.Query(ctx, sql)
	if err != nil {
		return 0, nil, err
	}
	defer rows.Close()
	for rows.Next() {
		n++
		if len(rows.ColumnTypes()) > 0 && rows.ColumnTypes()[0].DatabaseTypeName() == "String" {
			vals := make([]any, len(rows.ColumnTypes()))
			var s string
			vals[0] = &s
			for i := 1; i < len(vals); i++ {
				vals[i] = new(any)
			}
			if err := rows.Scan(vals...); err != nil {
				// Only the String first column matters (variable queries).
				first = nil
				continue
			}
			first = append(first, s)
		}
	}
	return n, first, rows.Err()
}

// loadDemo fills a migrated database through the projector's own write path:
// demo events -> rawevents rows -> aggregates writer (by-day rows, dirty days)
// -> raw insert -> aggregator recompute of daily_usage / daily_revenue. It
// also saves one open and one resolved insight flag through chinsights.
func loadDemo(t *testing.T, ctx context.Context, conn driver.Conn, now time.Time) {
	t.Helper()
	var evs []event.Event
	require.NoError(t, demo.Generate(ctx, demo.Config{Seed: 1, Customers: 20, Days: 30, Now: now}, func(ev event.Event) error {
		evs = append(evs, ev)
		return nil
	}))
	require.NotEmpty(t, evs)
	w, err := aggregates.NewWriter(aggregates.WriterConfig{Conn: conn})
	require.NoError(t, err)
	store := rawevents.NewClickHouseStore(conn)
	const batch = 5000
	for i := 0; i < len(evs); i += batch {
		end := min(i+batch, len(evs))
		rows := make([]rawevents.Row, 0, end-i)
		for j, ev := range evs[i:end] {
			r, err := rawevents.NewRow(ev, now, 0, int64(i+j))
			require.NoError(t, err)
			rows = append(rows, r)
		}
		require.NoError(t, w.WriteBefore(ctx, rows))
		require.NoError(t, store.InsertBatch(ctx, rows))
	}
	agg, err := aggregates.New(aggregates.Config{Conn: conn})
	require.NoError(t, err)
	n, err := agg.RecomputePending(ctx)
	require.NoError(t, err)
	require.Positive(t, n, "no day recomputed")
	t.Logf("demo: %d events, %d days recomputed", len(evs), n)

	flags := insights.Reconcile(nil, []insights.Finding{
		{
			Kind: insights.KindUnprofitableCustomer, Severity: insights.SeverityCritical, CustomerID: "cust_demo", CustomerName: "Demo Co",
			Window: insights.LastDays(now, 30), Period: "30d",
			Evidence: map[string]string{"cost": "1504.5", "revenue": "300", "loss": "1204.5"},
			Title:    "Demo Co cost $1,204.50 more than it paid over the last 30 days", Description: "A loss.",
		},
		{
			Kind: insights.KindUsageAnomaly, Severity: insights.SeverityWarning, CustomerID: "cust_other", Feature: "api.calls",
			Window: insights.LastDays(now, 7), Period: "7d", Evidence: map[string]string{"z": "4"},
			Title: "Usage spike", Description: "A spike.",
		},
	}, now)
	require.Len(t, flags, 2)
	resolved := flags[1]
	resolved.Status = insights.StatusResolved
	resolved.ResolvedAt = now
	resolved.Version++
	flagStore, err := chinsights.NewStore(conn)
	require.NoError(t, err)
	require.NoError(t, flagStore.Save(ctx, flags))
	require.NoError(t, flagStore.Save(ctx, []insights.Flag{resolved}))
}

// TestClickHouseQueries runs every ClickHouse panel target and variable query
// of every dashboard against the real ClickHouse, on demo data.
func TestClickHouseQueries(t *testing.T) {
	ds := loadDashboards(t)
	addr, database := servicetest.ClickHouseDatabase(t)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	t.Cleanup(cancel)
	conn, err := chstore.Open(ctx, chstore.Config{Addr: []string{addr}, Database: database})
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	require.NoError(t, chstore.Migrate(ctx, conn, database, nil))

	now := time.Now().UTC()
	loadDemo(t, ctx, conn, now)
	from, to := now.AddDate(0, 0, -90), now

	ran := 0
	for name, d := range ds {
		// Variable queries, in order (a later one may use an earlier one),
		// first with every variable on All.
		vars := map[string]string{}
		for _, v := range d.Templating.List {
			if v.IncludeAll {
				vars[v.Name] = v.AllValue
			}
		}
		values := map[string][]string{}
		for _, v := range d.Templating.List {
			if v.Datasource.UID != clickhouseUID || v.Type != "query" {
				continue
			}
			if v.IncludeAll {
				assert.Equal(t, "All", v.AllValue, "%s: variable %s: the SQL tests '${%s}' = 'All'", name, v.Name, v.Name)
			}
			sql := chMacros(t, v.Query, from, to, vars)
			n, first, err := query(ctx, conn, sql)
			require.NoError(t, err, "%s: variable %s:\n%s", name, v.Name, sql)
			require.Positive(t, n, "%s: variable %s is empty:\n%s", name, v.Name, sql)
			values[v.Name] = first
			if !v.IncludeAll {
				vars[v.Name] = first[0]
			}
			ran++
			t.Logf("%s: variable %s: %d values", name, v.Name, n)
		}
		if _, ok := vars["currency"]; ok {
			assert.Contains(t, values["currency"], demo.Currency)
			vars["currency"] = demo.Currency
		}

		// Every panel with the variables on All: no error, and rows (the demo
		// data and the saved flags fill every panel).
		for _, p := range d.Panels {
			for _, tg := range p.Targets {
				if tg.Datasource.UID != clickhouseUID {
					continue
				}
				sql := chMacros(t, tg.RawSQL, from, to, vars)
				n, _, err := query(ctx, conn, sql)
				if assert.NoError(t, err, "%s: panel %q (%s):\n%s", name, p.Title, tg.RefID, sql) {
					assert.Positive(t, n, "%s: panel %q (%s) is empty with demo data:\n%s", name, p.Title, tg.RefID, sql)
				}
				ran++
				t.Logf("%s: panel %q: %d rows", name, p.Title, n)
			}
		}

		// And with a concrete customer and feature: no error, and rows in
		// the panels that must have some for any customer with usage.
		if len(values["customer"]) == 0 || len(values["feature"]) == 0 {
			continue
		}
		one := map[string]string{}
		for k, v := range vars {
			one[k] = v
		}
		one["customer"] = values["customer"][0]
		fsql := chMacros(t, variableQuery(d, "feature"), from, to, one)
		_, feats, err := query(ctx, conn, fsql)
		require.NoError(t, err, fsql)
		require.NotEmpty(t, feats, "no feature for customer %s:\n%s", one["customer"], fsql)
		one["feature"] = feats[0]
		for _, p := range d.Panels {
			for _, tg := range p.Targets {
				if tg.Datasource.UID != clickhouseUID {
					continue
				}
				sql := chMacros(t, tg.RawSQL, from, to, one)
				n, _, err := query(ctx, conn, sql)
				assert.NoError(t, err, "%s: panel %q (%s) customer %s feature %s:\n%s", name, p.Title, tg.RefID, one["customer"], one["feature"], sql)
				ran++
				t.Logf("%s: panel %q, customer %s, feature %s: %d rows", name, p.Title, one["customer"], one["feature"], n)
			}
		}
	}
	require.Positive(t, ran)
}

func variableQuery(d dashboard, name string) string {
	for _, v := range d.Templating.List {
		if v.Name == name {
			return v.Query
		}
	}
	return ""
}

// --- Prometheus -----------------------------------------------------------

var metricName = regexp.MustCompile(`\buvr_[a-z0-9_]+`)

// uvrMetrics collects the metric names the Go code registers (Name: "uvr_…").
func uvrMetrics(t *testing.T) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	re := regexp.MustCompile(`Name:\s*"(uvr_[a-z0-9_]+)"`)
	root := servicetest.Root()
	require.NoError(t, filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "var" || d.Name() == "node_modules" || strings.HasPrefix(d.Name(), ".")) && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range re.FindAllStringSubmatch(string(b), -1) {
			names[m[1]] = true
		}
		return nil
	}))
	require.NotEmpty(t, names)
	return names
}

// TestPrometheusQueries checks every Prometheus target names only metrics
// the code registers, and runs it against the real Prometheus: it must parse
// and evaluate without error (an empty result is fine: nothing guarantees a
// uvr instance is being scraped).
// withData names the Prometheus targets (dashboard/panel/refId) that must
// show data once a running uvr has ingested and projected events; the rest
// (poison messages, syncs, 5xx) have nothing to show in that scenario and
// must only evaluate without error.
var withData = map[string]bool{
	"pipeline-health.json/Ingest: events accepted / rejected per second/A": true,
	"pipeline-health.json/Ingest: events accepted / rejected per second/B": true,
	"pipeline-health.json/Ingest: publish latency p95 and errors/A":        true,
	"pipeline-health.json/Ingest: publish latency p95 and errors/B":        true,
	"pipeline-health.json/Consumer lag by topic / partition/A":             true,
	"pipeline-health.json/Projector: flush latency p95/A":                  true,
	"pipeline-health.json/Projector: insert errors and rows inserted/B":    true,
	"pipeline-health.json/API latency p95 by route/A":                      true,
}

// TestPrometheusQueries evaluates every Prometheus target on the real
// Prometheus while it scrapes a running uvr that has ingested events: each
// must evaluate, and those of withData must return series.
func TestPrometheusQueries(t *testing.T) {
	ds := loadDashboards(t)
	known := uvrMetrics(t)
	base := servicetest.PrometheusURL(t)
	scrapedUvr(t, base)
	client := &http.Client{Timeout: 10 * time.Second}
	macros := strings.NewReplacer("$__rate_interval", "1m", "$__interval", "30s", "$__range", "1h")
	expected := map[string]bool{}
	for k := range withData {
		expected[k] = true
	}
	t.Cleanup(func() { assert.Empty(t, expected, "targets named in withData that no dashboard has any more") })
	ran := 0
	for name, d := range ds {
		for _, p := range d.Panels {
			for _, tg := range p.Targets {
				if tg.Datasource.UID != prometheusUID {
					continue
				}
				expr := macros.Replace(tg.Expr)
				require.NotContains(t, expr, "$", "%s: panel %q: unsubstituted macro in %s", name, p.Title, expr)
				for _, m := range metricName.FindAllString(expr, -1) {
					mn := m
					for _, suf := range []string{"_bucket", "_sum", "_count"} {
						if !known[mn] && strings.HasSuffix(mn, suf) {
							mn = strings.TrimSuffix(mn, suf)
						}
					}
					assert.True(t, known[mn], "%s: panel %q: metric %s is not registered by the code", name, p.Title, m)
				}
				resp, err := client.Get(base + "/api/v1/query?query=" + url.QueryEscape(expr))
				require.NoError(t, err)
				var body struct {
					Status    string `json:"status"`
					ErrorType string `json:"errorType"`
					Error     string `json:"error"`
					Data      struct {
						Result []json.RawMessage `json:"result"`
					} `json:"data"`
				}
				err = json.NewDecoder(resp.Body).Decode(&body)
				_ = resp.Body.Close()
				require.NoError(t, err)
				assert.Equal(t, "success", body.Status, "%s: panel %q: %s: %s: %s", name, p.Title, expr, body.ErrorType, body.Error)
				key := name + "/" + p.Title + "/" + tg.RefID
				if withData[key] {
					assert.NotEmpty(t, body.Data.Result, "%s: no series although the scraped uvr has data: %s", key, expr)
					delete(expected, key)
				}
				ran++
				t.Logf("%s: panel %q %s: %d series", name, p.Title, tg.RefID, len(body.Data.Result))
			}
		}
	}
	require.Positive(t, ran)
}

// scrapedUvr builds and starts `uvr run` (embedded broker, a ClickHouse
// database of this test), has the real Prometheus scrape it, posts events
// (and one invalid request), and waits until Prometheus has a rate of them.
func scrapedUvr(t *testing.T, prom string) {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "uvr")
	build := exec.Command("go", "build", "-o", bin, "./cmd/uvr")
	build.Dir = servicetest.Root()
	out, err := build.CombinedOutput()
	require.NoError(t, err, string(out))

	addr, database := servicetest.ClickHouseDatabase(t)
	cmd := exec.Command(bin, "run", "--http-addr", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), "UVR_CLICKHOUSE_ADDR="+addr, "UVR_CLICKHOUSE_DATABASE="+database,
		"UVR_DATA_DIR="+t.TempDir(), "UVR_KAFKA_BROKERS=", "UVR_EMBEDDED_KAFKA_ADDR=127.0.0.1:0",
		"UVR_CONNECTOR_PREFIX=uvr-dash-"+servicetest.Suffix(), "ENABLE_SCHEDULER=false", "UVR_LOG_LEVEL=warn",
		"UVR_ADMIN_EMAIL=admin@uvr.test", "UVR_ADMIN_PASSWORD=dashboards-test")
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	require.NoError(t, err, "uvr run printed no URL")
	m := regexp.MustCompile(`http://(127\.0\.0\.1:\d+)`).FindStringSubmatch(line)
	require.Len(t, m, 2, "uvr run's first line: %q", line)
	hostport := m[1]

	name := "dashboards-" + servicetest.Suffix()
	servicetest.ScrapeTarget(t, name, hostport)
	var events []string
	for i := range 50 {
		events = append(events, fmt.Sprintf(`{"specversion":"1.0","id":"dash-%d","source":"dash","type":"uvr.usage.v1","time":"%s",`+
			`"data":{"customer":{"external_id":"c%d"},"feature":"api.calls","quantity":"1","cost":"0.01","currency":"USD"}}`,
			i, time.Now().UTC().Format(time.RFC3339), i%5))
	}
	// The API needs a token: log in as the admin of the environment above.
	resp, err := http.PostForm("http://"+hostport+"/api/auth/login", url.Values{"username": {"admin@uvr.test"}, "password": {"dashboards-test"}})
	require.NoError(t, err)
	var auth struct {
		AccessToken string `json:"access_token"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&auth))
	_ = resp.Body.Close()
	require.NotEmpty(t, auth.AccessToken)
	post := func(body string) int {
		req, err := http.NewRequest(http.MethodPost, "http://"+hostport+"/api/events", strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/cloudevents-batch+json")
		req.Header.Set("Authorization", "Bearer "+auth.AccessToken)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	require.Equal(t, http.StatusAccepted, post("["+strings.Join(events, ",")+"]"))
	require.Equal(t, http.StatusBadRequest, post(`[{"specversion":"1.0"}]`))

	// Two scrapes after the events: rates exist (Prometheus scrapes every 5 s).
	query := fmt.Sprintf(`sum(rate(uvr_projector_rows_inserted_total{test=%q}[1m])) and sum(rate(uvr_ingest_events_rejected_total{test=%q}[1m]))`, name, name)
	require.Eventually(t, func() bool {
		resp, err := http.Get(prom + "/api/v1/query?query=" + url.QueryEscape(query))
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var body struct {
			Data struct {
				Result []json.RawMessage `json:"result"`
			} `json:"data"`
		}
		return json.NewDecoder(resp.Body).Decode(&body) == nil && len(body.Data.Result) > 0
	}, 90*time.Second, 500*time.Millisecond, "Prometheus never had a rate of the scraped uvr's events")
}

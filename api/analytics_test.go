package api_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/api"
	"github.com/uvrhq/uvr/deploy/servicetest"
	"github.com/uvrhq/uvr/pipeline/event"
	"github.com/uvrhq/uvr/pipeline/kafka"
	"github.com/uvrhq/uvr/projections/aggregates"
	"github.com/uvrhq/uvr/projections/chstore"
	"github.com/uvrhq/uvr/projections/customers"
	"github.com/uvrhq/uvr/projections/pricing"
	"github.com/uvrhq/uvr/projections/revsettings"
)

// analyticsServer serves the analytics routes over a directory on the real
// Kafka (Ann on Stripe and Chargebee by email, an OpenAI project of its
// own) and daily aggregates written into the real ClickHouse.
func analyticsServer(t *testing.T, enabled bool) http.Handler {
	t.Helper()
	brokers := servicetest.KafkaBrokers(t)
	pub, err := kafka.NewPublisher(kafka.PublisherConfig{Brokers: brokers})
	require.NoError(t, err)
	t.Cleanup(func() { _ = pub.Close() })
	cfg := api.Config{
		Addr: "127.0.0.1:0", EventsTopic: servicetest.Topic("test.api.events"), Publisher: pub, // not called by these routes
		Logger: slog.New(slog.DiscardHandler),
	}
	if enabled {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		table, err := kafka.NewTable(kafka.TableConfig{Brokers: brokers, Topic: servicetest.Topic("test.api.analytics.customers")})
		require.NoError(t, err)
		t.Cleanup(func() { _ = table.Close() })
		dir, err := customers.New(customers.Config{Table: table})
		require.NoError(t, err)
		at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		for i, c := range []event.Customer{
			{Source: "stripe", ExternalID: "cus_ann", Email: "ann@example.com", Name: "Ann"},
			{Source: "chargebee", ExternalID: "ann-1", Email: "ann@example.com"},
			{Source: "openai", ExternalID: "proj_1"},
		} {
			typ := event.TypeCustomer
			if c.Email == "" {
				typ = event.TypeUsage
			}
			require.NoError(t, dir.Observe(ctx, event.Event{SpecVersion: event.SpecVersion, ID: "e" + c.ExternalID, Source: c.Source,
				Type: typ, Time: at.Add(time.Duration(i) * time.Second), Data: event.Data{Customer: c, Version: 1}}))
		}

		addr, database := servicetest.ClickHouseDatabase(t)
		conn, err := chstore.Open(ctx, chstore.Config{Addr: []string{addr}, Database: database})
		require.NoError(t, err)
		t.Cleanup(func() { _ = conn.Close() })
		require.NoError(t, chstore.Migrate(ctx, conn, database, nil))
		d := decimal.RequireFromString
		day1, day2 := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC), time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC)
		require.NoError(t, chstore.InsertColumns(ctx, conn, aggregates.TableDailyUsage,
			[]string{"day", "customer_source", "customer_external_id", "feature", "currency", "quantity", "events", "cost", "computed_at"},
			[]any{
				[]time.Time{day1, day1, day2},
				[]string{"stripe", "chargebee", "openai"},
				[]string{"cus_ann", "ann-1", "proj_1"},
				[]string{"tokens", "images", "tokens"},
				[]string{"USD", "USD", "USD"},
				[]decimal.Decimal{d("10"), d("2"), d("40")},
				[]uint64{1, 1, 2},
				[]decimal.Decimal{d("1.5"), d("0.25"), d("9.1")},
				[]uint64{1, 1, 1},
			}))
		// Cash and accrual agree here (no service periods) but for the
		// 10 EUR on day 2, which accrues on day 3: the accrual view shows
		// the column it reads.
		require.NoError(t, chstore.InsertColumns(ctx, conn, aggregates.TableDailyRevenueLines,
			[]string{"day", "customer_source", "customer_external_id", "currency", "plan", "cash", "accrual", "refunds", "events", "computed_at"},
			[]any{
				[]time.Time{day1, day2, day2, day2.AddDate(0, 0, 1)},
				[]string{"stripe", "openai", "openai", "openai"},
				[]string{"cus_ann", "proj_1", "proj_1", "proj_1"},
				[]string{"USD", "USD", "EUR", "EUR"},
				[]string{"pro", "", "", ""},
				[]decimal.Decimal{d("20"), d("3"), d("10"), d("0")},
				[]decimal.Decimal{d("20"), d("3"), d("0"), d("10")},
				[]decimal.Decimal{d("0"), d("0"), d("0"), d("0")},
				[]uint64{1, 1, 1, 1},
				[]uint64{1, 1, 1, 1},
			}))
		fxTable, err := kafka.NewTable(kafka.TableConfig{Brokers: brokers, Topic: servicetest.Topic("test.api.fx")})
		require.NoError(t, err)
		t.Cleanup(func() { _ = fxTable.Close() })
		mapTable, err := kafka.NewTable(kafka.TableConfig{Brokers: brokers, Topic: servicetest.Topic("test.api.mapping")})
		require.NoError(t, err)
		t.Cleanup(func() { _ = mapTable.Close() })
		fx, err := pricing.ParseFX("fx.csv", []byte("date,base,quote,rate\n2026-03-01,EUR,USD,1.1\n"), "USD")
		require.NoError(t, err)
		settings, err := revsettings.New(revsettings.Config{Reporting: "USD", FXTable: fxTable, MappingTable: mapTable, FileFX: fx})
		require.NoError(t, err)
		analytics, err := aggregates.NewAnalytics(conn, func(ctx context.Context) (map[customers.Ref]string, error) {
			if err := dir.Sync(ctx); err != nil {
				return nil, err
			}
			return dir.Snapshot(), nil
		}, settings)
		require.NoError(t, err)
		cfg.Analytics = api.Analytics{Reader: analytics, Items: analytics, Customers: dir, MRR: analytics}
		cfg.RevenueSettings = settings
	}
	wrap := withAuth(t, &cfg)
	server, err := api.New(cfg)
	require.NoError(t, err)
	return wrap(server.Handler())
}

// Every analytics route answers what the document says, closed schemas
// included; totals group Ann's two references; bad parameters are 400s
// naming the parameter.
func TestAnalyticsRoutes(t *testing.T) {
	t.Parallel()
	doc := strictDoc(t)
	h := analyticsServer(t, true)
	ann := customers.SelfID(customers.Ref{Source: "stripe", ExternalID: "cus_ann"})
	proj := customers.SelfID(customers.Ref{Source: "openai", ExternalID: "proj_1"})
	rng := "start_date=2026-03-01&end_date=2026-03-31"
	tests := []struct {
		name, route, target string
		status              int
		contains            []string
	}{
		{"customers", "/api/customers", "/api/customers?" + rng, 200,
			[]string{`{"id":"` + ann + `","external_id":"ann-1","name":"Ann","plan":"","usage":12,"revenue":20,"revenue_per_unit":1.666666667,"revenue_per_unit_defined":true,"cost":1.75,"profit":18.25,"margin_percentage":91.25,"margin_defined":true}`,
				`"usage":40,"revenue":14,"revenue_per_unit":0.35,"revenue_per_unit_defined":true,"cost":9.1,"profit":4.9,"margin_percentage":35,"margin_defined":true}`, `"total":2`}},
		{"customers sorted, paged", "/api/customers", "/api/customers?sort=-cost&limit=1&" + rng, 200, []string{`"customers":[{"id":"` + proj + `"`}},
		{"customers matching", "/api/customers", "/api/customers?q=ANN&" + rng, 200, []string{`"total":1`}},
		{"customer", "/api/customers/{id}", "/api/customers/" + ann + "?" + rng, 200,
			[]string{`"references":[{"source":"chargebee","external_id":"ann-1"},{"source":"stripe","external_id":"cus_ann"}]`,
				`"revenue_items":[]`, `{"period":"2026-03-02","key":"(unattributed)","usage":0,"cost":0,"revenue":20,"profit":20}`}},
		{"unknown customer", "/api/customers/{id}", "/api/customers/nobody", 404, nil},
		{"features", "/api/features", "/api/features?" + rng, 200,
			[]string{`{"feature":"(unattributed)","usage":0,"unpriced_quantity":0,"cost":0,"revenue":34,"profit":34,"margin_percentage":100,"margin_defined":true}`,
				`{"feature":"tokens","usage":50,"unpriced_quantity":0,"cost":10.6,"revenue":0,"profit":-10.6,"margin_percentage":0,"margin_defined":false}`}},
		{"weekly by customer", "/api/timeseries", "/api/timeseries?group_by=week&by=customer&" + rng, 200,
			[]string{`{"period":"2026-03-02","key":"` + ann + `","usage":12,"cost":1.75,"revenue":20,"profit":18.25}`,
				`{"period":"2026-03-09","key":"` + proj + `","usage":40,"cost":9.1,"revenue":14,"profit":4.9}`}},
		{"cash basis", "/api/timeseries", "/api/timeseries?group_by=day&by=customer&basis=cash&" + rng, 200,
			[]string{`{"period":"2026-03-10","key":"` + proj + `","usage":40,"cost":9.1,"revenue":14,"profit":4.9}`, `"basis":"cash"`}},
		{"accrual basis", "/api/timeseries", "/api/timeseries?group_by=day&by=customer&" + rng, 200,
			[]string{`{"period":"2026-03-10","key":"` + proj + `","usage":40,"cost":9.1,"revenue":3,"profit":-6.1}`,
				`{"period":"2026-03-11","key":"` + proj + `","usage":0,"cost":0,"revenue":11,"profit":11}`, `"basis":"accrual","tz":"UTC"`}},
		{"in EUR", "/api/features", "/api/features?currency=EUR&tz=Europe/Paris&" + rng, 200,
			[]string{`"feature":"(unattributed)","usage":0,"unpriced_quantity":0,"cost":0,"revenue":30.909090909,`, `"currency":"EUR","basis":"accrual","tz":"Europe/Paris"`}},
		{"no rate", "/api/features", "/api/features?currency=JPY&" + rng, 400, []string{`"field":"currency"`, "JPY"}},
		{"dashboard", "/api/dashboard", "/api/dashboard?" + rng, 200, []string{`"total_revenue":34,`, `"basis":"accrual"`,
			`{"feature_name":"tokens","usage_count":50,"unpriced_quantity":0,"total_cost":10.6,`}},
		{"mrr", "/api/mrr", "/api/mrr?" + rng, 200, []string{`"months":[{"month":"2026-03","mrr":0,`, `"customers_total":0`}},
		{"mrr bad limit", "/api/mrr", "/api/mrr?limit=0&" + rng, 400, []string{"limit must be an integer from 1 to 50000"}},
		{"timeseries page", "/api/timeseries", "/api/timeseries?group_by=week&by=customer&limit=1&offset=1&" + rng, 200,
			[]string{`"series":[{"period":"2026-03-09","key":"` + proj + `","usage":40,"cost":9.1,"revenue":14,"profit":4.9}],"total":2`}},
		{"timeseries past the end", "/api/timeseries", "/api/timeseries?offset=100&" + rng, 200, []string{`"series":[],"total":`}},
		{"timeseries limit too large", "/api/timeseries", "/api/timeseries?limit=50001&" + rng, 400, []string{"limit must be an integer from 1 to 50000"}},
		{"fx rates", "/api/fx-rates", "/api/fx-rates", 200, []string{`"source":"file","rates":[{"date":"2026-03-01","base":"EUR","quote":"USD","rate":1.1}]`}},
		{"revenue mapping", "/api/revenue-mapping", "/api/revenue-mapping", 200, []string{`{"source":"none","mappings":[]}`}},
		{"bad basis", "/api/features", "/api/features?basis=daily", 400, []string{`"field":"basis"`}},
		{"bad currency", "/api/customers", "/api/customers?currency=usd", 400, []string{`"field":"currency"`}},
		{"bad tz", "/api/dashboard", "/api/dashboard?tz=Mars/Olympus", 400, []string{`"field":"tz"`}},
		{"bad mrr date", "/api/mrr", "/api/mrr?end_date=2026-02-30", 400, []string{`"field":"end_date"`}},
		{"monthly by plan", "/api/timeseries", "/api/timeseries?group_by=month&by=plan&" + rng, 200,
			[]string{`"series":[{"period":"2026-03-01","key":"","usage":52,"cost":10.85,"revenue":34,"profit":23.15}]`}},
		{"bad sort", "/api/customers", "/api/customers?sort=price", 400, []string{"sort must be one of"}},
		{"bad limit", "/api/customers", "/api/customers?limit=5000", 400, []string{"limit must be"}},
		{"bad offset", "/api/customers", "/api/customers?offset=-1", 400, []string{"offset must be"}},
		{"bad date", "/api/features", "/api/features?start_date=march", 400, []string{"start_date must be"}},
		{"dates reversed", "/api/features", "/api/features?start_date=2026-03-05&end_date=2026-03-01", 400, []string{"start_date"}},
		{"bad group_by", "/api/timeseries", "/api/timeseries?group_by=year", 400, []string{"group_by must be"}},
		{"bad by", "/api/timeseries", "/api/timeseries?by=region", 400, []string{"by must be"}},
		{"bad format", "/api/timeseries", "/api/timeseries?format=xml", 400, []string{"format must be"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, tc.target, nil)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			require.Equal(t, tc.status, rec.Code, rec.Body.String())
			for _, s := range tc.contains {
				assert.Contains(t, rec.Body.String(), s)
			}
			item := doc.Paths.Value(tc.route)
			require.NotNil(t, item, tc.route)
			err := openapi3filter.ValidateResponse(context.Background(), &openapi3filter.ResponseValidationInput{
				RequestValidationInput: &openapi3filter.RequestValidationInput{
					Request: req,
					Route:   &routers.Route{Spec: doc, Path: tc.route, PathItem: item, Method: http.MethodGet, Operation: item.Get},
				},
				Status: rec.Code, Header: rec.Header(),
				Body:    io.NopCloser(bytes.NewReader(rec.Body.Bytes())),
				Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
			})
			assert.NoError(t, err, "response %d %s", rec.Code, rec.Body.String())
		})
	}

	// CSV: a header row, then the rows of the JSON.
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/features?format=csv&"+rng, nil))
	require.Equal(t, http.StatusOK, rec.Code)
	assert.Equal(t, "text/csv; charset=utf-8", rec.Header().Get("Content-Type"))
	records, err := csv.NewReader(strings.NewReader(rec.Body.String())).ReadAll()
	require.NoError(t, err)
	assert.Equal(t, [][]string{
		{"feature", "usage", "unpriced_quantity", "cost", "revenue", "profit", "margin_percentage"},
		{"(unattributed)", "0", "0", "0", "34", "34", "100"},
		{"images", "2", "0", "0.25", "0", "-0.25", ""},
		{"tokens", "50", "0", "10.6", "0", "-10.6", ""},
	}, records)
}

// A revenue mapping moves plan pro's revenue to its feature at once, and
// back; bad mappings and rates are 400s naming the entry.
func TestRevenueSettingsRoutes(t *testing.T) {
	t.Parallel()
	h := analyticsServer(t, true)
	rng := "start_date=2026-03-01&end_date=2026-03-31"
	do := func(method, target, body string) (int, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(method, target, strings.NewReader(body)))
		return rec.Code, rec.Body.String()
	}
	code, body := do(http.MethodPut, "/api/revenue-mapping", `{"mappings":[{"plan":"pro","feature":"tokens"}]}`)
	require.Equal(t, http.StatusOK, code, body)
	assert.Contains(t, body, `{"source":"api","mappings":[{"plan":"pro","feature":"tokens"}]}`)
	_, body = do(http.MethodGet, "/api/features?"+rng, "")
	assert.Contains(t, body, `{"feature":"(unattributed)","usage":0,"unpriced_quantity":0,"cost":0,"revenue":14,`)
	assert.Contains(t, body, `{"feature":"tokens","usage":50,"unpriced_quantity":0,"cost":10.6,"revenue":20,"profit":9.4,"margin_percentage":47,"margin_defined":true}`)
	code, body = do(http.MethodPut, "/api/revenue-mapping", `{"mappings":[]}`)
	require.Equal(t, http.StatusOK, code, body)
	_, body = do(http.MethodGet, "/api/features?"+rng, "")
	assert.Contains(t, body, `{"feature":"(unattributed)","usage":0,"unpriced_quantity":0,"cost":0,"revenue":34,`)

	code, body = do(http.MethodPut, "/api/revenue-mapping", `{"mappings":[{"plan":"pro","feature":"a"},{"plan":"pro","feature":""}]}`)
	assert.Equal(t, http.StatusBadRequest, code)
	assert.Contains(t, body, `"field":"mappings[1].plan"`)
	assert.Contains(t, body, `"field":"mappings[1].feature"`)

	// CSV exports neutralise text a spreadsheet would run as a formula (the
	// mapping's feature name is free text) and leave numbers, negative
	// ones included, as numbers.
	code, body = do(http.MethodPut, "/api/revenue-mapping", `{"mappings":[{"plan":"pro","feature":"=HYPERLINK(\"http://x\",\"y\")"}]}`)
	require.Equal(t, http.StatusOK, code, body)
	_, body = do(http.MethodGet, "/api/features?format=csv&"+rng, "")
	records, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	require.NoError(t, err)
	assert.Contains(t, records, []string{`'=HYPERLINK("http://x","y")`, "0", "0", "0", "20", "20", "100"})
	assert.Contains(t, records, []string{"images", "2", "0", "0.25", "0", "-0.25", ""})
	_, body = do(http.MethodGet, "/api/timeseries?by=feature&format=csv&"+rng, "")
	assert.Contains(t, body, `'=HYPERLINK(`)
	code, body = do(http.MethodPut, "/api/revenue-mapping", `{"mappings":[]}`)
	require.Equal(t, http.StatusOK, code, body)

	// A rate correction applies to history at once: 10 EUR at 1.2.
	code, body = do(http.MethodPut, "/api/fx-rates", `{"rates":[{"date":"2026-03-01","base":"EUR","quote":"USD","rate":1.2}]}`)
	require.Equal(t, http.StatusOK, code, body)
	assert.Contains(t, body, `"source":"api"`)
	_, body = do(http.MethodGet, "/api/features?"+rng, "")
	assert.Contains(t, body, `{"feature":"(unattributed)","usage":0,"unpriced_quantity":0,"cost":0,"revenue":35,`)
	code, body = do(http.MethodPut, "/api/fx-rates", `{"rates":[{"date":"2026-03-01","base":"EUR","quote":"usd","rate":-1}]}`)
	assert.Equal(t, http.StatusBadRequest, code)
	assert.Contains(t, body, `"field":"rates[0].quote"`)
	assert.Contains(t, body, `"field":"rates[0].rate"`)
	code, _ = do(http.MethodPut, "/api/fx-rates", `{"rates":[{"date":"March","base":"EUR","quote":"USD","rate":1}]}`)
	assert.Equal(t, http.StatusBadRequest, code)
	// A hostile exponent is refused from its text, by field.
	code, body = do(http.MethodPut, "/api/fx-rates", `{"rates":[{"date":"2026-03-01","base":"EUR","quote":"USD","rate":9e99999999}]}`)
	assert.Equal(t, http.StatusBadRequest, code)
	assert.Contains(t, body, `{"index":0,"field":"rates[0].rate","reason":"has an exponent beyond what the field holds`)

	// Both settings bodies are bounded: 413 naming the limit.
	huge := `{"rates":[` + strings.Repeat(`{"date":"2026-03-01","base":"EUR","quote":"USD","rate":1.1},`, 80_000) + `]}`
	code, body = do(http.MethodPut, "/api/fx-rates", huge)
	assert.Equal(t, http.StatusRequestEntityTooLarge, code)
	assert.Contains(t, body, "request body is larger than the limit of 4194304 bytes")
	code, body = do(http.MethodPut, "/api/revenue-mapping", `{"mappings":[`+strings.Repeat(`{"plan":"pro","feature":"tokens"},`, 150_000)+`]}`)
	assert.Equal(t, http.StatusRequestEntityTooLarge, code)
	assert.Contains(t, body, "request body is larger than the limit of 4194304 bytes")
}

func TestAnalyticsRoutesDisabled(t *testing.T) {
	t.Parallel()
	h := analyticsServer(t, false)
	for _, path := range []string{"/api/customers", "/api/customers/x", "/api/features", "/api/timeseries"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		assert.Equal(t, http.StatusServiceUnavailable, rec.Code, path)
	}
}

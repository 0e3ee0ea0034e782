package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/pipeline/event"
	"github.com/uvrhq/uvr/projections/customers"
)

// The revenue ledger: a generator posts revenue in USD, EUR and GBP
// (subscription lines with service periods, proration pairs cut mid-day,
// one-off charges, refunds, credit notes) and usage costs in USD and EUR,
// with duplicates, late events (up to 60 days), corrections (amount, day,
// period) and voids, in random order. The test keeps its own ledger: cash
// on the day money moved, accrual spread over each period with its own
// apportioning loop, and its own FX arithmetic (the rule of
// docs/analytics/revenue.md: convert each day × customer × plan or feature
// × currency sum, half to even to 9 places). /api/dashboard, /api/customers,
// /api/features and /api/timeseries equal it to the last digit in both bases
// and two currencies; a revenue mapping moves revenue from (unattributed) to
// a feature and back exactly; an FX correction by PUT changes history
// exactly; /api/mrr gives a scenario's movements; bad parameters are 400s
// naming the parameter.
func TestRevenueLedgerCashAccrualFX(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	now := time.Now().UTC()
	today := now.Truncate(24 * time.Hour)
	rates := ledgerRates(today, decimal.Zero)
	cfg.FXRates = filepath.Join(t.TempDir(), "fx.csv")
	require.NoError(t, os.WriteFile(cfg.FXRates, rates.csv(), 0o600))
	m := startMain(t, cfg, Roles{API: true, Projector: true})

	posted, final := revenueLedgerEvents(11, 3000, now)
	mrrLines, mrrCustomer := mrrScenario(today)
	posted, final = append(posted, mrrLines...), append(final, mrrLines...)
	t.Logf("posting %d events (%d counted at the end)", len(posted), len(final))
	postAll(t, m.URL(), posted, 1000)
	waitCaughtUp(t, cfg.KafkaBrokers, cfg.ConsumerGroup, cfg.EventsTopic, projectionWait)
	waitAggregated(t, m.ch, projectionWait)

	start, stop := today.AddDate(0, 0, -61), today
	q := func(basis, currency string) url.Values {
		return url.Values{"start_date": {start.Format(time.DateOnly)}, "end_date": {stop.Format(time.DateOnly)},
			"basis": {basis}, "currency": {currency}}
	}
	var checked int
	for _, basis := range []string{"cash", "accrual"} {
		for _, currency := range []string{"USD", "EUR"} {
			l := buildRevenueLedger(final, basis, currency, rates, nil, start, stop)
			checked += l.requireAPI(t, m.URL(), q(basis, currency))
		}
	}
	t.Logf("ledger matched in both bases and two currencies: %d numbers compared", checked)

	// Attribution: plan "pro" to a feature, then back.
	feature := "gpt-4o.input_tokens"
	putJSON(t, m.URL()+"/api/revenue-mapping", `{"mappings":[{"plan":"pro","feature":"`+feature+`"}]}`, http.StatusOK)
	l := buildRevenueLedger(final, "accrual", "USD", rates, map[string]string{"pro": feature}, start, stop)
	require.True(t, l.featureRevenue[feature].IsPositive())
	l.requireAPI(t, m.URL(), q("accrual", "USD"))
	putJSON(t, m.URL()+"/api/revenue-mapping", `{"mappings":[]}`, http.StatusOK)
	buildRevenueLedger(final, "accrual", "USD", rates, nil, start, stop).requireAPI(t, m.URL(), q("accrual", "USD"))

	// An FX correction applies to all history, exactly.
	corrected := ledgerRates(today, decimal.RequireFromString("0.0125"))
	putJSON(t, m.URL()+"/api/fx-rates", string(corrected.json()), http.StatusOK)
	for _, currency := range []string{"USD", "GBP"} {
		buildRevenueLedger(final, "accrual", currency, corrected, nil, start, stop).requireAPI(t, m.URL(), q("accrual", currency))
	}

	// MRR: new, expansion, contraction, churn in known months.
	first := time.Date(today.Year(), today.Month(), 1, 0, 0, 0, 0, time.UTC).AddDate(0, -3, 0)
	var mrr struct {
		Months []struct {
			Month                                     string
			MRR                                       decimal.Decimal `json:"mrr"`
			New, Expansion, Contraction, Churn, React decimal.Decimal
		} `json:"months"`
	}
	getJSON(t, m.URL()+"/api/mrr?"+url.Values{"start_date": {first.Format(time.DateOnly)}, "end_date": {today.Format(time.DateOnly)},
		"customer_id": {mrrCustomer}}.Encode(), &mrr)
	require.Len(t, mrr.Months, 4)
	got := make([]string, 4)
	for i, mm := range mrr.Months {
		got[i] = fmt.Sprintf("%s mrr=%s new=%s exp=%s con=%s churn=%s", mm.Month, mm.MRR, mm.New, mm.Expansion, mm.Contraction, mm.Churn)
	}
	month := func(i int) string { return first.AddDate(0, i, 0).Format("2006-01") }
	assert.Equal(t, []string{
		month(0) + " mrr=100 new=100 exp=0 con=0 churn=0",
		month(1) + " mrr=150 new=0 exp=50 con=0 churn=0",
		month(2) + " mrr=120 new=0 exp=0 con=-30 churn=0",
		month(3) + " mrr=0 new=0 exp=0 con=0 churn=-120",
	}, got)

	// Bad parameters name the parameter.
	for _, bad := range []struct{ query, field string }{
		{"basis=daily", "basis"},
		{"currency=usd", "currency"},
		{"currency=DOLLAR", "currency"},
		{"tz=Mars/Olympus", "tz"},
		{"start_date=2026-13-01", "start_date"},
		{"end_date=yesterday", "end_date"},
	} {
		for _, route := range []string{"/api/dashboard", "/api/customers", "/api/features", "/api/timeseries", "/api/mrr"} {
			resp, err := http.Get(m.URL() + route + "?" + bad.query)
			require.NoError(t, err)
			var body struct {
				Detail string `json:"detail"`
				Errors []struct {
					Field string `json:"field"`
				} `json:"errors"`
			}
			require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
			resp.Body.Close()
			assert.Equal(t, http.StatusBadRequest, resp.StatusCode, route+"?"+bad.query)
			if assert.Len(t, body.Errors, 1, route+"?"+bad.query) {
				assert.Equal(t, bad.field, body.Errors[0].Field, route+"?"+bad.query)
			}
			assert.True(t, strings.HasPrefix(body.Detail, bad.field+" "), body.Detail)
		}
	}
	// A currency without a rate: a 400 naming currency, never a silent drop.
	resp, err := http.Get(m.URL() + "/api/dashboard?currency=JPY")
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode, string(b))
	assert.Contains(t, string(b), `"field":"currency"`)
	// tz decides "today" and is reported.
	var d struct {
		Summary struct {
			TZ        string               `json:"tz"`
			Basis     string               `json:"basis"`
			DateRange struct{ End string } `json:"date_range"`
		} `json:"summary"`
	}
	getJSON(t, m.URL()+"/api/dashboard?tz=Pacific/Kiritimati", &d)
	assert.Equal(t, "Pacific/Kiritimati", d.Summary.TZ)
	assert.Equal(t, "accrual", d.Summary.Basis)
	kiri, _ := time.LoadLocation("Pacific/Kiritimati")
	assert.Equal(t, time.Now().In(kiri).Format(time.DateOnly), d.Summary.DateRange.End)
}

// fxTable is a daily table: per day, the USD value of one EUR and one GBP.
type fxTable map[string]map[string]decimal.Decimal

// ledgerRates quotes EUR/USD and GBP/USD on each of the 70 days up to
// today, shifted by bump.
func ledgerRates(today time.Time, bump decimal.Decimal) fxTable {
	t := fxTable{}
	for i := range 70 {
		d := today.AddDate(0, 0, -i).Format(time.DateOnly)
		t[d] = map[string]decimal.Decimal{
			"EUR": decimal.New(10800+int64(i%7)*13, -4).Add(bump),
			"GBP": decimal.New(126000+int64(i%5)*77, -5).Add(bump),
		}
	}
	return t
}

func (f fxTable) csv() []byte {
	var b bytes.Buffer
	b.WriteString("date,base,quote,rate\n")
	for _, d := range sortedKeys(f) {
		for _, c := range []string{"EUR", "GBP"} {
			fmt.Fprintf(&b, "%s,%s,USD,%s\n", d, c, f[d][c])
		}
	}
	return b.Bytes()
}

func (f fxTable) json() []byte {
	var rows []string
	for _, d := range sortedKeys(f) {
		for _, c := range []string{"EUR", "GBP"} {
			rows = append(rows, fmt.Sprintf(`{"date":%q,"base":%q,"quote":"USD","rate":%s}`, d, c, f[d][c]))
		}
	}
	return []byte(`{"rates":[` + strings.Join(rows, ",") + `]}`)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// convert is the test's own conversion: amount × (USD per from) / (USD per
// to), exact as a fraction, rounded half to even to 9 places.
func (f fxTable) convert(amount decimal.Decimal, from, to, day string) decimal.Decimal {
	if from == to || amount.IsZero() {
		return amount
	}
	usd := func(c string) *big.Rat {
		if c == "USD" {
			return big.NewRat(1, 1)
		}
		r, ok := f[day][c]
		if !ok {
			panic("no rate for " + c + " on " + day)
		}
		return r.Rat()
	}
	x := new(big.Rat).Mul(amount.Rat(), usd(from))
	x.Quo(x, usd(to))
	// Half to even at 1e-9.
	scaled := new(big.Rat).Mul(x, big.NewRat(1_000_000_000, 1))
	q, r := new(big.Int).QuoRem(scaled.Num(), scaled.Denom(), new(big.Int))
	twice := new(big.Int).Mul(new(big.Int).Abs(r), big.NewInt(2))
	if c := twice.Cmp(scaled.Denom()); c > 0 || (c == 0 && q.Bit(0) == 1) {
		if x.Sign() < 0 {
			q.Sub(q, big.NewInt(1))
		} else {
			q.Add(q, big.NewInt(1))
		}
	}
	return decimal.NewFromBigInt(q, -9)
}

// spread is the test's own accrual: the amount over [start, end) per UTC
// day in proportion to the seconds of the period on the day; each day gets
// the truncated share in 1e-9 units, the units left go one each to the days
// with the largest remainders (earliest first); a negative amount is the
// mirror image of its absolute value.
func spread(amount decimal.Decimal, start, end time.Time) map[string]decimal.Decimal {
	units := amount.Abs().Shift(9).BigInt()
	total := big.NewInt(int64(end.Sub(start) / time.Second))
	type share struct {
		day       string
		q, r      *big.Int
		remainder *big.Int
	}
	var shares []*share
	left := new(big.Int).Set(units)
	for d := start.Truncate(24 * time.Hour); d.Before(end); d = d.AddDate(0, 0, 1) {
		lo, hi := d, d.AddDate(0, 0, 1)
		if start.After(lo) {
			lo = start
		}
		if end.Before(hi) {
			hi = end
		}
		w := big.NewInt(int64(hi.Sub(lo) / time.Second))
		q, r := new(big.Int).QuoRem(new(big.Int).Mul(units, w), total, new(big.Int))
		shares = append(shares, &share{day: d.Format(time.DateOnly), q: q, remainder: r})
		left.Sub(left, q)
	}
	order := make([]*share, len(shares))
	copy(order, shares)
	sort.SliceStable(order, func(i, j int) bool { return order[i].remainder.Cmp(order[j].remainder) > 0 })
	for i := 0; left.Sign() > 0; i++ {
		order[i].q.Add(order[i].q, big.NewInt(1))
		left.Sub(left, big.NewInt(1))
	}
	out := map[string]decimal.Decimal{}
	for _, s := range shares {
		v := decimal.NewFromBigInt(s.q, -9)
		if amount.IsNegative() {
			v = v.Neg()
		}
		out[s.day] = out[s.day].Add(v)
	}
	return out
}

// revenueLedger is what the API must answer for one basis and currency
// over [start, stop].
type revenueLedger struct {
	revenue, cost                       decimal.Decimal
	dayRevenue, dayCost                 map[string]decimal.Decimal
	customerRevenue, customerCost       map[string]decimal.Decimal
	featureRevenue, featureCost         map[string]decimal.Decimal
	monthCustomerRevenue, monthCustCost map[string]decimal.Decimal // "YYYY-MM-01 customer"
}

func buildRevenueLedger(final []event.Event, basis, currency string, fx fxTable, mapping map[string]string, start, stop time.Time) *revenueLedger {
	type group struct{ day, customer, key, currency string }
	rev, cost := map[group]decimal.Decimal{}, map[group]decimal.Decimal{}
	for _, ev := range final {
		d := ev.Data
		cust := customers.SelfID(customers.Ref{Source: d.Customer.Source, ExternalID: d.Customer.ExternalID})
		switch ev.Type {
		case event.TypeUsage:
			g := group{ev.Time.UTC().Format(time.DateOnly), cust, d.Feature, d.Currency}
			cost[g] = cost[g].Add(*d.Cost)
		case event.TypeRevenue:
			days := map[string]decimal.Decimal{ev.Time.UTC().Format(time.DateOnly): *d.Amount}
			if basis == "accrual" && d.PeriodStart != nil {
				days = spread(*d.Amount, *d.PeriodStart, *d.PeriodEnd)
			}
			for day, v := range days {
				g := group{day, cust, d.Plan, d.Currency}
				rev[g] = rev[g].Add(v)
			}
		}
	}
	l := &revenueLedger{
		dayRevenue: map[string]decimal.Decimal{}, dayCost: map[string]decimal.Decimal{},
		customerRevenue: map[string]decimal.Decimal{}, customerCost: map[string]decimal.Decimal{},
		featureRevenue: map[string]decimal.Decimal{}, featureCost: map[string]decimal.Decimal{},
		monthCustomerRevenue: map[string]decimal.Decimal{}, monthCustCost: map[string]decimal.Decimal{},
	}
	from, to := start.Format(time.DateOnly), stop.Format(time.DateOnly)
	for g, v := range rev {
		if g.day < from || g.day > to {
			continue
		}
		v = fx.convert(v, g.currency, currency, g.day)
		feature, ok := mapping[g.key]
		if !ok {
			feature = "(unattributed)"
		}
		month := g.day[:8] + "01 " + g.customer
		l.revenue = l.revenue.Add(v)
		l.dayRevenue[g.day] = l.dayRevenue[g.day].Add(v)
		l.customerRevenue[g.customer] = l.customerRevenue[g.customer].Add(v)
		l.featureRevenue[feature] = l.featureRevenue[feature].Add(v)
		l.monthCustomerRevenue[month] = l.monthCustomerRevenue[month].Add(v)
	}
	for g, v := range cost {
		if g.day < from || g.day > to {
			continue
		}
		v = fx.convert(v, g.currency, currency, g.day)
		month := g.day[:8] + "01 " + g.customer
		l.cost = l.cost.Add(v)
		l.dayCost[g.day] = l.dayCost[g.day].Add(v)
		l.customerCost[g.customer] = l.customerCost[g.customer].Add(v)
		l.featureCost[g.key] = l.featureCost[g.key].Add(v)
		l.monthCustCost[month] = l.monthCustCost[month].Add(v)
	}
	return l
}

// requireAPI compares every route with the ledger and returns how many
// numbers it compared.
func (l *revenueLedger) requireAPI(t *testing.T, base string, q url.Values) int {
	t.Helper()
	label := q.Get("basis") + " " + q.Get("currency")
	n := 0
	eq := func(want, got map[string]decimal.Decimal, what string) {
		t.Helper()
		w, g := nonZero(want), nonZero(got)
		require.Equal(t, w, g, "%s: %s", label, what)
		n += len(w)
	}

	var d struct {
		Summary struct {
			Cost    decimal.Decimal `json:"total_usage_cost"`
			Revenue decimal.Decimal `json:"total_revenue"`
		} `json:"summary"`
		TimeSeries []struct {
			Date      string
			UsageCost decimal.Decimal `json:"usage_cost"`
			Revenue   decimal.Decimal
		} `json:"time_series"`
		FeatureMetrics []struct {
			FeatureName string          `json:"feature_name"`
			TotalCost   decimal.Decimal `json:"total_cost"`
			Revenue     decimal.Decimal
		} `json:"feature_metrics"`
	}
	getJSON(t, base+"/api/dashboard?"+q.Encode(), &d)
	require.Equal(t, l.revenue.String(), d.Summary.Revenue.String(), "%s: dashboard total_revenue", label)
	require.Equal(t, l.cost.String(), d.Summary.Cost.String(), "%s: dashboard total_usage_cost", label)
	dayRev, dayCost := map[string]decimal.Decimal{}, map[string]decimal.Decimal{}
	for _, p := range d.TimeSeries {
		dayRev[p.Date], dayCost[p.Date] = p.Revenue, p.UsageCost
	}
	eq(l.dayRevenue, dayRev, "dashboard revenue per day")
	eq(l.dayCost, dayCost, "dashboard cost per day")
	featRev, featCost := map[string]decimal.Decimal{}, map[string]decimal.Decimal{}
	for _, f := range d.FeatureMetrics {
		featRev[f.FeatureName], featCost[f.FeatureName] = f.Revenue, f.TotalCost
	}
	eq(l.featureRevenue, featRev, "dashboard revenue per feature")
	eq(l.featureCost, featCost, "dashboard cost per feature")

	var cl struct {
		Customers []struct {
			ID            string
			Revenue, Cost decimal.Decimal
		}
	}
	cq := url.Values{}
	for k, v := range q {
		cq[k] = v
	}
	cq.Set("limit", "1000")
	getJSON(t, base+"/api/customers?"+cq.Encode(), &cl)
	custRev, custCost := map[string]decimal.Decimal{}, map[string]decimal.Decimal{}
	for _, c := range cl.Customers {
		custRev[c.ID], custCost[c.ID] = c.Revenue, c.Cost
	}
	eq(l.customerRevenue, custRev, "customers revenue")
	eq(l.customerCost, custCost, "customers cost")

	var fl struct {
		Features []struct {
			Feature       string
			Revenue, Cost decimal.Decimal
		}
	}
	getJSON(t, base+"/api/features?"+q.Encode(), &fl)
	featRev, featCost = map[string]decimal.Decimal{}, map[string]decimal.Decimal{}
	for _, f := range fl.Features {
		featRev[f.Feature], featCost[f.Feature] = f.Revenue, f.Cost
	}
	eq(l.featureRevenue, featRev, "features revenue")
	eq(l.featureCost, featCost, "features cost")

	var ts struct {
		Series []struct {
			Period, Key   string
			Revenue, Cost decimal.Decimal
		}
	}
	tq := url.Values{"group_by": {"month"}, "by": {"customer"}}
	for k, v := range q {
		tq[k] = v
	}
	getJSON(t, base+"/api/timeseries?"+tq.Encode(), &ts)
	monthRev, monthCost := map[string]decimal.Decimal{}, map[string]decimal.Decimal{}
	for _, p := range ts.Series {
		monthRev[p.Period+" "+p.Key], monthCost[p.Period+" "+p.Key] = p.Revenue, p.Cost
	}
	eq(l.monthCustomerRevenue, monthRev, "timeseries revenue per month and customer")
	eq(l.monthCustCost, monthCost, "timeseries cost per month and customer")
	return n + 2
}

func nonZero(m map[string]decimal.Decimal) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		if !v.IsZero() {
			out[k] = v.String()
		}
	}
	return out
}

func getJSON(t *testing.T, u string, v any) {
	t.Helper()
	resp, err := http.Get(u)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s: %s", u, b)
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	require.NoError(t, dec.Decode(v), u)
}

func putJSON(t *testing.T, u, body string, status int) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPut, u, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	require.Equal(t, status, resp.StatusCode, "%s: %s", u, b)
}

// revenueLedgerEvents makes identities revenue and usage events over the 60
// days before now, with corrections, voids and duplicates, shuffled; final
// is the counted version of each identity.
func revenueLedgerEvents(seed uint64, identities int, now time.Time) (posted, final []event.Event) {
	rng := rand.New(rand.NewPCG(seed, seed^0x51ed27))
	currencies := []string{"USD", "EUR", "GBP"}
	plans := []string{"pro", "team", ""}
	features := []string{"gpt-4o.input_tokens", "api.calls"}
	at := func() time.Time {
		return now.Add(-time.Duration(rng.Int64N(int64(60 * 24 * time.Hour)))).Truncate(time.Second)
	}
	money := func(cents int64) *decimal.Decimal { d := decimal.New(cents, -2); return &d }
	// shape draws a version's money, time and period from its kind.
	shape := func(ev *event.Event) {
		d := &ev.Data
		d.PeriodStart, d.PeriodEnd = nil, nil
		switch d.Kind {
		case event.KindInvoicePaid: // a subscription period from midnight, or a proration line from mid-day
			ev.Time = at()
			s := ev.Time.Truncate(24 * time.Hour)
			days := []int{7, 30, 30, 31, 365}[rng.IntN(5)]
			if rng.IntN(4) == 0 {
				s = ev.Time // proration: from the change to the period's end
				days = 1 + rng.IntN(30)
			}
			e := s.Truncate(24*time.Hour).AddDate(0, 0, days)
			d.PeriodStart, d.PeriodEnd = &s, &e
			d.Amount = money(100 + rng.Int64N(50_000))
		case event.KindCreditNote: // a proration credit, negative, mid-day start
			ev.Time = at()
			s, e := ev.Time, ev.Time.Truncate(24*time.Hour).AddDate(0, 0, 1+rng.IntN(20))
			d.PeriodStart, d.PeriodEnd = &s, &e
			d.Amount = money(-(1 + rng.Int64N(20_000)))
		case event.KindRefund:
			ev.Time = at()
			d.Amount = money(-(1 + rng.Int64N(10_000)))
		default: // charge
			ev.Time = at()
			d.Amount = money(1 + rng.Int64N(30_000))
		}
	}
	for i := range identities {
		cust := event.Customer{Source: "test", ExternalID: fmt.Sprintf("cus_%02d", rng.IntN(40))}
		ev := event.Event{SpecVersion: event.SpecVersion, ID: fmt.Sprintf("rl-%d", i), Source: "e2e"}
		cur := currencies[rng.IntN(3)]
		if rng.IntN(10) < 3 {
			ev.Type, ev.Time = event.TypeUsage, at()
			qty, cost := decimal.NewFromInt(rng.Int64N(10_000)), decimal.New(rng.Int64N(5_000_000_000), -9)
			ev.Data = event.Data{Customer: cust, Version: 1, Feature: features[rng.IntN(2)], Unit: "units",
				Quantity: &qty, Cost: &cost, Currency: []string{"USD", "EUR"}[rng.IntN(2)]}
		} else {
			kinds := []string{event.KindInvoicePaid, event.KindInvoicePaid, event.KindInvoicePaid, event.KindCreditNote, event.KindCharge, event.KindRefund}
			ev.Type = event.TypeRevenue
			ev.Data = event.Data{Customer: cust, Version: 1, Kind: kinds[rng.IntN(len(kinds))], Currency: cur, Plan: plans[rng.IntN(3)]}
			shape(&ev)
		}
		versions := []event.Event{ev}
		for rng.IntN(100) < 25 && len(versions) < 4 { // corrections
			next := versions[len(versions)-1]
			next.Data.Version++
			if next.Type == event.TypeRevenue {
				shape(&next) // new amount, day and period
			} else {
				next.Time = at()
			}
			versions = append(versions, next)
		}
		if rng.IntN(100) < 10 { // voids
			v := versions[len(versions)-1]
			v.Data.Void = true
			if rng.IntN(2) == 0 {
				v.Data.Version++
			}
			versions = append(versions, v)
		}
		if last := versions[len(versions)-1]; !last.Data.Void {
			final = append(final, last)
		}
		posted = append(posted, versions...)
	}
	for _, ev := range posted { // duplicates
		if rng.IntN(100) < 15 {
			posted = append(posted, ev)
		}
	}
	rng.Shuffle(len(posted), func(i, j int) { posted[i], posted[j] = posted[j], posted[i] })
	return posted, final
}

// mrrScenario is one customer's monthly lines over the three months before
// this one: 100, then 150 (expansion), then 120 (contraction), then none
// this month (churn).
func mrrScenario(today time.Time) ([]event.Event, string) {
	ref := event.Customer{Source: "test", ExternalID: "cus_mrr"}
	first := time.Date(today.Year(), today.Month(), 1, 0, 0, 0, 0, time.UTC).AddDate(0, -3, 0)
	var out []event.Event
	for i, amount := range []int64{100, 150, 120} {
		s, e := first.AddDate(0, i, 0), first.AddDate(0, i+1, 0)
		a := decimal.NewFromInt(amount)
		out = append(out, event.Event{SpecVersion: event.SpecVersion, ID: fmt.Sprintf("mrr-%d", i), Source: "e2e", Type: event.TypeRevenue, Time: s,
			Data: event.Data{Customer: ref, Version: 1, Kind: event.KindInvoicePaid, Amount: &a, Currency: "USD", Plan: "team", PeriodStart: &s, PeriodEnd: &e}})
	}
	return out, customers.SelfID(customers.Ref{Source: ref.Source, ExternalID: ref.ExternalID})
}

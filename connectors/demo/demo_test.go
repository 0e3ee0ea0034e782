package demo

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/pipeline/event"
)

// testNow ends every test window: the default data set covers 2026-08-29
// through 2026-11-26.
var testNow = time.Date(2026, 11, 27, 9, 30, 0, 0, time.UTC)

func generate(t testing.TB, cfg Config) []event.Event {
	t.Helper()
	var evs []event.Event
	require.NoError(t, Generate(context.Background(), cfg, func(ev event.Event) error {
		evs = append(evs, ev)
		return nil
	}))
	return evs
}

// defaultEvents is the default data set (Seed 1, 200 customers, 90 days),
// generated once for the whole package.
var defaultEvents = sync.OnceValue(func() []event.Event {
	var evs []event.Event
	err := Generate(context.Background(), Config{Now: testNow}, func(ev event.Event) error {
		evs = append(evs, ev)
		return nil
	})
	if err != nil {
		panic(err)
	}
	return evs
})

func defaultProfiles(t *testing.T) []Profile {
	t.Helper()
	ps, err := Profiles(Config{Now: testNow})
	require.NoError(t, err)
	return ps
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want []string // substrings of the error; none means valid
	}{
		{name: "defaults", cfg: Config{Now: testNow}},
		{name: "all set", cfg: Config{Seed: -7, Customers: MaxCustomers, Days: MaxDays, Now: testNow, Source: "uvr://demo"}},
		{name: "missing now", cfg: Config{}, want: []string{"now is required"}},
		{name: "negative customers", cfg: Config{Now: testNow, Customers: -1}, want: []string{"customers must be between 1 and 9999"}},
		{name: "too many customers", cfg: Config{Now: testNow, Customers: MaxCustomers + 1}, want: []string{"customers must be"}},
		{name: "negative days", cfg: Config{Now: testNow, Days: -3}, want: []string{"days must be between 1 and 3660"}},
		{name: "too many days", cfg: Config{Now: testNow, Days: MaxDays + 1}, want: []string{"days must be"}},
		{name: "source with space", cfg: Config{Now: testNow, Source: "my demo"}, want: []string{"source must not contain white space"}},
		{name: "source too long", cfg: Config{Now: testNow, Source: strings.Repeat("s", 257)}, want: []string{"source must be at most 256 bytes"}},
		{
			name: "every problem at once",
			cfg:  Config{Customers: -1, Days: -1, Source: "a b"},
			want: []string{"now is required", "customers must be", "days must be", "source must not"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if len(tt.want) == 0 {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestGenerateRejectsInvalidConfig(t *testing.T) {
	calls := 0
	err := Generate(context.Background(), Config{Days: -1}, func(event.Event) error { calls++; return nil })
	require.ErrorContains(t, err, "invalid demo config")
	assert.Zero(t, calls)
	_, err = Profiles(Config{})
	require.ErrorContains(t, err, "now is required")
}

// digest is the SHA-256 of the canonical JSON of every event, in order.
func digest(t testing.TB, evs []event.Event) string {
	t.Helper()
	h := sha256.New()
	for _, ev := range evs {
		b, err := ev.Marshal()
		require.NoError(t, err)
		h.Write(b)
		h.Write([]byte{'\n'})
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

func TestGenerateDeterministic(t *testing.T) {
	small := Config{Customers: 30, Days: 20, Now: testNow}
	with := func(f func(*Config)) Config { c := small; f(&c); return c }
	tests := []struct {
		name string
		a, b Config
		same bool
	}{
		{name: "default config twice", a: Config{Now: testNow}, b: Config{Now: testNow}, same: true},
		{name: "seed 0 is seed 1", a: small, b: with(func(c *Config) { c.Seed = 1 }), same: true},
		{name: "time of day of now does not matter", a: small, b: with(func(c *Config) { c.Now = c.Now.Add(14 * time.Hour) }), same: true},
		{name: "now in another zone is the same instant", a: small, b: with(func(c *Config) { c.Now = c.Now.In(time.FixedZone("UTC+5", 5*3600)) }), same: true},
		{name: "different seed", a: small, b: with(func(c *Config) { c.Seed = 2 }), same: false},
		{name: "different source", a: small, b: with(func(c *Config) { c.Source = "demo2" }), same: false},
		{name: "different day", a: small, b: with(func(c *Config) { c.Now = c.Now.AddDate(0, 0, 1) }), same: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := generate(t, tt.a), generate(t, tt.b)
			if tt.same {
				require.Equal(t, len(a), len(b))
				require.Equal(t, digest(t, a), digest(t, b))
			} else {
				require.NotEqual(t, digest(t, a), digest(t, b))
			}
		})
	}
}

// TestGenerateNextDay checks that a run one day later re-emits the same ids
// for the overlapping days and adds only the new day.
func TestGenerateNextDay(t *testing.T) {
	today := Config{Customers: 60, Days: 40, Now: testNow}
	tomorrow := today
	tomorrow.Now = testNow.AddDate(0, 0, 1)
	end := time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)
	overlap := func(ts time.Time) bool { return !ts.Before(end.AddDate(0, 0, -39)) && ts.Before(end) }

	ids := func(evs []event.Event, keep func(time.Time) bool) []string {
		var out []string
		for _, ev := range evs {
			if keep(ev.Time) {
				out = append(out, ev.ID)
			}
		}
		slices.Sort(out)
		return out
	}
	a, b := generate(t, today), generate(t, tomorrow)
	require.Equal(t, ids(a, overlap), ids(b, overlap))
	newDay := ids(b, func(ts time.Time) bool { return !ts.Before(end) })
	require.NotEmpty(t, newDay)
	for _, id := range newDay {
		assert.True(t, strings.HasSuffix(id, "-20261127") || strings.HasPrefix(id, "demo-r-"), id)
	}
	// Customers and subscriptions keep their ids.
	lifecycle := func(evs []event.Event) []string {
		var out []string
		for _, ev := range evs {
			if ev.Type == event.TypeCustomer || ev.Data.Kind == event.KindSubscriptionStarted {
				out = append(out, ev.ID)
			}
		}
		slices.Sort(out)
		return out
	}
	require.Equal(t, lifecycle(a), lifecycle(b))
}

// Counts of the default data set (Seed 1, window 2026-08-29 … 2026-11-26),
// per type and revenue kind. They change whenever the generator does: update
// them deliberately.
var wantDefaultCounts = map[string]int{
	event.TypeCustomer:            200,
	event.KindSubscriptionStarted: 200,
	event.KindInvoicePaid:         786,
	event.KindCharge:              46,
	event.KindRefund:              20,
	event.KindCreditNote:          4,
	event.TypeUsage:               96808,
}

func countKey(ev event.Event) string {
	if ev.Type == event.TypeRevenue {
		return ev.Data.Kind
	}
	return ev.Type
}

func TestDefaultDataset(t *testing.T) {
	evs := defaultEvents()
	start := time.Date(2026, 8, 29, 0, 0, 0, 0, time.UTC)
	end := time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)

	t.Run("counts", func(t *testing.T) {
		got := map[string]int{}
		for _, ev := range evs {
			got[countKey(ev)]++
		}
		assert.Equal(t, wantDefaultCounts, got)
		assert.GreaterOrEqual(t, len(evs), 50_000)
		assert.LessOrEqual(t, len(evs), 120_000)
	})

	t.Run("every event is valid", func(t *testing.T) {
		began := time.Now()
		for _, ev := range evs {
			if err := ev.Validate(); err != nil {
				t.Fatalf("event %s: %v", ev.ID, err)
			}
		}
		t.Logf("validated %d events in %v", len(evs), time.Since(began))
	})

	t.Run("unique identities", func(t *testing.T) {
		seen := make(map[string]bool, len(evs))
		for _, ev := range evs {
			key := ev.Source + "\x00" + ev.ID
			require.False(t, seen[key], "duplicate id %s", ev.ID)
			seen[key] = true
		}
	})

	t.Run("time order and window", func(t *testing.T) {
		for i, ev := range evs {
			require.True(t, ev.Time.Before(end), "event %s at %v after the window", ev.ID, ev.Time)
			if i > 0 {
				require.False(t, ev.Time.Before(evs[i-1].Time), "event %s before its predecessor", ev.ID)
			}
			switch {
			case ev.Type == event.TypeUsage:
				require.False(t, ev.Time.Before(start), ev.ID)
				require.Equal(t, ev.Time.AddDate(0, 0, 1), *ev.Data.WindowEnd, ev.ID)
				require.Equal(t, "demo-u-"+ev.Data.Customer.ExternalID+"-"+ev.Data.Feature+"-"+ev.Time.Format("20060102"), ev.ID)
			case ev.Data.Kind == event.KindCharge, ev.Data.Kind == event.KindRefund, ev.Data.Kind == event.KindCreditNote:
				require.False(t, ev.Time.Before(start), "one-off %s before the window", ev.ID)
			}
		}
	})

	t.Run("costs are exact", func(t *testing.T) {
		unitCost := map[string]decimal.Decimal{}
		for _, f := range Features() {
			unitCost[f.Name] = f.UnitCost
		}
		for _, ev := range evs {
			switch ev.Type {
			case event.TypeUsage:
				uc, ok := unitCost[ev.Data.Feature]
				require.True(t, ok, "unknown feature %s", ev.Data.Feature)
				require.True(t, ev.Data.Quantity.IsPositive(), ev.ID)
				require.True(t, ev.Data.Cost.Equal(ev.Data.Quantity.Mul(uc)), "cost of %s", ev.ID)
				require.GreaterOrEqual(t, ev.Data.Cost.Exponent(), int32(-event.MaxScale), ev.ID)
				require.Equal(t, Currency, ev.Data.Currency)
			case event.TypeRevenue:
				if ev.Data.Amount != nil {
					require.True(t, ev.Data.Amount.Equal(ev.Data.Amount.Round(2)), "amount of %s is not in cents", ev.ID)
				}
			}
		}
	})

	t.Run("customers and plans", func(t *testing.T) {
		ps := defaultProfiles(t)
		plans := map[string]int{}
		names, emails := map[string]bool{}, map[string]bool{}
		var customers []event.Event
		for _, ev := range evs {
			if ev.Type == event.TypeCustomer {
				customers = append(customers, ev)
			}
		}
		require.Len(t, customers, len(ps))
		for _, ev := range customers {
			var i int
			_, err := fmt.Sscanf(ev.Data.Customer.ExternalID, "cus_demo_%04d", &i)
			require.NoError(t, err)
			p := ps[i-1]
			assert.Equal(t, p.ID, ev.Data.Customer.ExternalID)
			assert.Equal(t, p.Name, ev.Data.Customer.Name)
			assert.Equal(t, p.Email, ev.Data.Customer.Email)
			assert.Equal(t, p.Plan, ev.Data.Plan)
			assert.Equal(t, "production", ev.Data.Environment)
			assert.Equal(t, map[string]string{"segment": p.Segment, "region": p.Region, "industry": p.Industry}, ev.Data.Metadata)
			plans[ev.Data.Plan]++
			names[p.Name], emails[p.Email] = true, true
		}
		assert.Equal(t, map[string]int{PlanStarter: 120, PlanPro: 60, PlanEnterprise: 20}, plans)
		assert.Len(t, names, len(ps), "names are unique")
		assert.Len(t, emails, len(ps), "emails are unique")
	})

	t.Run("revenue", func(t *testing.T) {
		ps := defaultProfiles(t)
		invoices := map[string]event.Event{}
		perCustomer := map[string]int{}
		for _, ev := range evs {
			if ev.Data.Kind == event.KindInvoicePaid {
				invoices[ev.Data.InvoiceID] = ev
				perCustomer[ev.Data.Customer.ExternalID]++
				plan, ok := PlanByName(ev.Data.Plan)
				require.True(t, ok)
				require.True(t, plan.MonthlyPrice.Equal(*ev.Data.Amount), ev.ID)
				require.Equal(t, ev.Data.PeriodStart.AddDate(0, 1, 0), *ev.Data.PeriodEnd, ev.ID)
				require.True(t, strings.HasPrefix(ev.Data.InvoiceID, "in_demo_"))
			}
		}
		for _, p := range ps {
			assert.GreaterOrEqual(t, perCustomer[p.ID], 3, p.ID)
			assert.LessOrEqual(t, perCustomer[p.ID], 4, p.ID)
		}
		refunds := 0
		for _, ev := range evs {
			switch ev.Data.Kind {
			case event.KindRefund, event.KindCreditNote:
				inv, ok := invoices[ev.Data.InvoiceID]
				require.True(t, ok, "%s refers to unknown invoice %s", ev.ID, ev.Data.InvoiceID)
				require.True(t, ev.Data.Amount.IsNegative(), ev.ID)
				require.True(t, ev.Data.Amount.Abs().LessThanOrEqual(*inv.Data.Amount), ev.ID)
				require.True(t, ev.Time.After(inv.Time), ev.ID)
				if ev.Data.Kind == event.KindRefund {
					refunds++
				}
			}
		}
		share := float64(refunds) / float64(len(invoices))
		assert.InDelta(t, 0.03, share, 0.015, "refunds per invoice")
	})
}

// ledger sums, per customer, the usage cost and the revenue of events.
type ledger struct {
	cost, revenue map[string]decimal.Decimal
	tokens        map[string][]int64 // LLM tokens per day of the window
}

func newLedger(evs []event.Event, start time.Time, days int) ledger {
	l := ledger{cost: map[string]decimal.Decimal{}, revenue: map[string]decimal.Decimal{}, tokens: map[string][]int64{}}
	for _, ev := range evs {
		id := ev.Data.Customer.ExternalID
		switch ev.Type {
		case event.TypeUsage:
			l.cost[id] = l.cost[id].Add(*ev.Data.Cost)
			if ev.Data.Unit == "tokens" {
				if l.tokens[id] == nil {
					l.tokens[id] = make([]int64, days)
				}
				d := int(ev.Time.Sub(start) / (24 * time.Hour))
				l.tokens[id][d] += ev.Data.Quantity.IntPart()
			}
		case event.TypeRevenue:
			if ev.Data.Amount != nil {
				l.revenue[id] = l.revenue[id].Add(*ev.Data.Amount)
			}
		}
	}
	return l
}

func median(xs []int64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return float64(s[len(s)/2])
	}
	return float64(s[len(s)/2-1]+s[len(s)/2]) / 2
}

func sum(xs []int64) int64 {
	var n int64
	for _, x := range xs {
		n += x
	}
	return n
}

func TestScenarios(t *testing.T) {
	ps := defaultProfiles(t)
	start := time.Date(2026, 8, 29, 0, 0, 0, 0, time.UTC)
	l := newLedger(defaultEvents(), start, DefaultDays)

	t.Run("assignments", func(t *testing.T) {
		count := map[Scenario]int{}
		credit := 0
		for _, p := range ps {
			count[p.Scenario]++
			if p.CreditNotes {
				credit++
				assert.NotEqual(t, PlanStarter, p.Plan)
			}
			if p.Scenario == ScenarioUnprofitable || p.Scenario == ScenarioUpsell {
				assert.NotEqual(t, PlanEnterprise, p.Plan, p.ID)
			}
		}
		assert.Equal(t, map[Scenario]int{
			ScenarioNormal: 154, ScenarioUnprofitable: 16, ScenarioUpsell: 14, ScenarioSpiking: 10, ScenarioChurning: 6,
		}, count)
		assert.Equal(t, 2, credit)
	})

	for _, p := range ps {
		cost, revenue := l.cost[p.ID], l.revenue[p.ID]
		switch p.Scenario {
		case ScenarioUnprofitable:
			assert.True(t, cost.GreaterThan(revenue), "%s (%s) is meant to be unprofitable: cost %s, revenue %s", p.ID, p.Plan, cost, revenue)
		case ScenarioNormal, ScenarioUpsell, ScenarioChurning:
			assert.True(t, revenue.GreaterThan(cost), "%s (%s, %s) is meant to be profitable: cost %s, revenue %s", p.ID, p.Plan, p.Scenario, cost, revenue)
		}
	}

	t.Run("spikes", func(t *testing.T) {
		for _, p := range ps {
			tokens := l.tokens[p.ID]
			m := median(tokens)
			switch p.Scenario {
			case ScenarioSpiking:
				require.NotEmpty(t, p.SpikeDays, p.ID)
				require.Len(t, p.SpikeFactors, len(p.SpikeDays))
				for k, day := range p.SpikeDays {
					d := int(day.Sub(start) / (24 * time.Hour))
					assert.GreaterOrEqual(t, d, DefaultDays-30, "spike of %s in the last 30 days", p.ID)
					assert.False(t, isWeekend(day), "spike of %s on a weekday", p.ID)
					assert.GreaterOrEqual(t, float64(tokens[d]), 3*m, "spike of %s on %s (factor %.1f)", p.ID, day.Format(time.DateOnly), p.SpikeFactors[k])
					assert.True(t, p.SpikeFactors[k] >= 5 && p.SpikeFactors[k] <= 20)
				}
			case ScenarioNormal:
				assert.Less(t, float64(slices.Max(tokens)), 3*m, "%s has no spike", p.ID)
			}
		}
	})

	t.Run("churn", func(t *testing.T) {
		for _, p := range ps {
			if p.Scenario != ScenarioChurning {
				assert.True(t, p.ChurnFrom.IsZero())
				continue
			}
			d := int(p.ChurnFrom.Sub(start) / (24 * time.Hour))
			assert.True(t, d >= DefaultDays-21 && d <= DefaultDays-14, "%s churns from day %d", p.ID, d)
			tokens := l.tokens[p.ID]
			early := float64(sum(tokens[:30])) / 30
			late := float64(sum(tokens[DefaultDays-7:])) / 7
			assert.Less(t, late, 0.05*early, "%s: last week %.0f tokens/day, first month %.0f", p.ID, late, early)
		}
	})

	t.Run("quota", func(t *testing.T) {
		for _, p := range ps {
			plan, _ := PlanByName(p.Plan)
			last30 := sum(l.tokens[p.ID][DefaultDays-30:])
			switch p.Scenario {
			case ScenarioUpsell:
				assert.Greater(t, last30, 2*plan.IncludedTokens, "%s is far above its quota", p.ID)
			case ScenarioNormal:
				assert.Less(t, last30, plan.IncludedTokens, "%s is within its quota", p.ID)
			}
		}
	})
}

func TestProfilesSmallPopulations(t *testing.T) {
	for n := 1; n <= 12; n++ {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			ps, err := Profiles(Config{Customers: n, Days: 3, Now: testNow})
			require.NoError(t, err)
			require.Len(t, ps, n)
			evs := generate(t, Config{Customers: n, Days: 3, Now: testNow})
			for _, ev := range evs {
				require.NoError(t, ev.Validate(), ev.ID)
			}
		})
	}
}

func TestGenerateStops(t *testing.T) {
	cfg := Config{Customers: 20, Days: 5, Now: testNow}
	boom := errors.New("boom")
	tests := []struct {
		name    string
		failAt  int  // emit fails on this call (1-based); 0: never
		cancel  int  // ctx is cancelled during this call; 0: never
		early   bool // ctx is cancelled before Generate
		wantErr error
		want    int // calls of emit
	}{
		{name: "emit error", failAt: 10, wantErr: boom, want: 10},
		{name: "cancelled before", early: true, wantErr: context.Canceled, want: 0},
		{name: "cancelled during", cancel: 100, wantErr: context.Canceled, want: 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tt.early {
				cancel()
			}
			calls := 0
			err := Generate(ctx, cfg, func(event.Event) error {
				calls++
				if calls == tt.cancel {
					cancel()
				}
				if calls == tt.failAt {
					return boom
				}
				return nil
			})
			require.ErrorIs(t, err, tt.wantErr)
			assert.Equal(t, tt.want, calls)
		})
	}
}

func TestFollow(t *testing.T) {
	cfg := Config{Customers: 15, Days: 2, Now: testNow}
	history := generate(t, cfg)
	const live = 40

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	began := time.Now()
	var got []event.Event
	err := Follow(ctx, cfg, 2000, func(ev event.Event) error {
		got = append(got, ev)
		if len(got) == len(history)+live {
			cancel()
		}
		return nil
	})
	require.NoError(t, err, "cancelling ends Follow without error")
	require.Len(t, got, len(history)+live, "no event after cancel")
	require.Equal(t, digest(t, history), digest(t, got[:len(history)]), "the history comes first")

	ids := map[string]bool{}
	for _, ev := range got[len(history):] {
		require.NoError(t, ev.Validate(), ev.ID)
		assert.True(t, strings.HasPrefix(ev.ID, "demo-l-cus_demo_"), ev.ID)
		assert.False(t, ids[ev.ID], "duplicate live id %s", ev.ID)
		ids[ev.ID] = true
		assert.Equal(t, event.TypeUsage, ev.Type)
		assert.False(t, ev.Time.Before(began.Truncate(time.Second)), "live events carry the current time")
	}
}

func TestFollowRejectsRate(t *testing.T) {
	for _, rate := range []float64{0, -1, math.NaN(), math.Inf(1)} {
		t.Run(fmt.Sprint(rate), func(t *testing.T) {
			calls := 0
			err := Follow(context.Background(), Config{Now: testNow}, rate, func(event.Event) error { calls++; return nil })
			require.ErrorContains(t, err, "follow rate")
			assert.Zero(t, calls)
		})
	}
}

func BenchmarkGenerate(b *testing.B) {
	cfg := Config{Now: testNow}
	var n int
	for b.Loop() {
		n = 0
		if err := Generate(context.Background(), cfg, func(event.Event) error { n++; return nil }); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// Package chinsights implements the insights interfaces on ClickHouse: the
// Store of flags (table insight_flags), the DeliveryLog of alerts (table
// insight_deliveries) and the Source of daily numbers, read from the daily
// aggregates (projections/aggregates: daily_usage, daily_revenue).
//
// Choices the Source makes:
//   - Revenue is accrual, in the reporting currency: the cash of
//     daily_revenue, except that a revenue line with a service period
//     (an invoice line, a subscription period) is taken off its cash day and
//     spread evenly over the days of its period (read from the aggregates'
//     revenue_by_day, which keeps the periods for this). Without it, a
//     monthly payment just outside a 30-day window would make a paying
//     customer look unprofitable. Cost is the reporting currency's cost;
//     usage quantities count in every currency.
//   - Rows are resolved to canonical customers through the customer
//     directory's Snapshot at read time, so links and merges apply to all
//     history; a reference the directory does not know is its own customer
//     (customers.SelfID).
//   - A customer's plan is the directory's Plan: the latest uvr.customer.v1
//     event's plan. Its tier and included quota come from Config.Plans (the
//     demo's plans by default in cmd/uvr); an unknown plan has tier 0 and no
//     quota.
//   - Metered usage (what counts against the quota) is every feature whose
//     name ends in "tokens" (Config.Metered overrides it).
//   - A feature's revenue is what the revenue mapping attributes to it
//     (Config.Attribution: plan → feature, accrual, converted into the
//     reporting currency; aggregates.Analytics.FeatureRevenue). A feature no
//     plan maps to has Attributed false, so the unprofitable-feature rule
//     never fires on unattributed revenue.
package chinsights

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/shopspring/decimal"

	"github.com/uvrhq/uvr/projections/aggregates"
	"github.com/uvrhq/uvr/projections/chstore"
	"github.com/uvrhq/uvr/projections/customers"
	"github.com/uvrhq/uvr/projections/insights"
	"github.com/uvrhq/uvr/projections/rawevents"
)

// Tables.
const (
	TableFlags      = "insight_flags"
	TableDeliveries = "insight_deliveries"
)

// Store is the ClickHouse insights.Store and insights.DeliveryLog. Safe for
// concurrent use.
type Store struct {
	conn driver.Conn
}

var (
	_ insights.Store       = (*Store)(nil)
	_ insights.DeliveryLog = (*Store)(nil)
)

// NewStore returns a Store on conn (open on the migrated database).
func NewStore(conn driver.Conn) (*Store, error) {
	if conn == nil {
		return nil, errors.New("insights store: conn is required")
	}
	return &Store{conn: conn}, nil
}

// Load returns every stored flag (its highest version), sorted by id.
func (s *Store) Load(ctx context.Context) ([]insights.Flag, error) {
	var flags []insights.Flag
	err := chstore.QueryRows(ctx, s.conn, `SELECT id, flag FROM `+TableFlags+` FINAL ORDER BY id`, nil,
		func(scan func(...any) error) error {
			var id, raw string
			if err := scan(&id, &raw); err != nil {
				return err
			}
			var f insights.Flag
			if err := json.Unmarshal([]byte(raw), &f); err != nil {
				return fmt.Errorf("decode flag %s: %w", id, err)
			}
			flags = append(flags, f)
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", TableFlags, err)
	}
	return flags, nil
}

// Get returns the flag id and whether it exists.
func (s *Store) Get(ctx context.Context, id string) (insights.Flag, bool, error) {
	var (
		f     insights.Flag
		found bool
	)
	err := chstore.QueryRows(ctx, s.conn, `SELECT flag FROM `+TableFlags+` FINAL WHERE id = ?`, []any{id},
		func(scan func(...any) error) error {
			var raw string
			if err := scan(&raw); err != nil {
				return err
			}
			found = true
			return json.Unmarshal([]byte(raw), &f)
		})
	if err != nil {
		return insights.Flag{}, false, fmt.Errorf("get flag %s: %w", id, err)
	}
	return f, found, nil
}

// Save writes flags in one batch; FINAL keeps the highest version of each id.
func (s *Store) Save(ctx context.Context, flags []insights.Flag) error {
	if len(flags) == 0 {
		return nil
	}
	n := len(flags)
	ids, kinds, sevs, statuses := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	custs, feats, raws := make([]string, n), make([]string, n), make([]string, n)
	versions := make([]uint64, n)
	seen := make([]time.Time, n)
	for i, f := range flags {
		raw, err := json.Marshal(f)
		if err != nil {
			return fmt.Errorf("encode flag %s: %w", f.ID, err)
		}
		ids[i], versions[i], kinds[i], sevs[i], statuses[i] = f.ID, f.Version, string(f.Kind), string(f.Severity), string(f.Status)
		custs[i], feats[i], seen[i], raws[i] = f.CustomerID, f.Feature, f.LastSeen.UTC(), string(raw)
	}
	return chstore.InsertColumns(ctx, s.conn, TableFlags,
		[]string{"id", "version", "kind", "severity", "status", "customer_id", "feature", "last_seen", "flag"},
		[]any{ids, versions, kinds, sevs, statuses, custs, feats, seen, raws})
}

// Delivered returns the highest severity each of ids was delivered at on
// channel.
func (s *Store) Delivered(ctx context.Context, channel string, ids []string) (map[string]insights.Severity, error) {
	want := make(map[string]bool, len(ids))
	for _, id := range ids {
		want[id] = true
	}
	out := map[string]insights.Severity{}
	err := chstore.QueryRows(ctx, s.conn, `SELECT flag_id, severity FROM `+TableDeliveries+` FINAL WHERE channel = ?`, []any{channel},
		func(scan func(...any) error) error {
			var id, sev string
			if err := scan(&id, &sev); err != nil {
				return err
			}
			if want[id] && insights.Severity(sev).Rank() > out[id].Rank() {
				out[id] = insights.Severity(sev)
			}
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("read %s of %s: %w", TableDeliveries, channel, err)
	}
	return out, nil
}

// MarkDelivered records that flag id was delivered to channel at sev.
func (s *Store) MarkDelivered(ctx context.Context, channel, id string, sev insights.Severity, at time.Time) error {
	return chstore.InsertColumns(ctx, s.conn, TableDeliveries,
		[]string{"channel", "flag_id", "severity", "rank", "delivered_at"},
		[]any{[]string{channel}, []string{id}, []string{string(sev)}, []uint8{uint8(sev.Rank())}, []time.Time{at.UTC()}})
}

// Customers is what the Source needs of the customer directory
// (customers.Directory).
type Customers interface {
	// Snapshot maps every known reference to its canonical customer id.
	Snapshot() map[customers.Ref]string
	// List returns the customers matching q; limit ≤ 0 means all.
	List(ctx context.Context, q string, limit, offset int) ([]customers.Customer, int, error)
}

// Plan is a plan's rank and quota.
type Plan struct {
	Name          string
	Tier          int             // 0 for the cheapest
	IncludedQuota decimal.Decimal // metered usage included per 30-day month
}

// SourceConfig configures NewSource.
type SourceConfig struct {
	Conn              driver.Conn // required
	Customers         Customers   // required
	ReportingCurrency string      // required, e.g. "USD"
	Plans             []Plan
	// Metered reports whether a feature's usage counts against the plan's
	// quota; default: the name ends in "tokens".
	Metered func(feature string) bool
	// Attribution gives the revenue attributed to features; nil: none.
	Attribution Attribution
}

// Attribution is revenue attributed to features (aggregates.Analytics):
// every feature a plan maps to, and per feature and day its revenue over r.
// Safe for concurrent use.
type Attribution interface {
	FeatureRevenue(ctx context.Context, r aggregates.Range) ([]string, map[string]map[rawevents.Date]decimal.Decimal, error)
}

// Source is the ClickHouse insights.Source. Safe for concurrent use.
type Source struct {
	cfg   SourceConfig
	plans map[string]Plan
}

var _ insights.Source = (*Source)(nil)

// NewSource checks cfg and returns a Source.
func NewSource(cfg SourceConfig) (*Source, error) {
	var errs []error
	if cfg.Conn == nil {
		errs = append(errs, errors.New("conn is required"))
	}
	if cfg.Customers == nil {
		errs = append(errs, errors.New("customers is required"))
	}
	if cfg.ReportingCurrency == "" {
		errs = append(errs, errors.New("reporting currency is required"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("insights source: %w", err)
	}
	if cfg.Metered == nil {
		cfg.Metered = func(f string) bool { return strings.HasSuffix(f, "tokens") }
	}
	plans := make(map[string]Plan, len(cfg.Plans))
	for _, p := range cfg.Plans {
		plans[p.Name] = p
	}
	return &Source{cfg: cfg, plans: plans}, nil
}

// usageSQL reads w's usage per day, customer reference and feature.
func usageSQL(currency string, w insights.Window) (string, []any) {
	return `SELECT day, customer_source, customer_external_id, feature, sum(quantity) AS quantity, sumIf(cost, currency = ?) AS cost
FROM daily_usage FINAL
WHERE events > 0 AND day >= toDate(?) AND day < toDate(?)
GROUP BY day, customer_source, customer_external_id, feature`,
		[]any{currency, w.Start.Format(time.DateOnly), w.End.Format(time.DateOnly)}
}

// revenueSQL reads w's cash revenue per day and customer reference.
func revenueSQL(currency string, w insights.Window) (string, []any) {
	return `SELECT day, customer_source, customer_external_id, sum(cash) AS cash
FROM daily_revenue FINAL
WHERE events > 0 AND currency = ? AND day >= toDate(?) AND day < toDate(?)
GROUP BY day, customer_source, customer_external_id`,
		[]any{currency, w.Start.Format(time.DateOnly), w.End.Format(time.DateOnly)}
}

// periodLinesSQL reads the revenue lines with a service period that fall in
// w by their cash day or overlap w by their period.
func periodLinesSQL(currency string, w insights.Window) (string, []any) {
	kinds := rawevents.RevenueKinds()
	q := make([]string, len(kinds))
	for i, k := range kinds {
		q[i] = "'" + k + "'"
	}
	const ts = "2006-01-02 15:04:05"
	return `SELECT day, customer_source, customer_external_id, amount, assumeNotNull(period_start) AS ps, assumeNotNull(period_end) AS pe
FROM revenue_by_day FINAL
WHERE void = 0 AND currency = ? AND kind IN (` + strings.Join(q, ", ") + `)
  AND isNotNull(period_start) AND isNotNull(period_end)
  AND ((day >= toDate(?) AND day < toDate(?)) OR (period_end > toDateTime(?) AND period_start < toDateTime(?)))`,
		[]any{currency, w.Start.Format(time.DateOnly), w.End.Format(time.DateOnly), w.Start.Format(ts), w.End.Format(ts)}
}

// spread splits amount evenly over the n days of a period, exactly: in units
// of its smallest digit (cents at least), the remainder one unit each on the
// first days.
func spread(amount decimal.Decimal, n int) []decimal.Decimal {
	amount = decimal.RequireFromString(amount.String()) // without trailing zeros: Decimal(18, 9) scans with 9
	scale := max(int32(2), -amount.Exponent())
	units := amount.Shift(scale).BigInt()
	out := make([]decimal.Decimal, n)
	q, r := new(big.Int).QuoRem(units, big.NewInt(int64(n)), new(big.Int))
	sign := int64(r.Sign())
	rem := new(big.Int).Abs(r).Int64()
	for i := range out {
		share := new(big.Int).Set(q)
		if int64(i) < rem {
			share.Add(share, big.NewInt(sign))
		}
		out[i] = decimal.NewFromBigInt(share, -scale)
	}
	return out
}

type dayKey struct {
	customer string
	day      time.Time
}

// CustomerDays returns one series per canonical customer with numbers in w.
func (s *Source) CustomerDays(ctx context.Context, w insights.Window) ([]insights.CustomerSeries, error) {
	snap := s.cfg.Customers.Snapshot()
	resolve := func(src, ext string) string {
		ref := customers.Ref{Source: src, ExternalID: ext}
		if id, ok := snap[ref]; ok {
			return id
		}
		return customers.SelfID(ref)
	}
	days := map[dayKey]*insights.CustomerDay{}
	get := func(id string, day time.Time) *insights.CustomerDay {
		k := dayKey{id, insights.Day(day)}
		d := days[k]
		if d == nil {
			d = &insights.CustomerDay{Day: k.day, Revenue: decimal.Zero, Cost: decimal.Zero, MeteredUsage: decimal.Zero, Usage: map[string]insights.Usage{}}
			days[k] = d
		}
		return d
	}
	sql, args := usageSQL(s.cfg.ReportingCurrency, w)
	if err := chstore.QueryRows(ctx, s.cfg.Conn, sql, args, func(scan func(...any) error) error {
		var (
			day               time.Time
			src, ext, feature string
			quantity, cost    decimal.Decimal
		)
		if err := scan(&day, &src, &ext, &feature, &quantity, &cost); err != nil {
			return err
		}
		d := get(resolve(src, ext), day)
		d.Cost = d.Cost.Add(cost)
		if s.cfg.Metered(feature) {
			d.MeteredUsage = d.MeteredUsage.Add(quantity)
		}
		u := d.Usage[feature]
		if u.Quantity.IsZero() && u.Cost.IsZero() {
			u = insights.Usage{Quantity: decimal.Zero, Cost: decimal.Zero}
		}
		d.Usage[feature] = insights.Usage{Quantity: u.Quantity.Add(quantity), Cost: u.Cost.Add(cost)}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("read daily_usage %s: %w", w, err)
	}
	sql, args = revenueSQL(s.cfg.ReportingCurrency, w)
	if err := chstore.QueryRows(ctx, s.cfg.Conn, sql, args, func(scan func(...any) error) error {
		var (
			day      time.Time
			src, ext string
			cash     decimal.Decimal
		)
		if err := scan(&day, &src, &ext, &cash); err != nil {
			return err
		}
		d := get(resolve(src, ext), day)
		d.Revenue = d.Revenue.Add(cash)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("read daily_revenue %s: %w", w, err)
	}

	sql, args = periodLinesSQL(s.cfg.ReportingCurrency, w)
	if err := chstore.QueryRows(ctx, s.cfg.Conn, sql, args, func(scan func(...any) error) error {
		var (
			day, ps, pe time.Time
			src, ext    string
			amount      decimal.Decimal
		)
		if err := scan(&day, &src, &ext, &amount, &ps, &pe); err != nil {
			return err
		}
		start, end := insights.Day(ps), insights.Day(pe)
		n := int(end.Sub(start) / (24 * time.Hour))
		if n <= 0 {
			return nil // no period to spread over: it stays on its cash day
		}
		id := resolve(src, ext)
		if w.Contains(day) {
			d := get(id, day)
			d.Revenue = d.Revenue.Sub(amount)
		}
		for i, share := range spread(amount, n) {
			if at := start.AddDate(0, 0, i); w.Contains(at) {
				d := get(id, at)
				d.Revenue = d.Revenue.Add(share)
			}
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("read revenue periods %s: %w", w, err)
	}

	list, _, err := s.cfg.Customers.List(ctx, "", 0, 0)
	if err != nil {
		return nil, fmt.Errorf("list customers: %w", err)
	}
	info := make(map[string]customers.Customer, len(list))
	for _, c := range list {
		info[c.ID] = c
	}
	series := map[string]*insights.CustomerSeries{}
	for k, d := range days {
		cs := series[k.customer]
		if cs == nil {
			cs = &insights.CustomerSeries{CustomerID: k.customer, IncludedQuota: decimal.Zero}
			if c, ok := info[k.customer]; ok {
				cs.Name, cs.Plan = c.Name, c.Plan
				if p, ok := s.plans[c.Plan]; ok {
					cs.PlanTier, cs.IncludedQuota = p.Tier, p.IncludedQuota
				}
			}
			series[k.customer] = cs
		}
		cs.Days = append(cs.Days, *d)
	}
	out := make([]insights.CustomerSeries, 0, len(series))
	for _, cs := range series {
		slices.SortFunc(cs.Days, func(a, b insights.CustomerDay) int { return a.Day.Compare(b.Day) })
		out = append(out, *cs)
	}
	slices.SortFunc(out, func(a, b insights.CustomerSeries) int { return cmp.Compare(a.CustomerID, b.CustomerID) })
	return out, nil
}

// FeatureDays returns each feature's cost and attributed revenue per day in
// w; Attributed is set on the features some plan maps to.
func (s *Source) FeatureDays(ctx context.Context, w insights.Window) ([]insights.FeatureSeries, error) {
	byName := map[string]*insights.FeatureSeries{}
	if s.cfg.Attribution != nil && w.Days() > 0 {
		r := aggregates.Range{Start: rawevents.DateOf(w.Start), End: rawevents.DateOf(w.End).AddDays(-1),
			Currency: s.cfg.ReportingCurrency, Basis: aggregates.BasisAccrual}
		features, revenue, err := s.cfg.Attribution.FeatureRevenue(ctx, r)
		if err != nil {
			return nil, fmt.Errorf("attributed revenue %s: %w", w, err)
		}
		for _, f := range features {
			fs := &insights.FeatureSeries{Feature: f, Attributed: true}
			for day, v := range revenue[f] {
				fs.Days = append(fs.Days, insights.FeatureDay{Day: day.Midnight(), AttributedRevenue: v})
			}
			byName[f] = fs
		}
	}
	sql, args := usageSQL(s.cfg.ReportingCurrency, w)
	if err := chstore.QueryRows(ctx, s.cfg.Conn, sql, args, func(scan func(...any) error) error {
		var (
			day               time.Time
			src, ext, feature string
			quantity, cost    decimal.Decimal
		)
		if err := scan(&day, &src, &ext, &feature, &quantity, &cost); err != nil {
			return err
		}
		fs := byName[feature]
		if fs == nil {
			fs = &insights.FeatureSeries{Feature: feature}
			byName[feature] = fs
		}
		fs.Days = append(fs.Days, insights.FeatureDay{Day: insights.Day(day), Cost: cost, AttributedRevenue: decimal.Zero})
		return nil
	}); err != nil {
		return nil, fmt.Errorf("read daily_usage %s: %w", w, err)
	}
	out := make([]insights.FeatureSeries, 0, len(byName))
	for _, fs := range byName {
		out = append(out, *fs)
	}
	slices.SortFunc(out, func(a, b insights.FeatureSeries) int { return cmp.Compare(a.Feature, b.Feature) })
	return out, nil
}

// Service is what the API and the scheduler use: runs of the Evaluator and
// acknowledge/resolve by hand, serialized so that a change by hand is never
// lost under a run's save of the same flag (both write version + 1). Safe
// for concurrent use.
type Service struct {
	eval  *insights.Evaluator
	store *Store
	now   func() time.Time
	mu    sync.Mutex
}

// NewService returns a Service; now defaults to time.Now.
func NewService(eval *insights.Evaluator, store *Store, now func() time.Time) (*Service, error) {
	if eval == nil || store == nil {
		return nil, errors.New("insights service: evaluator and store are required")
	}
	if now == nil {
		now = time.Now
	}
	return &Service{eval: eval, store: store, now: now}, nil
}

// Run evaluates the rules now (see insights.Evaluator.Run).
func (s *Service) Run(ctx context.Context) (insights.RunResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.eval.Run(ctx, s.now())
}

// List returns every stored flag, sorted by id.
func (s *Service) List(ctx context.Context) ([]insights.Flag, error) { return s.store.Load(ctx) }

// Acknowledge acknowledges flag id; found is false for an unknown id, and a
// resolved flag gives insights.ErrResolved.
func (s *Service) Acknowledge(ctx context.Context, id string) (f insights.Flag, found bool, err error) {
	return s.update(ctx, id, func(f *insights.Flag) error { return f.Acknowledge(s.now()) })
}

// Resolve resolves flag id by hand; found is false for an unknown id.
func (s *Service) Resolve(ctx context.Context, id string) (f insights.Flag, found bool, err error) {
	return s.update(ctx, id, func(f *insights.Flag) error { f.Resolve(s.now()); return nil })
}

func (s *Service) update(ctx context.Context, id string, fn func(*insights.Flag) error) (insights.Flag, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok, err := s.store.Get(ctx, id)
	if err != nil || !ok {
		return insights.Flag{}, ok, err
	}
	before := f.Version
	if err := fn(&f); err != nil {
		return f, true, err
	}
	if f.Version != before {
		if err := s.store.Save(ctx, []insights.Flag{f}); err != nil {
			return insights.Flag{}, true, fmt.Errorf("save flag %s: %w", id, err)
		}
	}
	return f, true, nil
}

package aggregates

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/uvrhq/uvr/projections/chstore"
	"github.com/uvrhq/uvr/projections/rawevents"
)

// Reader is the tests' oracle for daily_usage and daily_revenue: it reads the
// dashboard (cash, the reporting currency only) from those aggregates, so
// that a test can compare it with rawevents.ClickHouseStore.Dashboard over
// the raw events once the aggregator has recomputed the dirty days. The API
// reads the aggregates through Analytics (converted, cash or accrual).
type Reader struct {
	conn driver.Conn
}

// NewReader returns a Reader on conn (open on the migrated database).
func NewReader(conn driver.Conn) (*Reader, error) {
	if conn == nil {
		return nil, errors.New("aggregates reader: conn is required")
	}
	return &Reader{conn: conn}, nil
}

// Dashboard reads the dashboard of q. Errors: rawevents.ErrInvalidQuery for a
// bad q, otherwise a ClickHouse error.
func (r *Reader) Dashboard(ctx context.Context, q rawevents.DashboardQuery) (rawevents.Dashboard, error) {
	if err := q.Validate(); err != nil {
		return rawevents.Dashboard{}, err
	}
	var usage []rawevents.UsageTotal
	sql, args := dashboardUsageSQL(q)
	if err := r.query(ctx, sql, args, func(scan func(...any) error) error {
		var (
			u   rawevents.UsageTotal
			day time.Time
		)
		if err := scan(&day, &u.Feature, &u.Quantity, &u.Cost); err != nil {
			return err
		}
		u.Day = rawevents.DateOf(day)
		usage = append(usage, u)
		return nil
	}); err != nil {
		return rawevents.Dashboard{}, fmt.Errorf("dashboard usage from %s: %w", TableDailyUsage, err)
	}

	var revenue []rawevents.RevenueTotal
	sql, args = dashboardRevenueSQL(q)
	if err := r.query(ctx, sql, args, func(scan func(...any) error) error {
		var (
			t   rawevents.RevenueTotal
			day time.Time
		)
		if err := scan(&day, &t.Amount); err != nil {
			return err
		}
		t.Day = rawevents.DateOf(day)
		revenue = append(revenue, t)
		return nil
	}); err != nil {
		return rawevents.Dashboard{}, fmt.Errorf("dashboard revenue from %s: %w", TableDailyRevenue, err)
	}
	return rawevents.BuildDashboard(q, usage, revenue)
}

func (r *Reader) query(ctx context.Context, sql string, args []any, row func(scan func(...any) error) error) error {
	return chstore.QueryRows(ctx, r.conn, sql, args, row)
}

// dashboardUsageSQL is the dashboard's usage per day and feature over a
// range, from the aggregates: quantity in every currency, cost in the
// reporting one. events > 0 skips the zero rows of keys that left a day, so a
// (day, feature) appears exactly when it has a counted event, as over the raw
// events.
func dashboardUsageSQL(q rawevents.DashboardQuery) (string, []any) {
	return `SELECT day, feature, sum(quantity) AS quantity, sumIf(cost, currency = ?) AS cost
FROM daily_usage FINAL
WHERE events > 0 AND day >= toDate(?) AND day <= toDate(?)
GROUP BY day, feature
ORDER BY day, feature`, []any{q.Currency, q.Start.String(), q.End.String()}
}

// dashboardRevenueSQL is the dashboard's cash revenue per day in the
// reporting currency.
func dashboardRevenueSQL(q rawevents.DashboardQuery) (string, []any) {
	return `SELECT day, sum(cash) AS revenue
FROM daily_revenue FINAL
WHERE events > 0 AND currency = ? AND day >= toDate(?) AND day <= toDate(?)
GROUP BY day
ORDER BY day`, []any{q.Currency, q.Start.String(), q.End.String()}
}

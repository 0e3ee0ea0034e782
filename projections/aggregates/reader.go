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

// Reader answers the dashboard from the daily aggregates, never the raw
// events: a range query reads one row per day × customer × feature ×
// currency instead of one per event. The response is the one
// rawevents.ClickHouseStore.Dashboard computes from the raw events, once the
// aggregator has recomputed the dirty days. Safe for concurrent use.
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

package aggregates

import (
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/stretchr/testify/assert"

	"github.com/uvrhq/uvr/projections/rawevents"
)

// Golden SQL of every builder: a change to a statement shows up here first.
func TestSQLBuilders(t *testing.T) {
	days := []rawevents.Date{{Year: 2026, Month: 3, Day: 9}, {Year: 2026, Month: 3, Day: 11}}
	recostSpans := []span{
		{time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 3, 4, 0, 0, 0, 0, time.UTC)},
		{from: time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)},
	}
	tests := []struct {
		name     string
		sql      string
		args     []any
		wantSQL  string
		wantArgs []any
	}{
		{
			name: "current versions",
			sql: func() string {
				s, _ := currentSQL("usage_events", []identity{{"a", "1"}, {"b", "2"}})
				return s
			}(),
			args: func() []any {
				_, a := currentSQL("usage_events", []identity{{"a", "1"}, {"b", "2"}})
				return a
			}(),
			wantSQL: `SELECT source, id, day
FROM usage_events FINAL
WHERE (source, id) IN ?`,
			wantArgs: []any{clickhouse.GroupSet{Value: []any{
				clickhouse.GroupSet{Value: []any{"a", "1"}},
				clickhouse.GroupSet{Value: []any{"b", "2"}},
			}}},
		},
		{
			name: "pending", sql: first(pendingSQL(500)), args: second(pendingSQL(500)),
			wantSQL: `SELECT kind, day, changed_ns
FROM dirty_days FINAL
WHERE done = 0
ORDER BY day, kind
LIMIT ?`,
			wantArgs: []any{500},
		},
		{
			name: "pending count", sql: pendingCountSQL(),
			wantSQL: `SELECT count() FROM dirty_days FINAL WHERE done = 0`,
		},
		{
			name: "usage day", sql: first(usageDaySQL(days)), args: second(usageDaySQL(days)),
			wantSQL: `SELECT day, customer_source, customer_external_id, feature, currency, toString(price) AS to_price, sum(quantity) AS quantity, sum(cost) AS cost, count() AS events
FROM usage_by_day FINAL
WHERE day IN (toDate(?), toDate(?)) AND void = 0 AND ((source, id) NOT IN (SELECT source, id FROM revisions WHERE type = 'uvr.usage.v1')
  OR (source, id, rev) IN (SELECT source, id, rev FROM revisions FINAL WHERE type = 'uvr.usage.v1'))
GROUP BY day, customer_source, customer_external_id, feature, currency, to_price`,
			wantArgs: []any{"2026-03-09", "2026-03-11"},
		},
		{
			name: "recost days", sql: first(recostDaysSQL(recostSpans)), args: second(recostDaysSQL(recostSpans)),
			wantSQL: `SELECT DISTINCT day
FROM usage_by_day
WHERE price = 1 AND ((day >= toDate(?) AND day < toDate(?)) OR day >= toDate(?))
ORDER BY day`,
			wantArgs: []any{"2026-03-01", "2026-03-04", "2026-04-01"},
		},
		{
			name: "revenue day", sql: first(revenueDaySQL(days)), args: second(revenueDaySQL(days)),
			wantSQL: `SELECT day, customer_source, customer_external_id, currency, sum(amount) AS cash, sumIf(amount, kind IN ('refund', 'credit_note')) AS refunds, count() AS events
FROM revenue_by_day FINAL
WHERE day IN (toDate(?), toDate(?)) AND void = 0 AND ((source, id) NOT IN (SELECT source, id FROM revisions WHERE type = 'uvr.revenue.v1')
  OR (source, id, rev) IN (SELECT source, id, rev FROM revisions FINAL WHERE type = 'uvr.revenue.v1')) AND kind IN ('charge', 'invoice_paid', 'refund', 'credit_note', 'dispute')
GROUP BY day, customer_source, customer_external_id, currency`,
			wantArgs: []any{"2026-03-09", "2026-03-11"},
		},
		{
			name: "stored usage", sql: first(storedUsageSQL(days)), args: second(storedUsageSQL(days)),
			wantSQL: `SELECT day, customer_source, customer_external_id, feature, currency, quantity, cost, priced_cost, unpriced_quantity, events, computed_at
FROM daily_usage FINAL
WHERE day IN (toDate(?), toDate(?))`,
			wantArgs: []any{"2026-03-09", "2026-03-11"},
		},
		{
			name: "stored revenue", sql: first(storedRevenueSQL(days)), args: second(storedRevenueSQL(days)),
			wantSQL: `SELECT day, customer_source, customer_external_id, currency, cash, refunds, events, computed_at
FROM daily_revenue FINAL
WHERE day IN (toDate(?), toDate(?))`,
			wantArgs: []any{"2026-03-09", "2026-03-11"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.wantSQL, tt.sql)
			assert.Equal(t, tt.wantArgs, tt.args)
		})
	}
}

func first(s string, _ []any) string { return s }
func second(_ string, a []any) []any { return a }

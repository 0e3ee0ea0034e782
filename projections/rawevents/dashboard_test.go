package rawevents

import (
	"strings"
	"testing"

	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestQuerySQL(t *testing.T) {
	tests := []struct {
		name     string
		query    interface{ toSQL() (string, []any) }
		wantSQL  string
		wantArgs []any
	}{
		{
			name:  "usage per day and feature",
			query: usageQuery{start: date("2026-05-01"), end: date("2026-05-31"), currency: "USD"},
			wantSQL: `SELECT day, feature, sum(quantity) AS quantity, sumIf(cost, currency = ?) AS cost
FROM usage_events FINAL
WHERE void = 0 AND day >= toDate(?) AND day <= toDate(?)
GROUP BY day, feature
ORDER BY day, feature`,
			wantArgs: []any{"USD", "2026-05-01", "2026-05-31"},
		},
		{
			name:  "revenue per day",
			query: revenueQuery{start: date("2026-05-01"), end: date("2026-05-01"), currency: "EUR"},
			wantSQL: `SELECT day, sum(amount) AS revenue
FROM revenue_events FINAL
WHERE void = 0 AND currency = ? AND kind IN ('charge', 'invoice_paid', 'refund', 'credit_note', 'dispute') AND day >= toDate(?) AND day <= toDate(?)
GROUP BY day
ORDER BY day`,
			wantArgs: []any{"EUR", "2026-05-01", "2026-05-01"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sql, args := tt.query.toSQL()
			assert.Equal(t, tt.wantSQL, sql)
			assert.Equal(t, tt.wantArgs, args)
		})
	}
}

// The insert names its columns in this order (the table's own order may differ).
func TestInsertColumns(t *testing.T) {
	var names []string
	for _, c := range tableColumns[TableCustomer] {
		names = append(names, c.name)
	}
	assert.Equal(t,
		"source, id, version, void, rev, time, day, customer_source, customer_external_id, customer_email, customer_name, subject, plan, environment, metadata_keys, metadata_values, attr_keys, attr_values, ingested_at, kafka_partition, kafka_offset",
		strings.Join(names, ", "))
}

func TestDashboardQueryValidate(t *testing.T) {
	tests := []struct {
		name string
		q    DashboardQuery
		want []string
	}{
		{name: "one day", q: DashboardQuery{Start: date("2026-01-01"), End: date("2026-01-01"), Currency: "USD"}},
		{name: "longest range", q: DashboardQuery{Start: date("2026-01-01"), End: date("2026-01-01").AddDays(MaxDashboardDays - 1), Currency: "USD"}},
		{name: "too long", q: DashboardQuery{Start: date("2026-01-01"), End: date("2026-01-01").AddDays(MaxDashboardDays), Currency: "USD"}, want: []string{"at most 3660"}},
		{name: "reversed and lowercase", q: DashboardQuery{Start: date("2026-01-02"), End: date("2026-01-01"), Currency: "usd"}, want: []string{"before start", "ISO 4217"}},
		{name: "zero query", q: DashboardQuery{}, want: []string{"ISO 4217", "1970 to 2105"}},
		{name: "after 2105", q: DashboardQuery{Start: date("2105-12-31"), End: date("2106-01-01"), Currency: "USD"}, want: []string{"1970 to 2105"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.q.Validate()
			if len(tt.want) == 0 {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, ErrInvalidQuery)
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestBuildDashboardMargins(t *testing.T) {
	d := func(s string) decimal.Decimal { return decimal.RequireFromString(s) }
	q := DashboardQuery{Start: date("2026-01-01"), End: date("2026-01-02"), Currency: "USD"}
	tests := []struct {
		name    string
		usage   []usageRow
		revenue []revenueRow
		margin  string
	}{
		{"two thirds", []usageRow{{date("2026-01-01"), "a", d("1"), d("1")}}, []revenueRow{{date("2026-01-02"), d("3")}}, "66.6667"},
		{"loss rounds away from zero", []usageRow{{date("2026-01-01"), "a", d("1"), d("5")}}, []revenueRow{{date("2026-01-01"), d("3")}}, "-66.6667"},
		{"negative revenue", nil, []revenueRow{{date("2026-01-01"), d("-3")}}, "100"},
		{"99.99995 rounds half away from zero", []usageRow{{date("2026-01-01"), "a", d("1"), d("0.00005")}}, []revenueRow{{date("2026-01-01"), d("100")}}, "100"},
		{"no revenue", []usageRow{{date("2026-01-01"), "a", d("1"), d("5")}}, nil, ""},
		{"revenue nets to zero", nil, []revenueRow{{date("2026-01-01"), d("3")}, {date("2026-01-02"), d("-3")}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := buildDashboard(q, tt.usage, tt.revenue)
			require.NoError(t, err)
			assertOptDec(t, tt.margin, got.Summary.ProfitMarginPercentage, "margin")
		})
	}

	_, err := buildDashboard(q, nil, []revenueRow{{date("2026-01-03"), d("1")}})
	require.ErrorContains(t, err, "outside")
}

func TestDate(t *testing.T) {
	d, err := ParseDate("2024-02-28")
	require.NoError(t, err)
	assert.Equal(t, Date{2024, 2, 28}, d)
	assert.Equal(t, "2024-02-29", d.AddDays(1).String())
	assert.Equal(t, "2024-03-01", d.AddDays(2).String())
	assert.Equal(t, "2023-12-31", date("2024-01-01").AddDays(-1).String())
	assert.Equal(t, 366, date("2024-01-01").DaysUntil(date("2025-01-01")))
	assert.Equal(t, -1, d.DaysUntil(date("2024-02-27")))
	assert.True(t, d.Before(date("2024-02-29")))
	assert.True(t, date("2024-02-29").After(d))
	assert.False(t, d.After(d))

	_, err = ParseDate("2024-02-30")
	assert.Error(t, err)
	_, err = ParseDate("28/02/2024")
	assert.Error(t, err)

	var u Date
	require.NoError(t, u.UnmarshalText([]byte("1999-12-31")))
	b, err := u.MarshalText()
	require.NoError(t, err)
	assert.Equal(t, "1999-12-31", string(b))
	assert.Equal(t, "2026-01-01", DateOf(at("2026-01-01T23:59:59Z")).String())
}

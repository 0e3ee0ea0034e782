package chstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/column"
	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/deploy/servicetest"
)

func TestMonthGroups(t *testing.T) {
	tests := []struct {
		name   string
		months []int
		max    int
		want   [][]int
	}{
		{name: "within the limit: one insert", months: []int{202601, 202602, 202601}, max: 2, want: nil},
		{name: "empty", months: nil, max: 2, want: nil},
		{
			name:   "three months by two: rows of a month together, in their order",
			months: []int{202603, 202601, 202602, 202601, 202603},
			max:    2,
			want:   [][]int{{1, 2, 3}, {0, 4}},
		},
		{
			name:   "months in year order across years",
			months: []int{202501, 202412, 202502},
			max:    1,
			want:   [][]int{{1}, {0}, {2}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, MonthGroups(tt.months, tt.max))
		})
	}
}

func TestDecimalRefuses(t *testing.T) {
	money := decimalType{precision: 18, scale: 9}
	tests := []struct {
		value string
		want  string // substring of the reason; "" when it fits
	}{
		{"0", ""},
		{"999999999.999999999", ""},
		{"-999999999.999999999", ""},
		{"1000000000", "more than 9 digits before the point"},
		{"-12345678901.5", "more than 9 digits before the point"},
		{"0.0000000001", "more than 9 decimal places"},
		{"1.5000000000", ""}, // trailing zeros are not places
	}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			got := money.refuses(decimal.RequireFromString(tt.value))
			if tt.want == "" {
				assert.Empty(t, got)
				return
			}
			assert.Contains(t, got, tt.want)
			assert.Contains(t, got, "Decimal(18, 9)")
		})
	}
}

func TestClassify(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("flush 3 rows: insert: %w", err) }
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"nil", nil, ClassTransient},
		{"a value the column cannot hold", wrap(&ValueError{Table: "t", Column: "cost", Reason: "too large"}), ClassValue},
		{"a date the driver refuses", wrap(&column.DateOverflowError{}), ClassValue},
		{"a Go type the column does not take", wrap(&column.ColumnConverterError{Op: "Append", From: "string", To: "UInt8"}), ClassSchema},
		{"DECIMAL_OVERFLOW", wrap(&clickhouse.Exception{Code: 407}), ClassValue},
		{"VIOLATED_CONSTRAINT", wrap(&clickhouse.Exception{Code: 469}), ClassValue},
		{"NO_SUCH_COLUMN_IN_TABLE", wrap(&clickhouse.Exception{Code: 16}), ClassSchema},
		{"UNKNOWN_TABLE", wrap(&clickhouse.Exception{Code: 60}), ClassSchema},
		{"TOO_MANY_PARTS", wrap(&clickhouse.Exception{Code: 252}), ClassTransient},
		{"MEMORY_LIMIT_EXCEEDED", wrap(&clickhouse.Exception{Code: 241}), ClassTransient},
		{"TIMEOUT_EXCEEDED", wrap(&clickhouse.Exception{Code: 159}), ClassTransient},
		{"connection refused", wrap(&net.OpError{Op: "dial", Err: errors.New("connection refused")}), ClassTransient},
		{"server gone", wrap(io.EOF), ClassTransient},
		{"deadline", wrap(context.DeadlineExceeded), ClassTransient},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, Classify(tt.err))
			assert.Equal(t, tt.want != ClassTransient, IsPermanent(tt.err))
		})
	}
	for code := range valueCodes {
		assert.NotContains(t, schemaCodes, code, "code %d is in both lists", code)
	}
}

// What InsertColumns reads from the migrations is what a migrated server
// holds: the partition column of every partitioned table and the type of
// every Decimal column.
func TestSchemaMatchesTheServer(t *testing.T) {
	addr, database := servicetest.ClickHouseDatabase(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	conn, err := Open(ctx, Config{Addr: []string{addr}, Database: database})
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, Migrate(ctx, conn, database, nil))
	parsed, err := schemas()
	require.NoError(t, err)

	server := map[string]tableSchema{}
	require.NoError(t, QueryRows(ctx, conn, "SELECT name, partition_key FROM system.tables WHERE database = ? AND name != 'schema_migrations'", []any{database},
		func(scan func(...any) error) error {
			var name, key string
			if err := scan(&name, &key); err != nil {
				return err
			}
			s := tableSchema{decimals: map[string]decimalType{}}
			if key != "" {
				m := monthOf.FindStringSubmatch(key)
				require.NotNil(t, m, "table %s: partition key %s", name, key)
				s.partitionColumn = m[1]
			}
			server[name] = s
			return nil
		}))
	require.NoError(t, QueryRows(ctx, conn, "SELECT table, name, type FROM system.columns WHERE database = ? AND type LIKE 'Decimal(%'", []any{database},
		func(scan func(...any) error) error {
			var table, name, typ string
			if err := scan(&table, &name, &typ); err != nil {
				return err
			}
			if s, ok := server[table]; ok {
				var p, sc int32
				_, err := fmt.Sscanf(strings.ReplaceAll(typ, " ", ""), "Decimal(%d,%d)", &p, &sc)
				require.NoError(t, err, typ)
				s.decimals[name] = decimalType{precision: p, scale: sc}
			}
			return nil
		}))
	require.NotEmpty(t, server)
	for name, s := range server {
		assert.Equal(t, s, parsed[name], "table %s", name)
	}
	assert.Equal(t, "day", parsed["usage_by_day"].partitionColumn)
}

// Ten years of daily rows in one call: InsertColumns sends them as inserts
// of at most MaxPartitionsPerInsert months (the refusal by a current
// ClickHouse, and its acceptance of these groups, are in cmd/uvr's
// chcompat_test.go), and every row lands once.
func TestInsertColumnsSplitsByMonth(t *testing.T) {
	addr, database := servicetest.ClickHouseDatabase(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	conn, err := Open(ctx, Config{Addr: []string{addr}, Database: database})
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, Migrate(ctx, conn, database, nil))

	first := time.Date(2016, 1, 1, 0, 0, 0, 0, time.UTC)
	const days = 3653
	var (
		kinds   = make([]string, days)
		dates   = make([]time.Time, days)
		changed = make([]uint64, days)
		done    = make([]uint8, days)
		ver     = make([]uint64, days)
	)
	for i := range days {
		kinds[i], dates[i], changed[i], ver[i] = "usage", first.AddDate(0, 0, i), uint64(i+1), uint64(2*i+2)
	}
	// dirty_days is not partitioned: one insert. usage_by_day is.
	require.NoError(t, InsertColumns(ctx, conn, "dirty_days", []string{"kind", "day", "changed_ns", "done", "ver"},
		[]any{kinds, dates, changed, done, ver}))
	ones := make([]decimal.Decimal, days)
	for i := range ones {
		ones[i] = decimal.RequireFromString("1.000000001")
	}
	str := func(s string) []string { return strings.Split(strings.Repeat(s+"\x00", days-1)+s, "\x00") }
	ids := make([]string, days)
	revs := make([]uint64, days)
	for i := range ids {
		ids[i], revs[i] = fmt.Sprint(i), 2
	}
	require.NoError(t, InsertColumns(ctx, conn, "usage_by_day",
		[]string{"day", "source", "id", "rev", "void", "customer_source", "customer_external_id", "feature", "currency", "quantity", "cost"},
		[]any{dates, str("stripe"), ids, revs, done, str("stripe"), str("cus_1"), str("api.calls"), str("USD"), ones, ones}))

	var (
		n, months uint64
		sum       decimal.Decimal
	)
	require.NoError(t, conn.QueryRow(ctx, "SELECT count(), uniqExact(toYYYYMM(day)), sum(quantity) FROM usage_by_day FINAL").Scan(&n, &months, &sum))
	assert.EqualValues(t, days, n)
	assert.EqualValues(t, 120, months)
	assert.Equal(t, "3653.000003653", sum.String())

	groups := MonthGroups(monthsOf(dates), MaxPartitionsPerInsert)
	require.Len(t, groups, 2)
	assert.Len(t, groups[0], 3043, "2016-01 … 2024-04: 100 months of days")

	// A value the column cannot hold fails the whole call before anything is sent.
	ones[7] = decimal.RequireFromString("1000000000")
	err = InsertColumns(ctx, conn, "usage_by_day",
		[]string{"day", "source", "id", "rev", "void", "customer_source", "customer_external_id", "feature", "currency", "quantity", "cost"},
		[]any{dates, str("stripe"), ids, revs, done, str("stripe"), str("cus_1"), str("api.calls"), str("USD"), ones, ones})
	var ve *ValueError
	require.ErrorAs(t, err, &ve)
	assert.Equal(t, ValueError{Table: "usage_by_day", Column: "cost", Row: 7, Reason: ve.Reason}, *ve)
}

func monthsOf(days []time.Time) []int {
	out := make([]int, len(days))
	for i, d := range days {
		out[i] = d.Year()*100 + int(d.Month())
	}
	return out
}

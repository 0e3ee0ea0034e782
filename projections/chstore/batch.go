package chstore

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/shopspring/decimal"
)

// MaxPartitionsPerInsert is how many partitions one INSERT may write into.
// From ClickHouse 19 on, an insert touching more than
// max_partitions_per_insert_block (100 by default) partitions is refused as
// a whole ("Too many partitions for single INSERT block"), and a retry gets
// the same answer; 18.16 has no such limit. A batch holding ten years of
// daily history spans 120 monthly partitions, so InsertColumns sends such a
// batch as several inserts of at most this many months each.
const MaxPartitionsPerInsert = 100

// InsertColumns writes one columnar batch into table: names[i]'s values are
// columns[i], a slice of the Go type the driver takes for that column's
// ClickHouse type. This is the only way to insert here: it is the driver's
// fastest path, and over the native protocol ClickHouse 18.16 takes no
// "INSERT … VALUES" statement (STACK.md).
//
// Every insert uvr sends goes through it, so it keeps two promises for every
// writer, from the table's schema in the migrations (schema.go):
//   - a decimal the column cannot hold is a *ValueError naming the row,
//     before anything is sent (the driver would store it wrapped around);
//   - a batch spanning more than MaxPartitionsPerInsert months of a table
//     PARTITION BY toYYYYMM(column) is sent as several inserts, each of at
//     most that many months, the rows of one month together and in their
//     order. If one of them fails the earlier ones stay written: every table
//     written this way keeps one row per key, so inserting the whole batch
//     again is the remedy, as for any failed insert.
func InsertColumns(ctx context.Context, conn driver.Conn, table string, names []string, columns []any) error {
	all, err := schemas()
	if err != nil {
		return err
	}
	schema := all[table]
	if err := checkDecimals(table, schema, names, columns); err != nil {
		return err
	}
	groups, err := partitionGroups(schema.partitionColumn, names, columns)
	if err != nil {
		return fmt.Errorf("insert into %s: %w", table, err)
	}
	if groups == nil {
		return insert(ctx, conn, table, names, columns)
	}
	for _, rows := range groups {
		if err := insert(ctx, conn, table, names, pick(columns, rows)); err != nil {
			return err
		}
	}
	return nil
}

func insert(ctx context.Context, conn driver.Conn, table string, names []string, columns []any) error {
	n := "?"
	if len(columns) > 0 {
		n = fmt.Sprint(sliceLen(columns[0]))
	}
	batch, err := conn.PrepareBatch(ctx, "INSERT INTO "+table+" ("+strings.Join(names, ", ")+")")
	if err != nil {
		return fmt.Errorf("insert %s rows into %s: prepare: %w", n, table, err)
	}
	for i, values := range columns {
		if err := batch.Column(i).Append(values); err != nil {
			_ = batch.Abort()
			return fmt.Errorf("insert %s rows into %s: column %s: %w", n, table, names[i], err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("insert %s rows into %s: %w", n, table, err)
	}
	return nil
}

// partitionGroups returns the row indices of each insert to send, or nil
// when the whole batch may go as one (unpartitioned, or within the limit).
func partitionGroups(column string, names []string, columns []any) ([][]int, error) {
	i := slices.Index(names, column)
	if column == "" || i < 0 {
		return nil, nil
	}
	days, ok := columns[i].([]time.Time)
	if !ok {
		return nil, fmt.Errorf("partition column %s: want []time.Time, got %T", column, columns[i])
	}
	months := make([]int, len(days))
	for r, d := range days {
		months[r] = d.Year()*100 + int(d.Month()) // toYYYYMM of a Date (UTC midnight)
	}
	return MonthGroups(months, MaxPartitionsPerInsert), nil
}

// MonthGroups splits the rows whose months (YYYYMM) are given into groups
// spanning at most max distinct months each, in month order, each group's
// rows in their original order. It returns nil when all rows fit one group.
func MonthGroups(months []int, max int) [][]int {
	distinct := slices.Compact(slices.Sorted(slices.Values(months)))
	if len(distinct) <= max {
		return nil
	}
	group := make(map[int]int, len(distinct))
	for i, m := range distinct {
		group[m] = i / max
	}
	out := make([][]int, (len(distinct)+max-1)/max)
	for r, m := range months {
		out[group[m]] = append(out[group[m]], r)
	}
	return out
}

// pick returns the columns restricted to rows.
func pick(columns []any, rows []int) []any {
	out := make([]any, len(columns))
	for i, c := range columns {
		src := reflect.ValueOf(c)
		dst := reflect.MakeSlice(src.Type(), len(rows), len(rows))
		for j, r := range rows {
			dst.Index(j).Set(src.Index(r))
		}
		out[i] = dst.Interface()
	}
	return out
}

// checkDecimals refuses a decimal its column cannot hold: more integer
// digits than precision − scale, or more decimal places than scale.
func checkDecimals(table string, schema tableSchema, names []string, columns []any) error {
	for i, name := range names {
		typ, ok := schema.decimals[name]
		if !ok {
			continue
		}
		check := func(row int, d decimal.Decimal) error {
			if reason := typ.refuses(d); reason != "" {
				return &ValueError{Table: table, Column: name, Row: row, Reason: reason}
			}
			return nil
		}
		switch values := columns[i].(type) {
		case []decimal.Decimal:
			for r, d := range values {
				if err := check(r, d); err != nil {
					return err
				}
			}
		case []*decimal.Decimal:
			for r, d := range values {
				if d != nil {
					if err := check(r, *d); err != nil {
						return err
					}
				}
			}
		}
	}
	return nil
}

// refuses says why the column cannot hold d; "" when it can.
func (t decimalType) refuses(d decimal.Decimal) string {
	if !d.Truncate(t.scale).Equal(d) {
		return fmt.Sprintf("%s has more than %d decimal places for %s", d.String(), t.scale, t)
	}
	if d.Abs().Cmp(decimal.New(1, t.precision-t.scale)) >= 0 {
		return fmt.Sprintf("%s has more than %d digits before the point for %s", d.String(), t.precision-t.scale, t)
	}
	return ""
}

// QueryRows runs sql and calls row for each result row with its Scan.
func QueryRows(ctx context.Context, conn driver.Conn, sql string, args []any, row func(scan func(...any) error) error) error {
	rows, err := conn.Query(ctx, sql, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := row(rows.Scan); err != nil {
			return err
		}
	}
	return rows.Err()
}

// sliceLen is the length of a column slice, for error messages.
func sliceLen(values any) int {
	rv := reflect.ValueOf(values)
	if rv.Kind() == reflect.Slice {
		return rv.Len()
	}
	return 0
}

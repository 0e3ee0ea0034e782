package chstore

import (
	"context"
	"fmt"
	"reflect"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// InsertColumns writes one columnar batch into table: names[i]'s values are
// columns[i], a slice of the Go type the driver takes for that column's
// ClickHouse type. This is the only way to insert here: it is the driver's
// fastest path, and over the native protocol ClickHouse 18.16 takes no
// "INSERT … VALUES" statement (STACK.md).
func InsertColumns(ctx context.Context, conn driver.Conn, table string, names []string, columns []any) error {
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

package aggregates

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/shopspring/decimal"

	"github.com/uvrhq/uvr/pipeline/event"
	"github.com/uvrhq/uvr/projections/chstore"
	"github.com/uvrhq/uvr/projections/rawevents"
	"github.com/uvrhq/uvr/projections/revenue"
)

// Revenue lines: cash and accrual per day × customer × currency × plan
// (migration 0008, docs/analytics/revenue.md). An event version has a row in
// revenue_lines_by_day under every day it counts on in either view, read
// like the other by-day tables (CountedSQL): a correction that shortens a
// period leaves its predecessor's rows where they were, superseded by rev,
// and marks their days dirty.
const (
	TableRevenueLinesByDay = "revenue_lines_by_day"
	TableDailyRevenueLines = "daily_revenue_lines"

	KindRevenueLines Kind = "revenue_lines"
	// kindLinesBackfill is the one dirty mark migration 0008 writes: copy
	// the revenue events projected before it into revenue_lines_by_day.
	kindLinesBackfill Kind = "revenue_lines_backfill"
)

// MaxAccrualDays bounds the days one event accrues over. A longer service
// period (over three years) is not spread: it accrues on its cash day, as an
// event without a period does, so no money is lost and one event never
// writes more than MaxAccrualDays rows. The event contract accepts such
// periods (lifetime deals exist); docs/analytics/revenue.md says so.
const MaxAccrualDays = 3*366 + 1

// lineDay is what an event version counts on one day.
type lineDay struct {
	day           rawevents.Date
	cash, accrual decimal.Decimal
}

// lineDays returns the days of ev in either view, in day order: its cash day
// (the whole amount) and the days of its accrual (revenue.AccrualDays, or
// the cash day when the period is longer than MaxAccrualDays). An event
// without an amount has its cash day with zeros, so a version that drops the
// amount still tombstones the days of the one before.
func lineDays(ev event.Event) []lineDay {
	cashDay := rawevents.DateOf(ev.Time.UTC())
	if ev.Data.Amount == nil {
		return []lineDay{{day: cashDay}}
	}
	amount := *ev.Data.Amount
	by := map[rawevents.Date]*lineDay{cashDay: {day: cashDay, cash: amount}}
	accrual := []revenue.DayAmount{{Day: cashDay.Midnight(), Amount: amount}}
	if d := ev.Data; d.PeriodStart != nil && d.PeriodEnd != nil && d.PeriodEnd.Sub(*d.PeriodStart) <= MaxAccrualDays*24*time.Hour {
		// Spread fails only on what the event contract rejects (an empty
		// period, more than 9 decimals): then the cash day keeps it all.
		if days, err := revenue.AccrualDays(ev); err == nil {
			accrual = days
		}
	}
	for _, a := range accrual {
		day := rawevents.DateOf(a.Day)
		l := by[day]
		if l == nil {
			l = &lineDay{day: day}
			by[day] = l
		}
		l.accrual = l.accrual.Add(a.Amount)
	}
	out := make([]lineDay, 0, len(by))
	for _, l := range by {
		out = append(out, *l)
	}
	slices.SortFunc(out, func(a, b lineDay) int { return a.day.Midnight().Compare(b.day.Midnight()) })
	return out
}

// lineRow is one row of revenue_lines_by_day.
type lineRow struct {
	byDayRow
	cash, accrual decimal.Decimal
}

// linesOf returns the revenue lines of every version of batch.
func linesOf(batch []*rawevents.Row) []lineRow {
	var out []lineRow
	for _, r := range batch {
		for _, l := range lineDays(r.Event) {
			out = append(out, lineRow{byDayRow: byDayRow{day: l.day, row: r}, cash: l.cash, accrual: l.accrual})
		}
	}
	return out
}

// currentDays are the days the current version of a revenue event counts
// on: its cash day (revenue_by_day) and its lines' days.
type currentDays struct {
	cashDay rawevents.Date
	days    []rawevents.Date
}

// lookupLines reads the current version of the batch's identities from
// revenue_events with what its days depend on (time, amount, period).
func (w *Writer) lookupLines(ctx context.Context, batch []*rawevents.Row) (map[identity]currentDays, error) {
	ids := identitiesOf(batch)
	cur := make(map[identity]currentDays, len(ids))
	for _, chunk := range chunkIdentities(ids, maxLookupBytes) {
		sql, args := currentLinesSQL(chunk)
		err := chstore.QueryRows(ctx, w.conn, sql, args, func(scan func(...any) error) error {
			ev, err := scanLineEvent(scan)
			if err != nil {
				return err
			}
			cur[identity{ev.Source, ev.ID}] = currentDays{cashDay: rawevents.DateOf(ev.Time.UTC()), days: daysOf(lineDays(ev))}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("look up %d current revenue lines in %s: %w", len(chunk), rawevents.TableRevenue, err)
		}
	}
	return cur, nil
}

// lineColumns are the revenue_events columns scanLineEvent reads.
const lineColumns = `source, id, rev, time, customer_source, customer_external_id, kind, currency, plan, amount, period_start, period_end`

// scanLineEvent reads lineColumns back into the event fields lineDays and
// insertLines use.
func scanLineEvent(scan func(...any) error) (event.Event, error) {
	var (
		ev         event.Event
		rev        uint64
		amount     decimal.Decimal
		start, end *time.Time
	)
	d := &ev.Data
	if err := scan(&ev.Source, &ev.ID, &rev, &ev.Time, &d.Customer.Source, &d.Customer.ExternalID, &d.Kind, &d.Currency, &d.Plan, &amount, &start, &end); err != nil {
		return ev, err
	}
	ev.Type = event.TypeRevenue
	d.Amount, d.PeriodStart, d.PeriodEnd = &amount, start, end
	d.Version, d.Void = uint32(rev/2), rev%2 == 1 // Row.Rev gives it back
	return ev, nil
}

func daysOf(ls []lineDay) []rawevents.Date {
	out := make([]rawevents.Date, len(ls))
	for i, l := range ls {
		out[i] = l.day
	}
	return out
}

func insertLines(ctx context.Context, conn driver.Conn, rows []lineRow) error {
	if len(rows) == 0 {
		return nil
	}
	n := len(rows)
	var (
		days                   = make([]time.Time, n)
		sources, ids           = make([]string, n), make([]string, n)
		revs                   = make([]uint64, n)
		voids                  = make([]uint8, n)
		custSrc, custExt       = make([]string, n), make([]string, n)
		kinds, currencies, pls = make([]string, n), make([]string, n), make([]string, n)
		cash, accrual          = make([]decimal.Decimal, n), make([]decimal.Decimal, n)
	)
	for i, r := range rows {
		ev := r.row.Event
		days[i], sources[i], ids[i], revs[i], voids[i] = r.day.Midnight(), ev.Source, ev.ID, r.row.Rev(), flag(ev.Data.Void)
		custSrc[i], custExt[i] = ev.Data.Customer.Source, ev.Data.Customer.ExternalID
		kinds[i], currencies[i], pls[i] = ev.Data.Kind, ev.Data.Currency, ev.Data.Plan
		cash[i], accrual[i] = r.cash, r.accrual
	}
	if err := chstore.InsertColumns(ctx, conn, TableRevenueLinesByDay,
		[]string{"day", "source", "id", "rev", "void", "customer_source", "customer_external_id", "kind", "currency", "plan", "cash", "accrual"},
		[]any{days, sources, ids, revs, voids, custSrc, custExt, kinds, currencies, pls, cash, accrual}); err != nil {
		return fmt.Errorf("insert %d revenue lines: %w", n, err)
	}
	return nil
}

// backfillLines copies the current version of every revenue event into
// revenue_lines_by_day and marks its days dirty (migration 0008's request,
// for a database projected before it). Rows go in chunks so memory stays
// bounded by the chunk, not the history.
func (a *Aggregator) backfillLines(ctx context.Context) error {
	const chunk = 20_000
	var (
		rows  []lineRow
		dirty = map[dirtyKey]struct{}{}
		total int
	)
	flush := func() error {
		if err := insertLines(ctx, a.conn, rows); err != nil {
			return err
		}
		for _, r := range rows {
			dirty[dirtyKey{KindRevenueLines, r.day}] = struct{}{}
		}
		total += len(rows)
		rows = rows[:0]
		return nil
	}
	sql := `SELECT ` + lineColumns + ` FROM ` + rawevents.TableRevenue + ` FINAL`
	err := chstore.QueryRows(ctx, a.conn, sql, nil, func(scan func(...any) error) error {
		ev, err := scanLineEvent(scan)
		if err != nil {
			return err
		}
		rows = append(rows, linesOf([]*rawevents.Row{{Event: ev}})...)
		if len(rows) >= chunk {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		return fmt.Errorf("backfill %s: %w", TableRevenueLinesByDay, err)
	}
	if len(dirty) > 0 {
		ns := uint64(a.now().UnixNano())
		marks := make([]dirtyMark, 0, len(dirty))
		for k := range dirty {
			marks = append(marks, dirtyMark{kind: k.kind, day: k.day, changedNS: ns})
		}
		if err := insertMarks(ctx, a.conn, marks); err != nil {
			return err
		}
	}
	a.log.Info("backfilled revenue lines", "rows", total, "days", len(dirty))
	return nil
}

// currentLinesSQL looks up the current version of identities in
// revenue_events with the columns their days depend on.
func currentLinesSQL(ids []identity) (string, []any) {
	_, args := currentSQL(rawevents.TableRevenue, ids) // the same bound set
	return `SELECT ` + lineColumns + `
FROM ` + rawevents.TableRevenue + ` FINAL
WHERE (source, id) IN ?`, args
}

// linesDaySQL recomputes days of daily_revenue_lines.
func linesDaySQL(days []rawevents.Date) (string, []any) {
	cond, args := dayIn(days)
	return `SELECT day, customer_source, customer_external_id, currency, plan, sum(cash) AS total_cash, sum(accrual) AS total_accrual, sumIf(cash, kind IN (` + quoteAll(refundKinds) + `)) AS total_refunds, count() AS events
FROM revenue_lines_by_day FINAL
WHERE ` + cond + ` AND ` + CountedSQL(event.TypeRevenue) + ` AND kind IN (` + quoteAll(rawevents.RevenueKinds()) + `)
GROUP BY day, customer_source, customer_external_id, currency, plan`, args
}

func storedLinesSQL(days []rawevents.Date) (string, []any) {
	cond, args := dayIn(days)
	return `SELECT day, customer_source, customer_external_id, currency, plan, cash, accrual, refunds, events, computed_at
FROM daily_revenue_lines FINAL
WHERE ` + cond, args
}

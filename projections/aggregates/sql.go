package aggregates

import (
	"cmp"
	"slices"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/uvrhq/uvr/pipeline/event"
	"github.com/uvrhq/uvr/projections/rawevents"
)

// The SQL of the package, one builder per statement, each returning the SQL
// and its client-side bound arguments (`?`; ClickHouse 18.16 has no
// server-side parameters, and sets are bound with clickhouse.GroupSet). Golden
// tests pin every statement; all of them run on ClickHouse 18.16 and current
// releases alike.
//
// Every read of a ReplacingMergeTree uses FINAL and keeps its filters in
// WHERE, never PREWHERE: a PREWHERE applies before FINAL collapses the
// versions and would let an older, unvoided version through.

// CountedSQL is the condition under which a by-day row of an event of type
// typ (event.TypeUsage or event.TypeRevenue) counts, read with FINAL (which
// keeps the highest rev under each day): it is not void, and its identity
// has no revision or the row is the identity's highest revision. The
// by-day tables keep every version under its own day, with no tombstone:
// this is where a correction supersedes the version before it.
//
// Both sets are built from revisions once per query; the table holds only
// versions above the first and voids, a small part of the log.
func CountedSQL(typ string) string {
	return `void = 0 AND ((source, id) NOT IN (SELECT source, id FROM ` + TableRevisions + ` WHERE type = '` + typ + `')
  OR (source, id, rev) IN (SELECT source, id, rev FROM ` + TableRevisions + ` FINAL WHERE type = '` + typ + `'))`
}

// identity is an event identity, the raw tables' primary key.
type identity struct {
	source, id string
}

// currentSQL looks up the day of the current version of identities in a raw
// table: point lookups on its primary key (source, id).
func currentSQL(rawTable string, ids []identity) (string, []any) {
	set := clickhouse.GroupSet{Value: make([]any, len(ids))}
	for i, id := range ids {
		set.Value[i] = clickhouse.GroupSet{Value: []any{id.source, id.id}}
	}
	return `SELECT source, id, day
FROM ` + rawTable + ` FINAL
WHERE (source, id) IN ?`, []any{set}
}

// pendingSQL lists the dirty days not yet recomputed, oldest day first.
func pendingSQL(limit int) (string, []any) {
	return `SELECT kind, day, changed_ns
FROM dirty_days FINAL
WHERE done = 0
ORDER BY day, kind
LIMIT ?`, []any{limit}
}

// pendingCountSQL counts the dirty days not yet recomputed.
func pendingCountSQL() string {
	return `SELECT count() FROM dirty_days FINAL WHERE done = 0`
}

// dayIn is the condition "day is one of days" (bound, one placeholder per
// day), and its arguments.
func dayIn(days []rawevents.Date) (string, []any) {
	marks := make([]string, len(days))
	args := make([]any, len(days))
	for i, d := range days {
		marks[i], args[i] = "toDate(?)", d.String()
	}
	return "day IN (" + strings.Join(marks, ", ") + ")", args
}

// usageDaySQL recomputes days of daily_usage from usage_by_day, with the
// rows to price from the rate card apart (priceUsage prices them): one
// query for all of them, grouped by day.
func usageDaySQL(days []rawevents.Date) (string, []any) {
	cond, args := dayIn(days)
	return `SELECT day, customer_source, customer_external_id, feature, currency, toString(price) AS to_price, sum(quantity) AS quantity, sum(cost) AS cost, count() AS events
FROM usage_by_day FINAL
WHERE ` + cond + ` AND ` + CountedSQL(event.TypeUsage) + `
GROUP BY day, customer_source, customer_external_id, feature, currency, to_price`, args
}

// recostDaysSQL lists the days within spans that hold rows priced from the
// rate card. Without FINAL: a superseded row may add a day, and recomputing
// a day more than needed is harmless.
func recostDaysSQL(spans []span) (string, []any) {
	conds := make([]string, len(spans))
	var args []any
	for i, s := range spans {
		if s.to.IsZero() {
			conds[i] = "day >= toDate(?)"
			args = append(args, s.from.Format(time.DateOnly))
			continue
		}
		conds[i] = "(day >= toDate(?) AND day < toDate(?))"
		args = append(args, s.from.Format(time.DateOnly), s.to.Format(time.DateOnly))
	}
	return `SELECT DISTINCT day
FROM usage_by_day
WHERE price = 1 AND (` + strings.Join(conds, " OR ") + `)
ORDER BY day`, args
}

// revenueDaySQL recomputes days of daily_revenue from revenue_by_day, cash
// basis, over the kinds that move money.
func revenueDaySQL(days []rawevents.Date) (string, []any) {
	cond, args := dayIn(days)
	return `SELECT day, customer_source, customer_external_id, currency, sum(amount) AS cash, sumIf(amount, kind IN (` + quoteAll(refundKinds) + `)) AS refunds, count() AS events
FROM revenue_by_day FINAL
WHERE ` + cond + ` AND ` + CountedSQL(event.TypeRevenue) + ` AND kind IN (` + quoteAll(rawevents.RevenueKinds()) + `)
GROUP BY day, customer_source, customer_external_id, currency`, args
}

// storedUsageSQL reads the stored aggregate of days, zero rows included
// (their keys need no new zero row, and their computed_at bounds the next).
func storedUsageSQL(days []rawevents.Date) (string, []any) {
	cond, args := dayIn(days)
	return `SELECT day, customer_source, customer_external_id, feature, currency, quantity, cost, priced_cost, unpriced_quantity, events, computed_at
FROM daily_usage FINAL
WHERE ` + cond, args
}

func storedRevenueSQL(days []rawevents.Date) (string, []any) {
	cond, args := dayIn(days)
	return `SELECT day, customer_source, customer_external_id, currency, cash, refunds, events, computed_at
FROM daily_revenue FINAL
WHERE ` + cond, args
}

// quoteAll writes constant strings (never user input) as SQL literals.
func quoteAll(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = "'" + s + "'"
	}
	return strings.Join(q, ", ")
}

// identitiesOf returns the distinct identities of batch, sorted.
func identitiesOf(batch []*rawevents.Row) []identity {
	ids := make([]identity, 0, len(batch))
	for _, r := range batch {
		ids = append(ids, identity{r.Event.Source, r.Event.ID})
	}
	slices.SortFunc(ids, func(a, b identity) int {
		return cmp.Or(cmp.Compare(a.source, b.source), cmp.Compare(a.id, b.id))
	})
	return slices.Compact(ids)
}

package aggregates

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/shopspring/decimal"

	"github.com/uvrhq/uvr/projections/chstore"
	"github.com/uvrhq/uvr/projections/pricing"
	"github.com/uvrhq/uvr/projections/rawevents"
)

// priceUsage turns a day's fresh usage rows, keyed by customer, feature,
// event currency and the price flag (usageDaySQL), into daily_usage rows:
// the quantity of flagged rows is priced with the card's price of that day
// (pricing is linear, so pricing the day's sum is exact), in the card's
// currency; a flagged quantity no card prices counts as unpriced_quantity
// at zero cost. Reported costs are kept as they are.
func priceUsage(card *pricing.RateCard, day rawevents.Date, fresh map[string]aggRow) map[string]aggRow {
	out := make(map[string]aggRow, len(fresh))
	at := day.Midnight()
	for _, r := range fresh {
		customerSource, customerID, feature, currency, price := r.key[0], r.key[1], r.key[2], r.key[3], r.key[4]
		quantity, cost := r.sums[0], r.sums[1]
		priced, unpriced := decimal.Zero, decimal.Zero
		if price == "1" {
			if line, err := card.Cost(feature, quantity, at); err == nil {
				priced, currency = line.Amount, line.Currency
			} else {
				unpriced = quantity
			}
		}
		row := aggRow{
			key:    []string{customerSource, customerID, feature, currency},
			sums:   []decimal.Decimal{quantity, cost.Add(priced), priced, unpriced},
			events: r.events,
		}
		if prev, ok := out[row.id()]; ok {
			for i := range row.sums {
				row.sums[i] = row.sums[i].Add(prev.sums[i])
			}
			row.events += prev.events
		}
		out[row.id()] = row
	}
	return out
}

// Recoster marks the days a rate card change re-costs dirty, so the
// aggregators recompute them with the new card. It implements
// pricing.Recoster and is safe for concurrent use.
type Recoster struct {
	conn driver.Conn
	now  func() time.Time
}

var _ pricing.Recoster = (*Recoster)(nil)

// NewRecoster returns a Recoster on the migrated database of conn; now
// (default time.Now) stamps the marks.
func NewRecoster(conn driver.Conn, now func() time.Time) (*Recoster, error) {
	if conn == nil {
		return nil, errors.New("recoster: conn is required")
	}
	return &Recoster{conn: conn, now: orNow(now)}, nil
}

// MarkRecost marks dirty (kind usage) the days within ranges that hold usage
// priced from the rate card, and returns how many it marked. The caller
// must have made the new card visible to every Pricer first.
func (r *Recoster) MarkRecost(ctx context.Context, ranges []pricing.DateRange) (int, error) {
	spans := mergeRanges(ranges)
	if len(spans) == 0 {
		return 0, nil
	}
	sql, args := recostDaysSQL(spans)
	var days []rawevents.Date
	err := chstore.QueryRows(ctx, r.conn, sql, args, func(scan func(...any) error) error {
		var d time.Time
		if err := scan(&d); err != nil {
			return err
		}
		days = append(days, rawevents.DateOf(d))
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("find the days to re-cost: %w", err)
	}
	if len(days) == 0 {
		return 0, nil
	}
	ns := uint64(r.now().UnixNano())
	marks := make([]dirtyMark, len(days))
	for i, d := range days {
		marks[i] = dirtyMark{kind: KindUsage, day: d, changedNS: ns}
	}
	if err := insertMarks(ctx, r.conn, marks); err != nil {
		return 0, err
	}
	return len(marks), nil
}

// span is a run of days [from, to); to is zero when open-ended.
type span struct{ from, to time.Time }

// mergeRanges unions the ranges' days, whatever their keys: the days are
// what gets recomputed, and a day holding any priced usage is recomputed
// whole.
func mergeRanges(ranges []pricing.DateRange) []span {
	spans := make([]span, 0, len(ranges))
	for _, r := range ranges {
		spans = append(spans, span{r.From, r.To})
	}
	slices.SortFunc(spans, func(a, b span) int { return cmp.Compare(a.from.Unix(), b.from.Unix()) })
	var out []span
	for _, s := range spans {
		if n := len(out); n > 0 && (out[n-1].to.IsZero() || !s.from.After(out[n-1].to)) {
			last := &out[n-1]
			if !last.to.IsZero() && (s.to.IsZero() || s.to.After(last.to)) {
				last.to = s.to
			}
			continue
		}
		out = append(out, s)
	}
	return out
}

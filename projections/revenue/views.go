package revenue

import (
	"fmt"

	"github.com/uvrhq/uvr/pipeline/event"
)

// The two views of revenue. Cash counts money on the day it moved; accrual
// counts it over the days the customer was served. Margin uses accrual by
// default (the API takes basis=cash|accrual).

// CashDay returns the revenue of ev in the cash view: its whole amount on
// the UTC day of its time (the day the money moved). ok is false for an
// event that carries no amount (not a revenue event, or a lifecycle event
// such as subscription_started without one).
func CashDay(ev event.Event) (d DayAmount, ok bool) {
	if ev.Type != event.TypeRevenue || ev.Data.Amount == nil {
		return DayAmount{}, false
	}
	return DayAmount{Day: Day(ev.Time), Amount: *ev.Data.Amount}, true
}

// AccrualDays returns the revenue of ev in the accrual view: its amount
// spread evenly per UTC day over its service period [period_start,
// period_end) (see Spread), or, for an event without a period (a one-off
// charge, most refunds and credit notes), all of it on the day of its time.
// It returns nothing for an event without an amount.
func AccrualDays(ev event.Event) ([]DayAmount, error) {
	cash, ok := CashDay(ev)
	if !ok {
		return nil, nil
	}
	if ev.Data.PeriodStart == nil || ev.Data.PeriodEnd == nil {
		return []DayAmount{cash}, nil
	}
	days, err := Spread(cash.Amount, *ev.Data.PeriodStart, *ev.Data.PeriodEnd)
	if err != nil {
		return nil, fmt.Errorf("accrue %s/%s: %w", ev.Source, ev.ID, err)
	}
	return days, nil
}

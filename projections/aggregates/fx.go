package aggregates

import (
	"context"
	"fmt"

	"github.com/shopspring/decimal"

	"github.com/uvrhq/uvr/projections/pricing"
	"github.com/uvrhq/uvr/projections/rawevents"
)

// converter converts the money of query rows into one currency at query
// time, so that a rate correction applies to all history without
// re-projection. The rule (docs/analytics/revenue.md): each row (one day ×
// customer × feature or plan × currency sum) is converted with that day's
// rate (pricing.FX: the latest quote on or before the day, inverse and cross
// rates through the reporting currency kept exact) and rounded once, half
// to even, to 9 decimal places; the converted rows are then summed exactly.
// An amount in a currency with no rate on or before its day is an error
// naming the currency and the day (wrapping pricing.ErrNoRate and
// rawevents.ErrInvalidQuery): money is never dropped silently.
type converter struct {
	fx *pricing.FX // nil: no table
	to string
}

func (a *Analytics) converter(ctx context.Context, to string) (converter, error) {
	fx, err := a.settings.FX(ctx)
	if err != nil {
		return converter{}, fmt.Errorf("FX table: %w", err)
	}
	return converter{fx: fx, to: to}, nil
}

func (c converter) convert(amount decimal.Decimal, from string, day rawevents.Date) (decimal.Decimal, error) {
	if from == c.to || amount.IsZero() {
		return amount, nil
	}
	if c.fx == nil {
		return decimal.Decimal{}, fmt.Errorf("%w: amounts in %s on %s cannot be converted to %s: no FX table is loaded: %w",
			rawevents.ErrInvalidQuery, from, day, c.to, pricing.ErrNoRate)
	}
	out, err := c.fx.Convert(amount, from, c.to, day.Midnight())
	if err != nil {
		return decimal.Decimal{}, fmt.Errorf("%w: amounts in %s on %s: %w", rawevents.ErrInvalidQuery, from, day, err)
	}
	return out, nil
}

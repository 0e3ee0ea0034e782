package aggregates

import (
	"context"
	"fmt"
	"time"

	"github.com/shopspring/decimal"

	"github.com/uvrhq/uvr/pipeline/event"
	"github.com/uvrhq/uvr/projections/chstore"
	"github.com/uvrhq/uvr/projections/customers"
	"github.com/uvrhq/uvr/projections/pricing"
	"github.com/uvrhq/uvr/projections/rawevents"
	"github.com/uvrhq/uvr/projections/revenue"
)

// MRR is the monthly recurring revenue of the months of a range
// (revenue.Movements' definitions): per month the total at its end and the
// new, expansion, contraction, churn and reactivation movements, and each
// canonical customer's MRR at each month end.
type MRR struct {
	Months    []revenue.MonthMovements
	Customers []revenue.CustomerMonth
}

// MRR computes the MRR of the months r touches (of one canonical customer
// when customerID is not empty) in r.Currency, from the current, unvoided
// recurring lines (invoice_paid, charge and credit_note events with a service
// period, revenue.LineState) whose period starts before the end of r's last
// month: the history before r counts, so that a customer coming back is a
// reactivation, not new. Each line is converted at the rate of its period's
// first day. Customers are grouped canonically through the snapshot, as the
// other queries are. Errors: rawevents.ErrInvalidQuery for a bad r or a
// missing FX rate, otherwise a ClickHouse error.
func (a *Analytics) MRR(ctx context.Context, r Range, customerID string) (MRR, error) {
	if err := r.validate(); err != nil {
		return MRR{}, err
	}
	snap, err := a.snapshot(ctx)
	if err != nil {
		return MRR{}, fmt.Errorf("customer snapshot: %w", err)
	}
	fx, err := a.settings.FX(ctx)
	if err != nil {
		return MRR{}, fmt.Errorf("FX table: %w", err)
	}
	var conv revenue.Converter
	if fx != nil {
		conv = fx
	}
	from, to := revenue.MonthOf(r.Start.Midnight()), revenue.MonthOf(r.End.Midnight())
	var states []revenue.State
	sql, args := mrrLinesSQL(to.Next().Start())
	if err := chstore.QueryRows(ctx, a.conn, sql, args, func(scan func(...any) error) error {
		var (
			ev         event.Event
			amount     decimal.Decimal
			start, end *time.Time
		)
		d := &ev.Data
		if err := scan(&ev.Source, &ev.ID, &d.Customer.Source, &d.Customer.ExternalID, &d.Kind, &d.Currency, &amount, &start, &end); err != nil {
			return err
		}
		ev.Type = event.TypeRevenue
		d.Amount, d.PeriodStart, d.PeriodEnd = &amount, start, end
		s, ok, err := revenue.LineState(ev, r.Currency, conv)
		if err != nil {
			return fmt.Errorf("%w: %w", rawevents.ErrInvalidQuery, err)
		}
		if !ok {
			return nil
		}
		ref := customers.Ref{Source: d.Customer.Source, ExternalID: d.Customer.ExternalID}
		s.Customer = snap[ref]
		if s.Customer == "" {
			s.Customer = customers.SelfID(ref)
		}
		if customerID != "" && s.Customer != customerID {
			return nil
		}
		states = append(states, s)
		return nil
	}); err != nil {
		return MRR{}, fmt.Errorf("MRR lines from %s: %w", TableRevenueByDay, err)
	}
	return MRR{Months: revenue.Movements(states, from, to), Customers: revenue.CustomerMRR(states, from, to)}, nil
}

// mrrLinesSQL reads the current, unvoided recurring lines whose period
// starts before before.
func mrrLinesSQL(before time.Time) (string, []any) {
	return `SELECT source, id, customer_source, customer_external_id, kind, currency, amount, period_start, period_end
FROM revenue_by_day FINAL
WHERE ` + CountedSQL(event.TypeRevenue) + ` AND isNotNull(period_start) AND period_start < toDateTime(?) AND kind IN ('` + event.KindInvoicePaid + `', '` + event.KindCharge + `', '` + event.KindCreditNote + `')
ORDER BY source, id`, []any{before.UTC().Format(time.DateTime)}
}

var _ revenue.Converter = (*pricing.FX)(nil)

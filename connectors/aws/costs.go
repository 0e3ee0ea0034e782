package aws

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/costexplorer"
	cetypes "github.com/aws/aws-sdk-go-v2/service/costexplorer/types"
	"github.com/shopspring/decimal"

	"github.com/uvrhq/uvr/connectors/source"
	"github.com/uvrhq/uvr/pipeline/event"
)

const usageQuantity = "UsageQuantity"

// readCosts asks Cost Explorer for daily cost from the cursor's day through
// today, grouped by service and by the customer tag, page by page.
func (s *Source) readCosts(ctx context.Context, c *cursor, out source.Emitter) error {
	from := c.Costs
	if from == "" {
		from = s.start().Format(time.DateOnly)
	}
	to := s.cfg.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, 1).Format(time.DateOnly)
	if from >= to {
		return nil
	}
	groupBy := []cetypes.GroupDefinition{{Type: cetypes.GroupDefinitionTypeDimension, Key: sdkaws.String("SERVICE")}}
	if s.cfg.CostTag != "" {
		groupBy = append(groupBy, cetypes.GroupDefinition{Type: cetypes.GroupDefinitionTypeTag, Key: sdkaws.String(s.cfg.CostTag)})
	}
	in := &costexplorer.GetCostAndUsageInput{
		TimePeriod:  &cetypes.DateInterval{Start: sdkaws.String(from), End: sdkaws.String(to)},
		Granularity: cetypes.GranularityDaily,
		Metrics:     []string{s.cfg.CostMetric, usageQuantity},
		GroupBy:     groupBy,
	}
	frontier, partialSeen := from, false
	for n := 1; ; n++ {
		resp, err := s.ce.GetCostAndUsage(ctx, in)
		if err != nil {
			return fmt.Errorf("cost explorer page %d: %w", n, s.wrap("GetCostAndUsage", err))
		}
		var batch []event.Event
		for _, r := range resp.ResultsByTime {
			evs, complete, err := s.mapCostPeriod(r)
			if err != nil {
				out.Skip(fmt.Sprintf("aws cost explorer page %d period %s", n, periodName(r)), err)
				partialSeen = true // a skipped period is re-read next time
				continue
			}
			for i, ev := range evs {
				if err := ev.Validate(); err != nil {
					out.Skip(fmt.Sprintf("aws cost explorer %s", ev.ID), err)
					evs[i].ID = "" // dropped below
				}
			}
			for _, ev := range evs {
				if ev.ID != "" {
					batch = append(batch, ev)
				}
			}
			if !complete {
				partialSeen = true
			} else if !partialSeen && *r.TimePeriod.End > frontier {
				frontier = *r.TimePeriod.End
			}
		}
		c.Costs = frontier
		if err := out.Emit(ctx, batch, c.marshal()); err != nil {
			return fmt.Errorf("cost explorer page %d: emit: %w", n, err)
		}
		s.log.Debug("cost page read", "page", n, "events", len(batch), "cursor", frontier)
		if resp.NextPageToken == nil || *resp.NextPageToken == "" {
			return nil
		}
		if in.NextPageToken != nil && *in.NextPageToken == *resp.NextPageToken {
			return fmt.Errorf("cost explorer page %d: the next page token repeats", n)
		}
		in.NextPageToken = resp.NextPageToken
	}
}

func periodName(r cetypes.ResultByTime) string {
	if r.TimePeriod == nil || r.TimePeriod.Start == nil {
		return "(no time period)"
	}
	return *r.TimePeriod.Start
}

// mapCostPeriod maps one period's groups: one event per service × tag value,
// carrying the cost metric as cost and UsageQuantity as quantity. complete
// is false while the period is estimated or within CostSettle.
func (s *Source) mapCostPeriod(r cetypes.ResultByTime) ([]event.Event, bool, error) {
	if r.TimePeriod == nil || r.TimePeriod.Start == nil || r.TimePeriod.End == nil {
		return nil, false, errors.New("time period is missing")
	}
	start, err := time.Parse(time.DateOnly, *r.TimePeriod.Start)
	if err != nil {
		return nil, false, fmt.Errorf("time period start: %w", err)
	}
	end, err := time.Parse(time.DateOnly, *r.TimePeriod.End)
	if err != nil {
		return nil, false, fmt.Errorf("time period end: %w", err)
	}
	final := end.Add(s.cfg.CostSettle)
	complete := !r.Estimated && !s.cfg.Now().Before(final)
	version := uint32(final.Unix())
	if !complete {
		version = uint32(s.cfg.Now().Unix())
	}
	var evs []event.Event
	for gi, g := range r.Groups {
		if len(g.Keys) == 0 {
			return nil, false, fmt.Errorf("group %d has no keys", gi)
		}
		svc := g.Keys[0]
		customer, tagValue := source.UnmappedCustomer, ""
		if len(g.Keys) > 1 {
			// Tag keys come back as "<tag key>$<value>"; "<tag key>$" is
			// untagged spend.
			_, tagValue, _ = strings.Cut(g.Keys[1], "$")
			if tagValue != "" {
				customer = tagValue
			}
		}
		m, ok := g.Metrics[s.cfg.CostMetric]
		if !ok || m.Amount == nil {
			return nil, false, fmt.Errorf("group %q: metric %s is missing", strings.Join(g.Keys, "/"), s.cfg.CostMetric)
		}
		cost, err := amount(m)
		if err != nil {
			return nil, false, fmt.Errorf("group %q: %s: %w", strings.Join(g.Keys, "/"), s.cfg.CostMetric, err)
		}
		currency := "USD"
		if m.Unit != nil && *m.Unit != "" {
			currency = *m.Unit
		}
		qty, unit := decimal.Zero, ""
		if u, ok := g.Metrics[usageQuantity]; ok && u.Amount != nil {
			if qty, err = amount(u); err != nil {
				return nil, false, fmt.Errorf("group %q: %s: %w", strings.Join(g.Keys, "/"), usageQuantity, err)
			}
			if u.Unit != nil && *u.Unit != "N/A" {
				unit = *u.Unit
			}
		}
		if qty.IsNegative() {
			// Credits and refunds show as negative usage: the money is in
			// cost; a quantity is never negative.
			qty = decimal.Zero
		}
		attrs := map[string]string{"service": svc, "metric": s.cfg.CostMetric}
		if s.cfg.CostTag != "" {
			attrs["tag"] = s.cfg.CostTag
		}
		if r.Estimated {
			attrs["estimated"] = "true"
		}
		we := end
		evs = append(evs, event.Event{
			SpecVersion: event.SpecVersion,
			ID:          fmt.Sprintf("ce/%s/%s/%s/%s=%s", s.cfg.CostMetric, *r.TimePeriod.Start, svc, s.cfg.CostTag, tagValue),
			Source:      Service,
			Type:        event.TypeUsage,
			Time:        start,
			Data: event.Data{
				Customer:   event.Customer{Source: Service, ExternalID: customer},
				Version:    version,
				Feature:    "aws." + svc,
				Quantity:   &qty,
				Unit:       unit,
				Cost:       &cost,
				Currency:   currency,
				WindowEnd:  &we,
				Attributes: attrs,
			},
		})
	}
	return evs, complete, nil
}

// amount parses Cost Explorer's decimal string exactly. Cost Explorer gives
// up to 10 decimals ("40.3527508453"), one more than uvr keeps: those are
// rounded half to even to 9.
func amount(m cetypes.MetricValue) (decimal.Decimal, error) {
	d, err := decimal.NewFromString(*m.Amount)
	if err != nil {
		return d, fmt.Errorf("amount %q is not a decimal", *m.Amount)
	}
	return d.RoundBank(event.MaxScale), nil
}

package datadog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"github.com/uvrhq/uvr/connectors/source"
	"github.com/uvrhq/uvr/pipeline/event"
)

// number parses a JSON number's text exactly; Datadog sends floats such as
// 3621671.999987, and a value beyond 9 decimals is rounded half to even.
func number(n json.Number) (decimal.Decimal, error) {
	d, err := decimal.NewFromString(n.String())
	if err != nil {
		return d, fmt.Errorf("%q is not a number", n)
	}
	return d.RoundBank(event.MaxScale), nil
}

func parseHour(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return t, fmt.Errorf("time %q is not RFC 3339", s)
	}
	return t.UTC(), nil
}

// --- hourly usage by product family (v2) ---

type hourlyPage struct {
	Data []json.RawMessage `json:"data"`
	Meta struct {
		Pagination struct {
			NextRecordID *string `json:"next_record_id"`
		} `json:"pagination"`
	} `json:"meta"`
}

type hourlyRow struct {
	ID         string `json:"id"`
	Attributes struct {
		OrgName       string `json:"org_name"`
		PublicID      string `json:"public_id"`
		Timestamp     string `json:"timestamp"`
		Region        string `json:"region"`
		ProductFamily string `json:"product_family"`
		Measurements  []struct {
			UsageType string       `json:"usage_type"`
			Value     *json.Number `json:"value"`
		} `json:"measurements"`
	} `json:"attributes"`
}

func (s *Source) readHourlyUsage(ctx context.Context, c cursor, out source.Emitter) error {
	from, to, next, err := s.window(c, StreamHourlyUsage)
	if err != nil {
		return err
	}
	q := url.Values{
		"filter[timestamp][start]": {from.Format(time.RFC3339)},
		"filter[timestamp][end]":   {to.Format(time.RFC3339)},
		"filter[product_families]": {strings.Join(s.cfg.ProductFamilies, ",")},
	}
	for n := 1; ; n++ {
		var pg hourlyPage
		if err := s.http.GetJSON(ctx, "/api/v2/usage/hourly_usage", q, &pg); err != nil {
			return fmt.Errorf("hourly usage page %d: %w", n, err)
		}
		var evs []event.Event
		for i, raw := range pg.Data {
			got, err := s.hourlyEvents(raw)
			if err != nil {
				out.Skip(fmt.Sprintf("datadog hourly usage page %d item %d", n, i), err)
				continue
			}
			evs = append(evs, got...)
		}
		more := pg.Meta.Pagination.NextRecordID != nil && *pg.Meta.Pagination.NextRecordID != ""
		nc := copyCursor(c)
		if !more {
			nc[StreamHourlyUsage] = next.Format(time.RFC3339)
		}
		if err := s.emit(ctx, out, evs, nc); err != nil {
			return fmt.Errorf("hourly usage page %d: emit: %w", n, err)
		}
		if !more {
			c[StreamHourlyUsage] = nc[StreamHourlyUsage]
			return nil
		}
		if q.Get("page[next_record_id]") == *pg.Meta.Pagination.NextRecordID {
			return fmt.Errorf("hourly usage page %d: next_record_id repeats", n)
		}
		q.Set("page[next_record_id]", *pg.Meta.Pagination.NextRecordID)
	}
}

// hourlyEvents: one event per measurement with a value (zeros included, so
// a revised-down hour replaces an earlier read).
func (s *Source) hourlyEvents(raw json.RawMessage) ([]event.Event, error) {
	var row hourlyRow
	if err := json.Unmarshal(raw, &row); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	a := row.Attributes
	if a.PublicID == "" || a.ProductFamily == "" {
		return nil, errors.New("public_id and product_family are required")
	}
	ts, err := parseHour(a.Timestamp)
	if err != nil {
		return nil, err
	}
	end := ts.Add(time.Hour)
	version := s.version(end)
	var evs []event.Event
	for _, m := range a.Measurements {
		if m.Value == nil || m.UsageType == "" {
			continue
		}
		qty, err := number(*m.Value)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", m.UsageType, err)
		}
		evs = append(evs, event.Event{
			SpecVersion: event.SpecVersion,
			ID:          fmt.Sprintf("hourly/%s/%s/%s/%s", a.ProductFamily, m.UsageType, ts.Format(time.RFC3339), a.PublicID),
			Source:      Service, Type: event.TypeUsage, Time: ts,
			Data: event.Data{
				Customer:   event.Customer{Source: Service, ExternalID: a.PublicID, Name: a.OrgName},
				Version:    version,
				Feature:    "datadog." + a.ProductFamily + "." + m.UsageType,
				Quantity:   &qty,
				WindowEnd:  &end,
				Attributes: map[string]string{"stream": StreamHourlyUsage, "region": a.Region, "org_name": a.OrgName},
			},
		})
	}
	return evs, nil
}

// --- hourly usage attribution (v1) ---

type attributionPage struct {
	Usage    []json.RawMessage `json:"usage"`
	Metadata struct {
		Pagination struct {
			NextRecordID *string `json:"next_record_id"`
		} `json:"pagination"`
	} `json:"metadata"`
}

type attributionRow struct {
	OrgName       string              `json:"org_name"`
	PublicID      string              `json:"public_id"`
	Hour          string              `json:"hour"`
	Tags          map[string][]string `json:"tags"`
	TotalUsageSum *json.Number        `json:"total_usage_sum"`
	UsageType     string              `json:"usage_type"`
}

func (s *Source) readAttribution(ctx context.Context, usageType string, c cursor, out source.Emitter) error {
	key := StreamAttribution + "/" + usageType
	from, to, next, err := s.window(c, key)
	if err != nil {
		return err
	}
	q := url.Values{"start_hr": {from.Format(time.RFC3339)}, "end_hr": {to.Format(time.RFC3339)}, "usage_type": {usageType}}
	if s.cfg.AttributionTag != "" {
		q.Set("tag_breakdown_keys", s.cfg.AttributionTag)
	}
	for n := 1; ; n++ {
		var pg attributionPage
		if err := s.http.GetJSON(ctx, "/api/v1/usage/hourly-attribution", q, &pg); err != nil {
			return fmt.Errorf("hourly attribution %s page %d: %w", usageType, n, err)
		}
		var evs []event.Event
		for i, raw := range pg.Usage {
			ev, err := s.attributionEvent(raw)
			if err != nil {
				out.Skip(fmt.Sprintf("datadog hourly attribution %s page %d item %d", usageType, n, i), err)
				continue
			}
			evs = append(evs, ev)
		}
		more := pg.Metadata.Pagination.NextRecordID != nil && *pg.Metadata.Pagination.NextRecordID != ""
		nc := copyCursor(c)
		if !more {
			nc[key] = next.Format(time.RFC3339)
		}
		if err := s.emit(ctx, out, evs, nc); err != nil {
			return fmt.Errorf("hourly attribution %s page %d: emit: %w", usageType, n, err)
		}
		if !more {
			c[key] = nc[key]
			return nil
		}
		if q.Get("next_record_id") == *pg.Metadata.Pagination.NextRecordID {
			return fmt.Errorf("hourly attribution %s page %d: next_record_id repeats", usageType, n)
		}
		q.Set("next_record_id", *pg.Metadata.Pagination.NextRecordID)
	}
}

// attributionEvent books an hour of one usage type to the customer named by
// the attribution tag (its values sorted and joined with ","); no tag ⇒
// unmapped.
func (s *Source) attributionEvent(raw json.RawMessage) (event.Event, error) {
	var row attributionRow
	if err := json.Unmarshal(raw, &row); err != nil {
		return event.Event{}, fmt.Errorf("decode: %w", err)
	}
	if row.UsageType == "" || row.PublicID == "" || row.TotalUsageSum == nil {
		return event.Event{}, errors.New("usage_type, public_id and total_usage_sum are required")
	}
	ts, err := parseHour(row.Hour)
	if err != nil {
		return event.Event{}, err
	}
	qty, err := number(*row.TotalUsageSum)
	if err != nil {
		return event.Event{}, fmt.Errorf("total_usage_sum: %w", err)
	}
	customer := source.UnmappedCustomer
	if vals := row.Tags[s.cfg.AttributionTag]; s.cfg.AttributionTag != "" && len(vals) > 0 {
		vals = append([]string(nil), vals...)
		sort.Strings(vals)
		customer = strings.Join(vals, ",")
	}
	tagKeys := make([]string, 0, len(row.Tags))
	for k, v := range row.Tags {
		v = append([]string(nil), v...)
		sort.Strings(v)
		tagKeys = append(tagKeys, k+"="+strings.Join(v, ","))
	}
	sort.Strings(tagKeys)
	end := ts.Add(time.Hour)
	return event.Event{
		SpecVersion: event.SpecVersion,
		ID:          fmt.Sprintf("attribution/%s/%s/%s/%s", row.UsageType, ts.Format(time.RFC3339), row.PublicID, strings.Join(tagKeys, ";")),
		Source:      Service, Type: event.TypeUsage, Time: ts,
		Data: event.Data{
			Customer:   event.Customer{Source: Service, ExternalID: customer},
			Version:    s.version(end),
			Feature:    "datadog." + row.UsageType,
			Quantity:   &qty,
			WindowEnd:  &end,
			Attributes: map[string]string{"stream": StreamAttribution, "org": row.PublicID, "tag": s.cfg.AttributionTag},
		},
	}, nil
}

// --- cost (v2) ---

type costPage struct {
	Data []json.RawMessage `json:"data"`
}

type costRow struct {
	Attributes struct {
		OrgName  string `json:"org_name"`
		PublicID string `json:"public_id"`
		Date     string `json:"date"`
		Charges  []struct {
			ChargeType  string       `json:"charge_type"`
			Cost        *json.Number `json:"cost"`
			ProductName string       `json:"product_name"`
		} `json:"charges"`
	} `json:"attributes"`
}

func monthOf(t time.Time) time.Time {
	return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
}

// readCosts reads the billed cost per month (cost_by_org) and the current
// estimate (estimated_cost_by_org) under the same event ids: an estimate
// carries a version one below the billed cost's, so the bill replaces it.
func (s *Source) readCosts(ctx context.Context, c cursor, out source.Emitter) error {
	now := s.cfg.Now().UTC()
	from := monthOf(now.AddDate(0, -1, 0))
	if !s.cfg.Start.IsZero() {
		from = monthOf(s.cfg.Start.UTC())
	}
	if v, ok := c[StreamCosts]; ok {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return fmt.Errorf("cursor %s: %w", StreamCosts, err)
		}
		from = t
	}
	next := monthOf(now.Add(-s.cfg.Settle))
	if next.Before(from) {
		next = from
	}
	// Estimates exist for the current and the previous month only.
	estFrom := monthOf(now.AddDate(0, -1, 0))
	if from.After(estFrom) {
		estFrom = from
	}
	var evs []event.Event
	for _, part := range []struct {
		name, path string
		start      time.Time
		estimated  bool
	}{
		{"cost_by_org", "/api/v2/usage/cost_by_org", from, false},
		{"estimated_cost_by_org", "/api/v2/usage/estimated_cost_by_org", estFrom, true},
	} {
		var pg costPage
		q := url.Values{"start_month": {part.start.Format(time.RFC3339)}}
		if err := s.http.GetJSON(ctx, part.path, q, &pg); err != nil {
			return fmt.Errorf("%s: %w", part.name, err)
		}
		for i, raw := range pg.Data {
			got, err := s.costEvents(raw, part.estimated)
			if err != nil {
				out.Skip(fmt.Sprintf("datadog %s item %d", part.name, i), err)
				continue
			}
			evs = append(evs, got...)
		}
	}
	nc := copyCursor(c)
	nc[StreamCosts] = next.Format(time.RFC3339)
	if err := s.emit(ctx, out, evs, nc); err != nil {
		return fmt.Errorf("costs: emit: %w", err)
	}
	c[StreamCosts] = nc[StreamCosts]
	return nil
}

// costEvents: one event per product × charge type of an org's month
// (charge type "total" is the sum of the others and is left out).
func (s *Source) costEvents(raw json.RawMessage, estimated bool) ([]event.Event, error) {
	var row costRow
	if err := json.Unmarshal(raw, &row); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	a := row.Attributes
	if a.PublicID == "" {
		return nil, errors.New("public_id is required")
	}
	date, err := parseHour(a.Date)
	if err != nil {
		return nil, err
	}
	month := monthOf(date)
	end := month.AddDate(0, 1, 0)
	version := s.version(end)
	kind := "billed"
	if estimated {
		version-- // below the billed cost read at the same moment
		kind = "estimated"
	}
	// A row can list the same product and charge type more than once (the
	// recorded cost_by_org has two infra_host committed charges): they are
	// summed, so one id carries all of that money.
	type key struct{ product, charge string }
	var order []key
	sums := map[key]decimal.Decimal{}
	for _, ch := range a.Charges {
		if ch.ChargeType == "total" || ch.Cost == nil {
			continue
		}
		cost, err := number(*ch.Cost)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", ch.ProductName, ch.ChargeType, err)
		}
		k := key{ch.ProductName, ch.ChargeType}
		if _, seen := sums[k]; !seen {
			order = append(order, k)
		}
		sums[k] = sums[k].Add(cost)
	}
	var evs []event.Event
	for _, k := range order {
		cost, zero := sums[k], decimal.Zero
		evs = append(evs, event.Event{
			SpecVersion: event.SpecVersion,
			ID:          fmt.Sprintf("cost/%s/%s/%s/%s", month.Format("2006-01"), a.PublicID, k.product, k.charge),
			Source:      Service, Type: event.TypeUsage, Time: month,
			Data: event.Data{
				Customer:   event.Customer{Source: Service, ExternalID: a.PublicID, Name: a.OrgName},
				Version:    version,
				Feature:    "datadog.cost." + k.product + "." + k.charge,
				Quantity:   &zero,
				Cost:       &cost,
				Currency:   "USD", // Datadog bills in US dollars
				WindowEnd:  &end,
				Attributes: map[string]string{"stream": StreamCosts, "cost": kind, "product": k.product, "charge_type": k.charge},
			},
		})
	}
	return evs, nil
}

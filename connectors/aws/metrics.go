package aws

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"time"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/shopspring/decimal"

	"github.com/uvrhq/uvr/connectors/source"
	"github.com/uvrhq/uvr/pipeline/event"
)

// readMetrics runs the configured queries from the cursor's period through
// the current one, ascending, page by page. The cursor moves to the first
// period not yet final across all queries, once every page is read.
func (s *Source) readMetrics(ctx context.Context, c *cursor, out source.Emitter) error {
	period := s.cfg.MetricPeriod
	from := time.Unix(c.Metrics, 0).UTC()
	if c.Metrics == 0 {
		from = s.start().Truncate(period)
	}
	now := s.cfg.Now().UTC()
	to := now.Truncate(period).Add(period)
	queries := make([]cwtypes.MetricDataQuery, len(s.cfg.Metrics))
	byID := map[string]MetricQuery{}
	secs := int32(period / time.Second)
	for i, q := range s.cfg.Metrics {
		byID[q.ID] = q
		mq := cwtypes.MetricDataQuery{Id: sdkaws.String(q.ID), ReturnData: sdkaws.Bool(!q.Hidden)}
		if q.Expression != "" {
			mq.Expression, mq.Period = sdkaws.String(q.Expression), sdkaws.Int32(secs)
		} else {
			stat := q.Stat
			if stat == "" {
				stat = "Sum"
			}
			m := &cwtypes.Metric{Namespace: sdkaws.String(q.Namespace), MetricName: sdkaws.String(q.MetricName)}
			for k, v := range q.Dimensions {
				m.Dimensions = append(m.Dimensions, cwtypes.Dimension{Name: sdkaws.String(k), Value: sdkaws.String(v)})
			}
			mq.MetricStat = &cwtypes.MetricStat{Metric: m, Period: sdkaws.Int32(secs), Stat: sdkaws.String(stat)}
		}
		queries[i] = mq
	}
	in := &cloudwatch.GetMetricDataInput{
		MetricDataQueries: queries, StartTime: &from, EndTime: &to, ScanBy: cwtypes.ScanByTimestampAscending,
	}
	// firstOpen is, per query, the earliest period that is not final.
	firstOpen := map[string]time.Time{}
	for n := 1; ; n++ {
		resp, err := s.cw.GetMetricData(ctx, in)
		if err != nil {
			return fmt.Errorf("cloudwatch page %d: %w", n, s.wrap("GetMetricData", err))
		}
		var batch []event.Event
		for _, r := range resp.MetricDataResults {
			id := sdkaws.ToString(r.Id)
			q, ok := byID[id]
			if !ok {
				out.Skip(fmt.Sprintf("aws cloudwatch page %d result %q", n, id), fmt.Errorf("no configured query has this id"))
				continue
			}
			if len(r.Timestamps) != len(r.Values) {
				out.Skip(fmt.Sprintf("aws cloudwatch %s page %d", id, n), fmt.Errorf("%d timestamps for %d values", len(r.Timestamps), len(r.Values)))
				markOpen(firstOpen, id, from)
				continue
			}
			for i, ts := range r.Timestamps {
				ev, final, err := s.metricEvent(q, ts.UTC(), r.Values[i], r.StatusCode)
				if err == nil {
					err = ev.Validate()
				}
				if err != nil {
					out.Skip(fmt.Sprintf("aws cloudwatch %s %s", id, ts.UTC().Format(time.RFC3339)), err)
					continue
				}
				if !final {
					markOpen(firstOpen, id, ts.UTC())
				}
				batch = append(batch, ev)
			}
		}
		last := resp.NextToken == nil || *resp.NextToken == ""
		next := *c
		if last {
			// Every period before the current one is final once settled.
			frontier := now.Add(-s.cfg.MetricSettle).Truncate(period)
			for _, t := range firstOpen {
				if t.Before(frontier) {
					frontier = t
				}
			}
			if frontier.After(from) {
				next.Metrics = frontier.Unix()
			} else {
				next.Metrics = from.Unix()
			}
		}
		if err := out.Emit(ctx, batch, next.marshal()); err != nil {
			return fmt.Errorf("cloudwatch page %d: emit: %w", n, err)
		}
		*c = next
		if last {
			return nil
		}
		in.NextToken = resp.NextToken
	}
}

func markOpen(m map[string]time.Time, id string, t time.Time) {
	if cur, ok := m[id]; !ok || t.Before(cur) {
		m[id] = t
	}
}

// metricEvent is one datapoint as usage: the period starting at ts. final
// when the result is Complete and the period ended MetricSettle ago.
func (s *Source) metricEvent(q MetricQuery, ts time.Time, v float64, status cwtypes.StatusCode) (event.Event, bool, error) {
	if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
		return event.Event{}, false, fmt.Errorf("value %v is not a usage quantity", v)
	}
	// CloudWatch stores doubles: the shortest text that round-trips is the
	// source's exact value; beyond 9 decimals it is rounded half to even.
	qty, err := decimal.NewFromString(strconv.FormatFloat(v, 'f', -1, 64))
	if err != nil {
		return event.Event{}, false, err
	}
	qty = qty.RoundBank(event.MaxScale)
	end := ts.Add(s.cfg.MetricPeriod)
	finalAt := end.Add(s.cfg.MetricSettle)
	final := status == cwtypes.StatusCodeComplete && !s.cfg.Now().Before(finalAt)
	version := uint32(finalAt.Unix())
	if !final {
		version = uint32(s.cfg.Now().Unix())
	}
	customer := q.Customer
	if customer == "" {
		customer = source.UnmappedCustomer
	}
	return event.Event{
		SpecVersion: event.SpecVersion,
		ID:          fmt.Sprintf("cw/%s/%d", q.ID, ts.Unix()),
		Source:      Service,
		Type:        event.TypeUsage,
		Time:        ts,
		Data: event.Data{
			Customer:   event.Customer{Source: Service, ExternalID: customer},
			Version:    version,
			Feature:    q.Feature,
			Quantity:   &qty,
			Unit:       q.Unit,
			WindowEnd:  &end,
			Attributes: map[string]string{"query": q.ID, "status": string(status)},
		},
	}, final, nil
}

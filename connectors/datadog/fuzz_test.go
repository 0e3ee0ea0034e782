package datadog

import (
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/uvrhq/uvr/connectors/source"
	"github.com/uvrhq/uvr/connectors/source/sourcetest"
	"github.com/uvrhq/uvr/pipeline/event"
)

// rowMapper is the source's row parsers as a source.Mapper, one stream per
// kind of row, keeping what emit keeps (valid events).
type rowMapper struct{ s *Source }

func (m rowMapper) Map(stream string, raw json.RawMessage) ([]event.Event, error) {
	var evs []event.Event
	var err error
	switch stream {
	case StreamHourlyUsage:
		evs, err = m.s.hourlyEvents(raw)
	case StreamAttribution:
		var ev event.Event
		if ev, err = m.s.attributionEvent(raw); err == nil {
			evs = []event.Event{ev}
		}
	case StreamCosts:
		evs, err = m.s.costEvents(raw, false)
	default:
		evs, err = m.s.costEvents(raw, true)
	}
	if err != nil {
		return nil, err
	}
	return evs, source.ValidateEvents(stream, evs)
}

// FuzzRows: one row of an hourly usage, usage attribution or cost answer,
// seeded with the rows of Datadog's recorded answers.
func FuzzRows(f *testing.F) {
	for stream, name := range map[string]string{
		StreamHourlyUsage: "v2_Get_hourly_usage_by_product_family_returns_OK_response.yaml",
		StreamAttribution: "v1_Get_hourly_usage_attribution_returns_OK_response.yaml",
		StreamCosts:       "v2_Get_cost_across_multi-org_account_returns_OK_response.yaml",
		"estimated":       "v2_Get_estimated_cost_across_multi-org_account_with_date_returns_OK_response.yaml",
	} {
		b, err := os.ReadFile(sourcetest.Samples(f, "datadog-usage", name))
		require.NoError(f, err)
		var c struct {
			Interactions []struct {
				Response struct {
					Body string `yaml:"body"`
				} `yaml:"response"`
			} `yaml:"interactions"`
		}
		require.NoError(f, yaml.Unmarshal(b, &c), name)
		for _, in := range c.Interactions {
			var page struct{ Data, Usage []json.RawMessage }
			require.NoError(f, json.Unmarshal([]byte(in.Response.Body), &page), name)
			for _, row := range append(page.Data, page.Usage...) {
				f.Add(stream, []byte(row))
			}
		}
	}
	sourcetest.AddRecords(f, []string{StreamHourlyUsage, StreamAttribution, StreamCosts}, sourcetest.EdgeRecords...)
	s, err := New(Config{APIKey: "k", AppKey: "a", AttributionTag: "customer",
		Now: func() time.Time { return time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC) }})
	require.NoError(f, err)
	f.Fuzz(func(t *testing.T, stream string, record []byte) {
		sourcetest.RequireMapperContract(t, rowMapper{s}, stream, record)
	})
}

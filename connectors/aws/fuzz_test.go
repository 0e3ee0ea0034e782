package aws

import (
	"encoding/json"
	"os"
	"testing"
	"time"

	cetypes "github.com/aws/aws-sdk-go-v2/service/costexplorer/types"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/connectors/source/sourcetest"
	"github.com/uvrhq/uvr/pipeline/event"
)

// periodMapper is the Cost Explorer mapping as a source.Mapper: the events
// readCosts emits for one ResultsByTime entry (it drops invalid ones by id).
type periodMapper struct{ s *Source }

func (m periodMapper) Map(_ string, raw json.RawMessage) ([]event.Event, error) {
	var r cetypes.ResultByTime
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, err
	}
	evs, _, err := m.s.mapCostPeriod(r)
	if err != nil {
		return nil, err
	}
	var valid []event.Event
	for _, ev := range evs {
		if ev.Validate() == nil {
			valid = append(valid, ev)
		}
	}
	return valid, nil
}

// FuzzCostPeriod: one period of a GetCostAndUsage answer, seeded with the
// periods of the AWS CLI's recorded example output.
func FuzzCostPeriod(f *testing.F) {
	b, err := os.ReadFile(sourcetest.Samples(f, "aws", "ce_get-cost-and-usage.output1.json"))
	require.NoError(f, err)
	var out struct{ ResultsByTime []json.RawMessage }
	require.NoError(f, json.Unmarshal(b, &out))
	for _, r := range out.ResultsByTime {
		f.Add("costs", []byte(r))
	}
	sourcetest.AddRecords(f, []string{"costs"}, sourcetest.EdgeRecords...)
	sourcetest.AddRecords(f, []string{"costs"},
		`{"TimePeriod":{"Start":"2017-09-01","End":"2017-10-01"},"Groups":[{"Keys":["S3","Environment$x"],"Metrics":{"UnblendedCost":{"Amount":"1e-400","Unit":"USD"},"UsageQuantity":{"Amount":"-9e40","Unit":"N/A"}}}]}`,
		`{"TimePeriod":{"Start":"0001-01-01","End":"9999-12-31"},"Groups":[{"Keys":[],"Metrics":{}}]}`)
	s, err := New(Config{AccessKeyID: "k", SecretAccessKey: "s", Region: "us-east-1", CostTag: "Environment",
		Now: func() time.Time { return time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC) }})
	require.NoError(f, err)
	f.Fuzz(func(t *testing.T, stream string, record []byte) {
		sourcetest.RequireMapperContract(t, periodMapper{s}, stream, record)
	})
}

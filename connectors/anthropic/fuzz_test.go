package anthropic

import (
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/connectors/source/sourcetest"
	"github.com/uvrhq/uvr/pipeline/event"
)

// bucketMapper is the source's bucket mapping as a source.Mapper: the events
// it emits for one bucket of a usage or cost report (rows it cannot map are
// skipped by name, as Read does).
type bucketMapper struct{ s *Source }

func (m bucketMapper) Map(stream string, raw json.RawMessage) ([]event.Event, error) {
	var b bucket
	if err := json.Unmarshal(raw, &b); err != nil {
		return nil, err
	}
	_, version := m.s.version(b.EndingAt)
	evs, _ := m.s.mapBucket(stream, b, version)
	return evs, nil
}

// FuzzBucket: one bucket of a usage or cost report, seeded with the
// buckets of the recorded answers in testdata.
func FuzzBucket(f *testing.F) {
	for stream, name := range map[string]string{StreamUsage: "usage_report_messages.json", StreamCosts: "cost_report.json"} {
		b, err := os.ReadFile("testdata/" + name)
		require.NoError(f, err)
		var pg struct{ Data []json.RawMessage }
		require.NoError(f, json.Unmarshal(b, &pg), name)
		for _, bucket := range pg.Data {
			f.Add(stream, []byte(bucket))
		}
	}
	sourcetest.AddRecords(f, []string{StreamUsage, StreamCosts}, sourcetest.EdgeRecords...)
	sourcetest.AddRecords(f, []string{StreamUsage, StreamCosts},
		`{"starting_at":"2025-08-01T00:00:00Z","ending_at":"2025-08-02T00:00:00Z","results":[{"amount":"1e-400","currency":"USD","output_tokens":1e400}]}`,
		`{"starting_at":"0001-01-01T00:00:00Z","ending_at":"9999-12-31T23:59:59Z","results":[{"cache_creation":{"a":{"b":-1}}}]}`)
	s, err := New(Config{APIKey: "k", Now: func() time.Time { return time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC) }})
	require.NoError(f, err)
	f.Fuzz(func(t *testing.T, stream string, record []byte) {
		sourcetest.RequireMapperContract(t, bucketMapper{s}, stream, record)
	})
}

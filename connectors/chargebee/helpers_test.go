package chargebee

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/connectors/source/sourcetest"
)

// sampleObject returns the sample record of stream with id, as a map the test
// can alter to make a variant of a real record.
func sampleObject(t *testing.T, stream, id string) map[string]any {
	t.Helper()
	for _, file := range []string{"expected_records.jsonl", "expected_records.69da92e6.jsonl"} {
		for _, r := range sourcetest.ReadRecords(t, sourcetest.Samples(t, "airbyte-chargebee", file)) {
			if r.Stream != stream {
				continue
			}
			var m map[string]any
			require.NoError(t, json.Unmarshal(r.Data, &m))
			if m["id"] == id {
				return m
			}
		}
	}
	t.Fatalf("no %s %s in the samples", stream, id)
	return nil
}

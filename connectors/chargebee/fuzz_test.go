package chargebee

import (
	"testing"

	"github.com/uvrhq/uvr/connectors/source/sourcetest"
)

// FuzzMapper feeds the Chargebee mapper any record under any stream, seeded
// with Airbyte's recorded source-chargebee records.
func FuzzMapper(f *testing.F) {
	sourcetest.AddRecordFile(f, sourcetest.Samples(f, "airbyte-chargebee", "expected_records.jsonl"))
	sourcetest.AddRecordFile(f, sourcetest.Samples(f, "airbyte-chargebee", "expected_records.69da92e6.jsonl"))
	sourcetest.AddRecords(f, []string{"invoice", "credit_note", "subscription", "customer"}, sourcetest.EdgeRecords...)
	f.Fuzz(func(t *testing.T, stream string, record []byte) {
		sourcetest.RequireMapperContract(t, Mapper{}, stream, record)
	})
}

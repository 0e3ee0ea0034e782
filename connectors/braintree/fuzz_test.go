package braintree

import (
	"testing"

	"github.com/uvrhq/uvr/connectors/source/sourcetest"
)

// FuzzMapper feeds the Braintree mapper any record under any stream, seeded
// with Airbyte's recorded source-braintree records.
func FuzzMapper(f *testing.F) {
	sourcetest.AddRecordFile(f, sourcetest.Samples(f, "airbyte-braintree", "expected_records.jsonl"))
	sourcetest.AddRecords(f, []string{"transactions", "payments", "customers"}, sourcetest.EdgeRecords...)
	f.Fuzz(func(t *testing.T, stream string, record []byte) {
		sourcetest.RequireMapperContract(t, Mapper{}, stream, record)
	})
}

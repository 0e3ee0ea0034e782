package paddle

import (
	"testing"

	"github.com/uvrhq/uvr/connectors/source/sourcetest"
)

// FuzzMapper feeds the Paddle mapper any record under any stream, seeded
// with the entities of the Paddle SDK's recorded fixtures.
func FuzzMapper(f *testing.F) {
	for _, r := range fixtureRecords(f) {
		f.Add(r.Stream, []byte(r.Data))
	}
	sourcetest.AddRecords(f, []string{"transactions", "adjustments", "customers", "subscriptions"}, sourcetest.EdgeRecords...)
	f.Fuzz(func(t *testing.T, stream string, record []byte) {
		sourcetest.RequireMapperContract(t, Mapper{}, stream, record)
	})
}

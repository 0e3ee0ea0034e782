package recurly

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/connectors/source/sourcetest"
)

// FuzzMapper feeds the Recurly mapper any record under any stream, seeded
// with the v3 objects of Fivetran's recorded Recurly rows.
func FuzzMapper(f *testing.F) {
	for stream, table := range map[string]struct {
		name string
		v3   func(map[string]string) map[string]any
	}{
		"transactions":  {"transaction_data", v3Transaction},
		"accounts":      {"account_history_data", v3Account},
		"subscriptions": {"subscription_history_data", v3Subscription},
	} {
		for _, r := range seedRows(f, table.name) {
			b, err := json.Marshal(table.v3(r))
			require.NoError(f, err)
			f.Add(stream, b)
		}
	}
	sourcetest.AddRecords(f, []string{"transactions", "accounts", "subscriptions"}, sourcetest.EdgeRecords...)
	f.Fuzz(func(t *testing.T, stream string, record []byte) {
		sourcetest.RequireMapperContract(t, Mapper{}, stream, record)
	})
}

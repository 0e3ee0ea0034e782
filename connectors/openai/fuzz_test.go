package openai_test

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/connectors/openai"
	"github.com/uvrhq/uvr/connectors/source/sourcetest"
)

// FuzzMapper feeds the OpenAI bucket mapper any bucket under any stream,
// seeded with every bucket of the OpenAPI document's usage and costs
// examples.
func FuzzMapper(f *testing.F) {
	files := map[string]string{"costs": "costs.example.json"}
	for endpoint, file := range samples {
		files[endpoint] = file
	}
	for stream, file := range files {
		b, err := os.ReadFile(sourcetest.Samples(f, "openai-usage", file))
		require.NoError(f, err)
		var pg struct {
			Data []json.RawMessage `json:"data"`
		}
		require.NoError(f, json.Unmarshal(b, &pg), file)
		for _, bucket := range pg.Data {
			f.Add(stream, []byte(bucket))
		}
	}
	sourcetest.AddRecords(f, []string{"costs", "completions"}, sourcetest.EdgeRecords...)
	sourcetest.AddRecords(f, []string{"costs", "completions"},
		`{"start_time":1730419200,"end_time":1730505600,"results":[{"amount":{"value":1e-400,"currency":"usd"}}]}`,
		`{"start_time":-9223372036854775808,"end_time":9223372036854775807,"results":[{"input_tokens":1e400}]}`)
	f.Fuzz(func(t *testing.T, stream string, record []byte) {
		sourcetest.RequireMapperContract(t, openai.Mapper{}, stream, record)
	})
}

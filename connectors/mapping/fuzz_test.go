package mapping_test

import (
	"encoding/json"
	"errors"
	"os"
	"testing"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/uvrhq/uvr/connectors/mapping"
	"github.com/uvrhq/uvr/connectors/source/sourcetest"
)

// FuzzParse: a mapping file (YAML, or JSON, which is YAML too) an operator
// or an API client hands in. A file rejected says why in a *LoadError; a
// file accepted names its streams.
func FuzzParse(f *testing.F) {
	b, err := os.ReadFile("examples/faker.yaml")
	require.NoError(f, err)
	f.Add(b)
	var doc any
	require.NoError(f, yaml.Unmarshal(b, &doc))
	j, err := json.Marshal(doc)
	require.NoError(f, err)
	f.Add(j) // the same mapping as a JSON file
	for _, e := range sourcetest.EdgeRecords {
		f.Add([]byte(e))
	}
	f.Add([]byte("version: 1\nstreams: &a\n  x: *a\n"))
	f.Add([]byte("a: &a [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"))
	f.Add([]byte("version: 1e400\nsource: !!binary aGVsbG8=\n"))
	f.Fuzz(func(t *testing.T, file []byte) {
		m, err := mapping.Parse(file)
		if err != nil {
			var le *mapping.LoadError
			require.True(t, errors.As(err, &le), "%T %v", err, err)
			require.NotEmpty(t, le.Problems)
			return
		}
		require.NotEmpty(t, m.Streams())
	})
}

// FuzzMap: records through the faker example mapping, seeded with
// source-faker's recorded output.
func FuzzMap(f *testing.F) {
	m, err := mapping.Load("examples/faker.yaml")
	require.NoError(f, err)
	sourcetest.AddRecordFile(f, "testdata/faker-records.jsonl")
	sourcetest.AddRecords(f, m.Streams(), sourcetest.EdgeRecords...)
	sourcetest.AddRecords(f, []string{"purchases"},
		`{"id":1,"product_id":1e400,"user_id":1,"created_at":"2024-04-08T18:07:20+00:00","purchased_at":"9999-12-31T23:59:59+00:00"}`,
		`{"id":1,"product_id":"1","user_id":1,"updated_at":"1e-400","purchased_at":"2024-04-08T18:07:20+00:00"}`)
	f.Fuzz(func(t *testing.T, stream string, record []byte) {
		sourcetest.RequireMapperContract(t, m, stream, record)
	})
}

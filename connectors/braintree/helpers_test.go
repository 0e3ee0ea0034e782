package braintree

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/connectors/source/sourcetest"
)

// sampleObject returns the sample record of stream with id, as a map the test
// can alter to make a variant of a real record.
func sampleObject(t *testing.T, stream, id string) map[string]any {
	t.Helper()
	for _, r := range sourcetest.ReadRecords(t, sourcetest.Samples(t, "airbyte-braintree", "expected_records.jsonl")) {
		if r.Stream != stream {
			continue
		}
		var m map[string]any
		require.NoError(t, json.Unmarshal(r.Data, &m))
		if m["id"] == id {
			return m
		}
	}
	t.Fatalf("no %s %s in the samples", stream, id)
	return nil
}

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }

func readFixture(name string) ([]byte, error) {
	_, file, _, _ := runtime.Caller(0)
	return os.ReadFile(filepath.Join(filepath.Dir(file), "testdata", name))
}

package stripe_test

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/uvrhq/uvr/connectors/source/sourcetest"
)

type record struct {
	Stream string          `json:"stream"`
	Data   json.RawMessage `json:"data"`
}

// airbyteRecords reads Airbyte's source-stripe expected records verbatim.
func airbyteRecords(t testing.TB) []record {
	t.Helper()
	f, err := os.Open(sourcetest.Samples(t, "airbyte-stripe", "expected_records.jsonl"))
	require.NoError(t, err)
	defer f.Close()
	var out []record
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 4<<20)
	for sc.Scan() {
		var r record
		require.NoError(t, json.Unmarshal(sc.Bytes(), &r))
		out = append(out, r)
	}
	require.NoError(t, sc.Err())
	require.Len(t, out, 75)
	return out
}

// sample is the record of stream with id.
func sample(t testing.TB, stream, id string) json.RawMessage {
	t.Helper()
	for _, r := range airbyteRecords(t) {
		var o struct{ ID string }
		_ = json.Unmarshal(r.Data, &o)
		if r.Stream == stream && o.ID == id {
			return r.Data
		}
	}
	t.Fatalf("no %s record %s in the samples", stream, id)
	return nil
}

// streamRecords is every sample record of stream, in file order.
func streamRecords(t testing.TB, stream string) []json.RawMessage {
	t.Helper()
	var out []json.RawMessage
	for _, r := range airbyteRecords(t) {
		if r.Stream == stream {
			out = append(out, r.Data)
		}
	}
	return out
}

// stripeMockResource is one resource of stripe-mock's fixtures3.json.
func stripeMockResource(t testing.TB, name string) json.RawMessage {
	t.Helper()
	b, err := os.ReadFile(sourcetest.Samples(t, "stripe-mock", "fixtures3.json"))
	require.NoError(t, err)
	var f struct {
		Resources map[string]json.RawMessage `json:"resources"`
	}
	require.NoError(t, json.Unmarshal(b, &f))
	r, ok := f.Resources[name]
	require.True(t, ok, "stripe-mock has no fixture %s", name)
	return r
}

func testdata(t testing.TB, name string) json.RawMessage {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(t, err)
	return b
}

// del marks a key to remove in with.
type delKey struct{}

var del = delKey{}

// with returns raw with top-level keys replaced (del removes one). Values
// only: the shape stays the recorded one.
func with(t testing.TB, raw json.RawMessage, edits map[string]any) json.RawMessage {
	t.Helper()
	var obj map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(raw, &obj))
	for k, v := range edits {
		if _, ok := v.(delKey); ok {
			delete(obj, k)
			continue
		}
		b, err := json.Marshal(v)
		require.NoError(t, err)
		obj[k] = b
	}
	out, err := json.Marshal(obj)
	require.NoError(t, err)
	return out
}

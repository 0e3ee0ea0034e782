package paddle

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/connectors/source/sourcetest"
)

// paddleRecord is one entity of the SDK fixtures with the stream it belongs to.
type paddleRecord struct {
	Stream string
	Data   json.RawMessage
}

// fixtureRecords reads every entity of the Paddle SDK fixtures: list answers
// (data[]), single-entity answers (data{}) and webhook notification entities.
func fixtureRecords(t testing.TB) []paddleRecord {
	t.Helper()
	dir := sourcetest.Samples(t, "paddle", "python-sdk")
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var out []paddleRecord
	for _, e := range entries {
		name := e.Name()
		b, err := os.ReadFile(filepath.Join(dir, name))
		require.NoError(t, err)
		var stream string
		switch {
		case strings.HasPrefix(name, "notification_entity__"):
			stream = strings.SplitN(strings.TrimPrefix(name, "notification_entity__"), ".", 2)[0] + "s"
			out = append(out, paddleRecord{stream, b})
			continue
		case strings.HasPrefix(name, "Subscriptions__preview"), strings.HasPrefix(name, "Events__"):
			continue // a preview is not a state; events wrap entities already covered
		default:
			stream = strings.ToLower(strings.SplitN(name, "__", 2)[0])
		}
		var env struct {
			Data json.RawMessage `json:"data"`
		}
		require.NoError(t, json.Unmarshal(b, &env), name)
		if strings.HasPrefix(strings.TrimSpace(string(env.Data)), "[") {
			var list []json.RawMessage
			require.NoError(t, json.Unmarshal(env.Data, &list))
			for _, r := range list {
				out = append(out, paddleRecord{stream, r})
			}
		} else {
			out = append(out, paddleRecord{stream, env.Data})
		}
	}
	return out
}

// sampleObject returns the fixture entity of stream with id, as a map the
// test can alter to make a variant of a real record.
func sampleObject(t *testing.T, stream, id string) map[string]any {
	t.Helper()
	// The last match wins: list answers sort after the hand-edited
	// *__full_entity.json of the same id.
	var found map[string]any
	for _, r := range fixtureRecords(t) {
		if r.Stream != stream {
			continue
		}
		var m map[string]any
		require.NoError(t, json.Unmarshal(r.Data, &m))
		if m["id"] == id {
			found = m
		}
	}
	require.NotNil(t, found, "no %s %s in the fixtures", stream, id)
	return found
}

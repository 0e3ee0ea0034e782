package airbyte

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/connectors/source/sourcetest"
)

// readAll decodes every line of r; it fails the test on an I/O error.
func readAll(t *testing.T, r io.Reader) []Line {
	t.Helper()
	dec := NewDecoder(r)
	var lines []Line
	for {
		l, err := dec.Next()
		if err == io.EOF {
			return lines
		}
		require.NoError(t, err)
		lines = append(lines, l)
	}
}

// kinds counts messages by type, STATE by state type and TRACE by trace type.
func kinds(t *testing.T, lines []Line) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, l := range lines {
		require.Nil(t, l.Invalid, "line %d: %q", l.Number, l.Text)
		require.NotNil(t, l.Message, "line %d is not a message: %q", l.Number, l.Text)
		k := string(l.Message.Type)
		switch l.Message.Type {
		case TypeState:
			k += "/" + string(l.Message.State.Kind())
		case TypeTrace:
			k += "/" + string(l.Message.Trace.Type)
		}
		out[k]++
	}
	return out
}

// Every JSONL stream of the recorded protocol samples decodes, message by
// message, into the types with their fields.
func TestDecoderOnProtocolSamples(t *testing.T) {
	tests := []struct {
		file  string
		kinds map[string]int
		check func(t *testing.T, lines []Line)
	}{
		{"v0-edge_case_messages.jsonl", map[string]int{"RECORD": 17, "STATE/LEGACY": 1, "TRACE/STREAM_STATUS": 12}, func(t *testing.T, lines []Line) {
			rec := lines[4].Message.Record
			assert.Equal(t, "stream-with:spécial:character_names", rec.Stream)
			assert.JSONEq(t, `{"field_with_spécial_character":"one"}`, string(rec.Data))
			assert.Equal(t, Millis(1602637589400), rec.EmittedAt)
			state := lines[17].Message.State
			assert.Equal(t, StateLegacy, state.Kind(), "a state without type is LEGACY")
			assert.JSONEq(t, `{"start_date":"2020-09-02"}`, string(state.Data))
			ss := lines[18].Message.Trace.StreamStatus
			assert.Equal(t, StreamDescriptor{Name: "streamWithCamelCase"}, ss.StreamDescriptor)
			assert.Equal(t, StatusComplete, ss.Status)
		}},
		{"v0-exchange_rate_messages.jsonl", map[string]int{"RECORD": 5, "STATE/LEGACY": 3, "TRACE/STREAM_STATUS": 1}, func(t *testing.T, lines []Line) {
			// Money-like numbers stay as their text in the record.
			assert.Contains(t, string(lines[4].Message.Record.Data), `"USD": 10.16`)
		}},
		{"logs-with-version.jsonl", map[string]int{"LOG": 4, "SPEC": 1}, func(t *testing.T, lines []Line) {
			assert.Equal(t, "INFO", lines[2].Message.Log.Level)
			assert.Equal(t, "Command: SPEC", lines[2].Message.Log.Message)
			spec := lines[4].Message.Spec
			assert.Equal(t, "0.5.9", spec.ProtocolVersion)
			assert.Equal(t, "https://docs.airbyte.io/integrations/destinations/bigquery", spec.DocumentationURL)
			assert.Contains(t, string(spec.ConnectionSpecification), `"BigQuery Destination Spec"`)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			f, err := os.Open(sourcetest.Samples(t, "airbyte-protocol", tt.file))
			require.NoError(t, err)
			defer f.Close()
			lines := readAll(t, f)
			assert.Equal(t, tt.kinds, kinds(t, lines))
			tt.check(t, lines)
		})
	}
}

// The JDBC toolkit's expected messages (a JSON array) hold emitted_at as a
// float in exponent form, per-stream states with stats, and records with a
// namespace.
func TestParseMessageH2SourceSample(t *testing.T) {
	b, err := os.ReadFile(sourcetest.Samples(t, "airbyte-protocol", "h2source-expected-messages-stream-cold-start.json"))
	require.NoError(t, err)
	var raws []json.RawMessage
	require.NoError(t, json.Unmarshal(b, &raws))
	require.Len(t, raws, 11)
	var msgs []Message
	for i, raw := range raws {
		m, err := ParseMessage(raw)
		require.NoError(t, err, "message %d", i)
		msgs = append(msgs, m)
	}
	assert.Equal(t, TraceTypeStreamStatus, msgs[0].Trace.Type)
	assert.Equal(t, Millis(3133641600000), msgs[0].Trace.EmittedAt, "3.1336416e12 is whole milliseconds")
	assert.Equal(t, StatusStarted, msgs[0].Trace.StreamStatus.Status)
	assert.Equal(t, StreamDescriptor{Name: "EVENTS", Namespace: "PUBLIC"}, msgs[2].Record.StreamDescriptor())
	assert.JSONEq(t, `{"ID":"zESZAjDaXqjE0wJzLlv86Q==","TS":"2024-04-29T00:00:00.000000-04:00","MSG":"bar"}`, string(msgs[2].Record.Data))
	st := msgs[4].State
	assert.Equal(t, StateStream, st.Kind())
	assert.Equal(t, "PUBLIC.EVENTS", st.Stream.StreamDescriptor.String())
	assert.Equal(t, "2.0", st.SourceStats.RecordCount.String())
	assert.JSONEq(t, `{"primary_key":{},"cursors":{"TS":"2024-04-30T00:00:00.000000-04:00"}}`, string(st.Stream.StreamState))
}

// The state files of the bulk CDK's tests (what `read --state` takes) are
// valid cursors: parsed, they give back the same states.
func TestParseStatesProtocolSamples(t *testing.T) {
	for _, file := range []string{"vanilla-global-states.json", "vanilla-mixed-states.json"} {
		t.Run(file, func(t *testing.T) {
			b, err := os.ReadFile(sourcetest.Samples(t, "airbyte-protocol", file))
			require.NoError(t, err)
			states, err := ParseStates(b)
			require.NoError(t, err)
			require.False(t, states.Empty())
			cursor, err := states.Cursor()
			require.NoError(t, err)
			var want, got []map[string]any
			require.NoError(t, json.Unmarshal(b, &want))
			require.NoError(t, json.Unmarshal(cursor, &got))
			assert.ElementsMatch(t, want, got)
		})
	}
}

// Every line of the vendors' expected_records.jsonl (bare record bodies with
// no envelope) decodes as a RECORD.
func TestDecoderBareRecordSamples(t *testing.T) {
	for _, dir := range []string{"airbyte-stripe", "airbyte-chargebee", "airbyte-braintree", "airbyte-recharge", "airbyte-paypal-transaction"} {
		t.Run(dir, func(t *testing.T) {
			f, err := os.Open(sourcetest.Samples(t, dir, "expected_records.jsonl"))
			require.NoError(t, err)
			defer f.Close()
			lines := readAll(t, f)
			require.NotEmpty(t, lines)
			for _, l := range lines {
				require.NotNil(t, l.Message, "line %d: %v", l.Number, l.Invalid)
				assert.Equal(t, TypeRecord, l.Message.Type)
				assert.NotEmpty(t, l.Message.Record.Stream)
				assert.Positive(t, int64(l.Message.Record.EmittedAt))
			}
		})
	}
}

func TestDecoderLines(t *testing.T) {
	record := func(data string) string {
		return `{"type":"RECORD","record":{"stream":"users","data":` + data + `,"emitted_at":1795744991345}}`
	}
	long := `{"note":"` + strings.Repeat("x", 5<<20) + `"}` // 5 MiB: far past any default buffer
	input := strings.Join([]string{
		"Starting source-faker",       // plain text on stdout
		"",                            // skipped
		record(`{"id":1}`),            //
		"   ",                         // skipped
		record(long) + "\r",           // CRLF and a very long line
		`{"type":"RECORD"`,            // truncated JSON
		`{"type":"STATE","state":{}}`, // legacy state without data
		`{"stream":"users","data":{"id":2},"emitted_at":1.7957449913451e12}`, // bare record, float time
		record(`{"id":3}`), // last line without a newline
	}, "\n")
	lines := readAll(t, strings.NewReader(input))
	require.Len(t, lines, 7)

	assert.Equal(t, Line{Number: 1, Text: "Starting source-faker"}, lines[0])
	assert.Equal(t, 3, lines[1].Number)
	assert.JSONEq(t, `{"id":1}`, string(lines[1].Message.Record.Data))
	assert.Equal(t, 5, lines[2].Number)
	assert.Len(t, lines[2].Message.Record.Data, len(long))
	assert.Equal(t, 6, lines[3].Number)
	assert.ErrorContains(t, lines[3].Invalid, "invalid JSON: unexpected end of JSON input")
	assert.ErrorContains(t, lines[4].Invalid, "STATE message without state.data")
	assert.Equal(t, TypeRecord, lines[5].Message.Type)
	assert.Equal(t, Millis(1795744991345), lines[5].Message.Record.EmittedAt)
	assert.Equal(t, 9, lines[6].Number)
	assert.JSONEq(t, `{"id":3}`, string(lines[6].Message.Record.Data))
}

// A line over the bound is an error naming it; the next line reads fine.
func TestDecoderLineTooLong(t *testing.T) {
	input := `{"type":"LOG","log":{"level":"INFO","message":"ok"}}` + "\n" +
		strings.Repeat("y", 200<<10) + "\n" +
		`{"type":"LOG","log":{"level":"INFO","message":"after"}}` + "\n"
	dec := NewDecoder(strings.NewReader(input))
	dec.MaxLineBytes = 100 << 10
	l, err := dec.Next()
	require.NoError(t, err)
	assert.Equal(t, "ok", l.Message.Log.Message)
	_, err = dec.Next()
	require.EqualError(t, err, fmt.Sprintf("line 2 is longer than %d bytes", 100<<10))
	l, err = dec.Next()
	require.NoError(t, err)
	assert.Equal(t, 3, l.Number)
	assert.Equal(t, "after", l.Message.Log.Message)
}

func TestParseMessageValidation(t *testing.T) {
	tests := []struct {
		line string
		want string // error substring; "" means valid
	}{
		{`{"type":"RECORD","record":{"stream":"s","data":{},"emitted_at":1}}`, ""},
		{`{"type":"RECORD"}`, "RECORD message without record"},
		{`{"type":"RECORD","record":{"data":{},"emitted_at":1}}`, "without record.stream"},
		{`{"type":"RECORD","record":{"stream":"s","data":[1],"emitted_at":1}}`, "record.data must be a JSON object"},
		{`{"type":"RECORD","record":{"stream":"s","data":{},"emitted_at":"soon"}}`, "emitted_at"},
		{`{"type":"RECORD","record":{"stream":"s","data":{},"emitted_at":9e99999999}}`, "emitted_at: want epoch milliseconds, got 9e99999999: has an exponent beyond"},
		{`{"type":"STATE","state":{"type":"STREAM","stream":{"stream_descriptor":{"name":"users"},"stream_state":{}}}}`, ""},
		{`{"type":"STATE","state":{"type":"STREAM"}}`, "state.stream.stream_descriptor.name"},
		{`{"type":"STATE","state":{"type":"GLOBAL","global":{"stream_states":[]}}}`, ""},
		{`{"type":"STATE","state":{"type":"GLOBAL"}}`, "without state.global"},
		{`{"type":"STATE","state":{"type":"PER_STREAM","data":{}}}`, `unknown type "PER_STREAM"`},
		{`{"type":"LOG","log":{"level":"WARN","message":"m"}}`, ""},
		{`{"type":"LOG"}`, "LOG message without log"},
		{`{"type":"SPEC","spec":{"connectionSpecification":{}}}`, ""},
		{`{"type":"SPEC"}`, "without spec"},
		{`{"type":"CONNECTION_STATUS","connectionStatus":{"status":"FAILED","message":"bad key"}}`, ""},
		{`{"type":"CONNECTION_STATUS","connectionStatus":{}}`, "connectionStatus.status"},
		{`{"type":"CATALOG","catalog":{"streams":[]}}`, ""},
		{`{"type":"CATALOG"}`, "without catalog"},
		{`{"type":"TRACE","trace":{"type":"ERROR","emitted_at":1.5,"error":{"message":"m"}}}`, ""},
		{`{"type":"TRACE","trace":{"type":"ERROR","emitted_at":1}}`, "without trace.error"},
		{`{"type":"TRACE","trace":{"type":"ESTIMATE","emitted_at":1,"estimate":{"name":"users","type":"STREAM","row_estimate":10,"byte_estimate":4500}}}`, ""},
		{`{"type":"TRACE","trace":{"type":"ANALYTICS","emitted_at":1,"analytics":{"type":"t","value":"2"}}}`, ""},
		{`{"type":"TRACE"}`, "without trace.type"},
		{`{"type":"CONTROL","control":{"type":"CONNECTOR_CONFIG","emitted_at":1,"connectorConfig":{"config":{"token":"t"}}}}`, ""},
		{`{"type":"CONTROL"}`, "without control"},
		{`{"type":"DESTINATION_CATALOG","destination_catalog":{"operations":[]}}`, ""},
		{`{"type":"HELLO"}`, `unknown message type "HELLO"`},
		{`{"id":1}`, "neither an Airbyte message"},
		{`[1,2]`, "not a JSON object"},
		{`{"type":7}`, "type must be"},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			_, err := ParseMessage([]byte(tt.line))
			if tt.want == "" {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

func TestStatesAccumulate(t *testing.T) {
	stream := func(name, cursor string) StateMessage {
		return StateMessage{Type: StateStream, Stream: &StreamState{
			StreamDescriptor: StreamDescriptor{Name: name},
			StreamState:      json.RawMessage(`{"updated_at":"` + cursor + `"}`),
		}, SourceStats: &StateStats{RecordCount: "8.0"}}
	}
	s, err := ParseStates(nil)
	require.NoError(t, err)
	c, err := s.Cursor()
	require.NoError(t, err)
	assert.Nil(t, c, "no state: no cursor (read from the start)")

	s.Add(stream("users", "1"))
	s.Add(stream("purchases", "1"))
	s.Add(stream("users", "2")) // replaces the first users state
	c, err = s.Cursor()
	require.NoError(t, err)
	assert.JSONEq(t, `[
		{"type":"STREAM","stream":{"stream_descriptor":{"name":"users"},"stream_state":{"updated_at":"2"}}},
		{"type":"STREAM","stream":{"stream_descriptor":{"name":"purchases"},"stream_state":{"updated_at":"1"}}}
	]`, string(c), "latest state per stream, without per-run stats")

	// A saved cursor resumes: later states of other streams keep the saved ones.
	again, err := ParseStates(c)
	require.NoError(t, err)
	again.Add(stream("purchases", "3"))
	c2, err := again.Cursor()
	require.NoError(t, err)
	assert.Contains(t, string(c2), `"updated_at":"2"`)
	assert.Contains(t, string(c2), `"updated_at":"3"`)

	// Legacy: the blob itself is the state file.
	legacy, err := ParseStates([]byte(`{"start_date":"2020-09-02"}`))
	require.NoError(t, err)
	legacy.Add(StateMessage{Data: json.RawMessage(`{"start_date":"2020-09-03"}`)})
	c3, err := legacy.Cursor()
	require.NoError(t, err)
	assert.JSONEq(t, `{"start_date":"2020-09-03"}`, string(c3))

	_, err = ParseStates([]byte(`"yesterday"`))
	assert.ErrorContains(t, err, "JSON array of state messages")
	_, err = ParseStates([]byte(`[{"type":"STREAM"}]`))
	assert.ErrorContains(t, err, "saved airbyte state [0]")
}

func TestMillis(t *testing.T) {
	for in, want := range map[string]Millis{
		"1602637589000": 1602637589000, "1795744991257.525": 1795744991257, "3.1336416e12": 3133641600000, "null": 0,
	} {
		var m Millis
		require.NoError(t, json.Unmarshal([]byte(in), &m), in)
		assert.Equal(t, want, m, in)
	}
	var m Millis
	assert.Error(t, json.Unmarshal([]byte(`"x"`), &m))
	assert.Equal(t, "2020-10-14T01:06:29Z", Millis(1602637589000).Time().Format("2006-01-02T15:04:05Z07:00"))
}

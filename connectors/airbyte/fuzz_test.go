package airbyte

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/connectors/source/sourcetest"
)

// protocolSeeds are recorded Airbyte output: every line of the protocol
// samples and of each connector's expected records, every message of the
// JSON array samples, and the states wrapped as STATE messages.
func protocolSeeds(tb testing.TB) [][]byte {
	var out [][]byte
	for _, name := range []string{"airbyte-protocol/v0-edge_case_messages.jsonl", "airbyte-protocol/v0-exchange_rate_messages.jsonl",
		"airbyte-protocol/logs-with-version.jsonl", "airbyte-stripe/expected_records.jsonl", "airbyte-chargebee/expected_records.jsonl",
		"airbyte-braintree/expected_records.jsonl", "airbyte-recharge/expected_records.jsonl", "airbyte-paypal-transaction/expected_records.jsonl"} {
		b, err := os.ReadFile(sourcetest.Samples(tb, strings.Split(name, "/")...))
		require.NoError(tb, err)
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(nil, 1<<24)
		for sc.Scan() {
			out = append(out, bytes.Clone(sc.Bytes()))
		}
		require.NoError(tb, sc.Err())
	}
	for name, wrap := range map[string]string{"h2source-expected-messages-stream-cold-start.json": "%s",
		"vanilla-global-states.json": `{"type":"STATE","state":%s}`, "vanilla-mixed-states.json": `{"type":"STATE","state":%s}`} {
		b, err := os.ReadFile(sourcetest.Samples(tb, "airbyte-protocol", name))
		require.NoError(tb, err)
		var msgs []json.RawMessage
		require.NoError(tb, json.Unmarshal(b, &msgs), name)
		for _, m := range msgs {
			out = append(out, []byte(strings.Replace(wrap, "%s", string(m), 1)))
		}
	}
	for _, e := range sourcetest.EdgeRecords {
		out = append(out, []byte(e))
	}
	return append(out,
		[]byte(`{"type":"RECORD","record":{"stream":"s","data":{},"emitted_at":1e400}}`),
		[]byte(`{"type":"RECORD","record":{"stream":"s","data":{},"emitted_at":-1e-400}}`),
		[]byte(`{"type":"STATE","state":{"type":"STREAM","stream":{"stream_descriptor":{}}}}`),
		[]byte(`{"type":"TRACE","trace":{"type":"ERROR"}}`),
		[]byte(`{"type":7}`))
}

// FuzzParseMessage: one line of a connector's output or an imported file.
// A message accepted validates, and its JSON parses back to the same message.
func FuzzParseMessage(f *testing.F) {
	for _, s := range protocolSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		m, err := ParseMessage(line)
		if err != nil {
			require.NotEmpty(t, err.Error())
			return
		}
		require.NoError(t, m.Validate())
		b, err := json.Marshal(m)
		require.NoError(t, err)
		again, err := ParseMessage(b)
		require.NoError(t, err, "%s", b)
		b2, err := json.Marshal(again)
		require.NoError(t, err)
		require.JSONEq(t, string(b), string(b2))
	})
}

// FuzzDecoder: a stream of lines (a connector's stdout), with a small line
// bound so the fuzzer reaches it. Lines come out numbered in order, every
// message validates, a line that is not one says why, and the decoder
// always reaches the end.
func FuzzDecoder(f *testing.F) {
	seeds := protocolSeeds(f)
	f.Add(bytes.Join(seeds[:20], []byte("\n")))
	f.Add(bytes.Join(seeds[len(seeds)-20:], []byte("\r\n")))
	f.Add([]byte("plain log line\n\n{not json\n" + strings.Repeat("x", 5000) + "\n{}"))
	f.Fuzz(func(t *testing.T, stream []byte) {
		d := NewDecoder(bytes.NewReader(stream))
		d.MaxLineBytes = 4096
		last := 0
		for range len(stream) + 2 {
			l, err := d.Next()
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				require.Contains(t, err.Error(), "longer than")
				require.Greater(t, d.Line(), last)
				last = d.Line()
				continue
			}
			require.Greater(t, l.Number, last)
			last = l.Number
			switch {
			case l.Message != nil:
				require.NoError(t, l.Message.Validate())
			case l.Invalid != nil:
				require.NotEmpty(t, l.Text)
			default:
				require.NotEmpty(t, l.Text)
				require.NotEqual(t, byte('{'), l.Text[0])
			}
		}
		t.Fatalf("no end after %d lines of a %d-byte input", len(stream)+2, len(stream))
	})
}

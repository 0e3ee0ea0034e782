package sourcetest

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/connectors/source"
	"github.com/uvrhq/uvr/pipeline/event"
)

// EdgeRecords are the hostile records every mapper fuzz target starts from,
// beside its recorded samples: empty and non-object input, invalid UTF-8,
// deep nesting, numbers the decoders must refuse or bound. The exponents
// stay moderate: a decimal of millions of digits costs minutes per input
// until decimals are bounded on their text (issue 15), and seeds run in
// every `go test`.
var EdgeRecords = []string{
	``,
	`null`,
	`{}`,
	`[]`,
	`"text"`,
	"{\"id\":\"\xff\xfe\",\"amount\":\"\xc3\x28\"}",
	strings.Repeat(`[`, 10000) + strings.Repeat(`]`, 10000),
	`{"id":` + strings.Repeat(`{"a":`, 5000) + `1` + strings.Repeat(`}`, 5000) + `}`,
	`{"id":"x","amount":1e-400,"currency":"USD","created":1e400}`,
	`{"id":"x","amount":"-9e40","total":-9223372036854775808,"currency":"usd"}`,
	`{"id":"x","amount":18446744073709551616,"created":-62135596801}`,
}

// AddRecords adds each of records as a (stream, record) seed under every
// one of streams.
func AddRecords(f *testing.F, streams []string, records ...string) {
	for _, s := range streams {
		for _, r := range records {
			f.Add(s, []byte(r))
		}
	}
}

// AddRecordFile adds every record of an Airbyte record file as a seed.
func AddRecordFile(f *testing.F, path string) {
	for _, r := range ReadRecords(f, path) {
		f.Add(r.Stream, []byte(r.Data))
	}
}

// RequireMapperContract checks the source.Mapper contract on one record of
// any shape: an error is an error (never a panic), a record that maps gives
// events that each pass the event contract, and mapping it again gives the
// same events byte for byte (ids deterministic in the record, so a re-read
// counts once).
func RequireMapperContract(t *testing.T, m source.Mapper, stream string, record []byte) {
	t.Helper()
	evs, err := m.Map(stream, bytes.Clone(record))
	if err != nil {
		return
	}
	RequireValid(t, evs)
	again, err := m.Map(stream, bytes.Clone(record))
	require.NoError(t, err, "the same record mapped once")
	require.Equal(t, marshal(t, evs), marshal(t, again), "mapping the same record twice")
}

func marshal(t *testing.T, evs []event.Event) []byte {
	t.Helper()
	if len(evs) == 0 {
		return nil
	}
	b, err := event.MarshalBatch(evs)
	require.NoError(t, err)
	return b
}

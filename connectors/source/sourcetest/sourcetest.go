// Package sourcetest holds what connector tests share: the recorded samples
// (testdata/), a reader of Airbyte record files, and an in-memory
// source.Emitter (the connector contract itself, not a stand-in for Kafka).
package sourcetest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/connectors/source"
	"github.com/uvrhq/uvr/pipeline/event"
)

// Samples is the path of a recorded sample in this package's testdata (see
// its README for origins and licences), found from this file's location so
// any test of any package can read it from any working directory. A sample
// that is not there fails the test with the path looked for: a test never
// passes, or skips, without its fixture.
func Samples(t testing.TB, parts ...string) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	p := filepath.Join(append([]string{filepath.Dir(file), "testdata"}, parts...)...)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("recorded sample: %v", err) // the error names the path
	}
	return p
}

// Record is one line of an Airbyte expected_records.jsonl file: the bare
// AirbyteRecordMessage body.
type Record struct {
	Stream    string          `json:"stream"`
	Data      json.RawMessage `json:"data"`
	EmittedAt json.Number     `json:"emitted_at"`
}

// ReadRecords reads an Airbyte record file.
func ReadRecords(t testing.TB, path string) []Record {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	var out []Record
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var r Record
		require.NoError(t, json.Unmarshal(sc.Bytes(), &r), "%s", path)
		out = append(out, r)
	}
	require.NoError(t, sc.Err())
	return out
}

// MustJSON marshals v or fails the test.
func MustJSON(t testing.TB, v any) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b
}

// RequireValid fails the test on the first event that breaks the contract.
func RequireValid(t testing.TB, evs []event.Event) {
	t.Helper()
	for _, ev := range evs {
		require.NoError(t, ev.Validate(), "%s", ev.ID)
	}
}

// ErrEmit is what a Collector's failing Emit returns.
var ErrEmit = errors.New("emit failed: kafka unavailable")

// Collector is an in-memory source.Emitter: it keeps every event, every
// non-nil cursor and every skip. With FailAt > 0, that Emit call (1-based)
// fails with ErrEmit and keeps nothing. Safe for concurrent use.
type Collector struct {
	mu      sync.Mutex
	Events  []event.Event
	Cursors []source.Cursor
	Skipped map[string]error
	Calls   int
	FailAt  int
}

var _ source.Emitter = (*Collector)(nil)

// Emit implements source.Emitter.
func (c *Collector) Emit(_ context.Context, evs []event.Event, next source.Cursor) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.Calls++
	if c.FailAt > 0 && c.Calls == c.FailAt {
		return ErrEmit
	}
	c.Events = append(c.Events, evs...)
	if next != nil {
		c.Cursors = append(c.Cursors, append(source.Cursor(nil), next...))
	}
	return nil
}

// Skip implements source.Emitter.
func (c *Collector) Skip(record string, reason error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.Skipped == nil {
		c.Skipped = map[string]error{}
	}
	c.Skipped[record] = reason
}

// LastCursor is the last saved cursor, nil when none.
func (c *Collector) LastCursor() source.Cursor {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.Cursors) == 0 {
		return nil
	}
	return c.Cursors[len(c.Cursors)-1]
}

// DecodeCursor unmarshals a cursor into T (a source's cursor shape).
func DecodeCursor[T any](t testing.TB, c source.Cursor) T {
	t.Helper()
	var v T
	require.NotEmpty(t, c, "no cursor was saved")
	require.NoError(t, json.Unmarshal(c, &v))
	return v
}

// Local is the Env of a connector test whose service stands on this machine
// (an httptest server, stripe-mock): the operator's opt-in
// (source.AllowPrivateHostsEnv) allowing loopback, as such a test's setup
// must set; the default policy would rightly refuse it.
func Local(t testing.TB) source.Env {
	t.Helper()
	egress, err := source.ParseEgress([]string{"127.0.0.0/8", "::1"})
	require.NoError(t, err)
	return source.Env{Egress: egress}
}

package airbyte

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/connectors/source"
	"github.com/uvrhq/uvr/connectors/source/sourcetest"
	"github.com/uvrhq/uvr/pipeline/event"
)

// collector is an Importer's Publish in memory.
type collector struct {
	batches [][]event.Event
	fail    error
}

func (c *collector) publish(_ context.Context, events []event.Event) error {
	if c.fail != nil {
		return c.fail
	}
	c.batches = append(c.batches, append([]event.Event(nil), events...))
	return nil
}

func (c *collector) all() []event.Event {
	var out []event.Event
	for _, b := range c.batches {
		out = append(out, b...)
	}
	return out
}

func importFile(t *testing.T, m source.Mapper, path string, batch int) (*collector, Summary, error) {
	t.Helper()
	c := &collector{}
	im, err := NewImporter(ImporterConfig{Mapper: m, Publish: c.publish, BatchSize: batch})
	require.NoError(t, err)
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	err = im.ImportFile(context.Background(), filepath.Base(path), f)
	if err == nil {
		err = im.Flush(context.Background())
	}
	return c, im.Summary(), err
}

// A recorded source-faker read (every message type it writes) imports
// with the faker mapping: records counted, other messages ignored, events
// published in batches.
func TestImporterFakerRead(t *testing.T) {
	c, s, err := importFile(t, fakerMapping(t), filepath.Join("testdata", "faker-read.jsonl"), 8)
	require.NoError(t, err)
	assert.Equal(t, 40, s.Records)
	assert.Equal(t, 31, s.Other, "LOG, TRACE and STATE lines")
	assert.Equal(t, map[string]int{"uvr.customer.v1": 20, "uvr.revenue.v1 charge": 14, "uvr.revenue.v1 refund": 1}, s.Events)
	assert.Equal(t, 35, s.Published)
	assert.Equal(t, 35, s.EventsTotal())
	assert.Zero(t, s.Skipped)
	require.Len(t, c.all(), 35)
	for _, b := range c.batches[:len(c.batches)-1] {
		assert.GreaterOrEqual(t, len(b), 8)
	}
	for _, ev := range c.all() {
		assert.NoError(t, ev.Validate())
	}
	assert.Contains(t, s.String(), "records read: 40 (from 1 file(s); 31 other messages ignored)")
	assert.Contains(t, s.String(), "uvr.revenue.v1 refund")
}

// Each vendor's real Airbyte records (expected_records.jsonl, bare records)
// import with the vendor's Mapper into valid events, and a second import
// gives the very same event ids: importing twice changes no total.
func TestImporterVendorSamples(t *testing.T) {
	for vendor, file := range map[string]string{
		"stripe":    "airbyte-stripe/expected_records.jsonl",
		"chargebee": "airbyte-chargebee/expected_records.69da92e6.jsonl",
		"braintree": "airbyte-braintree/expected_records.jsonl",
	} {
		t.Run(vendor, func(t *testing.T) {
			m, err := VendorMapper(vendor)
			require.NoError(t, err)
			first, s, err := importFile(t, m, sourcetest.Samples(t, file), 10)
			require.NoError(t, err)
			assert.Positive(t, s.Records)
			assert.Positive(t, s.Published, "%s", s)
			assert.Equal(t, s.EventsTotal(), s.Published)
			for _, ev := range first.all() {
				require.NoError(t, ev.Validate())
				assert.Equal(t, vendor, ev.Source)
			}
			second, _, err := importFile(t, m, sourcetest.Samples(t, file), 10)
			require.NoError(t, err)
			assert.Equal(t, ids(first.all()), ids(second.all()))
		})
	}
	_, err := VendorMapper("hubspot")
	assert.EqualError(t, err, `no mapper for source "hubspot" (known: braintree, chargebee, paddle, recurly, stripe; or give a mapping file with --mapping)`)
}

// A record the mapper rejects is skipped and listed with its reason; the
// rest of the file imports.
func TestImporterSkips(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users.jsonl")
	lines := []string{
		`{"stream":"users","data":{"id":1,"created_at":"2001-02-03T11:53:10+00:00","updated_at":"2026-11-27T02:03:11+00:00","email":"a@duck.com"},"emitted_at":1795744991345}`,
		`{"stream":"users","data":{"id":2,"created_at":"someday","updated_at":"2026-11-27T02:03:11+00:00"},"emitted_at":1795744991345}`,
		`{"stream":"users","data":{"id":3,"created_at":"someday","updated_at":"2026-11-27T02:03:11+00:00"},"emitted_at":1795744991345}`,
		`{"stream":"products","data":{"id":1,"make":"Mazda","price":15001},"emitted_at":1795744993797}`,
	}
	require.NoError(t, os.WriteFile(path, []byte(strings.Join(lines, "\n")), 0o644))
	c, s, err := importFile(t, fakerMapping(t), path, 100)
	require.NoError(t, err)
	assert.Equal(t, 4, s.Records)
	assert.Equal(t, 1, s.Published, "products map to nothing, without error")
	assert.Len(t, c.all(), 1)
	assert.Equal(t, 2, s.Skipped)
	require.Len(t, s.Reasons, 1)
	assert.Equal(t, 2, s.Reasons[0].Count)
	assert.Contains(t, s.Reasons[0].Reason, "someday")
	assert.Equal(t, []string{"users record 2 (users.jsonl:2)", "users record 3 (users.jsonl:3)"}, s.Reasons[0].Examples)
	assert.Contains(t, s.String(), "records skipped: 2\n  2 × ")
}

// A line that is not a message stops the import with file:line and why.
func TestImporterBadInput(t *testing.T) {
	good := `{"type":"RECORD","record":{"stream":"users","data":{"id":1,"created_at":"2001-02-03T11:53:10+00:00","updated_at":"2026-11-27T02:03:11+00:00"},"emitted_at":1795744991345}}`
	tests := []struct {
		name, third, want string
	}{
		{"not json", "id,amount", `in.jsonl:3: not JSON: "id,amount"`},
		{"broken json", `{"type":"RECORD","record":{"stream":"users"`, "in.jsonl:3: invalid JSON: unexpected end of JSON input"},
		{"not a message", `{"id":7}`, "in.jsonl:3: neither an Airbyte message"},
		{"record without data", `{"type":"RECORD","record":{"stream":"users","emitted_at":1}}`, "in.jsonl:3: RECORD message: record.data must be a JSON object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "in.jsonl")
			require.NoError(t, os.WriteFile(path, []byte(good+"\n\n"+tt.third+"\n"+good+"\n"), 0o644))
			_, _, err := importFile(t, fakerMapping(t), path, 100)
			var ie *InputError
			require.True(t, errors.As(err, &ie), "%v", err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}

	// A publish failure stops the import too, with how many events it held.
	c := &collector{fail: errors.New("uvr answered HTTP 503")}
	im, err := NewImporter(ImporterConfig{Mapper: fakerMapping(t), Publish: c.publish, BatchSize: 1})
	require.NoError(t, err)
	err = im.ImportFile(context.Background(), "in.jsonl", strings.NewReader(good))
	assert.EqualError(t, err, "publish 1 events: uvr answered HTTP 503")
}

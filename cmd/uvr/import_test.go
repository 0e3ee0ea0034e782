package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/connectors/airbyte"
	"github.com/uvrhq/uvr/connectors/source/sourcetest"
	"github.com/uvrhq/uvr/deploy/servicetest"
	"github.com/uvrhq/uvr/pipeline/event"
)

// expectedRevenue maps the file with the vendor's mapper and sums what the
// dashboard must show: each event identity once, at its latest version.
func expectedRevenue(t *testing.T, vendor, path string) (total decimal.Decimal, events int, start, end string) {
	t.Helper()
	mapper, err := airbyte.VendorMapper(vendor)
	require.NoError(t, err)
	latest := map[string]event.Event{}
	im, err := airbyte.NewImporter(airbyte.ImporterConfig{Mapper: mapper, Publish: func(_ context.Context, evs []event.Event) error {
		for _, ev := range evs {
			events++
			key := ev.Source + "/" + ev.ID
			if old, ok := latest[key]; !ok || ev.Data.Version > old.Data.Version {
				latest[key] = ev
			}
		}
		return nil
	}})
	require.NoError(t, err)
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	require.NoError(t, im.ImportFile(context.Background(), path, f))
	require.NoError(t, im.Flush(context.Background()))
	var first, last time.Time
	for _, ev := range latest {
		if ev.Type != event.TypeRevenue || ev.Data.Amount == nil || ev.Data.Void {
			continue
		}
		require.Equal(t, "USD", ev.Data.Currency, "the sample is in the reporting currency")
		total = total.Add(*ev.Data.Amount)
		if first.IsZero() || ev.Time.Before(first) {
			first = ev.Time
		}
		if ev.Time.After(last) {
			last = ev.Time
		}
	}
	return total, events, first.UTC().Format(time.DateOnly), last.UTC().Format(time.DateOnly)
}

// uvr import airbyte against a running uvr (in-process Main on the real
// Kafka and ClickHouse), for each vendor with recorded Airbyte records: the
// dashboard's revenue equals the mapped records', and importing the same file
// a second time — Kafka then holds every event twice — changes no total.
func TestImportAirbyteTwiceChangesNoTotal(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ vendor, file string }{
		{"stripe", "airbyte-stripe/expected_records.jsonl"},
		{"chargebee", "airbyte-chargebee/expected_records.69da92e6.jsonl"},
		{"braintree", "airbyte-braintree/expected_records.jsonl"},
	} {
		t.Run(tt.vendor, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig(t)
			m := startMain(t, cfg, Roles{API: true, Projector: true})
			file := sourcetest.Samples(t, tt.file)
			want, events, start, end := expectedRevenue(t, tt.vendor, file)
			require.Positive(t, events)
			require.False(t, want.IsZero())
			raw, err := os.ReadFile(file)
			require.NoError(t, err)
			records := bytes.Count(raw, []byte("\n"))

			out, err := runCLI(t, nil, "import", "airbyte", "--source", tt.vendor, "--url", m.URL(), file)
			require.NoError(t, err, out)
			assert.Contains(t, out, fmt.Sprintf("records read: %d (from 1 file(s)", records))

			var last decimal.Decimal
			waitUntil(t, 2*time.Minute, 100*time.Millisecond, func() bool {
				last = getDashboard(t, m.URL(), start, end).Summary.TotalRevenue
				return last.Equal(want)
			}, func() string { return fmt.Sprintf("total revenue %s, want %s", last.String(), want) })

			out, err = runCLI(t, nil, "import", "airbyte", "--source", tt.vendor, "--url", m.URL(), file)
			require.NoError(t, err, out)
			require.Equal(t, int64(2*events), topicEnd(t, cfg.KafkaBrokers, cfg.EventsTopic), "every event is in Kafka twice")
			waitCaughtUp(t, cfg.KafkaBrokers, cfg.ConsumerGroup, cfg.EventsTopic, projectionWait)
			waitAggregated(t, m.ch, projectionWait)
			got := getDashboard(t, m.URL(), start, end).Summary.TotalRevenue
			assert.True(t, got.Equal(want), "after the second import: total revenue %s, want %s", got, want)
		})
	}
}

// With --brokers the events go straight to Kafka's events topic; with no
// file the records come from standard input (a connector piped in).
func TestImportAirbyteToKafka(t *testing.T) {
	t.Parallel()
	brokers := servicetest.KafkaBrokers(t)
	topic := servicetest.Topic("uvr.test.import")
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	input, err := os.ReadFile(filepath.Join(root, "connectors", "airbyte", "testdata", "faker-read.jsonl"))
	require.NoError(t, err)

	var out, errOut bytes.Buffer
	cmd := newRootCommand(&out, &errOut, func(string) (string, bool) { return "", false })
	cmd.SetIn(bytes.NewReader(input))
	cmd.SetArgs([]string{"import", "airbyte",
		"--mapping", filepath.Join(root, "connectors", "mapping", "examples", "faker.yaml"),
		"--brokers", strings.Join(brokers, ","), "--events-topic", topic, "--poison-topic", topic + ".poison"})
	require.NoError(t, cmd.ExecuteContext(context.Background()), errOut.String())
	assert.Contains(t, out.String(), "records read: 40 (from 1 file(s); 31 other messages ignored)")
	assert.Contains(t, out.String(), "events published: 35")
	assert.Contains(t, errOut.String(), "stdin")
	assert.Equal(t, int64(35), topicEnd(t, brokers, topic))
}

func TestImportAirbyteErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.jsonl")
	require.NoError(t, os.WriteFile(bad, []byte(`{"stream":"customers","data":{"id":"cus_1"},"emitted_at":1}`+"\nid,amount\n"), 0o644))
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no mapper", []string{bad}, "give --source (braintree, chargebee, paddle, recurly, stripe) or --mapping FILE"},
		{"both", []string{"--source", "stripe", "--mapping", "m.yaml", bad}, "give --source or --mapping, not both"},
		{"unknown vendor", []string{"--source", "hubspot", bad}, `no mapper for source "hubspot"`},
		{"bad mapping file", []string{"--mapping", filepath.Join(dir, "missing.yaml"), bad}, "read mapping file"},
		{"missing file", []string{"--source", "stripe", filepath.Join(dir, "none.jsonl")}, "none.jsonl: no such file"},
		{"bad line", []string{"--source", "stripe", "--url", "http://127.0.0.1:1", bad}, bad + `:2: not JSON: "id,amount"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := runCLI(t, nil, append([]string{"import", "airbyte"}, tt.args...)...)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

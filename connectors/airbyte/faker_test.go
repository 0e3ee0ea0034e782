package airbyte

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/connectors/source"
	"github.com/uvrhq/uvr/pipeline/event"
)

const fakerPackage = "airbyte-source-faker==7.2.1"

// installFaker installs the real source-faker from PyPI with the repo's own
// script (idempotent: a no-op once installed) and returns its command.
func installFaker(t *testing.T) string {
	t.Helper()
	cmd := exec.Command(filepath.Join(repoRoot(), "deploy", "airbyte-connector"), "install", fakerPackage)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "deploy/airbyte-connector install %s: %s", fakerPackage, stderr.String())
	path := strings.TrimSpace(string(out))
	require.FileExists(t, path)
	return path
}

// recordingMapper passes records to the real mapper and keeps them, so the
// test can compute what to expect from the raw records on its own.
type recordingMapper struct {
	source.Mapper
	mu      sync.Mutex
	records map[string][]map[string]any
}

func (m *recordingMapper) Map(stream string, record json.RawMessage) ([]event.Event, error) {
	var v map[string]any
	if err := json.Unmarshal(record, &v); err != nil {
		return nil, err
	}
	m.mu.Lock()
	m.records[stream] = append(m.records[stream], v)
	m.mu.Unlock()
	return m.Mapper.Map(stream, record)
}

// The real source-faker (PyPI), run through the runner with the shipped
// faker mapping: users become customer events and purchases charges and
// refunds at their product's price; totals equal what the test computes from
// the raw records and faker's own price list. A second read from the saved
// STATE emits only new records — none, with always_updated false — while a
// read without the state emits everything again.
func TestFakerConnector(t *testing.T) {
	command := installFaker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	logs := &logSink{}
	runner, err := NewRunner(RunnerConfig{Command: []string{command}, Timeout: 2 * time.Minute, OnLog: logs.add})
	require.NoError(t, err)

	config := json.RawMessage(`{"count": 20, "seed": 7, "records_per_slice": 10, "always_updated": false, "parallelism": 1}`)
	rec := &recordingMapper{Mapper: fakerMapping(t), records: map[string][]map[string]any{}}
	src, err := New(SourceConfig{Runner: runner, Config: config, Streams: []string{"users", "purchases"}, Mapper: rec})
	require.NoError(t, err)

	// spec, check (twice) and discover are independent: run them together
	// (the connector's Python start-up dominates each).
	var (
		wg                   sync.WaitGroup
		spec                 *ConnectorSpecification
		catalog              ConfiguredCatalog
		specErr, badErr      error
		goodErr, discoverErr error
	)
	for _, fn := range []func(){
		func() { spec, specErr = runner.Spec(ctx) },
		func() { badErr = runner.Check(ctx, json.RawMessage(`{"count":"many"}`)) },
		func() { goodErr = runner.Check(ctx, config) },
		func() { catalog, discoverErr = src.Catalog(ctx) },
	} {
		wg.Add(1)
		go func() { defer wg.Done(); fn() }()
	}
	wg.Wait()
	require.NoError(t, specErr)
	assert.Contains(t, string(spec.ConnectionSpecification), `"count"`)
	require.ErrorAs(t, badErr, new(*CheckError))
	assert.Contains(t, badErr.Error(), "'many' is not of type 'integer'")
	require.NoError(t, goodErr)
	require.NoError(t, discoverErr)
	src.cfg.Catalog = &catalog // discovered once

	out := &memEmitter{t: t}
	require.NoError(t, src.Read(ctx, nil, out))
	assert.Empty(t, out.skips)
	assert.Contains(t, logs.text(), "Read 20 records from users stream")

	// What the test expects, from the raw records and faker's price list.
	prices := fakerPrices(t, command)
	users, purchases := rec.records["users"], rec.records["purchases"]
	require.Len(t, users, 20)
	require.NotEmpty(t, purchases)
	var charges, refunds int
	var revenue decimal.Decimal
	for _, p := range purchases {
		if p["purchased_at"] == nil {
			continue
		}
		price := prices[int(p["product_id"].(float64))]
		charges++
		revenue = revenue.Add(price)
		if p["returned_at"] != nil {
			refunds++
			revenue = revenue.Sub(price)
		}
	}
	count := map[string]int{}
	var got decimal.Decimal
	for _, ev := range out.events() {
		count[ev.Type+" "+ev.Data.Kind]++
		if ev.Type == event.TypeRevenue {
			got = got.Add(*ev.Data.Amount)
		}
	}
	assert.Equal(t, map[string]int{
		event.TypeCustomer + " ":                   len(users),
		event.TypeRevenue + " " + event.KindCharge: charges,
		event.TypeRevenue + " " + event.KindRefund: refunds,
	}, withoutZero(count))
	assert.True(t, revenue.Equal(got), "revenue %s, want %s", got, revenue)

	cursor := out.lastCursor()
	states, err := ParseStates(cursor)
	require.NoError(t, err)
	require.Len(t, states.streams, 2, "a state per stream: %s", cursor)
	assert.Contains(t, string(cursor), `"loop_offset":20`)

	// Second run from the saved state: nothing new.
	rec.records = map[string][]map[string]any{}
	again := &memEmitter{t: t}
	require.NoError(t, src.Read(ctx, cursor, again))
	assert.Empty(t, rec.records, "no record re-read")
	assert.Empty(t, again.events())
	assert.JSONEq(t, string(cursor), string(again.lastCursor()), "the state carries over")

	// Without the state, everything again (same ids: absorbed downstream).
	fresh := &memEmitter{t: t}
	require.NoError(t, src.Read(ctx, nil, fresh))
	assert.Len(t, rec.records["users"], 20)
	assert.ElementsMatch(t, ids(out.events()), ids(fresh.events()))
}

func withoutZero(m map[string]int) map[string]int {
	for k, v := range m {
		if v == 0 {
			delete(m, k)
		}
	}
	return m
}

// fakerPrices reads the price list the installed faker ships
// (source_faker/record_data/products.json), not the mapping's copy of it.
func fakerPrices(t *testing.T, command string) map[int]decimal.Decimal {
	t.Helper()
	venv := filepath.Dir(filepath.Dir(command))
	matches, err := filepath.Glob(filepath.Join(venv, "lib", "python*", "site-packages", "source_faker", "record_data", "products.json"))
	require.NoError(t, err)
	require.Len(t, matches, 1)
	b, err := os.ReadFile(matches[0])
	require.NoError(t, err)
	var products []struct {
		ID    int             `json:"id"`
		Price decimal.Decimal `json:"price"`
	}
	require.NoError(t, json.Unmarshal(b, &products))
	out := map[int]decimal.Decimal{}
	for _, p := range products {
		out[p.ID] = p.Price
	}
	return out
}

package pricing_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/deploy/servicetest"
	"github.com/uvrhq/uvr/pipeline/kafka"
	"github.com/uvrhq/uvr/projections/pricing"
)

// recorder is a Recoster that records what it was asked to mark (the
// ClickHouse one is tested in projections/aggregates and end to end).
type recorder struct {
	mu    sync.Mutex
	calls [][]string
	fail  error
}

func (r *recorder) MarkRecost(_ context.Context, ranges []pricing.DateRange) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return 0, r.fail
	}
	var s []string
	for _, d := range ranges {
		s = append(s, d.String())
	}
	r.calls = append(r.calls, s)
	return 10 * len(ranges), nil
}

func (r *recorder) take() [][]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.calls
	r.calls = nil
	return c
}

func newStore(t *testing.T, topic string, rec pricing.Recoster, files ...string) *pricing.Store {
	t.Helper()
	table, err := kafka.NewTable(kafka.TableConfig{Brokers: servicetest.KafkaBrokers(t), Topic: topic})
	require.NoError(t, err)
	t.Cleanup(func() { _ = table.Close() })
	s, err := pricing.NewStore(pricing.StoreConfig{Table: table, Recoster: rec, Files: files})
	require.NoError(t, err)
	return s
}

const cheaperGPT4o = `cards:
  - provider: openai
    version: cut
    effective_from: 2026-03-03
    source: test
    as_of: 2026-03-01
    per: 1000000
    models:
      - model: gpt-4o
        prices: {input_tokens: "1.75"}
`

// The override layer is durable on the topic and seen by a second
// instance; a change re-costs exactly the ranges whose price changed; a
// changed card file is applied at the next start; a re-costing a failure
// interrupted is repeated at the next start.
func TestStoreOverridesAndReCosts(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	topic := servicetest.Topic("test.pricing.ratecards")
	rec := &recorder{}
	a := newStore(t, topic, rec)

	change, err := a.Start(ctx)
	require.NoError(t, err)
	assert.Empty(t, change.Ranges, "a new topic: nothing was priced with another card")
	assert.Empty(t, rec.take())

	_, err = a.SetOverride(ctx, []byte("cards:\n  - provider: openai\n    version: x\n    per: 1000000\n    models: [{model: gpt-4o, prices: {input_tokens: abc}}]\n"))
	var verr *pricing.ValidationError
	require.ErrorAs(t, err, &verr)
	var fields []string
	for _, p := range verr.Problems {
		fields = append(fields, p.Entry+" "+p.Field)
	}
	assert.Contains(t, fields, "cards[0] (openai x) effective_from")

	change, err = a.SetOverride(ctx, []byte(cheaperGPT4o))
	require.NoError(t, err)
	want := []string{"openai/gpt-4o.input_tokens [2026-03-03, …)"}
	require.Len(t, change.Ranges, 1)
	assert.Equal(t, want[0], change.Ranges[0].String())
	assert.Equal(t, 10, change.DaysMarked)
	assert.Equal(t, [][]string{want}, rec.take())

	// The same override again changes no price.
	change, err = a.SetOverride(ctx, []byte(cheaperGPT4o))
	require.NoError(t, err)
	assert.Empty(t, change.Ranges)

	// A second instance (its own table on the topic) prices with it.
	b := newStore(t, topic, nil)
	card, err := b.Card(ctx)
	require.NoError(t, err)
	p, ok := card.Price("openai", "gpt-4o", "input_tokens", time.Date(2026, 3, 3, 0, 0, 0, 0, time.UTC))
	require.True(t, ok)
	assert.Equal(t, "0.00000175", p.String())
	cards, err := b.Cards(ctx)
	require.NoError(t, err)
	last := cards[len(cards)-1]
	assert.Equal(t, pricing.LayerOverride, last.Layer)
	assert.Equal(t, "cut", last.Version)
	assert.Equal(t, pricing.LayerDefault, cards[0].Layer)

	// A process started with a card file that changes another price: the
	// file is applied at its start, the override kept above it.
	file := filepath.Join(t.TempDir(), "mini.yaml")
	require.NoError(t, os.WriteFile(file, []byte(`cards:
  - provider: openai
    version: mini
    effective_from: 2026-01-01
    effective_to: 2026-02-01
    source: test
    as_of: 2026-01-01
    per: 1000000
    models:
      - model: gpt-4o-mini
        prices: {output_tokens: "0.50"}
`), 0o600))
	c := newStore(t, topic, rec, file)
	change, err = c.Start(ctx)
	require.NoError(t, err)
	assert.Equal(t, [][]string{{"openai/gpt-4o-mini.output_tokens [2026-01-01, 2026-02-01)"}}, rec.take())
	card, err = a.Card(ctx)
	require.NoError(t, err)
	p, _ = card.Price("openai", "gpt-4o-mini", "output_tokens", time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC))
	assert.Equal(t, "0.0000005", p.String(), "every instance prices with the files last started with")
	p, _ = card.Price("openai", "gpt-4o", "input_tokens", time.Date(2026, 3, 5, 0, 0, 0, 0, time.UTC))
	assert.Equal(t, "0.00000175", p.String())

	// A re-costing that failed is repeated at the next start.
	rec.fail = errors.New("clickhouse down")
	_, err = a.SetOverride(ctx, []byte(`cards:
  - provider: anthropic
    version: y
    effective_from: 2026-03-10
    source: test
    as_of: 2026-03-01
    per: 1000000
    models:
      - model: claude-sonnet-4
        prices: {input_tokens: "2"}
`))
	require.ErrorContains(t, err, "clickhouse down")
	rec.fail = nil
	_, err = c.Start(ctx)
	require.NoError(t, err)
	calls := rec.take()
	require.Len(t, calls, 1)
	assert.Contains(t, calls[0], "anthropic/claude-sonnet-4.input_tokens [2026-03-10, …)")
	assert.Contains(t, calls[0], "openai/gpt-4o.input_tokens [2026-03-03, …)", "the new override dropped the old one")
}

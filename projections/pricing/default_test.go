package pricing

import (
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/connectors/demo"
)

func TestDefaultCardSourcesAndDates(t *testing.T) {
	cards, err := DefaultCards()
	require.NoError(t, err)
	providers := map[string]bool{}
	for _, c := range cards {
		providers[c.Provider] = true
		u, err := url.Parse(c.Source)
		require.NoErrorf(t, err, "card %s %s", c.Provider, c.Version)
		assert.Equalf(t, "https", u.Scheme, "card %s %s cites a published page", c.Provider, c.Version)
		assert.Falsef(t, c.AsOf.IsZero(), "card %s %s has its date", c.Provider, c.Version)
		assert.Falsef(t, c.AsOf.Before(c.EffectiveFrom), "card %s %s was read on or after it took effect", c.Provider, c.Version)
		assert.Equal(t, "USD", c.Currency)
		assert.True(t, c.Per.Equal(d("1000000")), "list prices are per 1M tokens")
	}
	assert.Equal(t, map[string]bool{"openai": true, "anthropic": true}, providers)
}

// The per-token prices of the default card, computed by hand from the
// published per-1M prices, on a day when every model is priced.
func TestDefaultCardPrices(t *testing.T) {
	r, err := LoadWithDefault()
	require.NoError(t, err)
	at := date("2025-07-01")
	tests := []struct {
		feature string
		perUnit string
	}{
		{"gpt-4o.input_tokens", "0.0000025"},
		{"gpt-4o.cached_input_tokens", "0.00000125"},
		{"gpt-4o-2024-11-20.output_tokens", "0.00001"},
		{"gpt-4o-mini.input_tokens", "0.00000015"},
		{"gpt-4o-mini.cached_input_tokens", "0.000000075"},
		{"gpt-4o-mini.output_tokens", "0.0000006"},
		{"gpt-4.1.input_tokens", "0.000002"},
		{"gpt-4.1.cached_input_tokens", "0.0000005"},
		{"gpt-4.1.output_tokens", "0.000008"},
		{"gpt-4.1-mini.cached_input_tokens", "0.0000001"},
		{"gpt-4.1-nano.cached_input_tokens", "0.000000025"},
		{"gpt-4.1-nano.output_tokens", "0.0000004"},
		{"o3.input_tokens", "0.000002"},
		{"o3.reasoning_tokens", "0.000008"},
		{"o4-mini.cached_input_tokens", "0.000000275"},
		{"o4-mini.output_tokens", "0.0000044"},
		{"gpt-4o-realtime-preview-2024-12-17.audio_input_tokens", "0.00004"},
		{"gpt-4o-realtime-preview-2024-12-17.audio_output_tokens", "0.00008"},
		{"gpt-4o-mini-realtime-preview-2024-12-17.cached_audio_input_tokens", "0.0000003"},
		{"claude-sonnet-4.input_tokens", "0.000003"},
		{"claude-sonnet-4.cache_write_5m_tokens", "0.00000375"},
		{"claude-sonnet-4-20250514.cache_write_1h_tokens", "0.000006"},
		{"claude-sonnet-4.cached_input_tokens", "0.0000003"},
		{"claude-sonnet-4.output_tokens", "0.000015"},
		{"claude-opus-4.input_tokens", "0.000015"},
		{"claude-opus-4.cache_write_5m_tokens", "0.00001875"},
		{"claude-opus-4.output_tokens", "0.000075"},
		{"claude-3-5-haiku.input_tokens", "0.0000008"},
		{"claude-haiku-3.5.cache_write_5m_tokens", "0.000001"},
		{"claude-3-5-haiku-20241022.cache_write_1h_tokens", "0.0000016"},
		{"claude-3.5-haiku.cached_input_tokens", "0.00000008"},
		{"claude-3-5-haiku.output_tokens", "0.000004"},
	}
	for _, tt := range tests {
		c, err := r.Cost(tt.feature, d("1"), at)
		if assert.NoError(t, err, tt.feature) {
			assert.Truef(t, c.Price.Equal(d(tt.perUnit)), "%s: %s per token, want %s", tt.feature, c.Price, tt.perUnit)
		}
	}
}

// The o3 price cut of 2025-06-10 is two effective-dated versions.
func TestDefaultCardO3PriceCut(t *testing.T) {
	r, err := LoadWithDefault()
	require.NoError(t, err)
	for _, tt := range []struct {
		day, unit, want string
	}{
		{"2025-04-15", "input_tokens", ""}, // before o3's release
		{"2025-04-16", "input_tokens", "0.00001"},
		{"2025-06-09", "output_tokens", "0.00004"},
		{"2025-06-09", "cached_input_tokens", ""}, // launch price not sourced
		{"2025-06-10", "input_tokens", "0.000002"},
		{"2025-06-10", "cached_input_tokens", "0.0000005"},
		{"2025-06-10", "output_tokens", "0.000008"},
	} {
		p, ok := r.Price("openai", "o3", tt.unit, date(tt.day))
		if tt.want == "" {
			assert.Falsef(t, ok, "o3 %s on %s", tt.unit, tt.day)
			continue
		}
		assert.Truef(t, ok && p.Equal(d(tt.want)), "o3 %s on %s = %s, want %s", tt.unit, tt.day, p, tt.want)
	}
	// o4-mini, launched with o3, keeps its price across the cut.
	before, _ := r.Price("openai", "o4-mini", "output_tokens", date("2025-06-09"))
	after, _ := r.Price("openai", "o4-mini", "output_tokens", date("2025-06-10"))
	assert.True(t, before.Equal(after))

	old, err := New(nil)
	require.NoError(t, err)
	var o3 []string
	for _, a := range Affected(old, r) {
		if a.Key.Model == "o3" {
			o3 = append(o3, a.String())
		}
	}
	assert.Equal(t, []string{
		"openai/o3.cached_input_tokens [2025-06-10, …)",
		"openai/o3.input_tokens [2025-04-16, …)",
		"openai/o3.output_tokens [2025-04-16, …)",
	}, o3)
}

// Anthropic's cache prices are fixed multiples of the base input price.
func TestDefaultCardAnthropicCacheMultipliers(t *testing.T) {
	cards, err := DefaultCards()
	require.NoError(t, err)
	n := 0
	for _, c := range cards {
		if c.Provider != "anthropic" {
			continue
		}
		for _, m := range c.Models {
			in := m.Prices[UnitInputTokens]
			assert.Truef(t, m.Prices[UnitCacheWrite5mTokens].Equal(in.Mul(d("1.25"))), "%s 5m write = 1.25 × input", m.Name)
			assert.Truef(t, m.Prices[UnitCacheWrite1hTokens].Equal(in.Mul(d("2"))), "%s 1h write = 2 × input", m.Name)
			assert.Truef(t, m.Prices[UnitCachedInputTokens].Equal(in.Mul(d("0.1"))), "%s cache hit = 0.1 × input", m.Name)
			n++
		}
	}
	assert.Equal(t, 3, n)
}

// The demo data source charges itself June 2025 list prices; the default
// card must price its LLM features the same.
func TestDefaultCardAgreesWithDemoPrices(t *testing.T) {
	r, err := LoadWithDefault()
	require.NoError(t, err)
	n := 0
	for _, f := range demo.Features() {
		if f.Provider == "" {
			continue // api.calls and storage are the demo's own assumptions
		}
		c, err := r.Cost(f.Name, d("1"), date("2025-06-15"))
		if assert.NoError(t, err, f.Name) {
			assert.Equal(t, f.Provider, c.Key.Provider, f.Name)
			assert.Truef(t, c.Price.Equal(f.UnitCost), "%s: card %s, demo %s", f.Name, c.Price, f.UnitCost)
		}
		n++
	}
	assert.Positive(t, n)
}

func TestLoadWithDefaultOverrides(t *testing.T) {
	r, err := LoadWithDefault("testdata/user.yaml")
	require.NoError(t, err)

	c, err := r.Cost("gpt-4o.input_tokens", d("1000000"), date("2025-02-28"))
	require.NoError(t, err)
	assert.True(t, c.Amount.Equal(d("2.5")), "default before the contract")
	assert.Equal(t, 0, c.Layer)

	c, err = r.Cost("gpt-4o.input_tokens", d("1000000"), date("2025-03-01"))
	require.NoError(t, err)
	assert.True(t, c.Amount.Equal(d("2")), "the user's card overrides the default")
	assert.Equal(t, 1, c.Layer)
	assert.Equal(t, "contract #42", c.Source)

	c, err = r.Cost("gpt-4o.output_tokens", d("1000000"), date("2025-03-01"))
	require.NoError(t, err)
	assert.True(t, c.Amount.Equal(d("10")), "what the user's card does not list stays the default")

	c, err = r.Cost("api.calls", d("12345"), date("2025-03-01"))
	require.NoError(t, err)
	assert.True(t, c.Amount.Equal(d("1.2345")), "generic units: $0.10 per 1000 calls")

	// A later file overrides an earlier one.
	dir := t.TempDir()
	later := filepath.Join(dir, "later.yaml")
	require.NoError(t, os.WriteFile(later, []byte(`cards: [{provider: openai, version: l, effective_from: 2025-01-01, source: s, as_of: 2025-01-01, per: 1000000,
      models: [{model: gpt-4o, prices: {input_tokens: 1.00}}]}]`), 0o600))
	r, err = LoadWithDefault("testdata/user.yaml", later)
	require.NoError(t, err)
	p, _ := r.Price("openai", "gpt-4o", "input_tokens", date("2025-03-01"))
	assert.True(t, p.Equal(d("0.000001")))

	_, err = LoadWithDefault("testdata/invalid.yaml")
	assert.ErrorIs(t, err, ErrInvalid)
}

package pricing

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func date(s string) time.Time {
	t, err := time.Parse(dateLayout, s)
	if err != nil {
		panic(err)
	}
	return t
}

const validCard = `
cards:
  - provider: openai
    version: "2025-06-10"
    effective_from: 2025-06-10
    effective_to: 2026-01-01
    source: https://platform.openai.com/docs/pricing
    as_of: 2025-07-04
    per: 1000000
    models:
      - model: o3
        aliases: [o3-2025-04-16]
        prices: {input_tokens: 2.00, cached_input_tokens: "0.50", output_tokens: 8}
  - provider: internal
    version: v1
    effective_from: 2025-01-01
    source: finance
    as_of: 2025-01-01
    currency: EUR
    per: 1
    models:
      - model: storage
        prices: {gb_days: 0.000800001}
`

func TestParse(t *testing.T) {
	cards, err := Parse("valid.yaml", []byte(validCard))
	require.NoError(t, err)
	require.Len(t, cards, 2)

	o := cards[0]
	assert.Equal(t, "openai", o.Provider)
	assert.Equal(t, "2025-06-10", o.Version)
	assert.Equal(t, date("2025-06-10"), o.EffectiveFrom)
	assert.Equal(t, date("2026-01-01"), o.EffectiveTo)
	assert.Equal(t, date("2025-07-04"), o.AsOf)
	assert.Equal(t, "https://platform.openai.com/docs/pricing", o.Source)
	assert.Equal(t, "USD", o.Currency, "currency defaults to USD")
	assert.True(t, o.Per.Equal(d("1000000")))
	require.Len(t, o.Models, 1)
	assert.Equal(t, "o3", o.Models[0].Name)
	assert.Equal(t, []string{"o3-2025-04-16"}, o.Models[0].Aliases)
	// Prices per 1M become exact per-unit prices, whether written as YAML
	// numbers or strings.
	for unit, want := range map[string]string{"input_tokens": "0.000002", "cached_input_tokens": "0.0000005", "output_tokens": "0.000008"} {
		assert.Truef(t, o.Models[0].Prices[unit].Equal(d(want)), "%s = %s, want %s", unit, o.Models[0].Prices[unit], want)
	}

	i := cards[1]
	assert.Equal(t, "EUR", i.Currency)
	assert.True(t, i.EffectiveTo.IsZero(), "no effective_to: open-ended")
	assert.True(t, i.Models[0].Prices["gb_days"].Equal(d("0.000800001")), "9 decimals kept exactly")
}

// card wraps one card's YAML fields (indented by four spaces) in a file.
func card(fields string) string { return "cards:\n  - " + strings.TrimPrefix(fields, "    ") }

const base = `    provider: openai
    version: v1
    effective_from: 2025-01-01
    source: s
    as_of: 2025-01-01
    per: 1000000
`

func TestParseProblems(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string // every problem, as its String() contains
	}{
		{"not yaml", "cards: [", []string{"f.yaml: not a valid card file"}},
		{"unknown field", card(base + "    colour: red\n    models: [{model: m, prices: {u: 1}}]\n"), []string{"f.yaml: not a valid card file", "colour"}},
		{"no cards", "cards: []\n", []string{"f.yaml: cards: no cards"}},
		{"missing fields", "cards:\n  - models: [{model: m, prices: {u: 1}}]\n", []string{
			"cards[0]: provider: is required",
			"cards[0]: version: is required",
			"cards[0]: source: is required",
			"cards[0]: effective_from: is required",
			"cards[0]: as_of: is required",
			"cards[0]: per: is required",
		}},
		{"bad provider", card(strings.Replace(base, "openai", "Open AI", 1) + "    models: [{model: m, prices: {u: 1}}]\n"), []string{"cards[0] (Open AI v1): provider: must be lowercase"}},
		{"bad dates", card(strings.Replace(strings.Replace(base, "as_of: 2025-01-01", "as_of: 1/1/2025", 1), "effective_from: 2025-01-01", "effective_from: 2025-02-30", 1) + "    models: [{model: m, prices: {u: 1}}]\n"), []string{
			"cards[0] (openai v1): effective_from: must be a date YYYY-MM-DD, got \"2025-02-30\"",
			"cards[0] (openai v1): as_of: must be a date YYYY-MM-DD",
		}},
		{"effective_to not after from", card(base + "    effective_to: 2025-01-01\n    models: [{model: m, prices: {u: 1}}]\n"), []string{"effective_to: must be after effective_from"}},
		{"bad currency", card(base + "    currency: usd\n    models: [{model: m, prices: {u: 1}}]\n"), []string{"currency: must be an ISO 4217 code"}},
		{"per not a power of ten", card(strings.Replace(base, "per: 1000000", "per: 250", 1) + "    models: [{model: m, prices: {u: 1}}]\n"), []string{"per: must be a power of ten"}},
		{"per zero", card(strings.Replace(base, "per: 1000000", "per: 0", 1) + "    models: [{model: m, prices: {u: 1}}]\n"), []string{"per: must be a positive power of ten"}},
		{"no models", card(base), []string{"cards[0] (openai v1): models: no models"}},
		{"model problems", card(base + `    models:
      - prices: {input_tokens: 1}
      - model: gpt 4o
        prices: {input_tokens: 1}
      - model: a
        aliases: [b, a, ""]
        prices: {}
      - model: b
        prices: {input_tokens: 1}
`), []string{
			"cards[0] (openai v1): models[0]: model: is required",
			"models[1] (gpt 4o): model: must start with a letter or digit",
			"models[2] (a): aliases[1]: \"a\" is already used by model \"a\"",
			"models[2] (a): aliases[2]: must not be empty",
			"models[2] (a): prices: no prices",
			"models[3] (b): model: \"b\" is already used by model \"a\"",
		}},
		{"price problems", card(base + `    models:
      - model: m
        prices:
          input_tokens: abc
          output_tokens: -1
          cached_input_tokens: "0.0001"
          reasoning_tokens: 8
          Audio: 1
          requests: ~
`), []string{
			"models[0] (m): prices.Audio: unit must be lowercase",
			"models[0] (m): prices.cached_input_tokens: 0.0001 per 1000000 units is 0.0000000001 per unit, more than 9 decimal places",
			"models[0] (m): prices.input_tokens: must be a decimal number such as \"12.50\", got \"abc\"",
			"models[0] (m): prices.output_tokens: must not be negative",
			"models[0] (m): prices.reasoning_tokens: \"reasoning_tokens\" is an alias of \"output_tokens\"",
			"models[0] (m): prices.requests: has no price",
		}},
		{"hostile exponents", card(base + `    models:
      - model: m
        prices:
          input_tokens: 1e-30000000
          output_tokens: "9e99999999"
`), []string{
			"models[0] (m): prices.input_tokens: has an exponent beyond what the field holds",
			"models[0] (m): prices.output_tokens: has an exponent beyond what the field holds",
		}},
		{"price as a list", card(base + "    models: [{model: m, prices: {u: [1]}}]\n"), []string{"not a valid card file", "want a single value"}},
		{"duplicate card", "cards:\n  - " + strings.TrimPrefix(base, "    ") + "    models: [{model: m, prices: {u: 1}}]\n  - " + strings.TrimPrefix(strings.Replace(base, "version: v1", "version: v2", 1), "    ") + "    models: [{model: m, prices: {u: 2}}]\n",
			[]string{"cards[1] (openai v2): effective_from: openai already has a card effective from 2025-01-01 (cards[0] (openai v1))"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("f.yaml", []byte(tt.yaml))
			require.Error(t, err)
			assert.True(t, errors.Is(err, ErrInvalid))
			var ve *ValidationError
			require.True(t, errors.As(err, &ve))
			if strings.HasPrefix(tt.want[0], "f.yaml: not a valid") || tt.want[0] == "not a valid card file" {
				require.Len(t, ve.Problems, 1)
				for _, w := range tt.want {
					assert.Contains(t, ve.Problems[0].String(), w)
				}
				return
			}
			got := make([]string, len(ve.Problems))
			for i, p := range ve.Problems {
				got[i] = p.String()
				assert.Equal(t, "f.yaml", p.File)
			}
			require.Lenf(t, got, len(tt.want), "problems: %q", got)
			for i, w := range tt.want {
				assert.Contains(t, got[i], w)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	cards, err := Load("testdata/user.yaml")
	require.NoError(t, err)
	require.Len(t, cards, 2)
	assert.True(t, cards[1].Models[0].Prices["calls"].Equal(d("0.0001")), "0.10 per 1000 calls")

	_, err = Load("testdata/invalid.yaml")
	var ve *ValidationError
	require.True(t, errors.As(err, &ve))
	assert.Equal(t, []string{
		"invalid.yaml: cards[0] (OpenAI): provider: must be lowercase letters, digits, '-' or '_', got \"OpenAI\"",
		"invalid.yaml: cards[0] (OpenAI): version: is required (name this version of the price list, e.g. its date)",
		"invalid.yaml: cards[0] (OpenAI): source: is required (the URL or name of the published price list)",
		"invalid.yaml: cards[0] (OpenAI): effective_from: must be a date YYYY-MM-DD, got \"2025-13-01\"",
		"invalid.yaml: cards[0] (OpenAI): models[0] (gpt-4o): prices.input_tokens: must be a decimal number such as \"12.50\", got \"abc\"",
	}, problemStrings(ve))

	_, err = Load("testdata/missing.yaml")
	require.Error(t, err)
	assert.False(t, errors.Is(err, ErrInvalid))
}

func problemStrings(ve *ValidationError) []string {
	out := make([]string, len(ve.Problems))
	for i, p := range ve.Problems {
		out[i] = p.String()
	}
	return out
}

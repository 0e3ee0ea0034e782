package pricing

import (
	"errors"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// mustParse parses a card file of the tests.
func mustParse(t *testing.T, yaml string) []Card {
	t.Helper()
	cs, err := Parse("test.yaml", []byte(yaml))
	require.NoError(t, err)
	return cs
}

// defaultLayer is a small default card: an open-ended base card, a newer card
// that changes gpt-4o's output price only, and a card with an end.
const defaultLayer = `
cards:
  - {provider: openai, version: base, effective_from: 2025-01-01, source: s, as_of: 2025-01-01, per: 1000000,
     models: [
       {model: gpt-4o, aliases: [gpt-4o-2024-08-06], prices: {input_tokens: 2.50, cached_input_tokens: 1.25, output_tokens: 10}},
       {model: gpt-4o-mini, prices: {input_tokens: 0.15, output_tokens: 0.60}}]}
  - {provider: openai, version: cut, effective_from: 2025-06-01, source: s, as_of: 2025-06-01, per: 1000000,
     models: [{model: gpt-4o, prices: {output_tokens: 8}}]}
  - {provider: openai, version: promo, effective_from: 2025-02-01, effective_to: 2025-03-01, source: s, as_of: 2025-02-01, per: 1000000,
     models: [{model: gpt-4o-mini, prices: {input_tokens: 0.10}}]}
  - {provider: anthropic, version: a1, effective_from: 2025-05-22, source: s, as_of: 2025-05-22, per: 1000000,
     models: [{model: claude-sonnet-4, aliases: [claude-sonnet-4-20250514], prices: {input_tokens: 3, output_tokens: 15}}]}
`

// userLayer overrides gpt-4o input from an earlier date than the default's
// newest card: the layer, not the date, decides.
const userLayer = `
cards:
  - {provider: openai, version: contract, effective_from: 2025-03-01, source: contract, as_of: 2025-02-15, per: 1000000,
     models: [{model: gpt-4o, prices: {input_tokens: 2.00}}]}
`

func testCard(t *testing.T) *RateCard {
	t.Helper()
	r, err := New(mustParse(t, defaultLayer), mustParse(t, userLayer))
	require.NoError(t, err)
	return r
}

func TestPrice(t *testing.T) {
	r := testCard(t)
	ny, _ := time.LoadLocation("America/New_York")
	tests := []struct {
		name                  string
		provider, model, unit string
		at                    time.Time
		want                  string // "" = not found
		version               string
	}{
		{"before any card", "openai", "gpt-4o", "input_tokens", date("2024-12-31"), "", ""},
		{"first day of a card", "openai", "gpt-4o", "input_tokens", date("2025-01-01"), "0.0000025", "base"},
		{"user layer from its first day", "openai", "gpt-4o", "input_tokens", date("2025-03-01"), "0.000002", "contract"},
		{"user layer beats a newer default card", "openai", "gpt-4o", "input_tokens", date("2025-07-01"), "0.000002", "contract"},
		{"newer card for what it lists", "openai", "gpt-4o", "output_tokens", date("2025-06-01"), "0.000008", "cut"},
		{"day before the newer card", "openai", "gpt-4o", "output_tokens", date("2025-05-31"), "0.00001", "base"},
		{"older card for what the newer omits", "openai", "gpt-4o", "cached_input_tokens", date("2025-07-01"), "0.00000125", "base"},
		{"bounded card inside", "openai", "gpt-4o-mini", "input_tokens", date("2025-02-28"), "0.0000001", "promo"},
		{"bounded card on its effective_to", "openai", "gpt-4o-mini", "input_tokens", date("2025-03-01"), "0.00000015", "base"},
		{"alias", "openai", "gpt-4o-2024-08-06", "output_tokens", date("2025-01-15"), "0.00001", "base"},
		{"unit alias", "openai", "gpt-4o", "reasoning_tokens", date("2025-01-15"), "0.00001", "base"},
		{"time of day ignored", "openai", "gpt-4o", "output_tokens", time.Date(2025, 5, 31, 23, 59, 59, 0, time.UTC), "0.00001", "base"},
		{"UTC day of a zoned time", "openai", "gpt-4o", "output_tokens", time.Date(2025, 5, 31, 21, 0, 0, 0, ny), "0.000008", "cut"},
		{"unpriced unit", "openai", "gpt-4o-mini", "cached_input_tokens", date("2025-07-01"), "", ""},
		{"unknown model", "openai", "gpt-5", "input_tokens", date("2025-07-01"), "", ""},
		{"model of another provider", "openai", "claude-sonnet-4", "input_tokens", date("2025-07-01"), "", ""},
		{"unknown provider", "mistral", "gpt-4o", "input_tokens", date("2025-07-01"), "", ""},
		{"second provider", "anthropic", "claude-sonnet-4-20250514", "output_tokens", date("2025-05-22"), "0.000015", "a1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, ok := r.Price(tt.provider, tt.model, tt.unit, tt.at)
			q, qok := r.Lookup(tt.provider, tt.model, tt.unit, tt.at)
			assert.Equal(t, ok, qok)
			if tt.want == "" {
				assert.False(t, ok)
				return
			}
			require.True(t, ok)
			assert.Truef(t, p.Equal(d(tt.want)), "price %s, want %s", p, tt.want)
			assert.Equal(t, tt.version, q.Version)
			assert.Equal(t, "USD", q.Currency)
		})
	}
}

func TestNewRejectsAliasConflicts(t *testing.T) {
	a := mustParse(t, `cards: [{provider: openai, version: a, effective_from: 2025-01-01, source: s, as_of: 2025-01-01, per: 1,
      models: [{model: gpt-4o, aliases: [latest], prices: {u: 1}}]}]`)
	b := mustParse(t, `cards: [{provider: openai, version: b, effective_from: 2025-02-01, source: s, as_of: 2025-01-01, per: 1,
      models: [{model: gpt-4.1, aliases: [latest], prices: {u: 1}}]}]`)
	_, err := New(a, b)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `latest names both model "gpt-4o" and model "gpt-4.1" of openai (card b)`)

	// A cycle of aliases, and one card pricing a model under two names.
	cyc1 := mustParse(t, `cards: [{provider: openai, version: c1, effective_from: 2025-01-01, source: s, as_of: 2025-01-01, per: 1,
      models: [{model: x, aliases: [y], prices: {u: 1}}]}]`)
	cyc2 := mustParse(t, `cards: [{provider: openai, version: c2, effective_from: 2025-01-01, source: s, as_of: 2025-01-01, per: 1,
      models: [{model: y, aliases: [x], prices: {u: 1}}]}]`)
	_, err = New(cyc1, cyc2)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "aliases of openai form a cycle")
	twice := mustParse(t, `cards: [{provider: openai, version: t, effective_from: 2025-03-01, source: s, as_of: 2025-01-01, per: 1,
      models: [{model: gpt-4o, prices: {u: 1}}, {model: latest, prices: {u: 2}}]}]`)
	_, err = New(a, twice)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `card t of openai prices model "gpt-4o" twice, as "gpt-4o" and "latest"`)

	// A later card may name the model by an earlier card's alias.
	r, err := New(a, mustParse(t, `cards: [{provider: openai, version: d, effective_from: 2025-03-01, source: s, as_of: 2025-01-01, per: 1,
      models: [{model: latest, prices: {u: 2}}]}]`))
	require.NoError(t, err)
	p, ok := r.Price("openai", "gpt-4o", "u", date("2025-03-01"))
	assert.True(t, ok)
	assert.True(t, p.Equal(d("2")))

	// The same alias on different providers is fine.
	c := mustParse(t, `cards: [{provider: azure, version: c, effective_from: 2025-01-01, source: s, as_of: 2025-01-01, per: 1,
      models: [{model: gpt-4.1, aliases: [latest], prices: {u: 1}}]}]`)
	_, err = New(a, c)
	assert.NoError(t, err)
}

func TestParseFeature(t *testing.T) {
	tests := []struct {
		feature string
		want    Key
		err     string
	}{
		{"gpt-4o.input_tokens", Key{Model: "gpt-4o", Unit: "input_tokens"}, ""},
		{"gpt-4.1.cached_input_tokens", Key{Model: "gpt-4.1", Unit: "cached_input_tokens"}, ""},
		{"claude-3.5-haiku.output_tokens", Key{Model: "claude-3.5-haiku", Unit: "output_tokens"}, ""},
		{"anthropic/claude-sonnet-4.cache_write_1h_tokens", Key{Provider: "anthropic", Model: "claude-sonnet-4", Unit: "cache_write_1h_tokens"}, ""},
		{"o3.reasoning_tokens", Key{Model: "o3", Unit: "output_tokens"}, ""},
		{"claude-opus-4.cache_read_tokens", Key{Model: "claude-opus-4", Unit: "cached_input_tokens"}, ""},
		{"api.calls", Key{Model: "api", Unit: "calls"}, ""},
		{"storage.gb_days", Key{Model: "storage", Unit: "gb_days"}, ""},
		{"gpt-4o", Key{}, "want [provider/]model.unit"},
		{"gpt-4o.", Key{}, "want [provider/]model.unit"},
		{".input_tokens", Key{}, "want [provider/]model.unit"},
		{"OpenAI/gpt-4o.input_tokens", Key{}, "provider \"OpenAI\""},
		{"gpt 4o.input_tokens", Key{}, "model \"gpt 4o\""},
		{"gpt-4o.Input", Key{}, "unit \"Input\""},
	}
	for _, tt := range tests {
		t.Run(tt.feature, func(t *testing.T) {
			k, err := ParseFeature(tt.feature)
			if tt.err != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, k)
		})
	}
	assert.Equal(t, "gpt-4.1.input_tokens", Key{Provider: "openai", Model: "gpt-4.1", Unit: "input_tokens"}.Feature())
	assert.Equal(t, "openai/gpt-4.1.input_tokens", Key{Provider: "openai", Model: "gpt-4.1", Unit: "input_tokens"}.String())
}

func TestResolve(t *testing.T) {
	both := mustParse(t, `cards: [{provider: azure, version: z, effective_from: 2025-01-01, source: s, as_of: 2025-01-01, per: 1000000,
      models: [{model: gpt-4o, prices: {input_tokens: 2.75}}]}]`)
	r, err := New(mustParse(t, defaultLayer), both)
	require.NoError(t, err)
	tests := []struct {
		feature string
		want    Key
		err     string
		noPrice bool
	}{
		{"gpt-4o-mini.input_tokens", Key{"openai", "gpt-4o-mini", "input_tokens"}, "", false},
		{"claude-sonnet-4-20250514.reasoning_tokens", Key{"anthropic", "claude-sonnet-4", "output_tokens"}, "", false},
		{"openai/gpt-4o.input_tokens", Key{"openai", "gpt-4o", "input_tokens"}, "", false},
		{"azure/gpt-4o.input_tokens", Key{"azure", "gpt-4o", "input_tokens"}, "", false},
		{"openai/gpt-4o-2024-08-06.input_tokens", Key{"openai", "gpt-4o", "input_tokens"}, "", false},
		{"gpt-4o.input_tokens", Key{}, `model "gpt-4o" is priced by azure and openai; name the provider, e.g. azure/gpt-4o.input_tokens`, false},
		{"gpt-5.input_tokens", Key{}, `no rate card prices model "gpt-5"`, true},
		{"gpt-5", Key{}, "want [provider/]model.unit", false},
	}
	for _, tt := range tests {
		t.Run(tt.feature, func(t *testing.T) {
			k, err := r.Resolve(tt.feature)
			if tt.err != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.err)
				assert.Equal(t, tt.noPrice, errors.Is(err, ErrNoPrice))
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, k)
		})
	}
}

func TestCost(t *testing.T) {
	r := testCard(t)
	tests := []struct {
		feature  string
		quantity string
		at       time.Time
		want     string
		version  string
		err      string
	}{
		// 1,234,567 tokens × $2.50/1M = $3.0864175 exactly.
		{"gpt-4o.input_tokens", "1234567", date("2025-01-10"), "3.0864175", "base", ""},
		// The user's contract price from March: × $2.00/1M.
		{"gpt-4o.input_tokens", "1234567", date("2025-03-10"), "2.469134", "contract", ""},
		{"gpt-4o.reasoning_tokens", "1000", date("2025-06-01"), "0.008", "cut", ""},
		// Fractional quantities round half to even at 9 places:
		// 0.5 × 0.00000015 = 0.000000075 (exact); 0.3 × 0.00000015 = 0.000000045;
		// 0.0001 × 0.00000015 = 0.000000000015 → 0; 0.01 × 0.00000015 = 0.0000000015 → 0.000000002.
		{"gpt-4o-mini.input_tokens", "0.5", date("2025-01-10"), "0.000000075", "base", ""},
		{"gpt-4o-mini.input_tokens", "0.0001", date("2025-01-10"), "0", "base", ""},
		{"gpt-4o-mini.input_tokens", "0.01", date("2025-01-10"), "0.000000002", "base", ""},
		{"gpt-4o-mini.input_tokens", "0.03", date("2025-01-10"), "0.000000004", "base", ""}, // 4.5 → 4
		{"gpt-4o-mini.input_tokens", "0", date("2025-01-10"), "0", "base", ""},
		{"gpt-4o-mini.cached_input_tokens", "10", date("2025-01-10"), "", "", "no card prices openai/gpt-4o-mini.cached_input_tokens on 2025-01-10"},
		{"gpt-4o.input_tokens", "10", date("2024-12-31"), "", "", "no card prices openai/gpt-4o.input_tokens on 2024-12-31"},
		{"nope.input_tokens", "10", date("2025-01-10"), "", "", `no rate card prices model "nope"`},
	}
	for _, tt := range tests {
		t.Run(tt.feature+"@"+tt.quantity, func(t *testing.T) {
			c, err := r.Cost(tt.feature, d(tt.quantity), tt.at)
			if tt.err != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.err)
				assert.True(t, errors.Is(err, ErrNoPrice))
				return
			}
			require.NoError(t, err)
			assert.Truef(t, c.Amount.Equal(d(tt.want)), "cost %s, want %s", c.Amount, tt.want)
			assert.Equal(t, tt.version, c.Version)
			assert.True(t, c.Quantity.Equal(d(tt.quantity)))
		})
	}
}

func TestAffected(t *testing.T) {
	old, err := New(mustParse(t, defaultLayer))
	require.NoError(t, err)

	withLayer := func(yaml string) *RateCard {
		t.Helper()
		r, err := New(mustParse(t, defaultLayer), mustParse(t, yaml))
		require.NoError(t, err)
		return r
	}
	key := func(model, unit string) Key { return Key{Provider: "openai", Model: model, Unit: unit} }
	tests := []struct {
		name string
		new  *RateCard
		want []string
	}{
		{"same cards", old, nil},
		{"open-ended user override", withLayer(userLayer), []string{
			// 2.50 → 2.00 from March on.
			"openai/gpt-4o.input_tokens [2025-03-01, …)",
		}},
		{"bounded override", withLayer(`cards: [{provider: openai, version: x, effective_from: 2025-04-01, effective_to: 2025-04-15, source: s, as_of: 2025-04-01, per: 1000000,
            models: [{model: gpt-4o-2024-08-06, prices: {output_tokens: 9, cached_input_tokens: 1.25}}]}]`), []string{
			// cached input repeats the old price: not affected; output only
			// for the days the override covers; the alias is canonical.
			"openai/gpt-4o.output_tokens [2025-04-01, 2025-04-15)",
		}},
		{"override reaching across a default change", withLayer(`cards: [{provider: openai, version: x, effective_from: 2025-05-01, effective_to: 2025-07-01, source: s, as_of: 2025-04-01, per: 1000000,
            models: [{model: gpt-4o, prices: {output_tokens: 8}}]}]`), []string{
			// From June the default already charges 8: only May changes.
			"openai/gpt-4o.output_tokens [2025-05-01, 2025-06-01)",
		}},
		{"new price where there was none", withLayer(`cards: [{provider: openai, version: x, effective_from: 2025-02-15, source: s, as_of: 2025-02-15, per: 1000000,
            models: [{model: gpt-4o-mini, prices: {cached_input_tokens: 0.075}}]}]`), []string{
			"openai/gpt-4o-mini.cached_input_tokens [2025-02-15, …)",
		}},
		{"currency change", withLayer(`cards: [{provider: openai, version: x, effective_from: 2025-01-01, effective_to: 2025-01-02, currency: EUR, source: s, as_of: 2025-01-01, per: 1000000,
            models: [{model: gpt-4o-mini, prices: {output_tokens: 0.60}}]}]`), []string{
			"openai/gpt-4o-mini.output_tokens [2025-01-01, 2025-01-02)",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, r := range Affected(old, tt.new) {
				got = append(got, r.String())
			}
			assert.Equal(t, tt.want, got)
		})
	}

	// A price removed (the promo card dropped) is affected too, and the
	// relation is symmetric.
	noPromo := mustParse(t, defaultLayer)
	noPromo = append(noPromo[:2], noPromo[3:]...)
	without, err := New(noPromo)
	require.NoError(t, err)
	want := []DateRange{{Key: key("gpt-4o-mini", "input_tokens"), From: date("2025-02-01"), To: date("2025-03-01")}}
	assert.Equal(t, want, Affected(old, without))
	assert.Equal(t, want, Affected(without, old))
}

// Every day inside a range Affected returns has a different price in the two
// sets, and every day outside has the same: checked day by day over two years.
func TestAffectedMatchesDayByDay(t *testing.T) {
	old, err := New(mustParse(t, defaultLayer))
	require.NoError(t, err)
	new, err := New(mustParse(t, defaultLayer), mustParse(t, userLayer), mustParse(t, `cards: [{provider: openai, version: x, effective_from: 2025-05-01, effective_to: 2025-07-01, source: s, as_of: 2025-04-01, per: 1000000,
            models: [{model: gpt-4o, prices: {output_tokens: 8}}, {model: gpt-4o-mini, prices: {input_tokens: 0.10}}]}]`))
	require.NoError(t, err)
	ranges := Affected(old, new)
	in := func(k Key, day time.Time) bool {
		for _, r := range ranges {
			if r.Key == k && !day.Before(r.From) && (r.To.IsZero() || day.Before(r.To)) {
				return true
			}
		}
		return false
	}
	keys := []Key{
		{"openai", "gpt-4o", "input_tokens"}, {"openai", "gpt-4o", "cached_input_tokens"}, {"openai", "gpt-4o", "output_tokens"},
		{"openai", "gpt-4o-mini", "input_tokens"}, {"openai", "gpt-4o-mini", "output_tokens"}, {"anthropic", "claude-sonnet-4", "input_tokens"},
	}
	for day := date("2024-12-01"); day.Before(date("2026-12-01")); day = day.AddDate(0, 0, 1) {
		for _, k := range keys {
			op, ook := old.Price(k.Provider, k.Model, k.Unit, day)
			np, nok := new.Price(k.Provider, k.Model, k.Unit, day)
			differs := ook != nok || !op.Equal(np)
			assert.Equalf(t, differs, in(k, day), "%s on %s: old %s (%v), new %s (%v)", k, day.Format(dateLayout), op, ook, np, nok)
		}
	}
}

var _ = decimal.Zero

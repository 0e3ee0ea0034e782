package pricing

import (
	"fmt"
	"strings"
)

// Token classes: the units LLM providers bill separately. A card may price
// any other unit too ("requests", "gb_days", "calls").
const (
	// UnitInputTokens are uncached prompt tokens.
	UnitInputTokens = "input_tokens"
	// UnitCachedInputTokens are prompt tokens read from the provider's
	// prompt cache (OpenAI "cached input", Anthropic "cache hits").
	UnitCachedInputTokens = "cached_input_tokens"
	// UnitCacheWrite5mTokens and UnitCacheWrite1hTokens are prompt tokens
	// written to the cache with a 5-minute or 1-hour lifetime (Anthropic).
	UnitCacheWrite5mTokens = "cache_write_5m_tokens"
	UnitCacheWrite1hTokens = "cache_write_1h_tokens"
	// UnitOutputTokens are generated tokens, reasoning tokens included:
	// providers bill reasoning at the output price.
	UnitOutputTokens = "output_tokens"
	// Audio tokens of the realtime and audio models.
	UnitAudioInputTokens       = "audio_input_tokens"
	UnitCachedAudioInputTokens = "cached_audio_input_tokens"
	UnitAudioOutputTokens      = "audio_output_tokens"
)

// unitAliases are other names sources use for a token class. A feature may
// use them; a card must price the canonical unit.
var unitAliases = map[string]string{
	"reasoning_tokens":        UnitOutputTokens,      // billed as output
	"cache_read_tokens":       UnitCachedInputTokens, // Anthropic's API name
	"cache_read_input_tokens": UnitCachedInputTokens,
	"cache_write_tokens":      UnitCacheWrite5mTokens, // 5 minutes is Anthropic's default lifetime
	"cache_creation_tokens":   UnitCacheWrite5mTokens,
}

// CanonicalUnit returns the unit a card prices for unit: itself, or the
// canonical token class of an alias such as reasoning_tokens.
func CanonicalUnit(unit string) string {
	if c, ok := unitAliases[unit]; ok {
		return c
	}
	return unit
}

// Key names one priced item: a unit of a provider's model.
type Key struct {
	Provider string
	Model    string
	Unit     string
}

// Feature is the uvr feature name of k, "<model>.<unit>".
func (k Key) Feature() string { return k.Model + "." + k.Unit }

func (k Key) String() string { return k.Provider + "/" + k.Model + "." + k.Unit }

// ParseFeature splits a uvr feature name into its key, following the
// convention
//
//	[provider/]model.unit
//
// The unit is what follows the last dot, so model names may hold dots
// ("gpt-4.1.input_tokens" is model gpt-4.1, unit input_tokens); the provider
// is optional and left empty when absent ([RateCard.Resolve] finds it from
// the cards). Unit aliases are returned canonical ("o3.reasoning_tokens" has
// unit output_tokens). Non-LLM features follow the same rule: "api.calls" is
// model "api", unit "calls".
func ParseFeature(feature string) (Key, error) {
	var k Key
	rest := feature
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		k.Provider, rest = rest[:i], rest[i+1:]
		if !namePattern.MatchString(k.Provider) {
			return Key{}, fmt.Errorf("feature %q: provider %q must be lowercase letters, digits, '-' or '_'", feature, k.Provider)
		}
	}
	i := strings.LastIndexByte(rest, '.')
	if i <= 0 || i == len(rest)-1 {
		return Key{}, fmt.Errorf("feature %q: want [provider/]model.unit, e.g. gpt-4o.input_tokens", feature)
	}
	k.Model, k.Unit = rest[:i], CanonicalUnit(rest[i+1:])
	if !modelPattern.MatchString(k.Model) {
		return Key{}, fmt.Errorf("feature %q: model %q holds characters a model name cannot", feature, k.Model)
	}
	if !unitPattern.MatchString(k.Unit) {
		return Key{}, fmt.Errorf("feature %q: unit %q must be lowercase letters, digits and '_'", feature, k.Unit)
	}
	return k, nil
}

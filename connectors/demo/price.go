package demo

import (
	"github.com/shopspring/decimal"
)

// Currency of every amount and cost the demo emits.
const Currency = "USD"

// Token classes: the suffix of an LLM feature name ("gpt-4o.output_tokens").
const (
	ClassInput       = "input_tokens"
	ClassCachedInput = "cached_input_tokens"
	ClassOutput      = "output_tokens"
)

// Non-LLM features.
const (
	FeatureAPICalls = "api.calls"
	FeatureStorage  = "storage.gb_days"
)

// modelPrices is the one price table of the demo: USD list prices per
// 1,000,000 tokens, standard (non-batch) tier, as published on
// openai.com/api/pricing and anthropic.com/pricing in June 2025:
//   - gpt-4o (2024-08-06 snapshot pricing, cached input since October 2024),
//   - gpt-4o-mini,
//   - Claude Sonnet 4 at its May 2025 launch price; "cached" is the prompt
//     cache read (hit) price; cache writes ($3.75) are not modelled.
//
// Every price has at most 3 decimals, so the per-token price has at most 9
// and a token count times it is exact within event.MaxScale.
var modelPrices = []struct {
	model, provider       string
	input, cached, output string
}{
	{"gpt-4o-mini", "openai", "0.15", "0.075", "0.60"},
	{"gpt-4o", "openai", "2.50", "1.25", "10.00"},
	{"claude-sonnet-4", "anthropic", "3.00", "0.30", "15.00"},
}

// Infrastructure unit costs (assumptions of the demo, not list prices):
// apiCallCost is $0.10 per 1,000 calls of gateway and compute; storageGBDay
// is S3 Standard's $0.023 per GB-month (us-east-1, first 50 TB) rounded up
// to $0.0008 per GB-day.
const (
	apiCallCost  = "0.0001"
	storageGBDay = "0.0008"
)

// Feature is one metered feature of the demo with the unit cost the demo
// charges itself for it.
type Feature struct {
	Name     string          // e.g. "gpt-4o.cached_input_tokens", "api.calls"
	Unit     string          // "tokens", "calls" or "GB-days"
	Model    string          // LLM model, empty for api.calls and storage
	Provider string          // "openai" or "anthropic", empty for non-LLM features
	Class    string          // ClassInput, ClassCachedInput or ClassOutput; empty for non-LLM
	UnitCost decimal.Decimal // USD per one unit
}

// Features lists every feature the demo can emit: per model (in the order of
// the price table) input, cached input and output tokens, then api.calls and
// storage.gb_days. The slice is new on every call.
func Features() []Feature {
	fs := make([]Feature, 0, 3*len(modelPrices)+2)
	for _, m := range modelPrices {
		for _, c := range []struct{ class, perMillion string }{
			{ClassInput, m.input}, {ClassCachedInput, m.cached}, {ClassOutput, m.output},
		} {
			fs = append(fs, Feature{
				Name:     m.model + "." + c.class,
				Unit:     "tokens",
				Model:    m.model,
				Provider: m.provider,
				Class:    c.class,
				UnitCost: decimal.RequireFromString(c.perMillion).Shift(-6),
			})
		}
	}
	return append(fs,
		Feature{Name: FeatureAPICalls, Unit: "calls", UnitCost: decimal.RequireFromString(apiCallCost)},
		Feature{Name: FeatureStorage, Unit: "GB-days", UnitCost: decimal.RequireFromString(storageGBDay)},
	)
}

// Plan names.
const (
	PlanStarter    = "starter"
	PlanPro        = "pro"
	PlanEnterprise = "enterprise"
)

// Plan is a subscription tier of the demo company.
type Plan struct {
	Name         string
	MonthlyPrice decimal.Decimal // USD per billing month, paid in advance
	// IncludedTokens is the LLM token quota (all models and classes) a
	// billing month includes; usage far above it marks an upsell candidate.
	IncludedTokens int64
}

// Plans lists the three tiers, cheapest first. The slice is new on every call.
func Plans() []Plan {
	return []Plan{
		{Name: PlanStarter, MonthlyPrice: decimal.RequireFromString("49.00"), IncludedTokens: 5_000_000},
		{Name: PlanPro, MonthlyPrice: decimal.RequireFromString("499.00"), IncludedTokens: 100_000_000},
		{Name: PlanEnterprise, MonthlyPrice: decimal.RequireFromString("4999.00"), IncludedTokens: 1_000_000_000},
	}
}

// PlanByName returns the plan called name.
func PlanByName(name string) (Plan, bool) {
	for _, p := range Plans() {
		if p.Name == name {
			return p, true
		}
	}
	return Plan{}, false
}

package pricing

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"github.com/uvrhq/uvr/pipeline/event"
	"gopkg.in/yaml.v3"
)

// Card is one version of one provider's price list: the prices it quotes
// apply to the UTC days [EffectiveFrom, EffectiveTo). A card need only list
// what it prices; see [RateCard] for how cards combine.
type Card struct {
	Provider string // e.g. "openai", "anthropic", or your own ("internal")
	Version  string // free text naming this version, e.g. "2025-06-10"
	// EffectiveFrom is the first day the card applies (00:00 UTC).
	EffectiveFrom time.Time
	// EffectiveTo is the first day it no longer applies; zero means open-ended.
	EffectiveTo time.Time
	Source      string    // URL or name of the published price list
	AsOf        time.Time // the day the prices were read from Source
	Currency    string    // ISO 4217; USD when the file leaves it out
	// Per is the number of units the file's prices are quoted for (1,
	// 1000, 1000000…); the prices below are already per one unit.
	Per    decimal.Decimal
	Models []Model
}

// Model is one priced model (or, for generic units, any priced thing such
// as "api" or "storage") of a card.
type Model struct {
	Name    string
	Aliases []string // other names of the same model, e.g. dated snapshots
	// Prices maps a unit (e.g. "input_tokens", "requests") to its price per
	// one unit, in the card's currency.
	Prices map[string]decimal.Decimal
}

// Problem is one reason a card file is invalid: the file, the entry (a card,
// a model or an FX line) and the field.
type Problem struct {
	File   string
	Entry  string
	Field  string
	Reason string
}

func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Entry != "" {
		b.WriteString(": " + p.Entry)
	}
	if p.Field != "" {
		b.WriteString(": " + p.Field)
	}
	b.WriteString(": " + p.Reason)
	return b.String()
}

// ValidationError lists every problem found in a file, not only the first,
// so that a user can fix a whole card file in one pass.
type ValidationError struct {
	Problems []Problem
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.String()
	}
	return "invalid pricing file: " + strings.Join(parts, "; ")
}

// ErrInvalid is matched (errors.Is) by every *ValidationError, so that
// callers can map it to a 400 without a type assertion.
var ErrInvalid = errors.New("invalid pricing file")

// Is reports whether target is ErrInvalid.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalid }

// Load reads and validates a rate card file (YAML, or JSON, which YAML
// includes). Errors name the file, the card, the model and the field.
func Load(path string) ([]Card, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read rate card: %w", err)
	}
	return Parse(filepath.Base(path), b)
}

// Parse validates the card file data; name is used in error messages.
//
// The format (see docs/analytics/pricing.md and cards/llm-default.yaml):
//
//	cards:
//	  - provider: openai
//	    version: "2025-06-10"
//	    effective_from: 2025-06-10
//	    effective_to: 2026-01-01      # optional, exclusive
//	    source: https://platform.openai.com/docs/pricing
//	    as_of: 2025-07-04
//	    currency: USD                 # optional, default USD
//	    per: 1000000                  # prices below are per 1M units
//	    models:
//	      - model: o3
//	        aliases: [o3-2025-04-16]
//	        prices: {input_tokens: 2.00, cached_input_tokens: 0.50, output_tokens: 8.00}
//
// Prices may be written as YAML numbers or strings; either way their exact
// text is used.
func Parse(name string, data []byte) ([]Card, error) {
	var raw rawFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&raw); err != nil {
		return nil, &ValidationError{Problems: []Problem{{File: name, Reason: "not a valid card file: " + err.Error()}}}
	}
	v := validator{file: name}
	cards := v.cards(raw.Cards)
	if len(v.problems) > 0 {
		return nil, &ValidationError{Problems: v.problems}
	}
	return cards, nil
}

type rawFile struct {
	Cards []rawCard `yaml:"cards"`
}

type rawCard struct {
	Provider      scalar     `yaml:"provider"`
	Version       scalar     `yaml:"version"`
	EffectiveFrom scalar     `yaml:"effective_from"`
	EffectiveTo   scalar     `yaml:"effective_to"`
	Source        scalar     `yaml:"source"`
	AsOf          scalar     `yaml:"as_of"`
	Currency      scalar     `yaml:"currency"`
	Per           scalar     `yaml:"per"`
	Models        []rawModel `yaml:"models"`
}

type rawModel struct {
	Model   scalar            `yaml:"model"`
	Aliases []scalar          `yaml:"aliases"`
	Prices  map[string]scalar `yaml:"prices"`
}

// scalar keeps a YAML scalar's exact text whatever YAML would resolve it to
// (a number, a timestamp), so that "2.50" stays 2.50 and never a float.
type scalar struct {
	Value string
	Set   bool
}

func (s *scalar) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: want a single value, not a list or map", n.Line)
	}
	s.Value = strings.TrimSpace(n.Value)
	s.Set = n.Tag != "!!null" && s.Value != ""
	return nil
}

var (
	namePattern     = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)
	modelPattern    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:@-]*$`)
	unitPattern     = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	currencyPattern = regexp.MustCompile(`^[A-Z]{3}$`)
)

type validator struct {
	file     string
	problems []Problem
}

func (v *validator) add(entry, field, reason string, args ...any) {
	if len(args) > 0 {
		reason = fmt.Sprintf(reason, args...)
	}
	v.problems = append(v.problems, Problem{File: v.file, Entry: entry, Field: field, Reason: reason})
}

func (v *validator) cards(raws []rawCard) []Card {
	if len(raws) == 0 {
		v.add("", "cards", "no cards: a file lists at least one card")
		return nil
	}
	cards := make([]Card, 0, len(raws))
	seen := map[string]string{} // provider + effective_from → entry
	for i, r := range raws {
		entry := fmt.Sprintf("cards[%d]", i)
		if r.Provider.Set {
			entry += " (" + r.Provider.Value
			if r.Version.Set {
				entry += " " + r.Version.Value
			}
			entry += ")"
		}
		c := v.card(entry, r)
		if r.Provider.Set && r.EffectiveFrom.Set {
			k := r.Provider.Value + "|" + r.EffectiveFrom.Value
			if prev, dup := seen[k]; dup {
				v.add(entry, "effective_from", "%s already has a card effective from %s (%s); one file holds one card per provider and day", r.Provider.Value, r.EffectiveFrom.Value, prev)
			}
			seen[k] = entry
		}
		cards = append(cards, c)
	}
	return cards
}

func (v *validator) card(entry string, r rawCard) Card {
	c := Card{
		Provider: r.Provider.Value,
		Version:  r.Version.Value,
		Source:   r.Source.Value,
		Currency: r.Currency.Value,
	}
	switch {
	case !r.Provider.Set:
		v.add(entry, "provider", "is required")
	case !namePattern.MatchString(c.Provider):
		v.add(entry, "provider", "must be lowercase letters, digits, '-' or '_', got %q", c.Provider)
	}
	if !r.Version.Set {
		v.add(entry, "version", "is required (name this version of the price list, e.g. its date)")
	}
	if !r.Source.Set {
		v.add(entry, "source", "is required (the URL or name of the published price list)")
	}
	c.EffectiveFrom = v.day(entry, "effective_from", r.EffectiveFrom, true)
	c.EffectiveTo = v.day(entry, "effective_to", r.EffectiveTo, false)
	if !c.EffectiveFrom.IsZero() && !c.EffectiveTo.IsZero() && !c.EffectiveTo.After(c.EffectiveFrom) {
		v.add(entry, "effective_to", "must be after effective_from (it is the first day the card no longer applies)")
	}
	c.AsOf = v.day(entry, "as_of", r.AsOf, true)
	if c.Currency == "" {
		c.Currency = "USD"
	} else if !currencyPattern.MatchString(c.Currency) {
		v.add(entry, "currency", "must be an ISO 4217 code such as USD, got %q", c.Currency)
	}

	perExp, perOK := v.per(entry, r.Per)
	if perOK {
		c.Per = decimal.New(1, perExp)
	}
	if len(r.Models) == 0 {
		v.add(entry, "models", "no models: a card prices at least one")
	}
	names := map[string]string{} // model name or alias → model it names
	for j, rm := range r.Models {
		me := fmt.Sprintf("%s: models[%d]", entry, j)
		if rm.Model.Set {
			me += " (" + rm.Model.Value + ")"
		}
		m := Model{Name: rm.Model.Value, Prices: map[string]decimal.Decimal{}}
		switch {
		case !rm.Model.Set:
			v.add(me, "model", "is required")
		case !modelPattern.MatchString(m.Name):
			v.add(me, "model", "must start with a letter or digit and hold only letters, digits and . _ : @ -, got %q", m.Name)
		default:
			if other, dup := names[m.Name]; dup {
				v.add(me, "model", "%q is already used by model %q in this card", m.Name, other)
			}
			names[m.Name] = m.Name
		}
		for k, a := range rm.Aliases {
			field := fmt.Sprintf("aliases[%d]", k)
			switch {
			case !a.Set:
				v.add(me, field, "must not be empty")
			case !modelPattern.MatchString(a.Value):
				v.add(me, field, "must start with a letter or digit and hold only letters, digits and . _ : @ -, got %q", a.Value)
			default:
				if other, dup := names[a.Value]; dup {
					v.add(me, field, "%q is already used by model %q in this card", a.Value, other)
				}
				names[a.Value] = m.Name
				m.Aliases = append(m.Aliases, a.Value)
			}
		}
		if len(rm.Prices) == 0 {
			v.add(me, "prices", "no prices: list at least one unit")
		}
		units := make([]string, 0, len(rm.Prices))
		for u := range rm.Prices {
			units = append(units, u)
		}
		sort.Strings(units)
		for _, u := range units {
			field := "prices." + u
			if !unitPattern.MatchString(u) {
				v.add(me, field, "unit must be lowercase letters, digits and '_' (e.g. input_tokens, requests), got %q", u)
				continue
			}
			if canon, alias := unitAliases[u]; alias {
				v.add(me, field, "%q is an alias of %q; price %q instead", u, canon, canon)
				continue
			}
			p, ok := v.price(me, field, rm.Prices[u], perExp, perOK)
			if ok {
				m.Prices[u] = p
			}
		}
		c.Models = append(c.Models, m)
	}
	return c
}

func (v *validator) day(entry, field string, s scalar, required bool) time.Time {
	if !s.Set {
		if required {
			v.add(entry, field, "is required (YYYY-MM-DD)")
		}
		return time.Time{}
	}
	d, ok := parseDay(s.Value)
	if !ok {
		v.add(entry, field, "must be a date YYYY-MM-DD, got %q", s.Value)
	}
	return d
}

// maxPerDigits bounds the per field: prices quoted per up to 10^18 units.
const maxPerDigits = 19

// per returns the power of ten of the per field.
func (v *validator) per(entry string, s scalar) (int32, bool) {
	if !s.Set {
		v.add(entry, "per", "is required: the number of units the prices are quoted for (1, 1000, 1000000…)")
		return 0, false
	}
	d, err := event.ParseDecimal(s.Value, maxPerDigits, 0)
	if err != nil || !d.IsPositive() || !d.IsInteger() {
		v.add(entry, "per", "must be a positive power of ten (1, 1000, 1000000…), got %q", s.Value)
		return 0, false
	}
	text := d.String()
	if strings.TrimRight(text, "0") != "1" {
		v.add(entry, "per", "must be a power of ten so that per-unit prices stay exact, got %q", s.Value)
		return 0, false
	}
	return int32(len(text) - 1), true
}

func (v *validator) price(entry, field string, s scalar, perExp int32, perOK bool) (decimal.Decimal, bool) {
	if !s.Set {
		v.add(entry, field, "has no price")
		return decimal.Decimal{}, false
	}
	// Bounded on the text (event.ParseDecimal) before the shift below: a
	// price per 10^per units may carry per more decimal places than MaxScale.
	d, err := event.ParseDecimal(s.Value, event.MoneyDigits+maxPerDigits, MaxScale+maxPerDigits)
	if err != nil {
		v.add(entry, field, "%v", err)
		return decimal.Decimal{}, false
	}
	if d.IsNegative() {
		v.add(entry, field, "must not be negative, got %s", s.Value)
		return decimal.Decimal{}, false
	}
	if !perOK {
		return decimal.Decimal{}, false
	}
	unit := d.Shift(-perExp)
	if !unit.Equal(unit.Truncate(MaxScale)) {
		v.add(entry, field, "%s per %s units is %s per unit, more than %d decimal places", s.Value, decimal.New(1, perExp), unit, MaxScale)
		return decimal.Decimal{}, false
	}
	return unit, true
}

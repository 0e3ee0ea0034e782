package pricing

import (
	_ "embed"
	"fmt"
)

// defaultCard is uvr's default LLM rate card: list prices of OpenAI and
// Anthropic with the date and source of each provider's figures.
//
//go:embed cards/llm-default.yaml
var defaultCard []byte

// DefaultCardName is the name the default card's errors and quotes use.
const DefaultCardName = "llm-default.yaml"

// DefaultCards returns a fresh copy of the embedded default LLM rate card.
func DefaultCards() ([]Card, error) {
	cards, err := Parse(DefaultCardName, defaultCard)
	if err != nil {
		return nil, fmt.Errorf("embedded default rate card: %w", err)
	}
	return cards, nil
}

// LoadWithDefault returns the default card overridden by the card files at
// paths, in that order: a later file takes precedence over an earlier one
// and every file over the default (see RateCard).
func LoadWithDefault(paths ...string) (*RateCard, error) {
	def, err := DefaultCards()
	if err != nil {
		return nil, err
	}
	layers := [][]Card{def}
	for _, p := range paths {
		cs, err := Load(p)
		if err != nil {
			return nil, err
		}
		layers = append(layers, cs)
	}
	return New(layers...)
}

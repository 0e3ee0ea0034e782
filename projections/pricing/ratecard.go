package pricing

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/shopspring/decimal"
)

// ErrNoPrice is matched (errors.Is) by Cost and Resolve errors when no card
// prices the feature on the day.
var ErrNoPrice = errors.New("no price")

// RateCard is a merged, read-only set of cards, safe for concurrent use.
//
// Cards come in layers: New(layer0, layer1, …), where a later layer takes
// precedence over an earlier one; uvr passes the embedded default card first
// and the user's card files after it, in the order given, so a user file
// overrides the default and a later user file overrides an earlier one.
//
// The price of (provider, model, unit) on a day is taken from the first card
// that, in this order,
//  1. belongs to the highest layer,
//  2. then has the latest effective_from,
//
// among the cards of that provider effective on the day (effective_from <=
// day < effective_to) that price the unit of the model. A card therefore
// lists only what it prices or changes: a newer card supersedes an older one
// for the prices it repeats, and the older card keeps supplying the others
// until its effective_to.
type RateCard struct {
	// byProvider holds each provider's cards, highest precedence first.
	byProvider map[string][]rankedCard
	// canonical maps provider → model name or alias → model name.
	canonical map[string]map[string]string
	// providers maps a model name or alias → the providers pricing it.
	providers map[string][]string
}

type rankedCard struct {
	layer  int
	card   *Card
	models map[string]*Model // by canonical name
}

// New merges layers of cards, lowest precedence first. A card may name a
// model by another card's alias of it (a user card pricing
// "gpt-4o-2024-08-06" overrides the default's "gpt-4o"); the model's name is
// then the one the aliasing card gives. New fails when an alias names two
// models of a provider, aliases form a cycle, or one card prices a model
// under two of its names. The cards' price maps are shared, not copied:
// do not change them after New.
func New(layers ...[]Card) (*RateCard, error) {
	r := &RateCard{
		byProvider: map[string][]rankedCard{},
		canonical:  map[string]map[string]string{},
		providers:  map[string][]string{},
	}
	var errs []error
	// Pass 1: every alias of every provider.
	aliasOf := map[string]map[string]string{} // provider → alias → model
	for _, layer := range layers {
		for _, c := range layer {
			if aliasOf[c.Provider] == nil {
				aliasOf[c.Provider] = map[string]string{}
			}
			for _, m := range c.Models {
				for _, a := range m.Aliases {
					if prev, ok := aliasOf[c.Provider][a]; ok && prev != m.Name {
						errs = append(errs, fmt.Errorf("rate cards: %s names both model %q and model %q of %s (card %s)", a, prev, m.Name, c.Provider, c.Version))
						continue
					}
					aliasOf[c.Provider][a] = m.Name
				}
			}
		}
	}
	canonical := func(provider, name string) (string, error) {
		seen := []string{name}
		for {
			next, ok := aliasOf[provider][name]
			if !ok {
				return name, nil
			}
			if slices.Contains(seen, next) {
				return "", fmt.Errorf("rate cards: aliases of %s form a cycle: %s", provider, strings.Join(append(seen, next), " → "))
			}
			seen, name = append(seen, next), next
		}
	}
	// Pass 2: copy the cards with canonical model names and index them.
	for li, layer := range layers {
		for _, src := range layer {
			c := src
			c.Models = make([]Model, 0, len(src.Models))
			names := r.canonical[c.Provider]
			if names == nil {
				names = map[string]string{}
				r.canonical[c.Provider] = names
			}
			inCard := map[string]string{}
			rc := rankedCard{layer: li, card: &c, models: map[string]*Model{}}
			for _, m := range src.Models {
				name, err := canonical(c.Provider, m.Name)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				if other, dup := inCard[name]; dup {
					errs = append(errs, fmt.Errorf("rate cards: card %s of %s prices model %q twice, as %q and %q", c.Version, c.Provider, name, other, m.Name))
					continue
				}
				inCard[name] = m.Name
				for _, n := range append([]string{m.Name}, m.Aliases...) {
					names[n] = name
					if !slices.Contains(r.providers[n], c.Provider) {
						r.providers[n] = append(r.providers[n], c.Provider)
					}
				}
				names[name] = name
				if !slices.Contains(r.providers[name], c.Provider) {
					r.providers[name] = append(r.providers[name], c.Provider)
				}
				m.Name = name
				c.Models = append(c.Models, m)
			}
			for i := range c.Models {
				rc.models[c.Models[i].Name] = &c.Models[i]
			}
			r.byProvider[c.Provider] = append(r.byProvider[c.Provider], rc)
		}
	}
	for p, cs := range r.byProvider {
		slices.SortStableFunc(cs, func(a, b rankedCard) int {
			if a.layer != b.layer {
				return b.layer - a.layer
			}
			return b.card.EffectiveFrom.Compare(a.card.EffectiveFrom)
		})
		r.byProvider[p] = cs
	}
	for _, ps := range r.providers {
		slices.Sort(ps)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return r, nil
}

// Quote is a price found on a card, with where it came from.
type Quote struct {
	Key      Key             // canonical model and unit
	Price    decimal.Decimal // per one unit
	Currency string
	Version  string // the card's version
	Source   string // the card's source
	Layer    int    // 0 for the first layer New was given (the default card)
}

// Price returns the price per unit of provider's model (a name or alias)
// and unit (a unit or unit alias) on the UTC day of at, in the currency of
// the card that prices it (see Lookup for the currency).
func (r *RateCard) Price(provider, model, unit string, at time.Time) (decimal.Decimal, bool) {
	q, ok := r.Lookup(provider, model, unit, at)
	return q.Price, ok
}

// Lookup is Price with the card's currency, version and source.
func (r *RateCard) Lookup(provider, model, unit string, at time.Time) (Quote, bool) {
	if name, ok := r.canonical[provider][model]; ok {
		model = name
	}
	unit = CanonicalUnit(unit)
	day := Day(at)
	for _, rc := range r.byProvider[provider] {
		c := rc.card
		if day.Before(c.EffectiveFrom) || (!c.EffectiveTo.IsZero() && !day.Before(c.EffectiveTo)) {
			continue
		}
		if m, ok := rc.models[model]; ok {
			if p, ok := m.Prices[unit]; ok {
				return Quote{
					Key:   Key{Provider: provider, Model: model, Unit: unit},
					Price: p, Currency: c.Currency, Version: c.Version, Source: c.Source, Layer: rc.layer,
				}, true
			}
		}
	}
	return Quote{}, false
}

// Resolve maps a uvr feature name to the key a card prices (see
// ParseFeature for the convention). Without a provider prefix the model must
// be priced by exactly one provider; the model is returned canonical (an
// alias such as a dated snapshot becomes the model's name).
func (r *RateCard) Resolve(feature string) (Key, error) {
	k, err := ParseFeature(feature)
	if err != nil {
		return Key{}, err
	}
	if k.Provider == "" {
		ps := r.providers[k.Model]
		switch len(ps) {
		case 0:
			return Key{}, fmt.Errorf("feature %q: no rate card prices model %q: %w", feature, k.Model, ErrNoPrice)
		case 1:
			k.Provider = ps[0]
		default:
			return Key{}, fmt.Errorf("feature %q: model %q is priced by %s; name the provider, e.g. %s/%s", feature, k.Model, strings.Join(ps, " and "), ps[0], k.Feature())
		}
	}
	if name, ok := r.canonical[k.Provider][k.Model]; ok {
		k.Model = name
	}
	return k, nil
}

// CostLine is the cost of a quantity of a feature on a day.
type CostLine struct {
	Quote
	Quantity decimal.Decimal
	// Amount is Quantity × Price rounded half to even to 9 decimal places,
	// in Currency.
	Amount decimal.Decimal
}

// Cost prices quantity units of feature on the UTC day of at. The error
// wraps ErrNoPrice when no card prices the feature that day: a cost is never
// silently zero.
func (r *RateCard) Cost(feature string, quantity decimal.Decimal, at time.Time) (CostLine, error) {
	k, err := r.Resolve(feature)
	if err != nil {
		return CostLine{}, err
	}
	q, ok := r.Lookup(k.Provider, k.Model, k.Unit, at)
	if !ok {
		return CostLine{}, fmt.Errorf("feature %q: no card prices %s on %s: %w", feature, k, Day(at).Format(dateLayout), ErrNoPrice)
	}
	return CostLine{Quote: q, Quantity: quantity, Amount: quantity.Mul(q.Price).RoundBank(MaxScale)}, nil
}

// DateRange is a run of UTC days [From, To) of one priced item; To is zero
// when the run has no end (every day from From on).
type DateRange struct {
	Key  Key
	From time.Time
	To   time.Time
}

func (d DateRange) String() string {
	to := "…"
	if !d.To.IsZero() {
		to = d.To.Format(dateLayout)
	}
	return fmt.Sprintf("%s [%s, %s)", d.Key, d.From.Format(dateLayout), to)
}

// Affected returns, per priced item (key), the runs of days on which its
// price differs between old and new (a different price or currency, or a
// price in only one of them): exactly the days whose cost must be recomputed
// when new replaces old. Keys carry canonical model names; the result is
// sorted by key, then by day.
//
// Prices are constant between the days on which some card of the provider
// starts or stops applying, so comparing the two sets on those days alone
// finds every change.
func Affected(old, new *RateCard) []DateRange {
	keys := map[Key]bool{}
	bounds := map[string][]time.Time{} // provider → days where a card starts or ends
	for _, r := range []*RateCard{old, new} {
		for p, cs := range r.byProvider {
			for _, rc := range cs {
				bounds[p] = append(bounds[p], rc.card.EffectiveFrom)
				if !rc.card.EffectiveTo.IsZero() {
					bounds[p] = append(bounds[p], rc.card.EffectiveTo)
				}
				for _, m := range rc.card.Models {
					for u := range m.Prices {
						keys[Key{Provider: p, Model: m.Name, Unit: u}] = true
					}
				}
			}
		}
	}
	for p, bs := range bounds {
		slices.SortFunc(bs, time.Time.Compare)
		bounds[p] = slices.CompactFunc(bs, time.Time.Equal)
	}
	sorted := make([]Key, 0, len(keys))
	for k := range keys {
		sorted = append(sorted, k)
	}
	slices.SortFunc(sorted, func(a, b Key) int { return strings.Compare(a.String(), b.String()) })

	var out []DateRange
	for _, k := range sorted {
		bs := bounds[k.Provider]
		open := -1 // index in bs where the current run started
		for i, day := range bs {
			oq, oOK := old.Lookup(k.Provider, k.Model, k.Unit, day)
			nq, nOK := new.Lookup(k.Provider, k.Model, k.Unit, day)
			differs := oOK != nOK || (oOK && (!oq.Price.Equal(nq.Price) || oq.Currency != nq.Currency))
			switch {
			case differs && open < 0:
				open = i
			case !differs && open >= 0:
				out = append(out, DateRange{Key: k, From: bs[open], To: day})
				open = -1
			}
		}
		if open >= 0 {
			out = append(out, DateRange{Key: k, From: bs[open]})
		}
	}
	return out
}

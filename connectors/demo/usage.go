package demo

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/shopspring/decimal"

	"github.com/uvrhq/uvr/pipeline/event"
)

// Active probabilities of intermittent (small, normal) customers.
const (
	activeWeekday = 0.92
	activeWeekend = 0.55
)

// level is p's usage multiplier on day d of the window: growth towards the
// end, weekly seasonality, churn decay and spikes.
func (g *generator) level(p *Profile, d int, date time.Time) float64 {
	f := math.Exp(p.growth * float64(d-(g.days-1)) / 30)
	if isWeekend(date) {
		f *= p.weekend
	} else {
		f *= p.weekday
	}
	if p.churnDay >= 0 && d >= p.churnDay {
		f *= max(0.004, math.Exp(-float64(d-p.churnDay+1)/3))
	}
	for k, s := range p.spikeDays {
		if s == d {
			f *= p.SpikeFactors[k]
		}
	}
	return f
}

// usageDay appends p's usage events of day d (date, a UTC midnight): per
// model its input, cached input (when the customer caches prompts) and output
// tokens, then api.calls, then storage. Whether an event exists depends only
// on the seed, the customer and the date, never on the window.
func (g *generator) usageDay(out []event.Event, p *Profile, d int, date time.Time) []event.Event {
	r := g.reseed(streamUsage, int64(p.Index), epochDay(date))
	weekend := isWeekend(date)
	dayNoise := math.Exp(0.12 * r.NormFloat64())
	active := true
	if p.intermittent {
		prob := activeWeekday
		if weekend {
			prob = activeWeekend
		}
		active = r.Float64() < prob
	}
	windowEnd := date.AddDate(0, 0, 1)
	ymd := date.Format("20060102")
	base := p.monthlyTokens / 30 * g.level(p, d, date) * dayNoise

	var total int64
	if active {
		for k, model := range p.Models {
			tokens := base * p.weights[k] * math.Exp(0.08*r.NormFloat64())
			prompt := tokens * p.promptShare
			cached := 0.0
			if p.cacheShare > 0 {
				share := min(0.9, max(0, p.cacheShare*(1+0.1*r.NormFloat64())))
				cached = prompt * share
			}
			classes := []struct {
				class string
				n     float64
			}{
				{ClassInput, prompt - cached},
				{ClassCachedInput, cached},
				{ClassOutput, tokens - prompt},
			}
			for _, c := range classes {
				if c.class == ClassCachedInput && p.cacheShare == 0 {
					continue
				}
				n := max(1, int64(math.Round(c.n)))
				total += n
				out = append(out, g.usageEvent(p, model+"."+c.class, ymd, date, windowEnd,
					decimal.NewFromInt(n), map[string]string{"model": model, "provider": providerOf(model)}))
			}
		}
		calls := max(1, int64(math.Round(float64(total)/p.tokensPerCall*math.Exp(0.05*r.NormFloat64()))))
		out = append(out, g.usageEvent(p, FeatureAPICalls, ymd, date, windowEnd, decimal.NewFromInt(calls), nil))
	}

	// Storage grows at half the usage trend and ignores weekends and spikes.
	gb := p.storageGB * math.Exp(p.growth/2*float64(d-(g.days-1))/30) * (1 + 0.01*r.NormFloat64())
	milli := max(1, int64(math.Round(gb*1000)))
	return append(out, g.usageEvent(p, FeatureStorage, ymd, date, windowEnd, decimal.New(milli, -3), nil))
}

func (g *generator) usageEvent(p *Profile, feature, ymd string, at, windowEnd time.Time, qty decimal.Decimal, attrs map[string]string) event.Event {
	f := g.features[feature]
	cost := qty.Mul(f.UnitCost).Round(event.MaxScale)
	we := windowEnd
	return event.Event{
		SpecVersion:     event.SpecVersion,
		ID:              "demo-u-" + p.ID + "-" + feature + "-" + ymd,
		Source:          g.cfg.Source,
		Type:            event.TypeUsage,
		Time:            at,
		DataContentType: "application/json",
		Data: event.Data{
			Customer:   event.Customer{Source: g.cfg.Source, ExternalID: p.ID},
			Version:    1,
			Attributes: attrs,
			Feature:    feature,
			Quantity:   &qty,
			Unit:       f.Unit,
			Cost:       &cost,
			Currency:   Currency,
			WindowEnd:  &we,
		},
	}
}

func providerOf(model string) string {
	for _, m := range modelPrices {
		if m.model == model {
			return m.provider
		}
	}
	return ""
}

// liveGen draws live usage: one LLM request's tokens of one class, or a few
// API calls, of a random customer that has not churned.
type liveGen struct {
	g         *generator
	r         *rand.Rand
	customers []*Profile
	seq       uint64
}

func newLive(g *generator) *liveGen {
	lv := &liveGen{g: g, r: rand.New(rand.NewPCG(mix(uint64(g.cfg.Seed), streamLive), mix(streamLive)))}
	for i := range g.profiles {
		if p := &g.profiles[i]; p.Scenario != ScenarioChurning && len(p.Models) > 0 {
			lv.customers = append(lv.customers, p)
		}
	}
	if len(lv.customers) == 0 { // only churners: use them anyway
		for i := range g.profiles {
			lv.customers = append(lv.customers, &g.profiles[i])
		}
	}
	return lv
}

// next returns a live event at now. Its id is unique: the customer, the
// time in nanoseconds and a sequence number.
func (lv *liveGen) next(now time.Time) event.Event {
	r := lv.r
	p := lv.customers[r.IntN(len(lv.customers))]
	lv.seq++
	model := p.Models[0]
	for k, u := 0, r.Float64(); k < len(p.Models); k++ {
		if u < p.weights[k] {
			model = p.Models[k]
			break
		}
		u -= p.weights[k]
	}
	req := p.tokensPerCall * math.Exp(0.5*r.NormFloat64())
	var feature string
	var qty float64
	var attrs map[string]string
	switch u := r.Float64(); {
	case u < 0.1:
		feature, qty = FeatureAPICalls, float64(1+r.IntN(5))
	case u < 0.4:
		feature, qty = model+"."+ClassOutput, req*(1-p.promptShare)
	case u < 0.55 && p.cacheShare > 0:
		feature, qty = model+"."+ClassCachedInput, req*p.promptShare*p.cacheShare
	default:
		feature, qty = model+"."+ClassInput, req*p.promptShare*(1-p.cacheShare)
	}
	if feature != FeatureAPICalls {
		attrs = map[string]string{"model": model, "provider": providerOf(model), "live": "true"}
	}
	f := lv.g.features[feature]
	q := decimal.NewFromInt(max(1, int64(math.Round(qty))))
	cost := q.Mul(f.UnitCost).Round(event.MaxScale)
	return event.Event{
		SpecVersion:     event.SpecVersion,
		ID:              fmt.Sprintf("demo-l-%s-%d-%d", p.ID, now.UnixNano(), lv.seq),
		Source:          lv.g.cfg.Source,
		Type:            event.TypeUsage,
		Time:            now,
		DataContentType: "application/json",
		Data: event.Data{
			Customer:   event.Customer{Source: lv.g.cfg.Source, ExternalID: p.ID},
			Version:    1,
			Attributes: attrs,
			Feature:    feature,
			Quantity:   &q,
			Unit:       f.Unit,
			Cost:       &cost,
			Currency:   Currency,
		},
	}
}

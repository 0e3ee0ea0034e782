package demo

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Scenario is the story a demo customer tells; insight rules and tests check
// against it.
type Scenario string

// Scenarios. Each customer has exactly one.
const (
	// ScenarioNormal: usage well inside what the plan pays for.
	ScenarioNormal Scenario = "normal"
	// ScenarioUnprofitable: a starter or pro customer whose usage of the
	// expensive models costs 2.2–3.5 times its plan price a month at the end
	// of the window (growing 0–5 % a month before), with no overage billed,
	// so cost exceeds revenue over the window.
	ScenarioUnprofitable Scenario = "unprofitable"
	// ScenarioUpsell: a starter or pro customer using 3–6 times its plan's
	// included tokens, mostly on gpt-4o-mini, so it stays profitable and
	// buys overage now and then.
	ScenarioUpsell Scenario = "upsell"
	// ScenarioSpiking: a normal customer with 1–3 weekdays, in the last 30
	// days, of 5–20 times its usual usage (see Profile.SpikeDays).
	ScenarioSpiking Scenario = "spiking"
	// ScenarioChurning: usage decays towards zero from Profile.ChurnFrom,
	// 14–21 days before Now; the subscription is still paid.
	ScenarioChurning Scenario = "churning"
)

// Shares of customers per plan and per scenario; counts are rounded to the
// nearest customer. Unprofitable and upsell customers are drawn from starter
// and pro, spiking and churning ones from the rest.
const (
	shareStarter      = 0.60
	sharePro          = 0.30
	shareUnprofitable = 0.08
	shareUpsell       = 0.07
	shareSpiking      = 0.05
	shareChurning     = 0.03
	// One customer in a hundred (at least one) may receive credit notes.
	shareCreditNotes = 0.01
)

// Profile is one demo customer and its scenario.
type Profile struct {
	Index    int    // 0-based position; ID is cus_demo_<Index+1>
	ID       string // external id, e.g. cus_demo_0001
	Name     string
	Email    string
	Plan     string // PlanStarter, PlanPro or PlanEnterprise
	Segment  string // smb, mid_market or enterprise
	Region   string // na, emea or apac
	Industry string
	Scenario Scenario
	// Models are the LLM models the customer calls, in price-table order.
	Models []string
	// BillingAnchor is the day of the month (1–28) the subscription renews.
	BillingAnchor int
	// SpikeDays are, for ScenarioSpiking, the UTC midnights of the spike
	// days in ascending order; SpikeFactors their usage multipliers (5–20).
	SpikeDays    []time.Time
	SpikeFactors []float64
	// ChurnFrom is, for ScenarioChurning, the UTC midnight from which usage
	// decays (to under 1 % within two weeks).
	ChurnFrom time.Time
	// CreditNotes marks the few customers who may get a credit note in a
	// billing month (about every other month).
	CreditNotes bool

	// Generation parameters.
	monthlyTokens float64   // mean LLM tokens per 30 days at the end of the window
	weights       []float64 // share of tokens per model in Models
	growth        float64   // log growth per 30 days
	weekday       float64   // seasonality factors, weekly mean 1
	weekend       float64
	promptShare   float64 // input+cached share of a model's tokens
	cacheShare    float64 // cached share of the prompt; 0 without caching
	tokensPerCall float64
	storageGB     float64 // GB stored at the end of the window
	intermittent  bool    // small customers skip some days entirely
	tenureMonths  int     // months (1–24) between signup and the first billed month
	timeOfDay     time.Duration
	spikeDays     []int // day indices of SpikeDays
	churnDay      int   // day index of ChurnFrom, or -1
}

// Profiles returns the customers of cfg in index order, the same ones
// Generate emits.
func Profiles(cfg Config) ([]Profile, error) {
	g, err := newGenerator(cfg)
	if err != nil {
		return nil, err
	}
	return g.profiles, nil
}

// Random streams: every use of randomness draws from its own PCG source.
const (
	streamAssign uint64 = iota + 1
	streamCustomer
	streamUsage
	streamRevenue
	streamLive
)

type generator struct {
	cfg        Config
	start, end time.Time // window [start, end): UTC midnights
	days       int
	profiles   []Profile
	features   map[string]Feature
	pcg        *rand.PCG
	rng        *rand.Rand
}

func newGenerator(cfg Config) (*generator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid demo config: %w", err)
	}
	cfg = cfg.withDefaults()
	now := cfg.Now.UTC()
	end := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	g := &generator{
		cfg:      cfg,
		start:    end.AddDate(0, 0, -cfg.Days),
		end:      end,
		days:     cfg.Days,
		features: make(map[string]Feature),
		pcg:      rand.NewPCG(0, 0),
	}
	g.rng = rand.New(g.pcg)
	for _, f := range Features() {
		g.features[f.Name] = f
	}
	g.profiles = g.buildProfiles()
	return g, nil
}

// reseed points g.rng at the stream for (stream, a, b) and returns it. The
// returned generator is shared: finish with it before the next reseed.
func (g *generator) reseed(stream uint64, a, b int64) *rand.Rand {
	s := uint64(g.cfg.Seed)
	g.pcg.Seed(mix(s, stream), mix(s, stream, uint64(a), uint64(b)))
	return g.rng
}

// mix hashes its arguments with splitmix64 into one well-spread seed.
func mix(vs ...uint64) uint64 {
	var h uint64
	for _, v := range vs {
		h ^= v
		h += 0x9e3779b97f4a7c15
		h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9
		h = (h ^ (h >> 27)) * 0x94d049bb133111eb
		h ^= h >> 31
	}
	return h
}

func epochDay(t time.Time) int64 { return t.Unix() / 86400 }

func (g *generator) buildProfiles() []Profile {
	n := g.cfg.Customers
	ps := make([]Profile, n)

	// Plans and scenarios: exact counts over a seeded permutation.
	r := g.reseed(streamAssign, 0, 0)
	nStarter := int(math.Round(shareStarter * float64(n)))
	nPro := min(n-nStarter, int(math.Round(sharePro*float64(n))))
	for k, i := range r.Perm(n) {
		ps[i].Index = i
		switch {
		case k < nStarter:
			ps[i].Plan = PlanStarter
		case k < nStarter+nPro:
			ps[i].Plan = PlanPro
		default:
			ps[i].Plan = PlanEnterprise
		}
		ps[i].Scenario = ScenarioNormal
	}
	var small, rest []int // candidates in a seeded order
	for _, i := range r.Perm(n) {
		if ps[i].Plan == PlanEnterprise {
			rest = append(rest, i)
		} else {
			small = append(small, i)
		}
	}
	small = assign(ps, small, int(math.Round(shareUnprofitable*float64(n))), ScenarioUnprofitable)
	small = assign(ps, small, int(math.Round(shareUpsell*float64(n))), ScenarioUpsell)
	rest = append(rest, small...)
	r.Shuffle(len(rest), func(i, j int) { rest[i], rest[j] = rest[j], rest[i] })
	rest = assign(ps, rest, int(math.Round(shareSpiking*float64(n))), ScenarioSpiking)
	rest = assign(ps, rest, int(math.Round(shareChurning*float64(n))), ScenarioChurning)
	// Credit notes go to remaining (normal) pro and enterprise customers.
	nCredit := max(1, int(math.Round(shareCreditNotes*float64(n))))
	for _, i := range rest {
		if nCredit > 0 && ps[i].Plan != PlanStarter {
			ps[i].CreditNotes = true
			nCredit--
		}
	}

	// Names: distinct (first, second) word pairs, then numbered repeats.
	pairs := r.Perm(len(nameFirst) * len(nameSecond))
	for i := range ps {
		pair := pairs[i%len(pairs)]
		first, second := nameFirst[pair/len(nameSecond)], nameSecond[pair%len(nameSecond)]
		slug := strings.ToLower(first + second)
		name := first + " " + second
		if rep := i / len(pairs); rep > 0 {
			name += " " + strconv.Itoa(rep+1)
			slug += strconv.Itoa(rep + 1)
		}
		ps[i].Name = name + " " + nameSuffix[pair%len(nameSuffix)]
		// .example is reserved (RFC 2606): the addresses reach no one.
		ps[i].Email = "billing@" + slug + ".example"
		ps[i].ID = fmt.Sprintf("cus_demo_%04d", i+1)
	}

	for i := range ps {
		g.customerParams(&ps[i])
	}
	return ps
}

// assign gives the first k candidates the scenario and returns the others.
func assign(ps []Profile, candidates []int, k int, s Scenario) []int {
	k = min(k, len(candidates))
	for _, i := range candidates[:k] {
		ps[i].Scenario = s
	}
	return candidates[k:]
}

// customerParams draws the customer's own parameters from its own stream, so
// they do not depend on the number of customers; the draws that depend on
// the window (spikes, churn) come last.
func (g *generator) customerParams(p *Profile) {
	r := g.reseed(streamCustomer, int64(p.Index), 0)
	plan, _ := PlanByName(p.Plan)

	switch p.Plan {
	case PlanStarter:
		p.Segment = "smb"
	case PlanPro:
		p.Segment = pick(r, []string{"smb", "mid_market", "mid_market", "mid_market"})
	default:
		p.Segment = "enterprise"
	}
	p.Region = pick(r, []string{"na", "na", "na", "na", "emea", "emea", "emea", "apac", "apac"})
	p.Industry = pick(r, industries)
	p.BillingAnchor = 1 + r.IntN(28)
	// Before 23:00, so that an invoice paid minutes later is on the same day.
	p.timeOfDay = time.Duration(r.IntN(23*60)) * time.Minute
	p.tenureMonths = 1 + r.IntN(24) // signed up before the window

	// Models and their shares (indices into modelPrices: mini, 4o, sonnet).
	var models []int
	var weights []float64
	switch p.Scenario {
	case ScenarioUnprofitable:
		models = [][]int{{1}, {2}, {1, 2}, {0, 1, 2}}[r.IntN(4)]
		for _, m := range models {
			w := 0.4 + 0.6*r.Float64()
			if m == 0 {
				w = 0.1 * r.Float64()
			}
			weights = append(weights, w)
		}
	case ScenarioUpsell:
		if r.IntN(2) == 0 {
			models, weights = []int{0}, []float64{1}
		} else {
			models, weights = []int{0, 1}, []float64{0.95, 0.05}
		}
	default:
		k := 1
		switch p.Plan {
		case PlanPro:
			k = 1 + r.IntN(2)
		case PlanEnterprise:
			k = 2 + r.IntN(2)
		}
		// A model popularity order of mini, 4o, sonnet, then keep the
		// chosen ones in price-table order.
		chosen := make([]bool, len(modelPrices))
		for picked := 0; picked < k; {
			m := pick(r, []int{0, 0, 0, 0, 0, 1, 1, 1, 2, 2})
			if !chosen[m] {
				chosen[m] = true
				picked++
			}
		}
		for m, ok := range chosen {
			if ok {
				models = append(models, m)
				weights = append(weights, 0.2+0.8*r.Float64())
			}
		}
	}
	var sum float64
	for _, w := range weights {
		sum += w
	}
	for k, m := range models {
		p.Models = append(p.Models, modelPrices[m].model)
		p.weights = append(p.weights, weights[k]/sum)
	}

	p.promptShare = 0.6 + 0.25*r.Float64()
	if r.IntN(2) == 0 {
		p.cacheShare = 0.15 + 0.35*r.Float64()
	}
	p.tokensPerCall = math.Exp(logUniform(r, 600, 4000))
	weekendRatio := 0.25 + 0.45*r.Float64()
	p.weekday = 7 / (5 + 2*weekendRatio)
	p.weekend = weekendRatio * p.weekday
	p.intermittent = p.Plan == PlanStarter && p.Scenario == ScenarioNormal

	quota := float64(plan.IncludedTokens)
	switch p.Scenario {
	case ScenarioUnprofitable:
		target := plan.MonthlyPrice.InexactFloat64() * (2.2 + 1.3*r.Float64())
		p.monthlyTokens = target / g.blendedTokenCost(p)
		p.growth = 0.05 * r.Float64()
	case ScenarioUpsell:
		p.monthlyTokens = quota * (3 + 3*r.Float64())
		p.growth = 0.02 + 0.08*r.Float64()
	default:
		lo, hi := 0.16*quota, 0.8*quota // starter 0.8–4M, pro 16–80M tokens
		if p.Plan == PlanEnterprise {
			lo, hi = 0.15*quota, 0.9*quota
		}
		p.monthlyTokens = math.Exp(logUniform(r, lo, hi))
		p.growth = -0.03 + 0.15*r.Float64()
	}
	switch p.Plan {
	case PlanStarter:
		p.storageGB = math.Exp(logUniform(r, 1, 20))
	case PlanPro:
		p.storageGB = math.Exp(logUniform(r, 20, 300))
	default:
		p.storageGB = math.Exp(logUniform(r, 300, 5000))
	}

	p.churnDay = -1
	switch p.Scenario {
	case ScenarioSpiking:
		from := max(0, g.days-30)
		var weekdays []int
		for d := from; d < g.days; d++ {
			if !isWeekend(g.start.AddDate(0, 0, d)) {
				weekdays = append(weekdays, d)
			}
		}
		if len(weekdays) == 0 {
			for d := from; d < g.days; d++ {
				weekdays = append(weekdays, d)
			}
		}
		r.Shuffle(len(weekdays), func(i, j int) { weekdays[i], weekdays[j] = weekdays[j], weekdays[i] })
		days := weekdays[:min(len(weekdays), 1+r.IntN(3))]
		slices.Sort(days)
		for _, d := range days {
			p.spikeDays = append(p.spikeDays, d)
			p.SpikeDays = append(p.SpikeDays, g.start.AddDate(0, 0, d))
			p.SpikeFactors = append(p.SpikeFactors, 5+15*r.Float64())
		}
	case ScenarioChurning:
		p.churnDay = max(0, g.days-(14+r.IntN(8)))
		p.ChurnFrom = g.start.AddDate(0, 0, p.churnDay)
	}
}

// blendedTokenCost is the mean USD cost of one of p's tokens, used only to
// size the volumes of unprofitable customers (never to compute money).
func (g *generator) blendedTokenCost(p *Profile) float64 {
	var c float64
	for k, m := range p.Models {
		in := g.features[m+"."+ClassInput].UnitCost.InexactFloat64()
		cached := g.features[m+"."+ClassCachedInput].UnitCost.InexactFloat64()
		out := g.features[m+"."+ClassOutput].UnitCost.InexactFloat64()
		perToken := p.promptShare*((1-p.cacheShare)*in+p.cacheShare*cached) + (1-p.promptShare)*out
		c += p.weights[k] * perToken
	}
	return c
}

func pick[T any](r *rand.Rand, xs []T) T { return xs[r.IntN(len(xs))] }

// logUniform returns the log of a value log-uniformly distributed in [lo, hi).
func logUniform(r *rand.Rand, lo, hi float64) float64 {
	return math.Log(lo) + r.Float64()*(math.Log(hi)-math.Log(lo))
}

func isWeekend(t time.Time) bool {
	wd := t.Weekday()
	return wd == time.Saturday || wd == time.Sunday
}

var nameFirst = []string{
	"Acme", "Atlas", "Beacon", "Blue", "Bright", "Cedar", "Cobalt", "Copper",
	"Crimson", "Delta", "Ember", "Evergreen", "Falcon", "Granite", "Harbor", "Helix",
	"Indigo", "Iron", "Juniper", "Keystone", "Lumen", "Maple", "Meridian", "Nimbus",
	"North", "Onyx", "Orbit", "Pioneer", "Polar", "Quantum", "Quartz", "Redwood",
	"Sable", "Silver", "Solstice", "Summit", "Tidal", "Vertex", "Willow", "Zenith",
}

var nameSecond = []string{
	"Analytics", "Bio", "Cloud", "Commerce", "Data", "Dynamics", "Finance", "Forge",
	"Health", "Insights", "Labs", "Learning", "Ledger", "Logic", "Logistics", "Media",
	"Metrics", "Mobility", "Networks", "Robotics", "Security", "Signal", "Software",
	"Systems", "Works",
}

var nameSuffix = []string{"Inc", "Ltd", "GmbH", "LLC", "AI", "SAS", "BV", "Co"}

var industries = []string{
	"developer_tools", "ecommerce", "education", "fintech", "healthcare",
	"legal", "logistics", "media",
}

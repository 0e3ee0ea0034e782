// Package revsettings keeps the revenue settings that analytics apply at
// query time: the daily FX table and the plan → feature mapping of revenue
// attribution (docs/analytics/revenue.md). Each is one document on its own
// compacted Kafka topic (uvr.fx-rates.v1, uvr.revenue-mapping.v1; the log
// is the source of truth), written whole by PUT and read by every instance.
// Until a document was ever written, the file given at start-up (--fx-rates,
// UVR_REVENUE_MAPPING) is the setting; a written document replaces it, an
// empty one included.
package revsettings

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/shopspring/decimal"

	"github.com/uvrhq/uvr/projections/pricing"
)

// Table is a compacted topic held in memory (pipeline/kafka.Table): Get
// returns this instance's current value of a key, Put writes one and
// returns once the broker acknowledged it, after which Get sees it. Safe for
// concurrent use.
type Table interface {
	Get(key string) ([]byte, bool)
	Put(ctx context.Context, key string, value []byte) error
}

// documentKey is the one key of each topic.
const documentKey = "current"

// Sources of a setting, as GET reports them.
const (
	SourceAPI  = "api"  // written by PUT (the topic holds it)
	SourceFile = "file" // the start-up file
	SourceNone = "none"
)

// PlanFeature attributes the revenue of a plan (a revenue event's
// data.plan: a Stripe price id, a Chargebee item price id, or the source's
// plan id) to a feature.
type PlanFeature struct {
	Plan    string `json:"plan"`
	Feature string `json:"feature"`
}

// Config configures New.
type Config struct {
	// Reporting is the reporting currency, the pivot of cross rates. Required.
	Reporting string
	// FXTable and MappingTable hold the documents. Required.
	FXTable, MappingTable Table
	// FileFX and FileMapping are the start-up files' contents, if any
	// (FileMapping nil: no file; empty: a file mapping nothing).
	FileFX      *pricing.FX
	FileMapping []PlanFeature
}

// Store reads and writes the settings. Safe for concurrent use.
type Store struct {
	cfg Config

	mu    sync.Mutex
	fxRaw []byte // the document fx was built from (nil: the file)
	fx    *pricing.FX
	fxOK  bool
}

// New validates cfg (the file contents included) and returns a Store.
func New(cfg Config) (*Store, error) {
	var errs []error
	if cfg.FXTable == nil || cfg.MappingTable == nil {
		errs = append(errs, errors.New("revenue settings: FX and mapping tables are required"))
	}
	if err := ValidateMapping(cfg.FileMapping); err != nil {
		errs = append(errs, fmt.Errorf("revenue mapping file: %w", err))
	}
	if cfg.FileFX != nil && cfg.FileFX.Reporting() != cfg.Reporting {
		errs = append(errs, fmt.Errorf("FX rates file: read for %s, reporting currency %s", cfg.FileFX.Reporting(), cfg.Reporting))
	}
	s := &Store{cfg: cfg}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return s, nil
}

// fxDocument is the stored FX document.
type fxDocument struct {
	Rates []fxRate `json:"rates"`
}

type fxRate struct {
	Date  string          `json:"date"`
	Base  string          `json:"base"`
	Quote string          `json:"quote"`
	Rate  decimal.Decimal `json:"rate"`
}

type mappingDocument struct {
	Mappings []PlanFeature `json:"mappings"`
}

// Rates returns the FX rates in force and where they come from, sorted by
// day, base, quote.
func (s *Store) Rates() ([]pricing.FXRate, string, error) {
	raw, ok := s.cfg.FXTable.Get(documentKey)
	if !ok {
		if s.cfg.FileFX == nil {
			return nil, SourceNone, nil
		}
		return s.cfg.FileFX.Rates(), SourceFile, nil
	}
	rates, err := decodeRates(raw)
	return rates, SourceAPI, err
}

func decodeRates(raw []byte) ([]pricing.FXRate, error) {
	var doc fxDocument
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("decode the stored FX rates: %w", err)
	}
	out := make([]pricing.FXRate, len(doc.Rates))
	for i, r := range doc.Rates {
		day, err := time.Parse(time.DateOnly, r.Date)
		if err != nil {
			return nil, fmt.Errorf("decode the stored FX rates: %w", err)
		}
		out[i] = pricing.FXRate{Day: day, Base: r.Base, Quote: r.Quote, Rate: r.Rate}
	}
	return sortRates(out), nil
}

func sortRates(rs []pricing.FXRate) []pricing.FXRate {
	slices.SortFunc(rs, func(a, b pricing.FXRate) int {
		return cmp.Or(a.Day.Compare(b.Day), strings.Compare(a.Base, b.Base), strings.Compare(a.Quote, b.Quote))
	})
	return rs
}

// FX returns the FX table in force; nil when there is none.
func (s *Store) FX(context.Context) (*pricing.FX, error) {
	raw, ok := s.cfg.FXTable.Get(documentKey)
	if !ok {
		return s.cfg.FileFX, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fxOK && bytes.Equal(raw, s.fxRaw) {
		return s.fx, nil
	}
	rates, err := decodeRates(raw)
	if err != nil {
		return nil, err
	}
	fx, err := pricing.NewFX(s.cfg.Reporting, rates)
	if err != nil {
		return nil, fmt.Errorf("the stored FX rates: %w", err)
	}
	s.fxRaw, s.fx, s.fxOK = raw, fx, true
	return fx, nil
}

// PutFX replaces the FX table. Errors: a *pricing.ValidationError naming
// each bad rate, or the write's error.
func (s *Store) PutFX(ctx context.Context, rates []pricing.FXRate) error {
	if _, err := pricing.NewFX(s.cfg.Reporting, rates); err != nil {
		return err
	}
	doc := fxDocument{Rates: make([]fxRate, len(rates))}
	for i, r := range sortRates(slices.Clone(rates)) {
		doc.Rates[i] = fxRate{Date: r.Day.UTC().Format(time.DateOnly), Base: r.Base, Quote: r.Quote, Rate: r.Rate}
	}
	raw, err := json.Marshal(doc)
	if err != nil {
		return err
	}
	if err := s.cfg.FXTable.Put(ctx, documentKey, raw); err != nil {
		return fmt.Errorf("write the FX rates: %w", err)
	}
	return nil
}

// Mapping returns the plan → feature mapping in force, sorted by plan, and
// where it comes from.
func (s *Store) Mapping() ([]PlanFeature, string, error) {
	raw, ok := s.cfg.MappingTable.Get(documentKey)
	if !ok {
		if s.cfg.FileMapping == nil {
			return nil, SourceNone, nil
		}
		return sortMapping(slices.Clone(s.cfg.FileMapping)), SourceFile, nil
	}
	var doc mappingDocument
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, SourceAPI, fmt.Errorf("decode the stored revenue mapping: %w", err)
	}
	return sortMapping(doc.Mappings), SourceAPI, nil
}

func sortMapping(m []PlanFeature) []PlanFeature {
	slices.SortFunc(m, func(a, b PlanFeature) int { return strings.Compare(a.Plan, b.Plan) })
	return m
}

// PlanFeatures returns the mapping in force as plan → feature.
func (s *Store) PlanFeatures(context.Context) (map[string]string, error) {
	m, _, err := s.Mapping()
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(m))
	for _, pf := range m {
		out[pf.Plan] = pf.Feature
	}
	return out, nil
}

// MappingError names the entries of a bad mapping.
type MappingError struct {
	Problems []MappingProblem
}

// MappingProblem is one bad entry: its index, field and reason.
type MappingProblem struct {
	Index  int
	Field  string
	Reason string
}

func (e *MappingError) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = fmt.Sprintf("mappings[%d].%s %s", p.Index, p.Field, p.Reason)
	}
	return strings.Join(parts, "; ")
}

// ValidateMapping checks that every entry has a plan and a feature and that
// no plan is mapped twice; the error is a *MappingError.
func ValidateMapping(m []PlanFeature) error {
	var e MappingError
	seen := map[string]int{}
	for i, pf := range m {
		if strings.TrimSpace(pf.Plan) == "" {
			e.Problems = append(e.Problems, MappingProblem{i, "plan", "is required"})
		} else if j, dup := seen[pf.Plan]; dup {
			e.Problems = append(e.Problems, MappingProblem{i, "plan", fmt.Sprintf("%q is already mapped by mappings[%d]", pf.Plan, j)})
		} else {
			seen[pf.Plan] = i
		}
		if strings.TrimSpace(pf.Feature) == "" {
			e.Problems = append(e.Problems, MappingProblem{i, "feature", "is required"})
		}
	}
	if len(e.Problems) > 0 {
		return &e
	}
	return nil
}

// PutMapping replaces the mapping. Errors: a *MappingError, or the write's.
func (s *Store) PutMapping(ctx context.Context, m []PlanFeature) error {
	if err := ValidateMapping(m); err != nil {
		return err
	}
	if m == nil {
		m = []PlanFeature{}
	}
	raw, err := json.Marshal(mappingDocument{Mappings: sortMapping(slices.Clone(m))})
	if err != nil {
		return err
	}
	if err := s.cfg.MappingTable.Put(ctx, documentKey, raw); err != nil {
		return fmt.Errorf("write the revenue mapping: %w", err)
	}
	return nil
}

// ParseMapping reads a mapping file: JSON {"mappings": [{"plan", "feature"}]}.
func ParseMapping(name string, data []byte) ([]PlanFeature, error) {
	var doc mappingDocument
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("%s: want {\"mappings\": [{\"plan\": ..., \"feature\": ...}]}: %w", name, err)
	}
	if err := ValidateMapping(doc.Mappings); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if doc.Mappings == nil {
		doc.Mappings = []PlanFeature{}
	}
	return doc.Mappings, nil
}

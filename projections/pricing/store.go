package pricing

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Layer kinds, lowest precedence first.
const (
	LayerDefault  = "default"  // the embedded default card
	LayerFile     = "file"     // a card file given to uvr (--rate-cards)
	LayerOverride = "override" // the user's cards set through the API
)

// OverrideName is the file name the override layer's errors use.
const OverrideName = "override"

// Keys of the store's table.
const (
	keyBase     = "base"     // []Layer: the default and file layers last started with
	keyOverride = "override" // Layer: the API's layer
	keyApplied  = "applied"  // []Layer: the layers whose prices the aggregates were last re-costed to
)

// Table is the key → value map the store keeps its layers in: a compacted
// Kafka topic (pipeline/kafka.Table), so that the log is the source of truth
// and every instance prices with the same cards. Put returns once the write
// is durable; Sync makes Get reflect every write acknowledged before it, from
// any instance. Safe for concurrent use.
type Table interface {
	Get(key string) ([]byte, bool)
	Put(ctx context.Context, key string, value []byte) error
	Sync(ctx context.Context) error
}

// Recoster marks the days that hold priced usage within ranges for a
// recompute, and returns how many it marked (projections/aggregates). It is
// called after the new cards are durable in the Table.
type Recoster interface {
	MarkRecost(ctx context.Context, ranges []DateRange) (int, error)
}

// Layer is one layer of cards as given: its kind, its file name and the
// file's bytes (YAML or JSON), kept verbatim so that an older set of layers
// can be rebuilt exactly to compare prices with.
type Layer struct {
	Kind string `json:"kind"`
	Name string `json:"name"`
	Data []byte `json:"data"`
}

// StoreConfig configures NewStore.
type StoreConfig struct {
	Table Table // required
	// Recoster marks the days a change re-costs. Nil: changes mark nothing
	// (a read-only store, e.g. for `uvr reconcile`).
	Recoster Recoster
	// Files are the card files after the default, lowest precedence first.
	Files      []string
	Registerer prometheus.Registerer // nil: metrics not registered
	Logger     *slog.Logger          // nil discards
}

// Store is the effective rate card: the default card, the card files and the
// user's override layer, kept on a Table. It re-costs the days a change of
// prices affects (see Start and SetOverride). Safe for concurrent use.
type Store struct {
	table    Table
	recoster Recoster
	local    []Layer // default and files of this process
	log      *slog.Logger

	changes prometheus.Counter
	days    prometheus.Counter

	mu      sync.Mutex // serialises changes of this process
	cacheMu sync.Mutex
	cacheK  []byte
	cacheV  *RateCard
}

// NewStore reads and validates the default card and the files.
func NewStore(cfg StoreConfig) (*Store, error) {
	if cfg.Table == nil {
		return nil, errors.New("rate card store: table is required")
	}
	local := []Layer{{Kind: LayerDefault, Name: DefaultCardName, Data: defaultCard}}
	for _, p := range cfg.Files {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("read rate card: %w", err)
		}
		local = append(local, Layer{Kind: LayerFile, Name: filepath.Base(p), Data: b})
	}
	if _, err := build(local); err != nil {
		return nil, err
	}
	s := &Store{
		table: cfg.Table, recoster: cfg.Recoster, local: local,
		log: cfg.Logger,
		changes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "uvr_ratecards_changes_total",
			Help: "Changes of the effective rate card applied by this process (API or card files at startup).",
		}),
		days: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "uvr_ratecards_recost_days_total",
			Help: "Days of usage marked for a recompute because a rate card change re-costs them.",
		}),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With("component", "ratecards")
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{s.changes, s.days} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("register rate card metrics: %w", err)
			}
		}
	}
	return s, nil
}

// Change is what a change of the effective card re-costs: the priced items'
// date ranges whose price changed, and how many days of usage were marked
// for a recompute.
type Change struct {
	Ranges     []DateRange
	DaysMarked int
}

// Card returns the effective card, after syncing with the table so that a
// change made by any instance before the call is seen (the aggregator's
// Pricer).
func (s *Store) Card(ctx context.Context) (*RateCard, error) {
	layers, err := s.synced(ctx)
	if err != nil {
		return nil, err
	}
	return s.cached(layers)
}

// LayeredCard is one card of the effective set with the layer it came from.
type LayeredCard struct {
	Layer string // LayerDefault, LayerFile or LayerOverride
	File  string
	Card
}

// Cards lists every card of the effective set, lowest precedence first
// (see RateCard for how they combine).
func (s *Store) Cards(ctx context.Context) ([]LayeredCard, error) {
	layers, err := s.synced(ctx)
	if err != nil {
		return nil, err
	}
	var out []LayeredCard
	for _, l := range layers {
		cards, err := Parse(l.Name, l.Data)
		if err != nil {
			return nil, err
		}
		for _, c := range cards {
			out = append(out, LayeredCard{Layer: l.Kind, File: l.Name, Card: c})
		}
	}
	return out, nil
}

// SetOverride replaces the override layer with the card file data (YAML or
// JSON). An invalid file is a *ValidationError (errors.Is ErrInvalid) naming
// the entry and field, and changes nothing. The new layer is durable in the
// table before the days it re-costs are marked.
func (s *Store) SetOverride(ctx context.Context, data []byte) (Change, error) {
	layer := Layer{Kind: LayerOverride, Name: OverrideName, Data: bytes.Clone(data)}
	if _, err := Parse(layer.Name, layer.Data); err != nil {
		return Change{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	layers, err := s.synced(ctx)
	if err != nil {
		return Change{}, err
	}
	if _, err := build(append(withoutOverride(layers), layer)); err != nil {
		// Aliases conflicting with another layer's: the user's input.
		return Change{}, &ValidationError{Problems: []Problem{{File: OverrideName, Field: "models", Reason: err.Error()}}}
	}
	b, err := json.Marshal(layer)
	if err != nil {
		return Change{}, err
	}
	if err := s.table.Put(ctx, keyOverride, b); err != nil {
		return Change{}, fmt.Errorf("store the override rate card: %w", err)
	}
	return s.settle(ctx)
}

// Start records this process's default and file layers in the table when
// they differ from those recorded (a card file or the binary's default card
// changed), then re-costs whatever the effective card changed since it was
// last applied, including a change whose re-costing a crash interrupted.
func (s *Store) Start(ctx context.Context) (Change, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.table.Sync(ctx); err != nil {
		return Change{}, fmt.Errorf("read the rate cards: %w", err)
	}
	local, err := json.Marshal(s.local)
	if err != nil {
		return Change{}, err
	}
	if cur, ok := s.table.Get(keyBase); !ok || !bytes.Equal(cur, local) {
		if err := s.table.Put(ctx, keyBase, local); err != nil {
			return Change{}, fmt.Errorf("store the rate card files: %w", err)
		}
	}
	return s.settle(ctx)
}

// settle compares the effective layers with the applied ones and, when their
// prices differ, marks the affected days and records the layers as applied
// (after the marks: a crash in between repeats the marks on the next
// change or start). Without an applied record (a new topic) there is
// nothing priced under another card yet: the layers are recorded as they are.
func (s *Store) settle(ctx context.Context) (Change, error) {
	layers, err := s.current()
	if err != nil {
		return Change{}, err
	}
	cur, err := json.Marshal(layers)
	if err != nil {
		return Change{}, err
	}
	raw, ok := s.table.Get(keyApplied)
	if ok && bytes.Equal(raw, cur) {
		return Change{}, nil
	}
	var change Change
	if ok {
		newCard, err := s.cached(layers)
		if err != nil {
			return Change{}, err
		}
		oldCard, err := unmarshalCard(raw)
		if err != nil {
			// Written by another version: compare with no card, which
			// re-costs every day any card prices.
			s.log.Warn("the applied rate cards recorded on the topic are unreadable; re-costing every priced day", "error", err)
			oldCard = &RateCard{}
		}
		change.Ranges = Affected(oldCard, newCard)
		if len(change.Ranges) > 0 && s.recoster != nil {
			if change.DaysMarked, err = s.recoster.MarkRecost(ctx, change.Ranges); err != nil {
				return Change{}, fmt.Errorf("mark the re-costed days: %w", err)
			}
		}
	}
	if s.recoster == nil {
		return change, nil // read-only: another process applies the change
	}
	if err := s.table.Put(ctx, keyApplied, cur); err != nil {
		return Change{}, fmt.Errorf("record the applied rate cards: %w", err)
	}
	s.changes.Inc()
	s.days.Add(float64(change.DaysMarked))
	s.log.Info("rate cards applied", "ranges", len(change.Ranges), "days_marked", change.DaysMarked)
	return change, nil
}

// synced syncs with the table and returns the effective layers.
func (s *Store) synced(ctx context.Context) ([]Layer, error) {
	if err := s.table.Sync(ctx); err != nil {
		return nil, fmt.Errorf("read the rate cards: %w", err)
	}
	return s.current()
}

// current is the table's base layers (this process's until one is
// recorded) and its override layer.
func (s *Store) current() ([]Layer, error) {
	layers := s.local
	if raw, ok := s.table.Get(keyBase); ok {
		var base []Layer
		if err := json.Unmarshal(raw, &base); err != nil {
			return nil, fmt.Errorf("read the recorded rate card files: %w", err)
		}
		layers = base
	}
	layers = withoutOverride(layers)
	if raw, ok := s.table.Get(keyOverride); ok {
		var o Layer
		if err := json.Unmarshal(raw, &o); err != nil {
			return nil, fmt.Errorf("read the override rate card: %w", err)
		}
		layers = append(layers, o)
	}
	return layers, nil
}

func withoutOverride(layers []Layer) []Layer {
	out := make([]Layer, 0, len(layers)+1)
	for _, l := range layers {
		if l.Kind != LayerOverride {
			out = append(out, l)
		}
	}
	return out
}

// cached builds layers into a RateCard, reusing the last one built when the
// layers are the same (the aggregator asks on every pass).
func (s *Store) cached(layers []Layer) (*RateCard, error) {
	key, err := json.Marshal(layers)
	if err != nil {
		return nil, err
	}
	s.cacheMu.Lock()
	defer s.cacheMu.Unlock()
	if s.cacheV != nil && bytes.Equal(s.cacheK, key) {
		return s.cacheV, nil
	}
	card, err := build(layers)
	if err != nil {
		return nil, err
	}
	s.cacheK, s.cacheV = key, card
	return card, nil
}

func unmarshalCard(raw []byte) (*RateCard, error) {
	var layers []Layer
	if err := json.Unmarshal(raw, &layers); err != nil {
		return nil, err
	}
	return build(layers)
}

func build(layers []Layer) (*RateCard, error) {
	parsed := make([][]Card, 0, len(layers))
	for _, l := range layers {
		cards, err := Parse(l.Name, l.Data)
		if err != nil {
			return nil, err
		}
		parsed = append(parsed, cards)
	}
	return New(parsed...)
}

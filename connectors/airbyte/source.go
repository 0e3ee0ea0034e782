package airbyte

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"

	"github.com/uvrhq/uvr/connectors/source"
	"github.com/uvrhq/uvr/pipeline/event"
)

// DefaultMaxBatch is how many events Read accumulates before it emits them
// without a cursor, when a connector is slow to checkpoint.
const DefaultMaxBatch = 5000

// SourceConfig configures a Source.
type SourceConfig struct {
	Runner *Runner
	// Config is the connector's configuration (credentials included). It is
	// written to a 0600 temp file per command and never logged.
	Config json.RawMessage
	// Catalog selects what to read. nil: discover, and read every stream
	// (or those in Streams), incrementally where the stream supports it.
	Catalog *ConfiguredCatalog
	Streams []string
	// Mapper turns each record into events: the vendor's Mapper (stripe,
	// chargebee, …) or a declarative mapping.
	Mapper source.Mapper
	// MaxBatch bounds the events held between two STATE messages; past it
	// they are emitted with no cursor. Default DefaultMaxBatch.
	MaxBatch int
	Logger   *slog.Logger
}

// Source is a source.Source that runs an Airbyte connector: Check is the
// connector's `check`, Read its `read` with the saved STATE as cursor.
type Source struct {
	cfg SourceConfig
	log *slog.Logger
}

var _ source.Source = (*Source)(nil)

// New checks cfg.
func New(cfg SourceConfig) (*Source, error) {
	var errs []error
	if cfg.Runner == nil {
		errs = append(errs, errors.New("airbyte source: runner is required"))
	}
	if cfg.Mapper == nil {
		errs = append(errs, errors.New("airbyte source: mapper is required"))
	}
	if len(cfg.Config) == 0 {
		cfg.Config = json.RawMessage(`{}`)
	} else if !isObject(cfg.Config) {
		errs = append(errs, errors.New("airbyte source: config must be a JSON object"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = DefaultMaxBatch
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Source{cfg: cfg, log: cfg.Logger.With("component", "airbyte", "connector", cfg.Runner.Name())}, nil
}

// Check runs the connector's check. A FAILED status is a *CheckError, which
// source.IsAuth recognises.
func (s *Source) Check(ctx context.Context) error {
	return s.cfg.Runner.Check(ctx, s.cfg.Config)
}

// Catalog is the configured catalog Read uses: the given one, or one built
// from `discover`.
func (s *Source) Catalog(ctx context.Context) (ConfiguredCatalog, error) {
	if s.cfg.Catalog != nil {
		return *s.cfg.Catalog, nil
	}
	discovered, err := s.cfg.Runner.Discover(ctx, s.cfg.Config)
	if err != nil {
		return ConfiguredCatalog{}, err
	}
	return Configure(*discovered, s.cfg.Streams)
}

// Configure selects streams of a discovered catalog (all when names is
// empty): incremental with the source's cursor where the stream supports
// it, else full refresh; append, with the source's primary key.
func Configure(c Catalog, names []string) (ConfiguredCatalog, error) {
	var out ConfiguredCatalog
	found := map[string]bool{}
	for _, st := range c.Streams {
		if len(names) > 0 && !slices.Contains(names, st.Name) {
			continue
		}
		found[st.Name] = true
		cs := ConfiguredStream{Stream: st, SyncMode: SyncFullRefresh, DestinationSyncMode: "append", PrimaryKey: st.SourceDefinedPrimaryKey}
		if slices.Contains(st.SupportedSyncModes, SyncIncremental) && (st.SourceDefinedCursor || len(st.DefaultCursorField) > 0) {
			cs.SyncMode, cs.CursorField = SyncIncremental, st.DefaultCursorField
		}
		out.Streams = append(out.Streams, cs)
	}
	var missing []error
	for _, n := range names {
		if !found[n] {
			missing = append(missing, fmt.Errorf("stream %q is not in the connector's catalog", n))
		}
	}
	if err := errors.Join(missing...); err != nil {
		return ConfiguredCatalog{}, err
	}
	if len(out.Streams) == 0 {
		return ConfiguredCatalog{}, errors.New("the connector's catalog has no streams")
	}
	return out, nil
}

// Read runs the connector's read from cursor (the States JSON a previous
// Read emitted, or nil) and emits the mapped events. The events of the
// records before each STATE are emitted together with the state accumulated
// so far as the next cursor, so a cursor is saved only once Kafka has every
// event it covers. A record the mapper rejects is skipped as
// "<stream> record <n>"; a TRACE ERROR ends Read with a *TraceError.
func (s *Source) Read(ctx context.Context, cursor source.Cursor, out source.Emitter) error {
	states, err := ParseStates(cursor)
	if err != nil {
		return err
	}
	startState, err := states.Cursor()
	if err != nil {
		return err
	}
	catalog, err := s.Catalog(ctx)
	if err != nil {
		return err
	}

	var pending []event.Event
	perStream := map[string]int{}
	records, emitted := 0, 0
	flush := func(next source.Cursor) error {
		if len(pending) == 0 && next == nil {
			return nil
		}
		if err := out.Emit(ctx, pending, next); err != nil {
			return fmt.Errorf("emit %d events: %w", len(pending), err)
		}
		emitted += len(pending)
		pending = pending[:0]
		return nil
	}

	err = s.cfg.Runner.Read(ctx, s.cfg.Config, catalog, startState, func(m Message) error {
		switch m.Type {
		case TypeRecord:
			records++
			stream := m.Record.Stream
			perStream[stream]++
			name := fmt.Sprintf("%s record %d", stream, perStream[stream])
			events, err := MapRecord(s.cfg.Mapper, m.Record)
			if err != nil {
				out.Skip(name, err)
				return nil
			}
			pending = append(pending, events...)
			if len(pending) >= s.cfg.MaxBatch {
				return flush(nil)
			}
		case TypeState:
			states.Add(*m.State)
			next, err := states.Cursor()
			if err != nil {
				return err
			}
			return flush(next)
		}
		return nil
	})
	if err != nil {
		return err
	}
	// Records after the last STATE (or from a source that never
	// checkpoints): Kafka gets them, the cursor stays where it was.
	if err := flush(nil); err != nil {
		return err
	}
	s.log.Info("airbyte read finished", "records", records, "events", emitted)
	return nil
}

// MapRecord maps one record and checks every event it gives: an event the
// ingest contract would reject is the record's fault (or its mapping's), so
// it is reported like a mapper error instead of reaching Kafka.
func MapRecord(m source.Mapper, rec *RecordMessage) ([]event.Event, error) {
	events, err := m.Map(rec.Stream, rec.Data)
	if err != nil {
		return nil, err
	}
	for i, ev := range events {
		if err := ev.Validate(); err != nil {
			return nil, fmt.Errorf("mapped event %d (%s): %w", i, ev.ID, err)
		}
	}
	return events, nil
}

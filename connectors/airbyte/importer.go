package airbyte

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/uvrhq/uvr/connectors/source"
	"github.com/uvrhq/uvr/pipeline/event"
)

// InputError is a line of an imported file that is neither an Airbyte
// message nor a bare record. Import stops on it: the file is not what the
// user thinks it is.
type InputError struct {
	File   string
	Line   int
	Reason string
}

func (e *InputError) Error() string { return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Reason) }

// ImporterConfig configures an Importer.
type ImporterConfig struct {
	Mapper source.Mapper
	// Publish delivers a batch of events; it returns once they are stored
	// (the uvr API answered 202, or Kafka acknowledged them).
	Publish func(ctx context.Context, events []event.Event) error
	// BatchSize is the number of events per Publish; default 1000.
	BatchSize int
	// MaxSkipExamples is how many record names the summary keeps per skip
	// reason; default 5.
	MaxSkipExamples int
}

// Importer maps recorded Airbyte output (files of Airbyte messages, one per
// line, or of bare records {"stream","data","emitted_at"} as in a
// connector's expected_records.jsonl) and publishes the events. Not safe for
// concurrent use.
type Importer struct {
	cfg     ImporterConfig
	pending []event.Event
	summary Summary
}

// Summary is what an import read, published and skipped.
type Summary struct {
	Files     int
	Records   int
	Other     int            // messages that are not records (STATE, LOG, TRACE…): read and ignored
	Published int            // events delivered
	Events    map[string]int // per "type" or "type kind" (revenue), e.g. "uvr.revenue.v1 invoice_paid"
	Skipped   int
	Reasons   []SkipReason // by count, largest first (see SkipReasons)
	reasons   map[string]*SkipReason
}

// SkipReason groups the records skipped for one reason.
type SkipReason struct {
	Reason   string
	Count    int
	Examples []string // the first few record names
}

// NewImporter checks cfg.
func NewImporter(cfg ImporterConfig) (*Importer, error) {
	if cfg.Mapper == nil {
		return nil, errors.New("airbyte import: mapper is required")
	}
	if cfg.Publish == nil {
		return nil, errors.New("airbyte import: publish is required")
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 1000
	}
	if cfg.MaxSkipExamples <= 0 {
		cfg.MaxSkipExamples = 5
	}
	return &Importer{cfg: cfg, summary: Summary{Events: map[string]int{}, reasons: map[string]*SkipReason{}}}, nil
}

// ImportFile reads one file (name is used in messages). Records map and
// publish in batches as they are read; a record the mapper rejects is
// skipped and counted; a line that is not a message is an *InputError.
// Call Flush after the last file.
func (im *Importer) ImportFile(ctx context.Context, name string, r io.Reader) error {
	im.summary.Files++
	dec := NewDecoder(r)
	perStream := map[string]int{}
	for {
		line, err := dec.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return &InputError{File: name, Line: dec.Line(), Reason: err.Error()}
		}
		switch {
		case line.Invalid != nil:
			return &InputError{File: name, Line: line.Number, Reason: line.Invalid.Error()}
		case line.Message == nil:
			return &InputError{File: name, Line: line.Number, Reason: fmt.Sprintf("not JSON: %q", clip(line.Text, 60))}
		case line.Message.Type != TypeRecord:
			im.summary.Other++
			continue
		}
		rec := line.Message.Record
		im.summary.Records++
		perStream[rec.Stream]++
		events, err := MapRecord(im.cfg.Mapper, rec)
		if err != nil {
			im.skip(fmt.Sprintf("%s record %d (%s:%d)", rec.Stream, perStream[rec.Stream], name, line.Number), err)
			continue
		}
		for _, ev := range events {
			key := ev.Type
			if ev.Data.Kind != "" {
				key += " " + ev.Data.Kind
			}
			im.summary.Events[key]++
		}
		im.pending = append(im.pending, events...)
		if len(im.pending) >= im.cfg.BatchSize {
			if err := im.Flush(ctx); err != nil {
				return err
			}
		}
	}
}

// Flush publishes the events not yet published.
func (im *Importer) Flush(ctx context.Context) error {
	if len(im.pending) == 0 {
		return nil
	}
	if err := im.cfg.Publish(ctx, im.pending); err != nil {
		return fmt.Errorf("publish %d events: %w", len(im.pending), err)
	}
	im.summary.Published += len(im.pending)
	im.pending = im.pending[:0]
	return nil
}

func (im *Importer) skip(record string, reason error) {
	im.summary.Skipped++
	text := clip(reason.Error(), 200)
	g, ok := im.summary.reasons[text]
	if !ok {
		g = &SkipReason{Reason: text}
		im.summary.reasons[text] = g
	}
	g.Count++
	if len(g.Examples) < im.cfg.MaxSkipExamples {
		g.Examples = append(g.Examples, record)
	}
}

// Summary returns the counts so far, skip reasons largest first.
func (im *Importer) Summary() Summary {
	s := im.summary
	s.Reasons = make([]SkipReason, 0, len(s.reasons))
	for _, g := range s.reasons {
		s.Reasons = append(s.Reasons, *g)
	}
	sort.Slice(s.Reasons, func(i, j int) bool {
		if s.Reasons[i].Count != s.Reasons[j].Count {
			return s.Reasons[i].Count > s.Reasons[j].Count
		}
		return s.Reasons[i].Reason < s.Reasons[j].Reason
	})
	return s
}

// EventsTotal is the number of events mapped (published or pending).
func (s Summary) EventsTotal() int {
	n := 0
	for _, c := range s.Events {
		n += c
	}
	return n
}

// String is the summary as the CLI prints it.
func (s Summary) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "records read: %d (from %d file(s); %d other messages ignored)\n", s.Records, s.Files, s.Other)
	fmt.Fprintf(&b, "events published: %d\n", s.Published)
	keys := make([]string, 0, len(s.Events))
	for k := range s.Events {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "  %-40s %d\n", k, s.Events[k])
	}
	fmt.Fprintf(&b, "records skipped: %d\n", s.Skipped)
	for _, r := range s.Reasons {
		fmt.Fprintf(&b, "  %d × %s\n      e.g. %s\n", r.Count, r.Reason, strings.Join(r.Examples, "; "))
	}
	return b.String()
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

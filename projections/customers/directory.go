package customers

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/uvrhq/uvr/pipeline/event"
)

// Topic is the default compacted topic of the directory's records.
const Topic = "uvr.customers.v1"

// Table is the compacted-topic map the directory keeps its records in
// (pipeline/kafka.Table). Put returns once the write is durable and visible
// to Get/All on this instance; Sync makes every write acknowledged before it
// visible, from any instance.
type Table interface {
	Put(ctx context.Context, key string, value []byte) error
	Get(key string) ([]byte, bool)
	All() map[string][]byte
	Sync(ctx context.Context) error
	// Version changes whenever All's answer may have.
	Version() uint64
}

// Config configures New.
type Config struct {
	Table  Table            // required; its topic is Topic unless configured otherwise
	Logger *slog.Logger     // nil discards
	Now    func() time.Time // default time.Now
	NewID  func() string    // ids of split and unlinked customers; default random "cust_…"
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	if c.Table == nil {
		return errors.New("customers: Table is required")
	}
	return nil
}

// Directory resolves customer references, keeping observations and manual
// decisions as records of a compacted topic (keys: obs/, seen/, pin/, map/,
// alias/, customer/ followed by the escaped reference or id). Each record is
// the latest word on its key, so instances converge by reading the topic, and
// resolution is recomputed from the records (Resolve), never stored.
//
// Safe for concurrent use. Reads that take a ctx (Get, List, References,
// Unmapped) and every change Sync the table first, so they see every write
// acknowledged before the call, from any instance; Resolve and Snapshot read
// this instance's copy as it is (call Sync, or run the table's tail, first).
//
// Observe is meant to be called by one consumer per reference at a time (the
// events topic is keyed by reference, so one partition's consumer sees all of
// one reference's events in order); two instances observing the same
// reference at once may lose the older of two concurrent observations.
type Directory struct {
	cfg Config
	log *slog.Logger
	mu  sync.Mutex // one writer per instance: read-modify-write of records

	cacheMu      sync.Mutex // guards the resolution of the table at cacheVersion
	cached       bool
	cacheVersion uint64
	cache        Resolution
}

// New builds a Directory. It does no I/O.
func New(cfg Config) (*Directory, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.NewID == nil {
		cfg.NewID = randomID
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Directory{cfg: cfg, log: log.With("component", "customers")}, nil
}

// Sync reads every record written before the call, from any instance.
func (d *Directory) Sync(ctx context.Context) error {
	if err := d.cfg.Table.Sync(ctx); err != nil {
		return unavailable(err)
	}
	return nil
}

// Observe records what an event says about its customer reference: a
// customer event its email, name, plan, environment and metadata (a newer
// Data.Version, or the same version at a later time, replaces an older one;
// a void clears them), a usage or revenue event that the reference exists
// (and, for revenue, its plan). It writes only when something changed, so
// calling it for every event is cheap. An event without a reference is
// ignored.
func (d *Directory) Observe(ctx context.Context, ev event.Event) error {
	ref := Ref{Source: ev.Data.Customer.Source, ExternalID: ev.Data.Customer.ExternalID}
	if ref.Source == "" {
		ref.Source = ev.Source
	}
	if ref.Source == "" || ref.ExternalID == "" {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if ev.Type == event.TypeCustomer {
		return d.observeCustomer(ctx, ref, ev)
	}
	return d.observeSeen(ctx, ref, ev)
}

func (d *Directory) observeCustomer(ctx context.Context, ref Ref, ev event.Event) error {
	key := refKey("obs/", ref)
	var old obsRecord
	exists := d.read(key, &old)
	at := ev.Time.UTC()
	if exists && (ev.Data.Version < old.Version || (ev.Data.Version == old.Version && !at.After(old.EventTime))) {
		return nil // older or duplicate
	}
	rec := obsRecord{
		Source: ref.Source, ExternalID: ref.ExternalID,
		Version: ev.Data.Version, EventTime: at, Void: ev.Data.Void,
		FirstSeen: old.FirstSeen,
	}
	if rec.FirstSeen.IsZero() {
		rec.FirstSeen = d.now()
	}
	if !ev.Data.Void {
		c := ev.Data.Customer
		rec.Email, rec.Name = c.Email, c.Name
		rec.Plan, rec.Environment, rec.Metadata = ev.Data.Plan, ev.Data.Environment, ev.Data.Metadata
	}
	return d.put(ctx, key, rec, exists, old)
}

func (d *Directory) observeSeen(ctx context.Context, ref Ref, ev event.Event) error {
	key := refKey("seen/", ref)
	var old seenRecord
	exists := d.read(key, &old)
	rec := old
	rec.Source, rec.ExternalID = ref.Source, ref.ExternalID
	if rec.FirstSeen.IsZero() {
		rec.FirstSeen = d.now()
	}
	rec.Email = firstNonEmpty(ev.Data.Customer.Email, rec.Email)
	rec.Name = firstNonEmpty(ev.Data.Customer.Name, rec.Name)
	if ev.Type == event.TypeRevenue && ev.Data.Plan != "" && !ev.Data.Void && !ev.Time.Before(rec.PlanAt) {
		rec.Plan, rec.PlanAt = ev.Data.Plan, ev.Time.UTC()
	}
	return d.put(ctx, key, rec, exists, old)
}

// Resolve returns the canonical customer id of ref from this instance's
// copy: an unknown reference is its own customer (SelfID), the unmapped
// reference the unmapped customer.
func (d *Directory) Resolve(ref Ref) string {
	res := d.resolution()
	if l, ok := res.Links[ref]; ok {
		return l.CustomerID
	}
	return res.Canonical(SelfID(ref))
}

// Snapshot maps every known reference to its canonical customer id, from
// this instance's copy. It is what consumers resolve through at query time
// (the daily aggregates load it into ClickHouse), so a manual change applies
// to all history without re-ingesting. A reference missing from it is its
// own customer, SelfID(ref).
func (d *Directory) Snapshot() map[Ref]string {
	res := d.resolution()
	out := make(map[Ref]string, len(res.Links))
	for r, l := range res.Links {
		out[r] = l.CustomerID
	}
	return out
}

// Get returns a customer by id; the id of a merged customer returns the
// customer it was merged into.
func (d *Directory) Get(ctx context.Context, id string) (Customer, error) {
	res, err := d.resolved(ctx)
	if err != nil {
		return Customer{}, err
	}
	c, ok := res.Lookup(id)
	if !ok {
		return Customer{}, newError(KindNotFound, fmt.Sprintf("customer %s not found", id), nil)
	}
	return *c, nil
}

// List returns the customers matching q (case-insensitive, in id, name,
// emails and external ids; "" matches all), by name then id, and how many
// matched before limit (≤ 0: no limit) and offset.
func (d *Directory) List(ctx context.Context, q string, limit, offset int) ([]Customer, int, error) {
	res, err := d.resolved(ctx)
	if err != nil {
		return nil, 0, err
	}
	q = strings.ToLower(strings.TrimSpace(q))
	var out []Customer
	for _, c := range res.Customers {
		if q == "" || matches(c, q) {
			out = append(out, *c)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := strings.ToLower(out[i].Name), strings.ToLower(out[j].Name)
		if a != b {
			return a < b
		}
		return out[i].ID < out[j].ID
	})
	total := len(out)
	offset = min(max(offset, 0), total)
	out = out[offset:]
	if limit > 0 && limit < len(out) {
		out = out[:limit]
	}
	return out, total, nil
}

func matches(c *Customer, q string) bool {
	if strings.Contains(strings.ToLower(c.ID), q) || strings.Contains(strings.ToLower(c.Name), q) {
		return true
	}
	for _, e := range c.Emails {
		if strings.Contains(e, q) {
			return true
		}
	}
	for _, r := range c.References {
		if strings.Contains(strings.ToLower(r.ExternalID), q) {
			return true
		}
	}
	return false
}

// Reference is a reference with its resolution.
type Reference struct {
	Ref
	CustomerID   string `json:"customer_id"`
	CustomerName string `json:"customer_name"`
	Rule         Rule   `json:"rule"`
	Email        string `json:"email,omitempty"`
}

// References lists every known reference with its customer, by source then
// external id; unmappedOnly keeps those Unmapped returns.
func (d *Directory) References(ctx context.Context, unmappedOnly bool) ([]Reference, error) {
	if err := d.Sync(ctx); err != nil {
		return nil, err
	}
	st := d.state()
	res := Resolve(st)
	out := make([]Reference, 0, len(res.Links))
	for r, l := range res.Links {
		c := res.Customers[l.CustomerID]
		if unmappedOnly && !isUnmapped(l, c) {
			continue
		}
		out = append(out, Reference{Ref: r, CustomerID: l.CustomerID, CustomerName: c.Name, Rule: l.Rule, Email: normEmail(st.Observations[r].Email)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Ref.less(out[j].Ref) })
	return out, nil
}

// Unmapped lists the references nothing links to another: each resolved
// only to itself (its own customer, alone, by no rule but itself), plus the
// references of the unmapped customer.
func (d *Directory) Unmapped(ctx context.Context) ([]Reference, error) {
	return d.References(ctx, true)
}

func isUnmapped(l Link, c *Customer) bool {
	return l.Rule == RuleUnmapped || (l.Rule == RuleSelf && len(c.References) == 1)
}

// Link pins ref to customer id (see PlanLink) and returns that customer.
func (d *Directory) Link(ctx context.Context, ref Ref, id string) (Customer, error) {
	var target string
	err := d.change(ctx, func(s State, now time.Time) (Change, error) {
		ch, err := PlanLink(s, ref, id, now)
		target = ch.Pins[ref].CustomerID
		return ch, err
	})
	if err != nil {
		return Customer{}, err
	}
	d.log.Info("reference linked", "source", ref.Source, "customer_id", target)
	return d.get(target)
}

// Unlink makes ref its own customer for good (see PlanUnlink) and returns it.
func (d *Directory) Unlink(ctx context.Context, ref Ref) (Customer, error) {
	var target string
	err := d.change(ctx, func(s State, now time.Time) (Change, error) {
		ch, err := PlanUnlink(s, ref, now, d.cfg.NewID)
		target = ch.Pins[ref].CustomerID
		return ch, err
	})
	if err != nil {
		return Customer{}, err
	}
	d.log.Info("reference unlinked", "source", ref.Source, "customer_id", target)
	return d.get(target)
}

// Merge merges customer id into customer into (see PlanMerge) and returns
// the surviving customer.
func (d *Directory) Merge(ctx context.Context, id, into string) (Customer, error) {
	var survivor string
	err := d.change(ctx, func(s State, now time.Time) (Change, error) {
		ch, err := PlanMerge(s, id, into, now)
		for _, a := range ch.Aliases {
			survivor = a.Into
		}
		return ch, err
	})
	if err != nil {
		return Customer{}, err
	}
	d.log.Info("customers merged", "customer_id", id, "into", survivor)
	return d.get(survivor)
}

// Split moves refs out of customer id into a new customer (see PlanSplit)
// and returns the customer left and the new one.
func (d *Directory) Split(ctx context.Context, id string, refs []Ref) (left, created Customer, err error) {
	var nid, from string
	err = d.change(ctx, func(s State, now time.Time) (Change, error) {
		ch, n, err := PlanSplit(s, id, refs, now, d.cfg.NewID)
		nid, from = n, Resolve(s).Canonical(id)
		return ch, err
	})
	if err != nil {
		return Customer{}, Customer{}, err
	}
	d.log.Info("customer split", "customer_id", from, "new_customer_id", nid, "references", len(refs))
	if left, err = d.get(from); err != nil {
		return Customer{}, Customer{}, err
	}
	created, err = d.get(nid)
	return left, created, err
}

// LoadMapping applies a mapping file (YAML or JSON, see ParseMapping) and
// returns how many entries it holds. Loading the same file again is harmless.
func (d *Directory) LoadMapping(ctx context.Context, path string) (int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, newError(KindInvalid, "read mapping file "+path, err)
	}
	entries, err := ParseMapping(data)
	if err != nil {
		return 0, err
	}
	return len(entries), d.ApplyMapping(ctx, entries)
}

// ApplyMapping writes mapping entries (ParseMapping checks a file's).
func (d *Directory) ApplyMapping(ctx context.Context, entries []MappingEntry) error {
	return d.change(ctx, func(_ State, now time.Time) (Change, error) {
		return PlanMapping(entries, now), nil
	})
}

// change syncs, plans against the current state and writes the change:
// customer records first (nothing ever points at a customer that is not
// there), then mappings, pins, and aliases last.
func (d *Directory) change(ctx context.Context, plan func(State, time.Time) (Change, error)) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.Sync(ctx); err != nil {
		return err
	}
	st := d.state()
	ch, err := plan(st, d.now())
	if err != nil {
		return err
	}
	for id, rec := range ch.Records {
		if old, ok := st.Records[id]; ok {
			rec.CreatedAt = old.CreatedAt
			rec.Name = firstNonEmpty(rec.Name, old.Name)
			if rec == old {
				continue
			}
		}
		if err := d.write(ctx, idKey("customer/", id), customerRecord{ID: id, Name: rec.Name, CreatedAt: rec.CreatedAt}); err != nil {
			return err
		}
	}
	for r, m := range ch.Mappings {
		if old, ok := st.Mappings[r]; ok && old.CustomerID == m.CustomerID {
			continue
		}
		if err := d.write(ctx, refKey("map/", r), mapRecord{Source: r.Source, ExternalID: r.ExternalID, CustomerID: m.CustomerID, At: m.At}); err != nil {
			return err
		}
	}
	for r, p := range ch.Pins {
		if err := d.write(ctx, refKey("pin/", r), pinRecord{Source: r.Source, ExternalID: r.ExternalID, CustomerID: p.CustomerID, Unlinked: p.Unlinked, At: p.At}); err != nil {
			return err
		}
	}
	for id, a := range ch.Aliases {
		if err := d.write(ctx, idKey("alias/", id), aliasRecord{ID: id, Into: a.Into, At: a.At}); err != nil {
			return err
		}
	}
	return nil
}

func (d *Directory) resolved(ctx context.Context) (Resolution, error) {
	if err := d.Sync(ctx); err != nil {
		return Resolution{}, err
	}
	return d.resolution(), nil
}

// resolution is Resolve of the table's records, computed again only when the
// table changed: decoding every record and resolving every reference is
// what each query through the directory (every dashboard, customer list and
// analytics request) would otherwise pay. The Resolution is shared: callers
// read it and copy what they hand out.
func (d *Directory) resolution() Resolution {
	v := d.cfg.Table.Version() // before reading: a change after it recomputes next time
	d.cacheMu.Lock()
	defer d.cacheMu.Unlock()
	if d.cached && d.cacheVersion == v {
		return d.cache
	}
	d.cache, d.cacheVersion, d.cached = Resolve(d.state()), v, true
	return d.cache
}

func (d *Directory) get(id string) (Customer, error) {
	c, ok := d.resolution().Lookup(id)
	if !ok {
		return Customer{}, newError(KindNotFound, fmt.Sprintf("customer %s not found", id), nil)
	}
	return *c, nil
}

// state decodes every record. An unreadable record is logged and skipped:
// one bad record must not hide the others.
func (d *Directory) state() State {
	st := State{
		Observations: map[Ref]Observation{}, Pins: map[Ref]Pin{}, Mappings: map[Ref]Mapping{},
		Records: map[string]Record{}, Aliases: map[string]Alias{},
	}
	seen := map[Ref]seenRecord{}
	for key, raw := range d.cfg.Table.All() {
		prefix, _, _ := strings.Cut(key, "/")
		var err error
		switch prefix {
		case "obs":
			var r obsRecord
			if err = json.Unmarshal(raw, &r); err == nil {
				o := Observation{FirstSeen: r.FirstSeen, UpdatedAt: r.EventTime}
				if !r.Void {
					o.Email, o.Name, o.Plan, o.Environment, o.Metadata = r.Email, r.Name, r.Plan, r.Environment, r.Metadata
				}
				st.Observations[r.ref()] = o
			}
		case "seen":
			var r seenRecord
			if err = json.Unmarshal(raw, &r); err == nil {
				seen[r.ref()] = r
			}
		case "pin":
			var r pinRecord
			if err = json.Unmarshal(raw, &r); err == nil {
				st.Pins[r.ref()] = Pin{CustomerID: r.CustomerID, Unlinked: r.Unlinked, At: r.At}
			}
		case "map":
			var r mapRecord
			if err = json.Unmarshal(raw, &r); err == nil {
				st.Mappings[r.ref()] = Mapping{CustomerID: r.CustomerID, At: r.At}
			}
		case "customer":
			var r customerRecord
			if err = json.Unmarshal(raw, &r); err == nil {
				st.Records[r.ID] = Record{ID: r.ID, Name: r.Name, CreatedAt: r.CreatedAt}
			}
		case "alias":
			var r aliasRecord
			if err = json.Unmarshal(raw, &r); err == nil {
				st.Aliases[r.ID] = Alias{Into: r.Into, At: r.At}
			}
		default:
			err = errors.New("unknown key prefix")
		}
		if err != nil {
			d.log.Warn("unreadable customer record skipped", "key_prefix", prefix, "error", err)
		}
	}
	// A reference seen in usage/revenue: its first sighting, and what the
	// events' reference said, under what its customer events said.
	for r, s := range seen {
		o, ok := st.Observations[r]
		o.FirstSeen = earliest(o.FirstSeen, s.FirstSeen)
		o.Email = firstNonEmpty(o.Email, s.Email)
		o.Name = firstNonEmpty(o.Name, s.Name)
		o.Plan = firstNonEmpty(o.Plan, s.Plan)
		if !ok {
			o.UpdatedAt = s.PlanAt
		}
		st.Observations[r] = o
	}
	return st
}

func (d *Directory) read(key string, v any) bool {
	raw, ok := d.cfg.Table.Get(key)
	if !ok {
		return false
	}
	if err := json.Unmarshal(raw, v); err != nil {
		d.log.Warn("unreadable customer record replaced", "error", err)
		return false
	}
	return true
}

// put writes rec unless it equals old.
func (d *Directory) put(ctx context.Context, key string, rec any, exists bool, old any) error {
	if exists {
		a, errA := json.Marshal(rec)
		b, errB := json.Marshal(old)
		if errA == nil && errB == nil && bytes.Equal(a, b) {
			return nil
		}
	}
	return d.write(ctx, key, rec)
}

func (d *Directory) write(ctx context.Context, key string, rec any) error {
	raw, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encode customer record: %w", err)
	}
	if err := d.cfg.Table.Put(ctx, key, raw); err != nil {
		return unavailable(err)
	}
	return nil
}

func (d *Directory) now() time.Time { return d.cfg.Now().UTC().Truncate(time.Millisecond) }

func unavailable(err error) error {
	return newError(KindUnavailable, "the customer directory is unavailable (Kafka)", err)
}

func refKey(prefix string, r Ref) string {
	return prefix + url.PathEscape(r.Source) + "/" + url.PathEscape(r.ExternalID)
}

func idKey(prefix, id string) string { return prefix + url.PathEscape(id) }

// randomID is a new customer id: "cust_" and 20 random hex digits.
func randomID() string {
	var b [10]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return fmt.Sprintf("cust_%x", b[:])
}

// Records as stored on the topic. Their shape is a contract with every uvr
// version reading the topic: add fields, never change one.
type obsRecord struct {
	Source      string            `json:"source"`
	ExternalID  string            `json:"external_id"`
	Email       string            `json:"email,omitempty"`
	Name        string            `json:"name,omitempty"`
	Plan        string            `json:"plan,omitempty"`
	Environment string            `json:"environment,omitempty"`
	Metadata    map[string]string `json:"metadata,omitempty"`
	Version     uint32            `json:"version"`
	EventTime   time.Time         `json:"event_time"`
	Void        bool              `json:"void,omitempty"`
	FirstSeen   time.Time         `json:"first_seen"`
}

type seenRecord struct {
	Source     string    `json:"source"`
	ExternalID string    `json:"external_id"`
	Email      string    `json:"email,omitempty"`
	Name       string    `json:"name,omitempty"`
	Plan       string    `json:"plan,omitempty"`
	PlanAt     time.Time `json:"plan_at"`
	FirstSeen  time.Time `json:"first_seen"`
}

type pinRecord struct {
	Source     string    `json:"source"`
	ExternalID string    `json:"external_id"`
	CustomerID string    `json:"customer_id"`
	Unlinked   bool      `json:"unlinked,omitempty"`
	At         time.Time `json:"at"`
}

type mapRecord struct {
	Source     string    `json:"source"`
	ExternalID string    `json:"external_id"`
	CustomerID string    `json:"customer_id"`
	At         time.Time `json:"at"`
}

type customerRecord struct {
	ID        string    `json:"id"`
	Name      string    `json:"name,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

type aliasRecord struct {
	ID   string    `json:"id"`
	Into string    `json:"into"`
	At   time.Time `json:"at"`
}

func (r obsRecord) ref() Ref  { return Ref{r.Source, r.ExternalID} }
func (r seenRecord) ref() Ref { return Ref{r.Source, r.ExternalID} }
func (r pinRecord) ref() Ref  { return Ref{r.Source, r.ExternalID} }
func (r mapRecord) ref() Ref  { return Ref{r.Source, r.ExternalID} }

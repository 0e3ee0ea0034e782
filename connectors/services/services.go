// Package services is the registry of configured services (a Stripe account,
// an OpenAI organisation, …). A service's record lives in a compacted Kafka
// topic (Kafka is uvr's source of truth, and every instance reads it); its
// credentials live only in the credential store (Vault), never in Kafka, a log
// or an answer of the API.
package services

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/uvrhq/uvr/connectors/catalog"
	"github.com/uvrhq/uvr/connectors/credentials"
	"github.com/uvrhq/uvr/connectors/source"
)

// Topic is the compacted topic of service records, keyed by service id.
// A service's sync status (last sync, status) has a key of its own, the id
// with statusSuffix: see UpdateSync for why.
const Topic = "uvr.services.v1"

// statusSuffix makes a service's sync status key. Service ids are UUIDs, so
// no id ends with it.
const statusSuffix = "/sync"

func statusKey(id string) string { return id + statusSuffix }

// Defaults of Config.
const (
	DefaultSyncInterval = time.Hour
	DefaultTestTimeout  = 30 * time.Second
)

// Status of a service.
type Status string

// Statuses.
const (
	StatusActive Status = "active" // synced on schedule
	StatusPaused Status = "paused" // kept, not synced
	StatusError  Status = "error"  // the last sync failed (e.g. credentials rejected)
)

// Valid reports whether s is a known status.
func (s Status) Valid() bool { return s == StatusActive || s == StatusPaused || s == StatusError }

// Service is a configured service, without its credentials.
type Service struct {
	ID                  string
	Type                string // a catalog type name, e.g. "stripe"
	Category            catalog.Category
	Name                string
	Status              Status
	AirbyteSourceID     string
	AirbyteConnectionID string
	LastSync            *time.Time // nil: never synced
	SyncInterval        time.Duration
	CreatedAt           time.Time
}

// NewService is what Create needs. Name, Category and SyncInterval are optional.
type NewService struct {
	Type         string
	Name         string           // default: the type name
	Category     catalog.Category // checked against the type's when given
	Credentials  map[string]string
	SyncInterval time.Duration // default: Config.DefaultSyncInterval
}

// Table is the compacted-topic map the registry keeps records in
// (pipeline/kafka.Table). Put and Delete return once the write is durable and
// visible to Get on this instance; Sync makes every write acknowledged before
// it visible, from any instance.
type Table interface {
	Put(ctx context.Context, key string, value []byte) error
	Delete(ctx context.Context, key string) error
	Get(key string) ([]byte, bool)
	All() map[string][]byte
	Sync(ctx context.Context) error
}

// Config configures New.
type Config struct {
	Table       Table             // required: records, on the topic Topic
	Credentials credentials.Store // required
	Catalog     *catalog.Catalog  // required
	// Egress bounds the addresses a service's connector may call (its
	// base_url, every address dialled). The zero value: https to public
	// hosts only; cmd/uvr widens it from UVR_CONNECTOR_ALLOW_PRIVATE_HOSTS.
	Egress source.Egress
	// MappingDir is the directory a custom service's mapping_file must name
	// a file in; "" refuses mapping_file (inline mapping still works).
	MappingDir string

	DefaultSyncInterval time.Duration // default 1h
	TestTimeout         time.Duration // bound of one Test call; default 30s

	Logger *slog.Logger     // nil discards
	Now    func() time.Time // default time.Now
}

// Validate reports every missing dependency at once.
func (c Config) Validate() error {
	var errs []error
	if c.Table == nil {
		errs = append(errs, errors.New("services: Table is required"))
	}
	if c.Credentials == nil {
		errs = append(errs, errors.New("services: Credentials is required"))
	}
	if c.Catalog == nil {
		errs = append(errs, errors.New("services: Catalog is required"))
	}
	if c.DefaultSyncInterval < 0 || c.TestTimeout < 0 {
		errs = append(errs, errors.New("services: durations must be ≥ 0"))
	}
	return errors.Join(errs...)
}

// Registry creates, lists and deletes services. Safe for concurrent use.
// Reads Sync the table first, so every instance answers with the writes of
// every other instance acknowledged before the call.
type Registry struct {
	cfg Config
	log *slog.Logger
}

// New builds a Registry. It does no I/O.
func New(cfg Config) (*Registry, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.DefaultSyncInterval == 0 {
		cfg.DefaultSyncInterval = DefaultSyncInterval
	}
	if cfg.TestTimeout == 0 {
		cfg.TestTimeout = DefaultTestTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Registry{cfg: cfg, log: log.With("component", "services")}, nil
}

// Create validates the request against the catalog, stores the credentials,
// then the record. The credentials are written first so that no record ever
// points to credentials that are not there; if the record cannot be written,
// both are removed again (undoCreate).
func (r *Registry) Create(ctx context.Context, req NewService) (Service, error) {
	typ, creds, err := r.validate(req.Type, req.Category, req.Credentials)
	if err != nil {
		return Service{}, err
	}
	name := strings.TrimSpace(req.Name)
	if name == "" {
		name = typ.Name
	}
	if len(name) > 200 {
		return Service{}, newError(KindInvalid, "service_name must be at most 200 characters", nil)
	}
	if req.SyncInterval < 0 {
		return Service{}, newError(KindInvalid, "sync interval must be ≥ 0", nil)
	}
	interval := req.SyncInterval
	if interval == 0 {
		interval = r.cfg.DefaultSyncInterval
	}
	// Build the connector (no call is made) so that what only it judges —
	// a base_url outside the egress policy, a malformed mapping — is refused
	// now, not at the first sync.
	if typ.New != nil {
		if _, err := r.build(typ, creds, r.log); err != nil {
			return Service{}, err
		}
	}

	existing, err := r.List(ctx)
	if err != nil {
		return Service{}, err
	}
	for _, s := range existing {
		if s.Type == typ.Name && strings.EqualFold(s.Name, name) {
			return Service{}, newError(KindConflict, fmt.Sprintf("a %s service named %q already exists (id %s)", s.Type, s.Name, s.ID), nil)
		}
	}

	svc := Service{
		ID:           newID(),
		Type:         typ.Name,
		Category:     typ.Category,
		Name:         name,
		Status:       StatusActive,
		SyncInterval: interval,
		CreatedAt:    r.cfg.Now().UTC().Truncate(time.Millisecond),
	}
	// Once the credentials are stored the create runs to its end even if the
	// caller goes away: a write cancelled mid-flight may still land after the
	// undo's tombstone (two connections, no order between them), leaving a
	// service behind. Detached, bounded, it either completes or fails for a
	// reason undoCreate can clean up after.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := r.cfg.Credentials.Put(wctx, svc.ID, creds); err != nil {
		return Service{}, r.storeError("store the credentials", err)
	}
	if err := r.put(wctx, svc); err != nil {
		r.undoCreate(wctx, svc.ID)
		return Service{}, err
	}
	r.log.Info("service created", "service_id", svc.ID, "service_type", svc.Type)
	return svc, nil
}

// undoCreate removes what a failed Create left behind, even if ctx has just
// ended. A failed write may still have reached Kafka (the acknowledgement was
// lost, or the caller went away mid-request), so the record is deleted first
// and the credentials only once that delete is acknowledged: a record whose
// credentials are gone could never sync, whereas leftover credentials are
// only logged for an operator.
func (r *Registry) undoCreate(ctx context.Context, id string) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := r.cfg.Table.Delete(cctx, id); err != nil {
		r.log.Error("a service that could not be created may be left in the registry, and its credentials in the store",
			"service_id", id, "error", err.Error())
		return
	}
	if err := r.cfg.Credentials.Delete(cctx, id); err != nil && !errors.Is(err, credentials.ErrNotFound) {
		r.log.Error("credentials of a service that could not be created are left in the store",
			"service_id", id, "error", err.Error())
	}
}

// Types returns the service types Create and Test accept (the catalog),
// sorted by name.
func (r *Registry) Types() []catalog.Type { return r.cfg.Catalog.Types() }

// List returns every service, oldest first.
func (r *Registry) List(ctx context.Context) ([]Service, error) {
	if err := r.cfg.Table.Sync(ctx); err != nil {
		return nil, newError(KindUnavailable, "the service registry is unavailable (Kafka)", err)
	}
	all := r.cfg.Table.All()
	out := make([]Service, 0, len(all))
	for id, raw := range all {
		if strings.HasSuffix(id, statusSuffix) {
			continue // read with its service; one without a service is ignored
		}
		svc, err := decode(raw)
		if err != nil {
			// One unreadable record must not hide the others.
			r.log.Warn("unreadable service record skipped", "service_id", id, "error", err)
			continue
		}
		out = append(out, r.withStatus(svc, all[statusKey(id)]))
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].CreatedAt.Equal(out[j].CreatedAt) {
			return out[i].CreatedAt.Before(out[j].CreatedAt)
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// Get returns one service.
func (r *Registry) Get(ctx context.Context, id string) (Service, error) {
	if err := r.cfg.Table.Sync(ctx); err != nil {
		return Service{}, newError(KindUnavailable, "the service registry is unavailable (Kafka)", err)
	}
	return r.get(id)
}

func (r *Registry) get(id string) (Service, error) {
	raw, ok := r.cfg.Table.Get(id)
	if !ok {
		return Service{}, newError(KindNotFound, fmt.Sprintf("service %s not found", id), nil)
	}
	svc, err := decode(raw)
	if err != nil {
		return Service{}, fmt.Errorf("service %s: %w", id, err)
	}
	status, _ := r.cfg.Table.Get(statusKey(id))
	return r.withStatus(svc, status), nil
}

// withStatus overlays the service's sync status record, if it has one, on
// its record (which holds the status of before the split, or of Create).
func (r *Registry) withStatus(svc Service, raw []byte) Service {
	if raw == nil {
		return svc
	}
	var rec statusRecord
	if err := json.Unmarshal(raw, &rec); err != nil || !Status(rec.Status).Valid() {
		r.log.Warn("unreadable service sync status ignored", "service_id", svc.ID, "error", err, "status", rec.Status)
		return svc
	}
	svc.Status = Status(rec.Status)
	svc.LastSync = rec.LastSync
	return svc
}

// Delete removes a service: its credentials first (a record without
// credentials only fails its syncs; credentials without a record would never
// be cleaned up), then its record, then its sync status. The record goes
// before the status: UpdateSync relies on that order (see there).
//
// A delete is final: ids are never reused and nothing but Create writes a
// service's record, so no later write can bring the service back.
func (r *Registry) Delete(ctx context.Context, id string) error {
	svc, err := r.Get(ctx, id)
	if err != nil {
		return err
	}
	if err := r.cfg.Credentials.Delete(ctx, svc.ID); err != nil && !errors.Is(err, credentials.ErrNotFound) {
		return r.storeError("delete the credentials", err)
	}
	for _, key := range []string{svc.ID, statusKey(svc.ID)} {
		if err := r.cfg.Table.Delete(ctx, key); err != nil {
			return newError(KindUnavailable, "the service registry is unavailable (Kafka)", err)
		}
	}
	r.log.Info("service deleted", "service_id", svc.ID, "service_type", svc.Type)
	return nil
}

// UpdateSync records a sync of service id: when it ended (lastSync; zero
// keeps the previous one) and the status it leaves the service in. For the
// sync engine. A service deleted before or during the call is KindNotFound,
// and stays deleted.
//
// The status is a record of its own, never a rewrite of the service's
// record. Kafka has no compare-and-set: a read-modify-write of the record
// that read the service just before another instance's tombstone would land
// after it and bring the service back, and in a compacted topic the latest
// record of a key is the one that survives, so no reader could tell that
// write from a live service once the tombstone is compacted away. So only
// Create writes a service's record and its tombstone is final. A status
// written after the delete can only leave a status record with no service,
// which readers ignore; UpdateSync removes it itself: Delete writes the
// record's tombstone before the status's, so either the status's tombstone
// follows this write, or the record's tombstone precedes it and the Sync
// after the write sees it.
func (r *Registry) UpdateSync(ctx context.Context, id string, lastSync time.Time, status Status) error {
	if !status.Valid() {
		return newError(KindInvalid, fmt.Sprintf("status %q is not one of active, paused, error", status), nil)
	}
	svc, err := r.Get(ctx, id)
	if err != nil {
		return err
	}
	rec := statusRecord{Version: recordVersion, Status: string(status), LastSync: svc.LastSync}
	if !lastSync.IsZero() {
		t := lastSync.UTC()
		rec.LastSync = &t
	}
	raw, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encode the sync status of service %s: %w", id, err)
	}
	if err := r.cfg.Table.Put(ctx, statusKey(id), raw); err != nil {
		return newError(KindUnavailable, "the service registry is unavailable (Kafka)", err)
	}
	if _, err := r.Get(ctx, id); KindOf(err) != KindNotFound {
		return err // nil: the service is still there
	}
	if err := r.cfg.Table.Delete(ctx, statusKey(id)); err != nil {
		r.log.Warn("the sync status of a deleted service is left on the registry topic (ignored by readers)",
			"service_id", id, "error", err.Error())
	}
	r.log.Info("service deleted during its sync: its sync status is dropped", "service_id", id)
	return newError(KindNotFound, fmt.Sprintf("service %s not found: deleted during its sync", id), nil)
}

// Test builds the Source of a would-be service through the catalog and calls
// its Check: one real call to the service. nil means the credentials work.
// A rejection is KindAuth, an unreachable service KindUnavailable; the message
// is the service's own, with every credential value removed.
func (r *Registry) Test(ctx context.Context, typeName string, creds map[string]string) error {
	typ, creds, err := r.validate(typeName, "", creds)
	if err != nil {
		return err
	}
	src, err := r.build(typ, creds, r.log.With("service_type", typ.Name))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, r.cfg.TestTimeout)
	defer cancel()
	return r.check(ctx, typ, src, creds)
}

// Source builds the Source of a configured service with its stored
// credentials. For the sync engine.
func (r *Registry) Source(ctx context.Context, id string) (source.Source, Service, error) {
	svc, err := r.Get(ctx, id)
	if err != nil {
		return nil, Service{}, err
	}
	typ, ok := r.cfg.Catalog.Lookup(svc.Type)
	if !ok {
		return nil, svc, newError(KindInvalid, fmt.Sprintf("service %s has type %q, which this uvr does not know", svc.ID, svc.Type), nil)
	}
	creds, err := r.cfg.Credentials.Get(ctx, svc.ID)
	if errors.Is(err, credentials.ErrNotFound) {
		return nil, svc, newError(KindNotFound, fmt.Sprintf("the credentials of service %s are missing from the credential store", svc.ID), err)
	}
	if err != nil {
		return nil, svc, r.storeError("read the credentials", err)
	}
	src, err := r.build(typ, creds, r.log.With("service_id", svc.ID, "service_type", svc.Type))
	if err != nil {
		return nil, svc, err
	}
	return src, svc, nil
}

func (r *Registry) build(typ catalog.Type, creds map[string]string, log *slog.Logger) (source.Source, error) {
	if typ.New == nil {
		return nil, newError(KindInvalid, fmt.Sprintf("service type %s has no connector in this uvr", typ.Name), nil)
	}
	src, err := typ.New(creds, source.Env{Logger: log, Egress: r.cfg.Egress, MappingDir: r.cfg.MappingDir})
	if err != nil {
		return nil, newError(KindInvalid, "the "+typ.Name+" credentials are not usable: "+redact(err.Error(), creds), nil)
	}
	return src, nil
}

func (r *Registry) check(ctx context.Context, typ catalog.Type, src source.Source, creds map[string]string) error {
	err := src.Check(ctx)
	if err == nil {
		return nil
	}
	msg := redact(err.Error(), creds)
	if source.IsAuth(err) {
		return newError(KindAuth, msg, nil)
	}
	if source.IsEgress(err) { // the base_url's name resolved to a refused address
		return newError(KindInvalid, msg, nil)
	}
	if ctx.Err() != nil {
		msg = fmt.Sprintf("%s did not answer within %s: %s", typ.Name, r.cfg.TestTimeout, msg)
	}
	return newError(KindUnavailable, msg, nil)
}

// validate checks a request against the catalog and returns the credentials
// trimmed of surrounding blanks (a pasted key often carries a newline).
func (r *Registry) validate(typeName string, category catalog.Category, creds map[string]string) (catalog.Type, map[string]string, error) {
	typeName = strings.TrimSpace(typeName)
	if typeName == "" {
		return catalog.Type{}, nil, newError(KindInvalid, "service_type is required", nil)
	}
	if category != "" && !category.Valid() {
		return catalog.Type{}, nil, newError(KindInvalid, fmt.Sprintf("service_category %q is neither usage nor revenue", category), nil)
	}
	trimmed := make(map[string]string, len(creds))
	for k, v := range creds {
		trimmed[k] = strings.TrimSpace(v)
	}
	if err := r.cfg.Catalog.Validate(typeName, category, trimmed); err != nil {
		return catalog.Type{}, nil, newError(KindInvalid, err.Error(), nil)
	}
	typ, _ := r.cfg.Catalog.Lookup(typeName)
	return typ, trimmed, nil
}

func (r *Registry) put(ctx context.Context, svc Service) error {
	raw, err := encode(svc)
	if err != nil {
		return err
	}
	if err := r.cfg.Table.Put(ctx, svc.ID, raw); err != nil {
		return newError(KindUnavailable, "the service registry is unavailable (Kafka)", err)
	}
	return nil
}

// storeError maps a credential store failure. The store's errors hold no credential.
func (r *Registry) storeError(what string, err error) error {
	if errors.Is(err, credentials.ErrInvalid) {
		return newError(KindInvalid, "could not "+what, err)
	}
	r.log.Error("credential store failed", "op", what, "error", err.Error())
	return newError(KindUnavailable, "could not "+what+": the credential store is unavailable", err)
}

// newID is a random (version 4) UUID.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// record is a service as stored on the topic. Its shape is a contract with
// every uvr version reading the topic: add fields, never change one.
type record struct {
	Version             int        `json:"version"` // 1
	ID                  string     `json:"id"`
	Type                string     `json:"type"`
	Category            string     `json:"category"`
	Name                string     `json:"name"`
	Status              string     `json:"status"`
	AirbyteSourceID     string     `json:"airbyte_source_id,omitempty"`
	AirbyteConnectionID string     `json:"airbyte_connection_id,omitempty"`
	LastSync            *time.Time `json:"last_sync,omitempty"`
	SyncIntervalSeconds int64      `json:"sync_interval_seconds"`
	CreatedAt           time.Time  `json:"created_at"`
}

const recordVersion = 1

// statusRecord is a service's sync status as stored on the topic, under
// statusKey. Same contract as record.
type statusRecord struct {
	Version  int        `json:"version"` // 1
	Status   string     `json:"status"`
	LastSync *time.Time `json:"last_sync,omitempty"`
}

func encode(s Service) ([]byte, error) {
	b, err := json.Marshal(record{
		Version:             recordVersion,
		ID:                  s.ID,
		Type:                s.Type,
		Category:            string(s.Category),
		Name:                s.Name,
		Status:              string(s.Status),
		AirbyteSourceID:     s.AirbyteSourceID,
		AirbyteConnectionID: s.AirbyteConnectionID,
		LastSync:            s.LastSync,
		SyncIntervalSeconds: int64(s.SyncInterval / time.Second),
		CreatedAt:           s.CreatedAt,
	})
	if err != nil {
		return nil, fmt.Errorf("encode service %s: %w", s.ID, err)
	}
	return b, nil
}

func decode(raw []byte) (Service, error) {
	var rec record
	if err := json.Unmarshal(raw, &rec); err != nil {
		return Service{}, fmt.Errorf("decode service record: %w", err)
	}
	if rec.Version < 1 || rec.ID == "" || rec.Type == "" {
		return Service{}, fmt.Errorf("decode service record: version %d, id %q, type %q: not a service record", rec.Version, rec.ID, rec.Type)
	}
	return Service{
		ID:                  rec.ID,
		Type:                rec.Type,
		Category:            catalog.Category(rec.Category),
		Name:                rec.Name,
		Status:              Status(rec.Status),
		AirbyteSourceID:     rec.AirbyteSourceID,
		AirbyteConnectionID: rec.AirbyteConnectionID,
		LastSync:            rec.LastSync,
		SyncInterval:        time.Duration(rec.SyncIntervalSeconds) * time.Second,
		CreatedAt:           rec.CreatedAt,
	}, nil
}

package syncer

import (
	"context"
	"fmt"
	"time"

	"github.com/uvrhq/uvr/connectors/services"
	"github.com/uvrhq/uvr/connectors/source"
)

// Registry is the service registry's API the engine uses
// (*services.Registry).
type Registry interface {
	List(ctx context.Context) ([]services.Service, error)
	Source(ctx context.Context, id string) (source.Source, services.Service, error)
	UpdateSync(ctx context.Context, id string, lastSync time.Time, status services.Status) error
}

var _ Registry = (*services.Registry)(nil)

// FromRegistry adapts the service registry to Services: cmd/uvr wires
// syncer.New(Config{Services: syncer.FromRegistry(registry), …}).
func FromRegistry(r Registry) Services { return registryServices{r: r} }

type registryServices struct{ r Registry }

func (s registryServices) List(ctx context.Context) ([]Service, error) {
	all, err := s.r.List(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Service, len(all))
	for i, svc := range all {
		out[i] = Service{ID: svc.ID, Type: svc.Type, Status: string(svc.Status), SyncInterval: svc.SyncInterval, LastSync: svc.LastSync}
	}
	return out, nil
}

// SourceFor maps the registry's "not found" to ErrServiceNotFound only when
// the service itself is unknown: missing credentials of a known service are
// a failure of that service's sync, not an unknown id.
func (s registryServices) SourceFor(ctx context.Context, id string) (source.Source, error) {
	src, svc, err := s.r.Source(ctx, id)
	if err != nil {
		if services.KindOf(err) == services.KindNotFound && svc.ID == "" {
			return nil, fmt.Errorf("%w: %w", ErrServiceNotFound, err)
		}
		return nil, err
	}
	return src, nil
}

func (s registryServices) UpdateSync(ctx context.Context, id string, lastSync *time.Time, status string) error {
	var at time.Time // zero keeps the registry's previous last sync
	if lastSync != nil {
		at = *lastSync
	}
	err := s.r.UpdateSync(ctx, id, at, services.Status(status))
	if services.KindOf(err) == services.KindNotFound {
		return fmt.Errorf("%w: %w", ErrServiceNotFound, err)
	}
	return err
}

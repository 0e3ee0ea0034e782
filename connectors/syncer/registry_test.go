package syncer

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/connectors/catalog"
	"github.com/uvrhq/uvr/connectors/credentials"
	"github.com/uvrhq/uvr/connectors/services"
	"github.com/uvrhq/uvr/connectors/source"
	"github.com/uvrhq/uvr/deploy/servicetest"
	"github.com/uvrhq/uvr/pipeline/kafka"
)

// The engine on the real service registry (records in a compacted Kafka
// topic, credentials in the sealed local store, sources built by the
// catalog): a sync updates the service's last sync, refused credentials put
// it in error, an unknown id is ErrServiceNotFound.
func TestEngineOnTheServiceRegistry(t *testing.T) {
	t.Parallel()
	env := newEnv(t, 1)
	ctx := t.Context()
	const goodKey, badKey = "sk-GOODkey0123456789abcdef", "sk-BADkey0123456789abcdef"
	const doomedKey = "sk-DOOMEDkey0123456789abcdef"

	// The vendor: two pages of usage for the good key, 401 for any other.
	// A request with the doomed key first deletes the doomed service: a
	// delete landing while that service's sync is running.
	var registry *services.Registry
	var doomedID string
	vendor := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.Header.Get("Authorization") == "Bearer "+doomedKey {
			if _, err := registry.Get(r.Context(), doomedID); err == nil {
				assert.NoError(t, registry.Delete(r.Context(), doomedID))
			}
			_, _ = w.Write([]byte(`{"data":[]}`))
			return
		}
		if r.Header.Get("Authorization") != "Bearer "+goodKey {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error":{"message":"Incorrect API key provided","code":"invalid_api_key"}}`))
			return
		}
		page, _ := strconv.Atoi(r.URL.Query().Get("page"))
		if page > 2 {
			_, _ = w.Write([]byte(`{"data":[]}`))
			return
		}
		_, _ = fmt.Fprintf(w, `{"data":[{"id":"reg-%d-a"},{"id":"reg-%d-b"}]}`, page, page)
	}))
	t.Cleanup(vendor.Close)

	cat, err := catalog.New(catalog.Type{
		Name: "openai", Category: catalog.Usage, Required: []string{"api_key"},
		New: func(creds map[string]string, env source.Env) (source.Source, error) {
			key := creds["api_key"]
			h, err := source.NewHTTP(source.HTTPConfig{
				Service: "openai", BaseURL: vendor.URL, Retries: -1, Secrets: []string{key}, Logger: env.Logger,
				Authorize: func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+key) },
			})
			if err != nil {
				return nil, err
			}
			return &httpSource{http: h}, nil
		},
	})
	require.NoError(t, err)
	servicesTopic := servicetest.Topic("uvr.services")
	table, err := kafka.NewTable(kafka.TableConfig{Brokers: env.brokers, Topic: servicesTopic})
	require.NoError(t, err)
	t.Cleanup(func() { _ = table.Close() })
	creds, err := credentials.NewLocal(credentials.LocalConfig{Dir: t.TempDir()})
	require.NoError(t, err)
	registry, err = services.New(services.Config{Table: table, Credentials: creds, Catalog: cat, Logger: env.logger})
	require.NoError(t, err)

	good, err := registry.Create(ctx, services.NewService{Type: "openai", Name: "prod", Credentials: map[string]string{"api_key": goodKey}})
	require.NoError(t, err)
	bad, err := registry.Create(ctx, services.NewService{Type: "openai", Name: "old", Credentials: map[string]string{"api_key": badKey}})
	require.NoError(t, err)

	e := env.engine(t, FromRegistry(registry), "engine-1", prometheus.NewRegistry(), nil)

	run, err := e.Run(ctx, good.ID, TriggerManual)
	require.NoError(t, err)
	assert.EqualValues(t, 4, run.EventsEmitted)
	assert.Equal(t, "openai", run.ServiceType)
	got, err := registry.Get(ctx, good.ID)
	require.NoError(t, err)
	assert.Equal(t, services.StatusActive, got.Status)
	require.NotNil(t, got.LastSync)
	assert.True(t, got.LastSync.Equal(run.FinishedAt), "last sync %s, run finished %s", got.LastSync, run.FinishedAt)

	run, err = e.Run(ctx, bad.ID, TriggerSchedule)
	require.Error(t, err)
	assert.True(t, source.IsAuth(err))
	assert.Equal(t, StatusFailed, run.Status)
	assert.Contains(t, run.Error, "openai rejected the credentials (HTTP 401)")
	assert.NotContains(t, run.Error, "BADkey")
	got, err = registry.Get(ctx, bad.ID)
	require.NoError(t, err)
	assert.Equal(t, services.StatusError, got.Status)
	assert.Nil(t, got.LastSync)

	// Deleted: its scheduled request finds no service.
	require.NoError(t, registry.Delete(ctx, bad.ID))
	run, err = e.Run(ctx, bad.ID, TriggerSchedule)
	assert.ErrorIs(t, err, ErrServiceNotFound)
	assert.Equal(t, StatusFailed, run.Status)

	// Deleted while its sync runs: the sync's outcome does not bring it
	// back, here, after a restart (a fresh table from the topic), or when a
	// request for it comes later (dropped, counted).
	doomed, err := registry.Create(ctx, services.NewService{Type: "openai", Name: "doomed", Credentials: map[string]string{"api_key": doomedKey}})
	require.NoError(t, err)
	doomedID = doomed.ID
	_, err = e.Run(ctx, doomed.ID, TriggerManual)
	require.NoError(t, err, "the sync itself succeeded")
	_, err = registry.Get(ctx, doomed.ID)
	assert.Equal(t, services.KindNotFound, services.KindOf(err), "the finished sync brought the deleted service back")
	restarted, err := kafka.NewTable(kafka.TableConfig{Brokers: env.brokers, Topic: servicesTopic})
	require.NoError(t, err)
	t.Cleanup(func() { _ = restarted.Close() })
	require.NoError(t, restarted.Sync(ctx))
	for key := range restarted.All() {
		assert.NotContains(t, key, doomed.ID, "a record of the deleted service is left on the topic")
	}
	b, err := json.Marshal(request{RunID: newID(), ServiceID: doomed.ID, Trigger: TriggerSchedule, RequestedAt: time.Now().UTC()})
	require.NoError(t, err)
	msg := message.NewMessage(watermill.NewUUID(), b)
	msg.SetContext(ctx)
	require.NoError(t, e.HandleRequest(msg))
	assert.Equal(t, 1.0, testutil.ToFloat64(e.metrics.dropped.WithLabelValues(skipDeleted)))
	_, err = registry.Get(ctx, doomed.ID)
	assert.Equal(t, services.KindNotFound, services.KindOf(err))

	// Syncable services as the scheduler and "sync all" see them.
	list, err := FromRegistry(registry).List(ctx)
	require.NoError(t, err)
	require.Len(t, list, 1)
	assert.Equal(t, Service{ID: good.ID, Type: "openai", Status: ServiceActive, SyncInterval: services.DefaultSyncInterval, LastSync: list[0].LastSync}, list[0])

	// Its credentials gone from the store: the sync fails, the id is still known.
	require.NoError(t, creds.Delete(ctx, good.ID))
	run, err = e.Run(ctx, good.ID, TriggerManual)
	require.Error(t, err)
	assert.NotErrorIs(t, err, ErrServiceNotFound)
	assert.Contains(t, run.Error, "credentials")
}

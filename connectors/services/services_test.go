package services_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/connectors/anthropic"
	"github.com/uvrhq/uvr/connectors/braintree"
	"github.com/uvrhq/uvr/connectors/catalog"
	"github.com/uvrhq/uvr/connectors/chargebee"
	"github.com/uvrhq/uvr/connectors/credentials"
	"github.com/uvrhq/uvr/connectors/credentials/credentialstest"
	"github.com/uvrhq/uvr/connectors/custom"
	"github.com/uvrhq/uvr/connectors/datadog"
	"github.com/uvrhq/uvr/connectors/openai"
	"github.com/uvrhq/uvr/connectors/paddle"
	"github.com/uvrhq/uvr/connectors/recurly"
	"github.com/uvrhq/uvr/connectors/services"
	"github.com/uvrhq/uvr/connectors/services/servicestest"
	"github.com/uvrhq/uvr/connectors/source"
	"github.com/uvrhq/uvr/connectors/stripe"
	"github.com/uvrhq/uvr/deploy/servicetest"
	"github.com/uvrhq/uvr/pipeline/kafka"
)

// plantedSecret must never appear in Kafka, a log line or an error message.
const (
	plantedSecret = "sk_live_PLANTED_3f9a7c2e1d"
	goodKey       = "sk_live_GOOD_0b8e6d4c2a"
)

type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type fixture struct {
	reg     *services.Registry
	store   credentials.Store
	table   *kafka.Table
	topic   string
	brokers []string
	cat     *catalog.Catalog
	logs    *logBuffer
	saas    *httptest.Server
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{logs: &logBuffer{}, saas: servicestest.Vendor(t, goodKey), brokers: servicetest.KafkaBrokers(t), topic: servicetest.Topic("test.services")}
	logger := slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	f.store, _ = credentialstest.Vault(t, logger)
	f.table = newTable(t, f.brokers, f.topic)
	var err error
	f.cat, err = catalog.Default(map[string]catalog.Factory{
		"stripe": servicestest.Factory("stripe", f.saas.URL),
		"openai": servicestest.Factory("openai", f.saas.URL),
	})
	require.NoError(t, err)
	f.reg = f.registry(t, f.table, logger)
	t.Cleanup(func() {
		assert.NotContains(t, f.logs.String(), plantedSecret, "a credential reached the logs")
		assert.NotContains(t, f.logs.String(), goodKey, "a credential reached the logs")
	})
	return f
}

func (f *fixture) registry(t *testing.T, table services.Table, logger *slog.Logger) *services.Registry {
	reg, err := services.New(services.Config{Table: table, Credentials: f.store, Catalog: f.cat, Logger: logger})
	require.NoError(t, err)
	return reg
}

func newTable(t *testing.T, brokers []string, topic string) *kafka.Table {
	tbl, err := kafka.NewTable(kafka.TableConfig{Brokers: brokers, Topic: topic})
	require.NoError(t, err)
	t.Cleanup(func() { _ = tbl.Close() })
	return tbl
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestCreateListGetDelete(t *testing.T) {
	f := newFixture(t)
	ctx := ctxT(t)
	before := time.Now().UTC().Add(-time.Second)

	svc, err := f.reg.Create(ctx, services.NewService{Type: "stripe", Credentials: map[string]string{"api_key": " " + plantedSecret + "\n"}})
	require.NoError(t, err)
	assert.NotEmpty(t, svc.ID)
	assert.Equal(t, "stripe", svc.Type)
	assert.Equal(t, catalog.Revenue, svc.Category, "category comes from the catalog")
	assert.Equal(t, "stripe", svc.Name, "the name defaults to the type")
	assert.Equal(t, services.StatusActive, svc.Status)
	assert.Equal(t, services.DefaultSyncInterval, svc.SyncInterval)
	assert.Nil(t, svc.LastSync)
	assert.True(t, svc.CreatedAt.After(before))

	// The credentials are in the store (trimmed of the pasted blanks), keyed by the id.
	creds, err := f.store.Get(ctx, svc.ID)
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"api_key": plantedSecret}, creds)

	// The record is in Kafka, without any credential: read it back from the topic itself.
	fresh := newTable(t, f.brokers, f.topic)
	require.NoError(t, fresh.Sync(ctx))
	raw, ok := fresh.Get(svc.ID)
	require.True(t, ok)
	assert.NotContains(t, string(raw), plantedSecret)
	assert.NotContains(t, string(raw), "api_key")
	var rec map[string]any
	require.NoError(t, json.Unmarshal(raw, &rec))
	assert.Equal(t, float64(1), rec["version"])

	second, err := f.reg.Create(ctx, services.NewService{Type: "openai", Name: "Prod org", Category: catalog.Usage, Credentials: map[string]string{"api_key": goodKey}, SyncInterval: 15 * time.Minute})
	require.NoError(t, err)
	assert.Equal(t, 15*time.Minute, second.SyncInterval)

	list, err := f.reg.List(ctx)
	require.NoError(t, err)
	require.Len(t, list, 2)
	assert.Equal(t, []string{svc.ID, second.ID}, []string{list[0].ID, list[1].ID}, "oldest first")
	assert.Equal(t, svc, list[0])

	got, err := f.reg.Get(ctx, second.ID)
	require.NoError(t, err)
	assert.Equal(t, second, got)

	require.NoError(t, f.reg.Delete(ctx, svc.ID))
	_, err = f.store.Get(ctx, svc.ID)
	require.ErrorIs(t, err, credentials.ErrNotFound, "the credentials go with the service")
	_, err = f.reg.Get(ctx, svc.ID)
	assert.Equal(t, services.KindNotFound, services.KindOf(err))
	err = f.reg.Delete(ctx, svc.ID)
	assert.Equal(t, services.KindNotFound, services.KindOf(err), "deleting twice: not found")
	assert.Contains(t, err.Error(), svc.ID)
	list, err = f.reg.List(ctx)
	require.NoError(t, err)
	assert.Len(t, list, 1)
}

func TestCreateInvalid(t *testing.T) {
	f := newFixture(t)
	ctx := ctxT(t)
	tests := []struct {
		name string
		req  services.NewService
		want []string
	}{
		{"missing fields", services.NewService{Type: "aws", Credentials: map[string]string{"access_key_id": plantedSecret}},
			[]string{"missing credential fields: secret_access_key, region"}},
		{"unknown type", services.NewService{Type: "mailchimp", Credentials: map[string]string{"api_key": plantedSecret}},
			[]string{`unknown service type "mailchimp"`}},
		{"no type", services.NewService{Credentials: map[string]string{"api_key": plantedSecret}}, []string{"service_type is required"}},
		{"category contradicts", services.NewService{Type: "stripe", Category: catalog.Usage, Credentials: map[string]string{"api_key": plantedSecret}},
			[]string{"stripe is a revenue service"}},
		{"category unknown", services.NewService{Type: "stripe", Category: "cost", Credentials: map[string]string{"api_key": plantedSecret}},
			[]string{`"cost" is neither`}},
		{"unknown field", services.NewService{Type: "stripe", Credentials: map[string]string{"api_key": "k", "password": plantedSecret}},
			[]string{"unknown credential fields: password"}},
		{"name too long", services.NewService{Type: "stripe", Name: strings.Repeat("n", 201), Credentials: map[string]string{"api_key": plantedSecret}},
			[]string{"at most 200"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.reg.Create(ctx, tt.req)
			require.Error(t, err)
			assert.Equal(t, services.KindInvalid, services.KindOf(err), err.Error())
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
			assert.NotContains(t, err.Error(), plantedSecret)
		})
	}
	list, err := f.reg.List(ctx)
	require.NoError(t, err)
	assert.Empty(t, list, "nothing stored for invalid requests")
}

func TestCreateConflict(t *testing.T) {
	f := newFixture(t)
	ctx := ctxT(t)
	first, err := f.reg.Create(ctx, services.NewService{Type: "stripe", Name: "EU account", Credentials: map[string]string{"api_key": goodKey}})
	require.NoError(t, err)
	_, err = f.reg.Create(ctx, services.NewService{Type: "stripe", Name: "eu ACCOUNT", Credentials: map[string]string{"api_key": plantedSecret}})
	assert.Equal(t, services.KindConflict, services.KindOf(err))
	assert.Contains(t, err.Error(), first.ID)
	// Same name, other type: fine.
	_, err = f.reg.Create(ctx, services.NewService{Type: "openai", Name: "EU account", Credentials: map[string]string{"api_key": goodKey}})
	require.NoError(t, err)
}

// A second instance (its own Table on the same topic) sees the first's writes on its next
// read, and its updates reach the first.
func TestTwoInstancesShareTheRegistry(t *testing.T) {
	f := newFixture(t)
	ctx := ctxT(t)
	other := f.registry(t, newTable(t, f.brokers, f.topic), nil)

	svc, err := f.reg.Create(ctx, services.NewService{Type: "stripe", Credentials: map[string]string{"api_key": goodKey}})
	require.NoError(t, err)
	got, err := other.Get(ctx, svc.ID)
	require.NoError(t, err)
	assert.Equal(t, svc, got)

	synced := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	require.NoError(t, other.UpdateSync(ctx, svc.ID, synced, services.StatusError))
	got, err = f.reg.Get(ctx, svc.ID)
	require.NoError(t, err)
	require.NotNil(t, got.LastSync)
	assert.True(t, synced.Equal(*got.LastSync))
	assert.Equal(t, services.StatusError, got.Status)

	// A zero time keeps the last sync and changes the status only.
	require.NoError(t, f.reg.UpdateSync(ctx, svc.ID, time.Time{}, services.StatusPaused))
	got, err = other.Get(ctx, svc.ID)
	require.NoError(t, err)
	assert.True(t, synced.Equal(*got.LastSync))
	assert.Equal(t, services.StatusPaused, got.Status)

	assert.Equal(t, services.KindInvalid, services.KindOf(f.reg.UpdateSync(ctx, svc.ID, synced, "done")))
	assert.Equal(t, services.KindNotFound, services.KindOf(f.reg.UpdateSync(ctx, "no-such-id", synced, services.StatusActive)))

	require.NoError(t, other.Delete(ctx, svc.ID))
	_, err = f.reg.Get(ctx, svc.ID)
	assert.Equal(t, services.KindNotFound, services.KindOf(err))
}

func TestTestCallsTheService(t *testing.T) {
	f := newFixture(t)
	ctx := ctxT(t)

	require.NoError(t, f.reg.Test(ctx, "stripe", map[string]string{"api_key": goodKey}))

	// Rejected: the service's own message, without the key it quoted.
	err := f.reg.Test(ctx, "stripe", map[string]string{"api_key": plantedSecret})
	require.Error(t, err)
	assert.Equal(t, services.KindAuth, services.KindOf(err))
	assert.Contains(t, err.Error(), "Invalid API Key provided")
	assert.Contains(t, err.Error(), "401")
	assert.NotContains(t, err.Error(), plantedSecret)

	// Unreachable: a closed server.
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	cat, err := catalog.Default(map[string]catalog.Factory{"stripe": servicestest.Factory("stripe", down.URL)})
	require.NoError(t, err)
	reg, err := services.New(services.Config{Table: f.table, Credentials: f.store, Catalog: cat})
	require.NoError(t, err)
	err = reg.Test(ctx, "stripe", map[string]string{"api_key": plantedSecret})
	assert.Equal(t, services.KindUnavailable, services.KindOf(err))
	assert.NotContains(t, err.Error(), plantedSecret)

	// Malformed: fields missing, or a type without a connector.
	err = f.reg.Test(ctx, "stripe", nil)
	assert.Equal(t, services.KindInvalid, services.KindOf(err))
	assert.Contains(t, err.Error(), "api_key")
	err = f.reg.Test(ctx, "paddle", map[string]string{"api_key": plantedSecret, "vendor_id": "1"})
	assert.Equal(t, services.KindInvalid, services.KindOf(err))
	assert.Contains(t, err.Error(), "no connector")

	// Nothing was stored by testing.
	list, err := f.reg.List(ctx)
	require.NoError(t, err)
	assert.Empty(t, list)
}

// The sync engine gets a ready Source with the stored credentials.
func TestSourceUsesStoredCredentials(t *testing.T) {
	f := newFixture(t)
	ctx := ctxT(t)
	good, err := f.reg.Create(ctx, services.NewService{Type: "stripe", Name: "good", Credentials: map[string]string{"api_key": goodKey}})
	require.NoError(t, err)
	bad, err := f.reg.Create(ctx, services.NewService{Type: "stripe", Name: "bad", Credentials: map[string]string{"api_key": plantedSecret}})
	require.NoError(t, err)

	src, svc, err := f.reg.Source(ctx, good.ID)
	require.NoError(t, err)
	assert.Equal(t, good, svc)
	require.NoError(t, src.Check(ctx))

	src, _, err = f.reg.Source(ctx, bad.ID)
	require.NoError(t, err)
	require.True(t, source.IsAuth(src.Check(ctx)))

	_, _, err = f.reg.Source(ctx, "no-such-id")
	assert.Equal(t, services.KindNotFound, services.KindOf(err))

	// Credentials gone from the store: a clear not-found, not a crash.
	require.NoError(t, f.store.Delete(ctx, good.ID))
	_, _, err = f.reg.Source(ctx, good.ID)
	assert.Equal(t, services.KindNotFound, services.KindOf(err))
	assert.Contains(t, err.Error(), "credentials")
}

// The credential store refuses (a Vault token without the policy): nothing reaches Kafka,
// so no record ever points to credentials that are not there.
func TestCreateStoreUnavailable(t *testing.T) {
	f := newFixture(t)
	ctx := ctxT(t)
	root := credentialstest.Root(t)
	addr, _ := servicetest.Vault(t)
	tok, err := root.Auth().Token().Create(&vault.TokenCreateRequest{Policies: []string{"default"}, TTL: "1h", NoParent: true})
	require.NoError(t, err)
	denied, err := credentials.NewVault(ctx, credentials.VaultConfig{Addr: addr, Token: tok.Auth.ClientToken, Prefix: "uvr-test-denied/services"})
	require.NoError(t, err)
	defer denied.Close()
	reg, err := services.New(services.Config{Table: f.table, Credentials: denied, Catalog: f.cat})
	require.NoError(t, err)

	_, err = reg.Create(ctx, services.NewService{Type: "stripe", Credentials: map[string]string{"api_key": plantedSecret}})
	assert.Equal(t, services.KindUnavailable, services.KindOf(err))
	assert.Contains(t, err.Error(), "credential store")
	assert.NotContains(t, err.Error(), plantedSecret)
	assert.NotContains(t, err.Error(), tok.Auth.ClientToken)
	list, err := f.reg.List(ctx)
	require.NoError(t, err)
	assert.Empty(t, list)
}

func TestCreateKafkaUnavailable(t *testing.T) {
	f := newFixture(t)
	down, err := kafka.NewTable(kafka.TableConfig{Brokers: []string{"127.0.0.1:1"}, Topic: "test.services.down"})
	require.NoError(t, err)
	defer down.Close()
	reg, err := services.New(services.Config{Table: down, Credentials: f.store, Catalog: f.cat})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err = reg.Create(ctx, services.NewService{Type: "stripe", Credentials: map[string]string{"api_key": plantedSecret}})
	assert.Equal(t, services.KindUnavailable, services.KindOf(err))
	assert.Contains(t, err.Error(), "Kafka")
	_, err = reg.List(ctx)
	assert.Equal(t, services.KindUnavailable, services.KindOf(err))
}

// The client goes away right after the credentials were written (its request
// context is cancelled): the create still completes — record and credentials
// both there — instead of racing a cancelled record write against its undo.
func TestCreateCompletesWhenTheCallerGoesAway(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithCancel(ctxT(t))
	store := &cancelAfterPut{Store: f.store, cancel: cancel}
	reg, err := services.New(services.Config{Table: f.table, Credentials: store, Catalog: f.cat})
	require.NoError(t, err)

	svc, err := reg.Create(ctx, services.NewService{Type: "stripe", Credentials: map[string]string{"api_key": plantedSecret}})
	require.NoError(t, err)
	require.Error(t, ctx.Err(), "the caller's context was cancelled after the credentials were written")
	creds, err := f.store.Get(ctxT(t), svc.ID)
	require.NoError(t, err)
	assert.Equal(t, plantedSecret, creds["api_key"])
	list, err := f.reg.List(ctxT(t))
	require.NoError(t, err)
	require.Len(t, list, 1)
	assert.Equal(t, svc.ID, list[0].ID)
}

// cancelAfterPut is the real store; after a successful Put it cancels the caller's
// context, as an HTTP client that disconnects at that moment would.
type cancelAfterPut struct {
	credentials.Store
	cancel context.CancelFunc
	id     string
}

func (s *cancelAfterPut) Put(ctx context.Context, id string, creds map[string]string) error {
	err := s.Store.Put(ctx, id, creds)
	if err == nil {
		s.id = id
		s.cancel()
	}
	return err
}

// A service's base_url is refused, when saved and when tested, unless it is
// https to a public host or a host the operator allowed: every connector
// that takes one, through the real constructors, names the field and why.
func TestBaseURLEgressPolicy(t *testing.T) {
	ctx := ctxT(t)
	table := newTable(t, servicetest.KafkaBrokers(t), servicetest.Topic("test.services"))
	store, err := credentials.NewLocal(credentials.LocalConfig{Dir: t.TempDir()}) // the sealed file store
	require.NoError(t, err)
	cat, err := catalog.Default(map[string]catalog.Factory{
		"openai": catalog.FactoryOf(openai.FromCredentials), "anthropic": catalog.FactoryOf(anthropic.FromCredentials),
		"datadog": catalog.FactoryOf(datadog.FromCredentials), "stripe": catalog.FactoryOf(stripe.FromCredentials),
		"chargebee": catalog.FactoryOf(chargebee.FromCredentials), "paddle": catalog.FactoryOf(paddle.FromCredentials),
		"recurly": catalog.FactoryOf(recurly.FromCredentials), "braintree": catalog.FactoryOf(braintree.FromCredentials),
		"custom-usage": catalog.FactoryOf(custom.FromCredentials),
	})
	require.NoError(t, err)
	allowed, err := source.ParseEgress([]string{"127.0.0.1"})
	require.NoError(t, err)
	strict, err := services.New(services.Config{Table: table, Credentials: store, Catalog: cat})
	require.NoError(t, err)
	local, err := services.New(services.Config{Table: table, Credentials: store, Catalog: cat, Egress: allowed})
	require.NoError(t, err)

	creds := map[string]map[string]string{
		"openai": {"api_key": plantedSecret}, "anthropic": {"api_key": plantedSecret},
		"datadog": {"api_key": plantedSecret, "app_key": "app-key-1"}, "stripe": {"api_key": plantedSecret},
		"chargebee": {"api_key": plantedSecret, "site": "acme"}, "paddle": {"api_key": plantedSecret, "vendor_id": "1"},
		"recurly":      {"api_key": plantedSecret, "subdomain": "acme"},
		"braintree":    {"merchant_id": "m", "public_key": "pub-key-1", "private_key": plantedSecret},
		"custom-usage": {"api_key": plantedSecret, "mapping": "version: 1\nsource: acme\nstreams:\n  custom-usage:\n    - type: usage\n      id: {path: id}\n      time: {path: t}\n      customer: {external_id: {path: c}}\n      feature: {path: f}\n      quantity: {path: q}\n"},
	}
	for typ, c := range creds {
		for _, tc := range []struct{ url, reason string }{
			{"http://127.0.0.1:12111", "loopback"},
			{"https://169.254.169.254", "link-local"},
			{"https://10.0.0.1", "private"},
			{"https://[fd12::1]", "private"},
			{"https://0.0.0.0", "unspecified"},
			{"https://239.1.2.3", "multicast"},
			{"http://billing.example.com", "plain http"},
		} {
			t.Run(typ+" "+tc.url, func(t *testing.T) {
				withURL := maps.Clone(c)
				withURL["base_url"] = tc.url
				_, err := strict.Create(ctx, services.NewService{Type: typ, Name: typ + " " + tc.url, Credentials: withURL})
				require.Error(t, err)
				assert.Equal(t, services.KindInvalid, services.KindOf(err), "%v", err)
				assert.Contains(t, err.Error(), "base_url")
				assert.NotContains(t, err.Error(), plantedSecret)
				if tc.reason != "plain http" {
					assert.Contains(t, err.Error(), tc.reason)
				}
				err = strict.Test(ctx, typ, withURL)
				require.Error(t, err)
				assert.Equal(t, services.KindInvalid, services.KindOf(err), "%v", err)
				assert.Contains(t, err.Error(), "base_url")
			})
		}
		// The operator's opt-in lets the allowed host through (no call is made).
		withURL := maps.Clone(c)
		withURL["base_url"] = "http://127.0.0.1:1"
		svc, err := local.Create(ctx, services.NewService{Type: typ, Name: typ + " local", Credentials: withURL})
		require.NoError(t, err, typ)
		require.NoError(t, local.Delete(ctx, svc.ID))
	}
}

// A custom service's mapping_file names a file inside the configured
// mapping directory, or the service is refused (400) naming the field.
func TestMappingFileConfinedToMappingDir(t *testing.T) {
	ctx := ctxT(t)
	table := newTable(t, servicetest.KafkaBrokers(t), servicetest.Topic("test.services"))
	store, err := credentials.NewLocal(credentials.LocalConfig{Dir: t.TempDir()})
	require.NoError(t, err)
	cat, err := catalog.Default(map[string]catalog.Factory{"custom-usage": catalog.FactoryOf(custom.FromCredentials)})
	require.NoError(t, err)
	egress, err := source.ParseEgress([]string{"127.0.0.1"})
	require.NoError(t, err)
	dir := t.TempDir()
	reg, err := services.New(services.Config{Table: table, Credentials: store, Catalog: cat, Egress: egress, MappingDir: dir})
	require.NoError(t, err)
	mappingYAML := "version: 1\nsource: acme\nstreams:\n  custom-usage:\n    - type: usage\n      id: {path: id}\n      time: {path: t}\n      customer: {external_id: {path: c}}\n      feature: {path: f}\n      quantity: {path: q}\n"
	require.NoError(t, os.WriteFile(filepath.Join(dir, "acme.yaml"), []byte(mappingYAML), 0o600))

	creds := func(file string) map[string]string {
		return map[string]string{"api_key": plantedSecret, "base_url": "http://127.0.0.1:1", "mapping_file": file}
	}
	svc, err := reg.Create(ctx, services.NewService{Type: "custom-usage", Name: "in dir", Credentials: creds("acme.yaml")})
	require.NoError(t, err)
	require.NoError(t, reg.Delete(ctx, svc.ID))
	for _, file := range []string{"/etc/passwd", "../" + filepath.Base(dir) + "/acme.yaml", "../../etc/passwd"} {
		_, err := reg.Create(ctx, services.NewService{Type: "custom-usage", Name: file, Credentials: creds(file)})
		require.Error(t, err, file)
		assert.Equal(t, services.KindInvalid, services.KindOf(err), "%v", err)
		assert.Contains(t, err.Error(), "mapping_file: must name a file inside the mapping directory")
		err = reg.Test(ctx, "custom-usage", creds(file))
		assert.Equal(t, services.KindInvalid, services.KindOf(err), "%v", err)
	}
}

// A sync finishing while its service is deleted must not bring the service
// back: not on either instance, and not after a restart (a fresh table read
// from the topic). The delete lands before the sync's update reads the
// service, or — the race a read-modify-write loses — between that read and
// its write, from this instance or another one.
func TestDeletedServiceStaysDeletedWhileASyncCompletes(t *testing.T) {
	tests := []struct {
		name string
		// other: the delete comes from a second instance (its own table).
		other bool
		// inWindow: the delete runs right before the update's first write,
		// after the update read the service.
		inWindow bool
	}{
		{name: "deleted before the sync's update", other: true},
		{name: "deleted by another instance between the update's read and write", other: true, inWindow: true},
		{name: "deleted on this instance between the update's read and write", inWindow: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			ctx := ctxT(t)
			deleter := f.reg
			if tt.other {
				deleter = f.registry(t, newTable(t, f.brokers, f.topic), nil)
			}
			hooked := &beforeFirstPut{Table: f.table}
			syncing := f.registry(t, hooked, nil)

			svc, err := f.reg.Create(ctx, services.NewService{Type: "stripe", Credentials: map[string]string{"api_key": goodKey}})
			require.NoError(t, err)
			deleteIt := func() { require.NoError(t, deleter.Delete(ctx, svc.ID)) }
			if tt.inWindow {
				hooked.hook = deleteIt
			} else {
				deleteIt()
			}

			err = syncing.UpdateSync(ctx, svc.ID, time.Now(), services.StatusActive)
			assert.Equal(t, services.KindNotFound, services.KindOf(err), "the sync learns its service is gone: %v", err)
			if tt.inWindow {
				require.True(t, hooked.fired, "the delete ran inside the update")
			}

			for name, reg := range map[string]*services.Registry{"syncing": syncing, "deleter": deleter} {
				_, err = reg.Get(ctx, svc.ID)
				assert.Equal(t, services.KindNotFound, services.KindOf(err), "%s instance: the service is back", name)
				list, err := reg.List(ctx)
				require.NoError(t, err)
				assert.Empty(t, list, "%s instance", name)
			}

			// A restart: a fresh table rebuilt from the log. Nothing of the
			// service is left on the topic, and a registry on it has none.
			fresh := newTable(t, f.brokers, f.topic)
			require.NoError(t, fresh.Sync(ctx))
			assert.Empty(t, fresh.All(), "records of the deleted service are left on the topic")
			restarted := f.registry(t, fresh, nil)
			_, err = restarted.Get(ctx, svc.ID)
			assert.Equal(t, services.KindNotFound, services.KindOf(err), "after a restart: the service is back")
			_, err = f.store.Get(ctx, svc.ID)
			assert.ErrorIs(t, err, credentials.ErrNotFound, "its credentials are left in the store")
		})
	}
}

// beforeFirstPut is the real table; its first Put runs hook first, so a
// delete lands exactly between a caller's read and its write.
type beforeFirstPut struct {
	services.Table
	hook  func()
	fired bool
}

func (b *beforeFirstPut) Put(ctx context.Context, key string, value []byte) error {
	if b.hook != nil && !b.fired {
		b.fired = true
		b.hook()
	}
	return b.Table.Put(ctx, key, value)
}

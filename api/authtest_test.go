package api_test

import (
	"context"
	"crypto/rand"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/api"
	"github.com/uvrhq/uvr/api/access"
	"github.com/uvrhq/uvr/connectors/credentials"
	"github.com/uvrhq/uvr/deploy/servicetest"
	"github.com/uvrhq/uvr/pipeline/kafka"
)

// testAdminPassword is the password of every test store's admin.
const testAdminPassword = "correct horse battery"

// testSealer seals the secrets of every test store, with one key for the
// test binary: two stores on one topic are two instances of one deployment.
var testSealer = func() *credentials.KeySealer {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	s, err := credentials.NewLocalSealer(credentials.LocalConfig{Key: key})
	if err != nil {
		panic(err)
	}
	return s
}()

// authStore is a real access store on a users topic of this test, opened,
// with one admin (admin@uvr.test).
func authStore(t testing.TB) *access.Store {
	t.Helper()
	store := emptyAuthStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := store.Register(ctx, access.NewUser{Email: "admin@uvr.test", Password: testAdminPassword, Role: access.RoleAdmin})
	require.NoError(t, err)
	return store
}

// emptyAuthStore is a real access store on a users topic of this test,
// opened, without users.
func emptyAuthStore(t testing.TB) *access.Store {
	t.Helper()
	return authStoreOn(t, servicetest.Topic("test.api.users"))
}

// authStoreOn is a real access store on the users topic topic, opened: two
// of them on one topic are two API instances.
func authStoreOn(t testing.TB, topic string) *access.Store {
	t.Helper()
	table, err := kafka.NewTable(kafka.TableConfig{Brokers: servicetest.KafkaBrokers(t), Topic: topic})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = table.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; _ = table.Close() })
	store, err := access.New(access.Config{Table: table, Sealer: testSealer})
	require.NoError(t, err)
	octx, ocancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer ocancel()
	require.NoError(t, store.Open(octx))
	return store
}

// withAuth is the one place the api tests get auth from: it sets cfg.Auth to
// a real store with an admin (authStore) and returns a wrapper that sends
// the admin's token with every request that carries no Authorization or
// X-API-Key header of its own.
func withAuth(t testing.TB, cfg *api.Config) func(http.Handler) http.Handler {
	t.Helper()
	store := authStore(t)
	cfg.Auth = store
	_, token, err := store.Login(context.Background(), "admin@uvr.test", testAdminPassword)
	require.NoError(t, err)
	return func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") == "" && r.Header.Get("X-API-Key") == "" {
				r.Header.Set("Authorization", "Bearer "+token)
			}
			h.ServeHTTP(w, r)
		})
	}
}

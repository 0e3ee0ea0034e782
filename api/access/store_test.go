package access_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/api/access"
	"github.com/uvrhq/uvr/connectors/credentials"
	"github.com/uvrhq/uvr/deploy/servicetest"
	"github.com/uvrhq/uvr/pipeline/kafka"
)

// table is a real Kafka table on topic, tailing until the test ends.
func table(t *testing.T, topic string) *kafka.Table {
	t.Helper()
	tb, err := kafka.NewTable(kafka.TableConfig{Brokers: servicetest.KafkaBrokers(t), Topic: topic, Partitions: 1})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = tb.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; _ = tb.Close() })
	return tb
}

// testKey is the one local key of this test binary: stores sharing a topic
// open what the others sealed.
var testKey = func() []byte {
	k := make([]byte, 32)
	_, _ = rand.Read(k)
	return k
}()

func testSealer(t testing.TB) access.Sealer {
	t.Helper()
	s, err := credentials.NewLocalSealer(credentials.LocalConfig{Key: testKey})
	require.NoError(t, err)
	return s
}

func open(t *testing.T, cfg access.Config) *access.Store {
	t.Helper()
	s, err := access.New(cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, s.Open(ctx))
	return s
}

func kindOf(t *testing.T, err error) (access.Kind, string) {
	t.Helper()
	require.Error(t, err)
	var ae *access.Error
	require.ErrorAs(t, err, &ae)
	return ae.Kind, ae.Field
}

func TestRegisterValidates(t *testing.T) {
	ctx := context.Background()
	s := open(t, access.Config{Sealer: testSealer(t), Table: table(t, servicetest.Topic("test.access.users"))})
	_, err := s.Register(ctx, access.NewUser{Email: "Ann@Example.com", Password: "long enough", Role: access.RoleAdmin})
	require.NoError(t, err)

	tests := []struct {
		name  string
		user  access.NewUser
		kind  access.Kind
		field string
	}{
		{"missing email", access.NewUser{Password: "long enough", Role: access.RoleViewer}, access.KindInvalid, "email"},
		{"bad email", access.NewUser{Email: "ann-at-example", Password: "long enough", Role: access.RoleViewer}, access.KindInvalid, "email"},
		{"email with a name", access.NewUser{Email: "Ann <ann@example.com>", Password: "long enough", Role: access.RoleViewer}, access.KindInvalid, "email"},
		{"no domain dot", access.NewUser{Email: "ann@localhost", Password: "long enough", Role: access.RoleViewer}, access.KindInvalid, "email"},
		{"short password", access.NewUser{Email: "bob@example.com", Password: "1234567", Role: access.RoleViewer}, access.KindInvalid, "password"},
		{"bad role", access.NewUser{Email: "bob@example.com", Password: "long enough", Role: "root"}, access.KindInvalid, "role"},
		{"duplicate email, other case", access.NewUser{Email: "ann@example.COM", Password: "long enough", Role: access.RoleViewer}, access.KindConflict, "email"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.Register(ctx, tt.user)
			kind, field := kindOf(t, err)
			assert.Equal(t, tt.kind, kind)
			assert.Equal(t, tt.field, field)
			assert.NotContains(t, err.Error(), tt.user.Password)
		})
	}
}

// A wrong password and an unknown email get the same error; the token
// names the user; a deactivated user's token stops working at once.
func TestLoginAuthenticateDeactivate(t *testing.T) {
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	var logs bytes.Buffer
	s := open(t, access.Config{Sealer: testSealer(t), Table: table(t, servicetest.Topic("test.access.users")), Registerer: reg,
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	const password = "planted-password-123"
	u, err := s.Register(ctx, access.NewUser{Email: "ann@example.com", Password: password, FullName: "Ann", Role: access.RoleAnalyst})
	require.NoError(t, err)

	_, _, wrongPassword := s.Login(ctx, "ann@example.com", "not the password")
	_, _, unknownEmail := s.Login(ctx, "nobody@example.com", password)
	kind, _ := kindOf(t, wrongPassword)
	assert.Equal(t, access.KindUnauthorized, kind)
	assert.Equal(t, wrongPassword.Error(), unknownEmail.Error(), "no hint whether the email exists")

	got, token, err := s.Login(ctx, "ANN@example.com", password)
	require.NoError(t, err)
	assert.Equal(t, u, got)
	p, err := s.Authenticate(ctx, token)
	require.NoError(t, err)
	assert.Equal(t, access.Principal{UserID: u.ID, Email: "ann@example.com", Role: access.RoleAnalyst}, p)

	_, err = s.SetActive(ctx, u.ID, false)
	require.NoError(t, err)
	_, err = s.Authenticate(ctx, token)
	kind, _ = kindOf(t, err)
	assert.Equal(t, access.KindUnauthorized, kind, "a deactivated user's token stops working at once")
	_, _, err = s.Login(ctx, "ann@example.com", password)
	assert.Equal(t, wrongPassword.Error(), err.Error())

	assert.Equal(t, 2.0, attempts(t, reg, "password", "bad_credentials"))
	assert.Equal(t, 1.0, attempts(t, reg, "password", "inactive"))
	assert.NotContains(t, logs.String(), password)
	assert.NotContains(t, logs.String(), token)
	assert.NotContains(t, logs.String(), "argon2id")
}

// attempts reads uvr_auth_attempts_total{method, result} from reg.
func attempts(t *testing.T, reg *prometheus.Registry, method, result string) float64 {
	t.Helper()
	families, err := reg.Gather()
	require.NoError(t, err)
	for _, f := range families {
		if f.GetName() != "uvr_auth_attempts_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["method"] == method && labels["result"] == result {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func TestTokenExpires(t *testing.T) {
	ctx := context.Background()
	tb := table(t, servicetest.Topic("test.access.users"))
	now := time.Now()
	clock := func() time.Time { return now }
	s := open(t, access.Config{Sealer: testSealer(t), Table: tb, TokenTTL: time.Hour, Now: func() time.Time { return clock() }})
	u, err := s.Register(ctx, access.NewUser{Email: "ann@example.com", Password: "long enough", Role: access.RoleViewer})
	require.NoError(t, err)
	token, err := s.IssueToken(u.ID, 0)
	require.NoError(t, err)
	_, err = s.Authenticate(ctx, token)
	require.NoError(t, err)
	clock = func() time.Time { return now.Add(time.Hour + time.Second) }
	_, err = s.Authenticate(ctx, token)
	kind, _ := kindOf(t, err)
	assert.Equal(t, access.KindUnauthorized, kind)
	assert.Contains(t, err.Error(), "expired")
}

func TestAPIKeys(t *testing.T) {
	ctx := context.Background()
	s := open(t, access.Config{Sealer: testSealer(t), Table: table(t, servicetest.Topic("test.access.users"))})
	creator, err := s.Register(ctx, access.NewUser{Email: "ann@example.com", Password: "long enough", Role: access.RoleAdmin})
	require.NoError(t, err)
	k, key, err := s.CreateAPIKey(ctx, "loader", access.RoleAdmin, creator.ID)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(key, "uvr_"))
	assert.GreaterOrEqual(t, len(key), 4+43, "256 random bits")
	assert.Equal(t, key[:len(k.Prefix)], k.Prefix)
	assert.Equal(t, key[len(key)-4:], k.Last4)

	p, err := s.Authenticate(ctx, key)
	require.NoError(t, err)
	assert.Equal(t, access.Principal{APIKeyID: k.ID, Role: access.RoleAdmin}, p)

	keys, err := s.ListAPIKeys(ctx)
	require.NoError(t, err)
	require.Len(t, keys, 1)
	assert.Equal(t, k, keys[0])

	_, _, err = s.CreateAPIKey(ctx, " ", access.RoleAdmin, "")
	_, field := kindOf(t, err)
	assert.Equal(t, "name", field)
	_, _, err = s.CreateAPIKey(ctx, "x", "owner", "")
	_, field = kindOf(t, err)
	assert.Equal(t, "role", field)

	require.NoError(t, s.RevokeAPIKey(ctx, k.ID))
	_, err = s.Authenticate(ctx, key)
	kind, _ := kindOf(t, err)
	assert.Equal(t, access.KindUnauthorized, kind, "a revoked key stops working at once")
	err = s.RevokeAPIKey(ctx, k.ID)
	kind, _ = kindOf(t, err)
	assert.Equal(t, access.KindNotFound, kind)
	keys, err = s.ListAPIKeys(ctx)
	require.NoError(t, err)
	assert.Empty(t, keys)
}

// Two instances on one topic: they start at once and agree on the signing
// secret; a user registered on one logs in on the other; a token of one works
// on the other; a key revoked on one stops working on the other.
func TestTwoInstancesShareAccounts(t *testing.T) {
	ctx := context.Background()
	topic := servicetest.Topic("test.access.users")
	tables := []*kafka.Table{table(t, topic), table(t, topic)}
	stores := make([]*access.Store, 2)
	var wg sync.WaitGroup
	for i := range stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := access.New(access.Config{Sealer: testSealer(t), Table: tables[i]})
			if !assert.NoError(t, err) {
				return
			}
			if assert.NoError(t, s.Open(ctx)) {
				stores[i] = s
			}
		}()
	}
	wg.Wait()
	require.NotNil(t, stores[0])
	require.NotNil(t, stores[1])
	a, b := stores[0], stores[1]

	u, err := a.Register(ctx, access.NewUser{Email: "ann@example.com", Password: "long enough", Role: access.RoleAdmin})
	require.NoError(t, err)
	var token string
	require.Eventually(t, func() bool {
		_, token, err = b.Login(ctx, "ann@example.com", "long enough")
		return err == nil
	}, 10*time.Second, 20*time.Millisecond, "a user registered on one instance logs in on the other")
	p, err := a.Authenticate(ctx, token)
	require.NoError(t, err, "both instances sign with the same secret")
	assert.Equal(t, u.ID, p.UserID)

	_, key, err := a.CreateAPIKey(ctx, "loader", access.RoleViewer, u.ID)
	require.NoError(t, err)
	require.Eventually(t, func() bool { _, err := b.Authenticate(ctx, key); return err == nil }, 10*time.Second, 20*time.Millisecond)
	keys, err := b.ListAPIKeys(ctx)
	require.NoError(t, err)
	require.Len(t, keys, 1)
	require.NoError(t, b.RevokeAPIKey(ctx, keys[0].ID))
	require.Eventually(t, func() bool { _, err := a.Authenticate(ctx, key); return err != nil }, 10*time.Second, 20*time.Millisecond)

	// A third instance, started later, takes the same secret.
	c := open(t, access.Config{Sealer: testSealer(t), Table: table(t, topic)})
	_, err = c.Authenticate(ctx, token)
	require.NoError(t, err)
}

func TestEnsureUserIsIdempotent(t *testing.T) {
	ctx := context.Background()
	s := open(t, access.Config{Sealer: testSealer(t), Table: table(t, servicetest.Topic("test.access.users"))})
	u, created, err := s.EnsureUser(ctx, access.NewUser{Email: "admin@uvr.local", Password: "uvr-demo-1", Role: access.RoleAdmin})
	require.NoError(t, err)
	assert.True(t, created)
	again, created, err := s.EnsureUser(ctx, access.NewUser{Email: "admin@uvr.local", Password: "another password", Role: access.RoleViewer})
	require.NoError(t, err)
	assert.False(t, created)
	assert.Equal(t, u, again, "an existing user is left as it is")
	_, _, err = s.Login(ctx, "admin@uvr.local", "uvr-demo-1")
	require.NoError(t, err)
}

func TestConfiguredSecret(t *testing.T) {
	_, err := access.New(access.Config{Sealer: testSealer(t), Table: table(t, servicetest.Topic("test.access.users")), Secret: []byte("short")})
	require.ErrorContains(t, err, "at least 32 bytes")
	_, err = access.New(access.Config{})
	require.ErrorContains(t, err, "Table is required")
	require.ErrorContains(t, err, "Sealer is required")
}

// The open bootstrap registers one admin, and only while no user exists:
// of concurrent first registrations on two instances sharing the topic,
// exactly one wins; the others are conflicts and leave no user behind.
func TestRegisterFirst(t *testing.T) {
	ctx := context.Background()
	topic := servicetest.Topic("test.access.users")
	stores := []*access.Store{open(t, access.Config{Sealer: testSealer(t), Table: table(t, topic)}), open(t, access.Config{Sealer: testSealer(t), Table: table(t, topic)})}
	const attempts = 6
	results := make(chan error, attempts)
	start := make(chan struct{})
	for i := range attempts {
		go func() {
			<-start
			_, err := stores[i%2].RegisterFirst(ctx, access.NewUser{Email: "first" + string(rune('a'+i)) + "@example.com", Password: "long enough", Role: access.RoleViewer})
			results <- err
		}()
	}
	close(start)
	ok := 0
	for range attempts {
		if err := <-results; err == nil {
			ok++
		} else {
			kind, _ := kindOf(t, err)
			assert.Equal(t, access.KindConflict, kind, "%v", err)
		}
	}
	assert.Equal(t, 1, ok, "one first user")
	for _, s := range stores {
		users, err := s.ListUsers(ctx)
		require.NoError(t, err)
		require.Len(t, users, 1, "no loser left a user")
		assert.Equal(t, access.RoleAdmin, users[0].Role)
	}
	_, err := stores[0].RegisterFirst(ctx, access.NewUser{Email: "late@example.com", Password: "long enough"})
	kind, _ := kindOf(t, err)
	assert.Equal(t, access.KindConflict, kind)
	_, err = stores[1].RegisterFirst(ctx, access.NewUser{Email: "bad", Password: "long enough"})
	kind, _ = kindOf(t, err)
	assert.Equal(t, access.KindConflict, kind, "once an admin exists, nothing else is said")
}

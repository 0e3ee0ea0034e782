package access_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	kafkago "github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/api/access"
	"github.com/uvrhq/uvr/connectors/credentials"
	"github.com/uvrhq/uvr/connectors/credentials/credentialstest"
	"github.com/uvrhq/uvr/deploy/servicetest"
)

// rawRecords reads every record of the one partition of topic with a plain
// Kafka consumer, as anyone allowed to read the topic could: key, then value.
func rawRecords(t *testing.T, topic string) [][2][]byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := kafkago.DialLeader(ctx, "tcp", servicetest.KafkaBrokers(t)[0], topic, 0)
	require.NoError(t, err)
	defer conn.Close()
	first, last, err := conn.ReadOffsets()
	require.NoError(t, err)
	_, err = conn.Seek(first, kafkago.SeekAbsolute)
	require.NoError(t, err)
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(20*time.Second)))
	var out [][2][]byte
	for offset := first; offset < last; {
		m, err := conn.ReadMessage(10 << 20)
		require.NoError(t, err)
		out = append(out, [2][]byte{m.Key, m.Value})
		offset = m.Offset + 1
	}
	return out
}

func localSealer(t *testing.T) access.Sealer {
	t.Helper()
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	s, err := credentials.NewLocalSealer(credentials.LocalConfig{Key: key})
	require.NoError(t, err)
	return s
}

// What a reader of the users topic finds: neither the signing secret nor a
// password hash (nor any part of one), with either sealer.
func TestSecretsAreSealedOnTheTopic(t *testing.T) {
	for name, sealer := range map[string]func(t *testing.T) access.Sealer{
		"local key":     localSealer,
		"vault transit": transitSealer,
	} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			topic := servicetest.Topic("test.access.users")
			s := open(t, access.Config{Table: table(t, topic), Sealer: sealer(t)})
			const password = "planted-password-123"
			u, err := s.Register(ctx, access.NewUser{Email: "ann@example.com", Password: password, Role: access.RoleAdmin})
			require.NoError(t, err)
			_, token, err := s.Login(ctx, "ann@example.com", password)
			require.NoError(t, err, "a sealed hash verifies")

			secret := s.SigningSecret()
			hash, err := s.PasswordHash(ctx, u.ID)
			require.NoError(t, err)
			require.True(t, strings.HasPrefix(hash, "$argon2id$"))
			parts := strings.Split(hash, "$") // …$<salt>$<key>
			salt, key := parts[4], parts[5]
			forbidden := map[string][]byte{
				"signing secret":             secret,
				"signing secret (base64)":    []byte(base64.StdEncoding.EncodeToString(secret)),
				"signing secret (base64url)": []byte(base64.RawURLEncoding.EncodeToString(secret)),
				"password hash":              []byte(hash),
				"hash salt":                  []byte(salt),
				"hash key":                   []byte(key),
				"argon2id":                   []byte("argon2id"),
				"password":                   []byte(password),
				"token":                      []byte(token),
			}
			if raw, err := base64.RawStdEncoding.DecodeString(key); assert.NoError(t, err) {
				forbidden["hash key bytes"] = raw
			}
			records := rawRecords(t, topic)
			require.NotEmpty(t, records)
			sawSecret, sawUser := false, false
			for _, r := range records {
				sawSecret = sawSecret || strings.HasPrefix(string(r[0]), "secret/")
				sawUser = sawUser || strings.HasPrefix(string(r[0]), "user/")
				for what, b := range forbidden {
					assert.NotContains(t, string(r[1]), string(b), "the %s is readable on the topic in record %s", what, r[0])
				}
			}
			assert.True(t, sawSecret && sawUser, "the topic holds the secret and the user, sealed")
		})
	}
}

// A store given another key than the one the topic was sealed with fails to
// open, naming the key it tried: never an empty user table or a fresh
// signing secret. With either sealer, with the secret from the topic or a
// configured one (then the users' hashes are what does not open).
func TestWrongKeyFailsOpen(t *testing.T) {
	for name, tc := range map[string]struct {
		sealer func(t *testing.T) access.Sealer
		names  string // the setting the error names
	}{
		"local key":     {localSealer, "UVR_ENCRYPTION_KEY"},
		"vault transit": {transitSealer, "transit key uvr-users at uvr-test-transit-"},
	} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			topic := servicetest.Topic("test.access.users")
			sealer := tc.sealer(t)
			s := open(t, access.Config{Table: table(t, topic), Sealer: sealer})
			_, err := s.Register(ctx, access.NewUser{Email: "ann@example.com", Password: "long enough", Role: access.RoleAdmin})
			require.NoError(t, err)

			wrongSealer := tc.sealer(t)
			for _, secret := range [][]byte{nil, []byte(strings.Repeat("s", 32))} {
				wrong, err := access.New(access.Config{Table: table(t, topic), Sealer: wrongSealer, Secret: secret})
				require.NoError(t, err)
				octx, cancel := context.WithTimeout(ctx, 30*time.Second)
				err = wrong.Open(octx)
				cancel()
				require.Error(t, err, "configured secret: %t", secret != nil)
				assert.Contains(t, err.Error(), "the users topic holds secrets this instance cannot open")
				assert.Contains(t, err.Error(), tc.names, "the error names the key")
				assert.NotContains(t, err.Error(), "argon2id")
			}

			// Nothing was written by the failed opens: the right key still opens it all.
			again := open(t, access.Config{Table: table(t, topic), Sealer: sealer})
			_, _, err = again.Login(ctx, "ann@example.com", "long enough")
			require.NoError(t, err)
		})
	}
}

// Records an older uvr wrote in plain text load: their users log in, and
// Open seals their hashes; the plain-text signing secret is retired (a
// token it signed is refused) for a sealed one.
func TestPlaintextRecordsOfAnOlderUvrLoad(t *testing.T) {
	ctx := context.Background()
	topic := servicetest.Topic("test.access.users")
	tb := table(t, topic)
	hash, err := access.HashPassword("an old password")
	require.NoError(t, err)
	legacyUser, err := json.Marshal(map[string]any{
		"id": "usr_legacy", "email": "old@example.com", "role": "admin", "active": true,
		"password_hash": hash, "created_at": time.Now().UTC().Add(-time.Hour),
	})
	require.NoError(t, err)
	legacySecret := make([]byte, 32)
	_, _ = rand.Read(legacySecret)
	require.NoError(t, tb.Put(ctx, "secret/legacy", legacySecret))
	require.NoError(t, tb.Put(ctx, "user/usr_legacy", legacyUser))
	oldToken, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.RegisteredClaims{Issuer: "uvr", Subject: "usr_legacy",
		ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))}).SignedString(legacySecret)
	require.NoError(t, err)

	s := open(t, access.Config{Table: tb, Sealer: testSealer(t)})
	u, token, err := s.Login(ctx, "old@example.com", "an old password")
	require.NoError(t, err, "a user of an older uvr logs in")
	assert.Equal(t, "usr_legacy", u.ID)
	_, err = s.Authenticate(ctx, token)
	require.NoError(t, err)
	_, err = s.Authenticate(ctx, oldToken)
	kind, _ := kindOf(t, err)
	assert.Equal(t, access.KindUnauthorized, kind, "the plain-text secret signs nothing any more")
	assert.NotEqual(t, legacySecret, s.SigningSecret())

	// The latest record of each key is sealed; the legacy secret is deleted.
	_, ok := tb.Get("secret/legacy")
	assert.False(t, ok)
	raw, ok := tb.Get("user/usr_legacy")
	require.True(t, ok)
	assert.NotContains(t, string(raw), "argon2id")
	assert.Contains(t, string(raw), "sealed_password_hash")

	// A second instance, given the same key, agrees on everything.
	other := open(t, access.Config{Table: table(t, topic), Sealer: testSealer(t)})
	_, err = other.Authenticate(ctx, token)
	require.NoError(t, err)
	_, _, err = other.Login(ctx, "old@example.com", "an old password")
	require.NoError(t, err)
}

func transitSealer(t *testing.T) access.Sealer {
	t.Helper()
	s, _ := credentialstest.Transit(t, "uvr-users", nil)
	return s
}

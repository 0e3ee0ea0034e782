package credentials_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/connectors/credentials"
	"github.com/uvrhq/uvr/deploy/servicetest"
)

// plantedSecret is a credential value that must never show up in an error, a log line or
// a metric: every test that handles credentials searches for it.
const plantedSecret = "sk_live_PLANTED_7d1f0c9a4b2e"

// logBuffer is a slog handler writing to a buffer, to search every log line for secrets.
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

func (b *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// storeContract is the behaviour every Store implementation shares.
func storeContract(t *testing.T, newStore func(t *testing.T, logs *logBuffer) credentials.Store) {
	t.Run("put get overwrite delete", func(t *testing.T) {
		logs := &logBuffer{}
		s := newStore(t, logs)
		ctx := testCtx(t)
		id := "svc-" + servicetest.Suffix()

		_, err := s.Get(ctx, id)
		require.ErrorIs(t, err, credentials.ErrNotFound)
		assert.Contains(t, err.Error(), id)

		creds := map[string]string{"api_key": plantedSecret, "site": "acme-test", "unicode": "ключ 🔑 \"quoted\"\n"}
		require.NoError(t, s.Put(ctx, id, creds))
		got, err := s.Get(ctx, id)
		require.NoError(t, err)
		assert.Equal(t, creds, got)

		// The returned map is the caller's: changing it changes nothing stored.
		got["api_key"] = "changed"
		again, err := s.Get(ctx, id)
		require.NoError(t, err)
		assert.Equal(t, plantedSecret, again["api_key"])

		// Put replaces the whole set: fields not given again are gone.
		require.NoError(t, s.Put(ctx, id, map[string]string{"api_key": "rotated-key-0001"}))
		got, err = s.Get(ctx, id)
		require.NoError(t, err)
		assert.Equal(t, map[string]string{"api_key": "rotated-key-0001"}, got)

		require.NoError(t, s.Delete(ctx, id))
		_, err = s.Get(ctx, id)
		require.ErrorIs(t, err, credentials.ErrNotFound)
		err = s.Delete(ctx, id)
		require.ErrorIs(t, err, credentials.ErrNotFound)

		assert.NotContains(t, logs.String(), plantedSecret)
	})

	t.Run("services are separate", func(t *testing.T) {
		s := newStore(t, &logBuffer{})
		ctx := testCtx(t)
		ids := make([]string, 8)
		var wg sync.WaitGroup
		errs := make([]error, len(ids))
		for i := range ids {
			ids[i] = fmt.Sprintf("svc-%d-%s", i, servicetest.Suffix())
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = s.Put(ctx, ids[i], map[string]string{"api_key": fmt.Sprintf("key-of-%d", i)})
			}()
		}
		wg.Wait()
		require.NoError(t, errors.Join(errs...))
		for i, id := range ids {
			got, err := s.Get(ctx, id)
			require.NoError(t, err)
			assert.Equal(t, fmt.Sprintf("key-of-%d", i), got["api_key"])
		}
		require.NoError(t, s.Delete(ctx, ids[0]))
		_, err := s.Get(ctx, ids[1])
		require.NoError(t, err, "deleting one service leaves the others")
	})

	t.Run("invalid requests", func(t *testing.T) {
		s := newStore(t, &logBuffer{})
		ctx := testCtx(t)
		for _, id := range []string{"", "../escape", "a/b", "..", "with space", string(make([]byte, 200))} {
			err := s.Put(ctx, id, map[string]string{"api_key": plantedSecret})
			require.ErrorIs(t, err, credentials.ErrInvalid, "id %q", id)
			assert.NotContains(t, err.Error(), plantedSecret)
			_, err = s.Get(ctx, id)
			require.ErrorIs(t, err, credentials.ErrInvalid, "id %q", id)
			require.ErrorIs(t, s.Delete(ctx, id), credentials.ErrInvalid, "id %q", id)
		}
		require.ErrorIs(t, s.Put(ctx, "svc-empty", nil), credentials.ErrInvalid)
		require.ErrorIs(t, s.Put(ctx, "svc-empty", map[string]string{"": "x"}), credentials.ErrInvalid)
	})
}

package credentials_test

import (
	"context"
	"crypto/rand"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/connectors/credentials"
	"github.com/uvrhq/uvr/connectors/credentials/credentialstest"
)

// sealer is what both sealers offer (api/access declares it for itself).
type sealer interface {
	Seal(ctx context.Context, plaintext []byte) ([]byte, error)
	Open(ctx context.Context, sealed []byte) ([]byte, error)
}

// sealerContract: a value opens with the sealer that sealed it, the sealed
// form holds no trace of it, two seals of one value differ, and another key
// or a changed value is ErrSealedElsewhere without quoting a plaintext.
func sealerContract(t *testing.T, newSealer func(t *testing.T) sealer) {
	ctx := testCtx(t)
	s, other := newSealer(t), newSealer(t)
	plain := []byte(plantedSecret)

	sealed, err := s.Seal(ctx, plain)
	require.NoError(t, err)
	assert.NotContains(t, string(sealed), plantedSecret)
	again, err := s.Seal(ctx, plain)
	require.NoError(t, err)
	assert.NotEqual(t, sealed, again, "a fresh nonce every time")
	got, err := s.Open(ctx, sealed)
	require.NoError(t, err)
	assert.Equal(t, plain, got)

	changed := append([]byte{}, sealed...)
	changed[len(changed)/2] ^= 1 // in the middle: all of a base64 character counts there
	for name, tc := range map[string]struct {
		s      sealer
		sealed []byte
	}{
		"another key":       {other, sealed},
		"a changed value":   {s, changed},
		"not sealed at all": {s, plain},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := tc.s.Open(ctx, tc.sealed)
			require.Error(t, err)
			assert.True(t, errors.Is(err, credentials.ErrSealedElsewhere), "%v", err)
			assert.NotContains(t, err.Error(), plantedSecret)
		})
	}
}

func TestKeySealer(t *testing.T) {
	sealerContract(t, func(t *testing.T) sealer {
		key := make([]byte, 32)
		_, _ = rand.Read(key)
		s, err := credentials.NewLocalSealer(credentials.LocalConfig{Key: key})
		require.NoError(t, err)
		return s
	})
}

// Without a key, the sealer uses the local store's key file: what one seals
// the other's key opens, and the error names the file.
func TestLocalSealerSharesTheStoreKeyFile(t *testing.T) {
	ctx := testCtx(t)
	dir := t.TempDir()
	a, err := credentials.NewLocalSealer(credentials.LocalConfig{Dir: dir})
	require.NoError(t, err)
	_, err = credentials.NewLocal(credentials.LocalConfig{Dir: dir})
	require.NoError(t, err, "the store opens with the key file the sealer made")
	b, err := credentials.NewLocalSealer(credentials.LocalConfig{Dir: dir})
	require.NoError(t, err)
	sealed, err := a.Seal(ctx, []byte(plantedSecret))
	require.NoError(t, err)
	got, err := b.Open(ctx, sealed)
	require.NoError(t, err)
	assert.Equal(t, plantedSecret, string(got))

	other, err := credentials.NewLocalSealer(credentials.LocalConfig{Dir: t.TempDir()})
	require.NoError(t, err)
	_, err = other.Open(ctx, sealed)
	assert.ErrorContains(t, err, credentials.LocalKeyName)
	assert.ErrorContains(t, err, "UVR_ENCRYPTION_KEY")
}

func TestTransitSealer(t *testing.T) {
	sealerContract(t, func(t *testing.T) sealer {
		s, _ := credentialstest.Transit(t, "uvr-users", nil)
		return s
	})
}

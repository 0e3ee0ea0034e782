package credentials_test

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/connectors/credentials"
)

func TestLocalContract(t *testing.T) {
	storeContract(t, func(t *testing.T, logs *logBuffer) credentials.Store {
		s, err := credentials.NewLocal(credentials.LocalConfig{Dir: t.TempDir(), Logger: logs.logger()})
		require.NoError(t, err)
		return s
	})
}

func TestLocalSealedAtRestAndReopened(t *testing.T) {
	dir := t.TempDir()
	logs := &logBuffer{}
	ctx := testCtx(t)
	s, err := credentials.NewLocal(credentials.LocalConfig{Dir: dir, Logger: logs.logger()})
	require.NoError(t, err)
	require.NoError(t, s.Put(ctx, "svc-1", map[string]string{"api_key": plantedSecret}))

	// A key was generated, owner-only, and the sealed file is owner-only too.
	keyInfo, err := os.Stat(filepath.Join(dir, credentials.LocalKeyName))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), keyInfo.Mode().Perm())
	fileInfo, err := os.Stat(filepath.Join(dir, credentials.LocalFileName))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fileInfo.Mode().Perm())
	assert.Contains(t, logs.String(), "generated a new credentials encryption key")

	// Nothing readable at rest: neither the secret, nor the field name, nor base64 of it.
	raw, err := os.ReadFile(filepath.Join(dir, credentials.LocalFileName))
	require.NoError(t, err)
	assert.NotContains(t, string(raw), plantedSecret)
	assert.NotContains(t, string(raw), "api_key")
	assert.NotContains(t, string(raw), base64.StdEncoding.EncodeToString([]byte(plantedSecret))[:12])

	// No temporary file is left behind by the atomic writes.
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, e := range entries {
		assert.NotContains(t, e.Name(), ".tmp", "leftover temporary file")
	}

	// A restart (new store on the same dir) reuses the key file and reads the data.
	reopened, err := credentials.NewLocal(credentials.LocalConfig{Dir: dir})
	require.NoError(t, err)
	got, err := reopened.Get(ctx, "svc-1")
	require.NoError(t, err)
	assert.Equal(t, plantedSecret, got["api_key"])
	assert.NotContains(t, logs.String(), plantedSecret)
}

func TestLocalExplicitKey(t *testing.T) {
	dir := t.TempDir()
	ctx := testCtx(t)
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(i)
	}
	s, err := credentials.NewLocal(credentials.LocalConfig{Dir: dir, Key: key})
	require.NoError(t, err)
	require.NoError(t, s.Put(ctx, "svc-1", map[string]string{"api_key": plantedSecret}))
	_, err = os.Stat(filepath.Join(dir, credentials.LocalKeyName))
	assert.True(t, os.IsNotExist(err), "no key file when the key is given")

	// Another key cannot open the file: refused at start, with a hint and no secret.
	other := make([]byte, 32)
	_, err = credentials.NewLocal(credentials.LocalConfig{Dir: dir, Key: other})
	require.ErrorIs(t, err, credentials.ErrDenied)
	assert.Contains(t, err.Error(), "UVR_ENCRYPTION_KEY")
	assert.NotContains(t, err.Error(), plantedSecret)

	// Nor can the generated key file (it would be a new, different key).
	_, err = credentials.NewLocal(credentials.LocalConfig{Dir: dir})
	require.ErrorIs(t, err, credentials.ErrDenied)

	// A damaged file (one flipped byte) is refused the same way, never half-read.
	file := filepath.Join(dir, credentials.LocalFileName)
	raw, err := os.ReadFile(file)
	require.NoError(t, err)
	raw[len(raw)-5] ^= 0xff
	require.NoError(t, os.WriteFile(file, raw, 0o600))
	_, err = credentials.NewLocal(credentials.LocalConfig{Dir: dir, Key: key})
	require.ErrorIs(t, err, credentials.ErrDenied)

	_, err = credentials.NewLocal(credentials.LocalConfig{Dir: t.TempDir(), Key: key[:16]})
	require.Error(t, err, "AES-128 keys are refused")
}

func TestLocalRefusesReadableKeyFile(t *testing.T) {
	dir := t.TempDir()
	_, err := credentials.NewLocal(credentials.LocalConfig{Dir: dir})
	require.NoError(t, err)
	require.NoError(t, os.Chmod(filepath.Join(dir, credentials.LocalKeyName), 0o644))
	_, err = credentials.NewLocal(credentials.LocalConfig{Dir: dir})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "chmod 600")
}

// Two processes on one data dir (two stores here) never lose each other's writes: every
// update re-reads the file under an exclusive file lock.
func TestLocalConcurrentStoresOnOneDir(t *testing.T) {
	dir := t.TempDir()
	ctx := testCtx(t)
	key := make([]byte, 32)
	a, err := credentials.NewLocal(credentials.LocalConfig{Dir: dir, Key: key})
	require.NoError(t, err)
	b, err := credentials.NewLocal(credentials.LocalConfig{Dir: dir, Key: key})
	require.NoError(t, err)
	var wg sync.WaitGroup
	for i := range 20 {
		s := a
		if i%2 == 1 {
			s = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			assert.NoError(t, s.Put(ctx, fmt.Sprintf("svc-%02d", i), map[string]string{"api_key": fmt.Sprint(i)}))
		}()
	}
	wg.Wait()
	for i := range 20 {
		got, err := a.Get(ctx, fmt.Sprintf("svc-%02d", i))
		require.NoError(t, err)
		assert.Equal(t, fmt.Sprint(i), got["api_key"])
	}
}

func TestParseKey(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	tests := []struct {
		name    string
		in      string
		wantErr string
	}{
		{"standard", base64.StdEncoding.EncodeToString(key), ""},
		{"standard with newline", base64.StdEncoding.EncodeToString(key) + "\n", ""},
		{"raw url", base64.RawURLEncoding.EncodeToString(key), ""},
		{"too short", base64.StdEncoding.EncodeToString(key[:16]), "want 32 bytes"},
		{"not base64", "not*base64*" + plantedSecret, "not valid base64"},
		{"empty", "", "want 32 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := credentials.ParseKey(tt.in)
			if tt.wantErr == "" {
				require.NoError(t, err)
				assert.Equal(t, key, got)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.wantErr)
			assert.False(t, strings.Contains(err.Error(), plantedSecret), "the key material is never quoted")
		})
	}
}

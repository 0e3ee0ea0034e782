package access

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestHashPasswordIsArgon2idWithOWASPParameters(t *testing.T) {
	h1, err := hashPassword("correct horse")
	require.NoError(t, err)
	h2, err := hashPassword("correct horse")
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(h1, "$argon2id$v=19$m=19456,t=2,p=1$"), h1)
	assert.NotEqual(t, h1, h2, "a fresh salt each time")
	assert.NotContains(t, h1, "correct horse")
}

func TestVerifyPassword(t *testing.T) {
	good, err := hashPassword("correct horse")
	require.NoError(t, err)
	tests := []struct {
		name     string
		password string
		hash     string
		match    bool
		wantErr  bool
	}{
		{"right password", "correct horse", good, true, false},
		{"wrong password", "correct horsf", good, false, false},
		{"empty password", "", good, false, false},
		{"case matters", "Correct horse", good, false, false},
		{"not a hash", "correct horse", "plain", false, true},
		{"another algorithm", "correct horse", strings.Replace(good, "argon2id", "argon2i", 1), false, true},
		{"bad parameters", "correct horse", strings.Replace(good, "m=19456", "m=x", 1), false, true},
		{"zero memory", "correct horse", strings.Replace(good, "m=19456", "m=0", 1), false, true},
		{"bad salt", "correct horse", strings.Join(append(strings.Split(good, "$")[:4], "!!", strings.Split(good, "$")[5]), "$"), false, true},
		{"truncated key", "correct horse", good[:len(good)-4], false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			match, err := verifyPassword(tt.password, tt.hash)
			if tt.wantErr {
				require.Error(t, err)
			} else {
				require.NoError(t, err)
			}
			assert.Equal(t, tt.match, match)
		})
	}
}

package access

import (
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestTokens(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	now := time.Date(2026, 11, 27, 4, 0, 0, 0, time.UTC)
	good, err := issueToken(secret, "usr_1", now, time.Hour)
	require.NoError(t, err)

	sign := func(method jwt.SigningMethod, key any, claims jwt.Claims) string {
		s, err := jwt.NewWithClaims(method, claims).SignedString(key)
		require.NoError(t, err)
		return s
	}
	valid := jwt.RegisteredClaims{Issuer: tokenIssuer, Subject: "usr_1", ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour))}
	tests := []struct {
		name    string
		token   string
		at      time.Time
		subject string
		expired bool
	}{
		{"valid", good, now.Add(59 * time.Minute), "usr_1", false},
		{"expired", good, now.Add(61 * time.Minute), "", true},
		{"other secret", sign(jwt.SigningMethodHS256, []byte("another secret of thirty-two byte"), valid), now, "", false},
		{"alg none", sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, valid), now, "", false},
		{"HS512 with the same secret", sign(jwt.SigningMethodHS512, secret, valid), now, "", false},
		{"no expiry", sign(jwt.SigningMethodHS256, secret, jwt.RegisteredClaims{Issuer: tokenIssuer, Subject: "usr_1"}), now, "", false},
		{"other issuer", sign(jwt.SigningMethodHS256, secret, jwt.RegisteredClaims{Issuer: "x", Subject: "usr_1", ExpiresAt: valid.ExpiresAt}), now, "", false},
		{"no subject", sign(jwt.SigningMethodHS256, secret, jwt.RegisteredClaims{Issuer: tokenIssuer, ExpiresAt: valid.ExpiresAt}), now, "", false},
		{"garbage", "not.a.token", now, "", false},
		{"tampered", good[:len(good)-2] + "xx", now, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sub, err := verifyToken(secret, tt.token, tt.at)
			if tt.subject != "" {
				require.NoError(t, err)
				assert.Equal(t, tt.subject, sub)
				return
			}
			require.Error(t, err)
			assert.Equal(t, tt.expired, err == errTokenExpired, err)
		})
	}
}

package access

import (
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// systemSubject is the subject of tokens uvr mints for itself (the in-process
// demo client): an admin without a user record. Only the holder of the
// signing secret can mint one.
const systemSubject = "system:uvr"

const tokenIssuer = "uvr"

// issueToken signs an HS256 JWT for subject, valid for ttl from now.
func issueToken(secret []byte, subject string, now time.Time, ttl time.Duration) (string, error) {
	claims := jwt.RegisteredClaims{
		Issuer:    tokenIssuer,
		Subject:   subject,
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
	}
	signed, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	return signed, nil
}

// errTokenExpired tells an expired token from a bad one (for the metric only:
// the client gets the same 401 either way).
var errTokenExpired = errors.New("token expired")

// verifyToken checks the signature (HS256 only: no "none", no algorithm
// confusion), the issuer and the expiry (required), and returns the subject.
func verifyToken(secret []byte, token string, now time.Time) (string, error) {
	claims := &jwt.RegisteredClaims{}
	_, err := jwt.ParseWithClaims(token, claims, func(*jwt.Token) (any, error) { return secret, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithIssuer(tokenIssuer),
		jwt.WithTimeFunc(func() time.Time { return now }),
	)
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return "", errTokenExpired
	case err != nil:
		return "", fmt.Errorf("verify token: %w", err)
	case claims.Subject == "":
		return "", errors.New("verify token: no subject")
	}
	return claims.Subject, nil
}

package access

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"strings"
)

// Sealer encrypts the secret material the store keeps on its topic: the
// token-signing secret and the password hashes. connectors/credentials has
// two: a Vault transit key (Transit) and the local AES-256-GCM key
// (KeySealer). Implementations are safe for concurrent use; their errors
// never hold a plaintext.
type Sealer interface {
	// Seal returns plaintext encrypted and authenticated.
	Seal(ctx context.Context, plaintext []byte) ([]byte, error)
	// Open returns the plaintext of a value Seal returned, or an error when
	// this key did not seal it (or it was changed), or the key's store
	// cannot be reached.
	Open(ctx context.Context, sealed []byte) ([]byte, error)
}

// sealedSecretPrefix starts the value of a sealed signing secret candidate.
// An older uvr wrote the 32 random bytes themselves; that they begin with
// these 7 bytes has a chance of 2⁻⁵⁶.
var sealedSecretPrefix = []byte("sealed:")

func isSealedSecret(value []byte) bool { return bytes.HasPrefix(value, sealedSecretPrefix) }

// seal seals value bound to label (the table key, or "password/" + user id):
// a sealed value copied under another key or into another user's record
// does not open there.
func (s *Store) seal(ctx context.Context, label string, value []byte) ([]byte, error) {
	sealed, err := s.cfg.Sealer.Seal(ctx, bound(label, value))
	if err != nil {
		return nil, sealerUnavailable(fmt.Errorf("seal %s: %w", kindOfLabel(label), err))
	}
	if strings.HasPrefix(label, secretKeyPrefix) {
		return append(append([]byte{}, sealedSecretPrefix...), sealed...), nil
	}
	return sealed, nil
}

// unseal opens a value seal returned for label.
func (s *Store) unseal(ctx context.Context, label string, sealed []byte) ([]byte, error) {
	sealed = bytes.TrimPrefix(sealed, sealedSecretPrefix)
	plain, err := s.cfg.Sealer.Open(ctx, sealed)
	if err != nil {
		return nil, sealerUnavailable(fmt.Errorf("open %s: %w", kindOfLabel(label), err))
	}
	prefix := bound(label, nil)
	if !bytes.HasPrefix(plain, prefix) {
		return nil, sealerUnavailable(fmt.Errorf("open %s: it was sealed for another record", kindOfLabel(label)))
	}
	return plain[len(prefix):], nil
}

func bound(label string, value []byte) []byte {
	return append([]byte(label+"\n"), value...)
}

// kindOfLabel names what a label seals, for errors: never an id.
func kindOfLabel(label string) string {
	if strings.HasPrefix(label, secretKeyPrefix) {
		return "the signing secret"
	}
	return "a password hash"
}

func hashLabel(userID string) string { return "password/" + userID }

// sealHash seals an argon2id hash for user id ("" for the dummy) into the
// base64 of userRecord.SealedPasswordHash.
func (s *Store) sealHash(ctx context.Context, userID, hash string) (string, error) {
	sealed, err := s.seal(ctx, hashLabel(userID), []byte(hash))
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(sealed), nil
}

func (s *Store) openHash(ctx context.Context, userID, sealedB64 string) (string, error) {
	sealed, err := base64.StdEncoding.DecodeString(sealedB64)
	if err != nil {
		return "", sealerUnavailable(fmt.Errorf("open a password hash: not base64: %w", err))
	}
	hash, err := s.unseal(ctx, hashLabel(userID), sealed)
	return string(hash), err
}

// passwordHash is the hash a login verifies: the user's when known, else
// the dummy, opened the same way so that both cost the same.
func (s *Store) passwordHash(ctx context.Context, rec userRecord, known bool) (string, error) {
	switch {
	case !known:
		if _, err := s.openHash(ctx, "", s.sealedDummy); err != nil {
			return "", err
		}
		return s.dummy, nil
	case rec.SealedPasswordHash == "":
		return rec.PasswordHash, nil // written in plain text by an older uvr since Open
	default:
		return s.openHash(ctx, rec.ID, rec.SealedPasswordHash)
	}
}

func (s *Store) openSecret(ctx context.Context, key string, value []byte) ([]byte, error) {
	secret, err := s.unseal(ctx, key, value)
	if err != nil {
		return nil, wrongKey(err)
	}
	if len(secret) < minSecretLength {
		return nil, fmt.Errorf("access: the signing secret %s on the users topic is %d bytes, fewer than %d", key, len(secret), minSecretLength)
	}
	return secret, nil
}

// checkSealed opens one sealed password hash of the topic, so that a Sealer
// with the wrong key fails Open, naming the cause, rather than every login.
func (s *Store) checkSealed(ctx context.Context) error {
	for _, rec := range s.userRecords() {
		if rec.SealedPasswordHash == "" {
			continue
		}
		if _, err := s.openHash(ctx, rec.ID, rec.SealedPasswordHash); err != nil {
			return wrongKey(err)
		}
		return nil
	}
	return nil
}

// wrongKey says what to check when the topic's sealed values do not open.
func wrongKey(err error) error {
	return fmt.Errorf("access: the users topic holds secrets this instance cannot open: give it the key they were sealed with "+
		"(every instance sharing the topic needs the same one): %w", err)
}

// sealPlaintext seals what an older uvr wrote in plain text: each user's
// password hash is written again, sealed; the plain-text signing secret
// candidates are deleted (firstSecret ignores them), so that a secret that
// lay readable on the topic never signs again: Open generates a sealed one,
// and the tokens signed before are refused (their users log in again).
//
// The old records stay in the topic's older segments until compaction drops
// them (docs/operations.md).
func (s *Store) sealPlaintext(ctx context.Context) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	users, secrets := 0, 0
	for key, value := range s.cfg.Table.All() {
		if !strings.HasPrefix(key, secretKeyPrefix) || isSealedSecret(value) {
			continue
		}
		if err := s.cfg.Table.Delete(ctx, key); err != nil {
			return unavailable(fmt.Errorf("retire a plain-text signing secret: %w", err))
		}
		secrets++
	}
	for _, rec := range s.userRecords() {
		if rec.PasswordHash == "" {
			continue
		}
		if err := s.putUser(ctx, rec); err != nil {
			return err
		}
		users++
	}
	if users+secrets > 0 {
		s.log.Warn("sealed the plain-text secret material an older uvr left on the users topic",
			"password_hashes", users, "signing_secrets_retired", secrets)
	}
	return nil
}

func sealerUnavailable(err error) *Error {
	return &Error{Kind: KindUnavailable, Message: "the user store cannot use its secret store (Vault transit or the local key)", Err: err}
}

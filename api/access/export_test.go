package access

import "context"

// Internals the tests of access_test look for on the topic.

// HashPassword is hashPassword: a hash as an older uvr stored it.
var HashPassword = hashPassword

// SigningSecret is the secret the store signs with.
func (s *Store) SigningSecret() []byte {
	b, _ := s.signingSecret()
	return b
}

// PasswordHash is the opened argon2id hash of user id.
func (s *Store) PasswordHash(ctx context.Context, id string) (string, error) {
	rec, ok := s.userByID(id)
	return s.passwordHash(ctx, rec, ok)
}

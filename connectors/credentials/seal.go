package credentials

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	vault "github.com/hashicorp/vault/api"
)

// Sealing: secret material that other components keep outside this package
// (the token-signing secret and the password hashes on the users topic) is
// encrypted with the same key material as the service credentials: a Vault
// transit key when Vault is configured, else the local AES-256 key. Both
// sealers below have the same two methods; their consumers declare the
// interface.

// ErrSealedElsewhere: a sealed value was not sealed by this key (another
// local key, another transit key, or a value of the other kind of sealer),
// or it was changed since.
var ErrSealedElsewhere = errors.New("sealed with another key, or damaged")

// keySealMagic starts every value a KeySealer seals; it is also the AEAD's
// associated data, so neither a credentials file nor a value of another
// format opens as one.
var keySealMagic = []byte("uvr-sealed-v1:")

// KeySealer seals values with AES-256-GCM under a local key. Safe for
// concurrent use.
type KeySealer struct {
	aead cipher.AEAD
	key  string // what the key is, for errors: never the key itself
}

// NewLocalSealer seals with the local store's key: cfg.Key (UVR_ENCRYPTION_KEY)
// or the key file Dir/credentials.key, generated with mode 0600 when missing,
// exactly as NewLocal finds it. Only Dir, Key and Logger are read.
func NewLocalSealer(cfg LocalConfig) (*KeySealer, error) {
	if cfg.Key == nil && cfg.Dir == "" {
		return nil, errors.New("local sealer: Dir is required without a key")
	}
	key, what, _, err := localKey(cfg)
	if err != nil {
		return nil, err
	}
	aead, err := newGCM(key)
	if err != nil {
		return nil, fmt.Errorf("local sealer: %w", err)
	}
	return &KeySealer{aead: aead, key: what}, nil
}

// localKey is the key of cfg, the same for the store and the sealer: cfg.Key,
// else the key file Dir/credentials.key, generated when missing. It also says
// which key it is (for errors, never the key) and returns the logger to use.
func localKey(cfg LocalConfig) (key []byte, what string, log *slog.Logger, err error) {
	log = cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "credentials")
	if cfg.Dir != "" {
		if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
			return nil, "", nil, fmt.Errorf("local credentials: %w", err)
		}
	}
	if cfg.Key != nil {
		return cfg.Key, "the key set by UVR_ENCRYPTION_KEY", log, nil
	}
	file := filepath.Join(cfg.Dir, LocalKeyName)
	if key, err = loadOrCreateKey(file, log); err != nil {
		return nil, "", nil, err
	}
	return key, "the key file " + file + " (or UVR_ENCRYPTION_KEY)", log, nil
}

// newGCM is AES-256-GCM under key.
func newGCM(key []byte) (cipher.AEAD, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("key must be 32 bytes (AES-256), got %d", len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// Seal returns magic | nonce | AES-256-GCM(plaintext).
func (s *KeySealer) Seal(_ context.Context, plaintext []byte) ([]byte, error) {
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("local sealer: nonce: %w", err)
	}
	out := make([]byte, 0, len(keySealMagic)+len(nonce)+len(plaintext)+s.aead.Overhead())
	out = append(out, keySealMagic...)
	out = append(out, nonce...)
	return s.aead.Seal(out, nonce, plaintext, keySealMagic), nil
}

// Open returns the plaintext of a value Seal returned, or an error wrapping
// ErrSealedElsewhere that names the key tried (never a value).
func (s *KeySealer) Open(_ context.Context, sealed []byte) ([]byte, error) {
	ns := s.aead.NonceSize()
	if !bytes.HasPrefix(sealed, keySealMagic) || len(sealed) < len(keySealMagic)+ns+s.aead.Overhead() {
		return nil, fmt.Errorf("local sealer: %w: not a value sealed with a local key (%s)", ErrSealedElsewhere, s.key)
	}
	body := sealed[len(keySealMagic):]
	plain, err := s.aead.Open(nil, body[:ns], body[ns:], keySealMagic)
	if err != nil {
		return nil, fmt.Errorf("local sealer: %w: %s does not open it", ErrSealedElsewhere, s.key)
	}
	return plain, nil
}

// Defaults of TransitConfig.
const (
	DefaultTransitMount = "transit"
	DefaultTransitKey   = "uvr-users"
)

// TransitConfig configures Vault.Transit.
type TransitConfig struct {
	Mount string // where the transit engine is mounted; default "transit"
	Key   string // the named encryption key; default "uvr-users"
}

// Transit seals values with a Vault transit key: the key never leaves Vault,
// and every Seal or Open is one request. Safe for concurrent use.
//
// The key is created by the first Seal if the token may (capability "create"
// on <mount>/encrypt/<key>); otherwise an operator creates it beforehand.
type Transit struct {
	v     *Vault
	mount string
	key   string
}

// Transit returns a sealer on this Vault connection (its token and renewal).
func (v *Vault) Transit(cfg TransitConfig) (*Transit, error) {
	if cfg.Mount == "" {
		cfg.Mount = DefaultTransitMount
	}
	if cfg.Key == "" {
		cfg.Key = DefaultTransitKey
	}
	cfg.Mount = strings.Trim(cfg.Mount, "/")
	if strings.Contains(cfg.Mount, "..") || !validID.MatchString(cfg.Key) {
		return nil, fmt.Errorf("%w: vault transit mount must not contain '..' and key %q must be letters, digits, '_', '-' or '.'", ErrInvalid, cfg.Key)
	}
	return &Transit{v: v, mount: cfg.Mount, key: cfg.Key}, nil
}

func (t *Transit) what() string { return "transit key " + t.key + " at " + t.mount }

// Seal encrypts plaintext with the transit key; the answer is Vault's
// ciphertext ("vault:v<n>:…").
func (t *Transit) Seal(ctx context.Context, plaintext []byte) ([]byte, error) {
	secret, err := t.v.client.Logical().WriteWithContext(ctx, t.mount+"/encrypt/"+t.key, map[string]any{
		"plaintext": base64.StdEncoding.EncodeToString(plaintext),
	})
	if err != nil {
		t.v.metrics.errors.WithLabelValues("encrypt").Inc()
		return nil, t.v.wrap("encrypt with "+t.what(), err, nil)
	}
	ct := dataString(secret, "ciphertext")
	if ct == "" {
		return nil, fmt.Errorf("vault encrypt with %s: %w: the answer holds no ciphertext", t.what(), ErrUnavailable)
	}
	return []byte(ct), nil
}

// Open decrypts what Seal returned. A value that this key did not seal is an
// error wrapping ErrSealedElsewhere; Vault down or the token denied wrap
// ErrUnavailable or ErrDenied.
func (t *Transit) Open(ctx context.Context, sealed []byte) ([]byte, error) {
	if !bytes.HasPrefix(sealed, []byte("vault:v")) {
		return nil, fmt.Errorf("vault decrypt with %s: %w: not a Vault transit ciphertext", t.what(), ErrSealedElsewhere)
	}
	secret, err := t.v.client.Logical().WriteWithContext(ctx, t.mount+"/decrypt/"+t.key, map[string]any{
		"ciphertext": string(sealed),
	})
	if err != nil {
		t.v.metrics.errors.WithLabelValues("decrypt").Inc()
		err = t.v.wrap("decrypt with "+t.what(), err, nil)
		if errors.Is(err, ErrInvalid) { // 400: a ciphertext of another key, or changed
			return nil, fmt.Errorf("%w: %w", ErrSealedElsewhere, err)
		}
		return nil, err
	}
	b64 := dataString(secret, "plaintext")
	plain, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, fmt.Errorf("vault decrypt with %s: %w: the answer holds no base64 plaintext", t.what(), ErrUnavailable)
	}
	return plain, nil
}

func dataString(secret *vault.Secret, key string) string {
	if secret == nil {
		return ""
	}
	s, _ := secret.Data[key].(string)
	return s
}

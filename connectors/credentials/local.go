package credentials

import (
	"bytes"
	"context"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
)

// File names of the local store inside LocalConfig.Dir.
const (
	LocalFileName = "credentials.sealed"
	LocalKeyName  = "credentials.key"
)

// sealedMagic starts every sealed file; it is also the AEAD's associated data, so a
// file of another format or version cannot be opened as this one.
var sealedMagic = []byte("uvr-credentials-v1\n")

// LocalConfig configures NewLocal.
type LocalConfig struct {
	// Dir is the data directory; the sealed file (and a generated key) go there.
	Dir string
	// Key is the AES-256 key (32 bytes), e.g. ParseKey(UVR_ENCRYPTION_KEY). Nil
	// means the key file Dir/credentials.key, generated with mode 0600 when missing.
	Key    []byte
	Logger *slog.Logger // nil discards
}

// Local stores every service's credentials in one file, sealed with
// AES-256-GCM, for a single-machine install without Vault. Writes are atomic
// (a temporary file renamed over the old one) and serialized across processes
// by a lock file, so a crash never leaves half a file.
type Local struct {
	file string
	lock string
	aead cipher.AEAD
	log  *slog.Logger
	mu   sync.Mutex
}

var _ Store = (*Local)(nil)

// ParseKey decodes a base64 (standard or URL alphabet, padded or not) AES-256
// key. Its error never quotes the value.
func ParseKey(b64 string) ([]byte, error) {
	b64 = strings.TrimSpace(b64)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if key, err := enc.DecodeString(b64); err == nil {
			if len(key) != 32 {
				return nil, fmt.Errorf("encryption key: want 32 bytes (AES-256), the base64 decodes to %d", len(key))
			}
			return key, nil
		}
	}
	return nil, errors.New("encryption key: not valid base64 (generate one with: head -c32 /dev/urandom | base64)")
}

// NewLocal opens (or prepares) the sealed store in cfg.Dir. With no key given
// it reads Dir/credentials.key, or creates one. An existing sealed file is
// opened once here, so a wrong key fails at start rather than on first use.
func NewLocal(cfg LocalConfig) (*Local, error) {
	if cfg.Dir == "" {
		return nil, errors.New("local credentials: Dir is required")
	}
	key, _, log, err := localKey(cfg)
	if err != nil {
		return nil, err
	}
	aead, err := newGCM(key)
	if err != nil {
		return nil, fmt.Errorf("local credentials: %w", err)
	}
	l := &Local{
		file: filepath.Join(cfg.Dir, LocalFileName),
		lock: filepath.Join(cfg.Dir, LocalFileName+".lock"),
		aead: aead,
		log:  log,
	}
	if _, err := l.read(); err != nil {
		return nil, err
	}
	return l, nil
}

func loadOrCreateKey(file string, log *slog.Logger) ([]byte, error) {
	info, err := os.Stat(file)
	if err == nil {
		// Like ssh with a private key: a key others can read is refused, not used.
		if info.Mode().Perm()&0o077 != 0 {
			return nil, fmt.Errorf("local credentials: key file %s has mode %04o; it must be readable by its owner only (chmod 600)", file, info.Mode().Perm())
		}
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("local credentials: read key file: %w", err)
		}
		key, err := ParseKey(string(b))
		if err != nil {
			return nil, fmt.Errorf("local credentials: key file %s: %w", file, err)
		}
		return key, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("local credentials: key file: %w", err)
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("local credentials: generate key: %w", err)
	}
	// O_EXCL: two processes starting at once cannot both write a key; the loser reads the
	// winner's.
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return loadOrCreateKey(file, log)
	}
	if err != nil {
		return nil, fmt.Errorf("local credentials: create key file: %w", err)
	}
	_, werr := f.WriteString(base64.StdEncoding.EncodeToString(key) + "\n")
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		_ = os.Remove(file)
		return nil, fmt.Errorf("local credentials: write key file: %w", err)
	}
	log.Warn("generated a new credentials encryption key; back it up, or set UVR_ENCRYPTION_KEY", "key_file", file)
	return key, nil
}

// Put implements Store.
func (l *Local) Put(ctx context.Context, serviceID string, creds map[string]string) error {
	if err := checkID(serviceID); err != nil {
		return err
	}
	if err := checkCreds(creds); err != nil {
		return err
	}
	return l.update(ctx, func(all map[string]map[string]string) error {
		c := make(map[string]string, len(creds))
		for k, v := range creds {
			c[k] = v
		}
		all[serviceID] = c
		return nil
	})
}

// Get implements Store.
func (l *Local) Get(ctx context.Context, serviceID string) (map[string]string, error) {
	if err := checkID(serviceID); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	all, err := l.read()
	if err != nil {
		return nil, err
	}
	creds, ok := all[serviceID]
	if !ok {
		return nil, fmt.Errorf("service %s: %w", serviceID, ErrNotFound)
	}
	return creds, nil
}

// Delete implements Store.
func (l *Local) Delete(ctx context.Context, serviceID string) error {
	if err := checkID(serviceID); err != nil {
		return err
	}
	return l.update(ctx, func(all map[string]map[string]string) error {
		if _, ok := all[serviceID]; !ok {
			return fmt.Errorf("service %s: %w", serviceID, ErrNotFound)
		}
		delete(all, serviceID)
		return nil
	})
}

// update reads, changes and rewrites the file under the in-process mutex and an
// exclusive lock on the lock file (other processes on the same data dir).
func (l *Local) update(ctx context.Context, change func(map[string]map[string]string) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	lf, err := os.OpenFile(l.lock, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("local credentials: %w: lock: %w", ErrUnavailable, err)
	}
	defer lf.Close()
	if err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("local credentials: %w: lock: %w", ErrUnavailable, err)
	}
	defer syscall.Flock(int(lf.Fd()), syscall.LOCK_UN) //nolint:errcheck // closing releases it too

	all, err := l.read()
	if err != nil {
		return err
	}
	if err := change(all); err != nil {
		return err
	}
	return l.write(all)
}

// read opens the sealed file; a missing file is an empty store.
func (l *Local) read() (map[string]map[string]string, error) {
	sealed, err := os.ReadFile(l.file)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]map[string]string{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("local credentials: %w: %w", ErrUnavailable, err)
	}
	if !bytes.HasPrefix(sealed, sealedMagic) {
		return nil, fmt.Errorf("local credentials: %s is not a uvr credentials file", l.file)
	}
	body := sealed[len(sealedMagic):]
	ns := l.aead.NonceSize()
	if len(body) < ns+l.aead.Overhead() {
		return nil, fmt.Errorf("local credentials: %s is truncated", l.file)
	}
	plain, err := l.aead.Open(nil, body[:ns], body[ns:], sealedMagic)
	if err != nil {
		// GCM says only "message authentication failed": a wrong key or a damaged file.
		return nil, fmt.Errorf("local credentials: %w: %s cannot be opened with this key (UVR_ENCRYPTION_KEY or %s changed?) or is damaged", ErrDenied, l.file, LocalKeyName)
	}
	all := map[string]map[string]string{}
	if err := json.Unmarshal(plain, &all); err != nil {
		// The JSON error could quote a fragment of the plaintext: not shown.
		return nil, fmt.Errorf("local credentials: %s holds malformed data after decryption", l.file)
	}
	return all, nil
}

// write seals all into a temporary file in the same directory, syncs it and
// renames it over the old file, then syncs the directory: the file is either
// the old or the new one, never a mix, even after a crash.
func (l *Local) write(all map[string]map[string]string) error {
	plain, err := json.Marshal(all)
	if err != nil {
		return fmt.Errorf("local credentials: encode: %w", err)
	}
	nonce := make([]byte, l.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return fmt.Errorf("local credentials: nonce: %w", err)
	}
	out := make([]byte, 0, len(sealedMagic)+len(nonce)+len(plain)+l.aead.Overhead())
	out = append(out, sealedMagic...)
	out = append(out, nonce...)
	out = l.aead.Seal(out, nonce, plain, sealedMagic)

	dir := filepath.Dir(l.file)
	tmp, err := os.CreateTemp(dir, LocalFileName+".tmp-*")
	if err != nil {
		return fmt.Errorf("local credentials: %w: %w", ErrUnavailable, err)
	}
	defer os.Remove(tmp.Name()) // a no-op after the rename
	if err := tmp.Chmod(0o600); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("local credentials: %w: %w", ErrUnavailable, err)
	}
	_, werr := tmp.Write(out)
	serr := tmp.Sync()
	cerr := tmp.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		return fmt.Errorf("local credentials: %w: write: %w", ErrUnavailable, err)
	}
	if err := os.Rename(tmp.Name(), l.file); err != nil {
		return fmt.Errorf("local credentials: %w: %w", ErrUnavailable, err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}

// Package credentials keeps the credentials of configured services (API keys,
// secrets) out of Kafka and out of every log: in HashiCorp Vault (KV v2) in
// production, or in an AES-256-GCM sealed file for a single machine.
//
// No credential value ever appears in an error, a log line or a metric label
// of this package: errors name the service id and the operation only.
package credentials

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// Sentinel errors; implementations wrap them so that callers use errors.Is.
var (
	// ErrNotFound: no credentials are stored for the service id.
	ErrNotFound = errors.New("credentials not found")
	// ErrUnavailable: the store cannot be reached or failed (network, Vault sealed or
	// down, disk); retrying later may work.
	ErrUnavailable = errors.New("credential store unavailable")
	// ErrDenied: the store refused uvr's own identity (Vault token expired or lacking a
	// policy, a key that does not open the local file). An operator must act.
	ErrDenied = errors.New("credential store denied access")
	// ErrInvalid: the service id or the credentials are not acceptable (empty, bad chars).
	ErrInvalid = errors.New("invalid credentials request")
)

// Store holds one set of credentials per service id. Implementations are safe
// for concurrent use.
type Store interface {
	// Put stores creds for serviceID, replacing what was there.
	Put(ctx context.Context, serviceID string, creds map[string]string) error
	// Get returns the credentials of serviceID, or an error wrapping ErrNotFound.
	Get(ctx context.Context, serviceID string) (map[string]string, error)
	// Delete removes the credentials of serviceID for good; an error wrapping
	// ErrNotFound when there were none.
	Delete(ctx context.Context, serviceID string) error
}

// A service id becomes a Vault path segment and a JSON key: only characters that can
// neither climb out of the prefix nor need escaping.
var validID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)

func checkID(serviceID string) error {
	if !validID.MatchString(serviceID) || strings.Contains(serviceID, "..") {
		return fmt.Errorf("%w: service id %q must be 1-128 letters, digits, '_', '-' or '.'", ErrInvalid, serviceID)
	}
	return nil
}

func checkCreds(creds map[string]string) error {
	if len(creds) == 0 {
		return fmt.Errorf("%w: no credential fields", ErrInvalid)
	}
	for k := range creds {
		if k == "" {
			return fmt.Errorf("%w: empty credential field name", ErrInvalid)
		}
	}
	return nil
}

// redact replaces every credential value (of 4 characters or more: shorter ones would
// mangle ordinary words) in s.
func redact(s string, creds map[string]string) string {
	for _, v := range creds {
		if len(v) >= 4 {
			s = strings.ReplaceAll(s, v, "[redacted]")
		}
	}
	return s
}

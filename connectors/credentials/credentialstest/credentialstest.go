// Package credentialstest gives tests a credentials.Vault on the real Vault dev
// server (deploy/vault), confined to a KV prefix of their own by a
// least-privilege token, as production would run.
package credentialstest

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"

	"github.com/uvrhq/uvr/connectors/credentials"
	"github.com/uvrhq/uvr/deploy/servicetest"
)

// Root is a client of the real Vault with the dev server's root token, to set
// the stage or inspect what a test stored, as an operator would.
func Root(t testing.TB) *vault.Client {
	t.Helper()
	addr, token := servicetest.Vault(t)
	c, err := vault.NewClient(&vault.Config{Address: addr})
	if err != nil {
		t.Fatalf("vault client: %v", err)
	}
	c.SetToken(token)
	return c
}

// Vault is a credentials.Vault under a random prefix of the "secret" mount,
// with a token whose policy grants that prefix only. It is closed, and the
// policy removed, when the test ends. It returns the store and its prefix.
func Vault(t testing.TB, logger *slog.Logger) (*credentials.Vault, string) {
	t.Helper()
	root := Root(t)
	addr, _ := servicetest.Vault(t)
	suffix := servicetest.Suffix()
	prefix := "uvr-test-" + suffix + "/services"
	policy := "uvr-test-" + suffix
	if err := root.Sys().PutPolicy(policy, fmt.Sprintf(`
path "secret/data/%[1]s/*" { capabilities = ["create", "read", "update", "delete"] }
path "secret/metadata/%[1]s/*" { capabilities = ["read", "delete", "list"] }
`, prefix)); err != nil {
		t.Fatalf("vault policy: %v", err)
	}
	token := policyToken(t, root, policy)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	store, err := credentials.NewVault(ctx, credentials.VaultConfig{Addr: addr, Token: token, Prefix: prefix, Logger: logger})
	if err != nil {
		t.Fatalf("credentials.NewVault: %v", err)
	}
	t.Cleanup(func() { _ = store.Close() })
	return store, prefix
}

// Transit is a sealer on a transit engine mounted for this test alone (and
// unmounted when it ends), used through a token whose policy grants only
// encrypt and decrypt with key: as production would run. It returns the
// sealer and the mount.
func Transit(t testing.TB, key string, logger *slog.Logger) (*credentials.Transit, string) {
	t.Helper()
	root := Root(t)
	addr, _ := servicetest.Vault(t)
	suffix := servicetest.Suffix()
	mount := "uvr-test-transit-" + suffix
	if err := root.Sys().Mount(mount, &vault.MountInput{Type: "transit"}); err != nil {
		t.Fatalf("vault mount transit: %v", err)
	}
	t.Cleanup(func() { _ = root.Sys().Unmount(mount) })
	policy := "uvr-test-transit-" + suffix
	if err := root.Sys().PutPolicy(policy, fmt.Sprintf(`
path "%[1]s/encrypt/%[2]s" { capabilities = ["create", "update"] }
path "%[1]s/decrypt/%[2]s" { capabilities = ["update"] }
`, mount, key)); err != nil {
		t.Fatalf("vault policy: %v", err)
	}
	token := policyToken(t, root, policy)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	v, err := credentials.NewVault(ctx, credentials.VaultConfig{Addr: addr, Token: token, Logger: logger})
	if err != nil {
		t.Fatalf("credentials.NewVault: %v", err)
	}
	t.Cleanup(func() { _ = v.Close() })
	tr, err := v.Transit(credentials.TransitConfig{Mount: mount, Key: key})
	if err != nil {
		t.Fatalf("transit: %v", err)
	}
	return tr, mount
}

// policyToken is a renewable token of one hour with policy only, whose policy
// is removed when the test ends.
func policyToken(t testing.TB, root *vault.Client, policy string) string {
	t.Helper()
	t.Cleanup(func() { _ = root.Sys().DeletePolicy(policy) })
	renewable := true
	secret, err := root.Auth().Token().Create(&vault.TokenCreateRequest{Policies: []string{policy}, TTL: "1h", Renewable: &renewable, NoParent: true})
	if err != nil {
		t.Fatalf("vault token: %v", err)
	}
	return secret.Auth.ClientToken
}

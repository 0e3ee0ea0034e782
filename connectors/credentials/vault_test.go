package credentials_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/connectors/credentials"
	"github.com/uvrhq/uvr/connectors/credentials/credentialstest"
	"github.com/uvrhq/uvr/deploy/servicetest"
)

func rootClient(t *testing.T) *vault.Client { return credentialstest.Root(t) }

// testPrefix is a KV path prefix of this test alone, and the policy that grants it.
func testPrefix(t *testing.T, root *vault.Client) (prefix, policy string) {
	t.Helper()
	suffix := servicetest.Suffix()
	prefix = "uvr-test-" + suffix + "/services"
	policy = "uvr-test-" + suffix
	require.NoError(t, root.Sys().PutPolicy(policy, fmt.Sprintf(`
path "secret/data/%[1]s/*" { capabilities = ["create", "read", "update", "delete"] }
path "secret/metadata/%[1]s/*" { capabilities = ["read", "delete", "list"] }
`, prefix)))
	t.Cleanup(func() { _ = root.Sys().DeletePolicy(policy) })
	return prefix, policy
}

// childToken creates a token with policy; ttl 0 means the server's default.
func childToken(t *testing.T, root *vault.Client, policy string, ttl string, renewable bool) string {
	t.Helper()
	secret, err := root.Auth().Token().Create(&vault.TokenCreateRequest{
		Policies: []string{policy}, TTL: ttl, Renewable: &renewable, NoParent: true,
	})
	require.NoError(t, err)
	return secret.Auth.ClientToken
}

func newVault(t *testing.T, cfg credentials.VaultConfig) *credentials.Vault {
	t.Helper()
	v, err := credentials.NewVault(testCtx(t), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = v.Close() })
	return v
}

func TestVaultContract(t *testing.T) {
	root := rootClient(t)
	addr, _ := servicetest.Vault(t)
	storeContract(t, func(t *testing.T, logs *logBuffer) credentials.Store {
		prefix, policy := testPrefix(t, root)
		// A least-privilege token, as production would use, not the root token.
		token := childToken(t, root, policy, "1h", true)
		return newVault(t, credentials.VaultConfig{Addr: addr, Token: token, Prefix: prefix, Logger: logs.logger()})
	})
}

func TestVaultStoresUnderMountAndPrefix(t *testing.T) {
	root := rootClient(t)
	addr, _ := servicetest.Vault(t)
	prefix, policy := testPrefix(t, root)
	v := newVault(t, credentials.VaultConfig{Addr: addr, Token: childToken(t, root, policy, "1h", true), Mount: "/secret/", Prefix: "/" + prefix + "/"})
	ctx := testCtx(t)
	require.NoError(t, v.Put(ctx, "svc-abc", map[string]string{"api_key": plantedSecret}))

	// Where an operator finds it: KV v2 at secret/<prefix>/<id>.
	got, err := root.KVv2("secret").Get(ctx, prefix+"/svc-abc")
	require.NoError(t, err)
	assert.Equal(t, map[string]any{"api_key": plantedSecret}, got.Data)

	// Delete removes every version, not just the latest (no soft-deleted secret left).
	require.NoError(t, v.Put(ctx, "svc-abc", map[string]string{"api_key": "second-version"}))
	require.NoError(t, v.Delete(ctx, "svc-abc"))
	_, err = root.KVv2("secret").GetMetadata(ctx, prefix+"/svc-abc")
	require.ErrorIs(t, err, vault.ErrSecretNotFound)
}

// uvr's own identity refused: ErrDenied, counted, and neither the token nor a credential
// appears in the error or the logs.
func TestVaultDeniedWithoutLeakingSecrets(t *testing.T) {
	root := rootClient(t)
	addr, _ := servicetest.Vault(t)
	prefix, _ := testPrefix(t, root)
	token := childToken(t, root, "default", "1h", false) // no access to the KV path
	logs := &logBuffer{}
	reg := prometheus.NewRegistry()
	v := newVault(t, credentials.VaultConfig{Addr: addr, Token: token, Prefix: prefix, Logger: logs.logger(), Registerer: reg})
	ctx := testCtx(t)

	err := v.Put(ctx, "svc-1", map[string]string{"api_key": plantedSecret})
	require.ErrorIs(t, err, credentials.ErrDenied)
	assert.Contains(t, err.Error(), "403")
	assert.Contains(t, err.Error(), "svc-1")
	_, err2 := v.Get(ctx, "svc-1")
	require.ErrorIs(t, err2, credentials.ErrDenied)

	for _, text := range []string{err.Error(), err2.Error(), logs.String(), gatherText(t, reg)} {
		assert.NotContains(t, text, plantedSecret)
		assert.NotContains(t, text, token)
	}
	assert.Equal(t, 1.0, errorsCount(t, reg, "put"))
	assert.Equal(t, 1.0, errorsCount(t, reg, "get"))
}

func TestVaultBadTokenFailsAtStart(t *testing.T) {
	addr, _ := servicetest.Vault(t)
	logs := &logBuffer{}
	bogus := "hvs.PLANTED-not-a-token-" + servicetest.Suffix()
	_, err := credentials.NewVault(testCtx(t), credentials.VaultConfig{Addr: addr, Token: bogus, Logger: logs.logger()})
	require.ErrorIs(t, err, credentials.ErrDenied)
	assert.NotContains(t, err.Error(), bogus)
	assert.NotContains(t, logs.String(), bogus)
}

func TestVaultHealth(t *testing.T) {
	root := rootClient(t)
	addr, _ := servicetest.Vault(t)
	prefix, policy := testPrefix(t, root)
	v := newVault(t, credentials.VaultConfig{Addr: addr, Token: childToken(t, root, policy, "1h", true), Prefix: prefix})
	require.NoError(t, v.Health(testCtx(t)))
}

func TestVaultUnreachable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := credentials.NewVault(ctx, credentials.VaultConfig{Addr: "http://127.0.0.1:1", Token: plantedSecret, Timeout: time.Second})
	require.ErrorIs(t, err, credentials.ErrUnavailable)
	assert.NotContains(t, err.Error(), plantedSecret)
}

func TestVaultConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  credentials.VaultConfig
		want string
	}{
		{"no address", credentials.VaultConfig{Token: "t"}, "address is required"},
		{"no auth", credentials.VaultConfig{Addr: "http://x"}, "a token or an AppRole"},
		{"both", credentials.VaultConfig{Addr: "http://x", Token: plantedSecret, RoleID: "r", SecretID: plantedSecret}, "not both"},
		{"half approle", credentials.VaultConfig{Addr: "http://x", RoleID: "r"}, "both a role id and a secret id"},
		{"escape", credentials.VaultConfig{Addr: "http://x", Token: "t", Prefix: "../other"}, "'..'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
			assert.NotContains(t, err.Error(), plantedSecret)
		})
	}
}

// A renewable token with a short TTL outlives that TTL: the LifetimeWatcher renews it, and
// the expiry gauge moves forward.
func TestVaultRenewsToken(t *testing.T) {
	root := rootClient(t)
	addr, _ := servicetest.Vault(t)
	prefix, policy := testPrefix(t, root)
	token := childToken(t, root, policy, "3s", true)
	reg := prometheus.NewRegistry()
	start := time.Now()
	v := newVault(t, credentials.VaultConfig{Addr: addr, Token: token, Prefix: prefix, Registerer: reg})
	first := gauge(t, reg)
	assert.InDelta(t, float64(start.Add(3*time.Second).Unix()), first, 2)

	require.Eventually(t, func() bool { return gauge(t, reg) > first }, 15*time.Second, 50*time.Millisecond,
		"the expiry should move forward when the token is renewed")
	// Past the original TTL, the token still works.
	ctx := testCtx(t)
	require.Eventually(t, func() bool {
		return time.Since(start) > 4*time.Second && v.Put(ctx, "svc-1", map[string]string{"k": "v"}) == nil
	}, 15*time.Second, 100*time.Millisecond)
	assert.Zero(t, errorsCount(t, reg, "renew"))
}

// enableAppRole mounts AppRole at a path of this test and creates a role whose tokens have
// policy, ttl and max ttl; it returns the mount, role id and a secret id.
func enableAppRole(t *testing.T, root *vault.Client, policy, ttl, maxTTL string) (mount, roleID, secretID string) {
	t.Helper()
	mount = "approle-" + servicetest.Suffix()
	require.NoError(t, root.Sys().EnableAuthWithOptions(mount, &vault.EnableAuthOptions{Type: "approle"}))
	t.Cleanup(func() { _ = root.Sys().DisableAuth(mount) })
	_, err := root.Logical().Write("auth/"+mount+"/role/uvr", map[string]any{
		"token_policies": []string{policy}, "token_ttl": ttl, "token_max_ttl": maxTTL,
	})
	require.NoError(t, err)
	r, err := root.Logical().Read("auth/" + mount + "/role/uvr/role-id")
	require.NoError(t, err)
	s, err := root.Logical().Write("auth/"+mount+"/role/uvr/secret-id", nil)
	require.NoError(t, err)
	return mount, r.Data["role_id"].(string), s.Data["secret_id"].(string)
}

func TestVaultAppRole(t *testing.T) {
	root := rootClient(t)
	addr, _ := servicetest.Vault(t)
	prefix, policy := testPrefix(t, root)
	mount, roleID, secretID := enableAppRole(t, root, policy, "1h", "2h")
	ctx := testCtx(t)

	v := newVault(t, credentials.VaultConfig{Addr: addr, RoleID: roleID, SecretID: secretID, AppRoleMount: mount, Prefix: prefix})
	require.NoError(t, v.Put(ctx, "svc-1", map[string]string{"api_key": plantedSecret}))
	got, err := v.Get(ctx, "svc-1")
	require.NoError(t, err)
	assert.Equal(t, plantedSecret, got["api_key"])

	// A wrong secret id: denied at start, and the secret id is not in the error or logs.
	logs := &logBuffer{}
	wrong := "PLANTED-secret-id-" + servicetest.Suffix()
	_, err = credentials.NewVault(ctx, credentials.VaultConfig{Addr: addr, RoleID: roleID, SecretID: wrong, AppRoleMount: mount, Logger: logs.logger()})
	require.ErrorIs(t, err, credentials.ErrDenied)
	assert.NotContains(t, err.Error(), wrong)
	assert.NotContains(t, logs.String(), wrong)
}

// An AppRole token that reaches its max TTL cannot be renewed any more: uvr logs in again
// and keeps working.
func TestVaultAppRoleLogsInAgainAtMaxTTL(t *testing.T) {
	root := rootClient(t)
	addr, _ := servicetest.Vault(t)
	prefix, policy := testPrefix(t, root)
	mount, roleID, secretID := enableAppRole(t, root, policy, "2s", "3s")
	logs := &logBuffer{}
	reg := prometheus.NewRegistry()
	start := time.Now()
	v := newVault(t, credentials.VaultConfig{
		Addr: addr, RoleID: roleID, SecretID: secretID, AppRoleMount: mount, Prefix: prefix,
		Logger: logs.logger(), Registerer: reg,
	})
	ctx := testCtx(t)
	require.Eventually(t, func() bool {
		return strings.Count(logs.String(), "logged in to vault with AppRole") >= 2
	}, 20*time.Second, 50*time.Millisecond, "a second login after the max TTL")
	require.Eventually(t, func() bool {
		return time.Since(start) > 4*time.Second && v.Put(ctx, "svc-1", map[string]string{"k": "v"}) == nil
	}, 15*time.Second, 100*time.Millisecond, "works past the first token's max TTL")
	assert.NotContains(t, logs.String(), secretID)
	assert.Zero(t, errorsCount(t, reg, "login"))
}

// errorsCount reads uvr_vault_request_errors_total{op}.
func errorsCount(t *testing.T, reg *prometheus.Registry, op string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != "uvr_vault_request_errors_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "op" && l.GetValue() == op {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

func gauge(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == "uvr_vault_token_expiry_timestamp_seconds" {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatal("no expiry gauge")
	return 0
}

func gatherText(t *testing.T, reg *prometheus.Registry) string {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	return fmt.Sprint(mfs)
}

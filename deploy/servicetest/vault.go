package servicetest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

var vaultOnce struct {
	sync.Once
	addr, token string
	err         error
}

// Vault returns the address and root token of the real Vault dev server:
// VAULT_ADDR and VAULT_TOKEN when both are set (`make test` exports them), else
// the one `deploy/vault start` runs (it builds Vault first if the cache lacks
// it, which takes minutes once). A Vault that cannot be had fails the test.
//
// The dev server is shared by every test: give each test its own KV path
// prefix (and its own auth mount paths) with Suffix.
func Vault(t testing.TB) (addr, token string) {
	t.Helper()
	if a, tok := os.Getenv("VAULT_ADDR"), os.Getenv("VAULT_TOKEN"); a != "" && tok != "" {
		return a, tok
	}
	vaultOnce.Do(func() {
		script := filepath.Join(Root(), "deploy", "vault")
		start := exec.Command(script, "start")
		start.Dir = Root()
		if out, err := start.CombinedOutput(); err != nil {
			vaultOnce.err = fmt.Errorf("deploy/vault start: %w\n%s", err, out)
			return
		}
		env := exec.Command(script, "env")
		env.Dir = Root()
		out, err := env.Output()
		if err != nil {
			vaultOnce.err = fmt.Errorf("deploy/vault env: %w", err)
			return
		}
		vars := parseExports(string(out))
		vaultOnce.addr, vaultOnce.token = vars["VAULT_ADDR"], vars["VAULT_TOKEN"]
		if vaultOnce.addr == "" || vaultOnce.token == "" {
			vaultOnce.err = fmt.Errorf("deploy/vault env printed no VAULT_ADDR/VAULT_TOKEN:\n%s", out)
		}
	})
	if vaultOnce.err != nil {
		t.Fatalf("vault is not available: %v", vaultOnce.err)
	}
	return vaultOnce.addr, vaultOnce.token
}

// parseExports reads `export NAME=VALUE` lines (VALUE as bash's printf %q
// writes a plain word, or double-quoted).
func parseExports(s string) map[string]string {
	vars := map[string]string{}
	for _, line := range strings.Split(s, "\n") {
		name, value, ok := strings.Cut(strings.TrimPrefix(strings.TrimSpace(line), "export "), "=")
		if !ok {
			continue
		}
		if u, err := strconv.Unquote(value); err == nil {
			value = u
		}
		vars[name] = value
	}
	return vars
}

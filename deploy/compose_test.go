// Package deploy_test checks the deployment files: the compose file is valid
// for docker-compose and holds every service uvr needs.
package deploy_test

import (
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/deploy/servicetest"
)

// deploy/check-compose installs docker-compose when missing, validates
// docker-compose.yml offline and checks its service list.
func TestComposeFileIsValidAndComplete(t *testing.T) {
	cmd := exec.Command(filepath.Join(servicetest.Root(), "deploy", "check-compose"))
	cmd.Dir = servicetest.Root()
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, string(out))
	for _, svc := range []string{"kafka", "clickhouse", "vault", "prometheus", "grafana", "uvr-api", "uvr-projector", "uvr-connect"} {
		require.Contains(t, string(out), svc)
	}
}

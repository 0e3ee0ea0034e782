// Package deploy_test checks the deployment files: the compose file is valid
// for docker-compose and holds every service uvr needs.
package deploy_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/uvrhq/uvr/connectors/credentials"
	"github.com/uvrhq/uvr/deploy/servicetest"
)

// deploy/check-compose installs docker-compose when missing, validates
// docker-compose.yml offline and checks its service list.
func TestComposeFileIsValidAndComplete(t *testing.T) {
	cmd := exec.Command(filepath.Join(servicetest.Root(), "deploy", "check-compose"))
	cmd.Dir = servicetest.Root()
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, string(out))
	for _, svc := range []string{"kafka-1", "kafka-2", "kafka-3", "clickhouse", "vault", "prometheus", "grafana", "uvr-api", "uvr-projector", "uvr-connect"} {
		require.Contains(t, string(out), svc)
	}
}

// The compose Kafka is a cluster of three KRaft nodes, each a broker and a controller voter,
// with three replicas of every topic and two in sync; the uvr services bootstrap from all
// three, wait for each to be healthy, and create their topics with RF 3 / min ISR 2. Read
// from `docker-compose config`, which resolves the anchors and the defaults.
func TestComposeKafkaIsAThreeNodeCluster(t *testing.T) {
	// TestComposeFileIsValidAndComplete's check-compose installs docker-compose when missing.
	out, err := exec.Command(filepath.Join(servicetest.Root(), "deploy", "check-compose")).CombinedOutput()
	require.NoError(t, err, string(out))
	empty := filepath.Join(t.TempDir(), "empty.env")
	require.NoError(t, os.WriteFile(empty, nil, 0o600))
	cmd := exec.Command("docker-compose", "--project-directory", servicetest.Root(), "--env-file", empty,
		"-f", filepath.Join(servicetest.Root(), "docker-compose.yml"), "config")
	resolved, err := cmd.Output()
	require.NoError(t, err)
	var compose struct {
		Services map[string]struct {
			Image       string            `yaml:"image"`
			Hostname    string            `yaml:"hostname"`
			Environment map[string]string `yaml:"environment"`
			DependsOn   map[string]struct {
				Condition string `yaml:"condition"`
			} `yaml:"depends_on"`
		} `yaml:"services"`
	}
	require.NoError(t, yaml.Unmarshal(resolved, &compose))

	voters := map[string]string{} // node id -> host:port of its controller
	var brokers []string
	clusterIDs := map[string]bool{}
	for name, s := range compose.Services {
		if !strings.HasPrefix(s.Image, "apache/kafka:") {
			continue
		}
		env := s.Environment
		assert.Equal(t, "broker,controller", env["KAFKA_PROCESS_ROLES"], name)
		for setting, want := range map[string]string{
			"KAFKA_DEFAULT_REPLICATION_FACTOR":               "3",
			"KAFKA_MIN_INSYNC_REPLICAS":                      "2",
			"KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR":         "3",
			"KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "3",
			"KAFKA_TRANSACTION_STATE_LOG_MIN_ISR":            "2",
			"KAFKA_UNCLEAN_LEADER_ELECTION_ENABLE":           "false",
		} {
			assert.Equal(t, want, env[setting], "%s %s", name, setting)
		}
		clusterIDs[env["CLUSTER_ID"]] = true
		require.NotContains(t, voters, env["KAFKA_NODE_ID"], "%s: node id %s taken twice", name, env["KAFKA_NODE_ID"])
		voters[env["KAFKA_NODE_ID"]] = s.Hostname + ":9093"
		var plaintext string
		for _, l := range strings.Split(env["KAFKA_ADVERTISED_LISTENERS"], ",") {
			if rest, ok := strings.CutPrefix(l, "PLAINTEXT://"); ok {
				plaintext = rest
			}
		}
		require.Equal(t, s.Hostname+":9092", plaintext, "%s advertises its PLAINTEXT listener under its hostname", name)
		brokers = append(brokers, plaintext)
	}
	require.Len(t, voters, 3, "three Kafka nodes")
	require.Len(t, clusterIDs, 1, "one CLUSTER_ID for every node")

	var want []string
	for id, addr := range voters {
		want = append(want, id+"@"+addr)
	}
	for name, s := range compose.Services {
		if strings.HasPrefix(s.Image, "apache/kafka:") {
			assert.ElementsMatch(t, want, strings.Split(s.Environment["KAFKA_CONTROLLER_QUORUM_VOTERS"], ","), "%s: every node is a voter", name)
			continue
		}
		if !strings.HasPrefix(name, "uvr-") {
			continue
		}
		env := s.Environment
		assert.ElementsMatch(t, brokers, strings.Split(env["UVR_KAFKA_BROKERS"], ","), "%s bootstraps from every broker", name)
		assert.Equal(t, "3", env["UVR_KAFKA_REPLICATION_FACTOR"], name)
		assert.Equal(t, "2", env["UVR_KAFKA_MIN_INSYNC_REPLICAS"], name)
		for _, b := range brokers {
			node := strings.TrimSuffix(b, ":9092")
			assert.Equal(t, "service_healthy", s.DependsOn[node].Condition, "%s waits for %s", name, node)
		}
	}
}

// deploy/compose/vault-init.sh, compose's Vault init and unseal, run against a
// real Vault server with file storage (not dev mode): it initialises and
// unseals Vault and gives uvr an AppRole that may use its KV prefix and the
// transit key; after a restart (sealed again) a second run unseals it, and
// the same AppRole still logs in.
func TestComposeVaultInitUnsealsAndConfigures(t *testing.T) {
	install := exec.Command(filepath.Join(servicetest.Root(), "deploy", "vault"), "install")
	out, err := install.CombinedOutput()
	require.NoError(t, err, string(out))
	binDir := os.Getenv("UVR_VAULT_BIN_DIR")
	if binDir == "" {
		home, err := os.UserHomeDir()
		require.NoError(t, err)
		binDir = filepath.Join(home, ".cache", "uvr", "vault-1.14.2")
	}
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	config := filepath.Join(dir, "vault.hcl")
	require.NoError(t, os.WriteFile(config, []byte(fmt.Sprintf(`
storage "file" { path = %q }
listener "tcp" {
  address     = %q
  tls_disable = true
}
disable_mlock = true
api_addr      = "http://%s"
`, filepath.Join(dir, "data"), addr, addr)), 0o600))

	startVault := func() *exec.Cmd {
		cmd := exec.Command(filepath.Join(binDir, "vault"), "server", "-config="+config)
		cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
		require.NoError(t, cmd.Start())
		t.Cleanup(func() { _ = cmd.Process.Kill(); _, _ = cmd.Process.Wait() })
		return cmd
	}
	env := append(os.Environ(), "VAULT_ADDR=http://"+addr, "VAULT_TOKEN=", "PATH="+binDir+":"+os.Getenv("PATH"),
		"VAULT_INIT_KEYS="+filepath.Join(dir, "keys"), "VAULT_INIT_APPROLE="+filepath.Join(dir, "approle"), fmt.Sprintf("UVR_UID=%d", os.Getuid()))
	initVault := func() string {
		cmd := exec.Command("sh", filepath.Join(servicetest.Root(), "deploy", "compose", "vault-init.sh"), "once")
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, string(out))
		return string(out)
	}
	// uvr's view: the AppRole from the files, its KV prefix and its transit key.
	asUvr := func() {
		read := func(name string) string {
			b, err := os.ReadFile(filepath.Join(dir, "approle", name))
			require.NoError(t, err)
			info, err := os.Stat(filepath.Join(dir, "approle", name))
			require.NoError(t, err)
			assert.Equal(t, os.FileMode(0o400), info.Mode().Perm())
			return strings.TrimSpace(string(b))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		v, err := credentials.NewVault(ctx, credentials.VaultConfig{Addr: "http://" + addr, RoleID: read("role_id"), SecretID: read("secret_id")})
		require.NoError(t, err)
		defer v.Close()
		require.NoError(t, v.Put(ctx, "svc-1", map[string]string{"api_key": "k"}))
		got, err := v.Get(ctx, "svc-1")
		require.NoError(t, err)
		assert.Equal(t, map[string]string{"api_key": "k"}, got)
		tr, err := v.Transit(credentials.TransitConfig{})
		require.NoError(t, err)
		sealed, err := tr.Seal(ctx, []byte("secret"))
		require.NoError(t, err)
		plain, err := tr.Open(ctx, sealed)
		require.NoError(t, err)
		assert.Equal(t, "secret", string(plain))
	}

	server := startVault()
	assert.Contains(t, initVault(), "initialising Vault")
	asUvr()

	// A restart: file storage keeps the data, and Vault starts sealed.
	require.NoError(t, server.Process.Kill())
	_, _ = server.Process.Wait()
	startVault()
	out2 := initVault()
	assert.Contains(t, out2, "unsealing Vault")
	assert.NotContains(t, out2, "initialising", "initialised once")
	asUvr()
}

package main

import (
	"bytes"
	"context"
	"testing"

	"github.com/spf13/pflag"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// runCLI runs the command tree in-process with the given environment.
func runCLI(t *testing.T, env map[string]string, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	root := newRootCommand(&out, &errOut, func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	})
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	return out.String() + errOut.String(), err
}

func TestCLIHelpDocumentsEnvironment(t *testing.T) {
	out, err := runCLI(t, nil, "--help")
	require.NoError(t, err)
	for _, want := range []string{"run", "api", "project", "connect", "import", "migrate", "demo", "bench", "reconcile", "version",
		"UVR_KAFKA_BROKERS", "UVR_CLICKHOUSE_ADDR", "UVR_HTTP_ADDR", "UVR_BATCH_SIZE", "UVR_FLUSH_INTERVAL", "ENABLE_SCHEDULER", "VAULT_ADDR", "UVR_ENCRYPTION_KEY", "UVR_AIRBYTE_URL"} {
		assert.Contains(t, out, want)
	}
}

func TestCLIVersion(t *testing.T) {
	out, err := runCLI(t, nil, "version")
	require.NoError(t, err)
	assert.Equal(t, "uvr dev\n", out)
}

func TestCLIErrorsNameWhatAndWhere(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want []string
	}{
		{"bad env value", map[string]string{"UVR_BATCH_SIZE": "lots"}, []string{"migrate"}, []string{"UVR_BATCH_SIZE", `"lots"`}},
		{"bad duration", map[string]string{"UVR_FLUSH_INTERVAL": "soon"}, []string{"migrate"}, []string{"UVR_FLUSH_INTERVAL"}},
		{"every config problem at once", nil, []string{"migrate", "--log-level", "loud", "--currency", "usd", "--batch-size", "0"},
			[]string{"--log-level", "--currency", "--batch-size"}},
		{"api needs brokers", nil, []string{"api"}, []string{"no Kafka brokers configured", "UVR_KAFKA_BROKERS"}},
		{"unknown flag", nil, []string{"run", "--no-such-flag"}, []string{"unknown flag: --no-such-flag"}},
		{"demo url", nil, []string{"demo", "--url", "localhost:8000"}, []string{`"localhost:8000" must start with http://`}},
		{"reconcile needs a day", nil, []string{"reconcile"}, []string{`required flag(s) "day" not set`}},
		{"reconcile day format", nil, []string{"reconcile", "--day", "27/11/2026"}, []string{"--day", "want YYYY-MM-DD"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := runCLI(t, tt.env, tt.args...)
			require.Error(t, err)
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestApplyEnvFlagBeatsEnvironment(t *testing.T) {
	cfg := defaultConfig()
	fs := pflag.NewFlagSet("uvr", pflag.ContinueOnError)
	cfg.bind(fs)
	require.NoError(t, fs.Parse([]string{"--http-addr", "127.0.0.1:2222"}))
	env := map[string]string{"UVR_HTTP_ADDR": "127.0.0.1:1111", "UVR_CLICKHOUSE_DATABASE": "from_env", "UVR_KAFKA_BROKERS": "a:1,b:2"}
	require.NoError(t, applyEnv(fs, func(k string) (string, bool) { v, ok := env[k]; return v, ok }))
	assert.Equal(t, "127.0.0.1:2222", cfg.HTTPAddr, "a flag on the command line wins")
	assert.Equal(t, "from_env", cfg.ClickHouseDatabase)
	assert.Equal(t, []string{"a:1", "b:2"}, cfg.KafkaBrokers)
	assert.Equal(t, defaultConfig().BatchSize, cfg.BatchSize, "unset stays at its default")
}

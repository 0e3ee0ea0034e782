package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/connectors/catalog"
	"github.com/uvrhq/uvr/deploy/servicetest"
)

// The size of the conformance run: examples per operation and phase, and the
// seed that makes a run repeatable. UVR_SCHEMATHESIS_EXAMPLES and
// UVR_SCHEMATHESIS_SEED override them for a longer or another search.
const (
	conformanceExamples = 30
	conformanceSeed     = 20261207
	// conformanceTimeout ends a run that hangs; a normal run takes a few
	// minutes on 2 cores (README, Testing).
	conformanceTimeout = 10 * time.Minute
)

// TestAPIConformsToItsDocument runs schemathesis (pinned by
// deploy/schemathesis) against a real `uvr run` with an admin's token and
// every check on: requests generated from api/openapi.yaml, valid and
// invalid, each answer checked against the document. A server error, an
// answer the document does not describe, a request the document calls valid
// that is refused (or one it calls invalid that is accepted), a method
// without 405 and Allow: any of them fails the test with the first failing
// case (the check, the request to reproduce it and the response).
//
// testdata/schemathesis holds the run's settings (schemathesis.toml) and the
// rules OpenAPI 3.0 cannot state, which the document states in words
// (uvr_hooks.py).
func TestAPIConformsToItsDocument(t *testing.T) {
	t.Parallel()
	st := schemathesisCommand(t) // installed first: a failed install fails fast
	cfg := testConfig(t)
	node := newUVRNode(t, buildUVR(t), strings.Join(cfg.KafkaBrokers, ","), cfg.ClickHouseAddr)
	// A database, topics and groups of its own: what the run writes (users,
	// services, FX rates, rate cards, events) stays in them.
	node.env = append(node.env, configEnv(cfg)...)
	node.env = append(node.env, "UVR_CONNECTOR_PREFIX="+cfg.ConnectorPrefix)
	node.start(t)
	token := login(t, node.url, testAdminEmail, testAdminPassword)

	examples := envInt(t, "UVR_SCHEMATHESIS_EXAMPLES", conformanceExamples)
	seed := envInt(t, "UVR_SCHEMATHESIS_SEED", conformanceSeed)
	testdata, err := filepath.Abs(filepath.Join("testdata", "schemathesis"))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), conformanceTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, st,
		"--config-file", filepath.Join(testdata, "schemathesis.toml"), "--no-color",
		"run", node.url+"/api/openapi.json",
		"--header", "Authorization: Bearer "+token,
		"--max-examples", strconv.Itoa(examples),
		"--seed", strconv.Itoa(seed),
		"--report", "junit", "--report-dir", t.TempDir())
	cmd.Env = append(os.Environ(), "SCHEMATHESIS_HOOKS=uvr_hooks", "PYTHONPATH="+testdata, "NO_COLOR=1",
		"UVR_SERVICE_TYPES="+serviceTypesFile(t), "UVR_CONFORMANCE_USER_ID="+userID(t, node.url, token))
	cmd.Dir = t.TempDir()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	served := requestsServed(t, node.url)
	start := time.Now()
	runErr := cmd.Run()
	elapsed := time.Since(start).Round(time.Second)
	served = requestsServed(t, node.url) - served
	t.Logf("schemathesis: %d examples per operation, seed %d, %s; uvr answered %d requests; %s",
		examples, seed, elapsed, served, summaryOf(out.String()))
	if runErr != nil {
		t.Fatalf("the API does not conform to its document (schemathesis %v after %s):\n%s\n\nsummary:\n%s",
			runErr, elapsed, firstFailure(out.String()), tail(out.String(), 25))
	}
}

var schemathesisInstall struct {
	once sync.Once
	st   string
	err  error
}

// schemathesisCommand returns the path of `st`, installed by
// `deploy/schemathesis install` at its pinned version once per test binary.
func schemathesisCommand(t *testing.T) string {
	t.Helper()
	schemathesisInstall.once.Do(func() {
		var stdout, stderr bytes.Buffer
		cmd := exec.Command(filepath.Join(servicetest.Root(), "deploy", "schemathesis"), "install")
		cmd.Dir = servicetest.Root()
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			schemathesisInstall.err = fmt.Errorf("deploy/schemathesis install: %w\n%s", err, stderr.String())
			return
		}
		schemathesisInstall.st = strings.TrimSpace(stdout.String())
	})
	if schemathesisInstall.err != nil {
		t.Fatalf("schemathesis is not available: %v", schemathesisInstall.err)
	}
	return schemathesisInstall.st
}

// serviceTypesFile writes the service catalog (connectors/catalog) for the
// hooks: the credential fields each type requires.
func serviceTypesFile(t *testing.T) string {
	t.Helper()
	type serviceType struct {
		Name     string   `json:"name"`
		Category string   `json:"category"`
		Required []string `json:"required"`
	}
	var types []serviceType
	for _, typ := range catalog.Builtin() {
		types = append(types, serviceType{typ.Name, string(typ.Category), typ.Required})
	}
	b, err := json.Marshal(types)
	require.NoError(t, err)
	file := filepath.Join(t.TempDir(), "service-types.json")
	require.NoError(t, os.WriteFile(file, b, 0o600))
	return file
}

// userID is the id of the user token belongs to (GET /api/auth/me).
func userID(t *testing.T, base, token string) string {
	t.Helper()
	r := call(t, http.MethodGet, base+"/api/auth/me", "", "", bearer(token))
	require.Equal(t, http.StatusOK, r.status, r.body)
	var me struct {
		ID string `json:"id"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.body), &me))
	require.NotEmpty(t, me.ID)
	return me.ID
}

func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	require.NoError(t, err, "%s must be an integer, got %q", name, v)
	return n
}

// requestsServed sums uvr_http_requests_total from the server's /metrics.
func requestsServed(t *testing.T, base string) int {
	t.Helper()
	resp, err := plainClient.Get(base + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	total := 0.0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "uvr_http_requests_total{") {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		require.NoError(t, err, line)
		total += v
	}
	require.NoError(t, sc.Err())
	_, _ = io.Copy(io.Discard, resp.Body)
	return int(total)
}

// firstFailure is the first case of schemathesis' FAILURES section: the
// operation, the check that failed, the response and the curl command that
// reproduces it. Without that section (an error, a warning that fails the
// run), the whole output's end.
func firstFailure(out string) string {
	lines := strings.Split(out, "\n")
	from := -1
	for i, l := range lines {
		if strings.Contains(l, " FAILURES ") && strings.HasPrefix(l, "===") {
			from = i + 1
			break
		}
	}
	if from < 0 {
		return tail(out, 80)
	}
	to := len(lines)
	for i := from + 1; i < len(lines); i++ {
		if strings.HasPrefix(lines[i], "___") || strings.HasPrefix(lines[i], "===") {
			to = i
			break
		}
	}
	return strings.Join(lines[from:to], "\n")
}

// summaryOf is schemathesis' last line: failures, warnings and time.
func summaryOf(out string) string {
	return strings.Trim(strings.TrimSpace(tail(out, 1)), "= ")
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/deploy/servicetest"
)

// outageDuration is how long ClickHouse stays down while events arrive.
const outageDuration = 60 * time.Second

// ClickHouse is stopped for 60 s while events keep arriving: every POST is
// still accepted (Kafka has them), /api/health names ClickHouse as down, the
// projector retries, and once ClickHouse is back the totals are exact.
func TestClickHouseOutageLosesNothing(t *testing.T) {
	t.Parallel()
	ch := startPrivateClickHouse(t)
	cfg := testConfig(t)
	cfg.ClickHouseAddr = ch.addr
	cfg.ClickHouseDatabase = "uvr_outage"
	m := startMain(t, cfg, Roles{API: true, Projector: true})

	end := time.Now().UTC()
	events := mixedEvents(4, 6000, end, "outage")
	l := newLedger()
	for _, ev := range events {
		l.add(ev)
	}
	start, stop := dateRange(end)
	before, during := events[:1000], events[1000:]
	postAll(t, m.URL(), before, 500)
	require.Eventually(t, func() bool { return healthStatus(t, m.URL()) == http.StatusOK }, 30*time.Second, 100*time.Millisecond)

	ch.stop(t)
	require.Eventually(t, func() bool {
		return healthStatus(t, m.URL()) == http.StatusServiceUnavailable
	}, 30*time.Second, 100*time.Millisecond, "/api/health never reported clickhouse down")
	resp := health(t, m.URL())
	assert.Equal(t, "down", resp.Checks["clickhouse"])
	assert.Equal(t, "ok", resp.Checks["kafka"])
	assert.Contains(t, resp.Detail, "clickhouse")

	// Keep posting for the whole outage; each batch must be accepted.
	// A ticker spreads the load over the outage window (load shape, not
	// synchronisation).
	chunk := len(during) / 10
	tick := time.NewTicker(outageDuration / 10)
	defer tick.Stop()
	for i := 0; i < 10; i++ {
		postAll(t, m.URL(), during[i*chunk:(i+1)*chunk], chunk)
		<-tick.C
	}
	assert.Equal(t, http.StatusServiceUnavailable, healthStatus(t, m.URL()), "still down at the end of the outage")

	ch.start(t)
	requireDashboardEquals(t, m.URL(), l, start, stop, 3*time.Minute)
	assert.Equal(t, http.StatusOK, healthStatus(t, m.URL()))
}

type healthResponse struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks"`
	Detail string            `json:"detail"`
}

func health(t *testing.T, baseURL string) healthResponse {
	t.Helper()
	resp, err := http.Get(baseURL + "/api/health")
	require.NoError(t, err)
	defer resp.Body.Close()
	var h healthResponse
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&h))
	return h
}

func healthStatus(t *testing.T, baseURL string) int {
	t.Helper()
	resp, err := http.Get(baseURL + "/api/health")
	require.NoError(t, err)
	resp.Body.Close()
	return resp.StatusCode
}

// privateService is a ClickHouse or Kafka server of this test alone, started
// by deploy/services with its own directory and ports, so stopping or killing
// it disturbs no other test.
type privateService struct {
	name    string // the deploy/services name: clickhouse or kafka
	addr    string // what clients dial
	httpURL string // ClickHouse's HTTP interface
	dir     string
	env     []string
}

// startPrivateClickHouse starts one; env adds to deploy/services'
// environment (NAME=VALUE).
func startPrivateClickHouse(t *testing.T, env ...string) *privateService {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "clickhouse")
	tcp, httpPort := freePort(t), freePort(t)
	return startPrivate(t, &privateService{name: "clickhouse", addr: fmt.Sprintf("127.0.0.1:%d", tcp),
		httpURL: fmt.Sprintf("http://127.0.0.1:%d", httpPort), dir: dir,
		env: append([]string{"UVR_CLICKHOUSE_DIR=" + dir, fmt.Sprintf("UVR_CLICKHOUSE_TCP_PORT=%d", tcp), fmt.Sprintf("UVR_CLICKHOUSE_HTTP_PORT=%d", httpPort)}, env...)})
}

// startPrivateKafka starts a one-node KRaft broker on the jars of the shared
// one (UVR_KAFKA_LIBS, else the repo's var/kafka/libs), so nothing is
// downloaded again; env adds to deploy/services' environment (NAME=VALUE).
func startPrivateKafka(t *testing.T, env ...string) *privateService {
	t.Helper()
	libs := os.Getenv("UVR_KAFKA_LIBS")
	if libs == "" {
		servicetest.KafkaBrokers(t) // installs the shared broker's jars when missing
		libs = filepath.Join(servicetest.Root(), "var", "kafka", "libs")
	}
	dir := filepath.Join(t.TempDir(), "kafka")
	port, controller := freePort(t), freePort(t)
	return startPrivate(t, &privateService{name: "kafka", addr: fmt.Sprintf("127.0.0.1:%d", port), dir: dir,
		env: append([]string{"UVR_KAFKA_DIR=" + dir, "UVR_KAFKA_LIBS=" + libs, fmt.Sprintf("UVR_KAFKA_PORT=%d", port), fmt.Sprintf("UVR_KAFKA_CONTROLLER_PORT=%d", controller)}, env...)})
}

func startPrivate(t *testing.T, s *privateService) *privateService {
	t.Helper()
	s.env = append(os.Environ(), s.env...)
	s.start(t)
	t.Cleanup(func() { s.stop(t) })
	return s
}

func (s *privateService) run(t *testing.T, action string) {
	t.Helper()
	cmd := exec.Command(filepath.Join(servicetest.Root(), "deploy", "services"), s.name, action)
	cmd.Env = s.env
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "deploy/services %s %s: %s", s.name, action, out)
}

func (s *privateService) start(t *testing.T) { s.run(t, "start") }
func (s *privateService) stop(t *testing.T)  { s.run(t, "stop") }

// kill9 sends SIGKILL to the server — no shutdown, no flush — and waits
// until it is gone.
func (s *privateService) kill9(t *testing.T) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.dir, s.name+".pid"))
	require.NoError(t, err)
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	require.NoError(t, err)
	require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
	require.Eventually(t, func() bool { return gone(pid) }, 30*time.Second, 20*time.Millisecond, "%s (pid %d) survived SIGKILL", s.name, pid)
}

// gone reports whether pid has exited: it no longer exists, or it is a
// zombie waiting for init to reap it whose other threads are gone too (the
// leader of a JVM turns zombie while its threads still exit, its sockets
// open).
func gone(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// pid (comm) state …: comm may hold spaces and parentheses.
	state := bytes.TrimSpace(b[bytes.LastIndexByte(b, ')')+1:])
	if len(state) == 0 || state[0] != 'Z' {
		return false
	}
	threads, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	return err != nil || len(threads) <= 1
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/deploy/servicetest"
)

// outageDuration is how long ClickHouse stays down while events arrive.
const outageDuration = 30 * time.Second

// ClickHouse is stopped for 30 s while events keep arriving: every POST is
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

// privateClickHouse is a ClickHouse server of this test alone, started by
// deploy/services with its own directory and ports, so stopping it disturbs
// no other test. env adds to deploy/services' environment (NAME=VALUE).
type privateClickHouse struct {
	addr    string // native protocol
	httpURL string
	env     []string
}

func startPrivateClickHouse(t *testing.T, env ...string) *privateClickHouse {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "clickhouse")
	tcp, httpPort := freePort(t), freePort(t)
	ch := &privateClickHouse{
		addr:    fmt.Sprintf("127.0.0.1:%d", tcp),
		httpURL: fmt.Sprintf("http://127.0.0.1:%d", httpPort),
		env: append(append(os.Environ(), "UVR_CLICKHOUSE_DIR="+dir,
			fmt.Sprintf("UVR_CLICKHOUSE_TCP_PORT=%d", tcp), fmt.Sprintf("UVR_CLICKHOUSE_HTTP_PORT=%d", httpPort)), env...),
	}
	ch.start(t)
	t.Cleanup(func() { ch.stop(t) })
	return ch
}

func (c *privateClickHouse) run(t *testing.T, action string) {
	t.Helper()
	cmd := exec.Command(filepath.Join(servicetest.Root(), "deploy", "services"), "clickhouse", action)
	cmd.Env = c.env
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "deploy/services clickhouse %s: %s", action, out)
}

func (c *privateClickHouse) start(t *testing.T) { c.run(t, "start") }
func (c *privateClickHouse) stop(t *testing.T)  { c.run(t, "stop") }

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

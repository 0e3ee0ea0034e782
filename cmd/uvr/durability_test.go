package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/connectors/ingest"
	"github.com/uvrhq/uvr/deploy/servicetest"
	"github.com/uvrhq/uvr/pipeline/event"
	"github.com/uvrhq/uvr/projections/aggregates"
	"github.com/uvrhq/uvr/projections/chstore"
)

// durabilityEvents is how many events TestSingleNodeKill9LosesNothing posts
// by default, sized for `make test` on 2 shared cores; the 200,000 is
// a soak: UVR_TEST_DURABILITY_EVENTS=200000.
const durabilityEvents = 20_000

// One node as `make run` runs it — `uvr run` on a real Kafka and ClickHouse,
// each a process of this test alone — loses nothing acknowledged to kill -9.
// A known ledger of mixed events (usage, revenue, refunds, credit notes,
// corrections, voids, duplicates, shuffled) is posted in batches with an API
// key while, at random points, SIGKILL hits uvr and the Kafka broker
// together, then ClickHouse, then uvr again; each is restarted with the same
// command. The client retries every batch until it is acknowledged (a batch
// that was not may or may not be in the log: identities dedupe it). At the
// end /api/dashboard and /api/customers equal the ledger to the last digit,
// and the users, the API key and the service created before the kills are
// all still there.
func TestSingleNodeKill9LosesNothing(t *testing.T) {
	t.Parallel()
	events := durabilityEvents
	if v := os.Getenv("UVR_TEST_DURABILITY_EVENTS"); v != "" {
		n, err := strconv.Atoi(v)
		require.NoError(t, err, "UVR_TEST_DURABILITY_EVENTS")
		events = n
	}
	kafkaSvc := startPrivateKafka(t)
	chSvc := startPrivateClickHouse(t)
	node := newUVRNode(t, buildUVR(t), kafkaSvc.addr, chSvc.addr)
	// The service below is a stripe-mock on loopback: the operator's opt-in.
	node.env = append(node.env, "UVR_CONNECTOR_ALLOW_PRIVATE_HOSTS=127.0.0.1")
	node.start(t)
	base := node.url

	// What must survive: a second user, an API key, a service.
	admin := login(t, base, testAdminEmail, testAdminPassword)
	r := call(t, http.MethodPost, base+"/api/auth/register", "application/json",
		`{"email":"viewer@uvr.test","password":"password-of-viewer","role":"viewer"}`, bearer(admin))
	require.Equal(t, http.StatusCreated, r.status, r.body)
	r = call(t, http.MethodPost, base+"/api/auth/api-keys", "application/json", `{"name":"ingest","role":"admin"}`, bearer(admin))
	require.Equal(t, http.StatusCreated, r.status, r.body)
	var key struct{ ID, Key string }
	require.NoError(t, json.Unmarshal([]byte(r.body), &key))
	r = call(t, http.MethodPost, base+"/api/services", "application/json",
		`{"service_type":"stripe","service_name":"Stripe (durability)","credentials":{"api_key":"sk_test_durability","base_url":"`+servicetest.StripeMock(t)+`"}}`, bearer(admin))
	require.Equal(t, http.StatusCreated, r.status, r.body)

	end := time.Now().UTC()
	// ledgerEvents posts about 1.6 events per identity.
	posted, final := ledgerEvents(11, events*10/16, end)
	require.GreaterOrEqual(t, len(posted), events*9/10)
	l := newLedger()
	for _, ev := range final {
		l.add(ev)
	}
	t.Logf("posting %d events (%d counted at the end)", len(posted), len(final))

	// The kills, each at a random point of the stream.
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0))
	at := func(lo, hi int) int64 { return int64(len(posted) * (lo + rng.IntN(hi-lo)) / 100) }
	kills := []struct {
		after int64
		what  string
		kill  func()
	}{
		{at(10, 30), "uvr run and the Kafka broker", func() {
			node.kill9(t)
			kafkaSvc.kill9(t)
			kafkaSvc.start(t)
			node.start(t)
		}},
		{at(40, 60), "ClickHouse", func() {
			chSvc.kill9(t)
			chSvc.start(t)
		}},
		{at(70, 90), "uvr run", func() {
			node.kill9(t)
			node.start(t)
		}},
	}
	// The client posts from a goroutine of its own while this one kills. It is
	// the project's own ingest client (what uvr demo and uvr import use): it
	// retries a 5xx or a network error with backoff until the batch is
	// acknowledged, as the client of a restarting node does, and a refusal
	// (4xx) is final — an error here, since every batch is valid.
	const batch = 1000
	client, err := ingest.New(ingest.Config{URL: base, Token: key.Key, BatchSize: batch, Retries: math.MaxInt32})
	require.NoError(t, err)
	var acked atomic.Int64
	done := make(chan error, 1)
	started := time.Now()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		for from := 0; from < len(posted); from += batch {
			part := posted[from:min(from+batch, len(posted))]
			if err := client.Send(ctx, part); err != nil {
				done <- fmt.Errorf("events %d-%d: %w", from, from+len(part)-1, err)
				return
			}
			acked.Add(int64(len(part)))
		}
		done <- nil
	}()
	for _, k := range kills {
		require.Eventually(t, func() bool { return acked.Load() >= k.after || len(done) > 0 },
			10*time.Minute, 10*time.Millisecond, "the client never reached %d acknowledged events", k.after)
		killedAt := time.Now()
		k.kill()
		t.Logf("kill -9 of %s after %d acknowledged events; back in %s", k.what, acked.Load(), time.Since(killedAt).Round(time.Millisecond))
	}
	require.NoError(t, <-done)
	t.Logf("every batch acknowledged in %s", time.Since(started).Round(time.Second))

	// Every acknowledged event, exactly once.
	conn, err := chstore.Open(t.Context(), chstore.Config{Addr: []string{chSvc.addr}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	waitCaughtUp(t, []string{kafkaSvc.addr}, defaultConfig().ConsumerGroup, defaultConfig().EventsTopic, 10*time.Minute)
	waitAggregated(t, conn, 5*time.Minute)
	start, stop := end.AddDate(0, 0, -61), end
	if !assert.Empty(t, l.mismatch(getDashboard(t, base, start.Format(time.DateOnly), stop.Format(time.DateOnly))), "/api/dashboard") {
		// Which layer counts differently: the raw projection, its by-day
		// copy, or the daily aggregates recomputed from it.
		logLayers(t, conn, l)
	}
	byCustomer := buildRevenueLedger(final, "cash", "USD", nil, nil, start, stop)
	var cl struct {
		Customers []struct {
			ID            string
			Revenue, Cost decimal.Decimal
		}
	}
	getJSON(t, base+"/api/customers?"+url.Values{"start_date": {start.Format(time.DateOnly)}, "end_date": {stop.Format(time.DateOnly)},
		"basis": {"cash"}, "limit": {"1000"}}.Encode(), &cl)
	custRev, custCost := map[string]decimal.Decimal{}, map[string]decimal.Decimal{}
	for _, c := range cl.Customers {
		custRev[c.ID], custCost[c.ID] = c.Revenue, c.Cost
	}
	assert.Equal(t, nonZero(byCustomer.customerRevenue), nonZero(custRev), "/api/customers revenue")
	assert.Equal(t, nonZero(byCustomer.customerCost), nonZero(custCost), "/api/customers cost")

	// The state topics kept the users, the key and the service.
	viewer := login(t, base, "viewer@uvr.test", "password-of-viewer")
	assert.Equal(t, http.StatusOK, call(t, http.MethodGet, base+"/api/auth/me", "", "", bearer(viewer)).status)
	keys := call(t, http.MethodGet, base+"/api/auth/api-keys", "", "", http.Header{"X-Api-Key": {key.Key}})
	require.Equal(t, http.StatusOK, keys.status, keys.body)
	assert.Contains(t, keys.body, key.ID)
	services := call(t, http.MethodGet, base+"/api/services", "", "", bearer(admin))
	require.Equal(t, http.StatusOK, services.status, services.body)
	assert.Contains(t, services.body, "Stripe (durability)")
}

// logLayers logs which layer counts differently from the ledger: the raw
// projection, its by-day copies, or the daily aggregates recomputed from
// them; and every identity counted at more than one version, with all its
// stored rows, so that an intermittent double count names its event.
func logLayers(t *testing.T, conn driver.Conn, l *ledger) {
	t.Helper()
	for _, q := range []struct{ sql, want string }{
		{"SELECT toString(sum(cost)) FROM usage_events FINAL WHERE void = 0", l.cost.String()},
		{"SELECT toString(sum(cost)) FROM usage_by_day FINAL WHERE " + aggregates.CountedSQL(event.TypeUsage), l.cost.String()},
		{"SELECT toString(sum(cost)) FROM daily_usage FINAL", l.cost.String()},
		{"SELECT toString(sum(amount)) FROM revenue_events FINAL WHERE void = 0", l.revenue.String()},
		{"SELECT toString(sum(amount)) FROM revenue_by_day FINAL WHERE " + aggregates.CountedSQL(event.TypeRevenue), l.revenue.String()},
		{"SELECT toString(sum(cash)) FROM revenue_lines_by_day FINAL WHERE " + aggregates.CountedSQL(event.TypeRevenue), l.revenue.String()},
		{"SELECT toString(sum(cash)) FROM daily_revenue_lines FINAL", l.revenue.String()},
		{"SELECT toString(sum(cash)) FROM daily_revenue FINAL", l.revenue.String()},
	} {
		var total string
		require.NoError(t, conn.QueryRow(t.Context(), q.sql).Scan(&total))
		t.Logf("%s: %s (ledger %s)", q.sql, total, q.want)
	}
	for table, typ := range map[string]string{"usage_by_day": event.TypeUsage, "revenue_by_day": event.TypeRevenue, "revenue_lines_by_day": event.TypeRevenue} {
		var ids []string
		err := chstore.QueryRows(t.Context(), conn, "SELECT id FROM "+table+" FINAL WHERE "+aggregates.CountedSQL(typ)+" GROUP BY source, id HAVING uniqExact(rev) > 1 LIMIT 5", nil,
			func(scan func(...any) error) error {
				var id string
				err := scan(&id)
				ids = append(ids, id)
				return err
			})
		require.NoError(t, err)
		for _, id := range ids {
			for _, q := range []string{
				"SELECT day, rev, void, _part FROM " + table + " WHERE id = ? ORDER BY rev, day",
				"SELECT type, rev, _part FROM revisions WHERE id = ? ORDER BY rev",
				"SELECT time, rev, void, _part FROM usage_events WHERE id = ? ORDER BY rev",
				"SELECT time, rev, void, _part FROM revenue_events WHERE id = ? ORDER BY rev",
			} {
				var lines []string
				err := chstore.QueryRows(t.Context(), conn, "SELECT toString(tuple(*)) FROM ("+q+")", []any{id}, func(scan func(...any) error) error {
					var s string
					err := scan(&s)
					lines = append(lines, s)
					return err
				})
				require.NoError(t, err)
				t.Logf("%s counted at more than one version in %s; %s:\n%s", id, table, q, strings.Join(lines, "\n"))
			}
		}
	}
}

// uvrNode is `uvr run` as a child process, restarted with the same command
// and environment each time; its log goes to a file shown when the test
// fails.
type uvrNode struct {
	bin, url, log string
	env           []string
	pid           int
	exited        chan error // receives once the running process exited
}

func newUVRNode(t *testing.T, bin, kafkaAddr, chAddr string) *uvrNode {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	n := &uvrNode{bin: bin, url: "http://" + addr, log: filepath.Join(t.TempDir(), "uvr.log")}
	n.env = append(os.Environ(),
		"UVR_KAFKA_BROKERS="+kafkaAddr,
		"UVR_CLICKHOUSE_ADDR="+chAddr,
		"UVR_HTTP_ADDR="+addr,
		"UVR_METRICS_ADDR=127.0.0.1:0",
		"UVR_DATA_DIR="+t.TempDir(),
		"UVR_ADMIN_EMAIL="+testAdminEmail,
		"UVR_ADMIN_PASSWORD="+testAdminPassword,
		"UVR_FLUSH_INTERVAL=100ms",
		"ENABLE_SCHEDULER=false", // no sync may add events to the ledger
	)
	t.Cleanup(func() {
		if n.exited != nil {
			n.kill9(t)
		}
		if t.Failed() {
			if b, err := os.ReadFile(n.log); err == nil {
				t.Logf("uvr log (end):\n%s", b[max(0, len(b)-20_000):])
			}
		}
	})
	return n
}

// start runs `uvr run` in a process group of its own and waits until its API
// answers.
func (n *uvrNode) start(t *testing.T) {
	t.Helper()
	logFile, err := os.OpenFile(n.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	require.NoError(t, err)
	defer logFile.Close()
	cmd := exec.Command(n.bin, "run")
	cmd.Env = n.env
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	require.NoError(t, cmd.Start())
	n.pid, n.exited = cmd.Process.Pid, make(chan error, 1)
	go func(exited chan<- error) { exited <- cmd.Wait() }(n.exited)
	host := n.url[len("http://"):]
	require.Eventually(t, func() bool {
		if len(n.exited) > 0 {
			return true
		}
		c, err := net.DialTimeout("tcp", host, time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	}, 3*time.Minute, 100*time.Millisecond, "uvr run never listened on %s", host)
	require.Zero(t, len(n.exited), "uvr run exited during its start")
}

// kill9 sends SIGKILL to uvr's whole process group and waits for its exit.
func (n *uvrNode) kill9(t *testing.T) {
	t.Helper()
	require.NoError(t, syscall.Kill(-n.pid, syscall.SIGKILL))
	<-n.exited
	n.exited = nil
}

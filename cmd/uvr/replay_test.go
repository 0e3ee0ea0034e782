package main

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/pipeline/event"
	"github.com/uvrhq/uvr/projections/chstore"
	"github.com/uvrhq/uvr/projections/insights"
	"github.com/uvrhq/uvr/projections/insights/chinsights"
)

// replayEnv is the environment of a `uvr replay` on cfg's services.
func replayEnv(cfg Config) map[string]string {
	return map[string]string{
		"UVR_KAFKA_BROKERS":       strings.Join(cfg.KafkaBrokers, ","),
		"UVR_EVENTS_TOPIC":        cfg.EventsTopic,
		"UVR_POISON_TOPIC":        cfg.PoisonTopic,
		"UVR_TOPIC_PARTITIONS":    strconv.Itoa(cfg.TopicPartitions),
		"UVR_CONSUMER_GROUP":      cfg.ConsumerGroup,
		"UVR_CLICKHOUSE_ADDR":     cfg.ClickHouseAddr,
		"UVR_CLICKHOUSE_DATABASE": cfg.ClickHouseDatabase,
		"UVR_FLUSH_INTERVAL":      cfg.FlushInterval.String(),
		"UVR_DATA_DIR":            cfg.DataDir,
		"UVR_CONNECTOR_PREFIX":    cfg.ConnectorPrefix, // names the rate card topic
	}
}

var backupLine = regexp.MustCompile(`the old tables are in database (\w+)`)

// A live Main projects a stream with duplicates, corrections and voids; the
// projections are then corrupted (an aggregate truncated, a wrong aggregate
// row, a by-day row deleted) and an insight flag is acknowledged. `uvr replay
// --yes` runs while events keep arriving and the live projector keeps
// running. Afterwards the dashboard, customers and features equal the ledger
// (every event posted during the replay included), reconcile finds no
// difference on any day, the acknowledged flag is still acknowledged, and the
// backup database holds the old, corrupted tables.
func TestReplayRebuildsEveryProjectionAndSwapsItIn(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	m := startMain(t, cfg, Roles{API: true, Projector: true})
	env := replayEnv(cfg)
	ctx := t.Context()
	t.Cleanup(func() { dropDatabases(t, m, cfg.ClickHouseDatabase+"_backup_", cfg.ClickHouseDatabase+"_replay_") })

	end := time.Now().UTC()
	posted, final := ledgerEvents(11, 600, end)
	l := newLedger()
	for _, ev := range final {
		l.add(ev)
	}
	start, stop := end.AddDate(0, 0, -61).Format(time.DateOnly), end.Format(time.DateOnly)
	postAll(t, m.URL(), posted, 500)
	var last string
	assert.Eventually(t, func() bool {
		last = l.mismatch(getDashboard(t, m.URL(), start, stop))
		return last == ""
	}, 2*time.Minute, 200*time.Millisecond)
	require.Empty(t, last, "the live projection matches the ledger")
	waitCaughtUp(t, cfg.KafkaBrokers, cfg.ConsumerGroup, cfg.EventsTopic, projectionWait)
	waitAggregated(t, m.ch, projectionWait)

	// User state that is not in the events topic: an acknowledged flag.
	flags, err := chinsights.NewStore(m.ch)
	require.NoError(t, err)
	acked := insights.Flag{ID: "flg_replay_kept", Key: "k", Kind: insights.KindUnprofitableCustomer, Severity: insights.SeverityWarning,
		CustomerID: "cus_001", Title: "kept", Status: insights.StatusAcknowledged, FirstSeen: end, LastSeen: end, AcknowledgedAt: end, Version: 2}
	require.NoError(t, flags.Save(ctx, []insights.Flag{acked}))

	// Corrupt the live projections.
	var usageID string
	for _, ev := range final {
		if ev.Type == event.TypeUsage {
			usageID = ev.ID
			break
		}
	}
	for _, stmt := range []string{
		"TRUNCATE TABLE daily_revenue",
		fmt.Sprintf(`INSERT INTO daily_usage (day, customer_source, customer_external_id, feature, currency, quantity, events, cost, computed_at)
SELECT toDate('%s'), 'test', 'cus_drift', 'api.calls', 'USD', toDecimal128(1, 9), toUInt64(1), toDecimal128(1, 9), toUInt64(4000000000000000000)`, stop),
		"ALTER TABLE usage_by_day DELETE WHERE id = '" + usageID + "'",
	} {
		require.NoError(t, m.ch.Exec(ctx, stmt), stmt)
	}
	require.NotEmpty(t, l.mismatch(getDashboard(t, m.URL(), start, stop)), "the corruption shows")

	// Without a terminal and without --yes: refused, nothing changed.
	out, err := runCLI(t, env, "replay")
	require.ErrorIs(t, err, errNoConfirmation, out)
	assert.Contains(t, err.Error(), "--yes")

	// The replay, with events arriving all along.
	type result struct {
		out string
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, err := runCLI(t, env, "replay", "--yes")
		done <- result{out, err}
	}()
	extra := mixedEvents(12, 20000, end, "during-replay") // more than the replay lasts: some arrive after the swap
	pace := time.NewTicker(100 * time.Millisecond)        // paces the posts over the replay; no synchronisation depends on it
	defer pace.Stop()
	var res result
	sent := 0
	for running := true; running; {
		select {
		case res = <-done:
			running = false
		case <-pace.C:
			if sent < len(extra) {
				postAll(t, m.URL(), extra[sent:sent+10], 10)
				sent += 10
			}
		}
	}
	require.NoError(t, res.err, res.out)
	// A few more after the replay ended, then everything posted is counted.
	postAll(t, m.URL(), extra[sent:min(sent+100, len(extra))], 50)
	sent = min(sent+100, len(extra))
	for _, ev := range extra[:sent] {
		l.add(ev)
	}
	t.Logf("%d events posted during the replay; output:\n%s", sent, res.out)
	assert.Contains(t, res.out, "replay progress", "plain progress lines without a terminal")
	sub := backupLine.FindStringSubmatch(res.out)
	require.NotNil(t, sub, res.out)
	backup := sub[1]

	// Minutes, not seconds: thousands of events posted during the replay are
	// projected by the live group on 2 cores shared with the whole suite.
	waitCaughtUp(t, cfg.KafkaBrokers, cfg.ConsumerGroup, cfg.EventsTopic, 4*time.Minute)
	waitAggregated(t, m.ch, projectionWait)
	d := getDashboard(t, m.URL(), start, stop)
	require.Empty(t, l.mismatch(d), "after the replay, every event once")
	requireCustomersTotal(t, m.URL(), start, stop, l)

	// Without brokers reconcile prices with the default card, as the live
	// projector does here (no card was overridden), and needs no Kafka.
	offline := maps.Clone(env)
	delete(offline, "UVR_KAFKA_BROKERS")
	for day := end.AddDate(0, 0, -61); !day.After(end); day = day.AddDate(0, 0, 1) {
		d := day.Format(time.DateOnly)
		out, err := runCLI(t, offline, "reconcile", "--day", d, "--check")
		require.NoError(t, err, out)
	}

	loaded, err := flags.Load(ctx)
	require.NoError(t, err)
	var kept bool
	for _, f := range loaded {
		if f.ID == acked.ID {
			kept = f.Status == insights.StatusAcknowledged
		}
	}
	assert.True(t, kept, "the acknowledged flag is still acknowledged")

	tables, err := chstore.ListTables(ctx, m.ch, backup)
	require.NoError(t, err)
	for _, want := range []string{"usage_events", "usage_by_day", "daily_usage", "daily_revenue", "dirty_days"} {
		assert.Contains(t, tables, want)
	}
	assert.NotContains(t, tables, "insight_flags")
	var drift uint64
	require.NoError(t, m.ch.QueryRow(ctx, "SELECT count() FROM "+backup+".daily_usage WHERE customer_external_id = 'cus_drift'").Scan(&drift))
	assert.EqualValues(t, 1, drift, "the backup holds the old, corrupted table")
}

// requireCustomersTotal sums GET /api/customers over every customer and
// compares it with the ledger.
func requireCustomersTotal(t *testing.T, base, start, stop string, l *ledger) {
	t.Helper()
	code, raw := getBody(t, fmt.Sprintf("%s/api/customers?limit=1000&start_date=%s&end_date=%s", base, start, stop))
	require.Equal(t, http.StatusOK, code, raw)
	var body struct {
		Customers []struct {
			Revenue decimal.Decimal `json:"revenue"` // parsed from the number's text: no float
			Cost    decimal.Decimal `json:"cost"`
		} `json:"customers"`
	}
	require.NoError(t, json.Unmarshal([]byte(raw), &body))
	var rev, cost decimal.Decimal
	for _, c := range body.Customers {
		rev, cost = rev.Add(c.Revenue), cost.Add(c.Cost)
	}
	assert.True(t, rev.Equal(l.revenue), "customers' revenue %s, want %s", rev, l.revenue)
	assert.True(t, cost.Equal(l.cost), "customers' cost %s, want %s", cost, l.cost)
}

// dropDatabases drops the databases whose names start with one of prefixes.
func dropDatabases(t *testing.T, m *Main, prefixes ...string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rows, err := m.ch.Query(ctx, "SELECT name FROM system.databases")
	if err != nil {
		t.Logf("list databases: %v", err)
		return
	}
	var drop []string
	for rows.Next() {
		var n string
		if rows.Scan(&n) == nil {
			for _, p := range prefixes {
				if strings.HasPrefix(n, p) {
					drop = append(drop, n)
				}
			}
		}
	}
	rows.Close()
	for _, n := range drop {
		if err := m.ch.Exec(ctx, "DROP DATABASE IF EXISTS "+n); err != nil {
			t.Logf("drop %s: %v", n, err)
		}
	}
}

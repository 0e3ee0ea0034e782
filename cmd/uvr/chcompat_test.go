package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/deploy/servicetest"
	"github.com/uvrhq/uvr/projections/chstore"
)

// One SQL for every ClickHouse (docs/clickhouse.md). uvr runs on a private
// ClickHouse 18.16 that logs every query: the migrations, a ledger of usage
// and revenue events with corrections, voids and duplicates through the
// projector, then every analytics route of the API. Every statement uvr sent
// is read back from system.query_log, with the values the client bound
// already inlined. A current ClickHouse in process (chdb-core, pinned by
// deploy/chdb) then runs the migrations and, on the same data, every query;
// both versions must accept each statement and answer it with the same rows,
// compared as text (exact decimals), in order where the query orders them.
func TestOneSQLForEveryClickHouse(t *testing.T) {
	t.Parallel()
	servicetest.ChdbPython(t) // installed first: a failed install fails fast
	ch := startPrivateClickHouse(t, "UVR_CLICKHOUSE_LOG_QUERIES=1")
	cfg := testConfig(t)
	cfg.ClickHouseAddr = ch.addr
	cfg.ClickHouseDatabase = "uvr_compat"
	now := time.Now().UTC()
	today := now.Truncate(24 * time.Hour)
	cfg.FXRates = filepath.Join(t.TempDir(), "fx.csv")
	require.NoError(t, os.WriteFile(cfg.FXRates, ledgerRates(today, decimal.Zero).csv(), 0o600))
	m := startMain(t, cfg, Roles{API: true, Projector: true})

	revenue, _ := revenueLedgerEvents(3, 150, now)
	usage, _ := ledgerEvents(5, 150, now)
	mrr, mrrCustomer := mrrScenario(today)
	events := slices.Concat(revenue, usage, mrr)
	t.Logf("posting %d events", len(events))
	postAll(t, m.URL(), events, 500)
	waitCaughtUp(t, m.Brokers, cfg.ConsumerGroup, cfg.EventsTopic, projectionWait)
	waitCaughtUp(t, m.Brokers, cfg.ConsumerGroup+"-customers", cfg.EventsTopic, projectionWait)
	waitAggregated(t, m.ch, projectionWait)
	exerciseAnalytics(t, m.URL(), today, mrrCustomer)
	env := map[string]string{"UVR_CLICKHOUSE_ADDR": cfg.ClickHouseAddr, "UVR_CLICKHOUSE_DATABASE": cfg.ClickHouseDatabase}
	reconciled, err := runCLI(t, env, "reconcile", "--day", today.AddDate(0, 0, -3).Format(time.DateOnly), "--check")
	require.NoError(t, err, reconciled)

	db := &httpClickHouse{url: ch.httpURL, database: cfg.ClickHouseDatabase}
	ddl, err := chstore.Statements()
	require.NoError(t, err)
	queries := sentQueries(t, db, ddl)
	require.GreaterOrEqual(t, len(queries), 20, "the query log holds too few of uvr's queries to check anything")

	tables, files := copyParts(t, db)

	// A query that reads the clock answers each version with its own time:
	// both run it at one fixed instant instead.
	clock := time.Now().UTC().Format(time.DateTime)
	pinned := make([]string, len(queries))
	for i, q := range queries {
		pinned[i] = pinClock(q, clock)
	}
	current := runCurrent(t, map[string]any{"database": cfg.ClickHouseDatabase, "ddl": ddl, "tables": files, "queries": pinned})
	require.Len(t, current.DDL, len(ddl))
	require.Len(t, current.Tables, len(tables))
	require.Len(t, current.Queries, len(queries))

	for i, stmt := range ddl {
		if current.DDL[i].Error != "" {
			t.Errorf("migration statement accepted by 18.16, refused by %s:\n%s\n--- %s: %s", current.Version, stmt, current.Version, current.DDL[i].Error)
		}
	}
	for i, table := range tables {
		old := db.query(t, "SELECT name, type FROM system.columns WHERE database = currentDatabase() AND table = '"+table+"'")
		if got := current.Tables[i]; got.Error != "" || got.TSV != old {
			t.Errorf("table %s differs after the migrations or does not load\n--- 18.16:\n%s--- %s: %s\n%s", table, old, current.Version, got.Error, got.TSV)
		}
	}
	var same, rows int
	for i, q := range queries {
		old, oldErr := db.tryQuery(pinned[i])
		got := current.Queries[i]
		switch {
		case oldErr != nil || got.Error != "":
			t.Errorf("statement accepted by only one version (or by neither):\n%s\n--- 18.16: %v\n--- %s: %s", q, errOrOK(oldErr), current.Version, orOK(got.Error))
		case !sameRows(q, old, got.TSV):
			t.Errorf("statement answers differently:\n%s\n--- 18.16:\n%s--- %s:\n%s", q, clip(old), current.Version, clip(got.TSV))
		default:
			same++
			rows += strings.Count(old, "\n")
		}
	}
	t.Logf("%d of %d queries answered the same rows (%d rows) on 18.16 and %s", same, len(queries), rows, current.Version)
}

// tableParts is a table of chdb_check.py's spec and the files of its parts.
type tableParts struct {
	Name  string   `json:"name"`
	Parts []string `json:"parts"`
}

// copyParts gives chdb_check.py the same rows as 18.16, in the same parts:
// merges stop, and each active part of each table of db is dumped as text,
// to be loaded as one part on the other side, in block order (of rows with
// equal versions ReplacingMergeTree keeps the last inserted). So FINAL has
// unmerged versions to collapse on both versions, as in production.
func copyParts(t *testing.T, db *httpClickHouse) ([]string, []tableParts) {
	t.Helper()
	db.query(t, "SYSTEM STOP MERGES")
	dir := t.TempDir()
	tables := strings.Fields(db.query(t, "SELECT name FROM system.tables WHERE database = currentDatabase() ORDER BY name"))
	var files []tableParts
	for _, table := range tables {
		tp := tableParts{Name: table, Parts: []string{}}
		parts := db.query(t, "SELECT name FROM system.parts WHERE database = currentDatabase() AND table = '"+table+"' AND active ORDER BY min_block_number")
		for _, part := range strings.Fields(parts) {
			f := filepath.Join(dir, table+"."+part+".tsv")
			require.NoError(t, os.WriteFile(f, []byte(db.query(t, "SELECT * FROM "+table+" WHERE _part = '"+part+"'")), 0o600))
			tp.Parts = append(tp.Parts, f)
		}
		files = append(files, tp)
	}
	return tables, files
}

// currentAnswers is what chdb_check.py answers.
type currentAnswers struct {
	Version  string `json:"version"`
	ChdbCore string `json:"chdb_core"`
	DDL      []chAnswer
	Tables   []chAnswer
	Queries  []chAnswer
}

// chAnswer is one answer of chdb_check.py.
type chAnswer struct {
	Error string `json:"error"`
	TSV   string `json:"tsv"`
}

// runCurrent runs testdata/chdb_check.py on spec with chdb-core.
func runCurrent(t *testing.T, spec map[string]any) currentAnswers {
	t.Helper()
	b, err := json.Marshal(spec)
	require.NoError(t, err)
	specFile := filepath.Join(t.TempDir(), "spec.json")
	require.NoError(t, os.WriteFile(specFile, b, 0o600))
	started := time.Now()
	var stderr bytes.Buffer
	cmd := exec.Command(servicetest.ChdbPython(t), filepath.Join("testdata", "chdb_check.py"), specFile)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "chdb_check.py: %s", stderr.String())
	var current currentAnswers
	require.NoError(t, json.Unmarshal(out, &current))
	t.Logf("ClickHouse %s (chdb-core %s) ran the migrations, loaded the tables and ran the queries in %s",
		current.Version, current.ChdbCore, time.Since(started).Round(time.Millisecond))
	return current
}

// pinClock replaces now() and today() in q by the instant clock
// ("YYYY-MM-DD hh:mm:ss", UTC).
func pinClock(q, clock string) string {
	return strings.NewReplacer("now()", "toDateTime('"+clock+"')", "today()", "toDate('"+clock[:10]+"')").Replace(q)
}

// exerciseAnalytics calls every route of the API that reads ClickHouse, with
// the variants that change the SQL (basis, currency, grouping, filters).
func exerciseAnalytics(t *testing.T, base string, today time.Time, customer string) {
	t.Helper()
	code, body := post(t, base+"/api/insights/run", "application/json", nil)
	require.Equal(t, http.StatusOK, code, body)
	var list struct {
		Customers []struct {
			ID string `json:"id"`
		} `json:"customers"`
	}
	getJSON(t, base+"/api/customers", &list)
	require.NotEmpty(t, list.Customers)

	rng := url.Values{"start_date": {today.AddDate(0, 0, -61).Format(time.DateOnly)}, "end_date": {today.Format(time.DateOnly)}}
	with := func(kv ...string) string {
		q := url.Values{}
		for k, v := range rng {
			q[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			q.Set(kv[i], kv[i+1])
		}
		return q.Encode()
	}
	gets := []string{
		"/api/dashboard?" + with(),
		"/api/dashboard?" + with("basis", "cash", "currency", "EUR"),
		"/api/customers?sort=-cost&q=cus_0",
		"/api/customers/" + url.PathEscape(list.Customers[0].ID),
		"/api/customers/" + url.PathEscape(customer),
		"/api/features?" + with(),
		"/api/features?" + with("basis", "cash", "currency", "GBP"),
		"/api/timeseries?" + with(),
		"/api/timeseries?" + with("group_by", "week", "by", "feature"),
		"/api/timeseries?" + with("group_by", "month", "by", "plan", "basis", "cash"),
		"/api/timeseries?" + with("customer_id", customer),
		"/api/mrr?" + with(),
		"/api/mrr?" + with("customer_id", customer),
		"/api/insights",
		"/api/insights?status=open&severity=warning",
		"/api/customer-references",
		"/api/sync-runs",
	}
	for _, path := range gets {
		resp, err := http.Get(base + path)
		require.NoError(t, err)
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode, "GET %s: %s", path, b)
	}
	sim := fmt.Sprintf(`{"start_date":%q,"end_date":%q,"plan":{"price":"100","included_quantity":{"api.calls":1000},"overage_price":{"api.calls":"0.01"}}}`,
		rng.Get("start_date"), rng.Get("end_date"))
	code, body = post(t, base+"/api/simulate", "application/json", []byte(sim))
	require.Equal(t, http.StatusOK, code, body)
}

// sentQueries reads from the query log every statement uvr sent over the
// native protocol and finished, and returns what the check runs on both
// versions: each SELECT, and the SELECT of each INSERT … SELECT (the rows it
// would insert; the migrations' backfills too), in the order first sent, at
// most perShape of each shape. Batch inserts are the data, compared through
// the tables; the migrations' DDL is run as such. Any other statement fails
// the test: the check must learn to run it.
func sentQueries(t *testing.T, db *httpClickHouse, migrations []string) []string {
	t.Helper()
	db.query(t, "SYSTEM FLUSH LOGS")
	// interface 1 is the native protocol uvr uses; this test reads over HTTP.
	// TSV escapes the newlines and tabs inside a statement.
	logged := db.query(t, "SELECT query FROM system.query_log WHERE type = 2 AND interface = 1 ORDER BY event_time")
	var sent []string
	for _, line := range strings.Split(strings.TrimSuffix(logged, "\n"), "\n") {
		sent = append(sent, strings.TrimSpace(unescapeTSV(line)))
	}
	queries, unknown := pickQueries(sent, migrations)
	for _, q := range unknown {
		t.Errorf("uvr sent a statement the compatibility check does not run; teach pickQueries how:\n%s", q)
	}
	return queries
}

// pickQueries sorts the statements sent: the queries to run on both versions
// (see sentQueries), and the statements of a kind the check does not know.
func pickQueries(sent, migrations []string) (queries, unknown []string) {
	seen := map[string]int{} // by shape
	for _, q := range sent {
		sel := q
		if m := insertSelect.FindStringSubmatchIndex(q); m != nil {
			sel = q[m[2]:]
		}
		shape := list.ReplaceAllString(literal.ReplaceAllString(sel, "?"), "?")
		switch {
		case seen[shape] >= perShape || slices.Contains(queries, sel):
		case selectQuery.MatchString(sel):
			seen[shape]++
			queries = append(queries, sel)
		case slices.Contains(migrations, q), batchInsert.MatchString(q), strings.HasPrefix(q, "CREATE DATABASE IF NOT EXISTS "):
		default:
			unknown = append(unknown, q)
		}
	}
	return queries, unknown
}

// perShape bounds the queries checked per shape (the text with each literal,
// and each list of literals, replaced by ?): the aggregator sends the same
// query for each day it recomputes, and a few of them check the SQL as well
// as hundreds.
const perShape = 3

var (
	list         = regexp.MustCompile(`\?(?:\s*,\s*\?)+`)
	literal      = regexp.MustCompile(`'(?:[^'\\]|\\.)*'|\b\d+(?:\.\d+)?\b`)
	selectQuery  = regexp.MustCompile(`(?is)^(SELECT|WITH)\b`)
	insertSelect = regexp.MustCompile(`(?is)^INSERT\s+INTO\s+\S+\s*(?:\([^)]*\))?\s*((?:SELECT|WITH)\b.*)$`)
	batchInsert  = regexp.MustCompile(`(?is)^INSERT\s+INTO\s+\S+\s*(?:\([^)]*\))?\s*VALUES\s*$`)
)

// httpClickHouse runs statements on the 18.16 server over HTTP, answers in
// TSV: the same text format chdb_check.py asks chdb for.
type httpClickHouse struct {
	url, database string
}

func (c *httpClickHouse) tryQuery(q string) (string, error) {
	u := c.url + "/?" + url.Values{"database": {c.database}, "default_format": {"TSV"}}.Encode()
	resp, err := http.Post(u, "text/plain", strings.NewReader(q))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s", strings.TrimSpace(string(b)))
	}
	return string(b), nil
}

func (c *httpClickHouse) query(t *testing.T, q string) string {
	t.Helper()
	out, err := c.tryQuery(q)
	require.NoError(t, err, q)
	return out
}

// sameRows compares two TSV answers row by row: in order when the query
// orders its result (an ORDER BY outside any parentheses), as multisets
// otherwise.
func sameRows(query, a, b string) bool {
	if ordered(query) {
		return a == b
	}
	ra, rb := strings.Split(a, "\n"), strings.Split(b, "\n")
	slices.Sort(ra)
	slices.Sort(rb)
	return slices.Equal(ra, rb)
}

// ordered reports whether query has an ORDER BY at the outermost level
// (outside parentheses and string literals).
func ordered(query string) bool {
	depth, quoted := 0, false
	upper := strings.ToUpper(query)
	for i := 0; i < len(upper); i++ {
		switch c := upper[i]; {
		case quoted && c == '\\':
			i++
		case c == '\'':
			quoted = !quoted
		case quoted:
		case c == '(':
			depth++
		case c == ')':
			depth--
		case depth == 0 && strings.HasPrefix(upper[i:], "ORDER BY"):
			return true
		}
	}
	return false
}

// unescapeTSV undoes the escapes of ClickHouse's TSV output.
var unescapeTSV = strings.NewReplacer(`\\`, `\`, `\n`, "\n", `\t`, "\t", `\r`, "\r", `\'`, "'", `\0`, "\x00", `\b`, "\b", `\f`, "\f").Replace

func clip(s string) string {
	const max = 1500
	if len(s) > max {
		return s[:max] + fmt.Sprintf("\n… (%d bytes more)\n", len(s)-max)
	}
	return s
}

func orOK(s string) string {
	if s == "" {
		return "accepted"
	}
	return s
}

func errOrOK(err error) string {
	if err == nil {
		return "accepted"
	}
	return err.Error()
}

func TestPickQueries(t *testing.T) {
	migrations := []string{"CREATE TABLE IF NOT EXISTS a (x UInt8) ENGINE = Memory", "INSERT INTO a (x) SELECT 1"}
	sent := []string{
		"CREATE DATABASE IF NOT EXISTS uvr",
		migrations[0],
		migrations[1],
		"INSERT INTO a (x) VALUES",
		"SELECT x FROM a WHERE day = toDate('2026-01-01')",
		"SELECT x FROM a WHERE day = toDate('2026-01-01')",
		"SELECT x FROM a WHERE day = toDate('2026-01-02')",
		"SELECT x FROM a WHERE day = toDate('2026-01-03')",
		"SELECT x FROM a WHERE day = toDate('2026-01-04')",
		"SELECT x FROM a WHERE k IN ('a', 'b', 'c')",
		"SELECT x FROM a WHERE k IN ('a', 'b', 'c', 'd')",
		"SELECT x FROM a WHERE k IN ('a')",
		"SELECT x FROM a WHERE k IN ('z', 'y')",
		"INSERT INTO b (x, y)\nWITH 1 AS one SELECT one, 2",
		"ALTER TABLE a DELETE WHERE x = 1",
		"RENAME TABLE a TO b",
	}
	queries, unknown := pickQueries(sent, migrations)
	assert.Equal(t, []string{
		"SELECT 1", // the backfill's rows
		"SELECT x FROM a WHERE day = toDate('2026-01-01')",
		"SELECT x FROM a WHERE day = toDate('2026-01-02')",
		"SELECT x FROM a WHERE day = toDate('2026-01-03')",
		"SELECT x FROM a WHERE k IN ('a', 'b', 'c')", // lists of any length are one shape
		"SELECT x FROM a WHERE k IN ('a', 'b', 'c', 'd')",
		"SELECT x FROM a WHERE k IN ('a')",
		"WITH 1 AS one SELECT one, 2",
	}, queries)
	assert.Equal(t, []string{"ALTER TABLE a DELETE WHERE x = 1", "RENAME TABLE a TO b"}, unknown)
}

func TestOrderedQuery(t *testing.T) {
	for q, want := range map[string]bool{
		"SELECT a FROM t ORDER BY a":                            true,
		"SELECT a FROM (SELECT a FROM t ORDER BY a)":            false,
		"SELECT 'ORDER BY' AS x FROM t":                         false,
		"SELECT a FROM t WHERE b = 'it\\'s' ORDER BY a LIMIT 1": true,
		"select argMax(a, b) from t group by c order by c":      true,
	} {
		assert.Equal(t, want, ordered(q), q)
	}
}

// migratedDatabase is a new, migrated database on the shared 18.16 server.
func migratedDatabase(t *testing.T, ctx context.Context) (driver.Conn, string) {
	t.Helper()
	addr, database := servicetest.ClickHouseDatabase(t)
	conn, err := chstore.Open(ctx, chstore.Config{Addr: []string{addr}, Database: database})
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	require.NoError(t, chstore.Migrate(ctx, conn, database, nil))
	return conn, database
}

// From ClickHouse 19 on, one insert may write into at most
// max_partitions_per_insert_block (100) partitions; 18.16 has no such limit.
// The by-day tables are PARTITION BY toYYYYMM(day), so a batch holding ten
// years of daily history (120 months) is accepted by 18.16 and refused by a
// current server. chstore.InsertColumns, which every writer uses, therefore
// sends such a batch as the groups chstore.MonthGroups makes (at most 100
// months each): the same groups, as inserts, pass on the current server and
// every day lands once.
func TestInsertsStayWithin100PartitionsOnCurrentClickHouse(t *testing.T) {
	t.Parallel()
	const days = 3653 // 2016-01-01 to 2025-12-31
	insert := func(from, n int) string {
		return fmt.Sprintf(`INSERT INTO usage_by_day (day, source, id, rev, void, customer_source, customer_external_id, feature, currency, quantity, cost)
SELECT toDate('2016-01-01') + number, 'stripe', toString(number), toUInt64(2), toUInt8(0), 'stripe', 'cus_1', 'api.calls', 'USD', toDecimal128(1, 9), toDecimal64(0.5, 9)
FROM numbers(%d) WHERE number >= %d`, from+n, from)
	}
	tenYears := insert(0, days)
	months := make([]int, days)
	for i := range months {
		d := time.Date(2016, 1, 1+i, 0, 0, 0, 0, time.UTC)
		months[i] = d.Year()*100 + int(d.Month())
	}
	groups := chstore.MonthGroups(months, chstore.MaxPartitionsPerInsert)
	require.Len(t, groups, 2, "120 months: 100, then 20")
	var byGroup []string
	for _, rows := range groups {
		// A group is a run of consecutive days here (days are in order).
		require.Equal(t, rows[0]+len(rows)-1, rows[len(rows)-1])
		byGroup = append(byGroup, insert(rows[0], len(rows)))
	}
	ddl, err := chstore.Statements()
	require.NoError(t, err)

	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	conn, database := migratedDatabase(t, ctx)
	require.NoError(t, conn.Exec(ctx, tenYears), "18.16 takes ten years of days in one insert")
	var partitions uint64
	require.NoError(t, conn.QueryRow(ctx, "SELECT uniqExact(partition) FROM system.parts WHERE database = ? AND table = 'usage_by_day' AND active", database).Scan(&partitions))
	require.EqualValues(t, 120, partitions)

	current := runCurrent(t, map[string]any{"database": "uvr", "ddl": ddl, "tables": []tableParts{},
		"queries": slices.Concat([]string{tenYears}, byGroup, []string{"SELECT count(), uniqExact(toYYYYMM(day)) FROM usage_by_day"})})
	for i, a := range current.DDL {
		require.Empty(t, a.Error, ddl[i])
	}
	assert.Contains(t, current.Queries[0].Error, "Too many partitions for single INSERT block (more than 100)")
	t.Logf("ClickHouse %s refuses ten years in one insert: %s", current.Version, current.Queries[0].Error)
	for i, q := range byGroup {
		assert.Empty(t, current.Queries[1+i].Error, q)
	}
	assert.Equal(t, fmt.Sprintf("%d\t120\n", days), current.Queries[len(current.Queries)-1].TSV, "every day, once, from the inserts InsertColumns sends")
}

// `uvr replay` swaps the rebuilt projection tables in with one RENAME TABLE
// across three databases (chstore.SwapSQL), which the query log of
// TestOneSQLForEveryClickHouse does not hold: the same swap, on the
// migrated schema, on 18.16 and on the current ClickHouse.
func TestReplaySwapOnEveryClickHouse(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	conn, database := migratedDatabase(t, ctx)
	tables, err := chstore.ProjectionTables(ctx, conn, database)
	require.NoError(t, err)
	require.NotEmpty(t, tables)

	// rebuilt holds copies of the live tables, with one row to tell them apart.
	prepare := func(live string) []string {
		stmts := []string{"CREATE DATABASE IF NOT EXISTS " + live + "_rebuilt"}
		for _, table := range tables {
			stmts = append(stmts, "CREATE TABLE "+live+"_rebuilt."+table+" AS "+live+"."+table)
		}
		return append(stmts, "INSERT INTO "+live+"_rebuilt.dirty_days (kind, day, changed_ns, done, ver) SELECT 'usage', toDate('2026-01-01'), toUInt64(1), toUInt8(0), toUInt64(2)")
	}
	after := func(live string) []string {
		return []string{
			"SELECT count() FROM " + live + ".dirty_days",
			"SELECT name FROM system.tables WHERE database = '" + live + "_backup' ORDER BY name",
		}
	}
	t.Cleanup(func() {
		for _, db := range []string{database + "_rebuilt", database + "_backup"} {
			assert.NoError(t, conn.Exec(context.WithoutCancel(ctx), "DROP DATABASE IF EXISTS "+db))
		}
	})
	for _, stmt := range prepare(database) {
		require.NoError(t, conn.Exec(ctx, stmt), stmt)
	}
	require.NoError(t, chstore.Swap(ctx, conn, database, database+"_rebuilt", database+"_backup", tables))
	var old []string
	for _, q := range after(database) {
		var rows []string
		require.NoError(t, chstore.QueryRows(ctx, conn, "SELECT toString(*) FROM ("+q+")", nil, func(scan func(...any) error) error {
			var s string
			err := scan(&s)
			rows = append(rows, s)
			return err
		}))
		old = append(old, strings.Join(rows, "\n")+"\n")
	}
	require.Equal(t, "1\n", old[0], "18.16 swapped the rebuilt tables in")

	ddl, err := chstore.Statements()
	require.NoError(t, err)
	ddl = slices.Concat(ddl, prepare("uvr"), []string{"CREATE DATABASE IF NOT EXISTS uvr_backup"})
	queries := append([]string{chstore.SwapSQL("uvr", "uvr_rebuilt", "uvr_backup", tables)}, after("uvr")...)
	current := runCurrent(t, map[string]any{"database": "uvr", "ddl": ddl, "tables": []tableParts{}, "queries": queries})
	for i, a := range current.DDL {
		require.Empty(t, a.Error, ddl[i])
	}
	require.Empty(t, current.Queries[0].Error, queries[0])
	for i, q := range after("uvr") {
		assert.Equal(t, old[i], current.Queries[1+i].TSV, q)
	}
}

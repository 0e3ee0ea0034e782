package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shopspring/decimal"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/uvrhq/uvr/connectors/ingest"
	"github.com/uvrhq/uvr/pipeline/event"
	"github.com/uvrhq/uvr/projections/chstore"
	"github.com/uvrhq/uvr/projections/rawevents"
)

type benchOptions struct {
	URL         string
	Token       string
	Events      int
	Customers   int
	Days        int
	Batch       int
	Concurrency int
	RawBatch    int
	Timeout     time.Duration
	Keep        bool
	HeapProfile string
}

func benchCommand(cfg *Config, logger func() *slog.Logger) *cobra.Command {
	bench := &cobra.Command{Use: "bench", Short: "Measure throughput"}
	opts := benchOptions{Events: 200_000, Customers: 10_000, Days: 90, Batch: 5000, Concurrency: 4, RawBatch: 100_000, Timeout: 30 * time.Minute}
	ingest := &cobra.Command{
		Use:   "ingest",
		Short: "End-to-end ingest rate (POST → exact in /api/dashboard) against the raw ClickHouse insert rate of the same rows",
		Long: `bench ingest posts a mixed stream through the HTTP API — usage with and without cost,
revenue of every kind with service periods, customer events, about 5 % exact duplicates, 2 %
corrections and voids, random ids, --customers customers over --days days — in batches of
--batch on --concurrency connections, and stops the clock when /api/dashboard shows every
event: its cash and accrual totals and every feature's quantity equal the generator's own
ledger. Then it inserts the same rows into plain MergeTree tables of the same shape with
ClickHouse's columnar insert, and prints both rates and their ratio.

With --url it measures a running uvr (uvr run); the raw insert then goes to a fresh database
on --clickhouse-addr. Without it, it starts the API and the projector in-process on a fresh
database and topic before its clock starts. The generator holds no event: memory stays flat
whatever --events is.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if opts.Events < 1 || opts.Batch < 1 || opts.Concurrency < 1 || opts.Customers < 1 || opts.Days < 1 || opts.RawBatch < 1 {
				return errors.New("--events, --batch, --concurrency, --customers, --days and --raw-batch must be at least 1")
			}
			return benchIngest(cmd.Context(), *cfg, opts, cmd.OutOrStdout(), cmd.ErrOrStderr(), logger())
		},
	}
	fs := ingest.Flags()
	fs.StringVar(&opts.URL, "url", "", "base URL of a running uvr API; empty starts one in-process")
	withEnv(fs, "url", "UVR_URL")
	fs.StringVar(&opts.Token, "token", "", "API token or key (with --url)")
	withEnv(fs, "token", "UVR_TOKEN")
	fs.IntVar(&opts.Events, "events", opts.Events, "number of event identities (duplicates and second versions come on top)")
	fs.IntVar(&opts.Customers, "customers", opts.Customers, "number of customers")
	fs.IntVar(&opts.Days, "days", opts.Days, "days of history the events spread over")
	fs.IntVar(&opts.Batch, "batch", opts.Batch, "events per POST")
	fs.IntVar(&opts.Concurrency, "concurrency", opts.Concurrency, "concurrent POSTs")
	fs.IntVar(&opts.RawBatch, "raw-batch", opts.RawBatch, "rows per raw ClickHouse insert")
	fs.DurationVar(&opts.Timeout, "timeout", opts.Timeout, "give up when the dashboard has not matched by then")
	fs.BoolVar(&opts.Keep, "keep", false, "keep the benchmark databases instead of dropping them")
	fs.StringVar(&opts.HeapProfile, "heap-profile", "", "write a heap profile (go tool pprof) of this process when the dashboard matched; in-process mode, so it shows the projector's heap")
	bench.AddCommand(ingest)
	return bench
}

func benchIngest(ctx context.Context, cfg Config, opts benchOptions, out, progress io.Writer, log *slog.Logger) error {
	suffix := fmt.Sprintf("%x", rand.Uint64()&0xffffffffff)
	target := opts.URL
	token := opts.Token
	rawDB := "uvr_bench_" + suffix + "_raw"
	if target == "" {
		cfg.ClickHouseDatabase = "uvr_bench_" + suffix
		cfg.EventsTopic = "uvr.bench." + suffix
		cfg.PoisonTopic = cfg.EventsTopic + ".poison"
		cfg.ConsumerGroup = "uvr-bench-" + suffix
		cfg.ConnectorPrefix = "uvr-bench-" + suffix
		cfg.HTTPAddr = "127.0.0.1:0"
		cfg.MaxBatchEvents = max(cfg.MaxBatchEvents, opts.Batch)
		if len(cfg.KafkaBrokers) == 0 {
			cfg.EmbeddedKafkaAddr = "127.0.0.1:0"
			cfg.DataDir = cfg.DataDir + "/bench-" + suffix
			cfg.EmbeddedMaxRecords = -1 // a throwaway broker sized by --events
		}
		quiet := slog.New(slog.NewTextHandler(progress, &slog.HandlerOptions{Level: slog.LevelWarn}))
		m := NewMain(cfg, Roles{API: true, Projector: true, Embedded: true}, quiet)
		if err := m.Open(ctx); err != nil {
			return err
		}
		defer func() {
			// Stopped first: its aggregator must not outlive its tables.
			_ = m.Close()
			if !opts.Keep {
				if conn, err := chstore.Open(context.WithoutCancel(ctx), cfg.clickhouse(cfg.ClickHouseDatabase)); err == nil {
					_ = conn.Exec(context.WithoutCancel(ctx), "DROP DATABASE IF EXISTS "+cfg.ClickHouseDatabase)
					_ = conn.Close()
				}
			}
		}()
		var err error
		if token, err = m.selfToken(); err != nil {
			return err
		}
		target = m.URL()
		fmt.Fprintf(progress, "in-process uvr: database %s, topic %s\n", cfg.ClickHouseDatabase, cfg.EventsTopic)
	}
	target = strings.TrimRight(target, "/")
	client, err := ingest.New(ingest.Config{URL: target, Token: token, BatchSize: opts.Batch})
	if err != nil {
		return err
	}
	api := benchAPI{url: target, token: token, http: &http.Client{Timeout: 5 * time.Minute}}
	rssCtx, stopRSS := context.WithCancel(ctx)
	defer stopRSS()
	rss := api.watchRSS(rssCtx)

	// One instant for both runs of the generator: the raw insert regenerates
	// exactly the rows the API received.
	end := time.Now().UTC()
	seed := rand.Uint64()

	fmt.Fprintf(progress, "posting %d identities (plus duplicates and second versions) to %s\n", opts.Events, target)
	start := time.Now()
	stream := newBenchStream(seed, opts.Customers, opts.Days, end)
	batches := make(chan []event.Event, opts.Concurrency)
	var posted atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		defer close(batches)
		return benchBatches(gctx, stream, opts.Events, opts.Batch, func(b []event.Event) error {
			select {
			case batches <- b:
				return nil
			case <-gctx.Done():
				return gctx.Err()
			}
		})
	})
	for range opts.Concurrency {
		g.Go(func() error {
			for b := range batches {
				if err := client.Send(gctx, b); err != nil {
					return err
				}
				posted.Add(int64(len(b)))
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	accepted := time.Since(start)
	n := int(posted.Load())
	fmt.Fprintf(progress, "accepted %d events in %s; waiting for /api/dashboard to show every one (cost %s, cash %s, accrual %s)\n",
		n, accepted.Round(time.Millisecond), stream.ledger.cost, stream.ledger.cash, stream.ledger.accrual)

	waitCtx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	if err := api.waitLedger(waitCtx, &stream.ledger, progress); err != nil {
		return err
	}
	endToEnd := time.Since(start)
	peakRSS := rss()
	stopRSS()
	if opts.HeapProfile != "" {
		if err := writeHeapProfile(opts.HeapProfile); err != nil {
			return err
		}
	}

	rawRows, raw, err := benchRawInsert(ctx, cfg, rawDB, opts, seed, end, log)
	if err != nil {
		return err
	}
	if rawRows != n {
		return fmt.Errorf("the raw insert regenerated %d rows, the API was sent %d", rawRows, n)
	}

	e2eRate := float64(n) / endToEnd.Seconds()
	rawRate := float64(n) / raw.Seconds()
	fmt.Fprintf(out, "machine:           %d cores, %s/%s, %s\n", runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version())
	fmt.Fprintf(out, "uvr:               %s (%s)\n", target, benchTarget(opts, cfg))
	fmt.Fprintf(out, "events:            %d posted (%d identities, %d customers, %d days), %d per POST, %d concurrent POSTs\n",
		n, opts.Events, opts.Customers, opts.Days, opts.Batch, opts.Concurrency)
	fmt.Fprintf(out, "accepted (202):    %.0f events/s (%s)\n", float64(n)/accepted.Seconds(), accepted.Round(time.Millisecond))
	if peakRSS > 0 {
		fmt.Fprintf(out, "uvr peak rss:      %d MB (process_resident_memory_bytes, sampled every 500ms)\n", peakRSS>>20)
	}
	fmt.Fprintf(out, "end to end: %.0f events/s (POST → exact in /api/dashboard, %s)\n", e2eRate, endToEnd.Round(time.Millisecond))
	fmt.Fprintf(out, "clickhouse insert: %.0f rows/s (columnar insert of the same rows into plain MergeTree, batches of %d, %s)\n",
		rawRate, opts.RawBatch, raw.Round(time.Millisecond))
	fmt.Fprintf(out, "ratio: %.3f\n", e2eRate/rawRate)
	log.Info("bench ingest done", "events", n, "e2e_events_per_second", int(e2eRate), "raw_rows_per_second", int(rawRate))
	return nil
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("heap profile: %w", err)
	}
	if err := pprof.WriteHeapProfile(f); err != nil {
		_ = f.Close()
		return fmt.Errorf("heap profile %s: %w", path, err)
	}
	return f.Close()
}

func benchTarget(opts benchOptions, cfg Config) string {
	if opts.URL != "" {
		return "external"
	}
	if len(cfg.KafkaBrokers) > 0 {
		return "in-process, kafka " + strings.Join(cfg.KafkaBrokers, ",")
	}
	return "in-process, embedded kafka (kfake)"
}

// benchBatches cuts the stream of n identities into batches of size and
// hands each to emit; a batch is a fresh slice the receiver owns.
func benchBatches(ctx context.Context, s *benchStream, n, size int, emit func([]event.Event) error) error {
	b := make([]event.Event, 0, size)
	for {
		ev, ok := s.Next(n)
		if ok {
			b = append(b, ev)
		}
		if len(b) == size || (!ok && len(b) > 0) {
			if err := emit(b); err != nil {
				return err
			}
			b = make([]event.Event, 0, size)
		}
		if !ok {
			return ctx.Err()
		}
	}
}

// benchRawInsert regenerates the stream and inserts its rows into plain
// MergeTree copies of the raw tables, timing only the inserts.
func benchRawInsert(ctx context.Context, cfg Config, db string, opts benchOptions, seed uint64, end time.Time, log *slog.Logger) (int, time.Duration, error) {
	conn, err := chstore.Open(ctx, cfg.clickhouse(db))
	if err != nil {
		return 0, 0, err
	}
	defer func() {
		if !opts.Keep {
			_ = conn.Exec(context.WithoutCancel(ctx), "DROP DATABASE IF EXISTS "+db)
		}
		_ = conn.Close()
	}()
	quiet := slog.New(slog.DiscardHandler)
	if err := chstore.Migrate(ctx, conn, db, quiet); err != nil {
		return 0, 0, err
	}
	// Same columns, no replacing engine: ClickHouse's plain columnar insert.
	for _, t := range rawevents.Tables {
		for _, sql := range []string{
			"CREATE TABLE " + t + "_plain AS " + t + " ENGINE = MergeTree() ORDER BY (source, id)",
			"DROP TABLE " + t,
			"RENAME TABLE " + t + "_plain TO " + t,
		} {
			if err := conn.Exec(ctx, sql); err != nil {
				return 0, 0, fmt.Errorf("prepare plain table %s: %w", t, err)
			}
		}
	}
	store := rawevents.NewClickHouseStore(conn)
	stream := newBenchStream(seed, opts.Customers, opts.Days, end)
	now := time.Now()
	var (
		rows    = make([]rawevents.Row, 0, opts.RawBatch)
		total   int
		elapsed time.Duration
	)
	err = benchBatches(ctx, stream, opts.Events, opts.RawBatch, func(b []event.Event) error {
		rows = rows[:0]
		for _, ev := range b {
			r, err := rawevents.NewRow(ev, now, -1, -1)
			if err != nil {
				return err
			}
			rows = append(rows, r)
		}
		t := time.Now()
		if err := store.InsertBatch(ctx, rows); err != nil {
			return err
		}
		elapsed += time.Since(t)
		total += len(rows)
		return nil
	})
	return total, elapsed, err
}

// benchAPI reads the running uvr's dashboard and metrics.
type benchAPI struct {
	url, token string
	http       *http.Client
}

func (a benchAPI) get(ctx context.Context, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.url+path, nil)
	if err != nil {
		return nil, err
	}
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: HTTP %d: %s", path, resp.StatusCode, bytes.TrimSpace(body))
	}
	return body, nil
}

type benchDashboard struct {
	Summary struct {
		TotalUsageCost decimal.Decimal `json:"total_usage_cost"`
		TotalRevenue   decimal.Decimal `json:"total_revenue"`
	} `json:"summary"`
	FeatureMetrics []struct {
		FeatureName string          `json:"feature_name"`
		UsageCount  decimal.Decimal `json:"usage_count"`
	} `json:"feature_metrics"`
}

func (a benchAPI) dashboard(ctx context.Context, l *benchLedger, basis string) (benchDashboard, error) {
	var d benchDashboard
	body, err := a.get(ctx, fmt.Sprintf("/api/dashboard?start_date=%s&end_date=%s&basis=%s",
		l.first.Format(time.DateOnly), l.last.Format(time.DateOnly), basis))
	if err != nil {
		return d, err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&d); err != nil {
		return d, fmt.Errorf("decode /api/dashboard: %w", err)
	}
	return d, nil
}

// mismatch compares both views of the dashboard with the ledger: "" when
// every total and every feature's quantity is exact.
func (l *benchLedger) mismatch(cash, accrual benchDashboard) string {
	switch {
	case !cash.Summary.TotalUsageCost.Equal(l.cost):
		return fmt.Sprintf("total_usage_cost %s of %s", cash.Summary.TotalUsageCost, l.cost)
	case !cash.Summary.TotalRevenue.Equal(l.cash):
		return fmt.Sprintf("cash revenue %s of %s", cash.Summary.TotalRevenue, l.cash)
	case !accrual.Summary.TotalRevenue.Equal(l.accrual):
		return fmt.Sprintf("accrual revenue %s of %s", accrual.Summary.TotalRevenue, l.accrual)
	}
	got := map[string]decimal.Decimal{}
	for _, f := range cash.FeatureMetrics {
		got[f.FeatureName] = f.UsageCount
	}
	for f, want := range l.qtyByFeature {
		if !got[f].Equal(want) {
			return fmt.Sprintf("feature %s quantity %s of %s", f, got[f], want)
		}
	}
	return ""
}

// waitLedger polls the dashboard, one request at a time, until it equals
// the ledger. It pauses as long as the last poll took (at least 250ms), so
// the polls take at most half of what the dashboard costs the server.
func (a benchAPI) waitLedger(ctx context.Context, l *benchLedger, progress io.Writer) error {
	var last string
	lastShown := time.Now()
	for {
		polled := time.Now()
		cash, err := a.dashboard(ctx, l, "cash")
		if err == nil {
			var accrual benchDashboard
			if accrual, err = a.dashboard(ctx, l, "accrual"); err == nil {
				if last = l.mismatch(cash, accrual); last == "" {
					return nil
				}
			}
		}
		if err != nil {
			last = err.Error()
		}
		if time.Since(lastShown) > 5*time.Second {
			fmt.Fprintf(progress, "  dashboard not there yet: %s\n", last)
			lastShown = time.Now()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the dashboard never matched the ledger (%s): %w", last, ctx.Err())
		case <-time.After(max(250*time.Millisecond, time.Since(polled))): // polling pace, not a synchronisation
		}
	}
}

// watchRSS samples the target's process_resident_memory_bytes until ctx
// ends; the returned function reports the highest seen so far (0 when the
// metric cannot be read).
func (a benchAPI) watchRSS(ctx context.Context) func() int64 {
	var (
		mu   sync.Mutex
		peak int64
	)
	go func() {
		for {
			if v := a.rss(ctx); v > 0 {
				mu.Lock()
				peak = max(peak, v)
				mu.Unlock()
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(500 * time.Millisecond):
			}
		}
	}()
	return func() int64 {
		mu.Lock()
		defer mu.Unlock()
		return peak
	}
}

func (a benchAPI) rss(ctx context.Context) int64 {
	body, err := a.get(ctx, "/metrics")
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "process_resident_memory_bytes "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return int64(f)
			}
		}
	}
	return 0
}

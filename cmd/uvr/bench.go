package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/shopspring/decimal"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/uvrhq/uvr/connectors/ingest"
	"github.com/uvrhq/uvr/pipeline/event"
	"github.com/uvrhq/uvr/projections/chstore"
	"github.com/uvrhq/uvr/projections/rawevents"
)

type benchOptions struct {
	Events      int
	Batch       int
	Concurrency int
	Keep        bool
}

func benchCommand(cfg *Config, logger func() *slog.Logger) *cobra.Command {
	bench := &cobra.Command{Use: "bench", Short: "Measure throughput"}
	opts := benchOptions{Events: 100_000, Batch: 5000, Concurrency: 4}
	ingest := &cobra.Command{
		Use:   "ingest",
		Short: "End-to-end ingest rate (POST → visible in ClickHouse) against the raw ClickHouse insert rate of the same rows",
		Long: `bench ingest starts the API and the projector in-process on a fresh database and topic,
posts --events usage events in batches, waits until ClickHouse holds all of them, then inserts
the same rows straight into ClickHouse with the projector's columnar insert, and prints both
rates and their ratio. It uses --kafka-brokers when set, else an embedded broker.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if opts.Events < 1 || opts.Batch < 1 || opts.Concurrency < 1 {
				return fmt.Errorf("--events, --batch and --concurrency must be at least 1")
			}
			return benchIngest(cmd.Context(), *cfg, opts, cmd.OutOrStdout(), cmd.ErrOrStderr(), logger())
		},
	}
	fs := ingest.Flags()
	fs.IntVar(&opts.Events, "events", opts.Events, "number of events")
	fs.IntVar(&opts.Batch, "batch", opts.Batch, "events per POST")
	fs.IntVar(&opts.Concurrency, "concurrency", opts.Concurrency, "concurrent POSTs")
	fs.BoolVar(&opts.Keep, "keep", false, "keep the benchmark database instead of dropping it")
	bench.AddCommand(ingest)
	return bench
}

func benchIngest(ctx context.Context, cfg Config, opts benchOptions, out, progress io.Writer, log *slog.Logger) error {
	suffix := fmt.Sprintf("%x", rand.Uint64()&0xffffffffff)
	cfg.ClickHouseDatabase = "uvr_bench_" + suffix
	cfg.EventsTopic = "uvr.bench." + suffix
	cfg.PoisonTopic = cfg.EventsTopic + ".poison"
	cfg.ConsumerGroup = "uvr-bench-" + suffix
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.MaxBatchEvents = max(cfg.MaxBatchEvents, opts.Batch)
	cfg.ConsumerMaxInFlight = max(cfg.ConsumerMaxInFlight, cfg.BatchSize)
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
		if !opts.Keep {
			_ = m.ch.Exec(context.Background(), "DROP DATABASE IF EXISTS "+cfg.ClickHouseDatabase)
		}
		_ = m.Close()
	}()

	events := benchEvents(opts.Events)
	token, err := m.selfToken()
	if err != nil {
		return err
	}
	client, err := ingest.New(ingest.Config{URL: m.URL(), Token: token, BatchSize: opts.Batch})
	if err != nil {
		return err
	}

	bar := progressbar.NewOptions(opts.Events, progressbar.OptionSetWriter(progress),
		progressbar.OptionSetDescription("events visible in ClickHouse"), progressbar.OptionShowCount(),
		progressbar.OptionThrottle(200*time.Millisecond), progressbar.OptionOnCompletion(func() { fmt.Fprintln(progress) }))
	start := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(opts.Concurrency)
	for start := 0; start < len(events); start += opts.Batch {
		g.Go(func() error { return client.Send(gctx, events[start:min(start+opts.Batch, len(events))]) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	posted := time.Since(start)
	for {
		var n uint64
		if err := m.ch.QueryRow(ctx, "SELECT count() FROM usage_events").Scan(&n); err != nil {
			return fmt.Errorf("count projected events: %w", err)
		}
		_ = bar.Set(int(n))
		if int(n) >= opts.Events {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond): // polling interval of the progress, not a synchronisation
		}
	}
	endToEnd := time.Since(start)
	_ = bar.Finish()

	// The same rows, straight into ClickHouse with the projector's insert, in
	// batches of the projector's size, into a fresh copy of the tables.
	rawDB := cfg.ClickHouseDatabase + "_raw"
	rawConn, err := chstore.Open(ctx, cfg.clickhouse(rawDB))
	if err != nil {
		return err
	}
	defer func() {
		_ = rawConn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+rawDB)
		_ = rawConn.Close()
	}()
	if err := chstore.Migrate(ctx, rawConn, rawDB, quiet); err != nil {
		return err
	}
	rows := make([]rawevents.Row, len(events))
	now := time.Now()
	for i, ev := range events {
		if rows[i], err = rawevents.NewRow(ev, now, -1, -1); err != nil {
			return err
		}
	}
	store := rawevents.NewClickHouseStore(rawConn)
	rawStart := time.Now()
	for s := 0; s < len(rows); s += cfg.BatchSize {
		if err := store.InsertBatch(ctx, rows[s:min(s+cfg.BatchSize, len(rows))]); err != nil {
			return err
		}
	}
	raw := time.Since(rawStart)

	e2eRate := float64(opts.Events) / endToEnd.Seconds()
	rawRate := float64(opts.Events) / raw.Seconds()
	fmt.Fprintf(out, "machine:            %d cores, %s/%s, %s\n", runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version())
	fmt.Fprintf(out, "kafka:              %s\n", brokerKind(cfg))
	fmt.Fprintf(out, "events:             %d usage events, %d per POST, %d concurrent POSTs\n", opts.Events, opts.Batch, opts.Concurrency)
	fmt.Fprintf(out, "accepted (202):     %.0f events/s (%s)\n", float64(opts.Events)/posted.Seconds(), posted.Round(time.Millisecond))
	fmt.Fprintf(out, "end to end:         %.0f events/s (POST → visible in ClickHouse, %s)\n", e2eRate, endToEnd.Round(time.Millisecond))
	fmt.Fprintf(out, "raw clickhouse:     %.0f rows/s (columnar insert of the same rows, batches of %d, %s)\n", rawRate, cfg.BatchSize, raw.Round(time.Millisecond))
	fmt.Fprintf(out, "ratio:              %.2f (end to end / raw insert)\n", e2eRate/rawRate)
	log.Info("bench ingest done", "events", opts.Events, "e2e_events_per_second", int(e2eRate), "raw_rows_per_second", int(rawRate))
	return nil
}

func brokerKind(cfg Config) string {
	if len(cfg.KafkaBrokers) > 0 {
		return fmt.Sprintf("%v", cfg.KafkaBrokers)
	}
	return "embedded (kfake)"
}

// benchEvents makes n distinct usage events over 1000 customers and 10
// features with exact costs.
func benchEvents(n int) []event.Event {
	rng := rand.New(rand.NewPCG(7, 7))
	day := time.Now().UTC().Truncate(24 * time.Hour)
	events := make([]event.Event, n)
	for i := range events {
		qty := decimal.NewFromInt(rng.Int64N(100_000) + 1)
		cost := qty.Mul(decimal.New(25, -7)) // $2.50 per million
		events[i] = event.Event{
			SpecVersion: event.SpecVersion, ID: fmt.Sprintf("bench-%d", i), Source: "bench", Type: event.TypeUsage,
			Time: day.Add(-time.Duration(rng.IntN(30*24)) * time.Hour),
			Data: event.Data{
				Customer: event.Customer{Source: "bench", ExternalID: fmt.Sprintf("cus_%04d", rng.IntN(1000))},
				Version:  1, Feature: fmt.Sprintf("feature_%d", rng.IntN(10)), Quantity: &qty, Unit: "tokens",
				Cost: &cost, Currency: "USD",
			},
		}
	}
	return events
}

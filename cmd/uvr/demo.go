package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/uvrhq/uvr/connectors/demo"
	"github.com/uvrhq/uvr/connectors/ingest"
	"github.com/uvrhq/uvr/pipeline/event"
)

type demoOptions struct {
	URL       string
	Token     string
	Seed      int64
	Customers int
	Days      int
	Follow    bool
	Rate      float64
}

func demoCommand(_ *Config, logger func() *slog.Logger, _ func(string) (string, bool)) *cobra.Command {
	opts := demoOptions{URL: "http://127.0.0.1:8000", Seed: demo.DefaultSeed, Rate: 5}
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Publish demo usage and revenue (about 200 customers, 90 days) to a running uvr",
		Long: `demo generates a deterministic data set — customers on three plans, LLM token usage
by model, API calls and storage with their costs, monthly invoices, charges and refunds,
including unprofitable, spiking and churning customers — and posts it to a running uvr
through POST /api/events. Running it again changes no total: event ids are stable.
With --follow it then keeps sending a few live usage events per second.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			client, err := ingest.New(ingest.Config{URL: opts.URL, Token: opts.Token})
			if err != nil {
				return err
			}
			return runDemo(cmd.Context(), client, opts, cmd.ErrOrStderr(), logger())
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&opts.URL, "url", opts.URL, "base URL of the uvr API")
	withEnv(fs, "url", "UVR_URL")
	fs.StringVar(&opts.Token, "token", "", "API token or key")
	withEnv(fs, "token", "UVR_TOKEN")
	fs.Int64Var(&opts.Seed, "seed", opts.Seed, "random seed: the same seed gives the same data")
	fs.IntVar(&opts.Customers, "customers", demo.DefaultCustomers, "number of customers")
	fs.IntVar(&opts.Days, "days", demo.DefaultDays, "days of history before today")
	fs.BoolVar(&opts.Follow, "follow", false, "keep sending live usage events after the history")
	fs.Float64Var(&opts.Rate, "rate", opts.Rate, "events per second with --follow")
	return cmd
}

// runDemo sends the demo history, then follows if asked. It shows progress
// on w.
func runDemo(ctx context.Context, client *ingest.Client, opts demoOptions, w io.Writer, logger *slog.Logger) error {
	cfg := demo.Config{Seed: opts.Seed, Customers: opts.Customers, Days: opts.Days, Now: time.Now().UTC()}
	var events []event.Event
	if err := demo.Generate(ctx, cfg, func(ev event.Event) error {
		events = append(events, ev)
		return nil
	}); err != nil {
		return fmt.Errorf("generate demo data: %w", err)
	}
	if err := sendWithProgress(ctx, client, events, "demo events", w); err != nil {
		return err
	}
	logger.Info("demo history sent", "events", len(events), "customers", cfg.Customers, "days", cfg.Days)
	if !opts.Follow {
		return nil
	}
	logger.Info("following: sending live demo usage", "events_per_second", opts.Rate)
	err := demo.Follow(ctx, cfg, opts.Rate, func(ev event.Event) error {
		return client.Send(ctx, []event.Event{ev})
	})
	if ctx.Err() != nil {
		return nil // interrupted on purpose
	}
	return err
}

// sendWithProgress posts events in batches, a few requests at a time, with a
// progress bar on w.
func sendWithProgress(ctx context.Context, client *ingest.Client, events []event.Event, what string, w io.Writer) error {
	bar := progressbar.NewOptions(len(events),
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(what),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("events"),
		progressbar.OptionThrottle(200*time.Millisecond),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }),
	)
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	size := client.BatchSize()
	for start := 0; start < len(events); start += size {
		batch := events[start:min(start+size, len(events))]
		g.Go(func() error {
			if err := client.Send(ctx, batch); err != nil {
				return err
			}
			return bar.Add(len(batch))
		})
	}
	if err := g.Wait(); err != nil {
		return fmt.Errorf("send %s: %w", what, err)
	}
	return bar.Finish()
}

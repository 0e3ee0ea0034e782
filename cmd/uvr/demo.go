package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
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

// demoMemoryLimit is the soft memory limit of `uvr demo` (unless GOMEMLIMIT
// is set). What it holds is bounded whatever --customers and --days — a day
// of usage, about a billing month of revenue and a few batches, some 80 MB
// at 9,999 customers — but the collector's default lets the heap grow to
// twice that before it runs.
const demoMemoryLimit = 128 << 20

func demoCommand(_ *Config, logger func() *slog.Logger, getenv func(string) (string, bool)) *cobra.Command {
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
			softMemoryLimit(getenv, demoMemoryLimit)
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
// on w. The history streams from the generator to the API: memory holds a
// few batches, whatever --customers and --days.
func runDemo(ctx context.Context, client *ingest.Client, opts demoOptions, w io.Writer, logger *slog.Logger) error {
	cfg := demo.Config{Seed: opts.Seed, Customers: opts.Customers, Days: opts.Days, Now: time.Now().UTC()}
	s := newStreamSender(ctx, client, "demo events", w)
	genErr := demo.Generate(s.ctx, cfg, s.Add)
	sent, err := s.Close()
	if err != nil {
		return err
	}
	if genErr != nil {
		return fmt.Errorf("generate demo data: %w", genErr)
	}
	logger.Info("demo history sent", "events", sent, "customers", cfg.Customers, "days", cfg.Days)
	if !opts.Follow {
		return nil
	}
	logger.Info("following: sending live demo usage", "events_per_second", opts.Rate)
	err = demo.Follow(ctx, cfg, opts.Rate, func(ev event.Event) error {
		return client.Send(ctx, []event.Event{ev})
	})
	if ctx.Err() != nil {
		return nil // interrupted on purpose
	}
	return err
}

// streamSender posts the events given to Add in batches of the client's
// batch size, a few requests at a time, with a progress bar: at most
// senders+queued+1 batches are in memory.
type streamSender struct {
	ctx    context.Context // done when a send failed
	client *ingest.Client
	what   string
	g      *errgroup.Group
	queue  chan []event.Event
	batch  []event.Event
	bar    *progressbar.ProgressBar
	sent   atomic.Int64
}

const (
	streamSenders = 4 // concurrent requests
	streamQueued  = 4 // full batches waiting for a sender
)

func newStreamSender(ctx context.Context, client *ingest.Client, what string, w io.Writer) *streamSender {
	g, ctx := errgroup.WithContext(ctx)
	s := &streamSender{
		ctx: ctx, client: client, what: what, g: g,
		queue: make(chan []event.Event, streamQueued),
		// The total is not known in advance: the bar counts and shows the rate.
		bar: progressbar.NewOptions(-1,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription(what),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetItsString("events"),
			progressbar.OptionThrottle(200*time.Millisecond),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }),
		),
	}
	for range streamSenders {
		g.Go(func() error {
			for batch := range s.queue {
				if err := client.Send(ctx, batch); err != nil {
					return err
				}
				s.sent.Add(int64(len(batch)))
				_ = s.bar.Add(len(batch)) // the bar only draws
			}
			return nil
		})
	}
	return s
}

// Add queues ev; it blocks while every sender is busy and the queue is
// full, and returns an error once a send failed.
func (s *streamSender) Add(ev event.Event) error {
	s.batch = append(s.batch, ev)
	if len(s.batch) < s.client.BatchSize() {
		return nil
	}
	return s.flush()
}

func (s *streamSender) flush() error {
	if len(s.batch) == 0 {
		return nil
	}
	select {
	case s.queue <- s.batch:
		s.batch = make([]event.Event, 0, s.client.BatchSize())
		return nil
	case <-s.ctx.Done():
		return context.Cause(s.ctx)
	}
}

// Close sends what is left, waits for every request and returns the number
// of events acknowledged and the first send error.
func (s *streamSender) Close() (int64, error) {
	flushErr := s.flush()
	close(s.queue)
	if err := s.g.Wait(); err != nil {
		return s.sent.Load(), fmt.Errorf("send %s: %w", s.what, err)
	}
	if flushErr != nil {
		return s.sent.Load(), fmt.Errorf("send %s: %w", s.what, flushErr)
	}
	return s.sent.Load(), s.bar.Finish()
}

// Package demo generates a realistic, deterministic data set for uvr: the
// customers, LLM and infrastructure usage, and Stripe-like revenue of a
// usage-heavy AI SaaS company, as v1 events.
//
// The data set covers the Days complete UTC days before the day of Now, one
// usage event per customer, feature and day (a daily window). Before the first
// day come each customer's uvr.customer.v1 event, its subscription_started
// and the invoice of the billing month that contains the first day, at their
// own (earlier) times. Within the window, events are emitted in time order.
//
// Everything is a function of the Config: the same Config gives byte-identical
// events in the same order. Randomness comes from math/rand/v2 PCG sources
// seeded from Seed and, for usage and revenue, from the customer and the
// calendar day or billing month, so the ids emitted for a day (and the random
// draws behind them) do not depend on Now: a run on the next day re-emits the
// same ids for the overlapping days and adds the new day. Trends, spikes and
// churn are placed relative to Now, so the values of an overlapping day may
// differ slightly between two such runs; downstream, equal (Source, ID,
// version) is a duplicate and the first values stay.
//
// Money is computed with decimals only: token costs are exact (prices per
// million tokens have at most 3 decimals), invoices and refunds are in cents.
// Floats only shape the random volumes, which are rounded to whole tokens or
// calls, or to thousandths of a GB, before any money is computed.
package demo

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/uvrhq/uvr/pipeline/event"
)

// Defaults of Config, applied to zero fields.
const (
	DefaultSeed      = 1
	DefaultCustomers = 200
	DefaultDays      = 90
	DefaultSource    = "demo"
)

// Limits of Config. MaxCustomers keeps customer ids at four digits
// (cus_demo_0001 … cus_demo_9999) so they sort in index order.
const (
	MaxCustomers = 9999
	MaxDays      = 3660
)

// Config selects the data set.
type Config struct {
	// Seed of every random choice; 0 means DefaultSeed.
	Seed int64
	// Customers is the number of customers; 0 means DefaultCustomers.
	Customers int
	// Days is the number of complete UTC days of usage before Now's day;
	// 0 means DefaultDays.
	Days int
	// Now is the end of the window (required). Only its UTC day matters to
	// Generate: the last generated day is the day before it.
	Now time.Time
	// Source is the CloudEvents source of every event; "" means DefaultSource.
	Source string
}

// Validate reports every problem of the configuration, joined. Zero values
// are valid and stand for the defaults.
func (c Config) Validate() error {
	var errs []error
	if c.Now.IsZero() {
		errs = append(errs, errors.New("now is required: it ends the generated window"))
	}
	if c.Customers < 0 || c.Customers > MaxCustomers {
		errs = append(errs, fmt.Errorf("customers must be between 1 and %d (0 for the default %d), got %d", MaxCustomers, DefaultCustomers, c.Customers))
	}
	if c.Days < 0 || c.Days > MaxDays {
		errs = append(errs, fmt.Errorf("days must be between 1 and %d (0 for the default %d), got %d", MaxDays, DefaultDays, c.Days))
	}
	if len(c.Source) > 256 {
		errs = append(errs, fmt.Errorf("source must be at most 256 bytes, got %d", len(c.Source)))
	}
	if strings.ContainsFunc(c.Source, isSpace) {
		errs = append(errs, fmt.Errorf("source must not contain white space, got %q", c.Source))
	}
	return errors.Join(errs...)
}

func isSpace(r rune) bool {
	return r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == '\v' || r == '\f'
}

func (c Config) withDefaults() Config {
	if c.Seed == 0 {
		c.Seed = DefaultSeed
	}
	if c.Customers == 0 {
		c.Customers = DefaultCustomers
	}
	if c.Days == 0 {
		c.Days = DefaultDays
	}
	if c.Source == "" {
		c.Source = DefaultSource
	}
	return c
}

// Generate emits the whole data set of cfg to emit, in time order, and
// returns the first error of emit (wrapped) or of ctx. It never calls emit
// concurrently. The events pass event.Validate.
func Generate(ctx context.Context, cfg Config, emit func(event.Event) error) error {
	g, err := newGenerator(cfg)
	if err != nil {
		return err
	}
	return g.run(ctx, emit)
}

// Follow emits the data set like Generate, then keeps emitting live usage
// events (one LLM request or a few API calls of a random customer, at the
// current time, with unique ids) at about rate events per second until ctx is
// done. It returns nil when ctx ends the live phase; an error of emit, or ctx
// ending the history, is returned as by Generate. When emit falls behind by
// more than a second of events, the backlog is dropped rather than burst.
func Follow(ctx context.Context, cfg Config, rate float64, emit func(event.Event) error) error {
	if !(rate > 0) || math.IsInf(rate, 1) {
		return fmt.Errorf("follow rate must be a positive number of events per second, got %v", rate)
	}
	g, err := newGenerator(cfg)
	if err != nil {
		return err
	}
	if err := g.run(ctx, emit); err != nil {
		return err
	}
	return g.live(ctx, rate, time.Now, emit)
}

// run emits the history: the events before the window, then day by day.
// Only one day of usage and about a billing month of revenue are held at a
// time, so memory does not grow with Customers × Days.
func (g *generator) run(ctx context.Context, emit func(event.Event) error) error {
	rev := g.newRevenueWindow()
	if err := g.emitAll(ctx, rev.before(), emit); err != nil {
		return err
	}
	var buf []event.Event
	for d := range g.days {
		date := g.start.AddDate(0, 0, d)
		buf = buf[:0]
		for i := range g.profiles {
			buf = g.usageDay(buf, &g.profiles[i], d, date)
		}
		buf = rev.day(buf, d)
		slices.SortStableFunc(buf, func(a, b event.Event) int { return a.Time.Compare(b.Time) })
		if err := g.emitAll(ctx, buf, emit); err != nil {
			return fmt.Errorf("day %s: %w", date.Format(time.DateOnly), err)
		}
	}
	return nil
}

func (g *generator) emitAll(ctx context.Context, evs []event.Event, emit func(event.Event) error) error {
	for _, ev := range evs {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := emit(ev); err != nil {
			return fmt.Errorf("emit event %s: %w", ev.ID, err)
		}
	}
	return nil
}

// live emits usage at the current time until ctx is done.
func (g *generator) live(ctx context.Context, rate float64, now func() time.Time, emit func(event.Event) error) error {
	interval := time.Duration(float64(time.Second) / rate)
	interval = max(interval, 10*time.Millisecond)
	ticker := time.NewTicker(interval)
	defer ticker.Stop()

	lv := newLive(g)
	start := now()
	backlog := max(1, int64(rate))
	var sent int64
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
		due := int64(rate*now().Sub(start).Seconds()) - sent
		if due > backlog {
			sent += due - backlog
			due = backlog
		}
		for ; due > 0; due-- {
			if ctx.Err() != nil {
				return nil
			}
			ev := lv.next(now().UTC())
			if err := emit(ev); err != nil {
				return fmt.Errorf("emit live event %s: %w", ev.ID, err)
			}
			sent++
		}
	}
}

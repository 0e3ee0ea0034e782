package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/uvrhq/uvr/pipeline/kafka"
	"github.com/uvrhq/uvr/projections/chstore"
)

// errNoConfirmation is returned when a replay cannot ask for confirmation.
var errNoConfirmation = errors.New("replay swaps every projection table of the live database and needs a confirmation, " +
	"but standard input is not a terminal: pass --yes to run it unattended")

func replayCommand(cfg *Config, logger func() *slog.Logger) *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:   "replay [--yes]",
		Short: "Rebuild every projection from the Kafka events topic into new tables, then swap them in (the old ones are kept in a backup database)",
		Long: `replay rebuilds every projection (raw events, by-day copies, daily aggregates…) from the
events topic into a new database, with a consumer group of its own from the earliest offset,
then swaps the rebuilt tables in with one RENAME TABLE. Tables that hold state the events topic
does not (insight flags, sync runs, the schema's migrations) stay as they are. The old tables
are kept in <database>_backup_<unix time>. A running projector may keep running.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r := replay{cfg: *cfg, log: logger().With("component", "replay"), out: cmd.OutOrStdout(), errOut: cmd.ErrOrStderr()}
			r.stamp = strconv.FormatInt(time.Now().Unix(), 10)
			if !yes {
				prompt := fmt.Sprintf("Rebuild every projection of ClickHouse database %s from topic %s and swap it in (the old tables move to %s)?",
					cfg.ClickHouseDatabase, cfg.EventsTopic, r.backupDB())
				if err := confirm(cmd.InOrStdin(), cmd.ErrOrStderr(), prompt); err != nil {
					return err
				}
			}
			return r.run(cmd.Context())
		},
	}
	cmd.Flags().BoolVar(&yes, "yes", false, "do not ask for confirmation (required without a terminal)")
	return cmd
}

// confirm asks on errOut and reads the answer from in, which must be a
// terminal: without one (CI) nobody can answer, so it refuses.
func confirm(in io.Reader, errOut io.Writer, prompt string) error {
	f, ok := in.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return errNoConfirmation
	}
	fmt.Fprint(errOut, prompt+" [y/N] ")
	answer, _ := bufio.NewReader(in).ReadString('\n')
	switch strings.ToLower(strings.TrimSpace(answer)) {
	case "y", "yes":
		return nil
	}
	return errors.New("replay not confirmed: nothing was changed")
}

// replay is one run of `uvr replay`.
//
// The sequence, and why the result is exact even with a live projector
// running in another process the whole time:
//
//  1. Capture the end offsets of the events topic. Run the real projector
//     (Main with the Projector role) on a fresh database migrated to the
//     current schema, in a new consumer group from the earliest offset, until
//     the group has committed up to those offsets (offsets are committed only
//     after ClickHouse stored the rows). Then stop consuming, so that its
//     committed offsets say exactly what it projected, and wait until the
//     aggregator recomputed every day those flushes marked dirty (waiting for
//     no dirty day at all would never end under a steady stream of events).
//  2. Swap: one RENAME TABLE moves every projection table of the live
//     database to the backup database and the rebuilt one in its place. The
//     live API and the live projector address tables by name, so from then on
//     they read and write the rebuilt tables.
//  3. Events the live projector consumed between step 1's stop and the swap
//     went into the old tables, which are now in the backup: the rebuilt
//     tables miss them. So the replay's consumer group (which stopped at the
//     end of step 1) runs once more, now on the live database, up to the end
//     offsets read after the swap. Everything it projects twice alongside the
//     live projector is harmless: projections are idempotent by event
//     identity and version, and a recompute of a day is a whole-day rewrite.
//     Dirty days left by step 1 moved with dirty_days and are recomputed here.
//
// Known limit: a batch the live projector was writing at the very moment of
// the swap may have written its by-day rows before the rename and its raw rows
// after it; step 3 rewrites the new by-day row (the raw table already holds
// its version), but for a correction that moved the event to another day the
// old day's tombstone is missing, and reconcile (which recomputes from the
// by-day rows) cannot see it. Replaying with the live projector stopped rules
// it out.
type replay struct {
	cfg         Config
	log         *slog.Logger
	out, errOut io.Writer
	stamp       string // unix seconds at the start: names the databases and the group
}

func (r replay) rebuiltDB() string { return r.cfg.ClickHouseDatabase + "_replay_" + r.stamp }
func (r replay) backupDB() string  { return r.cfg.ClickHouseDatabase + "_backup_" + r.stamp }
func (r replay) group() string     { return r.cfg.ConsumerGroup + "-replay-" + r.stamp }

func (r replay) run(ctx context.Context) (err error) {
	if len(r.cfg.KafkaBrokers) == 0 {
		return errors.New("replay needs the Kafka brokers of the events topic: set --kafka-brokers or UVR_KAFKA_BROKERS")
	}
	// A replay rebuilds from the first offset: refuse before touching ClickHouse if the log
	// no longer starts there.
	if err := kafka.CheckHistory(ctx, r.cfg.KafkaBrokers, r.cfg.KafkaSecurity, r.group(), r.cfg.EventsTopic); err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	live := r.cfg.ClickHouseDatabase
	conn, err := chstore.Open(ctx, r.cfg.clickhouse(live))
	if err != nil {
		return fmt.Errorf("open clickhouse at %s: %w", r.cfg.ClickHouseAddr, err)
	}
	defer conn.Close()
	// The live database must have every table the rebuilt one gets.
	if err := chstore.Migrate(ctx, conn, live, r.log); err != nil {
		return fmt.Errorf("migrate clickhouse database %s: %w", live, err)
	}
	if _, err := chstore.ProjectionTables(ctx, conn, live); err != nil {
		return err
	}
	swapped := false
	defer func() {
		if err == nil || swapped {
			return
		}
		// Nothing live changed: drop what was rebuilt so far.
		dropCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if dropErr := conn.Exec(dropCtx, "DROP DATABASE IF EXISTS "+r.rebuiltDB()); dropErr != nil {
			r.log.Warn("drop the rebuilt database", "database", r.rebuiltDB(), "error", dropErr.Error())
		}
	}()

	targets, err := r.endOffsets(ctx)
	if err != nil {
		return err
	}
	r.log.Info("replay started", "topic", r.cfg.EventsTopic, "events", sum(targets), "database", r.rebuiltDB(), "group", r.group())
	rebuilt := r.cfg
	rebuilt.ClickHouseDatabase = r.rebuiltDB()
	if err := r.project(ctx, rebuilt, targets, "rebuilding"); err != nil {
		return err
	}

	tables, err := chstore.ProjectionTables(ctx, conn, r.rebuiltDB())
	if err != nil {
		return err
	}
	if err := chstore.Swap(ctx, conn, live, r.rebuiltDB(), r.backupDB(), tables); err != nil {
		return err
	}
	swapped = true
	r.log.Info("swapped", "tables", strings.Join(tables, ","), "live", live, "backup", r.backupDB())
	// What stays in the rebuilt database are fresh copies of the kept tables.
	if err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+r.rebuiltDB()); err != nil {
		r.log.Warn("drop the emptied rebuilt database", "database", r.rebuiltDB(), "error", err.Error())
	}

	if targets, err = r.endOffsets(ctx); err != nil {
		return err
	}
	if err := r.project(ctx, r.cfg, targets, "catching up after the swap"); err != nil {
		return fmt.Errorf("the rebuilt tables are live, but catching up after the swap failed (run `uvr replay` again): %w", err)
	}
	_, err = fmt.Fprintf(r.out, "replayed %d events of %s into %d tables of %s (%s)\nthe old tables are in database %s; drop it once satisfied:\n  clickhouse-client -q 'DROP DATABASE %s'\n",
		sum(targets), r.cfg.EventsTopic, len(tables), live, strings.Join(tables, ", "), r.backupDB(), r.backupDB())
	return err
}

// endOffsets reads the next offset of every partition of the events topic,
// with a few tries: after the swap, giving up would leave the catch-up undone.
func (r replay) endOffsets(ctx context.Context) (map[int]int64, error) {
	var errs []error
	for attempt := 1; ; attempt++ {
		lags, err := kafka.GroupLag(ctx, r.cfg.KafkaBrokers, r.cfg.KafkaSecurity, r.group(), r.cfg.EventsTopic)
		if err == nil {
			out := make(map[int]int64, len(lags))
			for _, l := range lags {
				out[l.Partition] = l.End
			}
			return out, nil
		}
		errs = append(errs, err)
		if attempt == attempts {
			return nil, fmt.Errorf("end offsets of %s: %w", r.cfg.EventsTopic, errors.Join(errs...))
		}
		if err := r.pause(ctx, "read the end offsets", attempt, err); err != nil {
			return nil, err
		}
	}
}

// pause logs a failed attempt and waits a little longer after each.
func (r replay) pause(ctx context.Context, what string, attempt int, err error) error {
	r.log.Warn(what+"; retrying", "attempt", attempt, "error", err.Error())
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(time.Duration(attempt) * time.Second):
		return nil
	}
}

func sum(m map[int]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

// project runs the projector in the replay's consumer group on cfg's
// database until the group committed up to targets and the aggregator has no
// dirty day left, then stops it.
func (r replay) project(ctx context.Context, cfg Config, targets map[int]int64, phase string) (err error) {
	cfg.ConsumerGroup = r.group()
	cfg.MetricsAddr = "127.0.0.1:0" // next to a live projector's metrics port
	m, err := r.open(ctx, cfg, phase)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, m.Close()) }()
	failed := make(chan error, 1)
	waitCtx, stop := context.WithCancel(ctx)
	defer stop()
	go func() { failed <- m.Wait(waitCtx) }()

	var (
		progress *progress // from the first offsets read: they say where the group starts
		start    int64
	)
	defer func() {
		if progress != nil {
			progress.finish()
		}
	}()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	caughtUp := false
	var stoppedAt int64 // when consumption stopped, Unix nanoseconds
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-failed:
			return fmt.Errorf("replay projector stopped: %w", err)
		case <-tick.C:
		}
		if !caughtUp {
			// A slow broker answer is retried on the next tick; the
			// projector keeps running meanwhile.
			done, err := r.committed(ctx, targets)
			if err != nil {
				r.log.Warn("read the replay group's offsets", "error", err.Error())
				continue
			}
			if progress == nil {
				start = done
				progress = newProgress(r.errOut, r.log, phase, sum(targets)-start)
			}
			progress.set(done - start)
			caughtUp = done == sum(targets)
			if !caughtUp {
				continue
			}
			// Stop consuming (the last rows are flushed and the offsets
			// committed), so that what this group projected is fixed; the
			// aggregator keeps running until it recomputed every day these
			// flushes marked. Days other writers mark after that are theirs.
			if err := m.stopConsuming(); err != nil {
				return fmt.Errorf("stop the replay consumer: %w", err)
			}
			stoppedAt = time.Now().UnixNano()
		}
		pending, err := m.aggregator.PendingBefore(ctx, stoppedAt)
		if err != nil {
			r.log.Warn("count dirty days", "error", err.Error())
			continue
		}
		if pending == 0 {
			return nil
		}
	}
}

// stopConsuming stops the projector's consumption: the router, then the
// batcher (which flushes what it holds), then the subscriber (which commits
// the acked offsets). The aggregator keeps running; Close stops the rest
// (each of these Close calls is idempotent).
func (m *Main) stopConsuming() error {
	return errors.Join(m.router.Close(), m.batcher.Close(), m.subscriber.Close())
}

// attempts is how often the replay tries a broker or ClickHouse request
// before giving up: after the swap a failure would leave the catch-up undone,
// so a transient error gets a few more tries.
const attempts = 4

func (r replay) open(ctx context.Context, cfg Config, phase string) (*Main, error) {
	var errs []error
	for attempt := 1; ; attempt++ {
		m := NewMain(cfg, Roles{Projector: true, Replay: true}, r.log.With("phase", phase))
		err := m.Open(ctx) // Open closes what it opened when it fails
		if err == nil {
			return m, nil
		}
		errs = append(errs, err)
		if attempt == attempts {
			return nil, fmt.Errorf("start the replay projector on %s: %w", cfg.ClickHouseDatabase, errors.Join(errs...))
		}
		if err := r.pause(ctx, "start the replay projector", attempt, err); err != nil {
			return nil, err
		}
	}
}

// committed sums, over the partitions of targets, the replay group's
// committed offset capped at the target: the events projected so far.
func (r replay) committed(ctx context.Context, targets map[int]int64) (int64, error) {
	lags, err := kafka.GroupLag(ctx, r.cfg.KafkaBrokers, r.cfg.KafkaSecurity, r.group(), r.cfg.EventsTopic)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, l := range lags {
		n += min(max(l.Committed, 0), targets[l.Partition])
	}
	return n, nil
}

// progress shows events projected / total: a bar with the rate on a
// terminal, otherwise (CI, a log file) a structured line every few seconds.
type progress struct {
	bar   *progressbar.ProgressBar
	log   *slog.Logger
	phase string
	total int64
	start time.Time
	last  time.Time
	done  int64
}

// plainEvery is how often a non-terminal gets a progress line.
const plainEvery = 2 * time.Second

func newProgress(w io.Writer, log *slog.Logger, phase string, total int64) *progress {
	p := &progress{log: log, phase: phase, total: total, start: time.Now()}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.bar = progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription(phase),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetItsString("events"),
			progressbar.OptionThrottle(200*time.Millisecond),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }),
		)
	}
	return p
}

func (p *progress) set(done int64) {
	p.done = done
	if p.bar != nil {
		_ = p.bar.Set64(done)
		return
	}
	if time.Since(p.last) >= plainEvery {
		p.last = time.Now()
		p.line()
	}
}

func (p *progress) line() {
	rate := 0.0 // events per second, for people: not money
	if s := time.Since(p.start).Seconds(); s > 0 {
		rate = float64(p.done) / s
	}
	p.log.Info("replay progress", "phase", p.phase, "events", p.done, "total", p.total, "events_per_second", int64(rate))
}

func (p *progress) finish() {
	if p.bar != nil {
		_ = p.bar.Finish()
		return
	}
	p.line()
}

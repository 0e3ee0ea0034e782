package syncer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/uvrhq/uvr/connectors/source"
	"github.com/uvrhq/uvr/pipeline/event"
)

// RunError is the error of a run that did not succeed. Its message is the
// run's redacted error; Unwrap gives the cause (source.IsAuth works on it),
// which is not redacted and must not be shown or logged.
type RunError struct {
	Run   Run
	cause error
}

func (e *RunError) Error() string {
	return fmt.Sprintf("sync run %s of service %s %s: %s", e.Run.ID, e.Run.ServiceID, e.Run.Status, e.Run.Error)
}

func (e *RunError) Unwrap() error { return e.cause }

// errorKind classifies a failed run's cause for uvr_sync_errors_total.
type kindError struct {
	kind string
	err  error
}

func (e *kindError) Error() string { return e.err.Error() }
func (e *kindError) Unwrap() error { return e.err }

func withKind(kind string, err error) error { return &kindError{kind: kind, err: err} }

func kindOf(err error) string {
	if source.IsAuth(err) {
		return errKindAuth
	}
	var k *kindError
	if errors.As(err, &k) {
		return k.kind
	}
	return errKindSource
}

// runState is a run in progress: its record and its emitter's counters.
type runState struct {
	e       *Engine
	service Service
	log     *slog.Logger

	mu           sync.Mutex
	run          Run
	lines        logRing
	pages        int
	lastProgress time.Time
}

func (r *runState) logf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines.add(r.e.cfg.Now(), "%s", r.e.redact(fmt.Sprintf(format, args...)))
}

// snapshot is the run record as it stands.
func (r *runState) snapshot() Run {
	r.mu.Lock()
	defer r.mu.Unlock()
	run := r.run
	run.Log = r.lines.snapshot()
	return run
}

func (r *runState) save(ctx context.Context) error {
	run := r.snapshot()
	run.rev = r.e.nextRev(run.ID)
	if err := r.e.cfg.Runs.Save(ctx, run); err != nil {
		r.e.metrics.errors.WithLabelValues(run.ServiceType, errKindStore).Inc()
		return withKind(errKindStore, err)
	}
	return nil
}

// run executes one sync run with the given id.
func (e *Engine) run(ctx context.Context, runID, serviceID string, trigger Trigger) (Run, error) {
	if !trigger.valid() {
		return Run{}, fmt.Errorf("sync service %s: unknown trigger %q", serviceID, trigger)
	}
	unlock, err := e.lock(ctx, serviceID)
	if err != nil {
		return Run{}, fmt.Errorf("sync service %s: waiting for its running sync: %w", serviceID, err)
	}
	defer unlock()
	defer e.forgetRev(runID)

	r := &runState{
		e:     e,
		log:   e.log.With("run_id", runID, "service_id", serviceID, "trigger", string(trigger)),
		lines: logRing{n: e.cfg.LogLines},
		run: Run{
			ID: runID, ServiceID: serviceID, Trigger: trigger, Status: StatusRunning,
			StartedAt: e.cfg.Now(), Instance: e.cfg.Instance,
		},
	}

	svc, err := e.service(ctx, serviceID)
	if err != nil {
		if errors.Is(err, ErrServiceNotFound) {
			err = withKind(errKindNotFound, err)
		}
		// Recorded too: whoever requested this run may be waiting for its record.
		return e.finish(ctx, r, err)
	}
	r.service = svc
	r.run.ServiceType = svc.Type
	r.log = r.log.With("service_type", svc.Type)

	prev := e.markInterrupted(ctx, r)
	r.logf("sync started (%s) on %s", trigger, e.cfg.Instance)
	if prev != nil {
		r.logf("resuming this run: its attempt on %s did not finish (%s%s)", prev.Instance, prev.Status, prefixed(": ", prev.Error))
	}
	if err := r.save(ctx); err != nil {
		r.log.Error("sync run not started: its record could not be written", "error", err)
		return Run{}, fmt.Errorf("start sync run of service %s: %w", serviceID, err)
	}
	e.metrics.running.WithLabelValues(svc.Type).Inc()
	defer e.metrics.running.WithLabelValues(svc.Type).Dec()
	r.log.Info("sync run started")

	return e.finish(ctx, r, e.read(ctx, r))
}

// read loads the source and its cursor and runs Source.Read.
func (e *Engine) read(ctx context.Context, r *runState) error {
	src, err := e.cfg.Services.SourceFor(ctx, r.run.ServiceID)
	if err != nil {
		if errors.Is(err, ErrServiceNotFound) {
			return withKind(errKindNotFound, err)
		}
		return fmt.Errorf("build the source: %w", err)
	}
	cursor, err := e.cfg.State.Load(ctx, r.run.ServiceID)
	if err != nil {
		return withKind(errKindState, err)
	}
	if cursor == nil {
		r.logf("no saved cursor: reading from the start")
	} else {
		r.logf("resuming from the saved cursor")
	}
	em := &emitter{r: r}
	if err := src.Read(ctx, cursor, em); err != nil {
		return err
	}
	return nil
}

// finish records the outcome of a run: its final record, the service's sync
// status, metrics, and wakes the waiters.
func (e *Engine) finish(ctx context.Context, r *runState, cause error) (Run, error) {
	now := e.cfg.Now()
	r.mu.Lock()
	r.run.FinishedAt = now
	switch {
	case cause == nil && ctx.Err() == nil:
		r.run.Status = StatusSucceeded
	case ctx.Err() != nil:
		r.run.Status = StatusCancelled
		if cause == nil {
			cause = ctx.Err()
		}
		if c := context.Cause(ctx); c != nil && !errors.Is(cause, c) {
			cause = fmt.Errorf("%w (%v)", cause, c)
		}
	default:
		r.run.Status = StatusFailed
	}
	if cause != nil {
		r.run.Error = e.redact(cause.Error())
	}
	run := r.run
	r.mu.Unlock()

	switch run.Status {
	case StatusSucceeded:
		r.logf("sync succeeded: %d records read, %d events emitted, %d skipped", run.RecordsRead, run.EventsEmitted, run.RecordsSkipped)
	default:
		r.logf("sync %s: %s", run.Status, run.Error)
	}

	// The final writes happen even when ctx was cancelled: a cancelled run
	// must still say so. They are bounded.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finalWriteTimeout)
	defer cancel()
	storeErr := r.save(wctx)
	if storeErr != nil {
		r.log.Error("sync run record could not be written", "error", storeErr)
	}
	e.updateService(wctx, r, run, cause)

	kind := ""
	if cause != nil && run.Status == StatusFailed {
		kind = kindOf(cause)
		e.metrics.errors.WithLabelValues(run.ServiceType, kind).Inc()
	}
	e.metrics.runs.WithLabelValues(run.ServiceType, string(run.Trigger), string(run.Status)).Inc()
	duration := run.Duration(now)
	if run.ServiceType != "" {
		e.metrics.duration.WithLabelValues(run.ServiceType).Observe(duration.Seconds())
	}
	if run.Status == StatusSucceeded {
		e.metrics.lastSuccess.WithLabelValues(run.ServiceType, run.ServiceID).Set(float64(now.Unix()))
	}
	level := slog.LevelInfo
	if run.Status == StatusFailed {
		level = slog.LevelWarn
	}
	r.log.Log(ctx, level, "sync run finished", "status", string(run.Status), "duration", duration,
		"records_read", run.RecordsRead, "events_emitted", run.EventsEmitted, "records_skipped", run.RecordsSkipped,
		"error_kind", kind, "error", run.Error)
	e.notifyFinished()

	final := r.snapshot()
	if run.Status == StatusSucceeded {
		if storeErr != nil {
			return final, fmt.Errorf("sync run %s of service %s succeeded but its record was not written: %w", run.ID, run.ServiceID, storeErr)
		}
		return final, nil
	}
	return final, &RunError{Run: final, cause: cause}
}

// updateService records the outcome on the service: a success sets its last
// sync (and lifts an error status); refused credentials set status error. Any
// other failure leaves the service as it is: the next run may well succeed.
func (e *Engine) updateService(ctx context.Context, r *runState, run Run, cause error) {
	if run.ServiceType == "" { // the service was not found
		return
	}
	svc := r.service
	var lastSync *time.Time
	status := svc.Status
	switch {
	case run.Status == StatusSucceeded:
		t := run.FinishedAt
		lastSync = &t
		if status == ServiceError || status == "" {
			status = ServiceActive
		}
	case run.Status == StatusFailed && source.IsAuth(cause):
		lastSync, status = svc.LastSync, ServiceError
	default:
		return
	}
	err := e.cfg.Services.UpdateSync(ctx, run.ServiceID, lastSync, status)
	if errors.Is(err, ErrServiceNotFound) {
		// Deleted while it synced: it stays deleted (the registry never
		// writes a deleted service back).
		r.log.Info("service deleted during its sync: its sync status is not recorded")
		return
	}
	if err != nil {
		r.log.Error("service sync status could not be updated", "status", status, "error", e.redact(err.Error()))
	}
}

// markInterrupted closes the records of the service's runs still "running":
// this instance holds the service's requests now, so whoever ran them
// stopped without finishing (a crash or a kill). It returns the earlier
// attempt of this very run (a redelivered request), if there is one.
func (e *Engine) markInterrupted(ctx context.Context, r *runState) *Run {
	stale, err := e.cfg.Runs.Find(ctx, RunQuery{ServiceID: r.run.ServiceID, Statuses: []Status{StatusRunning}})
	if err != nil {
		r.log.Warn("cannot look for interrupted sync runs", "error", err)
		return nil
	}
	var prev *Run
	if same, err := e.cfg.Runs.Find(ctx, RunQuery{IDs: []string{r.run.ID}}); err == nil && len(same) > 0 {
		prev = &same[0]
	}
	for _, old := range stale {
		if old.ID == r.run.ID {
			continue // an earlier attempt of this very run: replaced below
		}
		old.Status = StatusCancelled
		old.FinishedAt = e.cfg.Now()
		old.Error = "interrupted: instance " + old.Instance + " stopped before the run ended"
		old.rev = max(e.cfg.Now().UnixNano(), old.rev+1)
		if err := e.cfg.Runs.Save(ctx, old); err != nil {
			r.log.Warn("cannot mark an interrupted sync run", "stale_run_id", old.ID, "error", err)
			continue
		}
		r.log.Info("marked an interrupted sync run cancelled", "stale_run_id", old.ID, "stale_instance", old.Instance)
	}
	return prev
}

// emitter is the source.Emitter of one run.
type emitter struct {
	r *runState
}

var _ source.Emitter = (*emitter)(nil)

// Emit validates events, publishes the valid ones and, only once Kafka
// acknowledged them, saves next. An invalid event is skipped like a
// malformed record (named, with its reason): the rest of the page and of the
// sync go on.
func (em *emitter) Emit(ctx context.Context, events []event.Event, next source.Cursor) error {
	r, e := em.r, em.r.e
	if err := ctx.Err(); err != nil {
		return err
	}
	valid := make([]event.Event, 0, len(events))
	for _, ev := range events {
		if err := ev.Validate(); err != nil {
			em.skip(fmt.Sprintf("event %s/%s", ev.Source, ev.ID), err)
			continue
		}
		valid = append(valid, ev)
	}
	r.mu.Lock()
	r.pages++
	page := r.pages
	r.run.RecordsRead += uint64(len(events))
	r.mu.Unlock()
	e.metrics.read.WithLabelValues(r.run.ServiceType).Add(float64(len(events)))

	if len(valid) > 0 {
		msgs, err := event.Messages(valid)
		if err != nil {
			return withKind(errKindPublish, fmt.Errorf("page %d: encode events: %w", page, err))
		}
		for _, m := range msgs {
			m.SetContext(ctx)
		}
		if err := e.cfg.Publisher.Publish(e.cfg.EventsTopic, msgs...); err != nil {
			return withKind(errKindPublish, fmt.Errorf("page %d: publish %d events: %w", page, len(msgs), err))
		}
		r.mu.Lock()
		r.run.EventsEmitted += uint64(len(valid))
		r.mu.Unlock()
		e.metrics.emitted.WithLabelValues(r.run.ServiceType).Add(float64(len(valid)))
	}
	// Only now: a crash before this line repeats the page, never skips it.
	// A run whose context ended saves no more cursors: its request's
	// partition may already have a new owner, which is reading from the saved
	// cursor and saving its own; a late save of ours could move it back.
	if err := ctx.Err(); err != nil {
		return err
	}
	if next != nil {
		if err := e.cfg.State.Save(ctx, r.run.ServiceID, next, e.cfg.Now()); err != nil {
			return withKind(errKindState, fmt.Errorf("page %d: %w", page, err))
		}
	}
	r.logf("page %d: %d events published, %d invalid, cursor %s", page, len(valid), len(events)-len(valid), savedOrKept(next))

	r.mu.Lock()
	due := e.cfg.Now().Sub(r.lastProgress) >= e.cfg.ProgressInterval
	if due {
		r.lastProgress = e.cfg.Now()
	}
	r.mu.Unlock()
	if due {
		if err := r.save(ctx); err != nil {
			r.log.Warn("sync run progress not recorded", "error", err)
		}
	}
	return nil
}

func prefixed(prefix, s string) string {
	if s == "" {
		return ""
	}
	return prefix + s
}

func savedOrKept(next source.Cursor) string {
	if next == nil {
		return "unchanged"
	}
	return "saved"
}

// Skip counts a record that could not be turned into events and logs its
// name and reason (redacted) in the run.
func (em *emitter) Skip(record string, reason error) {
	em.skip(record, reason)
	r := em.r
	r.mu.Lock()
	r.run.RecordsRead++
	r.mu.Unlock()
	r.e.metrics.read.WithLabelValues(r.run.ServiceType).Inc()
}

// skip records a skipped record or event (counted as read by its caller).
func (em *emitter) skip(record string, reason error) {
	r := em.r
	why := "no reason given"
	if reason != nil {
		why = reason.Error()
	}
	r.mu.Lock()
	r.run.RecordsSkipped++
	r.mu.Unlock()
	r.e.metrics.skipped.WithLabelValues(r.run.ServiceType).Inc()
	r.logf("skipped %s: %s", record, why)
	r.log.Warn("record skipped", "record", r.e.redact(record), "reason", r.e.redact(why))
}

package syncer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/uvrhq/uvr/pipeline/event"
	"github.com/uvrhq/uvr/pipeline/router"
)

// request is the payload of a sync request message. RunID is chosen by the
// requester, so that it can wait for that run's record.
type request struct {
	RunID       string    `json:"run_id"`
	ServiceID   string    `json:"service_id"`
	Trigger     Trigger   `json:"trigger"`
	RequestedAt time.Time `json:"requested_at"`
}

// Request asks for a sync of each service, wherever the service's requests
// are consumed, and returns the run ids in the order of serviceIDs. It
// returns once Kafka acknowledged every request; the runs happen later.
func (e *Engine) Request(ctx context.Context, serviceIDs []string, trigger Trigger) ([]string, error) {
	if !trigger.valid() {
		return nil, fmt.Errorf("request syncs: unknown trigger %q", trigger)
	}
	if len(serviceIDs) == 0 {
		return nil, nil
	}
	now := e.cfg.Now().UTC()
	ids := make([]string, len(serviceIDs))
	msgs := make([]*message.Message, len(serviceIDs))
	for i, sid := range serviceIDs {
		if sid == "" {
			return nil, errors.New("request syncs: empty service id")
		}
		ids[i] = newID()
		b, err := json.Marshal(request{RunID: ids[i], ServiceID: sid, Trigger: trigger, RequestedAt: now})
		if err != nil {
			return nil, fmt.Errorf("request sync of service %s: %w", sid, err)
		}
		msg := message.NewMessage(watermill.NewUUID(), b)
		// Keyed by service: one service's requests share a partition, hence one
		// consumer, hence one sync at a time.
		msg.Metadata.Set(event.KeyMetadata, sid)
		msg.SetContext(ctx)
		msgs[i] = msg
	}
	if err := e.cfg.Publisher.Publish(e.cfg.RequestsTopic, msgs...); err != nil {
		return nil, fmt.Errorf("request syncs of %d services: %w", len(serviceIDs), err)
	}
	return ids, nil
}

// RequestSync asks for a sync of one known service (the "Sync now" button)
// and returns its run id; an unknown service is an error wrapping
// ErrServiceNotFound.
func (e *Engine) RequestSync(ctx context.Context, serviceID string, trigger Trigger) (string, error) {
	if _, err := e.service(ctx, serviceID); err != nil {
		return "", err
	}
	ids, err := e.Request(ctx, []string{serviceID}, trigger)
	if err != nil {
		return "", err
	}
	return ids[0], nil
}

// AddHandler consumes sync requests from sub on the router r. sub must be a
// pipeline/kafka Subscriber of ConsumerGroup with MaxInFlight 1 (the
// default) — one request of a partition at a time is what makes a service's
// syncs sequential — and preferably CommitInterval kafka.CommitEveryAck, so
// that a restart does not repeat a finished sync whose commit was pending.
func (e *Engine) AddHandler(r *message.Router, sub message.Subscriber) {
	r.AddConsumerHandler("sync-requests", e.cfg.RequestsTopic, sub, e.HandleRequest)
}

// HandleRequest runs the sync a request message asks for. A malformed
// request is a permanent error (poison topic). A finished run, failed or not,
// acknowledges the request: the failure is recorded and the next schedule
// tries again. A run cancelled with its message's context (the partition
// moved, or shutdown) returns the context's error, so the request is
// redelivered to the partition's next owner, which resumes from the cursor.
func (e *Engine) HandleRequest(msg *message.Message) error {
	ctx := msg.Context()
	var req request
	if err := json.Unmarshal(msg.Payload, &req); err != nil {
		return router.Permanent(fmt.Errorf("decode sync request %s: %w", msg.UUID, err))
	}
	if req.RunID == "" || req.ServiceID == "" || !req.Trigger.valid() {
		return router.Permanent(fmt.Errorf("sync request %s: run_id, service_id and a known trigger are required", msg.UUID))
	}
	log := e.log.With("run_id", req.RunID, "service_id", req.ServiceID, "trigger", string(req.Trigger))

	skip, err := e.skipRequest(ctx, req)
	if err != nil {
		return err
	}
	if skip == skipDeleted {
		if err := e.recordDeleted(ctx, req); err != nil {
			return err // retried: the request is dropped once its record is written
		}
	}
	if skip != "" {
		e.metrics.dropped.WithLabelValues(skip).Inc()
		log.Info("sync request skipped", "reason", skip)
		return nil
	}

	if err := e.awaitHandover(ctx, req.RunID, log); err != nil {
		return fmt.Errorf("sync run %s: %w", req.RunID, err)
	}
	_, err = e.run(ctx, req.RunID, req.ServiceID, req.Trigger)
	if ctx.Err() != nil {
		return fmt.Errorf("sync run %s cancelled: %w", req.RunID, ctx.Err())
	}
	var runErr *RunError
	if err != nil && !errors.As(err, &runErr) {
		return err // no run record could be written: retry
	}
	return nil
}

// awaitHandover waits, up to HandoverWait, while another instance's attempt
// of this run is still recorded as running. A partition moves as soon as its
// old owner rejoins the group, and that owner's run, cancelled, may still be
// writing its last page or record: waiting for its "cancelled" closes that
// window, so one service's syncs never overlap on a graceful handover. If the
// record stays "running" (the old owner died), the run goes ahead after
// HandoverWait and marks the old attempt interrupted.
func (e *Engine) awaitHandover(ctx context.Context, runID string, log *slog.Logger) error {
	deadline := e.cfg.Now().Add(e.cfg.HandoverWait)
	for {
		prev, err := e.cfg.Runs.Find(ctx, RunQuery{IDs: []string{runID}})
		if err != nil {
			return err
		}
		if len(prev) == 0 || prev[0].Status != StatusRunning || prev[0].Instance == e.cfg.Instance {
			return nil
		}
		if !e.cfg.Now().Before(deadline) {
			log.Warn("an earlier attempt of this run is still recorded as running; going ahead", "instance", prev[0].Instance)
			return nil
		}
		t := time.NewTimer(e.cfg.PollInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// skipDeleted is the reason a request of a service that no longer exists is
// dropped: deleted after the request was made (a scheduled request still on
// the topic, a "sync all" racing a delete).
const skipDeleted = "deleted"

// recordDeleted records the request of a deleted service as a failed run
// that never started, so whoever waits for that run (Wait, SyncAll) learns
// its end, and a redelivery finds it done.
func (e *Engine) recordDeleted(ctx context.Context, req request) error {
	now := e.cfg.Now()
	run := Run{
		ID: req.RunID, ServiceID: req.ServiceID, Trigger: req.Trigger, Status: StatusFailed,
		StartedAt: now, FinishedAt: now, Instance: e.cfg.Instance,
		Error: "not run: the service was deleted",
	}
	run.rev = e.nextRev(run.ID)
	defer e.forgetRev(run.ID)
	if err := e.cfg.Runs.Save(ctx, run); err != nil {
		return fmt.Errorf("sync request %s of deleted service %s: record it: %w", req.RunID, req.ServiceID, err)
	}
	e.notifyFinished()
	return nil
}

// skipRequest says why a request is not run ("" to run it).
func (e *Engine) skipRequest(ctx context.Context, req request) (string, error) {
	now := e.cfg.Now()
	if age := now.Sub(req.RequestedAt); age > e.cfg.RequestMaxAge {
		return "stale", nil
	}
	done, err := e.cfg.Runs.Find(ctx, RunQuery{IDs: []string{req.RunID}})
	if err != nil {
		return "", fmt.Errorf("sync request %s: %w", req.RunID, err)
	}
	if len(done) > 0 && done[0].Status.settled() {
		return "done", nil // a redelivery of a request whose run ended
	}
	svc, err := e.service(ctx, req.ServiceID)
	if errors.Is(err, ErrServiceNotFound) {
		return skipDeleted, nil
	}
	if err != nil {
		return "", fmt.Errorf("sync request %s: %w", req.RunID, err)
	}
	// A cancelled (or interrupted) attempt is run again under the same id,
	// from the saved cursor: whoever waits for the run sees its real outcome.
	if req.Trigger != TriggerSchedule {
		return "", nil
	}
	if !svc.Syncable() {
		return "paused", nil
	}
	last, err := e.cfg.Runs.Find(ctx, RunQuery{
		ServiceID: req.ServiceID, Statuses: []Status{StatusSucceeded, StatusFailed}, Limit: 1,
	})
	if err != nil {
		return "", fmt.Errorf("sync request %s: last run of service %s: %w", req.RunID, req.ServiceID, err)
	}
	if len(last) > 0 && now.Sub(last[0].FinishedAt) < svc.Interval()/2 {
		return "duplicate", nil
	}
	return "", nil
}

// Wait returns the runs of ids once every one has succeeded or failed, or
// what is known of them when ctx ends (then with ctx's error). A cancelled
// run is waited for: its request is redelivered and the run resumed under
// the same id. Runs may execute on any instance: Wait reads the run store
// every PollInterval, and at once when a run ends on this instance. A run
// not started yet is absent from the result.
func (e *Engine) Wait(ctx context.Context, ids []string) ([]Run, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	ticker := time.NewTicker(e.cfg.PollInterval)
	defer ticker.Stop()
	var known []Run
	for {
		signal := e.finishedSignal()
		runs, err := e.cfg.Runs.Find(ctx, RunQuery{IDs: ids})
		switch {
		case err == nil:
			known = runs
		case ctx.Err() == nil:
			return nil, fmt.Errorf("wait for %d sync runs: %w", len(ids), err)
		}
		finished := 0
		for _, r := range known {
			if r.Status.settled() {
				finished++
			}
		}
		if finished == len(ids) {
			return known, nil
		}
		select {
		case <-ctx.Done():
			return known, ctx.Err()
		case <-signal:
		case <-ticker.C:
		}
	}
}

// Summary is the outcome of SyncAll.
type Summary struct {
	// Status: "success" (every run succeeded), "partial" (some failed),
	// "failed" (all failed) or "timeout" (ctx ended first; the runs go on).
	Status    string
	Succeeded int
	Failed    int
	Pending   int // not started, running or cancelled (to be resumed) when ctx ended
	RunIDs    []string
}

// Summary statuses.
const (
	SummarySuccess = "success"
	SummaryPartial = "partial"
	SummaryFailed  = "failed"
	SummaryTimeout = "timeout"
)

// expired reports whether ctx has ended or its deadline has passed. The
// ClickHouse driver turns a context deadline into the connection's read
// deadline, so a query cut by it fails with "i/o timeout" a moment before
// ctx.Err() says so; both mean the wait is over, not that reading failed.
func expired(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	deadline, ok := ctx.Deadline()
	return ok && !time.Now().Before(deadline)
}

// requestBudget bounds listing services and publishing their requests.
const requestBudget = 30 * time.Second

// SyncAll requests a sync of every syncable (not paused) service and waits
// until their runs finished or ctx ends; a timeout is not an error.
//
// ctx's deadline is the wait: listing and requesting get a bounded budget of
// their own, so a short wait (or a slow broker) never turns into "the syncs
// could not be requested" — the requests are made, the runs go on.
func (e *Engine) SyncAll(ctx context.Context, trigger Trigger) (Summary, error) {
	reqCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), requestBudget)
	defer cancel()
	all, err := e.cfg.Services.List(reqCtx)
	if err != nil {
		return Summary{}, fmt.Errorf("sync all: list services: %w", err)
	}
	var ids []string
	for _, s := range all {
		if s.Syncable() {
			ids = append(ids, s.ID)
		}
	}
	runIDs, err := e.Request(reqCtx, ids, trigger)
	if err != nil {
		return Summary{}, fmt.Errorf("sync all: %w", err)
	}
	runs, err := e.Wait(ctx, runIDs)
	if err != nil && !expired(ctx) {
		return Summary{}, fmt.Errorf("sync all: %w", err)
	}
	sum := Summary{RunIDs: runIDs}
	for _, r := range runs {
		switch r.Status {
		case StatusSucceeded:
			sum.Succeeded++
		case StatusFailed:
			sum.Failed++
		}
	}
	sum.Pending = len(runIDs) - sum.Succeeded - sum.Failed
	switch {
	case sum.Pending > 0:
		sum.Status = SummaryTimeout
	case sum.Failed == 0:
		sum.Status = SummarySuccess
	case sum.Succeeded == 0:
		sum.Status = SummaryFailed
	default:
		sum.Status = SummaryPartial
	}
	return sum, nil
}

// ListRuns returns the service's sync runs (every service's when serviceID
// is empty), newest first, at most limit (0: all).
func (e *Engine) ListRuns(ctx context.Context, serviceID string, limit int) ([]Run, error) {
	runs, err := e.cfg.Runs.Find(ctx, RunQuery{ServiceID: serviceID, Limit: limit})
	if err != nil {
		return nil, fmt.Errorf("list sync runs: %w", err)
	}
	return runs, nil
}

// Package scheduler fires uvr's periodic jobs with gocron: the sync of every
// active service on its interval, a daily aggregate reconciliation and an
// insights job every six hours.
//
// Every instance runs a scheduler; it only publishes sync requests
// (connectors/syncer), and the request consumer group makes one instance run
// each service's syncs, dropping a scheduled request that arrives within half
// the service's interval of its last run. So N schedulers cost N small
// messages per interval, not N syncs. The reconciliation and insights
// callbacks run on every instance too: they must be idempotent or take their
// own lock (their issues plug them in).
package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-co-op/gocron/v2"
	"github.com/jonboulle/clockwork"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/uvrhq/uvr/connectors/syncer"
)

// Defaults applied by New to zero-valued fields.
const (
	DefaultRefreshInterval  = time.Minute
	DefaultInsightsInterval = 6 * time.Hour
	// MinSyncInterval is the shortest sync interval scheduled; shorter ones
	// are raised to it (vendor rate limits, and the request round trip).
	MinSyncInterval = time.Minute
)

// Job names, the values of the job label.
const (
	JobSync      = "sync"
	JobRefresh   = "refresh"
	JobReconcile = "reconcile"
	JobInsights  = "insights"
)

// Services lists the configured services (connectors/services).
type Services interface {
	List(ctx context.Context) ([]syncer.Service, error)
}

// Requester asks for syncs (syncer.Engine.Request): it returns once the
// requests are durable; the syncs happen wherever they are consumed.
type Requester interface {
	Request(ctx context.Context, serviceIDs []string, trigger syncer.Trigger) ([]string, error)
}

// Config configures New.
type Config struct {
	// Disabled schedules nothing (ENABLE_SCHEDULER=false): an instance that
	// serves the API only, or a deployment that triggers syncs from outside.
	Disabled bool

	Services  Services  // required unless Disabled
	Requester Requester // required unless Disabled

	// Reconcile runs daily at ReconcileAt (UTC) and Insights every
	// InsightsInterval; a nil callback is not scheduled. Later issues plug
	// them in (aggregate reconciliation, insight generation).
	Reconcile        func(ctx context.Context) error
	ReconcileAt      time.Duration // time of day, default 02:00
	Insights         func(ctx context.Context) error
	InsightsInterval time.Duration // default 6h

	// RefreshInterval is how often the service list is read again, so that
	// services added, removed, paused or given another interval are picked up.
	RefreshInterval time.Duration

	Clock      clockwork.Clock       // nil: the real clock (tests pass a fake one)
	Logger     *slog.Logger          // nil discards
	Registerer prometheus.Registerer // nil registers no metrics
}

// Validate reports every problem of the config at once.
func (c Config) Validate() error {
	var errs []error
	if !c.Disabled && c.Services == nil {
		errs = append(errs, errors.New("scheduler: Services is required"))
	}
	if !c.Disabled && c.Requester == nil {
		errs = append(errs, errors.New("scheduler: Requester is required"))
	}
	if c.ReconcileAt < 0 || c.ReconcileAt >= 24*time.Hour {
		errs = append(errs, fmt.Errorf("scheduler: reconcile time of day must be in [0, 24h), got %s", c.ReconcileAt))
	}
	if c.InsightsInterval < 0 {
		errs = append(errs, fmt.Errorf("scheduler: insights interval must be ≥ 0, got %s", c.InsightsInterval))
	}
	if c.RefreshInterval < 0 {
		errs = append(errs, fmt.Errorf("scheduler: refresh interval must be ≥ 0, got %s", c.RefreshInterval))
	}
	return errors.Join(errs...)
}

func (c Config) withDefaults() Config {
	if c.ReconcileAt == 0 {
		c.ReconcileAt = 2 * time.Hour
	}
	if c.InsightsInterval == 0 {
		c.InsightsInterval = DefaultInsightsInterval
	}
	if c.RefreshInterval == 0 {
		c.RefreshInterval = DefaultRefreshInterval
	}
	if c.Clock == nil {
		c.Clock = clockwork.NewRealClock()
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.Logger = c.Logger.With("component", "scheduler")
	return c
}

// Scheduler runs the periodic jobs. Create it with New, then Start; Close
// stops it.
type Scheduler struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics
	sched   gocron.Scheduler // nil when disabled

	mu       sync.Mutex
	services map[string]serviceJob // service id → its sync job
	ctx      context.Context       // the jobs' parent, from Start
}

type serviceJob struct {
	job      gocron.Job
	interval time.Duration
}

// New validates cfg and builds the scheduler (nothing runs before Start).
func New(cfg Config) (*Scheduler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	s := &Scheduler{cfg: cfg, log: cfg.Logger, metrics: m, services: map[string]serviceJob{}}
	if cfg.Disabled {
		return s, nil
	}
	s.sched, err = gocron.NewScheduler(
		gocron.WithClock(cfg.Clock),
		gocron.WithLocation(time.UTC),
		gocron.WithLogger(cfg.Logger),
		// No gocron singleton mode: it delays jobs unpredictably under a fake
		// clock (measured: an immediate job first ran 5 minutes late). The
		// callbacks that can be long have their own guard (once).
		gocron.WithStopTimeout(30*time.Second),
	)
	if err != nil {
		return nil, fmt.Errorf("scheduler: %w", err)
	}
	return s, nil
}

// Start schedules the jobs and returns: the service list is read once now
// (each active service's first sync is requested at once, then every
// interval), then every RefreshInterval. ctx is the parent of every job's
// context. With Disabled it schedules nothing.
func (s *Scheduler) Start(ctx context.Context) error {
	if s.sched == nil {
		s.log.Info("scheduler disabled: no sync, reconciliation or insights job is scheduled")
		return nil
	}
	s.mu.Lock()
	s.ctx = ctx
	s.mu.Unlock()

	if _, err := s.sched.NewJob(gocron.DurationJob(s.cfg.RefreshInterval),
		gocron.NewTask(func(ctx context.Context) { s.observe(JobRefresh, s.refresh(ctx)) }),
		gocron.WithName(JobRefresh), gocron.WithContext(ctx),
	); err != nil {
		return fmt.Errorf("schedule the service list refresh: %w", err)
	}
	if s.cfg.Reconcile != nil {
		at := gocron.NewAtTime(uint(s.cfg.ReconcileAt/time.Hour), uint(s.cfg.ReconcileAt%time.Hour/time.Minute), uint(s.cfg.ReconcileAt%time.Minute/time.Second))
		if _, err := s.sched.NewJob(gocron.DailyJob(1, gocron.NewAtTimes(at)),
			gocron.NewTask(once(JobReconcile, s, s.cfg.Reconcile)),
			gocron.WithName(JobReconcile), gocron.WithContext(ctx),
		); err != nil {
			return fmt.Errorf("schedule the reconciliation: %w", err)
		}
	}
	if s.cfg.Insights != nil {
		if _, err := s.sched.NewJob(gocron.DurationJob(s.cfg.InsightsInterval),
			gocron.NewTask(once(JobInsights, s, s.cfg.Insights)),
			gocron.WithName(JobInsights), gocron.WithContext(ctx),
		); err != nil {
			return fmt.Errorf("schedule the insights: %w", err)
		}
	}
	// The first refresh runs here, so that a broken service list shows at
	// start; the scheduler goes on either way and retries every minute.
	err := s.refresh(ctx)
	s.observe(JobRefresh, err)
	s.sched.Start()
	s.log.Info("scheduler started", "refresh_interval", s.cfg.RefreshInterval,
		"reconcile", s.cfg.Reconcile != nil, "insights", s.cfg.Insights != nil)
	if err != nil {
		return fmt.Errorf("scheduler started, but the first service list failed: %w", err)
	}
	return nil
}

// Close stops the jobs and waits for running ones (up to 30 s).
func (s *Scheduler) Close() error {
	if s.sched == nil {
		return nil
	}
	if err := s.sched.Shutdown(); err != nil {
		return fmt.Errorf("scheduler shutdown: %w", err)
	}
	return nil
}

// Jobs lists the names of the scheduled jobs, one "sync" per service.
func (s *Scheduler) Jobs() []string {
	if s.sched == nil {
		return nil
	}
	var names []string
	for _, j := range s.sched.Jobs() {
		names = append(names, j.Name())
	}
	return names
}

// refresh makes the sync jobs match the service list: a job per syncable
// service with its interval; jobs of services removed or paused go.
func (s *Scheduler) refresh(ctx context.Context) error {
	list, err := s.cfg.Services.List(ctx)
	if err != nil {
		return fmt.Errorf("list services: %w", err)
	}
	want := map[string]time.Duration{}
	for _, svc := range list {
		if svc.Syncable() {
			want[svc.ID] = max(svc.Interval(), MinSyncInterval)
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for id, sj := range s.services {
		if _, ok := want[id]; ok {
			continue
		}
		if err := s.sched.RemoveJob(sj.job.ID()); err != nil && !errors.Is(err, gocron.ErrJobNotFound) {
			errs = append(errs, fmt.Errorf("unschedule service %s: %w", id, err))
			continue
		}
		delete(s.services, id)
		s.log.Info("service unscheduled", "service_id", id)
	}
	for id, interval := range want {
		sj, ok := s.services[id]
		switch {
		case !ok:
			// A new service syncs at once, then every interval.
			job, err := s.sched.NewJob(gocron.DurationJob(interval), s.syncTask(id),
				gocron.WithName(JobSync), gocron.WithTags("service:"+id), gocron.WithContext(s.ctx),
				gocron.WithStartAt(gocron.WithStartImmediately()))
			if err != nil {
				errs = append(errs, fmt.Errorf("schedule service %s: %w", id, err))
				continue
			}
			s.services[id] = serviceJob{job: job, interval: interval}
			s.log.Info("service scheduled", "service_id", id, "interval", interval)
		case sj.interval != interval:
			// The next sync comes one new interval from now.
			job, err := s.sched.Update(sj.job.ID(), gocron.DurationJob(interval), s.syncTask(id),
				gocron.WithName(JobSync), gocron.WithTags("service:"+id), gocron.WithContext(s.ctx))
			if err != nil {
				errs = append(errs, fmt.Errorf("reschedule service %s: %w", id, err))
				continue
			}
			s.services[id] = serviceJob{job: job, interval: interval}
			s.log.Info("service rescheduled", "service_id", id, "interval", interval)
		}
	}
	s.metrics.services.Set(float64(len(s.services)))
	return errors.Join(errs...)
}

func (s *Scheduler) syncTask(serviceID string) gocron.Task {
	return gocron.NewTask(func(ctx context.Context) {
		_, err := s.cfg.Requester.Request(ctx, []string{serviceID}, syncer.TriggerSchedule)
		if err != nil {
			err = fmt.Errorf("request the sync of service %s: %w", serviceID, err)
		}
		s.observe(JobSync, err)
	})
}

// once wraps a callback so that a run still going when the next is due
// makes the next one skip (counted with result "skipped") instead of
// running the two together.
func once(job string, s *Scheduler, fn func(context.Context) error) func(context.Context) {
	var running atomic.Bool
	return func(ctx context.Context) {
		if !running.CompareAndSwap(false, true) {
			s.metrics.runs.WithLabelValues(job, "skipped").Inc()
			s.log.Warn("scheduled job skipped: its previous run is still going", "job", job)
			return
		}
		defer running.Store(false)
		s.observe(job, fn(ctx))
	}
}

// observe counts a job run and logs its failure (once, here).
func (s *Scheduler) observe(job string, err error) {
	if err != nil {
		s.metrics.runs.WithLabelValues(job, "error").Inc()
		s.log.Error("scheduled job failed", "job", job, "error", err)
		return
	}
	s.metrics.runs.WithLabelValues(job, "success").Inc()
}

type metrics struct {
	runs     *prometheus.CounterVec
	services prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "uvr_scheduler_job_runs_total",
			Help: "Scheduled job runs by job (sync, refresh, reconcile, insights) and result (success, error, skipped: the previous run was still going). A sync run here is a published request.",
		}, []string{"job", "result"}),
		services: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "uvr_scheduler_services",
			Help: "Services with a scheduled sync on this instance.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.runs, m.services} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register scheduler metrics: %w", err)
		}
	}
	return m, nil
}

package insights

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// Store keeps the flags between runs (the projection layer: the ClickHouse
// table insight_flags). Safe for concurrent use.
type Store interface {
	// Load returns the flags Reconcile needs: every open or acknowledged
	// flag, and the resolved flags whose condition may come back. It may
	// leave out flags resolved long ago: should such a condition return,
	// its flag is created again with the same (deterministic) id and Save
	// replaces the old one.
	Load(ctx context.Context) ([]Flag, error)
	// Save writes flags, each replacing the stored flag of its id when its
	// Version is higher. Each flag is written whole or not at all; after an
	// error some flags may be saved, and the next run converges.
	Save(ctx context.Context, flags []Flag) error
}

// Notifier delivers alerts; the Alerter implements it.
type Notifier interface {
	// Notify is given every active flag after a run, not only the new
	// ones, so that an alert that failed is tried again by the next run;
	// it sends what its channels have not been sent yet. The error reports
	// alerts that could not be delivered (and bookkeeping that failed); it
	// never undoes the run.
	Notify(ctx context.Context, flags []Flag) (DeliveryReport, error)
}

// EvaluatorConfig configures NewEvaluator.
type EvaluatorConfig struct {
	Rules    Config   // thresholds; must be valid
	Source   Source   // required
	Store    Store    // required
	Notifier Notifier // optional: no alerts when nil
	Metrics  *Metrics // optional: unregistered metrics when nil
	Logger   *slog.Logger
}

// Evaluator runs the rules on demand (POST /api/insights/run) and from the
// scheduler (every 6 hours). Safe for concurrent use; runs do not overlap.
type Evaluator struct {
	cfg EvaluatorConfig
	log *slog.Logger
	mu  sync.Mutex
}

// NewEvaluator checks cfg and returns an Evaluator.
func NewEvaluator(cfg EvaluatorConfig) (*Evaluator, error) {
	var errs []error
	if err := cfg.Rules.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("rules: %w", err))
	}
	if cfg.Source == nil {
		errs = append(errs, errors.New("source is required"))
	}
	if cfg.Store == nil {
		errs = append(errs, errors.New("store is required"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("insights evaluator: %w", err)
	}
	if cfg.Metrics == nil {
		cfg.Metrics, _ = NewMetrics(nil) // unregistered: cannot fail
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Evaluator{cfg: cfg, log: cfg.Logger.With("component", "insights")}, nil
}

// RunResult counts what a run did; the API returns it from
// POST /api/insights/run.
type RunResult struct {
	// AsOf is the day evaluated: the rules saw the complete days before it.
	AsOf time.Time `json:"as_of"`
	// InsightsGenerated is the number of findings: active flags after the run.
	InsightsGenerated int `json:"insights_generated"`
	Created           int `json:"created"`
	Reopened          int `json:"reopened"`
	Updated           int `json:"updated"`
	Resolved          int `json:"resolved"`
	AlertsSent        int `json:"alerts_sent"`
	AlertsFailed      int `json:"alerts_failed"`
	AlertsDeferred    int `json:"alerts_deferred"`
}

// Run evaluates the days before now's UTC day: it reads the data through
// Source, evaluates the rules, reconciles with the stored flags, saves the
// changed ones and then notifies. An error of Source or Store fails the run
// and is returned (counted in uvr_insights_runs_total{result="error"}); an
// alert that cannot be delivered does not: it is logged, counted, reported
// in the result and tried again by the next run.
func (e *Evaluator) Run(ctx context.Context, now time.Time) (RunResult, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	started := time.Now()
	res, err := e.run(ctx, now)
	m := e.cfg.Metrics
	m.runSeconds.Observe(time.Since(started).Seconds())
	if err != nil {
		m.runs.WithLabelValues("error").Inc()
		return res, err
	}
	m.runs.WithLabelValues("ok").Inc()
	m.lastSuccess.SetToCurrentTime()
	return res, nil
}

func (e *Evaluator) run(ctx context.Context, now time.Time) (RunResult, error) {
	rules := e.cfg.Rules
	res := RunResult{AsOf: Day(now)}
	w := LastDays(now, rules.DataDays())
	customers, err := e.cfg.Source.CustomerDays(ctx, w)
	if err != nil {
		return res, fmt.Errorf("read customer days %s: %w", w, err)
	}
	var features []FeatureSeries
	if !rules.UnprofitableFeature.Disabled {
		if features, err = e.cfg.Source.FeatureDays(ctx, w); err != nil {
			return res, fmt.Errorf("read feature days %s: %w", w, err)
		}
	}
	findings, err := Evaluate(rules, now, customers, features)
	if err != nil {
		return res, err
	}

	existing, err := e.cfg.Store.Load(ctx)
	if err != nil {
		return res, fmt.Errorf("load flags: %w", err)
	}
	flags, ch := reconcile(existing, findings, now)
	byID := make(map[string]Flag, len(flags))
	for _, f := range flags {
		byID[f.ID] = f
	}
	if changed := ch.Changed(); len(changed) > 0 {
		save := make([]Flag, 0, len(changed))
		for _, id := range changed {
			save = append(save, byID[id])
		}
		slices.SortFunc(save, func(a, b Flag) int { return cmp.Compare(a.ID, b.ID) })
		if err := e.cfg.Store.Save(ctx, save); err != nil {
			return res, fmt.Errorf("save %d flags: %w", len(save), err)
		}
	}

	res.Created, res.Reopened, res.Updated, res.Resolved = len(ch.Created), len(ch.Reopened), len(ch.Updated), len(ch.Resolved)
	m := e.cfg.Metrics
	m.setFlags(flags)
	var active []Flag
	for _, f := range flags {
		if f.Status.Active() {
			active = append(active, f)
		}
	}
	res.InsightsGenerated = len(active)
	for _, id := range slices.Concat(ch.Created, ch.Reopened) {
		f := byID[id]
		m.created.WithLabelValues(string(f.Kind), string(f.Severity)).Inc()
	}
	for _, id := range ch.Resolved {
		m.resolved.WithLabelValues(string(byID[id].Kind)).Inc()
	}

	if e.cfg.Notifier != nil && len(active) > 0 {
		rep, err := e.cfg.Notifier.Notify(ctx, active)
		res.AlertsSent, res.AlertsFailed, res.AlertsDeferred = rep.Sent, rep.Failed, rep.Deferred
		if err != nil {
			e.log.Warn("insight alerts not all delivered; the next run tries again",
				"sent", rep.Sent, "failed", rep.Failed, "deferred", rep.Deferred, "error", err)
		}
	}
	e.log.Info("insights evaluated", "as_of", res.AsOf.Format(time.DateOnly), "findings", len(findings),
		"created", res.Created, "reopened", res.Reopened, "updated", res.Updated, "resolved", res.Resolved,
		"alerts_sent", res.AlertsSent, "alerts_failed", res.AlertsFailed, "alerts_deferred", res.AlertsDeferred)
	return res, nil
}

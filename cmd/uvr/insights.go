package main

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/shopspring/decimal"

	"github.com/uvrhq/uvr/connectors/demo"
	"github.com/uvrhq/uvr/connectors/scheduler"
	"github.com/uvrhq/uvr/connectors/syncer"
	"github.com/uvrhq/uvr/projections/aggregates"
	"github.com/uvrhq/uvr/projections/customers"
	"github.com/uvrhq/uvr/projections/insights"
	"github.com/uvrhq/uvr/projections/insights/chinsights"
)

// insightPlans are the plans the insight rules know (tier and included token
// quota): the demo company's, until plans are configurable. A customer's plan
// is the directory's (the latest uvr.customer.v1 event's plan).
func insightPlans() []chinsights.Plan {
	var out []chinsights.Plan
	for i, p := range demo.Plans() {
		out = append(out, chinsights.Plan{Name: p.Name, Tier: i, IncludedQuota: decimal.NewFromInt(p.IncludedTokens)})
	}
	return out
}

// openInsights builds the insights service (evaluator, ClickHouse store and
// source, alerter) for the API (on demand: POST /api/insights/run) and the
// projector (every 6 hours through the scheduler's Insights hook). It needs
// the customer directory: call it after openCustomers.
func (m *Main) openInsights(ctx context.Context) error {
	cfg := m.Config
	store, err := chinsights.NewStore(m.ch)
	if err != nil {
		return err
	}
	// The unprofitable-feature rule compares cost with the revenue the
	// revenue mapping attributes (revenue.go's settings).
	dir := m.customers
	attribution, err := aggregates.NewAnalytics(m.ch, func(ctx context.Context) (map[customers.Ref]string, error) {
		if err := dir.Sync(ctx); err != nil {
			return nil, err
		}
		return dir.Snapshot(), nil
	}, m.revenue)
	if err != nil {
		return err
	}
	source, err := chinsights.NewSource(chinsights.SourceConfig{
		Conn: m.ch, Customers: m.customers, ReportingCurrency: cfg.Currency, Plans: insightPlans(), Attribution: attribution,
	})
	if err != nil {
		return err
	}
	metrics, err := insights.NewMetrics(m.Registry)
	if err != nil {
		return err
	}
	evalCfg := insights.EvaluatorConfig{
		Rules: insights.DefaultConfig(), Source: source, Store: store, Metrics: metrics, Logger: m.Logger,
	}
	minSev, err := insights.ParseSeverity(cfg.AlertMinSeverity)
	if err != nil {
		return fmt.Errorf("alert min severity: %w", err)
	}
	if cfg.AlertWebhookURL != "" || cfg.AlertSlackURL != "" {
		ac := insights.AlerterConfig{Log: store, Metrics: metrics, Logger: m.Logger}
		if cfg.AlertWebhookURL != "" {
			ac.Webhooks = []insights.WebhookConfig{{Name: "webhook", URL: cfg.AlertWebhookURL, Secret: cfg.AlertWebhookSecret, MinSeverity: minSev, Escalations: true}}
		}
		if cfg.AlertSlackURL != "" {
			ac.Slack = []insights.SlackConfig{{Name: "slack", URL: cfg.AlertSlackURL, MinSeverity: minSev, Escalations: true}}
		}
		alerter, err := insights.NewAlerter(ac)
		if err != nil {
			return err // its errors never contain a URL or a secret
		}
		evalCfg.Notifier = alerter
	}
	eval, err := insights.NewEvaluator(evalCfg)
	if err != nil {
		return err
	}
	svc, err := chinsights.NewService(eval, store, nil)
	if err != nil {
		return err
	}
	m.insights.Store(svc)
	if m.Roles.Projector && m.scheduler == nil {
		// A projector without the connector stage has no scheduler yet: one
		// without services runs the insights job alone.
		m.scheduler, err = scheduler.New(scheduler.Config{
			Disabled: !cfg.EnableScheduler, Services: noServices{}, Requester: noRequester{},
			Insights: m.runScheduledInsights, Logger: m.Logger, Registerer: m.Registry,
		})
		if err != nil {
			return err
		}
		return m.scheduler.Start(ctx)
	}
	return nil
}

// insightsHook is the scheduler's Insights callback: set only in a process
// that runs the projector (the evaluator lives there).
func (m *Main) insightsHook() func(context.Context) error {
	if !m.Roles.Projector {
		return nil
	}
	return m.runScheduledInsights
}

func (m *Main) runScheduledInsights(ctx context.Context) error {
	svc := m.insights.Load()
	if svc == nil {
		return errors.New("insights are not open yet")
	}
	_, err := svc.Run(ctx)
	return err
}

// insightsService is the service once openInsights ran.
type insightsService = atomic.Pointer[chinsights.Service]

type noServices struct{}

func (noServices) List(context.Context) ([]syncer.Service, error) { return nil, nil }

type noRequester struct{}

func (noRequester) Request(context.Context, []string, syncer.Trigger) ([]string, error) {
	return nil, errors.New("this process syncs no services")
}

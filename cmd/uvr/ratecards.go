package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/uvrhq/uvr/pipeline/kafka"
	"github.com/uvrhq/uvr/projections/aggregates"
	"github.com/uvrhq/uvr/projections/pricing"
)

var _ pricing.Table = (*kafka.Table)(nil)

// openRateCards opens the rate card store on its topic and applies this
// process's card files: when they (or the binary's default card) changed
// since the last applied set recorded on the topic, the days whose price
// changed are marked for a recompute.
func (m *Main) openRateCards(ctx, runCtx context.Context) error {
	topic := m.Config.topicNames().RateCards
	table, err := m.openTable(ctx, runCtx, topic)
	if err != nil {
		return err
	}
	recoster, err := aggregates.NewRecoster(m.ch, nil)
	if err != nil {
		return err
	}
	m.rateCards, err = pricing.NewStore(pricing.StoreConfig{
		Table: table, Recoster: recoster, Files: m.Config.RateCards, Registerer: m.Registry, Logger: m.Logger,
	})
	if err != nil {
		return fmt.Errorf("rate cards: %w", err)
	}
	change, err := m.rateCards.Start(ctx)
	if err != nil {
		return fmt.Errorf("apply the rate cards: %w", err)
	}
	if len(change.Ranges) > 0 {
		m.Logger.Info("rate cards changed since they were last applied; re-costing",
			"ranges", len(change.Ranges), "days_marked", change.DaysMarked)
	}
	return nil
}

// reconcilePricer is the rate card `uvr reconcile` compares with: the
// shared one on the rate card topic when brokers are configured, else the
// default card and the card files.
func reconcilePricer(ctx context.Context, cfg *Config) (aggregates.Pricer, func() error, error) {
	if len(cfg.KafkaBrokers) == 0 {
		card, err := pricing.LoadWithDefault(cfg.RateCards...)
		if err != nil {
			return nil, nil, fmt.Errorf("rate cards: %w", err)
		}
		return aggregates.StaticPricer(card), func() error { return nil }, nil
	}
	if err := prepareTopics(ctx, *cfg, cfg.KafkaBrokers, slog.New(slog.DiscardHandler)); err != nil {
		return nil, nil, err
	}
	table, err := kafka.NewTable(kafka.TableConfig{Brokers: cfg.KafkaBrokers, Security: cfg.KafkaSecurity, Topic: cfg.topicNames().RateCards})
	if err != nil {
		return nil, nil, err
	}
	store, err := pricing.NewStore(pricing.StoreConfig{Table: table, Files: cfg.RateCards})
	if err != nil {
		_ = table.Close()
		return nil, nil, fmt.Errorf("rate cards: %w", err)
	}
	return store.Card, table.Close, nil
}

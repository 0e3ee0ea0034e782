package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/uvrhq/uvr/pipeline/kafka"
	"github.com/uvrhq/uvr/projections/pricing"
	"github.com/uvrhq/uvr/projections/revsettings"
)

// revenueTopics are the compacted topics of the revenue settings, named
// with the connector prefix like the other settings topics.
func (cfg Config) revenueTopics() (fx, mapping string) {
	return cfg.ConnectorPrefix + ".fx-rates.v1", cfg.ConnectorPrefix + ".revenue-mapping.v1"
}

// openRevenueSettings opens the FX table and the revenue mapping: the files
// given at start-up, overridden by what the API stored on their topics.
func (m *Main) openRevenueSettings(ctx, runCtx context.Context) error {
	cfg := m.Config
	sc := revsettings.Config{Reporting: cfg.Currency}
	if cfg.FXRates != "" {
		fx, err := pricing.LoadFX(cfg.FXRates, cfg.Currency)
		if err != nil {
			return fmt.Errorf("--fx-rates %s: %w", cfg.FXRates, err)
		}
		sc.FileFX = fx
	}
	if cfg.RevenueMapping != "" {
		b, err := os.ReadFile(cfg.RevenueMapping)
		if err != nil {
			return fmt.Errorf("--revenue-mapping: %w", err)
		}
		if sc.FileMapping, err = revsettings.ParseMapping(filepath.Base(cfg.RevenueMapping), b); err != nil {
			return fmt.Errorf("--revenue-mapping: %w", err)
		}
	}
	fxTopic, mappingTopic := cfg.revenueTopics()
	if err := kafka.EnsureTopics(ctx, m.Brokers, []kafka.TopicSpec{
		{Name: fxTopic, Partitions: 1, Compacted: true},
		{Name: mappingTopic, Partitions: 1, Compacted: true},
	}); err != nil {
		return fmt.Errorf("create %s and %s: %w", fxTopic, mappingTopic, err)
	}
	var err error
	if sc.FXTable, err = m.openTable(ctx, runCtx, fxTopic); err != nil {
		return err
	}
	if sc.MappingTable, err = m.openTable(ctx, runCtx, mappingTopic); err != nil {
		return err
	}
	m.revenue, err = revsettings.New(sc)
	return err
}

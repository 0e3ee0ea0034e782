package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/uvrhq/uvr/projections/pricing"
	"github.com/uvrhq/uvr/projections/revsettings"
)

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
	names := cfg.topicNames()
	var err error
	if sc.FXTable, err = m.openTable(ctx, runCtx, names.FXRates); err != nil {
		return err
	}
	if sc.MappingTable, err = m.openTable(ctx, runCtx, names.RevenueMapping); err != nil {
		return err
	}
	m.revenue, err = revsettings.New(sc)
	return err
}

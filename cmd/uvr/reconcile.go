package main

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/uvrhq/uvr/projections/aggregates"
	"github.com/uvrhq/uvr/projections/chstore"
	"github.com/uvrhq/uvr/projections/rawevents"
)

// errReconcileDiff makes `uvr reconcile --check` exit non-zero; the
// differences themselves are already printed.
var errReconcileDiff = errors.New("the stored aggregates differed from a recompute (repaired)")

func reconcileCommand(cfg *Config, logger func() *slog.Logger) *cobra.Command {
	var (
		dayFlag string
		check   bool
	)
	cmd := &cobra.Command{
		Use:   "reconcile --day YYYY-MM-DD",
		Short: "Recompute a day's aggregates from the by-day tables, print any difference with the stored ones and repair them",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			day, err := rawevents.ParseDate(dayFlag)
			if err != nil {
				return fmt.Errorf("--day: %w", err)
			}
			ctx := cmd.Context()
			conn, err := chstore.Open(ctx, cfg.clickhouse(cfg.ClickHouseDatabase))
			if err != nil {
				return fmt.Errorf("open clickhouse at %s: %w", cfg.ClickHouseAddr, err)
			}
			defer conn.Close()
			if err := chstore.Migrate(ctx, conn, cfg.ClickHouseDatabase, logger()); err != nil {
				return fmt.Errorf("migrate clickhouse database %s: %w", cfg.ClickHouseDatabase, err)
			}
			pricer, closePricer, err := reconcilePricer(ctx, cfg)
			if err != nil {
				return err
			}
			defer closePricer()
			agg, err := aggregates.New(aggregates.Config{Conn: conn, Pricer: pricer, Logger: logger()})
			if err != nil {
				return err
			}
			diff, err := agg.Reconcile(ctx, day)
			if err != nil {
				return fmt.Errorf("reconcile %s: %w", day, err)
			}
			if _, err := fmt.Fprint(cmd.OutOrStdout(), diff.String()); err != nil {
				return err
			}
			if check && !diff.Empty() {
				return errReconcileDiff
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&dayFlag, "day", "", "the UTC day to reconcile, YYYY-MM-DD (required)")
	cmd.Flags().BoolVar(&check, "check", false, "exit non-zero when a difference was found")
	_ = cmd.MarkFlagRequired("day")
	return cmd
}

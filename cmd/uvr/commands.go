package main

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/uvrhq/uvr/connectors/ingest"
	"github.com/uvrhq/uvr/projections/chstore"
)

// serverMemoryLimit is the soft memory limit of the long-running commands
// (run, api, project, connect) unless GOMEMLIMIT is set (k8s sets it from the
// container's limit). What they hold is bounded — the projector's in-flight
// bytes (--consumer-max-in-flight-bytes, 64 MiB by default), a few request
// bodies, the customer directory — but the collector's default lets the heap
// grow to twice the live data before it runs, so a process ingesting and
// projecting at once sat at 500–800 MB. Under the limit the collector runs
// sooner; above it (a live set that truly needs more) the runtime lets the
// heap grow, spending at most about half the CPU on collection.
const serverMemoryLimit = 256 << 20

// softMemoryLimit applies limit unless the operator set GOMEMLIMIT.
func softMemoryLimit(getenv func(string) (string, bool), limit int64) {
	if _, set := getenv("GOMEMLIMIT"); !set {
		debug.SetMemoryLimit(limit)
	}
}

func runCommand(cfg *Config, logger func() *slog.Logger, getenv func(string) (string, bool)) *cobra.Command {
	var withDemo bool
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the API, the projector and a connector worker in one process (with an embedded Kafka broker when no brokers are configured)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			softMemoryLimit(getenv, serverMemoryLimit)
			log := logger()
			return serve(cmd.Context(), *cfg, Roles{API: true, Projector: true, Connectors: true, Embedded: true}, log, func(ctx context.Context, m *Main) error {
				fmt.Fprintf(cmd.OutOrStdout(), "uvr is running: %s  (dashboard API: %s/api/dashboard, metrics: %s/metrics)\n", m.URL(), m.URL(), m.URL())
				if !withDemo {
					return nil
				}
				token, err := m.selfToken() // the API needs credentials, even ours
				if err != nil {
					return err
				}
				client, err := ingest.New(ingest.Config{URL: m.URL(), Token: token})
				if err != nil {
					return err
				}
				opts := demoOptions{Seed: 1, Customers: 200, Days: 90}
				return runDemo(ctx, client, opts, cmd.ErrOrStderr(), log)
			})
		},
	}
	cmd.Flags().BoolVar(&withDemo, "demo", false, "load the demo data set once the API is up (idempotent: ids are stable)")
	return cmd
}

func apiCommand(cfg *Config, logger func() *slog.Logger, getenv func(string) (string, bool)) *cobra.Command {
	return &cobra.Command{
		Use:   "api",
		Short: "Run the HTTP API (needs --kafka-brokers)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			softMemoryLimit(getenv, serverMemoryLimit)
			return serve(cmd.Context(), *cfg, Roles{API: true}, logger(), nil)
		},
	}
}

func connectCommand(cfg *Config, logger func() *slog.Logger, getenv func(string) (string, bool)) *cobra.Command {
	return &cobra.Command{
		Use:   "connect",
		Short: "Run a connector worker: sync services on request and on schedule (needs --kafka-brokers)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			softMemoryLimit(getenv, serverMemoryLimit)
			return serve(cmd.Context(), *cfg, Roles{Connectors: true}, logger(), nil)
		},
	}
}

func projectCommand(cfg *Config, logger func() *slog.Logger, getenv func(string) (string, bool)) *cobra.Command {
	return &cobra.Command{
		Use:   "project",
		Short: "Run the projector: Kafka events into ClickHouse (needs --kafka-brokers)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			softMemoryLimit(getenv, serverMemoryLimit)
			return serve(cmd.Context(), *cfg, Roles{Projector: true}, logger(), nil)
		},
	}
}

// serve opens a Main with the given roles, runs started (if any) once it is
// up, and blocks until the context ends or a component fails.
func serve(ctx context.Context, cfg Config, roles Roles, log *slog.Logger, started func(context.Context, *Main) error) error {
	m := NewMain(cfg, roles, log)
	if err := m.Open(ctx); err != nil {
		return err
	}
	defer func() {
		if err := m.Close(); err != nil {
			log.Error("shutdown", "error", err.Error())
		}
	}()
	if started != nil {
		if err := started(ctx, m); err != nil {
			return err
		}
	}
	return m.Wait(ctx)
}

func migrateCommand(cfg *Config, logger func() *slog.Logger) *cobra.Command {
	return &cobra.Command{
		Use:   "migrate",
		Short: "Apply the embedded ClickHouse migrations (idempotent)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			conn, err := chstore.Open(ctx, cfg.clickhouse(cfg.ClickHouseDatabase))
			if err != nil {
				return fmt.Errorf("open clickhouse at %s: %w", cfg.ClickHouseAddr, err)
			}
			defer conn.Close()
			if err := chstore.Migrate(ctx, conn, cfg.ClickHouseDatabase, logger()); err != nil {
				return fmt.Errorf("migrate clickhouse database %s: %w", cfg.ClickHouseDatabase, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "clickhouse database %s is up to date\n", cfg.ClickHouseDatabase)
			return nil
		},
	}
}

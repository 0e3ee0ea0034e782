// Command uvr is the Usage vs Revenue Analyzer: one binary whose subcommands
// run the API, the projector, both with an embedded broker, migrations, the
// demo data source and benchmarks.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRootCommand(os.Stdout, os.Stderr, os.LookupEnv).ExecuteContext(ctx)
	stop()
	if err != nil {
		// One line naming what failed and where; cobra's own output is off.
		fmt.Fprintln(os.Stderr, "uvr: "+err.Error())
		os.Exit(1)
	}
}

// newRootCommand builds the command tree; out/errOut and lookupEnv are
// parameters so that tests run the CLI in-process.
func newRootCommand(out, errOut io.Writer, lookupEnv func(string) (string, bool)) *cobra.Command {
	cfg := defaultConfig()
	root := &cobra.Command{
		Use:   "uvr",
		Short: "Usage vs Revenue Analyzer: does what each customer pays cover what its usage costs?",
		Long: `uvr ingests usage and revenue events into Kafka, projects them into ClickHouse
and serves per-customer, per-feature, per-day margins over a REST API.

Every flag can also be set with the UVR_* environment variable named in its help.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if err := applyEnv(cmd.Flags(), lookupEnv); err != nil {
				return err
			}
			if err := cfg.Validate(); err != nil {
				return err
			}
			return cfg.loadSecurity()
		},
	}
	root.SetOut(out)
	root.SetErr(errOut)
	cfg.bind(root.PersistentFlags())

	logger := func() *slog.Logger { return newLogger(errOut, cfg) }
	root.AddCommand(
		runCommand(&cfg, logger, lookupEnv),
		apiCommand(&cfg, logger, lookupEnv),
		projectCommand(&cfg, logger, lookupEnv),
		connectCommand(&cfg, logger, lookupEnv),
		migrateCommand(&cfg, logger),
		demoCommand(&cfg, logger, lookupEnv),
		benchCommand(&cfg, logger),
		importCommand(&cfg, logger),
		reconcileCommand(&cfg, logger),
		userCommand(&cfg, logger),
		replayCommand(&cfg, logger),
		topicsCommand(&cfg, logger),
		deadLettersCommand(&cfg, logger),
		versionCommand(),
	)
	return root
}

func versionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(cmd.OutOrStdout(), "uvr "+version)
			return err
		},
	}
}

func newLogger(w io.Writer, cfg Config) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel)) // validated by Config.Validate
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

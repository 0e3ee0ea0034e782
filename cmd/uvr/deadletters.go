package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/uvrhq/uvr/pipeline/deadletter"
	"github.com/uvrhq/uvr/pipeline/kafka"
)

// deadLetters is the store of the events' dead-letter topic, for the API.
func (m *Main) deadLetters() (*deadletter.Store, error) {
	return deadletter.New(deadletter.Config{Brokers: m.Brokers, Security: m.Config.KafkaSecurity, Topic: m.Config.PoisonTopic, Publisher: m.publisher})
}

func deadLettersCommand(cfg *Config, logger func() *slog.Logger) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "deadletters",
		Short: "List or retry the events set aside on the dead-letter topic (--poison-topic)",
	}
	// open calls fn with a store on the dead-letter topic; retry also needs a publisher.
	open := func(ctx context.Context, publish bool, fn func(*deadletter.Store) error) error {
		return withBrokers(ctx, *cfg, logger, func(brokers []string) error {
			dc := deadletter.Config{Brokers: brokers, Security: cfg.KafkaSecurity, Topic: cfg.PoisonTopic}
			if publish {
				pub, err := kafka.NewPublisher(kafka.PublisherConfig{Brokers: brokers, Security: cfg.KafkaSecurity, Logger: logger()})
				if err != nil {
					return fmt.Errorf("kafka publisher: %w", err)
				}
				defer pub.Close()
				dc.Publisher = pub
			}
			store, err := deadletter.New(dc)
			if err != nil {
				return err
			}
			return fn(store)
		})
	}
	var asJSON bool
	list := &cobra.Command{
		Use:   "list",
		Short: "Print every dead letter: where it came from, why it was set aside, whether it was retried",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return open(cmd.Context(), false, func(s *deadletter.Store) error {
				entries, err := s.List(cmd.Context(), scanProgress(cmd.ErrOrStderr()))
				if err != nil {
					return err
				}
				if asJSON {
					return writeJSON(cmd.OutOrStdout(), entries)
				}
				return printDeadLetters(cmd.OutOrStdout(), entries)
			})
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON instead of a table")
	var (
		ids []string
		all bool
	)
	retry := &cobra.Command{
		Use:   "retry",
		Short: "Republish dead letters to their topic (projections are idempotent) and record the retry",
		Long: "Republish the original message of each dead letter named by --id (or of every one not yet retried, " +
			"with --all) to the topic it came from, and record the retry on the dead-letter topic. A message " +
			"that fails again is set aside again, as a new entry.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if all == (len(ids) > 0) {
				return errors.New("give either --id (one or more) or --all")
			}
			return open(cmd.Context(), true, func(s *deadletter.Store) error {
				retried, err := s.Retry(cmd.Context(), ids, all, scanProgress(cmd.ErrOrStderr()))
				for _, e := range retried {
					fmt.Fprintf(cmd.OutOrStdout(), "retried %s (event %s/%s) to %s\n", e.ID, e.EventSource, e.EventID, e.Topic)
				}
				if err == nil && len(retried) == 0 {
					fmt.Fprintln(cmd.OutOrStdout(), "nothing to retry")
				}
				return err
			})
		},
	}
	retry.Flags().StringSliceVar(&ids, "id", nil, "id of a dead letter (as listed); repeat or separate with commas")
	retry.Flags().BoolVar(&all, "all", false, "retry every dead letter not retried yet")
	cmd.AddCommand(list, retry)
	return cmd
}

// progress reports a long scan of the topic on w, at most once a second.
func scanProgress(w io.Writer) deadletter.Progress {
	start, last := time.Now(), time.Now()
	return func(read, total int64) {
		if time.Since(last) < time.Second && read < total || time.Since(start) < time.Second {
			return
		}
		last = time.Now()
		fmt.Fprintf(w, "read %d of %d records of the dead-letter topic\n", read, total)
	}
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func printDeadLetters(w io.Writer, entries []deadletter.Entry) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTIME\tPROJECTION\tCLASS\tFROM\tEVENT\tRETRIED\tREASON")
	for _, e := range entries {
		retried := "no"
		if n := len(e.Retries); n > 0 {
			retried = e.Retries[n-1].Format(time.RFC3339)
			if n > 1 {
				retried += fmt.Sprintf(" (%d times)", n)
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s/%d@%d\t%s %s/%s\t%s\t%s\n", e.ID, e.Time.Format(time.RFC3339), e.Projection, e.ReasonClass,
			e.Topic, e.Partition, e.Offset, e.EventType, e.EventSource, e.EventID, retried, oneLine(e.Reason))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "%d dead letters\n", len(entries))
	return err
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

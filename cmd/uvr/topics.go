package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/uvrhq/uvr/pipeline/broker"
	"github.com/uvrhq/uvr/pipeline/kafka"
	"github.com/uvrhq/uvr/pipeline/topics"
)

// topicNames are the names of every uvr topic, from the configuration.
func (cfg Config) topicNames() topics.Names {
	return topics.NewNames(cfg.EventsTopic, cfg.PoisonTopic, cfg.ConnectorPrefix)
}

// topicList resolves the replication for the cluster behind brokers and returns uvr's topics
// as they must be.
func topicList(ctx context.Context, cfg Config, brokers []string) ([]topics.Topic, error) {
	n, err := topics.BrokerCount(ctx, brokers, cfg.KafkaSecurity)
	if err != nil {
		return nil, fmt.Errorf("kafka at %s (%s): %w", strings.Join(brokers, ","), cfg.KafkaSecurity, err)
	}
	rf, minISR, err := topics.Replication(n, cfg.KafkaReplicationFactor, cfg.KafkaMinInsyncReplicas)
	if err != nil {
		return nil, fmt.Errorf("kafka at %s (%s): %w", strings.Join(brokers, ","), cfg.KafkaSecurity, err)
	}
	return topics.List(topics.Config{Names: cfg.topicNames(), Partitions: cfg.TopicPartitions,
		ReplicationFactor: rf, MinInsyncReplicas: minISR}), nil
}

// prepareTopics runs before anything reads or writes Kafka: it creates the missing topics with
// the configuration they need, then reads back the configuration of every topic and refuses
// to go on if the broker would delete records uvr needs. It never changes an existing topic:
// that is `uvr topics fix`, on an operator's word. A broker that is still starting (it
// refuses or resets connections) is waited for, up to kafkaStartupWait, with a warning each
// attempt: uvr and its broker are often started together.
func prepareTopics(ctx context.Context, cfg Config, brokers []string, log *slog.Logger) error {
	ctx, cancel := context.WithTimeout(ctx, kafkaStartupWait)
	defer cancel()
	backoff := 100 * time.Millisecond
	for {
		err := prepareTopicsOnce(ctx, cfg, brokers, log)
		if err == nil || !kafka.IsRetriable(err) || ctx.Err() != nil {
			return err
		}
		log.Warn("kafka is not answering yet; retrying", "brokers", strings.Join(brokers, ","), "error", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// kafkaStartupWait bounds how long a starting uvr waits for its brokers to answer.
const kafkaStartupWait = 2 * time.Minute

func prepareTopicsOnce(ctx context.Context, cfg Config, brokers []string, log *slog.Logger) error {
	list, err := topicList(ctx, cfg, brokers)
	if err != nil {
		return err
	}
	specs := make([]kafka.TopicSpec, len(list))
	for i, t := range list {
		specs[i] = t.Spec
	}
	if err := kafka.EnsureTopics(ctx, brokers, cfg.KafkaSecurity, specs); err != nil {
		return fmt.Errorf("create topics on %s: %w", strings.Join(brokers, ","), err)
	}
	statuses, err := topics.Check(ctx, brokers, cfg.KafkaSecurity, list)
	if err != nil {
		return fmt.Errorf("check topics on %s: %w", strings.Join(brokers, ","), err)
	}
	for _, st := range statuses {
		for _, f := range st.Findings {
			if f.Severity == topics.Warning {
				log.Warn("kafka topic differs from uvr's configuration; `uvr topics check` lists every difference",
					"topic", f.Topic, "setting", f.Setting, "value", f.Got, "wanted", f.Want, "why", f.Why)
			}
		}
	}
	return topics.Refusal(statuses, brokers)
}

func topicsCommand(cfg *Config, logger func() *slog.Logger) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "topics",
		Short: "Check or fix the retention and replication of uvr's Kafka topics",
	}
	// run calls fn with the brokers and uvr's topic list (`uvr run` refuses to start on topics
	// that forget, so the broker it embeds must be reachable without it).
	run := func(ctx context.Context, fn func(brokers []string, list []topics.Topic) error) error {
		return withBrokers(ctx, *cfg, logger, func(brokers []string) error {
			list, err := topicList(ctx, *cfg, brokers)
			if err != nil {
				return err
			}
			return fn(brokers, list)
		})
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "check",
		Short: "Print every uvr topic with its settings and whether it keeps what uvr needs; exit 1 on a problem",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return run(cmd.Context(), func(b []string, list []topics.Topic) error {
				statuses, err := topics.Check(cmd.Context(), b, cfg.KafkaSecurity, list)
				if err != nil {
					return err
				}
				if err := printTopics(cmd.OutOrStdout(), statuses); err != nil {
					return err
				}
				return topics.Refusal(statuses, b)
			})
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "fix",
		Short: "Create missing uvr topics and set the retention and min.insync.replicas they need (idempotent); print what changed",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return run(cmd.Context(), func(b []string, list []topics.Topic) error {
				created, changes, err := topics.Fix(cmd.Context(), b, cfg.KafkaSecurity, list)
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				for _, name := range created {
					fmt.Fprintf(out, "created %s\n", name)
				}
				for _, c := range changes {
					fmt.Fprintf(out, "%s: %s %s -> %s\n", c.Topic, c.Setting, c.From, c.To)
				}
				if len(created)+len(changes) == 0 {
					fmt.Fprintln(out, "nothing to change: every uvr topic has the settings it needs")
				}
				logger().Info("topics fixed", "created", len(created), "changed", len(changes))
				return nil
			})
		},
	})
	return cmd
}

// printTopics writes one line per topic (its settings and OK, WARNING, PROBLEM or MISSING),
// then one line per finding.
// withBrokers calls fn with the configured brokers or, without any, the embedded broker of
// --data-dir, started for the command.
func withBrokers(ctx context.Context, cfg Config, logger func() *slog.Logger, fn func(brokers []string) error) error {
	if len(cfg.KafkaBrokers) > 0 {
		return fn(cfg.KafkaBrokers)
	}
	dir := filepath.Join(cfg.DataDir, "kafka")
	b, err := broker.Start(ctx, broker.Config{DataDir: dir, Addr: cfg.EmbeddedKafkaAddr, Partitions: cfg.TopicPartitions, Logger: logger()})
	if err != nil {
		return fmt.Errorf("no --kafka-brokers: start the embedded broker of %s (stop a running `uvr run` first): %w", dir, err)
	}
	defer b.Close()
	return fn(b.Addrs())
}

func printTopics(w io.Writer, statuses []topics.Status) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tKIND\tPARTITIONS\tRF\tSETTINGS\tSTATUS")
	for _, st := range statuses {
		if !st.Exists {
			fmt.Fprintf(tw, "%s\t%s\t-\t-\t-\tMISSING (uvr creates it at start)\n", st.Topic.Spec.Name, st.Topic.Kind)
			continue
		}
		var settings []string
		for _, k := range slices.Sorted(maps.Keys(st.Settings)) {
			settings = append(settings, k+"="+st.Settings[k])
		}
		status := "OK"
		if w := st.Worst(); w != 0 {
			status = w.String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\n", st.Topic.Spec.Name, st.Topic.Kind, st.Partitions, st.ReplicationFactor, strings.Join(settings, " "), status)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, st := range statuses {
		for _, f := range st.Findings {
			if _, err := fmt.Fprintln(w, f); err != nil {
				return err
			}
		}
	}
	return nil
}

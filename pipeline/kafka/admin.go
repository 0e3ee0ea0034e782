package kafka

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	kafkago "github.com/segmentio/kafka-go"
)

// EnsureTopics creates the topics that do not exist yet; an existing topic is left as it is
// (its partition count and configuration are not compared). It is what `uvr` calls at start,
// so that no component depends on broker-side auto-creation and its default partition count.
//
// It returns once the broker that answered lists every created topic in its metadata, so a
// consumer group formed right after sees their partitions.
func EnsureTopics(ctx context.Context, brokers []string, sec Security, topics []TopicSpec) error {
	if errs := validateBrokers(brokers); len(errs) > 0 {
		return fmt.Errorf("ensure topics: %w", errors.Join(errs...))
	}
	client, transport := sec.client(brokers, 0, &kafkago.Transport{})
	defer transport.CloseIdleConnections()
	return ensureTopics(ctx, client, topics)
}

func ensureTopics(ctx context.Context, client *kafkago.Client, topics []TopicSpec) error {
	if len(topics) == 0 {
		return nil
	}
	var errs []error
	req := &kafkago.CreateTopicsRequest{}
	for _, t := range topics {
		if err := t.validate(); err != nil {
			errs = append(errs, err)
			continue
		}
		cfg := kafkago.TopicConfig{
			Topic:             t.Name,
			NumPartitions:     t.Partitions,
			ReplicationFactor: max(t.ReplicationFactor, 1),
		}
		for _, name := range slices.Sorted(maps.Keys(t.Config)) {
			cfg.ConfigEntries = append(cfg.ConfigEntries, kafkago.ConfigEntry{ConfigName: name, ConfigValue: t.Config[name]})
		}
		req.Topics = append(req.Topics, cfg)
	}
	if len(errs) > 0 {
		return fmt.Errorf("ensure topics: %w", errors.Join(errs...))
	}

	// kafka-go routes CreateTopics to the controller and, for the topics it created, waits
	// until they show up in its metadata before returning.
	resp, err := createTopics(ctx, client, req)
	if err != nil {
		return fmt.Errorf("ensure topics: create: %w", err)
	}
	for name, terr := range resp.Errors {
		if terr != nil && !errors.Is(terr, kafkago.TopicAlreadyExists) {
			errs = append(errs, fmt.Errorf("topic %q: %w", name, terr))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("ensure topics: %w", errors.Join(errs...))
	}
	return nil
}

// createTopics retries a CreateTopics that failed with a retriable Kafka error until ctx
// ends. A broker busy answering metadata for many topics (kafka-go first lists them all to
// find the controller) answers BrokerNotAvailable or times out; that is not a reason to fail
// a component's start, which is bounded by ctx anyway.
func createTopics(ctx context.Context, client *kafkago.Client, req *kafkago.CreateTopicsRequest) (*kafkago.CreateTopicsResponse, error) {
	backoff := 100 * time.Millisecond
	for {
		resp, err := client.CreateTopics(ctx, req)
		if err == nil || !retriable(err) {
			return resp, err
		}
		select {
		case <-ctx.Done():
			return nil, errors.Join(err, ctx.Err())
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// retriable reports whether a Kafka error may go away by itself: the protocol's own
// temporary errors, [8] Broker Not Available (which kafka-go answers when the metadata
// request naming the controller timed out; the protocol does not list it as retriable)
// and network timeouts.
func retriable(err error) bool {
	var kerr kafkago.Error
	if errors.As(err, &kerr) {
		return kerr.Temporary() || kerr == kafkago.BrokerNotAvailable
	}
	var timeout interface{ Timeout() bool }
	return errors.As(err, &timeout) && timeout.Timeout()
}

package main

import (
	"context"
	"fmt"
	"maps"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/uvrhq/uvr/connectors/airbyte"
	"github.com/uvrhq/uvr/connectors/anthropic"
	"github.com/uvrhq/uvr/connectors/aws"
	"github.com/uvrhq/uvr/connectors/braintree"
	"github.com/uvrhq/uvr/connectors/catalog"
	"github.com/uvrhq/uvr/connectors/chargebee"
	"github.com/uvrhq/uvr/connectors/credentials"
	"github.com/uvrhq/uvr/connectors/custom"
	"github.com/uvrhq/uvr/connectors/datadog"
	"github.com/uvrhq/uvr/connectors/openai"
	"github.com/uvrhq/uvr/connectors/paddle"
	"github.com/uvrhq/uvr/connectors/recurly"
	"github.com/uvrhq/uvr/connectors/scheduler"
	"github.com/uvrhq/uvr/connectors/services"
	"github.com/uvrhq/uvr/connectors/source"
	"github.com/uvrhq/uvr/connectors/stripe"
	"github.com/uvrhq/uvr/connectors/syncer"
	"github.com/uvrhq/uvr/pipeline/event"
	"github.com/uvrhq/uvr/pipeline/kafka"
	"github.com/uvrhq/uvr/pipeline/router"
)

// factories are the constructors of every service type of the catalog.
func factories() map[string]catalog.Factory {
	// The two custom types share one connector; the type decides the kind of
	// event it makes.
	customOf := func(kind string) catalog.Factory {
		return func(creds map[string]string, env source.Env) (source.Source, error) {
			c := maps.Clone(creds)
			c["kind"] = kind
			return catalog.FactoryOf(custom.FromCredentials)(c, env)
		}
	}
	return map[string]catalog.Factory{
		"openai":         catalog.FactoryOf(openai.FromCredentials),
		"anthropic":      catalog.FactoryOf(anthropic.FromCredentials),
		"aws":            catalog.FactoryOf(aws.FromCredentials),
		"datadog":        catalog.FactoryOf(datadog.FromCredentials),
		"custom-usage":   customOf(custom.KindUsage),
		"stripe":         catalog.FactoryOf(stripe.FromCredentials),
		"chargebee":      catalog.FactoryOf(chargebee.FromCredentials),
		"paddle":         catalog.FactoryOf(paddle.FromCredentials),
		"recurly":        catalog.FactoryOf(recurly.FromCredentials),
		"braintree":      catalog.FactoryOf(braintree.FromCredentials),
		"custom-revenue": customOf(custom.KindRevenue),
	}
}

// openConnectors builds the connector stage: the service registry (a
// compacted topic; credentials in Vault or the local sealed store), the sync
// engine with its run history, and — for the roles that sync — the consumer
// of sync requests and the scheduler.
func (m *Main) openConnectors(ctx, runCtx context.Context) error {
	cfg := m.Config
	t := cfg.connectorTopics()
	var err error
	if m.credentials, err = m.openCredentials(ctx); err != nil {
		return err
	}
	cat, err := catalog.Default(factories())
	if err != nil {
		return err
	}
	m.servicesTable, err = m.openTable(ctx, runCtx, t.services)
	if err != nil {
		return err
	}
	egress, err := source.ParseEgress(cfg.ConnectorAllowPrivateHosts)
	if err != nil {
		return err
	}
	m.registry, err = services.New(services.Config{Table: m.servicesTable, Credentials: m.credentials, Catalog: cat,
		Egress: egress, MappingDir: cfg.mappingDir(), Logger: m.Logger})
	if err != nil {
		return err
	}
	m.stateTable, err = m.openTable(ctx, runCtx, t.state)
	if err != nil {
		return err
	}
	m.engine, err = syncer.New(syncer.Config{
		Services:      syncer.FromRegistry(m.registry),
		State:         syncer.NewTableState(m.stateTable),
		Runs:          syncer.NewClickHouseRuns(m.ch),
		Publisher:     m.publisher,
		EventsTopic:   cfg.EventsTopic,
		RequestsTopic: t.requests,
		Logger:        m.Logger,
		Registerer:    m.Registry,
	})
	if err != nil {
		return err
	}
	if cfg.AirbyteURL != "" || cfg.AirbyteToken != "" {
		m.airbyte, err = airbyte.NewPlatform(airbyte.PlatformConfig{URL: cfg.AirbyteURL, Token: cfg.AirbyteToken,
			WorkspaceIDs: cfg.AirbyteWorkspaces, Logger: m.Logger})
		if err != nil {
			return err
		}
	}
	if !m.Roles.Connectors {
		return nil
	}
	return m.openSyncWorker(runCtx, t)
}

// connectorTopics are the topics and consumer group of the connector stage,
// named from one prefix so that deployments (and tests) can keep apart.
type connectorTopics struct{ services, state, requests, poison, group string }

func (cfg Config) connectorTopics() connectorTopics {
	n := cfg.topicNames()
	return connectorTopics{
		services: n.Services,
		state:    n.SyncState,
		requests: n.SyncRequests,
		poison:   n.SyncPoison,
		group:    cfg.ConnectorPrefix + "-sync",
	}
}

// openSyncWorker consumes sync requests (one consumer group: one instance
// syncs a given service at a time) and starts the scheduler.
func (m *Main) openSyncWorker(ctx context.Context, t connectorTopics) error {
	var err error
	m.syncSubscriber, err = kafka.NewSubscriber(kafka.SubscriberConfig{
		Brokers: m.Brokers, ConsumerGroup: t.group, MaxInFlight: 1, Budget: m.inFlight,
		// A sync is long and not cheap to repeat: commit as soon as it is done.
		CommitInterval: kafka.CommitEveryAck,
		Logger:         m.Logger, Registerer: m.Registry,
	})
	if err != nil {
		return fmt.Errorf("sync request subscriber: %w", err)
	}
	m.syncRouter, err = router.New(router.Config{Logger: m.Logger, Registerer: m.Registry,
		PoisonPublisher: m.publisher, PoisonTopic: t.poison})
	if err != nil {
		return err
	}
	m.engine.AddHandler(m.syncRouter, m.syncSubscriber)
	if err := m.addAirbyteDestination(t); err != nil {
		return err
	}
	if err := m.runRouter(ctx, m.syncRouter, "sync worker"); err != nil {
		return err
	}
	m.scheduler, err = scheduler.New(scheduler.Config{
		Disabled:  !m.Config.EnableScheduler,
		Services:  syncer.FromRegistry(m.registry),
		Requester: m.engine,
		Insights:  m.insightsHook(),
		Logger:    m.Logger, Registerer: m.Registry,
	})
	if err != nil {
		return err
	}
	return m.scheduler.Start(ctx)
}

// addAirbyteDestination maps the topics Airbyte's destination-kafka writes
// (platform mode) into events, on the sync worker's router: a record that can
// never be mapped goes to the poison topic, a publish failure is retried.
func (m *Main) addAirbyteDestination(t connectorTopics) error {
	cfg := m.Config
	if len(cfg.AirbyteKafkaTopics) == 0 {
		return nil
	}
	var mapper source.Mapper
	var err error
	if cfg.AirbyteKafkaMapping != "" {
		mapper, err = airbyte.LoadMapping(cfg.AirbyteKafkaMapping)
	} else {
		mapper, err = airbyte.VendorMapper(cfg.AirbyteKafkaSource)
	}
	if err != nil {
		return fmt.Errorf("airbyte destination-kafka mapping: %w", err)
	}
	sub, err := kafka.NewSubscriber(kafka.SubscriberConfig{Brokers: m.Brokers, Security: m.Config.KafkaSecurity, ConsumerGroup: t.group + "-airbyte",
		MaxInFlight: 100, Budget: m.inFlight, Logger: m.Logger, Registerer: m.Registry})
	if err != nil {
		return fmt.Errorf("airbyte destination-kafka subscriber: %w", err)
	}
	m.closers = append(m.closers, sub.Close)
	publish := func(_ context.Context, events []event.Event) error {
		msgs, err := event.Messages(events)
		if err != nil {
			return err
		}
		return m.publisher.Publish(cfg.EventsTopic, msgs...)
	}
	for _, topic := range cfg.AirbyteKafkaTopics {
		m.syncRouter.AddNoPublisherHandler("airbyte-"+topic, topic, sub, airbyte.DestinationKafkaHandler(mapper, publish))
	}
	return nil
}

// openTable reads a compacted topic into memory and keeps tailing it.
func (m *Main) openTable(ctx, runCtx context.Context, topic string) (*kafka.Table, error) {
	t, err := kafka.NewTable(kafka.TableConfig{Brokers: m.Brokers, Security: m.Config.KafkaSecurity, Topic: topic, Logger: m.Logger})
	if err != nil {
		return nil, err
	}
	if err := t.Sync(ctx); err != nil {
		_ = t.Close()
		return nil, fmt.Errorf("read %s: %w", topic, err)
	}
	m.tables = append(m.tables, t)
	m.group.Go(func() error { return t.Run(runCtx) })
	return t, nil
}

// openCredentials is Vault when VAULT_ADDR is set, else a local store sealed
// with AES-256-GCM under the data directory.
func (m *Main) openCredentials(ctx context.Context) (credentials.Store, error) {
	cfg := m.Config
	if cfg.VaultAddr != "" {
		v, err := cfg.vault(ctx, m.Logger, m.Registry)
		if err != nil {
			return nil, err
		}
		m.vault = v
		m.closers = append(m.closers, v.Close)
		m.health = append(m.health, healthCheck{"vault", v.Health})
		return v, nil
	}
	lc, err := cfg.localCredentials(m.Logger)
	if err != nil {
		return nil, err
	}
	store, err := credentials.NewLocal(lc)
	if err != nil {
		return nil, fmt.Errorf("local credential store in %s: %w", lc.Dir, err)
	}
	m.Logger.Info("credentials kept in a local sealed store (set VAULT_ADDR to use Vault)", "dir", lc.Dir)
	return store, nil
}

// runRouter runs a Watermill router in the run group and returns once it
// consumes.
func (m *Main) runRouter(ctx context.Context, r *message.Router, what string) error {
	m.group.Go(func() error {
		if err := r.Run(ctx); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	})
	select {
	case <-r.Running():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

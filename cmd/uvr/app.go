package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/uvrhq/uvr/api"
	"github.com/uvrhq/uvr/api/access"
	"github.com/uvrhq/uvr/connectors/airbyte"
	"github.com/uvrhq/uvr/connectors/credentials"
	"github.com/uvrhq/uvr/connectors/scheduler"
	"github.com/uvrhq/uvr/connectors/services"
	"github.com/uvrhq/uvr/connectors/syncer"
	"github.com/uvrhq/uvr/dashboards/web"
	"github.com/uvrhq/uvr/pipeline/broker"
	"github.com/uvrhq/uvr/pipeline/kafka"
	"github.com/uvrhq/uvr/pipeline/router"
	"github.com/uvrhq/uvr/projections/aggregates"
	"github.com/uvrhq/uvr/projections/chstore"
	"github.com/uvrhq/uvr/projections/customers"
	"github.com/uvrhq/uvr/projections/pricing"
	"github.com/uvrhq/uvr/projections/rawevents"
	"github.com/uvrhq/uvr/projections/revsettings"
)

// Roles says which components a Main runs.
type Roles struct {
	API       bool // the HTTP API (publishes to Kafka, reads ClickHouse)
	Projector bool // Kafka → ClickHouse
	// Connectors syncs services: consumes sync requests, runs the scheduler.
	// (The API only requests syncs and reads their runs.)
	Connectors bool
	// Embedded starts the in-process broker when no brokers are configured.
	Embedded bool
	// Replay runs the projector alone (uvr replay, replay.go): no customer
	// directory consumer and no insight evaluation or alerts, which are not
	// projections and would act twice next to the live projector.
	Replay bool
}

// Main is the whole program, wired by hand, so that end-to-end tests can run
// it in-process on port 0 (wtf's cmd/wtfd). Open builds and starts every
// component; Wait blocks until one fails or the context ends; Close stops
// them in reverse order.
type Main struct {
	Config Config
	Roles  Roles
	Logger *slog.Logger

	// Set by Open.
	Registry *prometheus.Registry
	Brokers  []string
	Addr     string // the API's bound address (host:port)

	broker     *broker.Broker
	ch         driver.Conn
	publisher  *kafka.Publisher
	subscriber *kafka.Subscriber
	inFlight   *kafka.Budget // shared by every consumer of this process
	router     *message.Router
	batcher    *rawevents.Batcher
	aggregator *aggregates.Aggregator
	customers  *customers.Directory
	insights   insightsService    // insights.go: set by openInsights
	revenue    *revsettings.Store // revenue.go: FX table and revenue mapping
	rateCards  *pricing.Store     // ratecards.go: set by openRateCards
	server     *api.Server
	access     *access.Store // users, API keys, tokens (auth.go)
	metricsSrv *http.Server
	listener   net.Listener

	// The connector stage (connect.go).
	credentials    credentials.Store
	vault          *credentials.Vault // when VAULT_ADDR is set: also seals the users topic (auth.go)
	servicesTable  *kafka.Table
	stateTable     *kafka.Table
	tables         []*kafka.Table
	registry       *services.Registry
	engine         *syncer.Engine
	airbyte        *airbyte.Platform
	syncSubscriber *kafka.Subscriber
	syncRouter     *message.Router
	scheduler      *scheduler.Scheduler
	closers        []func() error
	health         []healthCheck

	group  *errgroup.Group
	cancel context.CancelFunc
}

// NewMain returns an unopened Main.
func NewMain(cfg Config, roles Roles, logger *slog.Logger) *Main {
	return &Main{Config: cfg, Roles: roles, Logger: logger}
}

// URL is the base URL of the running API.
func (m *Main) URL() string { return "http://" + m.Addr }

// Open connects to (or starts) the broker, opens and migrates ClickHouse,
// and starts the projector and the API. It returns once they run.
func (m *Main) Open(ctx context.Context) (err error) {
	defer func() {
		if err != nil {
			_ = m.Close()
		}
	}()
	cfg := m.Config
	m.Registry = prometheus.NewRegistry()
	m.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.Registry.MustRegister(buildInfo())
	m.inFlight = kafka.NewBudget(cfg.ConsumerMaxInFlightBytes, m.Registry)

	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	m.cancel = cancel
	m.group, runCtx = errgroup.WithContext(runCtx)

	if err := m.openBroker(ctx); err != nil {
		return err
	}
	cfg.warnSecurity(m.Logger)
	if err := prepareTopics(ctx, cfg, m.Brokers, m.Logger); err != nil {
		return err
	}

	m.ch, err = chstore.Open(ctx, cfg.clickhouse(cfg.ClickHouseDatabase))
	if err != nil {
		return fmt.Errorf("open clickhouse at %s: %w", cfg.ClickHouseAddr, err)
	}
	if err := chstore.Migrate(ctx, m.ch, cfg.ClickHouseDatabase, m.Logger); err != nil {
		return fmt.Errorf("migrate clickhouse database %s: %w", cfg.ClickHouseDatabase, err)
	}
	store := rawevents.NewClickHouseStore(m.ch)

	m.publisher, err = kafka.NewPublisher(kafka.PublisherConfig{
		Brokers: m.Brokers, Security: cfg.KafkaSecurity, Logger: m.Logger, Registerer: m.Registry,
	})
	if err != nil {
		return fmt.Errorf("kafka publisher: %w", err)
	}

	if m.Roles.API || m.Roles.Connectors {
		if err := m.openConnectors(ctx, runCtx); err != nil {
			return err
		}
	}
	if (m.Roles.API || m.Roles.Projector) && !m.Roles.Replay {
		if err := m.openCustomers(ctx, runCtx); err != nil {
			return err
		}
	}
	if m.Roles.API || m.Roles.Projector {
		if err := m.openRateCards(ctx, runCtx); err != nil {
			return err
		}
		if err := m.openRevenueSettings(ctx, runCtx); err != nil {
			return err
		}
	}
	if m.Roles.Projector {
		if err := m.openProjector(runCtx, store); err != nil {
			return err
		}
	}
	if (m.Roles.API || m.Roles.Projector) && !m.Roles.Replay {
		if err := m.openInsights(runCtx); err != nil {
			return err
		}
	}
	if m.Roles.API {
		if err := m.openAccess(ctx, runCtx); err != nil {
			return err
		}
		if err := m.openAPI(runCtx); err != nil {
			return err
		}
	} else if err := m.openMetricsOnly(runCtx); err != nil {
		return err
	}
	return nil
}

func (m *Main) openBroker(ctx context.Context) error {
	if len(m.Config.KafkaBrokers) > 0 {
		m.Brokers = m.Config.KafkaBrokers
		return nil
	}
	if !m.Roles.Embedded {
		return errors.New("no Kafka brokers configured: set --kafka-brokers or UVR_KAFKA_BROKERS (only `uvr run` starts an embedded broker)")
	}
	b, err := broker.Start(ctx, broker.Config{
		DataDir:    filepath.Join(m.Config.DataDir, "kafka"),
		Addr:       m.Config.EmbeddedKafkaAddr,
		Partitions: m.Config.TopicPartitions,
		MaxRecords: m.Config.EmbeddedMaxRecords,
		Logger:     m.Logger,
	})
	if err != nil {
		return fmt.Errorf("start embedded kafka broker on %s: %w", m.Config.EmbeddedKafkaAddr, err)
	}
	m.broker = b
	m.Brokers = b.Addrs()
	return nil
}

// brokerCapacity is the embedded broker's Full, or nil with a real Kafka.
func (m *Main) brokerCapacity() func() error {
	if m.broker == nil {
		return nil
	}
	return m.broker.Full
}

func (m *Main) openProjector(ctx context.Context, store *rawevents.ClickHouseStore) error {
	cfg := m.Config
	metrics, err := rawevents.NewMetrics(m.Registry)
	if err != nil {
		return err
	}
	// The daily aggregates live in the projector process: the batcher writes
	// the by-day copy before each raw insert and triggers a recompute of the
	// dirty days after it.
	byDay, err := aggregates.NewWriter(aggregates.WriterConfig{Conn: m.ch})
	if err != nil {
		return err
	}
	aggMetrics, err := aggregates.NewMetrics(m.Registry)
	if err != nil {
		return err
	}
	m.aggregator, err = aggregates.New(aggregates.Config{Conn: m.ch, Pricer: m.rateCards.Card, Metrics: aggMetrics, Logger: m.Logger})
	if err != nil {
		return err
	}
	m.group.Go(func() error { return m.aggregator.Run(ctx) })
	m.batcher, err = rawevents.NewBatcher(rawevents.BatcherConfig{
		Inserter:      store,
		Before:        byDay,
		Flushed:       m.aggregator.Trigger,
		BatchSize:     cfg.BatchSize,
		FlushInterval: cfg.FlushInterval,
		Metrics:       metrics,
		Logger:        m.Logger,
	})
	if err != nil {
		return err
	}
	if err := kafka.CheckHistory(ctx, m.Brokers, cfg.KafkaSecurity, cfg.ConsumerGroup, cfg.EventsTopic); err != nil {
		return fmt.Errorf("projector: %w", err)
	}
	m.subscriber, err = kafka.NewSubscriber(kafka.SubscriberConfig{
		Brokers:       m.Brokers,
		Security:      cfg.KafkaSecurity,
		ConsumerGroup: cfg.ConsumerGroup,
		MaxInFlight:   cfg.ConsumerMaxInFlight,
		Budget:        m.inFlight,
		Logger:        m.Logger,
		Registerer:    m.Registry,
	})
	if err != nil {
		return fmt.Errorf("kafka subscriber: %w", err)
	}
	m.router, err = router.New(router.Config{
		Logger:          m.Logger,
		Registerer:      m.Registry,
		PoisonPublisher: m.publisher,
		PoisonTopic:     cfg.PoisonTopic,
	})
	if err != nil {
		return err
	}
	handler, err := rawevents.NewHandler(rawevents.HandlerConfig{Rows: m.batcher})
	if err != nil {
		return err
	}
	m.router.AddNoPublisherHandler("rawevents", cfg.EventsTopic, m.subscriber, handler)
	if err := m.runRouter(ctx, m.router, "projector"); err != nil {
		return err
	}
	m.Logger.Info("projector running", "topic", cfg.EventsTopic, "group", cfg.ConsumerGroup)
	return nil
}

// openCustomers opens the customer directory (identity resolution) on its
// compacted topic; the projector role also keeps it current from the events
// topic, in a consumer group of its own.
func (m *Main) openCustomers(ctx, runCtx context.Context) error {
	table, err := m.openTable(ctx, runCtx, m.Config.topicNames().Customers)
	if err != nil {
		return err
	}
	if m.customers, err = customers.New(customers.Config{Table: table, Logger: m.Logger}); err != nil {
		return err
	}
	if !m.Roles.Projector {
		return nil
	}
	group := m.Config.ConsumerGroup + "-customers"
	if err := kafka.CheckHistory(ctx, m.Brokers, m.Config.KafkaSecurity, group, m.Config.EventsTopic); err != nil {
		return fmt.Errorf("customer directory: %w", err)
	}
	sub, err := kafka.NewSubscriber(kafka.SubscriberConfig{Brokers: m.Brokers, Security: m.Config.KafkaSecurity, ConsumerGroup: group,
		Budget: m.inFlight, Logger: m.Logger, Registerer: m.Registry})
	if err != nil {
		return fmt.Errorf("customer directory subscriber: %w", err)
	}
	m.closers = append(m.closers, sub.Close)
	r, err := router.New(router.Config{Logger: m.Logger, Registerer: m.Registry,
		PoisonPublisher: m.publisher, PoisonTopic: m.Config.PoisonTopic})
	if err != nil {
		return err
	}
	m.closers = append([]func() error{r.Close}, m.closers...)
	r.AddNoPublisherHandler("customers", m.Config.EventsTopic, sub, customers.NewHandler(m.customers))
	return m.runRouter(runCtx, r, "customer directory")
}

// healthCheck is one dependency of this process.
type healthCheck struct {
	name  string
	check func(ctx context.Context) error
}

func (m *Main) healthChecks() []api.HealthCheck {
	checks := []api.HealthCheck{
		{Name: "kafka", Check: func(ctx context.Context) error {
			return kafka.Ping(ctx, m.Brokers, m.Config.KafkaSecurity, 2*time.Second)
		}},
		{Name: "clickhouse", Check: func(ctx context.Context) error { return m.ch.Ping(ctx) }},
	}
	for _, h := range m.health {
		checks = append(checks, api.HealthCheck{Name: h.name, Check: h.check})
	}
	return checks
}

func (m *Main) openAPI(ctx context.Context) error {
	cfg := m.Config
	apiCfg := api.Config{
		Addr:                cfg.HTTPAddr,
		Version:             version,
		EventsTopic:         cfg.EventsTopic,
		MaxBatchEvents:      cfg.MaxBatchEvents,
		ReadHeaderTimeout:   cfg.HTTPReadHeaderTimeout,
		ReadTimeout:         cfg.HTTPReadTimeout,
		WriteTimeout:        cfg.HTTPWriteTimeout,
		IdleTimeout:         cfg.HTTPIdleTimeout,
		ReportingCurrency:   cfg.Currency,
		Publisher:           m.publisher,
		Capacity:            m.brokerCapacity(),
		Services:            m.registry,
		Sync:                m.engine,
		Health:              m.healthChecks(),
		Auth:                m.access,
		CORSOrigins:         cfg.CORSOrigins,
		TrustForwardedProto: cfg.TrustForwardedProto,
		TrustedProxies:      cfg.TrustedProxies,
		Logins:              api.LoginLimits{Hashes: cfg.LoginConcurrency},
		Logger:              m.Logger,
		Registerer:          m.Registry,
		Gatherer:            m.Registry,
	}
	if m.airbyte != nil { // a nil *Platform must not become a non-nil interface
		apiCfg.Airbyte = m.airbyte
	}
	apiCfg.Customers = m.customers
	deadLetters, err := m.deadLetters()
	if err != nil {
		return err
	}
	apiCfg.DeadLetters = deadLetters
	apiCfg.RevenueSettings = m.revenue
	if m.rateCards != nil { // a nil *Store must not become a non-nil interface
		apiCfg.RateCards = m.rateCards
	}
	if svc := m.insights.Load(); svc != nil {
		apiCfg.Insights, apiCfg.InsightRunner = svc, svc
	}
	if m.customers != nil { // per-customer analytics group references through the directory
		dir := m.customers
		analytics, err := aggregates.NewAnalytics(m.ch, func(ctx context.Context) (map[customers.Ref]string, error) {
			if err := dir.Sync(ctx); err != nil {
				return nil, err
			}
			return dir.Snapshot(), nil
		}, m.revenue)
		if err != nil {
			return err
		}
		apiCfg.Analytics = api.Analytics{Reader: analytics, Items: analytics, Customers: dir, MRR: analytics}
		if m.rateCards != nil { // what-if repricing layers a card over the effective one
			apiCfg.Simulator = api.Simulator{Usage: analytics, Customers: dir, Cards: m.rateCards}
		}
	}
	webFS, err := web.FS()
	if err != nil {
		return err
	}
	apiCfg.Web = webFS
	if m.server, err = api.New(apiCfg); err != nil {
		return err
	}
	m.listener, err = m.server.Listen()
	if err != nil {
		return err
	}
	m.Addr = m.listener.Addr().String()
	m.group.Go(func() error { return m.server.Serve(m.listener) })
	return nil
}

// openMetricsOnly serves /metrics and /health for a projector-only process,
// so that every stage can be scraped.
func (m *Main) openMetricsOnly(ctx context.Context) error {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry}))
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) {
		for _, h := range m.healthChecks() {
			if err := h.Check(r.Context()); err != nil {
				http.Error(w, h.Name+" unreachable", http.StatusServiceUnavailable)
				return
			}
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	ln, err := net.Listen("tcp", m.Config.MetricsAddr)
	if err != nil {
		return fmt.Errorf("listen for metrics on %s: %w", m.Config.MetricsAddr, err)
	}
	m.listener = ln
	m.Addr = ln.Addr().String()
	m.metricsSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	m.group.Go(func() error {
		if err := m.metricsSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	return nil
}

// Wait blocks until ctx ends or a component fails, and returns the failure.
func (m *Main) Wait(ctx context.Context) error {
	done := make(chan error, 1)
	go func() { done <- m.group.Wait() }()
	select {
	case <-ctx.Done():
		return nil
	case err := <-done:
		return err
	}
}

// Close stops every component, the API first (no new events), then the
// projector (which flushes what it holds), then the connections.
func (m *Main) Close() error {
	var errs []error
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if m.server != nil {
		errs = append(errs, m.server.Shutdown(shutdownCtx))
	}
	if m.metricsSrv != nil {
		errs = append(errs, m.metricsSrv.Shutdown(shutdownCtx))
	}
	if m.scheduler != nil {
		errs = append(errs, m.scheduler.Close())
	}
	if m.syncRouter != nil {
		errs = append(errs, m.syncRouter.Close())
	}
	if m.syncSubscriber != nil {
		errs = append(errs, m.syncSubscriber.Close())
	}
	if m.router != nil {
		errs = append(errs, m.router.Close())
	}
	if m.batcher != nil {
		errs = append(errs, m.batcher.Close())
	}
	if m.subscriber != nil {
		errs = append(errs, m.subscriber.Close())
	}
	if m.cancel != nil {
		m.cancel()
	}
	if m.group != nil {
		errs = append(errs, m.group.Wait())
	}
	for _, t := range m.tables {
		errs = append(errs, t.Close())
	}
	for _, c := range m.closers {
		errs = append(errs, c())
	}
	if m.publisher != nil {
		errs = append(errs, m.publisher.Close())
	}
	if m.ch != nil {
		errs = append(errs, m.ch.Close())
	}
	if m.broker != nil {
		errs = append(errs, m.broker.Close())
	}
	return errors.Join(errs...)
}

func buildInfo() prometheus.Collector {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "uvr_build_info",
		Help: "Build information of the running uvr binary; always 1.",
	}, []string{"version"})
	g.WithLabelValues(version).Set(1)
	return g
}

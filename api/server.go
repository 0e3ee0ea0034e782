// Package api is uvr's HTTP interface (Gin): event ingest, the dashboard
// queries, health and Prometheus metrics.
//
// Handlers depend on the small interfaces declared here, never on Kafka or
// ClickHouse directly; cmd/uvr wires the real implementations.
package api

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Publisher sends messages to a topic and returns only after the broker
// acknowledged every one of them (Watermill's message.Publisher contract with
// a synchronous implementation). Safe for concurrent use.
type Publisher interface {
	Publish(topic string, messages ...*message.Message) error
}

// HealthCheck is one dependency of the API; Check returns nil when it is
// reachable. Name appears in health responses, so it must not hold secrets.
type HealthCheck struct {
	Name  string
	Check func(ctx context.Context) error
}

// Config of the API server. Zero values take the defaults of DefaultConfig.
type Config struct {
	Addr              string        // listen address, default 127.0.0.1:8000
	Version           string        // reported by /health
	EventsTopic       string        // where accepted events are published
	MaxBatchEvents    int           // events in one batch request, default 5000
	MaxBodyBytes      int64         // request body limit, default 16 MiB
	ReportingCurrency string        // default USD
	HealthTimeout     time.Duration // per dependency check, default 2s

	Publisher Publisher
	// Capacity, when set, explains a failed publish: a non-nil error (the embedded
	// broker's record limit) is the detail of the 503 instead of "retry the request".
	Capacity func() error
	Health   []HealthCheck
	Services ServiceRegistry // /api/services, /api/test-service, /api/service-types; nil answers 503
	Sync     SyncEngine      // /api/sync, /api/sync-runs, /api/services/:id/sync; nil answers 503
	SyncWait time.Duration   // how long POST /api/sync waits for the runs, default 5 min
	Airbyte  AirbytePlatform // /api/airbyte/*; nil answers 503
	// Customers serves POST /api/customers/{link,unlink,merge,split} and GET
	// /api/customer-references (customers.go); nil answers 503.
	Customers CustomerDirectory
	// Analytics serves GET /api/customers, /api/customers/{id}, /api/features
	// and /api/timeseries (analytics.go); missing parts answer 503.
	Analytics Analytics
	// RevenueSettings serves /api/fx-rates and /api/revenue-mapping; nil answers 503.
	RevenueSettings RevenueSettings
	// Insights and InsightRunner serve /api/insights* (insights.go); nil
	// answers 503.
	Insights      InsightFlags
	InsightRunner InsightRunner
	// RateCards serves GET and PUT /api/rate-cards (ratecards.go); nil
	// answers 503.
	RateCards RateCards
	// Simulator serves POST /api/simulate (simulate.go); missing parts
	// answer 503.
	Simulator Simulator
	// Web is the dashboard (dashboards/web), served for every GET outside
	// /api, /metrics and /health (web.go); nil serves none.
	Web fs.FS

	// Auth is required: every /api route but health, login and the OpenAPI
	// document needs a bearer token or an API key (auth.go). There is no
	// open mode.
	Auth Auth
	// CORSOrigins may call the API from a browser; default
	// http://localhost:3000. The server's own origin is always allowed.
	CORSOrigins []string

	Logger     *slog.Logger
	Registerer prometheus.Registerer // where API metrics go; nil = not registered
	Gatherer   prometheus.Gatherer   // what /metrics serves; nil = no /metrics
}

// Validate reports every missing dependency at once.
func (c Config) Validate() error {
	var errs []error
	if c.Publisher == nil {
		errs = append(errs, errors.New("api: Publisher is required"))
	}
	if c.EventsTopic == "" {
		errs = append(errs, errors.New("api: EventsTopic is required"))
	}
	if c.Logger == nil {
		errs = append(errs, errors.New("api: Logger is required"))
	}
	if c.Auth == nil {
		errs = append(errs, errors.New("api: Auth is required (the API never runs open)"))
	}
	return errors.Join(errs...)
}

func (c *Config) setDefaults() {
	if c.Addr == "" {
		c.Addr = "127.0.0.1:8000"
	}
	if c.MaxBatchEvents <= 0 {
		c.MaxBatchEvents = 5000
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = 16 << 20
	}
	if c.ReportingCurrency == "" {
		c.ReportingCurrency = "USD"
	}
	if c.HealthTimeout <= 0 {
		c.HealthTimeout = 2 * time.Second
	}
}

// Server is the HTTP server. Create it with New, start it with Serve.
type Server struct {
	cfg     Config
	logger  *slog.Logger
	engine  *gin.Engine
	metrics *metrics
	http    *http.Server
}

// New builds the routes. It does not listen yet.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, logger: cfg.Logger.With("component", "api"), metrics: m}

	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	e.ContextWithFallback = true // c.Done()/c.Value reach the request context
	// CORS before anything that may refuse a request: a preflight carries no
	// credentials and must be answered as such.
	e.Use(s.recoverer, s.observe, corsMiddleware(cfg.CORSOrigins))
	e.GET("/health", s.health)
	api := e.Group("/api", s.authenticate) // auth.go: public routes pass
	api.GET("/health", s.health)
	api.POST("/events", s.postEvents)
	api.GET("/dashboard", s.dashboard)
	api.GET("/services", s.listServices)
	api.POST("/services", s.createService)
	api.DELETE("/services/:id", s.deleteService)
	api.POST("/test-service", s.testService)
	api.GET("/service-types", s.listServiceTypes)
	api.GET("/sync-runs", s.listSyncRuns)
	api.POST("/sync", s.syncAll)
	api.POST("/services/:id/sync", s.syncService)
	api.GET("/airbyte/connections", s.listAirbyteConnections)
	api.POST("/airbyte/sync/:id", s.triggerAirbyteSync)
	api.GET("/airbyte/status/:id", s.airbyteSyncStatus)
	api.GET("/openapi.json", s.openapiJSON) // openapi.go: the document of these routes
	api.GET("/docs", s.docs)
	s.registerAuth(api)
	s.registerCustomers(api)
	s.registerAnalytics(api)
	s.registerRevenueSettings(api)
	s.registerInsights(api)
	s.registerRateCards(api)
	s.registerSimulate(api)
	if cfg.Gatherer != nil {
		e.GET("/metrics", gin.WrapH(promhttp.HandlerFor(cfg.Gatherer, promhttp.HandlerOpts{Registry: cfg.Registerer})))
	}
	e.NoRoute(func(c *gin.Context) {
		if s.serveWeb(c) {
			return
		}
		s.writeError(c, &Error{Kind: KindNotFound, Detail: fmt.Sprintf("no route %s %s", c.Request.Method, c.Request.URL.Path)})
	})
	s.engine = e
	s.http = &http.Server{Handler: e, ReadHeaderTimeout: 10 * time.Second}
	return s, nil
}

// Handler exposes the routes, for tests and embedding.
func (s *Server) Handler() http.Handler { return s.engine }

// Listen binds the configured address; Serve then runs until Shutdown.
// Split so that a caller can learn the bound port (":0" in tests).
func (s *Server) Listen() (net.Listener, error) {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", s.cfg.Addr, err)
	}
	return ln, nil
}

// Serve serves HTTP on ln until Shutdown is called.
func (s *Server) Serve(ln net.Listener) error {
	s.logger.Info("api listening", "addr", ln.Addr().String())
	if err := s.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve http: %w", err)
	}
	return nil
}

// Shutdown stops accepting requests and waits for those in flight.
func (s *Server) Shutdown(ctx context.Context) error {
	return s.http.Shutdown(ctx)
}

// recoverer turns a panic in a handler into a logged 500 instead of a dropped
// connection.
func (s *Server) recoverer(c *gin.Context) {
	defer func() {
		if r := recover(); r != nil {
			s.writeError(c, fmt.Errorf("panic: %v", r))
		}
	}()
	c.Next()
}

// observe records every request's route, status and latency.
func (s *Server) observe(c *gin.Context) {
	start := time.Now()
	c.Next()
	route := c.FullPath()
	if route == "" {
		route = "unmatched" // bounded label: never the raw path
	}
	s.metrics.observeRequest(route, c.Request.Method, c.Writer.Status(), time.Since(start))
}

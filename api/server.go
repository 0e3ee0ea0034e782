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
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
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
	MaxBodyBytes      int64         // request body limit of every route, default 16 MiB
	ReportingCurrency string        // default USD
	HealthTimeout     time.Duration // per dependency check, default 2s

	// MaxEventBytes bounds one event as published: Kafka refuses a record
	// over its message.max.bytes (1 MiB by default) for good, so a larger
	// event is a 413, never a 503 to retry. Default 512 KiB.
	MaxEventBytes int
	// Timeouts of the HTTP server (net/http): reading the headers (default
	// 10s), the whole request (default 1m), writing the response (default
	// 1m; POST /api/sync extends its own by SyncWait) and an idle keep-alive
	// connection (default 2m). They stop slow clients from holding
	// connections.
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration

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
	// DeadLetters serves GET /api/deadletters (deadletters.go); nil answers 503.
	DeadLetters DeadLetters
	// Web is the dashboard (dashboards/web), served for every GET outside
	// /api, /metrics and /health (web.go); nil serves none.
	Web fs.FS

	// Auth is required: every /api route but health, login and the OpenAPI
	// document needs a bearer token or an API key (auth.go). There is no
	// open mode.
	Auth Auth
	// Logins bounds password logins (loginguard.go); zero values take
	// DefaultLoginLimits.
	Logins LoginLimits
	// TrustedProxies are the addresses (CIDR or IP) of reverse proxies
	// whose X-Forwarded-For names the client; default none, so a client
	// cannot choose the address the login limits count it under.
	TrustedProxies []string
	// CORSOrigins may call the API from a browser, with credentials, and
	// send state-changing requests on the session cookie (session.go); none
	// by default. The server's own origin is always allowed.
	CORSOrigins []string
	// TrustForwardedProto: a TLS-terminating proxy in front sets
	// X-Forwarded-Proto, so "https" there marks the session cookie Secure.
	// Off, only the connection's own TLS counts.
	TrustForwardedProto bool

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
	if c.MaxEventBytes <= 0 {
		c.MaxEventBytes = 512 << 10
	}
	if c.ReadHeaderTimeout <= 0 {
		c.ReadHeaderTimeout = 10 * time.Second
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = time.Minute
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = time.Minute
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 2 * time.Minute
	}
	if c.SyncWait <= 0 {
		c.SyncWait = DefaultSyncWait
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
	logins  *loginGuard
	origins map[string]bool // CORSOrigins
	static  map[string][]string
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
	s := &Server{cfg: cfg, logger: cfg.Logger.With("component", "api"), metrics: m, origins: map[string]bool{}}
	for _, o := range cfg.CORSOrigins {
		s.origins[strings.TrimRight(o, "/")] = true
	}

	s.logins = newLoginGuard(cfg.Auth, cfg.Logins, func(reason string) { m.loginsRefused.WithLabelValues(reason).Inc() })

	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	if err := e.SetTrustedProxies(cfg.TrustedProxies); err != nil {
		return nil, fmt.Errorf("api: trusted proxies: %w", err)
	}
	e.ContextWithFallback = true // c.Done()/c.Value reach the request context
	// A method a route does not have is 405 with Allow (RFC 9110), not 404.
	e.HandleMethodNotAllowed = true
	// CORS before anything that may refuse a request: a preflight carries no
	// credentials and must be answered as such. limitBody before any handler
	// reads a body: every route has a ceiling, routes with smaller bodies
	// set their own on top.
	e.Use(s.recoverer, s.observe, corsMiddleware(s.origins), s.staticOnly, s.limitBody)
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
	api.POST("/settings", s.postSettings)
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
	s.registerDeadLetters(api)
	if cfg.Gatherer != nil {
		e.GET("/metrics", gin.WrapH(promhttp.HandlerFor(cfg.Gatherer, promhttp.HandlerOpts{Registry: cfg.Registerer})))
	}
	s.static = staticRoutes(e.Routes())
	e.NoMethod(func(c *gin.Context) {
		// Gin has set Allow to the methods whose routes match the path; a
		// static path has only its own (see staticRoutes).
		if methods, ok := s.static[c.Request.URL.Path]; ok {
			c.Header("Allow", strings.Join(methods, ", "))
		}
		s.methodNotAllowed(c)
	})
	e.NoRoute(func(c *gin.Context) {
		if s.serveWeb(c) {
			return
		}
		s.writeError(c, &Error{Kind: KindNotFound, Detail: fmt.Sprintf("no route %s %s", c.Request.Method, c.Request.URL.Path)})
	})
	s.engine = e
	s.http = &http.Server{Handler: e, ReadHeaderTimeout: cfg.ReadHeaderTimeout, ReadTimeout: cfg.ReadTimeout,
		WriteTimeout: cfg.WriteTimeout, IdleTimeout: cfg.IdleTimeout}
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

// staticRoutes maps each path without parameters to the methods it is
// registered with. Such a path is that resource alone: /api/customers/link
// takes POST only, even though GET /api/customers/:id would match its text.
// Without this rule GET /api/customers/link asked for a customer named
// "link" and Allow listed GET on a path the document gives only POST.
func staticRoutes(routes gin.RoutesInfo) map[string][]string {
	static := map[string][]string{}
	for _, r := range routes {
		if !strings.ContainsAny(r.Path, ":*") {
			static[r.Path] = append(static[r.Path], r.Method)
		}
	}
	for _, methods := range static {
		slices.Sort(methods)
	}
	return static
}

// staticOnly answers 405 for a request a parameter route matched on a path
// that is a static route of other methods (staticRoutes).
func (s *Server) staticOnly(c *gin.Context) {
	if methods, ok := s.static[c.Request.URL.Path]; ok && c.FullPath() != c.Request.URL.Path && !slices.Contains(methods, c.Request.Method) {
		c.Header("Allow", strings.Join(methods, ", "))
		s.methodNotAllowed(c)
		return
	}
	c.Next()
}

// methodNotAllowed is the 405 of a method the path does not have; Allow is set.
func (s *Server) methodNotAllowed(c *gin.Context) {
	s.writeError(c, &Error{Kind: KindMethodNotAllowed, Detail: fmt.Sprintf(
		"%s is not allowed on %s; allowed: %s", c.Request.Method, c.Request.URL.Path, c.Writer.Header().Get("Allow"))})
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

// limitBody bounds every request body by MaxBodyBytes; reading past it
// fails with *http.MaxBytesError, which readBody turns into a 413.
func (s *Server) limitBody(c *gin.Context) {
	if c.Request.Body != nil {
		c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, s.cfg.MaxBodyBytes)
	}
	c.Next()
}

// readBody reads a body of at most limit bytes (within MaxBodyBytes): a
// larger one is a 413 naming the limit.
func (s *Server) readBody(c *gin.Context, limit int64) ([]byte, error) {
	limit = min(limit, s.cfg.MaxBodyBytes)
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, limit))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return nil, &Error{Kind: KindTooLarge, Detail: fmt.Sprintf("request body is larger than the limit of %d bytes", min(limit, tooLarge.Limit))}
	case err != nil:
		return nil, invalid("could not read the request body: " + err.Error())
	}
	return body, nil
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

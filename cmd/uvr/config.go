package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"

	"github.com/uvrhq/uvr/connectors/credentials"
	"github.com/uvrhq/uvr/connectors/source"
	"github.com/uvrhq/uvr/pipeline/broker"
	"github.com/uvrhq/uvr/pipeline/kafka"
	"github.com/uvrhq/uvr/projections/chstore"
	"github.com/uvrhq/uvr/projections/insights"
)

// Config is the one typed configuration tree of the uvr binary. Defaults live
// in defaultConfig; every field can be set by a flag and by the UVR_*
// environment variable named in its help (a flag wins over the environment).
type Config struct {
	HTTPAddr    string
	MetricsAddr string // uvr project: /metrics and /health
	DataDir     string

	KafkaBrokers        []string // empty: start the embedded broker (uvr run)
	EmbeddedKafkaAddr   string
	EmbeddedMaxRecords  int64 // records the embedded broker holds before refusing more; -1 no limit
	EventsTopic         string
	PoisonTopic         string
	TopicPartitions     int
	ConsumerGroup       string
	ConsumerMaxInFlight int
	// ConsumerMaxInFlightBytes bounds the memory of consumed messages held at once, across
	// every consumer of the process (kafka.Budget).
	ConsumerMaxInFlightBytes int64
	// Replication of the topics uvr creates; 0 = auto (3 and 2 on a cluster of three
	// brokers or more, else 1 and 1: pipeline/topics.Replication).
	KafkaReplicationFactor int
	KafkaMinInsyncReplicas int
	// TLS and SASL/SCRAM of every Kafka connection (security.go), as set by
	// flags and UVR_KAFKA_TLS_* / UVR_KAFKA_SASL_*; loadSecurity reads them
	// into KafkaSecurity, which every client takes (zero: plaintext).
	KafkaTLS           TLSFiles
	KafkaSASLMechanism string
	KafkaSASLUsername  string
	KafkaSASLPassword  string
	KafkaSecurity      kafka.Security

	ClickHouseAddr     string
	ClickHouseDatabase string
	ClickHouseUser     string
	ClickHousePassword string
	// TLS of the ClickHouse connections (UVR_CLICKHOUSE_TLS_*), read by
	// loadSecurity into ClickHouseTLSConfig (nil: plaintext).
	ClickHouseTLS       TLSFiles
	ClickHouseTLSConfig *tls.Config

	// Timeouts of the API's HTTP server (api.Config): headers, whole
	// request, response (POST /api/sync extends its own) and idle keep-alive.
	HTTPReadHeaderTimeout time.Duration
	HTTPReadTimeout       time.Duration
	HTTPWriteTimeout      time.Duration
	HTTPIdleTimeout       time.Duration

	BatchSize      int
	FlushInterval  time.Duration
	MaxBatchEvents int
	Currency       string
	// RateCards are card files over the default LLM card, lowest
	// precedence first (projections/pricing).
	RateCards []string
	// FXRates is a daily FX table file (pricing.ParseFX); RevenueMapping a
	// plan → feature file (revsettings.ParseMapping). Both are overridden by
	// what PUT /api/fx-rates and /api/revenue-mapping store.
	FXRates        string
	RevenueMapping string

	LogLevel  string
	LogFormat string

	// Connectors.
	ConnectorPrefix string // names the connector topics and consumer group
	EnableScheduler bool
	VaultAddr       string
	VaultToken      string
	VaultRoleID     string
	VaultSecretID   string
	VaultMount      string
	VaultPrefix     string
	// The Vault transit key sealing the secrets of the users topic (the
	// signing secret, the password hashes) when Vault is configured; without
	// Vault the local key (EncryptionKey or its key file) seals them.
	VaultTransitMount string
	VaultTransitKey   string
	EncryptionKey     string
	AirbyteURL        string
	AirbyteToken      string
	// ConnectorAllowPrivateHosts widens the egress policy of configured
	// services (source.Egress): hosts, addresses or networks their base_url
	// may reach although private, loopback or plain http.
	ConnectorAllowPrivateHosts []string
	// MappingDir holds the mapping files a custom service's mapping_file
	// may name; "" means DataDir/mappings.
	MappingDir        string
	AirbyteWorkspaces []string
	// Airbyte's destination-kafka topics to map into events (platform mode),
	// with a vendor's mapper or a declarative mapping file.
	AirbyteKafkaTopics  []string
	AirbyteKafkaSource  string
	AirbyteKafkaMapping string

	// Insight alerts (projections/insights.Alerter): a signed webhook and a
	// Slack-compatible incoming webhook, each sent the flags of at least
	// AlertMinSeverity. The URLs and the secret are never logged.
	AlertWebhookURL    string
	AlertWebhookSecret string
	AlertSlackURL      string
	AlertMinSeverity   string

	// Access (auth.go, api/access): the token signing secret (empty: one
	// generated once and shared through the users topic), the token
	// lifetime, the admin created on the first start, and the browser
	// origins allowed by CORS. The secret and the password are never logged.
	AuthSecret    string
	TokenTTL      time.Duration
	AdminEmail    string
	AdminPassword string
	CORSOrigins   []string
	// TrustedProxies may set X-Forwarded-For (the address login limits
	// count); LoginConcurrency bounds the password checks run at once.
	TrustedProxies   []string
	LoginConcurrency int
	// TrustForwardedProto: a TLS-terminating proxy sets X-Forwarded-Proto
	// (the session cookie is then Secure when it says https).
	TrustForwardedProto bool
}

func defaultConfig() Config {
	return Config{
		HTTPAddr:            "127.0.0.1:8000",
		MetricsAddr:         "127.0.0.1:8001",
		DataDir:             "var/uvr",
		EmbeddedKafkaAddr:   "127.0.0.1:9192",
		EmbeddedMaxRecords:  broker.DefaultMaxRecords,
		EventsTopic:         "uvr.events.v1",
		PoisonTopic:         "uvr.events.v1.poison",
		TopicPartitions:     6,
		ConsumerGroup:       "uvr-projector",
		ConsumerMaxInFlight: 5000,
		// 64 MiB: about 2,000 events in flight (kafka.InFlightOverhead), enough for insert
		// batches of thousands, and the bound that keeps `uvr run` under 300 MB at any log size.
		ConsumerMaxInFlightBytes: 64 << 20,
		ClickHouseAddr:           "127.0.0.1:9000",
		ClickHouseDatabase:       "uvr",
		ClickHouseUser:           "default",
		BatchSize:                5000,
		FlushInterval:            250 * time.Millisecond,
		MaxBatchEvents:           5000,
		Currency:                 "USD",
		LogLevel:                 "info",
		LogFormat:                "text",
		ConnectorPrefix:          "uvr",
		EnableScheduler:          true,
		AlertMinSeverity:         "warning",
		VaultMount:               "secret",
		VaultPrefix:              "uvr/services",
		VaultTransitMount:        credentials.DefaultTransitMount,
		VaultTransitKey:          credentials.DefaultTransitKey,
		TokenTTL:                 12 * time.Hour,
		// API hardening (api.Config, docs/operations.md "Hardening").
		HTTPReadHeaderTimeout: 10 * time.Second,
		HTTPReadTimeout:       time.Minute,
		HTTPWriteTimeout:      time.Minute,
		HTTPIdleTimeout:       2 * time.Minute,
		LoginConcurrency:      4,
	}
}

// bind registers the flags of cfg on fs. Each flag carries its environment
// variable as an annotation, shown in its help and read by applyEnv.
func (cfg *Config) bind(fs *pflag.FlagSet) {
	withEnv := func(name, env string) { withEnv(fs, name, env) }
	fs.StringVar(&cfg.HTTPAddr, "http-addr", cfg.HTTPAddr, "address the API listens on")
	withEnv("http-addr", "UVR_HTTP_ADDR")
	fs.DurationVar(&cfg.HTTPReadHeaderTimeout, "http-read-header-timeout", cfg.HTTPReadHeaderTimeout, "API: longest wait for a request's headers")
	withEnv("http-read-header-timeout", "UVR_HTTP_READ_HEADER_TIMEOUT")
	fs.DurationVar(&cfg.HTTPReadTimeout, "http-read-timeout", cfg.HTTPReadTimeout, "API: longest time to read a whole request, body included")
	withEnv("http-read-timeout", "UVR_HTTP_READ_TIMEOUT")
	fs.DurationVar(&cfg.HTTPWriteTimeout, "http-write-timeout", cfg.HTTPWriteTimeout, "API: longest time to answer a request (POST /api/sync adds its own wait)")
	withEnv("http-write-timeout", "UVR_HTTP_WRITE_TIMEOUT")
	fs.DurationVar(&cfg.HTTPIdleTimeout, "http-idle-timeout", cfg.HTTPIdleTimeout, "API: longest an idle keep-alive connection stays open")
	withEnv("http-idle-timeout", "UVR_HTTP_IDLE_TIMEOUT")
	fs.StringVar(&cfg.MetricsAddr, "metrics-addr", cfg.MetricsAddr, "address of /metrics and /health for uvr project (the API serves its own)")
	withEnv("metrics-addr", "UVR_METRICS_ADDR")
	fs.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "directory for local state (the embedded broker's log)")
	withEnv("data-dir", "UVR_DATA_DIR")
	fs.StringSliceVar(&cfg.KafkaBrokers, "kafka-brokers", cfg.KafkaBrokers, "Kafka bootstrap brokers, comma separated; empty makes uvr run start its embedded broker")
	withEnv("kafka-brokers", "UVR_KAFKA_BROKERS")
	fs.StringVar(&cfg.EmbeddedKafkaAddr, "embedded-kafka-addr", cfg.EmbeddedKafkaAddr, "address of the embedded broker when no brokers are configured")
	withEnv("embedded-kafka-addr", "UVR_EMBEDDED_KAFKA_ADDR")
	fs.Int64Var(&cfg.EmbeddedMaxRecords, "embedded-kafka-max-records", cfg.EmbeddedMaxRecords, "records the embedded broker holds in memory before it refuses more (ingest answers 503); -1 for no limit")
	withEnv("embedded-kafka-max-records", "UVR_EMBEDDED_KAFKA_MAX_RECORDS")
	fs.StringVar(&cfg.EventsTopic, "events-topic", cfg.EventsTopic, "Kafka topic of v1 events")
	withEnv("events-topic", "UVR_EVENTS_TOPIC")
	fs.StringVar(&cfg.PoisonTopic, "poison-topic", cfg.PoisonTopic, "Kafka topic for events that can never be projected")
	withEnv("poison-topic", "UVR_POISON_TOPIC")
	fs.IntVar(&cfg.TopicPartitions, "topic-partitions", cfg.TopicPartitions, "partitions of the events topic when uvr creates it")
	withEnv("topic-partitions", "UVR_TOPIC_PARTITIONS")
	fs.IntVar(&cfg.KafkaReplicationFactor, "kafka-replication-factor", cfg.KafkaReplicationFactor, "replication factor of the topics uvr creates; 0 = 3 on a cluster of three brokers or more, else 1")
	withEnv("kafka-replication-factor", "UVR_KAFKA_REPLICATION_FACTOR")
	fs.IntVar(&cfg.KafkaMinInsyncReplicas, "kafka-min-insync-replicas", cfg.KafkaMinInsyncReplicas, "min.insync.replicas of the topics uvr creates; 0 = 2 when the replication factor is 3 or more, else 1")
	withEnv("kafka-min-insync-replicas", "UVR_KAFKA_MIN_INSYNC_REPLICAS")
	fs.StringVar(&cfg.ConsumerGroup, "consumer-group", cfg.ConsumerGroup, "Kafka consumer group of the projector")
	withEnv("consumer-group", "UVR_CONSUMER_GROUP")
	fs.IntVar(&cfg.ConsumerMaxInFlight, "consumer-max-in-flight", cfg.ConsumerMaxInFlight, "unacknowledged messages per partition the projector may hold in one batch")
	withEnv("consumer-max-in-flight", "UVR_CONSUMER_MAX_IN_FLIGHT")
	fs.Int64Var(&cfg.ConsumerMaxInFlightBytes, "consumer-max-in-flight-bytes", cfg.ConsumerMaxInFlightBytes, "estimated bytes of consumed messages the process may hold at once, across all its consumers (bounds its memory)")
	withEnv("consumer-max-in-flight-bytes", "UVR_CONSUMER_MAX_IN_FLIGHT_BYTES")
	// TLS and SASL of Kafka and ClickHouse (security.go). The password is never logged.
	fs.BoolVar(&cfg.KafkaTLS.Enabled, "kafka-tls", false, "connect to Kafka over TLS (implied by the other --kafka-tls-* flags)")
	withEnv("kafka-tls", "UVR_KAFKA_TLS")
	fs.StringVar(&cfg.KafkaTLS.CA, "kafka-tls-ca", "", "PEM file of the CA that signed the brokers' certificates (default: the system's roots)")
	withEnv("kafka-tls-ca", "UVR_KAFKA_TLS_CA")
	fs.StringVar(&cfg.KafkaTLS.Cert, "kafka-tls-cert", "", "PEM client certificate for Kafka (mutual TLS), with --kafka-tls-key")
	withEnv("kafka-tls-cert", "UVR_KAFKA_TLS_CERT")
	fs.StringVar(&cfg.KafkaTLS.Key, "kafka-tls-key", "", "PEM private key of --kafka-tls-cert")
	withEnv("kafka-tls-key", "UVR_KAFKA_TLS_KEY")
	fs.BoolVar(&cfg.KafkaTLS.InsecureSkipVerify, "kafka-tls-insecure-skip-verify", false, "accept any broker certificate (never in production: anyone on the path can read and change the traffic)")
	withEnv("kafka-tls-insecure-skip-verify", "UVR_KAFKA_TLS_INSECURE_SKIP_VERIFY")
	fs.StringVar(&cfg.KafkaSASLMechanism, "kafka-sasl-mechanism", "", "SASL mechanism for Kafka: SCRAM-SHA-256 or SCRAM-SHA-512 (default: none)")
	withEnv("kafka-sasl-mechanism", "UVR_KAFKA_SASL_MECHANISM")
	fs.StringVar(&cfg.KafkaSASLUsername, "kafka-sasl-username", "", "SASL user for Kafka")
	withEnv("kafka-sasl-username", "UVR_KAFKA_SASL_USERNAME")
	fs.StringVar(&cfg.KafkaSASLPassword, "kafka-sasl-password", "", "SASL password for Kafka (prefer the environment variable)")
	withEnv("kafka-sasl-password", "UVR_KAFKA_SASL_PASSWORD")
	fs.BoolVar(&cfg.ClickHouseTLS.Enabled, "clickhouse-tls", false, "connect to ClickHouse over TLS, on its secure native port (implied by the other --clickhouse-tls-* flags)")
	withEnv("clickhouse-tls", "UVR_CLICKHOUSE_TLS")
	fs.StringVar(&cfg.ClickHouseTLS.CA, "clickhouse-tls-ca", "", "PEM file of the CA that signed ClickHouse's certificate (default: the system's roots)")
	withEnv("clickhouse-tls-ca", "UVR_CLICKHOUSE_TLS_CA")
	fs.StringVar(&cfg.ClickHouseTLS.Cert, "clickhouse-tls-cert", "", "PEM client certificate for ClickHouse (mutual TLS), with --clickhouse-tls-key")
	withEnv("clickhouse-tls-cert", "UVR_CLICKHOUSE_TLS_CERT")
	fs.StringVar(&cfg.ClickHouseTLS.Key, "clickhouse-tls-key", "", "PEM private key of --clickhouse-tls-cert")
	withEnv("clickhouse-tls-key", "UVR_CLICKHOUSE_TLS_KEY")
	fs.BoolVar(&cfg.ClickHouseTLS.InsecureSkipVerify, "clickhouse-tls-insecure-skip-verify", false, "accept any ClickHouse certificate (never in production)")
	withEnv("clickhouse-tls-insecure-skip-verify", "UVR_CLICKHOUSE_TLS_INSECURE_SKIP_VERIFY")
	fs.StringVar(&cfg.ClickHouseAddr, "clickhouse-addr", cfg.ClickHouseAddr, "ClickHouse native protocol address(es), comma separated")
	withEnv("clickhouse-addr", "UVR_CLICKHOUSE_ADDR")
	fs.StringVar(&cfg.ClickHouseDatabase, "clickhouse-database", cfg.ClickHouseDatabase, "ClickHouse database")
	withEnv("clickhouse-database", "UVR_CLICKHOUSE_DATABASE")
	fs.StringVar(&cfg.ClickHouseUser, "clickhouse-user", cfg.ClickHouseUser, "ClickHouse user")
	withEnv("clickhouse-user", "UVR_CLICKHOUSE_USER")
	fs.StringVar(&cfg.ClickHousePassword, "clickhouse-password", cfg.ClickHousePassword, "ClickHouse password")
	withEnv("clickhouse-password", "UVR_CLICKHOUSE_PASSWORD")
	fs.IntVar(&cfg.BatchSize, "batch-size", cfg.BatchSize, "projector: rows per ClickHouse insert")
	withEnv("batch-size", "UVR_BATCH_SIZE")
	fs.DurationVar(&cfg.FlushInterval, "flush-interval", cfg.FlushInterval, "projector: longest wait before a partial batch is inserted")
	withEnv("flush-interval", "UVR_FLUSH_INTERVAL")
	fs.IntVar(&cfg.MaxBatchEvents, "max-batch-events", cfg.MaxBatchEvents, "API: most events in one batch request")
	withEnv("max-batch-events", "UVR_MAX_BATCH_EVENTS")
	fs.StringVar(&cfg.Currency, "currency", cfg.Currency, "reporting currency (ISO 4217)")
	withEnv("currency", "UVR_CURRENCY")
	fs.StringSliceVar(&cfg.RateCards, "rate-cards", cfg.RateCards, "rate card files over the default LLM card, comma separated, later ones taking precedence")
	withEnv("rate-cards", "UVR_RATE_CARDS")
	fs.StringVar(&cfg.FXRates, "fx-rates", cfg.FXRates, "daily FX table file (CSV date,base,quote,rate) until PUT /api/fx-rates stores one")
	withEnv("fx-rates", "UVR_FX_RATES")
	fs.StringVar(&cfg.RevenueMapping, "revenue-mapping", cfg.RevenueMapping, `plan → feature file ({"mappings":[{"plan","feature"}]}) until PUT /api/revenue-mapping stores one`)
	withEnv("revenue-mapping", "UVR_REVENUE_MAPPING")
	fs.StringVar(&cfg.LogLevel, "log-level", cfg.LogLevel, "debug, info, warn or error")
	withEnv("log-level", "UVR_LOG_LEVEL")
	fs.StringVar(&cfg.LogFormat, "log-format", cfg.LogFormat, "text or json")
	withEnv("log-format", "UVR_LOG_FORMAT")
	fs.StringVar(&cfg.ConnectorPrefix, "connector-prefix", cfg.ConnectorPrefix, "prefix of the connector topics (<prefix>.services.v1, .sync-requests.v1, .sync-state.v1) and consumer group")
	withEnv("connector-prefix", "UVR_CONNECTOR_PREFIX")
	fs.BoolVar(&cfg.EnableScheduler, "enable-scheduler", cfg.EnableScheduler, "schedule hourly syncs of every active service (uvr run, uvr connect)")
	withEnv("enable-scheduler", "ENABLE_SCHEDULER")
	fs.StringVar(&cfg.VaultAddr, "vault-addr", cfg.VaultAddr, "Vault address for service credentials; empty keeps them in a local sealed store")
	withEnv("vault-addr", "VAULT_ADDR")
	fs.StringVar(&cfg.VaultToken, "vault-token", "", "Vault token (or use AppRole)")
	withEnv("vault-token", "VAULT_TOKEN")
	fs.StringVar(&cfg.VaultRoleID, "vault-role-id", "", "Vault AppRole role id")
	withEnv("vault-role-id", "VAULT_ROLE_ID")
	fs.StringVar(&cfg.VaultSecretID, "vault-secret-id", "", "Vault AppRole secret id")
	withEnv("vault-secret-id", "VAULT_SECRET_ID")
	fs.StringVar(&cfg.VaultMount, "vault-mount", cfg.VaultMount, "Vault KV v2 mount")
	withEnv("vault-mount", "UVR_VAULT_MOUNT")
	fs.StringVar(&cfg.VaultPrefix, "vault-prefix", cfg.VaultPrefix, "path prefix of service credentials in the KV mount")
	withEnv("vault-prefix", "UVR_VAULT_PREFIX")
	fs.StringVar(&cfg.VaultTransitMount, "vault-transit-mount", cfg.VaultTransitMount, "Vault transit engine mount whose key seals the signing secret and password hashes on the users topic")
	withEnv("vault-transit-mount", "UVR_VAULT_TRANSIT_MOUNT")
	fs.StringVar(&cfg.VaultTransitKey, "vault-transit-key", cfg.VaultTransitKey, "Vault transit key sealing the signing secret and password hashes on the users topic (created by the first seal if the token may)")
	withEnv("vault-transit-key", "UVR_VAULT_TRANSIT_KEY")
	fs.StringVar(&cfg.EncryptionKey, "encryption-key", "", "base64 AES-256 key of the local credential store, also sealing the secrets of the users topic without Vault (default: a generated key file, mode 0600; every API instance sharing Kafka needs the same key)")
	withEnv("encryption-key", "UVR_ENCRYPTION_KEY")
	fs.StringSliceVar(&cfg.ConnectorAllowPrivateHosts, "connector-allow-private-hosts", nil, "hosts, addresses or networks (comma separated) a service's base_url may reach although loopback, private, link-local or plain http; default none: https to public addresses only")
	withEnv("connector-allow-private-hosts", "UVR_CONNECTOR_ALLOW_PRIVATE_HOSTS")
	fs.StringVar(&cfg.MappingDir, "mapping-dir", "", "the only directory a custom service's mapping_file may name a file in (default <data-dir>/mappings)")
	withEnv("mapping-dir", "UVR_MAPPING_DIR")
	fs.StringVar(&cfg.AirbyteURL, "airbyte-url", "", "Airbyte public API (https://api.airbyte.com/v1 or <host>/api/public/v1) for platform mode")
	withEnv("airbyte-url", "UVR_AIRBYTE_URL")
	fs.StringVar(&cfg.AirbyteToken, "airbyte-token", "", "Airbyte API bearer token")
	withEnv("airbyte-token", "UVR_AIRBYTE_TOKEN")
	fs.StringSliceVar(&cfg.AirbyteWorkspaces, "airbyte-workspaces", nil, "Airbyte workspace ids to list, comma separated (default: all the token sees)")
	withEnv("airbyte-workspaces", "UVR_AIRBYTE_WORKSPACES")
	fs.StringSliceVar(&cfg.AirbyteKafkaTopics, "airbyte-kafka-topics", nil, "topics Airbyte's destination-kafka writes, to map into events (uvr run, uvr connect)")
	withEnv("airbyte-kafka-topics", "UVR_AIRBYTE_KAFKA_TOPICS")
	fs.StringVar(&cfg.AirbyteKafkaSource, "airbyte-kafka-source", "", "vendor whose mapper reads those topics: stripe, chargebee, braintree, recurly or paddle")
	withEnv("airbyte-kafka-source", "UVR_AIRBYTE_KAFKA_SOURCE")
	fs.StringVar(&cfg.AirbyteKafkaMapping, "airbyte-kafka-mapping", "", "declarative mapping file for those topics (instead of --airbyte-kafka-source)")
	withEnv("airbyte-kafka-mapping", "UVR_AIRBYTE_KAFKA_MAPPING")
	fs.StringVar(&cfg.AlertWebhookURL, "alert-webhook-url", "", "webhook receiving insight alerts, an HMAC-SHA256 signed JSON POST")
	withEnv("alert-webhook-url", "UVR_ALERT_WEBHOOK_URL")
	fs.StringVar(&cfg.AlertWebhookSecret, "alert-webhook-secret", "", "HMAC key of the alert webhook (at least 16 bytes)")
	withEnv("alert-webhook-secret", "UVR_ALERT_WEBHOOK_SECRET")
	fs.StringVar(&cfg.AlertSlackURL, "alert-slack-url", "", "Slack-compatible incoming webhook receiving insight alerts")
	withEnv("alert-slack-url", "UVR_ALERT_SLACK_URL")
	fs.StringVar(&cfg.AlertMinSeverity, "alert-min-severity", cfg.AlertMinSeverity, "lowest severity alerted: info, warning or critical")
	withEnv("alert-min-severity", "UVR_ALERT_MIN_SEVERITY")
	fs.StringVar(&cfg.AuthSecret, "auth-secret", "", "HS256 key signing API tokens, at least 32 characters (default: generated once, shared through the users topic)")
	withEnv("auth-secret", "UVR_AUTH_SECRET")
	fs.DurationVar(&cfg.TokenTTL, "token-ttl", cfg.TokenTTL, "lifetime of the tokens POST /api/auth/login returns")
	withEnv("token-ttl", "UVR_TOKEN_TTL")
	fs.StringVar(&cfg.AdminEmail, "admin-email", "", "admin user created on the first start (with UVR_ADMIN_PASSWORD); an existing user is left as it is")
	withEnv("admin-email", "UVR_ADMIN_EMAIL")
	fs.StringVar(&cfg.AdminPassword, "admin-password", "", "password of --admin-email (prefer the environment variable)")
	withEnv("admin-password", "UVR_ADMIN_PASSWORD")
	fs.StringSliceVar(&cfg.CORSOrigins, "cors-origins", cfg.CORSOrigins, "browser origins allowed to call the API and to write on the session cookie, comma separated; none by default (the server's own origin always is; make run allows localhost and 127.0.0.1 on ports 3000-3002)")
	withEnv("cors-origins", "UVR_CORS_ORIGINS")
	fs.StringSliceVar(&cfg.TrustedProxies, "trusted-proxies", cfg.TrustedProxies, "reverse proxies (IPs or CIDRs, comma separated) whose X-Forwarded-For names the client; default none")
	withEnv("trusted-proxies", "UVR_TRUSTED_PROXIES")
	fs.IntVar(&cfg.LoginConcurrency, "login-concurrency", cfg.LoginConcurrency, "password checks (argon2id, 19 MiB each) run at once; more logins wait")
	withEnv("login-concurrency", "UVR_LOGIN_CONCURRENCY")
	fs.BoolVar(&cfg.TrustForwardedProto, "trust-forwarded-proto", false, "a TLS-terminating proxy in front sets X-Forwarded-Proto: mark the session cookie Secure when it says https")
	withEnv("trust-forwarded-proto", "UVR_TRUST_FORWARDED_PROTO")
}

const envAnnotation = "uvr_env"

// withEnv documents and records the environment variable of flag name.
func withEnv(fs *pflag.FlagSet, name, env string) {
	f := fs.Lookup(name)
	f.Usage += " (env " + env + ")"
	_ = fs.SetAnnotation(name, envAnnotation, []string{env})
}

// applyEnv sets every flag not given on the command line from its
// environment variable; a value that does not parse is an error naming both.
func applyEnv(fs *pflag.FlagSet, lookup func(string) (string, bool)) error {
	var errs []error
	fs.VisitAll(func(f *pflag.Flag) {
		names := f.Annotations[envAnnotation]
		if len(names) == 0 || f.Changed {
			return
		}
		v, ok := lookup(names[0])
		if !ok || v == "" {
			return
		}
		if err := f.Value.Set(v); err != nil {
			errs = append(errs, fmt.Errorf("environment %s=%q: %w", names[0], v, err))
		}
	})
	return errors.Join(errs...)
}

// mappingDir is MappingDir, or its default under the data directory.
func (cfg Config) mappingDir() string {
	if cfg.MappingDir != "" {
		return cfg.MappingDir
	}
	return filepath.Join(cfg.DataDir, "mappings")
}

// vault connects to the configured Vault (VAULT_ADDR set): the service
// credentials' KV store and the transit key of the users topic.
func (cfg Config) vault(ctx context.Context, log *slog.Logger, reg prometheus.Registerer) (*credentials.Vault, error) {
	v, err := credentials.NewVault(ctx, credentials.VaultConfig{
		Addr: cfg.VaultAddr, Token: cfg.VaultToken, RoleID: cfg.VaultRoleID, SecretID: cfg.VaultSecretID,
		Mount: cfg.VaultMount, Prefix: cfg.VaultPrefix, Logger: log, Registerer: reg,
	})
	if err != nil {
		return nil, fmt.Errorf("vault at %s: %w", cfg.VaultAddr, err)
	}
	return v, nil
}

// localCredentials configures the local sealed store and the local sealer,
// which share one key: UVR_ENCRYPTION_KEY, or a key file under the data dir.
func (cfg Config) localCredentials(log *slog.Logger) (credentials.LocalConfig, error) {
	lc := credentials.LocalConfig{Dir: filepath.Join(cfg.DataDir, "credentials"), Logger: log}
	if cfg.EncryptionKey != "" {
		key, err := credentials.ParseKey(cfg.EncryptionKey)
		if err != nil {
			return lc, fmt.Errorf("UVR_ENCRYPTION_KEY: %w", err)
		}
		lc.Key = key
	}
	return lc, nil
}

// clickhouse is the connection config of database on the configured server.
func (cfg Config) clickhouse(database string) chstore.Config {
	return chstore.Config{
		Addr:     strings.Split(cfg.ClickHouseAddr, ","),
		Database: database,
		Username: cfg.ClickHouseUser,
		Password: cfg.ClickHousePassword,
		TLS:      cfg.ClickHouseTLSConfig,
	}
}

// Validate joins every problem of the configuration.
func (cfg Config) Validate() error {
	var errs []error
	if cfg.TopicPartitions < 1 {
		errs = append(errs, errors.New("--topic-partitions must be at least 1"))
	}
	if cfg.KafkaReplicationFactor < 0 {
		errs = append(errs, fmt.Errorf("--kafka-replication-factor must be ≥ 0 (0 = auto), got %d", cfg.KafkaReplicationFactor))
	}
	if cfg.KafkaMinInsyncReplicas < 0 {
		errs = append(errs, fmt.Errorf("--kafka-min-insync-replicas must be ≥ 0 (0 = auto), got %d", cfg.KafkaMinInsyncReplicas))
	}
	if cfg.KafkaReplicationFactor > 0 && cfg.KafkaMinInsyncReplicas > cfg.KafkaReplicationFactor {
		errs = append(errs, fmt.Errorf("--kafka-min-insync-replicas (%d) must not exceed --kafka-replication-factor (%d): no write could be acknowledged",
			cfg.KafkaMinInsyncReplicas, cfg.KafkaReplicationFactor))
	}
	if cfg.BatchSize < 1 {
		errs = append(errs, errors.New("--batch-size must be at least 1"))
	}
	if cfg.FlushInterval <= 0 {
		errs = append(errs, errors.New("--flush-interval must be positive"))
	}
	if cfg.MaxBatchEvents < 1 {
		errs = append(errs, errors.New("--max-batch-events must be at least 1"))
	}
	if cfg.ConsumerMaxInFlight < 1 {
		errs = append(errs, errors.New("--consumer-max-in-flight must be at least 1"))
	}
	if cfg.ConsumerMaxInFlightBytes < 1<<20 {
		errs = append(errs, fmt.Errorf("--consumer-max-in-flight-bytes must be at least 1048576 (1 MiB), got %d", cfg.ConsumerMaxInFlightBytes))
	}
	if len(cfg.Currency) != 3 || strings.ToUpper(cfg.Currency) != cfg.Currency {
		errs = append(errs, fmt.Errorf("--currency must be an ISO 4217 code such as USD, got %q", cfg.Currency))
	}
	switch cfg.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("--log-level must be debug, info, warn or error, got %q", cfg.LogLevel))
	}
	switch cfg.LogFormat {
	case "text", "json":
	default:
		errs = append(errs, fmt.Errorf("--log-format must be text or json, got %q", cfg.LogFormat))
	}
	if len(cfg.AirbyteKafkaTopics) > 0 && (cfg.AirbyteKafkaSource == "") == (cfg.AirbyteKafkaMapping == "") {
		errs = append(errs, errors.New("--airbyte-kafka-topics needs exactly one of --airbyte-kafka-source and --airbyte-kafka-mapping"))
	}
	if _, err := source.ParseEgress(cfg.ConnectorAllowPrivateHosts); err != nil {
		errs = append(errs, err)
	}
	if _, err := insights.ParseSeverity(cfg.AlertMinSeverity); err != nil {
		errs = append(errs, fmt.Errorf("--alert-min-severity: %w", err))
	}
	if cfg.AlertWebhookURL != "" && len(cfg.AlertWebhookSecret) < insights.MinSecretLength {
		errs = append(errs, fmt.Errorf("--alert-webhook-url needs --alert-webhook-secret of at least %d bytes", insights.MinSecretLength))
	}
	if cfg.ConnectorPrefix == "" {
		errs = append(errs, errors.New("--connector-prefix must not be empty"))
	}
	errs = append(errs, cfg.validateAuth()...)
	errs = append(errs, cfg.validateSecurity()...)
	if cfg.EventsTopic == "" || cfg.PoisonTopic == "" || cfg.EventsTopic == cfg.PoisonTopic {
		errs = append(errs, errors.New("--events-topic and --poison-topic must be set and differ"))
	}
	return errors.Join(errs...)
}

// Package chstore opens uvr's ClickHouse and keeps its schema up to date.
//
// Every projection's tables live in one database and are created by the
// versioned migrations embedded from migrations/, applied in order by Migrate.
// The server may be ClickHouse 18.16 (the test server) or a current release
// (production), so the SQL here stays in the subset both accept.
package chstore

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Config says where ClickHouse is. A zero field takes the default written
// next to it.
type Config struct {
	// Addr lists native-protocol host:port addresses. Default 127.0.0.1:9000.
	Addr []string
	// Database is created by Open when missing. Default "uvr".
	Database string
	// Username defaults to "default"; Password defaults to empty.
	Username string
	Password string
	// TLS, when set, encrypts every connection (the server's secure native
	// port, tcp_port_secure, usually 9440). Nil: plaintext.
	TLS *tls.Config
	// DialTimeout bounds connecting. Default 5s.
	DialTimeout time.Duration
	// ReadTimeout bounds waiting for the server on an open connection; the
	// driver's own default (5 min) would let a stuck server hold a projector.
	// Default 30s.
	ReadTimeout time.Duration
}

// Defaults of Config.
const (
	DefaultAddr        = "127.0.0.1:9000"
	DefaultDatabase    = "uvr"
	DefaultUsername    = "default"
	DefaultDialTimeout = 5 * time.Second
	DefaultReadTimeout = 30 * time.Second
)

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if len(c.Addr) == 0 {
		c.Addr = []string{DefaultAddr}
	}
	if c.Database == "" {
		c.Database = DefaultDatabase
	}
	if c.Username == "" {
		c.Username = DefaultUsername
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = DefaultReadTimeout
	}
	return c
}

// identifier is what Open accepts as a database name: it is written into
// CREATE DATABASE unquoted, so nothing else may get through.
var identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Validate reports every problem of a config whose defaults were applied.
func (c Config) Validate() error {
	var errs []error
	if len(c.Addr) == 0 {
		errs = append(errs, errors.New("clickhouse: addr is required"))
	}
	for _, a := range c.Addr {
		if a == "" {
			errs = append(errs, errors.New("clickhouse: addr must not contain an empty address"))
		}
	}
	if !identifier.MatchString(c.Database) {
		errs = append(errs, fmt.Errorf("clickhouse: database %q must be letters, digits and underscores, not starting with a digit", c.Database))
	}
	if c.Username == "" {
		errs = append(errs, errors.New("clickhouse: username is required"))
	}
	if c.DialTimeout <= 0 {
		errs = append(errs, errors.New("clickhouse: dial timeout must be positive"))
	}
	if c.ReadTimeout <= 0 {
		errs = append(errs, errors.New("clickhouse: read timeout must be positive"))
	}
	return errors.Join(errs...)
}

// Open applies the defaults, validates cfg, creates the database if missing
// and returns a native-protocol connection pool on it that answers Ping.
// Use the pool through PrepareBatch/Append/Send for inserts: on the native
// protocol `Exec("INSERT … VALUES")` hangs.
func Open(ctx context.Context, cfg Config) (driver.Conn, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}

	// The handshake names the database and fails when it does not exist yet,
	// so the database is created through a connection to the server's default.
	admin, err := clickhouse.Open(options(cfg, ""))
	if err != nil {
		return nil, fmt.Errorf("open clickhouse %v: %w", cfg.Addr, err)
	}
	err = admin.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+cfg.Database)
	_ = admin.Close()
	if err != nil {
		return nil, fmt.Errorf("create database %s: %w", cfg.Database, err)
	}

	conn, err := clickhouse.Open(options(cfg, cfg.Database))
	if err != nil {
		return nil, fmt.Errorf("open clickhouse %v: %w", cfg.Addr, err)
	}
	if err := conn.Ping(ctx); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("ping clickhouse %v: %w", cfg.Addr, err)
	}
	return conn, nil
}

func options(cfg Config, database string) *clickhouse.Options {
	return &clickhouse.Options{
		Protocol: clickhouse.Native,
		Addr:     cfg.Addr,
		Auth: clickhouse.Auth{
			Database: database,
			Username: cfg.Username,
			Password: cfg.Password,
		},
		TLS:         cfg.TLS,
		DialTimeout: cfg.DialTimeout,
		ReadTimeout: cfg.ReadTimeout,
	}
}

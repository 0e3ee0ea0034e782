package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/uvrhq/uvr/pipeline/kafka"
)

// TLSFiles is the TLS of a client connection as an operator configures it:
// PEM files, read by loadSecurity. The zero value is plaintext.
type TLSFiles struct {
	Enabled bool   // TLS with the system's roots, when no CA is given
	CA      string // PEM file of the CA(s) the server's certificate must chain to; implies Enabled
	Cert    string // PEM client certificate (mutual TLS), with Key
	Key     string
	// InsecureSkipVerify accepts any server certificate: only for a test
	// server, and only when set explicitly (uvr logs a warning).
	InsecureSkipVerify bool
}

func (t TLSFiles) on() bool {
	return t.Enabled || t.CA != "" || t.Cert != "" || t.Key != "" || t.InsecureSkipVerify
}

// config reads the files; nil when TLS is off. Errors name the flag and
// the file, never a key.
func (t TLSFiles) config(flag string) (*tls.Config, error) {
	if !t.on() {
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: t.InsecureSkipVerify} //nolint:gosec // explicit opt-in, warned about
	if t.CA != "" {
		pem, err := os.ReadFile(t.CA)
		if err != nil {
			return nil, fmt.Errorf("--%s-tls-ca: %w", flag, err)
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--%s-tls-ca: %s holds no PEM certificate", flag, t.CA)
		}
	}
	if (t.Cert == "") != (t.Key == "") {
		return nil, fmt.Errorf("--%s-tls-cert and --%s-tls-key go together: set both or neither", flag, flag)
	}
	if t.Cert != "" {
		pair, err := tls.LoadX509KeyPair(t.Cert, t.Key)
		if err != nil {
			return nil, fmt.Errorf("--%s-tls-cert/--%s-tls-key (%s, %s): %w", flag, flag, t.Cert, t.Key, err)
		}
		c.Certificates = []tls.Certificate{pair}
	}
	return c, nil
}

// validateSecurity is the TLS/SASL part of Config.Validate: what can be told
// without reading files.
func (cfg Config) validateSecurity() []error {
	var errs []error
	if len(cfg.KafkaBrokers) == 0 && (cfg.KafkaTLS.on() || cfg.KafkaSASLMechanism != "") {
		errs = append(errs, errors.New("--kafka-tls-* and --kafka-sasl-* apply to --kafka-brokers (UVR_KAFKA_BROKERS): the embedded broker speaks plaintext only"))
	}
	if cfg.KafkaSASLMechanism == "" && (cfg.KafkaSASLUsername != "" || cfg.KafkaSASLPassword != "") {
		errs = append(errs, errors.New("--kafka-sasl-username/--kafka-sasl-password need --kafka-sasl-mechanism (UVR_KAFKA_SASL_MECHANISM): SCRAM-SHA-256 or SCRAM-SHA-512"))
	}
	if cfg.KafkaSASLMechanism != "" {
		if _, err := kafka.NewSCRAM(cfg.KafkaSASLMechanism, cfg.KafkaSASLUsername, cfg.KafkaSASLPassword); err != nil {
			errs = append(errs, fmt.Errorf("--kafka-sasl-mechanism (UVR_KAFKA_SASL_*): %w", err))
		}
	}
	return errs
}

// loadSecurity reads the TLS files and builds KafkaSecurity and
// ClickHouseTLSConfig, the values every Kafka client and ClickHouse
// connection of the process takes. Run once, after Validate.
func (cfg *Config) loadSecurity() error {
	var errs []error
	kafkaTLS, err := cfg.KafkaTLS.config("kafka")
	errs = append(errs, err)
	cfg.KafkaSecurity = kafka.Security{TLS: kafkaTLS}
	if cfg.KafkaSASLMechanism != "" {
		cfg.KafkaSecurity.SASL, err = kafka.NewSCRAM(cfg.KafkaSASLMechanism, cfg.KafkaSASLUsername, cfg.KafkaSASLPassword)
		errs = append(errs, err)
	}
	cfg.ClickHouseTLSConfig, err = cfg.ClickHouseTLS.config("clickhouse")
	errs = append(errs, err)
	return errors.Join(errs...)
}

// warnSecurity logs the settings that weaken a connection: said at every
// start, so that a test setting left in production shows.
func (cfg Config) warnSecurity(log *slog.Logger) {
	if cfg.KafkaTLS.InsecureSkipVerify || cfg.ClickHouseTLS.InsecureSkipVerify {
		log.Warn("TLS certificate checks are off (--kafka-tls-insecure-skip-verify or --clickhouse-tls-insecure-skip-verify): anyone on the network path can read and change the traffic")
	}
	if cfg.KafkaSecurity.SASL != nil && cfg.KafkaSecurity.TLS == nil {
		log.Warn("Kafka SASL without TLS: SCRAM does not send the password, but events travel in plain text; set UVR_KAFKA_TLS_CA or UVR_KAFKA_TLS=true")
	}
}

package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// testPKI is a CA made in the test and a server certificate it signed for
// 127.0.0.1, as PEM files.
type testPKI struct{ ca, cert, key string }

func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	dir := t.TempDir()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "uvr test CA " + filepath.Base(dir)},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	require.NoError(t, err)
	caCert, err := x509.ParseCertificate(caDER)
	require.NoError(t, err)

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	require.NoError(t, err)
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key) // Kafka's PEM keystore reads PKCS#8 only
	require.NoError(t, err)

	p := testPKI{ca: filepath.Join(dir, "ca.crt"), cert: filepath.Join(dir, "server.crt"), key: filepath.Join(dir, "server.key")}
	write := func(file, typ string, b []byte) {
		require.NoError(t, os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600))
	}
	write(p.ca, "CERTIFICATE", caDER)
	write(p.cert, "CERTIFICATE", der)
	write(p.key, "PRIVATE KEY", pkcs8)
	return p
}

// uvr produces, consumes and queries over TLS with SASL/SCRAM to a private
// Kafka (a SASL_SSL listener) and over TLS to a private ClickHouse 18.16 (its
// secure native port), both with certificates of a CA made here; a wrong
// password or an unknown CA stops the start with an error saying so, quickly.
func TestKafkaAndClickHouseOverTLSAndSCRAM(t *testing.T) {
	pki, stranger := newTestPKI(t), newTestPKI(t)
	pw := make([]byte, 18)
	_, _ = rand.Read(pw)
	password := base64.RawURLEncoding.EncodeToString(pw)
	saslPort, chTLSPort := freePort(t), freePort(t)
	serverTLS := []string{"UVR_SERVICES_TLS_CERT=" + pki.cert, "UVR_SERVICES_TLS_KEY=" + pki.key}
	startPrivateKafka(t, append(serverTLS, fmt.Sprintf("UVR_KAFKA_SASL_SSL_PORT=%d", saslPort),
		"UVR_KAFKA_SCRAM_USER=uvr-app", "UVR_KAFKA_SCRAM_PASSWORD="+password)...)
	startPrivateClickHouse(t, append(serverTLS, fmt.Sprintf("UVR_CLICKHOUSE_TLS_PORT=%d", chTLSPort))...)

	cfg := testConfig(t)
	cfg.KafkaBrokers = []string{fmt.Sprintf("127.0.0.1:%d", saslPort)}
	cfg.ClickHouseAddr = fmt.Sprintf("127.0.0.1:%d", chTLSPort)
	cfg.KafkaTLS = TLSFiles{CA: pki.ca}
	cfg.KafkaSASLMechanism, cfg.KafkaSASLUsername, cfg.KafkaSASLPassword = "SCRAM-SHA-512", "uvr-app", password
	cfg.ClickHouseTLS = TLSFiles{CA: pki.ca}
	load := func(c Config) Config {
		require.NoError(t, c.Validate())
		require.NoError(t, c.loadSecurity())
		return c
	}

	m := startMain(t, load(cfg), Roles{API: true, Projector: true})
	end := time.Now().UTC()
	events := mixedEvents(7, 500, end, "tls")
	l := newLedger()
	for _, ev := range events {
		l.add(ev)
	}
	start, stop := dateRange(end)
	postAll(t, m.URL(), events, 100)
	requireDashboardEquals(t, m.URL(), l, start, stop, projectionWait)
	r := call(t, http.MethodGet, m.URL()+"/api/health", "", "", nil)
	require.Equal(t, http.StatusOK, r.status, "the health checks reach Kafka and ClickHouse over TLS: %s", r.body)

	for _, tc := range []struct {
		name   string
		change func(c *Config)
		want   string
	}{
		{"wrong Kafka password", func(c *Config) { c.KafkaSASLPassword = "not-" + password }, "SASL Authentication Failed"},
		{"SCRAM-SHA-256 user unknown", func(c *Config) { c.KafkaSASLMechanism, c.KafkaSASLUsername = "SCRAM-SHA-256", "nobody" }, "SASL Authentication Failed"},
		{"Kafka's CA unknown", func(c *Config) { c.KafkaTLS.CA = stranger.ca }, "certificate signed by unknown authority"},
		{"ClickHouse's CA unknown", func(c *Config) { c.ClickHouseTLS.CA = stranger.ca }, "certificate signed by unknown authority"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := cfg
			tc.change(&c)
			bad := NewMain(load(c), Roles{API: true, Projector: true}, testLogger(t))
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			began := time.Now()
			err := bad.Open(ctx)
			require.Error(t, err)
			assert.Less(t, time.Since(began), 30*time.Second, "an error, not a hang: %v", err)
			assert.Contains(t, err.Error(), tc.want)
			assert.NotContains(t, err.Error(), password)
		})
	}
}

// The TLS and SASL settings are checked at start, each error naming the flag.
func TestSecuritySettingsAreChecked(t *testing.T) {
	pki := newTestPKI(t)
	notPEM := filepath.Join(t.TempDir(), "ca.crt")
	require.NoError(t, os.WriteFile(notPEM, []byte("not a certificate"), 0o600))
	for _, tc := range []struct {
		name string
		set  func(c *Config)
		want string // "" when valid
	}{
		{"plaintext", func(*Config) {}, ""},
		{"kafka TLS with a CA", func(c *Config) { c.KafkaTLS.CA = pki.ca }, ""},
		{"kafka TLS, system roots", func(c *Config) { c.KafkaTLS.Enabled = true }, ""},
		{"mutual TLS", func(c *Config) { c.ClickHouseTLS = TLSFiles{CA: pki.ca, Cert: pki.cert, Key: pki.key} }, ""},
		{"SCRAM", func(c *Config) {
			c.KafkaSASLMechanism, c.KafkaSASLUsername, c.KafkaSASLPassword = "SCRAM-SHA-256", "u", "p"
		}, ""},
		{"missing CA file", func(c *Config) { c.KafkaTLS.CA = filepath.Join(t.TempDir(), "none.crt") }, "--kafka-tls-ca"},
		{"CA not PEM", func(c *Config) { c.ClickHouseTLS.CA = notPEM }, "--clickhouse-tls-ca: " + notPEM + " holds no PEM certificate"},
		{"cert without key", func(c *Config) { c.KafkaTLS.Cert = pki.cert }, "--kafka-tls-cert and --kafka-tls-key go together"},
		{"key of another cert", func(c *Config) { c.KafkaTLS.Cert, c.KafkaTLS.Key = pki.ca, pki.key }, "--kafka-tls-cert/--kafka-tls-key"},
		{"PLAIN mechanism", func(c *Config) { c.KafkaSASLMechanism, c.KafkaSASLUsername, c.KafkaSASLPassword = "PLAIN", "u", "p" }, `SASL mechanism "PLAIN": want SCRAM-SHA-256 or SCRAM-SHA-512`},
		{"SCRAM without password", func(c *Config) { c.KafkaSASLMechanism, c.KafkaSASLUsername = "SCRAM-SHA-512", "u" }, "needs a username and a password"},
		{"password without mechanism", func(c *Config) { c.KafkaSASLPassword = "p" }, "need --kafka-sasl-mechanism"},
		{"TLS on the embedded broker", func(c *Config) { c.KafkaBrokers = nil; c.KafkaTLS.Enabled = true }, "the embedded broker speaks plaintext only"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := defaultConfig()
			c.KafkaBrokers = []string{"127.0.0.1:9092"}
			tc.set(&c)
			err := c.Validate()
			if err == nil {
				err = c.loadSecurity()
			}
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.NotContains(t, err.Error(), "PRIVATE KEY")
		})
	}
}

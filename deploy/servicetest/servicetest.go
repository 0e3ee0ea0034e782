// Package servicetest gives integration tests the real services that the
// repository's own scripts start: ClickHouse and Kafka (and Prometheus).
//
// An address comes from the environment that `make test` exports
// (UVR_CLICKHOUSE_ADDR, UVR_KAFKA_BROKERS, UVR_PROMETHEUS_URL); when it is
// unset, the helper runs `deploy/services <name> start` itself, which installs
// and starts the service if needed, so `go test ./...` works on its own too.
// A service that cannot be had fails the test: it never skips.
//
// Each test gets its own ClickHouse database and its own topic names, with a
// random suffix, so packages run in parallel without seeing each other.
package servicetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
)

// Root is the repository root, found from this file's location.
func Root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

var starts sync.Map // service name -> *startOnce

type startOnce struct {
	once sync.Once
	err  error
}

// ensure starts a service through deploy/services once per test binary.
func ensure(t testing.TB, service string) {
	t.Helper()
	v, _ := starts.LoadOrStore(service, &startOnce{})
	s := v.(*startOnce)
	s.once.Do(func() {
		cmd := exec.Command(filepath.Join(Root(), "deploy", "services"), service, "start")
		cmd.Dir = Root()
		out, err := cmd.CombinedOutput()
		if err != nil {
			s.err = fmt.Errorf("deploy/services %s start: %w\n%s", service, err, out)
		}
	})
	if s.err != nil {
		t.Fatalf("service %s is not available: %v", service, s.err)
	}
}

func envOr(t testing.TB, key, service, def string) string {
	t.Helper()
	if v := os.Getenv(key); v != "" {
		return v
	}
	ensure(t, service)
	return def
}

// KafkaBrokers returns the addresses of the real Kafka broker.
func KafkaBrokers(t testing.TB) []string {
	t.Helper()
	return strings.Split(envOr(t, "UVR_KAFKA_BROKERS", "kafka", "127.0.0.1:9092"), ",")
}

// PrometheusURL returns the base URL of the real Prometheus server.
func PrometheusURL(t testing.TB) string {
	t.Helper()
	return envOr(t, "UVR_PROMETHEUS_URL", "prometheus", "http://127.0.0.1:9090")
}

// ClickHouseAddr returns the native-protocol address of the real ClickHouse.
func ClickHouseAddr(t testing.TB) string {
	t.Helper()
	return envOr(t, "UVR_CLICKHOUSE_ADDR", "clickhouse", "127.0.0.1:9000")
}

// ClickHouseDatabase creates an empty database with a random name on the real
// ClickHouse and drops it when the test ends. It returns the address and the
// database name.
func ClickHouseDatabase(t testing.TB) (addr, database string) {
	t.Helper()
	addr = ClickHouseAddr(t)
	database = "test_" + Suffix()
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{addr}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("open clickhouse %s: %v", addr, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := conn.Exec(ctx, "CREATE DATABASE "+database); err != nil {
		t.Fatalf("create database %s on %s: %v", database, addr, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+database); err != nil {
			t.Logf("drop database %s: %v", database, err)
		}
		_ = conn.Close()
	})
	return addr, database
}

// Topic returns a topic name unique to this test run.
func Topic(prefix string) string {
	return prefix + "." + Suffix()
}

// Suffix is a short random lowercase hex string.
func Suffix() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// ScrapeTarget makes the real Prometheus scrape addr (host:port) as job
// "uvr" with the label test=name, through a file_sd targets file that
// deploy/services points Prometheus at; the file is removed when the test
// ends. Prometheus picks it up within its 5 s refresh interval.
func ScrapeTarget(t testing.TB, name, addr string) {
	t.Helper()
	PrometheusURL(t)
	dir := os.Getenv("UVR_PROMETHEUS_DIR")
	if dir == "" {
		varDir := os.Getenv("UVR_VAR")
		if varDir == "" {
			varDir = filepath.Join(Root(), "var")
		}
		dir = filepath.Join(varDir, "prometheus")
	}
	file := filepath.Join(dir, "targets", "test-"+Suffix()+".yml")
	body := fmt.Sprintf("- targets: ['%s']\n  labels:\n    test: '%s'\n", addr, name)
	// Written under another name and renamed, so Prometheus never reads half a file.
	if err := os.WriteFile(file+".tmp", []byte(body), 0o644); err != nil {
		t.Fatalf("write prometheus target: %v", err)
	}
	if err := os.Rename(file+".tmp", file); err != nil {
		t.Fatalf("write prometheus target: %v", err)
	}
	t.Cleanup(func() { _ = os.Remove(file) })
}

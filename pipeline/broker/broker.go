// Package broker runs an embedded Kafka-protocol broker (franz-go's kfake) in-process, so
// that `uvr` can run as a single binary without an Apache Kafka. Topics, records and the
// committed offsets of consumer groups are kept in a data directory and survive restarts
// (and kill -9: STACK.md).
//
// It is one node without replication, keeps every record in memory and does not fsync: for
// tests and a quick try only, it says so when it starts and refuses records past
// Config.MaxRecords. `make run` and production use a real Kafka through the same
// pipeline/kafka client.
package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Defaults applied by Start to zero-valued fields.
const (
	DefaultAddr       = "127.0.0.1:0"
	DefaultPartitions = 1 // Kafka's own num.partitions default
)

// Config configures Start.
type Config struct {
	// DataDir holds the broker's state. Required: a broker that forgets its records and
	// offsets on restart would make every projection replay from scratch.
	DataDir string
	// Addr is a loopback host:port to listen on; port 0 picks a free port. The broker
	// advertises this address to clients, which is why it must be a concrete loopback IP.
	Addr string
	// Partitions is the partition count of topics created without one (auto-created on
	// first use, or CreateTopics with -1). Topics created by kafka.EnsureTopics set their own.
	Partitions int
	// MaxRecords caps the records held (see DefaultMaxRecords): past it produce requests
	// fail with POLICY_VIOLATION and Full reports it. 0 means DefaultMaxRecords, -1 none.
	MaxRecords int64
	Logger     *slog.Logger // nil discards
}

// Validate reports every problem of the config at once.
func (c Config) Validate() error {
	var errs []error
	if c.DataDir == "" {
		errs = append(errs, errors.New("data dir is required"))
	}
	if c.Addr != "" {
		host, port, err := net.SplitHostPort(c.Addr)
		if err != nil {
			errs = append(errs, fmt.Errorf("addr %q: %w", c.Addr, err))
		} else {
			if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
				errs = append(errs, fmt.Errorf("addr %q: host must be a loopback IP", c.Addr))
			}
			if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
				errs = append(errs, fmt.Errorf("addr %q: invalid port", c.Addr))
			}
		}
	}
	if c.Partitions < 0 {
		errs = append(errs, fmt.Errorf("partitions must be ≥ 0, got %d", c.Partitions))
	}
	if c.MaxRecords < -1 {
		errs = append(errs, fmt.Errorf("max records must be -1 (no limit), 0 (default %d) or positive, got %d", DefaultMaxRecords, c.MaxRecords))
	}
	return errors.Join(errs...)
}

// Broker is a running embedded broker.
type Broker struct {
	cluster *kfake.Cluster
	lock    *os.File
	limit   *limiter
	addrs   []string
	log     *slog.Logger

	closeOnce sync.Once
}

// Start starts the broker and returns once it answers the Kafka protocol on its address.
// ctx bounds the start only; the broker runs until Close.
func Start(ctx context.Context, cfg Config) (*Broker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("broker config: %w", err)
	}
	if cfg.Addr == "" {
		cfg.Addr = DefaultAddr
	}
	if cfg.Partitions == 0 {
		cfg.Partitions = DefaultPartitions
	}
	if cfg.MaxRecords == 0 {
		cfg.MaxRecords = DefaultMaxRecords
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "broker")

	host, portStr, _ := net.SplitHostPort(cfg.Addr)
	port, _ := strconv.Atoi(portStr)

	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("broker data dir: %w", err)
	}
	lock, err := lockDir(cfg.DataDir)
	if err != nil {
		return nil, err
	}

	cluster, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		kfake.Ports(port),
		// kfake listens on 127.0.0.1 unless told otherwise; this honours e.g. 127.0.0.2.
		kfake.ListenFn(func(network, _ string) (net.Listener, error) {
			return net.Listen(network, net.JoinHostPort(host, strconv.Itoa(port)))
		}),
		kfake.DataDir(cfg.DataDir),
		kfake.DefaultNumPartitions(cfg.Partitions),
		// Like a stock Kafka (auto.create.topics.enable=true). kafka-go's consumer group
		// asks for its topics with auto-creation on, so subscribing creates a missing topic.
		kfake.AllowAutoTopicCreation(),
		kfake.WithLogger(kfakeLogger{log}),
	)
	if err != nil {
		_ = lock.Close()
		return nil, fmt.Errorf("start embedded broker: %w", err)
	}
	b := &Broker{cluster: cluster, lock: lock, addrs: cluster.ListenAddrs(), log: log}

	if err := b.ping(ctx); err != nil {
		_ = b.Close()
		return nil, fmt.Errorf("start embedded broker: %w", err)
	}
	held, err := heldRecords(ctx, b.addrs[0])
	if err != nil {
		_ = b.Close()
		return nil, fmt.Errorf("start embedded broker: %w", err)
	}
	b.limit = &limiter{cluster: cluster, max: cfg.MaxRecords, log: log}
	b.limit.held.Store(held)
	cluster.ControlKey(int16(kmsg.Produce), b.limit.produce)
	log.Warn("embedded Kafka broker: an in-memory test broker that does not fsync, for tests and a quick try only; "+
		"it refuses records past max_records. Run a real Kafka for anything else (--kafka-brokers; `make run` starts one)",
		"addrs", b.addrs, "data_dir", cfg.DataDir, "records", held, "max_records", cfg.MaxRecords)
	return b, nil
}

// Full returns a *FullError once the broker holds its MaxRecords or refused the last produce
// request for passing it, else nil.
func (b *Broker) Full() error { return b.limit.full() }

// Addrs returns the broker's bootstrap addresses (host:port).
func (b *Broker) Addrs() []string { return append([]string(nil), b.addrs...) }

// Close stops the broker and writes its state to DataDir. Connected clients are disconnected.
func (b *Broker) Close() error {
	b.closeOnce.Do(func() {
		b.cluster.Close()
		_ = b.lock.Close() // releases the flock
		b.log.Info("embedded broker stopped")
	})
	return nil
}

func (b *Broker) ping(ctx context.Context) error {
	conn, err := (&kafkago.Dialer{}).DialContext(ctx, "tcp", b.addrs[0])
	if err != nil {
		return fmt.Errorf("dial %s: %w", b.addrs[0], err)
	}
	defer conn.Close()
	if deadline, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(deadline)
	}
	if _, err := conn.ApiVersions(); err != nil {
		return fmt.Errorf("api versions from %s: %w", b.addrs[0], err)
	}
	return nil
}

// lockDir takes an exclusive lock on dir: kfake does not, and two brokers writing one data
// directory would corrupt it.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "uvr-broker.lock"), os.O_CREATE|os.O_RDWR, 0o640)
	if err != nil {
		return nil, fmt.Errorf("broker lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("broker data dir %s is in use by another broker: %w", dir, err)
	}
	return f, nil
}

// kfakeLogger forwards kfake's warnings and errors; its info level logs every request, which
// is debug material here.
type kfakeLogger struct{ log *slog.Logger }

func (l kfakeLogger) Logf(level kfake.LogLevel, format string, args ...any) {
	var sl slog.Level
	switch level {
	case kfake.LogLevelError:
		sl = slog.LevelError
	case kfake.LogLevelWarn:
		sl = slog.LevelWarn
	case kfake.LogLevelInfo:
		sl = slog.LevelDebug
	default:
		return
	}
	if l.log.Enabled(context.Background(), sl) {
		l.log.Log(context.Background(), sl, "kfake: "+fmt.Sprintf(format, args...))
	}
}

package kafka

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/scram"
)

// Security is how every connection of uvr's Kafka clients is made: TLS and
// SASL. The zero value is plaintext without authentication (the embedded
// broker, a local Kafka). cmd/uvr builds one value from its configuration
// and gives it to every client it opens: the producer, the consumers, the
// tables and the admin requests (topics, offsets, lag).
type Security struct {
	TLS  *tls.Config    // nil: plaintext
	SASL sasl.Mechanism // nil: no authentication
}

// SASL mechanisms NewSCRAM accepts.
const (
	SCRAMSHA256 = "SCRAM-SHA-256"
	SCRAMSHA512 = "SCRAM-SHA-512"
)

// NewSCRAM is a SASL/SCRAM mechanism (SCRAMSHA256 or SCRAMSHA512) with a
// user and password. The password is not kept anywhere else, and no error
// quotes it.
func NewSCRAM(mechanism, username, password string) (sasl.Mechanism, error) {
	var algo scram.Algorithm
	switch mechanism {
	case SCRAMSHA256:
		algo = scram.SHA256
	case SCRAMSHA512:
		algo = scram.SHA512
	default:
		return nil, fmt.Errorf("SASL mechanism %q: want %s or %s", mechanism, SCRAMSHA256, SCRAMSHA512)
	}
	if username == "" || password == "" {
		return nil, fmt.Errorf("SASL %s needs a username and a password", mechanism)
	}
	m, err := scram.Mechanism(algo, username, password)
	if err != nil {
		return nil, fmt.Errorf("SASL %s: %w", mechanism, err)
	}
	return m, nil
}

// String says how connections are made, for logs and errors: never a
// password.
func (s Security) String() string {
	out := "plaintext"
	if s.TLS != nil {
		out = "TLS"
	}
	if s.SASL != nil {
		out += ", SASL " + s.SASL.Name()
	}
	return out
}

// Transport returns t with s applied: every connection t opens uses it.
// Packages that make their own kafka-go clients (admin requests) take their
// transport from here.
func (s Security) Transport(t *kafkago.Transport) *kafkago.Transport {
	t.TLS, t.SASL = s.TLS, s.SASL
	return t
}

// dialer returns d with s applied (the consumer group's readers dial with it).
func (s Security) dialer(d *kafkago.Dialer) *kafkago.Dialer {
	d.TLS, d.SASLMechanism = s.TLS, s.SASL
	return d
}

// client is a client of brokers on a transport of its own with s; close
// its connections with the transport's CloseIdleConnections.
func (s Security) client(brokers []string, timeout time.Duration, t *kafkago.Transport) (*kafkago.Client, *kafkago.Transport) {
	t = s.Transport(t)
	return &kafkago.Client{Addr: kafkago.TCP(brokers...), Transport: t, Timeout: timeout}, t
}

// Ping succeeds when one of brokers answers a metadata request over s: a
// connection refused, a TLS handshake that fails (an unknown CA, a plaintext
// listener) or a SASL authentication that fails is an error naming the
// broker, within timeout, not a hang.
func Ping(ctx context.Context, brokers []string, sec Security, timeout time.Duration) error {
	var errs []error
	for _, addr := range brokers {
		client, tr := sec.client([]string{addr}, timeout, &kafkago.Transport{ClientID: "uvr", DialTimeout: timeout})
		pctx, cancel := context.WithTimeout(ctx, timeout)
		_, err := client.Metadata(pctx, &kafkago.MetadataRequest{})
		cancel()
		tr.CloseIdleConnections()
		if err == nil {
			return nil
		}
		errs = append(errs, fmt.Errorf("%s (%s): %w", addr, sec, err))
	}
	if len(errs) == 0 {
		return errors.New("no Kafka brokers")
	}
	return errors.Join(errs...)
}

package kafka_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/pipeline/kafka"
)

func TestSubscriberConfigValidate(t *testing.T) {
	valid := kafka.SubscriberConfig{Brokers: []string{"127.0.0.1:9092"}, ConsumerGroup: "projector"}
	tests := []struct {
		name    string
		mutate  func(*kafka.SubscriberConfig)
		wantErr []string // substrings; every problem is reported at once
	}{
		{name: "minimal config is valid", mutate: func(*kafka.SubscriberConfig) {}},
		{name: "commit on every ack is valid", mutate: func(c *kafka.SubscriberConfig) { c.CommitInterval = kafka.CommitEveryAck }},
		{name: "no nack delay is valid", mutate: func(c *kafka.SubscriberConfig) { c.NackResendDelay = kafka.NoNackResendDelay }},
		{
			name:    "missing brokers and group are both reported",
			mutate:  func(c *kafka.SubscriberConfig) { c.Brokers, c.ConsumerGroup = nil, "" },
			wantErr: []string{"brokers are required", "consumer group is required"},
		},
		{name: "broker without port", mutate: func(c *kafka.SubscriberConfig) { c.Brokers = []string{"kafka"} }, wantErr: []string{`broker "kafka"`}},
		{name: "unknown initial offset", mutate: func(c *kafka.SubscriberConfig) { c.InitialOffset = 7 }, wantErr: []string{"initial offset"}},
		{name: "negative in-flight", mutate: func(c *kafka.SubscriberConfig) { c.MaxInFlight = -1 }, wantErr: []string{"max in flight"}},
		{name: "negative commit interval", mutate: func(c *kafka.SubscriberConfig) { c.CommitInterval = -time.Second }, wantErr: []string{"commit interval"}},
		{
			name:    "heartbeat not shorter than session",
			mutate:  func(c *kafka.SubscriberConfig) { c.HeartbeatInterval, c.SessionTimeout = 10*time.Second, 6*time.Second },
			wantErr: []string{"heartbeat interval"},
		},
		{name: "auto-create without partitions", mutate: func(c *kafka.SubscriberConfig) { c.AutoCreate = &kafka.TopicSpec{} }, wantErr: []string{"auto create", "partitions"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := valid
			tt.mutate(&cfg)
			err := cfg.Validate()
			if len(tt.wantErr) == 0 {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			for _, want := range tt.wantErr {
				assert.ErrorContains(t, err, want)
			}
		})
	}
}

func TestPublisherConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     kafka.PublisherConfig
		wantErr []string
	}{
		{name: "minimal config is valid", cfg: kafka.PublisherConfig{Brokers: []string{"127.0.0.1:9092"}}},
		{name: "no brokers", cfg: kafka.PublisherConfig{}, wantErr: []string{"brokers are required"}},
		{
			name:    "negative sizes and timeouts are all reported",
			cfg:     kafka.PublisherConfig{Brokers: []string{"127.0.0.1:9092"}, BatchSize: -1, BatchTimeout: -time.Millisecond},
			wantErr: []string{"batch size", "batch timeout"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if len(tt.wantErr) == 0 {
				require.NoError(t, err)
				return
			}
			for _, want := range tt.wantErr {
				assert.ErrorContains(t, err, want)
			}
		})
	}
}

package kafka

import (
	"context"
	"errors"
	"fmt"
	"testing"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/assert"
)

func TestRetriable(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"broker not available (kafka-go's answer to a slow controller lookup)", kafkago.BrokerNotAvailable, true},
		{"wrapped temporary protocol error", fmt.Errorf("create: %w", kafkago.LeaderNotAvailable), true},
		{"request timed out", kafkago.RequestTimedOut, true},
		{"network timeout", context.DeadlineExceeded, true},
		{"invalid partitions is permanent", kafkago.InvalidPartitionNumber, false},
		{"topic authorization is permanent", kafkago.TopicAuthorizationFailed, false},
		{"plain error", errors.New("boom"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, retriable(tc.err))
		})
	}
}

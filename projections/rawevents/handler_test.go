package rawevents

import (
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/pipeline/event"
	"github.com/uvrhq/uvr/pipeline/kafka"
	"github.com/uvrhq/uvr/pipeline/router"
)

func TestHandler(t *testing.T) {
	store, conn := newStore(t)
	ctx := testCtx(t)
	b := newBatcher(t, BatcherConfig{Inserter: store, BatchSize: 1, FlushInterval: time.Hour})
	handle, err := NewHandler(HandlerConfig{Rows: b, Now: func() time.Time { return at("2026-09-09T09:09:09Z") }})
	require.NoError(t, err)

	newMsg := func(payload string, meta map[string]string) *message.Message {
		msg := message.NewMessage("m-"+t.Name(), []byte(payload))
		for k, v := range meta {
			msg.Metadata.Set(k, v)
		}
		msg.SetContext(ctx)
		return msg
	}

	t.Run("valid event is stored with its position", func(t *testing.T) {
		e := ev(t, event.TypeRevenue, "h1", "2026-09-01T00:00:00Z", revenue(event.KindCharge, "12.5", "USD"))
		m, err := e.Message()
		require.NoError(t, err)
		m.Metadata.Set(kafka.PartitionMetadata, "5")
		m.Metadata.Set(kafka.OffsetMetadata, "42")
		m.SetContext(ctx)
		require.NoError(t, handle(m))

		var (
			partition int32
			offset    int64
			ingested  time.Time
		)
		require.NoError(t, conn.QueryRow(ctx, "SELECT kafka_partition, kafka_offset, ingested_at FROM revenue_events WHERE id = 'h1'").
			Scan(&partition, &offset, &ingested))
		assert.Equal(t, int32(5), partition)
		assert.Equal(t, int64(42), offset)
		assert.Equal(t, at("2026-09-09T09:09:09Z"), ingested.UTC())
	})

	t.Run("missing or malformed position is -1", func(t *testing.T) {
		e := ev(t, event.TypeUsage, "h2", "2026-09-01T00:00:00Z", usage("api", "1", "", ""))
		payload, err := e.Marshal()
		require.NoError(t, err)
		require.NoError(t, handle(newMsg(string(payload), map[string]string{kafka.OffsetMetadata: "x"})))
		var partition int32
		var offset int64
		require.NoError(t, conn.QueryRow(ctx, "SELECT kafka_partition, kafka_offset FROM usage_events WHERE id = 'h2'").Scan(&partition, &offset))
		assert.Equal(t, []any{int32(-1), int64(-1)}, []any{partition, offset})
	})

	for _, tt := range []struct{ name, payload, want string }{
		{"not JSON", `{"specversion":`, "must be a JSON object"},
		{"invalid event", `{"specversion":"1.0","id":"x","source":"s","type":"uvr.usage.v1","time":"2026-01-01T00:00:00Z","data":{"customer":{"external_id":"c"}}}`, "data.feature: is required"},
		{"time the columns cannot hold", `{"specversion":"1.0","id":"x","source":"s","type":"uvr.usage.v1","time":"2200-01-01T00:00:00Z","data":{"customer":{"external_id":"c"},"feature":"f","quantity":"1"}}`, "cannot be stored: time must be in the years 1970 to 2105"},
	} {
		t.Run(tt.name+" is permanent", func(t *testing.T) {
			err := handle(newMsg(tt.payload, nil))
			require.Error(t, err)
			assert.True(t, router.IsPermanent(err), "%v", err)
			assert.ErrorContains(t, err, tt.want)
		})
	}

	t.Run("ClickHouse failure is transient and the redelivery is stored", func(t *testing.T) {
		e := ev(t, event.TypeUsage, "h3", "2026-09-01T00:00:00Z", usage("api", "1", "", ""))
		payload, err := e.Marshal()
		require.NoError(t, err)

		require.NoError(t, conn.Exec(ctx, "RENAME TABLE usage_events TO usage_events_away"))
		err = handle(newMsg(string(payload), nil))
		require.Error(t, err)
		assert.False(t, router.IsPermanent(err), "%v", err)

		require.NoError(t, conn.Exec(ctx, "RENAME TABLE usage_events_away TO usage_events"))
		require.NoError(t, handle(newMsg(string(payload), nil)))
		var n uint64
		require.NoError(t, conn.QueryRow(ctx, "SELECT count() FROM usage_events WHERE id = 'h3'").Scan(&n))
		assert.Equal(t, uint64(1), n)
	})

	t.Run("closed batcher is transient", func(t *testing.T) {
		closed := newBatcher(t, BatcherConfig{Inserter: store})
		require.NoError(t, closed.Close())
		h, err := NewHandler(HandlerConfig{Rows: closed})
		require.NoError(t, err)
		payload, err := ev(t, event.TypeUsage, "h4", "2026-09-01T00:00:00Z", usage("api", "1", "", "")).Marshal()
		require.NoError(t, err)
		err = h(newMsg(string(payload), nil))
		require.ErrorIs(t, err, ErrClosed)
		assert.False(t, router.IsPermanent(err))
	})

	_, err = NewHandler(HandlerConfig{})
	assert.Error(t, err)
}

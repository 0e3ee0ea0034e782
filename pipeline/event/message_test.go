package event_test

import (
	"errors"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/pipeline/event"
)

// A message marked validated at the edge decodes to the event Parse gives; an
// unmarked one, or one marked under other rules, is validated again, so an
// invalid payload still fails (the projector sends it to the poison topic).
func TestFromMessage(t *testing.T) {
	customer := `{"specversion":"1.0","id":"c1","source":"crm","type":"uvr.customer.v1","time":"2026-11-01T10:00:00Z",
 "data":{"customer":{"external_id":"cus_1","name":"Acme"},"plan":"pro","metadata":{"tier":"gold"},"version":2,"void":true}}`
	for _, body := range []string{usageExample, revenueExample, customer} {
		parsed, err := event.Parse([]byte(body))
		require.NoError(t, err)
		msgs, err := event.Messages([]event.Event{parsed})
		require.NoError(t, err)
		event.MarkValidated(msgs)
		got, err := event.FromMessage(msgs[0])
		require.NoError(t, err)
		// Equal up to the decimals' representation (49.00 is 49 on the wire).
		want, err := parsed.Marshal()
		require.NoError(t, err)
		again, err := got.Marshal()
		require.NoError(t, err)
		assert.JSONEq(t, string(want), string(again))
		assert.Equal(t, parsed.Time, got.Time)
		assert.True(t, parsed.Data.Amount == nil || parsed.Data.Amount.Equal(*got.Data.Amount))
	}

	invalid := `{"specversion":"1.0","id":"x","source":"s","type":"uvr.usage.v1","time":"2026-11-01T10:00:00Z","data":{"version":1}}`
	tests := []struct {
		name, payload, mark string
	}{
		{"unmarked and invalid", invalid, ""},
		{"marked under other rules", invalid, "0"},
		{"marked but not JSON", `{"id":`, event.RulesVersion},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg := message.NewMessage("m", []byte(tt.payload))
			if tt.mark != "" {
				msg.Metadata.Set(event.ValidatedMetadata, tt.mark)
			}
			_, err := event.FromMessage(msg)
			var verr *event.ValidationError
			require.True(t, errors.As(err, &verr), "%v", err)
		})
	}
}

package rawevents

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/pipeline/event"
)

func TestRowRevAndTable(t *testing.T) {
	tests := []struct {
		typ     string
		version uint32
		void    bool
		rev     uint64
		table   string
	}{
		{event.TypeUsage, 1, false, 2, TableUsage},
		{event.TypeUsage, 1, true, 3, TableUsage},
		{event.TypeRevenue, 2, false, 4, TableRevenue},
		{event.TypeCustomer, 4294967295, true, 8589934591, TableCustomer},
	}
	for _, tt := range tests {
		r := Row{Event: event.Event{Type: tt.typ, Data: event.Data{Version: tt.version, Void: tt.void}}}
		assert.Equal(t, tt.rev, r.Rev())
		assert.Equal(t, tt.table, r.Table())
	}
	// Rev orders versions as the contract says: higher version, then void.
	v1void := Row{Event: event.Event{Data: event.Data{Version: 1, Void: true}}}
	v2 := Row{Event: event.Event{Data: event.Data{Version: 2}}}
	assert.Less(t, v1void.Rev(), v2.Rev())
}

func TestNewRowRefusesWhatTheColumnsCannotHold(t *testing.T) {
	now := at("2026-01-01T00:00:00Z")
	ok := ev(t, event.TypeUsage, "u1", "2105-12-31T23:59:59Z", usage("api", "1", "", ""))
	r, err := NewRow(ok, now, 2, 7)
	require.NoError(t, err)
	assert.Equal(t, "2105-12-31", r.Day().String())
	assert.Equal(t, int32(2), r.KafkaPartition)

	late := ev(t, event.TypeUsage, "u2", "2106-01-01T00:00:00Z", usage("api", "1", "", ""))
	end := at("2500-01-01T00:00:00Z")
	window := ev(t, event.TypeUsage, "u3", "2026-01-01T00:00:00Z", usage("api", "1", "", ""), func(e *event.Event) { e.Data.WindowEnd = &end })
	unknown := ok
	unknown.Type = "uvr.other.v1"
	for _, tt := range []struct {
		name string
		ev   event.Event
		want string
	}{
		{"time after 2105", late, "time must be in the years 1970 to 2105"},
		{"window_end after 2105", window, "data.window_end must be"},
		{"unknown type", unknown, "unknown type"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewRow(tt.ev, now, -1, -1)
			var unstorable *UnstorableError
			require.True(t, errors.As(err, &unstorable), "%v", err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}

	_, err = NewRow(ok, time.Time{}, -1, -1)
	assert.ErrorContains(t, err, "ingested_at")
}

func TestRecentSetForgetsTheOldest(t *testing.T) {
	s := newRecentSet(2)
	a, b, c := rowKey{id: "a"}, rowKey{id: "b"}, rowKey{id: "c"}
	s.add(a)
	s.add(b)
	s.add(a) // already there: does not refresh nor evict
	assert.True(t, s.contains(a) && s.contains(b))
	s.add(c)
	assert.False(t, s.contains(a))
	assert.True(t, s.contains(b) && s.contains(c))
	assert.Len(t, s.keys, 2)

	off := newRecentSet(0)
	off.add(a)
	assert.False(t, off.contains(a))
}

package kafka

import (
	"context"
	"fmt"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// op is one step on a window: "ack N", "nack N" (N is an offset) or "push N".
type op struct {
	do     string
	offset int64

	commit  int64   // expected committable offset, -1 for none
	dropped []int64 // expected offsets leaving the window on a nack
}

func TestWindow(t *testing.T) {
	none := int64(-1)
	tests := []struct {
		name   string
		offers []int64 // offsets pushed first, in order
		ops    []op
		left   []int64 // offsets still in the window at the end
	}{
		{
			name:   "in-order acks commit one by one",
			offers: []int64{0, 1, 2},
			ops:    []op{{do: "ack", offset: 0, commit: 1}, {do: "ack", offset: 1, commit: 2}, {do: "ack", offset: 2, commit: 3}},
		},
		{
			name:   "out-of-order acks commit only the contiguous prefix",
			offers: []int64{0, 1, 2, 3},
			ops: []op{
				{do: "ack", offset: 2, commit: none},
				{do: "ack", offset: 1, commit: none},
				{do: "ack", offset: 0, commit: 3}, // 0, 1, 2 at once
			},
			left: []int64{3},
		},
		{
			name:   "offsets need not be contiguous (compaction)",
			offers: []int64{10, 14, 15},
			ops:    []op{{do: "ack", offset: 14, commit: none}, {do: "ack", offset: 10, commit: 15}},
			left:   []int64{15},
		},
		{
			name:   "nack in the middle drops it and everything after",
			offers: []int64{0, 1, 2, 3},
			ops: []op{
				{do: "nack", offset: 2, commit: none, dropped: []int64{2, 3}},
				{do: "ack", offset: 3, commit: none}, // dropped: its ack no longer counts
				{do: "ack", offset: 0, commit: 1},
			},
			left: []int64{1},
		},
		{
			name:   "acks before the nacked message still commit",
			offers: []int64{0, 1, 2},
			ops: []op{
				{do: "ack", offset: 1, commit: none},
				{do: "nack", offset: 2, commit: none, dropped: []int64{2}},
				{do: "ack", offset: 0, commit: 2},
			},
		},
		{
			name:   "redelivered message after a nack is a new delivery",
			offers: []int64{0, 1},
			ops: []op{
				{do: "nack", offset: 0, commit: none, dropped: []int64{0, 1}},
				{do: "push", offset: 0},
				{do: "push", offset: 1},
				{do: "ack", offset: 1, commit: none},
				{do: "ack", offset: 0, commit: 2},
			},
		},
		{
			name:   "nack of an acked message is ignored",
			offers: []int64{0, 1},
			ops: []op{
				{do: "ack", offset: 1, commit: none},
				{do: "nack", offset: 1, commit: none},
			},
			left: []int64{0, 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var w window
			live := map[int64]*delivery{} // latest delivery of each offset
			push := func(off int64) {
				d := newTestDelivery(off)
				live[off] = d
				w.push(d)
			}
			for _, off := range tt.offers {
				push(off)
			}
			for i, o := range tt.ops {
				step := fmt.Sprintf("step %d: %s %d", i, o.do, o.offset)
				switch o.do {
				case "push":
					push(o.offset)
				case "ack":
					commit, ok := w.ack(live[o.offset])
					if o.commit == none {
						assert.False(t, ok, step)
					} else if assert.True(t, ok, step) {
						assert.Equal(t, o.commit, commit, step)
					}
				case "nack":
					dropped, ok := w.nack(live[o.offset])
					assert.Equal(t, len(o.dropped) > 0, ok, step)
					assert.Equal(t, o.dropped, offsets(dropped), step)
				}
			}
			assert.Equal(t, tt.left, offsets(w.entries))
		})
	}
}

func TestWindowSettlePicksUpUnreportedAcks(t *testing.T) {
	var w window
	ds := []*delivery{newTestDelivery(0), newTestDelivery(1), newTestDelivery(2)}
	for _, d := range ds {
		w.push(d)
	}
	// Acked by the handler, but the events never reached the partition loop.
	require.True(t, ds[0].msg.Ack())
	require.True(t, ds[1].msg.Ack())

	commit, ok := w.settle()
	require.True(t, ok)
	assert.Equal(t, int64(2), commit)
	assert.Equal(t, []int64{2}, offsets(w.drain()))
	assert.True(t, ds[2].dropped)
}

func newTestDelivery(off int64) *delivery {
	ctx, cancel := context.WithCancel(context.Background())
	msg := message.NewMessage(fmt.Sprint(off), nil)
	msg.SetContext(ctx)
	return &delivery{offset: off, msg: msg, ctx: ctx, cancel: cancel}
}

func offsets(ds []*delivery) []int64 {
	var out []int64
	for _, d := range ds {
		out = append(out, d.offset)
	}
	return out
}

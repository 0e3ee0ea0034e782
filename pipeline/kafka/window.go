package kafka

import (
	"context"
	"sort"

	"github.com/ThreeDotsLabs/watermill/message"
)

// delivery is one record of a partition handed out as a Watermill message. Its fields other
// than msg and cancel belong to the partition loop's goroutine.
type delivery struct {
	offset int64
	msg    *message.Message
	ctx    context.Context    // msg's context as handed out (handlers may replace msg's)
	cancel context.CancelFunc // cancels ctx
	size   int64              // estimated memory while held (messageSize)

	acked   bool
	dropped bool // rewound or revoked: its ack or nack no longer counts
}

// window holds, in offset order, the deliveries of a partition that the committed offset has
// not passed yet: un-acked ones, and acked ones waiting behind an un-acked one. Kafka keeps a
// single committed offset per partition, so only the acked prefix can ever be committed.
//
// Offsets inside a partition are not contiguous (compaction, transaction markers): the window
// reasons about the sequence of deliveries, never about offset+1.
type window struct {
	entries []*delivery
	bytes   int64 // the sizes of entries
}

func (w *window) len() int { return len(w.entries) }

func (w *window) push(d *delivery) {
	w.entries = append(w.entries, d)
	w.bytes += d.size
}

// cut takes the entries from i on out of the window and returns them.
func (w *window) cut(i int) []*delivery {
	out := append([]*delivery(nil), w.entries[i:]...)
	for _, d := range out {
		w.bytes -= d.size
	}
	clear(w.entries[i:])
	w.entries = w.entries[:i]
	return out
}

// ack records d's ack. When the acked prefix of the window grows it returns the offset to
// commit (the offset after the last acked delivery of the prefix) and true.
func (w *window) ack(d *delivery) (int64, bool) {
	if d.dropped || d.acked {
		return 0, false
	}
	d.acked = true
	return w.popAcked()
}

// nack rewinds the partition to d: d and every delivery after it leave the window (and are
// returned, marked dropped) because the partition will read them again from d's offset.
// Deliveries before d stay: their acks still count.
func (w *window) nack(d *delivery) ([]*delivery, bool) {
	if d.dropped || d.acked {
		return nil, false
	}
	i := sort.Search(len(w.entries), func(i int) bool { return w.entries[i].offset >= d.offset })
	if i == len(w.entries) || w.entries[i] != d {
		return nil, false
	}
	dropped := w.cut(i)
	for _, e := range dropped {
		e.dropped = true
	}
	return dropped, true
}

// settle picks up acks that happened but were not reported yet (the partition is being left
// and its events may still be in flight), then returns the offset to commit like ack.
func (w *window) settle() (int64, bool) {
	for _, d := range w.entries {
		if d.acked {
			continue
		}
		select {
		case <-d.msg.Acked():
			d.acked = true
		default:
		}
	}
	return w.popAcked()
}

// drain empties the window, marking every remaining delivery dropped.
func (w *window) drain() []*delivery {
	dropped := w.cut(0)
	for _, d := range dropped {
		d.dropped = true
	}
	return dropped
}

func (w *window) popAcked() (int64, bool) {
	n := 0
	for n < len(w.entries) && w.entries[n].acked {
		n++
	}
	if n == 0 {
		return 0, false
	}
	commit := w.entries[n-1].offset + 1
	for _, d := range w.entries[:n] {
		w.bytes -= d.size
	}
	clear(w.entries[:n])
	w.entries = w.entries[n:]
	return commit, true
}

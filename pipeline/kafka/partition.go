package kafka

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	kafkago "github.com/segmentio/kafka-go"
)

type ackEvent struct {
	d   *delivery
	ack bool // false: nack
}

type fetchResult struct {
	rec kafkago.Message
	err error
}

// consumePartition hands out the records of one assigned partition until ctx (the generation)
// ends. All window bookkeeping happens on this goroutine; acks and nacks reach it as events.
func (sb *subscription) consumePartition(ctx context.Context, c *committer, partition int, start int64) {
	cfg := sb.s.cfg
	log := sb.log.With("partition", partition)

	// A plain partition reader, not kafka-go's group Reader: a nack has to seek, and the
	// group Reader cannot.
	reader := kafkago.NewReader(kafkago.ReaderConfig{
		Brokers:     cfg.Brokers,
		Dialer:      cfg.Security.dialer(&kafkago.Dialer{ClientID: "uvr", Timeout: 10 * time.Second, DualStack: true}),
		Topic:       sb.topic,
		Partition:   partition,
		MinBytes:    1,
		MaxBytes:    cfg.FetchMaxBytes,
		MaxWait:     cfg.FetchMaxWait,
		ErrorLogger: kafkaLogger(log, slog.LevelDebug),
		// Off: the committer reports lag. kafka-go's own lag polling would dial the leader
		// every minute, from a goroutine that Close does not wait for.
		ReadLagInterval: -1,
	})
	// Close waits for the pending fetch (up to FetchMaxWait): not worth holding up the
	// rebalance for, so it happens in the background and Subscriber.Close waits for it.
	defer sb.s.background(func() { _ = reader.Close() })
	if err := reader.SetOffset(start); err != nil {
		log.Warn("cannot seek partition reader", "offset", start, "error", err)
		return
	}

	events := make(chan ackEvent, cfg.MaxInFlight)
	loopDone := make(chan struct{})
	defer close(loopDone)

	var (
		w       window
		pending *delivery // fetched, not taken from the output channel yet
		resume  <-chan time.Time
		charged int64 // w.bytes as charged to the shared budget
	)
	// chargeBudget brings the shared budget up to date with the window.
	chargeBudget := func() {
		cfg.Budget.add(w.bytes - charged)
		charged = w.bytes
	}
	f := startFetcher(ctx, reader)

	defer func() {
		defer chargeBudget()
		f.stop()
		// Leaving the generation: commit what was acked, abandon everything else to the next
		// owner (it resumes from the committed offset and redelivers).
		if off, ok := w.settle(); ok {
			c.mark(partition, off)
		}
		abandoned := w.drain()
		if pending != nil {
			abandoned = append(abandoned, pending)
		}
		for _, d := range abandoned {
			d.cancel()
		}
		log.Debug("partition released", "abandoned", len(abandoned))
	}()

	rewind := func(offset int64) {
		f.stop()
		if pending != nil {
			pending.cancel()
			pending = nil
		}
		// The fetcher is stopped, so no FetchMessage call can return a record read before
		// the seek.
		if err := reader.SetOffset(offset); err != nil {
			log.Warn("cannot rewind partition reader", "offset", offset, "error", err)
		}
		if cfg.NackResendDelay > 0 {
			resume = time.After(cfg.NackResendDelay)
			f = nil
			return
		}
		f = startFetcher(ctx, reader)
	}

	for {
		chargeBudget()
		var (
			fetched <-chan fetchResult
			freed   <-chan struct{}
		)
		if f != nil && pending == nil && w.len() < cfg.MaxInFlight {
			// A spent budget holds back partitions that have something in flight; an empty
			// one may always take a message, so none starves.
			if full, ch := cfg.Budget.full(); full && w.len() > 0 {
				freed = ch
			} else {
				fetched = f.results
			}
		}
		// Select evaluates every send operand, so the message is picked out before.
		var out chan<- *message.Message
		var next *message.Message
		if pending != nil {
			out, next = sb.out, pending.msg
		}

		select {
		case <-ctx.Done():
			return

		case r := <-fetched:
			if r.err != nil {
				if errors.Is(r.err, io.EOF) {
					return
				}
				// The reader reconnects and retries by itself, with backoff.
				log.Warn("fetch failed", "error", r.err)
				continue
			}
			c.observe(partition, r.rec.Offset, r.rec.HighWaterMark)
			pending = sb.newDelivery(r.rec)

		case out <- next:
			sb.received.Inc()
			w.push(pending)
			go watch(pending, events, loopDone)
			pending = nil

		case ev := <-events:
			if ev.ack {
				sb.acked.Inc()
				if off, ok := w.ack(ev.d); ok {
					c.mark(partition, off)
					if cfg.CommitInterval == CommitEveryAck {
						if err := c.flush(); err != nil {
							log.Warn("offset commit failed", "error", err)
						}
					}
				}
				continue
			}
			sb.nacked.Inc()
			dropped, ok := w.nack(ev.d)
			if !ok {
				continue
			}
			for _, d := range dropped {
				d.cancel()
			}
			log.Debug("nack: rewinding partition", "offset", ev.d.offset, "redelivered", len(dropped))
			rewind(ev.d.offset)

		case <-resume:
			resume = nil
			f = startFetcher(ctx, reader)

		case <-freed:
			// Another partition released bytes: look at the budget again.
		}
	}
}

// newDelivery turns a record into the message handed out, with a context that the
// subscription's end, the message's own ack/nack and its partition's release all cancel.
func (sb *subscription) newDelivery(rec kafkago.Message) *delivery {
	msg := sb.s.marshaler.Unmarshal(rec)
	ctx, cancel := context.WithCancel(withRecordInfo(sb.ctx, rec))
	msg.SetContext(ctx)
	return &delivery{offset: rec.Offset, msg: msg, ctx: ctx, cancel: cancel,
		size: messageSize(rec.Key, rec.Value, len(rec.Headers))}
}

// watch reports the ack or nack of d to its partition loop. It gives up when d's context ends
// first (d was abandoned); the loop then picks up a late ack itself (window.settle).
func watch(d *delivery, events chan<- ackEvent, loopDone <-chan struct{}) {
	var ev ackEvent
	select {
	case <-d.msg.Acked():
		ev = ackEvent{d: d, ack: true}
	case <-d.msg.Nacked():
		ev = ackEvent{d: d}
	case <-d.ctx.Done():
		return
	}
	// Watermill's contract: Ack and Nack cancel the message's context.
	d.cancel()
	select {
	case events <- ev:
	case <-loopDone:
	}
}

// fetcher reads records ahead of the partition loop, so that the loop can wait for records
// and for acks at the same time.
type fetcher struct {
	results chan fetchResult
	cancel  context.CancelFunc
	done    chan struct{}
}

func startFetcher(ctx context.Context, reader *kafkago.Reader) *fetcher {
	ctx, cancel := context.WithCancel(ctx)
	f := &fetcher{results: make(chan fetchResult), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(f.done)
		for {
			rec, err := reader.FetchMessage(ctx)
			if ctx.Err() != nil {
				return
			}
			select {
			case f.results <- fetchResult{rec: rec, err: err}:
			case <-ctx.Done():
				return
			}
			if errors.Is(err, io.EOF) {
				return
			}
		}
	}()
	return f
}

// stop cancels the fetcher and waits until it is out of FetchMessage. Nil-safe.
func (f *fetcher) stop() {
	if f == nil {
		return
	}
	f.cancel()
	<-f.done
}

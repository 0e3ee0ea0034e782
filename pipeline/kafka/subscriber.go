package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"
	kafkago "github.com/segmentio/kafka-go"
)

// subscribeInitTimeout bounds SubscribeInitialize, whose Watermill signature has no context.
const subscribeInitTimeout = 30 * time.Second

// Subscriber consumes topics as a member of a Kafka consumer group.
//
// Each Subscribe call joins the group for one topic. Every partition assigned to it is read
// from the group's committed offset and handed out in offset order, at most MaxInFlight
// un-acked messages at a time. Ack commits (batched by CommitInterval); Nack rewinds the
// partition to the nacked message, which is redelivered with every message after it. When a
// rebalance takes a partition away, acked offsets are committed and un-acked messages are
// abandoned (their contexts cancelled) for the next owner to redeliver.
type Subscriber struct {
	cfg       SubscriberConfig
	log       *slog.Logger
	metrics   *subscriberMetrics
	marshaler Marshaler

	admin     *kafkago.Client    // metadata requests outside the consumer group protocol
	transport *kafkago.Transport // admin's connections

	closeCtx context.Context // cancelled by Close; parent of every subscription
	closeFn  context.CancelFunc

	mu     sync.Mutex
	closed bool
	subs   sync.WaitGroup // running subscriptions
	bg     sync.WaitGroup // readers and groups closing in the background
}

var (
	_ message.Subscriber           = (*Subscriber)(nil)
	_ message.SubscribeInitializer = (*Subscriber)(nil)
)

// NewSubscriber validates cfg and builds a Subscriber. It does not contact the brokers.
func NewSubscriber(cfg SubscriberConfig) (*Subscriber, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("kafka subscriber config: %w", err)
	}
	cfg = cfg.withDefaults()
	metrics, err := newSubscriberMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("kafka subscriber: %w", err)
	}
	closeCtx, closeFn := context.WithCancel(context.Background())
	admin, transport := cfg.Security.client(cfg.Brokers, 0, &kafkago.Transport{ClientID: "uvr"})
	return &Subscriber{
		cfg:       cfg,
		admin:     admin,
		transport: transport,
		log:       cfg.Logger.With("client", "subscriber", "group", cfg.ConsumerGroup),
		metrics:   metrics,
		closeCtx:  closeCtx,
		closeFn:   closeFn,
	}, nil
}

// SubscribeInitialize creates topic if AutoCreate is set; otherwise it does nothing.
func (s *Subscriber) SubscribeInitialize(topic string) error {
	ctx, cancel := context.WithTimeout(s.closeCtx, subscribeInitTimeout)
	defer cancel()
	return s.ensureTopic(ctx, topic)
}

func (s *Subscriber) ensureTopic(ctx context.Context, topic string) error {
	if s.cfg.AutoCreate == nil {
		return nil
	}
	spec := *s.cfg.AutoCreate
	spec.Name = topic
	if err := ensureTopics(ctx, s.admin, []TopicSpec{spec}); err != nil {
		return fmt.Errorf("kafka subscribe %s: %w", topic, err)
	}
	return nil
}

// Subscribe joins the consumer group for topic. The returned channel is closed when ctx is
// cancelled or the Subscriber is closed; messages carry a context derived from ctx (with
// RecordInfo), cancelled on Ack, on Nack, when their partition is revoked and on Close.
func (s *Subscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	s.subs.Add(1)
	s.mu.Unlock()

	sub, err := s.subscribe(ctx, topic)
	if err != nil {
		s.subs.Done()
		return nil, err
	}
	go func() {
		defer s.subs.Done()
		sub.run()
	}()
	return sub.out, nil
}

func (s *Subscriber) subscribe(ctx context.Context, topic string) (*subscription, error) {
	if topic == "" {
		return nil, errors.New("kafka subscribe: topic is required")
	}
	if err := s.ensureTopic(ctx, topic); err != nil {
		return nil, err
	}

	log := s.log.With("topic", topic)
	startOffset := kafkago.FirstOffset
	if s.cfg.InitialOffset == OffsetLast {
		startOffset = kafkago.LastOffset
	}
	// A client ID per subscription finds the members it left behind (see leaveStragglers).
	clientID := "uvr-" + watermill.NewShortUUID()
	group, err := kafkago.NewConsumerGroup(kafkago.ConsumerGroupConfig{
		ID:                s.cfg.ConsumerGroup,
		Brokers:           s.cfg.Brokers,
		Dialer:            s.cfg.Security.dialer(&kafkago.Dialer{ClientID: clientID, Timeout: 10 * time.Second, DualStack: true}),
		Topics:            []string{topic},
		HeartbeatInterval: s.cfg.HeartbeatInterval,
		SessionTimeout:    s.cfg.SessionTimeout,
		RebalanceTimeout:  s.cfg.RebalanceTimeout,
		JoinGroupBackoff:  s.cfg.JoinGroupBackoff,
		// A topic created (or grown) after we joined triggers a rebalance that assigns it.
		WatchPartitionChanges: true,
		StartOffset:           startOffset,
		// kafka-go reports every rebalance step as an error; the ones that matter reach us
		// through Next.
		ErrorLogger: kafkaLogger(log, slog.LevelDebug),
	})
	if err != nil {
		return nil, fmt.Errorf("kafka subscribe %s: consumer group: %w", topic, err)
	}

	subCtx, cancel := context.WithCancel(ctx)
	stopOnClose := context.AfterFunc(s.closeCtx, cancel)
	return &subscription{
		s:        s,
		topic:    topic,
		clientID: clientID,
		log:      log,
		ctx:      subCtx,
		cancel:   func() { stopOnClose(); cancel() },
		group:    group,
		out:      make(chan *message.Message),
		received: s.metrics.received.WithLabelValues(topic, s.cfg.ConsumerGroup),
		acked:    s.metrics.acked.WithLabelValues(topic, s.cfg.ConsumerGroup),
		nacked:   s.metrics.nacked.WithLabelValues(topic, s.cfg.ConsumerGroup),
		gens:     s.metrics.rebalances.WithLabelValues(topic, s.cfg.ConsumerGroup),
	}, nil
}

// Close ends every subscription: acked offsets are committed, un-acked messages are abandoned
// (their contexts cancelled), output channels are closed, the group is left. It waits for all
// of it, so that a new member of the group resumes exactly after the acked messages.
func (s *Subscriber) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()

	s.closeFn()
	s.subs.Wait()
	s.bg.Wait()
	s.transport.CloseIdleConnections()
	return nil
}

// background runs fn and makes Close wait for it.
func (s *Subscriber) background(fn func()) {
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		fn()
	}()
}

// subscription is one Subscribe call: one group member consuming one topic.
type subscription struct {
	s        *Subscriber
	topic    string
	clientID string
	log      *slog.Logger
	ctx      context.Context
	cancel   context.CancelFunc
	group    *kafkago.ConsumerGroup
	out      chan *message.Message

	loops sync.WaitGroup // partition loops and committers of the current generation

	received, acked, nacked, gens prometheus.Counter
}

func (sb *subscription) run() {
	// On the way out, in this order: closing the group ends the current generation, whose
	// partition loops then commit and stop; only then is the output channel closed. Closing
	// the group also leaves it, which can wait for a join in progress (up to
	// RebalanceTimeout), so it runs in the background: Close waits for it, the channel not.
	defer sb.cancel()
	defer close(sb.out)
	defer sb.loops.Wait()
	defer sb.s.background(func() {
		_ = sb.group.Close()
		sb.leaveStragglers()
	})

	for {
		gen, err := sb.group.Next(sb.ctx)
		if sb.ctx.Err() != nil {
			// A generation handed over now is closed by the group itself when it closes.
			return
		}
		if err != nil {
			if errors.Is(err, kafkago.ErrGroupClosed) {
				return
			}
			level := slog.LevelWarn
			if errors.Is(err, kafkago.RebalanceInProgress) {
				level = slog.LevelDebug
			}
			sb.log.Log(sb.ctx, level, "consumer group generation failed; rejoining", "error", err)
			continue
		}
		sb.startGeneration(gen)
	}
}

// startGeneration starts a loop per assigned partition and a committer. They run until the
// generation ends (rebalance, coordinator error, Close); the group waits for them before it
// joins the next generation, so a partition is never consumed twice by this member.
func (sb *subscription) startGeneration(gen *kafkago.Generation) {
	sb.gens.Inc()
	assigned := gen.Assignments[sb.topic]
	sort.Slice(assigned, func(i, j int) bool { return assigned[i].ID < assigned[j].ID })
	ids := make([]int, len(assigned))
	start := make(map[int]int64, len(assigned))
	for i, a := range assigned {
		ids[i] = a.ID
		start[a.ID] = a.Offset
	}
	sb.log.Info("joined consumer group generation", "generation", gen.ID, "member", gen.MemberID, "partitions", ids)
	if len(assigned) == 0 {
		return
	}

	c := newCommitter(gen, sb.topic, sb.s.cfg.ConsumerGroup, start, sb.log, sb.s.metrics)
	var partitions sync.WaitGroup
	partitions.Add(len(assigned))
	sb.loops.Add(len(assigned) + 1)
	for _, a := range assigned {
		gen.Start(func(ctx context.Context) {
			defer sb.loops.Done()
			defer partitions.Done()
			sb.consumePartition(ctx, c, a.ID, a.Offset)
		})
	}
	gen.Start(func(ctx context.Context) {
		defer sb.loops.Done()
		c.run(ctx, sb.s.cfg.CommitInterval, sb.s.cfg.LagRefreshInterval, &partitions, sb.s.admin)
	})
}

// leaveStragglers removes from the group the members this subscription still has there.
// kafka-go's ConsumerGroup does not leave when it is closed right after a sync failed with
// RebalanceInProgress; the coordinator then waits RebalanceTimeout for that member before it
// completes the rebalance of everybody else. Usually there is nothing to remove.
func (sb *subscription) leaveStragglers() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	client := sb.s.admin
	group := sb.s.cfg.ConsumerGroup

	described, err := client.DescribeGroups(ctx, &kafkago.DescribeGroupsRequest{GroupIDs: []string{group}})
	if err != nil {
		sb.log.Debug("cannot describe group after leaving it", "error", err)
		return
	}
	var members []kafkago.LeaveGroupRequestMember
	for _, g := range described.Groups {
		for _, m := range g.Members {
			if m.ClientID == sb.clientID {
				members = append(members, kafkago.LeaveGroupRequestMember{ID: m.MemberID})
			}
		}
	}
	if len(members) == 0 {
		return
	}
	resp, err := client.LeaveGroup(ctx, &kafkago.LeaveGroupRequest{GroupID: group, Members: members})
	if err == nil {
		err = resp.Error
	}
	sb.log.Debug("removed members left behind in the group", "members", len(members), "error", err)
}

// kafkaLogger adapts kafka-go's printf logging to slog at a fixed level.
func kafkaLogger(log *slog.Logger, level slog.Level) kafkago.Logger {
	return kafkago.LoggerFunc(func(format string, args ...any) {
		if log.Enabled(context.Background(), level) {
			log.Log(context.Background(), level, "kafka-go: "+fmt.Sprintf(format, args...))
		}
	})
}

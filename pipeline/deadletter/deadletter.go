// Package deadletter reads and retries the messages the router parked on a
// poison (dead-letter) topic (pipeline/router): each carries, besides the
// original payload and metadata, the reason, its class, the topic,
// partition and offset it was read at, the handler and the time.
//
// The topic itself is the record: a retry republishes the original message
// to its topic (projections are idempotent, so a retry is always safe) and
// appends a marker to the dead-letter topic naming the entry it retried, so
// a listing shows what was retried and when. A retried message that fails
// again is parked again: a new entry.
package deadletter

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	kafkago "github.com/segmentio/kafka-go"

	"github.com/uvrhq/uvr/pipeline/event"
	"github.com/uvrhq/uvr/pipeline/kafka"
	"github.com/uvrhq/uvr/pipeline/router"
)

// Metadata of a retry marker: the id of the entry it retried, and when.
const (
	RetryOfMetadata = "deadletter_retry_of"
	RetriedMetadata = "deadletter_retried_at"
)

// Entry is one dead letter. It never holds the payload: only where the
// message came from, what it was and why it was set aside.
type Entry struct {
	// ID names the entry: "<partition>-<offset>" in the dead-letter topic.
	ID          string    `json:"id"`
	Topic       string    `json:"topic"`     // the topic the message was read from
	Partition   int       `json:"partition"` // its partition there (-1 when unknown)
	Offset      int64     `json:"offset"`    // its offset there (-1 when unknown)
	Projection  string    `json:"projection"`
	Reason      string    `json:"reason"`
	ReasonClass string    `json:"reason_class"`
	Time        time.Time `json:"time"` // when it was set aside
	EventID     string    `json:"event_id,omitempty"`
	EventSource string    `json:"event_source,omitempty"`
	EventType   string    `json:"event_type,omitempty"`
	// Retries are the times the entry was retried, oldest first.
	Retries []time.Time `json:"retries"`

	msg *message.Message // the original message, for Retry
}

// Retried reports whether the entry was retried at least once.
func (e Entry) Retried() bool { return len(e.Retries) > 0 }

// Config configures New.
type Config struct {
	Brokers  []string
	Security kafka.Security // TLS and SASL; zero: plaintext
	Topic    string         // the dead-letter topic
	// Publisher republishes retried messages and writes the markers.
	// Needed by Retry only.
	Publisher message.Publisher
	// Now stamps retries. Default time.Now.
	Now func() time.Time
}

// Store lists and retries the entries of one dead-letter topic. It keeps
// nothing between calls: each call reads the topic. Safe for concurrent use.
type Store struct {
	cfg    Config
	client *kafkago.Client
}

// New returns a Store.
func New(cfg Config) (*Store, error) {
	var errs []error
	if len(cfg.Brokers) == 0 {
		errs = append(errs, errors.New("dead letters: brokers are required"))
	}
	if cfg.Topic == "" {
		errs = append(errs, errors.New("dead letters: topic is required"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	tr := cfg.Security.Transport(&kafkago.Transport{ClientID: "uvr-dead-letters"})
	return &Store{cfg: cfg, client: &kafkago.Client{Addr: kafkago.TCP(cfg.Brokers...), Transport: tr, Timeout: 10 * time.Second}}, nil
}

// Progress is called while List reads: records read so far of total.
type Progress func(read, total int64)

// List reads the whole topic and returns its entries in the order they were
// set aside, each with its retries. progress, when set, is called after
// every fetch.
func (s *Store) List(ctx context.Context, progress Progress) ([]Entry, error) {
	bounds, err := s.bounds(ctx)
	if err != nil {
		return nil, err
	}
	var total, read int64
	for _, b := range bounds {
		total += b.end - b.start
	}
	var (
		entries []Entry
		index   = map[string]int{}
		retries = map[string][]time.Time{}
	)
	for _, b := range bounds {
		for offset := b.start; offset < b.end; {
			recs, next, err := s.fetch(ctx, b.partition, offset)
			if err != nil {
				return nil, err
			}
			for _, rec := range recs {
				if rec.Offset >= b.end {
					break
				}
				read++
				msg := kafka.Marshaler{}.Unmarshal(rec)
				if of := msg.Metadata.Get(RetryOfMetadata); of != "" {
					at, _ := time.Parse(time.RFC3339Nano, msg.Metadata.Get(RetriedMetadata))
					retries[of] = append(retries[of], at)
					continue
				}
				e := entryOf(b.partition, rec.Offset, msg)
				index[e.ID] = len(entries)
				entries = append(entries, e)
			}
			offset = next
			if progress != nil {
				progress(read, total)
			}
		}
	}
	for id, at := range retries {
		if i, ok := index[id]; ok {
			entries[i].Retries = at
		}
	}
	return entries, nil
}

// Retry republishes the entries named by ids (all not yet retried when
// all is true) to their topics, and records each retry. It returns the
// entries retried. An id that names no entry is an error, and nothing is
// retried then.
func (s *Store) Retry(ctx context.Context, ids []string, all bool, progress Progress) ([]Entry, error) {
	if s.cfg.Publisher == nil {
		return nil, errors.New("dead letters: retry needs a publisher")
	}
	entries, err := s.List(ctx, progress)
	if err != nil {
		return nil, err
	}
	var pick []Entry
	if all {
		for _, e := range entries {
			if !e.Retried() {
				pick = append(pick, e)
			}
		}
	} else {
		byID := map[string]Entry{}
		for _, e := range entries {
			byID[e.ID] = e
		}
		var missing []string
		for _, id := range ids {
			e, ok := byID[id]
			if !ok {
				missing = append(missing, id)
				continue
			}
			pick = append(pick, e)
		}
		if len(missing) > 0 {
			return nil, &NotFoundError{IDs: missing}
		}
	}
	for i, e := range pick {
		if e.Topic == "" {
			return pick[:i], fmt.Errorf("dead letter %s: the original topic is unknown", e.ID)
		}
		if err := s.cfg.Publisher.Publish(e.Topic, original(e.msg)); err != nil {
			return pick[:i], fmt.Errorf("retry dead letter %s: republish to %s: %w", e.ID, e.Topic, err)
		}
		at := s.cfg.Now().UTC()
		marker := message.NewMessage(e.msg.UUID+"/retry/"+strconv.FormatInt(at.UnixNano(), 10), nil)
		marker.Metadata.Set(RetryOfMetadata, e.ID)
		marker.Metadata.Set(RetriedMetadata, at.Format(time.RFC3339Nano))
		if err := s.cfg.Publisher.Publish(s.cfg.Topic, marker); err != nil {
			return pick[:i], fmt.Errorf("retry dead letter %s: republished, but recording the retry failed: %w", e.ID, err)
		}
		pick[i].Retries = append(slices.Clone(e.Retries), at)
	}
	return pick, nil
}

// NotFoundError names ids that are no entry of the topic.
type NotFoundError struct{ IDs []string }

func (e *NotFoundError) Error() string {
	return "no dead letter with id " + strings.Join(e.IDs, ", ")
}

// poisonMetadata is what the router and the transport added: a retried
// message carries only its original metadata.
var poisonMetadata = []string{
	router.ReasonMetadata, router.TopicMetadata, router.HandlerMetadata, router.SubscriberMetadata,
	router.ReasonClassMetadata, router.PartitionMetadata, router.OffsetMetadata, router.TimeMetadata,
	kafka.PartitionMetadata, kafka.OffsetMetadata,
}

// original is the message as it was first published.
func original(msg *message.Message) *message.Message {
	out := message.NewMessage(msg.UUID, msg.Payload)
	for k, v := range msg.Metadata {
		if !slices.Contains(poisonMetadata, k) {
			out.Metadata.Set(k, v)
		}
	}
	return out
}

func entryOf(partition int, offset int64, msg *message.Message) Entry {
	md := msg.Metadata
	at, _ := time.Parse(time.RFC3339Nano, md.Get(router.TimeMetadata))
	e := Entry{
		ID:          fmt.Sprintf("%d-%d", partition, offset),
		Topic:       md.Get(router.TopicMetadata),
		Partition:   atoi(md.Get(router.PartitionMetadata)),
		Offset:      int64(atoi(md.Get(router.OffsetMetadata))),
		Projection:  md.Get(router.HandlerMetadata),
		Reason:      md.Get(router.ReasonMetadata),
		ReasonClass: md.Get(router.ReasonClassMetadata),
		Time:        at,
		EventID:     md.Get(event.IDMetadata),
		EventSource: md.Get(event.SourceMetadata),
		EventType:   md.Get(event.TypeMetadata),
		Retries:     []time.Time{},
		msg:         msg,
	}
	return e
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		return -1
	}
	return n
}

type bounds struct {
	partition  int
	start, end int64
}

func (s *Store) bounds(ctx context.Context) ([]bounds, error) {
	meta, err := s.client.Metadata(ctx, &kafkago.MetadataRequest{Topics: []string{s.cfg.Topic}})
	if err != nil {
		return nil, fmt.Errorf("dead letters: metadata of %s: %w", s.cfg.Topic, err)
	}
	var reqs []kafkago.OffsetRequest
	for _, t := range meta.Topics {
		if t.Name != s.cfg.Topic {
			continue
		}
		if t.Error != nil {
			return nil, fmt.Errorf("dead letters: topic %s: %w", s.cfg.Topic, t.Error)
		}
		for _, p := range t.Partitions {
			reqs = append(reqs, kafkago.FirstOffsetOf(p.ID), kafkago.LastOffsetOf(p.ID))
		}
	}
	if len(reqs) == 0 {
		return nil, fmt.Errorf("dead letters: topic %s: %w", s.cfg.Topic, kafkago.UnknownTopicOrPartition)
	}
	resp, err := s.client.ListOffsets(ctx, &kafkago.ListOffsetsRequest{Topics: map[string][]kafkago.OffsetRequest{s.cfg.Topic: reqs}})
	if err != nil {
		return nil, fmt.Errorf("dead letters: offsets of %s: %w", s.cfg.Topic, err)
	}
	var out []bounds
	for _, po := range resp.Topics[s.cfg.Topic] {
		if po.Error != nil {
			return nil, fmt.Errorf("dead letters: offsets of %s/%d: %w", s.cfg.Topic, po.Partition, po.Error)
		}
		out = append(out, bounds{partition: po.Partition, start: po.FirstOffset, end: po.LastOffset})
	}
	slices.SortFunc(out, func(a, b bounds) int { return a.partition - b.partition })
	return out, nil
}

// fetch reads the records of partition from offset, and the offset to read next.
func (s *Store) fetch(ctx context.Context, partition int, offset int64) ([]kafkago.Message, int64, error) {
	resp, err := s.client.Fetch(ctx, &kafkago.FetchRequest{
		Topic: s.cfg.Topic, Partition: partition, Offset: offset,
		MinBytes: 1, MaxBytes: kafka.DefaultFetchMaxBytes, MaxWait: time.Second,
	})
	if err == nil {
		err = resp.Error
	}
	if err != nil {
		return nil, 0, fmt.Errorf("dead letters: read %s/%d at %d: %w", s.cfg.Topic, partition, offset, err)
	}
	var out []kafkago.Message
	next := offset
	for {
		rec, err := resp.Records.ReadRecord()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, 0, fmt.Errorf("dead letters: read %s/%d: %w", s.cfg.Topic, partition, err)
		}
		if rec.Offset < offset { // a fetch may start with whole batches before offset
			continue
		}
		m := kafkago.Message{Topic: s.cfg.Topic, Partition: partition, Offset: rec.Offset, Time: rec.Time, Headers: rec.Headers}
		if m.Key, err = readAll(rec.Key); err == nil {
			m.Value, err = readAll(rec.Value)
		}
		if err != nil {
			return nil, 0, fmt.Errorf("dead letters: read %s/%d at %d: %w", s.cfg.Topic, partition, rec.Offset, err)
		}
		out = append(out, m)
		next = rec.Offset + 1
	}
	if next == offset {
		// Nothing at or after offset in this fetch: transaction markers or a
		// compacted gap. The high watermark bounds the loop, so step over it.
		next = offset + 1
	}
	return out, next, nil
}

func readAll(b kafkago.Bytes) ([]byte, error) {
	if b == nil {
		return nil, nil
	}
	return io.ReadAll(b)
}

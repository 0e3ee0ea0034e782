package broker

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"sync/atomic"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// DefaultMaxRecords caps what the embedded broker holds. kfake keeps every
// record in memory (about 400 bytes of RSS per uvr event, measured with
// `uvr demo`): a million records is about 0.4 GB, enough for the demo data
// set five times over and small enough for a laptop.
const DefaultMaxRecords = 1_000_000

// FullError is returned once the broker holds its MaxRecords: it refuses
// new records rather than eat the machine.
type FullError struct {
	Held, Max int64
}

func (e *FullError) Error() string {
	return fmt.Sprintf("the embedded Kafka broker holds %d records and refuses more past its limit of %d "+
		"(--embedded-kafka-max-records, UVR_EMBEDDED_KAFKA_MAX_RECORDS): it keeps every record "+
		"in memory and is for tests and a quick try only; run uvr with a real Kafka "+
		"(--kafka-brokers; `make run` starts one)", e.Held, e.Max)
}

// limiter counts the records the broker holds and refuses produce requests
// that would take it past max.
type limiter struct {
	cluster *kfake.Cluster
	max     int64 // < 0: no limit
	held    atomic.Int64
	// refused: a produce request was refused. It stays set: kfake frees
	// nothing, and a writer sends one request per partition, so a smaller
	// request accepted after a refused one must not make the broker look
	// roomy again to the API explaining the refusal.
	refused atomic.Bool
	warned  atomic.Bool
	log     *slog.Logger
}

// full returns a *FullError once the broker holds max records or has
// refused a request (it would have passed max), else nil.
func (l *limiter) full() error {
	if held := l.held.Load(); l.max >= 0 && (held >= l.max || l.refused.Load()) {
		return &FullError{Held: held, Max: l.max}
	}
	return nil
}

// produce is a kfake control function on Produce requests. It runs on the
// cluster's request loop, one request at a time.
func (l *limiter) produce(req kmsg.Request) (kmsg.Response, error, bool) {
	pr := req.(*kmsg.ProduceRequest)
	var n int64
	for _, t := range pr.Topics {
		for _, p := range t.Partitions {
			n += countRecords(p.Records)
		}
	}
	if l.max < 0 || l.held.Load()+n <= l.max {
		l.held.Add(n)
		return nil, nil, false // kfake handles it as usual
	}
	l.refused.Store(true)
	l.cluster.KeepControl()
	full := &FullError{Held: l.held.Load(), Max: l.max}
	if !l.warned.Swap(true) {
		l.log.Error("embedded broker is full: refusing new records", "held", full.Held, "max", full.Max, "error", full.Error())
	}
	msg := full.Error()
	resp := pr.ResponseKind().(*kmsg.ProduceResponse)
	for _, t := range pr.Topics {
		rt := kmsg.NewProduceResponseTopic()
		rt.Topic, rt.TopicID = t.Topic, t.TopicID
		for _, p := range t.Partitions {
			rp := kmsg.NewProduceResponseTopicPartition()
			rp.Partition = p.Partition
			rp.ErrorCode = kerr.PolicyViolation.Code
			rp.ErrorMessage = &msg
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp, nil, true
}

// countRecords sums the record counts of the v2 record batches in b (the
// only format kafka-go and franz-go produce): a batch is base offset (8),
// length (4), then 45 bytes of header up to its int32 record count.
func countRecords(b []byte) int64 {
	const countAt, headerLen = 57, 61
	var n int64
	for len(b) >= headerLen {
		n += int64(int32(binary.BigEndian.Uint32(b[countAt:headerLen])))
		next := 12 + int(int32(binary.BigEndian.Uint32(b[8:12])))
		if next <= 0 || next > len(b) {
			break
		}
		b = b[next:]
	}
	return n
}

// heldRecords sums high watermark − log start offset over every partition:
// the records a restarted broker reloaded from its data directory.
func heldRecords(ctx context.Context, addr string) (int64, error) {
	// A transport of its own, closed on return: kafka-go's default one pools connections
	// per address, and a later broker on the same address would inherit dead ones.
	transport := &kafkago.Transport{}
	defer transport.CloseIdleConnections()
	client := &kafkago.Client{Addr: kafkago.TCP(addr), Transport: transport}
	meta, err := client.Metadata(ctx, &kafkago.MetadataRequest{})
	if err != nil {
		return 0, fmt.Errorf("count held records: metadata: %w", err)
	}
	req := &kafkago.ListOffsetsRequest{Topics: make(map[string][]kafkago.OffsetRequest)}
	for _, t := range meta.Topics {
		for _, p := range t.Partitions {
			req.Topics[t.Name] = append(req.Topics[t.Name], kafkago.FirstOffsetOf(p.ID), kafkago.LastOffsetOf(p.ID))
		}
	}
	if len(req.Topics) == 0 {
		return 0, nil
	}
	offsets, err := client.ListOffsets(ctx, req)
	if err != nil {
		return 0, fmt.Errorf("count held records: list offsets: %w", err)
	}
	var held int64
	for topic, parts := range offsets.Topics {
		for _, p := range parts {
			if p.Error != nil {
				return 0, fmt.Errorf("count held records: %s[%d]: %w", topic, p.Partition, p.Error)
			}
			held += p.LastOffset - p.FirstOffset
		}
	}
	return held, nil
}

package servicetest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/uvrhq/uvr/pipeline/broker"
)

// DeleteRecords deletes the records of topic's partition below offset before, as retention
// does to a partition's oldest segments: the partition's log then starts at before. kafka-go
// has no DeleteRecords, so this goes through franz-go, which sends it to the partition leader.
func DeleteRecords(t testing.TB, brokers []string, topic string, partition int32, before int64) {
	t.Helper()
	client, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatalf("kafka client for %v: %v", brokers, err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req := kmsg.NewPtrDeleteRecordsRequest()
	rt := kmsg.NewDeleteRecordsRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewDeleteRecordsRequestTopicPartition()
	rp.Partition, rp.Offset = partition, before
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	req.TimeoutMillis = 10000
	resp, err := req.RequestWith(ctx, client)
	if err != nil {
		t.Fatalf("delete records of %s/%d below %d: %v", topic, partition, before, err)
	}
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			if err := kerr.ErrorForCode(rp.ErrorCode); err != nil || rp.LowWatermark != before {
				t.Fatalf("delete records of %s/%d below %d: log start %d, %v", topic, rp.Partition, before, rp.LowWatermark, err)
			}
		}
	}
}

// PrivateKafka starts a Kafka broker for this test alone, through deploy/services with a
// directory of its own, free loopback ports and the jars of the shared instance, for a test
// that changes broker-wide settings (or stops the broker). It is stopped when the test ends.
func PrivateKafka(t testing.TB) []string {
	t.Helper()
	KafkaBrokers(t) // the shared instance has installed the jars
	libs := os.Getenv("UVR_KAFKA_LIBS")
	if libs == "" {
		varDir := os.Getenv("UVR_VAR")
		if varDir == "" {
			varDir = filepath.Join(Root(), "var")
		}
		libs = filepath.Join(varDir, "kafka", "libs")
	}
	dir := t.TempDir()
	port, controller := freePort(t), freePort(t)
	env := append(os.Environ(), "UVR_VAR="+dir, "UVR_KAFKA_DIR="+filepath.Join(dir, "kafka"), "UVR_KAFKA_LIBS="+libs,
		"UVR_KAFKA_PORT="+port, "UVR_KAFKA_CONTROLLER_PORT="+controller, "UVR_KAFKA_HEAP=256m")
	services := func(action string) error {
		cmd := exec.Command(filepath.Join(Root(), "deploy", "services"), "kafka", action)
		cmd.Dir, cmd.Env = Root(), env
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("deploy/services kafka %s (port %s): %w\n%s", action, port, err, out)
		}
		return nil
	}
	t.Cleanup(func() {
		if err := services("stop"); err != nil {
			t.Errorf("stop the private kafka: %v", err)
		}
	})
	if err := services("start"); err != nil {
		t.Fatal(err)
	}
	return []string{"127.0.0.1:" + port}
}

// freePort is a loopback TCP port nothing listens on at the moment.
func freePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer ln.Close()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}

// EmbeddedKafka starts the embedded broker (pipeline/broker) on a free port and a data
// directory of this test, stopped when the test ends.
func EmbeddedKafka(t testing.TB) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := broker.Start(ctx, broker.Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatalf("start the embedded broker: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b.Addrs()
}

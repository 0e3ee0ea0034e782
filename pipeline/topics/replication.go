package topics

import (
	"context"
	"errors"
	"fmt"

	"github.com/uvrhq/uvr/pipeline/kafka"
)

// Replication resolves the replication factor and min.insync.replicas uvr creates its topics
// with, from the configured values (0 = auto) and the number of brokers in the cluster.
//
// Auto is RF 3 with min.insync.replicas 2 on a cluster of three brokers or more (a write
// acknowledged with acks=all is on two brokers, and one broker may be down without stopping
// writes), and 1/1 on a smaller cluster. An explicit value wins; an explicit RF alone gets
// min.insync.replicas 2 when it is 3 or more, else 1 (RF−1 capped at 2: one broker may be down).
func Replication(brokers, rf, minISR int) (replication, minInsync int, err error) {
	if rf < 0 || minISR < 0 {
		return 0, 0, fmt.Errorf("replication factor (%d) and min.insync.replicas (%d) must be ≥ 0 (0 = auto)", rf, minISR)
	}
	if brokers < 1 {
		return 0, 0, errors.New("the cluster metadata lists no broker")
	}
	replication = rf
	if replication == 0 {
		replication = 1
		if brokers >= 3 {
			replication = 3
		}
	}
	if replication > brokers {
		return 0, 0, fmt.Errorf("replication factor %d is larger than the %d broker(s) of the cluster: "+
			"set --kafka-replication-factor (UVR_KAFKA_REPLICATION_FACTOR) to at most %d, or 0 for auto", replication, brokers, brokers)
	}
	minInsync = minISR
	if minInsync == 0 {
		minInsync = 1
		if replication >= 3 {
			minInsync = 2
		}
	}
	if minInsync > replication {
		return 0, 0, fmt.Errorf("min.insync.replicas %d is larger than the replication factor %d: no write could be acknowledged; "+
			"set --kafka-min-insync-replicas (UVR_KAFKA_MIN_INSYNC_REPLICAS) to at most %d, or 0 for auto", minInsync, replication, replication)
	}
	return replication, minInsync, nil
}

// BrokerCount is the number of brokers the cluster metadata lists.
func BrokerCount(ctx context.Context, brokers []string, sec kafka.Security) (int, error) {
	a := newAdmin(brokers, sec)
	defer a.close()
	md, err := a.metadata(ctx, nil)
	if err != nil {
		return 0, err
	}
	return len(md.Brokers), nil
}

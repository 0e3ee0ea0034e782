package topics

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestCompareReplication: replication below the configured one is a warning (nothing is
// deleted; raising an RF means moving partitions), and min.insync.replicas is wanted at the
// configured value but never above the topic's own replicas.
func TestCompareReplication(t *testing.T) {
	cfg := Config{ReplicationFactor: 3, MinInsyncReplicas: 2}
	events := New("e", 1, Events, cfg)
	good := map[string]string{"cleanup.policy": "delete", "retention.ms": "-1", "retention.bytes": "-1"}
	with := func(isr string) map[string]string {
		m := map[string]string{minInsyncReplicas: isr}
		for k, v := range good {
			m[k] = v
		}
		return m
	}
	tests := []struct {
		name string
		rf   int
		isr  string
		want []string // setting got→want, all warnings
	}{
		{name: "as configured", rf: 3, isr: "2"},
		{name: "more in-sync replicas than configured is the operator's choice", rf: 3, isr: "3"},
		{name: "fewer in-sync replicas", rf: 3, isr: "1", want: []string{"min.insync.replicas 1→2"}},
		{name: "a topic of a smaller cluster", rf: 1, isr: "1", want: []string{"replication factor 1→3"}},
		{name: "in-sync replicas above the replicas", rf: 1, isr: "2", want: []string{"replication factor 1→3", "min.insync.replicas 2→1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, f := range compare(Status{Topic: events, Exists: true, ReplicationFactor: tt.rf, Settings: with(tt.isr)}) {
				assert.Equal(t, Warning, f.Severity, f.String())
				assert.Equal(t, f.Setting == minInsyncReplicas, f.Fixable, "only min.insync.replicas is Fix's to change: %s", f)
				got = append(got, f.Setting+" "+f.Got+"→"+f.Want)
			}
			assert.Equal(t, tt.want, got)
		})
	}
}

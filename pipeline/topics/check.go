package topics

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/uvrhq/uvr/pipeline/kafka"
)

// Severity grades a Finding.
type Severity int

const (
	// Warning: less than configured (replication, compaction margins), but no record uvr
	// needs is deleted. Logged at start and shown by `uvr topics check`; uvr runs.
	Warning Severity = iota + 1
	// Problem: the broker deletes (or will delete) records uvr needs. uvr refuses to start.
	Problem
)

func (s Severity) String() string {
	if s == Problem {
		return "PROBLEM"
	}
	return "WARNING"
}

// Finding is one setting of one topic that differs from what uvr needs.
type Finding struct {
	Topic, Setting string
	Got, Want      string
	Severity       Severity
	Why            string // what the difference costs
	Fixable        bool   // Fix can set it (a replication factor needs a partition reassignment)
}

func (f Finding) String() string {
	return fmt.Sprintf("%s: topic %s: %s is %s, uvr needs %s: %s", f.Severity, f.Topic, f.Setting, f.Got, f.Want, f.Why)
}

// Status is what the broker reports of one of uvr's topics.
type Status struct {
	Topic             Topic
	Exists            bool
	Partitions        int
	ReplicationFactor int               // the smallest of its partitions
	Settings          map[string]string // the values of the settings uvr sets
	Findings          []Finding
}

// Worst is the highest severity of s's findings, 0 when there is none.
func (s Status) Worst() Severity {
	var worst Severity
	for _, f := range s.Findings {
		worst = max(worst, f.Severity)
	}
	return worst
}

// Check reads back the partitions, replication and configuration of every topic of list
// that exists (a missing topic is reported with Exists false: uvr creates it) and compares
// them with what uvr needs. It changes nothing on the broker.
func Check(ctx context.Context, brokers []string, sec kafka.Security, list []Topic) ([]Status, error) {
	a := newAdmin(brokers, sec)
	defer a.close()
	return a.check(ctx, list)
}

func (a admin) check(ctx context.Context, list []Topic) ([]Status, error) {
	names := make([]string, len(list))
	for i, t := range list {
		names[i] = t.Spec.Name
	}
	md, err := a.metadata(ctx, names)
	if err != nil {
		return nil, err
	}
	byName := make(map[string]kafkago.Topic, len(md.Topics))
	for _, t := range md.Topics {
		byName[t.Name] = t
	}
	statuses := make([]Status, len(list))
	var req kafkago.DescribeConfigsRequest
	for i, t := range list {
		st := Status{Topic: t}
		mt, ok := byName[t.Spec.Name]
		switch {
		case !ok || errors.Is(mt.Error, kafkago.UnknownTopicOrPartition):
		case mt.Error != nil:
			return nil, fmt.Errorf("metadata of topic %s: %w", t.Spec.Name, mt.Error)
		default:
			st.Exists = true
			st.Partitions = len(mt.Partitions)
			st.ReplicationFactor = -1
			for _, p := range mt.Partitions {
				if st.ReplicationFactor < 0 || len(p.Replicas) < st.ReplicationFactor {
					st.ReplicationFactor = len(p.Replicas)
				}
			}
			req.Resources = append(req.Resources, kafkago.DescribeConfigRequestResource{
				ResourceType: kafkago.ResourceTypeTopic,
				ResourceName: t.Spec.Name,
				ConfigNames:  slices.Sorted(maps.Keys(t.Spec.Config)),
			})
		}
		statuses[i] = st
	}
	if len(req.Resources) == 0 {
		return statuses, nil
	}
	resp, err := a.client.DescribeConfigs(ctx, &req)
	if err != nil {
		return nil, fmt.Errorf("describe topic configs: %w", err)
	}
	configs := make(map[string]map[string]string, len(resp.Resources))
	for _, r := range resp.Resources {
		if r.Error != nil {
			return nil, fmt.Errorf("describe configs of topic %s: %w", r.ResourceName, r.Error)
		}
		c := make(map[string]string, len(r.ConfigEntries))
		for _, e := range r.ConfigEntries {
			c[e.ConfigName] = e.ConfigValue
		}
		configs[r.ResourceName] = c
	}
	for i := range statuses {
		if statuses[i].Exists {
			statuses[i].Settings = configs[statuses[i].Topic.Spec.Name]
			statuses[i].Findings = compare(statuses[i])
		}
	}
	return statuses, nil
}

// compare lists how an existing topic differs from what uvr needs.
func compare(st Status) []Finding {
	t := st.Topic
	var out []Finding
	for _, s := range settings(t.Kind) {
		got, ok := st.Settings[s.name]
		if !ok {
			got = "(not reported)"
		}
		if got == s.want {
			continue
		}
		sev := Warning
		if s.required {
			sev = Problem
		}
		out = append(out, Finding{Topic: t.Spec.Name, Setting: s.name, Got: got, Want: s.want, Severity: sev, Why: s.why, Fixable: true})
	}
	if st.ReplicationFactor < t.Spec.ReplicationFactor {
		out = append(out, Finding{Topic: t.Spec.Name, Setting: "replication factor",
			Got: strconv.Itoa(st.ReplicationFactor), Want: strconv.Itoa(t.Spec.ReplicationFactor), Severity: Warning,
			Why: "fewer brokers hold each record than configured; raise it with kafka-reassign-partitions.sh (uvr does not move partitions)"})
	}
	// min.insync.replicas: at least the configured value (an operator may ask for more), but
	// never more than the topic's replicas, or no acks=all write could be acknowledged.
	want, _ := strconv.Atoi(t.Spec.Config[minInsyncReplicas])
	want = max(1, min(want, st.ReplicationFactor))
	got, err := strconv.Atoi(st.Settings[minInsyncReplicas])
	switch {
	case err != nil || got < want:
		out = append(out, Finding{Topic: t.Spec.Name, Setting: minInsyncReplicas, Got: st.Settings[minInsyncReplicas], Want: strconv.Itoa(want),
			Severity: Warning, Why: "an acknowledged write may be on fewer brokers than configured", Fixable: true})
	case got > st.ReplicationFactor:
		out = append(out, Finding{Topic: t.Spec.Name, Setting: minInsyncReplicas, Got: st.Settings[minInsyncReplicas], Want: strconv.Itoa(want),
			Severity: Warning, Why: "more than the topic's replicas: no write with acks=all can be acknowledged", Fixable: true})
	}
	return out
}

// Refusal is the error that stops uvr from starting on topics that would delete records
// it needs. It changes nothing: only an operator's `uvr topics fix` (or kafka-configs.sh)
// does.
func Refusal(statuses []Status, brokers []string) error {
	var errs []error
	for _, st := range statuses {
		var bad []Finding
		for _, f := range st.Findings {
			if f.Severity == Problem {
				bad = append(bad, f)
			}
		}
		if len(bad) == 0 {
			continue
		}
		var b strings.Builder
		var set []string
		for _, f := range bad {
			fmt.Fprintf(&b, "topic %s: %s=%s deletes records uvr needs (needs %s: %s)\n", f.Topic, f.Setting, f.Got, f.Want, f.Why)
			set = append(set, f.Setting+"="+f.Want)
		}
		fmt.Fprintf(&b, "  fix: uvr topics fix (with this configuration)   or: %s", ConfigsCommand(brokers, st.Topic.Spec.Name, set))
		errs = append(errs, errors.New(b.String()))
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("refusing to start: the Kafka broker would delete records uvr needs; nothing was changed on the broker:\n%w", errors.Join(errs...))
}

// ConfigsCommand is the kafka-configs.sh line that sets the given name=value entries on topic.
func ConfigsCommand(brokers []string, topic string, set []string) string {
	return fmt.Sprintf("kafka-configs.sh --bootstrap-server %s --alter --entity-type topics --entity-name %s --add-config %s",
		strings.Join(brokers, ","), topic, strings.Join(set, ","))
}

// Change is one setting Fix changed.
type Change struct {
	Topic, Setting, From, To string
}

// Fix creates the missing topics of list and sets every fixable setting that differs on the
// existing ones (one IncrementalAlterConfigs per topic, so a topic never sits between two
// settings). Running it again changes nothing. A replication factor below the configured one
// is left as it is: raising it moves partitions between brokers, which is an operator's call.
func Fix(ctx context.Context, brokers []string, sec kafka.Security, list []Topic) (created []string, changes []Change, err error) {
	a := newAdmin(brokers, sec)
	defer a.close()
	before, err := a.check(ctx, list)
	if err != nil {
		return nil, nil, err
	}
	var missing []kafka.TopicSpec
	var req kafkago.IncrementalAlterConfigsRequest
	for _, st := range before {
		if !st.Exists {
			missing = append(missing, st.Topic.Spec)
			created = append(created, st.Topic.Spec.Name)
			continue
		}
		res := kafkago.IncrementalAlterConfigsRequestResource{ResourceType: kafkago.ResourceTypeTopic, ResourceName: st.Topic.Spec.Name}
		for _, f := range st.Findings {
			if !f.Fixable {
				continue
			}
			res.Configs = append(res.Configs, kafkago.IncrementalAlterConfigsRequestConfig{Name: f.Setting, Value: f.Want, ConfigOperation: kafkago.ConfigOperationSet})
			changes = append(changes, Change{Topic: f.Topic, Setting: f.Setting, From: f.Got, To: f.Want})
		}
		if len(res.Configs) > 0 {
			req.Resources = append(req.Resources, res)
		}
	}
	if err := kafka.EnsureTopics(ctx, brokers, sec, missing); err != nil {
		return nil, nil, err
	}
	if len(req.Resources) > 0 {
		resp, err := a.client.IncrementalAlterConfigs(ctx, &req)
		if err != nil {
			return created, nil, fmt.Errorf("alter topic configs: %w", err)
		}
		var errs []error
		for _, r := range resp.Resources {
			if r.Error != nil {
				errs = append(errs, fmt.Errorf("alter configs of topic %s: %w", r.ResourceName, r.Error))
			}
		}
		if len(errs) > 0 {
			return created, nil, errors.Join(errs...)
		}
		// Kafka acknowledges the change once its controller committed it; the broker that
		// answers DescribeConfigs may apply it a moment later. Return once it reads back, so
		// that a check (or a start) right after sees what Fix reported.
		if err := a.awaitFixed(ctx, list); err != nil {
			return created, nil, err
		}
	}
	return created, changes, nil
}

// awaitFixed polls until no topic of list reports a fixable finding, for up to 30 s.
func (a admin) awaitFixed(ctx context.Context, list []Topic) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	backoff := 20 * time.Millisecond
	for {
		statuses, err := a.check(ctx, list)
		if err != nil {
			return err
		}
		var pending []string
		for _, st := range statuses {
			for _, f := range st.Findings {
				if f.Fixable {
					pending = append(pending, f.Topic+" "+f.Setting+"="+f.Got)
				}
			}
		}
		if len(pending) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the brokers still report %s after the change: %w", strings.Join(pending, ", "), ctx.Err())
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}

// admin is a kafka-go client over the bootstrap brokers.
type admin struct {
	client *kafkago.Client
	tr     *kafkago.Transport
}

func newAdmin(brokers []string, sec kafka.Security) admin {
	tr := sec.Transport(&kafkago.Transport{ClientID: "uvr-topics"})
	return admin{client: &kafkago.Client{Addr: kafkago.TCP(brokers...), Transport: tr, Timeout: 10 * time.Second}, tr: tr}
}

func (a admin) close() { a.tr.CloseIdleConnections() }

// metadata asks for the given topics only (none: the brokers alone), without creating any.
func (a admin) metadata(ctx context.Context, names []string) (*kafkago.MetadataResponse, error) {
	if names == nil {
		names = []string{}
	}
	md, err := a.client.Metadata(ctx, &kafkago.MetadataRequest{Topics: names})
	if err != nil {
		return nil, fmt.Errorf("kafka metadata: %w", err)
	}
	return md, nil
}
